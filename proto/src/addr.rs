//! Addresses: their canonical form, what kind of network an interface address is on
//! (loopback, LAN, link-local, container bridge, VPN), by name and address, and the
//! source a connection counts against for per-source limits.

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
