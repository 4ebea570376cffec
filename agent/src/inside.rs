//! The agent's inside view of one run: which of its addresses a plan targets, the plan,
//! the inside facts about the user's ports (sockets, owners, Docker, a local HTTP
//! request) and how the agent and the peer appear in the report.

use std::net::{IpAddr, SocketAddr};

use lanreach_proto::KeyId;
use lanreach_proto::addr::InterfaceKind;
use lanreach_proto::defaults::LOCAL_HTTP_TIMEOUT;
use lanreach_proto::endpoint::engine;
use lanreach_proto::endpoint::interfaces::InterfaceAddress;
use lanreach_proto::facts::{CheckedPort, PortSource, ServiceInput, SocketFact, is_wsl2};
use lanreach_proto::firewall::Firewall;
use lanreach_proto::plan::{self, ProbePlan};
use lanreach_proto::report::{AddressInfo, AgentInfo, PeerInfo};
use lanreach_proto::vocab::{ListenerSpec, ProbeResults, Proto};

use crate::sockets::Inventory;
use rand::RngCore;
use rand::rngs::OsRng;

/// The agent as a report shows it.
pub(crate) fn agent_info(name: &str, id: KeyId, interfaces: &[InterfaceAddress]) -> AgentInfo {
    AgentInfo {
        name: name.to_owned(),
        id: id.short(),
        addresses: interfaces
            .iter()
            .map(|i| AddressInfo { ip: i.ip, interface: i.interface.clone(), kind: i.kind, prefix: i.prefix })
            .collect(),
    }
}

/// The addresses a plan targets: the dialled one, and the LAN addresses of the families
/// the peer has (`peer_addresses`, from its Hello). VPN addresses only when dialled: a
/// LAN peer outside the tunnel cannot reach them, and their silence is no firewall.
/// A peer that dialled a loopback address runs on this machine: it probes that
/// loopback address only (`--local` is the self-check of the LAN addresses).
pub(crate) fn plan_targets(
    interfaces: &[InterfaceAddress],
    dialled: Option<IpAddr>,
    peer_addresses: &[IpAddr],
) -> Vec<IpAddr> {
    let peer_has = |v4: bool| {
        peer_addresses
            .iter()
            .map(|a| a.to_canonical())
            .any(|a| a.is_ipv4() == v4 && plan::forbidden(a, false).is_none())
    };
    lan_targets(interfaces, dialled, peer_has)
}

/// The addresses a browser run targets: as for a peer, but of both families (a page
/// cannot list its addresses; its knocks find out which it reaches), and the address the
/// page came from.
pub(crate) fn browser_targets(interfaces: &[InterfaceAddress], page_from: IpAddr) -> Vec<IpAddr> {
    lan_targets(interfaces, Some(page_from), |_| true)
}

/// The LAN addresses of the families `wanted` (by `is_ipv4`) that may be probed, and the
/// dialled address; only a dialled loopback address when it is one.
fn lan_targets(interfaces: &[InterfaceAddress], dialled: Option<IpAddr>, wanted: impl Fn(bool) -> bool) -> Vec<IpAddr> {
    let dialled = dialled.map(|ip| ip.to_canonical());
    if let Some(ip) = dialled.filter(|ip| ip.is_loopback()) {
        return vec![ip];
    }
    let mut targets: Vec<IpAddr> = interfaces
        .iter()
        .filter(|i| i.kind == InterfaceKind::Lan && wanted(i.ip.is_ipv4()) && plan::forbidden(i.ip, false).is_none())
        .map(|i| i.ip)
        .collect();
    if let Some(ip) = dialled
        && !targets.contains(&ip)
    {
        targets.push(ip);
    }
    targets
}

/// Most ports `--exposed` adds to a plan.
pub(crate) const MAX_EXPOSED_PORTS: usize = 128;

/// What the user asked to diagnose besides the matrix.
#[derive(Debug, Clone, Default)]
pub(crate) struct Checks {
    /// `--check` ports.
    pub ports: Vec<CheckedPort>,
    /// `--exposed`.
    pub exposed: bool,
}

impl Checks {
    /// The ports to probe: the checked ones, then (with `--exposed`) every listening
    /// TCP port but lanreach's own (`skip`). Scans the socket tables only for `--exposed`.
    pub(crate) async fn ports_to_probe(&self, skip: &[u16]) -> Vec<(CheckedPort, PortSource)> {
        let mut out: Vec<(CheckedPort, PortSource)> = self.ports.iter().map(|p| (*p, PortSource::Check)).collect();
        if self.exposed {
            let inventory = inventory().await;
            let extra = inventory.tcp_ports(skip).into_iter().filter(|p| !self.ports.contains(p));
            out.extend(extra.take(MAX_EXPOSED_PORTS).map(|p| (p, PortSource::Exposed)));
        }
        out
    }
}

