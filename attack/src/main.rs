//! `lanreach-attack`: what a hostile machine on the LAN does to lanreach, for the
//! project's own tests and benchmarks. Every attack is bounded in count and time and
//! stops by itself; the tests run it inside network namespaces against documentation
//! addresses only. It prints one `key=value` line of what it achieved, for the tests to
//! read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use lanreach_proto::PairingCode;
use lanreach_proto::channel::Channel;
use lanreach_proto::defaults::PROTOCOL_VERSION;
use lanreach_proto::endpoint::identity::Identity;
use lanreach_proto::endpoint::quic;
use lanreach_proto::handshake::{self, HandshakeError};
use lanreach_proto::msg::{Message, Start, StartAuth};
use lanreach_proto::pairing::PeerPairing;
use lanreach_proto::sync::lock;
use rand::rngs::OsRng;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};

#[derive(Debug, Parser)]
#[command(name = "lanreach-attack", about = "Hostile LAN clients for lanreach's robustness tests")]
struct Cli {
    #[command(subcommand)]
    attack: Attack,
}

#[derive(Debug, Subcommand)]
enum Attack {
    /// Opens as many streams as the agent allows on each connection and fills them
    /// without the agent ever reading, then holds the connections open.
    Streams {
        /// The agent's control address.
        target: SocketAddr,
        /// Connections to open.
        #[arg(long, default_value_t = 2)]
        connections: usize,
        /// Bidirectional and unidirectional streams to try per connection.
        #[arg(long, default_value_t = 100)]
        streams: usize,
        /// Bytes to write on each stream.
        #[arg(long, default_value_t = 1_200_000)]
        bytes: usize,
        /// Seconds to hold the connections open afterwards.
        #[arg(long, default_value_t = 3)]
        hold: u64,
    },
    /// Opens TCP connections to the targets (round robin) and holds them open without
    /// sending a byte, as if to exhaust the test listeners.
    IdleTcp {
        /// Test listener addresses.
        #[arg(required = true)]
        targets: Vec<SocketAddr>,
        /// Connections in all.
        #[arg(long, default_value_t = 400)]
        count: usize,
        /// Seconds to hold them open.
        #[arg(long, default_value_t = 5)]
        hold: u64,
    },
    /// A fake agent: pairs with a peer, claims a bystander's addresses as its own, plans
    /// a scan of them and prints what the peer's results tell about the bystander.
    FakeAgent {
        /// Where to serve the control channel.
        #[arg(long)]
        listen: SocketAddr,
        /// The pairing code the peer will type.
        #[arg(long)]
        code: String,
        /// An address to claim as the agent's own (a bystander's); repeatable.
        #[arg(long = "claim", required = true)]
        claims: Vec<std::net::IpAddr>,
        /// Ports 1..=N to plan at each claimed address (TCP and UDP, listeners and services).
        #[arg(long, default_value_t = 512)]
        ports: u16,
        /// Seconds to wait for the peer.
        #[arg(long, default_value_t = 20)]
        wait: u64,
        /// What to do after pairing: `scan` (send the plan, collect results), `shutdown`
        /// (send the plan, then close as an agent stopped with Ctrl-C), `stall` (send
        /// nothing and print how the peer closes), `mute-witness` (plan one probe of TCP
        /// port 9 at its own address, answer pings but never the ICMP witness question,
        /// and print how the peer ends).
        #[arg(long, default_value = "scan")]
        then: String,
    },
    /// A fake peer: pairs with an agent, then misbehaves as `--then` says and prints how
    /// the agent answered.
    FakePeer {
        /// The agent's control address.
        target: SocketAddr,
        /// The pairing code the agent printed.
        #[arg(long)]
        code: String,
        /// `stop` (close as a peer stopped with Ctrl-C once the plan arrived), `hello`
        /// (a Hello listing 300 addresses), `pings` (ping without end), `results` (40,000
        /// results with IDs the plan does not have).
        #[arg(long, default_value = "stop")]
        then: String,
    },
    /// Completes QUIC and TLS, then says nothing: holds each connection until the agent
    /// closes it or the attack ends.
    Silent {
        /// The agent's control address.
        target: SocketAddr,
        /// Connections to open.
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// New connections per second.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Local addresses to connect from, in turn (comma-separated) [default: any]
        #[arg(long, value_delimiter = ',')]
        from: Vec<IpAddr>,
        /// Seconds to keep the connections after the last one was opened.
        #[arg(long, default_value_t = 3)]
        hold: u64,
    },
    /// Sends one genuine QUIC Initial per connection and never answers: half-open
    /// connections, as from spoofed addresses.
    Initials {
        /// The agent's control address.
        target: SocketAddr,
        /// Initials to send (one connection each).
        #[arg(long, default_value_t = 4000)]
        count: usize,
        /// Initials per second.
        #[arg(long, default_value_t = 400.0)]
        rate: f64,
        /// Local addresses to send from, in turn (comma-separated) [default: any]
        #[arg(long, value_delimiter = ',')]
        from: Vec<IpAddr>,
    },
    /// Burns pairing attempts: wrong codes, attempts that take the agent's reply and never
    /// confirm, and connections that open the stream and never send Start.
    Guess {
        /// The agent's control address.
        target: SocketAddr,
        /// Attempts with a random (wrong) code.
        #[arg(long, default_value_t = 100)]
        wrong: usize,
        /// Attempts that read the agent's PairReply and never confirm.
        #[arg(long, default_value_t = 50)]
        stall_confirm: usize,
        /// Connections that open the stream and never send Start.
        #[arg(long, default_value_t = 50)]
        stall_start: usize,
        /// Attempts started per second, all kinds together.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// Local addresses to connect from, in turn (comma-separated) [default: any]
        #[arg(long, value_delimiter = ',')]
        from: Vec<IpAddr>,
        /// Seconds a stalled attempt waits at most for the agent to give up on it.
        #[arg(long, default_value_t = 12)]
        hold: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lanreach-attack: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.attack {
            Attack::Streams { target, connections, streams, bytes, hold } => {
                self::streams(target, connections, streams, bytes, Duration::from_secs(hold)).await
            }
            Attack::IdleTcp { targets, count, hold } => idle_tcp(&targets, count, Duration::from_secs(hold)).await,
            Attack::FakeAgent { listen, code, claims, ports, wait, then } => {
                fake_agent(listen, &code, &claims, ports, Duration::from_secs(wait), &then).await
            }
            Attack::FakePeer { target, code, then } => fake_peer(target, &code, &then).await,
            Attack::Silent { target, count, rate, from, hold } => {
                silent(target, count, Rate::new(rate)?, &from, Duration::from_secs(hold)).await
            }
            Attack::Initials { target, count, rate, from } => initials(target, count, Rate::new(rate)?, &from).await,
            Attack::Guess { target, wrong, stall_confirm, stall_start, rate, from, hold } => {
                let kinds = interleave(&[
                    (Kind::Wrong, wrong),
                    (Kind::StallConfirm, stall_confirm),
                    (Kind::StallStart, stall_start),
                ]);
                guess(target, &kinds, Rate::new(rate)?, &from, Duration::from_secs(hold)).await
            }
        }
    });
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lanreach-attack: {e}");
            ExitCode::from(2)
        }
    }
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Connections per second, checked once: positive, at most 10,000.
#[derive(Debug, Clone, Copy)]
struct Rate(f64);

