//! When the two devices cannot reach each other at all: the rules that name the reason
//! from what the peer can read about itself in milliseconds, without sockets or a clock.
//!
//! The peer gathers [`PathFacts`]: its own addresses and prefixes, the interface the
//! system would send to each agent address from (a connected UDP socket's source address,
//! which follows VPN and policy routes), what a side probe met (a small UDP datagram to
//! the control port on a connected socket, which sees ICMP errors; a TCP connect to the
//! agent's page when the link says it is served), and, where the system shows it, whether
//! the agent's address answered neighbour resolution. [`diagnose`] turns them into one
//! [`Cause`] with its evidence and fix, or, where two causes remain, the likelier one and
//! what would tell them apart. [`Cause::decisive`] says whether the cause is certain
//! enough to stop waiting for the QUIC handshake.
//!
//! Causes, roughly by how often people meet them: not on the same network (a guest
//! Wi-Fi, another access point's subnet, a phone on mobile data), access-point client
//! isolation, a VPN capturing the route, the host's firewall, the agent not running, and
//! the peer's OS refusing local-network access to the app (macOS 15+, iOS).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Serialize;

use crate::addr::{InterfaceKind, in_prefix};
use crate::defaults::NOPATH_GRACE;

/// The platform the peer runs on: what it can read differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Linux: routes, addresses and the IPv4 neighbour table are readable.
    Linux,
    /// Android (Termux): addresses, and the route choice through a socket; no neighbour table.
    Android,
    /// macOS or iOS: the OS may refuse local-network access to an app.
    Apple,
    /// Windows and anything else: addresses and the route choice.
    Other,
}

impl Platform {
    /// The platform this build runs on.
    pub fn current() -> Platform {
        if cfg!(target_os = "android") {
            Platform::Android
        } else if cfg!(target_os = "linux") {
            Platform::Linux
        } else if cfg!(any(target_os = "macos", target_os = "ios")) {
            Platform::Apple
        } else {
            Platform::Other
        }
    }
}

/// One address of this device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnAddress {
    /// Its interface.
    pub interface: String,
    /// The address.
    pub ip: IpAddr,
    /// Its network's prefix length, when known.
    pub prefix: Option<u8>,
    /// What kind of link the interface is.
    pub kind: LinkKind,
}

/// What kind of link an interface is, for the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// Ethernet or Wi-Fi.
    Lan,
    /// A VPN or tunnel (tun*, wg*, utun*, ppp*, …).
    Vpn,
    /// Mobile data (rmnet*, ccmni*, wwan*, pdp_ip*).
    Cellular,
    /// A container or VM link.
    Virtual,
    /// Loopback or link-local.
    Other,
}

/// Interface name prefixes of mobile data links (Android, Linux modems, iOS).
const CELLULAR_PREFIXES: &[&str] = &["rmnet", "ccmni", "wwan", "pdp_ip", "usb_rmnet", "qmimux"];

impl LinkKind {
    /// The kind of `name`, given the interface classification of the address.
    pub fn of(name: &str, kind: InterfaceKind) -> LinkKind {
        let lower = name.to_ascii_lowercase();
        if CELLULAR_PREFIXES.iter().any(|p| lower.starts_with(p)) {
            return LinkKind::Cellular;
        }
        match kind {
            InterfaceKind::Lan => LinkKind::Lan,
            InterfaceKind::Vpn => LinkKind::Vpn,
            InterfaceKind::Virtual => LinkKind::Virtual,
            InterfaceKind::Loopback | InterfaceKind::LinkLocal => LinkKind::Other,
        }
    }
}

/// One address of the agent, as the link or the command line named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AgentAddress {
    /// The address and the control port.
    pub addr: SocketAddr,
    /// Its network's prefix length, when the link said.
    pub prefix: Option<u8>,
}

