//! firewalld's zones (`firewall-cmd --list-all-zones`, `--get-default-zone`, and
//! `--info-service=NAME` for the services they name) → [`Ruleset`]: a packet goes to the
//! zone of its source, else of its interface, else the default zone; there, deny rich
//! rules first, then services, ports, protocols and accept rich rules, then the zone's
//! target (`default` rejects with admin-prohibited, as firewalld does). Rich rules with a
//! priority run before (negative) or after (positive) the rest, by priority.

use super::{
    Action, Base, Chain, Cond, Family, Field, Hook, Op, Reject, Rule, RulesFrom, Ruleset, Value, parse_net,
    proto_number,
};

/// The table firewalld's chains are named by.
pub const TABLE: &str = "firewalld";

/// firewalld's input dispatch runs at `filter + 10`.
const PRIORITY: i32 = 10;

/// One zone as `--list-all-zones` prints it.
#[derive(Debug, Default)]
struct Zone {
    name: String,
    target: String,
    interfaces: Vec<String>,
    sources: Vec<String>,
    services: Vec<String>,
    ports: Vec<String>,
    protocols: Vec<String>,
    forward_ports: Vec<String>,
    rich: Vec<String>,
}

/// A service's definition (`--info-service`).
#[derive(Debug, Default)]
struct Service {
    ports: Vec<String>,
    protocols: Vec<String>,
    destination: Vec<String>,
    includes: Vec<String>,
}

/// Parses firewalld's state: the default zone's name, `firewall-cmd --list-all-zones`,
/// and `(name, firewall-cmd --info-service=name)` for the services the zones use.
pub fn parse(default_zone: &str, zones: &str, services: &[(String, String)]) -> Result<Ruleset, String> {
    let zones = parse_zones(zones)?;
    let default_zone = default_zone.trim();
    if !zones.iter().any(|z| z.name == default_zone) {
        return Err(format!("firewalld's default zone {default_zone:?} is not among its zones"));
    }
    let services: Vec<(String, Service)> = services.iter().map(|(n, t)| (n.clone(), parse_service(t))).collect();
    let mut dispatch = Vec::new();
    for z in zones.iter().filter(|z| !z.sources.is_empty()) {
        let mut nets = Vec::new();
        for s in &z.sources {
            match parse_net(s) {
                Some(n) => nets.push((n, s)),
                None => dispatch.push(rule(
                    format!("source {s} → zone {}", z.name),
                    vec![Cond::opaque(format!("source {s}"))],
                    Action::Goto(zone_chain(&z.name)),
                )),
            }
        }
        for (net, text) in nets {
            let v4 = matches!(net, Value::Net(ip, _) if ip.is_ipv4());
            dispatch.push(rule(
                format!("source {text} → zone {}", z.name),
                vec![Cond { field: Field::Saddr { v4 }, op: Op::Eq, values: vec![net] }],
                Action::Goto(zone_chain(&z.name)),
            ));
        }
    }
    for z in zones.iter().filter(|z| !z.interfaces.is_empty()) {
        dispatch.push(rule(
            format!("interface {} → zone {}", z.interfaces.join(" "), z.name),
            vec![Cond {
                field: Field::Iifname,
                op: Op::Eq,
                values: z.interfaces.iter().map(|i| Value::Str(i.clone())).collect(),
            }],
            Action::Goto(zone_chain(&z.name)),
        ));
    }
    dispatch.push(rule(format!("default zone {default_zone}"), Vec::new(), Action::Goto(zone_chain(default_zone))));
    let mut chains = vec![Chain {
        from: RulesFrom::Firewalld,
        family: Family::Inet,
        table: TABLE.into(),
        name: "zones".into(),
        base: Some(Base {
            hook: Hook::Input,
            priority: PRIORITY,
            policy: Action::Accept,
            policy_text: "policy accept".into(),
            devices: None,
        }),
        rules: dispatch,
    }];
    for z in &zones {
        chains.push(Chain {
            from: RulesFrom::Firewalld,
            family: Family::Inet,
            table: TABLE.into(),
            name: zone_chain(&z.name),
            base: None,
            rules: zone_rules(z, &services),
        });
    }
    Ok(Ruleset { chains })
}

