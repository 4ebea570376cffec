//! The control channel: QUIC endpoints, one task per peer connection, each driving the
//! shared handshake from `lanreach_proto` under deadlines.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lanreach_proto::KeyId;
use lanreach_proto::addr::canonical;
use lanreach_proto::assemble::{ReportParts, assemble};
use lanreach_proto::channel::Channel;
use lanreach_proto::code::{CodeBook, CodeChange, PairingCode};
use lanreach_proto::conversation;
use lanreach_proto::defaults::{
    AGENT_HANDSHAKE_TIMEOUT as HANDSHAKE_TIMEOUT, AGENT_STEP_TIMEOUT as STEP_TIMEOUT, REJECT_LINGER, RESULTS_TIMEOUT,
    SHUTDOWN_GRACE, close,
};
use lanreach_proto::endpoint::identity::{Identity, IdentityError};
use lanreach_proto::endpoint::interfaces::{self, InterfaceAddress};
use lanreach_proto::endpoint::quic::{self, QuicError};
use lanreach_proto::endpoint::store::StateFile;
use lanreach_proto::endpoint::store::StoreError;
use lanreach_proto::endpoint::{host_name, os_description};
use lanreach_proto::handshake::{self, AuthMethod, HandshakeError};
use lanreach_proto::msg::{Hello, Message, RejectCode, ReportJson};
use lanreach_proto::report::{Mode, Report};
use lanreach_proto::sync::lock;
use lanreach_proto::text::{error_chain, printable};
use rand::SeedableRng;
use rand::rngs::{OsRng, StdRng};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout, timeout_at};

use crate::cli::Config;
use crate::inside::{self, PeerFacts};
use crate::listeners::{ListenError, Listeners};
use crate::trust::TrustedPeers;

/// Connections served at once (authenticating or in a session); more are refused.
pub const MAX_CONNECTIONS: usize = 128;

/// Why the agent cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The identity could not be loaded or created.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The trusted-peers file is unreadable.
    #[error(transparent)]
    Trust(#[from] StoreError),
    /// TLS/QUIC set-up failed.
    #[error(transparent)]
    Quic(#[from] QuicError),
    /// Another program holds the control port.
    #[error(
        "UDP port {port} is already in use on {addr} (another lanreach-agent?); stop that program or \
         choose another port with --control {hint}"
    )]
    PortInUse {
        /// The address.
        addr: SocketAddr,
        /// Its port.
        port: u16,
        /// A suggested `--control` value.
        hint: SocketAddr,
    },
    /// The test listeners could not be opened.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The OS random number generator failed.
    #[error("the system random number generator failed")]
    Entropy(#[source] rand::Error),
    /// Not one control address could be bound.
    #[error("could not open the control channel on any address")]
    NoEndpoint,
}

/// What happens on the control channel, for the terminal and for tests.
#[derive(Debug)]
pub enum Event {
    /// The pairing code was replaced.
    CodeChanged(CodeChange),
    /// A peer authenticated.
    PeerAuthenticated {
        /// Its address as seen here.
        from: SocketAddr,
        /// Its name (sanitised).
        name: String,
        /// Its key ID.
        id: KeyId,
        /// Paired now or pinned before.
        method: AuthMethod,
        /// Six digits both sides show, derived from this connection.
        verification: String,
    },
    /// The peer's Hello arrived.
    PeerHello {
        /// Its address as seen here.
        from: SocketAddr,
        /// What it said.
        hello: Hello,
    },
    /// A peer's report is ready.
    PeerReport {
        /// Its address as seen here.
        from: SocketAddr,
        /// The report.
        report: Box<Report>,
    },
    /// The session ended normally.
    PeerFinished {
        /// Its address as seen here.
        from: SocketAddr,
        /// Its name (sanitised).
        name: String,
        /// QUIC's smoothed round-trip time.
        rtt: Duration,
        /// Pings answered.
        pings: u32,
    },
    /// The session failed.
    PeerFailed {
        /// Its address as seen here.
        from: SocketAddr,
        /// Why.
        error: SessionError,
        /// Failed attempts on the live code after this one.
        failures: u32,
    },
    /// The trusted-peers file could not be read or written.
    TrustFileError(StoreError),
}

