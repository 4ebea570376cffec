//! The report `lanreach.report/1`: the schema types of the JSON document that both
//! sides print and scripts read, and nothing else (assembly is in [`crate::assemble`],
//! terminal rendering in [`crate::render`]). The whole schema is documented in
//! `docs/report-schema.md`; every code enum here has an `ALL` list so a test can check
//! that each code is documented.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::addr::InterfaceKind;
use crate::facts::{DockerPublish, PortSource, UnpublishedContainer};
use crate::firewall::FirewallCheck;
use crate::vocab::{Outcome, Proto};

/// Schema name of the JSON report.
pub const SCHEMA: &str = "lanreach.report/1";

/// How the report was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A peer on another device probed the agent.
    Peer,
    /// `lanreach-agent --local`: the agent probed its own addresses.
    Local,
    /// A web browser on another device ran the agent's page: probes with `fetch()` and
    /// WebRTC, coarser than a peer's (see `docs/browser-api.md`).
    Browser,
}

impl Mode {
    /// Whether another device probed (a peer or a browser), not this machine itself.
    pub fn from_outside(self) -> bool {
        matches!(self, Mode::Peer | Mode::Browser)
    }
}

/// One agent address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressInfo {
    /// The address.
    pub ip: IpAddr,
    /// Its interface.
    pub interface: String,
    /// What kind of network it is on.
    pub kind: InterfaceKind,
    /// The length of its network's prefix (`24` for a /24), when known: which other
    /// addresses share its network.
    #[serde(default)]
    pub prefix: Option<u8>,
}

impl AddressInfo {
    /// Whether `ip` is on this address's network (same prefix); false when the prefix
    /// is not known.
    pub fn same_network(&self, ip: IpAddr) -> bool {
        self.prefix.is_some_and(|len| crate::addr::in_prefix(ip, self.ip, len))
    }
}

/// The agent side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// Its name.
    pub name: String,
    /// Its key ID (short form).
    pub id: String,
    /// Its interface addresses.
    pub addresses: Vec<AddressInfo>,
}

/// The peer side, as the agent saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Its name.
    pub name: String,
    /// Its key ID (short form).
    pub id: String,
    /// Source address of its control connection as the agent saw it (none in local mode).
    pub seen_from: Option<SocketAddr>,
    /// The agent address the peer dialled (where its control connection arrived; none in
    /// local mode): the address the user typed or discovered, judged first.
    #[serde(default)]
    pub dialled: Option<IpAddr>,
    /// The agent interface the control connection arrived on, when known.
    pub arrival_interface: Option<String>,
    /// The addresses the peer declared in its Hello.
    pub addresses: Vec<IpAddr>,
    /// Source addresses the test listeners saw from this peer's probes.
    pub probe_sources: Vec<IpAddr>,
}

/// One test listener (a row of the matrix).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerInfo {
    /// Protocol.
    pub proto: Proto,
    /// Bound socket address.
    pub bind: SocketAddr,
    /// What binding there means, in words.
    pub meaning: String,
}

/// One probe in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// Protocol.
    pub proto: Proto,
    /// The listener's bound socket address (the row).
    pub bind: SocketAddr,
    /// The dialled socket address (the column).
    pub target: SocketAddr,
    /// What happened.
    pub outcome: Outcome,
    /// Round trip in milliseconds; null for timeouts.
    pub rtt_ms: Option<f64>,
    /// OS error number behind the outcome, when there was one.
    pub errno: Option<i32>,
    /// Attempts made.
    pub attempts: u8,
    /// A `timeout` whose silence hides no rejection: the quiet re-probe met silence too,
    /// or this host sent and suppressed no ICMP error while the peer probed. Written only
    /// when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub proven: bool,
    /// Whether the agent's listener recorded this probe arriving.
    pub seen_by_listener: bool,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Explains something that works as designed.
    Info,
    /// Something that may surprise.
    Warning,
    /// Something blocks reachability.
    Error,
}

/// A conclusion with its cause and fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable code, e.g. `firewall_drops_tcp`.
    pub code: FindingCode,
    /// How bad.
    pub severity: Severity,
    /// What was found, in words.
    pub message: String,
    /// What to do (may be empty for information).
    pub fix: String,
}

