//! `nft -j list ruleset` → [`Ruleset`]: tables of every family, base chains with their
//! hook, priority, policy (and netdev devices), named sets and verdict maps resolved into
//! the rules that use them, and each rule's text spelt as `nft list ruleset` spells it.
//! What the model does not know becomes an opaque condition or action named by that
//! text, never dropped silently.

use serde_json::Value as Json;

use super::{
    Action, Base, Chain, Cond, Family, Field, Hook, Op, Reject, Rule, RulesFrom, Ruleset, Value, parse_net,
    proto_number,
};

/// A named set or map of a table.
struct Named {
    family: String,
    table: String,
    name: String,
    /// Its elements; for a verdict map, each with its verdict.
    elems: Vec<Json>,
    verdicts: bool,
}

/// Parses the JSON document `nft -j list ruleset` prints.
pub fn parse(json: &str) -> Result<Ruleset, String> {
    let doc: Json = serde_json::from_str(json).map_err(|e| format!("the nftables ruleset is not JSON: {e}"))?;
    let items = doc
        .get("nftables")
        .and_then(Json::as_array)
        .ok_or("the nftables ruleset has no \"nftables\" list (is this `nft -j list ruleset`?)")?;
    let mut named = Vec::new();
    for item in items {
        for (key, verdicts) in [("set", false), ("map", true)] {
            if let Some(s) = item.get(key) {
                let map_of_verdicts = verdicts && s.get("map").and_then(Json::as_str) == Some("verdict");
                named.push(Named {
                    family: text(s, "family"),
                    table: text(s, "table"),
                    name: text(s, "name"),
                    elems: s.get("elem").and_then(Json::as_array).cloned().unwrap_or_default(),
                    verdicts: map_of_verdicts,
                });
            }
        }
    }
    let mut chains: Vec<Chain> = Vec::new();
    for item in items {
        if let Some(c) = item.get("chain") {
            let Some(family) = family(&text(c, "family")) else { continue };
            chains.push(Chain {
                from: RulesFrom::Nftables,
                family,
                table: text(c, "table"),
                name: text(c, "name"),
                base: base(c, family),
                rules: Vec::new(),
            });
        }
    }
    for item in items {
        let Some(r) = item.get("rule") else { continue };
        let Some(family) = family(&text(r, "family")) else { continue };
        let (table, chain) = (text(r, "table"), text(r, "chain"));
        let scope = Scope { family: family.as_str(), table: &table, named: &named };
        let rule = rule(r, &scope);
        if let Some(c) = chains.iter_mut().find(|c| c.family == family && c.table == table && c.name == chain) {
            c.rules.push(rule);
        }
    }
    Ok(Ruleset { chains })
}

/// Where a rule's set references are looked up.
struct Scope<'a> {
    family: &'a str,
    table: &'a str,
    named: &'a [Named],
}

impl Scope<'_> {
    fn find(&self, name: &str) -> Option<&Named> {
        self.named.iter().find(|n| n.family == self.family && n.table == self.table && n.name == name)
    }
}

fn text(v: &Json, key: &str) -> String {
    v.get(key).and_then(Json::as_str).unwrap_or_default().to_owned()
}

fn family(name: &str) -> Option<Family> {
    match name {
        "ip" => Some(Family::Ip),
        "ip6" => Some(Family::Ip6),
        "inet" => Some(Family::Inet),
        "netdev" => Some(Family::Netdev),
        // bridge and arp tables never see a packet to a local socket's IP path.
        _ => None,
    }
}

/// Named priorities, as `nft` accepts them.
fn priority(v: &Json) -> Option<i32> {
    if let Some(n) = v.as_i64() {
        return i32::try_from(n).ok();
    }
    let s = v.as_str()?.replace(' ', "");
    let (name, offset) = match s.find(['+', '-']) {
        Some(i) if i > 0 => (&s[..i], s[i..].parse::<i32>().ok()?),
        _ => (s.as_str(), 0),
    };
    let base = match name {
        "raw" => -300,
        "mangle" => -150,
        "dstnat" => -100,
        "filter" => 0,
        "security" => 50,
        "srcnat" => 100,
        n => n.parse().ok()?,
    };
    Some(base + offset)
}