/// Why one peer's session failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// A step did not finish in time.
    #[error("timed out during {0}")]
    Timeout(&'static str),
    /// The QUIC connection failed or was closed.
    #[error("connection lost")]
    Connection(#[from] quinn::ConnectionError),
    /// The handshake failed.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The peer's certificate or the TLS session is unusable.
    #[error(transparent)]
    Quic(#[from] QuicError),
}

struct Shared {
    identity: Identity,
    name: String,
    state_dir: PathBuf,
    codes: Mutex<CodeBook>,
    listeners: Listeners,
    checks: inside::Checks,
    control_ports: Vec<u16>,
    /// Serialises read-modify-write of the trust file. The file is read on every
    /// connection, so `lanreach-agent peers remove` takes effect on a running agent.
    trust_file: Mutex<()>,
    events: UnboundedSender<Event>,
}

impl Shared {
    fn emit(&self, event: Event) {
        // The receiver is gone only when the agent is shutting down.
        let _ = self.events.send(event);
    }

    fn is_trusted(&self, id: &KeyId) -> bool {
        let _guard = lock(&self.trust_file);
        match TrustedPeers::load(&self.state_dir) {
            Ok(peers) => peers.contains(id),
            Err(e) => {
                self.emit(Event::TrustFileError(e));
                false
            }
        }
    }

    fn trust(&self, id: KeyId, name: &str, from: SocketAddr) {
        let _guard = lock(&self.trust_file);
        let result = TrustedPeers::load(&self.state_dir).and_then(|mut peers| {
            peers.add(id, name, from);
            peers.save(&self.state_dir)
        });
        if let Err(e) = result {
            self.emit(Event::TrustFileError(e));
        }
    }

    /// lanreach's own ports (test listeners and the control channel), left out of
    /// `--exposed`.
    fn own_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self.listeners.specs().iter().map(|s| s.bind.port()).collect();
        ports.extend(self.control_ports.iter().copied());
        ports
    }

    fn hello(&self) -> Hello {
        let addresses = interfaces::list().unwrap_or_default();
        Hello {
            name: self.name.clone(),
            os: os_description(),
            software: format!("lanreach-agent {}", env!("CARGO_PKG_VERSION")),
            addresses: interfaces::hello_addresses(&addresses),
        }
    }
}

/// A bound agent, ready to serve.
pub struct Agent {
    endpoints: Vec<quinn::Endpoint>,
    shared: Arc<Shared>,
}

impl Agent {
    /// Loads the identity and trust file and binds the control channel.
    /// Non-fatal trouble (an IPv6 wildcard on a host without IPv6) is logged.
    pub fn bind(config: &Config, events: UnboundedSender<Event>) -> Result<Agent, AgentError> {
        let (identity, _created) = Identity::load_or_create(&config.state_dir, &host_name())?;
        // Fail at start-up, not at the first peer, when the trust file is damaged.
        TrustedPeers::load(&config.state_dir)?;
        let server = quic::server_config(&identity)?;
        let mut endpoints = Vec::new();
        for &addr in &config.control {
            let socket = match quic::udp_socket(addr) {
                Ok(s) => s,
                Err(QuicError::Socket { source, .. }) if source.kind() == std::io::ErrorKind::AddrInUse => {
                    let hint = SocketAddr::new(addr.ip(), addr.port().wrapping_add(1).max(1));
                    return Err(AgentError::PortInUse { addr, port: addr.port(), hint });
                }
                Err(e) if !config.control_explicit && addr.is_ipv6() => {
                    tracing::warn!("no IPv6 control channel: {}", error_chain(&e));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let endpoint =
                quic::endpoint(socket, Some(server.clone())).map_err(|source| QuicError::Socket { addr, source })?;
            endpoints.push(endpoint);
        }
        if endpoints.is_empty() {
            return Err(AgentError::NoEndpoint);
        }
        let mut rng = StdRng::from_rng(OsRng).map_err(AgentError::Entropy)?;
        let first = config.code.clone().unwrap_or_else(|| PairingCode::random(&mut rng));
        let listeners = Listeners::open(&interfaces::list().unwrap_or_default(), config.ports)?;
        let shared = Shared {
            identity,
            name: config.name.clone(),
            state_dir: config.state_dir.clone(),
            codes: Mutex::new(CodeBook::new(first, rng)),
            listeners,
            checks: inside::Checks { ports: config.check.clone(), exposed: config.exposed },
            control_ports: endpoints.iter().filter_map(|e| e.local_addr().ok()).map(|a| a.port()).collect(),
            trust_file: Mutex::new(()),
            events,
        };
        Ok(Agent { endpoints, shared: Arc::new(shared) })
    }

    /// This agent's key ID.
    pub fn id(&self) -> KeyId {
        self.shared.identity.id
    }

    /// The name shown to peers.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The bound control addresses.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.endpoints.iter().filter_map(|e| e.local_addr().ok()).collect()
    }

    /// The live pairing code.
    pub fn code(&self) -> PairingCode {
        lock(&self.shared.codes).current().clone()
    }

    /// Serves peers until `shutdown` completes, then closes every connection.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let mut tasks = JoinSet::new();
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        for endpoint in &self.endpoints {
            let endpoint = endpoint.clone();
            let shared = self.shared.clone();
            let slots = slots.clone();
            tasks.spawn(async move {
                let mut sessions = JoinSet::new();
                while let Some(incoming) = endpoint.accept().await {
                    // Connections that have not finished yet cost little, but not nothing:
                    // past the cap, new ones are refused at once.
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        incoming.refuse();
                        continue;
                    };
                    let shared = shared.clone();
                    sessions.spawn(async move {
                        handle(shared, incoming).await;
                        drop(slot);
                    });
                    // Reap finished sessions so the set does not grow without bound.
                    while sessions.try_join_next().is_some() {}
                }
                sessions.shutdown().await;
            });
        }
        shutdown.await;
        for endpoint in &self.endpoints {
            endpoint.close(close::SHUTDOWN.into(), b"agent shutting down");
        }
        let _ = timeout(SHUTDOWN_GRACE, async {
            for endpoint in &self.endpoints {
                endpoint.wait_idle().await;
            }
        })
        .await;
        tasks.shutdown().await;
    }
}

