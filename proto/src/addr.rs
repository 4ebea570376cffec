//! Addresses: their canonical form, what kind of network an interface address is on
//! (loopback, LAN, link-local, container bridge, VPN), by name and address, and the
//! source a connection counts against for per-source limits, and the order in which
//! another device is most likely to reach them.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};

/// What kind of network an interface address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterfaceKind {
    /// 127.0.0.0/8, ::1, or the `lo` interface: this machine only.
    Loopback,
    /// An ordinary LAN address (Ethernet, Wi-Fi).
    Lan,
    /// IPv6 fe80::/10 or IPv4 169.254/16: one link only, needs a scope.
    LinkLocal,
    /// A bridge or veth of containers and VMs (docker0, br-*, veth*, virbr*, cni*, …).
    Virtual,
    /// A VPN or overlay tunnel (tun*, wg*, tailscale*, utun*, zt*, …).
    Vpn,
}

const VIRTUAL_PREFIXES: &[&str] = &[
    "docker", "br-", "veth", "virbr", "cni", "flannel", "cali", "vmnet", "vboxnet", "podman", "lxcbr", "lxdbr", "kube",
];
const VPN_PREFIXES: &[&str] = &["tun", "tap", "wg", "tailscale", "utun", "zt", "ppp", "ipsec", "nordlynx", "proton"];

/// Classifies an interface address. `point_to_point` is the interface's
/// IFF_POINTOPOINT flag, which most tunnels set.
pub fn classify(name: &str, ip: IpAddr, point_to_point: bool) -> InterfaceKind {
    if ip.is_loopback() || name == "lo" {
        return InterfaceKind::Loopback;
    }
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    };
    let lower = name.to_ascii_lowercase();
    if VPN_PREFIXES.iter().any(|p| lower.starts_with(p)) || (point_to_point && !link_local) {
        InterfaceKind::Vpn
    } else if link_local {
        InterfaceKind::LinkLocal
    } else if VIRTUAL_PREFIXES.iter().any(|p| lower.starts_with(p)) {
        InterfaceKind::Virtual
    } else {
        InterfaceKind::Lan
    }
}

impl InterfaceKind {
    /// Whether another LAN device would normally dial this address.
    pub fn lan_facing(self) -> bool {
        matches!(self, InterfaceKind::Lan | InterfaceKind::Vpn)
    }
}

/// Whether an address is meant for a private network or for the Internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// RFC 1918 and shared (100.64/10) IPv4, IPv6 unique local (fc00::/7), and the
    /// documentation ranges (192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32),
    /// which stand in for a LAN in examples and tests.
    Private,
    /// Anything else: a public or global address (on a LAN, often a temporary IPv6
    /// address that a browser treats as public).
    Global,
}

/// The scope of `ip` (an IPv4-mapped IPv6 address counts as its IPv4 address).
pub fn scope(ip: IpAddr) -> Scope {
    let private = match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_private()
                || (a == 100 && (64..128).contains(&b))
                || (a, b, c) == (192, 0, 2)
                || (a, b, c) == (198, 51, 100)
                || (a, b, c) == (203, 0, 113)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            (s[0] & 0xfe00) == 0xfc00 || (s[0], s[1]) == (0x2001, 0x0db8)
        }
    };
    if private { Scope::Private } else { Scope::Global }
}

/// What decides how likely another device reaches an address of this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReachFacts {
    /// The address.
    pub ip: IpAddr,
    /// Its interface's kind.
    pub kind: InterfaceKind,
    /// Its interface carries a default route (of either family).
    pub default_route: bool,
    /// Its interface is a virtual device (no hardware behind it: veth, bridge, tunnel).
    /// Container and VM links not named like docker0 or veth* show up this way.
    pub virtual_device: bool,
}

/// The sort key of [`reach_order`]: smaller is more likely reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReachRank {
    kind: u8,
    off_default_route: bool,
    virtual_device: bool,
    scope: Scope,
    ipv6: bool,
}

impl ReachFacts {
    /// This address's rank: LAN interfaces before VPNs before container and VM links;
    /// among them the interface of the default route first, then hardware before
    /// virtual devices; on one interface private (and ULA) before global addresses,
    /// IPv4 before IPv6.
    pub fn rank(&self) -> ReachRank {
        let kind = match self.kind {
            InterfaceKind::Lan => 0,
            InterfaceKind::Vpn => 1,
            InterfaceKind::Virtual => 2,
            InterfaceKind::LinkLocal => 3,
            InterfaceKind::Loopback => 4,
        };
        ReachRank {
            kind,
            off_default_route: !self.default_route,
            virtual_device: self.virtual_device,
            scope: scope(self.ip),
            ipv6: self.ip.is_ipv6(),
        }
    }
}

/// Sorts `items` by how likely another device of the LAN reaches them, best first (see
/// [`ReachFacts::rank`]); ties keep their order. Measured on a host with a container
/// link `ctr0` beside `eth0`: interface-name order offered `ctr0` first, which the
/// other device could not reach.
pub fn reach_order<T>(items: &mut [T], facts: impl Fn(&T) -> ReachFacts) {
    items.sort_by_key(|item| facts(item).rank());
}

