//! A hostile machine on the LAN in a box: bounded attacks from `lanreach-attack` in a
//! namespace of its own (198.51.100.66, and 198.51.100.100 up when it needs many
//! sources), against an agent on 198.51.100.1, asserting the property with generous
//! bounds while the real peer still gets its answer. Precise figures are benchmarks
//! (printed here, and `scripts/bench.sh`), not assertions.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::lab::{self, Lab, Node, Spawned};
use support::{arg, attack_bin, peer_bin, stdout_of_success};
use tempfile::TempDir;

struct Scene {
    lab: Lab,
    host: Node,
    phone: Node,
    mallory: Node,
    agent: Spawned,
    _agent_state: TempDir,
    peer_state: TempDir,
}

/// An agent on `host`, a phone and mallory on the same bridge.
fn scene(extra: &[&str]) -> Scene {
    let mut lab = Lab::new();
    let host = lab.node("host", 1);
    let phone = lab.node("phone", 2);
    let mallory = lab.node("mallory", 66);
    let agent_state = tempfile::tempdir().expect("dir");
    let peer_state = tempfile::tempdir().expect("dir");
    let mut args = vec!["--state-dir", arg(agent_state.path()), "--code", "7K3Q-M2XD", "--name", "box", "--no-mdns"];
    args.extend_from_slice(extra);
    let mut agent = lab.spawn(&host, env!("CARGO_BIN_EXE_lanreach-agent"), &args);
    agent.wait_line("pairing code:");
    Scene { lab, host, phone, mallory, agent, _agent_state: agent_state, peer_state }
}

impl Scene {
    /// The real peer pairs (or reconnects) and gets its report.
    fn peer_gets_its_report(&self, code: Option<&str>) -> String {
        let out = self.run_peer(&self.phone, self.peer_state.path(), "phone", code);
        let stdout = stdout_of_success(&out);
        assert!(stdout.contains("lanreach report"), "{stdout}");
        stdout
    }

    /// Runs `lanreach-peer` in `node` with the state in `state`.
    fn run_peer(&self, node: &Node, state: &Path, name: &str, code: Option<&str>) -> std::process::Output {
        run_peer(&self.lab, &self.host, node, state, name, code)
    }

    /// The control address mallory attacks.
    fn target(&self) -> String {
        format!("{}:47800", self.host.v4)
    }
}

/// Runs `lanreach-peer` in `node` against the agent on `host`, with the state in `state`.
fn run_peer(lab: &Lab, host: &Node, node: &Node, state: &Path, name: &str, code: Option<&str>) -> std::process::Output {
    let peer = arg(&peer_bin()).to_owned();
    let mut args = vec![host.v4.as_str(), "--state-dir", arg(state), "--name", name];
    if let Some(code) = code {
        args.extend_from_slice(&["--code", code]);
    }
    lab.run(node, &peer, &args)
}

/// The code in the last line of `lines` that shows one (`pairing code: 7K3Q-M2XD …`).
fn last_code(lines: &[String]) -> Option<String> {
    lines.iter().rev().find_map(|l| l.split("pairing code: ").nth(1)).map(|rest| rest.chars().take(9).collect())
}

/// The code the agent shows now, after waiting for it to show one.
fn shown_code(agent: &mut Spawned) -> String {
    last_code(agent.lines()).expect("the agent shows a pairing code")
}

/// A peer on its own machine (`laptop`, 198.51.100.3) that paired before anything
/// hostile began; returns its node and state.
fn paired_laptop(s: &mut Scene) -> (Node, TempDir) {
    let laptop = s.lab.node("laptop", 3);
    let state = tempfile::tempdir().expect("dir");
    let code = shown_code(&mut s.agent);
    let started = Instant::now();
    let out = s.run_peer(&laptop, state.path(), "laptop", Some(&code));
    stdout_of_success(&out);
    eprintln!(
        "without an attack: the laptop's run (pair, probe, report) took {:.2} s",
        started.elapsed().as_secs_f64()
    );
    s.agent.wait_line("New pairing code");
    s.agent.wait_line("pairing code:");
    (laptop, state)
}

