//! `ufw status verbose` → [`Ruleset`]: ufw's own rules in order (the first that matches
//! decides, as in ufw's user chains), then its default incoming policy. ufw's
//! translation into iptables hides its matches from the nftables JSON; this is the view
//! ufw's user manages, with the rule numbers `ufw status numbered` shows.
//!
//! Only incoming rules count; an application profile (`OpenSSH`) takes its ports from
//! `ufw app info NAME`, and is an opaque condition without it.

use super::{
    Action, Base, Chain, Cond, Family, Field, Hook, Op, Reject, Rule, RulesFrom, Ruleset, Value, parse_net,
    proto_number,
};

/// The chain ufw's rules are evaluated in (its table is `ufw`).
pub const CHAIN: &str = "incoming";

/// The application profiles a status names (`OpenSSH`, `Nginx Full`), for `ufw app info`.
pub fn profiles(status: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut in_table = false;
    for line in status.lines().map(str::trim) {
        if line.starts_with("--") {
            in_table = true;
            continue;
        }
        if !in_table || line.is_empty() {
            continue;
        }
        let to = line.split("  ").next().unwrap_or_default().replace("(v6)", "");
        let to = to.split(" on ").next().unwrap_or_default().trim().to_owned();
        let is_profile = to != "Anywhere"
            && !to.is_empty()
            && to.split_whitespace().all(|w| parse_net(w).is_none() && ports(w).is_none());
        if is_profile && !out.contains(&to) {
            out.push(to);
        }
    }
    out
}

/// The ports of an application profile from `ufw app info NAME` (`22/tcp`, `80,443/tcp`).
fn profile_ports(info: &str) -> Vec<String> {
    let mut lines = info.lines().map(str::trim).skip_while(|l| !l.starts_with("Port"));
    lines.next();
    lines.take_while(|l| !l.is_empty()).flat_map(|l| l.split('|')).map(|p| p.trim().to_owned()).collect()
}

/// Parses `ufw status verbose` (plain `ufw status` works too, with an allowing default),
/// with `(name, ufw app info name)` for the application profiles it names ([`profiles`]).
pub fn parse(text: &str, apps: &[(String, String)]) -> Result<Ruleset, String> {
    let mut lines = text.lines();
    let status = lines.clone().find_map(|l| l.trim().strip_prefix("Status:")).map(str::trim);
    match status {
        Some("active") => {}
        Some(_) => return Ok(Ruleset::default()),
        None => return Err("not the output of `ufw status verbose` (no \"Status:\" line)".into()),
    }
    let default = lines
        .clone()
        .find_map(|l| l.trim().strip_prefix("Default:"))
        .and_then(|d| d.split(',').find(|p| p.contains("(incoming)")))
        .map(|p| p.split_whitespace().next().unwrap_or("deny").to_owned())
        .unwrap_or_else(|| "deny".into());
    let mut rules = Vec::new();
    let mut in_table = false;
    let mut number = 0u64;
    for line in lines.by_ref() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") {
            in_table = true;
            continue;
        }
        if !in_table || trimmed.is_empty() {
            continue;
        }
        number += 1;
        rules.extend(rule(trimmed, number, apps)?);
    }
    let policy_text = format!("Default: {default} (incoming)");
    match default.as_str() {
        "reject" => rules.push(Rule {
            handle: None,
            text: policy_text.clone(),
            conds: Vec::new(),
            action: Action::Reject(Reject::Icmp("port-unreachable".into())),
        }),
        "allow" | "deny" => {}
        other => return Err(format!("ufw's default incoming policy {other:?} is not one ufw knows")),
    }
    let base = Base {
        hook: Hook::Input,
        priority: 0,
        policy: if default == "allow" { Action::Accept } else { Action::Drop },
        policy_text,
        devices: None,
    };
    Ok(Ruleset {
        chains: vec![Chain {
            from: RulesFrom::Ufw,
            family: Family::Inet,
            table: "ufw".into(),
            name: CHAIN.into(),
            base: Some(base),
            rules,
        }],
    })
}

