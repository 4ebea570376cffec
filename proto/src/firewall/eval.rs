//! Walking a packet through the ruleset: every base chain of its hooks in order (ingress,
//! prerouting, input; by priority within a hook), rules in order, jumps, gotos and
//! returns, verdict maps, policies.
//!
//! A condition the model cannot decide (an unknown construct, the other host's source
//! port) is not guessed: the walk is repeated for both of its answers, and a conclusion
//! stands only when every walk reaches the same one. Otherwise the answer is
//! [`Decision::Undecided`], naming what could not be decided.

use std::net::IpAddr;

use super::{Action, Cond, Family, Field, Hook, Op, Packet, PacketSource, Reject, Rule, RuleRef, Ruleset, Value};

/// Most walks one evaluation makes (each undecidable condition doubles them).
const MAX_WALKS: usize = 256;

/// Deepest nesting of jumps (nftables itself refuses loops and limits depth).
const MAX_DEPTH: usize = 16;

/// What the firewall does with a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Every base chain lets it in; the rule that accepted it where one did (in a chain
    /// whose policy would have dropped it, first).
    Accepted(Option<RuleRef>),
    /// Dropped by this rule or policy.
    Dropped(RuleRef),
    /// Rejected by this rule, this way.
    Rejected(RuleRef, Reject),
    /// Could not be decided: why, in words.
    Undecided(String),
}

/// Whether a condition holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Know {
    Yes,
    No,
    /// Cannot be known from the configuration: what.
    Unknown(String),
}

impl Know {
    fn of(b: bool) -> Know {
        if b { Know::Yes } else { Know::No }
    }

    fn not(self) -> Know {
        match self {
            Know::Yes => Know::No,
            Know::No => Know::Yes,
            u => u,
        }
    }
}

/// The end of one walk.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Leaf {
    Accepted(Option<RuleRef>),
    Dropped(RuleRef),
    Rejected(RuleRef, Reject),
    Undecided(String),
}

/// How a chain ended.
enum End {
    Accept(RuleRef),
    Drop(RuleRef),
    Reject(RuleRef, Reject),
    /// Fell off the end or returned: the caller goes on (a base chain: its policy).
    Return,
    Undecided(String),
}

/// One walk, with the answers it gives to undecidable conditions.
struct Walk<'a> {
    rules: &'a Ruleset,
    packet: &'a Packet,
    /// Answers to the undecidable conditions met so far, in order; past the end, `false`.
    choices: Vec<bool>,
    next: usize,
    /// What each choice was about.
    unknowns: Vec<String>,
}

