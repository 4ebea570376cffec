//! Reaching the agent: its addresses resolved (mDNS for `NAME.local` where the system
//! cannot), QUIC handshakes raced to them under a deadline, key pins, the handshake,
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
    BROWSE_TIMEOUT, CLOSE_GRACE, CONCURRENCY, MAX_LINK_ADDRESSES, PEER_HANDSHAKE_TIMEOUT as HANDSHAKE_TIMEOUT,
    PEER_STEP_TIMEOUT as STEP_TIMEOUT, PINGS, RACE_STAGGER, REJECT_LINGER, REPORT_TIMEOUT, WATCH_INTERVAL, close,
};
use lanreach_proto::endpoint::engine::{self, EngineConfig, Witness};
use lanreach_proto::endpoint::identity::{Identity, IdentityError};
use lanreach_proto::endpoint::quic::{self, QuicError};
use lanreach_proto::endpoint::store::StateFile;
use lanreach_proto::endpoint::store::StoreError;
use lanreach_proto::endpoint::{discovery, interfaces, os_description, term};
use lanreach_proto::handshake::{self, AuthMethod, HandshakeError};
use lanreach_proto::icmp::IcmpWitness;
use lanreach_proto::msg::{Hello, Message, RejectCode};
use lanreach_proto::plan;
use lanreach_proto::report::Report;
use lanreach_proto::text::printable;
use rand::rngs::OsRng;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, timeout, timeout_at};

use crate::known::KnownAgents;
use crate::nopath;
use crate::race;
use crate::target::Target;
use lanreach_proto::nopath::AgentAddress;

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
    /// One handshake met silence (inside the race; what the user reads is
    /// [`PeerError::NoPath`]).
    #[error("no answer from a lanreach agent at {} within {}", list(addrs), secs(*.waited))]
    NoAnswer {
        /// The addresses dialled, most likely reached first (never empty).
        addrs: Vec<SocketAddr>,
        /// How long we waited.
        waited: Duration,
        /// Addresses of the agent this device has no route to (another network).
        no_route: Vec<SocketAddr>,
    },
    /// Nothing answered, and this device's own facts name why.
    #[error("cannot reach the agent. {}", cause.message)]
    NoPath {
        /// The cause, with its evidence and fix.
        cause: Box<lanreach_proto::nopath::Cause>,
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

fn list(addrs: &[SocketAddr]) -> String {
    let all: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    match all.as_slice() {
        [] => "no address".to_owned(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} (nor at {})", rest.join(", ")),
    }
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

/// Resolves `target` to its socket addresses: an IP literal as it is, a name through
/// the system's resolver, and a `NAME.local` the system cannot resolve (Android cannot)
/// through lanreach's own mDNS.
pub async fn resolve(target: &Target) -> Result<Vec<SocketAddr>, PeerError> {
    if let Ok(ip) = target.host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, target.port)]);
    }
    let resolve_error = |source| PeerError::Resolve { target: target.clone(), source };
    let system = tokio::net::lookup_host((target.host.as_str(), target.port)).await.map(|a| a.collect::<Vec<_>>());
    let error = match system {
        Ok(addrs) if !addrs.is_empty() => return Ok(addrs),
        Ok(_) => ResolveError::NoAddress,
        Err(e) => ResolveError::Lookup(e),
    };
    if target.host.trim_end_matches('.').ends_with(".local") {
        let found = discovery::resolve_host(&target.host, BROWSE_TIMEOUT).await.unwrap_or_default();
        if !found.is_empty() {
            return Ok(found.into_iter().map(|ip| SocketAddr::new(ip, target.port)).collect());
        }
    }
    Err(resolve_error(error))
}

/// One agent and where to reach it.
#[derive(Debug, Clone)]
pub struct Dial {
    /// Its addresses (IP literals or names), most likely reached first: the handshakes
    /// race ([`crate::race`]).
    pub targets: Vec<Target>,
    /// The short key ID (no dashes) it must present, from a pairing link, mDNS or a pin.
    pub expect_id: Option<String>,
    /// The prefix length of each agent address's network, where a link named it: what
    /// tells "another network" from "the same network" when nothing answers.
    pub prefixes: Vec<(IpAddr, u8)>,
    /// Whether the agent serves its browser page (the link carried a token): a refused
    /// TCP connect at the control port number then means it is not running.
    pub page_served: bool,
}

impl Dial {
    /// One address, no expected key.
    pub fn at(target: Target) -> Self {
        Dial { targets: vec![target], expect_id: None, prefixes: Vec::new(), page_served: false }
    }