/// While mallory's flood runs, the phone pairs with the code on the agent's screen and
/// the laptop reconnects with its pins; both must get their reports. Prints how long
/// each took.
fn both_get_reports_during(s: &mut Scene, laptop: &Node, laptop_state: &Path, flood: &str) {
    let code = shown_code(&mut s.agent);
    let (lab, host, phone, phone_state) = (&s.lab, &s.host, &s.phone, s.peer_state.path());
    let (phone, pinned) = std::thread::scope(|scope| {
        let phone = scope.spawn(|| {
            let started = Instant::now();
            let out = run_peer(lab, host, phone, phone_state, "phone", Some(&code));
            (started.elapsed(), out)
        });
        let pinned = scope.spawn(|| {
            let started = Instant::now();
            let out = run_peer(lab, host, laptop, laptop_state, "laptop", None);
            (started.elapsed(), out)
        });
        (phone.join().expect("phone thread"), pinned.join().expect("laptop thread"))
    });
    eprintln!(
        "under {flood}: the phone's run (pair, probe, report) took {:.2} s, the pinned laptop's {:.2} s",
        phone.0.as_secs_f64(),
        pinned.0.as_secs_f64()
    );
    let stdout = stdout_of_success(&phone.1);
    assert!(stdout.contains("Paired with agent") && stdout.contains("lanreach report"), "{stdout}");
    let stdout = stdout_of_success(&pinned.1);
    assert!(stdout.contains("with pinned keys") && stdout.contains("lanreach report"), "{stdout}");
}

/// After the last failure, the agent's screen shows the code again within this.
const SCREEN_SETTLES: Duration = Duration::from_secs(7);

/// The agent's terminal stays readable: a bounded number of lines, and a pairing code
/// after the last complaint about a failed connection.
fn screen_stays_readable(agent: &mut Spawned, lines_before: usize, what: &str) {
    let lines = agent.lines();
    let printed = lines.len() - lines_before;
    eprintln!("the agent printed {printed} lines during {what}");
    assert!(printed < 250, "{what} made the agent print {printed} lines");
    let last_failure = lines.iter().rposition(|l| l.starts_with("Peer at") || l.contains("connections from"));
    let last_code = lines.iter().rposition(|l| l.contains("pairing code: "));
    assert!(
        last_code > last_failure,
        "the screen does not end with the pairing code:\n{}",
        lines[lines_before..].join("\n")
    );
}