/// What the side probes met at one agent address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Met {
    /// ICMP port unreachable on the UDP control port: the host is up, nothing listens.
    PortUnreachable,
    /// "No route to host", `after` the first datagram: a failed neighbour lookup takes
    /// about 3 s; at once it is a local refusal or an ICMP host-unreachable.
    HostUnreachable {
        /// When it came.
        #[serde(rename = "after_ms", serialize_with = "millis")]
        after: Duration,
    },
    /// "Network unreachable": no route.
    NetUnreachable,
    /// The OS refused to send ("permission denied" / "operation not permitted").
    PermissionDenied,
    /// Nothing came back to the UDP datagrams.
    Silence,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What a request for the agent's page (TCP, at the control port number) met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PageMet {
    /// An HTTP answer: the agent runs and serves.
    Open,
    /// Refused.
    Refused,
    /// Silence, or another error.
    Nothing,
}

/// Whether the agent's address answered neighbour resolution (ARP / NDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Neighbour {
    /// Resolved: the host is on the link and awake.
    Resolved,
    /// Resolution failed or is still incomplete.
    Failed,
    /// This platform does not show it, or the address is not on a local link.
    Unknown,
}

/// Everything the rules look at, gathered by the peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathFacts {
    /// The platform.
    pub platform: Platform,
    /// This device's addresses.
    pub own: Vec<OwnAddress>,
    /// The agent's addresses, most likely reached first.
    pub agent: Vec<AgentAddress>,
    /// Per agent address (same order): the source address the system would send from,
    /// or none when it has no route.
    pub route_from: Vec<Option<IpAddr>>,
    /// Per agent address: what the UDP side probe met (none: not tried).
    pub met: Vec<Option<Met>>,
    /// Per agent address: what the TCP connect to the page met (none: not tried).
    pub page: Vec<Option<PageMet>>,
    /// Per agent address: neighbour resolution.
    pub neighbour: Vec<Neighbour>,
    /// Whether the agent serves its page (the link carried a browser token), so that a
    /// refused TCP connect at the control port number means the agent is not running.
    pub page_served: bool,
    /// How long the QUIC handshakes went unanswered so far.
    pub waited: Duration,
}

/// The named cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CauseCode {
    /// This device has no route to any agent address.
    NoRoute,
    /// The devices are on different networks.
    DifferentNetwork,
    /// A VPN on this device captures the route to the agent.
    VpnRoute,
    /// This device sends to the agent over mobile data.
    Cellular,
    /// The agent's address does not answer neighbour resolution: client isolation, or
    /// the agent's machine is off or asleep.
    Isolation,
    /// The host is up but nothing listens on the control port.
    AgentNotRunning,
    /// The host answers neighbour resolution (or its page) but UDP to the control port
    /// gets nothing: its firewall drops it.
    HostFirewall,
    /// This device's OS refuses local-network access to this app.
    LocalNetworkPermission,
    /// Silence nothing explains.
    Unknown,
}

impl CauseCode {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CauseCode::NoRoute => "no_route",
            CauseCode::DifferentNetwork => "different_network",
            CauseCode::VpnRoute => "vpn_route",
            CauseCode::Cellular => "cellular",
            CauseCode::Isolation => "isolation",
            CauseCode::AgentNotRunning => "agent_not_running",
            CauseCode::HostFirewall => "host_firewall",
            CauseCode::LocalNetworkPermission => "local_network_permission",
            CauseCode::Unknown => "unknown",
        }
    }
}

/// The schema name of the JSON document the peer prints for a missing path.
pub const SCHEMA: &str = "lanreach.nopath/1";

/// One cause with its evidence and fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    /// The code, for scripts.
    pub code: CauseCode,
    /// What was found, in words, with the evidence.
    pub message: String,
    /// What to do.
    pub fix: String,
    /// Where another cause remains possible: what would tell them apart.
    pub otherwise: Option<String>,
    /// The facts it was named from.
    pub evidence: Vec<String>,
    /// How long after the first handshake this cause may end the wait for one: soon for
    /// the network's own answers (no route, ICMP errors), after [`NOPATH_GRACE`] for
    /// conclusions a slow handshake could still prove wrong; `None`: not certain enough
    /// to end it (the handshake's deadline comes first).
    #[serde(skip)]
    pub settles_after: Option<Duration>,
}

