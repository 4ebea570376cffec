//! The host firewall as a fact: its rules read from the configuration (the nftables
//! ruleset as JSON, `iptables-save`, ufw's and firewalld's own view), turned into one
//! model, and the input path of a packet from another host walked through it (hooks and
//! priorities, jumps and gotos, sets, maps, policies, interface matches).
//!
//! The answer is `accepted`, `dropped` or `rejected` by a named rule, or `not_evaluated`
//! with the reason (no permission, a construct the model does not know, a match on what
//! only the other host decides). A construct that is not understood is never guessed:
//! the evaluation follows both of its possible answers and concludes only when they
//! agree ([`evaluate`]).
//!
//! Parsing is pure (the agent runs the commands): [`nft`], [`iptables`], [`ufw`],
//! [`firewalld`]; [`Sources::combine`] merges what was read into one [`Ruleset`].

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::vocab::Proto;

mod eval;
pub mod firewalld;
pub mod iptables;
pub mod nft;
pub mod ufw;

pub use eval::{Decision, evaluate};

/// Which configuration a rule was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RulesFrom {
    /// `nft -j list ruleset`.
    Nftables,
    /// `iptables-save` / `ip6tables-save`.
    Iptables,
    /// `ufw status verbose`.
    Ufw,
    /// `firewall-cmd` (zones, services, rich rules).
    Firewalld,
}

impl fmt::Display for RulesFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RulesFrom::Nftables => "nftables",
            RulesFrom::Iptables => "iptables",
            RulesFrom::Ufw => "ufw",
            RulesFrom::Firewalld => "firewalld",
        })
    }
}

/// The packet families a table sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4 only.
    Ip,
    /// IPv6 only.
    Ip6,
    /// Both.
    Inet,
    /// Both, at a device's ingress.
    Netdev,
}

impl Family {
    /// The nftables spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
            Family::Inet => "inet",
            Family::Netdev => "netdev",
        }
    }

    /// Whether a table of this family sees an IPv4 (`v4`) or IPv6 packet.
    pub fn sees(self, v4: bool) -> bool {
        match self {
            Family::Ip => v4,
            Family::Ip6 => !v4,
            Family::Inet | Family::Netdev => true,
        }
    }
}

/// The hooks on the path of a packet to a local socket, in the order it meets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hook {
    /// netdev ingress of a device.
    Ingress,
    /// Before routing.
    Prerouting,
    /// Delivery to this machine.
    Input,
}

/// What makes a chain a base chain: where it hooks in, in which order, and what happens
/// at its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    /// The hook.
    pub hook: Hook,
    /// Lower runs first.
    pub priority: i32,
    /// At the end of the chain: `Accept` or `Drop`.
    pub policy: Action,
    /// How the policy reads in its configuration (`policy drop`, `Default: deny (incoming)`).
    pub policy_text: String,
    /// netdev ingress: the devices it is attached to; `None` when the configuration does
    /// not say (nft 1.0.6's JSON omits them).
    pub devices: Option<Vec<String>>,
}

/// A chain of rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Where it was read from.
    pub from: RulesFrom,
    /// The table's family.
    pub family: Family,
    /// The table's name.
    pub table: String,
    /// The chain's name.
    pub name: String,
    /// Set for base chains.
    pub base: Option<Base>,
    /// Its rules, in order.
    pub rules: Vec<Rule>,
}

/// One rule: conditions, all of which must hold, then an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// nftables handle, iptables rule number or ufw rule number.
    pub handle: Option<u64>,
    /// The rule as its configuration spells it.
    pub text: String,
    /// The conditions.
    pub conds: Vec<Cond>,
    /// What happens when they hold.
    pub action: Action,
}

/// A condition on one field of the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    /// What is compared.
    pub field: Field,
    /// How.
    pub op: Op,
    /// With what: any of these (a set), or one value.
    pub values: Vec<Value>,
}