impl Rate {
    fn new(per_second: f64) -> Result<Rate, Error> {
        if per_second > 0.0 && per_second <= 10_000.0 {
            Ok(Rate(per_second))
        } else {
            Err(format!("--rate {per_second}: give a number between 0 and 10000").into())
        }
    }

    fn ticker(self) -> tokio::time::Interval {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / self.0));
        // Behind schedule (a slow machine), keep the rate rather than burst.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick
    }
}

/// A throw-away identity (its directory is removed with the guard).
fn identity() -> Result<(Identity, tempfile::TempDir), Error> {
    let dir = tempfile::tempdir()?;
    let (identity, _) = Identity::load_or_create(dir.path(), "mallory")?;
    Ok((identity, dir))
}

/// The unspecified address of `target`'s family.
fn any_of(target: SocketAddr) -> IpAddr {
    if target.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() }
}

/// Client endpoints, one per local address in `from` (one on any address when empty).
fn clients(target: SocketAddr, from: &[IpAddr], identity: &Identity) -> Result<Vec<quinn::Endpoint>, Error> {
    let config = quic::client_config(identity)?;
    let locals = if from.is_empty() { vec![any_of(target)] } else { from.to_vec() };
    locals
        .into_iter()
        .map(|ip| {
            let mut endpoint = quic::endpoint(quic::udp_socket(SocketAddr::new(ip, 0))?, None)?;
            endpoint.set_default_client_config(config.clone());
            Ok(endpoint)
        })
        .collect()
}

