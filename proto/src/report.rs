//! Probe outcomes and the report: the JSON document `lanreach.report/1` and its
//! terminal rendering. The whole schema is documented in `docs/report-schema.md`.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::iface::InterfaceKind;
use crate::plan::Proto;
use crate::service::{PortSource, ServiceInput, ServiceProbe, ServiceReport, ServiceResult, Verdict};

/// Schema name of the JSON report.
pub const SCHEMA: &str = "lanreach.report/1";

/// What one probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Our listener answered the handshake.
    Open,
    /// Connection refused (RST or ICMP port unreachable): nothing listens there, or a
    /// REJECT rule.
    Refused,
    /// No answer before the deadline, after one retry: a DROP rule or a filter on the path.
    Timeout,
    /// EHOSTUNREACH / ENETUNREACH (ICMP admin-prohibited, no route, failed ARP).
    Unreachable,
    /// Connection reset after it was accepted.
    Reset,
    /// Accepted, then closed without any data.
    EmptyReply,
    /// Something other than our listener answered.
    Foreign,
    /// Not probed: no lanreach listener proved the address to be the agent's.
    NotProbed,
}

impl Outcome {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Open => "open",
            Outcome::Refused => "refused",
            Outcome::Timeout => "timeout",
            Outcome::Unreachable => "unreachable",
            Outcome::Reset => "reset",
            Outcome::EmptyReply => "empty_reply",
            Outcome::Foreign => "foreign",
            Outcome::NotProbed => "not_probed",
        }
    }
}

/// A probe's result as the peer reports it to the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// The planned probe's ID.
    pub id: u32,
    /// What happened.
    pub outcome: Outcome,
    /// Round trip of the decisive attempt, microseconds (none for timeouts).
    pub rtt_us: Option<u32>,
    /// The OS error number behind `refused`/`unreachable`, when there was one.
    pub errno: Option<i32>,
    /// Attempts made (1, or 2 after a silent first try).
    pub attempts: u8,
}

/// How the report was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A peer on another device probed the agent.
    Peer,
    /// `lanreach-agent --local`: the agent probed its own addresses.
    Local,
}

/// One agent address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressInfo {
    /// The address.
    pub ip: IpAddr,
    /// Its interface.
    pub interface: String,
    /// What kind of network it is on.
    pub kind: InterfaceKind,
}

/// The agent side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// Its name.
    pub name: String,
    /// Its key ID (short form).
    pub id: String,
    /// Its interface addresses.
    pub addresses: Vec<AddressInfo>,
}

/// The peer side, as the agent saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Its name.
    pub name: String,
    /// Its key ID (short form).
    pub id: String,
    /// Source address of its control connection as the agent saw it (none in local mode).
    pub seen_from: Option<SocketAddr>,
    /// The agent interface the control connection arrived on, when known.
    pub arrival_interface: Option<String>,
    /// The addresses the peer declared in its Hello.
    pub addresses: Vec<IpAddr>,
    /// Source addresses the test listeners saw from this peer's probes.
    pub probe_sources: Vec<IpAddr>,
}

/// One test listener (a row of the matrix).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerInfo {
    /// Protocol.
    pub proto: Proto,
    /// Bound socket address.
    pub bind: SocketAddr,
    /// What binding there means, in words.
    pub meaning: String,
}

/// One probe in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// Protocol.
    pub proto: Proto,
    /// The listener's bound socket address (the row).
    pub bind: SocketAddr,
    /// The dialled socket address (the column).
    pub target: SocketAddr,
    /// What happened.
    pub outcome: Outcome,
    /// Round trip in milliseconds; null for timeouts.
    pub rtt_ms: Option<f64>,
    /// OS error number behind the outcome, when there was one.
    pub errno: Option<i32>,
    /// Attempts made.
    pub attempts: u8,
    /// Whether the agent's listener recorded this probe arriving.
    pub seen_by_listener: bool,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Explains something that works as designed.
    Info,
    /// Something that may surprise.
    Warning,
    /// Something blocks reachability.
    Error,
}