impl Cause {
    /// How long after the first handshake the cause may end the wait for one
    /// ([`Cause::settles_after`], else [`NOPATH_GRACE`]).
    pub fn grace(&self) -> Duration {
        self.settles_after.unwrap_or(NOPATH_GRACE)
    }

    /// Whether the cause is certain enough to stop waiting for the handshake.
    pub fn decisive(&self) -> bool {
        self.settles_after.is_some()
    }
}

fn with_prefix(ip: IpAddr, prefix: Option<u8>) -> String {
    match prefix {
        Some(p) => format!("{ip}/{p}"),
        None => ip.to_string(),
    }
}

impl PathFacts {
    /// This device's address on the agent address's network, if any (by either side's
    /// prefix).
    fn on_link(&self, agent: &AgentAddress) -> Option<&OwnAddress> {
        let ip = agent.addr.ip().to_canonical();
        self.own.iter().filter(|o| o.kind != LinkKind::Other).find(|o| {
            o.prefix.is_some_and(|p| in_prefix(ip, o.ip, p)) || agent.prefix.is_some_and(|p| in_prefix(o.ip, ip, p))
        })
    }

    fn own_by_ip(&self, ip: IpAddr) -> Option<&OwnAddress> {
        self.own.iter().find(|o| o.ip.to_canonical() == ip.to_canonical())
    }

    /// How this device appears, for messages: its LAN-ish addresses with prefixes.
    fn own_words(&self, v4: bool) -> String {
        let mine: Vec<String> = self
            .own
            .iter()
            .filter(|o| matches!(o.kind, LinkKind::Lan | LinkKind::Cellular) && o.ip.is_ipv4() == v4)
            .map(|o| format!("{} on {}", with_prefix(o.ip, o.prefix), o.interface))
            .collect();
        if mine.is_empty() { "no address of that family on a LAN".into() } else { mine.join(", ") }
    }
}

