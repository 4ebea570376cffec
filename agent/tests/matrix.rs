//! The reachability matrix on a LAN in a box: a host with two interfaces, a phone on
//! the bridge, real listeners, real probes, real firewalls.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod support;

use std::time::Duration;

use serde_json::Value;
use support::lab::{self, Lab, Node, Spawned};
use support::{arg, peer_bin, stdout_of_success};
use tempfile::TempDir;

const CODE: &str = "7K3Q-M2XD";

/// Drops all TCP arriving on the LAN interface (the control channel is UDP).
const DROP_TCP_ON_ETH0: &str = "table inet lanreach_test {
    chain input {
        type filter hook input priority 0
        iifname \"eth0\" meta l4proto tcp drop
    }
}
";

/// Rejects TCP on the LAN interface with a reset, as `REJECT --reject-with tcp-reset` does.
const REJECT_TCP_ON_ETH0: &str = "table inet lanreach_test {
    chain input {
        type filter hook input priority 0
        iifname \"eth0\" meta l4proto tcp reject with tcp reset
    }
}
";

/// Host (eth0 198.51.100.1 + 2001:db8:1::1 on the bridge, eth1 203.0.113.1 +
/// 2001:db8:2::1) and phone (198.51.100.2, routes to the host's second network).
struct Setup {
    lab: Lab,
    host: Node,
    phone: Node,
    agent_state: TempDir,
    peer_state: TempDir,
}

fn setup() -> Setup {
    let mut lab = Lab::new();
    let host = lab.node("host", 1);
    let phone = lab.node("phone", 2);
    lab.second_interface(&host, "eth1", "203.0.113.1", "2001:db8:2::1");
    lab.route(&phone, "203.0.113.0/24", &host.v4);
    lab.route(&phone, "2001:db8:2::/64", &host.v6);
    Setup {
        lab,
        host,
        phone,
        agent_state: tempfile::tempdir().expect("dir"),
        peer_state: tempfile::tempdir().expect("dir"),
    }
}

impl Setup {
    fn start_agent(&mut self) -> Spawned {
        let state = arg(self.agent_state.path()).to_owned();
        let mut agent = self.lab.spawn(
            &self.host,
            env!("CARGO_BIN_EXE_lanreach-agent"),
            &["--state-dir", &state, "--code", CODE, "--once", "--json", "--name", "box"],
        );
        agent.wait_line("pairing code:");
        agent
    }

    /// Runs the peer with `--json` and returns its report.
    fn peer_report(&self) -> Value {
        let state = arg(self.peer_state.path()).to_owned();
        let out = self.lab.run(
            &self.phone,
            support::arg(&peer_bin()),
            &[&self.host.v4, "--code", CODE, "--json", "--state-dir", &state, "--name", "phone"],
        );
        serde_json::from_str(&stdout_of_success(&out)).expect("stdout is one JSON document")
    }
}

/// The outcome of the probe of `bind`'s listener (by bind IP) dialled at `target`.
fn outcome(report: &Value, proto: &str, bind_ip: &str, target_ip: &str) -> String {
    let probes = report["probes"].as_array().expect("probes");
    let found = probes.iter().find(|p| {
        let bind: std::net::SocketAddr = p["bind"].as_str().expect("bind").parse().expect("bind addr");
        let target: std::net::SocketAddr = p["target"].as_str().expect("target").parse().expect("target addr");
        p["proto"] == proto && bind.ip().to_string() == bind_ip && target.ip().to_string() == target_ip
    });
    match found {
        Some(p) => p["outcome"].as_str().expect("outcome").to_owned(),
        None => "not probed".to_owned(),
    }
}

fn finding_codes(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["code"].as_str().expect("code").to_owned())
        .collect()
}

