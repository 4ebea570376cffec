//! `--check PORT` on a LAN in a box: real servers (python, socat) bound in every way
//! people bind them, real firewalls, and the verdict, message and fix for each.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod support;

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;
use support::lab::{self, Lab, Node};
use support::{arg, peer_bin};
use tempfile::TempDir;

const CODE: &str = "7K3Q-M2XD";
const PORT: u16 = 3000;

fn server_py() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/server.py")
}

/// A host and a phone, an agent on the host checking `extra` ports, and a way to run
/// the peer.
struct Scene {
    lab: Lab,
    host: Node,
    phone: Node,
    agent_state: TempDir,
    peer_state: TempDir,
    www: TempDir,
}

impl Scene {
    fn new() -> Scene {
        let mut lab = Lab::new();
        let host = lab.node("host", 1);
        let phone = lab.node("phone", 2);
        let dir = || tempfile::tempdir().expect("dir");
        Scene { lab, host, phone, agent_state: dir(), peer_state: dir(), www: dir() }
    }

    /// `python3 -m http.server PORT --bind addr` on the host.
    fn http_server(&mut self, bind: &str) {
        let www = arg(self.www.path()).to_owned();
        let port = PORT.to_string();
        let host = self.host.clone();
        self.lab.spawn(&host, "python3", &["-m", "http.server", &port, "--bind", bind, "--directory", &www]);
        self.lab.wait_tcp_listen(&host, PORT);
    }

    /// One of `tests/support/server.py`'s servers on `node`.
    fn stand_in(&mut self, node: &Node, mode: &str) {
        let script = server_py();
        let mut s = self.lab.spawn(node, "python3", &[arg(&script), mode, &PORT.to_string()]);
        s.wait_line("ready");
    }

    /// One of `tests/support/server.py`'s UDP servers on the host, on `port`.
    fn udp_server(&mut self, mode: &str, port: u16) {
        let host = self.host.clone();
        let mut server = self.lab.spawn(&host, "python3", &[arg(&server_py()), mode, &port.to_string()]);
        server.wait_line("ready");
    }

    fn agent(&mut self, check: &str, extra: &[&str]) -> support::lab::Spawned {
        let state = arg(self.agent_state.path()).to_owned();
        let mut args = vec!["--state-dir", &state, "--code", CODE, "--once", "--check", check, "--name", "box"];
        args.extend_from_slice(extra);
        let host = self.host.clone();
        let mut agent = self.lab.spawn(&host, env!("CARGO_BIN_EXE_lanreach-agent"), &args);
        agent.wait_line("pairing code:");
        agent
    }

    /// Runs the peer twice over: `--json` for the report, and the exit code.
    fn peer(&self) -> (Option<i32>, Value) {
        let state = arg(self.peer_state.path()).to_owned();
        let out: Output = self.lab.run(
            &self.phone,
            arg(&peer_bin()),
            &[&self.host.v4, "--code", CODE, "--json", "--state-dir", &state, "--name", "phone"],
        );
        let report = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), report)
    }
}

fn service(report: &Value, port: u16) -> &Value {
    report["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["port"] == port)
        .unwrap_or_else(|| panic!("no service {port} in {report}"))
}

fn finding<'a>(report: &'a Value, code: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["code"] == code)
        .unwrap_or_else(|| panic!("no finding {code} in {}", report["findings"]))
}

/// Runs a scenario: `setup` prepares the host, then agent and peer run, and the verdict
/// for port 3000 must be `verdict`, with a finding whose fix mentions `fix_hint`.
fn scenario(name: &str, setup: impl FnOnce(&mut Scene), verdict: &str, fix_hint: &str) -> Value {
    scenario_for(name, &PORT.to_string(), PORT, setup, verdict, fix_hint)
}