impl Cond {
    /// A condition the model does not understand, named as its configuration spells it.
    pub fn opaque(text: impl Into<String>) -> Cond {
        Cond { field: Field::Opaque(text.into()), op: Op::Eq, values: Vec::new() }
    }
}

/// A packet field a condition looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The input interface's name (`iif`, `iifname`, `-i`); patterns may end in `*`.
    Iifname,
    /// The transport protocol number (`meta l4proto`, `-p`).
    L4proto,
    /// The transport protocol within one family (`ip protocol`, `ip6 nexthdr`).
    IpProto {
        /// IPv4 (`ip protocol`) or IPv6 (`ip6 nexthdr`).
        v4: bool,
    },
    /// The destination port; `Some(n)` implies transport protocol `n` (`tcp dport`),
    /// `None` any transport with ports (`th dport`).
    Dport(Option<u8>),
    /// Another field of a transport header (`tcp sport`, `icmp type`…): no match for
    /// another protocol, unknown for this one.
    L4Other {
        /// The protocol whose header it is.
        proto: u8,
        /// The field as the configuration spells it.
        text: String,
    },
    /// The source address (`ip saddr`, `-s`).
    Saddr {
        /// IPv4 or IPv6.
        v4: bool,
    },
    /// The destination address.
    Daddr {
        /// IPv4 or IPv6.
        v4: bool,
    },
    /// Another field of one family's header: no match for the other family.
    FamilyOther {
        /// IPv4 or IPv6.
        v4: bool,
        /// The field as the configuration spells it.
        text: String,
    },
    /// `meta nfproto`: `ipv4` or `ipv6`.
    Nfproto,
    /// `ct state`: a new connection's first packet is `new`.
    CtState,
    /// `ct status`: a new packet from another host carries none of the flags.
    CtStatus,
    /// `ct direction`: `original`.
    CtDirection,
    /// `fib daddr type`: the packet is addressed to this machine, `local`.
    FibDaddrType,
    /// `fib saddr . iif oif` (reverse-path filter): a host on the LAN is routed back
    /// through the interface its packet came in on, so the lookup finds an interface.
    FibSaddrOif,
    /// `meta pkttype`: unicast to this machine is `host`.
    PktType,
    /// Something the model does not know, as its configuration spells it.
    Opaque(String),
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Equal to one of the values (nftables `==`, `in`, a set).
    Eq,
    /// Equal to none of them.
    Ne,
    /// Less than.
    Lt,
    /// Greater than.
    Gt,
    /// Less or equal.
    Le,
    /// Greater or equal.
    Ge,
}

/// A value in a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A number (port, protocol).
    Num(u64),
    /// An inclusive range of numbers.
    Range(u64, u64),
    /// A name (interface, state, symbol).
    Str(String),
    /// An address prefix (a single address has the full length).
    Net(IpAddr, u8),
    /// An inclusive range of addresses.
    AddrRange(IpAddr, IpAddr),
    /// A boolean (`fib … oif missing` is `false`).
    Bool(bool),
}

/// How a packet is rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    /// A TCP reset: the other host sees "connection refused".
    TcpReset,
    /// An ICMP error of this type (`port-unreachable`, `admin-prohibited`…).
    Icmp(String),
}

/// What a rule does when its conditions hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing decisive (a counter, a log): the next rule.
    Continue,
    /// Accept in this base chain (the next base chain still sees the packet).
    Accept,
    /// Drop silently.
    Drop,
    /// Reject with an error.
    Reject(Reject),
    /// Run another chain, then come back.
    Jump(String),
    /// Run another chain instead of the rest of this one.
    Goto(String),
    /// Back to the calling chain (the policy in a base chain).
    Return,
    /// A verdict map: the action of the first entry the field matches, else the next rule.
    Map {
        /// The field looked up.
        key: Field,
        /// Entries in order.
        entries: Vec<(Value, Action)>,
    },
    /// An action whose outcome the model cannot know (a queue to a program, a DNAT that
    /// sends the packet elsewhere), as its configuration spells it.
    Opaque(String),
}

