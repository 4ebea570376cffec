//! The probe engine, one implementation for the peer and for the agent's single-machine
//! mode: every probe of a plan, concurrently (bounded), each attempt with its own
//! deadline and one retry on silence. A failed probe is a result, never an abort.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};

use crate::defaults::{
    ANSWER_WAIT_FACTOR, ATTEMPTS, BANNER_WAIT_FLOOR, CONCURRENCY, RUN_DEADLINE, UDP_SPACING, probe_timeout,
};
use crate::knock::{KNOCK_LEN, Knock};
use crate::plan::ProbePlan;
use crate::vocab::{Outcome, PlannedProbe, ProbeResult, ProbeResults, Proto, ServiceProbe, ServiceResult};

/// How to run a plan.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Deadline of one attempt.
    pub attempt_timeout: Duration,
    /// Probes in flight at once.
    pub concurrency: usize,
}

impl EngineConfig {
    /// Defaults for a control channel with round trip `rtt`.
    pub fn for_rtt(rtt: Duration) -> Self {
        EngineConfig { attempt_timeout: probe_timeout(rtt), concurrency: CONCURRENCY }
    }
}

/// One attempt's verdict; `None` outcome means silence (retry).
struct Attempt {
    outcome: Option<Outcome>,
    rtt: Option<Duration>,
    errno: Option<i32>,
}

/// Runs every probe of `plan`. See [`run_with_progress`].
pub async fn run(plan: &ProbePlan, config: EngineConfig, trusted: &[IpAddr]) -> ProbeResults {
    run_with_progress(plan, config, Arc::new(AtomicUsize::new(0)), trusted).await
}

/// Runs every probe of `plan` and returns one result per probe, in plan order; counts
/// finished probes in `done` (for a progress display).
///
/// Only addresses that prove to be the agent's are probed in full: `trusted` ones (the
/// address the control channel reached) and those where one of the plan's wildcard
/// test listeners answers the knock with this session's MAC, which only the agent can
/// compute. Probes at other addresses are reported as `not_probed`: an agent cannot use
/// a peer to scan hosts it does not run on.
pub async fn run_with_progress(
    plan: &ProbePlan,
    config: EngineConfig,
    done: Arc<AtomicUsize>,
    trusted: &[IpAddr],
) -> ProbeResults {
    let deadline = Instant::now() + RUN_DEADLINE;
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let is_trusted = |ip: IpAddr| trusted.iter().any(|t| t.to_canonical() == ip.to_canonical());
    // Phase 1: the knock at each address not yet known to be the agent's.
    let knocks: Vec<PlannedProbe> = plan
        .probes
        .iter()
        .copied()
        .filter(|p| {
            !is_trusted(p.target.ip()) && p.bind.ip().is_unspecified() && p.bind.is_ipv4() == p.target.is_ipv4()
        })
        .collect();
    let ctx = Ctx { session: plan.session, key: plan.key, config, deadline, permits, done };
    let mut results = run_listener_probes(&knocks, &ctx).await;
    let verified = |ip: IpAddr| {
        is_trusted(ip)
            || results
                .iter()
                .any(|r| r.outcome == Outcome::Open && knocks.iter().any(|k| k.id == r.id && k.target.ip() == ip))
    };
    // Phase 2: everything else at verified addresses.
    let rest: Vec<PlannedProbe> = plan
        .probes
        .iter()
        .copied()
        .filter(|p| verified(p.target.ip()) && !knocks.iter().any(|k| k.id == p.id))
        .collect();
    let services: Vec<ServiceProbe> = plan.services.iter().copied().filter(|p| verified(p.target.ip())).collect();
    let (more, mut service_results) =
        tokio::join!(run_listener_probes(&rest, &ctx), run_service_probes(&services, &ctx));
    results.extend(more);
    for p in &plan.probes {
        if !results.iter().any(|r| r.id == p.id) {
            results.push(ProbeResult { id: p.id, outcome: Outcome::NotProbed, rtt_us: None, errno: None, attempts: 0 });
        }
    }
    for p in &plan.services {
        if !service_results.iter().any(|r| r.id == p.id) {
            service_results.push(ServiceResult {
                id: p.id,
                outcome: Outcome::NotProbed,
                rtt_us: None,
                errno: None,
                http_status: None,
            });
        }
    }
    results.sort_by_key(|r| r.id);
    service_results.sort_by_key(|r| r.id);
    ProbeResults { results, services: service_results }
}

/// What every probe task shares.
struct Ctx {
    session: [u8; 16],
    key: [u8; 32],
    config: EngineConfig,
    deadline: Instant,
    permits: Arc<Semaphore>,
    done: Arc<AtomicUsize>,
}

