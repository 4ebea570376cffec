//! The verdict rules for one of the user's ports: pure functions that join the inside
//! facts, the outside probes of the port and the test listeners' picture of the path.

use std::net::{IpAddr, SocketAddr};

use crate::facts::{CheckedPort, Conntrack, DockerPublish, SocketFact, UnpublishedContainer};
use crate::firewall::{FirewallCheck, FirewallOutcome};
use crate::report::{Mode, ProbeReport, ServiceProbeReport, Verdict};
use crate::vocab::{ListenerHit, Outcome, Proto};

/// Everything the verdict for one port is made from.
#[derive(Debug, Clone)]
pub struct ServiceFacts<'a> {
    /// Who probed: a peer on another device, or this machine itself (`--local`), whose
    /// probes travel over `lo` and never show what other devices meet.
    pub mode: Mode,
    /// The port.
    pub port: CheckedPort,
    /// Listening sockets on it.
    pub listeners: &'a [SocketFact],
    /// Docker publications of it.
    pub docker: &'a [DockerPublish],
    /// Containers listening on it inside their own network namespace, unpublished.
    pub unpublished: &'a [UnpublishedContainer],
    /// Outside probes of it.
    pub probes: &'a [ServiceProbeReport],
    /// The test-listener probes (the path picture).
    pub path: &'a [ProbeReport],
    /// The status this machine gets with `Host: localhost` (see [`crate::facts::ServiceInput`]).
    pub local_http_status: Option<u16>,
    /// What the firewall's configuration does with a packet from another host to each
    /// probed address (empty when not read).
    pub firewall: &'a [FirewallCheck],
    /// Why the inside view could not tell whether the port's UDP datagrams arrived,
    /// when it could not (for the `unconfirmed` message).
    pub blind: Option<Blind>,
}

/// Whether the inside view saw one UDP probe's datagrams arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The connection-tracking table holds them: they passed this machine's firewall.
    Seen,
    /// The table tracks the peer's UDP of this family (its knocks are there), but not
    /// these datagrams: a firewall rule stopped them.
    NotSeen,
    /// No inside view.
    Unknown(Blind),
}

impl Delivery {
    /// The report's `delivered` field.
    pub fn as_field(&self) -> Option<bool> {
        match self {
            Delivery::Seen => Some(true),
            Delivery::NotSeen => Some(false),
            Delivery::Unknown(_) => None,
        }
    }
}

/// Why the inside view cannot tell whether UDP datagrams arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blind {
    /// The table could not be read (why, in words).
    Unreadable(String),
    /// None of the peer's knocks that reached a UDP test listener of the family is in
    /// the table: connection tracking is off in this network namespace (no firewall rule
    /// uses it).
    NotTracking,
    /// No knock of the family reached a UDP test listener (nothing to compare with), or
    /// the table was not read.
    NoReference,
}

/// Whether the datagrams of a UDP probe of `target`, sent from `source_ports`, show in
/// the connection-tracking table. `hits` are the peer's probes the test listeners
/// received: their UDP flows surely passed the firewall, so the table either holds one of
/// them (it tracks the family) or tracks nothing. The peer's datagrams are found by their
/// source: an address the peer declared or the listeners saw it come from (behind NAT,
/// where the source port may be rewritten, the address alone), and one of the probe's
/// source ports.
pub fn delivery(
    conntrack: &Conntrack,
    hits: &[ListenerHit],
    peer: &[IpAddr],
    target: SocketAddr,
    source_ports: &[u16],
) -> Delivery {
    let flows = match conntrack {
        Conntrack::Flows(flows) => flows,
        Conntrack::Unreadable(why) => return Delivery::Unknown(Blind::Unreadable(why.clone())),
        Conntrack::NotRead => return Delivery::Unknown(Blind::NoReference),
    };
    let canon = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let v4 = target.ip().to_canonical().is_ipv4();
    let knocks: Vec<&ListenerHit> =
        hits.iter().filter(|h| h.proto == Proto::Udp && h.local.ip().to_canonical().is_ipv4() == v4).collect();
    if knocks.is_empty() {
        return Delivery::Unknown(Blind::NoReference);
    }
    let tracked =
        knocks.iter().any(|h| flows.iter().any(|f| canon(f.src) == canon(h.source) && canon(f.dst) == canon(h.local)));
    if !tracked {
        return Delivery::Unknown(Blind::NotTracking);
    }
    let own: Vec<IpAddr> = peer.iter().map(|ip| ip.to_canonical()).collect();
    let seen_from: Vec<IpAddr> = knocks.iter().map(|h| h.source.ip().to_canonical()).collect();
    let from_peer = |f: &SocketAddr| {
        let ip = f.ip().to_canonical();
        let natted = seen_from.contains(&ip) && !own.contains(&ip);
        (own.contains(&ip) || seen_from.contains(&ip))
            && (natted || source_ports.is_empty() || source_ports.contains(&f.port()))
    };
    if flows.iter().any(|f| canon(f.dst) == canon(target) && from_peer(&f.src)) {
        Delivery::Seen
    } else {
        Delivery::NotSeen
    }
}

