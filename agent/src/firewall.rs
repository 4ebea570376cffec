//! Reading the firewall's configuration of this network namespace: `nft -j list ruleset`,
//! `iptables-save` (and the legacy variant beside nftables), ufw's and firewalld's own
//! views where they manage this namespace. Only reads, never a change; each tool that is
//! missing is skipped, each that fails says why in its own words (usually that it needs
//! root or CAP_NET_ADMIN). The parsing and the evaluation are in `lanreach_proto::firewall`.

use std::process::Stdio;
use std::time::Duration;

use lanreach_proto::defaults::FIREWALL_READ_TIMEOUT;
use lanreach_proto::firewall::{Firewall, IptablesVariant, Read, Ruleset, Sources, firewalld, iptables, nft, ufw};
use tokio::process::Command;

/// What running a tool gave.
enum Ran {
    /// It is not installed.
    Missing,
    /// It ran and succeeded: its standard output.
    Ok(String),
    /// It failed: why, in words.
    Failed(String),
}

/// Runs `program args` with the C locale (stable output), killed at `deadline`.
async fn run(program: &str, args: &[&str], deadline: Duration) -> Ran {
    let child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ran::Missing,
        Err(e) => return Ran::Failed(format!("{program}: {e}")),
    };
    let command = std::iter::once(program).chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
    match tokio::time::timeout(deadline, child.wait_with_output()).await {
        Err(_) => Ran::Failed(format!("`{command}` did not answer within {} s", deadline.as_secs())),
        Ok(Err(e)) => Ran::Failed(format!("`{command}`: {e}")),
        Ok(Ok(out)) if out.status.success() => Ran::Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(Ok(out)) => {
            let err = String::from_utf8_lossy(&out.stderr);
            let first = err.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("it failed");
            // The finding that carries this says what to do about a permission error.
            Ran::Failed(format!("`{command}`: {}", lanreach_proto::text::printable(first, 200)))
        }
    }
}

/// Reads every source this machine has, within [`FIREWALL_READ_TIMEOUT`] in all, and
/// combines them ([`Sources::combine`]).
pub(crate) async fn read() -> Firewall {
    match tokio::time::timeout(FIREWALL_READ_TIMEOUT, sources()).await {
        Ok(sources) => sources.combine(),
        Err(_) => Firewall::Unreadable(format!(
            "reading the firewall's configuration took longer than {} s",
            FIREWALL_READ_TIMEOUT.as_secs()
        )),
    }
}

async fn sources() -> Sources {
    let each = FIREWALL_READ_TIMEOUT;
    let nft = match run("nft", &["-j", "list", "ruleset"], each).await {
        Ran::Missing => None,
        Ran::Ok(json) => Some(nft::parse(&json)),
        Ran::Failed(why) => Some(Err(why)),
    };
    let variant = match run("iptables-save", &["--version"], each).await {
        Ran::Ok(v) if v.contains("legacy") => Some(IptablesVariant::Legacy),
        Ran::Ok(_) => Some(IptablesVariant::Nftables),
        _ => None,
    };
    let iptables = match variant {
        // Legacy tables exist only where their kernel module is loaded: reading them must
        // not load it.
        Some(IptablesVariant::Legacy) if !legacy_tables_loaded() => None,
        Some(v) => Some((save_both("iptables-save", "ip6tables-save", each).await, v)),
        None => None,
    };
    let iptables_legacy = if variant == Some(IptablesVariant::Nftables) && legacy_tables_loaded() {
        match save_both("iptables-legacy-save", "ip6tables-legacy-save", each).await {
            // Not installed, or no rules: nothing beside nftables.
            Ok(rules) if rules.chains.is_empty() => None,
            read => Some(read),
        }
    } else {
        None
    };
    let rules_here = |pred: &dyn Fn(&lanreach_proto::firewall::Chain) -> bool| {
        let in_nft = nft.as_ref().and_then(|r| r.as_ref().ok()).is_some_and(|r| r.chains.iter().any(pred));
        let in_ipt = iptables.as_ref().and_then(|(r, _)| r.as_ref().ok()).is_some_and(|r| r.chains.iter().any(pred));
        in_nft || in_ipt
    };
    // ufw and firewalld manage the root network namespace: their view is about this one
    // only where their chains are here.
    let ufw = if rules_here(&|c| c.name.starts_with("ufw")) { read_ufw(each).await } else { None };
    let firewalld = if rules_here(&|c| c.table == "firewalld" || c.name == "INPUT_ZONES") {
        read_firewalld(each).await
    } else {
        None
    };
    Sources { nft, iptables, iptables_legacy, ufw, firewalld }
}

/// Whether the legacy x_tables kernel interface holds any table (its module is loaded).
fn legacy_tables_loaded() -> bool {
    ["/proc/net/ip_tables_names", "/proc/net/ip6_tables_names"]
        .iter()
        .any(|p| std::fs::read_to_string(p).is_ok_and(|t| !t.trim().is_empty()))
}

/// `v4` and `v6` (`iptables-save`, `ip6tables-save`) merged into one ruleset.
async fn save_both(v4: &str, v6: &str, each: Duration) -> Read {
    let mut chains = Vec::new();
    for (program, is_v4) in [(v4, true), (v6, false)] {
        match run(program, &[], each).await {
            Ran::Missing => {}
            Ran::Ok(text) => chains.extend(iptables::parse(&text, is_v4)?.chains),
            Ran::Failed(why) => return Err(why),
        }
    }
    Ok(Ruleset { chains })
}

async fn read_ufw(each: Duration) -> Option<Read> {
    let status = match run("ufw", &["status", "verbose"], each).await {
        Ran::Missing => return None,
        Ran::Failed(why) => return Some(Err(why)),
        Ran::Ok(s) => s,
    };
    let mut apps = Vec::new();
    for name in ufw::profiles(&status) {
        if let Ran::Ok(info) = run("ufw", &["app", "info", &name], each).await {
            apps.push((name, info));
        }
    }
    Some(ufw::parse(&status, &apps))
}

async fn read_firewalld(each: Duration) -> Option<Read> {
    match run("firewall-cmd", &["--state"], each).await {
        Ran::Missing => return None,
        Ran::Ok(s) if s.trim() == "running" => {}
        Ran::Ok(_) => return None,
        Ran::Failed(why) => return Some(Err(why)),
    }
    let default_zone = match run("firewall-cmd", &["--get-default-zone"], each).await {
        Ran::Ok(z) => z,
        Ran::Failed(why) => return Some(Err(why)),
        Ran::Missing => return None,
    };
    let zones = match run("firewall-cmd", &["--list-all-zones"], each).await {
        Ran::Ok(z) => z,
        Ran::Failed(why) => return Some(Err(why)),
        Ran::Missing => return None,
    };
    let mut services = Vec::new();
    for name in firewalld::services(&zones) {
        if let Ran::Ok(info) = run("firewall-cmd", &[&format!("--info-service={name}")], each).await {
            services.push((name, info));
        }
    }
    Some(firewalld::parse(&default_zone, &zones, &services))
}
