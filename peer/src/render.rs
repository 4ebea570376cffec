//! Everything the peer prints: results on stdout, errors with their causes and fixes.

use std::time::Duration;

use lanreach_proto::code::MAX_FAILED_ATTEMPTS;
use lanreach_proto::handshake::{AuthMethod, HandshakeError};
use lanreach_proto::msg::labelled_lines;
use lanreach_proto::text::{error_chain, printable};

use std::sync::Arc;
use std::sync::atomic::Ordering;

use lanreach_proto::endpoint::discovery::Found;

use crate::connect::{PeerError, Progress, SessionEvent};
use crate::known::KnownAgent;
use crate::target::Target;

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The man page's sections beyond the options (roff).
pub(crate) const MAN_SECTIONS: &[(&str, &str)] = &[
    (
        "EXIT STATUS",
        concat!(
            ".TP\n0\nThe report arrived and every port the agent checks is confirmed reachable.\n",
            ".TP\n1\nA port the agent checks is not reachable from this device, or not confirmed (silence is never \
             confirmation).\n",
            ".TP\n2\nUsage error, no answer from the agent, failed authentication, a refused plan.\n",
            ".TP\n130\nStopped with Ctrl\\-C or SIGTERM (the agent is told at once).\n",
            ".TP\n141\nStandard output was closed before everything was written (as with SIGPIPE).\n",
        ),
    ),
    (
        "FILES",
        concat!(
            ".TP\n\\fI$XDG_CONFIG_HOME/lanreach/peer/\\fR (or \\fB\\-\\-state\\-dir\\fR)\n",
            "\\fIidentity.key\\fR, \\fIidentity.crt\\fR: this device's key and certificate (mode 0600); ",
            "\\fIknown_agents.json\\fR: the agents' pinned keys, by address.\n",
        ),
    ),
    (
        "EXAMPLES",
        concat!(
            ".TP\n\\fBlanreach\\-peer 198.51.100.1 \\-\\-code 7K3Q\\-M2XD\\fR\nPair with the agent at that address ",
            "and print its report.\n",
            ".TP\n\\fBlanreach\\-peer 'lanreach://198.51.100.1:47800?a=198.51.100.1/24,2001:db8:1::1/64&code=7K3Q\\-M2XD'\\fR\n",
            "Pair from the link the agent prints or shows as a QR code; quoted, as a shell cuts it at the first &.\n",
            ".TP\n\\fBlanreach\\-peer 198.51.100.1 \\-\\-json\\fR\nReconnect with pinned keys; the report as JSON.\n",
            ".TP\n\\fBlanreach\\-peer \\-\\-forget 198.51.100.1\\fR\nForget a pinned agent key, to pair again.\n",
            ".TP\n\\fBlanreach\\-peer completions bash > ~/.local/share/bash\\-completion/completions/",
            "lanreach\\-peer\\fR\nInstall bash completions (zsh: a directory in \\fI$fpath\\fR as ",
            "\\fI_lanreach\\-peer\\fR; fish: \\fI~/.config/fish/completions/lanreach\\-peer.fish\\fR).\n",
        ),
    ),
];

/// The header of a session, one part per [`SessionEvent`], printed as soon as known.
pub(crate) fn session_event(event: &SessionEvent<'_>, all_addresses: bool) -> String {
    match *event {
        SessionEvent::Introduced { target, addr, agent_id, our_id, method, verification, hello } => {
            let name = printable(&hello.name, 64);
            let how = match method {
                AuthMethod::Paired => format!(
                    "Paired with agent \"{name}\" (ID {agent_id}) at {addr}.\nverification: {verification} (the agent \
                     shows the same)\nIts key is pinned: next time `lanreach-peer {target}` needs no code.\n"
                ),
                AuthMethod::Pinned => {
                    format!("Connected to agent \"{name}\" (ID {agent_id}) at {addr} with pinned keys.\n")
                }
            };
            format!(
                "{how}Agent: {} on {}\n{}This peer: ID {our_id}\n",
                printable(&hello.software, 64),
                printable(&hello.os, 96),
                labelled_lines("  addresses: ", &hello.address_lines(&[addr.ip()], all_addresses)),
            )
        }
        SessionEvent::Rtt(rtt) => format!(
            "Round-trip time: {} (median of {} pings; fastest {}, QUIC estimate {})\n",
            ms(rtt.median),
            lanreach_proto::defaults::PINGS,
            ms(rtt.min),
            ms(rtt.quic),
        ),
    }
}

/// An error as the user reads it: what happened, the likely causes, what to do.
pub(crate) fn error(e: &PeerError) -> String {
    let head = format!("lanreach-peer: {}", error_chain(e));
    let body = match e {
        PeerError::NoPath { cause } => nopath(cause),
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
        PeerError::AgentStopped { addr } => {
            format!("Start it again on that machine (lanreach-agent), then run this again: lanreach-peer {addr}")
        }
        _ => String::new(),
    };
    if body.is_empty() { format!("{head}\n") } else { format!("{head}\n{body}\n") }
}

/// The named cause of a missing path: the fix, the evidence, and what would tell two
/// causes apart where both remain.
fn nopath(cause: &lanreach_proto::nopath::Cause) -> String {
    let mut out = format!("fix: {}\n", cause.fix);
    if !cause.evidence.is_empty() {
        out.push_str("evidence:\n");
        for e in &cause.evidence {
            out.push_str(&format!("  - {e}\n"));
        }
    }
    if let Some(otherwise) = &cause.otherwise {
        // `otherwise` says what would tell the remaining causes apart, in its own words.
        out.push_str(&format!("note: {otherwise}\n"));
    }
    out.push_str(&format!("(cause: {})", cause.code.as_str()));
    out
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
pub(crate) fn progress_bar(progress: Arc<Progress>) -> (indicatif::ProgressBar, tokio::task::JoinHandle<()>) {
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
pub(crate) fn found(agents: &[Found]) -> String {
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
pub(crate) fn nothing_found() -> String {
    "lanreach-peer: no lanreach agent answered over mDNS on this network.\n\
     Multicast is blocked on many Wi-Fi networks and not available in Termux; type the address the agent prints \
     instead:\n  lanreach-peer HOST --code CODE\n"
        .to_owned()
}

/// What `--forget` did.
/// The pinned agents, one line each with the command that reaches it.
pub(crate) fn known_agents(known: &crate::known::KnownAgents) -> String {
    let agents = known.by_agent();
    if agents.is_empty() {
        return "No agents paired yet: pair with lanreach-peer HOST --code CODE (the agent prints both).\n".into();
    }
    let mut out = String::new();
    for addresses in agents {
        let first = addresses[0];
        let all: Vec<&str> = addresses.iter().map(|a| a.address.as_str()).collect();
        out.push_str(&format!(
            "  \"{}\" (ID {}) at {}: lanreach-peer {}\n",
            printable(&first.name, 64),
            first.id,
            all.join(", "),
            first.address
        ));
    }
    out
}

pub(crate) fn forgotten(target: &Target, gone: &[KnownAgent]) -> String {
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