impl Walk<'_> {
    fn decide(&mut self, k: Know) -> bool {
        match k {
            Know::Yes => true,
            Know::No => false,
            Know::Unknown(what) => {
                if self.next == self.choices.len() {
                    self.choices.push(false);
                }
                let c = self.choices[self.next];
                self.next += 1;
                if !self.unknowns.contains(&what) {
                    self.unknowns.push(what);
                }
                c
            }
        }
    }

    fn reference(&self, chain: &super::Chain, rule: &Rule) -> RuleRef {
        RuleRef {
            from: chain.from,
            table: table_name(chain),
            chain: chain.name.clone(),
            handle: rule.handle,
            text: rule.text.clone(),
        }
    }

    /// Runs `chain` (index into the ruleset) at nesting `depth`.
    fn chain(&mut self, index: usize, depth: usize) -> End {
        if depth > MAX_DEPTH {
            return End::Undecided(format!("jumps nest deeper than {MAX_DEPTH} chains"));
        }
        let chain = &self.rules.chains[index];
        for rule in &chain.rules {
            let mut holds = true;
            for cond in &rule.conds {
                let k = test(cond, self.packet);
                if !self.decide(k) {
                    holds = false;
                    break;
                }
            }
            if !holds {
                continue;
            }
            match self.act(index, rule, &rule.action, depth) {
                Some(end) => return end,
                None => continue,
            }
        }
        End::Return
    }

    /// What `action` of `rule` in chain `index` does: an end, or `None` to go on.
    fn act(&mut self, index: usize, rule: &Rule, action: &Action, depth: usize) -> Option<End> {
        let chain = &self.rules.chains[index];
        match action {
            Action::Continue => None,
            Action::Accept => Some(End::Accept(self.reference(chain, rule))),
            Action::Drop => Some(End::Drop(self.reference(chain, rule))),
            Action::Reject(how) => Some(End::Reject(self.reference(chain, rule), how.clone())),
            Action::Return => Some(End::Return),
            Action::Jump(name) | Action::Goto(name) => {
                let Some(target) = self.find(index, name) else {
                    return Some(End::Undecided(format!(
                        "rule `{}` jumps to chain {name}, which was not read",
                        rule.text
                    )));
                };
                match (self.chain(target, depth + 1), action) {
                    (End::Return, Action::Jump(_)) => None,
                    // A goto does not come back: its chain's return is this chain's.
                    (end, _) => Some(end),
                }
            }
            Action::Map { key, entries } => {
                for (value, then) in entries {
                    let k = test(&Cond { field: key.clone(), op: Op::Eq, values: vec![value.clone()] }, self.packet);
                    if self.decide(k) {
                        return self.act(index, rule, then, depth);
                    }
                }
                None
            }
            Action::Opaque(what) => Some(End::Undecided(format!("rule `{}`: {what}", rule.text))),
        }
    }

    /// The chain `name` in the table of chain `from`.
    fn find(&self, from: usize, name: &str) -> Option<usize> {
        let c = &self.rules.chains[from];
        self.rules
            .chains
            .iter()
            .position(|o| o.family == c.family && o.table == c.table && o.from == c.from && o.name == name)
    }

    /// The whole path: every base chain that sees the packet, in order.
    fn path(&mut self) -> Leaf {
        let v4 = self.packet.daddr.to_canonical().is_ipv4();
        let mut bases: Vec<(Hook, i32, usize)> = self
            .rules
            .chains
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let base = c.base.as_ref()?;
                let sees = c.family.sees(v4)
                    && match base.hook {
                        Hook::Ingress => c.family == Family::Netdev,
                        Hook::Prerouting | Hook::Input => c.family != Family::Netdev,
                    };
                sees.then_some((base.hook, base.priority, i))
            })
            .collect();
        bases.sort();
        let mut accepted: Option<RuleRef> = None;
        let mut accepted_over_drop = false;
        for (_, _, index) in bases {
            let chain = &self.rules.chains[index];
            let Some(base) = chain.base.as_ref() else { continue };
            let policy = || RuleRef {
                from: chain.from,
                table: table_name(chain),
                chain: chain.name.clone(),
                handle: None,
                text: base.policy_text.clone(),
            };
            if base.hook == Hook::Ingress {
                // An ingress chain sees what arrives on its devices only.
                let on = match (&base.devices, &self.packet.iif) {
                    (Some(devices), Some(iif)) => Know::of(devices.iter().any(|d| d == iif)),
                    (None, _) => Know::Unknown(format!(
                        "which device netdev chain {} {} is attached to (the JSON ruleset does not say)",
                        chain.table, chain.name
                    )),
                    (Some(_), None) => Know::Unknown("the interface the packet arrives on".into()),
                };
                if !self.decide(on) {
                    continue;
                }
            }
            let drops = base.policy == Action::Drop;
            match self.chain(index, 0) {
                End::Accept(rule) => {
                    if accepted.is_none() || (drops && !accepted_over_drop) {
                        accepted = Some(rule);
                        accepted_over_drop = drops;
                    }
                }
                End::Return if drops => return Leaf::Dropped(policy()),
                End::Return => {}
                End::Drop(rule) => return Leaf::Dropped(rule),
                End::Reject(rule, how) => return Leaf::Rejected(rule, how),
                End::Undecided(why) => return Leaf::Undecided(why),
            }
        }
        Leaf::Accepted(accepted)
    }
}

/// `inet filter`, or the front end's own name.
fn table_name(chain: &super::Chain) -> String {
    match chain.from {
        super::RulesFrom::Ufw | super::RulesFrom::Firewalld => chain.table.clone(),
        _ => format!("{} {}", chain.family.as_str(), chain.table),
    }
}

