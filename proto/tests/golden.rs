//! Golden reports: two fixed scenarios assembled by the real rules, checked against the
//! JSON document and the terminal text in `tests/golden/` (`UPDATE_SNAPSHOTS=1`
//! rewrites them), the text at three widths: `NAME.txt` at 100 columns (the tables, as
//! the README shows them), `NAME.80.txt` and `NAME.40.txt` (the list layouts of a laptop
//! terminal and of a phone held upright). The README's example reports are excerpts of
//! the 100-column snapshots, so a change of wording or layout shows up here and in the
//! README together.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use lanreach_proto::addr::InterfaceKind;
use lanreach_proto::assemble::{ReportParts, assemble};
use lanreach_proto::defaults::NARROW_WIDTH;
use lanreach_proto::facts::{CheckedPort, Conntrack, PortSource, ServiceInput, SocketFact};
use lanreach_proto::firewall::{Firewall, nft};
use lanreach_proto::plan::{self, ProbePlan};
use lanreach_proto::render::{Paint, render_text};
use lanreach_proto::report::{AddressInfo, AgentInfo, Finding, Mode, PeerInfo, Report, Severity, Verdict};
use lanreach_proto::text;
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
    let inputs: Vec<ServiceInput> = ports.iter().map(|(i, _)| i.clone()).collect();
    let port_outcome = |port: u16, _: IpAddr| ports.iter().find(|(i, _)| i.port.port == port).expect("port").1;
    scenario_in(Mode::Peer, peer(), &Firewall::NotRead, outcome, &inputs, port_outcome)
}

/// The same for any mode, peer side and firewall, with each port's outcome per address.
fn scenario_in(
    mode: Mode,
    peer: PeerInfo,
    firewall: &Firewall,
    outcome: impl Fn(&PlannedProbe) -> Outcome,
    inputs: &[ServiceInput],
    port_outcome: impl Fn(u16, IpAddr) -> Outcome,
) -> Report {
    let listeners = listeners();
    let targets = [ip(LAN4), ip(LAN6)];
    let probes = plan::build(&listeners, &targets, false);
    let ports_to_probe = inputs.iter().map(|s| (s.port.proto, s.port.port));
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
            let timeout = o == Outcome::Timeout;
            ProbeResult { id: p.id, outcome: o, rtt_us, errno, attempts: if timeout { 2 } else { 1 }, proven: timeout }
        })
        .collect();
    let service_results = plan
        .services
        .iter()
        .map(|s| {
            let o = port_outcome(s.target.port(), s.target.ip());
            let rtt_us = (o != Outcome::Timeout).then_some(300);
            ServiceResult {
                id: s.id,
                outcome: o,
                rtt_us,
                errno: (o == Outcome::Refused).then_some(111),
                http_status: (o == Outcome::Open).then_some(200),
                attempts: if o == Outcome::Timeout { 2 } else { 1 },
                proven: o == Outcome::Timeout,
                source_ports: vec![],
            }
        })
        .collect();
    let results = ProbeResults { results, services: service_results };
    assemble(ReportParts {
        mode,
        agent: agent(),
        peer,
        listeners: &listeners,
        plan: &plan,
        results: &results,
        hits: &hits,
        services: inputs,
        conntrack: &Conntrack::NotRead,
        wsl2: false,
        firewall,
    })
}

/// `python3 -m http.server` listening on `bind` (pid `pid`), a checked port.
fn python(bind: &str, pid: u32) -> ServiceInput {
    let bind: SocketAddr = bind.parse().expect("bind");
    ServiceInput {
        port: CheckedPort { port: bind.port(), proto: Proto::Tcp },
        source: PortSource::Check,
        listeners: vec![SocketFact {
            proto: Proto::Tcp,
            bind,
            v6only: None,
            pid: Some(pid),
            program: Some("python3".into()),
            cmdline: Some(format!("python3 -m http.server {} --bind {}", bind.port(), bind.ip())),
        }],
        docker: vec![],
        unpublished: vec![],
        local_http_status: None,
    }
}

