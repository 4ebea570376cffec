//! Terminal rendering of a report, laid out for the width it is printed at. Every
//! string in a report came over the network: none reaches the terminal without
//! [`printable`].
//!
//! Two layouts, chosen by whether the tables fit:
//!
//! - **Tables** (the tables fit, e.g. 100 columns): the header, a table of the user's
//!   ports, one matrix table per protocol, then the findings.
//! - **Lists** (narrower, e.g. 80 or 40 columns): the header, then each port on its
//!   own lines — verdict, cause, fix, who listens, what the peer saw — then the other
//!   findings, then the matrix as a list (per listener: its meaning, then each dialled
//!   address with its outcome). Below [`NARROW_WIDTH`] a report with ports leaves the
//!   matrix and the notes (information findings) that explain it out, with a line
//!   that says how to see them, so the ports' story fits on one phone screen.
//!
//! Text is wrapped at word boundaries with a hanging indent, never cut. Colour marks
//! verdicts and severities only; inside a table it is added after the table is laid
//! out, so column alignment is measured on the plain text.

use std::net::{IpAddr, SocketAddr};

use crate::defaults::{MIN_WIDTH, NARROW_WIDTH};
use crate::facts::{CheckedPort, DockerPublish, PortSource};
use crate::firewall::FirewallOutcome;
use crate::report::{Finding, FindingCode, ListenerInfo, Mode, ProbeReport, Report, ServiceReport, Severity, Verdict};
use crate::text::{self, printable, wrap};
use crate::vocab::{Outcome, Proto};

/// Colours for terminal output; [`Paint::plain`] adds none.
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

    fn colour(self, colour: anstyle::AnsiColor, text: &str) -> String {
        self.apply(anstyle::Style::new().fg_color(Some(colour.into())).bold(), text)
    }

    /// A problem.
    pub fn bad(self, text: &str) -> String {
        self.colour(anstyle::AnsiColor::Red, text)
    }

    /// A warning.
    pub fn warn(self, text: &str) -> String {
        self.colour(anstyle::AnsiColor::Yellow, text)
    }

    /// Something that works.
    pub fn good(self, text: &str) -> String {
        self.colour(anstyle::AnsiColor::Green, text)
    }

    /// Information.
    pub fn info(self, text: &str) -> String {
        self.colour(anstyle::AnsiColor::Cyan, text)
    }

    /// Emphasis.
    pub fn bold(self, text: &str) -> String {
        self.apply(anstyle::Style::new().bold(), text)
    }

    /// A verdict in its colour: green when reachable, yellow when partial, red otherwise.
    pub fn verdict(self, v: Verdict) -> String {
        match v {
            Verdict::Reachable => self.good(v.as_str()),
            Verdict::Partial => self.warn(v.as_str()),
            _ => self.bad(v.as_str()),
        }
    }
}

/// The report for a terminal `width` columns wide: no line is wider (a `width` below
/// [`MIN_WIDTH`] counts as that).
pub fn render_text(r: &Report, paint: Paint, width: usize) -> String {
    View { r, paint, width: width.max(MIN_WIDTH) }.render()
}

/// Every string in a report came over the network: none may reach the terminal raw.
fn clean(s: &str) -> String {
    printable(s, 64)
}

fn long(s: &str) -> String {
    printable(s, 2000)
}

struct View<'a> {
    r: &'a Report,
    paint: Paint,
    width: usize,
}

