//! `iptables-save` / `ip6tables-save` → [`Ruleset`]: every table's PREROUTING and INPUT
//! chains at iptables' priorities, user chains, policies, and the matches that decide a
//! new connection's fate (`-i`, `-p`, `-s`, `-d`, `--dport`, multiport, conntrack/state,
//! addrtype, pkttype); anything else is an opaque condition named by its text. A rule's
//! handle is its number in its chain (`iptables -D INPUT 3`).

use super::{
    Action, Base, Chain, Cond, Family, Field, Hook, Op, Reject, Rule, RulesFrom, Ruleset, Value, parse_net,
    proto_number,
};

/// iptables' table priorities (the kernel's NF_IP_PRI_*).
fn table_priority(table: &str) -> i32 {
    match table {
        "raw" => -300,
        "mangle" => -150,
        "nat" => -100,
        "security" => 50,
        _ => 0,
    }
}

/// Parses `iptables-save` (`v4`) or `ip6tables-save` output.
pub fn parse(text: &str, v4: bool) -> Result<Ruleset, String> {
    let family = if v4 { Family::Ip } else { Family::Ip6 };
    let mut chains: Vec<Chain> = Vec::new();
    let mut table = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line == "COMMIT" {
            continue;
        }
        if let Some(t) = line.strip_prefix('*') {
            table = t.to_owned();
        } else if let Some(decl) = line.strip_prefix(':') {
            let mut parts = decl.split_whitespace();
            let name = parts.next().unwrap_or_default().to_owned();
            let policy = parts.next().unwrap_or("-");
            let hook = match name.as_str() {
                "INPUT" => Some(Hook::Input),
                "PREROUTING" => Some(Hook::Prerouting),
                _ => None,
            };
            let base = hook.map(|hook| Base {
                hook,
                // nat's INPUT chain is source NAT, after filtering.
                priority: if table == "nat" && hook == Hook::Input { 100 } else { table_priority(&table) },
                policy: if policy == "DROP" { Action::Drop } else { Action::Accept },
                policy_text: format!("-P {name} {policy}"),
                devices: None,
            });
            chains.push(Chain {
                from: RulesFrom::Iptables,
                family,
                table: table.clone(),
                name,
                base,
                rules: Vec::new(),
            });
        } else if line.starts_with("-A ") {
            let words = split(line).map_err(|e| format!("iptables-save line {line:?}: {e}"))?;
            let chain_name = words.get(1).cloned().unwrap_or_default();
            let declared: Vec<String> = chains.iter().filter(|c| c.table == table).map(|c| c.name.clone()).collect();
            let Some(chain) = chains.iter_mut().find(|c| c.table == table && c.name == chain_name) else {
                return Err(format!("iptables-save: rule for undeclared chain {chain_name} in table {table}"));
            };
            let number = chain.rules.len() as u64 + 1;
            let mut rule = rule(words.get(2..).unwrap_or_default(), v4, &declared);
            rule.handle = Some(number);
            rule.text = line.to_owned();
            chain.rules.push(rule);
        } else {
            return Err(format!("iptables-save: unexpected line {line:?}"));
        }
    }
    Ok(Ruleset { chains })
}

/// Splits a rule line into words, honouring double quotes (`--comment "a b"`).
fn split(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut started = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                started = true;
            }
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    out.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if quoted {
        return Err("unbalanced quote".into());
    }
    if started {
        out.push(word);
    }
    Ok(out)
}

/// Ports `80`, `8000:8010`, `80,443,8000:8010`.
fn ports(spec: &str) -> Option<Vec<Value>> {
    spec.split(',')
        .map(|p| match p.split_once(':') {
            Some((a, b)) => Some(Value::Range(a.parse().ok()?, b.parse().ok()?)),
            None => Some(Value::Num(p.parse().ok()?)),
        })
        .collect()
}