/// A conclusion with its cause and fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable code, e.g. `firewall_drops_tcp`.
    pub code: String,
    /// How bad.
    pub severity: Severity,
    /// What was found, in words.
    pub message: String,
    /// What to do (may be empty for information).
    pub fix: String,
}

/// The report, `lanreach.report/1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Peer or local.
    pub mode: Mode,
    /// The agent.
    pub agent: AgentInfo,
    /// The peer.
    pub peer: PeerInfo,
    /// The test listeners.
    pub listeners: Vec<ListenerInfo>,
    /// Every probe of the test listeners.
    pub probes: Vec<ProbeReport>,
    /// The user's own ports (`--check`, `--exposed`).
    pub services: Vec<ServiceReport>,
    /// Conclusions.
    pub findings: Vec<Finding>,
}

/// What binding to `bind` means, in words.
pub fn bind_meaning(bind: IpAddr, addresses: &[AddressInfo]) -> String {
    match bind {
        IpAddr::V4(v4) if v4.is_loopback() => "this machine only".into(),
        IpAddr::V6(v6) if v6.is_loopback() => "this machine only".into(),
        IpAddr::V4(v4) if v4.is_unspecified() => "every IPv4 address".into(),
        IpAddr::V6(v6) if v6.is_unspecified() => "every IPv6 address (v6 only)".into(),
        ip => match addresses.iter().find(|a| a.ip == ip) {
            Some(a) => format!("only this address ({}, {})", a.interface, kind_words(a.kind)),
            None => "only this address".into(),
        },
    }
}

fn kind_words(kind: InterfaceKind) -> &'static str {
    match kind {
        InterfaceKind::Loopback => "loopback",
        InterfaceKind::Lan => "LAN",
        InterfaceKind::LinkLocal => "link-local",
        InterfaceKind::Virtual => "container/VM bridge",
        InterfaceKind::Vpn => "VPN",
    }
}

impl Report {
    /// The report as one compact JSON document, for the wire.
    pub fn to_json_compact(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The report as one JSON document.
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

/// Colours for terminal output; [`Paint::plain`] adds none. Tables stay uncoloured so
/// that their columns line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paint {
    on: bool,
}

impl Paint {
    /// Colour when `on`.
    pub fn new(on: bool) -> Self {
        Paint { on }
    }

    /// No colour.
    pub fn plain() -> Self {
        Paint { on: false }
    }

    fn apply(self, style: anstyle::Style, text: &str) -> String {
        if self.on { format!("{style}{text}{style:#}") } else { text.to_owned() }
    }

    /// A problem.
    pub fn bad(self, text: &str) -> String {
        self.apply(anstyle::Style::new().fg_color(Some(anstyle::AnsiColor::Red.into())).bold(), text)
    }

    /// A warning.
    pub fn warn(self, text: &str) -> String {
        self.apply(anstyle::Style::new().fg_color(Some(anstyle::AnsiColor::Yellow.into())).bold(), text)
    }

    /// Something that works.
    pub fn good(self, text: &str) -> String {
        self.apply(anstyle::Style::new().fg_color(Some(anstyle::AnsiColor::Green.into())).bold(), text)
    }

