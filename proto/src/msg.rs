//! The control-channel messages: one enum, one table of type numbers.
//!
//! # Wire protocol `lanreach/1`
//!
//! The peer opens one bidirectional QUIC stream (ALPN `lanreach/1`) and both sides
//! exchange frames on it (see [`crate::codec`]). The conversation:
//!
//! ```text
//! peer                                   agent
//! Start{version, name, Pair{X}}   ──▶
//!                                 ◀──    PairReply{offers: [(Y, agent MAC), …]}
//! PairConfirm{peer MAC}           ──▶                       (pairing with a code)
//!          — or —
//! Start{version, name, Pinned}    ──▶                       (keys pinned before)
//!                                 ◀──    Accepted
//! Hello                           ──▶
//!                                 ◀──    Hello
//!                                 ◀──    Plan
//! Ping / Pong …                          (the peer measures the round trip)
//! Witness                         ──▶    (at most twice a round, while probing)
//!                                 ◀──    Witnessed
//! Results                         ──▶    (after probing the plan)
//!                                 ◀──    Report
//! Again (watch mode, repeatable)  ──▶
//!                                 ◀──    Plan
//! Results                         ──▶
//!                                 ◀──    Report
//! ```
//!
//! Either side may send [`Reject`] instead of its next message and close. `Start` and
//! `Reject` keep their type numbers and leading `version` field in every protocol
//! version, so that two versions can always tell each other they differ.
//!
//! Version 4 (this one) added `Witness`/`Witnessed`: mid-run, the peer asks whether the
//! agent's host sent or suppressed any ICMP error since the plan ([`crate::icmp`]), and
//! each result says whether its silence is proven (`proven`); the report travels
//! deflated, inflated by the peer to at most [`MAX_REPORT_JSON`]. Version 3 added the
//! browser's outcome `failed`. Version 2 added to each service result of `Results` the attempts that
//! finished and, for UDP, the source port of each attempt (so that the agent can find
//! the peer's datagrams in its connection-tracking table). What a UDP service probe
//! sends is not on the wire: the peer derives it from the port number
//! ([`crate::payload::for_port`]), so an agent cannot make a peer send chosen bytes.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::addr::group_addresses;
use crate::icmp::IcmpWitness;
use crate::plan::ProbePlan;
use crate::text::printable;
use crate::vocab::ProbeResults;

/// Most offers a [`PairReply`] may carry: the live code and up to three retired ones.
pub const MAX_OFFERS: usize = 4;

/// Most addresses a [`Hello`] may list.
pub const MAX_HELLO_ADDRESSES: usize = 256;

/// Type numbers of the frames. Never reuse a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageType {
    /// [`Start`]
    Start = 1,
    /// [`Reject`]
    Reject = 2,
    /// [`PairReply`]
    PairReply = 3,
    /// [`PairConfirm`]
    PairConfirm = 4,
    /// [`Accepted`]
    Accepted = 5,
    /// [`Hello`]
    Hello = 6,
    /// [`Ping`]
    Ping = 7,
    /// [`Ping`] echoed back
    Pong = 8,
    /// [`ProbePlan`]
    Plan = 9,
    /// [`ProbeResults`]
    Results = 10,
    /// [`ReportJson`]
    Report = 11,
    /// [`Again`]
    Again = 12,
    /// [`WitnessAsk`]
    Witness = 13,
    /// [`IcmpWitness`], if the agent can tell
    Witnessed = 14,
}

impl MessageType {
    /// The type with number `n`, if this version knows it.
    pub fn from_u8(n: u8) -> Option<Self> {
        use MessageType::*;
        [
            Start,
            Reject,
            PairReply,
            PairConfirm,
            Accepted,
            Hello,
            Ping,
            Pong,
            Plan,
            Results,
            Report,
            Again,
            Witness,
            Witnessed,
        ]
        .into_iter()
        .find(|t| *t as u8 == n)
    }
}

