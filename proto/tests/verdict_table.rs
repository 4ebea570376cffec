//! Every verdict × family × (peer, `--local`, a peer on this machine, a browser) through the rules:
//! synthetic inside facts (sockets, Docker), path pictures and outside probe outcomes,
//! walked exhaustively. Whatever the combination, `reachable` only comes with an outside
//! probe answered at each address the peer can reach (DESIGN §5), and `partial` only
//! with an answer at one of them and none at another. `--local` never says `reachable`:
//! what it saw is `reachable_locally`, and no peer ever gets that. The firewall's
//! configuration (accepting, dropping, rejecting, not evaluated, at every address or one)
//! is walked too: `--local` is never `reachable_locally` where the configuration keeps
//! other hosts out of an address that answered, and a peer's verdict never depends on it
//! (its probes are the evidence).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use lanreach_proto::facts::{CheckedPort, DockerPublish, SocketFact, UnpublishedContainer};
use lanreach_proto::firewall::{FirewallCheck, FirewallOutcome, RuleRef, RulesFrom};
use lanreach_proto::report::{self, ProbeReport, ServiceProbeReport, Verdict};
use lanreach_proto::verdict::{ServiceFacts, path_open, verdict};
use lanreach_proto::vocab::{Outcome, Proto};

const PORT: u16 = 3000;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// Who probes which addresses of this host.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// A peer on another device: the LAN addresses of the families it has.
    Peer,
    /// `--local`: this machine dials its own LAN addresses (over lo).
    Local,
    /// A peer on this machine that dialled a loopback address.
    LoopbackPeer,
    /// A browser on another device running the agent's page.
    Browser,
}

impl Mode {
    /// The report's mode: a peer on this machine is still a peer.
    fn report(self) -> report::Mode {
        match self {
            Mode::Peer | Mode::LoopbackPeer => report::Mode::Peer,
            Mode::Local => report::Mode::Local,
            Mode::Browser => report::Mode::Browser,
        }
    }
}

fn targets(mode: Mode, families: (bool, bool)) -> Vec<IpAddr> {
    let (v4, v6) = families;
    let (a4, a6) = match mode {
        Mode::Peer | Mode::Local | Mode::Browser => (ip("198.51.100.10"), ip("2001:db8::10")),
        Mode::LoopbackPeer => (ip("127.0.0.1"), ip("::1")),
    };
    let mut out = Vec::new();
    if v4 {
        out.push(a4);
    }
    if v6 {
        out.push(a6);
    }
    out
}

fn sock(proto: Proto, bind: &str, v6only: Option<bool>) -> SocketFact {
    SocketFact {
        proto,
        bind: bind.parse().expect("bind"),
        v6only,
        pid: Some(7),
        program: Some("server".into()),
        cmdline: Some("server".into()),
    }
}

/// The ways people bind a server, one list of sockets each.
fn listener_sets(proto: Proto) -> Vec<Vec<SocketFact>> {
    let s = |b: &str, o| sock(proto, b, o);
    vec![
        vec![],
        vec![s("127.0.0.1:3000", None)],
        vec![s("[::1]:3000", None)],
        vec![s("0.0.0.0:3000", None)],
        vec![s("[::]:3000", Some(true))],
        vec![s("[::]:3000", Some(false))],
        vec![s("[::]:3000", None)],
        vec![s("198.51.100.10:3000", None)],
        vec![s("[2001:db8::10]:3000", None)],
        vec![s("203.0.113.1:3000", None)],
        vec![s("0.0.0.0:3000", None), s("[::]:3000", Some(true))],
    ]
}

/// No container, or one listening on the port inside its own namespace, unpublished.
fn unpublished_sets(proto: Proto) -> Vec<Vec<UnpublishedContainer>> {
    let inside = UnpublishedContainer {
        container: "web".into(),
        image: "app:1".into(),
        proto,
        listeners: vec![SocketAddr::from(([0, 0, 0, 0], PORT))],
        compose_service: None,
        published_as: vec![],
    };
    vec![vec![], vec![inside]]
}

fn docker_sets(proto: Proto) -> Vec<Vec<DockerPublish>> {
    let publish = |host_ip: &str, inner: &str| DockerPublish {
        container: "web".into(),
        image: "app:1".into(),
        host_ip: ip(host_ip),
        host_port: PORT,
        container_port: PORT,
        proto,
        inner_listeners: Some(vec![inner.parse().expect("inner")]),
    };
    vec![
        vec![],
        vec![publish("0.0.0.0", "0.0.0.0:3000")],
        vec![publish("127.0.0.1", "0.0.0.0:3000")],
        vec![publish("0.0.0.0", "127.0.0.1:3000")],
    ]
}