/// One rule's words after `-A CHAIN`; `chains` are the table's declared chains.
fn rule(words: &[String], v4: bool, chains: &[String]) -> Rule {
    let mut conds = Vec::new();
    let mut action = Action::Continue;
    let mut proto: Option<u8> = None;
    let mut negate = false;
    let mut module = String::new();
    let mut i = 0;
    let next = |i: &mut usize| -> String {
        *i += 1;
        words.get(*i).cloned().unwrap_or_default()
    };
    while i < words.len() {
        let w = words[i].as_str();
        let op = if negate { Op::Ne } else { Op::Eq };
        let was_negated = negate;
        negate = false;
        match w {
            "!" => negate = true,
            "-i" | "--in-interface" => {
                let name = next(&mut i);
                let pattern = name.strip_suffix('+').map(|p| format!("{p}*")).unwrap_or(name);
                conds.push(Cond { field: Field::Iifname, op, values: vec![Value::Str(pattern)] });
            }
            "-o" | "--out-interface" => {
                // No output interface on the input path: `-o X` never matches there.
                let name = next(&mut i);
                if !was_negated {
                    conds.push(Cond::opaque(format!("-o {name}")));
                }
            }
            "-p" | "--protocol" => {
                let name = next(&mut i);
                if name == "all" {
                    i += 1;
                    continue;
                }
                match proto_number(&name) {
                    Some(n) => {
                        if !was_negated {
                            proto = Some(n);
                        }
                        conds.push(Cond { field: Field::L4proto, op, values: vec![Value::Num(u64::from(n))] });
                    }
                    None => conds.push(Cond::opaque(format!("-p {name}"))),
                }
            }
            "-s" | "--source" | "-d" | "--destination" => {
                let spec = next(&mut i);
                let field =
                    if w.starts_with("-s") || w == "--source" { Field::Saddr { v4 } } else { Field::Daddr { v4 } };
                match spec.split(',').map(parse_net).collect::<Option<Vec<Value>>>() {
                    Some(values) => conds.push(Cond { field, op, values }),
                    None => conds.push(Cond::opaque(format!("{w} {spec}"))),
                }
            }
            "-m" | "--match" => module = next(&mut i),
            "--dport" | "--destination-port" | "--dports" | "--destination-ports" | "--ports" => {
                let spec = next(&mut i);
                let field = match proto {
                    Some(p) => Field::Dport(Some(p)),
                    None => Field::Dport(None),
                };
                match ports(&spec) {
                    // `--ports` matches source or destination: only a match on either is known.
                    Some(values) if w != "--ports" => conds.push(Cond { field, op, values }),
                    _ => conds.push(Cond::opaque(format!("{w} {spec}"))),
                }
            }
            "--ctstate" | "--state" => {
                let states = next(&mut i);
                let values = states.split(',').map(|s| Value::Str(s.to_ascii_lowercase())).collect();
                conds.push(Cond { field: Field::CtState, op, values });
            }
            "--dst-type" if module == "addrtype" => {
                let t = next(&mut i);
                conds.push(Cond { field: Field::FibDaddrType, op, values: vec![Value::Str(t.to_ascii_lowercase())] });
            }
            "--pkt-type" if module == "pkttype" => {
                let t = next(&mut i);
                let t = if t == "unicast" { "host".to_owned() } else { t };
                conds.push(Cond { field: Field::PktType, op, values: vec![Value::Str(t)] });
            }
            "--comment" => {
                next(&mut i);
            }
            "-j" | "--jump" | "-g" | "--goto" => {
                let target = next(&mut i);
                let goto = w == "-g" || w == "--goto";
                action = match target.as_str() {
                    "ACCEPT" => Action::Accept,
                    "DROP" => Action::Drop,
                    "RETURN" => Action::Return,
                    "REJECT" => Action::Reject(reject_with(words)),
                    "LOG" | "NFLOG" | "MARK" | "CONNMARK" | "CT" | "TRACE" | "AUDIT" => Action::Continue,
                    "DNAT" | "REDIRECT" | "TPROXY" => {
                        Action::Opaque("it is redirected elsewhere, a path lanreach does not evaluate".into())
                    }
                    "NFQUEUE" | "QUEUE" => Action::Opaque("it is queued to a program, which decides".into()),
                    "SNAT" | "MASQUERADE" | "TCPMSS" | "CHECKSUM" => Action::Continue,
                    chain if chains.iter().any(|c| c == chain) && goto => Action::Goto(chain.to_owned()),
                    chain if chains.iter().any(|c| c == chain) => Action::Jump(chain.to_owned()),
                    other => Action::Opaque(format!("iptables target {other}")),
                };
                // The target's own options follow; they were read above where they matter.
                break;
            }
            "--sport" | "--source-port" | "--sports" | "--source-ports" => {
                let spec = next(&mut i);
                let p = proto.unwrap_or(6);
                conds.push(Cond {
                    field: Field::L4Other { proto: p, text: format!("{w} {spec}") },
                    op: Op::Eq,
                    values: Vec::new(),
                });
            }
            "--icmp-type" | "--icmpv6-type" => {
                let t = next(&mut i);
                let p = if v4 { 1 } else { 58 };
                conds.push(Cond {
                    field: Field::L4Other { proto: p, text: format!("{w} {t}") },
                    op: Op::Eq,
                    values: Vec::new(),
                });
            }
            // The protocol's own module (`-m tcp`) only enables --dport.
            _ if w.starts_with("--") || w.starts_with('-') => {
                let mut text = format!("-m {module} {w}");
                while words.get(i + 1).is_some_and(|n| !n.starts_with('-') && n != "!") {
                    text.push(' ');
                    text.push_str(&next(&mut i));
                }
                conds.push(Cond::opaque(text));
            }
            other => conds.push(Cond::opaque(other.to_owned())),
        }
        i += 1;
    }
    Rule { handle: None, text: String::new(), conds, action }
}

fn reject_with(words: &[String]) -> Reject {
    let kind = words.iter().position(|w| w == "--reject-with").and_then(|i| words.get(i + 1));
    match kind.map(String::as_str) {
        Some("tcp-reset") => Reject::TcpReset,
        Some(k) => Reject::Icmp(k.trim_start_matches("icmp-").trim_start_matches("icmp6-").to_owned()),
        None => Reject::Icmp("port-unreachable".into()),
    }
}