/// Two connections that open every stream they may and fill them, never read, add at
/// most a few megabytes to the agent (quinn's defaults let one take 250 MB).
#[test]
fn unread_streams_cannot_fill_the_agents_memory() {
    if !lab::available("unread_streams_cannot_fill_the_agents_memory") {
        return;
    }
    let mut s = scene(&[]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let before = s.agent.rss_kib();
    let target = format!("{}:47800", s.host.v4);
    let mut attack = s.lab.spawn(
        &s.mallory,
        arg(&attack_bin()),
        &["streams", &target, "--connections", "2", "--streams", "100", "--bytes", "1200000", "--hold", "3"],
    );
    let holding = attack.wait_line("holding");
    let during = s.agent.rss_kib();
    let grew_mib = during.saturating_sub(before) as f64 / 1024.0;
    eprintln!("agent RSS {before} KiB → {during} KiB while mallory holds ({holding}): +{grew_mib:.1} MiB");
    assert!(grew_mib < 16.0, "two hostile connections grew the agent by {grew_mib:.1} MiB ({holding})");
    // At most the one stream the protocol needs was opened per connection.
    assert!(!holding.contains("streams=0 "), "the attack did connect: {holding}");
    let streams: usize = holding
        .split("streams=")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("streams=");
    assert!(streams <= 2, "the agent let mallory open {streams} streams on 2 connections");
    // The agent still serves the real peer.
    s.peer_gets_its_report(Some("7K3Q-M2XD"));
}

/// 400 idle TCP connections to the test listeners (each waiting for a knock that never
/// comes) while the real peer probes: its probes are answered, and the report gains no
/// false interception finding.
#[test]
fn idle_connections_cannot_exhaust_the_test_listeners() {
    if !lab::available_with("idle_connections_cannot_exhaust_the_test_listeners", &["ss"]) {
        return;
    }
    let mut s = scene(&[]);
    // The agent's TCP test listeners on its LAN address: wildcard ones and its own.
    let out = s.lab.run(&s.host, "ss", &["-Hltn"]);
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    let targets: Vec<String> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter(|local| local.starts_with("0.0.0.0:") || local.starts_with("198.51.100.1:"))
        .map(|local| format!("198.51.100.1:{}", local.rsplit(':').next().expect("port")))
        .collect();
    assert!(targets.len() >= 2, "test listeners: {listing}");
    let mut args = vec!["idle-tcp", "--count", "400", "--hold", "6"];
    args.extend(targets.iter().map(String::as_str));
    let mut attack = s.lab.spawn(&s.mallory, arg(&attack_bin()), &args);
    let holding = attack.wait_line("holding");
    eprintln!("mallory: {holding}");
    let state = arg(s.peer_state.path()).to_owned();
    let out = s.lab.run(
        &s.phone,
        arg(&peer_bin()),
        &[&s.host.v4, "--code", "7K3Q-M2XD", "--json", "--state-dir", &state, "--name", "phone"],
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    let codes: Vec<&str> =
        report["findings"].as_array().expect("findings").iter().filter_map(|f| f["code"].as_str()).collect();
    assert!(!codes.iter().any(|c| c.starts_with("interception")), "false interception under load: {codes:?}");
    let wildcard_v4_open = report["probes"].as_array().expect("probes").iter().any(|p| {
        p["proto"] == "tcp" && p["bind"].as_str().is_some_and(|b| b.starts_with("0.0.0.0:")) && p["outcome"] == "open"
    });
    assert!(wildcard_v4_open, "the real peer's probes were not answered: {}", report["probes"]);
    let _ = s.lab.wait_exit(&attack, std::time::Duration::from_secs(15));
    eprintln!("mallory at the end: {}", attack.stdout().trim());
}

/// A fake agent claims a bystander's address as its own and plans a scan of 512 ports
/// there (TCP and UDP test-listener probes and service probes). The peer sends the
/// bystander at most its knocks, and the fake agent learns nothing about its ports.
#[test]
fn a_hostile_agent_cannot_use_the_peer_to_scan_a_bystander() {
    if !lab::available_with("a_hostile_agent_cannot_use_the_peer_to_scan_a_bystander", &["nft", "python3"]) {
        return;
    }
    let mut lab = Lab::new();
    let phone = lab.node("phone", 2);
    let mallory = lab.node("mallory", 66);
    let bystander = lab.node("bystander", 77);
    // The bystander runs a web server (a scan would find it) and counts what the phone sends.
    lab.spawn(&bystander, "python3", &["-m", "http.server", "80", "--bind", "0.0.0.0"]);
    lab.wait_tcp_listen(&bystander, 80);
    lab.nft(
        &bystander,
        "table inet watch {\n chain input {\n type filter hook input priority 0;\n ip saddr 198.51.100.2 counter\n }\n}\n",
    );
    let mut fake = lab.spawn(
        &mallory,
        arg(&attack_bin()),
        &[
            "fake-agent",
            "--listen",
            "198.51.100.66:47800",
            "--code",
            "7K3Q-M2XD",
            "--claim",
            &bystander.v4,
            "--ports",
            "512",
        ],
    );
    fake.wait_line("fake agent ready");
    let peer_state = tempfile::tempdir().expect("dir");
    let state = arg(peer_state.path()).to_owned();
    let out = lab.run(&phone, arg(&peer_bin()), &[&mallory.v4, "--code", "7K3Q-M2XD", "--state-dir", &state]);
    let _ = lab.wait_exit(&fake, std::time::Duration::from_secs(30));
    let learnt = fake.stdout();
    eprintln!("peer: {}\nfake agent learnt: {learnt}", String::from_utf8_lossy(&out.stderr));
    let counters = lab.run(&bystander, "nft", &["list", "table", "inet", "watch"]);
    let listing = String::from_utf8_lossy(&counters.stdout).into_owned();
    let packets: u64 = listing
        .split("packets ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in {listing}"));
    eprintln!("packets from the phone at the bystander: {packets}");
    assert!(learnt.contains("probes="), "the fake agent got results: {learnt}");
    assert!(learnt.contains("port=0 "), "the fake agent learnt port outcomes at the bystander: {learnt}");
    // One TCP knock and one UDP knock, each retried once, and what TCP adds to them.
    assert!(packets <= 8, "the phone sent {packets} packets to the bystander");
}

/// An agent that never answers the ICMP witness question: the peer's run waits its step
/// deadline for it, then ends with that error (exit code 2), never hangs, and never
/// takes the silence for proven.
#[test]
fn an_agent_that_never_answers_the_witness_question_ends_the_session_with_that_error() {
    let test = "an_agent_that_never_answers_the_witness_question_ends_the_session_with_that_error";
    if !lab::available_with(test, &["nft"]) {
        return;
    }
    let mut lab = Lab::new();
    let phone = lab.node("phone", 2);
    let mallory = lab.node("mallory", 66);
    // Port 9 is silent: the run wants the witness before any quiet re-probe.
    lab.nft(
        &mallory,
        "table inet t {\n chain input {\n type filter hook input priority 0;\n tcp dport 9 drop\n }\n}\n",
    );
    let listen = format!("{}:47800", mallory.v4);
    let args =
        ["fake-agent", "--listen", &listen, "--code", "7K3Q-M2XD", "--claim", &mallory.v4, "--then", "mute-witness"];
    let mut fake = lab.spawn(&mallory, arg(&attack_bin()), &args);
    fake.wait_line("fake agent ready");
    let peer_state = tempfile::tempdir().expect("dir");
    let state = arg(peer_state.path()).to_owned();
    let started = std::time::Instant::now();
    let out = lab.run(&phone, arg(&peer_bin()), &[&mallory.v4, "--code", "7K3Q-M2XD", "--state-dir", &state]);
    let took = started.elapsed();
    let _ = lab.wait_exit(&fake, std::time::Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let agent_saw = fake.stdout();
    eprintln!("peer after {took:?}: {stderr}\nfake agent: {agent_saw}");
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("stopped answering during the probe run"), "{stderr}");
    assert!(took < std::time::Duration::from_secs(15), "bounded by the step deadline: {took:?}");
    assert!(agent_saw.contains("witness questions=1"), "asked once, then nothing more: {agent_saw}");
}

/// 16 addresses on mallory's machine, for attacks that need many sources.
fn sources(s: &Scene) -> String {
    s.lab.extra_addresses(&s.mallory, 100, 16).join(",")
}

/// While mallory runs `attack` against the agent from 16 addresses (`attack` names the
/// subcommand and its options; `done` is the key of its result line), the phone pairs
/// with the code on the agent's screen and the laptop reconnects with its pins, both get
/// their reports, and the agent's screen stays readable.
fn peers_get_through(test: &str, attack: &[&str], done: &str, what: &str) {
    if !lab::available(test) {
        return;
    }
    let mut s = scene(&[]);
    let (laptop, laptop_state) = paired_laptop(&mut s);
    let (from, target) = (sources(&s), s.target());
    let mut args = vec![attack[0], &target, "--from", &from];
    args.extend_from_slice(&attack[1..]);
    let lines_before = s.agent.lines().len();
    let rss_before = s.agent.rss_kib();
    let started = Instant::now();
    let mut attack = s.lab.spawn(&s.mallory, arg(&attack_bin()), &args);
    // Let the flood fill whatever it can fill.
    std::thread::sleep(Duration::from_secs(3));
    both_get_reports_during(&mut s, &laptop, laptop_state.path(), what);
    eprintln!("agent RSS {rss_before} KiB before {what}, {} KiB during it", s.agent.rss_kib());
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "the peers finished after the flood ({elapsed:?})");
    let result = attack.wait_line_for(done, Duration::from_secs(30));
    eprintln!("{what}: {result}");
    std::thread::sleep(SCREEN_SETTLES);
    screen_stays_readable(&mut s.agent, lines_before, what);
}