/// What the firewall's configuration says at `targets`: nothing read, or each outcome at
/// every target, or a drop at the first target only.
fn firewall_sets(targets: &[IpAddr]) -> Vec<Vec<FirewallCheck>> {
    let check = |ip: IpAddr, outcome: FirewallOutcome| FirewallCheck {
        target: SocketAddr::new(ip, PORT),
        interface: Some("eth0".into()),
        source: "198.51.100.0/24".into(),
        outcome,
        rule: (outcome != FirewallOutcome::NotEvaluated).then(|| RuleRef {
            from: RulesFrom::Nftables,
            table: "inet filter".into(),
            chain: "input".into(),
            handle: Some(4),
            text: "iifname \"eth0\" tcp dport 3000 drop".into(),
        }),
        reason: (outcome == FirewallOutcome::NotEvaluated).then(|| "nft: Operation not permitted".into()),
    };
    let mut out = vec![Vec::new()];
    for o in
        [FirewallOutcome::Accepted, FirewallOutcome::Dropped, FirewallOutcome::Rejected, FirewallOutcome::NotEvaluated]
    {
        out.push(targets.iter().map(|t| check(*t, o)).collect());
    }
    if targets.len() > 1 {
        out.push(
            targets
                .iter()
                .enumerate()
                .map(|(i, t)| check(*t, if i == 0 { FirewallOutcome::Dropped } else { FirewallOutcome::Accepted }))
                .collect(),
        );
    }
    out
}

/// The path picture: a wildcard test listener of the target's family, with `outcome`.
fn path_probe(proto: Proto, target: IpAddr, outcome: Outcome) -> ProbeReport {
    let bind: SocketAddr = if target.is_ipv4() { "0.0.0.0:40000" } else { "[::]:40001" }.parse().expect("bind");
    ProbeReport {
        proto,
        bind,
        target: SocketAddr::new(target, bind.port()),
        outcome,
        rtt_ms: None,
        errno: None,
        attempts: 1,
        proven: false,
        seen_by_listener: outcome == Outcome::Open,
    }
}

/// What one outside probe met: an outcome, and for silence how far it is proven.
#[derive(Debug, Clone, Copy)]
struct Met {
    outcome: Outcome,
    attempts: u8,
    proven: bool,
    delivered: Option<bool>,
}

/// Every outcome; silence after one attempt (unproven, or proven by the agent's ICMP
/// witness) and after the quiet re-probe, and for UDP seen delivered or seen stopped by
/// the inside view.
fn mets(proto: Proto) -> Vec<Met> {
    let met = |outcome, attempts, proven, delivered| Met { outcome, attempts, proven, delivered };
    let mut out: Vec<Met> =
        Outcome::ALL.into_iter().filter(|o| *o != Outcome::Timeout).map(|o| met(o, 1, false, None)).collect();
    out.push(met(Outcome::Timeout, 1, false, None));
    out.push(met(Outcome::Timeout, 1, true, None));
    out.push(met(Outcome::Timeout, 2, true, None));
    if proto == Proto::Udp {
        out.push(met(Outcome::Timeout, 2, true, Some(true)));
        out.push(met(Outcome::Timeout, 2, true, Some(false)));
    }
    out
}

/// Every combination of `choices` over `n` places.
fn product<T: Copy>(choices: &[T], n: usize) -> Vec<Vec<T>> {
    let mut out = vec![Vec::new()];
    for _ in 0..n {
        out = out
            .into_iter()
            .flat_map(|prefix| choices.iter().map(move |c| [prefix.clone(), vec![*c]].concat()))
            .collect();
    }
    out
}

