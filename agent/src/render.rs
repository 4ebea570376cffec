//! Everything the agent prints. Status goes to stderr; `peers` lists go to stdout.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use lanreach_proto::KeyId;
use lanreach_proto::code::{CodeChange, MAX_FAILED_ATTEMPTS, PairingCode, RetireReason};
use lanreach_proto::defaults::DEFAULT_CONTROL_PORT;
use lanreach_proto::handshake::{AuthMethod, HandshakeError};
use lanreach_proto::link::PairingLink;
use lanreach_proto::msg::Hello;
use lanreach_proto::render::Paint;
use lanreach_proto::report::Report;
use lanreach_proto::text::{self, printable};

use crate::control::{Event, SessionError};
use crate::trust::TrustedPeer;

/// The man page's sections beyond the options (roff).
pub(crate) const MAN_SECTIONS: &[(&str, &str)] = &[
    (
        "EXIT STATUS",
        concat!(
            ".TP\n0\nSuccess: with \\fB\\-\\-once\\fR or \\fB\\-\\-local\\fR, every \\fB\\-\\-check\\fR port is ",
            "confirmed reachable; a serving agent stopped with Ctrl\\-C or SIGTERM.\n",
            ".TP\n1\nWith \\fB\\-\\-once\\fR or \\fB\\-\\-local\\fR: a \\fB\\-\\-check\\fR port is not reachable, or ",
            "not confirmed (silence is never confirmation).\n",
            ".TP\n2\nUsage error, the control port in use, a state file that cannot be read or written.\n",
            ".TP\n141\nStandard output was closed before everything was written (as with SIGPIPE).\n",
        ),
    ),
    (
        "FILES",
        concat!(
            ".TP\n\\fI$XDG_CONFIG_HOME/lanreach/agent/\\fR (or \\fB\\-\\-state\\-dir\\fR)\n",
            "\\fIidentity.key\\fR, \\fIidentity.crt\\fR: this agent's key and certificate (mode 0600); ",
            "\\fItrusted_peers.json\\fR: the peers paired with it, re\\-read on every connection.\n",
        ),
    ),
    (
        "EXAMPLES",
        concat!(
            ".TP\n\\fBlanreach\\-agent \\-\\-check 3000\\fR\nServe peers and diagnose port 3000; the other device ",
            "runs the printed \\fBlanreach\\-peer\\fR command.\n",
            ".TP\n\\fBlanreach\\-agent \\-\\-local \\-\\-check 3000\\fR\nSingle\\-machine self\\-check of port 3000.\n",
            ".TP\n\\fBlanreach\\-agent peers remove 42NH\\-JQHR\\fR\nStop trusting a peer.\n",
            ".TP\n\\fBlanreach\\-agent completions bash > ~/.local/share/bash\\-completion/completions/",
            "lanreach\\-agent\\fR\nInstall bash completions (zsh: a directory in \\fI$fpath\\fR as ",
            "\\fI_lanreach\\-agent\\fR; fish: \\fI~/.config/fish/completions/lanreach\\-agent.fish\\fR).\n",
        ),
    ),
];

/// The `lanreach-peer` commands that reach this agent, one per address.
pub(crate) fn peer_commands(addrs: &[SocketAddr], code: &PairingCode) -> Vec<String> {
    addrs
        .iter()
        .map(|a| {
            let host = match (a.ip(), a.port()) {
                (ip, DEFAULT_CONTROL_PORT) => ip.to_string(),
                (std::net::IpAddr::V6(ip), port) => format!("[{ip}]:{port}"),
                (ip, port) => format!("{ip}:{port}"),
            };
            format!("lanreach-peer {host} --code {code}")
        })
        .collect()
}

/// What the start-up banner shows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Banner<'a> {
    /// The agent's name.
    pub name: &'a str,
    /// Its key ID.
    pub id: KeyId,
    /// Bound control addresses.
    pub bound: &'a [SocketAddr],
    /// The live code.
    pub code: &'a PairingCode,
    /// Addresses peers can dial.
    pub reachable: &'a [SocketAddr],
    /// Only the essentials.
    pub quiet: bool,
    /// Draw the QR code (a terminal is watching).
    pub qr: bool,
    /// Advertised over mDNS.
    pub advertised: bool,
}