/// [`scenario`] for `check` (a `--check` value), judging `port`.
fn scenario_for(
    name: &str,
    check: &str,
    port: u16,
    setup: impl FnOnce(&mut Scene),
    verdict: &str,
    fix_hint: &str,
) -> Value {
    let mut scene = Scene::new();
    setup(&mut scene);
    let agent = scene.agent(check, &[]);
    let (code, report) = scene.peer();
    // With --once the agent's exit code answers for the same report.
    let agent_code = scene.lab.wait_exit(&agent, std::time::Duration::from_secs(10));
    assert_eq!(agent_code, code, "{name}: agent and peer exit codes agree");
    let s = service(&report, port);
    assert_eq!(s["verdict"], verdict, "{name}: {s}");
    if verdict == "reachable" {
        assert_eq!(code, Some(0), "{name}: exit code");
    } else {
        assert_eq!(code, Some(1), "{name}: exit code");
        let f = finding(&report, verdict);
        let fix = f["fix"].as_str().expect("fix");
        assert!(fix.contains(fix_hint), "{name}: fix {fix:?} lacks {fix_hint:?}");
        assert!(f["message"].as_str().expect("message").contains(&port.to_string()), "{name}: {f}");
    }
    report
}

/// nftables rules for the host's input hook: a stateful ruleset (as ufw, firewalld and
/// Docker load) keeps connection tracking on; `rules` alone does not.
fn input_rules(stateful: bool, rules: &str) -> String {
    let ct = if stateful { "  ct state established,related accept\n" } else { "" };
    format!("table inet t {{\n chain input {{\n  type filter hook input priority 0\n{ct}  {rules}\n }}\n}}\n")
}

/// The findings that are more than information.
fn problems(report: &Value) -> Vec<&Value> {
    report["findings"].as_array().expect("findings").iter().filter(|f| f["severity"] != "info").collect()
}

/// The outside probes of a service: (target, outcome, delivered).
fn udp_probes(s: &Value) -> Vec<(String, String, Value)> {
    s["probes"]
        .as_array()
        .expect("probes")
        .iter()
        .map(|p| {
            (
                p["target"].as_str().unwrap_or("").to_owned(),
                p["outcome"].as_str().unwrap_or("").to_owned(),
                p["delivered"].clone(),
            )
        })
        .collect()
}

macro_rules! lab_test {
    ($name:ident, [$($tool:expr),*], $body:expr) => {
        #[test]
        fn $name() {
            if !lab::available_with(stringify!($name), &["python3" $(, $tool)*]) {
                return;
            }
            $body
        }
    };
}

lab_test!(bound_to_loopback_is_loopback_only, [], {
    let report = scenario("127.0.0.1", |s| s.http_server("127.0.0.1"), "loopback_only", "--bind ::");
    let l = &service(&report, PORT)["listeners"][0];
    assert_eq!(l["bind"], "127.0.0.1:3000");
    assert_eq!(l["program"], "python3", "the agent names the program");
    assert!(l["pid"].as_u64().is_some());
});

lab_test!(bound_to_ipv6_loopback_is_loopback_only, [], {
    let report = scenario("[::1]", |s| s.http_server("::1"), "loopback_only", "--bind ::");
    let f = finding(&report, "loopback_only");
    assert_eq!(f["fix"], "run `python3 -m http.server 3000 --bind ::` (every IPv4 and IPv6 address)");
});

// Issue 10 item 6: a fix in the terms of the bind found — `[::1]`, not "127.0.0.1/localhost".
lab_test!(generic_server_on_ipv6_loopback_gets_a_fix_naming_its_bind, ["socat"], {
    let report = scenario(
        "socat on [::1]",
        |s| {
            let host = s.host.clone();
            s.lab.spawn(&host, "socat", &["TCP6-LISTEN:3000,bind=[::1],reuseaddr,fork", "SYSTEM:echo hello"]);
            s.lab.wait_tcp_listen(&host, PORT);
        },
        "loopback_only",
        "instead of [::1]:3000",
    );
    assert_eq!(
        finding(&report, "loopback_only")["fix"],
        "make the server listen on [::]:3000 with IPV6_V6ONLY off (every IPv4 and IPv6 address) instead of [::1]:3000"
    );
});