fn base(c: &Json, family: Family) -> Option<Base> {
    let hook = match c.get("hook").and_then(Json::as_str)? {
        "input" => Hook::Input,
        "prerouting" => Hook::Prerouting,
        "ingress" if family == Family::Netdev => Hook::Ingress,
        _ => return None,
    };
    // Route chains only exist on output; nat chains may redirect, which their rules say.
    if !matches!(c.get("type").and_then(Json::as_str), Some("filter" | "nat") | None) {
        return None;
    }
    let policy = c.get("policy").and_then(Json::as_str).unwrap_or("accept");
    let devices = match (c.get("dev"), c.get("devs")) {
        (Some(Json::String(d)), _) => Some(vec![d.clone()]),
        (Some(Json::Array(ds)), _) | (_, Some(Json::Array(ds))) => {
            Some(ds.iter().filter_map(Json::as_str).map(str::to_owned).collect())
        }
        _ => None,
    };
    Some(Base {
        hook,
        priority: c.get("prio").and_then(priority).unwrap_or(0),
        policy: if policy == "drop" { Action::Drop } else { Action::Accept },
        policy_text: format!("policy {policy}"),
        devices,
    })
}

/// One rule: its conditions, its action, its text.
fn rule(r: &Json, scope: &Scope<'_>) -> Rule {
    let exprs = r.get("expr").and_then(Json::as_array).cloned().unwrap_or_default();
    let mut conds = Vec::new();
    let mut action = Action::Continue;
    let mut words = Vec::new();
    for stmt in &exprs {
        words.push(statement_text(stmt));
        if action != Action::Continue {
            continue;
        }
        if let Some(m) = stmt.get("match") {
            conds.push(condition(m, scope));
            continue;
        }
        let Some((key, body)) = stmt.as_object().and_then(|o| o.iter().next()) else { continue };
        match key.as_str() {
            // Counting, logging, marking and set updates leave the verdict to the rest.
            "counter" | "log" | "mangle" | "set" => {}
            "accept" | "drop" | "return" | "continue" | "jump" | "goto" | "reject" => {
                action = verdict(key, body);
            }
            "vmap" => action = vmap(body, scope),
            // Address translation on input only renames the source.
            "snat" | "masquerade" => {}
            "dnat" | "redirect" => {
                action = Action::Opaque("it is redirected elsewhere, a path lanreach does not evaluate".into());
            }
            "queue" => action = Action::Opaque("it is queued to a program, which decides".into()),
            "xt" if body.get("type").and_then(Json::as_str) == Some("target") => {
                let name = body.get("name").and_then(Json::as_str).unwrap_or("?");
                if name != "LOG" {
                    action = Action::Opaque(format!(
                        "iptables target {name}, whose options the nftables JSON does not show"
                    ));
                }
            }
            _ => conds.push(Cond::opaque(statement_text(stmt))),
        }
    }
    let mut text = words.into_iter().filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ");
    if let Some(comment) = r.get("comment").and_then(Json::as_str) {
        text.push_str(&format!(" comment \"{comment}\""));
    }
    Rule { handle: r.get("handle").and_then(Json::as_u64), text, conds, action }
}

fn verdict(key: &str, body: &Json) -> Action {
    let target = || body.get("target").and_then(Json::as_str).unwrap_or_default().to_owned();
    match key {
        "accept" => Action::Accept,
        "drop" => Action::Drop,
        "return" => Action::Return,
        "continue" => Action::Continue,
        "jump" => Action::Jump(target()),
        "goto" => Action::Goto(target()),
        _ => Action::Reject(match (body.get("type").and_then(Json::as_str), body.get("expr").and_then(Json::as_str)) {
            (Some("tcp reset"), _) => Reject::TcpReset,
            (_, Some(kind)) => Reject::Icmp(kind.to_owned()),
            _ => Reject::Icmp("port-unreachable".into()),
        }),
    }
}