/// The start-up banner.
pub(crate) fn banner(b: &Banner<'_>) -> String {
    if b.quiet {
        return code_block(b.code, b.reachable, b.id, false);
    }
    let bound: Vec<String> = b.bound.iter().map(|a| a.to_string()).collect();
    let mut out = format!(
        "lanreach agent \"{}\" (ID {})\ncontrol channel: UDP {}{}\n\n",
        printable(b.name, 64),
        b.id,
        bound.join(", "),
        if b.advertised { ", advertised on the LAN (mDNS _lanreach._udp)" } else { "" }
    );
    out.push_str(&code_block(b.code, b.reachable, b.id, b.qr));
    out.push_str("Peers paired before connect without a code. Ctrl-C stops the agent.\n");
    out
}

/// The pairing link for the first address peers can dial.
pub(crate) fn link(reachable: &[SocketAddr], code: &PairingCode, id: KeyId) -> Option<PairingLink> {
    reachable.first().map(|a| PairingLink::new(&a.ip().to_string(), a.port(), code, &id))
}

/// A QR code of `text` for a terminal, two rows per line.
pub(crate) fn qr(text: &str) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(code.render::<Dense1x2>().dark_color(Dense1x2::Light).light_color(Dense1x2::Dark).quiet_zone(true).build())
}

fn code_block(code: &PairingCode, reachable: &[SocketAddr], id: KeyId, with_qr: bool) -> String {
    let mut out =
        format!("pairing code: {code}   (single use; replaced after {MAX_FAILED_ATTEMPTS} failed attempts)\n");
    if reachable.is_empty() {
        out.push_str("No LAN address found on this machine: is it connected to a network?\n");
    } else {
        out.push_str("On the other device, run one of:\n");
        for cmd in peer_commands(reachable, code) {
            out.push_str(&format!("  {cmd}\n"));
        }
        if let Some(link) = link(reachable, code, id) {
            out.push_str(&format!("or pair from this link (scan it, paste it after lanreach-peer):\n  {link}\n"));
            if let Some(qr) = with_qr.then(|| qr(&link.to_string())).flatten() {
                out.push_str(&qr);
                out.push('\n');
            }
        }
    }
    out.push('\n');
    out
}

/// A spinner on stderr (only used on a terminal).
pub(crate) fn spinner(message: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(lanreach_proto::defaults::SPINNER_TICK);
    bar
}