    /// Emphasis.
    pub fn bold(self, text: &str) -> String {
        self.apply(anstyle::Style::new().bold(), text)
    }
}

/// Terminal rendering: header, the user's ports, one matrix per protocol, findings.
pub fn render_text(r: &Report, paint: Paint) -> String {
    use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
    // Every string in a report came over the network: none may reach the terminal raw.
    let clean = |s: &str| crate::msg::printable(s, 64);
    let long = |s: &str| crate::msg::printable(s, 2000);
    let mut out = match r.mode {
        Mode::Peer => format!(
            "{}: agent \"{}\" ({}) probed from peer \"{}\" ({})\n",
            paint.bold("lanreach report"),
            clean(&r.agent.name),
            clean(&r.agent.id),
            clean(&r.peer.name),
            clean(&r.peer.id)
        ),
        Mode::Local => {
            format!(
                "{}: agent \"{}\" ({}) probing itself\n",
                paint.bold("lanreach report"),
                clean(&r.agent.name),
                clean(&r.agent.id)
            )
        }
    };
    if let Some(seen) = r.peer.seen_from {
        let on = r.peer.arrival_interface.as_deref().map(|i| format!(" on {}", clean(i))).unwrap_or_default();
        out.push_str(&format!("The agent saw the peer come from {seen}{on}.\n"));
    }
    for source in [PortSource::Check, PortSource::Exposed] {
        let rows: Vec<&ServiceReport> = r.services.iter().filter(|s| s.source == source).collect();
        if rows.is_empty() {
            continue;
        }
        let mut table = Table::new();
        table.load_preset(UTF8_BORDERS_ONLY);
        let title = if source == PortSource::Check { "your port" } else { "listening port" };
        table.set_header(vec![title, "verdict", "listening here", "from outside"]);
        for s in rows {
            let listeners: Vec<String> = s
                .listeners
                .iter()
                .map(|l| match (&l.program, l.pid) {
                    (Some(p), Some(pid)) => format!("{} {}[{pid}]", l.bind, clean(p)),
                    (Some(p), None) => format!("{} {}", l.bind, clean(p)),
                    _ => format!("{} (owner not visible)", l.bind),
                })
                .chain(
                    s.docker.iter().map(|d| format!("docker {} → {}:{}", clean(&d.container), d.host_ip, d.host_port)),
                )
                .collect();
            let probes: Vec<String> = s
                .probes
                .iter()
                .map(|p| {
                    let status = p.http_status.map(|c| format!(" HTTP {c}")).unwrap_or_default();
                    format!("{} {}{status}", p.target.ip(), p.outcome.as_str().replace('_', " "))
                })
                .collect();
            let port = match s.proto {
                Proto::Tcp => s.port.to_string(),
                Proto::Udp => format!("{}/udp", s.port),
            };
            let listening = if listeners.is_empty() { "nothing".to_owned() } else { listeners.join("\n") };
            table.add_row(vec![port, s.verdict.as_str().to_owned(), listening, probes.join("\n")]);
        }
        out.push('\n');
        out.push_str(&table.to_string());
        out.push('\n');
    }
    for proto in [Proto::Tcp, Proto::Udp] {
        let probes: Vec<&ProbeReport> = r.probes.iter().filter(|p| p.proto == proto).collect();
        if probes.is_empty() {
            continue;
        }
        let mut columns: Vec<IpAddr> = probes.iter().map(|p| p.target.ip()).collect();
        columns.sort_by_key(|ip| (ip.is_ipv6(), *ip));
        columns.dedup();
        let mut table = Table::new();
        table.load_preset(UTF8_BORDERS_ONLY);
        let mut header = vec![format!("{} listener", proto.to_string().to_uppercase()), "meaning".to_owned()];
        header.extend(columns.iter().map(|c| format!("→ {c}")));
        table.set_header(header);
        for l in r.listeners.iter().filter(|l| l.proto == proto) {
            let mut row = vec![l.bind.to_string(), clean(&l.meaning)];
            for c in &columns {
                let cell = probes.iter().find(|p| p.bind == l.bind && p.target.ip() == *c).map(|p| cell(p));
                row.push(cell.unwrap_or_else(|| "·".into()));
            }
            table.add_row(row);
        }
        out.push('\n');
        out.push_str(&table.to_string());
        out.push('\n');
    }
    out.push_str(&format!("\n{}\n", paint.bold("Findings:")));
    if r.findings.is_empty() {
        out.push_str("  (none)\n");
    }
    for f in &r.findings {
        let mark = match f.severity {
            Severity::Info => "info".to_owned(),
            Severity::Warning => paint.warn("WARNING"),
            Severity::Error => paint.bad("PROBLEM"),
        };
        out.push_str(&format!("  [{mark}] {}\n", long(&f.message)));
        if !f.fix.is_empty() {
            out.push_str(&format!("      fix: {}\n", long(&f.fix)));
        }
    }
    out
}

fn cell(p: &ProbeReport) -> String {
    match (p.outcome, p.rtt_ms) {
        (Outcome::Open, Some(ms)) => format!("open {ms:.1} ms"),
        (outcome, _) => outcome.as_str().replace('_', " "),
    }
}

/// A probe that reached one of the agent's test listeners, as the listener saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerHit {
    /// Protocol.
    pub proto: Proto,
    /// The listener's bound address.
    pub bind: SocketAddr,
    /// The address the probe arrived at.
    pub local: SocketAddr,
    /// The probe's source address as seen by the agent.
    pub source: SocketAddr,
}