fn python_on_loopback() -> ServiceInput {
    python("127.0.0.1:3000", 31328)
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

/// The widths of the text snapshots: the README's (and the default without a
/// terminal), a laptop terminal, a phone held upright.
const README_WIDTH: usize = 100;
const WIDTHS: [usize; 3] = [README_WIDTH, 80, 40];

fn snapshot_name(name: &str, width: usize) -> String {
    if width == README_WIDTH { format!("{name}.txt") } else { format!("{name}.{width}.txt") }
}

/// Every line of `text` fits in `width` terminal columns.
fn assert_fits(text: &str, width: usize) {
    for line in text.lines() {
        assert!(text::width(line) <= width, "wider than {width} columns ({}): {line:?}", text::width(line));
    }
}

/// Every word of `part` appears in `text`, in order and whole (wrapping may only put
/// line breaks between words).
fn assert_words(text: &str, part: &str) {
    let words: Vec<&str> = text.split_whitespace().collect();
    let wanted: Vec<&str> = part.split_whitespace().collect();
    if wanted.is_empty() {
        return;
    }
    assert!(
        words.windows(wanted.len()).any(|w| w == wanted.as_slice()),
        "{part:?} is not in the text word for word:\n{text}"
    );
}

/// Whether finding `f` is shown at `width`: below [`NARROW_WIDTH`] a report with ports
/// leaves the notes (information) on the matrix out with the matrix, with a line that
/// says so.
fn shown_at(report: &Report, f: &Finding, width: usize) -> bool {
    let phone = width < NARROW_WIDTH && !report.services.is_empty();
    !phone || f.severity > Severity::Info || f.message.starts_with("Port ")
}

fn check_report(name: &str, report: &Report) {
    check_snapshot(&format!("{name}.json"), &format!("{}\n", report.to_json()));
    for width in WIDTHS {
        let text = render_text(report, Paint::plain(), width);
        assert_fits(&text, width);
        // Every finding's cause and fix survive every layout, word for word (on a phone,
        // the notes on the matrix are left out with it).
        for f in report.findings.iter().filter(|f| shown_at(report, f, width)) {
            let cause =
                f.message.split_once(": ").filter(|_| f.message.starts_with("Port ")).map_or(&*f.message, |(_, m)| m);
            assert_words(&text, cause);
            assert_words(&text, &f.fix);
        }
        check_snapshot(&snapshot_name(name, width), &text);
    }
    // The JSON document is what the peer receives: it must parse back to the same report.
    let back: Report = serde_json::from_str(&report.to_json_compact()).expect("report JSON parses");
    assert_eq!(&back, report);
}

#[test]
fn a_server_on_loopback_only() {
    let report = scenario(healthy, &[(python_on_loopback(), Outcome::Refused)]);
    assert!(!report.all_clear());
    check_report("check_loopback_only", &report);
}

/// At phone width the port's verdict, cause and fix come first, each on its own lines,
/// and the matrix (with the notes on it) is left out with a line that says how to see
/// it; at every width the
/// whole story stays on one screen.
#[test]
fn at_phone_width_the_verdict_and_fix_come_first() {
    let report = scenario(healthy, &[(python_on_loopback(), Outcome::Refused)]);
    let text = render_text(&report, Paint::plain(), 40);
    let lines: Vec<&str> = text.lines().collect();
    let verdict = lines.iter().position(|l| *l == "Port 3000: loopback_only").expect("verdict line");
    let fix = lines.iter().position(|l| l.starts_with("  fix: run `python3")).expect("fix line");
    assert!(verdict < 8 && fix < verdict + 6, "{text}");
    assert!(!text.contains("TCP test listeners"), "{text}");
    assert!(text.contains("Left out at this width"), "{text}");
    assert!(lines.len() <= 30, "{} lines:\n{text}", lines.len());
    assert_words(&text, "the matrix of lanreach's test listeners and 4 notes (information) on it.");
    // At 80 columns the matrix is a list of every listener and dialled address.
    let text = render_text(&report, Paint::plain(), 80);
    assert!(text.contains("TCP test listeners") && text.contains("→ 2001:db8:1::1  open 0.5 ms"), "{text}");
}

/// Two `--check` ports (one with nothing listening) and an `--exposed` database.
fn several_ports() -> Report {
    let nothing = ServiceInput {
        unpublished: vec![],
        port: CheckedPort { port: 8080, proto: Proto::Tcp },
        source: PortSource::Check,
        listeners: vec![],
        docker: vec![],
        local_http_status: None,
    };
    let database = ServiceInput {
        unpublished: vec![],
        port: CheckedPort { port: 5432, proto: Proto::Tcp },
        source: PortSource::Exposed,
        listeners: vec![SocketFact {
            proto: Proto::Tcp,
            bind: "0.0.0.0:5432".parse().expect("bind"),
            v6only: None,
            pid: Some(812),
            program: Some("postgres".into()),
            cmdline: Some("/usr/lib/postgresql/17/bin/postgres -D /var/lib/postgresql/17/main".into()),
        }],
        docker: vec![],
        local_http_status: None,
    };
    scenario(
        healthy,
        &[(python_on_loopback(), Outcome::Refused), (nothing, Outcome::Refused), (database, Outcome::Open)],
    )
}

/// At every width from the narrowest to a wide terminal, no line is wider than the
/// terminal and every word of every verdict, cause and fix is there, in order.
#[test]
fn at_every_width_every_line_fits_and_every_word_stays() {
    let reports = [
        scenario(healthy, &[(python_on_loopback(), Outcome::Refused)]),
        scenario(|p| if p.proto == Proto::Tcp { Outcome::Timeout } else { healthy(p) }, &[]),
        several_ports(),
    ];
    for report in &reports {
        for width in 20..=140 {
            let text = render_text(report, Paint::new(width % 2 == 0), width);
            let plain = strip_escapes(&text);
            assert_fits(&text, width);
            // From phone width up every word fits on a line and stays whole; narrower
            // still, a word longer than a line is split but never cut.
            let check = |part: &str| {
                if width >= 40 {
                    assert_words(&plain, part);
                } else {
                    let squeezed = |s: &str| s.split_whitespace().collect::<String>();
                    assert!(squeezed(&plain).contains(&squeezed(part)), "{width}: {part:?} cut in\n{plain}");
                }
            };
            for s in &report.services {
                check(s.verdict.as_str());
            }
            for f in report.findings.iter().filter(|f| shown_at(report, f, width)) {
                check(
                    f.message
                        .split_once(": ")
                        .filter(|_| f.message.starts_with("Port "))
                        .map_or(&f.message, |(_, m)| m),
                );
                check(&f.fix);
            }
        }
    }
    // In the lists, the user's ports come before the audit's, each port once.
    let text = render_text(&reports[2], Paint::plain(), 60);
    let at = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("{needle:?} in\n{text}"));
    assert!(at("Port 3000: loopback_only") < at("Port 8080: not_listening"), "{text}");
    assert!(at("Port 8080: not_listening") < at("Other listening ports (--exposed):"), "{text}");
    assert!(at("Other listening ports (--exposed):") < at("Port 5432: reachable"), "{text}");
    assert_eq!(text.matches("Port 3000:").count(), 1, "{text}");
}