lab_test!(bound_to_every_address_is_reachable, [], {
    // python's http.server makes "::" a dual-stack socket: every IPv4 and IPv6 address.
    let report = scenario("[::] dual-stack", |s| s.http_server("::"), "reachable", "");
    let probes = service(&report, PORT)["probes"].as_array().expect("probes").clone();
    let lan = probes.iter().find(|p| p["target"] == "198.51.100.1:3000").expect("probe at the LAN address");
    assert_eq!((lan["outcome"].as_str(), lan["http_status"].as_u64()), (Some("open"), Some(200)));
});

lab_test!(bound_to_the_lan_address_is_reachable, [], {
    // A phone with IPv4 only: the LAN address is every address it can reach.
    scenario(
        "LAN address",
        |s| {
            s.lab.drop_ipv6(&s.phone);
            s.http_server("198.51.100.1");
        },
        "reachable",
        "",
    );
});

// Issue 10 item 1: one family answers, the dialled one does not.
lab_test!(one_family_answering_is_partial_naming_the_dialled_address, [], {
    let report = scenario(
        "[::] v6only, peer with IPv4 and IPv6 dialling IPv4",
        |s| {
            let host = s.host.clone();
            s.stand_in(&host, "v6only");
        },
        "partial",
        "clear IPV6_V6ONLY on the server's [::]:3000 socket",
    );
    assert_eq!(report["peer"]["dialled"], "198.51.100.1");
    let message = finding(&report, "partial")["message"].as_str().expect("message").to_owned();
    assert!(
        message
            .contains("reachable at 2001:db8:1::1 (IPv6) but refused at 198.51.100.1 (IPv4), the address you dialled"),
        "{message}"
    );
    assert!(message.contains("[::]:3000 (IPv6 only)"), "{message}");
});

lab_test!(ipv4_wildcard_with_an_ipv6_peer_is_partial_with_the_dual_stack_fix, [], {
    let report = scenario(
        "0.0.0.0, peer with IPv4 and IPv6",
        |s| s.http_server("0.0.0.0"),
        "partial",
        "run `python3 -m http.server 3000 --bind ::` (every IPv4 and IPv6 address)",
    );
    let message = finding(&report, "partial")["message"].as_str().expect("message").to_owned();
    assert!(
        message
            .contains("reachable at 198.51.100.1 (IPv4), the address you dialled, but refused at 2001:db8:1::1 (IPv6)"),
        "{message}"
    );
});

lab_test!(bound_to_another_interface_is_interface_only, [], {
    let report = scenario(
        "second interface",
        |s| {
            // A second network the phone has no route to (another NIC, a VPN).
            s.lab.second_interface(&s.host, "eth1", "203.0.113.1", "2001:db8:2::1");
            s.http_server("203.0.113.1");
        },
        "interface_only",
        "--bind ::",
    );
    // Issue 10 item 6: one fix, not "0.0.0.0, or …; … instead of 127.0.0.1/localhost".
    assert_eq!(
        finding(&report, "interface_only")["fix"],
        "run `python3 -m http.server 3000 --bind ::` (every IPv4 and IPv6 address)"
    );
});

// Issue 10 item 4: an address on a network the peer is not on is information.
lab_test!(another_network_is_information_not_a_problem, [], {
    let report = scenario(
        "second interface, server on every address",
        |s| {
            s.lab.second_interface(&s.host, "eth1", "203.0.113.1", "2001:db8:2::1");
            s.http_server("::");
        },
        "reachable",
        "",
    );
    let findings = report["findings"].as_array().expect("findings");
    let errors: Vec<&Value> = findings.iter().filter(|f| f["severity"] == "error").collect();
    assert!(errors.is_empty(), "nothing to fix, yet: {errors:?}");
    let other = finding(&report, "other_network");
    assert_eq!(other["severity"], "info");
    let message = other["message"].as_str().expect("message");
    assert!(message.contains("203.0.113.1 (eth1)") && message.contains("not on"), "{message}");
});