/// Everything a report is made from.
#[derive(Debug, Clone)]
pub struct ReportParts<'a> {
    /// Peer or local.
    pub mode: Mode,
    /// The agent.
    pub agent: AgentInfo,
    /// The peer (`probe_sources` is filled in from `hits`).
    pub peer: PeerInfo,
    /// The test listeners.
    pub listeners: &'a [crate::plan::ListenerSpec],
    /// The plan that was probed.
    pub plan: &'a [crate::plan::PlannedProbe],
    /// The peer's results, one per planned probe.
    pub results: &'a [ProbeResult],
    /// What the listeners saw.
    pub hits: &'a [ListenerHit],
    /// The inside facts about the user's ports.
    pub services: &'a [ServiceInput],
    /// The probes of the user's ports.
    pub service_plan: &'a [ServiceProbe],
    /// Their results.
    pub service_results: &'a [ServiceResult],
    /// Whether the agent runs inside WSL2.
    pub wsl2: bool,
}

/// Joins the plan, the outside results and the inside facts into a report, diagnosed.
pub fn assemble(parts: ReportParts<'_>) -> Report {
    let ReportParts {
        mode,
        agent,
        mut peer,
        listeners,
        plan,
        results,
        hits,
        services,
        service_plan,
        service_results,
        wsl2,
    } = parts;
    let listeners: Vec<ListenerInfo> = listeners
        .iter()
        .map(|l| ListenerInfo { proto: l.proto, bind: l.bind, meaning: bind_meaning(l.bind.ip(), &agent.addresses) })
        .collect();
    let probes: Vec<ProbeReport> = plan
        .iter()
        .map(|p| {
            let result = results.iter().find(|r| r.id == p.id);
            let seen = hits.iter().any(|h| h.proto == p.proto && h.bind == p.bind && h.local.ip() == p.target.ip());
            ProbeReport {
                proto: p.proto,
                bind: p.bind,
                target: p.target,
                // A probe the peer did not report on counts as silence.
                outcome: result.map_or(Outcome::Timeout, |r| r.outcome),
                rtt_ms: result.and_then(|r| r.rtt_us).map(|us| f64::from(us) / 1000.0),
                errno: result.and_then(|r| r.errno),
                attempts: result.map_or(0, |r| r.attempts),
                seen_by_listener: seen,
            }
        })
        .collect();
    for h in hits {
        if !peer.probe_sources.contains(&h.source.ip()) {
            peer.probe_sources.push(h.source.ip());
        }
    }
    let mut service_reports = Vec::new();
    let mut service_findings = Vec::new();
    for input in services {
        let (r, f) = crate::service::judge(input, service_plan, service_results, &probes, wsl2);
        service_reports.push(r);
        service_findings.extend(f);
    }
    let mut report = Report {
        schema: SCHEMA.to_owned(),
        mode,
        agent,
        peer,
        listeners,
        probes,
        services: service_reports,
        findings: Vec::new(),
    };
    let mut findings = service_findings;
    findings.extend(crate::diagnose::diagnose(&report));
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    report.findings = findings;
    report
}

impl Report {
    /// Whether every port named with `--check` is reachable (the exit code's question).
    pub fn checked_ports_reachable(&self) -> bool {
        self.services.iter().filter(|s| s.source == PortSource::Check).all(|s| s.verdict == Verdict::Reachable)
    }
}