/// A host's addresses grouped by interface for display: the addresses that matter
/// shown, the rest counted (see [`group_addresses`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressGroups {
    /// Each interface with an address shown, in the order first met, with those
    /// addresses.
    pub shown: Vec<(String, Vec<IpAddr>)>,
    /// Link-local addresses left out.
    pub hidden_link_local: usize,
    /// Interfaces whose container, VM or VPN addresses were left out.
    pub hidden_links: Vec<String>,
}

/// Groups `(interface, address)` pairs by interface. Loopback addresses are never
/// listed. Unless `all`, an address is listed only where it matters: a LAN address, or
/// one in `in_use` (the address dialled, or the one the other side came from).
/// Link-local addresses (every interface has one) and container and VPN links are
/// otherwise counted, not listed.
pub fn group_addresses<'a>(
    addrs: impl IntoIterator<Item = (&'a str, IpAddr)>,
    in_use: &[IpAddr],
    all: bool,
) -> AddressGroups {
    let in_use: Vec<IpAddr> = in_use.iter().map(|ip| ip.to_canonical()).collect();
    let mut out = AddressGroups::default();
    for (interface, ip) in addrs {
        let kind = classify(interface, ip, false);
        if kind == InterfaceKind::Loopback {
            continue;
        }
        if all || kind == InterfaceKind::Lan || in_use.contains(&ip.to_canonical()) {
            match out.shown.iter_mut().find(|(name, _)| name == interface) {
                Some((_, ips)) if !ips.contains(&ip) => ips.push(ip),
                Some(_) => {}
                None => out.shown.push((interface.to_owned(), vec![ip])),
            }
        } else if kind == InterfaceKind::LinkLocal {
            out.hidden_link_local += 1;
        } else if !out.hidden_links.iter().any(|name| name == interface) {
            out.hidden_links.push(interface.to_owned());
        }
    }
    out
}

/// `addr` with an IPv4-mapped IPv6 address (`[::ffff:198.51.100.2]:5000`, as a dual-stack
/// socket reports IPv4 peers) written as plain IPv4; other addresses unchanged (an IPv6
/// scope stays).
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

/// Where a connection comes from, as per-source limits count it: an IPv4 address, or the
/// /64 an IPv6 address is in. A device picks new addresses in its /64 at will (privacy
/// addresses), so limits per IPv6 address would limit nothing; the price is that devices
/// sharing a /64 share their limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source(IpAddr);

impl Source {
    /// The source of a connection from `ip` (an IPv4-mapped address counts as IPv4).
    pub fn of(ip: IpAddr) -> Source {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                Source(IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)))
            }
            v4 => Source(v4),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// Whether `ip` is in `net/prefix` (IPv4-mapped addresses as IPv4).
