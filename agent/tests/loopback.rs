//! The control channel over real QUIC on loopback, agent and peer in-process.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lanreach_agent::cli::{Command, Config};
use lanreach_agent::control::{Agent, Event, SessionError};
use lanreach_agent::listeners::PortRange;
use lanreach_peer::connect::{self, Options, PeerError};
use lanreach_peer::target::Target;
use lanreach_proto::PairingCode;
use lanreach_proto::channel::Channel;
use lanreach_proto::code::RetireReason;
use lanreach_proto::codec;
use lanreach_proto::defaults::PROTOCOL_VERSION;
use lanreach_proto::endpoint::identity::{self, Identity};
use lanreach_proto::endpoint::quic;
use lanreach_proto::endpoint::store::StateFile;
use lanreach_proto::handshake::{AuthMethod, HandshakeError};
use lanreach_proto::msg::{Message, RejectCode, Start, StartAuth};
use quinn::rustls;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use tempfile::TempDir;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::oneshot;

const CODE: &str = "7K3Q-M2XD";

/// The configuration of an agent serving on `control` (no mDNS: loopback only).
fn serve_config(state_dir: &Path, control: SocketAddr, code: Option<&str>) -> Config {
    Config {
        command: Command::Serve,
        control: vec![control],
        control_explicit: true,
        code: code.map(|c| c.parse().expect("code")),
        state_dir: state_dir.to_owned(),
        name: "test-agent".into(),
        once: false,
        json: false,
        ports: PortRange::Ephemeral,
        timeout: None,
        check: vec![],
        exposed: false,
        no_mdns: true,
        no_web: true,
        quiet: false,
        all_addresses: false,
    }
}

/// An agent serving on 127.0.0.1 in this process, stopped on drop.
struct TestAgent {
    addr: SocketAddr,
    events: UnboundedReceiver<Event>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestAgent {
    fn start(state_dir: &Path, port: u16) -> TestAgent {
        let config = serve_config(state_dir, SocketAddr::from(([127, 0, 0, 1], port)), Some(CODE));
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let agent = Agent::bind(&config, tx).expect("agent binds");
        let addr = agent.local_addrs()[0];
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(agent.serve(async {
            let _ = stopped.await;
        }));
        TestAgent { addr, events, stop: Some(stop), task }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(5), &mut self.task).await.expect("agent stops").expect("no panic");
    }

