//! Reaching the agent: QUIC connection under a deadline, key pins, the handshake,
//! Hello, the round-trip measurement, the probe run and the report.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lanreach_proto::KeyId;
use lanreach_proto::PairingCode;
use lanreach_proto::channel::Channel;
use lanreach_proto::conversation;
use lanreach_proto::defaults::{
    CLOSE_GRACE, CONCURRENCY, PEER_HANDSHAKE_TIMEOUT as HANDSHAKE_TIMEOUT, PEER_STEP_TIMEOUT as STEP_TIMEOUT, PINGS,
    REJECT_LINGER, REPORT_TIMEOUT, WATCH_INTERVAL, close,
};
use lanreach_proto::endpoint::engine::{self, EngineConfig};
use lanreach_proto::endpoint::identity::{Identity, IdentityError};
use lanreach_proto::endpoint::quic::{self, QuicError};
use lanreach_proto::endpoint::store::StateFile;
use lanreach_proto::endpoint::store::StoreError;
use lanreach_proto::endpoint::{interfaces, os_description, term};
use lanreach_proto::handshake::{self, AuthMethod, HandshakeError};
use lanreach_proto::msg::{Hello, Message, RejectCode};
use lanreach_proto::plan;
use lanreach_proto::report::Report;
use lanreach_proto::text::printable;
use rand::rngs::OsRng;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, timeout};

use crate::known::KnownAgents;
use crate::target::Target;

/// Why the session with the agent failed. Every variant exits 2.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The host name does not resolve.
    #[error("cannot resolve {target}")]
    Resolve {
        /// The agent's address.
        target: Target,
        /// Why not.
        source: ResolveError,
    },
    /// The identity could not be loaded or created.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The known-agents file is unusable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// QUIC/TLS set-up failed.
    #[error(transparent)]
    Quic(#[from] QuicError),
    /// Nothing answered in time.
    #[error("no answer from a lanreach agent at {addr} within {}", secs(*.waited))]
    NoAnswer {
        /// The address dialled.
        addr: SocketAddr,
        /// How long we waited.
        waited: Duration,
    },
    /// The connection could not be started.
    #[error("cannot connect to {addr}")]
    Connect {
        /// The address dialled.
        addr: SocketAddr,
        /// What quinn said.
        source: quinn::ConnectError,
    },
    /// The connection failed or was closed by the agent.
    #[error("the connection to {addr} failed")]
    Connection {
        /// The address dialled.
        addr: SocketAddr,
        /// What quinn said.
        source: quinn::ConnectionError,
    },
    /// The agent's key differs from the pinned one.
    #[error("the agent at {target} has a different key than when you paired (pinned {pinned}, now {presented})")]
    KeyChanged {
        /// The agent's address.
        target: Target,
        /// The pinned key.
        pinned: KeyId,
        /// The key it presented.
        presented: KeyId,
    },
    /// The agent is not the one the pairing link names.
    #[error("the agent at {target} is not the one in the link (the link names {expected}, the agent is {presented})")]
    WrongAgent {
        /// The agent's address.
        target: Target,
        /// The ID in the link.
        expected: String,
        /// The key it presented.
        presented: KeyId,
    },
    /// No pin and no code.
    #[error("not paired with the agent at {target} yet")]
    NotPaired {
        /// The agent's address.
        target: Target,
        /// The key it presented.
        presented: KeyId,
    },
    /// Authentication failed.
    #[error("authentication with the agent at {target} failed")]
    Handshake {
        /// The agent's address.
        target: Target,
        /// What failed.
        source: HandshakeError,
    },
    /// A step after authentication failed.
    #[error("the session with the agent at {addr} failed ({step})")]
    Session {
        /// The address dialled.
        addr: SocketAddr,
        /// The step.
        step: &'static str,
        /// What failed.
        source: HandshakeError,
    },
    /// The agent's plan asks for probes this peer refuses to send. The reason is this
    /// peer's own decision, shown in the message; it is not a cause (`source()`).
    #[error("refusing the agent's probe plan: {reason}")]
    PlanRefused {
        /// The address dialled.
        addr: SocketAddr,
        /// What is wrong with it.
        reason: plan::PlanError,
    },
    /// The agent's user stopped it (Ctrl-C, SIGTERM) during the session.
    #[error("the agent at {addr} was stopped (Ctrl-C or SIGTERM on its machine)")]
    AgentStopped {
        /// The address dialled.
        addr: SocketAddr,
    },
    /// This peer was stopped by its user (Ctrl-C, SIGTERM); the agent was told so.
    #[error("stopped")]
    Stopped,
    /// Watch mode ended with Ctrl-C; the last report answers (not an error for the user).
    #[error("watch mode stopped")]
    Watched(Box<Report>),
    /// The agent's report does not parse.
    #[error("the agent at {addr} sent a report this version cannot read")]
    BadReport {
        /// The address dialled.
        addr: SocketAddr,
        /// What the parser said.
        source: serde_json::Error,
    },
    /// A step after connecting did not finish in time.
    #[error("the agent at {addr} stopped answering during {step}")]
    Timeout {
        /// The address dialled.
        addr: SocketAddr,
        /// The step.
        step: &'static str,
    },
}