// Issue 10 item 7: PHP's built-in server gets PHP's own flag, and that flag works.
lab_test!(php_builtin_server_gets_its_own_flag, ["php"], {
    let report = scenario(
        "php -S localhost:3000",
        |s| {
            let host = s.host.clone();
            let www = arg(s.www.path()).to_owned();
            s.lab.spawn(&host, "php", &["-S", "localhost:3000", "-t", &www]);
            s.lab.wait_tcp_listen(&host, PORT);
        },
        "loopback_only",
        "php -S [::]:3000",
    );
    let fix = finding(&report, "loopback_only")["fix"].as_str().expect("fix").to_owned();
    assert!(!fix.contains("make the server listen"), "PHP's terms, not generic advice: {fix}");
    // Following the advice makes the port reachable over both families.
    scenario(
        "php -S [::]:3000",
        |s| {
            let host = s.host.clone();
            let www = arg(s.www.path()).to_owned();
            s.lab.spawn(&host, "php", &["-S", "[::]:3000", "-t", &www]);
            s.lab.wait_tcp_listen(&host, PORT);
        },
        "reachable",
        "",
    );
});

lab_test!(ipv6_only_server_reached_over_ipv4_is_ipv6_only, [], {
    scenario(
        "[::] v6only",
        |s| {
            s.lab.drop_ipv6(&s.phone);
            let host = s.host.clone();
            s.stand_in(&host, "v6only");
        },
        "ipv6_only",
        "0.0.0.0",
    );
});

lab_test!(dropped_port_is_firewall_drop, ["nft"], {
    let report = scenario(
        "nft drop",
        |s| {
            s.http_server("0.0.0.0");
            s.lab.nft(
                &s.host,
                "table inet t {\n chain input {\n  type filter hook input priority 0\n  tcp dport 3000 drop\n }\n}\n",
            );
        },
        "firewall_drop",
        // The agent read the ruleset: the fix is about the rule that drops it.
        "sudo nft insert rule inet t input position 2 tcp dport 3000 accept",
    );
    // The host sent no ICMP error meanwhile (its counters): one attempt proves the drop,
    // with no quiet re-probe.
    for p in service(&report, PORT)["probes"].as_array().expect("probes") {
        assert_eq!(
            (p["outcome"].as_str(), p["attempts"].as_u64(), p["proven"].as_bool()),
            (Some("timeout"), Some(1), Some(true)),
            "{p}"
        );
    }
});

// A rejection with ICMP on another port spoils the host's witness: the drop is proven by
// the quiet re-probe instead, and the rejected port is a rejection, not a drop.
lab_test!(an_icmp_reject_elsewhere_leaves_the_drop_to_the_quiet_re_probe, ["nft"], {
    let mut scene = Scene::new();
    scene.http_server("0.0.0.0");
    scene.lab.nft(
        &scene.host,
        "table inet t {\n chain input {\n  type filter hook input priority 0\n  tcp dport 3000 drop\n  \
         iifname \"eth0\" tcp dport 3001 reject with icmpx port-unreachable\n }\n}\n",
    );
    let host = scene.host.clone();
    scene.lab.spawn(&host, "python3", &["-m", "http.server", "3001", "--bind", "0.0.0.0"]);
    scene.lab.wait_tcp_listen(&host, 3001);
    let _agent = scene.agent("3000,3001", &[]);
    let (code, report) = scene.peer();
    assert_eq!(code, Some(1));
    let dropped = service(&report, PORT);
    assert_eq!(dropped["verdict"], "firewall_drop", "{dropped}");
    let v4 = |s: &Value| {
        s["probes"]
            .as_array()
            .expect("probes")
            .iter()
            .find(|p| p["target"] == format!("198.51.100.1:{}", s["port"]))
            .cloned()
            .expect("IPv4 probe")
    };
    let p = v4(dropped);
    assert_eq!(
        (p["outcome"].as_str(), p["attempts"].as_u64(), p["proven"].as_bool()),
        (Some("timeout"), Some(2), Some(true)),
        "{p}"
    );
    let rejected = service(&report, 3001);
    assert_eq!(rejected["verdict"], "firewall_reject", "{rejected}");
    assert_eq!(v4(rejected)["outcome"], "refused");
});