/// Collects the tasks' results until the run deadline; tasks still running then are
/// stopped and their probes reported as timeouts (as is a probe whose task panicked).
async fn collect<T: 'static>(mut tasks: JoinSet<T>, deadline: Instant) -> Vec<T> {
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(Ok(r))) => out.push(r),
            Ok(Some(Err(_))) => {}
            Ok(None) | Err(_) => break,
        }
    }
    tasks.abort_all();
    out
}

async fn run_listener_probes(probes: &[PlannedProbe], ctx: &Ctx) -> Vec<ProbeResult> {
    let mut tasks = JoinSet::new();
    let mut udp_index = 0u32;
    for probe in probes.iter().copied() {
        // UDP probes start spaced out; TCP probes start at once.
        let delay = match probe.proto {
            Proto::Udp => {
                udp_index += 1;
                UDP_SPACING * udp_index
            }
            Proto::Tcp => Duration::ZERO,
        };
        let (permits, done) = (ctx.permits.clone(), ctx.done.clone());
        let (session, key, attempt) = (ctx.session, ctx.key, ctx.config.attempt_timeout);
        tasks.spawn(async move {
            tokio::time::sleep(delay).await;
            let _permit = permits.acquire_owned().await;
            let result = probe_one(probe, session, key, attempt).await;
            done.fetch_add(1, Ordering::Relaxed);
            result
        });
    }
    let mut results = collect(tasks, ctx.deadline).await;
    for p in probes {
        if !results.iter().any(|r| r.id == p.id) {
            results.push(ProbeResult { id: p.id, outcome: Outcome::Timeout, rtt_us: None, errno: None, attempts: 0 });
        }
    }
    results
}

async fn run_service_probes(probes: &[ServiceProbe], ctx: &Ctx) -> Vec<ServiceResult> {
    let mut tasks = JoinSet::new();
    for (i, probe) in probes.iter().copied().enumerate() {
        let (permits, done, attempt) = (ctx.permits.clone(), ctx.done.clone(), ctx.config.attempt_timeout);
        let delay =
            if probe.proto == Proto::Udp { UDP_SPACING * u32::try_from(i).unwrap_or(u32::MAX) } else { Duration::ZERO };
        tasks.spawn(async move {
            tokio::time::sleep(delay).await;
            let _permit = permits.acquire_owned().await;
            let result = service_one(probe, attempt).await;
            done.fetch_add(1, Ordering::Relaxed);
            result
        });
    }
    let mut results = collect(tasks, ctx.deadline).await;
    for p in probes {
        if !results.iter().any(|r: &ServiceResult| r.id == p.id) {
            results.push(ServiceResult {
                id: p.id,
                outcome: Outcome::Timeout,
                rtt_us: None,
                errno: None,
                http_status: None,
            });
        }
    }
    results
}