/// Names the cause from `f`. Call it again as facts arrive: with silence only, it says
/// [`CauseCode::Unknown`] (or the likelier of two causes) until the handshake deadline.
pub fn diagnose(f: &PathFacts) -> Cause {
    let n = f.agent.len();
    let at = |i: usize| f.agent[i];
    let agent_words: Vec<String> = f.agent.iter().map(|a| with_prefix(a.addr.ip(), a.prefix)).collect();
    let agent_words = agent_words.join(", ");
    let mut evidence = Vec::new();

    // 1. What the sockets met decides first: it is the network's own answer.
    for i in 0..n {
        let a = at(i);
        let (sa, ip, port) = (a.addr, a.addr.ip(), a.addr.port());
        let page = f.page.get(i).copied().flatten();
        let page_open = page == Some(PageMet::Open);
        let on_link = f.on_link(&a).is_some();
        match f.met.get(i).copied().flatten() {
            Some(Met::PortUnreachable) if page_open => {
                evidence.push(format!("UDP {sa}: ICMP port unreachable"));
                evidence.push(format!("TCP {sa} (where the agent serves its page): it answers"));
                return firewall_rejects(sa, "refuses UDP to it (ICMP port unreachable, a REJECT rule)", evidence);
            }
            Some(Met::PortUnreachable) => {
                evidence.push(format!("UDP {sa}: ICMP port unreachable"));
                if f.page_served && page == Some(PageMet::Refused) {
                    evidence.push(format!("TCP {sa} (where the agent serves its page): refused"));
                }
                return Cause {
                    code: CauseCode::AgentNotRunning,
                    // Still refused a second after the first handshake: no agent starting up
                    // (the side probe's newest answer counts).
                    settles_after: Some(Duration::from_secs(1)),
                    message: format!(
                        "The machine at {ip} is up (it answered at once), but nothing listens on UDP port {port}: \
                         the agent is not running there, it uses another port, or a firewall rule rejects UDP {port} \
                         as if nothing listened."
                    ),
                    fix: format!(
                        "start the agent on that machine (lanreach-agent), or use the link or command it prints (its \
                         address and port); if it runs, allow UDP port {port} in that machine's firewall"
                    ),
                    otherwise: (!f.page_served).then(|| {
                        format!("the agent's page on TCP {port} tells them apart: it answers when the agent runs")
                    }),
                    evidence,
                };
            }
            Some(Met::PermissionDenied) if on_link => {
                evidence.push(format!("UDP {sa}: the OS refused to send (permission denied)"));
                return local_permission(f, ip, evidence);
            }
            // "No route to host" for an address on this device's subnet: an ICMP answer
            // from the host when its address resolved (or, where the neighbour table is
            // not shown, when it came at once); a failed lookup is isolation (below).
            Some(Met::HostUnreachable { after })
                if on_link
                    && match f.neighbour.get(i).copied().unwrap_or(Neighbour::Unknown) {
                        Neighbour::Resolved => true,
                        Neighbour::Failed => false,
                        Neighbour::Unknown => after < Duration::from_millis(500),
                    } =>
            {
                if f.platform == Platform::Apple {
                    evidence.push(format!(
                        "UDP {sa}: \"no route to host\" at once, for an address on this device's own subnet"
                    ));
                    return local_permission(f, ip, evidence);
                }
                // At once, on the own subnet: address resolution worked (a failed one takes
                // seconds), and the host answered with an ICMP error.
                evidence.push(format!("UDP {sa}: \"no route to host\" at once (an ICMP host-prohibited answer)"));
                if page_open {
                    evidence.push(format!("TCP {sa} (where the agent serves its page): it answers"));
                }
                return firewall_rejects(
                    sa,
                    "rejects UDP to it with \"host prohibited\" (firewalld's default for closed ports)",
                    evidence,
                );
            }
            _ => {}
        }
    }

    // 2. Where the system would send: no route, a VPN, mobile data.
    let routed: Vec<usize> = (0..n).filter(|i| f.route_from.get(*i).copied().flatten().is_some()).collect();
    if routed.is_empty() {
        let v4 = f.agent.first().is_none_or(|a| a.addr.is_ipv4());
        return Cause {
            code: CauseCode::NoRoute,
            settles_after: Some(Duration::from_millis(300)),
            message: format!(
                "This device has no route to the agent ({agent_words}): this device is {}; the devices are on \
                 different networks.",
                f.own_words(v4)
            ),
            fix: "join the same network as the agent's machine (the same Wi-Fi; a guest network keeps devices apart)"
                .into(),
            otherwise: None,
            evidence: vec![format!("no route to {agent_words}")],
        };
    }
    let first = routed[0];
    let a = at(first);
    let ip = a.addr.ip();
    let from = f.route_from[first].and_then(|src| f.own_by_ip(src));
    if let Some(o) = from {
        evidence.push(format!("the route to {ip} leaves from {} on {}", o.ip, o.interface));
        let on_link = f.on_link(&a).is_some();
        match o.kind {
            LinkKind::Vpn => {
                return Cause {
                    code: CauseCode::VpnRoute,
                    settles_after: Some(NOPATH_GRACE),
                    message: format!(
                        "The route to {ip} goes through {} (a VPN or tunnel){}: packets for the agent leave through \
                         the tunnel, not the local network.",
                        o.interface,
                        if on_link { ", although the address is on this device's own network" } else { "" }
                    ),
                    fix: "disconnect the VPN while testing, or allow local network access in its settings (often \
                          \"allow LAN traffic\" or a split tunnel that excludes the local subnet)"
                        .into(),
                    otherwise: None,
                    evidence,
                };
            }
            LinkKind::Cellular => {
                return Cause {
                    code: CauseCode::Cellular,
                    settles_after: Some(NOPATH_GRACE),
                    message: format!(
                        "This device sends to {ip} over mobile data ({}): it is not on the agent's Wi-Fi, or the \
                         phone left a Wi-Fi without internet for mobile data.",
                        o.interface
                    ),
                    fix: "connect the phone to the same Wi-Fi as the agent's machine and turn mobile data off while \
                          testing (phones leave a Wi-Fi that has no internet)"
                        .into(),
                    otherwise: None,
                    evidence,
                };
            }
            _ => {}
        }
    }

    // 3. Same network? The link's prefixes tell before any answer.
    let on_link = (0..n).find(|i| f.on_link(&at(*i)).is_some());
    let Some(near) = on_link else {
        let v4 = ip.is_ipv4();
        evidence.push(format!("no address of this device shares a network with {agent_words}"));
        let silent = f.waited >= Duration::from_secs(3)
            || f.met.iter().flatten().any(|m| matches!(m, Met::HostUnreachable { .. } | Met::NetUnreachable));
        return Cause {
            code: if silent { CauseCode::DifferentNetwork } else { CauseCode::Unknown },
            settles_after: silent.then_some(NOPATH_GRACE),
            message: format!(
                "This device is {}; the agent is {agent_words}: different networks, and nothing between them \
                 passes the agent's traffic.",
                f.own_words(v4)
            ),
            fix: "join the same Wi-Fi (a guest network keeps devices apart; a second access point may hand out \
                  another subnet)"
                .into(),
            otherwise: Some(
                "if a router joins the two networks on purpose, its firewall blocks UDP to the agent's port".into(),
            ),
            evidence,
        };
    };
    let a = at(near);
    let ip = a.addr.ip();
    let port = a.addr.port();
    let mine = f.on_link(&a).map(|o| format!("{} on {}", with_prefix(o.ip, o.prefix), o.interface)).unwrap_or_default();
    evidence.push(format!("this device is {mine}, on the agent's network ({})", with_prefix(ip, a.prefix)));
    let page = f.page.get(near).copied().flatten();
    let neighbour = f.neighbour.get(near).copied().unwrap_or(Neighbour::Unknown);

    // 4. On the same network: the page, the neighbour table, the ICMP errors.
    if page == Some(PageMet::Open) {
        evidence.push(format!("TCP {} (where the agent serves its page): it answers", a.addr));
        return Cause {
            code: CauseCode::HostFirewall,
            settles_after: Some(NOPATH_GRACE),
            message: format!(
                "The agent's page answers on TCP {}, so the agent runs and the network passes traffic, but UDP to \
                 port {port} gets no answer: the firewall on the agent's machine drops UDP {port}.",
                a.addr
            ),
            fix: format!(
                "allow UDP port {port} in the firewall of the agent's machine (ufw allow {port}/udp; firewall-cmd \
                 --add-port={port}/udp; Windows: allow lanreach-agent through the firewall on private networks)"
            ),
            otherwise: None,
            evidence,
        };
    }
    let unreachable_late = f
        .met
        .get(near)
        .copied()
        .flatten()
        .is_some_and(|m| matches!(m, Met::HostUnreachable { after } if after >= Duration::from_millis(500)));
    if neighbour == Neighbour::Failed || unreachable_late {
        evidence.push(match neighbour {
            Neighbour::Failed => format!("{ip} did not answer address resolution (ARP/NDP)"),
            _ => format!("UDP {}: \"no route to host\" after about 3 s (address resolution failed)", a.addr),
        });
        return Cause {
            code: CauseCode::Isolation,
            // An address resolution unanswered for 2 s on a LAN (where it takes
            // milliseconds) has failed; Linux gives up only after 3 s.
            settles_after: Some(Duration::from_secs(2)),
            message: format!(
                "The agent's address {ip} is on this device's own network ({mine}) but does not answer address \
                 resolution: the access point isolates clients from each other (guest networks, \"AP isolation\"), \
                 or the agent's machine is off, asleep or no longer at that address."
            ),
            fix: "check that the agent's machine is awake and still has that address (the agent prints it); if it \
                  is, turn off client/AP isolation on the router, or use a network without it (not a guest network)"
                .into(),
            otherwise: Some(format!(
                "whether the agent's machine is awake and still shows {ip} (the agent prints its addresses) tells \
                 them apart: if it does, the access point isolates clients"
            )),
            evidence,
        };
    }
    if f.page_served && page == Some(PageMet::Refused) {
        evidence.push(format!("TCP {} (where the agent serves its page): refused", a.addr));
        return Cause {
            code: CauseCode::AgentNotRunning,
            settles_after: Some(Duration::from_secs(1)),
            message: format!(
                "The machine at {ip} is up (it refused TCP port {port} at once, where the agent serves its page), \
                 but no agent answers: the agent is not running there, or it runs with another port."
            ),
            fix: "start the agent on that machine (lanreach-agent), and use the link or command it prints now".into(),
            otherwise: None,
            evidence,
        };
    }
    if neighbour == Neighbour::Resolved {
        evidence.push(format!("{ip} answered address resolution (it is on the link and awake)"));
        evidence.push(format!("UDP {}: no answer, no error for {} s", a.addr, f.waited.as_secs()));
        return Cause {
            code: CauseCode::HostFirewall,
            settles_after: None,
            message: format!(
                "The agent's machine {ip} is on this network and awake (it answers address resolution), but UDP \
                 port {port} gets no answer and no error: its firewall drops UDP {port} (or the agent is stopped \
                 and the firewall drops closed ports)."
            ),
            fix: format!(
                "allow UDP port {port} in the firewall of the agent's machine (ufw allow {port}/udp; firewall-cmd \
                 --add-port={port}/udp; Windows: allow lanreach-agent on private networks), and check the agent runs"
            ),
            otherwise: Some(format!(
                "`lanreach-agent` running with its page (TCP {port}) tells these apart: a page that answers means the firewall"
            )),
            evidence,
        };
    }
    evidence.push(format!("UDP {}: no answer, no error for {} s", a.addr, f.waited.as_secs()));
    let neighbour_note = match f.platform {
        Platform::Linux => "",
        _ => " (this device's system does not show whether the address answered address resolution)",
    };
    Cause {
        code: CauseCode::Unknown,
        settles_after: None,
        message: format!(
            "The agent's address {ip} is on this device's network ({mine}), but nothing answers on UDP port {port}, \
             not even an error{neighbour_note}: the firewall of the agent's machine drops it, or the access point \
             isolates clients."
        ),
        fix: format!(
            "allow UDP port {port} in the firewall of the agent's machine; if that changes nothing, turn off client \
             isolation on the router (or leave a guest network)"
        ),
        otherwise: Some("whether the agent's machine answers a ping from this device tells them apart: it does behind a firewall that drops only UDP, not behind isolation".into()),
        evidence,
    }
}