/// A client endpoint with a throw-away identity.
fn client(target: SocketAddr) -> Result<(quinn::Endpoint, tempfile::TempDir), Error> {
    let (identity, dir) = identity()?;
    let endpoint = clients(target, &[], &identity)?.pop().ok_or("no endpoint")?;
    Ok((endpoint, dir))
}

/// Writes up to `bytes` on `send`, giving up when flow control stalls it. The stream is
/// neither finished nor reset: the agent keeps whatever it buffered.
async fn fill(send: &mut quinn::SendStream, bytes: usize) -> usize {
    let chunk = vec![0x5a_u8; 16 * 1024];
    let mut written = 0;
    while written < bytes {
        let n = chunk.len().min(bytes - written);
        match timeout(Duration::from_millis(300), send.write_all(&chunk[..n])).await {
            Ok(Ok(())) => written += n,
            _ => break,
        }
    }
    written
}

async fn streams(
    target: SocketAddr,
    connections: usize,
    per_connection: usize,
    bytes: usize,
    hold: Duration,
) -> Result<String, Error> {
    let (endpoint, _dir) = client(target)?;
    let mut held = Vec::new();
    let mut streams = Vec::new();
    let (mut opened, mut written) = (0usize, 0usize);
    for _ in 0..connections {
        let conn = match timeout(Duration::from_secs(5), endpoint.connect(target, quic::SERVER_NAME)?).await {
            Ok(Ok(conn)) => conn,
            _ => continue,
        };
        for _ in 0..per_connection {
            let Ok(Ok((mut send, recv))) = timeout(Duration::from_millis(200), conn.open_bi()).await else { break };
            opened += 1;
            written += fill(&mut send, bytes).await;
            streams.push((send, Some(recv)));
        }
        for _ in 0..per_connection {
            let Ok(Ok(mut send)) = timeout(Duration::from_millis(200), conn.open_uni()).await else { break };
            opened += 1;
            written += fill(&mut send, bytes).await;
            streams.push((send, None));
        }
        held.push(conn);
    }
    eprintln!("holding connections={} streams={opened} bytes={written}", held.len());
    tokio::time::sleep(hold).await;
    let line = format!("connections={} streams={opened} bytes={written}", held.len());
    drop(streams);
    drop(held);
    Ok(line)
}

async fn idle_tcp(targets: &[SocketAddr], count: usize, hold: Duration) -> Result<String, Error> {
    let mut held = Vec::new();
    for target in targets.iter().cycle().take(count) {
        if let Ok(Ok(stream)) = timeout(Duration::from_millis(500), tokio::net::TcpStream::connect(target)).await {
            held.push(stream);
        }
    }
    eprintln!("holding connections={}", held.len());
    // Count the ones the other side has not closed by the end.
    tokio::time::sleep(hold).await;
    let mut open = 0;
    for stream in &held {
        let mut buf = [0u8; 1];
        match stream.try_read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open += 1,
            _ => {}
        }
    }
    Ok(format!("connections={} still_open={open}", held.len()))
}

/// The plan a scanning agent would like: every port at every claimed address, as
/// wildcard test-listener probes (TCP and UDP) and as service probes.
fn scan_plan(claims: &[std::net::IpAddr], ports: u16) -> lanreach_proto::plan::ProbePlan {
    use lanreach_proto::vocab::{PlannedProbe, Proto, ServiceProbe};
    let mut probes = Vec::new();
    let mut services = Vec::new();
    for ip in claims {
        let any: std::net::IpAddr = if ip.is_ipv4() { [0, 0, 0, 0].into() } else { [0u16; 8].into() };
        for port in 1..=ports {
            for proto in [Proto::Tcp, Proto::Udp] {
                let id = u32::try_from(probes.len()).unwrap_or(u32::MAX);
                let (bind, target) = (SocketAddr::new(any, port), SocketAddr::new(*ip, port));
                probes.push(PlannedProbe { id, proto, bind, target });
            }
            let id = u32::try_from(services.len()).unwrap_or(u32::MAX);
            services.push(ServiceProbe { id, proto: Proto::Tcp, target: SocketAddr::new(*ip, port) });
        }
    }
    probes.truncate(lanreach_proto::plan::MAX_PROBES);
    services.truncate(lanreach_proto::plan::MAX_SERVICE_PROBES);
    lanreach_proto::plan::ProbePlan { session: [7; 16], key: [9; 32], probes, services }
}