    /// Waits for the next event matching `pred`, skipping others.
    async fn wait_for(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what} event within 10 s"))
                .expect("agent alive");
            if pred(&event) {
                return event;
            }
        }
    }

    fn target(&self) -> Target {
        self.addr.to_string().parse().expect("target")
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Peer {
    dir: TempDir,
    name: &'static str,
}

impl Peer {
    fn new(name: &'static str) -> Peer {
        Peer { dir: tempfile::tempdir().expect("tempdir"), name }
    }

    async fn run(&self, agent: &TestAgent, code: Option<&str>) -> Result<connect::Completed, PeerError> {
        let code: Option<PairingCode> = code.map(|c| c.parse().expect("code"));
        let dial = connect::Dial::at(agent.target());
        let session = Options {
            dial: &dial,
            code: code.as_ref(),
            name: self.name,
            state_dir: self.dir.path(),
            connect_timeout: Duration::from_secs(5),
            probe_timeout: None,
            progress: None,
            events: None,
            watch: None,
        };
        connect::run(&session).await
    }
}

fn is_failure(e: &Event) -> bool {
    matches!(e, Event::PeerFailed { .. })
}

#[tokio::test]
async fn pairing_succeeds_and_both_sides_learn_names_and_rtt() {
    let state = tempfile::tempdir().expect("tempdir");
    let mut agent = TestAgent::start(state.path(), 0);
    let peer = Peer::new("phone");
    let outcome = peer.run(&agent, Some("7k3q m2xd")).await.expect("pairs");
    assert_eq!(outcome.method, AuthMethod::Paired);
    assert_eq!(outcome.hello.name, "test-agent");
    assert!(outcome.rtt.median > Duration::ZERO && outcome.rtt.min <= outcome.rtt.median);

    let event = agent.wait_for("authenticated", |e| matches!(e, Event::PeerAuthenticated { .. })).await;
    let Event::PeerAuthenticated { name, id, method, .. } = event else { unreachable!() };
    assert_eq!((name.as_str(), id, method), ("phone", outcome.our_id, AuthMethod::Paired));
    let event = agent.wait_for("hello", |e| matches!(e, Event::PeerHello { .. })).await;
    let Event::PeerHello { hello, .. } = event else { unreachable!() };
    assert!(hello.software.starts_with("lanreach-peer "));
    let event = agent.wait_for("finished", |e| matches!(e, Event::PeerFinished { .. })).await;
    let Event::PeerFinished { pings, .. } = event else { unreachable!() };
    assert_eq!(pings, lanreach_proto::defaults::PINGS as u32);
    // The code was single-use.
    let event = agent.wait_for("code change", |e| matches!(e, Event::CodeChanged(_))).await;
    let Event::CodeChanged(change) = event else { unreachable!() };
    assert_eq!(change.reason, RetireReason::Used);
    agent.stop().await;
}

#[tokio::test]
async fn wrong_code_is_rejected_and_the_agent_keeps_serving() {
    let state = tempfile::tempdir().expect("tempdir");
    let mut agent = TestAgent::start(state.path(), 0);
    let err = Peer::new("intruder").run(&agent, Some("AAAA-AAAA")).await.expect_err("wrong code");
    assert!(matches!(err, PeerError::Handshake { source: HandshakeError::WrongCode, .. }), "{err:?}");
    let event = agent.wait_for("failure", is_failure).await;
    let Event::PeerFailed { error, failures, .. } = event else { unreachable!() };
    assert!(matches!(error, SessionError::Handshake(HandshakeError::WrongCode)), "{error:?}");
    assert_eq!(failures, 1);
    // The same address must wait a moment before its next attempt: refused before the
    // code is tried, so the code keeps its attempts.
    let err = Peer::new("phone").run(&agent, Some(CODE)).await.expect_err("backoff");
    assert!(matches!(err, PeerError::Handshake { source: HandshakeError::Busy, .. }), "{err:?}");
    let event = agent.wait_for("failure", is_failure).await;
    let Event::PeerFailed { error, failures, .. } = event else { unreachable!() };
    assert!(matches!(error, SessionError::Handshake(HandshakeError::Backoff { .. })), "{error:?}");
    assert_eq!(failures, 1);
    // Still serving, and the live code still works.
    tokio::time::sleep(lanreach_proto::defaults::PAIR_BACKOFF).await;
    Peer::new("phone").run(&agent, Some(CODE)).await.expect("right code pairs after a wrong one");
    agent.stop().await;
}

/// One pairing attempt with `code` from the loopback address `local` (another device,
/// as far as per-source limits go); returns how it ended.
async fn attempt_from(agent: &TestAgent, local: &str, code: &str) -> Result<AuthMethod, HandshakeError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let (identity, _) = Identity::load_or_create(dir.path(), "guess").expect("identity");
    let socket = quic::udp_socket(format!("{local}:0").parse().expect("addr")).expect("socket");
    let endpoint = quic::endpoint(socket, None).expect("endpoint");
    let client = quic::client_config(&identity).expect("client config");
    let conn = endpoint.connect_with(client, agent.addr, quic::SERVER_NAME).expect("connect").await.expect("QUIC up");
    let agent_id = quic::remote_key_id(&conn).expect("agent id");
    let binding = quic::binding(&conn, agent_id, identity.id).expect("binding");
    let (send, recv) = conn.open_bi().await.expect("stream");
    let mut ch = Channel::new(recv, send);
    let code: PairingCode = code.parse().expect("code");
    let result =
        lanreach_proto::handshake::peer_handshake(&mut ch, "guess", Some(&code), &binding, &mut rand::rngs::OsRng)
            .await;
    conn.close(0u32.into(), b"done");
    result
}