lab_test!(rejected_with_reset_is_firewall_reject, ["nft"], {
    scenario(
        "nft reject tcp reset",
        |s| {
            s.http_server("0.0.0.0");
            s.lab.nft(&s.host, "table inet t {\n chain input {\n  type filter hook input priority 0\n  iifname \"eth0\" tcp dport 3000 reject with tcp reset\n }\n}\n");
        },
        "firewall_reject",
        "dport 3000",
    );
});

lab_test!(rejected_admin_prohibited_is_firewall_reject, ["nft"], {
    let report = scenario(
        "nft reject admin-prohibited",
        |s| {
            s.http_server("0.0.0.0");
            s.lab.nft(&s.host, "table inet t {\n chain input {\n  type filter hook input priority 0\n  iifname \"eth0\" tcp dport 3000 reject with icmpx type admin-prohibited\n }\n}\n");
        },
        "firewall_reject",
        "sudo nft delete rule inet t input handle 2",
    );
    let probes = service(&report, PORT)["probes"].as_array().expect("probes").clone();
    let lan = probes.iter().find(|p| p["target"] == "198.51.100.1:3000").expect("probe");
    assert_eq!((lan["outcome"].as_str(), lan["errno"].as_i64()), (Some("unreachable"), Some(113)), "EHOSTUNREACH");
});

lab_test!(nothing_listening_is_not_listening, [], {
    scenario("nothing", |_| {}, "not_listening", "start the server");
});

lab_test!(userland_proxy_without_backend_is_proxy_no_backend, ["socat"], {
    scenario(
        "socat proxy to a container-like namespace whose app binds 127.0.0.1",
        |s| {
            let host = s.host.clone();
            let container = s.lab.container_behind(&host, "ctr");
            let www = arg(s.www.path()).to_owned();
            s.lab.spawn(
                &container,
                "python3",
                &["-m", "http.server", "3000", "--bind", "127.0.0.1", "--directory", &www],
            );
            s.lab.wait_tcp_listen(&container, PORT);
            s.lab.spawn(&host, "socat", &["TCP-LISTEN:3000,fork,reuseaddr", "TCP:203.0.113.2:3000"]);
            s.lab.wait_tcp_listen(&host, PORT);
        },
        "proxy_no_backend",
        "backend",
    );
});

lab_test!(host_header_check_is_http_host_check, [], {
    let report = scenario(
        "403 for unknown Host",
        |s| {
            let host = s.host.clone();
            s.stand_in(&host, "hostcheck");
        },
        "http_host_check",
        "allowed hosts",
    );
    let probes = service(&report, PORT)["probes"].as_array().expect("probes").clone();
    assert!(probes.iter().any(|p| p["http_status"] == 403), "{probes:?}");
});

lab_test!(exposed_lists_every_listening_port_with_its_program, [], {
    let mut scene = Scene::new();
    scene.http_server("::");
    // A second server the user did not ask about, on loopback.
    let host = scene.host.clone();
    let www = arg(scene.www.path()).to_owned();
    scene.lab.spawn(&host, "python3", &["-m", "http.server", "5432", "--bind", "127.0.0.1", "--directory", &www]);
    scene.lab.wait_tcp_listen(&host, 5432);
    scene.agent("3000", &["--exposed"]);
    let (code, report) = scene.peer();
    assert_eq!(code, Some(0), "only --check ports count for the exit code");
    let audited = service(&report, 5432);
    assert_eq!(audited["source"], "exposed");
    assert_eq!(audited["verdict"], "loopback_only");
    assert_eq!(audited["listeners"][0]["program"], "python3");
    assert_eq!(service(&report, PORT)["source"], "check");
    // lanreach's own control port is not audited.
    assert!(!report["services"].as_array().expect("services").iter().any(|s| s["port"] == 47800));
});