/// Every chain read, from every source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// The chains; base chains are found by their hook and priority.
    pub chains: Vec<Chain>,
}

/// A packet from another host to one of the user's ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// TCP or UDP.
    pub proto: Proto,
    /// The port.
    pub dport: u16,
    /// The address of this machine it is sent to.
    pub daddr: IpAddr,
    /// The interface it arrives on, when known.
    pub iif: Option<String>,
    /// Where it comes from.
    pub source: PacketSource,
}

/// Where a packet comes from, as far as it is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketSource {
    /// This address (the peer's).
    Host(IpAddr),
    /// Some host on this network (`--local`: another device of the LAN).
    Network(IpAddr, u8),
    /// Not known.
    Unknown,
}

impl PacketSource {
    /// Any host of the network of `ip`/`len` (the address masked to its prefix).
    pub fn network(ip: IpAddr, len: u8) -> PacketSource {
        let net = match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len.min(32))).unwrap_or(0);
                IpAddr::from(std::net::Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len.min(128))).unwrap_or(0);
                IpAddr::from(std::net::Ipv6Addr::from(u128::from(v6) & mask))
            }
        };
        PacketSource::Network(net, len)
    }
}

impl fmt::Display for PacketSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketSource::Host(ip) => write!(f, "{ip}"),
            PacketSource::Network(ip, len) => write!(f, "{ip}/{len}"),
            PacketSource::Unknown => f.write_str("another host"),
        }
    }
}

/// The rule that decided, as the report names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRef {
    /// The configuration it was read from.
    pub from: RulesFrom,
    /// The table (`inet filter`; `ufw`, `firewalld` for theirs).
    pub table: String,
    /// The chain (`input`; the zone for firewalld).
    pub chain: String,
    /// nftables handle, iptables or ufw rule number; null for a policy.
    pub handle: Option<u64>,
    /// The rule as its configuration spells it (`policy drop` for a chain's policy).
    pub text: String,
}

impl RuleRef {
    /// The table's family and name, for nftables and iptables tables (`inet`, `filter`).
    pub fn family_and_table(&self) -> (&str, &str) {
        self.table.split_once(' ').unwrap_or(("", self.table.as_str()))
    }

    /// Whether this is a chain's policy (or a front end's default), not a rule.
    pub fn is_policy(&self) -> bool {
        self.handle.is_none()
    }
}

/// What the firewall does with the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FirewallOutcome {
    /// Every base chain on its path lets it in.
    Accepted,
    /// A rule or policy drops it: the other host meets silence.
    Dropped,
    /// A rule rejects it: the other host meets a refusal or an ICMP error.
    Rejected,
    /// The configuration could not be read or not be evaluated (see `reason`).
    NotEvaluated,
}

impl FirewallOutcome {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FirewallOutcome::Accepted => "accepted",
            FirewallOutcome::Dropped => "dropped",
            FirewallOutcome::Rejected => "rejected",
            FirewallOutcome::NotEvaluated => "not_evaluated",
        }
    }
}

/// The evaluation of the input path for one address of one of the user's ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallCheck {
    /// The socket address of this machine the packet is sent to.
    pub target: SocketAddr,
    /// The interface it is taken to arrive on.
    pub interface: Option<String>,
    /// Where it is taken to come from (`198.51.100.2`, or `198.51.100.0/24` for any host
    /// of that network).
    pub source: String,
    /// The answer.
    pub outcome: FirewallOutcome,
    /// The rule (or policy) that decided; for `accepted`, the rule that let it in, when
    /// one did.
    pub rule: Option<RuleRef>,
    /// For `not_evaluated`: why, in words.
    pub reason: Option<String>,
}

impl FirewallCheck {
    /// Whether the packet does not get in.
    pub fn blocks(&self) -> bool {
        matches!(self.outcome, FirewallOutcome::Dropped | FirewallOutcome::Rejected)
    }