async fn fake_agent(
    listen: SocketAddr,
    code: &str,
    claims: &[std::net::IpAddr],
    ports: u16,
    wait: Duration,
    then: &str,
) -> Result<String, Error> {
    use lanreach_proto::channel::Channel;
    use lanreach_proto::code::CodeBook;
    use lanreach_proto::msg::{Hello, HelloAddress, Message, ReportJson};
    use lanreach_proto::vocab::Outcome;
    use lanreach_proto::{conversation, handshake};
    use rand::SeedableRng;

    let (identity, _dir) = identity()?;
    let endpoint = quic::endpoint(quic::udp_socket(listen)?, Some(quic::server_config(&identity)?))?;
    eprintln!("fake agent ready on {listen}");
    let incoming = timeout(wait, endpoint.accept()).await?.ok_or("endpoint closed")?;
    let conn = incoming.await?;
    let peer_id = quic::remote_key_id(&conn)?;
    let binding = quic::binding(&conn, identity.id, peer_id)?;
    let (send, recv) = conn.accept_bi().await?;
    let mut ch = Channel::new(recv, send);
    let codes = std::sync::Mutex::new(CodeBook::new(code.parse()?, rand::rngs::StdRng::from_entropy()));
    let from = handshake::Requester {
        source: lanreach_proto::addr::Source::of(conn.remote_address().ip()),
        now: std::time::Instant::now(),
    };
    handshake::agent_handshake(&mut ch, &codes, false, from, &binding, &mut rand::rngs::OsRng).await?;
    if then == "stall" {
        eprintln!("stalling");
        let reason = timeout(Duration::from_secs(30), conn.closed()).await?;
        return Ok(match reason {
            quinn::ConnectionError::ApplicationClosed(c) => format!("closed code={}", c.error_code),
            other => format!("closed {other}"),
        });
    }
    let mut addresses = vec![HelloAddress { ip: listen.ip(), interface: "eth0".into() }];
    addresses.extend(claims.iter().map(|ip| HelloAddress { ip: *ip, interface: "eth0".into() }));
    let hello = Hello { name: "box".into(), os: "linux".into(), software: "lanreach-agent 0.1.0".into(), addresses };
    conversation::hello_as_agent(&mut ch, hello).await?;
    if then == "mute-witness" {
        use lanreach_proto::vocab::{Proto, ServiceProbe};
        let target = SocketAddr::new(listen.ip(), 9);
        let services = vec![ServiceProbe { id: 0, proto: Proto::Tcp, target }];
        let plan = lanreach_proto::plan::ProbePlan { session: [7; 16], key: [9; 32], probes: vec![], services };
        ch.send(&Message::Plan(plan)).await?;
        let mut asked = 0;
        let ended = loop {
            match timeout(Duration::from_secs(30), ch.recv()).await? {
                Ok(Message::Ping(p)) => ch.send(&Message::Pong(p)).await?,
                Ok(Message::Witness(_)) => asked += 1,
                Ok(other) => break format!("then {:?}", other.message_type()),
                Err(e) => break format!("then {e}"),
            }
        };
        return Ok(format!("witness questions={asked} {ended}"));
    }
    let plan = scan_plan(claims, ports);
    ch.send(&Message::Plan(plan.clone())).await?;
    if then == "shutdown" {
        tokio::time::sleep(Duration::from_millis(300)).await;
        eprintln!("stopping");
        conn.close(lanreach_proto::defaults::close::SHUTDOWN.into(), b"agent shutting down");
        endpoint.wait_idle().await;
        return Ok("stopped".into());
    }
    let (results, _) =
        timeout(Duration::from_secs(60), conversation::await_results(&mut ch, &plan, Default::default)).await??;
    // What the results say about the bystander, port by port.
    let mut learnt = std::collections::BTreeMap::<&str, usize>::new();
    let outcomes = results.results.iter().map(|r| r.outcome).chain(results.services.iter().map(|r| r.outcome));
    for outcome in outcomes {
        let key = match outcome {
            Outcome::Open
            | Outcome::Refused
            | Outcome::Reset
            | Outcome::EmptyReply
            | Outcome::Foreign
            | Outcome::Failed => "port",
            Outcome::Timeout => "silent",
            Outcome::Unreachable => "no_route",
            Outcome::NotProbed => "not_probed",
        };
        *learnt.entry(key).or_default() += 1;
    }
    let _ = ch.send(&Message::Report(ReportJson::new("{}"))).await;
    let _ = ch.shutdown().await;
    let _ = timeout(Duration::from_secs(2), conn.closed()).await;
    let counts: Vec<String> = ["port", "silent", "no_route", "not_probed"]
        .iter()
        .map(|k| format!("{k}={}", learnt.get(k).copied().unwrap_or(0)))
        .collect();
    Ok(format!("probes={} {}", plan.probes.len() + plan.services.len(), counts.join(" ")))
}

