//! Everything the agent prints. Status goes to stderr; `peers` lists go to stdout. Both
//! are fitted to the width of the terminal they go to: long lines wrap at word
//! boundaries with a hanging indent ([`text::fit`]).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use lanreach_proto::KeyId;
use lanreach_proto::code::{CodeChange, MAX_FAILED_ATTEMPTS, PairingCode, RetireReason};
use lanreach_proto::defaults::DEFAULT_CONTROL_PORT;
use lanreach_proto::endpoint::term;
use lanreach_proto::handshake::{AuthMethod, HandshakeError};
use lanreach_proto::link::PairingLink;
use lanreach_proto::msg::{Hello, labelled_lines};
use lanreach_proto::render::Paint;
use lanreach_proto::report::Report;
use lanreach_proto::text::{self, printable};

use crate::control::{Event, SessionError};
use crate::qr::{self, QrStyle};
use crate::trust::TrustedPeer;
use crate::web::LinkChange;

/// The man page's sections beyond the options (roff).
pub(crate) const MAN_SECTIONS: &[(&str, &str)] = &[
    (
        "EXIT STATUS",
        concat!(
            ".TP\n0\nSuccess: with \\fB\\-\\-once\\fR, every \\fB\\-\\-check\\fR port is confirmed reachable; with ",
            "\\fB\\-\\-local\\fR, nothing wrong is visible from this machine (every \\fB\\-\\-check\\fR port ",
            "reachable_locally, no problem found); a serving agent stopped with Ctrl\\-C or SIGTERM.\n",
            ".TP\n1\nWith \\fB\\-\\-once\\fR: a \\fB\\-\\-check\\fR port is not reachable, or not confirmed ",
            "(silence is never confirmation). With \\fB\\-\\-local\\fR: something wrong is visible from this machine.\n",
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

/// How peers reach this agent: what every pairing code is printed with.
#[derive(Debug, Clone)]
pub(crate) struct Invite {
    /// Where peers can dial the control channel, most likely reached first, each with
    /// its network's prefix length.
    pub addresses: Vec<(SocketAddr, Option<u8>)>,
    /// This agent's key ID.
    pub id: KeyId,
    /// How to draw the QR code; `None`: no QR code (not a terminal, or `--quiet`).
    pub qr: Option<QrStyle>,
    /// The terminal's width, when known.
    pub width: Option<usize>,
    /// List every address of a peer, not only those that matter.
    pub all_addresses: bool,
    /// The live browser token, when the page is served: the QR code is then the browser
    /// link, which `lanreach-peer` accepts too.
    pub token: Option<String>,
}

impl Invite {
    fn dialable(&self) -> Vec<SocketAddr> {
        self.addresses.iter().map(|(a, _)| *a).collect()
    }
}

/// What the start-up banner shows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Banner<'a> {
    /// The agent's name.
    pub name: &'a str,
    /// Bound control addresses.
    pub bound: &'a [SocketAddr],
    /// The live code.
    pub code: &'a PairingCode,
    /// How peers reach the agent.
    pub invite: &'a Invite,
    /// Only the essentials.
    pub quiet: bool,
    /// Advertised over mDNS.
    pub advertised: bool,
    /// Where the browser page is served (TCP).
    pub web: &'a [SocketAddr],
    /// Control addresses where it could not be served, and why.
    pub web_failed: &'a [(SocketAddr, std::io::Error)],
    /// `--no-web`.
    pub no_web: bool,
}

/// The start-up banner.
pub(crate) fn banner(b: &Banner<'_>) -> String {
    if b.quiet {
        return code_block(b.code, b.invite);
    }
    let bound: Vec<String> = b.bound.iter().map(|a| a.to_string()).collect();
    let mut out = format!(
        "lanreach agent \"{}\" (ID {})\ncontrol channel: UDP {}{}\n\n",
        printable(b.name, 64),
        b.invite.id,
        bound.join(", "),
        if b.advertised { ", advertised on the LAN (mDNS _lanreach._udp)" } else { "" }
    );
    out.pop();
    out.push_str(&web_line(b));
    out.push('\n');
    out.push_str(&code_block(b.code, b.invite));
    out.push_str("Peers paired before connect without a code. Ctrl-C stops the agent.\n");
    out
}

/// Where the browser page is served, or why not.
fn web_line(b: &Banner<'_>) -> String {
    let failed: Vec<String> = b
        .web_failed
        .iter()
        .map(|(addr, e)| match e.kind() {
            std::io::ErrorKind::AddrInUse => format!("TCP {addr} is in use by another program"),
            _ => format!("TCP {addr}: {e}"),
        })
        .collect();
    let web: Vec<String> = b.web.iter().map(ToString::to_string).collect();
    match (b.no_web, web.is_empty(), failed.is_empty()) {
        (true, ..) => "browser page: off (--no-web)\n".into(),
        (false, false, true) => format!("browser page: TCP {}\n", web.join(", ")),
        (false, false, false) => format!("browser page: TCP {} (not on {})\n", web.join(", "), failed.join("; ")),
        (false, true, _) => format!(
            "browser page: off: {}; stop that program, or choose another port number with --control\n",
            failed.join("; ")
        ),
    }
}

/// The pairing link: the addresses peers are most likely to reach, best first.
pub(crate) fn link(invite: &Invite, code: &PairingCode) -> Option<PairingLink> {
    let port = invite.addresses.first()?.0.port();
    let same_port: Vec<(IpAddr, Option<u8>)> =
        invite.addresses.iter().filter(|(a, _)| a.port() == port).map(|(a, prefix)| (a.ip(), *prefix)).collect();
    PairingLink::new(&same_port, port, code, &invite.id)
}

/// The code, the commands and the link that use it, and its QR code: printed at
/// start-up and with every new code, so the QR code never holds a used one.
fn code_block(code: &PairingCode, invite: &Invite) -> String {
    let mut out =
        format!("pairing code: {code}   (single use; replaced after {MAX_FAILED_ATTEMPTS} failed attempts)\n");
    if invite.addresses.is_empty() {
        out.push_str("No LAN address found on this machine: is it connected to a network?\n");
        out.push('\n');
        return out;
    }
    let link = link(invite, code);
    if let (Some(link), Some(token)) = (&link, &invite.token) {
        // One QR code: the phone's camera opens the page, and lanreach-peer takes the
        // same link (it carries the code too).
        let url = link.browser(token);
        match invite.qr.map_or(QrBlock::None, |style| qr_block(&url, style, invite.width)) {
            QrBlock::Drawn(qr) => {
                out.push_str("On a phone: scan this QR code with its camera (nothing to install):\n");
                out.push_str(&qr);
                out.push_str(&format!("or open this link in its browser:\n  {url}\n"));
            }
            other => {
                out.push_str("On a phone: open this link in its browser (nothing to install):\n");
                out.push_str(&format!("  {url}\n"));
                out.push_str(other.text());
            }
        }
        out.push_str("On another computer, run one of:\n");
        for cmd in peer_commands(&invite.dialable(), code) {
            out.push_str(&format!("  {cmd}\n"));
        }
        out.push_str("or lanreach-peer 'LINK' with the link above (in single quotes: a shell cuts it at &).\n");
        out.push('\n');
        return out;
    }
    out.push_str("On the other device, run one of:\n");
    for cmd in peer_commands(&invite.dialable(), code) {
        out.push_str(&format!("  {cmd}\n"));
    }
    if let Some(link) = link {
        let text = link.to_string();
        // Quoted on a command line: a shell cuts the link at `&` and globs `?`.
        out.push_str(&format!("or pair from this link (scan it, or run lanreach-peer 'LINK', quoted):\n  {text}\n"));
        if let Some(style) = invite.qr {
            out.push_str(qr_block(&text, style, invite.width).text());
        }
    }
    out.push('\n');
    out
}

/// A new pairing code and how to use it, with the reason for the change.
pub(crate) fn new_code(why: &str, code: &PairingCode, invite: &Invite) -> String {
    format!("New pairing code ({why}):\n{}", code_block(code, invite))
}

/// A new browser link (the code is unchanged), with the reason.
pub(crate) fn new_link(why: &str, code: &PairingCode, invite: &Invite) -> String {
    format!("New browser link and QR code ({why}):\n{}", code_block(code, invite))
}

/// The code in force, on one line, after other lines pushed it up the screen.
pub(crate) fn code_reminder(code: &PairingCode, invite: &Invite) -> String {
    match peer_commands(&invite.dialable(), code).first() {
        Some(cmd) => format!("pairing code: {code}   (still valid: {cmd})\n"),
        None => format!("pairing code: {code}   (still valid)\n"),
    }
}

/// Failed or refused connections that were not described one by one.
pub(crate) fn undescribed_failures(count: usize, sources: usize, secs: u64) -> String {
    let addresses = if sources == 1 { "1 address".to_owned() } else { format!("{sources} addresses") };
    format!("… and {count} more connections from {addresses} failed or were refused in the last {secs} s.\n")
}

/// The QR code of `link` as drawn lines, or why it is left out.
enum QrBlock {
    /// The code, drawn.
    Drawn(String),
    /// A sentence saying why not (the terminal is too narrow).
    LeftOut(String),
    /// Nothing to show.
    None,
}

impl QrBlock {
    fn text(&self) -> &str {
        match self {
            QrBlock::Drawn(text) | QrBlock::LeftOut(text) => text,
            QrBlock::None => "",
        }
    }
}

fn qr_block(link: &str, style: QrStyle, width: Option<usize>) -> QrBlock {
    let Some(needs) = qr::width(link) else {
        return QrBlock::None;
    };
    match width {
        Some(have) if have < needs => QrBlock::LeftOut(format!(
            "(QR code left out: it needs {needs} columns, this terminal has {have}; widen it to at least {needs} \
             columns and restart the agent to see it, or use the link)\n"
        )),
        _ => match qr::draw(link, style) {
            Some(drawn) => QrBlock::Drawn(drawn.lines.iter().map(|l| format!("{l}\n")).collect()),
            None => QrBlock::None,
        },
    }
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

fn hello_lines(hello: &Hello, from: SocketAddr, all_addresses: bool) -> String {
    format!(
        "  {} runs {} on {}\n{}",
        printable(&hello.name, 64),
        printable(&hello.software, 64),
        printable(&hello.os, 96),
        labelled_lines("  addresses: ", &hello.address_lines(&[from.ip()], all_addresses))
    )
}

/// One event as the user reads it; `None` when `quiet` leaves it out.
pub(crate) fn event(event: &Event, invite: &Invite, quiet: bool) -> Option<String> {
    if quiet && !matches!(event, Event::CodeChanged(_) | Event::PeerFailed { .. } | Event::TrustFileError(_)) {
        return None;
    }
    if let Event::PeerChanges { changes, .. } = event
        && changes.is_empty()
    {
        return None;
    }
    Some(match event {
        Event::CodeChanged(CodeChange { reason, new }) => {
            let why = match reason {
                RetireReason::Used => "the last code was used",
                RetireReason::TooManyFailures => "the last code had too many failed attempts and is retired",
            };
            new_code(why, new, invite)
        }
        Event::PeerAuthenticated { from, name, id, method, verification } => match method {
            AuthMethod::Paired => format!(
                "Paired with peer \"{name}\" (ID {id}) from {from}; it is trusted from now on.\n  \
                 verification: {verification} (the peer shows the same)\n"
            ),
            AuthMethod::Pinned => format!("Peer \"{name}\" (ID {id}) connected from {from} (paired before).\n"),
        },
        Event::PeerHello { hello, from } => hello_lines(hello, *from, invite.all_addresses),
        // A browser's report is announced with its end (`BrowserFinished`).
        Event::PeerReport { report, .. } if report.mode == lanreach_proto::report::Mode::Browser => return None,
        Event::PeerReport { from, .. } => format!("  report for the peer at {from} printed on stdout.\n"),
        Event::PeerChanges { name, round, changes, .. } => changes
            .iter()
            .map(|c| format!("  watch, \"{}\" round {round}: {}\n", printable(name, 64), printable(c, 200)))
            .collect(),
        Event::PeerFinished { name, rtt, pings, .. } => {
            format!("  round-trip time to \"{name}\": {} (QUIC, after {pings} pings); session done.\n", duration(*rtt))
        }
        Event::PeerFailed { from, error, failures, .. } => failure(*from, error, *failures),
        Event::Refused { from, why } => format!("Peer at {from}: refused: {why}.\n"),
        Event::TrustFileError(e) => format!("warning: trusted peers file: {}\n", text::error_chain(e)),
        // The screen prints the new link with the code in force (`Screen::event`).
        Event::BrowserLink { .. } => return None,
        Event::BrowserStarted { from, name } => {
            format!("Browser at {from} ({}) opened the page: it is testing from its side.\n", printable(name, 40))
        }
        Event::BrowserFinished { from, .. } => {
            format!("Browser at {from}: its page shows the answer (and this report).\n")
        }
        Event::BrowserFailed { from, error, .. } => format!("Browser at {from}: {}.\n", printable(error, 200)),
    })
}

/// Why a new browser link is printed.
pub(crate) fn browser_link_reason(change: LinkChange) -> &'static str {
    match change {
        LinkChange::Used => "the last browser link was used",
        LinkChange::Expired => "the last browser link expired unused",
    }
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
        SessionError::Handshake(HandshakeError::Busy) => {
            "refused: pairing attempts are under way (the code's last ones, or one from the same address)".into()
        }
        SessionError::Handshake(HandshakeError::Backoff { wait }) => format!(
            "refused: a pairing attempt from this address failed moments ago (it may try again in {} s)",
            wait.as_millis().div_ceil(1000)
        ),
        SessionError::Handshake(HandshakeError::VersionMismatch { ours, theirs }) => {
            format!("refused: the peer speaks protocol version {theirs}, this agent {ours}; install matching versions")
        }
        SessionError::NoConfirmation => format!("pairing failed: no confirmation in time{attempts}"),
        SessionError::Timeout(step) => format!("gave up: no progress during {step}"),
        SessionError::Evicted => "closed before it authenticated, to make room for newer connections".into(),
        SessionError::SessionsFull => "refused: too many peers are connected".into(),
        other => format!("session failed: {}{attempts}", text::error_chain(other)),
    };
    format!("Peer at {from}: {what}.\n")
}

/// A report for stdout: the terminal rendering at `width` columns, or one JSON document.
pub(crate) fn report(report: &Report, json: bool, paint: Paint, width: usize) -> String {
    let started = std::time::Instant::now();
    let text = if json {
        format!("{}\n", report.to_json())
    } else {
        lanreach_proto::render::render_text(report, paint, width)
    };
    let what = if json { "JSON" } else { "text" };
    tracing::debug!("timing: agent output / report as {what}: {:.1} ms", started.elapsed().as_secs_f64() * 1000.0);
    text
}

/// The `peers` list: a table where it fits in `width` columns, else one peer per
/// line.
pub(crate) fn peers(list: &[TrustedPeer], width: usize) -> String {
    if list.is_empty() {
        return "No trusted peers yet: run lanreach-peer with the agent's pairing code.\n".into();
    }
    let mut table = String::from("ID                    NAME              PAIRED FROM\n");
    for p in list {
        table.push_str(&format!("{}   {:<16}  {}\n", p.id, printable(&p.name, 16), p.address));
    }
    if table.lines().all(|l| text::width(l) <= width) {
        return table;
    }
    let mut out = String::new();
    for p in list {
        let line = format!("\"{}\" (ID {}) paired from {}", printable(&p.name, 64), p.id, p.address);
        out.push_str(&text::wrap(&line, width, "", "  "));
    }
    out
}

/// An error and its causes on one line, each once ([`text::error_chain`]: no message
/// repeats its cause).
pub(crate) fn error_chain(e: &anyhow::Error) -> String {
    text::error_chain(e.as_ref())
}

/// Writes status text to stderr, fitted to its width (sentences wrap; a line that is
/// one long token, such as a link, is left whole for copying), ignoring a closed stderr.
/// Control characters are replaced, but for the QR code's own colour codes.
pub(crate) fn status(message: &str) {
    let safe = text::terminal_safe_keeping(message, &qr::ESCAPES);
    let width = term::stderr_width();
    let fitted: String = safe
        .split_inclusive('\n')
        .map(|line| if line.trim().contains(' ') { text::fit(line, width) } else { line.to_owned() })
        .collect();
    let _ = std::io::stderr().write_all(fitted.as_bytes());
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
    fn the_peers_list_is_a_table_where_it_fits_and_a_list_on_a_phone() {
        let peer = TrustedPeer {
            id: KeyId::from_spki(b"phone"),
            name: "phone".into(),
            paired_at: 0,
            address: "[2001:db8:1::2]:50123".into(),
        };
        let wide = peers(std::slice::from_ref(&peer), 100);
        assert!(wide.starts_with("ID ") && wide.contains("phone"), "{wide}");
        let narrow = peers(&[peer], 40);
        assert!(narrow.lines().all(|l| text::width(l) <= 40), "{narrow}");
        assert!(narrow.starts_with("\"phone\" (ID ") && narrow.contains("[2001:db8:1::2]:50123"), "{narrow}");
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