/// A verdict map: `… vmap { key : verdict, … }` or `vmap @name`.
fn vmap(body: &Json, scope: &Scope<'_>) -> Action {
    let Some(key) = body.get("key") else { return Action::Opaque("a verdict map without a key".into()) };
    let key_field = field(key);
    let data = body.get("data").cloned().unwrap_or(Json::Null);
    let elems: Vec<Json> = match &data {
        Json::Object(o) if o.contains_key("set") => o.get("set").and_then(Json::as_array).cloned().unwrap_or_default(),
        Json::String(s) if s.starts_with('@') => match scope.find(&s[1..]) {
            Some(n) if n.verdicts => n.elems.clone(),
            _ => return Action::Opaque(format!("verdict map {s}, which was not read")),
        },
        _ => return Action::Opaque("a verdict map lanreach does not know".into()),
    };
    let mut entries = Vec::new();
    for e in elems {
        let Some([k, v]) = e.as_array().map(Vec::as_slice) else {
            return Action::Opaque("a verdict map entry lanreach does not know".into());
        };
        let Some((vk, vb)) = v.as_object().and_then(|o| o.iter().next()) else {
            return Action::Opaque("a verdict map entry lanreach does not know".into());
        };
        let values = match values(&key_field, k, scope) {
            Ok(vals) => vals,
            Err(what) => return Action::Opaque(what),
        };
        let then = verdict(vk, vb);
        entries.extend(values.into_iter().map(|val| (val, then.clone())));
    }
    Action::Map { key: key_field, entries }
}

/// A `match` statement.
fn condition(m: &Json, scope: &Scope<'_>) -> Cond {
    let whole = || match_text(m);
    let Some(left) = m.get("left") else { return Cond::opaque(whole()) };
    let field = field(left);
    if matches!(field, Field::Opaque(_)) {
        return Cond::opaque(whole());
    }
    let op = match m.get("op").and_then(Json::as_str).unwrap_or("==") {
        "==" | "in" => Op::Eq,
        "!=" => Op::Ne,
        "<" => Op::Lt,
        ">" => Op::Gt,
        "<=" => Op::Le,
        ">=" => Op::Ge,
        _ => return Cond::opaque(whole()),
    };
    match values(&field, m.get("right").unwrap_or(&Json::Null), scope) {
        Ok(values) => Cond { field, op, values },
        Err(_) => Cond::opaque(whole()),
    }
}

/// The packet field an expression names.
fn field(left: &Json) -> Field {
    let opaque = || Field::Opaque(expr_text(left));
    if let Some(meta) = left.get("meta") {
        return match meta.get("key").and_then(Json::as_str) {
            Some("iifname" | "iif") => Field::Iifname,
            Some("l4proto") => Field::L4proto,
            Some("nfproto") => Field::Nfproto,
            Some("pkttype") => Field::PktType,
            _ => opaque(),
        };
    }
    if let Some(p) = left.get("payload") {
        let (Some(protocol), Some(f)) =
            (p.get("protocol").and_then(Json::as_str), p.get("field").and_then(Json::as_str))
        else {
            return opaque();
        };
        return match (protocol, f) {
            ("th", "dport") => Field::Dport(None),
            ("ip", "saddr") => Field::Saddr { v4: true },
            ("ip6", "saddr") => Field::Saddr { v4: false },
            ("ip", "daddr") => Field::Daddr { v4: true },
            ("ip6", "daddr") => Field::Daddr { v4: false },
            ("ip", "protocol") => Field::IpProto { v4: true },
            ("ip6", "nexthdr") => Field::IpProto { v4: false },
            ("ip", _) => Field::FamilyOther { v4: true, text: expr_text(left) },
            ("ip6", _) => Field::FamilyOther { v4: false, text: expr_text(left) },
            (proto, "dport") if proto_number(proto).is_some() && proto != "icmp" => Field::Dport(proto_number(proto)),
            (proto, _) => match proto_number(proto) {
                Some(n) => Field::L4Other { proto: n, text: expr_text(left) },
                None => opaque(),
            },
        };
    }
    if let Some(ct) = left.get("ct") {
        return match (ct.get("key").and_then(Json::as_str), ct.get("dir")) {
            (Some("state"), None) => Field::CtState,
            (Some("status"), None) => Field::CtStatus,
            (Some("direction"), None) => Field::CtDirection,
            _ => opaque(),
        };
    }
    if let Some(fib) = left.get("fib") {
        let flags = fib_flags(fib);
        return match fib.get("result").and_then(Json::as_str) {
            Some("type") if flags.contains(&"daddr") && !flags.contains(&"saddr") => Field::FibDaddrType,
            Some("oif" | "oifname") if flags.contains(&"saddr") && flags.contains(&"iif") => Field::FibSaddrOif,
            _ => opaque(),
        };
    }
    opaque()
}