/// The services `firewall-cmd --list-all-zones` names (in zones and rich rules), whose
/// definitions `--info-service` gives.
pub fn services(zones: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let Ok(zones) = parse_zones(zones) else { return out };
    for z in &zones {
        // `service name="http"`: a name right after the word `service`.
        let rich = z.rich.iter().flat_map(|r| {
            let words = rich_words(r);
            words
                .windows(2)
                .filter(|w| w[0].0 == "service" && w[1].0 == "name")
                .filter_map(|w| w[1].1.clone())
                .collect::<Vec<_>>()
        });
        for s in z.services.iter().cloned().chain(rich) {
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

/// The chain of a zone: `zone public`.
pub fn zone_chain(name: &str) -> String {
    format!("zone {name}")
}

fn rule(text: String, conds: Vec<Cond>, action: Action) -> Rule {
    Rule { handle: None, text, conds, action }
}

fn words(value: &str) -> Vec<String> {
    value.split_whitespace().map(str::to_owned).collect()
}

fn parse_zones(text: &str) -> Result<Vec<Zone>, String> {
    let mut zones: Vec<Zone> = Vec::new();
    let mut in_rich = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with([' ', '\t']) {
            let name = line.split_whitespace().next().unwrap_or_default().to_owned();
            zones.push(Zone { name, target: "default".into(), ..Zone::default() });
            in_rich = false;
            continue;
        }
        let Some(zone) = zones.last_mut() else {
            return Err(format!("firewall-cmd --list-all-zones: {line:?} before any zone"));
        };
        let l = line.trim();
        if in_rich && l.starts_with("rule") {
            zone.rich.push(l.to_owned());
            continue;
        }
        let Some((key, value)) = l.split_once(':') else {
            return Err(format!("firewall-cmd --list-all-zones: cannot read {line:?}"));
        };
        in_rich = key == "rich rules";
        match key {
            "target" => zone.target = value.trim().to_owned(),
            "interfaces" => zone.interfaces = words(value),
            "sources" => zone.sources = words(value),
            "services" => zone.services = words(value),
            "ports" => zone.ports = words(value),
            "protocols" => zone.protocols = words(value),
            "forward-ports" => zone.forward_ports = words(value),
            _ => {}
        }
    }
    if zones.is_empty() {
        return Err("firewall-cmd --list-all-zones printed no zone".into());
    }
    Ok(zones)
}

fn parse_service(text: &str) -> Service {
    let mut s = Service::default();
    for line in text.lines().skip(1) {
        let Some((key, value)) = line.trim().split_once(':') else { continue };
        match key {
            "ports" => s.ports = words(value),
            "protocols" => s.protocols = words(value),
            "destination" => s.destination = words(value),
            "includes" => s.includes = words(value),
            _ => {}
        }
    }
    s
}

/// `8000/tcp`, `9000-9010/udp` → the conditions for it.
fn port_conds(spec: &str) -> Option<Vec<Cond>> {
    let (ports, proto) = spec.split_once('/')?;
    let proto = proto_number(proto)?;
    let value = match ports.split_once('-') {
        Some((a, b)) => Value::Range(a.parse().ok()?, b.parse().ok()?),
        None => Value::Num(ports.parse().ok()?),
    };
    Some(vec![Cond { field: Field::Dport(Some(proto)), op: Op::Eq, values: vec![value] }])
}

/// One rule per port of a service (`service http`), with `extra` conditions first.
fn service_rules(name: &str, services: &[(String, Service)], extra: &[Cond], action: &Action, text: &str) -> Vec<Rule> {
    let Some((_, s)) = services.iter().find(|(n, _)| n == name) else {
        return vec![rule(
            text.to_owned(),
            [extra, &[Cond::opaque(format!("service {name}, whose definition was not read"))]].concat(),
            action.clone(),
        )];
    };
    if !s.includes.is_empty() {
        return vec![rule(
            text.to_owned(),
            [extra, &[Cond::opaque(format!("service {name}, which includes {}", s.includes.join(" ")))]].concat(),
            action.clone(),
        )];
    }
    let mut dest = Vec::new();
    for d in &s.destination {
        let (fam, addr) = d.split_once(':').unwrap_or(("", d));
        match parse_net(addr) {
            Some(net) => dest.push(Cond { field: Field::Daddr { v4: fam == "ipv4" }, op: Op::Eq, values: vec![net] }),
            None => dest.push(Cond::opaque(format!("destination {d}"))),
        }
    }
    let mut out = Vec::new();
    for p in &s.ports {
        let conds = match port_conds(p) {
            Some(c) => c,
            None => vec![Cond::opaque(format!("port {p}"))],
        };
        out.push(rule(format!("{text} ({p})"), [extra, &dest, &conds].concat(), action.clone()));
    }
    for p in &s.protocols {
        let cond = match proto_number(p) {
            Some(n) => Cond { field: Field::L4proto, op: Op::Eq, values: vec![Value::Num(u64::from(n))] },
            None => Cond::opaque(format!("protocol {p}")),
        };
        out.push(rule(format!("{text} (protocol {p})"), [extra, &dest, &[cond]].concat(), action.clone()));
    }
    out
}

/// A zone's rules, in firewalld's order.
fn zone_rules(z: &Zone, services: &[(String, Service)]) -> Vec<Rule> {
    let mut out = Vec::new();
    for fp in &z.forward_ports {
        // port=8000:proto=tcp:toport=80:toaddr=
        let get = |k: &str| fp.split(':').find_map(|p| p.strip_prefix(&format!("{k}="))).unwrap_or_default();
        let conds = port_conds(&format!("{}/{}", get("port"), get("proto")))
            .unwrap_or_else(|| vec![Cond::opaque(format!("forward-port {fp}"))]);
        out.push(rule(
            format!("forward-port {fp}"),
            conds,
            Action::Opaque("it is forwarded elsewhere, a path lanreach does not evaluate".into()),
        ));
    }
    let rich: Vec<(i64, bool, Vec<Rule>)> = z.rich.iter().map(|r| rich_rule(r, services)).collect();
    let mut before: Vec<&(i64, bool, Vec<Rule>)> = rich.iter().filter(|r| r.0 < 0).collect();
    before.sort_by_key(|r| r.0);
    let mut after: Vec<&(i64, bool, Vec<Rule>)> = rich.iter().filter(|r| r.0 > 0).collect();
    after.sort_by_key(|r| r.0);
    out.extend(before.into_iter().flat_map(|r| r.2.clone()));
    out.extend(rich.iter().filter(|r| r.0 == 0 && !r.1).flat_map(|r| r.2.clone()));
    for s in &z.services {
        out.extend(service_rules(s, services, &[], &Action::Accept, &format!("service {s}")));
    }
    for p in &z.ports {
        let conds = port_conds(p).unwrap_or_else(|| vec![Cond::opaque(format!("port {p}"))]);
        out.push(rule(format!("port {p}"), conds, Action::Accept));
    }
    for p in &z.protocols {
        let cond = match proto_number(p) {
            Some(n) => Cond { field: Field::L4proto, op: Op::Eq, values: vec![Value::Num(u64::from(n))] },
            None => Cond::opaque(format!("protocol {p}")),
        };
        out.push(rule(format!("protocol {p}"), vec![cond], Action::Accept));
    }
    out.extend(rich.iter().filter(|r| r.0 == 0 && r.1).flat_map(|r| r.2.clone()));
    out.extend(after.into_iter().flat_map(|r| r.2.clone()));
    let target = format!("target {}", z.target);
    out.push(match z.target.as_str() {
        "ACCEPT" => rule(target, Vec::new(), Action::Accept),
        "DROP" => rule(target, Vec::new(), Action::Drop),
        _ => rule(target, Vec::new(), Action::Reject(Reject::Icmp("admin-prohibited".into()))),
    });
    out
}

/// Splits a rich rule into words and `key="value"` pairs.
fn rich_words(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let end = rest.find([' ', '=']).unwrap_or(rest.len());
        let word = rest[..end].to_owned();
        rest = &rest[end..];
        if let Some(after) = rest.strip_prefix('=') {
            let (value, tail) = match after.strip_prefix('"') {
                Some(q) => match q.find('"') {
                    Some(i) => (q[..i].to_owned(), &q[i + 1..]),
                    None => (q.to_owned(), ""),
                },
                None => {
                    let i = after.find(' ').unwrap_or(after.len());
                    (after[..i].to_owned(), &after[i..])
                }
            };
            out.push((word, Some(value)));
            rest = tail;
        } else {
            out.push((word, None));
        }
        rest = rest.trim_start();
    }
    out
}

/// A rich rule: its priority, whether it accepts, and its rules (one per port of a
/// service it names).
fn rich_rule(text: &str, services: &[(String, Service)]) -> (i64, bool, Vec<Rule>) {
    let words = rich_words(text);
    let mut conds = Vec::new();
    let mut priority = 0i64;
    let mut action = Action::Continue;
    let mut service = None;
    let mut negate = false;
    let mut element = "";
    let mut i = 0;
    while i < words.len() {
        let (w, v) = (&words[i].0, words[i].1.as_deref());
        match (w.as_str(), v) {
            ("rule", None) => {}
            ("family", Some(f)) => {
                conds.push(Cond { field: Field::Nfproto, op: Op::Eq, values: vec![Value::Str(f.to_owned())] })
            }
            ("priority", Some(p)) => priority = p.parse().unwrap_or(0),
            ("source" | "destination", None) => element = if w == "source" { "source" } else { "destination" },
            ("not", None) => negate = true,
            ("invert", Some(v)) => negate = v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("yes"),
            ("address", Some(a)) if matches!(element, "source" | "destination") => {
                let op = if negate { Op::Ne } else { Op::Eq };
                negate = false;
                match parse_net(a) {
                    Some(net @ Value::Net(ip, _)) => {
                        let v4 = ip.is_ipv4();
                        let field = if element == "source" { Field::Saddr { v4 } } else { Field::Daddr { v4 } };
                        conds.push(Cond { field, op, values: vec![net] });
                    }
                    _ => conds.push(Cond::opaque(format!("{element} address=\"{a}\""))),
                }
            }
            ("service", None) => element = "service",
            ("name", Some(n)) if element == "service" => service = Some(n.to_owned()),
            ("port", None) => element = "port",
            ("port", Some(p)) if element == "port" => {
                let proto = words.iter().find_map(|(k, v)| v.clone().filter(|_| k == "protocol")).unwrap_or_default();
                conds.extend(
                    port_conds(&format!("{}/{proto}", p)).unwrap_or_else(|| vec![Cond::opaque(format!("port {p}"))]),
                );
                element = "port-done";
            }
            ("protocol", Some(_)) if element == "port-done" => {}
            ("protocol", None) => element = "protocol",
            ("value", Some(p)) if element == "protocol" => conds.push(match proto_number(p) {
                Some(n) => Cond { field: Field::L4proto, op: Op::Eq, values: vec![Value::Num(u64::from(n))] },
                None => Cond::opaque(format!("protocol {p}")),
            }),
            ("icmp-block" | "icmp-type", None) => {
                conds.push(Cond { field: Field::L4Other { proto: 1, text: w.clone() }, op: Op::Eq, values: Vec::new() })
            }
            ("log" | "audit" | "nflog", None) => element = "log",
            ("prefix" | "level" | "group" | "threshold" | "queue-size", Some(_)) if element == "log" => {}
            ("limit", None) => element = if element == "log" { "log-limit" } else { "limit" },
            ("value", Some(_)) if element == "log-limit" => element = "log",
            ("value", Some(v)) if element == "limit" => conds.push(Cond::opaque(format!("limit value=\"{v}\""))),
            ("accept", None) => {
                action = Action::Accept;
                element = "action";
            }
            ("drop", None) => {
                action = Action::Drop;
                element = "action";
            }
            ("reject", None) => {
                action = Action::Reject(Reject::Icmp("port-unreachable".into()));
                element = "action";
            }
            ("type", Some(t)) if element == "action" => {
                action = Action::Reject(if t == "tcp-reset" {
                    Reject::TcpReset
                } else {
                    Reject::Icmp(t.trim_start_matches("icmp-").to_owned())
                });
            }
            ("masquerade", None) => return (priority, false, Vec::new()),
            ("forward-port", None) => {
                action = Action::Opaque("it is forwarded elsewhere, a path lanreach does not evaluate".into())
            }
            ("mark", None) => action = Action::Continue,
            _ => conds.push(Cond::opaque(match v {
                Some(v) => format!("{w}=\"{v}\""),
                None => w.clone(),
            })),
        }
        i += 1;
    }
    let accepts = action == Action::Accept;
    let rules = match service {
        Some(name) => service_rules(&name, services, &conds, &action, text),
        None => vec![rule(text.to_owned(), conds, action)],
    };
    (priority, accepts, rules)
}