/// A minimal HTTP request: enough for any HTTP server to answer with a status line.
fn http_request(host: &str) -> String {
    format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: lanreach\r\nAccept: */*\r\nConnection: close\r\n\r\n")
}

/// The HTTP status `addr` answers to `GET /` with `Host: host`, within `deadline`.
pub async fn http_status_for_host(addr: SocketAddr, host: &str, deadline: Duration) -> Option<u16> {
    timeout(deadline, async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream.write_all(http_request(host).as_bytes()).await.ok()?;
        let mut buf = [0u8; 64];
        let mut got = 0;
        while got < 16 {
            match stream.read(&mut buf[got..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        http_status(&buf[..got])
    })
    .await
    .ok()
    .flatten()
}

/// The status of an HTTP response's first bytes.
fn http_status(bytes: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(bytes.get(..bytes.len().min(64))?).ok()?;
    let rest = text.strip_prefix("HTTP/1.")?;
    rest.get(2..5)?.parse().ok()
}

async fn service_one(probe: ServiceProbe, deadline: Duration) -> ServiceResult {
    let mut last = (None, None, None, None);
    for _ in 0..ATTEMPTS {
        last = match probe.proto {
            Proto::Tcp => service_tcp(probe.target, deadline).await,
            Proto::Udp => service_udp(probe.target, deadline).await,
        };
        if last.0.is_some() {
            break;
        }
    }
    let (outcome, rtt, errno, http_status) = last;
    ServiceResult {
        id: probe.id,
        outcome: outcome.unwrap_or(Outcome::Timeout),
        rtt_us: rtt.map(|d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX)),
        errno,
        http_status,
    }
}

type ServiceAttempt = (Option<Outcome>, Option<Duration>, Option<i32>, Option<u16>);

/// Connect; then a banner the server sends first, or the answer to a minimal HTTP
/// request, tells `open` (with its HTTP status) from `empty_reply` and `reset`.
async fn service_tcp(target: SocketAddr, deadline: Duration) -> ServiceAttempt {
    let started = Instant::now();
    let mut stream = match timeout(deadline, TcpStream::connect(target)).await {
        Err(_) => return (None, None, None, None),
        Ok(Err(e)) => {
            let a = classify(&e, started.elapsed());
            return (a.outcome, a.rtt, a.errno, None);
        }
        Ok(Ok(s)) => s,
    };
    let rtt = Some(started.elapsed());
    let mut buf = [0u8; 256];
    // A banner (SSH, SMTP…) comes by itself; an empty reply closes at once.
    let wait = deadline.max(BANNER_WAIT_FLOOR);
    let first = match timeout(wait, stream.read(&mut buf)).await {
        Ok(Ok(0)) => return (Some(Outcome::EmptyReply), rtt, None, None),
        Ok(Ok(n)) => Some(n),
        Ok(Err(e)) => return (Some(reset_or_foreign(&e)), rtt, e.raw_os_error(), None),
        Err(_) => None,
    };
    if let Some(n) = first {
        return (Some(Outcome::Open), rtt, None, http_status(&buf[..n]));
    }
    if let Err(e) = stream.write_all(http_request(&target.to_string()).as_bytes()).await {
        return (Some(reset_or_foreign(&e)), rtt, e.raw_os_error(), None);
    }
    let mut got = 0;
    let answer = timeout(deadline * ANSWER_WAIT_FACTOR, async {
        while got < 16 {
            match stream.read(&mut buf[got..]).await {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
    .await;
    match answer {
        Ok(Err(e)) if got == 0 => (Some(reset_or_foreign(&e)), rtt, e.raw_os_error(), None),
        Ok(_) if got == 0 => (Some(Outcome::EmptyReply), rtt, None, None),
        // Accepted and kept open without answering: a server of another protocol.
        Err(_) if got == 0 => (Some(Outcome::Open), rtt, None, None),
        _ => (Some(Outcome::Open), rtt, None, http_status(&buf[..got])),
    }
}

fn reset_or_foreign(e: &std::io::Error) -> Outcome {
    match e.kind() {
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => Outcome::Reset,
        _ => Outcome::Foreign,
    }
}

/// UDP: an empty datagram through a connected socket; ICMP port-unreachable reads as
/// refused, an answer as open, silence stays ambiguous (timeout).
async fn service_udp(target: SocketAddr, deadline: Duration) -> ServiceAttempt {
    let local: SocketAddr = if target.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let started = Instant::now();
    let fail = |e: std::io::Error| {
        let a = classify(&e, started.elapsed());
        (a.outcome, a.rtt, a.errno, None)
    };
    let socket = match UdpSocket::bind(local).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if let Err(e) = socket.connect(target).await {
        return fail(e);
    }
    if let Err(e) = socket.send(&[]).await {
        return fail(e);
    }
    let mut buf = [0u8; 512];
    match timeout(deadline, socket.recv(&mut buf)).await {
        Err(_) => (None, None, None, None),
        Ok(Err(e)) => fail(e),
        Ok(Ok(_)) => (Some(Outcome::Open), Some(started.elapsed()), None, None),
    }
}

async fn probe_one(probe: PlannedProbe, session: [u8; 16], key: [u8; 32], deadline: Duration) -> ProbeResult {
    let mut attempts = 0;
    let mut last = Attempt { outcome: None, rtt: None, errno: None };
    while attempts < ATTEMPTS {
        attempts += 1;
        let mut nonce = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let knock = Knock { session, nonce };
        last = match probe.proto {
            Proto::Tcp => tcp_attempt(probe.target, &knock, &key, deadline).await,
            Proto::Udp => udp_attempt(probe.target, &knock, &key, deadline).await,
        };
        if last.outcome.is_some() {
            break;
        }
    }
    ProbeResult {
        id: probe.id,
        outcome: last.outcome.unwrap_or(Outcome::Timeout),
        rtt_us: last.rtt.map(|d| u32::try_from(d.as_micros()).unwrap_or(u32::MAX)),
        errno: last.errno,
        attempts,
    }
}

fn silence() -> Attempt {
    Attempt { outcome: None, rtt: None, errno: None }
}

/// Maps a socket error to an outcome; `None` for errors that mean silence.
fn classify(e: &std::io::Error, rtt: Duration) -> Attempt {
    use std::io::ErrorKind::*;
    let errno = e.raw_os_error();
    let outcome = match e.kind() {
        ConnectionRefused => Some(Outcome::Refused),
        ConnectionReset | ConnectionAborted | BrokenPipe => Some(Outcome::Reset),
        TimedOut => None,
        HostUnreachable | NetworkUnreachable | AddrNotAvailable => Some(Outcome::Unreachable),
        _ => Some(Outcome::Unreachable),
    };
    Attempt { rtt: outcome.map(|_| rtt), outcome, errno }
}

async fn tcp_attempt(target: SocketAddr, knock: &Knock, key: &[u8; 32], deadline: Duration) -> Attempt {
    let started = Instant::now();
    let mut stream = match timeout(deadline, TcpStream::connect(target)).await {
        Err(_) => return silence(),
        Ok(Err(e)) => return classify(&e, started.elapsed()),
        Ok(Ok(s)) => s,
    };
    let connected = started.elapsed();
    let _ = stream.set_nodelay(true);
    if let Err(e) = stream.write_all(&knock.encode()).await {
        return classify(&e, connected);
    }
    let mut reply = [0u8; KNOCK_LEN];
    let mut got = 0;
    let read = timeout(deadline, async {
        while got < KNOCK_LEN {
            match stream.read(&mut reply[got..]).await {
                Ok(0) => return Ok(()),
                Ok(n) => got += n,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
    .await;
    let done = |outcome| Attempt { outcome: Some(outcome), rtt: Some(connected), errno: None };
    match read {
        // Accepted, but nothing answered in time: another program that waits for a
        // request of its own.
        Err(_) => done(Outcome::Foreign),
        Ok(Err(e)) if got == 0 => match classify(&e, connected) {
            Attempt { outcome: Some(Outcome::Reset), errno, .. } => {
                Attempt { outcome: Some(Outcome::Reset), rtt: Some(connected), errno }
            }
            _ => done(Outcome::Foreign),
        },
        Ok(Err(_)) => done(Outcome::Foreign),
        Ok(Ok(())) if got == 0 => done(Outcome::EmptyReply),
        Ok(Ok(())) if knock.verify_reply(key, Proto::Tcp, &reply[..got]) => done(Outcome::Open),
        Ok(Ok(())) => done(Outcome::Foreign),
    }
}

async fn udp_attempt(target: SocketAddr, knock: &Knock, key: &[u8; 32], deadline: Duration) -> Attempt {
    let local: SocketAddr = if target.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let started = Instant::now();
    let socket = match UdpSocket::bind(local).await {
        Ok(s) => s,
        Err(e) => return classify(&e, started.elapsed()),
    };
    // A connected socket sees ICMP port-unreachable as ECONNREFUSED.
    if let Err(e) = socket.connect(target).await {
        return classify(&e, started.elapsed());
    }
    if let Err(e) = socket.send(&knock.encode()).await {
        return classify(&e, started.elapsed());
    }
    let mut buf = [0u8; 512];
    match timeout(deadline, socket.recv(&mut buf)).await {
        Err(_) => silence(),
        Ok(Err(e)) => classify(&e, started.elapsed()),
        Ok(Ok(n)) => {
            let outcome = if knock.verify_reply(key, Proto::Udp, &buf[..n]) { Outcome::Open } else { Outcome::Foreign };
            Attempt { outcome: Some(outcome), rtt: Some(started.elapsed()), errno: None }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address where no wildcard listener answers with the session's MAC is not
    /// probed further: a plan cannot point the peer at hosts the agent does not run on.
    #[tokio::test]
    async fn unproven_addresses_are_not_probed() {
        let closed = |ip: &str| {
            let l = std::net::TcpListener::bind((ip, 0)).expect("bind");
            l.local_addr().expect("addr").port()
        };
        let (p1, p2, p3) = (closed("127.0.0.1"), closed("127.0.0.1"), closed("127.0.0.1"));
        let other = |port: u16| SocketAddr::from(([127, 0, 0, 2], port));
        let plan = ProbePlan {
            session: [1; 16],
            key: [2; 32],
            probes: vec![
                PlannedProbe { id: 0, proto: Proto::Tcp, bind: ([0, 0, 0, 0], p1).into(), target: other(p1) },
                PlannedProbe { id: 1, proto: Proto::Tcp, bind: ([127, 0, 0, 1], p2).into(), target: other(p2) },
            ],
            services: vec![ServiceProbe { id: 0, proto: Proto::Tcp, target: other(p3) }],
        };
        let config = EngineConfig { attempt_timeout: Duration::from_millis(200), concurrency: 8 };
        let r = run(&plan, config, &["127.0.0.1".parse().expect("ip")]).await;
        assert_eq!(r.results[0].outcome, Outcome::Refused, "the knock itself is sent");
        assert_eq!(r.results[1].outcome, Outcome::NotProbed);
        assert_eq!(r.services[0].outcome, Outcome::NotProbed);
        // Trusted, the same address is probed in full.
        let r = run(&plan, config, &["127.0.0.2".parse().expect("ip")]).await;
        assert_eq!((r.results[1].outcome, r.services[0].outcome), (Outcome::Refused, Outcome::Refused));
    }

    #[test]
    fn http_status_lines() {
        assert_eq!(http_status(b"HTTP/1.1 403 Forbidden\r\n"), Some(403));
        assert_eq!(http_status(b"HTTP/1.0 200 OK"), Some(200));
        assert_eq!(http_status(b"SSH-2.0-OpenSSH_9.2"), None);
    }

    /// Real servers on loopback: an HTTP server that rejects the Host, a banner server,
    /// a server that closes at once, one that resets, and a closed port.
    #[tokio::test]
    async fn service_outcomes_on_loopback() {
        async fn serve(behaviour: &'static str) -> SocketAddr {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = l.local_addr().expect("addr");
            tokio::spawn(async move {
                while let Ok((mut s, _)) = l.accept().await {
                    match behaviour {
                        "http403" => {
                            let mut buf = [0u8; 512];
                            let _ = s.read(&mut buf).await;
                            let _ = s.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n").await;
                        }
                        "banner" => {
                            let _ = s.write_all(b"SSH-2.0-test\r\n").await;
                        }
                        "reset" => {
                            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                        }
                        _ => {}
                    }
                }
            });
            addr
        }
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
        let targets =
            [serve("http403").await, serve("banner").await, serve("close").await, serve("reset").await, closed];
        let services = targets
            .iter()
            .enumerate()
            .map(|(i, t)| ServiceProbe { id: i as u32, proto: Proto::Tcp, target: *t })
            .collect();
        let plan = ProbePlan { session: [0; 16], key: [0; 32], probes: vec![], services };
        let config = EngineConfig { attempt_timeout: Duration::from_millis(200), concurrency: 8 };
        let results = run(&plan, config, &["127.0.0.1".parse().expect("ip")]).await.services;
        let got: Vec<(Outcome, Option<u16>)> = results.iter().map(|r| (r.outcome, r.http_status)).collect();
        assert_eq!(
            got,
            [
                (Outcome::Open, Some(403)),
                (Outcome::Open, None),
                (Outcome::EmptyReply, None),
                (Outcome::Reset, None),
                (Outcome::Refused, None)
            ]
        );
    }

    /// Real sockets on loopback: a closed TCP port is refused, a silent TCP server is
    /// foreign, a server that closes at once is an empty reply, a closed UDP port is
    /// refused, and a UDP socket that never answers times out after the retry.
    #[tokio::test]
    async fn outcomes_on_loopback() {
        let closed_tcp = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let silent_addr = silent.local_addr().expect("addr");
        let closer = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let closer_addr = closer.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                tokio::select! {
                    Ok((s, _)) = silent.accept() => held.push(s),
                    Ok((s, _)) = closer.accept() => drop(s),
                }
            }
        });
        let closed_udp = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.local_addr().expect("addr")
        };
        let deaf = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let deaf_addr = deaf.local_addr().expect("addr");

        let probes = [
            (Proto::Tcp, closed_tcp),
            (Proto::Tcp, silent_addr),
            (Proto::Tcp, closer_addr),
            (Proto::Udp, closed_udp),
            (Proto::Udp, deaf_addr),
        ];
        let plan = ProbePlan {
            session: [1; 16],
            key: [2; 32],
            probes: probes
                .iter()
                .enumerate()
                .map(|(i, (proto, addr))| PlannedProbe { id: i as u32, proto: *proto, bind: *addr, target: *addr })
                .collect(),
            services: vec![],
        };
        let config = EngineConfig { attempt_timeout: Duration::from_millis(200), concurrency: 8 };
        let results = run(&plan, config, &["127.0.0.1".parse().expect("ip")]).await.results;
        let outcomes: Vec<Outcome> = results.iter().map(|r| r.outcome).collect();
        assert_eq!(
            outcomes,
            [Outcome::Refused, Outcome::Foreign, Outcome::EmptyReply, Outcome::Refused, Outcome::Timeout]
        );
        assert_eq!(results[4].attempts, 2, "silence is retried once");
        assert_eq!(results[0].attempts, 1);
        assert_eq!(results[0].errno, Some(111));
        drop(deaf);
    }
}
