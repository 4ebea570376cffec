//! Everything the agent prints. Status goes to stderr; `peers` lists go to stdout.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use lanreach_proto::KeyId;
use lanreach_proto::code::{CodeChange, MAX_FAILED_ATTEMPTS, PairingCode, RetireReason};
use lanreach_proto::handshake::{AuthMethod, HandshakeError};
use lanreach_proto::msg::{DEFAULT_CONTROL_PORT, Hello, printable};
use lanreach_proto::report::Report;

use crate::control::{Event, SessionError};
use crate::trust::TrustedPeer;

/// The `lanreach-peer` commands that reach this agent, one per address.
pub fn peer_commands(addrs: &[SocketAddr], code: &PairingCode) -> Vec<String> {
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

/// The start-up banner.
pub fn banner(name: &str, id: KeyId, bound: &[SocketAddr], code: &PairingCode, reachable: &[SocketAddr]) -> String {
    let bound: Vec<String> = bound.iter().map(|a| a.to_string()).collect();
    let mut out =
        format!("lanreach agent \"{}\" (ID {id})\ncontrol channel: UDP {}\n\n", printable(name, 64), bound.join(", "));
    out.push_str(&code_block(code, reachable));
    out.push_str("Peers paired before connect without a code. Ctrl-C stops the agent.\n");
    out
}

fn code_block(code: &PairingCode, reachable: &[SocketAddr]) -> String {
    let mut out =
        format!("pairing code: {code}   (single use; replaced after {MAX_FAILED_ATTEMPTS} failed attempts)\n");
    if reachable.is_empty() {
        out.push_str("No LAN address found on this machine: is it connected to a network?\n");
    } else {
        out.push_str("On the other device, run one of:\n");
        for cmd in peer_commands(reachable, code) {
            out.push_str(&format!("  {cmd}\n"));
        }
    }
    out.push('\n');
    out
}

fn duration(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn hello_lines(hello: &Hello) -> String {
    let addrs: Vec<String> = hello
        .addresses
        .iter()
        .filter(|a| !a.ip.is_loopback())
        .map(|a| format!("{} {}", printable(&a.interface, 32), a.ip))
        .collect();
    format!(
        "  {} runs {} on {}\n  addresses: {}\n",
        printable(&hello.name, 64),
        printable(&hello.software, 64),
        printable(&hello.os, 96),
        if addrs.is_empty() { "none but loopback".to_owned() } else { addrs.join(", ") }
    )
}

/// One event as the user reads it.
pub fn event(event: &Event, reachable: &[SocketAddr]) -> String {
    match event {
        Event::CodeChanged(CodeChange { reason, new }) => {
            let why = match reason {
                RetireReason::Used => "the last code was used",
                RetireReason::TooManyFailures => "the last code had too many failed attempts and is retired",
            };
            format!("New pairing code ({why}):\n{}", code_block(new, reachable))
        }
        Event::PeerAuthenticated { from, name, id, method } => match method {
            AuthMethod::Paired => {
                format!("Paired with peer \"{name}\" (ID {id}) from {from}; it is trusted from now on.\n")
            }
            AuthMethod::Pinned => format!("Peer \"{name}\" (ID {id}) connected from {from} (paired before).\n"),
        },
        Event::PeerHello { hello, .. } => hello_lines(hello),
        Event::PeerReport { from, .. } => format!("  report for the peer at {from} printed on stdout.\n"),
        Event::PeerFinished { name, rtt, pings, .. } => {
            format!("  round-trip time to \"{name}\": {} (QUIC, after {pings} pings); session done.\n", duration(*rtt))
        }
        Event::PeerFailed { from, error, failures } => failure(*from, error, *failures),
        Event::TrustFileError(e) => format!("warning: trusted peers file: {e}\n"),
    }
}

fn failure(from: SocketAddr, error: &SessionError, failures: u32) -> String {
    let attempts =
        if failures > 0 { format!(" (failed attempt {failures} of {MAX_FAILED_ATTEMPTS})") } else { String::new() };
    let what = match error {
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
        other => format!("connection closed: {other}{attempts}"),
    };
    format!("Peer at {from}: {what}.\n")
}

/// A report for stdout: the terminal rendering, or one JSON document.
pub fn report(report: &Report, json: bool) -> String {
    if json { format!("{}\n", report.to_json()) } else { lanreach_proto::report::render_text(report) }
}

/// The `peers` list.
pub fn peers(list: &[TrustedPeer]) -> String {
    if list.is_empty() {
        return "No trusted peers yet: run lanreach-peer with the agent's pairing code.\n".into();
    }
    let mut out = String::from("ID                    NAME              PAIRED FROM\n");
    for p in list {
        out.push_str(&format!("{}   {:<16}  {}\n", p.id, printable(&p.name, 16), p.address));
    }
    out
}

/// Writes status text to stderr, ignoring a closed stderr.
pub fn status(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

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
