//! The host's interface addresses, classified (enumeration by the if-addrs crate).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::addr::{InterfaceKind, classify};
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
}

/// Every address of every interface that is up, loopback included, sorted by kind.
pub fn list() -> std::io::Result<Vec<InterfaceAddress>> {
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
            interface: i.name,
        })
        .collect();
    out.sort_by(|a, b| (a.kind, &a.interface, a.ip).cmp(&(b.kind, &b.interface, b.ip)));
    out.dedup();
    Ok(out)
}

/// The addresses as a Hello lists them.
pub fn hello_addresses(addrs: &[InterfaceAddress]) -> Vec<HelloAddress> {
    addrs.iter().map(|a| HelloAddress { ip: a.ip, interface: a.interface.clone() }).collect()
}