/// Walks `packet` through `rules`: accepted, dropped or rejected by a named rule, or
/// undecided with the reason.
pub fn evaluate(rules: &Ruleset, packet: &Packet) -> Decision {
    let mut pending: Vec<Vec<bool>> = vec![Vec::new()];
    let mut leaves: Vec<Leaf> = Vec::new();
    let mut unknowns: Vec<String> = Vec::new();
    let mut walks = 0;
    while let Some(prefix) = pending.pop() {
        walks += 1;
        if walks > MAX_WALKS {
            return Decision::Undecided(format!(
                "too many conditions it cannot decide ({})",
                unknowns.first().map(String::as_str).unwrap_or("")
            ));
        }
        let given = prefix.len();
        let mut walk = Walk { rules, packet, choices: prefix, next: 0, unknowns: Vec::new() };
        let leaf = walk.path();
        // Every answer this walk took by default (false) has another walk with `true`.
        for j in given..walk.next.min(walk.choices.len()) {
            let mut other = walk.choices[..j].to_vec();
            other.push(true);
            pending.push(other);
        }
        for u in walk.unknowns {
            if !unknowns.contains(&u) {
                unknowns.push(u);
            }
        }
        leaves.push(leaf);
    }
    let Some(first) = leaves.first().cloned() else {
        return Decision::Undecided("no walk was made".into());
    };
    let same = leaves.iter().all(|l| match (l, &first) {
        // Accepted is accepted, whichever rule let it in.
        (Leaf::Accepted(_), Leaf::Accepted(_)) => true,
        (a, b) => a == b,
    });
    if !same {
        let undecided = leaves.iter().find_map(|l| match l {
            Leaf::Undecided(why) => Some(why.clone()),
            _ => None,
        });
        let why = match (undecided, unknowns.is_empty()) {
            (Some(why), _) => why,
            (None, false) => format!("it depends on {}", unknowns.join(", ")),
            (None, true) => "walks disagree".to_owned(),
        };
        return Decision::Undecided(why);
    }
    match first {
        // With several ways in, name the rule only when every walk found the same one.
        Leaf::Accepted(rule) => {
            let agreed = leaves.iter().all(|l| matches!(l, Leaf::Accepted(r) if *r == rule));
            Decision::Accepted(if agreed { rule } else { None })
        }
        Leaf::Dropped(rule) => Decision::Dropped(rule),
        Leaf::Rejected(rule, how) => Decision::Rejected(rule, how),
        Leaf::Undecided(why) => Decision::Undecided(why),
    }
}

/// Whether `cond` holds for `packet`.
fn test(cond: &Cond, packet: &Packet) -> Know {
    let v4 = packet.daddr.to_canonical().is_ipv4();
    let proto = super::proto_of(packet.proto);
    let subject = match &cond.field {
        Field::Iifname => match &packet.iif {
            Some(iif) => Subject::Name(iif.clone()),
            None => return Know::Unknown("the interface the packet arrives on".into()),
        },
        Field::L4proto => Subject::Num(u64::from(proto)),
        Field::IpProto { v4: fv4 } if *fv4 != v4 => return Know::No,
        Field::IpProto { .. } => Subject::Num(u64::from(proto)),
        // `tcp dport …` implies TCP: a UDP packet does not match, whatever the operator.
        Field::Dport(Some(p)) if *p != proto => return Know::No,
        Field::Dport(_) => Subject::Num(u64::from(packet.dport)),
        Field::L4Other { proto: p, .. } if *p != proto => return Know::No,
        Field::L4Other { text, .. } => return Know::Unknown(format!("`{text}`")),
        Field::Saddr { v4: fv4 } | Field::Daddr { v4: fv4 } if *fv4 != v4 => return Know::No,
        Field::Saddr { .. } => match packet.source {
            PacketSource::Host(ip) => Subject::Addr(ip, if ip.is_ipv4() { 32 } else { 128 }),
            PacketSource::Network(ip, len) => Subject::Addr(ip, len),
            PacketSource::Unknown => return Know::Unknown("the other host's address".into()),
        },
        Field::Daddr { .. } => {
            let ip = packet.daddr.to_canonical();
            Subject::Addr(ip, if ip.is_ipv4() { 32 } else { 128 })
        }
        Field::FamilyOther { v4: fv4, .. } if *fv4 != v4 => return Know::No,
        Field::FamilyOther { text, .. } => return Know::Unknown(format!("`{text}`")),
        Field::Nfproto => Subject::Name(if v4 { "ipv4" } else { "ipv6" }.into()),
        Field::CtState => Subject::Name("new".into()),
        Field::CtStatus => Subject::Flags,
        Field::CtDirection => Subject::Name("original".into()),
        Field::FibDaddrType => Subject::Name("local".into()),
        Field::FibSaddrOif => Subject::Bool(true),
        Field::PktType => Subject::Name("host".into()),
        Field::Opaque(text) => return Know::Unknown(format!("`{text}`")),
    };
    compare(&subject, cond.op, &cond.values)
}