/// Colour marks the verdict and the severities, and costs no column: without the escape
/// sequences the coloured text is the plain text, at every width.
#[test]
fn colour_marks_verdicts_and_severities_without_moving_columns() {
    let report = scenario(healthy, &[(python_on_loopback(), Outcome::Refused)]);
    for width in WIDTHS {
        let coloured = render_text(&report, Paint::new(true), width);
        let red = Paint::new(true).verdict(Verdict::LoopbackOnly);
        assert!(coloured.contains(&red), "{width}: {coloured}");
        assert!(coloured.contains(&Paint::new(true).bad("PROBLEM")) || width < 100, "{width}: {coloured}");
        assert_eq!(strip_escapes(&coloured), render_text(&report, Paint::plain(), width), "{width}");
    }
}

fn strip_escapes(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn a_firewall_that_drops_tcp() {
    let drop_tcp = |p: &PlannedProbe| if p.proto == Proto::Tcp { Outcome::Timeout } else { healthy(p) };
    let report = scenario(drop_tcp, &[]);
    check_report("firewall_drops_tcp", &report);
}

/// `--local` on the issue's host: this machine dials its own addresses (over lo), its
/// python server on 0.0.0.0:8000 answers over IPv4, and the nftables ruleset (recorded
/// in `tests/firewall/issue_drop.json`) drops TCP to 8000 arriving on eth0.
fn local_scenario(ruleset: &str) -> Report {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/firewall").join(ruleset);
    let rules = nft::parse(&std::fs::read_to_string(path).expect("recorded ruleset")).expect("parses");
    let me = PeerInfo {
        name: "box".into(),
        id: "B9V8-BCP5-FBB2-0VWE".into(),
        seen_from: None,
        dialled: None,
        arrival_interface: None,
        addresses: vec![ip(LAN4), ip(LAN6)],
        probe_sources: vec![],
    };
    let python = python("0.0.0.0:8000", 4242);
    let answers = |_: u16, ip: IpAddr| if ip.is_ipv4() { Outcome::Open } else { Outcome::Refused };
    scenario_in(Mode::Local, me, &Firewall::Rules(rules), healthy, &[python], answers)
}

#[test]
fn local_with_a_rule_that_drops_the_lan() {
    let report = local_scenario("issue_drop.json");
    assert!(!report.all_clear(), "exit code 1: something wrong is visible from this machine");
    let s = &report.services[0];
    assert_eq!(s.verdict.as_str(), "firewall_drop");
    let f = report.findings.iter().find(|f| f.code == "firewall_drop").expect("the port's finding");
    assert!(f.message.contains("nftables rule `iifname \"eth0\" tcp dport 8000 drop`"), "{}", f.message);
    assert!(
        f.fix.contains("sudo nft insert rule inet lanreach_test input position 2 tcp dport 8000 accept"),
        "{}",
        f.fix
    );
    for width in WIDTHS {
        let text = render_text(&report, Paint::plain(), width);
        assert!(text.contains("from this machine") && !text.contains("from outside"), "{text}");
    }
    check_report("local_firewall_drop", &report);
}

#[test]
fn local_with_a_firewall_that_lets_the_lan_in() {
    let report = local_scenario("policy_drop.json");
    let s = &report.services[0];
    // The bind leaves IPv6 out (refused here): partial, visible from this machine.
    assert_eq!(s.verdict.as_str(), "partial");
    assert!(s.firewall.iter().all(|c| c.outcome.as_str() == "accepted"), "{:?}", s.firewall);
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.code == "firewall_accepts" && f.message.contains("tcp dport { 22, 8000 } accept"))
    );
    assert!(!report.all_clear());
}

/// Every `text` block of the README that shows a report is an excerpt of a snapshot:
/// the lines between `…` marks appear one after another in the rendered text, in order.
#[test]
fn readme_reports_are_excerpts_of_the_snapshots() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).expect("README");
    let snapshots: Vec<String> = ["check_loopback_only", "firewall_drops_tcp", "local_firewall_drop"]
        .iter()
        .flat_map(|name| WIDTHS.map(|w| snapshot_name(name, w)))
        .map(|n| std::fs::read_to_string(golden_dir().join(n)).expect("snapshot"))
        .collect();
    let mut blocks = 0;
    for block in readme.split("```text\n").skip(1) {
        let block = block.split("```").next().unwrap_or("");
        if !block.contains("Findings:") && !block.contains("fix:") {
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
    assert!(blocks >= 3, "the README shows {blocks} report blocks; expected the three golden examples");
}
