//! The agent's test listeners: TCP and UDP on 127.0.0.1, ::1, 0.0.0.0, :: and each
//! interface address, answering only the probe knock of a registered session and
//! recording which probe reached which listener from where.
//!
//! Every listener gets its own port (one number for TCP and UDP): wildcard and specific
//! binds cannot share a TCP port without SO_REUSEPORT, and distinct ports make each
//! matrix cell mean exactly one listener. IPv6 sockets set IPV6_V6ONLY, so `[::]`
//! does not swallow IPv4. UDP answers leave from the address the probe was sent to
//! (IP_PKTINFO via quinn-udp), so a peer's connected socket accepts them.

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lanreach_proto::addr::{InterfaceKind, canonical};
use lanreach_proto::defaults::KNOCK_TIMEOUT;
use lanreach_proto::endpoint::interfaces::InterfaceAddress;
use lanreach_proto::knock::{KNOCK_LEN, Knock};
use lanreach_proto::sync::lock;
use lanreach_proto::vocab::{ListenerSpec, Proto};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{AbortHandle, JoinSet};

/// TCP connections waiting for their knock at once, across every test listener. Past
/// it, a new connection evicts the oldest waiting one: a real probe sends its knock at
/// once and never waits long, so idle connections cannot starve it.
pub const MAX_TCP_HANDLERS: usize = 256;

/// TCP connections one source address may hold waiting at once; more are closed at
/// once. Above the peer's own probe concurrency, so a real peer is never refused.
pub const MAX_TCP_HANDLERS_PER_SOURCE: usize = 2 * lanreach_proto::defaults::CONCURRENCY;

/// Most sessions registered at once (one per connected peer).
pub const MAX_SESSIONS: usize = 64;

/// Tries to find one free port for TCP and UDP on an address in the ephemeral range.
const EPHEMERAL_TRIES: usize = 32;

/// Where listener ports come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortRange {
    /// Ports the OS picks.
    Ephemeral,
    /// Ports from this inclusive range (`--ports A-B`).
    Range(u16, u16),
}

/// Why the listeners could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// A wildcard listener could not be bound.
    #[error("cannot open a test listener on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// `--ports` has too few free ports.
    #[error("--ports {0}-{1} has too few free ports for every test listener (TCP and UDP on each address)")]
    RangeExhausted(u16, u16),
    /// No port the OS picked was free for both TCP and UDP.
    #[error("cannot open a test listener on {0}: no port is free for both TCP and UDP")]
    NoFreePort(SocketAddr),
}

/// A probe that reached a listener.
pub use lanreach_proto::vocab::ListenerHit as Hit;

#[derive(Default)]
struct Registry {
    sessions: HashMap<[u8; 16], SessionState>,
}

struct SessionState {
    key: [u8; 32],
    /// What arrived, each once (a retried knock, or a flood of one, counts once).
    hits: Vec<Hit>,
    seen: std::collections::HashSet<Hit>,
    /// A browser's session: of the browser's address family, only what comes from its
    /// address counts (its session ID travels in plain HTTP, so others may know it).
    only: Option<IpAddr>,
}

impl SessionState {
    fn record(&mut self, hit: Hit) {
        let source = hit.source.ip().to_canonical();
        if self.only.is_some_and(|only| only.is_ipv4() == source.is_ipv4() && only != source) {
            return;
        }
        if self.hits.len() < MAX_HITS && self.seen.insert(hit) {
            self.hits.push(hit);
        }
    }
}

/// Most hits remembered per session (a plan has at most 2048 probes, two attempts each).
const MAX_HITS: usize = 8192;

impl Registry {
    /// Records a knock for a live session and returns its key.
    fn knock(&mut self, knock: &Knock, hit: Hit) -> Option<[u8; 32]> {
        let state = self.sessions.get_mut(&knock.session)?;
        state.record(hit);
        Some(state.key)
    }

    /// Records a browser's STUN request for a live session (a browser sends dozens; each
    /// source counts once). Returns whether the session is live.
    fn stun(&mut self, session: &[u8; 16], hit: Hit) -> bool {
        let Some(state) = self.sessions.get_mut(session) else { return false };
        state.record(hit);
        true
    }
}

