//! When the peer cannot reach the agent at all, it names the cause from its own facts,
//! on a LAN in a box: another subnet (unrouted and routed), bridge port isolation, a
//! VPN-like route, the host's firewall dropping UDP 47800 (with and without the agent's
//! page), and the agent not running. Each test prints how long the peer took (a figure,
//! not an assertion beyond a generous bound). Needs root, iproute2 and nftables.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::lab::{self, Lab, Node, sh};
use support::{arg, peer_bin};

const CODE: &str = "7K3Q-M2XD";
/// A browser token for links that say the agent serves its page.
const TOKEN: &str = "0123456789ABCDEFGHJKMNPQRS";

/// Runs the peer in `phone` against `target` with `--json`; returns the cause document,
/// its stderr, and the seconds it took.
fn peer_cause(lab: &Lab, phone: &Node, target: &str, extra: &[&str]) -> (Value, String, f64) {
    let state = tempfile::tempdir().expect("dir");
    let mut args = vec![target, "--json", "--state-dir", arg(state.path())];
    args.extend_from_slice(extra);
    let started = Instant::now();
    let out = lab.run(phone, arg(&peer_bin()), &args);
    let secs = started.elapsed().as_secs_f64();
    // Words, not lines: the message is wrapped to the terminal's width.
    let stderr = String::from_utf8_lossy(&out.stderr).split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no cause document: {e}\n{stderr}"));
    assert_eq!(doc["schema"], "lanreach.nopath/1");
    (doc, stderr, secs)
}

fn code(doc: &Value) -> &str {
    doc["cause"]["code"].as_str().expect("code")
}

/// `link` for the agent at 198.51.100.1/24, with the page's token when `page`.
fn link(page: bool) -> String {
    let t = if page { format!("&t={TOKEN}") } else { String::new() };
    format!("http://198.51.100.1:47800/#a=198.51.100.1/24,2001:db8:1::1/64{t}&code={CODE}")
}

/// A host running the agent (`extra` flags), and a phone.
fn scene(test: &str, agent: Option<&[&str]>) -> Option<(Lab, Node, Node, Option<tempfile::TempDir>)> {
    if !lab::available_with(test, &["nft"]) {
        return None;
    }
    let mut lab = Lab::new();
    let host = lab.node("host", 1);
    let phone = lab.node("phone", 2);
    let state = agent.map(|extra| {
        let state = tempfile::tempdir().expect("dir");
        let mut args = vec!["--state-dir", arg(state.path()), "--code", CODE, "--no-mdns", "--name", "box"];
        args.extend_from_slice(extra);
        let mut agent = lab.spawn(&host, env!("CARGO_BIN_EXE_lanreach-agent"), &args);
        agent.wait_line("pairing code:");
        state
    });
    Some((lab, host, phone, state))
}

/// Moves `phone` to another subnet: 203.0.113.20/24 only.
fn other_subnet(phone: &Node) {
    sh(&["ip", "-n", &phone.ns, "addr", "flush", "dev", "eth0"]);
    sh(&["ip", "-n", &phone.ns, "addr", "add", "203.0.113.20/24", "dev", "eth0"]);
}

#[test]
fn another_subnet_without_a_route_is_named_at_once() {
    let Some((lab, _host, phone, _state)) = scene("nopath::unrouted", Some(&[])) else { return };
    other_subnet(&phone);
    let (doc, stderr, secs) = peer_cause(&lab, &phone, &link(true), &[]);
    eprintln!("unrouted other subnet: {} in {secs:.2} s", code(&doc));
    assert_eq!(code(&doc), "no_route", "{stderr}");
    assert!(stderr.contains("this device is 203.0.113.20/24 on eth0"), "{stderr}");
    assert!(stderr.contains("the same Wi-Fi"), "{stderr}");
    assert!(secs < 2.0, "{secs:.2} s");
}

#[test]
fn another_subnet_through_a_gateway_is_named_different_networks() {
    let Some((lab, _host, phone, _state)) = scene("nopath::routed", Some(&[])) else { return };
    other_subnet(&phone);
    // A default route through a gateway that does not answer (a router that joins the
    // networks would pass or refuse; this one is missing).
    sh(&["ip", "-n", &phone.ns, "route", "add", "default", "via", "203.0.113.1", "dev", "eth0"]);
    let (doc, stderr, secs) = peer_cause(&lab, &phone, &link(true), &[]);
    eprintln!("routed other subnet: {} in {secs:.2} s", code(&doc));
    assert_eq!(code(&doc), "different_network", "{stderr}");
    assert!(stderr.contains("the agent is 198.51.100.1/24"), "{stderr}");
    assert!(secs < 6.0, "{secs:.2} s");
}

#[test]
fn an_isolated_bridge_port_is_named_isolation() {
    let Some((lab, host, phone, _state)) = scene("nopath::isolation", Some(&[])) else { return };
    // Isolated bridge ports cannot talk to each other (an access point's client isolation).
    lab.isolate(&host);
    lab.isolate(&phone);
    let (doc, stderr, secs) = peer_cause(&lab, &phone, &link(true), &[]);
    eprintln!("client isolation: {} in {secs:.2} s", code(&doc));
    assert_eq!(code(&doc), "isolation", "{stderr}");
    assert!(stderr.contains("does not answer address resolution"), "{stderr}");
    assert!(secs < 6.0, "{secs:.2} s");
}

