//! The probe engine, one implementation for the peer and for the agent's single-machine
//! mode. It makes no decisions: [`Run`] says which attempt to start, what its answer
//! means and when the run is over; the engine starts the attempts on a [`Network`],
//! waits, and feeds back what happened. [`Sockets`] is the real network; tests drive
//! the same loop over a simulated one.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};

use crate::addr::in_prefix;
use crate::defaults::{
    ANSWER_WAIT_FACTOR, BANNER_WAIT_FLOOR, CONNECT_TRIES, KNOCK_REPLY_WAIT, UDP_KNOCK_TRIES, UDP_PAYLOAD_GAP,
};
use crate::icmp::{IcmpCounters, IcmpWitness};
use crate::knock::{KNOCK_LEN, Knock};
use crate::payload;
use crate::plan::ProbePlan;
use crate::run::{AttemptAnswer, AttemptOrder, ProbeKind, Run};
use crate::vocab::{Outcome, ProbeResults, Proto};

/// How to run a plan: the run's configuration.
pub use crate::run::RunConfig as EngineConfig;

/// Makes attempts: the seam between the run's rules and the sockets.
pub trait Network: Send + Sync + 'static {
    /// Makes one attempt and reports what happened; silence once its connect has waited
    /// `order.connect_timeout`, or another step of it `order.timeout`, for the other side.
    fn attempt(&self, order: AttemptOrder) -> impl Future<Output = AttemptAnswer> + Send;
}

/// The agent's witness of its own ICMP errors (see [`crate::icmp`]): asked once a
/// family's ordinary attempts are over and some of its probes met silence.
pub trait Witness: Send + Sync {
    /// The ICMP errors the agent's host sent and suppressed since the plan; `None` when
    /// it cannot tell. The run waits for it: an implementation bounds its own wait.
    fn ask(&self) -> impl Future<Output = Option<IcmpWitness>> + Send;

    /// Whether the witness speaks for `ip` at all: an address of the agent's own network
    /// namespace (not one that forwards to it, as a port mapping does).
    fn covers(&self, _ip: IpAddr) -> bool {
        true
    }
}

/// No witness: every silence waits for its quiet re-probe.
#[derive(Debug, Clone, Copy)]
pub struct NoWitness;

impl Witness for NoWitness {
    async fn ask(&self) -> Option<IcmpWitness> {
        None
    }
}

/// This host as its own witness: the agent answering a peer, and its `--local` run.
#[derive(Debug, Clone, Copy)]
pub struct HostWitness {
    /// The counters when the plan was made; `None` where they cannot be read.
    base: Option<IcmpCounters>,
}

impl HostWitness {
    /// Reads the counters now, before the plan goes out.
    pub fn start() -> Self {
        HostWitness { base: read_icmp_counters() }
    }

    /// The errors sent and suppressed since [`start`](Self::start); `None` when the
    /// counters cannot be read.
    pub fn since_start(&self) -> Option<IcmpWitness> {
        Some(read_icmp_counters()?.since(&self.base?))
    }
}

impl Witness for HostWitness {
    async fn ask(&self) -> Option<IcmpWitness> {
        self.since_start()
    }
}

/// This network namespace's ICMP counters (Linux; `None` elsewhere, or before 6.0).
pub fn read_icmp_counters() -> Option<IcmpCounters> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let snmp6 = std::fs::read_to_string("/proc/net/snmp6").ok()?;
    IcmpCounters::parse(&snmp, &snmp6)
}

/// Runs every probe of `plan` over real sockets. See [`run_with_progress`].
pub async fn run(plan: &ProbePlan, config: EngineConfig, trusted: &[IpAddr], witness: &impl Witness) -> ProbeResults {
    run_with_progress(plan, config, Arc::new(AtomicUsize::new(0)), trusted, witness).await
}

