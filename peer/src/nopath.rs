//! The peer's own facts when the agent does not answer (`lanreach_proto::nopath` names
//! the cause from them): its addresses, where the system would send to each agent
//! address, a side probe of the control port on a connected UDP socket (which, unlike
//! the QUIC socket, reports ICMP errors), a TCP connect to the agent's page when the link
//! says it is served, and the IPv4 neighbour table.
//!
//! What each platform can read: Linux reads all of it (`/proc/net/arp` for neighbours;
//! IPv6 neighbours are not read). Android (Termux) reads addresses and the route choice
//! (a socket's source address) and the socket errors; apps may not read the neighbour
//! table. macOS, iOS and Windows read addresses, the route choice and the socket errors;
//! on macOS and iOS an app without the Local Network permission meets "no route to host"
//! at once for its own subnet, which names that cause.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use lanreach_proto::defaults::{NOPATH_RESEND, NOPATH_SEND_AT, NOPATH_TICK};
use lanreach_proto::endpoint::interfaces;
use lanreach_proto::nopath::{
    AgentAddress, Cause, LinkKind, Met, Neighbour, OwnAddress, PageMet, PathFacts, Platform, diagnose,
};
use lanreach_proto::vocab::{EHOSTUNREACH, ENETUNREACH};
use tokio::time::Instant;

/// The facts gathered so far, shared with whoever waits for the handshakes.
pub(crate) type Latest = std::sync::Arc<std::sync::Mutex<Option<PathFacts>>>;

/// Gathers facts about reaching `agent` from `started` on (keeping the newest in
/// `latest`), and returns the cause as soon as one is decisive and [`NOPATH_GRACE`] has
/// passed without a handshake (a LAN handshake takes milliseconds). Never returns
/// otherwise: the caller races it with the handshakes and, at their deadline, asks
/// [`final_cause`].
pub(crate) async fn watch(agent: Vec<AgentAddress>, page_served: bool, started: Instant, latest: Latest) -> Cause {
    let mut facts = initial(&agent, page_served);
    let probe_at = facts.route_from.iter().position(Option::is_some);
    let (met_tx, mut met_rx) = tokio::sync::watch::channel(None);
    let (page_tx, mut page_rx) = tokio::sync::watch::channel(None);
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(i) = probe_at {
        let addr = agent[i].addr;
        tasks.spawn(side_probe(addr, started, met_tx));
        // The agent serves its page on TCP at the same port number by default: a connect
        // that succeeds says the agent runs, whatever the link says (a refusal proves
        // something only when the link says the page is served).
        tasks.spawn(async move {
            let page = page_probe(addr).await;
            let _ = page_tx.send(Some(page));
        });
    }
    let mut ticks = tokio::time::interval(NOPATH_TICK);
    loop {
        ticks.tick().await;
        if let Some(i) = probe_at {
            facts.met[i] = *met_rx.borrow_and_update();
            facts.page[i] = *page_rx.borrow_and_update();
        }
        facts.waited = started.elapsed();
        facts.neighbour = neighbours(&agent);
        *lanreach_proto::sync::lock(&latest) = Some(facts.clone());
        let cause = diagnose(&facts);
        if facts.waited >= cause.grace() && cause.decisive() {
            return cause;
        }
    }
}

/// The cause at the handshakes' deadline (`waited`), from the facts gathered so far
/// (silence where the side probe heard nothing), the neighbour table read once more.
pub(crate) fn final_cause(agent: &[AgentAddress], page_served: bool, latest: &Latest, waited: Duration) -> Cause {
    let mut facts = lanreach_proto::sync::lock(latest).clone().unwrap_or_else(|| initial(agent, page_served));
    if let Some(i) = facts.route_from.iter().position(Option::is_some) {
        facts.met[i] = facts.met[i].or(Some(Met::Silence));
    }
    facts.neighbour = neighbours(agent);
    facts.waited = waited;
    diagnose(&facts)
}

/// The facts that need no waiting.
fn initial(agent: &[AgentAddress], page_served: bool) -> PathFacts {
    let own: Vec<OwnAddress> = interfaces::list()
        .unwrap_or_default()
        .into_iter()
        .map(|i| OwnAddress {
            kind: LinkKind::of(&i.interface, i.kind),
            interface: i.interface,
            ip: i.ip,
            prefix: i.prefix,
        })
        .collect();
    PathFacts {
        platform: Platform::current(),
        own,
        agent: agent.to_vec(),
        route_from: agent.iter().map(|a| route_source(a.addr)).collect(),
        met: vec![None; agent.len()],
        page: vec![None; agent.len()],
        neighbour: vec![Neighbour::Unknown; agent.len()],
        page_served,
        waited: Duration::ZERO,
    }
}

/// The source address the system would send to `addr` from (connecting a UDP socket
/// sends nothing), which follows VPN and policy routes; none without a route.
fn route_source(addr: SocketAddr) -> Option<IpAddr> {
    let local: SocketAddr =
        if addr.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
    let socket = std::net::UdpSocket::bind(local).ok()?;
    socket.connect(addr).ok()?;
    socket.local_addr().ok().map(|a| a.ip().to_canonical())
}