/// One line of the rules table: a rule (one per port list of an application profile);
/// none for rules of other directions.
fn rule(line: &str, number: u64, apps: &[(String, String)]) -> Result<Vec<Rule>, String> {
    let body = line.split(" # ").next().unwrap_or(line).trim_end();
    let columns: Vec<&str> = body.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    let [to, action, from] = columns.as_slice() else {
        return Err(format!("ufw status: cannot read the rule {line:?}"));
    };
    let mut words = action.split_whitespace();
    let verb = words.next().unwrap_or_default();
    let direction = words.next().unwrap_or("IN");
    if direction != "IN" {
        return Ok(Vec::new());
    }
    // `22/tcp (v6)`, `Anywhere (v6) on wg0`.
    let v6 = to.contains("(v6)");
    let to = to.replace(" (v6)", "").replace("(v6)", "");
    let from = from.replace(" (v6)", "").replace("(v6)", "");
    let (to, from) = (to.trim(), from.trim());
    let mut conds = vec![Cond {
        field: Field::Nfproto,
        op: Op::Eq,
        values: vec![Value::Str(if v6 { "ipv6" } else { "ipv4" }.into())],
    }];
    let (to, iface) = match to.split_once(" on ") {
        Some((t, i)) => (t.trim(), Some(i.trim())),
        None => (to, None),
    };
    if let Some(i) = iface {
        conds.push(Cond { field: Field::Iifname, op: Op::Eq, values: vec![Value::Str(i.to_owned())] });
    }
    conds.extend(endpoint(from, !v6, true));
    let action = match verb {
        "ALLOW" => Action::Accept,
        // LIMIT accepts until one source opens six connections within 30 seconds.
        "LIMIT" => Action::Accept,
        "DENY" => Action::Drop,
        "REJECT" => Action::Reject(Reject::Icmp("port-unreachable".into())),
        other => return Err(format!("ufw status: unknown action {other:?} in {line:?}")),
    };
    let make = |to_conds: Vec<Cond>| Rule {
        handle: Some(number),
        text: line.to_owned(),
        conds: [conds.clone(), to_conds].concat(),
        action: action.clone(),
    };
    let profile = apps.iter().find(|(name, _)| name == to).map(|(_, info)| profile_ports(info));
    Ok(match profile {
        Some(ports) if !ports.is_empty() => ports.iter().map(|p| make(endpoint(p, !v6, false))).collect(),
        _ => vec![make(endpoint(to, !v6, false))],
    })
}

/// `Anywhere`, `22/tcp`, `80,443/tcp`, `6000:6007/udp`, `198.51.100.10 3000/tcp`,
/// `198.51.100.0/24`, or an application profile; `source` for the From column (whose
/// port is the other host's, unknown).
fn endpoint(text: &str, v4: bool, source: bool) -> Vec<Cond> {
    if text == "Anywhere" || text.is_empty() {
        return Vec::new();
    }
    let mut parts = text.split_whitespace();
    let first = parts.next().unwrap_or_default();
    let second = parts.next();
    let (addr, port) = match (parse_net(first), second) {
        (Some(net), port) => (Some(net), port),
        (None, None) if first != "Anywhere" => (None, Some(first)),
        (None, port) => (None, port),
    };
    let mut conds = Vec::new();
    if let Some(net) = addr {
        let field = if source { Field::Saddr { v4 } } else { Field::Daddr { v4 } };
        conds.push(Cond { field, op: Op::Eq, values: vec![net] });
    }
    if let Some(spec) = port {
        match ports(spec) {
            Some((values, proto)) if !source => {
                if let Some(p) = proto {
                    conds.push(Cond { field: Field::L4proto, op: Op::Eq, values: vec![Value::Num(u64::from(p))] });
                } else {
                    // A bare port is TCP and UDP.
                    conds.push(Cond { field: Field::L4proto, op: Op::Eq, values: vec![Value::Num(6), Value::Num(17)] });
                }
                conds.push(Cond { field: Field::Dport(proto), op: Op::Eq, values });
            }
            Some(_) => conds.push(Cond::opaque(format!("from port {spec} (the other host's port)"))),
            None => conds.push(Cond::opaque(format!("application profile `{spec}` (its ports: `ufw app info`)"))),
        }
    }
    conds
}

/// `22`, `22/tcp`, `80,443/tcp`, `6000:6007/udp`.
fn ports(spec: &str) -> Option<(Vec<Value>, Option<u8>)> {
    let (list, proto) = match spec.split_once('/') {
        Some((l, p)) => (l, Some(proto_number(p)?)),
        None => (spec, None),
    };
    let values = list
        .split(',')
        .map(|p| match p.split_once(':') {
            Some((a, b)) => Some(Value::Range(a.parse().ok()?, b.parse().ok()?)),
            None => Some(Value::Num(p.parse().ok()?)),
        })
        .collect::<Option<Vec<Value>>>()?;
    Some((values, proto))
}