#[tokio::test]
async fn connections_closed_unused_spend_no_pairing_attempt_and_are_not_reported() {
    let state = tempfile::tempdir().expect("tempdir");
    let mut agent = TestAgent::start(state.path(), 0);
    // What a peer's losing handshakes look like: QUIC up, closed unused before any
    // stream; two of them, as many as a code has attempts left after a real one.
    for _ in 0..2 {
        let (endpoint, conn) = raw_connection(&agent).await;
        conn.close(lanreach_proto::defaults::close::UNUSED.into(), b"unused");
        endpoint.wait_idle().await;
    }
    let err = Peer::new("intruder").run(&agent, Some("AAAA-AAAA")).await.expect_err("wrong code");
    assert!(matches!(err, PeerError::Handshake { source: HandshakeError::WrongCode, .. }), "{err:?}");
    // The first event is the wrong code, its first failed attempt: the unused
    // connections neither counted nor printed anything.
    let event = tokio::time::timeout(Duration::from_secs(5), agent.events.recv()).await.expect("event").expect("alive");
    let Event::PeerFailed { error, failures, .. } = event else { panic!("unexpected {event:?}") };
    assert!(matches!(error, SessionError::Handshake(HandshakeError::WrongCode)), "{error:?}");
    assert_eq!(failures, 1);
    // From another device (the intruder's address now waits out its backoff).
    let result = attempt_from(&agent, "127.0.0.2", CODE).await;
    assert_eq!(result.expect("the code is still live"), AuthMethod::Paired);
    agent.stop().await;
}

#[tokio::test]
async fn code_is_retired_after_three_failures() {
    let state = tempfile::tempdir().expect("tempdir");
    let mut agent = TestAgent::start(state.path(), 0);
    // Three devices guess once each (one device would have to wait between guesses).
    for local in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        let result = attempt_from(&agent, local, "AAAA-AAAA").await;
        assert!(matches!(result, Err(HandshakeError::WrongCode)), "{result:?}");
    }
    let event = agent.wait_for("code change", |e| matches!(e, Event::CodeChanged(_))).await;
    let Event::CodeChanged(change) = event else { unreachable!() };
    assert_eq!(change.reason, RetireReason::TooManyFailures);
    let err = Peer::new("phone").run(&agent, Some(CODE)).await.expect_err("retired");
    assert!(matches!(err, PeerError::Handshake { source: HandshakeError::CodeRetired, .. }), "{err:?}");
    let fresh = change.new.to_string();
    let result = attempt_from(&agent, "127.0.0.5", &fresh).await;
    assert_eq!(result.expect("the new code pairs"), AuthMethod::Paired);
    agent.stop().await;
}

#[tokio::test]
async fn second_run_without_a_code_uses_the_pins() {
    let state = tempfile::tempdir().expect("tempdir");
    let agent = TestAgent::start(state.path(), 0);
    let peer = Peer::new("phone");
    peer.run(&agent, Some(CODE)).await.expect("pairs");
    let again = peer.run(&agent, None).await.expect("pinned keys suffice");
    assert_eq!(again.method, AuthMethod::Pinned);
    // Pins survive an agent restart on another port: the agent's trust file persists,
    // and the peer recognises the agent's key under a new address.
    agent.stop().await;
    let agent = TestAgent::start(state.path(), 0);
    assert_eq!(peer.run(&agent, None).await.expect("pinned after restart").method, AuthMethod::Pinned);
    // A stranger without a code is told to pair.
    let err = Peer::new("stranger").run(&agent, None).await.expect_err("not paired");
    assert!(matches!(err, PeerError::NotPaired { .. }), "{err:?}");
    agent.stop().await;
}

#[tokio::test]
async fn removed_peer_is_not_trusted_any_more() {
    let state = tempfile::tempdir().expect("tempdir");
    let agent = TestAgent::start(state.path(), 0);
    let peer = Peer::new("phone");
    let first = peer.run(&agent, Some(CODE)).await.expect("pairs");
    agent.stop().await;
    let mut trusted = lanreach_agent::trust::TrustedPeers::load(state.path()).expect("trust file");
    assert!(trusted.remove(&first.our_id.short()).is_ok());
    trusted.save(state.path()).expect("save");
    let agent = TestAgent::start(state.path(), 0);
    let err = peer.run(&agent, None).await.expect_err("no longer trusted");
    assert!(matches!(err, PeerError::Handshake { source: HandshakeError::NotTrusted, .. }), "{err:?}");
    agent.stop().await;
}