/// The report, `lanreach.report/1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Peer or local.
    pub mode: Mode,
    /// The agent.
    pub agent: AgentInfo,
    /// The peer.
    pub peer: PeerInfo,
    /// The test listeners.
    pub listeners: Vec<ListenerInfo>,
    /// Every probe of the test listeners.
    pub probes: Vec<ProbeReport>,
    /// The user's own ports (`--check`, `--exposed`).
    pub services: Vec<ServiceReport>,
    /// Conclusions.
    pub findings: Vec<Finding>,
}

macro_rules! finding_codes {
    ($($(#[$doc:meta])* $name:ident => $text:literal,)*) => {
        /// The stable code of a [`Finding`]. Spelt in JSON as the string shown for each
        /// variant; a code this build does not know (from a newer agent) is kept as
        /// [`FindingCode::Other`].
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum FindingCode {
            $($(#[$doc])* $name,)*
            /// A code this build does not know.
            Other(String),
        }

        impl FindingCode {
            /// Every code this build knows, in a stable order.
            pub const ALL: &[FindingCode] = &[$(FindingCode::$name,)*];

            /// The JSON spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $(FindingCode::$name => $text,)*
                    FindingCode::Other(s) => s,
                }
            }

            /// The code spelt `text`.
            pub fn parse(text: &str) -> FindingCode {
                match text {
                    $($text => FindingCode::$name,)*
                    other => FindingCode::Other(other.to_owned()),
                }
            }
        }
    };
}

finding_codes! {
    /// TCP servers bound to every address are reachable at some address.
    LanReachableTcp => "lan_reachable_tcp",
    /// UDP servers bound to every address are reachable at some address.
    LanReachableUdp => "lan_reachable_udp",
    /// A wildcard TCP listener timed out: a firewall drops TCP.
    FirewallDropsTcp => "firewall_drops_tcp",
    /// A wildcard UDP listener timed out: a firewall drops UDP.
    FirewallDropsUdp => "firewall_drops_udp",
    /// A wildcard TCP listener was refused: a REJECT rule.
    FirewallRejectsTcp => "firewall_rejects_tcp",
    /// A wildcard UDP listener was refused: a REJECT rule.
    FirewallRejectsUdp => "firewall_rejects_udp",
    /// TCP got ICMP admin-prohibited at once.
    FirewallProhibitsTcp => "firewall_prohibits_tcp",
    /// UDP got ICMP admin-prohibited at once.
    FirewallProhibitsUdp => "firewall_prohibits_udp",
    /// No route or host unreachable.
    AddressUnreachable => "address_unreachable",
    /// Something other than lanreach's TCP listener answered.
    InterceptionTcp => "interception_tcp",
    /// Something other than lanreach's UDP listener answered.
    InterceptionUdp => "interception_udp",
    /// Loopback listeners refused from the peer (information), or a port bound to
    /// loopback only (the port verdict).
    LoopbackOnly => "loopback_only",
    /// A listener bound to one address is refused at the others.
    AddressSpecificBind => "address_specific_bind",
    /// 0.0.0.0 and a v6-only :: answer one family each.
    Ipv4Ipv6Separate => "ipv4_ipv6_separate",
    /// The agent has no IPv6 address the peer could use.
    Ipv4OnlyTested => "ipv4_only_tested",
    /// IPv4 works, IPv6 does not.
    Ipv6Unreachable => "ipv6_unreachable",
    /// The peer's traffic arrives from an address that is not its own.
    NatBetween => "nat_between",
    /// This machine has no address another device could dial.
    NoLanAddress => "no_lan_address",
    /// What the single-machine self-check cannot see.
    LocalModeLimits => "local_mode_limits",
    /// A firewall rule read from the configuration drops packets from other hosts to a
    /// port, where the port's verdict does not already name it.
    FirewallRuleDrops => "firewall_rule_drops",
    /// The same, a rule that rejects them.
    FirewallRuleRejects => "firewall_rule_rejects",
    /// `--local`: the firewall's configuration lets other hosts in to a port.
    FirewallAccepts => "firewall_accepts",
    /// The firewall's configuration could not be read or evaluated for a port.
    FirewallNotEvaluated => "firewall_not_evaluated",
    /// Port verdict `reachable`.
    Reachable => "reachable",
    /// Port verdict `reachable_locally`.
    ReachableLocally => "reachable_locally",
    /// Port verdict `partial`.
    Partial => "partial",
    /// Test listeners at an address on a network the peer is not on did not answer.
    OtherNetwork => "other_network",
    /// Port verdict `interface_only`.
    InterfaceOnly => "interface_only",
    /// Port verdict `ipv4_only`.
    Ipv4Only => "ipv4_only",
    /// Port verdict `ipv6_only`.
    Ipv6Only => "ipv6_only",
    /// Port verdict `firewall_drop`.
    FirewallDrop => "firewall_drop",
    /// Port verdict `firewall_reject`.
    FirewallReject => "firewall_reject",
    /// Port verdict `not_listening`.
    NotListening => "not_listening",
    /// Port verdict `proxy_no_backend`.
    ProxyNoBackend => "proxy_no_backend",
    /// Port verdict `container_loopback`.
    ContainerLoopback => "container_loopback",
    /// Port verdict `published_loopback`.
    PublishedLoopback => "published_loopback",
    /// Port verdict `container_not_published`.
    ContainerNotPublished => "container_not_published",
    /// Port verdict `http_host_check`.
    HttpHostCheck => "http_host_check",
    /// Port verdict `browser_untestable`.
    BrowserUntestable => "browser_untestable",
    /// Port verdict `network_blocked`.
    NetworkBlocked => "network_blocked",
    /// Port verdict `unconfirmed`.
    Unconfirmed => "unconfirmed",
}

impl FindingCode {
    /// The finding a port's verdict gives.
    pub fn of_verdict(v: Verdict) -> FindingCode {
        FindingCode::parse(v.as_str())
    }

    /// `lan_reachable_tcp` / `_udp`.
    pub fn lan_reachable(p: Proto) -> FindingCode {
        match p {
            Proto::Tcp => FindingCode::LanReachableTcp,
            Proto::Udp => FindingCode::LanReachableUdp,
        }
    }

    /// `firewall_drops_tcp` / `_udp`.
    pub fn firewall_drops(p: Proto) -> FindingCode {
        match p {
            Proto::Tcp => FindingCode::FirewallDropsTcp,
            Proto::Udp => FindingCode::FirewallDropsUdp,
        }
    }

    /// `firewall_rejects_tcp` / `_udp`.
    pub fn firewall_rejects(p: Proto) -> FindingCode {
        match p {
            Proto::Tcp => FindingCode::FirewallRejectsTcp,
            Proto::Udp => FindingCode::FirewallRejectsUdp,
        }
    }

    /// `firewall_prohibits_tcp` / `_udp`.
    pub fn firewall_prohibits(p: Proto) -> FindingCode {
        match p {
            Proto::Tcp => FindingCode::FirewallProhibitsTcp,
            Proto::Udp => FindingCode::FirewallProhibitsUdp,
        }
    }

    /// `interception_tcp` / `_udp`.
    pub fn interception(p: Proto) -> FindingCode {
        match p {
            Proto::Tcp => FindingCode::InterceptionTcp,
            Proto::Udp => FindingCode::InterceptionUdp,
        }
    }
}

impl fmt::Display for FindingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for FindingCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for FindingCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for FindingCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FindingCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(FindingCode::parse(&text))
    }
}