/// The packet's side of a comparison.
enum Subject {
    Num(u64),
    Name(String),
    /// An address, or any address of a network.
    Addr(IpAddr, u8),
    Bool(bool),
    /// Flags of which the packet has none.
    Flags,
}

fn compare(subject: &Subject, op: Op, values: &[Value]) -> Know {
    match op {
        Op::Eq => member(subject, values),
        Op::Ne => member(subject, values).not(),
        Op::Lt | Op::Gt | Op::Le | Op::Ge => {
            let (Subject::Num(n), [Value::Num(v)]) = (subject, values) else {
                return Know::Unknown("an ordering comparison".into());
            };
            Know::of(match op {
                Op::Lt => n < v,
                Op::Gt => n > v,
                Op::Le => n <= v,
                _ => n >= v,
            })
        }
    }
}

/// Whether the subject is one of `values` (yes as soon as one surely holds).
fn member(subject: &Subject, values: &[Value]) -> Know {
    let mut unknown = None;
    for v in values {
        match one(subject, v) {
            Know::Yes => return Know::Yes,
            Know::No => {}
            u => unknown = Some(u),
        }
    }
    unknown.unwrap_or(Know::No)
}

fn one(subject: &Subject, value: &Value) -> Know {
    match (subject, value) {
        (Subject::Num(n), Value::Num(v)) => Know::of(n == v),
        (Subject::Num(n), Value::Range(a, b)) => Know::of(a <= n && n <= b),
        (Subject::Name(n), Value::Str(pattern)) => Know::of(match pattern.strip_suffix('*') {
            Some(prefix) => n.starts_with(prefix),
            None => n == pattern,
        }),
        (Subject::Addr(ip, len), Value::Net(net, net_len)) => contains(*ip, *len, *net, *net_len),
        (Subject::Addr(ip, len), Value::AddrRange(a, b)) => {
            let full = if ip.is_ipv4() { 32 } else { 128 };
            if *len != full {
                return Know::Unknown("the other host's address".into());
            }
            match (ip, a, b) {
                (IpAddr::V4(x), IpAddr::V4(a), IpAddr::V4(b)) => Know::of(a <= x && x <= b),
                (IpAddr::V6(x), IpAddr::V6(a), IpAddr::V6(b)) => Know::of(a <= x && x <= b),
                _ => Know::No,
            }
        }
        (Subject::Bool(b), Value::Bool(v)) => Know::of(b == v),
        (Subject::Flags, _) => Know::No,
        _ => Know::No,
    }
}

/// Whether every address of `ip/len` is in `net/net_len`: yes, no (none is), or
/// unknown (some are).
fn contains(ip: IpAddr, len: u8, net: IpAddr, net_len: u8) -> Know {
    let bits = |ip: IpAddr| -> (u128, u32) {
        match ip.to_canonical() {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        }
    };
    let ((a, width), (b, width_b)) = (bits(ip), bits(net));
    if width != width_b {
        return Know::No;
    }
    let mask = |l: u8| -> u128 {
        let l = u32::from(l).min(width);
        if l == 0 { 0 } else { (u128::MAX >> (128 - width)) & !((1u128 << (width - l)) - 1) }
    };
    // The shorter prefix decides whether the two overlap at all.
    let common = len.min(net_len);
    if a & mask(common) != b & mask(common) {
        return Know::No;
    }
    if len >= net_len { Know::Yes } else { Know::Unknown("the other host's address".into()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn prefixes_contain_overlap_or_miss() {
        assert_eq!(contains(ip("198.51.100.7"), 32, ip("198.51.100.0"), 24), Know::Yes);
        assert_eq!(contains(ip("198.51.100.0"), 24, ip("198.51.100.0"), 16), Know::Yes);
        assert_eq!(contains(ip("198.51.100.0"), 24, ip("203.0.113.0"), 24), Know::No);
        assert!(matches!(contains(ip("198.51.100.0"), 24, ip("198.51.100.128"), 25), Know::Unknown(_)));
        assert_eq!(contains(ip("2001:db8:1::2"), 128, ip("2001:db8::"), 32), Know::Yes);
        assert_eq!(contains(ip("2001:db8:1::2"), 128, ip("198.51.100.0"), 24), Know::No);
        assert_eq!(contains(ip("198.51.100.7"), 32, ip("0.0.0.0"), 0), Know::Yes);
    }
}