async fn handle(shared: Arc<Shared>, incoming: quinn::Incoming) {
    let from = canonical(incoming.remote_address());
    if let Err(error) = session(&shared, incoming).await {
        let failures = lock(&shared.codes).failures();
        shared.emit(Event::PeerFailed { from, error, failures });
    }
    let changes = lock(&shared.codes).take_changes();
    for change in changes {
        shared.emit(Event::CodeChanged(change));
    }
}

async fn session(shared: &Shared, incoming: quinn::Incoming) -> Result<(), SessionError> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let conn = timeout_at(deadline, incoming).await.map_err(|_| SessionError::Timeout("the QUIC handshake"))??;
    let from = canonical(conn.remote_address());
    let peer_id = quic::remote_key_id(&conn)?;
    let binding = quic::binding(&conn, shared.identity.id, peer_id)?;
    let (send, recv) =
        timeout_at(deadline, conn.accept_bi()).await.map_err(|_| SessionError::Timeout("authentication"))??;
    let mut ch = Channel::new(recv, send);
    let trusted = shared.is_trusted(&peer_id);
    let auth = timeout_at(deadline, handshake::agent_handshake(&mut ch, &shared.codes, trusted, &binding, &mut OsRng))
        .await
        .map_err(|_| SessionError::Timeout("authentication"));
    let accepted = match auth {
        Ok(Ok(accepted)) => accepted,
        Ok(Err(e)) => {
            abort(&conn, &mut ch).await;
            return Err(e.into());
        }
        Err(e) => {
            conn.close(close::REFUSED.into(), b"timeout");
            return Err(e);
        }
    };
    let name = printable(&accepted.name, 64);
    if accepted.method == AuthMethod::Paired {
        shared.trust(peer_id, &name, from);
    }
    let verification = lanreach_proto::pairing::verification(&binding);
    shared.emit(Event::PeerAuthenticated {
        from,
        name: name.clone(),
        id: peer_id,
        method: accepted.method,
        verification,
    });

    let result = probe_session(shared, &conn, &mut ch, from, peer_id, &name).await;
    match result {
        Ok((report, pings)) => {
            // The peer closes once it has the report; wait for that (briefly) so that
            // `--once` cannot end the agent while the report is still in flight.
            let _ = ch.shutdown().await;
            let _ = timeout(REJECT_LINGER, conn.closed()).await;
            let rtt = conn.rtt();
            conn.close(close::DONE.into(), b"done");
            shared.emit(Event::PeerReport { from, report: Box::new(report) });
            shared.emit(Event::PeerFinished { from, name, rtt, pings });
            Ok(())
        }
        Err(e) => {
            if !matches!(e, SessionError::Timeout(_)) {
                abort(&conn, &mut ch).await;
            }
            conn.close(close::REFUSED.into(), b"failed");
            Err(e)
        }
    }
}

