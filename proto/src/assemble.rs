//! Report assembly: joins the plan, the peer's raw results, what the test listeners saw
//! and the inside facts into a [`Report`], judging each of the user's ports
//! ([`crate::verdict`], [`crate::fixes`]) and the matrix ([`crate::diagnose`]).

use std::net::IpAddr;

use crate::addr::InterfaceKind;
use crate::facts::{Conntrack, PortSource, ServiceInput};
use crate::firewall::{Firewall, FirewallCheck, Packet, PacketSource};
use crate::fixes;
use crate::fixes::FixContext;
use crate::plan::ProbePlan;
use crate::report::{
    AddressInfo, AgentInfo, Finding, ListenerInfo, Mode, PeerInfo, ProbeReport, Report, SCHEMA, ServiceListener,
    ServiceProbeReport, ServiceReport, Severity, Verdict,
};
use crate::verdict::{Delivery, ServiceFacts, delivery, path_open, verdict};
use crate::vocab::{ListenerHit, ListenerSpec, Outcome, ProbeResults, Proto, ServiceProbe};

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
    pub listeners: &'a [ListenerSpec],
    /// The plan that was probed.
    pub plan: &'a ProbePlan,
    /// The peer's results, one per planned probe.
    pub results: &'a ProbeResults,
    /// What the listeners saw.
    pub hits: &'a [ListenerHit],
    /// The inside facts about the user's ports.
    pub services: &'a [ServiceInput],
    /// Whether the agent runs inside WSL2.
    pub wsl2: bool,
    /// The firewall's rules as the agent read them.
    pub firewall: &'a Firewall,
    /// The connection-tracking table as the agent read it while the peer probed (for
    /// UDP delivery).
    pub conntrack: &'a Conntrack,
}