/// Why a host name gave no address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The resolver failed.
    #[error(transparent)]
    Lookup(#[from] std::io::Error),
    /// The resolver answered with no address.
    #[error("no address found")]
    NoAddress,
    /// The resolver did not answer in time.
    #[error("name resolution timed out")]
    TimedOut,
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64()).replace(".0 s", " s")
}

/// Round-trip measurements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rtt {
    /// Median of the ping round trips.
    pub median: Duration,
    /// Fastest ping round trip.
    pub min: Duration,
    /// QUIC's smoothed estimate.
    pub quic: Duration,
}

/// A successful session.
#[derive(Debug, Clone)]
pub struct Completed {
    /// The agent's address as named.
    pub target: Target,
    /// The address dialled.
    pub addr: SocketAddr,
    /// The agent's key ID.
    pub agent_id: KeyId,
    /// This peer's key ID.
    pub our_id: KeyId,
    /// Paired now or pinned before.
    pub method: AuthMethod,
    /// The agent's Hello.
    pub hello: Hello,
    /// Round-trip measurements.
    pub rtt: Rtt,
    /// The agent's report.
    pub report: Report,
    /// Six digits both sides show, derived from this connection.
    pub verification: String,
}

/// Resolves `target` to one socket address.
pub async fn resolve(target: &Target) -> Result<SocketAddr, PeerError> {
    let resolve_error = |source| PeerError::Resolve { target: target.clone(), source };
    let mut addrs = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| resolve_error(ResolveError::Lookup(e)))?;
    addrs.next().ok_or_else(|| resolve_error(ResolveError::NoAddress))
}

/// Settings of one session.
#[derive(Clone)]
pub struct Options<'a> {
    /// The agent.
    pub target: &'a Target,
    /// The pairing code, when pairing.
    pub code: Option<&'a PairingCode>,
    /// Name shown to the agent.
    pub name: &'a str,
    /// Identity and pins.
    pub state_dir: &'a std::path::Path,
    /// How long to wait for the agent's first answer.
    pub connect_timeout: Duration,
    /// Per-attempt probe deadline; derived from the round trip when `None`.
    pub probe_timeout: Option<Duration>,
    /// The short key ID (no dashes) the agent must present, from a pairing link.
    pub expect_id: Option<&'a str>,
    /// Where to count probes, for a progress display.
    pub progress: Option<Arc<Progress>>,
    /// Told what is known as soon as it is known (for printing it at once).
    pub events: Option<&'a (dyn Fn(SessionEvent<'_>) + Sync)>,
    /// Watch mode: given each report as it arrives; the session then repeats until the
    /// user stops it.
    pub watch: Option<&'a (dyn Fn(&Report) + Sync)>,
}