    /// The check of `packet` against `rules`.
    pub fn of(rules: &Ruleset, packet: &Packet) -> FirewallCheck {
        let (outcome, rule, reason) = match evaluate(rules, packet) {
            Decision::Accepted(rule) => (FirewallOutcome::Accepted, rule, None),
            Decision::Dropped(rule) => (FirewallOutcome::Dropped, Some(rule), None),
            Decision::Rejected(rule, _) => (FirewallOutcome::Rejected, Some(rule), None),
            Decision::Undecided(why) => (FirewallOutcome::NotEvaluated, None, Some(why)),
        };
        FirewallCheck {
            target: SocketAddr::new(packet.daddr, packet.dport),
            interface: packet.iif.clone(),
            source: packet.source.to_string(),
            outcome,
            rule,
            reason,
        }
    }

    /// A check that could not be made, and why.
    pub fn not_evaluated(packet: &Packet, reason: impl Into<String>) -> FirewallCheck {
        FirewallCheck {
            target: SocketAddr::new(packet.daddr, packet.dport),
            interface: packet.iif.clone(),
            source: packet.source.to_string(),
            outcome: FirewallOutcome::NotEvaluated,
            rule: None,
            reason: Some(reason.into()),
        }
    }
}

/// The firewall as the agent found it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Firewall {
    /// Not looked at: reports carry no evaluation.
    #[default]
    NotRead,
    /// The rules of every source that could be read, merged ([`Sources::combine`]).
    Rules(Ruleset),
    /// The configuration could not be read: why, in words.
    Unreadable(String),
}

/// One source as read by the agent: its rules, or why they could not be read.
pub type Read = Result<Ruleset, String>;

/// What the agent read, source by source (`None`: that tool is not installed, or its
/// front end is not active in this network namespace).
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `nft -j list ruleset`.
    pub nft: Option<Read>,
    /// `iptables-save` and `ip6tables-save`, with whether they are the nf_tables
    /// variant (whose tables the nftables ruleset also holds, in less detail).
    pub iptables: Option<(Read, IptablesVariant)>,
    /// `iptables-legacy-save` and `ip6tables-legacy-save` where the default variant is
    /// nf_tables: legacy rules filter as well.
    pub iptables_legacy: Option<Read>,
    /// ufw's own view, when ufw is active here.
    pub ufw: Option<Read>,
    /// firewalld's zones, when firewalld manages this namespace.
    pub firewalld: Option<Read>,
}

/// Which kernel interface `iptables-save` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IptablesVariant {
    /// `iptables-save (nf_tables)`: its tables are nftables tables of family ip/ip6.
    Nftables,
    /// `iptables-save (legacy)`: the old x_tables interface, filtering beside nftables.
    Legacy,
}

/// The names iptables gives its tables.
const IPTABLES_TABLES: &[&str] = &["filter", "nat", "mangle", "raw", "security"];

