//! Terminal rendering of a report: the header, the user's ports, one matrix per
//! protocol and the findings, with colour only where [`Paint`] allows it. Every string in
//! a report came over the network: none reaches the terminal without [`printable`].

use std::net::{IpAddr, SocketAddr};

use crate::facts::{DockerPublish, PortSource};
use crate::report::{Mode, ProbeReport, Report, ServiceReport, Severity};
use crate::text::printable;
use crate::vocab::{Outcome, Proto};

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
    let clean = |s: &str| printable(s, 64);
    let long = |s: &str| printable(s, 2000);
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
                .chain(s.docker.iter().flat_map(|d| publication_lines(d, &clean)))
                .chain(s.unpublished.iter().flat_map(|c| {
                    let name = clean(&c.container);
                    let mut lines: Vec<String> =
                        c.listeners.iter().map(|a| format!("{a} in container {name}")).collect();
                    lines.push("  not published".into());
                    lines
                }))
                .collect();
            let probes: Vec<String> = s
                .probes
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