pub fn in_prefix(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip.to_canonical(), net.to_canonical()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let bits = u32::from(prefix.min(32));
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let bits = u32::from(prefix.min(128));
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InterfaceKind::*;

    fn kind(name: &str, ip: &str) -> InterfaceKind {
        classify(name, ip.parse().expect("ip"), false)
    }

    #[test]
    fn names_and_addresses_classify() {
        assert_eq!(kind("lo", "127.0.0.1"), Loopback);
        assert_eq!(kind("lo", "::1"), Loopback);
        assert_eq!(kind("eth0", "198.51.100.7"), Lan);
        assert_eq!(kind("wlp2s0", "2001:db8::7"), Lan);
        assert_eq!(kind("eth0", "fe80::1"), LinkLocal);
        assert_eq!(kind("eth0", "169.254.3.4"), LinkLocal);
        assert_eq!(kind("docker0", "203.0.113.1"), Virtual);
        assert_eq!(kind("br-1a2b3c", "203.0.113.1"), Virtual);
        assert_eq!(kind("veth12ab", "fe80::2"), LinkLocal);
        assert_eq!(kind("wg0", "203.0.113.9"), Vpn);
        assert_eq!(kind("tailscale0", "2001:db8::9"), Vpn);
        assert_eq!(classify("ipvpn", "203.0.113.9".parse().expect("ip"), true), Vpn);
    }

    #[test]
    fn mapped_addresses_become_ipv4() {
        let mapped: SocketAddr = "[::ffff:198.51.100.2]:5000".parse().expect("addr");
        assert_eq!(canonical(mapped).to_string(), "198.51.100.2:5000");
        let scoped: SocketAddr = "[fe80::1%2]:5000".parse().expect("addr");
        assert_eq!(canonical(scoped), scoped);
    }

    fn facts(ip: &str, kind: InterfaceKind, default_route: bool, virtual_device: bool) -> ReachFacts {
        ReachFacts { ip: ip.parse().expect("ip"), kind, default_route, virtual_device }
    }

    fn ordered(mut items: Vec<ReachFacts>) -> Vec<String> {
        reach_order(&mut items, |f| *f);
        items.iter().map(|f| f.ip.to_string()).collect()
    }

    #[test]
    fn scopes() {
        for private in ["10.1.2.3", "172.16.0.1", "192.168.1.5", "100.64.0.1", "198.51.100.7", "fd12::1", "2001:db8::1"]
        {
            assert_eq!(scope(private.parse().expect("ip")), Scope::Private, "{private}");
        }
        for global in ["8.8.8.8", "100.128.0.1", "2a01:4f8::1", "::ffff:8.8.8.8"] {
            assert_eq!(scope(global.parse().expect("ip")), Scope::Global, "{global}");
        }
        assert_eq!(scope("::ffff:192.168.1.5".parse().expect("ip")), Scope::Private);
    }

    #[test]
    fn the_default_route_interface_comes_before_a_container_link_named_before_it() {
        // As enumerated (interface-name order): ctr0 before eth0.
        let got = ordered(vec![
            facts("203.0.113.1", Lan, false, true),
            facts("198.51.100.1", Lan, true, true),
            facts("2001:db8:1::1", Lan, true, true),
        ]);
        assert_eq!(got, ["198.51.100.1", "2001:db8:1::1", "203.0.113.1"]);
    }

    #[test]
    fn hardware_before_virtual_devices_when_no_default_route_decides() {
        let got = ordered(vec![facts("203.0.113.1", Lan, false, true), facts("198.51.100.1", Lan, false, false)]);
        assert_eq!(got, ["198.51.100.1", "203.0.113.1"]);
    }

    #[test]
    fn private_before_global_and_ipv4_before_ipv6_on_one_interface() {
        let got = ordered(vec![
            facts("2a01:4f8::7", Lan, true, false),
            facts("fd00::7", Lan, true, false),
            facts("192.168.1.7", Lan, true, false),
        ]);
        assert_eq!(got, ["192.168.1.7", "fd00::7", "2a01:4f8::7"]);
    }

    #[test]
    fn vpn_and_container_links_come_last_even_with_the_default_route() {
        let got = ordered(vec![
            facts("172.17.0.1", Virtual, false, true),
            facts("100.100.1.1", Vpn, true, true),
            facts("192.168.1.7", Lan, false, false),
        ]);
        assert_eq!(got, ["192.168.1.7", "100.100.1.1", "172.17.0.1"]);
    }

    #[test]
    fn addresses_group_by_interface_and_only_those_that_matter_are_listed() {
        let addrs: Vec<(&str, IpAddr)> = [
            ("lo", "127.0.0.1"),
            ("eth0", "198.51.100.1"),
            ("eth0", "2001:db8:1::1"),
            ("eth0", "fe80::1"),
            ("docker0", "172.17.0.1"),
            ("veth1a2b", "fe80::2"),
            ("wg0", "10.8.0.2"),
            ("wlan0", "203.0.113.9"),
        ]
        .iter()
        .map(|(i, ip)| (*i, ip.parse().expect("ip")))
        .collect();
        let groups = group_addresses(addrs.iter().copied(), &[], false);
        let shown: Vec<(&str, Vec<String>)> =
            groups.shown.iter().map(|(i, ips)| (i.as_str(), ips.iter().map(ToString::to_string).collect())).collect();
        assert_eq!(
            shown,
            [
                ("eth0", vec!["198.51.100.1".to_owned(), "2001:db8:1::1".to_owned()]),
                ("wlan0", vec!["203.0.113.9".to_owned()])
            ]
        );
        assert_eq!(
            (groups.hidden_link_local, groups.hidden_links.clone()),
            (2, vec!["docker0".to_owned(), "wg0".to_owned()])
        );

        // The VPN address the other side came from matters.
        let groups = group_addresses(addrs.iter().copied(), &["10.8.0.2".parse().expect("ip")], false);
        assert!(groups.shown.iter().any(|(i, _)| i == "wg0"));
        assert_eq!(groups.hidden_links, ["docker0"]);

        let all = group_addresses(addrs.iter().copied(), &[], true);
        assert_eq!(all.shown.len(), 5, "every interface but loopback: {all:?}");
        assert_eq!((all.hidden_link_local, all.hidden_links.len()), (0, 0));
    }

    #[test]
    fn sources_are_ipv4_addresses_and_ipv6_64s() {
        let source = |ip: &str| Source::of(ip.parse().expect("ip"));
        assert_eq!(source("198.51.100.2").to_string(), "198.51.100.2");
        assert_ne!(source("198.51.100.2"), source("198.51.100.3"));
        assert_eq!(source("::ffff:198.51.100.2"), source("198.51.100.2"));
        assert_eq!(source("2001:db8:1::2"), source("2001:db8:1::ffff:1234:5678:9abc"));
        assert_ne!(source("2001:db8:1::2"), source("2001:db8:2::2"));
        assert_eq!(source("2001:db8:1::2").to_string(), "2001:db8:1::/64");
    }

    #[test]
    fn lan_facing_kinds() {
        assert!(Lan.lan_facing() && Vpn.lan_facing());
        assert!(!Loopback.lan_facing() && !Virtual.lan_facing() && !LinkLocal.lan_facing());
    }
}