/// Every message of the control channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Peer → agent, always first.
    Start(Start),
    /// Either way: a typed refusal; the sender closes after it.
    Reject(Reject),
    /// Agent → peer: SPAKE2 replies with key confirmation.
    PairReply(PairReply),
    /// Peer → agent: the peer's key confirmation.
    PairConfirm(PairConfirm),
    /// Agent → peer: authentication succeeded.
    Accepted(Accepted),
    /// Both ways after authentication: who and where each side is.
    Hello(Hello),
    /// Either way: round-trip measurement request.
    Ping(Ping),
    /// Answer to a [`Ping`], echoing its nonce.
    Pong(Ping),
    /// Agent → peer: what to probe.
    Plan(ProbePlan),
    /// Peer → agent: what the probes found.
    Results(ProbeResults),
    /// Agent → peer: the finished report.
    Report(ReportJson),
    /// Peer → agent, after a report: run the checks again (`lanreach-peer --watch`).
    Again(Again),
    /// Peer → agent, while probing: has the agent's host sent or suppressed an ICMP
    /// error since the plan?
    Witness(WitnessAsk),
    /// Agent → peer: the answer to [`Message::Witness`]; `None` when its host's
    /// counters cannot be read.
    Witnessed(Option<IcmpWitness>),
}

impl Message {
    /// This message's type number.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Start(_) => MessageType::Start,
            Message::Reject(_) => MessageType::Reject,
            Message::PairReply(_) => MessageType::PairReply,
            Message::PairConfirm(_) => MessageType::PairConfirm,
            Message::Accepted(_) => MessageType::Accepted,
            Message::Hello(_) => MessageType::Hello,
            Message::Ping(_) => MessageType::Ping,
            Message::Pong(_) => MessageType::Pong,
            Message::Plan(_) => MessageType::Plan,
            Message::Results(_) => MessageType::Results,
            Message::Report(_) => MessageType::Report,
            Message::Again(_) => MessageType::Again,
            Message::Witness(_) => MessageType::Witness,
            Message::Witnessed(_) => MessageType::Witnessed,
        }
    }
}

/// The peer's first message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Start {
    /// The peer's [`PROTOCOL_VERSION`](crate::defaults::PROTOCOL_VERSION); must stay the first field forever.
    pub version: u16,
    /// The peer's name (host name), for display.
    pub name: String,
    /// How the peer wants to authenticate.
    pub auth: StartAuth,
}

/// How a connection authenticates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartAuth {
    /// Pair with a code: the peer's SPAKE2 message.
    Pair {
        /// SPAKE2 message of side A (the peer).
        spake: Vec<u8>,
    },
    /// Both keys were pinned by an earlier pairing; TLS client authentication suffices.
    Pinned,
}

/// A typed refusal. The sender closes the connection after sending it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    /// The sender's [`PROTOCOL_VERSION`](crate::defaults::PROTOCOL_VERSION); must stay the first field forever.
    pub version: u16,
    /// What went wrong.
    pub code: RejectCode,
    /// Words for a person; displayed after sanitising.
    pub detail: String,
}

/// Why a side refused. Encoded as a number so that new codes do not break old peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "u16", into = "u16")]
pub enum RejectCode {
    /// The two sides speak different protocol versions.
    VersionMismatch,
    /// The key confirmation did not match: wrong code (or a relay in between).
    WrongCode,
    /// The code matched a code that is no longer valid.
    CodeRetired,
    /// Pinned authentication from a peer the agent does not trust.
    NotTrusted,
    /// A frame could not be decoded.
    Malformed,
    /// A valid message arrived out of turn.
    Unexpected,
    /// The side gave up waiting.
    Timeout,
    /// Something failed inside the sender.
    Internal,
    /// Too many pairing attempts on the live code are under way.
    Busy,
    /// The peer refuses the probe plan (targets it may not probe, too many probes).
    PlanRefused,
    /// A code this build does not know.
    Other(u16),
}