#[test]
fn every_matrix_row_from_the_peer() {
    if !lab::available("every_matrix_row_from_the_peer") {
        return;
    }
    let mut s = setup();
    let agent = s.start_agent();
    let report = s.peer_report();
    assert_eq!(report["schema"], "lanreach.report/1");
    assert_eq!(report["mode"], "peer");
    assert_eq!(report["peer"]["name"], "phone");
    assert_eq!(report["agent"]["name"], "box");
    let seen: std::net::SocketAddr = report["peer"]["seen_from"].as_str().expect("seen_from").parse().expect("addr");
    assert_eq!(seen.ip().to_string(), "198.51.100.2");
    assert_eq!(report["peer"]["arrival_interface"], "eth0");
    let kinds: Vec<&str> = report["agent"]["addresses"]
        .as_array()
        .expect("addresses")
        .iter()
        .map(|a| a["kind"].as_str().expect("kind"))
        .collect();
    assert!(kinds.contains(&"loopback") && kinds.contains(&"lan"), "{kinds:?}");

    let (lan4, other4, lan6, other6) = ("198.51.100.1", "203.0.113.1", "2001:db8:1::1", "2001:db8:2::1");
    // Loopback listeners: refused from the peer (TCP); UDP ones are not dialled (a
    // closed UDP port answers with a rate-limited ICMP error).
    assert_eq!(outcome(&report, "tcp", "127.0.0.1", lan4), "refused", "tcp 127.0.0.1");
    assert_eq!(outcome(&report, "tcp", "::1", lan6), "refused", "tcp ::1");
    assert_eq!(outcome(&report, "udp", "127.0.0.1", lan4), "not probed");
    // No probe of the plan drew an ICMP error from this open host.
    assert!(report["probes"].as_array().expect("probes").iter().all(|p| p["proto"] == "tcp" || p["outcome"] == "open"));
    for proto in ["tcp", "udp"] {
        // Wildcards: open at every address of their family.
        for t in [lan4, other4] {
            assert_eq!(outcome(&report, proto, "0.0.0.0", t), "open", "{proto} 0.0.0.0 -> {t}");
        }
        for t in [lan6, other6] {
            assert_eq!(outcome(&report, proto, "::", t), "open", "{proto} :: -> {t}");
        }
        // A specific address: open there.
        assert_eq!(outcome(&report, proto, other4, other4), "open", "{proto} {other4}");
        assert_eq!(outcome(&report, proto, lan6, lan6), "open", "{proto} {lan6}");
    }
    // TCP shows the rest: specific binds refused at the other address, :: over IPv6 only.
    assert_eq!(outcome(&report, "tcp", other4, lan4), "refused");
    assert_eq!(outcome(&report, "tcp", lan4, other4), "refused");
    assert_eq!(outcome(&report, "tcp", "::", lan4), "refused", ":: has IPV6_V6ONLY");
    assert_eq!(outcome(&report, "tcp", "0.0.0.0", lan6), "refused");
    // The listeners saw every open probe.
    for p in report["probes"].as_array().expect("probes") {
        if p["outcome"] == "open" {
            assert_eq!(p["seen_by_listener"], true, "{p}");
        }
    }
    let codes = finding_codes(&report);
    for code in
        ["loopback_only", "lan_reachable_tcp", "lan_reachable_udp", "address_specific_bind", "ipv4_ipv6_separate"]
    {
        assert!(codes.contains(&code.to_owned()), "missing {code} in {codes:?}");
    }
    assert!(!codes.iter().any(|c| c.contains("firewall") || c == "nat_between"), "{codes:?}");

    // --once: the agent printed the same report as JSON on stdout and exited 0.
    assert_eq!(s.lab.wait_exit(&agent, Duration::from_secs(10)), Some(0));
    let agent_report: Value = serde_json::from_str(&agent.stdout()).expect("agent stdout is one JSON document");
    assert_eq!(agent_report, report);
}

#[test]
fn firewall_dropping_tcp_on_the_lan_interface_is_diagnosed() {
    if !lab::available_with("firewall_dropping_tcp_on_the_lan_interface_is_diagnosed", &["nft"]) {
        return;
    }
    let mut s = setup();
    s.lab.nft(&s.host, DROP_TCP_ON_ETH0);
    let _agent = s.start_agent();
    let report = s.peer_report();
    assert_eq!(outcome(&report, "tcp", "0.0.0.0", "198.51.100.1"), "timeout");
    assert_eq!(outcome(&report, "tcp", "::", "2001:db8:1::1"), "timeout");
    assert_eq!(outcome(&report, "udp", "0.0.0.0", "198.51.100.1"), "open", "UDP passes");
    let codes = finding_codes(&report);
    assert_eq!(codes[0], "firewall_drops_tcp", "the firewall finding comes first: {codes:?}");
    let fix = report["findings"][0]["fix"].as_str().expect("fix");
    assert!(fix.contains("nft") && fix.contains("ufw"), "{fix}");
}

#[test]
fn firewall_rejecting_tcp_is_told_from_nothing_listening() {
    if !lab::available_with("firewall_rejecting_tcp_is_told_from_nothing_listening", &["nft"]) {
        return;
    }
    let mut s = setup();
    s.lab.nft(&s.host, REJECT_TCP_ON_ETH0);
    let _agent = s.start_agent();
    let report = s.peer_report();
    assert_eq!(outcome(&report, "tcp", "0.0.0.0", "198.51.100.1"), "refused");
    assert!(finding_codes(&report).contains(&"firewall_rejects_tcp".to_owned()), "{:?}", finding_codes(&report));
}

#[test]
fn local_mode_cannot_see_interface_firewall_rules_and_says_so() {
    if !lab::available_with("local_mode_cannot_see_interface_firewall_rules_and_says_so", &["nft"]) {
        return;
    }
    let s = setup();
    s.lab.nft(&s.host, DROP_TCP_ON_ETH0);
    let out = s.lab.run(
        &s.host,
        env!("CARGO_BIN_EXE_lanreach-agent"),
        &["--local", "--json", "--state-dir", arg(s.agent_state.path()), "--name", "box"],
    );
    let report: Value = serde_json::from_str(&stdout_of_success(&out)).expect("one JSON document");
    assert_eq!(report["mode"], "local");
    // The self-check travels over lo: the eth0 rule is not exercised.
    assert_eq!(outcome(&report, "tcp", "0.0.0.0", "198.51.100.1"), "open");
    assert_eq!(outcome(&report, "tcp", "0.0.0.0", "203.0.113.1"), "open");
    assert_eq!(outcome(&report, "tcp", "127.0.0.1", "198.51.100.1"), "refused");
    assert!(finding_codes(&report).contains(&"local_mode_limits".to_owned()));
    // Without --json the same in words.
    let out = s.lab.run(
        &s.host,
        env!("CARGO_BIN_EXE_lanreach-agent"),
        &["--local", "--state-dir", arg(s.agent_state.path())],
    );
    let text = stdout_of_success(&out);
    // The matrix of four addresses is a list at 100 columns (no terminal), a table wider.
    let matrix = text.contains("TCP listener") || text.contains("TCP test listeners");
    assert!(text.contains("single-machine self-check") && matrix, "{text}");
}