lab_test!(dual_stack_server_behind_a_drop_rule_is_firewall_drop, ["nft"], {
    let report = scenario(
        "[::] dual-stack, IPv4-only peer, port dropped",
        |s| {
            s.lab.drop_ipv6(&s.phone);
            // python's http.server makes "::" a dual-stack socket (IPV6_V6ONLY off).
            s.http_server("::");
            s.lab.nft(
                &s.host,
                "table inet t {\n chain input {\n  type filter hook input priority 0\n  tcp dport 3000 drop\n }\n}\n",
            );
        },
        "firewall_drop",
        "sudo nft insert rule inet t input position 2 tcp dport 3000 accept",
    );
    assert_eq!(service(&report, PORT)["listeners"][0]["v6only"], false, "dialled on 127.0.0.1: dual-stack");
});

// Issue 10 item 2 with a peer: the agent reads the ruleset and names the rule that drops
// the port, evaluated for a packet from the peer's address arriving on eth0.
lab_test!(the_rule_that_drops_the_port_is_named_from_the_configuration, ["nft"], {
    let report = scenario(
        "iifname eth0 tcp dport 3000 drop",
        |s| {
            s.http_server("::");
            s.lab.nft(&s.host, "table inet t {\n chain input {\n  type filter hook input priority 0\n  iifname \"eth0\" tcp dport 3000 drop\n }\n}\n");
        },
        "firewall_drop",
        "sudo nft insert rule inet t input position 2 tcp dport 3000 accept",
    );
    let message = finding(&report, "firewall_drop")["message"].as_str().expect("message").to_owned();
    assert!(
        message.contains("nftables rule `iifname \"eth0\" tcp dport 3000 drop` (table inet t, chain input)"),
        "{message}"
    );
    let checks = service(&report, PORT)["firewall"].as_array().expect("firewall").clone();
    let v4 = checks.iter().find(|c| c["target"] == "198.51.100.1:3000").expect("IPv4 check");
    assert_eq!(
        (v4["outcome"].as_str(), v4["source"].as_str(), v4["interface"].as_str()),
        (Some("dropped"), Some("198.51.100.2"), Some("eth0"))
    );
    let v6 = checks.iter().find(|c| c["target"] == "[2001:db8:1::1]:3000").expect("IPv6 check");
    assert_eq!((v6["outcome"].as_str(), v6["source"].as_str()), (Some("dropped"), Some("2001:db8:1::2")));
});

// A server on loopback behind a rule that drops the port: the bind is the verdict, and
// the rule is named as well, since fixing the bind alone still leaves the port shut.
lab_test!(a_rule_behind_a_loopback_bind_is_named_too, ["nft"], {
    let report = scenario(
        "127.0.0.1 and a drop rule",
        |s| {
            s.http_server("127.0.0.1");
            s.lab.nft(&s.host, "table inet t {\n chain input {\n  type filter hook input priority 0; policy accept;\n  iifname \"eth0\" tcp dport 3000 drop\n }\n}\n");
        },
        "loopback_only",
        "--bind ::",
    );
    let f = finding(&report, "firewall_rule_drops");
    assert_eq!(f["severity"], "error");
    let message = f["message"].as_str().expect("message");
    assert!(message.contains("iifname \"eth0\" tcp dport 3000 drop"), "{message}");
    assert!(
        f["fix"].as_str().expect("fix").contains("sudo nft insert rule inet t input position 2 tcp dport 3000 accept"),
        "{f}"
    );
});

lab_test!(forbidden_for_everyone_is_reachable_not_a_host_check, [], {
    scenario(
        "403 for every Host",
        |s| {
            let host = s.host.clone();
            s.stand_in(&host, "deny");
        },
        "reachable",
        "",
    );
});