fn http_rejects(status: Option<u16>) -> bool {
    matches!(status, Some(400 | 403 | 421))
}

/// Whether traffic of `proto` reached this host at `ip`: a wildcard test listener of
/// that family answered there. These are the addresses the peer can reach, where a
/// `reachable` port must answer.
pub fn path_open(path: &[ProbeReport], proto: Proto, ip: IpAddr) -> bool {
    path.iter().any(|p| {
        p.proto == proto
            && p.bind.ip().is_unspecified()
            && p.bind.is_ipv4() == ip.is_ipv4()
            && p.target.ip() == ip
            && p.outcome == Outcome::Open
    })
}

/// Whether something takes the port's traffic to `ip` here: a socket whose bind accepts
/// it, or a Docker publication on every address of the family.
fn listens_at(f: &ServiceFacts<'_>, ip: IpAddr) -> bool {
    f.listeners.iter().any(|l| l.accepts(ip))
        || f.docker.iter().any(|d| {
            d.proto == f.port.proto && d.host_ip.is_unspecified() && d.host_ip.is_ipv4() == ip.to_canonical().is_ipv4()
        })
}

/// Whether an outside probe reached the port: it was answered, or (UDP) it met silence
/// while the inside view saw its datagrams pass the firewall to an address where a
/// socket listens. The only two kinds of evidence: silence alone never is.
pub fn reached(f: &ServiceFacts<'_>, p: &ServiceProbeReport) -> bool {
    p.outcome == Outcome::Open
        || (f.port.proto == Proto::Udp
            && p.outcome == Outcome::Timeout
            && p.delivered == Some(true)
            && listens_at(f, p.target.ip()))
}

/// Whether a silent probe proves a drop: its silence is proven (the quiet re-probe met
/// silence too, or this host sent and suppressed no ICMP error meanwhile), so no
/// rate-limited ICMP error explains it (for UDP, only where no socket listens: a UDP
/// server may answer nothing), or the inside view saw the peer's other UDP but not
/// these datagrams.
fn proven_drop(f: &ServiceFacts<'_>, p: &ServiceProbeReport) -> bool {
    if p.outcome != Outcome::Timeout {
        return false;
    }
    match f.port.proto {
        Proto::Tcp => p.proven,
        Proto::Udp => {
            p.delivered == Some(false) || (p.delivered.is_none() && p.proven && !listens_at(f, p.target.ip()))
        }
    }
}

/// The port's outside probes that did not reach it ([`reached`]) at an address the peer
/// can reach ([`path_open`]): where a port that answers elsewhere is only partly reachable.
/// In `--local`, also those answered here at an address whose firewall keeps other hosts
/// out ([`kept_out`]).
pub fn missed_probes<'a>(f: &ServiceFacts<'a>) -> Vec<&'a ServiceProbeReport> {
    f.probes
        .iter()
        .filter(|p| {
            (!reached(f, p) && path_open(f.path, f.port.proto, p.target.ip()))
                || (reached(f, p) && kept_out(f, p.target.ip()).is_some())
        })
        .collect()
}

/// In `--local`, the firewall check that keeps other hosts out at `ip`, where the
/// configuration says so: the self-check's own probes travel over `lo` and never meet
/// it (DESIGN §4), so this is what the LAN meets there. None with a peer, whose probes
/// are the evidence.
pub fn kept_out<'a>(f: &ServiceFacts<'a>, ip: IpAddr) -> Option<&'a FirewallCheck> {
    if f.mode != Mode::Local {
        return None;
    }
    f.firewall.iter().find(|c| c.target.ip() == ip && c.blocks())
}

/// Whether the firewall's configuration keeps other hosts out of the port at `ip`.
fn blocks_at(f: &ServiceFacts<'_>, ip: IpAddr) -> bool {
    f.firewall.iter().any(|c| c.target.ip() == ip && c.blocks())
}

/// `firewall_drop` or `firewall_reject` for the checks that keep other hosts out.
fn blocked_verdict(checks: &[&FirewallCheck]) -> Verdict {
    if checks.iter().any(|c| c.outcome == FirewallOutcome::Dropped) {
        Verdict::FirewallDrop
    } else {
        Verdict::FirewallReject
    }
}

/// The verdict for one port: what the probes and inside facts give, where `--local` says
/// `reachable_locally` for what a peer would call `reachable` (DESIGN §5: the self-check
/// never claims what other devices see).
pub fn verdict(f: &ServiceFacts<'_>) -> Verdict {
    match (f.mode, probe_verdict(f)) {
        (Mode::Local, Verdict::Reachable) => Verdict::ReachableLocally,
        (_, v) => v,
    }
}

