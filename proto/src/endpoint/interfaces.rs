//! The host's interface addresses, classified (enumeration by the if-addrs crate),
//! with what decides how likely another device reaches them: which interfaces carry a
//! default route (`/proc/net/route`, `/proc/net/ipv6_route`) and which are virtual
//! devices (`/sys/devices/virtual/net`).

use std::collections::HashSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::addr::{InterfaceKind, ReachFacts, classify};
use crate::msg::HelloAddress;

/// One address of one interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceAddress {
    /// Interface name, e.g. `eth0`.
    pub interface: String,
    /// The address.
    pub ip: IpAddr,
    /// Interface index (the scope of IPv6 link-local addresses).
    pub index: Option<u32>,
    /// What kind of network it is on.
    pub kind: InterfaceKind,
    /// Its network's prefix length (`24` for a /24), when the system said.
    pub prefix: Option<u8>,
    /// Its interface carries a default route (of either family).
    #[serde(default)]
    pub default_route: bool,
    /// Its interface is a virtual device (veth, bridge, tunnel: no hardware behind it).
    #[serde(default)]
    pub virtual_device: bool,
}

impl InterfaceAddress {
    /// What decides how likely another device reaches this address.
    pub fn reach(&self) -> ReachFacts {
        ReachFacts {
            ip: self.ip,
            kind: self.kind,
            default_route: self.default_route,
            virtual_device: self.virtual_device,
        }
    }
}

/// Every address of every interface that is up, loopback included, sorted by kind.
pub fn list() -> std::io::Result<Vec<InterfaceAddress>> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let defaults = default_route_interfaces(&read("/proc/net/route"), &read("/proc/net/ipv6_route"));
    let mut out: Vec<InterfaceAddress> = if_addrs::get_if_addrs()?
        .into_iter()
        .filter(|i| i.is_oper_up() || i.is_loopback() || i.oper_status == if_addrs::IfOperStatus::Unknown)
        .map(|i| InterfaceAddress {
            kind: classify(&i.name, i.ip(), i.is_p2p()),
            ip: i.ip(),
            prefix: Some(match &i.addr {
                if_addrs::IfAddr::V4(a) => a.prefixlen,
                if_addrs::IfAddr::V6(a) => a.prefixlen,
            }),
            index: i.index,
            default_route: defaults.contains(&i.name),
            virtual_device: std::path::Path::new("/sys/devices/virtual/net").join(&i.name).exists(),
            interface: i.name,
        })
        .collect();
    out.sort_by(|a, b| (a.kind, &a.interface, a.ip).cmp(&(b.kind, &b.interface, b.ip)));
    out.dedup();
    Ok(out)
}

/// The addresses as a Hello lists them: most likely reached first
/// ([`crate::addr::reach_order`]), so the other side shows them in that order.
pub fn hello_addresses(addrs: &[InterfaceAddress]) -> Vec<HelloAddress> {
    let mut ordered: Vec<&InterfaceAddress> = addrs.iter().collect();
    crate::addr::reach_order(&mut ordered, |a| a.reach());
    ordered.iter().map(|a| HelloAddress { ip: a.ip, interface: a.interface.clone() }).collect()
}

/// The interfaces that carry a default route, from the text of `/proc/net/route` (IPv4)
/// and `/proc/net/ipv6_route` (IPv6). Reject routes (an "unreachable" default on `lo`)
/// do not count. Empty where the files do not exist (not Linux).
pub fn default_route_interfaces(route_v4: &str, route_v6: &str) -> HashSet<String> {
    // Columns: Iface Destination Gateway Flags RefCnt Use Metric Mask …
    let v4 = route_v4.lines().skip(1).filter_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        match cols.as_slice() {
            [iface, "00000000", _, flags, _, _, _, "00000000", ..] if !rejected(flags) => Some(*iface),
            _ => None,
        }
    });
    // Columns: destination prefix-length source source-length next-hop metric refcnt
    // use flags iface, in hex.
    let v6 = route_v6.lines().filter_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        match cols.as_slice() {
            [dest, "00", _, _, _, _, _, _, flags, iface]
                if dest.chars().all(|c| c == '0') && !rejected(flags) && *iface != "lo" =>
            {
                Some(*iface)
            }
            _ => None,
        }
    });
    v4.chain(v6).map(str::to_owned).collect()
}

/// Whether a route's hex flags include RTF_REJECT.
fn rejected(flags: &str) -> bool {
    const RTF_REJECT: u32 = 0x0200;
    u32::from_str_radix(flags, 16).map_or(true, |f| f & RTF_REJECT != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_routes_come_from_the_routing_tables() {
        let v4 = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  ctr0\t007100CB\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                  eth0\t00000000\tFE6433C6\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                  eth0\t006433C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let v6 = "20010db8000100000000000000000000 40 00000000000000000000000000000000 00 \
                  00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth1\n\
                  00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
                  20010db80002000000000000000000fe 00000400 00000001 00000000 00000003 wlan0\n\
                  00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
                  00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n";
        let got = default_route_interfaces(v4, v6);
        let mut got: Vec<&str> = got.iter().map(String::as_str).collect();
        got.sort();
        assert_eq!(got, ["eth0", "wlan0"]);
        assert!(default_route_interfaces("", "").is_empty());
    }
}