/// The verdict for one checked port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The peer reached it at every address of this host it can reach.
    Reachable,
    /// `--local`: it answered this machine at each of its own addresses (over `lo`), and
    /// no firewall rule read from the configuration stops other hosts. What other devices
    /// meet on the way was not tested.
    ReachableLocally,
    /// Answered at some addresses the peer can reach, refused or silent at others.
    Partial,
    /// Bound to 127.0.0.1 / ::1 only.
    LoopbackOnly,
    /// Bound only to an address the peer did not dial (another NIC, a VPN).
    InterfaceOnly,
    /// IPv4 only, and the peer reached this host over IPv6 only.
    Ipv4Only,
    /// IPv6 only, and the peer reached this host over IPv4 only.
    Ipv6Only,
    /// Something listens on a matching address; the port times out from outside (`--local`:
    /// the firewall's configuration drops other hosts' packets to it).
    FirewallDrop,
    /// Something listens on a matching address; refused or admin-prohibited from outside
    /// (`--local`: the firewall's configuration rejects other hosts' packets to it).
    FirewallReject,
    /// Nothing listens on the port.
    NotListening,
    /// A userland proxy accepted and closed: its backend is down or bound to loopback.
    ProxyNoBackend,
    /// Docker: the app inside the container listens on 127.0.0.1.
    ContainerLoopback,
    /// Docker: published with `-p 127.0.0.1:…`.
    PublishedLoopback,
    /// Docker: nothing on this machine listens on the port, but a container does, inside
    /// its own network namespace, without a publication on it.
    ContainerNotPublished,
    /// TCP works but the app rejects the Host/Origin (400, 403, 421).
    HttpHostCheck,
    /// A browser cannot test this port: UDP, a port browsers refuse to connect to, or a
    /// service that does not speak HTTP. `lanreach-peer` on another computer can.
    BrowserUntestable,
    /// Not even the agent's wildcard test listeners are reachable.
    NetworkBlocked,
    /// A socket listens and the path is open, but the port stayed silent and nothing
    /// shows whether the probes reached it: no answer, and no inside view of the
    /// datagrams (UDP), or no quiet re-probe before the run ended.
    Unconfirmed,
}

