//! One authenticated peer's session: Hello, the probe plan, the peer's results, and the
//! report joining them with what this machine's listeners saw.

use std::net::{IpAddr, SocketAddr};

use lanreach_proto::KeyId;
use lanreach_proto::endpoint::interfaces::InterfaceAddress;
use lanreach_proto::iface::InterfaceKind;
use lanreach_proto::plan::{self, ListenerSpec, ProbePlan};
use lanreach_proto::report::{AddressInfo, AgentInfo, ListenerHit, Mode, PeerInfo, ProbeResult, Report, ReportParts};
use rand::RngCore;
use rand::rngs::OsRng;

/// The agent as a report shows it.
pub fn agent_info(name: &str, id: KeyId, interfaces: &[InterfaceAddress]) -> AgentInfo {
    AgentInfo {
        name: name.to_owned(),
        id: id.short(),
        addresses: interfaces
            .iter()
            .map(|i| AddressInfo { ip: i.ip, interface: i.interface.clone(), kind: i.kind })
            .collect(),
    }
}

/// The addresses a plan targets: the LAN-facing ones, plus the one the peer dialled.
/// A peer that dialled a loopback address runs on this machine: it probes that
/// loopback address only (`--local` is the self-check of the LAN addresses).
pub fn plan_targets(interfaces: &[InterfaceAddress], dialled: Option<IpAddr>) -> Vec<IpAddr> {
    if let Some(ip) = dialled.map(|ip| ip.to_canonical()).filter(|ip| ip.is_loopback()) {
        return vec![ip];
    }
    let mut targets: Vec<IpAddr> = interfaces.iter().filter(|i| i.kind.lan_facing()).map(|i| i.ip).collect();
    if let Some(ip) = dialled.map(|ip| ip.to_canonical())
        && !targets.contains(&ip)
    {
        targets.push(ip);
    }
    targets
}

/// A fresh plan over `listeners` with a random session and key.
pub fn new_plan(listeners: &[ListenerSpec], targets: &[IpAddr], allow_loopback: bool) -> ProbePlan {
    let mut session = [0u8; 16];
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut session);
    OsRng.fill_bytes(&mut key);
    ProbePlan { session, key, probes: plan::build(listeners, targets, allow_loopback) }
}

/// The interface an address belongs to.
pub fn interface_of(ip: IpAddr, interfaces: &[InterfaceAddress]) -> Option<String> {
    let ip = ip.to_canonical();
    interfaces.iter().find(|i| i.ip == ip).map(|i| {
        if i.kind == InterfaceKind::Loopback { format!("{} (loopback)", i.interface) } else { i.interface.clone() }
    })
}

/// What the agent knows about one peer.
#[derive(Debug, Clone)]
pub struct PeerFacts {
    /// Its name (sanitised).
    pub name: String,
    /// Its key ID.
    pub id: KeyId,
    /// Its control connection's source address.
    pub from: SocketAddr,
    /// The agent address its control connection arrived at.
    pub arrived_at: Option<IpAddr>,
    /// The addresses it declared.
    pub addresses: Vec<IpAddr>,
}

/// The report for one peer session.
pub fn peer_report(
    agent: AgentInfo,
    peer: &PeerFacts,
    interfaces: &[InterfaceAddress],
    listeners: &[ListenerSpec],
    plan: &ProbePlan,
    results: &[ProbeResult],
    hits: &[ListenerHit],
) -> Report {
    let info = PeerInfo {
        name: peer.name.clone(),
        id: peer.id.short(),
        seen_from: Some(peer.from),
        arrival_interface: peer.arrived_at.and_then(|ip| interface_of(ip, interfaces)),
        addresses: peer.addresses.clone(),
        probe_sources: Vec::new(),
    };
    lanreach_proto::report::assemble(ReportParts {
        mode: Mode::Peer,
        agent,
        peer: info,
        listeners,
        plan: &plan.probes,
        results,
        hits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, ip: &str, kind: InterfaceKind) -> InterfaceAddress {
        InterfaceAddress { interface: name.into(), ip: ip.parse().expect("ip"), index: Some(2), kind }
    }

    #[test]
    fn targets_are_lan_addresses_and_the_dialled_one() {
        let ifaces = [
            iface("lo", "127.0.0.1", InterfaceKind::Loopback),
            iface("eth0", "198.51.100.1", InterfaceKind::Lan),
            iface("docker0", "203.0.113.1", InterfaceKind::Virtual),
        ];
        let ip = |s: &str| -> IpAddr { s.parse().expect("ip") };
        assert_eq!(plan_targets(&ifaces, Some(ip("198.51.100.1"))), [ip("198.51.100.1")]);
        assert_eq!(plan_targets(&ifaces, Some(ip("::ffff:127.0.0.1"))), [ip("127.0.0.1")]);
        assert_eq!(plan_targets(&ifaces, Some(ip("203.0.113.1"))), [ip("198.51.100.1"), ip("203.0.113.1")]);
        assert_eq!(interface_of(ip("127.0.0.1"), &ifaces).as_deref(), Some("lo (loopback)"));
    }
}
