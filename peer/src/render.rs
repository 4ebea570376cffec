//! Everything the peer prints: results on stdout, errors with their causes and fixes.

use std::time::Duration;

use lanreach_proto::code::MAX_FAILED_ATTEMPTS;
use lanreach_proto::handshake::{AuthMethod, HandshakeError};
use lanreach_proto::text::printable;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use lanreach_proto::endpoint::discovery::Found;

use crate::connect::{Completed, PeerError, Progress};
use crate::known::KnownAgent;
use crate::target::Target;

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The report of a successful session.
pub fn outcome(o: &Completed) -> String {
    let name = printable(&o.hello.name, 64);
    let how = match o.method {
        AuthMethod::Paired => format!(
            "Paired with agent \"{name}\" (ID {}) at {}.\nverification: {} (the agent shows the same)\n\
             Its key is pinned: next time `lanreach-peer {}` needs no code.\n",
            o.agent_id, o.addr, o.verification, o.target
        ),
        AuthMethod::Pinned => {
            format!("Connected to agent \"{name}\" (ID {}) at {} with pinned keys.\n", o.agent_id, o.addr)
        }
    };
    format!(
        "{how}Agent: {} on {}\n  addresses: {}\nThis peer: ID {}\nRound-trip time: {} (median of {} pings; fastest {}, QUIC estimate {})\n",
        printable(&o.hello.software, 64),
        printable(&o.hello.os, 96),
        o.hello.address_list(),
        o.our_id,
        ms(o.rtt.median),
        lanreach_proto::defaults::PINGS,
        ms(o.rtt.min),
        ms(o.rtt.quic),
    )
}

/// An error as the user reads it: what happened, the likely causes, what to do.
pub fn error(e: &PeerError) -> String {
    let head = format!("lanreach-peer: {e}");
    let body = match e {
        PeerError::NoAnswer { addr, .. } => format!(
            "Likely causes:\n\
             \x20 - the agent is not running on {ip} (start it there: lanreach-agent)\n\
             \x20 - a firewall on the agent's machine blocks UDP port {port}\n\
             \x20 - Wi-Fi client isolation (guest networks, some routers) keeps devices from reaching each other\n\
             \x20 - this device is on a different network (mobile data, a VPN, another Wi-Fi)\n\
             Use the exact command the agent prints, and check both devices are on the same network.",
            ip = addr.ip(),
            port = addr.port()
        ),
        PeerError::KeyChanged { target, .. } => format!(
            "This happens when the agent's state directory was deleted or another machine now has this address, \
             but it is also what an attacker intercepting the connection looks like.\n\
             If you expect the change, forget the old key and pair again:\n\
             \x20 lanreach-peer --forget {target}\n\x20 lanreach-peer {target} --code CODE   (the code the agent prints)"
        ),
        PeerError::NotPaired { target, .. } => {
            format!("Pair first with the code the agent prints:\n  lanreach-peer {target} --code CODE")
        }
        PeerError::Handshake { target, source } => handshake_advice(target, source),
        PeerError::WrongAgent { .. } => "Another program or machine answers at that address. Check that the link \
             is the one the agent prints now, and that both devices are on the same network."
            .into(),
        PeerError::PlanRefused { .. } => {
            "This peer only probes the agent's own addresses, never multicast, broadcast or \
             unspecified ones, and at most 2048 probes per run. An agent that asks for more is misbehaving or not \
             lanreach; nothing was probed."
                .into()
        }
        PeerError::Connection { .. } => {
            "The agent closed the connection or became unreachable; check that it is still running.".into()
        }
        _ => String::new(),
    };
    if body.is_empty() { format!("{head}\n") } else { format!("{head}\n{body}\n") }
}

fn handshake_advice(target: &Target, e: &HandshakeError) -> String {
    match e {
        HandshakeError::WrongCode => format!(
            "Check the code the agent shows now and type it again (case and dashes do not matter).\n\
             After {MAX_FAILED_ATTEMPTS} failed attempts the agent replaces its code. If the code is surely right, \
             something between the devices may be intercepting the connection."
        ),
        HandshakeError::CodeRetired => "That code was already used or had too many failed attempts. \
             Use the new code the agent shows now."
            .into(),
        HandshakeError::NotTrusted => format!(
            "The agent does not trust this device (it was removed with `lanreach-agent peers remove`, or the agent's \
             state was reset). Pair again:\n  lanreach-peer {target} --code CODE"
        ),
        HandshakeError::Busy => {
            "Another device is pairing with the agent, or an attempt from this address failed moments ago (the agent \
             makes an address wait after a failed attempt, longer after each). Wait a few seconds and try again."
                .into()
        }
        HandshakeError::VersionMismatch { .. } => "Install the same lanreach version on both devices.".into(),
        _ => String::new(),
    }
}

/// A progress bar on stderr fed from `progress`, and the task that feeds it.
pub fn progress_bar(progress: Arc<Progress>) -> (indicatif::ProgressBar, tokio::task::JoinHandle<()>) {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message("connecting to the agent…");
    bar.enable_steady_tick(lanreach_proto::defaults::PROGRESS_TICK);
    let feed = bar.clone();
    let ticker = tokio::spawn(async move {
        loop {
            let total = progress.total.load(Ordering::Relaxed);
            if total > 0 {
                let done = progress.done.load(Ordering::Relaxed);
                feed.set_message(format!("probing the agent: {done}/{total}"));
            }
            tokio::time::sleep(lanreach_proto::defaults::PROGRESS_TICK).await;
        }
    });
    (bar, ticker)
}

/// The agents `--list` found.
pub fn found(agents: &[Found]) -> String {
    let mut out = String::new();
    for a in agents {
        let addrs: Vec<String> = a.addresses.iter().map(|ip| ip.to_string()).collect();
        out.push_str(&format!(
            "{}  ID {}  {}  port {}\n",
            printable(&a.name, 48),
            printable(&a.id, 24),
            addrs.join(", "),
            a.port
        ));
    }
    out
}

/// Discovery found nothing: say so, and give the manual path.
pub fn nothing_found() -> String {
    "lanreach-peer: no lanreach agent answered over mDNS on this network.\n\
     Multicast is blocked on many Wi-Fi networks and not available in Termux; type the address the agent prints \
     instead:\n  lanreach-peer HOST --code CODE\n"
        .to_owned()
}

/// What `--forget` did.
pub fn forgotten(target: &Target, gone: &[KnownAgent]) -> String {
    let mut out = String::new();
    for a in gone {
        out.push_str(&format!(
            "Forgot agent \"{}\" (ID {}) at {}. Pair again with: lanreach-peer {} --code CODE\n",
            printable(&a.name, 64),
            a.id,
            a.address,
            a.address
        ));
    }
    if gone.is_empty() {
        out.push_str(&format!("No pinned agent at {target}.\n"));
    }
    out
}