async fn fake_peer(target: SocketAddr, code: &str, then: &str) -> Result<String, Error> {
    use lanreach_proto::channel::Channel;
    use lanreach_proto::msg::{Hello, HelloAddress, Message};
    use lanreach_proto::vocab::{Outcome, ProbeResult, ProbeResults};
    use lanreach_proto::{conversation, handshake};

    let (identity, _dir) = identity()?;
    let endpoint = clients(target, &[], &identity)?.pop().ok_or("no endpoint")?;
    let conn = timeout(Duration::from_secs(5), endpoint.connect(target, quic::SERVER_NAME)?).await??;
    let agent_id = quic::remote_key_id(&conn)?;
    let binding = quic::binding(&conn, agent_id, identity.id)?;
    let (send, recv) = conn.open_bi().await?;
    let mut ch = Channel::new(recv, send);
    let code = code.parse()?;
    handshake::peer_handshake(&mut ch, "fake-peer", Some(&code), &binding, &mut rand::rngs::OsRng).await?;
    let addresses =
        if then == "hello" { vec![HelloAddress { ip: any_of(target), interface: "eth0".into() }; 300] } else { vec![] };
    let hello = Hello { name: "fake-peer".into(), os: "linux".into(), software: "x".into(), addresses };
    // How the agent answers a misbehaviour: the refusal it sends, read within 5 s.
    let refusal = |e: handshake::HandshakeError| match e {
        handshake::HandshakeError::Rejected { code, detail } => format!("refused code={code:?} detail={detail:?}"),
        other => format!("failed {other}"),
    };
    match then {
        "hello" => {
            return Ok(match conversation::hello_as_peer(&mut ch, hello).await {
                Ok(_) => "accepted".into(),
                Err(e) => refusal(e),
            });
        }
        _ => {
            conversation::hello_as_peer(&mut ch, hello).await?;
        }
    }
    let plan = conversation::recv_plan(&mut ch).await?;
    let answer = match then {
        "pings" => {
            let mut sent = 0u64;
            let outcome = timeout(Duration::from_secs(10), async {
                loop {
                    if let Err(e) = conversation::ping(&mut ch, sent).await {
                        return e;
                    }
                    sent += 1;
                }
            })
            .await;
            match outcome {
                Ok(e) => format!("{} after {sent} pings", refusal(e)),
                Err(_) => format!("still answering after {sent} pings"),
            }
        }
        "results" => {
            let invented = (0..40_000u32)
                .map(|id| ProbeResult {
                    id: id + 7,
                    outcome: Outcome::Open,
                    rtt_us: None,
                    errno: None,
                    attempts: 1,
                    proven: false,
                })
                .collect();
            ch.send(&Message::Results(ProbeResults { results: invented, services: vec![] })).await?;
            match timeout(Duration::from_secs(5), conversation::recv_report(&mut ch)).await {
                Ok(Ok(_)) => "a report came back".into(),
                Ok(Err(e)) => refusal(e),
                Err(_) => "no answer".into(),
            }
        }
        _ => {
            conn.close(lanreach_proto::defaults::close::SHUTDOWN.into(), b"peer stopped");
            endpoint.wait_idle().await;
            return Ok(format!("stopped after a plan of {} probes", plan.probes.len()));
        }
    };
    conn.close(lanreach_proto::defaults::close::DONE.into(), b"done");
    endpoint.wait_idle().await;
    Ok(answer)
}

