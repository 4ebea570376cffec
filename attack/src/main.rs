//! `lanreach-attack`: what a hostile machine on the LAN does to lanreach, for the
//! project's own tests and benchmarks. Every attack is bounded in count and time and
//! stops by itself; the tests run it inside network namespaces against documentation
//! addresses only. It prints one `key=value` line of what it achieved, for the tests to
//! read.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use lanreach_proto::endpoint::identity::Identity;
use lanreach_proto::endpoint::quic;
use tokio::time::timeout;

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
        /// nothing and print how the peer closes).
        #[arg(long, default_value = "scan")]
        then: String,
    },
    /// A fake peer: pairs with an agent, exchanges Hellos, receives the plan, then
    /// closes the connection as a peer stopped with Ctrl-C.
    FakePeer {
        /// The agent's control address.
        target: SocketAddr,
        /// The pairing code the agent printed.
        #[arg(long)]
        code: String,
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
            Attack::FakePeer { target, code } => fake_peer(target, &code).await,
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

/// A client endpoint with a throw-away identity.
fn client(target: SocketAddr) -> Result<(quinn::Endpoint, tempfile::TempDir), Error> {
    let dir = tempfile::tempdir()?;
    let (identity, _) = Identity::load_or_create(dir.path(), "mallory")?;
    let local: SocketAddr = if target.is_ipv4() { "0.0.0.0:0".parse()? } else { "[::]:0".parse()? };
    let mut endpoint = quic::endpoint(quic::udp_socket(local)?, None)?;
    endpoint.set_default_client_config(quic::client_config(&identity)?);
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

    let dir = tempfile::tempdir()?;
    let (identity, _) = Identity::load_or_create(dir.path(), "fake-agent")?;
    let endpoint = quic::endpoint(quic::udp_socket(listen)?, Some(quic::server_config(&identity)?))?;
    eprintln!("fake agent ready on {listen}");
    let incoming = timeout(wait, endpoint.accept()).await?.ok_or("endpoint closed")?;
    let conn = incoming.await?;
    let peer_id = quic::remote_key_id(&conn)?;
    let binding = quic::binding(&conn, identity.id, peer_id)?;
    let (send, recv) = conn.accept_bi().await?;
    let mut ch = Channel::new(recv, send);
    let codes = std::sync::Mutex::new(CodeBook::new(code.parse()?, rand::rngs::StdRng::from_entropy()));
    handshake::agent_handshake(&mut ch, &codes, false, &binding, &mut rand::rngs::OsRng).await?;
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
    let plan = scan_plan(claims, ports);
    ch.send(&Message::Plan(plan.clone())).await?;
    if then == "shutdown" {
        tokio::time::sleep(Duration::from_millis(300)).await;
        eprintln!("stopping");
        conn.close(lanreach_proto::defaults::close::SHUTDOWN.into(), b"agent shutting down");
        endpoint.wait_idle().await;
        return Ok("stopped".into());
    }
    let (results, _) = timeout(Duration::from_secs(60), conversation::await_results(&mut ch, &plan)).await??;
    // What the results say about the bystander, port by port.
    let mut learnt = std::collections::BTreeMap::<&str, usize>::new();
    let outcomes = results.results.iter().map(|r| r.outcome).chain(results.services.iter().map(|r| r.outcome));
    for outcome in outcomes {
        let key = match outcome {
            Outcome::Open | Outcome::Refused | Outcome::Reset | Outcome::EmptyReply | Outcome::Foreign => "port",
            Outcome::Timeout => "silent",
            Outcome::Unreachable => "no_route",
            Outcome::NotProbed => "not_probed",
        };
        *learnt.entry(key).or_default() += 1;
    }
    let _ = ch.send(&Message::Report(ReportJson { json: "{}".into() })).await;
    let _ = ch.shutdown().await;
    let _ = timeout(Duration::from_secs(2), conn.closed()).await;
    let counts: Vec<String> = ["port", "silent", "no_route", "not_probed"]
        .iter()
        .map(|k| format!("{k}={}", learnt.get(k).copied().unwrap_or(0)))
        .collect();
    Ok(format!("probes={} {}", plan.probes.len() + plan.services.len(), counts.join(" ")))
}

async fn fake_peer(target: SocketAddr, code: &str) -> Result<String, Error> {
    use lanreach_proto::channel::Channel;
    use lanreach_proto::msg::Hello;
    use lanreach_proto::{conversation, handshake};

    let dir = tempfile::tempdir()?;
    let (identity, _) = Identity::load_or_create(dir.path(), "fake-peer")?;
    let local: SocketAddr = if target.is_ipv4() { "0.0.0.0:0".parse()? } else { "[::]:0".parse()? };
    let endpoint = quic::endpoint(quic::udp_socket(local)?, None)?;
    let conn = timeout(
        Duration::from_secs(5),
        endpoint.connect_with(quic::client_config(&identity)?, target, quic::SERVER_NAME)?,
    )
    .await??;
    let agent_id = quic::remote_key_id(&conn)?;
    let binding = quic::binding(&conn, agent_id, identity.id)?;
    let (send, recv) = conn.open_bi().await?;
    let mut ch = Channel::new(recv, send);
    let code = code.parse()?;
    handshake::peer_handshake(&mut ch, "fake-peer", Some(&code), &binding, &mut rand::rngs::OsRng).await?;
    let hello = Hello { name: "fake-peer".into(), os: "linux".into(), software: "x".into(), addresses: vec![] };
    conversation::hello_as_peer(&mut ch, hello).await?;
    let plan = conversation::recv_plan(&mut ch).await?;
    conn.close(lanreach_proto::defaults::close::SHUTDOWN.into(), b"peer stopped");
    endpoint.wait_idle().await;
    Ok(format!("stopped after a plan of {} probes", plan.probes.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_parses() {
        let cli = Cli::try_parse_from(["lanreach-attack", "streams", "198.51.100.1:47800", "--connections", "2"]);
        assert!(cli.is_ok(), "{cli:?}");
    }
}