    /// The addresses and facts of a pairing link.
    pub fn of_link(link: &lanreach_proto::link::PairingLink) -> Self {
        let prefixes =
            link.addresses.iter().filter_map(|a| Some((a.host.parse::<IpAddr>().ok()?, a.prefix?))).collect();
        Dial { targets: link.targets(), expect_id: link.id.clone(), prefixes, page_served: link.token.is_some() }
    }

    fn agent_addresses(&self, addrs: impl IntoIterator<Item = SocketAddr>) -> Vec<AgentAddress> {
        addrs
            .into_iter()
            .map(|addr| AgentAddress {
                addr,
                prefix: self
                    .prefixes
                    .iter()
                    .find(|(ip, _)| ip.to_canonical() == addr.ip().to_canonical())
                    .map(|(_, p)| *p),
            })
            .collect()
    }
}

/// Settings of one session.
#[derive(Clone)]
pub struct Options<'a> {
    /// The agent.
    pub dial: &'a Dial,
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

/// Connects (racing the agent's addresses), authenticates (pairing or pins), exchanges
/// Hellos, measures the RTT, runs the probes and receives the report.
pub async fn run(s: &Options<'_>) -> Result<Completed, PeerError> {
    let started = Instant::now();
    let deadline = started + s.connect_timeout;
    let (candidates, no_route) = candidates(s.dial, deadline).await?;
    tracing::debug!("timing: peer start / address resolution: {:.1} ms", started.elapsed().as_secs_f64() * 1000.0);
    let (identity, _) = Identity::load_or_create(s.state_dir, s.name)?;
    let mut known = KnownAgents::load(s.state_dir)?;
    let client = quic::client_config(&identity)?;
    let mut endpoints = Endpoints::default();
    let mut dialable = Vec::new();
    for (target, addr) in candidates {
        dialable.push((target, addr, endpoints.for_addr(addr)?));
    }
    // Every agent address, the routable ones first: what the no-path facts are about.
    let agent = s.dial.agent_addresses(dialable.iter().map(|(_, a, _)| *a).chain(no_route.iter().copied()));
    if dialable.is_empty() {
        let cause = nopath::final_cause(&agent, s.dial.page_served, &nopath::Latest::default(), Duration::ZERO);
        return Err(PeerError::NoPath { cause: Box::new(cause) });
    }
    // The user may stop the peer at any time from here on; the agent is told at once.
    let mut stop = term::Stop::install();
    // While the handshakes race, this device's own facts may name why nothing answers.
    let latest = nopath::Latest::default();
    // Its grace counts from the first handshake, not from name resolution.
    let watching = nopath::watch(agent.clone(), s.dial.page_served, Instant::now(), latest.clone());
    let won = tokio::select! {
        biased;
        _ = stop.recv() => return Err(PeerError::Stopped),
        won = timeout_at(deadline, race_to(&dialable, &client, s.dial, &known)) => won,
        cause = watching => {
            endpoints.close_grace().await;
            return Err(PeerError::NoPath { cause: Box::new(cause) });
        }
    };
    let no_answer = || {
        let cause = nopath::final_cause(&agent, s.dial.page_served, &latest, s.connect_timeout);
        PeerError::NoPath { cause: Box::new(cause) }
    };
    let (target, addr, conn) = match won {
        Err(_) => {
            endpoints.close_grace().await;
            return Err(no_answer());
        }
        Ok(Err(e)) => {
            endpoints.close_grace().await;
            return Err(e.unwrap_or_else(no_answer));
        }
        Ok(Ok(won)) => won,
    };
    tracing::debug!("timing: peer start / connected (QUIC): {:.1} ms", started.elapsed().as_secs_f64() * 1000.0);
    // The session, unless the user stops this peer (the agent is told at once) or the
    // agent closes the connection first (noticed at once, also in the middle of the
    // probe run, which reads nothing from the agent).
    let result = tokio::select! {
        biased;
        result = authenticated_session(s, &target, &identity, &mut known, &conn, addr) => result,
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
    endpoints.close_grace().await;
    result
}

/// The agent's addresses to race, each with the target it came from (at most
/// [`MAX_LINK_ADDRESSES`], each once), and those this device has no route to.
async fn candidates(dial: &Dial, deadline: Instant) -> Result<(Vec<(Target, SocketAddr)>, Vec<SocketAddr>), PeerError> {
    let mut found: Vec<(Target, SocketAddr)> = Vec::new();
    let mut no_route = Vec::new();
    let mut first_error = None;
    for target in &dial.targets {
        let addrs = match timeout_at(deadline, resolve(target)).await {
            Ok(Ok(addrs)) => addrs,
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
                continue;
            }
            Err(_) => {
                first_error
                    .get_or_insert(PeerError::Resolve { target: target.clone(), source: ResolveError::TimedOut });
                continue;
            }
        };
        for addr in addrs {
            let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
            if found.len() >= MAX_LINK_ADDRESSES || found.iter().any(|(_, a)| *a == addr) || no_route.contains(&addr) {
                continue;
            }
            if routable(addr) { found.push((target.clone(), addr)) } else { no_route.push(addr) }
        }
    }
    match first_error {
        Some(e) if found.is_empty() && no_route.is_empty() => Err(e),
        _ => Ok((found, no_route)),
    }
}