/// After authentication: Hello, plan, pings, results, report.
async fn probe_session<R, W>(
    shared: &Shared,
    conn: &quinn::Connection,
    ch: &mut Channel<R, W>,
    from: SocketAddr,
    peer_id: KeyId,
    name: &str,
) -> Result<(Report, u32), SessionError>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let step = |what| move |_| SessionError::Timeout(what);
    let interfaces = interfaces::list().unwrap_or_default();
    let hello =
        timeout(STEP_TIMEOUT, conversation::hello_as_agent(ch, shared.hello())).await.map_err(step("Hello"))??;
    let addresses: Vec<std::net::IpAddr> = hello.addresses.iter().map(|a| a.ip).collect();
    shared.emit(Event::PeerHello { from, hello });

    let arrived_at = conn.local_ip().map(|ip| ip.to_canonical());
    let targets = inside::plan_targets(&interfaces, arrived_at, &addresses);
    let ports = shared.checks.ports_to_probe(&shared.own_ports()).await;
    let plan = inside::new_plan(shared.listeners.specs(), &targets, from.ip().is_loopback(), &ports);
    if !shared.listeners.register(plan.session, plan.key) {
        conversation::reject(ch, RejectCode::Busy, "too many peers are probing at once; try again shortly").await;
        return Err(HandshakeError::Busy.into());
    }
    let watch = crate::conntrack::watch(inside::conntrack_ports(&plan));
    let outcome = async {
        ch.send(&Message::Plan(plan.clone())).await.map_err(HandshakeError::from)?;
        // Probing takes a while; the whole run is bounded by the plan's own deadlines.
        let (results, pings) =
            timeout(RESULTS_TIMEOUT, conversation::await_results(ch, &plan)).await.map_err(step("probing"))??;
        Ok::<_, SessionError>((results, pings))
    }
    .await;
    let hits = shared.listeners.finish(&plan.session);
    let conntrack = watch.finish().await;
    let (results, pings) = outcome?;

    let peer = PeerFacts { name: name.to_owned(), id: peer_id, from, arrived_at, addresses };
    let agent = inside::agent_info(&shared.name, shared.identity.id, &interfaces);
    let services = inside::service_inputs(&ports, &plan, &results).await;
    let report = assemble(ReportParts {
        mode: Mode::Peer,
        agent,
        peer: inside::peer_info(&peer, &interfaces),
        listeners: shared.listeners.specs(),
        plan: &plan,
        results: &results,
        hits: &hits,
        services: &services,
        conntrack: &conntrack,
        wsl2: inside::wsl2(),
    });
    ch.send(&Message::Report(ReportJson { json: report.to_json_compact() })).await.map_err(HandshakeError::from)?;
    Ok((report, pings))
}

/// Ends a refused connection: finish our stream so the refusal is delivered, give the
/// peer a moment to read it and close, then close.
async fn abort<R, W>(conn: &quinn::Connection, ch: &mut Channel<R, W>)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let _ = timeout(REJECT_LINGER, ch.shutdown()).await;
    let _ = timeout(REJECT_LINGER, conn.closed()).await;
    conn.close(close::REFUSED.into(), b"refused");
}

/// Interface addresses where a LAN peer could reach a control channel bound to `bound`.
pub fn reachable_addresses(bound: &[SocketAddr], interfaces: &[InterfaceAddress]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for b in bound {
        if b.ip().is_unspecified() {
            out.extend(
                interfaces
                    .iter()
                    .filter(|i| i.kind.lan_facing() && i.ip.is_ipv4() == b.is_ipv4())
                    .map(|i| SocketAddr::new(i.ip, b.port())),
            );
        } else {
            out.push(*b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanreach_proto::addr::InterfaceKind;

    fn iface(name: &str, ip: &str, kind: InterfaceKind) -> InterfaceAddress {
        InterfaceAddress { interface: name.into(), ip: ip.parse().expect("ip"), index: None, kind, prefix: None }
    }

    #[test]
    fn wildcard_binds_offer_lan_and_vpn_addresses_of_their_family() {
        let ifaces = [
            iface("lo", "127.0.0.1", InterfaceKind::Loopback),
            iface("eth0", "198.51.100.7", InterfaceKind::Lan),
            iface("eth0", "2001:db8::7", InterfaceKind::Lan),
            iface("eth0", "fe80::7", InterfaceKind::LinkLocal),
            iface("docker0", "203.0.113.1", InterfaceKind::Virtual),
            iface("wg0", "203.0.113.9", InterfaceKind::Vpn),
        ];
        let v4: SocketAddr = "0.0.0.0:47800".parse().expect("addr");
        let v6: SocketAddr = "[::]:47800".parse().expect("addr");
        let got: Vec<String> = reachable_addresses(&[v4, v6], &ifaces).iter().map(|a| a.to_string()).collect();
        assert_eq!(got, ["198.51.100.7:47800", "203.0.113.9:47800", "[2001:db8::7]:47800"]);
        let specific: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        assert_eq!(reachable_addresses(&[specific], &ifaces), vec![specific]);
    }
}