impl View<'_> {
    fn render(&self) -> String {
        let port_tables: Vec<String> = SOURCES.iter().filter_map(|&s| self.port_table(s)).collect();
        let matrices: Vec<String> = [Proto::Tcp, Proto::Udp].into_iter().filter_map(|p| self.matrix_table(p)).collect();
        let fits = port_tables.iter().chain(&matrices).all(|t| t.lines().all(|l| text::width(l) <= self.width));
        let mut out = self.header();
        if fits {
            for table in port_tables {
                out.push('\n');
                out.push_str(&self.paint_verdicts(&table));
                out.push('\n');
            }
            for table in matrices {
                out.push('\n');
                out.push_str(&table);
                out.push('\n');
            }
            out.push_str(&self.findings(&self.r.findings.iter().collect::<Vec<_>>()));
        } else {
            out.push_str(&self.lists());
        }
        out
    }

    fn header(&self) -> String {
        let r = self.r;
        let title = self.paint.bold("lanreach report");
        let line = match r.mode {
            Mode::Peer => format!(
                "{title}: agent \"{}\" ({}) probed from peer \"{}\" ({})",
                clean(&r.agent.name),
                clean(&r.agent.id),
                clean(&r.peer.name),
                clean(&r.peer.id)
            ),
            Mode::Browser => format!(
                "{title}: agent \"{}\" ({}) probed from a browser ({})",
                clean(&r.agent.name),
                clean(&r.agent.id),
                clean(&r.peer.name)
            ),
            Mode::Local => {
                format!("{title}: agent \"{}\" ({}) probing itself", clean(&r.agent.name), clean(&r.agent.id))
            }
        };
        let mut out = wrap(&line, self.width, "", "  ");
        if let Some(seen) = r.peer.seen_from {
            let on = r.peer.arrival_interface.as_deref().map(|i| format!(" on {}", clean(i))).unwrap_or_default();
            let who = if r.mode == Mode::Browser { "browser" } else { "peer" };
            out.push_str(&wrap(&format!("The agent saw the {who} come from {seen}{on}."), self.width, "", "  "));
        }
        out
    }

    /// The narrow layout: each port's story first, then the other findings, then the
    /// matrix as a list (or a line saying how to see it).
    fn lists(&self) -> String {
        let mut out = String::new();
        let mut shown: Vec<&Finding> = Vec::new();
        for source in SOURCES {
            let ports: Vec<&ServiceReport> = self.r.services.iter().filter(|s| s.source == source).collect();
            if ports.is_empty() {
                continue;
            }
            if source == PortSource::Exposed {
                out.push('\n');
                out.push_str(&wrap("Other listening ports (--exposed):", self.width, "", "  "));
            }
            for (i, s) in ports.into_iter().enumerate() {
                if source == PortSource::Check || i > 0 {
                    out.push('\n');
                }
                let finding = port_finding(self.r, s);
                out.push_str(&self.port_block(s, finding));
                shown.extend(finding);
            }
        }
        let rest = self.r.findings.iter().filter(|f| !shown.contains(f));
        // On a phone the ports' story stays on one screen: the matrix and the notes
        // (information) that explain it give way; problems and warnings stay.
        let phone = self.width < NARROW_WIDTH && !self.r.services.is_empty();
        let (rest, notes): (Vec<&Finding>, Vec<&Finding>) = rest.partition(|f| !phone || f.severity > Severity::Info);
        if !rest.is_empty() || shown.is_empty() {
            out.push_str(&self.findings(&rest));
        }
        if phone {
            let what = match notes.len() {
                0 => "the matrix of lanreach's test listeners".to_owned(),
                1 => "the matrix of lanreach's test listeners and 1 note (information) on it".to_owned(),
                n => format!("the matrix of lanreach's test listeners and {n} notes (information) on it"),
            };
            let line = format!(
                "Left out at this width: {what}. Widen the terminal to {NARROW_WIDTH} columns or more (turn the \
                 phone), or use --json, to see them."
            );
            out.push('\n');
            out.push_str(&wrap(&line, self.width, "", ""));
        } else {
            for proto in [Proto::Tcp, Proto::Udp] {
                out.push_str(&self.matrix_list(proto));
            }
        }
        out
    }

    /// One port on its own lines: the verdict, the cause and the fix first, each wrapped
    /// whole; then who listens here and what the peer saw.
    fn port_block(&self, s: &ServiceReport, finding: Option<&Finding>) -> String {
        let label = port_label(s);
        let mut out = wrap(&format!("Port {label}: {}", self.paint.verdict(s.verdict)), self.width, "", "  ");
        if let Some(f) = finding {
            let message = long(&f.message);
            let cause = message.strip_prefix(&format!("Port {label}: ")).unwrap_or(&message);
            out.push_str(&wrap(cause, self.width, "  ", "  "));
            if !f.fix.is_empty() {
                out.push_str(&wrap(&long(&f.fix), self.width, &format!("  {}: ", self.paint.bold("fix")), "    "));
            }
        }
        let listening = listeners(s);
        let listening = if listening.is_empty() { vec!["nothing".to_owned()] } else { listening };
        out.push_str(&self.labelled("listening here", &listening));
        out.push_str(&self.labelled(seen_from(self.r.mode), &probes(s)));
        out
    }

    /// `  label: a, b` when it fits on one line, otherwise the label and one item per line.
    fn labelled(&self, label: &str, items: &[String]) -> String {
        if items.is_empty() {
            return String::new();
        }
        let line = format!("  {label}: {}", items.join(", "));
        if text::width(&line) <= self.width {
            return format!("{line}\n");
        }
        let mut out = format!("  {label}:\n");
        for item in items {
            out.push_str(&wrap(item, self.width, "    ", "      "));
        }
        out
    }

    fn findings(&self, list: &[&Finding]) -> String {
        let mut out = format!("\n{}\n", self.paint.bold("Findings:"));
        if list.is_empty() {
            out.push_str("  (none)\n");
        }
        for f in list {
            let mark = match f.severity {
                Severity::Info => self.paint.info("info"),
                Severity::Warning => self.paint.warn("WARNING"),
                Severity::Error => self.paint.bad("PROBLEM"),
            };
            out.push_str(&wrap(&long(&f.message), self.width, &format!("  [{mark}] "), "    "));
            if !f.fix.is_empty() {
                out.push_str(&wrap(&long(&f.fix), self.width, &format!("    {}: ", self.paint.bold("fix")), "      "));
            }
        }
        out
    }

    /// The table of the user's ports from `source`, plain; none without such ports.
    fn port_table(&self, source: PortSource) -> Option<String> {
        use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
        let rows: Vec<&ServiceReport> = self.r.services.iter().filter(|s| s.source == source).collect();
        if rows.is_empty() {
            return None;
        }
        let mut table = Table::new();
        table.load_preset(UTF8_BORDERS_ONLY);
        let title = if source == PortSource::Check { "your port" } else { "listening port" };
        // The self-check dials this machine's own addresses over lo: it saw nothing from
        // outside, and its heading says so (DESIGN §5).
        table.set_header(vec![title, VERDICT_HEADER, "listening here", seen_from(self.r.mode)]);
        for s in rows {
            let listening = listeners(s);
            let listening = if listening.is_empty() { "nothing".to_owned() } else { listening.join("\n") };
            table.add_row(vec![port_label(s), s.verdict.as_str().to_owned(), listening, probes(s).join("\n")]);
        }
        Some(table.to_string())
    }

    /// Colours the verdicts of a laid-out port table: each cell under the verdict
    /// heading that names a verdict gets its colour, so the columns still line up.
    fn paint_verdicts(&self, table: &str) -> String {
        let mut column = None;
        let mut out = String::new();
        for line in table.lines() {
            let chars: Vec<char> = line.chars().collect();
            let painted = column.and_then(|at: usize| {
                let word: String = chars.get(at..)?.iter().take_while(|c| !c.is_whitespace()).collect();
                let verdict = Verdict::ALL.into_iter().find(|v| v.as_str() == word)?;
                let before: String = chars[..at].iter().collect();
                let after: String = chars[at + word.chars().count()..].iter().collect();
                Some(format!("{before}{}{after}", self.paint.verdict(verdict)))
            });
            if column.is_none() {
                column = line.find(VERDICT_HEADER).map(|byte| line[..byte].chars().count());
            }
            out.push_str(&painted.unwrap_or_else(|| line.to_owned()));
            out.push('\n');
        }
        out.truncate(out.trim_end_matches('\n').len());
        out
    }

    /// The matrix of `proto`'s test listeners as a table, plain; none without probes.
    fn matrix_table(&self, proto: Proto) -> Option<String> {
        use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
        let columns = self.columns(proto);
        if columns.is_empty() {
            return None;
        }
        let mut table = Table::new();
        table.load_preset(UTF8_BORDERS_ONLY);
        let mut header = vec![format!("{} listener", proto_name(proto)), "meaning".to_owned()];
        header.extend(columns.iter().map(|c| format!("→ {c}")));
        table.set_header(header);
        for l in self.dialled(proto) {
            let mut row = vec![l.bind.to_string(), clean(&l.meaning)];
            for c in &columns {
                row.push(self.probe(proto, l.bind, *c).map_or_else(|| "·".into(), cell));
            }
            table.add_row(row);
        }
        Some(table.to_string())
    }

    /// The matrix of `proto` as a list: per listener its meaning, then each dialled
    /// address with its outcome.
    fn matrix_list(&self, proto: Proto) -> String {
        let columns = self.columns(proto);
        if columns.is_empty() {
            return String::new();
        }
        let pad = columns.iter().map(|c| c.to_string().len()).max().unwrap_or(0);
        let by = match self.r.mode {
            Mode::Browser => "the browser",
            Mode::Local => "this machine",
            Mode::Peer => "the peer",
        };
        let title = format!("{} test listeners, dialled by {by}:", proto_name(proto));
        let mut out = format!("\n{}", wrap(&title, self.width, "", "  "));
        for l in self.dialled(proto) {
            let (bind, meaning) = (l.bind.to_string(), clean(&l.meaning));
            let line = format!("  {bind}  {meaning}");
            if text::width(&line) <= self.width {
                out.push_str(&line);
                out.push('\n');
            } else {
                out.push_str(&wrap(&bind, self.width, "  ", "    "));
                out.push_str(&wrap(&meaning, self.width, "    ", "    "));
            }
            let dialled: Vec<String> = columns
                .iter()
                .filter_map(|c| {
                    self.probe(proto, l.bind, *c).map(|p| format!("→ {:<pad$}  {}", c.to_string(), cell(p)))
                })
                .collect();
            for d in dialled {
                out.push_str(&wrap(&d, self.width, "    ", "      "));
            }
        }
        out
    }

    /// `proto`'s test listeners that were dialled at all (a UDP listener on loopback is
    /// not: a closed UDP port answers with a rate-limited ICMP error, and TCP shows the
    /// same lesson).
    fn dialled(&self, proto: Proto) -> impl Iterator<Item = &ListenerInfo> {
        self.r
            .listeners
            .iter()
            .filter(move |l| l.proto == proto && self.r.probes.iter().any(|p| p.proto == proto && p.bind == l.bind))
    }

    /// The addresses the peer dialled `proto`'s listeners at, IPv4 first.
    fn columns(&self, proto: Proto) -> Vec<IpAddr> {
        let mut columns: Vec<IpAddr> =
            self.r.probes.iter().filter(|p| p.proto == proto).map(|p| p.target.ip()).collect();
        columns.sort_by_key(|ip| (ip.is_ipv6(), *ip));
        columns.dedup();
        columns
    }

    fn probe(&self, proto: Proto, bind: std::net::SocketAddr, target: IpAddr) -> Option<&ProbeReport> {
        self.r.probes.iter().find(|p| p.proto == proto && p.bind == bind && p.target.ip() == target)
    }
}