#[tokio::test]
async fn changed_agent_key_is_refused_even_with_a_code() {
    let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let agent = TestAgent::start(a.path(), 0);
    let port = agent.addr.port();
    let peer = Peer::new("phone");
    let first = peer.run(&agent, Some(CODE)).await.expect("pairs");
    agent.stop().await;
    // Another agent identity answers on the same address.
    let impostor = TestAgent::start(b.path(), port);
    for code in [None, Some(CODE)] {
        let err = peer.run(&impostor, code).await.expect_err("changed key");
        match err {
            PeerError::KeyChanged { pinned, presented, .. } => {
                assert_eq!(pinned, first.agent_id);
                assert_ne!(presented, pinned);
            }
            other => panic!("expected KeyChanged, got {other:?}"),
        }
    }
    impostor.stop().await;
}

/// A raw QUIC connection with a valid client certificate, for sending bad frames.
async fn raw_connection(agent: &TestAgent) -> (quinn::Endpoint, quinn::Connection) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (identity, _) = Identity::load_or_create(dir.path(), "raw").expect("identity");
    let socket = quic::udp_socket("127.0.0.1:0".parse().expect("addr")).expect("socket");
    let endpoint = quic::endpoint(socket, None).expect("endpoint");
    let client = quic::client_config(&identity).expect("client config");
    let conn = endpoint.connect_with(client, agent.addr, quic::SERVER_NAME).expect("connect").await.expect("QUIC up");
    (endpoint, conn)
}

/// Sends `bytes` on a fresh stream and returns the agent's answer and how the
/// connection ended.
async fn send_raw(agent: &TestAgent, bytes: &[u8]) -> (Option<Message>, quinn::ConnectionError) {
    let (_endpoint, conn) = raw_connection(agent).await;
    let (mut send, recv) = conn.open_bi().await.expect("stream");
    send.write_all(bytes).await.expect("write");
    let mut ch = Channel::new(recv, send);
    let reply = tokio::time::timeout(Duration::from_secs(5), ch.recv()).await.expect("agent answers").ok();
    // The agent closes the connection within its linger time.
    let closed = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await.expect("agent closes");
    (reply, closed)
}

fn rejected_as(reply: &Option<Message>, code: RejectCode) -> bool {
    matches!(reply, Some(Message::Reject(r)) if r.code == code)
}