/// What a session has learnt so far, in the order it learns it.
#[derive(Debug, Clone, Copy)]
pub enum SessionEvent<'a> {
    /// Authenticated (paired now or with pinned keys) and the agent's Hello received.
    Introduced {
        /// The agent's address as named.
        target: &'a Target,
        /// The address dialled.
        addr: SocketAddr,
        /// The agent's key ID.
        agent_id: KeyId,
        /// This peer's key ID.
        our_id: KeyId,
        /// How.
        method: AuthMethod,
        /// Six digits both sides show.
        verification: &'a str,
        /// The agent's Hello.
        hello: &'a Hello,
    },
    /// The round trip was measured.
    Rtt(&'a Rtt),
}

/// Probe progress, shared with whoever displays it.
#[derive(Debug, Default)]
pub struct Progress {
    /// Probes in the plan (0 until the plan arrives).
    pub total: AtomicUsize,
    /// Probes finished.
    pub done: Arc<AtomicUsize>,
}

/// Connects, authenticates (pairing or pins), exchanges Hellos and measures the RTT.
pub async fn run(s: &Options<'_>) -> Result<Completed, PeerError> {
    let addr = timeout(s.connect_timeout, resolve(s.target))
        .await
        .map_err(|_| PeerError::Resolve { target: s.target.clone(), source: ResolveError::TimedOut })??;
    let (identity, _) = Identity::load_or_create(s.state_dir, s.name)?;
    let mut known = KnownAgents::load(s.state_dir)?;
    let local: SocketAddr =
        if addr.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
    let endpoint =
        quic::endpoint(quic::udp_socket(local)?, None).map_err(|source| QuicError::Socket { addr: local, source })?;
    let client = quic::client_config(&identity)?;
    let connecting =
        endpoint.connect_with(client, addr, quic::SERVER_NAME).map_err(|source| PeerError::Connect { addr, source })?;
    let conn = match timeout(s.connect_timeout, connecting).await {
        Err(_) => {
            return Err(PeerError::NoAnswer { addr, waited: s.connect_timeout });
        }
        Ok(Err(quinn::ConnectionError::TimedOut)) => {
            return Err(PeerError::NoAnswer { addr, waited: s.connect_timeout });
        }
        Ok(Err(source)) => return Err(PeerError::Connection { addr, source }),
        Ok(Ok(conn)) => conn,
    };
    // The session, unless the user stops this peer (the agent is told at once) or the
    // agent closes the connection first (noticed at once, also in the middle of the
    // probe run, which reads nothing from the agent).
    let mut stop = term::Stop::install();
    let result = tokio::select! {
        biased;
        result = authenticated_session(s, &identity, &mut known, &conn, addr) => result,
        _ = stop.recv() => {
            conn.close(close::SHUTDOWN.into(), b"peer stopped");
            Err(PeerError::Stopped)
        }
        source = conn.closed() => Err(PeerError::Connection { addr, source }),
    };
    let result = match result {
        Err(e)
            if !matches!(e, PeerError::Stopped)
                && conn.close_reason().is_some_and(|r| quic::stopped_by_other_side(&r)) =>
        {
            Err(PeerError::AgentStopped { addr })
        }
        other => other,
    };
    if result.is_err() {
        conn.close(close::REFUSED.into(), b"failed");
    }
    // Lets the CONNECTION_CLOSE reach the agent (the draining period is a few RTTs).
    let _ = timeout(CLOSE_GRACE, endpoint.wait_idle()).await;
    result
}

