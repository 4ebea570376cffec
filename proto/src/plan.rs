//! Probe plans: which (listener, agent address) pairs to probe, built by the agent and
//! checked by the peer.
//!
//! A plan is data from the other side. The peer accepts only targets that are agent
//! addresses declared in the agent's Hello, never multicast, broadcast or unspecified
//! addresses, loopback only when the agent itself was reached over loopback, and no
//! more than [`MAX_PROBES`] probes: a malicious agent cannot turn a peer into a
//! scanner of other hosts.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::defaults::ATTEMPTS;
use crate::vocab::{ListenerSpec, PlannedProbe, ProbeResults, Proto, ServiceProbe};

/// Most probes a plan may hold.
pub const MAX_PROBES: usize = 2048;

/// Most probes of the user's own ports a plan may hold.
pub const MAX_SERVICE_PROBES: usize = 1024;

/// Most distinct target addresses a plan may name.
pub const MAX_TARGET_ADDRESSES: usize = 64;

/// The plan the agent sends after the Hello exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbePlan {
    /// Identifies this session to the test listeners.
    pub session: [u8; 16],
    /// Key of the MACs the listeners answer with (sent over the authenticated channel).
    pub key: [u8; 32],
    /// The probes of the test listeners.
    pub probes: Vec<PlannedProbe>,
    /// The probes of the user's own ports (`--check`, `--exposed`).
    pub services: Vec<ServiceProbe>,
}

/// Whether an address may ever be a probe target, and why not.
pub fn forbidden(ip: IpAddr, allow_loopback: bool) -> Option<&'static str> {
    // ::ffff:224.0.0.251 is 224.0.0.251: judge the address a socket will really dial.
    let ip = ip.to_canonical();
    if ip.is_unspecified() {
        return Some("an unspecified address");
    }
    if ip.is_multicast() {
        return Some("a multicast address");
    }
    if let IpAddr::V4(v4) = ip
        && (v4.is_broadcast() || v4.octets()[3] == 255 || v4.octets()[3] == 0)
    {
        return Some("a broadcast or network address");
    }
    if ip.is_loopback() && !allow_loopback {
        return Some("a loopback address (it would probe this device itself)");
    }
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    };
    if link_local {
        return Some("a link-local address (it names a different host on each link)");
    }
    None
}

/// The probes for `listeners` × `targets`, in a stable order. Targets that are
/// [`forbidden`] are left out.
///
/// TCP: every listener × every target of its family, and the wildcard listeners
/// (0.0.0.0, ::) also × the other family, which shows that an IPv4 wildcard does not
/// answer IPv6 and vice versa.
///
/// UDP carries the same bind-address lessons, but a closed UDP port answers with ICMP,
/// which hosts rate-limit (a burst of about 6, then 1/s, per peer) and which would spoil
/// the agent's ICMP witness (see [`crate::icmp`]; every peer probing at the time would
/// wait for quiet re-probes): so UDP probes only the cells that answer — wildcards ×
/// targets of their family (does the path pass UDP?) and each specific listener at its
/// own address (a loopback one only where the peer dials loopback). The test listeners
/// draw no ICMP error from a host whose firewall lets UDP in; TCP shows the loopback
/// lesson.
pub fn build(listeners: &[ListenerSpec], targets: &[IpAddr], allow_loopback: bool) -> Vec<PlannedProbe> {
    let mut probes = Vec::new();
    for l in listeners {
        let bind = l.bind.ip();
        for &ip in targets {
            if forbidden(ip, allow_loopback).is_some() {
                continue;
            }
            let same_family = ip.is_ipv4() == l.bind.is_ipv4();
            let wanted = match l.proto {
                Proto::Tcp => same_family || bind.is_unspecified(),
                Proto::Udp if bind.is_unspecified() => same_family,
                Proto::Udp => ip == bind,
            };
            if !wanted {
                continue;
            }
            let id = u32::try_from(probes.len()).unwrap_or(u32::MAX);
            probes.push(PlannedProbe { id, proto: l.proto, bind: l.bind, target: SocketAddr::new(ip, l.bind.port()) });
        }
    }
    probes
}