/// The user's ports first, then the audit of `--exposed`.
const SOURCES: [PortSource; 2] = [PortSource::Check, PortSource::Exposed];

const VERDICT_HEADER: &str = "verdict";

fn proto_name(p: Proto) -> String {
    p.to_string().to_uppercase()
}

/// `3000`, or `53/udp`: how findings name a port.
fn port_label(s: &ServiceReport) -> String {
    CheckedPort { port: s.port, proto: s.proto }.to_string()
}

/// The finding that explains a port's verdict: the verdict's code, naming the port.
fn port_finding<'r>(r: &'r Report, s: &ServiceReport) -> Option<&'r Finding> {
    let label = port_label(s);
    r.findings.iter().find(|f| {
        let code = f.code == FindingCode::of_verdict(s.verdict);
        let rest = f.message.strip_prefix("Port ").and_then(|m| m.strip_prefix(label.as_str()));
        code && rest.is_some_and(|m| m.starts_with([':', ' ']))
    })
}

/// Who listens on a port here, one entry per socket or Docker publication.
fn listeners(s: &ServiceReport) -> Vec<String> {
    s.listeners
        .iter()
        .map(|l| match (&l.program, l.pid) {
            (Some(p), Some(pid)) => format!("{} {}[{pid}]", l.bind, clean(p)),
            (Some(p), None) => format!("{} {}", l.bind, clean(p)),
            _ => format!("{} (owner not visible)", l.bind),
        })
        .chain(s.docker.iter().flat_map(|d| publication_lines(d, &clean)))
        .chain(s.unpublished.iter().flat_map(|c| {
            let name = clean(&c.container);
            let mut lines: Vec<String> = c.listeners.iter().map(|a| format!("{a} in container {name}")).collect();
            lines.push("  not published".into());
            lines
        }))
        .collect()
}