/// A fib expression's flags (`saddr`, `iif`…).
fn fib_flags(fib: &Json) -> Vec<&str> {
    fib.get("flags").and_then(Json::as_array).map(|f| f.iter().filter_map(Json::as_str).collect()).unwrap_or_default()
}

/// The right-hand side of a match, as values of `field`.
fn values(field: &Field, right: &Json, scope: &Scope<'_>) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    collect(field, right, scope, &mut out)?;
    Ok(out)
}

fn collect(field: &Field, right: &Json, scope: &Scope<'_>, out: &mut Vec<Value>) -> Result<(), String> {
    let unknown = || Err(format!("value {}", expr_text(right)));
    match right {
        Json::Array(items) => {
            for i in items {
                collect(field, i, scope, out)?;
            }
        }
        Json::Object(o) if o.contains_key("set") => {
            if let Some(items) = o.get("set").and_then(Json::as_array) {
                for i in items {
                    collect(field, i, scope, out)?;
                }
            } else if let Some(one) = o.get("set") {
                collect(field, one, scope, out)?;
            }
        }
        Json::Object(o) if o.contains_key("elem") => {
            let val = o.get("elem").and_then(|e| e.get("val")).cloned().unwrap_or(Json::Null);
            collect(field, &val, scope, out)?;
        }
        Json::Object(o) if o.contains_key("range") => {
            let Some([a, b]) = o.get("range").and_then(Json::as_array).map(Vec::as_slice) else { return unknown() };
            let (mut va, mut vb) = (Vec::new(), Vec::new());
            collect(field, a, scope, &mut va)?;
            collect(field, b, scope, &mut vb)?;
            match (va.as_slice(), vb.as_slice()) {
                ([Value::Num(a)], [Value::Num(b)]) => out.push(Value::Range(*a, *b)),
                ([Value::Net(a, _)], [Value::Net(b, _)]) => out.push(Value::AddrRange(*a, *b)),
                _ => return unknown(),
            }
        }
        Json::Object(o) if o.contains_key("prefix") => {
            let p = o.get("prefix").unwrap_or(&Json::Null);
            let (Some(addr), Some(len)) = (p.get("addr").and_then(Json::as_str), p.get("len").and_then(Json::as_u64))
            else {
                return unknown();
            };
            match parse_net(&format!("{addr}/{len}")) {
                Some(v) => out.push(v),
                None => return unknown(),
            }
        }
        Json::String(s) if s.starts_with('@') => {
            let Some(set) = scope.find(&s[1..]) else { return Err(format!("set {s}, which was not read")) };
            for e in &set.elems {
                collect(field, e, scope, out)?;
            }
        }
        Json::Number(n) => match n.as_u64() {
            Some(n) => out.push(Value::Num(n)),
            None => return unknown(),
        },
        Json::Bool(b) => out.push(Value::Bool(*b)),
        Json::String(s) => out.push(match field {
            Field::L4proto | Field::IpProto { .. } => match proto_number(s) {
                Some(n) => Value::Num(u64::from(n)),
                None => return unknown(),
            },
            Field::Saddr { .. } | Field::Daddr { .. } => match parse_net(s) {
                Some(v) => v,
                None => return unknown(),
            },
            Field::Dport(_) => match well_known_port(s) {
                Some(n) => Value::Num(n),
                None => return unknown(),
            },
            _ => Value::Str(s.clone()),
        }),
        _ => return unknown(),
    }
    Ok(())
}