/// The probes of the user's ports: each port at each target that may be probed, at
/// most [`MAX_SERVICE_PROBES`], IDs counting up from 0.
pub fn service_probes(
    ports: impl IntoIterator<Item = (Proto, u16)>,
    targets: &[IpAddr],
    allow_loopback: bool,
) -> Vec<ServiceProbe> {
    let mut services = Vec::new();
    for (proto, port) in ports {
        for &ip in targets.iter().filter(|ip| forbidden(**ip, allow_loopback).is_none()) {
            let id = u32::try_from(services.len()).unwrap_or(u32::MAX);
            services.push(ServiceProbe { id, proto, target: SocketAddr::new(ip, port) });
        }
    }
    services.truncate(MAX_SERVICE_PROBES);
    services
}

/// Why the peer refuses a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Too many probes.
    #[error("the plan has {0} probes; at most {MAX_PROBES} are accepted")]
    TooManyProbes(usize),
    /// Too many target addresses.
    #[error("the plan names {0} addresses; at most {MAX_TARGET_ADDRESSES} are accepted")]
    TooManyTargets(usize),
    /// A target the peer never probes.
    #[error("the plan asks to probe {target}, {why}")]
    Forbidden {
        /// The target.
        target: SocketAddr,
        /// Why not.
        why: &'static str,
    },
    /// A target that is not one of the agent's addresses.
    #[error("the plan asks to probe {0}, which is not one of the agent's addresses")]
    NotAgentAddress(SocketAddr),
    /// Port 0.
    #[error("the plan asks to probe port 0 at {0}")]
    PortZero(SocketAddr),
    /// Too many service probes.
    #[error("the plan has {0} service probes; at most {MAX_SERVICE_PROBES} are accepted")]
    TooManyServiceProbes(usize),
    /// Probe IDs out of order.
    #[error("probe IDs must count up from 0")]
    BadIds,
}

/// Checks a plan received from an agent whose Hello listed `agent_addresses`.
/// `allow_loopback` is true only when the agent was reached over loopback.
pub fn validate(plan: &ProbePlan, agent_addresses: &[IpAddr], allow_loopback: bool) -> Result<(), PlanError> {
    if plan.probes.len() > MAX_PROBES {
        return Err(PlanError::TooManyProbes(plan.probes.len()));
    }
    if plan.services.len() > MAX_SERVICE_PROBES {
        return Err(PlanError::TooManyServiceProbes(plan.services.len()));
    }
    let listener_probes = plan.probes.iter().map(|p| (p.id, p.target));
    let service_probes = plan.services.iter().map(|p| (p.id, p.target));
    for ids in [
        listener_probes.clone().map(|(id, _)| id).collect::<Vec<_>>(),
        service_probes.clone().map(|(id, _)| id).collect(),
    ] {
        if ids.iter().enumerate().any(|(i, id)| *id as usize != i) {
            return Err(PlanError::BadIds);
        }
    }
    let mut targets = HashSet::new();
    for (_, target) in listener_probes.chain(service_probes) {
        let ip = target.ip();
        if let Some(why) = forbidden(ip, allow_loopback) {
            return Err(PlanError::Forbidden { target, why });
        }
        if target.port() == 0 {
            return Err(PlanError::PortZero(target));
        }
        let loopback_ok = allow_loopback && ip.to_canonical().is_loopback();
        if !loopback_ok && !agent_addresses.iter().any(|a| a.to_canonical() == ip.to_canonical()) {
            return Err(PlanError::NotAgentAddress(target));
        }
        targets.insert(ip);
    }
    if targets.len() > MAX_TARGET_ADDRESSES {
        return Err(PlanError::TooManyTargets(targets.len()));
    }
    Ok(())
}