/// Counters shared by an attack's tasks, printed as `key=value` pairs in a fixed order.
#[derive(Debug, Default)]
struct Tally {
    counts: std::sync::Mutex<Vec<(&'static str, usize)>>,
    /// How long the agent kept connections that said nothing, in milliseconds.
    held: std::sync::Mutex<Vec<u128>>,
}

impl Tally {
    fn new(keys: &[&'static str]) -> Arc<Tally> {
        Arc::new(Tally { counts: std::sync::Mutex::new(keys.iter().map(|k| (*k, 0)).collect()), ..Tally::default() })
    }

    fn add(&self, key: &'static str) {
        let mut counts = lock(&self.counts);
        match counts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => counts.push((key, 1)),
        }
    }

    fn held_for(&self, d: Duration) {
        lock(&self.held).push(d.as_millis());
    }

    fn line(&self, started: Instant) -> String {
        let mut parts: Vec<String> = lock(&self.counts).iter().map(|(k, n)| format!("{k}={n}")).collect();
        let mut held = lock(&self.held).clone();
        held.sort_unstable();
        if let (Some(median), Some(max)) = (held.get(held.len() / 2), held.last()) {
            parts.push(format!("held_median_ms={median} held_max_ms={max}"));
        }
        parts.push(format!("seconds={:.1}", started.elapsed().as_secs_f64()));
        parts.join(" ")
    }
}

/// Starts `one(i, endpoint)` for each `i` below `count` at `rate`, taking the endpoints
/// in turn; then waits for the tasks (`hold` and a little more at most) and stops the
/// rest.
async fn at_rate<F, Fut>(endpoints: &[quinn::Endpoint], count: usize, rate: Rate, hold: Duration, one: F)
where
    F: Fn(usize, quinn::Endpoint) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut tick = rate.ticker();
    let mut tasks = JoinSet::new();
    for i in 0..count {
        tick.tick().await;
        tasks.spawn(one(i, endpoints[i % endpoints.len()].clone()));
        while tasks.try_join_next().is_some() {}
    }
    let _ = timeout(hold + Duration::from_secs(6), async { while tasks.join_next().await.is_some() {} }).await;
    tasks.shutdown().await;
}

/// How a connection attempt ended before QUIC was up.
fn not_up(
    tally: &Tally,
    result: Result<Result<quinn::Connection, quinn::ConnectionError>, tokio::time::error::Elapsed>,
) -> Option<quinn::Connection> {
    match result {
        Ok(Ok(conn)) => {
            tally.add("established");
            return Some(conn);
        }
        Ok(Err(quinn::ConnectionError::ConnectionClosed(_) | quinn::ConnectionError::ApplicationClosed(_))) => {
            tally.add("refused")
        }
        Ok(Err(_)) | Err(_) => tally.add("failed"),
    }
    None
}

/// Connects with `endpoint`, within 5 s.
async fn connect(endpoint: &quinn::Endpoint, target: SocketAddr, tally: &Tally) -> Option<quinn::Connection> {
    let Ok(connecting) = endpoint.connect(target, quic::SERVER_NAME) else {
        tally.add("failed");
        return None;
    };
    not_up(tally, timeout(Duration::from_secs(5), connecting).await)
}

/// Holds `conn` until the agent closes it (recording how long that took) or `hold` ends.
async fn hold_silent(conn: &quinn::Connection, since: Instant, hold: Duration, tally: &Tally) {
    if timeout(hold, conn.closed()).await.is_ok() {
        tally.add("closed_by_agent");
        tally.held_for(since.elapsed());
    }
}

async fn silent(
    target: SocketAddr,
    count: usize,
    rate: Rate,
    from: &[IpAddr],
    hold: Duration,
) -> Result<String, Error> {
    let (identity, _dir) = identity()?;
    let endpoints = clients(target, from, &identity)?;
    let tally = Tally::new(&["attempted", "established", "refused", "failed", "closed_by_agent"]);
    let started = Instant::now();
    at_rate(&endpoints, count, rate, hold, |i, endpoint| {
        let tally = tally.clone();
        // Held until the attack ends: the last connection for `hold`.
        let hold = Duration::from_secs_f64(count.saturating_sub(i) as f64 / rate.0) + hold;
        tally.add("attempted");
        async move {
            if let Some(conn) = connect(&endpoint, target, &tally).await {
                hold_silent(&conn, Instant::now(), hold, &tally).await;
            }
        }
    })
    .await;
    Ok(tally.line(started))
}