/// Runs every probe of `plan` over real sockets and returns one result per probe, in
/// plan order; counts settled probes in `done` (for a progress display).
///
/// Only addresses that prove to be the agent's are probed in full: `trusted` ones (the
/// address the control channel reached) and those where one of the plan's wildcard
/// test listeners answers the knock with this session's MAC, which only the agent can
/// compute. Probes at other addresses are reported as `not_probed`: an agent cannot use
/// a peer to scan hosts it does not run on.
///
/// `witness` may prove silence a drop without the quiet re-probe's wait, at addresses on
/// this host's own link (no router between that could have sent the ICMP error).
pub async fn run_with_progress(
    plan: &ProbePlan,
    config: EngineConfig,
    done: Arc<AtomicUsize>,
    trusted: &[IpAddr],
    witness: &impl Witness,
) -> ProbeResults {
    let sockets = Arc::new(Sockets { session: plan.session, key: plan.key });
    let own: Vec<(IpAddr, u8)> = crate::endpoint::interfaces::list()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|a| Some((a.ip, a.prefix?)))
        .collect();
    let on_link = move |ip: IpAddr| own.iter().any(|&(net, len)| in_prefix(ip, net, len));
    drive(sockets, plan, config, done, trusted, witness, &on_link).await
}

/// Runs `plan` on `network`: starts what the run orders, feeds back the answers, asks
/// `witness` when the run wants it (applied to addresses `on_link` accepts), and sleeps
/// until the next answer or the run's next timer, until the run is over.
pub async fn drive<N: Network>(
    network: Arc<N>,
    plan: &ProbePlan,
    config: EngineConfig,
    done: Arc<AtomicUsize>,
    trusted: &[IpAddr],
    witness: &impl Witness,
    on_link: &(dyn Fn(IpAddr) -> bool + Send + Sync),
) -> ProbeResults {
    let now = || Instant::now().into_std();
    let mut run = Run::new(plan, trusted, config, now());
    let mut attempts = JoinSet::new();
    let mut orders = HashMap::new();
    let mut counted = 0;
    loop {
        while let Some(order) = run.next_attempt(now()) {
            let network = network.clone();
            let task = attempts.spawn(async move { network.attempt(order).await });
            orders.insert(task.id(), order.id);
        }
        if run.wants_witness() {
            // Nothing ordinary of the family asked for is under way; the other family's
            // answers wait one round trip, which only delays their ICMP credit.
            let answer = witness.ask().await;
            run.on_witness(answer, |ip| on_link(ip) && witness.covers(ip), now());
            continue;
        }
        done.fetch_add(run.settled() - counted, Ordering::Relaxed);
        counted = run.settled();
        if run.is_finished(now()) {
            break;
        }
        let Some(wake) = run.poll_timeout(now()) else { break };
        tokio::select! {
            Some(joined) = attempts.join_next_with_id(), if !attempts.is_empty() => {
                // An attempt that panicked heard nothing.
                let (task, answer) = joined.unwrap_or_else(|e| (e.id(), AttemptAnswer::silence()));
                if let Some(id) = orders.remove(&task) {
                    run.on_answer(id, answer, now());
                }
            }
            () = tokio::time::sleep_until(Instant::from_std(wake)) => {}
        }
    }
    // Attempts still under way when the run ends are abandoned (dropping the set
    // aborts them): the run reports them as timeouts.
    drop(attempts);
    run.finish()
}

/// The real network: this host's TCP and UDP sockets.
#[derive(Debug, Clone, Copy)]
pub struct Sockets {
    /// The session the knocks name.
    pub session: [u8; 16],
    /// The key of the MAC that the agent's test listeners answer a knock with.
    pub key: [u8; 32],
}

