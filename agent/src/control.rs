//! The control channel: QUIC endpoints, one task per peer connection, each driving the
//! shared handshake from `lanreach_proto` under deadlines.
//!
//! Before a connection authenticates it is anybody on the LAN: the `gate` module
//! admits it (or answers with a QUIC Retry, or refuses it), the whole phase ends by
//! `PREAUTH_TIMEOUT`, and a newcomer may take its place when the unauthenticated pool is
//! full. Pinned peers leave that pool as soon as TLS has shown their key; paired ones
//! once the code is confirmed.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lanreach_proto::KeyId;
use lanreach_proto::addr::{Source, canonical};
use lanreach_proto::admission::{NoSession, Refusal};
use lanreach_proto::assemble::{ReportParts, assemble};
use lanreach_proto::channel::Channel;
use lanreach_proto::code::{CodeBook, CodeChange, PairingCode};
use lanreach_proto::conversation;
use lanreach_proto::defaults::{
    AGENT_STEP_TIMEOUT as STEP_TIMEOUT, PAIR_CONFIRM_TIMEOUT, PREAUTH_TIMEOUT, REJECT_LINGER, RESULTS_TIMEOUT,
    SHUTDOWN_GRACE, WATCH_IDLE, WATCH_REFRESH_ROUNDS, close,
};
use lanreach_proto::endpoint::engine::HostWitness;
use lanreach_proto::endpoint::identity::{Identity, IdentityError};
use lanreach_proto::endpoint::interfaces::{self, InterfaceAddress};
use lanreach_proto::endpoint::quic::{self, QuicError};
use lanreach_proto::endpoint::store::StateFile;
use lanreach_proto::endpoint::store::StoreError;
use lanreach_proto::endpoint::{host_name, os_description};
use lanreach_proto::firewall::Firewall;
use lanreach_proto::handshake::{self, AuthMethod, HandshakeError, PeerAccepted, Requester, Started};
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
use crate::gate::{Entry, Gate, Pass};
use crate::inside::{self, PeerFacts};
use crate::listeners::{ListenError, Listeners};
use crate::trust::TrustedPeers;

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
    /// A watching peer's later round: what changed since the round before (nothing
    /// printed when nothing did).
    PeerChanges {
        /// Its address as seen here.
        from: SocketAddr,
        /// Its name.
        name: String,
        /// The round (1 for the first repetition).
        round: u32,
        /// One line per change.
        changes: Vec<String>,
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
        /// It failed after authenticating (a paired or pinned peer), not before.
        authenticated: bool,
    },
    /// A new connection was refused at the door (the unauthenticated pool is full of
    /// connections too young to give up their place).
    Refused {
        /// Its address.
        from: SocketAddr,
        /// Why.
        why: Refusal,
    },
    /// The trusted-peers file could not be read or written.
    TrustFileError(StoreError),
    /// The browser link changed: the last one was used, or expired unused.
    BrowserLink {
        /// The new token.
        token: String,
        /// Why.
        change: crate::web::LinkChange,
    },
    /// A browser started a run.
    BrowserStarted {
        /// Where its requests come from.
        from: SocketAddr,
        /// The browser in a few words (sanitised).
        name: String,
    },
    /// A browser's run ended with its report (sent in [`Event::PeerReport`] before).
    BrowserFinished {
        /// Where its requests come from.
        from: SocketAddr,
        /// The browser in a few words.
        name: String,
    },
    /// A browser's run failed, or (`ended: false`) one of its requests was refused and
    /// the run goes on.
    BrowserFailed {
        /// Where its requests come from.
        from: SocketAddr,
        /// Why, in words.
        error: String,
        /// The run is over.
        ended: bool,
    },
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
    /// The agent answered a pairing attempt and the peer's confirmation did not follow in
    /// time (the attempt counts as failed).
    #[error("no pairing confirmation within {} s", PAIR_CONFIRM_TIMEOUT.as_secs())]
    NoConfirmation,
    /// A newcomer took its place in the unauthenticated pool (it had been pending the
    /// longest).
    #[error("closed to make room for new connections before it authenticated")]
    Evicted,
    /// It authenticated while the pool of sessions was full.
    #[error("too many peers are connected")]
    SessionsFull,
}

impl From<NoSession> for SessionError {
    fn from(e: NoSession) -> Self {
        match e {
            NoSession::Evicted => SessionError::Evicted,
            NoSession::Full => SessionError::SessionsFull,
        }
    }
}