impl Verdict {
    /// Every verdict, in a stable order.
    pub const ALL: [Verdict; 18] = [
        Verdict::Reachable,
        Verdict::ReachableLocally,
        Verdict::Partial,
        Verdict::LoopbackOnly,
        Verdict::InterfaceOnly,
        Verdict::Ipv4Only,
        Verdict::Ipv6Only,
        Verdict::FirewallDrop,
        Verdict::FirewallReject,
        Verdict::NotListening,
        Verdict::ProxyNoBackend,
        Verdict::ContainerLoopback,
        Verdict::PublishedLoopback,
        Verdict::ContainerNotPublished,
        Verdict::HttpHostCheck,
        Verdict::NetworkBlocked,
        Verdict::Unconfirmed,
        Verdict::BrowserUntestable,
    ];

    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Reachable => "reachable",
            Verdict::ReachableLocally => "reachable_locally",
            Verdict::Partial => "partial",
            Verdict::LoopbackOnly => "loopback_only",
            Verdict::InterfaceOnly => "interface_only",
            Verdict::Ipv4Only => "ipv4_only",
            Verdict::Ipv6Only => "ipv6_only",
            Verdict::FirewallDrop => "firewall_drop",
            Verdict::FirewallReject => "firewall_reject",
            Verdict::NotListening => "not_listening",
            Verdict::ProxyNoBackend => "proxy_no_backend",
            Verdict::ContainerLoopback => "container_loopback",
            Verdict::PublishedLoopback => "published_loopback",
            Verdict::ContainerNotPublished => "container_not_published",
            Verdict::HttpHostCheck => "http_host_check",
            Verdict::NetworkBlocked => "network_blocked",
            Verdict::Unconfirmed => "unconfirmed",
            Verdict::BrowserUntestable => "browser_untestable",
        }
    }
}

/// A listening socket in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceListener {
    /// Bound socket address.
    pub bind: SocketAddr,
    /// Owning process, null when not visible.
    pub pid: Option<u32>,
    /// Owning program, null when not visible.
    pub program: Option<String>,
    /// For `[::]`: IPV6_V6ONLY, when known.
    pub v6only: Option<bool>,
}

/// An outside probe in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceProbeReport {
    /// The socket address dialled.
    pub target: SocketAddr,
    /// What happened.
    pub outcome: Outcome,
    /// Connect round trip, milliseconds.
    pub rtt_ms: Option<f64>,
    /// HTTP status, when the server spoke HTTP.
    pub http_status: Option<u16>,
    /// OS error number, when there was one.
    pub errno: Option<i32>,
    /// Attempts that finished: 2 after a silent first attempt and its quiet re-probe.
    #[serde(default)]
    pub attempts: u8,
    /// As [`ProbeReport::proven`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub proven: bool,
    /// UDP: whether this machine's connection-tracking table shows the peer's datagrams
    /// passing its firewall (`true`), shows the peer's other UDP but not these (`false`),
    /// or cannot tell (null; always null for TCP).
    #[serde(default)]
    pub delivered: Option<bool>,
}