impl Network for Sockets {
    async fn attempt(&self, order: AttemptOrder) -> AttemptAnswer {
        match (order.kind, order.proto) {
            (ProbeKind::Listener, proto) => {
                // A fresh nonce per attempt: a reply cannot be replayed from another.
                let mut nonce = [0u8; 16];
                rand::rngs::OsRng.fill_bytes(&mut nonce);
                let knock = Knock { session: self.session, nonce };
                match proto {
                    Proto::Tcp => tcp_attempt(&order, &knock, &self.key).await,
                    Proto::Udp => udp_attempt(&order, &knock, &self.key).await,
                }
            }
            (ProbeKind::Service, Proto::Tcp) => service_tcp(&order).await,
            (ProbeKind::Service, Proto::Udp) => service_udp(order.target, order.timeout).await,
        }
    }
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

/// Connect; then a banner the server sends first, or the answer to a minimal HTTP
/// request, tells `open` (with its HTTP status) from `empty_reply` and `reset`.
async fn service_tcp(order: &AttemptOrder) -> AttemptAnswer {
    let (target, deadline) = (order.target, order.timeout);
    let (mut stream, rtt) = match connect(order).await {
        Ok(connected) => connected,
        Err(answer) => return answer,
    };
    let answer =
        |outcome, errno, http_status| AttemptAnswer { errno, http_status, ..AttemptAnswer::answered(outcome, rtt) };
    let mut buf = [0u8; 256];
    // A banner (SSH, SMTP…) comes by itself; an empty reply closes at once.
    let wait = deadline.max(BANNER_WAIT_FLOOR);
    let first = match timeout(wait, stream.read(&mut buf)).await {
        Ok(Ok(0)) => return answer(Outcome::EmptyReply, None, None),
        Ok(Ok(n)) => Some(n),
        Ok(Err(e)) => return answer(reset_or_foreign(&e), e.raw_os_error(), None),
        Err(_) => None,
    };
    if let Some(n) = first {
        return answer(Outcome::Open, None, http_status(&buf[..n]));
    }
    if let Err(e) = stream.write_all(http_request(&target.to_string()).as_bytes()).await {
        return answer(reset_or_foreign(&e), e.raw_os_error(), None);
    }
    let mut got = 0;
    let reply = timeout(deadline * ANSWER_WAIT_FACTOR, async {
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
    match reply {
        Ok(Err(e)) if got == 0 => answer(reset_or_foreign(&e), e.raw_os_error(), None),
        Ok(_) if got == 0 => answer(Outcome::EmptyReply, None, None),
        // Accepted and kept open without answering: a server of another protocol.
        Err(_) if got == 0 => answer(Outcome::Open, None, None),
        _ => answer(Outcome::Open, None, http_status(&buf[..got])),
    }
}

fn reset_or_foreign(e: &std::io::Error) -> Outcome {
    match e.kind() {
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => Outcome::Reset,
        _ => Outcome::Foreign,
    }
}

/// UDP: the requests [`payload::for_port`] chooses, [`UDP_PAYLOAD_GAP`] apart, until one
/// is answered (`open`) or an ICMP error comes back; then `deadline` for a late answer.
/// Silence stays silence: whether the datagrams arrived is for the agent's inside view
/// (its connection-tracking table) to say, found by the source port reported here.
async fn service_udp(target: SocketAddr, deadline: Duration) -> AttemptAnswer {
    let started = Instant::now();
    let fail = |e: std::io::Error, port| AttemptAnswer { source_port: port, ..classify(&e, started.elapsed()) };
    let socket = match connected_udp(target).await {
        Ok(s) => s,
        Err(e) => return fail(e, None),
    };
    let port = socket.local_addr().ok().map(|a| a.port());
    let payloads = payload::for_port(target.port());
    let mut buf = [0u8; 2048];
    for (i, p) in payloads.iter().enumerate() {
        if let Err(e) = socket.send(&p.bytes()).await {
            return fail(e, port);
        }
        let wait = if i + 1 == payloads.len() { deadline } else { UDP_PAYLOAD_GAP };
        match timeout(wait, socket.recv(&mut buf)).await {
            Err(_) => continue,
            Ok(Err(e)) => return fail(e, port),
            Ok(Ok(_)) => {
                return AttemptAnswer {
                    source_port: port,
                    ..AttemptAnswer::answered(Outcome::Open, started.elapsed())
                };
            }
        }
    }
    AttemptAnswer { source_port: port, ..AttemptAnswer::silence() }
}

/// A UDP socket connected to `target`: only a connected socket sees ICMP
/// port-unreachable (as ECONNREFUSED).
async fn connected_udp(target: SocketAddr) -> std::io::Result<UdpSocket> {
    let local: SocketAddr = if target.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(target).await?;
    Ok(socket)
}

/// Sends `payload` from a connected UDP socket, `tries` times spread over `deadline`
/// while nothing answers (a lost datagram or reply costs no attempt), and waits for one
/// datagram: its length and round trip, or what the attempt found instead (silence,
/// refused, unreachable).
async fn udp_exchange(
    target: SocketAddr,
    payload: &[u8],
    buf: &mut [u8],
    deadline: Duration,
    tries: usize,
) -> Result<(usize, Duration), AttemptAnswer> {
    let started = Instant::now();
    let fail = |e: std::io::Error| classify(&e, started.elapsed());
    let socket = connected_udp(target).await.map_err(fail)?;
    let tries = tries.max(1);
    let gap = deadline / tries as u32;
    for sent in 1..=tries {
        socket.send(payload).await.map_err(fail)?;
        let wait = if sent == tries { deadline.saturating_sub(started.elapsed()) } else { gap };
        match timeout(wait, socket.recv(buf)).await {
            Err(_) => continue,
            Ok(Err(e)) => return Err(fail(e)),
            Ok(Ok(n)) => return Ok((n, started.elapsed())),
        }
    }
    Err(AttemptAnswer::silence())
}

/// Maps a socket error to an outcome; `None` for errors that mean silence.
fn classify(e: &std::io::Error, rtt: Duration) -> AttemptAnswer {
    use std::io::ErrorKind::*;
    let errno = e.raw_os_error();
    let outcome = match e.kind() {
        ConnectionRefused => Some(Outcome::Refused),
        ConnectionReset | ConnectionAborted | BrokenPipe => Some(Outcome::Reset),
        TimedOut => None,
        HostUnreachable | NetworkUnreachable | AddrNotAvailable => Some(Outcome::Unreachable),
        _ => Some(Outcome::Unreachable),
    };
    AttemptAnswer { rtt: outcome.map(|_| rtt), outcome, errno, ..AttemptAnswer::default() }
}

/// Connects for `order`: the first answer within `order.connect_timeout` (a connection
/// and its round trip, or a refusal or ICMP error), else silence. An ordinary attempt
/// sends another SYN on a fresh socket every `timeout / CONNECT_TRIES` while nothing
/// has answered (up to [`CONNECT_TRIES`] in all): the OS would resend a lost SYN only
/// after a second, so on a lossy link one lost SYN or SYN-ACK would otherwise cost the
/// attempt. A quiet re-probe sends one SYN (and waits for its retransmission): the ICMP
/// errors it may draw are counted (see [`crate::run`]).
async fn connect(order: &AttemptOrder) -> Result<(TcpStream, Duration), AttemptAnswer> {
    let tries = if order.quiet { 1 } else { CONNECT_TRIES };
    let spacing = order.timeout / CONNECT_TRIES as u32;
    let started = Instant::now();
    let deadline = started + order.connect_timeout;
    let target = order.target;
    let mut connects = JoinSet::new();
    let (mut next, mut made) = (started, 0);
    loop {
        if made < tries && Instant::now() >= next {
            connects.spawn(async move {
                let at = Instant::now();
                (TcpStream::connect(target).await, at.elapsed())
            });
            made += 1;
            next += spacing;
            continue;
        }
        let wake = if made < tries { next.min(deadline) } else { deadline };
        tokio::select! {
            Some(joined) = connects.join_next(), if !connects.is_empty() => match joined {
                Ok((Ok(stream), rtt)) => return Ok((stream, rtt)),
                Ok((Err(e), rtt)) => return Err(classify(&e, rtt)),
                Err(_) => {}
            },
            () = tokio::time::sleep_until(wake) => {
                if Instant::now() >= deadline {
                    break;
                }
            }
        }
    }
    Err(AttemptAnswer::silence())
}

/// TCP knock: connect, send the knock, and read the reply; only this session's MAC is
/// `open`.
async fn tcp_attempt(order: &AttemptOrder, knock: &Knock, key: &[u8; 32]) -> AttemptAnswer {
    // Connected, the knock and its reply are TCP's to deliver: a lost segment is sent
    // again after the minimum retransmission timeout, so the reply may take that long.
    let deadline = order.timeout.max(KNOCK_REPLY_WAIT);
    let (mut stream, connected) = match connect(order).await {
        Ok(connected) => connected,
        Err(answer) => return answer,
    };
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
    let done = |outcome| AttemptAnswer::answered(outcome, connected);
    match read {
        // Accepted, but nothing answered in time: another program that waits for a
        // request of its own.
        Err(_) => done(Outcome::Foreign),
        Ok(Err(e)) if got == 0 => match classify(&e, connected) {
            reset @ AttemptAnswer { outcome: Some(Outcome::Reset), .. } => reset,
            _ => done(Outcome::Foreign),
        },
        Ok(Err(_)) => done(Outcome::Foreign),
        Ok(Ok(())) if got == 0 => done(Outcome::EmptyReply),
        Ok(Ok(())) if knock.verify_reply(key, Proto::Tcp, &reply[..got]) => done(Outcome::Open),
        Ok(Ok(())) => done(Outcome::Foreign),
    }
}

/// UDP knock: the knock in one datagram; only a reply with this session's MAC is `open`.
/// A quiet re-probe sends one datagram: the ICMP error it may draw is counted.
async fn udp_attempt(order: &AttemptOrder, knock: &Knock, key: &[u8; 32]) -> AttemptAnswer {
    let mut buf = [0u8; 512];
    let tries = if order.quiet { 1 } else { UDP_KNOCK_TRIES };
    match udp_exchange(order.target, &knock.encode(), &mut buf, order.timeout, tries).await {
        Ok((n, rtt)) => {
            let outcome = if knock.verify_reply(key, Proto::Udp, &buf[..n]) { Outcome::Open } else { Outcome::Foreign };
            AttemptAnswer::answered(outcome, rtt)
        }
        Err(answer) => answer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::{PlannedProbe, ServiceProbe};

    /// Real sockets on loopback: the knock is sent to an address not yet known to be
    /// the agent's, and only a reply with this session's MAC lets the rest of the
    /// probes there go out. Trusted, the address is probed in full.
    #[tokio::test]
    async fn the_knock_verifies_an_address_on_loopback() {
        /// A test listener on 127.0.0.1 that answers knocks with `key`'s MAC.
        async fn knock_server(key: [u8; 32]) -> u16 {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let port = l.local_addr().expect("addr").port();
            tokio::spawn(async move {
                while let Ok((mut s, _)) = l.accept().await {
                    let mut buf = [0u8; KNOCK_LEN];
                    if s.read_exact(&mut buf).await.is_ok()
                        && let Some(knock) = Knock::parse(&buf)
                    {
                        let _ = s.write_all(&knock.reply(&key, Proto::Tcp)).await;
                    }
                }
            });
            port
        }
        let closed = || std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let here = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let (key, p2, p3) = ([2; 32], closed(), closed());
        let plan = |knock: u16| ProbePlan {
            session: [1; 16],
            key,
            probes: vec![
                PlannedProbe { id: 0, proto: Proto::Tcp, bind: ([0, 0, 0, 0], knock).into(), target: here(knock) },
                PlannedProbe { id: 1, proto: Proto::Tcp, bind: here(p2), target: here(p2) },
            ],
            services: vec![ServiceProbe { id: 0, proto: Proto::Tcp, target: here(p3) }],
        };
        let config = EngineConfig { attempt_timeout: Duration::from_millis(200), concurrency: 8 };
        let outcomes = |r: ProbeResults| (r.results[0].outcome, r.results[1].outcome, r.services[0].outcome);
        let (closed_knock, ours, not_ours) = (closed(), knock_server(key).await, knock_server([3; 32]).await);

        let r = run(&plan(closed_knock), config, &[], &NoWitness).await;
        assert_eq!(r.results[0].attempts, 1, "the knock itself is sent");
        // What refused it is not reported: only that the address is not the agent.
        assert_eq!(outcomes(r), (Outcome::NotProbed, Outcome::NotProbed, Outcome::NotProbed));
        let r = run(&plan(not_ours), config, &[], &NoWitness).await;
        assert_eq!(
            outcomes(r),
            (Outcome::NotProbed, Outcome::NotProbed, Outcome::NotProbed),
            "a wrong MAC proves nothing, and what answered is not reported"
        );
        let r = run(&plan(ours), config, &[], &NoWitness).await;
        assert_eq!(outcomes(r), (Outcome::Open, Outcome::Refused, Outcome::Refused), "verified by the knock");
        let r = run(&plan(closed_knock), config, &["127.0.0.1".parse().expect("ip")], &NoWitness).await;
        assert_eq!(outcomes(r), (Outcome::Refused, Outcome::Refused, Outcome::Refused), "trusted: probed in full");
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
        let results = run(&plan, config, &["127.0.0.1".parse().expect("ip")], &NoWitness).await.services;
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

    /// Real UDP servers on loopback, probed as the user's ports: one that answers only a
    /// DNS query (the second request sent), an echo server (the empty datagram), a closed
    /// port, and one that never answers. Each attempt reports its source port.
    #[tokio::test]
    async fn udp_services_are_asked_in_their_own_terms() {
        async fn serve(answers: fn(&[u8]) -> bool) -> (SocketAddr, Arc<std::sync::Mutex<Vec<(u16, usize)>>>) {
            let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            let addr = s.local_addr().expect("addr");
            let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
            let log = seen.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                while let Ok((n, from)) = s.recv_from(&mut buf).await {
                    log.lock().expect("log").push((from.port(), n));
                    if answers(&buf[..n]) {
                        let _ = s.send_to(&buf[..n], from).await;
                    }
                }
            });
            (addr, seen)
        }
        let (dns, dns_seen) = serve(|d| d.len() > 12 && d[..2] == *b"LR").await;
        let (echo, _) = serve(|_| true).await;
        let (deaf, deaf_seen) = serve(|_| false).await;
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
        let services = [dns, echo, closed, deaf]
            .iter()
            .enumerate()
            .map(|(i, t)| ServiceProbe { id: i as u32, proto: Proto::Udp, target: *t })
            .collect();
        let plan = ProbePlan { session: [0; 16], key: [0; 32], probes: vec![], services };
        let config = EngineConfig { attempt_timeout: Duration::from_millis(200), concurrency: 8 };
        let r = run(&plan, config, &["127.0.0.1".parse().expect("ip")], &NoWitness).await.services;
        let got: Vec<(Outcome, u8)> = r.iter().map(|r| (r.outcome, r.attempts)).collect();
        assert_eq!(got, [(Outcome::Open, 1), (Outcome::Open, 1), (Outcome::Refused, 1), (Outcome::Timeout, 2)]);
        let dns_seen = dns_seen.lock().expect("log").clone();
        assert_eq!(dns_seen.iter().map(|(_, n)| *n).collect::<Vec<_>>(), [0, 17], "empty datagram, then DNS");
        assert_eq!(r[0].source_ports, [dns_seen[0].0]);
        // The silent one got every request, twice, from the two ports reported.
        let deaf_seen = deaf_seen.lock().expect("log").clone();
        assert_eq!(deaf_seen.len(), 2 * payload::for_port(deaf.port()).len());
        let ports: Vec<u16> = deaf_seen.iter().map(|(p, _)| *p).collect();
        assert_eq!(r[3].source_ports.len(), 2);
        assert!(ports.iter().all(|p| r[3].source_ports.contains(p)), "{ports:?} vs {:?}", r[3].source_ports);
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
        let results = run(&plan, config, &["127.0.0.1".parse().expect("ip")], &NoWitness).await.results;
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

/// The engine loop over a simulated network on tokio's paused clock: no sockets, no
/// real waiting.
#[cfg(test)]
mod simulated {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;
    use crate::defaults::RUN_DEADLINE;
    use crate::vocab::{PlannedProbe, ServiceProbe};

    /// How a simulated host treats every attempt.
    #[derive(Debug, Clone, Copy)]
    enum Host {
        /// The agent: test listeners answer the knock, services answer HTTP 200.
        Agent,
        /// Another host: everything refused at once.
        Stranger,
        /// Nothing comes back before the attempt's deadline.
        Silent,
        /// An attempt never ends by itself.
        Hang,
    }

    /// A table of address → behaviour, and a log of every attempt made.
    struct Fake {
        hosts: HashMap<IpAddr, Host>,
        log: Mutex<Vec<AttemptOrder>>,
    }

    impl Fake {
        fn new(hosts: &[(&str, Host)]) -> Arc<Fake> {
            let hosts = hosts.iter().map(|(ip, host)| (ip.parse().expect("ip"), *host)).collect();
            Arc::new(Fake { hosts, log: Mutex::new(Vec::new()) })
        }

        /// The attempts made at `ip`: (kind, probe ID, attempt number).
        fn sent_to(&self, ip: &str) -> Vec<(ProbeKind, u32, u8)> {
            let ip: IpAddr = ip.parse().expect("ip");
            let log = self.log.lock().expect("log");
            log.iter().filter(|o| o.target.ip() == ip).map(|o| (o.kind, o.probe, o.attempt)).collect()
        }
    }

    impl Network for Fake {
        async fn attempt(&self, order: AttemptOrder) -> AttemptAnswer {
            self.log.lock().expect("log").push(order);
            let rtt = Duration::from_millis(1);
            match self.hosts.get(&order.target.ip()).copied().unwrap_or(Host::Stranger) {
                Host::Agent => {
                    tokio::time::sleep(rtt).await;
                    let http_status = (order.kind == ProbeKind::Service).then_some(200);
                    AttemptAnswer { http_status, ..AttemptAnswer::answered(Outcome::Open, rtt) }
                }
                Host::Stranger => AttemptAnswer { errno: Some(111), ..AttemptAnswer::answered(Outcome::Refused, rtt) },
                Host::Silent => {
                    tokio::time::sleep(order.connect_timeout.max(order.timeout)).await;
                    AttemptAnswer::silence()
                }
                Host::Hang => std::future::pending().await,
            }
        }
    }

    fn listener(id: u32, proto: Proto, bind: &str, target: &str) -> PlannedProbe {
        PlannedProbe { id, proto, bind: bind.parse().expect("bind"), target: target.parse().expect("target") }
    }

    fn service(id: u32, target: &str) -> ServiceProbe {
        ServiceProbe { id, proto: Proto::Tcp, target: target.parse().expect("target") }
    }

    fn plan(probes: Vec<PlannedProbe>, services: Vec<ServiceProbe>) -> ProbePlan {
        ProbePlan { session: [1; 16], key: [2; 32], probes, services }
    }

    const CONFIG: EngineConfig = EngineConfig { attempt_timeout: Duration::from_secs(3), concurrency: 8 };

    /// The agent at 127.0.0.1 proves itself by the knock; the stranger at 127.0.0.2
    /// refuses it and sees nothing else; 127.0.0.3 is trusted and probed in full; ::1
    /// stays silent to its knock (tried twice) and sees nothing else.
    #[tokio::test(start_paused = true)]
    async fn only_proven_addresses_see_more_than_the_knock() {
        let network = Fake::new(&[
            ("127.0.0.1", Host::Agent),
            ("127.0.0.2", Host::Stranger),
            ("127.0.0.3", Host::Stranger),
            ("::1", Host::Silent),
        ]);
        let plan = plan(
            vec![
                listener(0, Proto::Tcp, "0.0.0.0:1000", "127.0.0.1:1000"),
                listener(1, Proto::Udp, "0.0.0.0:1001", "127.0.0.1:1001"),
                listener(2, Proto::Tcp, "127.0.0.1:1002", "127.0.0.1:1002"),
                listener(3, Proto::Tcp, "0.0.0.0:1000", "127.0.0.2:1000"),
                listener(4, Proto::Tcp, "127.0.0.2:1003", "127.0.0.2:1003"),
                listener(5, Proto::Tcp, "0.0.0.0:1000", "127.0.0.3:1000"),
                listener(6, Proto::Tcp, "[::]:1000", "[::1]:1000"),
                listener(7, Proto::Tcp, "[::1]:1004", "[::1]:1004"),
            ],
            vec![
                service(0, "127.0.0.1:80"),
                service(1, "127.0.0.2:80"),
                service(2, "127.0.0.3:80"),
                service(3, "[::1]:80"),
            ],
        );
        let done = Arc::new(AtomicUsize::new(0));
        let r = drive(
            network.clone(),
            &plan,
            CONFIG,
            done.clone(),
            &["127.0.0.3".parse().expect("ip")],
            &NoWitness,
            &|_| true,
        )
        .await;

        use Outcome::*;
        let outcomes: Vec<Outcome> = r.results.iter().map(|r| r.outcome).collect();
        // The stranger's refusal reaches the agent only as "not the agent" (not_probed);
        // the silent ::1 as "silent" (timeout).
        assert_eq!(outcomes, [Open, Open, Open, NotProbed, NotProbed, Refused, Timeout, NotProbed]);
        let services: Vec<(Outcome, Option<u16>)> = r.services.iter().map(|r| (r.outcome, r.http_status)).collect();
        assert_eq!(services, [(Open, Some(200)), (NotProbed, None), (Refused, None), (NotProbed, None)]);
        assert_eq!((r.results[3].errno, r.results[3].rtt_us, r.results[6].attempts), (None, None, 2));

        assert_eq!(network.sent_to("127.0.0.2"), [(ProbeKind::Listener, 3, 1)], "the stranger saw only the knock");
        assert_eq!(network.sent_to("::1"), [(ProbeKind::Listener, 6, 1), (ProbeKind::Listener, 6, 2)]);
        let agent = network.sent_to("127.0.0.1");
        assert_eq!(agent.len(), 4);
        assert!(agent[..2].iter().all(|(_, id, _)| *id <= 1), "knocks first: {agent:?}");
        assert_eq!(network.sent_to("127.0.0.3").len(), 2, "trusted: no knock needed");
        assert_eq!(done.load(Ordering::Relaxed), 12, "every probe counted once, not_probed included");
    }

    /// A silent network: each probe is tried twice. The test listener at a specific
    /// address is retried at once; the user's port is re-probed quietly once its
    /// family's traffic has been quiet for two ICMP windows, with its connect waiting
    /// past the SYN retransmission. All on the paused clock.
    #[tokio::test(start_paused = true)]
    async fn silence_ends_the_run_after_the_retry() {
        use crate::defaults::{ICMP_RATE_WINDOW, SYN_RETRANSMIT};
        let (start, real) = (Instant::now(), std::time::Instant::now());
        let plan =
            plan(vec![listener(0, Proto::Tcp, "127.0.0.1:1000", "127.0.0.1:1000")], vec![service(0, "127.0.0.1:80")]);
        let network = Fake::new(&[("127.0.0.1", Host::Silent)]);
        let done = Arc::new(AtomicUsize::new(0));
        let r = drive(network, &plan, CONFIG, done, &["127.0.0.1".parse().expect("ip")], &NoWitness, &|_| true).await;
        assert_eq!((r.results[0].outcome, r.results[0].attempts), (Outcome::Timeout, 2));
        assert_eq!((r.services[0].outcome, r.services[0].attempts), (Outcome::Timeout, 2));
        let took = start.elapsed();
        let expected = CONFIG.attempt_timeout * 3 + ICMP_RATE_WINDOW * 2 + SYN_RETRANSMIT;
        assert!(took >= expected && took < expected + Duration::from_millis(50), "{took:?}");
        assert!(real.elapsed() < CONFIG.attempt_timeout, "no real waiting");
    }

    /// Attempts that never end: the run ends at the run deadline; what was under way is
    /// a timeout, what waited for an unproven address is not probed.
    #[tokio::test(start_paused = true)]
    async fn a_hanging_network_ends_at_the_run_deadline() {
        let (start, real) = (Instant::now(), std::time::Instant::now());
        let plan = plan(
            vec![
                listener(0, Proto::Tcp, "127.0.0.1:1000", "127.0.0.1:1000"),
                listener(1, Proto::Udp, "0.0.0.0:1001", "127.0.0.2:1001"),
                listener(2, Proto::Udp, "127.0.0.2:1002", "127.0.0.2:1002"),
            ],
            vec![service(0, "127.0.0.1:80")],
        );
        let network = Fake::new(&[("127.0.0.1", Host::Hang), ("127.0.0.2", Host::Hang)]);
        let done = Arc::new(AtomicUsize::new(0));
        let r = drive(
            network.clone(),
            &plan,
            CONFIG,
            done.clone(),
            &["127.0.0.1".parse().expect("ip")],
            &NoWitness,
            &|_| true,
        )
        .await;
        let outcomes: Vec<Outcome> = r.results.iter().map(|r| r.outcome).collect();
        assert_eq!(outcomes, [Outcome::Timeout, Outcome::Timeout, Outcome::NotProbed]);
        assert_eq!(r.services[0].outcome, Outcome::Timeout);
        assert_eq!(network.sent_to("127.0.0.2"), [(ProbeKind::Listener, 1, 1)]);
        let took = start.elapsed();
        assert!(took >= RUN_DEADLINE && took < RUN_DEADLINE + Duration::from_millis(50), "{took:?}");
        assert!(real.elapsed() < Duration::from_secs(10), "no real waiting");
        assert_eq!(done.load(Ordering::Relaxed), 0, "nothing settled before the deadline");
    }
}