/// Whether this device has a route to `addr` (connecting a UDP socket sends nothing).
/// An address of another network is then left out of the race instead of failing in
/// the kernel with a warning.
fn routable(addr: SocketAddr) -> bool {
    let local: SocketAddr =
        if addr.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
    std::net::UdpSocket::bind(local).and_then(|s| s.connect(addr)).is_ok()
}

/// One QUIC endpoint per address family, opened when first needed.
#[derive(Default)]
struct Endpoints {
    v4: Option<quinn::Endpoint>,
    v6: Option<quinn::Endpoint>,
}

impl Endpoints {
    fn for_addr(&mut self, addr: SocketAddr) -> Result<quinn::Endpoint, PeerError> {
        let (slot, local): (&mut Option<quinn::Endpoint>, SocketAddr) = if addr.is_ipv4() {
            (&mut self.v4, (Ipv4Addr::UNSPECIFIED, 0).into())
        } else {
            (&mut self.v6, (Ipv6Addr::UNSPECIFIED, 0).into())
        };
        if let Some(endpoint) = slot {
            return Ok(endpoint.clone());
        }
        let endpoint = quic::endpoint(quic::udp_socket(local)?, None)
            .map_err(|source| QuicError::Socket { addr: local, source })?;
        *slot = Some(endpoint.clone());
        Ok(endpoint)
    }

    /// Gives closes in flight a moment to leave ([`CLOSE_GRACE`]).
    async fn close_grace(&self) {
        for endpoint in self.v4.iter().chain(self.v6.iter()) {
            let _ = timeout(CLOSE_GRACE, endpoint.wait_idle()).await;
        }
    }
}

/// The race of QUIC handshakes to `dialable` ([`crate::race`]). An attempt wins when the
/// agent presents the key the link or the pin names; the others are closed with
/// [`close::UNUSED`] as they complete, before anything is sent on them. Without a
/// winner, the most telling error (`None`: nothing answered).
async fn race_to(
    dialable: &[(Target, SocketAddr, quinn::Endpoint)],
    client: &quinn::ClientConfig,
    dial: &Dial,
    known: &KnownAgents,
) -> Result<(Target, SocketAddr, quinn::Connection), Option<PeerError>> {
    let attempt = |i: usize| {
        let (_, addr, endpoint) = &dialable[i];
        let addr = *addr;
        let connecting = endpoint.connect_with(client.clone(), addr, quic::SERVER_NAME);
        async move {
            let connecting = connecting.map_err(|source| PeerError::Connect { addr, source })?;
            connecting.await.map_err(|source| match source {
                quinn::ConnectionError::TimedOut => {
                    PeerError::NoAnswer { addrs: vec![addr], waited: Duration::ZERO, no_route: vec![] }
                }
                source => PeerError::Connection { addr, source },
            })
        }
    };
    let accept = |i: usize, conn: &quinn::Connection| {
        let target = dialable[i].0.clone();
        let presented = quic::remote_key_id(conn)?;
        if let Some(expected) = dial.expect_id.as_deref().filter(|want| presented.short().replace('-', "") != *want) {
            return Err(PeerError::WrongAgent { target, expected: expected.to_owned(), presented });
        }
        if let Some(pin) = known.get(&target).filter(|pin| pin.id != presented) {
            return Err(PeerError::KeyChanged { target, pinned: pin.id, presented });
        }
        Ok(())
    };
    let discard = |conn: quinn::Connection| {
        tracing::info!("also reached the agent at {}: closed unused", conn.remote_address());
        conn.close(close::UNUSED.into(), b"unused");
    };
    match race::race(dialable.len(), RACE_STAGGER, attempt, accept, discard).await {
        Ok(won) => {
            let (target, addr, _) = &dialable[won.index];
            Ok((target.clone(), *addr, won.value))
        }
        Err(lost) => {
            // The agent's own refusal or a wrong key says more than silence.
            let rank = |e: &PeerError| match e {
                PeerError::KeyChanged { .. } => 0,
                PeerError::WrongAgent { .. } => 1,
                PeerError::NoAnswer { .. } => 3,
                _ => 2,
            };
            Err(lost.into_iter().map(|l| l.error).min_by_key(rank).filter(|e| rank(e) < 3))
        }
    }
}

