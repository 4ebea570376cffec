//! Watch mode's words: what changed between two reports of the same session, one line
//! each, so that both sides print only what changed ("3000: loopback_only → reachable").

use crate::facts::PortSource;
use crate::report::{Report, ServiceReport, Verdict};
use crate::vocab::Proto;

fn port_name(s: &ServiceReport) -> String {
    match s.proto {
        Proto::Tcp => s.port.to_string(),
        Proto::Udp => format!("{}/udp", s.port),
    }
}

fn mark(v: Verdict) -> &'static str {
    if v == Verdict::Reachable { " ✓" } else { "" }
}

/// What changed from `before` to `after`: each port whose verdict changed, ports that
/// appeared or went away (`--exposed`), and findings that came or went. Empty when
/// nothing did.
pub fn changes(before: &Report, after: &Report) -> Vec<String> {
    let mut out = Vec::new();
    let same = |a: &ServiceReport, b: &ServiceReport| a.port == b.port && a.proto == b.proto;
    for s in &after.services {
        match before.services.iter().find(|b| same(b, s)) {
            Some(b) if b.verdict != s.verdict => out.push(format!(
                "{}: {} → {}{}",
                port_name(s),
                b.verdict.as_str(),
                s.verdict.as_str(),
                mark(s.verdict)
            )),
            Some(_) => {}
            None if s.source == PortSource::Exposed => {
                out.push(format!("{}: now listening, {}{}", port_name(s), s.verdict.as_str(), mark(s.verdict)));
            }
            None => out.push(format!("{}: {}{}", port_name(s), s.verdict.as_str(), mark(s.verdict))),
        }
    }
    for b in before.services.iter().filter(|b| !after.services.iter().any(|s| same(b, s))) {
        out.push(format!("{}: no longer listening", port_name(b)));
    }
    let codes = |r: &Report| r.findings.iter().map(|f| f.code.to_string()).collect::<Vec<_>>();
    let (was, now) = (codes(before), codes(after));
    for code in now.iter().filter(|c| !was.contains(c)) {
        out.push(format!("new finding: {code}"));
    }
    for code in was.iter().filter(|c| !now.contains(c)) {
        out.push(format!("gone: {code}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{AgentInfo, Finding, FindingCode, Mode, PeerInfo, SCHEMA, Severity};

    fn report(verdict: Verdict, findings: &[FindingCode]) -> Report {
        Report {
            schema: SCHEMA.into(),
            mode: Mode::Peer,
            agent: AgentInfo { name: "a".into(), id: "X".into(), addresses: vec![] },
            peer: PeerInfo {
                name: "p".into(),
                id: "Y".into(),
                seen_from: None,
                arrival_interface: None,
                addresses: vec![],
                probe_sources: vec![],
                dialled: None,
            },
            listeners: vec![],
            probes: vec![],
            services: vec![ServiceReport {
                port: 3000,
                source: PortSource::Check,
                proto: Proto::Tcp,
                listeners: vec![],
                docker: vec![],
                unpublished: vec![],
                probes: vec![],
                firewall: vec![],
                verdict,
            }],
            findings: findings
                .iter()
                .map(|c| Finding {
                    code: c.clone(),
                    severity: Severity::Error,
                    message: String::new(),
                    fix: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn only_what_changed_is_named() {
        let before = report(Verdict::LoopbackOnly, &[FindingCode::LoopbackOnly]);
        let after = report(Verdict::Reachable, &[]);
        assert_eq!(changes(&before, &after), ["3000: loopback_only → reachable ✓", "gone: loopback_only"]);
        assert!(changes(&after, &after).is_empty());
    }
}