#[test]
fn a_vpn_route_to_the_agent_is_named_by_its_interface() {
    let Some((lab, _host, phone, _state)) = scene("nopath::vpn", Some(&[])) else { return };
    // A tunnel-like link whose route captures the agent's address.
    lab.second_interface_in(&phone, "tun0", "203.0.113.99/32", "2001:db8:9::99/128");
    sh(&["ip", "-n", &phone.ns, "route", "add", "198.51.100.1/32", "dev", "tun0"]);
    let (doc, stderr, secs) = peer_cause(&lab, &phone, "198.51.100.1", &["--code", CODE]);
    eprintln!("VPN route: {} in {secs:.2} s", code(&doc));
    assert_eq!(code(&doc), "vpn_route", "{stderr}");
    assert!(stderr.contains("goes through tun0"), "{stderr}");
    assert!(secs < 4.0, "{secs:.2} s");
}

#[test]
fn the_host_firewall_dropping_udp_is_named_from_the_page_or_the_neighbour_table() {
    let Some((lab, host, phone, _state)) = scene("nopath::firewall", Some(&[])) else { return };
    lab.nft(
        &host,
        "table inet lrtest {\n chain input {\n  type filter hook input priority 0;\n  udp dport 47800 drop\n }\n}\n",
    );
    // The page answers on TCP 47800: the agent runs, UDP is dropped.
    let (doc, stderr, secs) = peer_cause(&lab, &phone, &link(true), &[]);
    eprintln!("host firewall, page served: {} in {secs:.2} s", code(&doc));
    assert_eq!(code(&doc), "host_firewall", "{stderr}");
    assert!(stderr.contains("The agent's page answers on TCP 198.51.100.1:47800"), "{stderr}");
    assert!(secs < 4.0, "{secs:.2} s");
    // With TCP dropped too, only the neighbour table speaks, at the handshake's deadline.
    sh(&[
        "ip", "netns", "exec", &host.ns, "nft", "add", "rule", "inet", "lrtest", "input", "tcp", "dport", "47800",
        "drop",
    ]);
    let (doc, stderr, secs) = peer_cause(&lab, &phone, &link(false), &["--connect-timeout", "3"]);
    eprintln!("host firewall, no page: {} in {secs:.2} s (the connect deadline)", code(&doc));
    assert_eq!(code(&doc), "host_firewall", "{stderr}");
    assert!(stderr.contains("answers address resolution"), "{stderr}");
}

#[test]
fn a_firewall_rejecting_udp_is_not_taken_for_a_stopped_agent() {
    let Some((lab, host, phone, _state)) = scene("nopath::reject", Some(&[])) else { return };
    for (rule, says) in [("reject", "refuses UDP"), ("reject with icmpx type admin-prohibited", "host prohibited")] {
        lab.nft(
            &host,
            &format!(
                "table inet lrtest {{\n chain input {{\n  type filter hook input priority 0;\n  udp dport 47800 {rule}\n }}\n}}\n"
            ),
        );
        // Typed address, no link: the page's TCP port still answers.
        let (doc, stderr, secs) = peer_cause(&lab, &phone, "198.51.100.1", &["--code", CODE]);
        eprintln!("host firewall, {rule}: {} in {secs:.2} s", code(&doc));
        assert_eq!(code(&doc), "host_firewall", "{rule}: {stderr}");
        assert!(stderr.contains(says), "{rule}: {stderr}");
        sh(&["ip", "netns", "exec", &host.ns, "nft", "delete", "table", "inet", "lrtest"]);
    }
}

#[test]
fn the_agent_not_running_is_named_from_the_icmp_answer() {
    let Some((lab, _host, phone, _state)) = scene("nopath::not_running", None) else { return };
    // A link without the page's token: only the ICMP answers can tell (with it, the
    // refused page port may tell first).
    let (doc, stderr, secs) = peer_cause(&lab, &phone, &link(false), &[]);
    eprintln!("agent not running: {} in {secs:.2} s", code(&doc));
    assert_eq!(code(&doc), "agent_not_running", "{stderr}");
    assert!(stderr.contains("ICMP port unreachable"), "{stderr}");
    assert!(secs < Duration::from_secs(3).as_secs_f64(), "{secs:.2} s");
}

#[test]
fn a_peer_that_connects_but_meets_blocked_test_listeners_gets_the_cause_named_from_both_sides() {
    let Some((mut lab, host, phone, _state)) = scene("nopath::blocked_after_connect", Some(&["--check", "3000"]))
    else {
        return;
    };
    lab.spawn(&host, "python3", &["-m", "http.server", "3000", "--bind", "0.0.0.0"]);
    lab.wait_tcp_listen(&host, 3000);
    // The firewall lets the control channel in, and nothing else.
    lab.nft(
        &host,
        "table inet lrtest {\n chain input {\n  type filter hook input priority 0;\n  \
         iifname \"eth0\" udp dport 47800 accept\n  iifname \"eth0\" meta l4proto ipv6-icmp accept\n  \
         iifname \"eth0\" drop\n }\n}\n",
    );
    let state = tempfile::tempdir().expect("dir");
    let out = lab.run(
        &phone,
        arg(&peer_bin()),
        &["198.51.100.1", "--code", CODE, "--json", "--state-dir", arg(state.path())],
    );
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let port = &report["services"][0];
    assert_eq!(port["verdict"], "network_blocked", "{report:#}");
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "network_blocked")
        .expect("the port's finding");
    let message = finding["message"].as_str().unwrap();
    assert!(message.contains("from 198.51.100.2, on this machine's own network"), "{message}");
    assert!(message.contains("this machine's firewall lets the control channel in and nothing else"), "{message}");
    assert!(finding["fix"].as_str().unwrap().contains("ufw allow 3000/tcp"), "{finding}");
}