// Issue 10 item 11: another lanreach agent's test listeners are not the user's services.
lab_test!(exposed_leaves_out_another_agents_test_listeners, [], {
    let mut scene = Scene::new();
    scene.http_server("::");
    let other_state = tempfile::tempdir().expect("dir");
    let host = scene.host.clone();
    let mut other = scene.lab.spawn(
        &host,
        env!("CARGO_BIN_EXE_lanreach-agent"),
        &["--state-dir", arg(other_state.path()), "--control", "198.51.100.1:47900", "--no-mdns", "--name", "other"],
    );
    other.wait_line("pairing code:");
    scene.agent("3000", &["--exposed"]);
    let (code, report) = scene.peer();
    assert_eq!(code, Some(0));
    let services = report["services"].as_array().expect("services");
    let agents: Vec<&Value> = services
        .iter()
        .filter(|s| s["listeners"].as_array().expect("listeners").iter().any(|l| l["program"] == "lanreach-agent"))
        .collect();
    assert!(agents.is_empty(), "another agent's test listeners audited as the user's: {agents:?}");
    assert_eq!(service(&report, PORT)["verdict"], "reachable");
});

// Issue 10 item 3: a UDP echo server behind a drop rule answers nothing, and silence is
// never confirmation. With connection tracking off (a lone drop rule) nothing tells, so
// the port is `unconfirmed`; with a stateful firewall the table shows the peer's knocks
// but not these datagrams, and the drop is proven.
lab_test!(udp_echo_behind_a_drop_is_not_reachable, ["nft"], {
    for (stateful, verdict, hint) in
        // With root the agent reads the rule and names it in the fix; both forms open the port.
        [
            (false, "unconfirmed", "ask the service from the other device"),
            (true, "firewall_drop", "udp dport 5060"),
        ]
    {
        let name = if stateful { "udp echo, stateful firewall drops 5060" } else { "udp echo, drop rule" };
        let report = scenario_for(
            name,
            "5060/udp",
            5060,
            |s| {
                s.udp_server("udp-echo", 5060);
                s.lab.nft(&s.host, &input_rules(stateful, "iifname \"eth0\" udp dport 5060 drop"));
            },
            verdict,
            hint,
        );
        let probes = udp_probes(service(&report, 5060));
        let delivered = if stateful { Value::Bool(false) } else { Value::Null };
        assert!(probes.iter().all(|(_, o, d)| o == "timeout" && *d == delivered), "{name}: {probes:?}");
        let f = finding(&report, verdict);
        if !stateful {
            assert_eq!(f["severity"], "warning");
            let message = f["message"].as_str().expect("message");
            assert!(message.contains("connection tracking is off"), "{message}");
        }
    }
});

// Issue 10 item 3: UDP services are confirmed by their own answers. A DNS server ignores
// the empty datagram but answers the DNS query, an echo server the empty datagram.
lab_test!(udp_services_are_confirmed_by_their_answers, [], {
    let mut scene = Scene::new();
    scene.udp_server("udp-dns", 53);
    scene.udp_server("udp-echo", 5060);
    let agent = scene.agent("53/udp,5060/udp", &[]);
    let (code, report) = scene.peer();
    assert_eq!(scene.lab.wait_exit(&agent, std::time::Duration::from_secs(10)), code);
    assert_eq!(code, Some(0), "{}", report["findings"]);
    for port in [53, 5060] {
        let s = service(&report, port);
        assert_eq!(s["verdict"], "reachable", "{s}");
        let probes = udp_probes(s);
        assert_eq!(probes.len(), 2, "IPv4 and IPv6: {probes:?}");
        assert!(probes.iter().all(|(_, o, _)| o == "open"), "answered, not silent: {probes:?}");
    }
    assert!(problems(&report).is_empty(), "{:?}", problems(&report));
});