/// One checked port in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceReport {
    /// The port.
    pub port: u16,
    /// `check` (counts for the exit code) or `exposed` (audit).
    pub source: PortSource,
    /// Its protocol.
    pub proto: Proto,
    /// Sockets listening on it here.
    pub listeners: Vec<ServiceListener>,
    /// Docker publications of it.
    pub docker: Vec<DockerPublish>,
    /// Running containers listening on it inside their own network namespace without a
    /// publication on it (absent when there are none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpublished: Vec<UnpublishedContainer>,
    /// Outside probes of it.
    pub probes: Vec<ServiceProbeReport>,
    /// What the firewall's configuration does with a packet from another host to the
    /// port, one check per address of this machine probed (empty when not looked at).
    #[serde(default)]
    pub firewall: Vec<FirewallCheck>,
    /// The verdict.
    pub verdict: Verdict,
}

impl ServiceReport {
    /// `3000`, or `5353/udp`.
    pub fn label(&self) -> String {
        crate::facts::CheckedPort { port: self.port, proto: self.proto }.to_string()
    }
}

impl Report {
    /// The report as one compact JSON document, for the wire.
    pub fn to_json_compact(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The report as one JSON document.
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

impl Report {
    /// Whether `ip`, an address of this agent, is on a network the peer is on, as far as
    /// the report knows: the address it dialled, another address of the interface it
    /// dialled, an address whose prefix holds one of the peer's own addresses (or the
    /// source its traffic came from), or an address where some probe was answered. In
    /// `local` mode every address counts: the machine probes itself.
    pub fn on_peer_network(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.mode == Mode::Local || self.peer.dialled.map(|d| d.to_canonical()) == Some(ip) {
            return true;
        }
        let own = self.agent.addresses.iter().find(|a| a.ip.to_canonical() == ip);
        let dialled_interface = self
            .peer
            .dialled
            .and_then(|d| self.agent.addresses.iter().find(|a| a.ip.to_canonical() == d.to_canonical()))
            .map(|a| a.interface.as_str());
        if own.is_some_and(|a| Some(a.interface.as_str()) == dialled_interface) {
            return true;
        }
        let mut peer_ips = self.peer.addresses.iter().copied().chain(self.peer.seen_from.map(|s| s.ip()));
        if own.is_some_and(|a| peer_ips.any(|p| a.same_network(p))) {
            return true;
        }
        self.probes.iter().any(|p| p.target.ip().to_canonical() == ip && p.outcome == Outcome::Open)
            || self
                .services
                .iter()
                .flat_map(|s| &s.probes)
                .any(|p| p.target.ip().to_canonical() == ip && p.outcome == Outcome::Open)
    }

    /// The exit code's question: with a peer, whether every port named with `--check` is
    /// `reachable`; in `local` mode, whether nothing wrong is visible from this machine
    /// (every checked port `reachable_locally`, no error-level finding).
    pub fn all_clear(&self) -> bool {
        let fine = match self.mode {
            Mode::Peer | Mode::Browser => Verdict::Reachable,
            Mode::Local => Verdict::ReachableLocally,
        };
        let ports = self.services.iter().filter(|s| s.source == PortSource::Check).all(|s| s.verdict == fine);
        ports && (self.mode.from_outside() || self.findings.iter().all(|f| f.severity != Severity::Error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finding_codes_round_trip_and_every_verdict_has_one() {
        for c in FindingCode::ALL {
            assert_eq!(&FindingCode::parse(c.as_str()), c);
            let json = serde_json::to_string(c).expect("json");
            assert_eq!(serde_json::from_str::<FindingCode>(&json).expect("parse"), *c);
        }
        for v in Verdict::ALL.into_iter().filter(|v| *v != Verdict::LoopbackOnly) {
            assert_ne!(FindingCode::of_verdict(v), FindingCode::Other(v.as_str().into()), "{v:?}");
        }
        assert_eq!(FindingCode::parse("from_the_future"), FindingCode::Other("from_the_future".into()));
    }
}