impl From<u16> for RejectCode {
    fn from(n: u16) -> Self {
        match n {
            1 => RejectCode::VersionMismatch,
            2 => RejectCode::WrongCode,
            3 => RejectCode::CodeRetired,
            4 => RejectCode::NotTrusted,
            5 => RejectCode::Malformed,
            6 => RejectCode::Unexpected,
            7 => RejectCode::Timeout,
            8 => RejectCode::Internal,
            9 => RejectCode::Busy,
            10 => RejectCode::PlanRefused,
            n => RejectCode::Other(n),
        }
    }
}

impl From<RejectCode> for u16 {
    fn from(c: RejectCode) -> u16 {
        match c {
            RejectCode::VersionMismatch => 1,
            RejectCode::WrongCode => 2,
            RejectCode::CodeRetired => 3,
            RejectCode::NotTrusted => 4,
            RejectCode::Malformed => 5,
            RejectCode::Unexpected => 6,
            RejectCode::Timeout => 7,
            RejectCode::Internal => 8,
            RejectCode::Busy => 9,
            RejectCode::PlanRefused => 10,
            RejectCode::Other(n) => n,
        }
    }
}

/// The agent's answer to a pairing [`Start`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairReply {
    /// One offer per code the agent recognises: the live code first, then retired ones
    /// (at most [`MAX_OFFERS`]), so that the peer can say "retired" instead of "wrong".
    pub offers: Vec<PairOffer>,
}

/// The agent's SPAKE2 message for one code, with its key confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairOffer {
    /// SPAKE2 message of side B (the agent).
    pub spake: Vec<u8>,
    /// HMAC proving the agent derived the same key (see [`crate::pairing`]).
    pub confirm: [u8; 32],
    /// Whether this code is retired.
    pub retired: bool,
}

/// The peer's key confirmation for the live code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairConfirm {
    /// HMAC proving the peer derived the same key.
    pub confirm: [u8; 32],
}

/// The agent accepted the peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// True when this connection paired with a code, false for pinned keys.
    pub paired: bool,
}

/// Who a side is and where it is, sent by both after authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Host name.
    pub name: String,
    /// Operating system and architecture, e.g. `linux x86_64`.
    pub os: String,
    /// Program and version, e.g. `lanreach-agent 0.1.0`.
    pub software: String,
    /// The side's interface addresses (at most [`MAX_HELLO_ADDRESSES`]).
    pub addresses: Vec<HelloAddress>,
}

/// `lines` after a `label` on the first line, the others indented to match, each
/// ended by a newline.
pub fn labelled_lines(label: &str, lines: &[String]) -> String {
    let indent = " ".repeat(label.chars().count());
    lines.iter().enumerate().map(|(i, l)| format!("{}{l}\n", if i == 0 { label } else { &indent })).collect()
}

impl Hello {
    /// Its addresses for display, one line per interface (`eth0 198.51.100.1,
    /// 2001:db8:1::1`), then what was left out, if anything; names sanitised, as they
    /// come from the other side. See [`group_addresses`] for what is listed: `in_use`
    /// are the addresses of this connection, `all` lists everything.
    pub fn address_lines(&self, in_use: &[IpAddr], all: bool) -> Vec<String> {
        let groups = group_addresses(self.addresses.iter().map(|a| (a.interface.as_str(), a.ip)), in_use, all);
        let mut lines: Vec<String> = groups
            .shown
            .iter()
            .map(|(interface, ips)| {
                let ips: Vec<String> = ips.iter().map(ToString::to_string).collect();
                format!("{} {}", printable(interface, 32), ips.join(", "))
            })
            .collect();
        let mut hidden = Vec::new();
        if groups.hidden_link_local > 0 {
            hidden.push(format!("{} link-local", groups.hidden_link_local));
        }
        if !groups.hidden_links.is_empty() {
            let names: Vec<String> = groups.hidden_links.iter().take(4).map(|n| printable(n, 16)).collect();
            let more = groups.hidden_links.len().saturating_sub(names.len());
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            hidden.push(format!("container or VPN links {}{more}", names.join(", ")));
        }
        if lines.is_empty() {
            lines.push(if hidden.is_empty() { "none but loopback" } else { "none on a LAN" }.to_owned());
        }
        if !hidden.is_empty() {
            lines.push(format!("(not listed: {}; --all-addresses lists them)", hidden.join(", ")));
        }
        lines
    }
}

