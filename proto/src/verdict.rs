//! The verdict rules for one of the user's ports: pure functions that join the inside
//! facts, the outside probes of the port and the test listeners' picture of the path.

use std::net::IpAddr;

use crate::facts::{CheckedPort, DockerPublish, SocketFact, UnpublishedContainer};
use crate::firewall::{FirewallCheck, FirewallOutcome};
use crate::report::{Mode, ProbeReport, ServiceProbeReport, Verdict};
use crate::vocab::{Outcome, Proto};

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

/// The port's outside probes that were not answered at an address the peer can reach
/// ([`path_open`]): where a port that answers elsewhere is only partly reachable. In
/// `--local`, also those answered here at an address whose firewall keeps other hosts
/// out ([`kept_out`]).
pub fn missed_probes<'a>(f: &ServiceFacts<'a>) -> Vec<&'a ServiceProbeReport> {
    f.probes
        .iter()
        .filter(|p| {
            (p.outcome != Outcome::Open && path_open(f.path, f.port.proto, p.target.ip()))
                || (p.outcome == Outcome::Open && kept_out(f, p.target.ip()).is_some())
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
/// `reachable` means answered at every address the peer can reach ([`path_open`]);
/// answered at some and not at others is `partial`. Outside evidence from the LAN wins (an answer at a non-loopback address is reachable
/// whatever the inside facts say: something may forward the port unseen). Without it,
/// inside facts about bind scope decide, since a peer on this machine (loopback) or the
/// `--local` self-check cannot show what the LAN sees. Then the path picture of the
/// test listeners tells the network and the firewall apart.
fn probe_verdict(f: &ServiceFacts<'_>) -> Verdict {
    let proto = f.port.proto;
    let open_at = |lan: bool| -> Vec<&ServiceProbeReport> {
        f.probes.iter().filter(|p| p.outcome == Outcome::Open && p.target.ip().is_loopback() != lan).collect()
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
    let open_local = open_at(false);
    if !open_local.is_empty() {
        return answer(&open_local);
    }
    let dialled: Vec<IpAddr> = f.probes.iter().map(|p| p.target.ip()).collect();
    let reachable: Vec<IpAddr> = dialled.iter().copied().filter(|ip| path_open(f.path, proto, *ip)).collect();
    if reachable.is_empty() {
        return Verdict::NetworkBlocked;
    }
    let covered = |ip: IpAddr| {
        f.listeners.iter().any(|l| l.accepts(ip))
            || published.iter().any(|d| d.host_ip.is_unspecified() && d.host_ip.is_ipv4() == ip.is_ipv4())
    };
    let matching: Vec<IpAddr> = reachable.iter().copied().filter(|ip| covered(*ip)).collect();
    let silent_at =
        |ips: &[IpAddr]| f.probes.iter().any(|p| ips.contains(&p.target.ip()) && p.outcome == Outcome::Timeout);
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
        // A wrong bind address is refused; silence where the path is open is a filter.
        if silent_at(&reachable) {
            return Verdict::FirewallDrop;
        }
        return bind_gap(&reachable);
    }
    if silent_at(&matching) {
        // Many UDP servers stay silent at an empty datagram: listening, with the UDP path
        // open, is as far as UDP can be confirmed (`judge` says so in a warning) — at every
        // address the peer reaches, or the bind (refused elsewhere) or a firewall (a
        // refusal where a socket listens) is what the peer meets.
        let all_silent =
            f.probes.iter().filter(|p| matching.contains(&p.target.ip())).all(|p| p.outcome == Outcome::Timeout);
        let unmatched: Vec<IpAddr> = reachable.iter().copied().filter(|ip| !matching.contains(ip)).collect();
        let kept: Vec<&FirewallCheck> = matching.iter().filter_map(|ip| kept_out(f, *ip)).collect();
        match proto {
            Proto::Udp if !all_silent => Verdict::FirewallReject,
            Proto::Udp if !unmatched.is_empty() => bind_gap(&unmatched),
            Proto::Udp if !kept.is_empty() && kept.len() == matching.len() => blocked_verdict(&kept),
            Proto::Udp => Verdict::Reachable,
            Proto::Tcp => Verdict::FirewallDrop,
        }
    } else {
        Verdict::FirewallReject
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    fn sock(bind: &str, program: &str, cmdline: &str) -> SocketFact {
        SocketFact {
            proto: Proto::Tcp,
            bind: bind.parse().expect("bind"),
            v6only: if bind.starts_with("[::]") { Some(true) } else { None },
            pid: Some(42),
            program: Some(program.into()),
            cmdline: Some(cmdline.into()),
        }
    }

    fn probe(target: &str, outcome: Outcome, http: Option<u16>) -> ServiceProbeReport {
        ServiceProbeReport {
            target: target.parse().expect("target"),
            outcome,
            rtt_ms: None,
            http_status: http,
            errno: None,
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
}