/// Whether a datagram from the agent is a QUIC Retry (long header, type 3 in QUIC v1:
/// the type bits are not under header protection).
fn is_retry(datagram: &[u8]) -> bool {
    datagram.first().is_some_and(|b| b & 0xb0 == 0xb0)
}

/// Counts what the agent sends back on `socket` (Retry packets, anything else) until
/// the task is stopped.
async fn count_answers(socket: Arc<tokio::net::UdpSocket>, tally: Arc<Tally>) {
    let mut buf = vec![0u8; 2048];
    while let Ok((n, _)) = socket.recv_from(&mut buf).await {
        tally.add(if is_retry(&buf[..n]) { "answered_retry" } else { "answered_other" });
    }
}

async fn initials(target: SocketAddr, count: usize, rate: Rate, from: &[IpAddr]) -> Result<String, Error> {
    let (identity, _dir) = identity()?;
    let config = quic::client_config(&identity)?;
    let locals = if from.is_empty() { vec![any_of(target)] } else { from.to_vec() };
    let tally = Tally::new(&["sent", "answered_retry", "answered_other"]);
    let mut sockets = Vec::new();
    let mut listeners = JoinSet::new();
    for ip in locals {
        let socket = quic::udp_socket(SocketAddr::new(ip, 0))?;
        socket.set_nonblocking(true)?;
        let socket = Arc::new(tokio::net::UdpSocket::from_std(socket)?);
        listeners.spawn(count_answers(socket.clone(), tally.clone()));
        sockets.push(socket);
    }
    let mut endpoint = quinn_proto::Endpoint::new(Arc::new(quinn_proto::EndpointConfig::default()), None, false, None);
    let started = Instant::now();
    let mut tick = rate.ticker();
    let mut buf = Vec::with_capacity(1500);
    for i in 0..count {
        tick.tick().await;
        let now = std::time::Instant::now();
        let (handle, mut conn) = endpoint.connect(now, config.clone(), target, quic::SERVER_NAME)?;
        buf.clear();
        if let Some(t) = conn.poll_transmit(now, 1, &mut buf)
            && sockets[i % sockets.len()].send_to(&buf[..t.size], target).await.is_ok()
        {
            tally.add("sent");
        }
        // This client never answers: forget the connection at once.
        drop(conn);
        let _ = endpoint.handle_event(handle, quinn_proto::EndpointEvent::drained());
    }
    // The last answers (and the agent's retransmissions to half-open connections).
    tokio::time::sleep(Duration::from_secs(1)).await;
    listeners.shutdown().await;
    Ok(tally.line(started))
}

/// One kind of pairing attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A random code, carried through to the agent's verdict.
    Wrong,
    /// Start with a SPAKE2 message, read the reply, never confirm.
    StallConfirm,
    /// Open the stream, send one byte, never a whole Start.
    StallStart,
}

/// `counts` of each kind, spread evenly over one sequence.
fn interleave(counts: &[(Kind, usize)]) -> Vec<Kind> {
    let mut keyed: Vec<(f64, usize, Kind)> = Vec::new();
    for (order, &(kind, n)) in counts.iter().enumerate() {
        keyed.extend((0..n).map(|i| ((i as f64 + 0.5) / n as f64, order, kind)));
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, _, kind)| kind).collect()
}

/// What the agent answered to a pairing attempt, as a tally key.
fn answer(result: &Result<lanreach_proto::handshake::AuthMethod, HandshakeError>) -> &'static str {
    match result {
        Ok(_) => "accepted",
        Err(HandshakeError::WrongCode) => "wrong",
        Err(HandshakeError::CodeRetired) => "retired",
        Err(HandshakeError::Busy) => "busy",
        Err(_) => "other",
    }
}

