//! `lanreach-agent --local` on a LAN in a box (issue 10 item 2): the self-check dials
//! this machine's own addresses, which travel over `lo`, so it never claims what other
//! devices see. It reads the firewall configuration instead and evaluates the input path
//! of a packet from another host, naming the rule that drops it; exit code 1 when
//! something wrong is visible from this machine, 0 when nothing is.
//!
//! Always run inside a lab namespace: `--local` dials every address of the machine it
//! runs on.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod support;

use std::process::Output;

use serde_json::Value;
use support::arg;
use support::lab::{self, Lab, Node};
use tempfile::TempDir;

const PORT: u16 = 8000;

/// The rule: TCP to the port from the LAN interface is dropped.
const DROP_8000_ON_ETH0: &str = "table inet lanreach_test {
    chain input {
        type filter hook input priority 0
        iifname \"eth0\" tcp dport 8000 drop
    }
}
";

/// A host alone on the lab's bridge with `python3 -m http.server 8000 --bind 0.0.0.0`.
struct Host {
    lab: Lab,
    node: Node,
    state: TempDir,
    _www: TempDir,
}

impl Host {
    fn new() -> Host {
        let mut lab = Lab::new();
        let node = lab.node("host", 1);
        let www = tempfile::tempdir().expect("dir");
        let port = PORT.to_string();
        lab.spawn(&node, "python3", &["-m", "http.server", &port, "--bind", "0.0.0.0", "--directory", arg(www.path())]);
        lab.wait_tcp_listen(&node, PORT);
        Host { lab, node, state: tempfile::tempdir().expect("dir"), _www: www }
    }

    /// `lanreach-agent --local --check 8000 [extra]` inside the host's namespace.
    fn local(&self, extra: &[&str]) -> Output {
        let mut args = vec!["--local", "--check", "8000", "--state-dir", arg(self.state.path()), "--name", "box"];
        args.extend_from_slice(extra);
        self.lab.run(&self.node, env!("CARGO_BIN_EXE_lanreach-agent"), &args)
    }

    fn local_json(&self) -> (Option<i32>, Value) {
        let out = self.local(&["--json"]);
        let report = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), report)
    }
}

fn service(report: &Value) -> &Value {
    report["services"].as_array().expect("services").iter().find(|s| s["port"] == PORT).expect("port 8000")
}

fn codes(report: &Value) -> Vec<String> {
    report["findings"].as_array().expect("findings").iter().map(|f| f["code"].as_str().expect("code").into()).collect()
}

#[test]
fn local_check_names_the_firewall_rule_that_drops_the_lan_and_exits_1() {
    if !lab::available_with("local_check_names_the_firewall_rule_that_drops_the_lan_and_exits_1", &["nft", "python3"]) {
        return;
    }
    let host = Host::new();
    host.lab.nft(&host.node, DROP_8000_ON_ETH0);
    let (code, report) = host.local_json();
    assert_eq!(code, Some(1), "something wrong is visible from this machine: {report}");
    let s = service(&report);
    assert_ne!(s["verdict"], "reachable", "the self-check cannot see the LAN: {s}");
    assert_eq!(s["verdict"], "firewall_drop", "{s}");
    // The probe over lo was answered; the configuration says what the LAN meets.
    let v4 = s["firewall"]
        .as_array()
        .expect("firewall")
        .iter()
        .find(|c| c["target"] == "198.51.100.1:8000")
        .unwrap_or_else(|| panic!("no evaluation for 198.51.100.1:8000: {s}"));
    assert_eq!(v4["outcome"], "dropped", "{v4}");
    assert_eq!(v4["interface"], "eth0", "{v4}");
    assert_eq!(v4["rule"]["text"], "iifname \"eth0\" tcp dport 8000 drop", "{v4}");
    assert_eq!(v4["rule"]["table"], "inet lanreach_test", "{v4}");
    let f = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["code"] == "firewall_drop")
        .expect("finding");
    let message = f["message"].as_str().expect("message");
    assert!(message.contains("iifname \"eth0\" tcp dport 8000 drop"), "the finding names the rule: {message}");
    let fix = f["fix"].as_str().expect("fix");
    assert!(fix.contains("nft") && fix.contains("lanreach_test"), "the fix is about that rule: {fix}");
    assert!(codes(&report).contains(&"local_mode_limits".to_owned()), "{:?}", codes(&report));

    // The same in words: what this machine saw, never "from outside".
    let out = host.local(&[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("from outside"), "{text}");
    assert!(text.contains("from this machine"), "{text}");
    assert!(text.contains("iifname \"eth0\" tcp dport 8000 drop"), "{text}");
}

