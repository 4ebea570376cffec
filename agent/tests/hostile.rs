//! A hostile machine on the LAN in a box: bounded attacks from `lanreach-attack` in a
//! namespace of its own (198.51.100.66), against an agent on 198.51.100.1, asserting the
//! property with generous bounds while the real peer still gets its answer. Precise
//! figures are benchmarks (`scripts/bench.sh`), not assertions.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod support;

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
        let peer = arg(&peer_bin()).to_owned();
        let state = arg(self.peer_state.path()).to_owned();
        let mut args = vec![self.host.v4.as_str(), "--state-dir", &state, "--name", "phone"];
        if let Some(code) = code {
            args.extend_from_slice(&["--code", code]);
        }
        let out = self.lab.run(&self.phone, &peer, &args);
        let stdout = stdout_of_success(&out);
        assert!(stdout.contains("lanreach report"), "{stdout}");
        stdout
    }
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