/// What the peer saw at each address it dialled a port at, and what the firewall's
/// configuration does with other hosts' packets to it.
fn probes(s: &ServiceReport) -> Vec<String> {
    s.probes
        .iter()
        .map(|p| {
            let status = p.http_status.map(|c| format!(" HTTP {c}")).unwrap_or_default();
            // What the connection-tracking table said of a silent UDP probe.
            let inside = match p.delivered {
                Some(true) => ", arrived",
                Some(false) => ", dropped",
                None => "",
            };
            format!("{} {}{status}{inside}", p.target.ip(), p.outcome.as_str().replace('_', " "))
        })
        .chain(firewall_lines(s))
        .collect()
}

/// The heading of what the probes saw: a self-check saw nothing from outside.
fn seen_from(mode: Mode) -> &'static str {
    match mode {
        Mode::Peer => "from outside",
        Mode::Browser => "from the browser",
        Mode::Local => "from this machine",
    }
}

/// What the firewall's configuration does with other hosts' packets to the port, under
/// its probes: `firewall: drops other hosts` (with the addresses when they differ).
fn firewall_lines(s: &ServiceReport) -> Vec<String> {
    let word = |o: FirewallOutcome| match o {
        FirewallOutcome::Accepted => "lets other hosts in",
        FirewallOutcome::Dropped => "drops other hosts",
        FirewallOutcome::Rejected => "rejects other hosts",
        FirewallOutcome::NotEvaluated => "not evaluated",
    };
    let mut outcomes: Vec<FirewallOutcome> = Vec::new();
    for c in &s.firewall {
        if !outcomes.contains(&c.outcome) {
            outcomes.push(c.outcome);
        }
    }
    match outcomes.as_slice() {
        [] => Vec::new(),
        [one] => vec![format!("firewall: {}", word(*one))],
        many => many
            .iter()
            .map(|o| {
                let at: Vec<String> =
                    s.firewall.iter().filter(|c| c.outcome == *o).map(|c| c.target.ip().to_string()).collect();
                format!("firewall: {} at {}", word(*o), at.join(", "))
            })
            .collect(),
    }
}