/// One reading of a fact shared by the rounds that ask while it is under way: with
/// sixteen peers at once, the socket table (every process's fds walked), the firewall's
/// rules and Docker's view are read about once, not sixteen times. A round gets a
/// reading that ended after it asked (so began at most one read's time, milliseconds,
/// before), or makes a new one.
struct Shared<T> {
    last: tokio::sync::Mutex<Option<(std::time::Instant, std::sync::Arc<T>)>>,
}

impl<T> Shared<T> {
    const fn new() -> Self {
        Shared { last: tokio::sync::Mutex::const_new(None) }
    }

    async fn get<F: std::future::Future<Output = T>>(&self, read: impl FnOnce() -> F) -> std::sync::Arc<T> {
        let asked = std::time::Instant::now();
        let mut last = self.last.lock().await;
        if let Some((ended, value)) = &*last
            && *ended >= asked
        {
            return value.clone();
        }
        let value = std::sync::Arc::new(read().await);
        *last = Some((std::time::Instant::now(), value.clone()));
        value
    }
}

static INVENTORY: Shared<Inventory> = Shared::new();
static FIREWALL: Shared<Firewall> = Shared::new();
static DOCKER: Shared<crate::docker::DockerView> = Shared::new();

/// The socket inventory, read on a blocking thread (it walks every process's fds).
pub(crate) async fn inventory() -> std::sync::Arc<Inventory> {
    INVENTORY.get(|| async { tokio::task::spawn_blocking(crate::sockets::listening).await.unwrap_or_default() }).await
}

/// A fresh plan over `listeners` and `ports` with a random session and key.
pub(crate) fn new_plan(
    listeners: &[ListenerSpec],
    targets: &[IpAddr],
    allow_loopback: bool,
    ports: &[(CheckedPort, PortSource)],
) -> ProbePlan {
    let mut session = [0u8; 16];
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut session);
    OsRng.fill_bytes(&mut key);
    let services = plan::service_probes(ports.iter().map(|(p, _)| (p.proto, p.port)), targets, allow_loopback);
    ProbePlan { session, key, probes: plan::build(listeners, targets, allow_loopback), services }
}

/// The UDP ports whose flows the connection-tracking table is watched for during a run
/// of `plan`: its UDP service ports, and its UDP test listeners' (the reference that
/// shows whether the table tracks at all). None when no UDP port is checked.
pub(crate) fn conntrack_ports(plan: &ProbePlan) -> Vec<u16> {
    let services: Vec<u16> = plan.services.iter().filter(|p| p.proto == Proto::Udp).map(|p| p.target.port()).collect();
    if services.is_empty() {
        return services;
    }
    let mut ports: Vec<u16> =
        plan.probes.iter().filter(|p| p.proto == Proto::Udp).map(|p| p.target.port()).chain(services).collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// The inside facts about `ports`, read now: sockets, owners, Docker, and for ports the
/// peer got HTTP 400/403/421 from, what this machine gets with `Host: localhost`.
///
/// Docker's facts come from `docker` when it holds them and `refresh` is false (watch
/// mode re-reads them every few rounds; the socket table is read every time, which is
/// how a rebind is seen). For a `browser` run, which sees no status, the local request
/// is made for every TCP port something listens on: whether the service speaks HTTP at
/// all tells a firewall's rejection from a service a browser cannot talk to.
pub(crate) async fn service_inputs(
    ports: &[(CheckedPort, PortSource)],
    plan: &ProbePlan,
    results: &ProbeResults,
    docker: &mut Option<crate::docker::DockerView>,
    refresh: bool,
    browser: bool,
) -> Vec<ServiceInput> {
    if ports.is_empty() {
        return Vec::new();
    }
    let inventory = inventory().await;
    if refresh || docker.is_none() {
        *docker = Some((*DOCKER.get(|| crate::docker::inspect(&inventory)).await).clone());
    }
    let docker = docker.clone().unwrap_or_default();
    let mut out = Vec::new();
    for (port, source) in ports {
        let mut listeners = inventory.for_port(*port);
        crate::sockets::refine_v6only(&mut listeners).await;
        let rejected = plan.services.iter().any(|p| {
            p.target.port() == port.port
                && results.services.iter().any(|r| r.id == p.id && matches!(r.http_status, Some(400 | 403 | 421)))
        });
        let ask = rejected || (browser && port.proto == Proto::Tcp);
        let local_http_status = match local_address(&listeners, port.port).filter(|_| ask) {
            Some(addr) => engine::http_status_for_host(addr, "localhost", LOCAL_HTTP_TIMEOUT).await,
            None => None,
        };
        out.push(ServiceInput {
            port: *port,
            source: *source,
            listeners,
            docker: docker.for_port(*port),
            unpublished: docker.unpublished_for_port(*port),
            local_http_status,
        });
    }
    out
}

/// An address of this machine where one of `listeners` accepts connections.
fn local_address(listeners: &[SocketFact], port: u16) -> Option<SocketAddr> {
    let l = listeners.first()?;
    let ip = match l.bind.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Some(SocketAddr::new(ip, port))
}

/// Whether this kernel is WSL2's.
pub(crate) fn wsl2() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|r| is_wsl2(&r)).unwrap_or(false)
}