/// The verdict the probes and the inside facts give, in a peer's terms.
///
/// `reachable` means reached ([`reached`]: answered, or for UDP seen delivered to a
/// listening socket) at every address the peer can reach ([`path_open`]); reached at
/// some and not at others is `partial`. Outside evidence from the LAN wins (an answer at
/// a non-loopback address is reachable whatever the inside facts say: something may
/// forward the port unseen). Without it, inside facts about bind scope decide, since a
/// peer on this machine (loopback) or the `--local` self-check cannot show what the LAN
/// sees. Then the path picture of the test listeners tells the network and the firewall
/// apart, and silence is named a drop only when it is proven (the quiet re-probe met it
/// too, or the inside view saw the datagrams stopped); silence
/// nothing explains is `unconfirmed`, never `reachable`.
fn probe_verdict(f: &ServiceFacts<'_>) -> Verdict {
    let proto = f.port.proto;
    let open_at = |lan: bool| -> Vec<&ServiceProbeReport> {
        f.probes.iter().filter(|p| reached(f, p) && p.target.ip().is_loopback() != lan).collect()
    };
    // A Host check refuses the peer's request but answers the same request for localhost;
    // a page that refuses everyone (auth, no index) is reachable all the same.
    let local_ok = f.local_http_status.is_some_and(|s| s < 400);
    let answer = |open: &[&ServiceProbeReport]| {
        if local_ok && open.iter().all(|p| http_rejects(p.http_status)) {
            Verdict::HttpHostCheck
        } else if missed_probes(f).is_empty() {
            Verdict::Reachable
        } else {
            Verdict::Partial
        }
    };
    let open_lan = open_at(true);
    if !open_lan.is_empty() {
        // `--local`: answered here, yet the configuration keeps other hosts out at every
        // such address.
        let kept: Vec<&FirewallCheck> = open_lan.iter().filter_map(|p| kept_out(f, p.target.ip())).collect();
        if kept.len() == open_lan.len() {
            return blocked_verdict(&kept);
        }
        return answer(&open_lan);
    }
    if f.probes.iter().any(|p| matches!(p.outcome, Outcome::EmptyReply | Outcome::Reset)) {
        let inner_loopback = f.docker.iter().any(|d| {
            d.inner_listeners.as_ref().is_some_and(|inner| {
                let on_port: Vec<_> = inner.iter().filter(|a| a.port() == d.container_port).collect();
                !on_port.is_empty() && on_port.iter().all(|a| a.ip().is_loopback())
            })
        });
        return if inner_loopback { Verdict::ContainerLoopback } else { Verdict::ProxyNoBackend };
    }
    let published: Vec<&DockerPublish> = f.docker.iter().filter(|d| d.proto == proto).collect();
    if !published.is_empty() && published.iter().all(|d| d.host_ip.is_loopback()) {
        return Verdict::PublishedLoopback;
    }
    // Docker's DNAT path (no userland proxy in the way) refuses when the app inside does
    // not listen where the forwarding goes: the inside facts say which.
    for d in published.iter().filter(|d| !d.host_ip.is_loopback()) {
        if let Some(inner) = &d.inner_listeners {
            let on_port: Vec<_> = inner.iter().filter(|a| a.port() == d.container_port).collect();
            if on_port.is_empty() {
                return Verdict::ProxyNoBackend;
            }
            if on_port.iter().all(|a| a.ip().is_loopback()) {
                return Verdict::ContainerLoopback;
            }
        }
    }
    if f.listeners.is_empty() && published.is_empty() {
        // The app may run in a container, listening in the container's own network
        // namespace: only a publication would bring the port to this machine's addresses.
        return if f.unpublished.iter().any(|c| c.proto == proto) {
            Verdict::ContainerNotPublished
        } else {
            Verdict::NotListening
        };
    }
    if !f.listeners.is_empty() && f.listeners.iter().all(|l| l.bind.ip().is_loopback()) && published.is_empty() {
        return Verdict::LoopbackOnly;
    }
    // What the inside facts cannot settle needs an outside test a browser cannot make.
    if f.mode == Mode::Browser && crate::browser::untestable(f.port).is_some() {
        return Verdict::BrowserUntestable;
    }
    let open_local = open_at(false);
    if !open_local.is_empty() {
        return answer(&open_local);
    }
    let dialled: Vec<IpAddr> = f.probes.iter().map(|p| p.target.ip()).collect();
    let reachable: Vec<IpAddr> = dialled.iter().copied().filter(|ip| path_open(f.path, proto, *ip)).collect();
    if reachable.is_empty() {
        return Verdict::NetworkBlocked;
    }
    let matching: Vec<IpAddr> = reachable.iter().copied().filter(|ip| listens_at(f, *ip)).collect();
    let silent: Vec<&ServiceProbeReport> = f.probes.iter().filter(|p| p.outcome == Outcome::Timeout).collect();
    let silent_at = |ips: &[IpAddr]| -> Vec<&ServiceProbeReport> {
        silent.iter().copied().filter(|p| ips.contains(&p.target.ip())).collect()
    };
    // The bind leaves out these addresses the peer reaches: which family, or which
    // interface, is missing.
    let bind_gap = |ips: &[IpAddr]| {
        let v4 = f.listeners.iter().any(|l| l.bind.is_ipv4() || l.accepts(IpAddr::from([127, 0, 0, 1])));
        let v6 = f.listeners.iter().any(|l| l.bind.is_ipv6());
        let reach_v4 = ips.iter().any(IpAddr::is_ipv4);
        let reach_v6 = ips.iter().any(IpAddr::is_ipv6);
        match (v4, v6, reach_v4, reach_v6) {
            (true, false, false, true) => Verdict::Ipv4Only,
            (false, true, true, false) => Verdict::Ipv6Only,
            _ => Verdict::InterfaceOnly,
        }
    };
    if matching.is_empty() {
        // A wrong bind address is refused; silence where the path is open is a filter,
        // once proven. Datagrams that arrived where nothing listens were refused, the
        // refusal lost to the ICMP rate limit: the bind is what the peer meets.
        let silent = silent_at(&reachable);
        if silent.is_empty() || silent.iter().any(|p| p.delivered == Some(true)) {
            return bind_gap(&reachable);
        }
        return if silent.iter().any(|p| proven_drop(f, p)) { Verdict::FirewallDrop } else { Verdict::Unconfirmed };
    }
    let silent = silent_at(&matching);
    // A browser's request that fails at once where a socket listens is a firewall's
    // rejection only if the service speaks HTTP: this machine's own request says so.
    // (The configuration's rules, where they keep other hosts out, name it either way.)
    let failed = f.probes.iter().any(|p| matching.contains(&p.target.ip()) && p.outcome == Outcome::Failed);
    if failed && f.local_http_status.is_none() && !matching.iter().any(|ip| blocks_at(f, *ip)) {
        return Verdict::BrowserUntestable;
    }
    if silent.is_empty() {
        return Verdict::FirewallReject;
    }
    // A refusal where a socket listens is a firewall's; for UDP it outranks silence (a
    // UDP server may answer nothing), and the bind (refused elsewhere) outranks silence
    // too. Rules read from the firewall's configuration name what keeps others out; else
    // silence is a drop once proven, and silence nothing explains is unconfirmed.
    let rejected = f.probes.iter().any(|p| matching.contains(&p.target.ip()) && p.outcome != Outcome::Timeout);
    let unmatched: Vec<IpAddr> = reachable.iter().copied().filter(|ip| !matching.contains(ip)).collect();
    let kept: Vec<&FirewallCheck> = matching.iter().filter_map(|ip| kept_out(f, *ip)).collect();
    match proto {
        Proto::Udp if rejected => Verdict::FirewallReject,
        Proto::Udp if !unmatched.is_empty() => bind_gap(&unmatched),
        _ if !kept.is_empty() && kept.len() == matching.len() => blocked_verdict(&kept),
        _ if silent.iter().any(|p| proven_drop(f, p)) => Verdict::FirewallDrop,
        _ if rejected => Verdict::FirewallReject,
        _ => Verdict::Unconfirmed,
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    use crate::facts::test_socket as sock;

    fn probe(target: &str, outcome: Outcome, http: Option<u16>) -> ServiceProbeReport {
        ServiceProbeReport {
            target: target.parse().expect("target"),
            outcome,
            rtt_ms: None,
            http_status: http,
            errno: None,
            attempts: if outcome == Outcome::Timeout { 2 } else { 1 },
            proven: outcome == Outcome::Timeout,
            delivered: None,
        }
    }

    fn path(targets: &[(&str, Outcome)]) -> Vec<ProbeReport> {
        targets
            .iter()
            .map(|(t, o)| {
                let target: SocketAddr = t.parse().expect("target");
                let bind: SocketAddr =
                    if target.is_ipv4() { "0.0.0.0:40000" } else { "[::]:40001" }.parse().expect("bind");
                ProbeReport {
                    proto: Proto::Tcp,
                    bind,
                    target,
                    outcome: *o,
                    rtt_ms: None,
                    errno: None,
                    attempts: 1,
                    proven: false,
                    seen_by_listener: false,
                }
            })
            .collect()
    }

    const P: CheckedPort = CheckedPort { port: 3000, proto: Proto::Tcp };
    const LAN: &str = "198.51.100.1:3000";
    const LAN6: &str = "[2001:db8::1]:3000";

    fn v(
        listeners: &[SocketFact],
        docker: &[DockerPublish],
        probes: &[ServiceProbeReport],
        path: &[ProbeReport],
    ) -> Verdict {
        verdict(&ServiceFacts {
            mode: Mode::Peer,
            port: P,
            listeners,
            docker,
            unpublished: &[],
            probes,
            path,
            local_http_status: Some(200),
            firewall: &[],
            blind: None,
        })
    }

    fn lan_path() -> Vec<ProbeReport> {
        path(&[("198.51.100.1:40000", Outcome::Open), ("[2001:db8::1]:40001", Outcome::Open)])
    }

    #[test]
    fn verdicts_from_facts() {
        use Outcome::*;
        let p = lan_path();
        let any = sock("0.0.0.0:3000", "node", "node server.js");
        assert_eq!(v(std::slice::from_ref(&any), &[], &[probe(LAN, Open, None)], &p), Verdict::Reachable);
        assert_eq!(v(std::slice::from_ref(&any), &[], &[probe(LAN, Open, Some(403))], &p), Verdict::HttpHostCheck);
        assert_eq!(v(std::slice::from_ref(&any), &[], &[probe(LAN, Timeout, None)], &p), Verdict::FirewallDrop);
        assert_eq!(v(std::slice::from_ref(&any), &[], &[probe(LAN, Refused, None)], &p), Verdict::FirewallReject);
        assert_eq!(v(std::slice::from_ref(&any), &[], &[probe(LAN, Unreachable, None)], &p), Verdict::FirewallReject);
        assert_eq!(v(&[], &[], &[probe(LAN, Refused, None)], &p), Verdict::NotListening);
        let lo = sock("127.0.0.1:3000", "node", "node node_modules/.bin/vite");
        assert_eq!(v(std::slice::from_ref(&lo), &[], &[probe(LAN, Refused, None)], &p), Verdict::LoopbackOnly);
        assert_eq!(v(&[lo], &[], &[probe("127.0.0.1:3000", Open, None)], &p), Verdict::LoopbackOnly);
        // Outside evidence from the LAN wins over inside facts.
        let hidden = sock("127.0.0.1:3000", "sshd", "sshd: forwarding");
        assert_eq!(v(&[hidden], &[], &[probe(LAN, Open, None)], &p), Verdict::Reachable);
        let other_nic = sock("203.0.113.1:3000", "python3", "python3 -m http.server");
        assert_eq!(v(&[other_nic], &[], &[probe(LAN, Refused, None)], &p), Verdict::InterfaceOnly);
        let blocked = path(&[("198.51.100.1:40000", Timeout)]);
        assert_eq!(v(std::slice::from_ref(&any), &[], &[probe(LAN, Timeout, None)], &blocked), Verdict::NetworkBlocked);
        // Reached over IPv6 only; the server is IPv4 only.
        let v6_path = path(&[("198.51.100.1:40000", Timeout), ("[2001:db8::1]:40001", Open)]);
        let probes = [probe(LAN, Timeout, None), probe(LAN6, Refused, None)];
        assert_eq!(v(std::slice::from_ref(&any), &[], &probes, &v6_path), Verdict::Ipv4Only);
        let v4_path = path(&[("198.51.100.1:40000", Open), ("[2001:db8::1]:40001", Timeout)]);
        let only6 = sock("[::]:3000", "node", "node x");
        assert_eq!(
            v(&[only6], &[], &[probe(LAN, Refused, None), probe(LAN6, Timeout, None)], &v4_path),
            Verdict::Ipv6Only
        );
        // Silence is never blamed on the bind family.
        let only6 = sock("[::]:3000", "nginx", "nginx");
        assert_eq!(v(&[only6], &[], &[probe(LAN, Timeout, None)], &p), Verdict::FirewallDrop);
        // 403 for everyone (auth, no index page) is not a Host check.
        let f = ServiceFacts {
            mode: Mode::Peer,
            port: P,
            listeners: std::slice::from_ref(&any),
            docker: &[],
            unpublished: &[],
            probes: &[probe(LAN, Open, Some(403))],
            path: &p,
            local_http_status: Some(403),
            firewall: &[],
            blind: None,
        };
        assert_eq!(verdict(&f), Verdict::Reachable);
        assert_eq!(v(std::slice::from_ref(&any), &[], &[probe(LAN, EmptyReply, None)], &p), Verdict::ProxyNoBackend);
        // Answered over one family, refused over the other that the peer also reaches.
        let both = [probe(LAN, Open, Some(200)), probe(LAN6, Refused, None)];
        assert_eq!(v(std::slice::from_ref(&any), &[], &both, &p), Verdict::Partial);
        let v6only = sock("[::]:3000", "python3", "python3 server.py");
        let both = [probe(LAN, Refused, None), probe(LAN6, Open, Some(200))];
        assert_eq!(v(std::slice::from_ref(&v6only), &[], &both, &p), Verdict::Partial);
        // The other family's path is closed: not an address the peer can reach.
        let v4_path = path(&[("198.51.100.1:40000", Open), ("[2001:db8::1]:40001", Timeout)]);
        let both = [probe(LAN, Open, Some(200)), probe(LAN6, Timeout, None)];
        assert_eq!(v(&[any], &[], &both, &v4_path), Verdict::Reachable);
    }

    #[test]
    fn local_verdicts_say_what_this_machine_saw_and_what_the_configuration_says() {
        use Outcome::*;
        let p = lan_path();
        let any = [sock("0.0.0.0:3000", "python3", "python3 -m http.server 3000")];
        let dual = [sock("0.0.0.0:3000", "python3", "x"), sock("[::]:3000", "python3", "x")];
        let check = |target: &str, outcome| FirewallCheck {
            target: target.parse().expect("target"),
            interface: Some("eth0".into()),
            source: "198.51.100.0/24".into(),
            outcome,
            rule: None,
            reason: None,
        };
        let local = |listeners: &[SocketFact], probes: &[ServiceProbeReport], firewall: &[FirewallCheck]| {
            verdict(&ServiceFacts {
                mode: Mode::Local,
                port: P,
                listeners,
                docker: &[],
                unpublished: &[],
                probes,
                path: &p,
                local_http_status: None,
                firewall,
                blind: None,
            })
        };
        let both = [probe(LAN, Open, Some(200)), probe(LAN6, Open, Some(200))];
        assert_eq!(local(&dual, &both, &[]), Verdict::ReachableLocally);
        let passes = [check(LAN, FirewallOutcome::Accepted), check(LAN6, FirewallOutcome::NotEvaluated)];
        assert_eq!(local(&dual, &both, &passes), Verdict::ReachableLocally);
        let dropped = [check(LAN, FirewallOutcome::Dropped), check(LAN6, FirewallOutcome::Dropped)];
        assert_eq!(local(&dual, &both, &dropped), Verdict::FirewallDrop);
        let rejected = [check(LAN, FirewallOutcome::Rejected), check(LAN6, FirewallOutcome::Rejected)];
        assert_eq!(local(&dual, &both, &rejected), Verdict::FirewallReject);
        // Kept out at one address only: partial.
        let one = [check(LAN, FirewallOutcome::Dropped), check(LAN6, FirewallOutcome::Accepted)];
        assert_eq!(local(&dual, &both, &one), Verdict::Partial);
        // The issue: 0.0.0.0 answers over IPv4, the bind refuses IPv6, the rule drops IPv4.
        let v4 = [probe(LAN, Open, Some(200)), probe(LAN6, Refused, None)];
        assert_eq!(local(&any, &v4, &dropped), Verdict::FirewallDrop);
        // A peer's probes are the evidence: the same configuration changes nothing.
        let peer = ServiceFacts {
            mode: Mode::Peer,
            port: P,
            listeners: &dual,
            docker: &[],
            unpublished: &[],
            probes: &both,
            path: &p,
            local_http_status: None,
            firewall: &dropped,
            blind: None,
        };
        assert_eq!(verdict(&peer), Verdict::Reachable);
    }

    #[test]
    fn docker_verdicts() {
        use Outcome::*;
        let p = lan_path();
        let publish = |host_ip: &str, inner: Option<&str>| DockerPublish {
            container: "web".into(),
            image: "app:1".into(),
            host_ip: host_ip.parse().expect("ip"),
            host_port: 3000,
            container_port: 3000,
            proto: Proto::Tcp,
            inner_listeners: inner.map(|a| vec![a.parse().expect("addr")]),
        };
        let proxy = sock("0.0.0.0:3000", "docker-proxy", "/usr/bin/docker-proxy -proto tcp");
        let inside_lo = [publish("0.0.0.0", Some("127.0.0.1:3000"))];
        assert_eq!(
            v(std::slice::from_ref(&proxy), &inside_lo, &[probe(LAN, EmptyReply, None)], &p),
            Verdict::ContainerLoopback
        );
        // DNAT path (no userland proxy): refused, but the inside facts know better.
        let local = [publish("127.0.0.1", Some("0.0.0.0:3000"))];
        assert_eq!(v(&[], &local, &[probe(LAN, Refused, None)], &p), Verdict::PublishedLoopback);
        // A peer on this machine reaches it over loopback; the LAN still cannot.
        assert_eq!(v(&[], &local, &[probe("127.0.0.1:3000", Open, Some(200))], &p), Verdict::PublishedLoopback);
        let ok = [publish("0.0.0.0", Some("0.0.0.0:3000"))];
        assert_eq!(v(&[proxy], &ok, &[probe(LAN, Open, Some(200))], &p), Verdict::Reachable);
        assert_eq!(v(&[], &ok, &[probe(LAN, Timeout, None)], &p), Verdict::FirewallDrop);
        // The DNAT path (no userland proxy) refuses; the inside facts still know why.
        let inside_lo = [publish("0.0.0.0", Some("127.0.0.1:3000"))];
        assert_eq!(v(&[], &inside_lo, &[probe(LAN, Refused, None)], &p), Verdict::ContainerLoopback);
        let app_down = [publish("0.0.0.0", Some("0.0.0.0:9999"))];
        assert_eq!(v(&[], &app_down, &[probe(LAN, Refused, None)], &p), Verdict::ProxyNoBackend);
    }

    #[test]
    fn a_container_listening_without_a_publication() {
        use Outcome::*;
        let p = lan_path();
        let web = |proto| UnpublishedContainer {
            container: "web".into(),
            image: "app:1".into(),
            proto,
            listeners: vec!["0.0.0.0:3000".parse().expect("addr")],
            compose_service: None,
            published_as: Vec::new(),
        };
        let facts = |listeners, unpublished| ServiceFacts {
            mode: Mode::Peer,
            port: P,
            listeners,
            docker: &[],
            unpublished,
            probes: &[],
            path: &p,
            local_http_status: None,
            firewall: &[],
            blind: None,
        };
        let refused = [probe(LAN, Refused, None)];
        let tcp = [web(Proto::Tcp)];
        assert_eq!(verdict(&ServiceFacts { probes: &refused, ..facts(&[], &tcp) }), Verdict::ContainerNotPublished);
        // A peer on this machine is refused on loopback all the same.
        let local = [probe("127.0.0.1:3000", Refused, None)];
        assert_eq!(verdict(&ServiceFacts { probes: &local, ..facts(&[], &tcp) }), Verdict::ContainerNotPublished);
        // A UDP socket in a container says nothing about TCP.
        let udp = [web(Proto::Udp)];
        assert_eq!(verdict(&ServiceFacts { probes: &refused, ..facts(&[], &udp) }), Verdict::NotListening);
        // A socket on this machine is the port's owner: the container is not what the peer meets.
        let lo = [sock("127.0.0.1:3000", "node", "node server.js")];
        assert_eq!(verdict(&ServiceFacts { probes: &refused, ..facts(&lo, &tcp) }), Verdict::LoopbackOnly);
    }

    /// Issue 10 item 3: a UDP port is reachable only with evidence — an answer, or its
    /// datagrams seen passing the firewall to a listening socket. Silence alone is
    /// `unconfirmed`; silence the inside view explains is a drop.
    #[test]
    fn udp_needs_evidence() {
        use Outcome::*;
        const U: CheckedPort = CheckedPort { port: 5060, proto: Proto::Udp };
        let udp = |bind: &str| SocketFact { proto: Proto::Udp, ..sock(bind, "python3", "python3 echo.py") };
        let path: Vec<ProbeReport> = lan_path().into_iter().map(|p| ProbeReport { proto: Proto::Udp, ..p }).collect();
        let silent = |target: &str, attempts, delivered| ServiceProbeReport {
            attempts,
            proven: attempts >= 2,
            delivered,
            ..probe(target, Timeout, None)
        };
        let v = |listeners: &[SocketFact], probes: &[ServiceProbeReport]| {
            verdict(&ServiceFacts {
                mode: Mode::Peer,
                port: U,
                listeners,
                docker: &[],
                unpublished: &[],
                probes,
                path: &path,
                local_http_status: None,
                firewall: &[],
                blind: None,
            })
        };
        let (l4, l6) = ("198.51.100.1:5060", "[2001:db8::1]:5060");
        let any = [udp("[::]:5060")];
        let any = [SocketFact { v6only: Some(false), ..any[0].clone() }];
        // Answered everywhere: reachable.
        assert_eq!(v(&any, &[probe(l4, Open, None), probe(l6, Open, None)]), Verdict::Reachable);
        // Silent, seen delivered everywhere: reachable by the inside view.
        let seen = [silent(l4, 2, Some(true)), silent(l6, 2, Some(true))];
        assert_eq!(v(&any, &seen), Verdict::Reachable);
        // Silent, no inside view: unconfirmed, whatever the attempts.
        for attempts in [1, 2] {
            assert_eq!(v(&any, &[silent(l4, attempts, None), silent(l6, attempts, None)]), Verdict::Unconfirmed);
        }
        // Silent, the peer's other UDP tracked but not these: a drop.
        assert_eq!(v(&any, &[silent(l4, 2, Some(false)), silent(l6, 2, Some(false))]), Verdict::FirewallDrop);
        // Answered at one address, seen dropped at the other: partial.
        assert_eq!(v(&any, &[probe(l4, Open, None), silent(l6, 2, Some(false))]), Verdict::Partial);
        assert_eq!(v(&any, &[silent(l4, 2, Some(true)), silent(l6, 2, None)]), Verdict::Partial);
        // Delivered where no socket listens: the refusal was rate-limited, the bind is
        // what the peer meets.
        let only4 = [udp("0.0.0.0:5060")];
        assert_eq!(v(&only4, &[silent(l4, 2, Some(true)), silent(l6, 2, Some(true))]), Verdict::Partial);
        assert_eq!(v(&only4, &[silent(l4, 2, None), probe(l6, Refused, None)]), Verdict::Ipv4Only);
        // Nothing listens at a reachable address, silence after the quiet re-probe: a
        // drop (a closed port answers with ICMP); before it, unconfirmed.
        let other = [udp("203.0.113.1:5060")];
        assert_eq!(v(&other, &[silent(l4, 2, None), silent(l6, 2, None)]), Verdict::FirewallDrop);
        assert_eq!(v(&other, &[silent(l4, 1, None), silent(l6, 1, None)]), Verdict::Unconfirmed);
        assert_eq!(v(&other, &[silent(l4, 1, Some(true)), silent(l6, 1, None)]), Verdict::InterfaceOnly);
        // A refusal where a socket listens is a firewall's, silence elsewhere or not.
        assert_eq!(v(&any, &[silent(l4, 2, None), probe(l6, Refused, None)]), Verdict::FirewallReject);
    }

    /// Issue 10 item 5: TCP silence is a drop only once the quiet re-probe met it too.
    #[test]
    fn tcp_silence_is_a_drop_only_after_the_quiet_re_probe() {
        use Outcome::*;
        let p = lan_path();
        let any = [sock("0.0.0.0:3000", "node", "node server.js")];
        let once = ServiceProbeReport { attempts: 1, proven: false, ..probe(LAN, Timeout, None) };
        assert_eq!(v(&any, &[], &[probe(LAN, Timeout, None)], &p), Verdict::FirewallDrop);
        assert_eq!(v(&any, &[], std::slice::from_ref(&once), &p), Verdict::Unconfirmed);
        // ... or the agent's ICMP witness proved it after one attempt.
        let witnessed = ServiceProbeReport { proven: true, ..once.clone() };
        assert_eq!(v(&any, &[], &[witnessed], &p), Verdict::FirewallDrop);
        // A rejection at another address the socket covers is proof enough of a firewall.
        let both = [sock("[::]:3000", "node", "node server.js")];
        let both = [SocketFact { v6only: Some(false), ..both[0].clone() }];
        assert_eq!(v(&both, &[], &[once, probe(LAN6, Unreachable, None)], &p), Verdict::FirewallReject);
    }

    /// The peer's datagrams are found in the table by source address and port; the
    /// table is trusted to track a family only when it holds the peer's knocks.
    #[test]
    fn delivery_is_attributed_to_the_peers_datagrams() {
        let sa = |s: &str| -> SocketAddr { s.parse().expect("addr") };
        let flow = |src: &str, dst: &str| crate::facts::UdpFlow { src: sa(src), dst: sa(dst) };
        let knock = ListenerHit {
            proto: Proto::Udp,
            bind: sa("0.0.0.0:40000"),
            local: sa("198.51.100.1:40000"),
            source: sa("198.51.100.2:50000"),
        };
        let peer = [IpAddr::from([198, 51, 100, 2])];
        let target = sa("198.51.100.1:5060");
        let table = |flows: Vec<crate::facts::UdpFlow>| Conntrack::Flows(flows);
        let knock_flow = flow("198.51.100.2:50000", "198.51.100.1:40000");
        // Tracked: the peer's datagram from one of its probe's ports is there.
        let t = table(vec![knock_flow, flow("198.51.100.2:41000", "198.51.100.1:5060")]);
        assert_eq!(delivery(&t, &[knock], &peer, target, &[41000]), Delivery::Seen);
        // Other traffic to the port (another host, another source port of the peer's
        // device, mDNS, QUIC elsewhere) is not the peer's probe.
        let t = table(vec![
            knock_flow,
            flow("198.51.100.7:41000", "198.51.100.1:5060"),
            flow("198.51.100.2:42000", "198.51.100.1:5060"),
            flow("198.51.100.2:41000", "198.51.100.1:5353"),
        ]);
        assert_eq!(delivery(&t, &[knock], &peer, target, &[41000]), Delivery::NotSeen);
        // The table does not hold the knock: tracking is off, nothing can be told.
        let t = table(vec![flow("198.51.100.2:41000", "198.51.100.1:5060")]);
        assert_eq!(delivery(&t, &[knock], &peer, target, &[41000]), Delivery::Unknown(Blind::NotTracking));
        assert_eq!(delivery(&t, &[], &peer, target, &[41000]), Delivery::Unknown(Blind::NoReference));
        let none = Conntrack::Unreadable("permission denied".into());
        assert!(matches!(delivery(&none, &[knock], &peer, target, &[41000]), Delivery::Unknown(Blind::Unreadable(_))));
        // Behind NAT the agent sees another source address, and maybe another port.
        let natted = ListenerHit { source: sa("203.0.113.50:60000"), ..knock };
        let t = table(vec![
            flow("203.0.113.50:60000", "198.51.100.1:40000"),
            flow("203.0.113.50:61234", "198.51.100.1:5060"),
        ]);
        assert_eq!(delivery(&t, &[natted], &peer, target, &[41000]), Delivery::Seen);
        // IPv6 is judged on IPv6 knocks.
        let t6 = sa("[2001:db8::1]:5060");
        assert_eq!(
            delivery(&table(vec![knock_flow]), &[knock], &peer, t6, &[41000]),
            Delivery::Unknown(Blind::NoReference)
        );
    }
}
