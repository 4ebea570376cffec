//! Diagnosis: pure rules from a report's facts (listeners, probe outcomes, addresses)
//! to findings with causes and fixes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::facts::PortSource;
use crate::firewall::{FirewallCheck, FirewallOutcome};
use crate::fixes::{firewall_fix, keeping_out, kept_out_words, rule_words};
use crate::report::{Finding, FindingCode, Mode, ProbeReport, Report, Severity, Verdict};
use crate::vocab::{EACCES, EHOSTUNREACH, Outcome, Proto};

fn finding(code: FindingCode, severity: Severity, message: String, fix: impl Into<String>) -> Finding {
    Finding { code, severity, message, fix: fix.into() }
}

fn list(ips: &[IpAddr]) -> String {
    ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(", ")
}

/// Every finding for `r`, most severe first.
pub fn diagnose(r: &Report) -> Vec<Finding> {
    let mut out = Vec::new();
    for proto in [Proto::Tcp, Proto::Udp] {
        wildcard_findings(r, proto, &mut out);
    }
    other_network_findings(r, &mut out);
    loopback_findings(r, &mut out);
    specific_findings(r, &mut out);
    family_findings(r, &mut out);
    path_findings(r, &mut out);
    firewall_findings(r, &mut out);
    if r.probes.is_empty() {
        out.push(finding(
            FindingCode::NoLanAddress,
            Severity::Warning,
            "This machine has no address another device could dial (only loopback): it is not connected to a \
             network, so nothing outside it can reach its services."
                .into(),
            "connect it to the network (Wi-Fi or Ethernet) and run the check again",
        ));
    }
    if r.mode == Mode::Local {
        let read = r.services.iter().flat_map(|s| &s.firewall).any(|c| c.outcome != FirewallOutcome::NotEvaluated);
        let instead =
            if read { " by these probes (for the checked ports, the firewall's rules were read instead)" } else { "" };
        out.push(finding(
            FindingCode::LocalModeLimits,
            Severity::Info,
            format!(
                "This is a single-machine self-check: connections to this machine's own addresses travel over the \
                 loopback interface, so firewall rules that match an interface (iifname \"eth0\", iifname != \"lo\") \
                 were not exercised{instead}, and nothing on the path (Wi-Fi client isolation, router filters, VPN \
                 routes) was tested."
            ),
            "run `lanreach-peer` on another device of the network for a real LAN test",
        ));
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}

/// What the firewall's configuration says about the user's ports, where the port's own
/// finding does not say it already: a rule that keeps other hosts out (while the verdict
/// blames something else, e.g. the bind); in `--local`, that it lets them in; and where
/// it could not be evaluated, why, once per reason.
fn firewall_findings(r: &Report, out: &mut Vec<Finding>) {
    let mut not_evaluated: Vec<(String, Vec<String>)> = Vec::new();
    for s in &r.services {
        let port = s.port;
        let upper = s.proto.to_string().to_uppercase();
        let severity = if s.source == PortSource::Exposed { Severity::Info } else { Severity::Error };
        let keeping = keeping_out(r.mode, &s.firewall, &s.probes);
        let named = matches!(s.verdict, Verdict::FirewallDrop | Verdict::FirewallReject | Verdict::Partial);
        if !keeping.is_empty() && !named {
            let (what, fix) = kept_out_words(&keeping, s.proto, port);
            let code = if keeping.iter().any(|c| c.outcome == FirewallOutcome::Dropped) {
                FindingCode::FirewallRuleDrops
            } else {
                FindingCode::FirewallRuleRejects
            };
            out.push(finding(code, severity, format!("Port {}: this machine's firewall also {what}.", s.label()), fix));
        }
        let accepted: Vec<&FirewallCheck> =
            s.firewall.iter().filter(|c| c.outcome == FirewallOutcome::Accepted).collect();
        if r.mode == Mode::Local
            && s.source == PortSource::Check
            && !accepted.is_empty()
            && accepted.len() == s.firewall.len()
        {
            let mut rules: Vec<String> = Vec::new();
            for w in accepted.iter().filter_map(|c| c.rule.as_ref()).map(rule_words) {
                if !rules.contains(&w) {
                    rules.push(w);
                }
            }
            let by =
                if rules.is_empty() { " (no rule stops it)".to_owned() } else { format!(": {}", rules.join("; ")) };
            let at: Vec<String> = accepted.iter().map(|c| c.target.ip().to_string()).collect();
            out.push(finding(
                FindingCode::FirewallAccepts,
                Severity::Info,
                format!(
                    "Port {}: this machine's firewall, as configured now, lets {upper} from other hosts in at {}{by}.",
                    s.label(),
                    at.join(", ")
                ),
                "",
            ));
        }
        // With a peer, its probes are the evidence: a port it reached needs no word.
        if r.mode.from_outside() && s.verdict == Verdict::Reachable {
            continue;
        }
        for c in s.firewall.iter().filter(|c| c.outcome == FirewallOutcome::NotEvaluated) {
            let why = c.reason.clone().unwrap_or_default();
            let label = format!("{} at {}", s.label(), c.target.ip());
            match not_evaluated.iter_mut().find(|(w, _)| *w == why) {
                Some((_, ports)) => ports.push(label),
                None => not_evaluated.push((why, vec![label])),
            }
        }
    }
    for (why, ports) in not_evaluated {
        let permission = ["not permitted", "ermission denied", "root"].iter().any(|w| why.contains(w));
        out.push(finding(
            FindingCode::FirewallNotEvaluated,
            Severity::Info,
            format!(
                "This machine's firewall could not be evaluated for port {}: {why}. Whether it lets other hosts in is not known.",
                ports.join(", ")
            ),
            if permission {
                "run the agent as root (sudo) or with CAP_NET_ADMIN so it can read the firewall's rules"
            } else {
                ""
            },
        ));
    }
}

/// A wildcard listener dialled at an address of its own family: what the path and the
/// firewall do with traffic to that address.
fn is_wildcard(p: &ProbeReport) -> bool {
    p.bind.ip().is_unspecified() && p.bind.is_ipv4() == p.target.is_ipv4()
}

/// A wildcard listener dialled at an address of the other family.
fn is_cross_family(p: &ProbeReport) -> bool {
    p.bind.ip().is_unspecified() && p.bind.is_ipv4() != p.target.is_ipv4()
}

/// A wildcard probe that met silence or "no route" at an address on a network the peer is
/// not on (a second NIC, a container link, a VPN): the way there is missing, which is no
/// problem to fix (DESIGN §5), so it is information, not a firewall or routing error.
fn elsewhere(r: &Report, p: &ProbeReport) -> bool {
    matches!(p.outcome, Outcome::Timeout | Outcome::Unreachable) && !r.on_peer_network(p.target.ip())
}

/// Wildcard listeners listen on every address, so their outcome at a target says what
/// the path and the firewall do with traffic to that address.
fn wildcard_findings(r: &Report, proto: Proto, out: &mut Vec<Finding>) {
    let mut by_outcome: BTreeMap<&'static str, Vec<IpAddr>> = BTreeMap::new();
    for p in r.probes.iter().filter(|p| p.proto == proto && is_wildcard(p) && !elsewhere(r, p)) {
        let key = match (p.outcome, p.errno) {
            // Silence the run ended before re-probing quietly: a rate-limited ICMP error
            // may explain it, so it is no drop.
            (Outcome::Timeout, _) if !p.proven => continue,
            // A failed neighbour lookup takes about 3 s; an ICMP error comes at once, or
            // with the SYN retransmission a second later.
            (Outcome::Unreachable, Some(EHOSTUNREACH)) if p.rtt_ms.is_some_and(|ms| ms < 2000.0) => "prohibited",
            (Outcome::Unreachable, Some(EACCES)) if p.target.is_ipv6() => "prohibited",
            (o, _) => o.as_str(),
        };
        let ips = by_outcome.entry(key).or_default();
        if !ips.contains(&p.target.ip()) {
            ips.push(p.target.ip());
        }
    }
    let upper = proto.to_string().to_uppercase();
    let from = match r.mode {
        Mode::Peer => "from the peer",
        Mode::Browser => "from the browser",
        Mode::Local => "from this machine",
    };
    if let Some(ips) = by_outcome.get("open") {
        out.push(finding(
            FindingCode::lan_reachable(proto),
            Severity::Info,
            format!("{upper} servers bound to every address (0.0.0.0 or ::) are reachable {from} at {}.", list(ips)),
            "",
        ));
    }
    if let Some(ips) = by_outcome.get("timeout") {
        out.push(finding(
            FindingCode::firewall_drops(proto),
            Severity::Error,
            format!(
                "{upper} to {} timed out {from}, although the test listeners there accept connections on every \
                 address: a firewall on this machine (or a filter on the path) silently drops incoming {upper}.",
                list(ips)
            ),
            firewall_fix(proto, None),
        ));
    }
    if let Some(ips) = by_outcome.get("refused") {
        out.push(finding(
            FindingCode::firewall_rejects(proto),
            Severity::Error,
            format!(
                "{upper} to {} was refused {from}, although a test listener listens on every address there: a \
                 firewall REJECT rule answers in its place.",
                list(ips)
            ),
            firewall_fix(proto, None),
        ));
    }
    if let Some(ips) = by_outcome.get("prohibited") {
        out.push(finding(
            FindingCode::firewall_prohibits(proto),
            Severity::Error,
            format!(
                "{upper} to {} failed with \"no route to host\" (IPv6: \"permission denied\") although the address \
                 answers other traffic: a firewall rejects it with ICMP admin-prohibited (firewalld's default).",
                list(ips)
            ),
            firewall_fix(proto, None),
        ));
    }
    if let Some(ips) = by_outcome.get("unreachable") {
        out.push(finding(
            FindingCode::AddressUnreachable,
            Severity::Error,
            format!("{upper} to {} failed with \"no route\" or \"host unreachable\" {from}.", list(ips)),
            "check that both devices are on the same network and that no VPN captures the route",
        ));
    }
    for odd in ["foreign", "empty_reply", "reset"] {
        if let Some(ips) = by_outcome.get(odd) {
            out.push(finding(
                FindingCode::interception(proto),
                Severity::Warning,
                format!(
                    "{upper} to {} reached something other than lanreach's listener ({}): a proxy, port forward or \
                     another program answers in between.",
                    list(ips),
                    odd.replace('_', " ")
                ),
                "look for port forwards (Docker, VPN clients, iptables DNAT) on this machine or the path",
            ));
        }
    }
}

/// Addresses on networks the peer is not on, whose test listeners did not answer.
fn other_network_findings(r: &Report, out: &mut Vec<Finding>) {
    let mut ips: Vec<IpAddr> = Vec::new();
    for p in r.probes.iter().filter(|p| is_wildcard(p) && elsewhere(r, p)) {
        if !ips.contains(&p.target.ip()) {
            ips.push(p.target.ip());
        }
    }
    if ips.is_empty() {
        return;
    }
    let named: Vec<String> = ips
        .iter()
        .map(|ip| match r.agent.addresses.iter().find(|a| a.ip == *ip) {
            Some(a) => format!("{ip} ({})", a.interface),
            None => ip.to_string(),
        })
        .collect();
    out.push(finding(
        FindingCode::OtherNetwork,
        Severity::Info,
        format!(
            "{} {} on a network the peer is not on (another interface, a container link or a VPN): the peer has \
             no way there, so its probes met silence or \"no route\". Devices on that network may still reach it.",
            named.join(", "),
            if ips.len() == 1 { "is" } else { "are" }
        ),
        "",
    ));
}

fn loopback_findings(r: &Report, out: &mut Vec<Finding>) {
    if !r.mode.from_outside() {
        return;
    }
    // Judged on TCP, which probes every loopback cell; UDP refusals alone would also
    // show up while a firewall drops TCP.
    let refused =
        r.probes.iter().any(|p| p.proto == Proto::Tcp && p.bind.ip().is_loopback() && p.outcome.refused_like());
    if refused {
        let met = if r.mode == Mode::Browser {
            "The browser's requests to listeners bound to 127.0.0.1 and ::1 failed"
        } else {
            "Listeners bound to 127.0.0.1 and ::1 were refused from the peer"
        };
        out.push(finding(
            FindingCode::LoopbackOnly,
            Severity::Info,
            format!(
                "{met}, as expected: a server bound to a loopback address (or \"localhost\") is reachable from this \
                 machine only."
            ),
            "bind your server to 0.0.0.0 (every IPv4 address) or :: instead of 127.0.0.1/localhost",
        ));
    }
}

/// A listener bound to one address is reachable at that address and refused elsewhere.
fn specific_findings(r: &Report, out: &mut Vec<Finding>) {
    let specific = |p: &&ProbeReport| !p.bind.ip().is_unspecified() && !p.bind.ip().is_loopback();
    let own_open = r.probes.iter().filter(specific).any(|p| p.target.ip() == p.bind.ip() && p.outcome == Outcome::Open);
    let elsewhere_refused =
        r.probes.iter().filter(specific).any(|p| p.target.ip() != p.bind.ip() && p.outcome.refused_like());
    if own_open && elsewhere_refused {
        out.push(finding(
            FindingCode::AddressSpecificBind,
            Severity::Info,
            "A server bound to one address of this machine is reachable at that address only; dialled at the \
             machine's other addresses it is refused."
                .into(),
            "bind to 0.0.0.0 or :: to be reachable at every address",
        ));
    }
}

fn family_findings(r: &Report, out: &mut Vec<Finding>) {
    let open =
        |v4: bool| r.probes.iter().any(|p| is_wildcard(p) && p.target.is_ipv4() == v4 && p.outcome == Outcome::Open);
    let separate = r.probes.iter().any(|p| is_cross_family(p) && p.outcome.refused_like())
        && r.probes.iter().any(|p| is_wildcard(p) && p.outcome == Outcome::Open);
    if separate {
        out.push(finding(
            FindingCode::Ipv4Ipv6Separate,
            Severity::Info,
            "A server bound to 0.0.0.0 answers IPv4 only, and one bound to :: with IPV6_V6ONLY answers IPv6 only: \
             dialled over the other family they were refused. Names that resolve to both families make clients \
             try one and maybe not the other."
                .into(),
            "listen on both 0.0.0.0 and :: (or on a dual-stack :: socket) to serve IPv4 and IPv6 clients",
        ));
    }
    let tried_v6 = r.probes.iter().any(|p| p.target.is_ipv6() && r.on_peer_network(p.target.ip()));
    if !tried_v6 {
        out.push(finding(
            FindingCode::Ipv4OnlyTested,
            Severity::Info,
            match r.mode {
                Mode::Peer => "The agent has no IPv6 address the peer could use, so only IPv4 was tested.",
                Mode::Browser => "The browser reached no IPv6 address of the agent, so only IPv4 was tested.",
                Mode::Local => "This machine has no IPv6 address another device could use, so only IPv4 was tested.",
            }
            .into(),
            "",
        ));
    } else if open(true) && !open(false) && r.mode == Mode::Browser {
        // A page's request to an IPv6 address also fails when the phone has no IPv6, or
        // when the browser's Local Network Access rules refuse it: the browser cannot tell.
        out.push(finding(
            FindingCode::Ipv6Unreachable,
            Severity::Info,
            "The browser reached the agent over IPv4 but none of its IPv6 addresses: the device may have no IPv6, its \
             browser may refuse the address (Chrome's Local Network Access keeps a page from a public address away \
             from local ones), or a firewall drops IPv6. lanreach-peer on another computer tells these apart."
                .into(),
            "",
        ));
    } else if open(true) && !open(false) {
        out.push(finding(
            FindingCode::Ipv6Unreachable,
            Severity::Warning,
            "IPv4 works but no IPv6 test listener was reachable: an IPv6 firewall, or IPv6 not routed between the \
             devices. Clients that prefer IPv6 (names resolving to AAAA records) may fail or be slow."
                .into(),
            "open the same ports in the IPv6 firewall (ip6 or inet family in nftables), or connect by IPv4 address",
        ));
    }
}

fn path_findings(r: &Report, out: &mut Vec<Finding>) {
    if r.mode != Mode::Peer || r.peer.addresses.is_empty() {
        return;
    }
    let own = |ip: &IpAddr| r.peer.addresses.iter().any(|a| a.to_canonical() == ip.to_canonical());
    let mut foreign: Vec<IpAddr> = r.peer.probe_sources.iter().copied().filter(|ip| !own(ip)).collect();
    if let Some(seen) = r.peer.seen_from
        && !own(&seen.ip())
        && !foreign.contains(&seen.ip())
    {
        foreign.insert(0, seen.ip());
    }
    if !foreign.is_empty() {
        out.push(finding(
            FindingCode::NatBetween,
            Severity::Warning,
            format!(
                "The agent saw the peer's traffic come from {}, which is not one of the peer's own addresses: NAT or \
                 a proxy sits between the devices (a router between subnets, a VPN, a container network).",
                list(&foreign)
            ),
            "servers that filter by client address see the translated address, not the device's",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{AddressInfo, AgentInfo, PeerInfo};

    fn report(mode: Mode, probes: &[(Proto, &str, &str, Outcome)]) -> Report {
        Report {
            schema: crate::report::SCHEMA.into(),
            mode,
            agent: AgentInfo {
                name: "a".into(),
                id: "X".into(),
                addresses: [("198.51.100.1", 24), ("2001:db8::1", 64), ("203.0.113.1", 24)]
                    .iter()
                    .map(|(ip, prefix)| AddressInfo {
                        ip: ip.parse().expect("ip"),
                        interface: if ip.starts_with("203.") { "eth1" } else { "eth0" }.into(),
                        kind: crate::addr::InterfaceKind::Lan,
                        prefix: Some(*prefix),
                    })
                    .collect(),
            },
            peer: PeerInfo {
                name: "p".into(),
                id: "Y".into(),
                seen_from: Some("198.51.100.2:5000".parse().expect("addr")),
                dialled: Some("198.51.100.1".parse().expect("ip")),
                arrival_interface: None,
                addresses: vec!["198.51.100.2".parse().expect("ip")],
                probe_sources: vec![],
            },
            listeners: vec![],
            services: vec![],
            probes: probes
                .iter()
                .map(|(proto, bind, target, outcome)| ProbeReport {
                    proto: *proto,
                    bind: bind.parse().expect("bind"),
                    target: target.parse().expect("target"),
                    outcome: *outcome,
                    rtt_ms: (*outcome != Outcome::Timeout).then_some(0.3),
                    errno: None,
                    attempts: if *outcome == Outcome::Timeout { 2 } else { 1 },
                    proven: *outcome == Outcome::Timeout,
                    seen_by_listener: *outcome == Outcome::Open,
                })
                .collect(),
            findings: vec![],
        }
    }

    fn codes(r: &Report) -> Vec<String> {
        diagnose(r).into_iter().map(|f| f.code.to_string()).collect()
    }

    use Outcome::*;
    use Proto::*;

    #[test]
    fn wildcard_timeouts_are_a_firewall_drop() {
        let r = report(
            Mode::Peer,
            &[
                (Tcp, "0.0.0.0:4000", "198.51.100.1:4000", Timeout),
                (Udp, "0.0.0.0:4000", "198.51.100.1:4000", Open),
                (Tcp, "127.0.0.1:4001", "198.51.100.1:4001", Timeout),
            ],
        );
        let c = codes(&r);
        assert_eq!(c[0], "firewall_drops_tcp", "errors first: {c:?}");
        assert!(c.contains(&"lan_reachable_udp".to_owned()));
        let f = diagnose(&r).remove(0);
        assert!(f.fix.contains("nft") && f.fix.contains("ufw") && f.fix.contains("firewall-cmd"), "{}", f.fix);
    }

    #[test]
    fn refusals_and_admin_prohibited_where_a_wildcard_listens() {
        let mut r = report(
            Mode::Peer,
            &[
                (Tcp, "0.0.0.0:4000", "198.51.100.1:4000", Refused),
                (Udp, "0.0.0.0:4000", "198.51.100.1:4000", Unreachable),
            ],
        );
        r.probes[1].errno = Some(EHOSTUNREACH);
        let c = codes(&r);
        assert!(
            c.contains(&"firewall_rejects_tcp".to_owned()) && c.contains(&"firewall_prohibits_udp".to_owned()),
            "{c:?}"
        );
    }

    #[test]
    fn loopback_rows_refused_from_the_peer_explain_bind_addresses() {
        let r = report(
            Mode::Peer,
            &[(Tcp, "127.0.0.1:4000", "198.51.100.1:4000", Refused), (Tcp, "0.0.0.0:4001", "198.51.100.1:4001", Open)],
        );
        let c = codes(&r);
        assert!(c.contains(&"loopback_only".to_owned()) && c.contains(&"lan_reachable_tcp".to_owned()), "{c:?}");
        assert!(!c.iter().any(|c| c.contains("firewall")), "{c:?}");
    }

    #[test]
    fn cross_family_refusals_are_not_a_firewall() {
        let r = report(
            Mode::Peer,
            &[
                (Tcp, "0.0.0.0:4000", "198.51.100.1:4000", Open),
                (Tcp, "0.0.0.0:4000", "[2001:db8::1]:4000", Refused),
                (Tcp, "[::]:4001", "[2001:db8::1]:4001", Open),
                (Tcp, "[::]:4001", "198.51.100.1:4001", Refused),
            ],
        );
        let c = codes(&r);
        assert!(c.contains(&"ipv4_ipv6_separate".to_owned()), "{c:?}");
        assert!(!c.iter().any(|c| c.contains("firewall")), "{c:?}");
    }

    #[test]
    fn ipv6_blocked_while_ipv4_works() {
        let r = report(
            Mode::Peer,
            &[(Tcp, "0.0.0.0:4000", "198.51.100.1:4000", Open), (Tcp, "[::]:4001", "[2001:db8::1]:4001", Timeout)],
        );
        let c = codes(&r);
        assert!(c.contains(&"ipv6_unreachable".to_owned()) && c.contains(&"firewall_drops_tcp".to_owned()), "{c:?}");
    }

    /// A second NIC, container link or VPN the peer has no way to: information, not a
    /// problem, while the same failure on the peer's own network stays an error.
    #[test]
    fn failures_at_another_network_are_information() {
        let mut r = report(
            Mode::Peer,
            &[
                (Tcp, "0.0.0.0:4000", "198.51.100.1:4000", Open),
                (Tcp, "0.0.0.0:4000", "203.0.113.1:4000", Unreachable),
                (Udp, "0.0.0.0:4000", "203.0.113.1:4000", Timeout),
            ],
        );
        let found = diagnose(&r);
        assert!(found.iter().all(|f| f.severity != Severity::Error), "{found:?}");
        let other = found.iter().find(|f| f.code == "other_network").expect("other_network");
        assert!(other.message.contains("203.0.113.1 (eth1) is on a network the peer is not on"), "{}", other.message);
        // The peer declares an address in 203.0.113.0/24: its own network, a real error.
        r.peer.addresses.push("203.0.113.7".parse().expect("ip"));
        let c = codes(&r);
        assert!(c.contains(&"address_unreachable".to_owned()) && c.contains(&"firewall_drops_udp".to_owned()), "{c:?}");
        assert!(!c.contains(&"other_network".to_owned()), "{c:?}");
    }

    #[test]
    fn a_foreign_source_address_means_nat() {
        let mut r = report(Mode::Peer, &[(Tcp, "0.0.0.0:4000", "198.51.100.1:4000", Open)]);
        r.peer.seen_from = Some("203.0.113.7:6000".parse().expect("addr"));
        let f = diagnose(&r).into_iter().find(|f| f.code == "nat_between").expect("nat finding");
        assert!(f.message.contains("203.0.113.7"));
    }

    #[test]
    fn local_mode_says_what_it_cannot_see() {
        let r = report(Mode::Local, &[(Tcp, "0.0.0.0:4000", "198.51.100.1:4000", Open)]);
        let f = diagnose(&r).into_iter().find(|f| f.code == "local_mode_limits").expect("limits");
        assert!(f.message.contains("iifname") && f.message.contains("isolation"));
        let empty = report(Mode::Local, &[]);
        assert!(codes(&empty).contains(&"no_lan_address".to_owned()));
    }

    /// Issue 10 item 5: silence the run could not re-probe quietly is no drop, and an
    /// ICMPv6 admin-prohibited error (EACCES, even after the SYN retransmission) is a
    /// firewall's rejection, not "no route".
    #[test]
    fn only_proven_silence_is_a_drop_and_icmpv6_prohibited_is_a_reject() {
        let mut r = report(
            Mode::Peer,
            &[(Tcp, "0.0.0.0:1", "198.51.100.1:1", Timeout), (Tcp, "[::]:2", "[2001:db8::1]:2", Unreachable)],
        );
        r.peer.addresses.push("2001:db8::2".parse().expect("ip"));
        r.probes[0].attempts = 1;
        r.probes[0].proven = false;
        r.probes[1].errno = Some(EACCES);
        r.probes[1].rtt_ms = Some(1000.4);
        let codes = codes(&r);
        assert!(!codes.contains(&"firewall_drops_tcp".to_owned()), "{codes:?}");
        assert!(codes.contains(&"firewall_prohibits_tcp".to_owned()), "{codes:?}");
        assert!(!codes.contains(&"address_unreachable".to_owned()), "{codes:?}");
    }
}