impl Sources {
    /// One ruleset from every source, each rule seen once and in the most precise form:
    /// ufw's and firewalld's own views replace their translations (ufw's chains,
    /// firewalld's table), `iptables-save`'s rules replace the nftables view of the
    /// tables iptables-nft manages (whose JSON hides its matches), legacy iptables rules
    /// are added beside them. Nothing readable at all is [`Firewall::Unreadable`]; a
    /// source that exists but cannot be read keeps the others from concluding
    /// `accepted` (see [`evaluate`]), through a base chain whose only rule is opaque.
    pub fn combine(self) -> Firewall {
        let mut problems = Vec::new();
        let mut take = |read: Option<Read>| match read {
            Some(Ok(rules)) => Some(rules),
            Some(Err(why)) => {
                problems.push(why);
                None
            }
            None => None,
        };
        // An inactive front end has no rules and owns nothing.
        let ufw = take(self.ufw).filter(|r| !r.chains.is_empty());
        let firewalld = take(self.firewalld).filter(|r| !r.chains.is_empty());
        let legacy = take(self.iptables_legacy);
        let nft_read = matches!(self.nft, Some(Ok(_)));
        let (iptables, variant) = match self.iptables {
            // iptables-nft reads the same tables as nft: where it fails (a table nft made
            // that it cannot show), the nftables view of them stands.
            Some((Err(_), IptablesVariant::Nftables)) if nft_read => (None, None),
            Some((read, variant)) => (take(Some(read)), Some(variant)),
            None => (None, None),
        };
        let nft = take(self.nft);
        if nft.is_none() && iptables.is_none() && legacy.is_none() && ufw.is_none() && firewalld.is_none() {
            let why = if problems.is_empty() {
                "neither nft nor iptables-save is installed, so the firewall's rules cannot be read".to_owned()
            } else {
                problems.join("; ")
            };
            return Firewall::Unreadable(why);
        }
        let fronted =
            |c: &Chain| (ufw.is_some() && c.name.starts_with("ufw")) || (firewalld.is_some() && c.table == "firewalld");
        // A table any of whose chains a front end owns is that front end's translation.
        let owned_tables = |rules: &Ruleset| -> Vec<(Family, String)> {
            let mut out: Vec<(Family, String)> = Vec::new();
            for c in rules.chains.iter().filter(|c| fronted(c)) {
                if !out.contains(&(c.family, c.table.clone())) {
                    out.push((c.family, c.table.clone()));
                }
            }
            out
        };
        let mut chains = Vec::new();
        let iptables_nft = variant == Some(IptablesVariant::Nftables) && iptables.is_some();
        if let Some(nft) = nft {
            let owned = owned_tables(&nft);
            chains.extend(nft.chains.into_iter().filter(|c| {
                let iptables_table = matches!(c.family, Family::Ip | Family::Ip6)
                    && IPTABLES_TABLES.contains(&c.table.as_str())
                    && iptables_nft;
                !iptables_table && !owned.contains(&(c.family, c.table.clone()))
            }));
        }
        for rules in [iptables, legacy].into_iter().flatten() {
            let owned = owned_tables(&rules);
            chains.extend(rules.chains.into_iter().filter(|c| !owned.contains(&(c.family, c.table.clone()))));
        }
        for rules in [ufw, firewalld].into_iter().flatten() {
            chains.extend(rules.chains);
        }
        for why in problems {
            chains.push(unreadable_chain(why));
        }
        Firewall::Rules(Ruleset { chains })
    }
}

/// A base chain standing for a source that could not be read: whatever the others
/// decide, it may still drop the packet.
fn unreadable_chain(why: String) -> Chain {
    Chain {
        from: RulesFrom::Nftables,
        family: Family::Inet,
        table: "unreadable".into(),
        name: "unreadable".into(),
        base: Some(Base {
            hook: Hook::Input,
            priority: i32::MAX,
            policy: Action::Accept,
            policy_text: "policy accept".into(),
            devices: None,
        }),
        rules: vec![Rule { handle: None, text: why.clone(), conds: vec![Cond::opaque(why)], action: Action::Drop }],
    }
}

/// Protocol numbers by name, as nftables and iptables spell them.
pub fn proto_number(name: &str) -> Option<u8> {
    Some(match name.to_ascii_lowercase().as_str() {
        "icmp" => 1,
        "igmp" => 2,
        "tcp" => 6,
        "udp" => 17,
        "esp" => 50,
        "ah" => 51,
        "ipv6-icmp" | "icmpv6" | "icmp6" => 58,
        "sctp" => 132,
        "udplite" => 136,
        "dccp" => 33,
        "gre" => 47,
        n => return n.parse().ok(),
    })
}

/// The protocol number of TCP or UDP.
pub fn proto_of(p: Proto) -> u8 {
    match p {
        Proto::Tcp => 6,
        Proto::Udp => 17,
    }
}

/// Parses `198.51.100.0/24`, `2001:db8::/32` or a single address (full length).
pub fn parse_net(text: &str) -> Option<Value> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let ip: IpAddr = addr.trim().parse().ok()?;
    let full = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => {
            let l: u8 = l.trim().parse().ok()?;
            (l <= full).then_some(l)?
        }
        None => full,
    };
    Some(Value::Net(ip, len))
}