/// A one-byte datagram to the control port now and again (QUIC ignores it) on a
/// connected socket, which hears ICMP errors. What the last datagram met is published in
/// `met` as it changes: an agent that binds its port a moment later turns a "port
/// unreachable" back into nothing, so a peer started before its agent is not told the
/// agent is not running. A slow answer (a failed neighbour lookup) stays.
async fn side_probe(addr: SocketAddr, started: Instant, met: tokio::sync::watch::Sender<Option<Met>>) {
    let local: SocketAddr =
        if addr.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
    let Ok(socket) = tokio::net::UdpSocket::bind(local).await else { return };
    if let Err(e) = socket.connect(addr).await {
        let _ = met.send(Some(classify(&e, started.elapsed()).unwrap_or(Met::NetUnreachable)));
        return;
    }
    let mut buf = [0u8; 64];
    let mut k = 0;
    loop {
        // The listed times, then every last gap again until the caller gives up.
        let at = NOPATH_SEND_AT.get(k).copied().unwrap_or_else(|| {
            let last = NOPATH_SEND_AT.last().copied().unwrap_or_default();
            last + NOPATH_RESEND * u32::try_from(k + 1 - NOPATH_SEND_AT.len()).unwrap_or(u32::MAX)
        });
        let next = NOPATH_SEND_AT.get(k + 1).copied().unwrap_or(at + NOPATH_RESEND);
        k += 1;
        tokio::time::sleep_until(started + at).await;
        let mut this = None;
        if let Err(e) = socket.send(&[0]).await {
            this = classify(&e, started.elapsed());
        }
        while this.is_none() {
            match tokio::time::timeout_at(started + next, socket.recv(&mut buf)).await {
                Err(_) => break,
                // An answer is no error (QUIC ignores the byte; something else may echo it).
                Ok(Ok(_)) => {}
                Ok(Err(e)) => this = classify(&e, started.elapsed()),
            }
        }
        // "No route to host" stays as first met: how soon it came after the first
        // datagram tells a host's ICMP answer (at once) from a failed neighbour lookup
        // (seconds), and later datagrams meet the failed entry at once.
        let sticky = matches!(*met.borrow(), Some(Met::HostUnreachable { .. }));
        if !sticky {
            let _ = met.send_if_modified(|m| {
                let changed = *m != this;
                *m = this;
                changed
            });
        }
        tokio::time::sleep_until(started + next).await;
    }
}

fn classify(e: &std::io::Error, after: Duration) -> Option<Met> {
    match (e.kind(), e.raw_os_error()) {
        (std::io::ErrorKind::ConnectionRefused, _) => Some(Met::PortUnreachable),
        (_, Some(EHOSTUNREACH)) | (std::io::ErrorKind::HostUnreachable, _) => Some(Met::HostUnreachable { after }),
        (_, Some(ENETUNREACH)) | (std::io::ErrorKind::NetworkUnreachable, _) => Some(Met::NetUnreachable),
        (std::io::ErrorKind::PermissionDenied, _) => Some(Met::PermissionDenied),
        _ => None,
    }
}

/// Whether the agent's page answers at `addr` (the control port number, TCP): an HTTP
/// answer to a request for the page says the agent runs and serves (a bound socket alone
/// may belong to an agent still starting). Tried a few times while nothing is certain.
async fn page_probe(addr: SocketAddr) -> PageMet {
    let mut last = PageMet::Nothing;
    for _ in 0..5 {
        last = page_once(addr).await;
        if last != PageMet::Nothing {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    last
}

async fn page_once(addr: SocketAddr) -> PageMet {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = match tokio::net::TcpStream::connect(addr).await {
            Ok(stream) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return PageMet::Refused,
            Err(_) => return PageMet::Nothing,
        };
        if stream.write_all(b"GET / HTTP/1.0\r\nHost: lanreach\r\n\r\n").await.is_err() {
            return PageMet::Nothing;
        }
        let mut head = [0u8; 16];
        match stream.read(&mut head).await {
            Ok(n) if head[..n].starts_with(b"HTTP/1.") => PageMet::Open,
            _ => PageMet::Nothing,
        }
    };
    tokio::time::timeout(Duration::from_millis(1500), exchange).await.unwrap_or(PageMet::Nothing)
}

/// Neighbour resolution of each agent address, from `/proc/net/arp` (IPv4, Linux).
fn neighbours(agent: &[AgentAddress]) -> Vec<Neighbour> {
    let table = std::fs::read_to_string("/proc/net/arp").unwrap_or_default();
    agent.iter().map(|a| arp_state(&table, a.addr.ip())).collect()
}

/// The state of `ip` in an `/proc/net/arp` table: flags 0x2 is a complete entry; an
/// entry without it is a lookup that failed or is under way.
fn arp_state(table: &str, ip: IpAddr) -> Neighbour {
    let IpAddr::V4(v4) = ip.to_canonical() else { return Neighbour::Unknown };
    let want = v4.to_string();
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.first() == Some(&want.as_str()) {
            let flags = cols.get(2).and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok());
            return match flags {
                Some(f) if f & 0x2 != 0 => Neighbour::Resolved,
                Some(_) => Neighbour::Failed,
                None => Neighbour::Unknown,
            };
        }
    }
    Neighbour::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_neighbour_table_says_resolved_or_failed() {
        let table = "IP address       HW type     Flags       HW address            Mask     Device\n\
                     198.51.100.1     0x1         0x2         02:00:00:00:00:01     *        eth0\n\
                     198.51.100.9     0x1         0x0         00:00:00:00:00:00     *        eth0\n";
        let ip = |s: &str| -> IpAddr { s.parse().expect("ip") };
        assert_eq!(arp_state(table, ip("198.51.100.1")), Neighbour::Resolved);
        assert_eq!(arp_state(table, ip("198.51.100.9")), Neighbour::Failed);
        assert_eq!(arp_state(table, ip("198.51.100.7")), Neighbour::Unknown);
        assert_eq!(arp_state(table, ip("2001:db8::1")), Neighbour::Unknown);
    }
}