async fn authenticated_session(
    s: &Options<'_>,
    identity: &Identity,
    known: &mut KnownAgents,
    conn: &quinn::Connection,
    addr: SocketAddr,
) -> Result<Completed, PeerError> {
    let target = s.target.clone();
    let presented = quic::remote_key_id(conn)?;
    if let Some(expected) = s.expect_id.filter(|want| presented.short().replace('-', "") != *want) {
        return Err(PeerError::WrongAgent { target, expected: expected.to_owned(), presented });
    }
    if let Some(pin) = known.get(&target).filter(|pin| pin.id != presented) {
        return Err(PeerError::KeyChanged { target, pinned: pin.id, presented });
    }
    if s.code.is_none() && known.get(&target).is_none() && known.knows(&presented).is_none() {
        return Err(PeerError::NotPaired { target, presented });
    }
    let binding = quic::binding(conn, presented, identity.id)?;
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let conn_err = |source| PeerError::Connection { addr, source };
    let (send, recv) = tokio::time::timeout_at(deadline, conn.open_bi())
        .await
        .map_err(|_| PeerError::Timeout { addr, step: "authentication" })?
        .map_err(conn_err)?;
    let mut ch = Channel::new(recv, send);
    let auth =
        tokio::time::timeout_at(deadline, handshake::peer_handshake(&mut ch, s.name, s.code, &binding, &mut OsRng))
            .await
            .map_err(|_| PeerError::Timeout { addr, step: "authentication" })?;
    let method = match auth {
        Ok(method) => method,
        Err(source) => {
            abort(&mut ch).await;
            return Err(protocol_error(addr, source, |source| PeerError::Handshake { target, source }));
        }
    };
    let verification = lanreach_proto::pairing::verification(&binding);
    let tell = |event: SessionEvent<'_>| {
        if let Some(events) = s.events {
            events(event);
        }
    };
    // Pin at once: the agent trusts us from this moment, whatever happens next.
    let pinned_name = known.get(&target).map(|k| k.name.clone()).unwrap_or_default();
    known.pin(&target, presented, &pinned_name);
    known.save(s.state_dir)?;

    let ours = Hello {
        name: s.name.to_owned(),
        os: os_description(),
        software: format!("lanreach-peer {}", env!("CARGO_PKG_VERSION")),
        addresses: interfaces::hello_addresses(&interfaces::list().unwrap_or_default()),
    };
    let step = |step| move |_| PeerError::Timeout { addr, step };
    let failed = |step| move |e| protocol_error(addr, e, |source| PeerError::Session { addr, step, source });
    let hello = timeout(STEP_TIMEOUT, conversation::hello_as_peer(&mut ch, ours))
        .await
        .map_err(step("the Hello exchange"))?
        .map_err(failed("the Hello exchange"))?;
    known.pin(&target, presented, &printable(&hello.name, 64));
    known.save(s.state_dir)?;
    tell(SessionEvent::Introduced {
        target: &target,
        addr,
        agent_id: presented,
        our_id: identity.id,
        method,
        verification: &verification,
        hello: &hello,
    });

    let plan = timeout(STEP_TIMEOUT, conversation::recv_plan(&mut ch))
        .await
        .map_err(step("waiting for the probe plan"))?
        .map_err(failed("receiving the probe plan"))?;
    let declared: Vec<IpAddr> = hello.addresses.iter().map(|a| a.ip).collect();
    if let Err(e) = plan::validate(&plan, &declared, addr.ip().to_canonical().is_loopback()) {
        conversation::reject(&mut ch, RejectCode::PlanRefused, &e.to_string()).await;
        abort(&mut ch).await;
        return Err(PeerError::PlanRefused { addr, reason: e });
    }

    let mut samples = Vec::new();
    for nonce in 0..PINGS {
        let sent = Instant::now();
        timeout(STEP_TIMEOUT, conversation::ping(&mut ch, nonce))
            .await
            .map_err(step("the round-trip measurement"))?
            .map_err(failed("the round-trip measurement"))?;
        samples.push(sent.elapsed());
    }
    samples.sort();
    let rtt = Rtt { median: samples[samples.len() / 2], min: samples[0], quic: conn.rtt() };
    tell(SessionEvent::Rtt(&rtt));

    let config = match s.probe_timeout {
        Some(t) => EngineConfig { attempt_timeout: t, concurrency: CONCURRENCY },
        None => EngineConfig::for_rtt(rtt.median),
    };
    let done = match &s.progress {
        Some(p) => {
            p.total.store(plan.probes.len() + plan.services.len(), Ordering::Relaxed);
            p.done.clone()
        }
        None => Arc::new(AtomicUsize::new(0)),
    };
    let results = engine::run_with_progress(&plan, config, done, &[addr.ip()]).await;
    ch.send(&Message::Results(results)).await.map_err(|e| failed("sending the results")(e.into()))?;
    let json = timeout(REPORT_TIMEOUT, conversation::recv_report(&mut ch))
        .await
        .map_err(step("waiting for the report"))?
        .map_err(failed("receiving the report"))?;
    let report: Report = serde_json::from_str(&json).map_err(|source| PeerError::BadReport { addr, source })?;
    if let Some(watching) = s.watch {
        // Watch mode: the same checks again every WATCH_INTERVAL over this connection,
        // until the user stops it (Ctrl-C, handled in `run`) or the agent goes away.
        watching(&report);
        let declared: Vec<IpAddr> = hello.addresses.iter().map(|a| a.ip).collect();
        for round in 1u32.. {
            tokio::time::sleep(WATCH_INTERVAL).await;
            let plan = timeout(STEP_TIMEOUT, conversation::again(&mut ch, round))
                .await
                .map_err(step("waiting for the next plan"))?
                .map_err(failed("receiving the next plan"))?;
            if let Err(e) = plan::validate(&plan, &declared, addr.ip().to_canonical().is_loopback()) {
                conversation::reject(&mut ch, RejectCode::PlanRefused, &e.to_string()).await;
                abort(&mut ch).await;
                return Err(PeerError::PlanRefused { addr, reason: e });
            }
            let results = engine::run(&plan, config, &[addr.ip()]).await;
            ch.send(&Message::Results(results)).await.map_err(|e| failed("sending the results")(e.into()))?;
            let json = timeout(REPORT_TIMEOUT, conversation::recv_report(&mut ch))
                .await
                .map_err(step("waiting for the report"))?
                .map_err(failed("receiving the report"))?;
            let next: Report = serde_json::from_str(&json).map_err(|source| PeerError::BadReport { addr, source })?;
            watching(&next);
        }
    }
    // We have everything: finish our stream and close; `run` lets the close go out.
    let _ = ch.shutdown().await;
    conn.close(close::DONE.into(), b"done");
    Ok(Completed { target, addr, agent_id: presented, our_id: identity.id, method, hello, rtt, report, verification })
}

/// A protocol error as `wrap` names it, unless the connection itself was lost: then
/// [`PeerError::Connection`], whose advice fits.
fn protocol_error(
    addr: SocketAddr,
    source: HandshakeError,
    wrap: impl FnOnce(HandshakeError) -> PeerError,
) -> PeerError {
    use lanreach_proto::channel::ChannelError;
    match source {
        HandshakeError::Channel(ChannelError::Io(e)) => match e.downcast::<quinn::ReadError>() {
            Ok(quinn::ReadError::ConnectionLost(source)) => PeerError::Connection { addr, source },
            Ok(other) => wrap(ChannelError::Io(std::io::Error::other(other)).into()),
            Err(e) => wrap(ChannelError::Io(e).into()),
        },
        source => wrap(source),
    }
}

/// After a refusal: finish our stream and read until the agent finishes its own, so
/// that a refusal either side sent is delivered before the connection closes.
async fn abort<R, W>(ch: &mut Channel<R, W>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let _ = timeout(REJECT_LINGER, async {
        let _ = ch.shutdown().await;
        while ch.recv().await.is_ok() {}
    })
    .await;
}