/// One interface address in a [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloAddress {
    /// The address.
    pub ip: IpAddr,
    /// The interface's name.
    pub interface: String,
}

/// The peer's question mid-run (see [`crate::icmp`]); it carries nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessAsk;

/// A round-trip probe on the control channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Echoed in the [`Message::Pong`].
    pub nonce: u64,
}

/// The peer's request for another round over the same connection (watch mode): the agent
/// answers with a fresh plan, then the results and report follow as in the first round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Again {
    /// The round this starts (1 for the first repetition).
    pub round: u32,
}

/// The finished report as its JSON document (`lanreach.report/1`), deflated (RFC 1951):
/// the wire carries exactly what `--json` prints, in about a twentieth of the bytes (a
/// report of 128 ports × 2 addresses: 117 KB of JSON, 5 KB on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportJson {
    /// The JSON text, deflated.
    pub deflated: Vec<u8>,
}

/// Why a [`ReportJson`] could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportJsonError {
    /// Not a deflate stream, or not UTF-8 text.
    #[error("the report is not deflated UTF-8 text: {0}")]
    Malformed(String),
    /// Inflates to more than [`MAX_REPORT_JSON`] bytes.
    #[error("the report inflates to more than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
}

/// The most JSON text a report may inflate to (a plan's 2,048 probes and 256 ports make
/// about 1 MB): a small frame cannot make the peer allocate without bound.
pub const MAX_REPORT_JSON: usize = 8 * 1024 * 1024;

impl ReportJson {
    /// Deflates `json`.
    pub fn new(json: &str) -> ReportJson {
        use std::io::Write;
        let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        // Writing into a Vec cannot fail.
        let _ = encoder.write_all(json.as_bytes());
        ReportJson { deflated: encoder.finish().unwrap_or_default() }
    }

    /// The JSON text, inflated to at most [`MAX_REPORT_JSON`] bytes.
    pub fn json(&self) -> Result<String, ReportJsonError> {
        use std::io::Read;
        let decoder = flate2::read::DeflateDecoder::new(self.deflated.as_slice());
        let mut text = Vec::new();
        let limit = u64::try_from(MAX_REPORT_JSON).unwrap_or(u64::MAX) + 1;
        decoder.take(limit).read_to_end(&mut text).map_err(|e| ReportJsonError::Malformed(e.to_string()))?;
        if text.len() > MAX_REPORT_JSON {
            return Err(ReportJsonError::TooLarge { max: MAX_REPORT_JSON });
        }
        String::from_utf8(text).map_err(|e| ReportJsonError::Malformed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_inflates_within_bounds() {
        let json = format!("{{\"services\": [{}]}}", vec!["{\"verdict\": \"reachable\"}"; 2000].join(","));
        let wire = ReportJson::new(&json);
        assert!(wire.deflated.len() * 20 < json.len(), "{} of {}", wire.deflated.len(), json.len());
        assert_eq!(wire.json().expect("inflates"), json);
        // A bomb: 9 MB of spaces in a few KB.
        let bomb = ReportJson::new(&" ".repeat(MAX_REPORT_JSON + 1024 * 1024));
        assert!(bomb.deflated.len() < 64 * 1024);
        assert!(matches!(bomb.json(), Err(ReportJsonError::TooLarge { .. })));
        let garbage = ReportJson { deflated: vec![0xff; 64] };
        assert!(matches!(garbage.json(), Err(ReportJsonError::Malformed(_))));
    }

    #[test]
    fn type_numbers_round_trip() {
        for n in 0..=255u8 {
            if let Some(t) = MessageType::from_u8(n) {
                assert_eq!(t as u8, n);
            }
        }
        assert_eq!(MessageType::from_u8(0), None);
        assert_eq!(MessageType::from_u8(15), None);
    }

    #[test]
    fn reject_codes_round_trip_including_unknown() {
        for n in 0..20u16 {
            assert_eq!(u16::from(RejectCode::from(n)), n);
        }
    }
}