#[test]
fn local_check_without_a_rule_exits_0_with_a_local_verdict() {
    if !lab::available_with("local_check_without_a_rule_exits_0_with_a_local_verdict", &["nft", "python3"]) {
        return;
    }
    let host = Host::new();
    // IPv4 only, so that python's 0.0.0.0 serves every address there is (with IPv6 it
    // is `partial`: refused there, visible from this machine).
    host.lab.drop_ipv6(&host.node);
    // A firewall that lets the port in: evaluated, and said so.
    host.lab.nft(
        &host.node,
        "table inet lanreach_test {
            chain input {
                type filter hook input priority 0; policy drop;
                ct state established,related accept
                iif lo accept
                tcp dport { 22, 8000 } accept
            }
        }
        ",
    );
    let (code, report) = host.local_json();
    assert_eq!(code, Some(0), "nothing wrong is visible from this machine: {report}");
    let s = service(&report);
    assert_eq!(s["verdict"], "reachable_locally", "{s}");
    let checks = s["firewall"].as_array().expect("firewall");
    assert!(!checks.is_empty() && checks.iter().all(|c| c["outcome"] == "accepted"), "{s}");
    assert_eq!(checks[0]["rule"]["text"], "tcp dport { 22, 8000 } accept", "{s}");
    assert!(codes(&report).contains(&"firewall_accepts".to_owned()), "{:?}", codes(&report));
    let out = host.local(&[]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("reachable_locally") && !text.contains("from outside"), "{text}");
}

#[test]
fn local_check_without_permission_to_read_the_rules_says_so_plainly() {
    if !lab::available_with(
        "local_check_without_permission_to_read_the_rules_says_so_plainly",
        &["nft", "python3", "setpriv"],
    ) {
        return;
    }
    let host = Host::new();
    host.lab.drop_ipv6(&host.node);
    host.lab.nft(&host.node, DROP_8000_ON_ETH0);
    // The agent as nobody: it can see the socket, not the firewall's rules.
    let state = tempfile::tempdir().expect("dir");
    std::fs::set_permissions(state.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).expect("chmod");
    let out = host.lab.run(
        &host.node,
        "setpriv",
        &[
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_lanreach-agent"),
            "--local",
            "--check",
            "8000",
            "--json",
            "--state-dir",
            arg(state.path()),
            "--name",
            "box",
        ],
    );
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    // Nothing wrong is visible from here; what is not known is said, not guessed.
    assert_eq!(out.status.code(), Some(0), "{report}");
    let s = service(&report);
    assert_eq!(s["verdict"], "reachable_locally", "{s}");
    let check = &s["firewall"][0];
    assert_eq!(check["outcome"], "not_evaluated", "{check}");
    assert!(check["rule"].is_null(), "{check}");
    let reason = check["reason"].as_str().expect("reason");
    assert!(reason.contains("nft -j list ruleset") && reason.contains("not permitted"), "{reason}");
    let f = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["code"] == "firewall_not_evaluated")
        .unwrap_or_else(|| panic!("{}", report["findings"]));
    assert_eq!(f["severity"], "info");
    assert!(f["message"].as_str().expect("message").contains("could not be evaluated"), "{f}");
    assert!(f["fix"].as_str().expect("fix").contains("root"), "{f}");
}