/// A Docker publication in the "listening here" column: where the app listens inside
/// the container (that is what listens, not Docker's forwarding on the host address),
/// then the publication itself.
fn publication_lines(d: &DockerPublish, clean: &impl Fn(&str) -> String) -> Vec<String> {
    let name = clean(&d.container);
    let host = SocketAddr::new(d.host_ip, d.host_port);
    let Some(inner) = &d.inner_listeners else {
        return vec![format!("docker {name} → {host} (port {} inside)", d.container_port)];
    };
    let on_port: Vec<&SocketAddr> = inner.iter().filter(|a| a.port() == d.container_port).collect();
    let mut lines: Vec<String> = on_port.iter().map(|a| format!("{a} in container {name}")).collect();
    if lines.is_empty() {
        lines.push(format!("nothing on port {} in container {name}", d.container_port));
    }
    lines.push(format!("  published on {host}"));
    lines
}

fn cell(p: &ProbeReport) -> String {
    match (p.outcome, p.rtt_ms) {
        (Outcome::Open, Some(ms)) => format!("open {ms:.1} ms"),
        (outcome, _) => outcome.as_str().replace('_', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publication_shows_where_the_app_listens_inside() {
        let mut d = DockerPublish {
            container: "web".into(),
            image: "app:1".into(),
            host_ip: "0.0.0.0".parse().expect("ip"),
            host_port: 8080,
            container_port: 3000,
            proto: Proto::Tcp,
            inner_listeners: Some(vec!["127.0.0.1:3000".parse().expect("addr"), "0.0.0.0:9000".parse().expect("addr")]),
        };
        let clean = |s: &str| printable(s, 64);
        assert_eq!(publication_lines(&d, &clean), ["127.0.0.1:3000 in container web", "  published on 0.0.0.0:8080"]);
        d.inner_listeners = Some(Vec::new());
        assert_eq!(publication_lines(&d, &clean)[0], "nothing on port 3000 in container web");
        d.inner_listeners = None;
        assert_eq!(publication_lines(&d, &clean), ["docker web → 0.0.0.0:8080 (port 3000 inside)"]);
    }
}