/// Service names `nft` prints for ports in some versions.
fn well_known_port(name: &str) -> Option<u64> {
    Some(match name {
        "ssh" => 22,
        "domain" => 53,
        "http" => 80,
        "https" => 443,
        "http-alt" => 8080,
        n => return n.parse().ok(),
    })
}

/// A statement as `nft list ruleset` spells it ("" for what it hides, like counters'
/// numbers).
fn statement_text(stmt: &Json) -> String {
    if let Some(m) = stmt.get("match") {
        return match_text(m);
    }
    let Some((key, body)) = stmt.as_object().and_then(|o| o.iter().next()) else { return String::new() };
    match key.as_str() {
        "counter" => "counter".into(),
        "accept" | "drop" | "return" | "continue" => key.clone(),
        "jump" | "goto" => format!("{key} {}", body.get("target").and_then(Json::as_str).unwrap_or("?")),
        "reject" => match (body.get("type").and_then(Json::as_str), body.get("expr").and_then(Json::as_str)) {
            (Some("tcp reset"), _) => "reject with tcp reset".into(),
            (Some(t), Some(e)) => format!("reject with {t} {e}"),
            _ => "reject".into(),
        },
        "log" => match body.get("prefix").and_then(Json::as_str) {
            Some(p) => format!("log prefix \"{p}\""),
            None => "log".into(),
        },
        "limit" => {
            let rate = body.get("rate").map(|r| r.to_string()).unwrap_or_default();
            let per = body.get("per").and_then(Json::as_str).unwrap_or("second");
            let over = if body.get("inv").and_then(Json::as_bool) == Some(true) { "over " } else { "" };
            format!("limit rate {over}{rate}/{per}")
        }
        "vmap" => format!(
            "{} vmap {}",
            body.get("key").map(expr_text).unwrap_or_default(),
            body.get("data").map(expr_text).unwrap_or_default()
        ),
        "xt" => format!(
            "xt {} {}",
            body.get("type").and_then(Json::as_str).unwrap_or(""),
            body.get("name").and_then(Json::as_str).unwrap_or("?")
        ),
        _ => match body {
            Json::Null => key.clone(),
            other => format!("{key} {}", compact(other)),
        },
    }
}

fn match_text(m: &Json) -> String {
    let left = m.get("left").map(expr_text).unwrap_or_default();
    let right = m.get("right").map(expr_text).unwrap_or_default();
    let quote = m.get("left").is_some_and(|l| {
        matches!(
            l.get("meta").and_then(|x| x.get("key")).and_then(Json::as_str),
            Some("iifname" | "oifname" | "iif" | "oif")
        )
    });
    let right = if quote { quote_names(m.get("right").unwrap_or(&Json::Null)) } else { right };
    match m.get("op").and_then(Json::as_str).unwrap_or("==") {
        "==" | "in" => format!("{left} {right}"),
        op => format!("{left} {op} {right}"),
    }
}

/// Interface names are quoted: `iifname "eth0"`, `iifname { "eth0", "wlan0" }`.
fn quote_names(v: &Json) -> String {
    match v {
        Json::String(s) if !s.starts_with('@') => format!("\"{s}\""),
        Json::Object(o) if o.contains_key("set") => {
            let items: Vec<String> =
                o.get("set").and_then(Json::as_array).map(|a| a.iter().map(quote_names).collect()).unwrap_or_default();
            format!("{{ {} }}", items.join(", "))
        }
        other => expr_text(other),
    }
}