// Issue 10 item 3: a UDP server that receives and never answers. Where the firewall
// keeps connection tracking on, the table shows the peer's datagrams arriving: reachable
// on that evidence. Without tracking nothing tells: `unconfirmed`, exit 1.
lab_test!(silent_udp_server_is_confirmed_only_by_the_inside_view, ["nft"], {
    for (stateful, verdict, delivered) in [(true, "reachable", Value::Bool(true)), (false, "unconfirmed", Value::Null)]
    {
        let name = if stateful { "silent udp server, stateful firewall" } else { "silent udp server, no firewall" };
        let report = scenario_for(
            name,
            "5060/udp",
            5060,
            |s| {
                s.udp_server("udp-silent", 5060);
                if stateful {
                    s.lab.nft(&s.host, &input_rules(true, "iifname \"eth0\" udp dport 9 drop"));
                }
            },
            verdict,
            "ask the service from the other device with its own client",
        );
        let probes = udp_probes(service(&report, 5060));
        assert!(probes.iter().all(|(_, o, d)| o == "timeout" && *d == delivered), "{name}: {probes:?}");
        if stateful {
            assert!(problems(&report).is_empty(), "confirmed, nothing to warn about: {:?}", problems(&report));
        }
    }
});

// Issue 10 item 5: an IPv6-only service behind `reject with icmpx type admin-prohibited`.
// The ICMPv6 error reaches the connect only with the SYN retransmission (~1 s), after
// the probe deadline: the quiet re-probe waits for it, and the reject is no drop.
lab_test!(ipv6_only_service_behind_admin_prohibited_is_firewall_reject, ["nft"], {
    let report = scenario(
        "[::] v6only, reject admin-prohibited",
        |s| {
            let host = s.host.clone();
            s.stand_in(&host, "v6only");
            s.lab.nft(
                &s.host,
                &input_rules(false, "iifname \"eth0\" tcp dport 3000 reject with icmpx type admin-prohibited"),
            );
        },
        "firewall_reject",
        // The rule read from the configuration is named in the fix.
        "tcp dport 3000",
    );
    let probes = service(&report, PORT)["probes"].as_array().expect("probes").clone();
    let v6 = probes.iter().find(|p| p["target"] == "[2001:db8:1::1]:3000").expect("IPv6 probe");
    assert_eq!((v6["outcome"].as_str(), v6["errno"].as_i64()), (Some("unreachable"), Some(13)), "EACCES: {v6}");
});

// Issue 10 item 5: eight rejected ports at once, over IPv4 and IPv6: the host's ICMP rate
// limit silences some errors, and the quiet re-probes find every one.
lab_test!(several_rejected_ports_are_all_firewall_reject, ["nft"], {
    let mut scene = Scene::new();
    let host = scene.host.clone();
    let mut server = scene.lab.spawn(&host, "python3", &[arg(&server_py()), "http-ports", "3000", "8"]);
    server.wait_line("ready");
    scene.lab.nft(
        &host,
        &input_rules(false, "iifname \"eth0\" tcp dport 3000-3007 reject with icmpx type admin-prohibited"),
    );
    let agent = scene.agent("3000-3007", &[]);
    let started = std::time::Instant::now();
    let (code, report) = scene.peer();
    eprintln!("eight rejected ports: the peer took {:?}", started.elapsed());
    assert_eq!(scene.lab.wait_exit(&agent, std::time::Duration::from_secs(10)), code);
    assert_eq!(code, Some(1));
    for port in 3000..3008u16 {
        let s = service(&report, port);
        assert_eq!(s["verdict"], "firewall_reject", "port {port}: {s}");
        let probes = s["probes"].as_array().expect("probes");
        assert!(probes.iter().all(|p| p["outcome"] == "unreachable"), "port {port}: {probes:?}");
    }
    let f = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["code"] == "firewall_reject" && f["message"].as_str().is_some_and(|m| m.starts_with("Port 3007:")))
        .expect("a finding for 3007");
    assert!(f["fix"].as_str().expect("fix").contains("dport 3007"), "{f}");
});