async fn attempt(kind: Kind, conn: quinn::Connection, identity: Arc<Identity>, hold: Duration, tally: Arc<Tally>) {
    let (Ok(agent), Ok((mut send, recv))) = (quic::remote_key_id(&conn), conn.open_bi().await) else {
        tally.add("other");
        return;
    };
    match kind {
        Kind::StallStart => {
            let since = Instant::now();
            // One byte of a frame header: the stream exists for the agent, Start never comes.
            if send.write_all(&[0]).await.is_ok() {
                tally.add("stalled");
                hold_silent(&conn, since, hold, &tally).await;
            }
        }
        Kind::Wrong => {
            let Ok(binding) = quic::binding(&conn, agent, identity.id) else { return };
            let mut ch = Channel::new(recv, send);
            let code = PairingCode::random(&mut OsRng);
            let result =
                timeout(hold, handshake::peer_handshake(&mut ch, "mallory", Some(&code), &binding, &mut OsRng)).await;
            tally.add(result.as_ref().map(answer).unwrap_or("timeout"));
        }
        Kind::StallConfirm => {
            let mut ch = Channel::new(recv, send);
            let (_pairing, spake) = PeerPairing::start(&PairingCode::random(&mut OsRng), &mut OsRng);
            let start = Start { version: PROTOCOL_VERSION, name: "mallory".into(), auth: StartAuth::Pair { spake } };
            if ch.send(&Message::Start(start)).await.is_err() {
                tally.add("other");
                return;
            }
            match timeout(hold, ch.recv()).await {
                Ok(Ok(Message::PairReply(_))) => {
                    tally.add("replied");
                    hold_silent(&conn, Instant::now(), hold, &tally).await;
                }
                Ok(Ok(Message::Reject(r))) if r.code == lanreach_proto::msg::RejectCode::Busy => tally.add("busy"),
                Ok(Ok(Message::Reject(r))) if r.code == lanreach_proto::msg::RejectCode::CodeRetired => {
                    tally.add("retired")
                }
                _ => tally.add("other"),
            }
        }
    }
    conn.close(1u32.into(), b"bye");
}

async fn guess(
    target: SocketAddr,
    kinds: &[Kind],
    rate: Rate,
    from: &[IpAddr],
    hold: Duration,
) -> Result<String, Error> {
    let (identity, _dir) = identity()?;
    let endpoints = clients(target, from, &identity)?;
    let identity = Arc::new(identity);
    let tally = Tally::new(&[
        "attempts",
        "established",
        "refused",
        "failed",
        "wrong",
        "retired",
        "busy",
        "replied",
        "stalled",
        "accepted",
        "closed_by_agent",
    ]);
    let started = Instant::now();
    at_rate(&endpoints, kinds.len(), rate, hold, |i, endpoint| {
        let (kind, tally, identity) = (kinds[i], tally.clone(), identity.clone());
        tally.add("attempts");
        async move {
            if let Some(conn) = connect(&endpoint, target, &tally).await {
                attempt(kind, conn, identity, hold, tally).await;
            }
        }
    })
    .await;
    Ok(tally.line(started))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_parses() {
        let cli = Cli::try_parse_from(["lanreach-attack", "streams", "198.51.100.1:47800", "--connections", "2"]);
        assert!(cli.is_ok(), "{cli:?}");
        let cli = Cli::try_parse_from([
            "lanreach-attack",
            "silent",
            "198.51.100.1:47800",
            "--from",
            "198.51.100.100,198.51.100.101",
            "--rate",
            "100",
        ]);
        assert!(matches!(cli, Ok(Cli { attack: Attack::Silent { ref from, .. } }) if from.len() == 2), "{cli:?}");
        assert!(Rate::new(0.0).is_err() && Rate::new(100.0).is_ok());
        // A QUIC v1 Retry, and an Initial.
        assert!(is_retry(&[0xf0, 0, 0, 0, 1]) && !is_retry(&[0xc3, 0, 0, 0, 1]));
    }

    #[test]
    fn kinds_are_spread_evenly() {
        let kinds = interleave(&[(Kind::Wrong, 4), (Kind::StallStart, 2)]);
        assert_eq!(kinds.len(), 6);
        assert_eq!(kinds.iter().filter(|k| **k == Kind::StallStart).count(), 2);
        assert_ne!(kinds[..3].iter().filter(|k| **k == Kind::StallStart).count(), 0, "{kinds:?}");
    }
}