/// The open listeners; dropping this closes them all.
pub struct Listeners {
    specs: Vec<ListenerSpec>,
    registry: Arc<Mutex<Registry>>,
    _tasks: JoinSet<()>,
}

/// The addresses to listen on: loopback, wildcards, then each interface address.
pub fn bind_addresses(interfaces: &[InterfaceAddress]) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = vec![
        (Ipv4Addr::LOCALHOST, 0).into(),
        (Ipv6Addr::LOCALHOST, 0).into(),
        (Ipv4Addr::UNSPECIFIED, 0).into(),
        (Ipv6Addr::UNSPECIFIED, 0).into(),
    ];
    for i in interfaces.iter().filter(|i| i.kind != InterfaceKind::Loopback) {
        let addr = match i.ip {
            IpAddr::V6(v6) if v6.is_unicast_link_local() => {
                SocketAddr::V6(SocketAddrV6::new(v6, 0, 0, i.index.unwrap_or(0)))
            }
            ip => SocketAddr::new(ip, 0),
        };
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

/// A listening TCP socket on `addr` (IPV6_V6ONLY on IPv6, SO_REUSEADDR, non-blocking).
pub(crate) fn tcp_socket(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

fn with_port(addr: SocketAddr, port: u16) -> SocketAddr {
    let mut a = addr;
    a.set_port(port);
    a
}

/// Binds TCP and UDP on one port of `addr`.
fn bind_pair(
    addr: SocketAddr,
    next: &mut impl Iterator<Item = u16>,
    range: PortRange,
) -> Result<(std::net::TcpListener, std::net::UdpSocket), ListenError> {
    let in_use = |e: &std::io::Error| e.kind() == std::io::ErrorKind::AddrInUse;
    let tries = match range {
        PortRange::Ephemeral => EPHEMERAL_TRIES,
        PortRange::Range(a, b) => usize::from(b - a) + 1,
    };
    for _ in 0..tries {
        let port = match range {
            PortRange::Ephemeral => 0,
            PortRange::Range(a, b) => next.next().ok_or(ListenError::RangeExhausted(a, b))?,
        };
        let tcp = match tcp_socket(with_port(addr, port)) {
            Ok(t) => t,
            Err(e) if in_use(&e) => continue,
            Err(source) => return Err(ListenError::Bind { addr: with_port(addr, port), source }),
        };
        let port = tcp.local_addr().map(|a| a.port()).map_err(|source| ListenError::Bind { addr, source })?;
        match udp_socket(with_port(addr, port)) {
            Ok(udp) => return Ok((tcp, udp)),
            Err(e) if in_use(&e) => continue,
            Err(source) => return Err(ListenError::Bind { addr: with_port(addr, port), source }),
        }
    }
    match range {
        PortRange::Range(a, b) => Err(ListenError::RangeExhausted(a, b)),
        PortRange::Ephemeral => Err(ListenError::NoFreePort(addr)),
    }
}

impl Listeners {
    /// Opens TCP and UDP listeners on every address of [`bind_addresses`]. The IPv4
    /// wildcard must succeed; other addresses that cannot be bound (no IPv6, an
    /// address still being configured) are skipped with a warning.
    pub fn open(interfaces: &[InterfaceAddress], ports: PortRange) -> Result<Listeners, ListenError> {
        let registry = Arc::new(Mutex::new(Registry::default()));
        let handlers = Arc::new(Mutex::new(Handlers::default()));
        let mut tasks = JoinSet::new();
        let mut specs = Vec::new();
        let mut next = match ports {
            PortRange::Ephemeral => 0..=0,
            PortRange::Range(a, b) => a..=b,
        };
        for addr in bind_addresses(interfaces) {
            let (tcp, udp) = match bind_pair(addr, &mut next, ports) {
                Ok(pair) => pair,
                Err(e @ ListenError::RangeExhausted(..)) => return Err(e),
                Err(e) if addr.ip() == IpAddr::V4(Ipv4Addr::UNSPECIFIED) => return Err(e),
                Err(e) => {
                    // An address still in duplicate address detection (a fresh IPv6
                    // link-local one) cannot be bound for a moment: not worth a warning.
                    let tentative = matches!(&e, ListenError::Bind { source, .. }
                        if source.kind() == std::io::ErrorKind::AddrNotAvailable);
                    let text = lanreach_proto::text::error_chain(&e);
                    if tentative {
                        tracing::debug!("skipping test listener: {text}");
                    } else {
                        tracing::warn!("skipping test listener: {text}");
                    }
                    continue;
                }
            };
            let bound = tcp.local_addr().map_err(|source| ListenError::Bind { addr, source })?;
            let tcp = TcpListener::from_std(tcp).map_err(|source| ListenError::Bind { addr, source })?;
            let udp = UdpSocket::from_std(udp).map_err(|source| ListenError::Bind { addr, source })?;
            let state = quinn_udp::UdpSocketState::new((&udp).into())
                .map_err(|source| ListenError::Bind { addr: bound, source })?;
            specs.push(ListenerSpec { proto: Proto::Tcp, bind: bound });
            specs.push(ListenerSpec { proto: Proto::Udp, bind: bound });
            tasks.spawn(serve_tcp(tcp, bound, registry.clone(), handlers.clone()));
            tasks.spawn(serve_udp(udp, state, bound, registry.clone()));
        }
        specs.sort_by_key(|s| s.proto);
        Ok(Listeners { specs, registry, _tasks: tasks })
    }

    /// Every listener, TCP first.
    pub fn specs(&self) -> &[ListenerSpec] {
        &self.specs
    }

    /// Starts answering knocks of `session`, with MACs under `key`. Returns false when
    /// too many sessions are live.
    pub fn register(&self, session: [u8; 16], key: [u8; 32]) -> bool {
        self.register_from(session, key, None)
    }

    /// Like [`Listeners::register`], for a browser at `only`: of that address's family,
    /// what other addresses send does not count.
    pub fn register_from(&self, session: [u8; 16], key: [u8; 32], only: Option<IpAddr>) -> bool {
        let mut r = lock(&self.registry);
        if r.sessions.len() >= MAX_SESSIONS {
            return false;
        }
        let only = only.map(|ip| ip.to_canonical());
        r.sessions.insert(session, SessionState { key, hits: Vec::new(), seen: Default::default(), only });
        true
    }

    /// Stops answering `session` and returns what its probes did.
    pub fn finish(&self, session: &[u8; 16]) -> Vec<Hit> {
        lock(&self.registry).sessions.remove(session).map(|s| s.hits).unwrap_or_default()
    }
}

/// The TCP connections waiting for their knock, oldest first.
#[derive(Default)]
struct Handlers {
    next_id: u64,
    waiting: std::collections::VecDeque<Waiting>,
}

struct Waiting {
    id: u64,
    source: IpAddr,
    task: AbortHandle,
}

impl Handlers {
    /// Makes room for a connection from `source`: `false` when that source already
    /// holds its share; otherwise evicts the oldest waiting connection when every slot
    /// is taken.
    fn admit(&mut self, source: IpAddr) -> bool {
        if self.waiting.iter().filter(|w| w.source == source).count() >= MAX_TCP_HANDLERS_PER_SOURCE {
            return false;
        }
        while self.waiting.len() >= MAX_TCP_HANDLERS {
            if let Some(oldest) = self.waiting.pop_front() {
                oldest.task.abort();
            }
        }
        true
    }

    fn remove(&mut self, id: u64) {
        self.waiting.retain(|w| w.id != id);
    }
}

/// Removes a handler from the waiting list however it ends.
struct Leave {
    handlers: Arc<Mutex<Handlers>>,
    id: u64,
}

impl Drop for Leave {
    fn drop(&mut self) {
        lock(&self.handlers).remove(self.id);
    }
}

async fn serve_tcp(
    listener: TcpListener,
    bind: SocketAddr,
    registry: Arc<Mutex<Registry>>,
    handlers: Arc<Mutex<Handlers>>,
) {
    loop {
        let (stream, source) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("test listener {bind}: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let source_ip = canonical(source).ip();
        let mut h = lock(&handlers);
        if !h.admit(source_ip) {
            continue; // dropped: closed at once
        }
        let id = h.next_id;
        h.next_id += 1;
        let (registry, leave) = (registry.clone(), Leave { handlers: handlers.clone(), id });
        let task = tokio::spawn(async move {
            let _leave = leave;
            answer_tcp(stream, bind, source, &registry).await;
        });
        h.waiting.push_back(Waiting { id, source: source_ip, task: task.abort_handle() });
    }
}

async fn answer_tcp(mut stream: TcpStream, bind: SocketAddr, source: SocketAddr, registry: &Mutex<Registry>) {
    let deadline = tokio::time::Instant::now() + KNOCK_TIMEOUT;
    let mut buf = [0u8; KNOCK_LEN];
    let Ok(Ok(_)) = tokio::time::timeout_at(deadline, stream.read_exact(&mut buf)).await else { return };
    let browser = buf.starts_with(b"GET ");
    let knock = if browser {
        match browser_knock(&mut stream, &buf, deadline).await {
            Some(knock) => knock,
            None => return,
        }
    } else {
        match Knock::parse(&buf) {
            Some(knock) => knock,
            None => return,
        }
    };
    let Ok(local) = stream.local_addr() else { return };
    let hit = Hit { proto: Proto::Tcp, bind, local: canonical(local), source: canonical(source) };
    let Some(key) = lock(registry).knock(&knock, hit) else { return };
    let reply = knock.reply(&key, Proto::Tcp);
    if browser {
        // A browser page's fetch (cors mode): any page may read the answer, which only
        // proves that this listener of this session was reached.
        let body: String = reply[8..].iter().map(|b| format!("{b:02x}")).collect();
        let response = format!(
            "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\nContent-Type: text/plain\r\n\
             Cache-Control: no-store\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout_at(deadline, stream.write_all(response.as_bytes())).await;
    } else {
        let _ = stream.write_all(&reply).await;
    }
    let _ = stream.shutdown().await;
}

/// A browser page's request to a test listener, `GET /k/SESSION/NONCE HTTP/1.1`, read
/// to the end of its head (at most [`MAX_BROWSER_HEAD`] bytes, by `deadline`): the
/// knock its path carries.
async fn browser_knock(stream: &mut TcpStream, start: &[u8], deadline: tokio::time::Instant) -> Option<Knock> {
    let mut head = start.to_vec();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() >= MAX_BROWSER_HEAD {
            return None;
        }
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let line = head.split(|b| *b == b'\r').next()?;
    let path = std::str::from_utf8(line).ok()?.split(' ').nth(1)?;
    let (session, nonce) = lanreach_proto::browser::parse_knock_path(path)?;
    Some(Knock { session, nonce })
}

/// Longest head of a browser's request to a test listener.
const MAX_BROWSER_HEAD: usize = 4096;

async fn serve_udp(
    socket: UdpSocket,
    state: quinn_udp::UdpSocketState,
    bind: SocketAddr,
    registry: Arc<Mutex<Registry>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if socket.readable().await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let mut meta = [quinn_udp::RecvMeta::default()];
        let received = socket
            .try_io(Interest::READABLE, || state.recv((&socket).into(), &mut [IoSliceMut::new(&mut buf)], &mut meta));
        let Ok(n) = received else { continue };
        for m in &meta[..n] {
            let stride = if m.stride == 0 { m.len } else { m.stride };
            for datagram in buf[..m.len].chunks(stride) {
                let local = SocketAddr::new(m.dst_ip.unwrap_or(bind.ip()), bind.port());
                let hit = Hit { proto: Proto::Udp, bind, local: canonical(local), source: canonical(m.addr) };
                let Some(knock) = Knock::parse(datagram) else {
                    // A browser's WebRTC probe: STUN requests naming a live session are
                    // recorded, never answered (no ICE connection ever starts).
                    if let Some(session) = lanreach_proto::browser::stun_session(datagram) {
                        lock(&registry).stun(&session, hit);
                    }
                    continue;
                };
                let Some(key) = lock(&registry).knock(&knock, hit) else { continue };
                let reply = knock.reply(&key, Proto::Udp);
                let transmit = quinn_udp::Transmit {
                    destination: m.addr,
                    ecn: None,
                    contents: &reply,
                    segment_size: None,
                    src_ip: m.dst_ip,
                };
                // A lost answer looks like silence to the peer, which retries.
                let _ = socket.try_io(Interest::WRITABLE, || state.try_send((&socket).into(), &transmit));
            }
        }
    }
}

#[cfg(test)]
mod tests {

    #[tokio::test]
    async fn a_full_table_evicts_the_oldest_waiting_and_one_source_gets_its_share_only() {
        let mut h = Handlers::default();
        let mut tasks = Vec::new();
        let mut add = |h: &mut Handlers, source: &str| {
            let source: IpAddr = source.parse().expect("ip");
            if !h.admit(source) {
                return false;
            }
            let task = tokio::spawn(std::future::pending::<()>());
            h.waiting.push_back(Waiting { id: h.next_id, source, task: task.abort_handle() });
            h.next_id += 1;
            tasks.push(task);
            true
        };
        for _ in 0..MAX_TCP_HANDLERS_PER_SOURCE {
            assert!(add(&mut h, "198.51.100.66"));
        }
        assert!(!add(&mut h, "198.51.100.66"), "one source holds its share at most");
        let mut n = 0;
        while h.waiting.len() < MAX_TCP_HANDLERS {
            assert!(add(&mut h, &format!("203.0.113.{}", n % 200 + 1)));
            n += 1;
        }
        assert!(add(&mut h, "198.51.100.2"), "a newcomer always gets in");
        assert_eq!(h.waiting.len(), MAX_TCP_HANDLERS);
        assert_eq!(h.waiting.back().map(|w| w.source), Some("198.51.100.2".parse().expect("ip")));
        tokio::task::yield_now().await;
        assert!(tasks[0].is_finished(), "the oldest waiting connection was evicted");
    }
    use super::*;
    use lanreach_proto::endpoint::engine::{self, EngineConfig, NoWitness};
    use lanreach_proto::plan::{self, ProbePlan};
    use lanreach_proto::vocab::Outcome;

    #[tokio::test]
    async fn loopback_listeners_answer_their_session_only() {
        let listeners = Listeners::open(&[], PortRange::Ephemeral).expect("listeners open");
        let binds: Vec<String> = listeners.specs().iter().map(|s| s.bind.ip().to_string()).collect();
        assert!(binds.contains(&"0.0.0.0".to_owned()) && binds.contains(&"127.0.0.1".to_owned()), "{binds:?}");
        let ports: std::collections::HashSet<u16> =
            listeners.specs().iter().filter(|s| s.proto == Proto::Tcp).map(|s| s.bind.port()).collect();
        assert_eq!(ports.len(), listeners.specs().len() / 2, "every listener has its own port");

        let session = [7u8; 16];
        let key = [9u8; 32];
        assert!(listeners.register(session, key));
        let targets = ["127.0.0.1".parse().expect("ip")];
        let probes = plan::build(listeners.specs(), &targets, true);
        let config = EngineConfig { attempt_timeout: Duration::from_millis(300), concurrency: 8 };
        let plan = ProbePlan { session, key, probes: probes.clone(), services: vec![] };
        let results = engine::run(&plan, config, &targets, &NoWitness).await.results;
        for (p, r) in probes.iter().zip(&results) {
            // 127.0.0.1 and 0.0.0.0 listeners answer at 127.0.0.1; nothing else listens
            // on the other listeners' ports there ([::] has IPV6_V6ONLY).
            let ours = p.bind.ip().is_loopback() || p.bind.ip().is_unspecified();
            let expect = if ours && p.bind.is_ipv4() == p.target.is_ipv4() { Outcome::Open } else { Outcome::Refused };
            assert_eq!(r.outcome, expect, "{p:?}");
        }
        let hits = listeners.finish(&session);
        assert_eq!(hits.len(), results.iter().filter(|r| r.outcome == Outcome::Open).count());
        assert!(hits.iter().all(|h| h.source.ip().is_loopback() && h.local.ip().is_loopback()));

        // An unregistered session gets no answer: the probe sees "foreign" (TCP, closed
        // without a reply is an empty reply) or silence (UDP).
        let results = engine::run(&plan, config, &targets, &NoWitness).await.results;
        for (p, r) in probes.iter().zip(&results) {
            if p.bind.ip().is_loopback() && p.bind.is_ipv4() {
                let expect = if p.proto == Proto::Tcp { Outcome::EmptyReply } else { Outcome::Timeout };
                assert_eq!(r.outcome, expect, "{p:?}");
            }
        }
    }

    #[tokio::test]
    async fn a_port_range_too_small_is_an_error() {
        let err = Listeners::open(&[], PortRange::Range(40000, 40001)).err().expect("too small");
        assert!(matches!(err, ListenError::RangeExhausted(40000, 40001)), "{err}");
    }
}