/// Joins the plan, the outside results and the inside facts into a report, diagnosed.
pub fn assemble(parts: ReportParts<'_>) -> Report {
    let ReportParts { mode, agent, mut peer, listeners, plan, results, hits, services, wsl2, firewall, conntrack } =
        parts;
    let listeners: Vec<ListenerInfo> = listeners
        .iter()
        .map(|l| ListenerInfo { proto: l.proto, bind: l.bind, meaning: bind_meaning(l.bind.ip(), &agent.addresses) })
        .collect();
    let probes: Vec<ProbeReport> = plan
        .probes
        .iter()
        .map(|p| {
            let result = results.results.iter().find(|r| r.id == p.id);
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
                proven: result.is_some_and(|r| r.proven && r.outcome == Outcome::Timeout),
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
        let mut cx = fix_context(&probes, input.port.proto, peer.dialled, wsl2);
        if mode.from_outside() {
            cx.peer_network = peer.seen_from.map(|s| {
                let ip = s.ip().to_canonical();
                (ip, agent.addresses.iter().any(|a| !a.ip.is_loopback() && a.same_network(ip)))
            });
        }
        let side = Side { mode, agent: &agent, peer: &peer, firewall };
        let mut peer_ips = peer.addresses.clone();
        peer_ips.extend(peer.seen_from.map(|s| s.ip()));
        let inside = Inside { conntrack, hits, peer: &peer_ips };
        let (r, f) = judge(&side, input, plan, results, &probes, &inside, &cx);
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

/// Who probed from where, and the firewall's rules: what a port's firewall checks are
/// made from.
struct Side<'a> {
    mode: Mode,
    agent: &'a AgentInfo,
    peer: &'a PeerInfo,
    firewall: &'a Firewall,
}

/// What the firewall's configuration does with a packet from another host to each
/// non-loopback address where the port was probed: with a peer, one from the peer's
/// address arriving where its control connection did; in `--local`, one from any host
/// of the address's network arriving on the address's interface.
fn firewall_checks(side: &Side<'_>, input: &ServiceInput, probes: &[ServiceProbeReport]) -> Vec<FirewallCheck> {
    if *side.firewall == Firewall::NotRead {
        return Vec::new();
    }
    let mut out: Vec<FirewallCheck> = Vec::new();
    for target in probes.iter().map(|p| p.target) {
        let ip = target.ip().to_canonical();
        if ip.is_loopback() || out.iter().any(|c| c.target.ip() == ip) {
            continue;
        }
        let own = side.agent.addresses.iter().find(|a| a.ip.to_canonical() == ip);
        let network = own.and_then(|a| a.prefix.map(|len| PacketSource::network(ip, len)));
        let (iif, source) = match side.mode {
            Mode::Local => (own.map(|a| a.interface.clone()), network.unwrap_or(PacketSource::Unknown)),
            Mode::Peer | Mode::Browser => {
                let arrival = side.peer.arrival_interface.as_deref().filter(|i| !i.ends_with("(loopback)"));
                let iif = arrival.map(str::to_owned).or_else(|| own.map(|a| a.interface.clone()));
                // The peer's own address of this family: the one it came from, one on
                // this address's network, any; else any host of the network.
                let family = |a: &std::net::IpAddr| a.to_canonical().is_ipv4() == ip.is_ipv4();
                let seen = side.peer.seen_from.map(|s| s.ip().to_canonical()).filter(family);
                let near = side
                    .peer
                    .addresses
                    .iter()
                    .copied()
                    .filter(family)
                    .find(|a| own.is_some_and(|o| o.same_network(*a)));
                let any = side.peer.addresses.iter().copied().find(family);
                let source = match seen.or(near).or(any) {
                    Some(a) => PacketSource::Host(a.to_canonical()),
                    None => network.unwrap_or(PacketSource::Unknown),
                };
                (iif, source)
            }
        };
        let packet = Packet { proto: input.port.proto, dport: input.port.port, daddr: ip, iif, source };
        let published = input.docker.iter().any(|d| d.proto == input.port.proto && d.host_port == input.port.port);
        out.push(match side.firewall {
            _ if published => FirewallCheck::not_evaluated(
                &packet,
                "Docker publishes the port: its packets are forwarded to the container, a path lanreach does not evaluate",
            ),
            Firewall::Rules(rules) => FirewallCheck::of(rules, &packet),
            Firewall::Unreadable(why) => FirewallCheck::not_evaluated(&packet, why.clone()),
            Firewall::NotRead => continue,
        });
    }
    out
}

/// Joins a port's inside facts, its outside probes and the path picture into its report
/// entry and, unless it is reachable, a finding.
/// What the agent saw from inside while the peer probed: for UDP delivery.
struct Inside<'a> {
    conntrack: &'a Conntrack,
    hits: &'a [ListenerHit],
    /// The peer's own addresses and the source of its control connection.
    peer: &'a [IpAddr],
}

fn judge(
    side: &Side<'_>,
    input: &ServiceInput,
    plan: &ProbePlan,
    results: &ProbeResults,
    path: &[ProbeReport],
    inside: &Inside<'_>,
    cx: &FixContext,
) -> (ServiceReport, Option<Finding>) {
    let planned = plan.services.iter().filter(|p| p.proto == input.port.proto && p.target.port() == input.port.port);
    let mut blind = None;
    let probes: Vec<ServiceProbeReport> = planned
        .map(|p: &ServiceProbe| {
            let r = results.services.iter().find(|r| r.id == p.id);
            let outcome = r.map_or(Outcome::Timeout, |r| r.outcome);
            // Only silence needs the inside view: an answer or an error speaks for itself.
            let delivered = if p.proto == Proto::Udp && outcome == Outcome::Timeout {
                let ports = r.map(|r| r.source_ports.as_slice()).unwrap_or_default();
                match delivery(inside.conntrack, inside.hits, inside.peer, p.target, ports) {
                    Delivery::Unknown(why) => {
                        blind.get_or_insert(why);
                        None
                    }
                    known => known.as_field(),
                }
            } else {
                None
            };
            ServiceProbeReport {
                target: p.target,
                outcome,
                rtt_ms: r.and_then(|r| r.rtt_us).map(|us| f64::from(us) / 1000.0),
                http_status: r.and_then(|r| r.http_status),
                errno: r.and_then(|r| r.errno),
                attempts: r.map_or(0, |r| r.attempts),
                proven: r.is_some_and(|r| r.proven && outcome == Outcome::Timeout),
                delivered,
            }
        })
        .collect();
    let firewall = firewall_checks(side, input, &probes);
    let facts = ServiceFacts {
        mode: side.mode,
        port: input.port,
        listeners: &input.listeners,
        docker: &input.docker,
        unpublished: &input.unpublished,
        probes: &probes,
        path,
        local_http_status: input.local_http_status,
        firewall: &firewall,
        blind,
    };
    let verdict = verdict(&facts);
    let fine = matches!(verdict, Verdict::Reachable | Verdict::ReachableLocally);
    let finding = (!fine).then(|| fixes::finding(&facts, verdict, cx));
    let finding = finding.map(|mut f| {
        if input.source == PortSource::Exposed {
            f.severity = Severity::Info;
        }
        f
    });
    let listeners = input
        .listeners
        .iter()
        .map(|l| ServiceListener { bind: l.bind, pid: l.pid, program: l.program.clone(), v6only: l.v6only })
        .collect();
    let report = ServiceReport {
        port: input.port.port,
        source: input.source,
        proto: input.port.proto,
        listeners,
        docker: input.docker.clone(),
        unpublished: input.unpublished.clone(),
        probes,
        firewall,
        verdict,
    };
    (report, finding)
}

/// Where the peer reaches this machine over `proto` (the path picture: a wildcard test
/// listener answered at an address of the family), for fixes in the right terms. With no
/// answer at all, the families the plan targeted.
fn fix_context(path: &[ProbeReport], proto: Proto, dialled: Option<IpAddr>, wsl2: bool) -> FixContext {
    let reached = |v4: bool| path.iter().any(|p| p.target.is_ipv4() == v4 && path_open(path, proto, p.target.ip()));
    let (v4, v6) = (reached(true), reached(false));
    if v4 || v6 {
        return FixContext { dialled, v4, v6, wsl2, peer_network: None };
    }
    let targeted = |v4: bool| path.iter().any(|p| p.target.is_ipv4() == v4);
    FixContext { dialled, v4: targeted(true) || !targeted(false), v6: targeted(false), wsl2, peer_network: None }
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