#[test]
fn reachable_only_when_every_address_the_peer_can_reach_answered() {
    let mut seen: HashSet<Verdict> = HashSet::new();
    let mut walked = 0u64;
    for proto in [Proto::Tcp, Proto::Udp] {
        let port = CheckedPort { port: PORT, proto };
        for mode in [Mode::Peer, Mode::Local, Mode::LoopbackPeer, Mode::Browser] {
            for families in [(true, false), (false, true), (true, true)] {
                let targets = targets(mode, families);
                for path_outcomes in product(&[Outcome::Open, Outcome::Timeout, Outcome::Unreachable], targets.len()) {
                    let path: Vec<ProbeReport> =
                        targets.iter().zip(&path_outcomes).map(|(t, o)| path_probe(proto, *t, *o)).collect();
                    for outcomes in product(&mets(proto), targets.len()) {
                        for http in [None, Some(403)] {
                            let probes: Vec<ServiceProbeReport> = targets
                                .iter()
                                .zip(&outcomes)
                                .map(|(t, m)| ServiceProbeReport {
                                    target: SocketAddr::new(*t, PORT),
                                    outcome: m.outcome,
                                    rtt_ms: None,
                                    http_status: if m.outcome == Outcome::Open { http } else { None },
                                    errno: None,
                                    attempts: m.attempts,
                                    proven: m.proven,
                                    delivered: m.delivered,
                                })
                                .collect();
                            for listeners in listener_sets(proto) {
                                for (docker, unpublished) in docker_sets(proto)
                                    .into_iter()
                                    .flat_map(|d| unpublished_sets(proto).into_iter().map(move |u| (d.clone(), u)))
                                {
                                    let bare = ServiceFacts {
                                        mode: mode.report(),
                                        port,
                                        listeners: &listeners,
                                        docker: &docker,
                                        unpublished: &unpublished,
                                        probes: &probes,
                                        path: &path,
                                        local_http_status: Some(200),
                                        firewall: &[],
                                        blind: None,
                                    };
                                    let without = verdict(&bare);
                                    let loopback = matches!(mode, Mode::LoopbackPeer);
                                    for firewall in if loopback { vec![Vec::new()] } else { firewall_sets(&targets) } {
                                        let f = ServiceFacts { firewall: &firewall, ..bare.clone() };
                                        let v = verdict(&f);
                                        walked += 1;
                                        seen.insert(v);
                                        check(v, &f, mode);
                                        if !matches!(mode, Mode::Local) {
                                            assert_eq!(
                                                v, without,
                                                "a peer's verdict changed with the firewall's configuration: {f:?}"
                                            );
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    let missing: Vec<Verdict> = Verdict::ALL.into_iter().filter(|v| !seen.contains(v)).collect();
    assert!(missing.is_empty(), "verdicts no combination produced: {missing:?} ({walked} walked)");
}

fn check(v: Verdict, f: &ServiceFacts<'_>, mode: Mode) {
    let reachable_at: Vec<&ServiceProbeReport> =
        f.probes.iter().filter(|p| path_open(f.path, f.port.proto, p.target.ip())).collect();
    // In `--local`, an address the configuration keeps other hosts out of is not answered
    // for them, whatever this machine's own probe met.
    let kept_out = |p: &&ServiceProbeReport| {
        matches!(mode, Mode::Local) && f.firewall.iter().any(|c| c.target.ip() == p.target.ip() && c.blocks())
    };
    let context = || {
        format!(
            "{mode:?} {:?}\nlisteners {:?}\ndocker {:?}\nprobes {:?}\npath {:?}\nfirewall {:?}",
            v, f.listeners, f.docker, f.probes, f.path, f.firewall
        )
    };
    match (mode, v) {
        (Mode::Local, Verdict::Reachable) => panic!("--local claims the LAN view: {}", context()),
        (Mode::Peer | Mode::LoopbackPeer | Mode::Browser, Verdict::ReachableLocally) => {
            panic!("a peer got the self-check's verdict: {}", context())
        }
        _ => {}
    }
    if v == Verdict::ReachableLocally {
        assert!(
            !f.probes.iter().filter(|p| p.outcome == Outcome::Open).any(|p| kept_out(&p)),
            "reachable_locally, yet the configuration keeps other hosts out where it answered: {}",
            context()
        );
    }
    // Evidence: an answer, or UDP datagrams the inside view saw pass the firewall (DESIGN
    // §5: silence alone is never confirmation) — not where the configuration keeps other
    // hosts out (`--local`).
    let takes = |ip: IpAddr| {
        f.listeners.iter().any(|l| l.accepts(ip))
            || f.docker.iter().any(|d| d.host_ip.is_unspecified() && d.host_ip.is_ipv4() == ip.is_ipv4())
    };
    let evidence = |p: &&ServiceProbeReport| {
        (p.outcome == Outcome::Open
            || (f.port.proto == Proto::Udp
                && p.outcome == Outcome::Timeout
                && p.delivered == Some(true)
                && takes(p.target.ip())))
            && !kept_out(p)
    };
    match v {
        Verdict::Reachable | Verdict::ReachableLocally => {
            assert!(f.probes.iter().any(|p| evidence(&p)), "reachable without evidence: {}", context());
            assert!(reachable_at.iter().all(evidence), "reachable, yet not reached everywhere: {}", context());
        }
        Verdict::Partial => {
            assert!(f.probes.iter().any(|p| evidence(&p)), "partial without evidence: {}", context());
            // Not reached where the peer reaches this host, or (`--local`) kept out by the
            // configuration where it answered.
            let missed = !reachable_at.iter().all(evidence) || f.probes.iter().any(|p| kept_out(&p));
            assert!(missed, "partial, yet reached everywhere: {}", context());
        }
        Verdict::FirewallDrop if f.mode.from_outside() => {
            let proven =
                |p: &&ServiceProbeReport| p.outcome == Outcome::Timeout && (p.proven || p.delivered == Some(false));
            assert!(f.probes.iter().any(|p| proven(&p)), "a drop from unproven silence: {}", context());
        }
        // Only a browser says it cannot test a port, and only where the inside facts do
        // not settle it.
        Verdict::BrowserUntestable => {
            assert!(matches!(mode, Mode::Browser), "browser_untestable for a peer: {}", context());
            assert!(!f.listeners.is_empty() || !f.docker.is_empty(), "nothing listens, yet untestable: {}", context());
        }
        Verdict::Unconfirmed => {
            assert!(
                f.probes.iter().any(|p| p.outcome == Outcome::Timeout && !evidence(&p)),
                "unconfirmed without silence: {}",
                context()
            );
        }
        _ => {}
    }
}