/// An expression as `nft` spells it.
fn expr_text(e: &Json) -> String {
    match e {
        Json::Null => String::new(),
        Json::Bool(true) => "exists".into(),
        Json::Bool(false) => "missing".into(),
        Json::Number(n) => n.to_string(),
        Json::String(s) => s.clone(),
        // A list on the right of `in`: flags, `established,related`.
        Json::Array(items) => items.iter().map(expr_text).collect::<Vec<_>>().join(","),
        Json::Object(o) => {
            if let Some(meta) = o.get("meta") {
                let key = meta.get("key").and_then(Json::as_str).unwrap_or("?");
                return match key {
                    "iifname" | "oifname" | "iif" | "oif" | "mark" | "iiftype" => key.to_owned(),
                    k => format!("meta {k}"),
                };
            }
            if let Some(p) = o.get("payload") {
                return match (p.get("protocol").and_then(Json::as_str), p.get("field").and_then(Json::as_str)) {
                    (Some(proto), Some(f)) => format!("{proto} {f}"),
                    _ => format!("@{}", compact(p)),
                };
            }
            if let Some(ct) = o.get("ct") {
                return format!("ct {}", ct.get("key").and_then(Json::as_str).unwrap_or("?"));
            }
            if let Some(fib) = o.get("fib") {
                let flags = fib_flags(fib);
                return format!(
                    "fib {} {}",
                    flags.join(" . "),
                    fib.get("result").and_then(Json::as_str).unwrap_or("?")
                );
            }
            if let Some(items) = o.get("set") {
                return match items {
                    Json::Array(a) => format!("{{ {} }}", a.iter().map(set_item).collect::<Vec<_>>().join(", ")),
                    other => format!("{{ {} }}", expr_text(other)),
                };
            }
            if let Some(Json::Array(r)) = o.get("range") {
                return r.iter().map(expr_text).collect::<Vec<_>>().join("-");
            }
            if let Some(p) = o.get("prefix") {
                return format!(
                    "{}/{}",
                    p.get("addr").and_then(Json::as_str).unwrap_or("?"),
                    p.get("len").map(|l| l.to_string()).unwrap_or_default()
                );
            }
            if let Some(n) = o.get("numgen") {
                let mode = n.get("mode").and_then(Json::as_str).unwrap_or("?");
                let modulus = n.get("mod").map(|m| m.to_string()).unwrap_or_default();
                let offset = match n.get("offset").and_then(Json::as_u64) {
                    Some(0) | None => String::new(),
                    Some(off) => format!(" offset {off}"),
                };
                return format!("numgen {mode} mod {modulus}{offset}");
            }
            if let Some(Json::Array(parts)) = o.get("concat") {
                return parts.iter().map(expr_text).collect::<Vec<_>>().join(" . ");
            }
            if let Some(elem) = o.get("elem") {
                return elem.get("val").map(expr_text).unwrap_or_default();
            }
            compact(e)
        }
    }
}

/// A set element; a verdict map's is `key : verdict`.
fn set_item(v: &Json) -> String {
    match v.as_array().map(Vec::as_slice) {
        Some([k, verdict]) if verdict.is_object() => format!("{} : {}", expr_text(k), statement_text(verdict)),
        _ => expr_text(v),
    }
}

fn compact(v: &Json) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_priorities() {
        assert_eq!(priority(&Json::from(-10)), Some(-10));
        assert_eq!(priority(&Json::from("filter")), Some(0));
        assert_eq!(priority(&Json::from("filter + 10")), Some(10));
        assert_eq!(priority(&Json::from("raw")), Some(-300));
        assert_eq!(priority(&Json::from("dstnat - 5")), Some(-105));
    }
}