fn duration(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn hello_lines(hello: &Hello) -> String {
    format!(
        "  {} runs {} on {}\n  addresses: {}\n",
        printable(&hello.name, 64),
        printable(&hello.software, 64),
        printable(&hello.os, 96),
        hello.address_list()
    )
}

/// One event as the user reads it; `None` when `quiet` leaves it out.
pub(crate) fn event(event: &Event, reachable: &[SocketAddr], id: KeyId, quiet: bool) -> Option<String> {
    if quiet && !matches!(event, Event::CodeChanged(_) | Event::PeerFailed { .. } | Event::TrustFileError(_)) {
        return None;
    }
    Some(match event {
        Event::CodeChanged(CodeChange { reason, new }) => {
            let why = match reason {
                RetireReason::Used => "the last code was used",
                RetireReason::TooManyFailures => "the last code had too many failed attempts and is retired",
            };
            format!("New pairing code ({why}):\n{}", code_block(new, reachable, id, false))
        }
        Event::PeerAuthenticated { from, name, id, method, verification } => match method {
            AuthMethod::Paired => format!(
                "Paired with peer \"{name}\" (ID {id}) from {from}; it is trusted from now on.\n  \
                 verification: {verification} (the peer shows the same)\n"
            ),
            AuthMethod::Pinned => format!("Peer \"{name}\" (ID {id}) connected from {from} (paired before).\n"),
        },
        Event::PeerHello { hello, .. } => hello_lines(hello),
        Event::PeerReport { from, .. } => format!("  report for the peer at {from} printed on stdout.\n"),
        Event::PeerFinished { name, rtt, pings, .. } => {
            format!("  round-trip time to \"{name}\": {} (QUIC, after {pings} pings); session done.\n", duration(*rtt))
        }
        Event::PeerFailed { from, error, failures } => failure(*from, error, *failures),
        Event::TrustFileError(e) => format!("warning: trusted peers file: {}\n", text::error_chain(e)),
    })
}

fn failure(from: SocketAddr, error: &SessionError, failures: u32) -> String {
    let attempts =
        if failures > 0 { format!(" (failed attempt {failures} of {MAX_FAILED_ATTEMPTS})") } else { String::new() };
    let what = match error {
        e if lanreach_proto::endpoint::quic::stopped_by_other_side(e) => {
            "the peer was stopped (Ctrl-C on its device)".into()
        }
        SessionError::Handshake(HandshakeError::WrongCode) => format!("pairing failed: wrong code{attempts}"),
        SessionError::Handshake(HandshakeError::CodeRetired) => "pairing failed: the peer used a retired code".into(),
        SessionError::Handshake(HandshakeError::NotTrusted) => {
            "refused: this peer is not paired (it needs the pairing code)".into()
        }
        SessionError::Handshake(HandshakeError::Busy) => "refused: too many pairing attempts at once".into(),
        SessionError::Handshake(HandshakeError::VersionMismatch { ours, theirs }) => {
            format!("refused: the peer speaks protocol version {theirs}, this agent {ours}; install matching versions")
        }
        SessionError::Timeout(step) => format!("gave up: no progress during {step}{attempts}"),
        other => format!("session failed: {}{attempts}", text::error_chain(other)),
    };
    format!("Peer at {from}: {what}.\n")
}

/// A report for stdout: the terminal rendering, or one JSON document.
pub(crate) fn report(report: &Report, json: bool, paint: Paint) -> String {
    if json { format!("{}\n", report.to_json()) } else { lanreach_proto::render::render_text(report, paint) }
}

/// The `peers` list.
pub(crate) fn peers(list: &[TrustedPeer]) -> String {
    if list.is_empty() {
        return "No trusted peers yet: run lanreach-peer with the agent's pairing code.\n".into();
    }
    let mut out = String::from("ID                    NAME              PAIRED FROM\n");
    for p in list {
        out.push_str(&format!("{}   {:<16}  {}\n", p.id, printable(&p.name, 16), p.address));
    }
    out
}

/// An error and its causes on one line, each once ([`text::error_chain`]: no message
/// repeats its cause).
pub(crate) fn error_chain(e: &anyhow::Error) -> String {
    text::error_chain(e.as_ref())
}

/// Writes status text to stderr, ignoring a closed stderr.
pub(crate) fn status(text: &str) {
    let _ = std::io::stderr().write_all(lanreach_proto::text::terminal_safe(text).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chains_name_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotADirectory, "Not a directory");
        let err = anyhow::Error::from(lanreach_proto::endpoint::identity::IdentityError::CreateDir {
            path: "/dev/null/x".into(),
            source: io,
        });
        assert_eq!(error_chain(&err), "cannot create the state directory /dev/null/x: Not a directory");
        let wrapped = anyhow::anyhow!("inner failure").context("cannot start the async runtime");
        assert_eq!(error_chain(&wrapped), "cannot start the async runtime: inner failure");
    }

    #[test]
    fn two_level_chains_name_each_cause_once() {
        use lanreach_proto::endpoint::identity::IdentityError;
        use lanreach_proto::endpoint::store::StoreError;
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "Permission denied");
        let write = IdentityError::Write { path: "/x/trusted_peers.json".into(), source: io };
        let err = anyhow::Error::from(StoreError::Write(write)).context("cannot remove the peer");
        let text = error_chain(&err);
        assert_eq!(text, "cannot remove the peer: cannot write /x/trusted_peers.json: Permission denied");
        for part in ["cannot remove the peer", "cannot write", "Permission denied"] {
            assert_eq!(text.matches(part).count(), 1, "{part:?} in {text:?}");
        }
    }

    #[test]
    fn peer_commands_omit_the_default_port_and_bracket_ipv6() {
        let code: PairingCode = "7K3Q-M2XD".parse().expect("code");
        let addrs: Vec<SocketAddr> =
            ["198.51.100.7:47800", "[2001:db8::7]:47800", "198.51.100.7:5000", "[2001:db8::7]:5000"]
                .iter()
                .map(|a| a.parse().expect("addr"))
                .collect();
        assert_eq!(
            peer_commands(&addrs, &code),
            [
                "lanreach-peer 198.51.100.7 --code 7K3Q-M2XD",
                "lanreach-peer 2001:db8::7 --code 7K3Q-M2XD",
                "lanreach-peer 198.51.100.7:5000 --code 7K3Q-M2XD",
                "lanreach-peer [2001:db8::7]:5000 --code 7K3Q-M2XD",
            ]
        );
    }
}