/// The firewall's rules for a round that checks `ports`: read when there are ports to
/// judge, and kept in `cache` between watch rounds unless `refresh`.
pub(crate) async fn firewall(
    ports: &[(CheckedPort, PortSource)],
    cache: &mut Option<Firewall>,
    refresh: bool,
) -> Firewall {
    if ports.is_empty() {
        return Firewall::NotRead;
    }
    if refresh || cache.is_none() {
        *cache = Some((*FIREWALL.get(crate::firewall::read).await).clone());
    }
    cache.clone().unwrap_or(Firewall::NotRead)
}

/// The interface an address belongs to.
pub(crate) fn interface_of(ip: IpAddr, interfaces: &[InterfaceAddress]) -> Option<String> {
    let ip = ip.to_canonical();
    interfaces.iter().find(|i| i.ip == ip).map(|i| {
        if i.kind == InterfaceKind::Loopback { format!("{} (loopback)", i.interface) } else { i.interface.clone() }
    })
}

/// What the agent knows about one peer.
#[derive(Debug, Clone)]
pub(crate) struct PeerFacts {
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

/// The peer as a report shows it.
pub(crate) fn peer_info(peer: &PeerFacts, interfaces: &[InterfaceAddress]) -> PeerInfo {
    PeerInfo {
        name: peer.name.clone(),
        id: peer.id.short(),
        seen_from: Some(peer.from),
        dialled: peer.arrived_at,
        arrival_interface: peer.arrived_at.and_then(|ip| interface_of(ip, interfaces)),
        addresses: peer.addresses.clone(),
        probe_sources: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, ip: &str, kind: InterfaceKind) -> InterfaceAddress {
        InterfaceAddress {
            interface: name.into(),
            ip: ip.parse().expect("ip"),
            index: Some(2),
            kind,
            prefix: None,
            default_route: false,
            virtual_device: false,
        }
    }

    #[test]
    fn targets_are_lan_addresses_and_the_dialled_one() {
        let ifaces = [
            iface("lo", "127.0.0.1", InterfaceKind::Loopback),
            iface("eth0", "198.51.100.1", InterfaceKind::Lan),
            iface("docker0", "203.0.113.1", InterfaceKind::Virtual),
        ];
        let ip = |s: &str| -> IpAddr { s.parse().expect("ip") };
        let peer = [ip("198.51.100.2"), ip("fe80::2")];
        assert_eq!(plan_targets(&ifaces, Some(ip("198.51.100.1")), &peer), [ip("198.51.100.1")]);
        assert_eq!(plan_targets(&ifaces, Some(ip("::ffff:127.0.0.1")), &peer), [ip("127.0.0.1")]);
        assert_eq!(plan_targets(&ifaces, Some(ip("203.0.113.1")), &peer), [ip("198.51.100.1"), ip("203.0.113.1")]);
        // A VPN address is a target only when dialled; IPv6 only when the peer has IPv6.
        let mut more = ifaces.to_vec();
        more.push(iface("wg0", "203.0.113.9", InterfaceKind::Vpn));
        more.push(iface("eth0", "2001:db8::1", InterfaceKind::Lan));
        assert_eq!(plan_targets(&more, Some(ip("198.51.100.1")), &peer), [ip("198.51.100.1")]);
        let peer6 = [ip("198.51.100.2"), ip("2001:db8::2")];
        assert_eq!(plan_targets(&more, Some(ip("198.51.100.1")), &peer6), [ip("198.51.100.1"), ip("2001:db8::1")]);
        assert_eq!(interface_of(ip("127.0.0.1"), &ifaces).as_deref(), Some("lo (loopback)"));
    }

    #[test]
    fn a_browser_run_probes_every_lan_address_of_both_families() {
        let ifaces = [
            iface("lo", "127.0.0.1", InterfaceKind::Loopback),
            iface("eth0", "198.51.100.1", InterfaceKind::Lan),
            iface("eth0", "2001:db8::1", InterfaceKind::Lan),
            iface("eth0", "fe80::1", InterfaceKind::LinkLocal),
            iface("docker0", "203.0.113.1", InterfaceKind::Virtual),
        ];
        let ip = |s: &str| -> IpAddr { s.parse().expect("ip") };
        assert_eq!(browser_targets(&ifaces, ip("198.51.100.1")), [ip("198.51.100.1"), ip("2001:db8::1")]);
        assert_eq!(browser_targets(&ifaces, ip("::ffff:127.0.0.1")), [ip("127.0.0.1")]);
        assert_eq!(
            browser_targets(&ifaces, ip("203.0.113.1")),
            [ip("198.51.100.1"), ip("2001:db8::1"), ip("203.0.113.1")],
            "the page's own address too"
        );
    }
}
