//! Finding agents on the LAN: the agent advertises itself over mDNS/DNS-SD
//! (`_lanreach._udp.local.`, its short key ID in the TXT record), and the peer browses.
//! Multicast is blocked on many Wi-Fi networks and unavailable to Termux, so the typed
//! address stays the primary path. The agent's mDNS host name (`NAME.local`) also
//! resolves here, for systems whose resolver does not do mDNS (Android).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use mdns_sd::{HostnameResolutionEvent, ServiceDaemon, ServiceEvent, ServiceInfo};

use crate::defaults::BROWSE_SETTLE;
use crate::id::KeyId;

/// The DNS-SD service type.
pub const SERVICE_TYPE: &str = "_lanreach._udp.local.";

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
#[error("mDNS failed")]
pub struct DiscoveryError(#[from] pub mdns_sd::Error);

/// A running advertisement; dropping it withdraws it.
pub struct Advertisement {
    daemon: ServiceDaemon,
    fullname: String,
}

impl Drop for Advertisement {
    fn drop(&mut self) {
        // Goodbye packets, then stop the daemon thread.
        let _ = self.daemon.unregister(&self.fullname);
        let _ = self.daemon.shutdown();
    }
}

/// Advertises an agent named `name` with key `id` on control `port`, on every
/// non-loopback interface.
pub fn advertise(name: &str, id: &KeyId, port: u16) -> Result<Advertisement, DiscoveryError> {
    let daemon = ServiceDaemon::new()?;
    let short = id.short();
    let instance = format!("{} {}", crate::text::printable(name, 40), &short[..4]);
    let host = format!("{}.local.", sanitize_host(name));
    let info = ServiceInfo::new(SERVICE_TYPE, &instance, &host, "", port, &[("id", short.as_str()), ("v", "1")][..])?
        .enable_addr_auto();
    let fullname = info.get_fullname().to_owned();
    daemon.register(info)?;
    Ok(Advertisement { daemon, fullname })
}

fn sanitize_host(name: &str) -> String {
    let clean: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    let clean = clean.trim_matches('-');
    if clean.is_empty() { "lanreach-agent".to_owned() } else { clean.chars().take(63).collect() }
}

/// An agent found on the LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its instance name.
    pub name: String,
    /// Its short key ID from the TXT record.
    pub id: String,
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// Its control port.
    pub port: u16,
}

/// Listens for agents for at most `wait` (less once answers have settled).
pub async fn browse(wait: Duration) -> Result<Vec<Found>, DiscoveryError> {
    let daemon = ServiceDaemon::new()?;
    let events = daemon.browse(SERVICE_TYPE)?;
    let mut found: HashMap<String, Found> = HashMap::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut settle_at: Option<tokio::time::Instant> = None;
    loop {
        let until = settle_at.map_or(deadline, |s| s.min(deadline));
        match tokio::time::timeout_at(until, events.recv_async()).await {
            Err(_) | Ok(Err(_)) => break,
            Ok(Ok(ServiceEvent::ServiceResolved(s))) => {
                let id = s.txt_properties.get_property_val_str("id").unwrap_or("").to_owned();
                let mut addresses: Vec<IpAddr> = s.addresses.iter().map(|a| a.to_ip_addr()).collect();
                addresses.sort_by_key(|ip| (ip.is_ipv6(), *ip));
                let name = s.fullname.strip_suffix(&format!(".{SERVICE_TYPE}")).unwrap_or(&s.fullname).to_owned();
                found.insert(s.fullname.clone(), Found { name, id, addresses, port: s.port });
                settle_at.get_or_insert_with(|| tokio::time::Instant::now() + BROWSE_SETTLE);
            }
            Ok(Ok(_)) => {}
        }
    }
    let _ = daemon.stop_browse(SERVICE_TYPE);
    let _ = daemon.shutdown();
    let mut out: Vec<Found> = found.into_values().collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The addresses of `NAME.local` over mDNS, asking for at most `wait` (less once
/// answers have settled); empty when nobody answered.
pub async fn resolve_host(name: &str, wait: Duration) -> Result<Vec<IpAddr>, DiscoveryError> {
    let host = format!("{}.", name.trim_end_matches('.').to_ascii_lowercase());
    let daemon = ServiceDaemon::new()?;
    let events = daemon.resolve_hostname(&host, Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)))?;
    let mut found: Vec<IpAddr> = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut settle_at: Option<tokio::time::Instant> = None;
    loop {
        let until = settle_at.map_or(deadline, |s| s.min(deadline));
        match tokio::time::timeout_at(until, events.recv_async()).await {
            Ok(Ok(HostnameResolutionEvent::AddressesFound(_, addrs))) => {
                for ip in addrs.iter().map(|a| a.to_ip_addr()) {
                    // A link-local answer needs a scope this list cannot carry.
                    let link_local = match ip {
                        IpAddr::V4(v4) => v4.is_link_local(),
                        IpAddr::V6(v6) => v6.is_unicast_link_local(),
                    };
                    if !link_local && !found.contains(&ip) {
                        found.push(ip);
                    }
                }
                settle_at.get_or_insert_with(|| tokio::time::Instant::now() + BROWSE_SETTLE);
            }
            Ok(Ok(HostnameResolutionEvent::SearchTimeout(_) | HostnameResolutionEvent::SearchStopped(_))) => break,
            Ok(Ok(_)) => {}
            Err(_) | Ok(Err(_)) => break,
        }
    }
    let _ = daemon.stop_resolve_hostname(&host);
    let _ = daemon.shutdown();
    found.sort_by_key(|ip| ip.is_ipv6());
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_dns_safe() {
        assert_eq!(sanitize_host("Bob's MacBook"), "Bob-s-MacBook");
        assert_eq!(sanitize_host("…"), "lanreach-agent");
    }
}