/// What every session of this agent shares: identity, codes, test listeners, the
/// browser page's state.
pub(crate) struct Shared {
    pub(crate) identity: Identity,
    pub(crate) name: String,
    state_dir: PathBuf,
    codes: Mutex<CodeBook>,
    pub(crate) listeners: Listeners,
    pub(crate) checks: inside::Checks,
    control_ports: Vec<u16>,
    /// The browser page's tokens and runs (present also with `--no-web`, unused then).
    pub(crate) browser: crate::browser::BrowserState,
    /// Serialises read-modify-write of the trust file. The file is read on every
    /// connection, so `lanreach-agent peers remove` takes effect on a running agent.
    trust_file: Mutex<()>,
    events: UnboundedSender<Event>,
}

impl Shared {
    pub(crate) fn emit(&self, event: Event) {
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
    pub(crate) fn own_ports(&self) -> Vec<u16> {
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
    /// The browser page's TCP listeners (none with `--no-web`).
    web: Vec<tokio::net::TcpListener>,
    /// Control addresses where the page could not be served, and why.
    web_failed: Vec<(SocketAddr, std::io::Error)>,
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
        // The page: TCP at the control channel's addresses and port numbers.
        let bound: Vec<SocketAddr> = endpoints.iter().filter_map(|e| e.local_addr().ok()).collect();
        let (web, web_failed) = if config.no_web { (Vec::new(), Vec::new()) } else { crate::web::bind(&bound) };
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
            browser: crate::browser::BrowserState::new(),
        };
        Ok(Agent { endpoints, web, web_failed, shared: Arc::new(shared) })
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

    /// The live browser token, when the page is served.
    pub fn browser_token(&self) -> Option<String> {
        (!self.web.is_empty()).then(|| self.shared.browser.token())
    }

    /// Where the browser page is served (TCP).
    pub fn web_addrs(&self) -> Vec<SocketAddr> {
        self.web.iter().filter_map(|l| l.local_addr().ok()).collect()
    }

    /// Control addresses where the page could not be served, and why.
    pub fn web_failures(&self) -> &[(SocketAddr, std::io::Error)] {
        &self.web_failed
    }

    /// Serves peers until `shutdown` completes, then closes every connection.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let mut tasks = JoinSet::new();
        let serving_web = !self.web.is_empty();
        for listener in self.web {
            tasks.spawn(crate::browser::serve(self.shared.clone(), listener));
        }
        if serving_web {
            tasks.spawn(crate::browser::keep(self.shared.clone()));
        }
        let gate = Arc::new(Gate::default());
        for endpoint in &self.endpoints {
            let endpoint = endpoint.clone();
            let shared = self.shared.clone();
            let gate = gate.clone();
            tasks.spawn(async move {
                let mut sessions = JoinSet::new();
                while let Some(incoming) = endpoint.accept().await {
                    let from = canonical(incoming.remote_address());
                    match gate.arrive(Source::of(from.ip()), incoming.remote_address_validated()) {
                        Entry::Pass(pass) => {
                            sessions.spawn(handle(shared.clone(), incoming, pass));
                        }
                        // Only an unvalidated address gets here, which quinn may always
                        // retry; should it refuse, dropping the connection refuses it.
                        Entry::Retry => drop(incoming.retry()),
                        Entry::Refuse(why) => {
                            incoming.refuse();
                            shared.emit(Event::Refused { from, why });
                        }
                    }
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

async fn handle(shared: Arc<Shared>, incoming: quinn::Incoming, pass: Pass) {
    let from = canonical(incoming.remote_address());
    if let Err(error) = session(&shared, incoming, &pass).await {
        let failures = lock(&shared.codes).failures();
        shared.emit(Event::PeerFailed { from, error, failures, authenticated: pass.is_session() });
    }
    drop(pass);
    let changes = lock(&shared.codes).take_changes();
    for change in changes {
        shared.emit(Event::CodeChanged(change));
    }
}

/// Runs one step before authentication: until `deadline`, and only while the
/// connection keeps its place among the unauthenticated ones.
async fn preauth<T>(
    pass: &Pass,
    deadline: Instant,
    step: &'static str,
    work: impl Future<Output = T>,
) -> Result<T, SessionError> {
    tokio::select! {
        done = timeout_at(deadline, work) => done.map_err(|_| SessionError::Timeout(step)),
        () = pass.evicted() => Err(SessionError::Evicted),
    }
}

/// What a connection closed before authentication is told.
fn close_reason(e: &SessionError) -> &'static [u8] {
    match e {
        SessionError::Evicted => b"busy: too many unauthenticated connections",
        _ => b"authentication took too long",
    }
}

async fn session(shared: &Shared, incoming: quinn::Incoming, pass: &Pass) -> Result<(), SessionError> {
    let deadline = Instant::now() + PREAUTH_TIMEOUT;
    let source = Source::of(incoming.remote_address().ip());
    let connecting = incoming.accept()?;
    // A peer that reached this agent at another address first closes this connection
    // unused, before it sends anything: no attempt was made, nothing to say.
    let conn = match preauth(pass, deadline, "the QUIC handshake", connecting).await? {
        Err(e) if quic::closed_unused(&e) => return Ok(()),
        other => other?,
    };
    let from = canonical(conn.remote_address());
    let peer_id = quic::remote_key_id(&conn)?;
    let binding = quic::binding(&conn, shared.identity.id, peer_id)?;
    let trusted = shared.is_trusted(&peer_id);
    if trusted && let Err(e) = pass.authenticated() {
        // TLS has shown the peer holds a pinned key: it leaves the unauthenticated pool
        // at once, whatever floods it (unless every session place is taken).
        conn.close(close::REFUSED.into(), b"too many peers are connected");
        return Err(e.into());
    }
    let (send, recv) = match preauth(pass, deadline, "authentication", conn.accept_bi()).await {
        // The peer won at another address and closed this one unused: nothing to say.
        Ok(Err(e)) if quic::closed_unused(&e) => return Ok(()),
        Ok(stream) => stream?,
        Err(e) => {
            conn.close(close::REFUSED.into(), close_reason(&e));
            return Err(e);
        }
    };
    let mut ch = Channel::new(recv, send);
    let auth =
        preauth(pass, deadline, "authentication", authenticate(shared, &mut ch, trusted, source, &binding)).await;
    let accepted = match auth.and_then(|a| a) {
        Ok(accepted) => accepted,
        Err(SessionError::Handshake(e)) => {
            // Lingering for the refusal to arrive also ends when a newcomer needs the place.
            let _ = preauth(pass, deadline, "the refusal", abort(&conn, &mut ch)).await;
            conn.close(close::REFUSED.into(), b"refused");
            return Err(e.into());
        }
        Err(e) => {
            conn.close(close::REFUSED.into(), close_reason(&e));
            return Err(e);
        }
    };
    if let Err(e) = pass.authenticated() {
        conversation::reject(&mut ch, RejectCode::Busy, "too many peers are connected; try again shortly").await;
        abort(&conn, &mut ch).await;
        return Err(e.into());
    }
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
    let result = match result {
        Ok((report, pings, peering)) => {
            shared.emit(Event::PeerReport { from, report: Box::new(report.clone()) });
            // The peer ends the conversation once it has the report (so `--once` cannot
            // end the agent while the report is in flight), or, watching, asks again.
            watch(shared, &mut ch, peering, report).await.map(|()| pings)
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(pings) => {
            let _ = ch.shutdown().await;
            let _ = timeout(REJECT_LINGER, conn.closed()).await;
            let rtt = conn.rtt();
            conn.close(close::DONE.into(), b"done");
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

/// The pinned keys, or a pairing attempt whose confirmation must come within
/// `PAIR_CONFIRM_TIMEOUT` of the agent's reply.
async fn authenticate<R, W>(
    shared: &Shared,
    ch: &mut Channel<R, W>,
    trusted: bool,
    source: Source,
    binding: &lanreach_proto::pairing::Binding,
) -> Result<PeerAccepted, SessionError>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let request = match handshake::agent_start(ch, trusted).await? {
        Started::Pinned(accepted) => return Ok(accepted),
        Started::Pair(request) => request,
    };
    let from = Requester { source, now: Instant::now().into_std() };
    let offered = request.offer(ch, &shared.codes, from, binding, &mut OsRng).await?;
    let confirmed =
        timeout(PAIR_CONFIRM_TIMEOUT, offered.confirm(ch)).await.map_err(|_| SessionError::NoConfirmation)?;
    Ok(confirmed?)
}

/// What stays the same from one round of a session to the next.
struct Peering {
    /// The peer: who, from where, its addresses.
    peer: PeerFacts,
    /// This machine's interfaces, re-read every few rounds in watch mode.
    interfaces: Vec<InterfaceAddress>,
    /// Docker's facts, likewise.
    docker: Option<crate::docker::DockerView>,
    /// The firewall's rules, likewise (read when the first round checks ports).
    firewall: Option<Firewall>,
    /// Whether the next round re-reads them.
    refresh: bool,
}

/// After authentication: the Hello exchange, then the first round.
async fn probe_session<R, W>(
    shared: &Shared,
    conn: &quinn::Connection,
    ch: &mut Channel<R, W>,
    from: SocketAddr,
    peer_id: KeyId,
    name: &str,
) -> Result<(Report, u32, Peering), SessionError>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let interfaces = interfaces::list().unwrap_or_default();
    let hello = timeout(STEP_TIMEOUT, conversation::hello_as_agent(ch, shared.hello()))
        .await
        .map_err(|_| SessionError::Timeout("Hello"))??;
    let addresses: Vec<std::net::IpAddr> = hello.addresses.iter().map(|a| a.ip).collect();
    shared.emit(Event::PeerHello { from, hello });
    let arrived_at = conn.local_ip().map(|ip| ip.to_canonical());
    let peer = PeerFacts { name: name.to_owned(), id: peer_id, from, arrived_at, addresses };
    let mut peering = Peering { peer, interfaces, docker: None, firewall: None, refresh: true };
    let (report, pings) = round(shared, ch, &mut peering).await?;
    Ok((report, pings, peering))
}

/// One round: the plan, the pings and results, the inside facts, the report.
async fn round<R, W>(shared: &Shared, ch: &mut Channel<R, W>, p: &mut Peering) -> Result<(Report, u32), SessionError>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let step = |what| move |_| SessionError::Timeout(what);
    let mut phases = lanreach_proto::endpoint::term::Phases::start("agent round");
    let targets = inside::plan_targets(&p.interfaces, p.peer.arrived_at, &p.peer.addresses);
    let ports = shared.checks.ports_to_probe(&shared.own_ports()).await;
    phases.mark("ports to probe (socket inventory with --exposed)");
    let plan = inside::new_plan(shared.listeners.specs(), &targets, p.peer.from.ip().is_loopback(), &ports);
    phases.mark("plan");
    if !shared.listeners.register(plan.session, plan.key) {
        conversation::reject(ch, RejectCode::Busy, "too many peers are probing at once; try again shortly").await;
        return Err(HandshakeError::Busy.into());
    }
    let watch = crate::conntrack::watch(inside::conntrack_ports(&plan));
    let witness = HostWitness::start();
    let outcome = async {
        ch.send(&Message::Plan(plan.clone())).await.map_err(HandshakeError::from)?;
        // Probing takes a while; the whole run is bounded by the plan's own deadlines.
        let results = conversation::await_results(ch, &plan, || witness.since_start());
        let (results, pings) = timeout(RESULTS_TIMEOUT, results).await.map_err(step("probing"))??;
        Ok::<_, SessionError>((results, pings))
    }
    .await;
    phases.mark("plan sent, peer probing, results in");
    let hits = shared.listeners.finish(&plan.session);
    let conntrack = watch.finish().await;
    let (results, pings) = outcome?;
    phases.mark("connection tracking read");

    let agent = inside::agent_info(&shared.name, shared.identity.id, &p.interfaces);
    let services = inside::service_inputs(&ports, &plan, &results, &mut p.docker, p.refresh, false).await;
    phases.mark("inside facts (sockets, owners, Docker, local HTTP)");
    let firewall = inside::firewall(&ports, &mut p.firewall, p.refresh).await;
    phases.mark("firewall rules");
    let report = assemble(ReportParts {
        mode: Mode::Peer,
        agent,
        peer: inside::peer_info(&p.peer, &p.interfaces),
        listeners: shared.listeners.specs(),
        plan: &plan,
        results: &results,
        hits: &hits,
        services: &services,
        conntrack: &conntrack,
        wsl2: inside::wsl2(),
        firewall: &firewall,
    });
    phases.mark("report assembled");
    let json = report.to_json_compact();
    tracing::debug!(
        "report: {} bytes of JSON for {} probes, {} ports",
        json.len(),
        report.probes.len(),
        report.services.len()
    );
    let report_json = ReportJson::new(&json);
    tracing::debug!("report: {} bytes deflated on the wire", report_json.deflated.len());
    ch.send(&Message::Report(report_json)).await.map_err(HandshakeError::from)?;
    phases.mark("report sent");
    Ok((report, pings))
}

/// Watch mode: while the peer asks again, run another round and tell what changed. Ends
/// when the peer ends the conversation (closes its stream, as every peer does after its
/// report), goes quiet for `WATCH_IDLE`, or goes away.
async fn watch<R, W>(
    shared: &Shared,
    ch: &mut Channel<R, W>,
    mut peering: Peering,
    mut last: Report,
) -> Result<(), SessionError>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    loop {
        let round_no = match timeout(WATCH_IDLE, conversation::await_again(ch)).await {
            Ok(Ok(Some(round_no))) => round_no,
            // The end, a quiet peer, or one that went away between rounds: all normal.
            Ok(Ok(None)) | Ok(Err(_)) | Err(_) => return Ok(()),
        };
        peering.refresh = round_no % WATCH_REFRESH_ROUNDS == 0;
        if peering.refresh {
            peering.interfaces = interfaces::list().unwrap_or_default();
        }
        let (report, _) = round(shared, ch, &mut peering).await?;
        let changes = lanreach_proto::watch::changes(&last, &report);
        let (from, name) = (peering.peer.from, peering.peer.name.clone());
        shared.emit(Event::PeerChanges { from, name, round: round_no, changes });
        last = report;
    }
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

/// Interface addresses where a LAN peer could reach a control channel bound to `bound`,
/// each with its network's prefix length, most likely reached first
/// ([`lanreach_proto::addr::reach_order`]): the order of the "run one of" list and of
/// the pairing link.
pub fn reachable_addresses(bound: &[SocketAddr], interfaces: &[InterfaceAddress]) -> Vec<(SocketAddr, Option<u8>)> {
    let mut found: Vec<(SocketAddr, &InterfaceAddress)> = Vec::new();
    let mut specific = Vec::new();
    for b in bound {
        if b.ip().is_unspecified() {
            found.extend(
                interfaces
                    .iter()
                    .filter(|i| i.kind.lan_facing() && i.ip.is_ipv4() == b.is_ipv4())
                    .map(|i| (SocketAddr::new(i.ip, b.port()), i)),
            );
        } else {
            match interfaces.iter().find(|i| i.ip == b.ip()) {
                Some(i) => found.push((*b, i)),
                None => specific.push((*b, None)),
            }
        }
    }
    lanreach_proto::addr::reach_order(&mut found, |(_, i)| i.reach());
    found.into_iter().map(|(a, i)| (a, i.prefix)).chain(specific).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanreach_proto::addr::InterfaceKind;

    fn iface(name: &str, ip: &str, kind: InterfaceKind) -> InterfaceAddress {
        InterfaceAddress {
            interface: name.into(),
            ip: ip.parse().expect("ip"),
            index: None,
            kind,
            prefix: None,
            default_route: false,
            virtual_device: false,
        }
    }

    fn addrs(found: Vec<(SocketAddr, Option<u8>)>) -> Vec<String> {
        found.iter().map(|(a, _)| a.to_string()).collect()
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
        let got = addrs(reachable_addresses(&[v4, v6], &ifaces));
        assert_eq!(got, ["198.51.100.7:47800", "[2001:db8::7]:47800", "203.0.113.9:47800"]);
        let specific: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        assert_eq!(reachable_addresses(&[specific], &ifaces), vec![(specific, None)]);
    }

    #[test]
    fn a_container_link_named_before_the_lan_comes_after_it() {
        let mut ctr0 = iface("ctr0", "203.0.113.1", InterfaceKind::Lan);
        ctr0.prefix = Some(24);
        let mut eth0 = iface("eth0", "198.51.100.1", InterfaceKind::Lan);
        eth0.default_route = true;
        eth0.prefix = Some(24);
        let mut eth0_v6 = iface("eth0", "2001:db8:1::1", InterfaceKind::Lan);
        eth0_v6.default_route = true;
        let v4: SocketAddr = "0.0.0.0:47800".parse().expect("addr");
        let v6: SocketAddr = "[::]:47800".parse().expect("addr");
        let found = reachable_addresses(&[v4, v6], &[ctr0, eth0, eth0_v6]);
        assert_eq!(addrs(found.clone()), ["198.51.100.1:47800", "[2001:db8:1::1]:47800", "203.0.113.1:47800"]);
        assert_eq!(found[0].1, Some(24), "with its prefix length");
    }
}