#[tokio::test]
async fn garbage_and_oversized_frames_close_only_that_connection() {
    let state = tempfile::tempdir().expect("tempdir");
    let mut agent = TestAgent::start(state.path(), 0);
    let (reply, closed) = send_raw(&agent, &[0, 0, 0, 3, 0xee, 0xee, 0xee]).await;
    assert!(rejected_as(&reply, RejectCode::Malformed), "{reply:?}");
    assert!(matches!(closed, quinn::ConnectionError::ApplicationClosed(_)), "{closed:?}");
    agent.wait_for("failure", is_failure).await;

    let (reply, _) = send_raw(&agent, &[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await;
    assert!(rejected_as(&reply, RejectCode::Malformed), "{reply:?}");
    agent.wait_for("failure", is_failure).await;

    // A valid Start followed by junk where the Hello should be.
    let start = Message::Start(Start { version: PROTOCOL_VERSION, name: "x".into(), auth: StartAuth::Pinned });
    let mut bytes = codec::encode(&start).expect("encode");
    bytes.extend_from_slice(&[0, 0, 0, 1, 0x99]);
    let (reply, _) = send_raw(&agent, &bytes).await;
    assert!(rejected_as(&reply, RejectCode::NotTrusted), "{reply:?}");

    // Everyone else is still served.
    Peer::new("phone").run(&agent, Some(CODE)).await.expect("pairs after garbage");
    agent.stop().await;
}

#[tokio::test]
async fn other_protocol_versions_are_told_so() {
    let state = tempfile::tempdir().expect("tempdir");
    let mut agent = TestAgent::start(state.path(), 0);
    // A future version's Start: version 9 and a body this version cannot parse.
    let (reply, _) = send_raw(&agent, &[0, 0, 0, 4, 1, 9, 0xff, 0xff]).await;
    match reply {
        Some(Message::Reject(r)) => {
            assert_eq!(r.code, RejectCode::VersionMismatch);
            assert_eq!(r.version, PROTOCOL_VERSION);
        }
        other => panic!("expected a version refusal, got {other:?}"),
    }
    let event = agent.wait_for("failure", is_failure).await;
    let Event::PeerFailed { error, .. } = event else { unreachable!() };
    assert!(matches!(error, SessionError::Handshake(HandshakeError::VersionMismatch { theirs: 9, .. })));
    agent.stop().await;
}

#[tokio::test]
async fn silent_peer_is_dropped_at_the_handshake_deadline() {
    let state = tempfile::tempdir().expect("tempdir");
    let mut agent = TestAgent::start(state.path(), 0);
    // QUIC up, but no stream is ever opened.
    let (_endpoint, conn) = raw_connection(&agent).await;
    let started = std::time::Instant::now();
    let event = agent.wait_for("failure", is_failure).await;
    let Event::PeerFailed { error, .. } = event else { unreachable!() };
    assert!(matches!(error, SessionError::Timeout(_)), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(12));
    drop(conn);
    agent.stop().await;
}

#[tokio::test]
async fn port_already_in_use_is_a_clear_error() {
    let state = tempfile::tempdir().expect("tempdir");
    let agent = TestAgent::start(state.path(), 0);
    let config = serve_config(state.path(), agent.addr, None);
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let err = Agent::bind(&config, tx).err().expect("port is taken");
    let text = err.to_string();
    assert!(text.contains("already in use") && text.contains("--control"), "{text}");
    agent.stop().await;
}

/// A hostile agent: pairs properly, then sends a plan with more probes than a peer
/// accepts (all on loopback, so nothing could leave this machine even if the peer
/// obeyed). The peer must refuse it without probing and tell the agent why.
#[tokio::test]
async fn peer_refuses_a_plan_over_its_caps() {
    use lanreach_proto::code::CodeBook;
    use lanreach_proto::msg::{Hello, HelloAddress};
    use lanreach_proto::plan::{MAX_PROBES, ProbePlan};
    use lanreach_proto::vocab::{PlannedProbe, Proto};
    use lanreach_proto::{conversation, handshake};
    use rand::SeedableRng;

    let dir = tempfile::tempdir().expect("tempdir");
    let (identity, _) = Identity::load_or_create(dir.path(), "rogue").expect("identity");
    let socket = quic::udp_socket("127.0.0.1:0".parse().expect("addr")).expect("socket");
    let endpoint = quic::endpoint(socket, Some(quic::server_config(&identity).expect("server"))).expect("endpoint");
    let addr = endpoint.local_addr().expect("addr");
    let rogue_id = identity.id;
    let rogue = tokio::spawn(async move {
        let conn = endpoint.accept().await.expect("incoming").await.expect("connection");
        let peer_id = quic::remote_key_id(&conn).expect("peer id");
        let binding = quic::binding(&conn, rogue_id, peer_id).expect("binding");
        let (send, recv) = conn.accept_bi().await.expect("stream");
        let mut ch = Channel::new(recv, send);
        let codes =
            std::sync::Mutex::new(CodeBook::new(CODE.parse().expect("code"), rand::rngs::StdRng::seed_from_u64(1)));
        let from = handshake::Requester {
            source: lanreach_proto::addr::Source::of(conn.remote_address().ip()),
            now: std::time::Instant::now(),
        };
        handshake::agent_handshake(&mut ch, &codes, false, from, &binding, &mut rand::rngs::OsRng)
            .await
            .expect("pairs");
        let hello = Hello {
            name: "rogue".into(),
            os: "x".into(),
            software: "x".into(),
            addresses: vec![HelloAddress { ip: "127.0.0.1".parse().expect("ip"), interface: "lo".into() }],
        };
        conversation::hello_as_agent(&mut ch, hello).await.expect("hello");
        let probes = (0..=MAX_PROBES as u32)
            .map(|id| PlannedProbe {
                id,
                proto: Proto::Tcp,
                bind: "127.0.0.1:9".parse().expect("addr"),
                target: "127.0.0.1:9".parse().expect("addr"),
            })
            .collect();
        ch.send(&Message::Plan(ProbePlan { session: [0; 16], key: [0; 32], probes, services: vec![] }))
            .await
            .expect("plan");
        // The peer answers with a refusal instead of pings.
        ch.recv().await
    });
    let target: Target = addr.to_string().parse().expect("target");
    let code: PairingCode = CODE.parse().expect("code");
    let peer_dir = tempfile::tempdir().expect("tempdir");
    let dial = connect::Dial::at(target.clone());
    let session = Options {
        dial: &dial,
        code: Some(&code),
        name: "victim",
        state_dir: peer_dir.path(),
        connect_timeout: Duration::from_secs(5),
        probe_timeout: None,
        progress: None,
        events: None,
        watch: None,
    };
    let err = connect::run(&session).await.expect_err("plan refused");
    assert!(matches!(err, PeerError::PlanRefused { .. }), "{err:?}");
    assert!(err.to_string().contains("at most 2048"), "{err}");
    let told = tokio::time::timeout(Duration::from_secs(5), rogue).await.expect("rogue ends").expect("no panic");
    assert!(matches!(&told, Ok(Message::Reject(r)) if r.code == RejectCode::PlanRefused), "{told:?}");
}

#[tokio::test]
async fn several_peers_at_once_each_get_their_own_report() {
    let state = tempfile::tempdir().expect("tempdir");
    let mut agent = TestAgent::start(state.path(), 0);
    let peers = [Peer::new("one"), Peer::new("two"), Peer::new("three")];
    // Pair one by one (codes are single-use), then run all at once with pinned keys.
    let mut code = CODE.to_owned();
    for p in &peers {
        p.run(&agent, Some(&code)).await.expect("pairs");
        let event = agent.wait_for("code change", |e| matches!(e, Event::CodeChanged(_))).await;
        let Event::CodeChanged(change) = event else { unreachable!() };
        code = change.new.to_string();
    }
    let (a, b, c) = tokio::join!(peers[0].run(&agent, None), peers[1].run(&agent, None), peers[2].run(&agent, None));
    let mut ids = std::collections::HashSet::new();
    for (p, o) in peers.iter().zip([a, b, c]) {
        let o = o.expect("report");
        assert_eq!(o.method, AuthMethod::Pinned);
        assert_eq!(o.report.peer.name, p.name);
        assert!(o.report.probes.iter().any(|r| r.outcome == lanreach_proto::vocab::Outcome::Open));
        ids.insert(o.report.peer.id.clone());
    }
    assert_eq!(ids.len(), 3, "each report is its own peer's");
    agent.stop().await;
}

/// The certificate a side keeps next to its key: public, so anyone who can read the
/// file (or watch a handshake) can copy it.
fn copied_certificate(state_dir: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(state_dir.join(identity::CERT_FILE)).expect("certificate file")
}

/// `cert` presented with signatures by `signer`'s key. rustls' `with_single_cert`
/// would refuse the mismatch; a resolver hands the pair over unchecked, as an
/// attacker's own TLS stack would.
fn presenting(cert: CertificateDer<'static>, signer: &Identity) -> Arc<SingleCertAndKey> {
    let key = rustls::crypto::ring::sign::any_supported_type(&signer.key()).expect("signing key");
    Arc::new(SingleCertAndKey::from(CertifiedKey::new(vec![cert], key)))
}

/// A QUIC client that trusts only `agent_cert` and presents `presented` as its own
/// certificate. Returns the endpoint (keep it alive) and how the handshake ended.
async fn connect_presenting(
    agent: &TestAgent,
    agent_cert: CertificateDer<'static>,
    presented: Arc<SingleCertAndKey>,
) -> (quinn::Endpoint, Result<quinn::Connection, quinn::ConnectionError>) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(agent_cert).expect("agent certificate as root");
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_client_cert_resolver(presented);
    tls.alpn_protocols = vec![lanreach_proto::defaults::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("QUIC suite");
    let socket = quic::udp_socket("127.0.0.1:0".parse().expect("addr")).expect("socket");
    let endpoint = quic::endpoint(socket, None).expect("endpoint");
    let connecting = endpoint
        .connect_with(quinn::ClientConfig::new(Arc::new(crypto)), agent.addr, quic::SERVER_NAME)
        .expect("connect");
    let conn = tokio::time::timeout(Duration::from_secs(5), connecting).await.expect("handshake ends");
    (endpoint, conn)
}

/// QUIC's code for the TLS alert sent when a handshake signature does not verify
/// against the presented certificate (`decrypt_error`).
fn bad_signature() -> quinn::TransportErrorCode {
    quinn::TransportErrorCode::crypto(u8::from(rustls::AlertDescription::DecryptError))
}

/// Someone who copied a paired peer's certificate, but not its key, cannot use the
/// peer's pin: the agent checks the handshake signature against the certificate and
/// ends the handshake before any message; nothing authenticates and no pin changes.
#[tokio::test]
async fn copied_peer_certificate_without_its_key_is_refused_by_the_agent() {
    let state = tempfile::tempdir().expect("tempdir");
    let mut agent = TestAgent::start(state.path(), 0);
    let victim = Peer::new("phone");
    victim.run(&agent, Some(CODE)).await.expect("pairs");
    agent.wait_for("finished", |e| matches!(e, Event::PeerFinished { .. })).await;
    agent.wait_for("code change", |e| matches!(e, Event::CodeChanged(_))).await;
    let trusted_before = std::fs::read(state.path().join(lanreach_agent::trust::FILE)).expect("trust file");

    let agent_cert = copied_certificate(state.path());
    let attacker_dir = tempfile::tempdir().expect("tempdir");
    let (attacker, _) = Identity::load_or_create(attacker_dir.path(), "attacker").expect("identity");

    // Control: the same client with its own certificate gets through TLS and is
    // refused one step later as a stranger, so the failure below is the signature's.
    let (_endpoint, own) =
        connect_presenting(&agent, agent_cert.clone(), presenting(attacker.cert.clone(), &attacker)).await;
    let own = own.expect("a matching certificate and key pass TLS");
    let (send, recv) = own.open_bi().await.expect("stream");
    let mut ch = Channel::new(recv, send);
    ch.send(&Message::Start(Start { version: PROTOCOL_VERSION, name: "attacker".into(), auth: StartAuth::Pinned }))
        .await
        .expect("send");
    let reply = tokio::time::timeout(Duration::from_secs(5), ch.recv()).await.expect("agent answers").ok();
    assert!(rejected_as(&reply, RejectCode::NotTrusted), "{reply:?}");
    let event = agent.wait_for("failure", is_failure).await;
    let Event::PeerFailed { error, .. } = event else { unreachable!() };
    assert!(matches!(error, SessionError::Handshake(HandshakeError::NotTrusted)), "{error:?}");

    // The attack: the victim's certificate, signed with the attacker's key. QUIC lets
    // the client finish its side before the agent has judged the client certificate.
    let forged = presenting(copied_certificate(victim.dir.path()), &attacker);
    let (_endpoint, conn) = connect_presenting(&agent, agent_cert, forged).await;
    let ended = match conn {
        Err(e) => e,
        Ok(conn) => tokio::time::timeout(Duration::from_secs(5), conn.closed())
            .await
            .expect("the agent kept a connection presenting a copied certificate"),
    };
    assert!(
        matches!(&ended, quinn::ConnectionError::ConnectionClosed(c) if c.error_code == bad_signature()),
        "the agent must end the handshake with decrypt_error, got {ended:?}"
    );
    // The agent saw a failed TLS handshake, and nothing after it: no authentication.
    let event = tokio::time::timeout(Duration::from_secs(5), agent.events.recv()).await.expect("event").expect("alive");
    match event {
        Event::PeerFailed { error: SessionError::Connection(quinn::ConnectionError::TransportError(e)), .. } => {
            assert_eq!(e.code, bad_signature(), "{e}");
        }
        other => panic!("expected a failed TLS handshake, got {other:?}"),
    }
    let trusted_after = std::fs::read(state.path().join(lanreach_agent::trust::FILE)).expect("trust file");
    assert_eq!(trusted_before, trusted_after, "no pin changed");

    // The real peer, with its key, still gets in on its pin; and this is the first
    // authentication the agent reports since the pairing.
    let again = victim.run(&agent, None).await.expect("the real peer's pin works");
    assert_eq!(again.method, AuthMethod::Pinned);
    let event = tokio::time::timeout(Duration::from_secs(5), agent.events.recv()).await.expect("event").expect("alive");
    let Event::PeerAuthenticated { id, method, .. } = event else { panic!("expected the real peer, got {event:?}") };
    assert_eq!((id, method), (again.our_id, AuthMethod::Pinned));
    agent.stop().await;
}

/// A fake agent that copied the paired agent's certificate, but not its key, cannot
/// pass for it: the peer checks the handshake signature, fails the connection before
/// sending anything, and keeps its pins as they were.
#[tokio::test]
async fn copied_agent_certificate_without_its_key_is_refused_by_the_peer() {
    let state = tempfile::tempdir().expect("tempdir");
    let agent = TestAgent::start(state.path(), 0);
    let addr = agent.addr;
    let target = agent.target();
    let peer = Peer::new("phone");
    peer.run(&agent, Some(CODE)).await.expect("pairs");
    agent.stop().await;
    let known_before = std::fs::read(peer.dir.path().join(lanreach_peer::known::FILE)).expect("known agents");

    // The fake agent takes over the address, presenting the agent's certificate with
    // its own key.
    let attacker_dir = tempfile::tempdir().expect("tempdir");
    let (attacker, _) = Identity::load_or_create(attacker_dir.path(), "attacker").expect("identity");
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_no_client_auth()
        .with_cert_resolver(presenting(copied_certificate(state.path()), &attacker));
    tls.alpn_protocols = vec![lanreach_proto::defaults::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).expect("QUIC suite");
    let socket = quic::udp_socket(addr).expect("the agent's address is free again");
    let endpoint = quic::endpoint(socket, Some(quinn::ServerConfig::with_crypto(Arc::new(crypto)))).expect("endpoint");
    let fake = tokio::spawn(async move { endpoint.accept().await.expect("incoming").await });

    let dial = connect::Dial::at(target.clone());
    let session = Options {
        dial: &dial,
        code: None,
        name: peer.name,
        state_dir: peer.dir.path(),
        connect_timeout: Duration::from_secs(5),
        probe_timeout: None,
        progress: None,
        events: None,
        watch: None,
    };
    let err = connect::run(&session).await.expect_err("a copied certificate is not the agent");
    match &err {
        PeerError::Connection { source: quinn::ConnectionError::TransportError(e), .. } => {
            assert_eq!(e.code, bad_signature(), "{e}");
        }
        other => panic!("expected a failed TLS handshake, got {other:?}"),
    }
    // The fake agent never got a connection, so no stream and no message reached it.
    let accepted =
        tokio::time::timeout(Duration::from_secs(5), fake).await.expect("fake agent ends").expect("no panic");
    assert!(
        matches!(&accepted, Err(quinn::ConnectionError::ConnectionClosed(c)) if c.error_code == bad_signature()),
        "{accepted:?}"
    );
    let known_after = std::fs::read(peer.dir.path().join(lanreach_peer::known::FILE)).expect("known agents");
    assert_eq!(known_before, known_after, "no pin changed");
}