async fn authenticated_session(
    s: &Options<'_>,
    target: &Target,
    identity: &Identity,
    known: &mut KnownAgents,
    conn: &quinn::Connection,
    addr: SocketAddr,
) -> Result<Completed, PeerError> {
    // The race checked the key against the link and the pins.
    let mut phases = lanreach_proto::endpoint::term::Phases::start("peer session");
    let target = target.clone();
    let presented = quic::remote_key_id(conn)?;
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
    phases.mark("authentication (pairing or pins)");
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

    phases.mark("Hello exchange");
    let plan = timeout(STEP_TIMEOUT, conversation::recv_plan(&mut ch))
        .await
        .map_err(step("waiting for the probe plan"))?
        .map_err(failed("receiving the probe plan"))?;
    phases.mark("waiting for the plan (the agent's planning)");
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
    phases.mark("round-trip pings");
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
    let witness = AgentWitness::new(&mut ch, addr, &declared);
    let results = engine::run_with_progress(&plan, config, done, &[addr.ip()], &witness).await;
    witness.finish()?;
    phases.mark("probing");
    ch.send(&Message::Results(results)).await.map_err(|e| failed("sending the results")(e.into()))?;
    let json = timeout(REPORT_TIMEOUT, conversation::recv_report(&mut ch))
        .await
        .map_err(step("waiting for the report"))?
        .map_err(failed("receiving the report"))?;
    phases.mark("results sent, report received (the agent's inside facts and assembly)");
    let report: Report = serde_json::from_str(&json).map_err(|source| PeerError::BadReport { addr, source })?;
    phases.mark("report parsed");
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
            let witness = AgentWitness::new(&mut ch, addr, &declared);
            let results = engine::run(&plan, config, &[addr.ip()], &witness).await;
            witness.finish()?;
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

/// The agent as the run's ICMP witness, asked over the control channel within
/// [`STEP_TIMEOUT`] like every other step. A question that fails or times out leaves the
/// channel mid-frame, so nothing more is asked and the session ends with that error
/// after the run ([`AgentWitness::finish`]). It speaks only for the addresses the agent
/// declared as its own: one the peer dialled that forwards to it (a port mapping) is
/// another namespace's, whose errors the agent does not count.
struct AgentWitness<'a, R, W> {
    ch: tokio::sync::Mutex<&'a mut Channel<R, W>>,
    addr: SocketAddr,
    declared: Vec<IpAddr>,
    failed: std::sync::Mutex<Option<PeerError>>,
}

/// The step a failed witness question names.
const WITNESS_STEP: &str = "the probe run (asking for its ICMP error counts)";

impl<'a, R, W> AgentWitness<'a, R, W> {
    fn new(ch: &'a mut Channel<R, W>, addr: SocketAddr, declared: &[IpAddr]) -> Self {
        let declared = declared.iter().map(|ip| ip.to_canonical()).collect();
        AgentWitness { ch: tokio::sync::Mutex::new(ch), addr, declared, failed: std::sync::Mutex::new(None) }
    }

    /// The session's error if a question timed out or failed.
    fn finish(self) -> Result<(), PeerError> {
        self.failed.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner).map_or(Ok(()), Err)
    }
}

impl<R, W> Witness for AgentWitness<'_, R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    async fn ask(&self) -> Option<IcmpWitness> {
        let failed = || self.failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if failed().is_some() {
            return None;
        }
        let mut ch = self.ch.lock().await;
        let addr = self.addr;
        let error = match timeout(STEP_TIMEOUT, conversation::ask_witness(&mut ch)).await {
            Ok(Ok(answer)) => return answer,
            Ok(Err(e)) => protocol_error(addr, e, |source| PeerError::Session { addr, step: WITNESS_STEP, source }),
            Err(_) => PeerError::Timeout { addr, step: WITNESS_STEP },
        };
        *failed() = Some(error);
        None
    }

    fn covers(&self, ip: IpAddr) -> bool {
        self.declared.contains(&ip.to_canonical())
    }
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