/// 1000 connections that complete TLS and then say nothing, 100 a second from 16
/// addresses: the phone still pairs and gets its report, and a peer paired before
/// reconnects (128 such connections once locked everyone out for 10 s).
#[test]
fn silent_connections_do_not_lock_out_pairing_or_pinned_peers() {
    peers_get_through(
        "silent_connections_do_not_lock_out_pairing_or_pinned_peers",
        &["silent", "--count", "1000", "--rate", "100", "--hold", "2"],
        "attempted=",
        "1000 silent connections at 100/s from 16 addresses",
    );
}

/// 4000 QUIC Initials that never go further (half-open connections, as from spoofed
/// addresses), 400 a second from 16 addresses: the phone still pairs and gets its report,
/// and a peer paired before reconnects (10 of 10 pairings once failed).
#[test]
fn half_open_connections_do_not_lock_out_pairing_or_pinned_peers() {
    peers_get_through(
        "half_open_connections_do_not_lock_out_pairing_or_pinned_peers",
        &["initials", "--count", "4000", "--rate", "400"],
        "sent=",
        "4000 QUIC Initials at 400/s from 16 addresses",
    );
}

/// Mallory keeps trying to burn the pairing code: wrong guesses, attempts that take the
/// agent's reply and never confirm, connections that never send Start. The phone pairs
/// with the code the agent's screen shows (3 tries at most, as a person would retype),
/// a peer paired before is not affected, and the screen stays readable with the current
/// code last (without throttling, 1000 codes burned in 5 s and ~11,000 lines).
#[test]
fn pairing_code_cannot_be_kept_burning() {
    if !lab::available("pairing_code_cannot_be_kept_burning") {
        return;
    }
    let mut s = scene(&[]);
    let (laptop, laptop_state) = paired_laptop(&mut s);
    let from = format!("{},{}", s.mallory.v4, s.lab.extra_addresses(&s.mallory, 100, 3).join(","));
    let target = s.target();
    let lines_before = s.agent.lines().len();
    let mut attack = s.lab.spawn(
        &s.mallory,
        arg(&attack_bin()),
        &[
            "guess",
            &target,
            "--wrong",
            "150",
            "--stall-confirm",
            "60",
            "--stall-start",
            "60",
            "--rate",
            "15",
            "--from",
            &from,
            "--hold",
            "12",
        ],
    );
    // The attacker has been at it for a while when the user types the code.
    std::thread::sleep(Duration::from_secs(6));
    let started = Instant::now();
    let mut tries = Vec::new();
    let paired = (0..3).any(|_| {
        let code = shown_code(&mut s.agent);
        let out = s.run_peer(&s.phone, s.peer_state.path(), "phone", Some(&code));
        let ok = out.status.success();
        tries.push(format!("{code}: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")));
        if !ok {
            std::thread::sleep(Duration::from_secs(1));
        }
        ok
    });
    eprintln!(
        "under the pairing burn: the phone paired after {} tries in {:.2} s",
        tries.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(paired, "the phone never paired with the code on the agent's screen:\n{}", tries.join("\n"));
    let out = s.run_peer(&laptop, laptop_state.path(), "laptop", None);
    let stdout = stdout_of_success(&out);
    assert!(stdout.contains("with pinned keys"), "{stdout}");
    let result = attack.wait_line_for("attempts=", Duration::from_secs(60));
    eprintln!("pairing burn: {result}");
    std::thread::sleep(SCREEN_SETTLES);
    screen_stays_readable(&mut s.agent, lines_before, "the pairing burn");
}

/// A paired peer that misbehaves after pairing — a Hello listing 300 addresses, pings
/// without end, 40,000 results with IDs the plan does not have — is refused with the
/// reason, and the agent serves the real peer afterwards.
#[test]
fn a_misbehaving_peer_is_refused_with_the_reason() {
    if !lab::available("a_misbehaving_peer_is_refused_with_the_reason") {
        return;
    }
    let mut s = scene(&[]);
    let target = s.target();
    for (then, expect) in
        [("hello", "300 addresses"), ("pings", "more than 32 pings"), ("results", "do not match the plan")]
    {
        let code = shown_code(&mut s.agent);
        let out = s.lab.run(&s.mallory, arg(&attack_bin()), &["fake-peer", &target, "--code", &code, "--then", then]);
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        eprintln!("fake peer ({then}): {said}{}", String::from_utf8_lossy(&out.stderr));
        assert!(said.starts_with("refused") && said.contains(expect), "{then}: {said}");
        s.agent.wait_line("New pairing code");
    }
    let code = shown_code(&mut s.agent);
    s.peer_gets_its_report(Some(&code));
}