/// The firewall of the agent's machine answers in the agent's place.
fn firewall_rejects(sa: SocketAddr, how: &str, evidence: Vec<String>) -> Cause {
    let port = sa.port();
    Cause {
        code: CauseCode::HostFirewall,
        settles_after: Some(Duration::from_secs(1)),
        message: format!(
            "The machine at {} is up, but its firewall {how} port {port}, where the agent listens.",
            sa.ip()
        ),
        fix: format!(
            "allow UDP port {port} in the firewall of the agent's machine (sudo ufw allow {port}/udp; sudo \
             firewall-cmd --add-port={port}/udp; nft: accept udp dport {port} before the reject rule; Windows: allow \
             lanreach-agent on private networks)"
        ),
        otherwise: None,
        evidence,
    }
}

fn local_permission(f: &PathFacts, ip: IpAddr, evidence: Vec<String>) -> Cause {
    let fix = match f.platform {
        Platform::Apple => {
            "allow Local Network access for your terminal app (macOS: System Settings → Privacy & \
                            Security → Local Network; iOS: Settings → Privacy & Security → Local Network), then \
                            run this again"
        }
        _ => {
            "allow this program to reach the local network (a sandbox, a firewall on this device, or the OS's \
              privacy settings refuses it), then run this again"
        }
    };
    Cause {
        code: CauseCode::LocalNetworkPermission,
        settles_after: Some(Duration::from_millis(300)),
        message: format!(
            "This device's OS refuses to send to {ip}, an address on its own network, without sending anything: \
             this app is not allowed local network access."
        ),
        fix: fix.into(),
        otherwise: None,
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own(interface: &str, ip: &str, prefix: u8, kind: LinkKind) -> OwnAddress {
        OwnAddress { interface: interface.into(), ip: ip.parse().expect("ip"), prefix: Some(prefix), kind }
    }

    fn facts(own: Vec<OwnAddress>, agent: &str, prefix: u8, route_from: Option<&str>) -> PathFacts {
        PathFacts {
            platform: Platform::Linux,
            own,
            agent: vec![AgentAddress {
                addr: SocketAddr::new(agent.parse().expect("ip"), 47800),
                prefix: Some(prefix),
            }],
            route_from: vec![route_from.map(|r| r.parse().expect("ip"))],
            met: vec![None],
            page: vec![None],
            neighbour: vec![Neighbour::Unknown],
            page_served: false,
            waited: Duration::ZERO,
        }
    }

    fn wlan() -> Vec<OwnAddress> {
        vec![own("lo", "127.0.0.1", 8, LinkKind::Other), own("wlan0", "198.51.100.20", 24, LinkKind::Lan)]
    }

    #[test]
    fn another_network_is_named_with_both_sides_addresses() {
        let f = facts(wlan(), "203.0.113.10", 24, None);
        let c = diagnose(&f);
        assert_eq!(c.code, CauseCode::NoRoute);
        assert!(c.message.contains("198.51.100.20/24 on wlan0"), "{}", c.message);
        // Routed through a gateway, once the handshake met silence or no route.
        let mut f = facts(wlan(), "203.0.113.10", 24, Some("198.51.100.20"));
        assert_eq!(diagnose(&f).code, CauseCode::Unknown, "not before any evidence");
        f.waited = Duration::from_secs(3);
        let c = diagnose(&f);
        assert_eq!(c.code, CauseCode::DifferentNetwork);
        assert!(c.message.contains("the agent is 203.0.113.10/24: different networks"), "{}", c.message);
    }

    #[test]
    fn a_vpn_or_mobile_data_route_is_named_by_its_interface() {
        let mut mine = wlan();
        mine.push(own("tun0", "203.0.113.99", 32, LinkKind::Vpn));
        let c = diagnose(&facts(mine, "198.51.100.10", 24, Some("203.0.113.99")));
        assert_eq!(c.code, CauseCode::VpnRoute);
        assert!(c.message.starts_with("The route to 198.51.100.10 goes through tun0"), "{}", c.message);
        assert!(c.decisive());
        // A phone that left a Wi-Fi without internet: recorded from Android.
        let phone = vec![own("rmnet_data0", "100.80.1.7", 29, LinkKind::Cellular)];
        let mut f = facts(phone, "192.168.1.20", 24, Some("100.80.1.7"));
        f.platform = Platform::Android;
        let c = diagnose(&f);
        assert_eq!(c.code, CauseCode::Cellular);
        assert!(c.message.contains("over mobile data (rmnet_data0)"), "{}", c.message);
        assert_eq!(LinkKind::of("pdp_ip0", InterfaceKind::Lan), LinkKind::Cellular);
    }

    #[test]
    fn on_the_same_network_the_evidence_names_isolation_a_stopped_agent_or_a_firewall() {
        let base = facts(wlan(), "198.51.100.10", 24, Some("198.51.100.20"));
        let with = |met: Option<Met>, page: Option<PageMet>, neighbour: Neighbour| {
            let mut f = base.clone();
            f.met = vec![met];
            f.page = vec![page];
            f.neighbour = vec![neighbour];
            f.page_served = true;
            f.waited = Duration::from_secs(3);
            diagnose(&f)
        };
        let c = with(Some(Met::PortUnreachable), Some(PageMet::Refused), Neighbour::Resolved);
        assert_eq!(c.code, CauseCode::AgentNotRunning);
        assert_eq!(c.evidence.len(), 2, "ICMP and the refused page: {:?}", c.evidence);
        let late = Met::HostUnreachable { after: Duration::from_millis(3050) };
        assert_eq!(with(Some(late), None, Neighbour::Unknown).code, CauseCode::Isolation);
        assert_eq!(with(Some(Met::Silence), None, Neighbour::Failed).code, CauseCode::Isolation);
        let c = with(Some(Met::Silence), Some(PageMet::Open), Neighbour::Resolved);
        assert_eq!(c.code, CauseCode::HostFirewall);
        assert!(c.decisive(), "the page proves the agent runs");
        let c = with(Some(Met::Silence), Some(PageMet::Nothing), Neighbour::Resolved);
        assert_eq!(c.code, CauseCode::HostFirewall);
        assert!(!c.decisive(), "a drop waits for the handshake's deadline");
        let c = with(Some(Met::Silence), Some(PageMet::Nothing), Neighbour::Unknown);
        assert_eq!(c.code, CauseCode::Unknown);
        assert!(c.otherwise.is_some(), "says what would tell the causes apart");
    }

    #[test]
    fn a_firewall_that_rejects_is_not_taken_for_a_stopped_agent() {
        let mut f = facts(wlan(), "198.51.100.10", 24, Some("198.51.100.20"));
        // ICMP port unreachable, while the page answers on TCP: a REJECT rule.
        f.met = vec![Some(Met::PortUnreachable)];
        f.page = vec![Some(PageMet::Open)];
        let c = diagnose(&f);
        assert_eq!(c.code, CauseCode::HostFirewall);
        assert!(c.message.contains("refuses UDP"), "{}", c.message);
        assert!(c.evidence.iter().any(|e| e.contains("TCP 198.51.100.10:47800")), "{:?}", c.evidence);
        // "Host prohibited" at once on the own subnet (firewalld), on Linux.
        f.met = vec![Some(Met::HostUnreachable { after: Duration::from_millis(2) })];
        f.page = vec![None];
        let c = diagnose(&f);
        assert_eq!(c.code, CauseCode::HostFirewall);
        assert!(c.message.contains("host prohibited"), "{}", c.message);
        // IPv6 addresses are written with brackets in the evidence.
        let mut f = facts(
            vec![own("wlan0", "2001:db8:1::20", 64, LinkKind::Lan)],
            "2001:db8:1::10",
            64,
            Some("2001:db8:1::20"),
        );
        f.met = vec![Some(Met::PortUnreachable)];
        assert!(diagnose(&f).evidence.iter().any(|e| e.starts_with("UDP [2001:db8:1::10]:47800")));
    }

    #[test]
    fn an_os_that_refuses_local_network_access_is_named() {
        // Recorded on macOS 15 without the Local Network permission: same-subnet
        // addresses fail at once with "no route to host"; other addresses work.
        let mut f =
            facts(vec![own("en0", "192.168.1.30", 24, LinkKind::Lan)], "192.168.1.20", 24, Some("192.168.1.30"));
        f.platform = Platform::Apple;
        f.met = vec![Some(Met::HostUnreachable { after: Duration::from_millis(1) })];
        let c = diagnose(&f);
        assert_eq!(c.code, CauseCode::LocalNetworkPermission);
        assert!(c.fix.contains("Privacy & Security → Local Network"), "{}", c.fix);
        // The same error on Linux after the neighbour lookup is isolation, not permission.
        f.platform = Platform::Linux;
        f.met = vec![Some(Met::HostUnreachable { after: Duration::from_secs(3) })];
        assert_eq!(diagnose(&f).code, CauseCode::Isolation);
    }

    #[test]
    fn prefixes_of_either_side_place_an_address() {
        assert!(in_prefix("198.51.100.7".parse().expect("ip"), "198.51.100.1".parse().expect("ip"), 24));
        assert!(!in_prefix("198.51.101.7".parse().expect("ip"), "198.51.100.1".parse().expect("ip"), 24));
        assert!(in_prefix("2001:db8:1::7".parse().expect("ip"), "2001:db8:1::1".parse().expect("ip"), 64));
        assert!(!in_prefix("2001:db8:1::7".parse().expect("ip"), "198.51.100.1".parse().expect("ip"), 0));
    }
}
