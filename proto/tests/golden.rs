//! Golden reports: two fixed scenarios assembled by the real rules, checked against the
//! JSON document and the terminal text in `tests/golden/` (`UPDATE_SNAPSHOTS=1`
//! rewrites them). The README's example reports are excerpts of these snapshots, so a
//! change of wording or layout shows up here and in the README together.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use lanreach_proto::addr::InterfaceKind;
use lanreach_proto::assemble::{ReportParts, assemble};
use lanreach_proto::facts::{CheckedPort, Conntrack, PortSource, ServiceInput, SocketFact};
use lanreach_proto::plan::{self, ProbePlan};
use lanreach_proto::render::{Paint, render_text};
use lanreach_proto::report::{AddressInfo, AgentInfo, Mode, PeerInfo, Report};
use lanreach_proto::vocab::{
    ListenerHit, ListenerSpec, Outcome, PlannedProbe, ProbeResult, ProbeResults, Proto, ServiceResult,
};

const LAN4: &str = "198.51.100.1";
const LAN6: &str = "2001:db8:1::1";
const PEER4: &str = "198.51.100.2";
const PEER6: &str = "2001:db8:1::2";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn agent() -> AgentInfo {
    let a = |ip_: &str, interface: &str, kind| {
        let prefix = Some(if ip(ip_).is_loopback() {
            if ip_.contains(':') { 128 } else { 8 }
        } else if ip_.contains(':') {
            64
        } else {
            24
        });
        AddressInfo { ip: ip(ip_), interface: interface.into(), kind, prefix }
    };
    AgentInfo {
        name: "box".into(),
        id: "B9V8-BCP5-FBB2-0VWE".into(),
        addresses: vec![
            a("127.0.0.1", "lo", InterfaceKind::Loopback),
            a("::1", "lo", InterfaceKind::Loopback),
            a(LAN4, "eth0", InterfaceKind::Lan),
            a(LAN6, "eth0", InterfaceKind::Lan),
        ],
    }
}

fn peer() -> PeerInfo {
    PeerInfo {
        name: "phone".into(),
        id: "SD8Z-HYQH-4NQD-55BY".into(),
        seen_from: Some("198.51.100.2:46265".parse().expect("addr")),
        dialled: Some(ip(LAN4)),
        arrival_interface: Some("eth0".into()),
        addresses: vec![ip(PEER4), ip(PEER6)],
        probe_sources: vec![],
    }
}

fn listeners() -> Vec<ListenerSpec> {
    let binds = ["127.0.0.1:45497", "[::1]:34589", "0.0.0.0:35279", "[::]:36035", "198.51.100.1:44421"];
    let binds = binds.iter().chain(&["[2001:db8:1::1]:33205"]);
    [Proto::Tcp, Proto::Udp]
        .into_iter()
        .flat_map(|proto| binds.clone().map(move |b| ListenerSpec { proto, bind: b.parse().expect("bind") }))
        .collect()
}

/// What a listener does when dialled at `target` on a healthy host: its own family and
/// address answer, loopback and other addresses refuse.
fn healthy(p: &PlannedProbe) -> Outcome {
    let bind = p.bind.ip();
    let answers = if bind.is_unspecified() {
        bind.is_ipv4() == p.target.is_ipv4()
    } else {
        !bind.is_loopback() && bind == p.target.ip()
    };
    if answers { Outcome::Open } else { Outcome::Refused }
}

/// Runs `outcome` over the plan the agent builds, as a peer would report it, with the
/// listeners' hits for every answered probe, and assembles the report.
fn scenario(outcome: impl Fn(&PlannedProbe) -> Outcome, ports: &[(ServiceInput, Outcome)]) -> Report {
    let listeners = listeners();
    let targets = [ip(LAN4), ip(LAN6)];
    let probes = plan::build(&listeners, &targets, false);
    let ports_to_probe = ports.iter().map(|(s, _)| (s.port.proto, s.port.port));
    let services = plan::service_probes(ports_to_probe, &targets, false);
    let plan = ProbePlan { session: [7; 16], key: [9; 32], probes, services };
    let mut hits = Vec::new();
    let results: Vec<ProbeResult> = plan
        .probes
        .iter()
        .map(|p| {
            let o = outcome(p);
            let rtt_us = match (o, p.target.is_ipv4()) {
                (Outcome::Timeout, _) => None,
                (_, true) => Some(700),
                (_, false) => Some(450),
            };
            if o == Outcome::Open {
                let source = if p.target.is_ipv4() { PEER4 } else { PEER6 };
                hits.push(ListenerHit {
                    proto: p.proto,
                    bind: p.bind,
                    local: p.target,
                    source: SocketAddr::new(ip(source), 50000),
                });
            }
            let errno = (o == Outcome::Refused).then_some(111);
            ProbeResult { id: p.id, outcome: o, rtt_us, errno, attempts: if o == Outcome::Timeout { 2 } else { 1 } }
        })
        .collect();
    let service_results = plan
        .services
        .iter()
        .map(|s| {
            let (_, o) = ports.iter().find(|(i, _)| i.port.port == s.target.port()).expect("port");
            let rtt_us = (*o != Outcome::Timeout).then_some(300);
            ServiceResult {
                id: s.id,
                outcome: *o,
                rtt_us,
                errno: (*o == Outcome::Refused).then_some(111),
                http_status: None,
                attempts: if *o == Outcome::Timeout { 2 } else { 1 },
                source_ports: vec![],
            }
        })
        .collect();
    let results = ProbeResults { results, services: service_results };
    let inputs: Vec<ServiceInput> = ports.iter().map(|(i, _)| i.clone()).collect();
    assemble(ReportParts {
        mode: Mode::Peer,
        agent: agent(),
        peer: peer(),
        listeners: &listeners,
        plan: &plan,
        results: &results,
        hits: &hits,
        services: &inputs,
        conntrack: &Conntrack::NotRead,
        wsl2: false,
    })
}