/// Why the agent refuses a peer's results: they must answer the plan that was sent,
/// one entry per planned probe in plan order, or a hostile peer could feed the report
/// 40,000 invented rows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultsError {
    /// Not one test-listener result per planned probe.
    #[error("the results hold {got} test-listener entries; the plan has {planned}")]
    ListenerCount {
        /// Entries received.
        got: usize,
        /// Probes planned.
        planned: usize,
    },
    /// Not one service result per planned service probe.
    #[error("the results hold {got} service entries; the plan has {planned}")]
    ServiceCount {
        /// Entries received.
        got: usize,
        /// Probes planned.
        planned: usize,
    },
    /// IDs out of the plan's order.
    #[error("result IDs must follow the plan's probe IDs in order")]
    BadIds,
    /// More attempts or source ports than a probe may make.
    #[error("a result reports more than {ATTEMPTS} attempts")]
    TooManyAttempts,
}

/// Checks that `results` answer `plan`: one entry per planned probe, in plan order.
pub fn check_results(plan: &ProbePlan, results: &ProbeResults) -> Result<(), ResultsError> {
    if results.results.len() != plan.probes.len() {
        return Err(ResultsError::ListenerCount { got: results.results.len(), planned: plan.probes.len() });
    }
    if results.services.len() != plan.services.len() {
        return Err(ResultsError::ServiceCount { got: results.services.len(), planned: plan.services.len() });
    }
    let listeners_match = plan.probes.iter().zip(&results.results).all(|(p, r)| p.id == r.id);
    let services_match = plan.services.iter().zip(&results.services).all(|(p, r)| p.id == r.id);
    if !listeners_match || !services_match {
        return Err(ResultsError::BadIds);
    }
    let too_many = |n: usize| n > usize::from(ATTEMPTS);
    if results.results.iter().any(|r| too_many(r.attempts.into()))
        || results.services.iter().any(|r| too_many(r.attempts.into()) || too_many(r.source_ports.len()))
    {
        return Err(ResultsError::TooManyAttempts);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn listener(proto: Proto, s: &str) -> ListenerSpec {
        ListenerSpec { proto, bind: s.parse().expect("addr") }
    }

    fn plan_of(targets: &[&str]) -> ProbePlan {
        let probes = targets
            .iter()
            .enumerate()
            .map(|(i, t)| PlannedProbe {
                id: i as u32,
                proto: Proto::Tcp,
                bind: "0.0.0.0:4000".parse().expect("addr"),
                target: t.parse().expect("addr"),
            })
            .collect();
        ProbePlan { session: [0; 16], key: [0; 32], probes, services: vec![] }
    }

    #[test]
    fn tcp_probes_every_cell_udp_only_the_informative_ones() {
        let listeners = [
            listener(Proto::Tcp, "127.0.0.1:4000"),
            listener(Proto::Tcp, "[::]:4001"),
            listener(Proto::Tcp, "198.51.100.1:4002"),
            listener(Proto::Udp, "127.0.0.1:4000"),
            listener(Proto::Udp, "[::]:4001"),
            listener(Proto::Udp, "198.51.100.1:4002"),
        ];
        let targets = [ip("198.51.100.1"), ip("203.0.113.1"), ip("2001:db8::1"), ip("fe80::1"), ip("127.0.0.1")];
        let plan = build(&listeners, &targets, false);
        let got: Vec<String> = plan.iter().map(|p| format!("{} {}->{}", p.proto, p.bind, p.target)).collect();
        assert_eq!(
            got,
            [
                "tcp 127.0.0.1:4000->198.51.100.1:4000",
                "tcp 127.0.0.1:4000->203.0.113.1:4000",
                "tcp [::]:4001->198.51.100.1:4001",
                "tcp [::]:4001->203.0.113.1:4001",
                "tcp [::]:4001->[2001:db8::1]:4001",
                "tcp 198.51.100.1:4002->198.51.100.1:4002",
                "tcp 198.51.100.1:4002->203.0.113.1:4002",
                "udp [::]:4001->[2001:db8::1]:4001",
                "udp 198.51.100.1:4002->198.51.100.1:4002",
            ]
        );
        assert!(plan.iter().enumerate().all(|(i, p)| p.id as usize == i));
        // Every UDP cell is one where a listener of ours answers: an open host sends the
        // plan no ICMP error.
        assert!(plan.iter().filter(|p| p.proto == Proto::Udp).all(|p| {
            p.bind.ip() == p.target.ip() || (p.bind.ip().is_unspecified() && p.bind.is_ipv4() == p.target.is_ipv4())
        }));
    }

    #[test]
    fn peer_accepts_only_agent_addresses() {
        let agent = [ip("198.51.100.1"), ip("2001:db8::1")];
        assert_eq!(validate(&plan_of(&["198.51.100.1:80", "[2001:db8::1]:80"]), &agent, false), Ok(()));
        assert!(matches!(validate(&plan_of(&["198.51.100.9:80"]), &agent, false), Err(PlanError::NotAgentAddress(_))));
    }

    #[test]
    fn peer_never_scans_special_addresses() {
        let agent = [ip("198.51.100.1"), ip("198.51.100.255"), ip("224.0.0.1"), ip("0.0.0.0"), ip("127.0.0.1")];
        for bad in [
            "198.51.100.255:80",
            "224.0.0.1:80",
            "0.0.0.0:80",
            "255.255.255.255:80",
            "127.0.0.1:80",
            "[fe80::1]:80",
            "169.254.1.1:80",
            "[::ffff:224.0.0.251]:5353",
        ] {
            let r = validate(&plan_of(&[bad]), &agent, false);
            assert!(matches!(r, Err(PlanError::Forbidden { .. })), "{bad}: {r:?}");
        }
        assert!(matches!(validate(&plan_of(&["198.51.100.1:0"]), &agent, false), Err(PlanError::PortZero(_))));
        // Loopback only when the agent was reached over loopback.
        assert_eq!(validate(&plan_of(&["127.0.0.1:80"]), &agent, true), Ok(()));
    }

    #[test]
    fn results_must_answer_the_plan() {
        use crate::vocab::{Outcome, ProbeResult};
        let plan = plan_of(&["198.51.100.1:80", "198.51.100.1:81"]);
        let result =
            |id| ProbeResult { id, outcome: Outcome::Open, rtt_us: None, errno: None, attempts: 1, proven: false };
        let ok = ProbeResults { results: vec![result(0), result(1)], services: vec![] };
        assert_eq!(check_results(&plan, &ok), Ok(()));
        let flood = ProbeResults { results: (0..40_000).map(result).collect(), services: vec![] };
        assert_eq!(check_results(&plan, &flood), Err(ResultsError::ListenerCount { got: 40_000, planned: 2 }));
        let odd = ProbeResults { results: vec![result(0), result(7)], services: vec![] };
        assert_eq!(check_results(&plan, &odd), Err(ResultsError::BadIds));
        let busy =
            ProbeResults { results: vec![result(0), ProbeResult { attempts: 9, ..result(1) }], services: vec![] };
        assert_eq!(check_results(&plan, &busy), Err(ResultsError::TooManyAttempts));
    }

    #[test]
    fn oversized_plans_are_refused() {
        let agent = [ip("198.51.100.1")];
        let big = plan_of(&vec!["198.51.100.1:80"; MAX_PROBES + 1]);
        assert_eq!(validate(&big, &agent, false), Err(PlanError::TooManyProbes(MAX_PROBES + 1)));
        let mut bad_ids = plan_of(&["198.51.100.1:80"]);
        bad_ids.probes[0].id = 7;
        assert_eq!(validate(&bad_ids, &agent, false), Err(PlanError::BadIds));
        // Service probes obey the same target rules.
        let mut services = plan_of(&[]);
        services.services.push(ServiceProbe {
            id: 0,
            proto: Proto::Tcp,
            target: "198.51.100.9:3000".parse().expect("addr"),
        });
        assert!(matches!(validate(&services, &agent, false), Err(PlanError::NotAgentAddress(_))));
    }
}