fn python_on_loopback() -> ServiceInput {
    ServiceInput {
        port: CheckedPort { port: 3000, proto: Proto::Tcp },
        source: PortSource::Check,
        listeners: vec![SocketFact {
            proto: Proto::Tcp,
            bind: "127.0.0.1:3000".parse().expect("bind"),
            v6only: None,
            pid: Some(31328),
            program: Some("python3".into()),
            cmdline: Some("python3 -m http.server 3000 --bind 127.0.0.1".into()),
        }],
        docker: vec![],
        unpublished: vec![],
        local_http_status: None,
    }
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compares `actual` with the snapshot `name`, or writes it with `UPDATE_SNAPSHOTS=1`.
fn check_snapshot(name: &str, actual: &str) {
    let path = golden_dir().join(name);
    if std::env::var("UPDATE_SNAPSHOTS").as_deref() == Ok("1") {
        std::fs::write(&path, actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_SNAPSHOTS=1 creates it)", path.display()));
    assert_eq!(actual, expected, "{name} changed; if intended, rerun with UPDATE_SNAPSHOTS=1 and review the diff");
}

fn check_report(name: &str, report: &Report) {
    check_snapshot(&format!("{name}.json"), &format!("{}\n", report.to_json()));
    check_snapshot(&format!("{name}.txt"), &render_text(report, Paint::plain()));
    // The JSON document is what the peer receives: it must parse back to the same report.
    let back: Report = serde_json::from_str(&report.to_json_compact()).expect("report JSON parses");
    assert_eq!(&back, report);
}

#[test]
fn a_server_on_loopback_only() {
    let report = scenario(healthy, &[(python_on_loopback(), Outcome::Refused)]);
    assert!(!report.checked_ports_reachable());
    check_report("check_loopback_only", &report);
}

#[test]
fn a_firewall_that_drops_tcp() {
    let drop_tcp = |p: &PlannedProbe| if p.proto == Proto::Tcp { Outcome::Timeout } else { healthy(p) };
    let report = scenario(drop_tcp, &[]);
    check_report("firewall_drops_tcp", &report);
}

/// Every `text` block of the README that shows a report is an excerpt of a snapshot:
/// the lines between `…` marks appear one after another in the rendered text, in order.
#[test]
fn readme_reports_are_excerpts_of_the_snapshots() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).expect("README");
    let snapshots: Vec<String> = ["check_loopback_only.txt", "firewall_drops_tcp.txt"]
        .iter()
        .map(|n| std::fs::read_to_string(golden_dir().join(n)).expect("snapshot"))
        .collect();
    let mut blocks = 0;
    for block in readme.split("```text\n").skip(1) {
        let block = block.split("```").next().unwrap_or("");
        if !block.contains("Findings:") {
            continue;
        }
        blocks += 1;
        let pieces: Vec<Vec<&str>> = block
            .split("…\n")
            .map(|p| p.lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>())
            .filter(|p| !p.is_empty())
            .collect();
        let found = snapshots.iter().any(|snap| {
            let snap: Vec<&str> = snap.lines().filter(|l| !l.trim().is_empty()).collect();
            let mut from = 0;
            pieces.iter().all(|piece| {
                let at = snap[from..].windows(piece.len()).position(|w| w == piece.as_slice());
                at.map(|i| from += i + piece.len()).is_some()
            })
        });
        assert!(found, "README report block is not an excerpt of a golden snapshot:\n{block}");
    }
    assert!(blocks >= 2, "the README shows {blocks} report blocks; expected the two golden examples");
}
