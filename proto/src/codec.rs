//! Framing: bytes ↔ [`Message`].
//!
//! A frame is `length: u32 big-endian`, then `type: u8` (see [`MessageType`]), then
//! the message body encoded with postcard. `length` counts the type byte and the body
//! and may not exceed [`MAX_FRAME`]; a reader checks it before allocating anything.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::msg::{Message, MessageType};

/// Largest frame body (type byte + message) either side accepts.
pub const MAX_FRAME: usize = 1024 * 1024;

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;

/// Why bytes are not a valid frame.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The length prefix exceeds [`MAX_FRAME`].
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    Oversized {
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A frame with no type byte.
    #[error("empty frame")]
    Empty,
    /// A type number this version does not know.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// The body does not decode as the announced type.
    #[error("malformed {kind:?} message")]
    Malformed {
        /// The announced type.
        kind: MessageType,
        /// What postcard said.
        source: postcard::Error,
    },
    /// The body decoded but bytes were left over.
    #[error("{extra} stray bytes after a {kind:?} message")]
    Trailing {
        /// The announced type.
        kind: MessageType,
        /// How many bytes were left.
        extra: usize,
    },
    /// A message too large to send.
    #[error("message of {len} bytes is over the {max}-byte frame limit")]
    TooLargeToSend {
        /// Encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Serialising failed (should not happen for our types).
    #[error("cannot encode message")]
    Encode(#[source] postcard::Error),
}

/// Encodes `msg` as one complete frame, length prefix included.
pub fn encode(msg: &Message) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![0u8; HEADER_LEN];
    out.push(msg.message_type() as u8);
    let mut out = match msg {
        Message::Start(m) => append(out, m),
        Message::Reject(m) => append(out, m),
        Message::PairReply(m) => append(out, m),
        Message::PairConfirm(m) => append(out, m),
        Message::Accepted(m) => append(out, m),
        Message::Hello(m) => append(out, m),
        Message::Ping(m) | Message::Pong(m) => append(out, m),
        Message::Plan(m) => append(out, m),
        Message::Results(m) => append(out, m),
        Message::Report(m) => append(out, m),
        Message::Again(m) => append(out, m),
        Message::Witness(m) => append(out, m),
        Message::Witnessed(m) => append(out, m),
    }?;
    let len = out.len() - HEADER_LEN;
    if len > MAX_FRAME {
        return Err(CodecError::TooLargeToSend { len, max: MAX_FRAME });
    }
    let prefix = u32::try_from(len).map_err(|_| CodecError::TooLargeToSend { len, max: MAX_FRAME })?;
    out[..HEADER_LEN].copy_from_slice(&prefix.to_be_bytes());
    Ok(out)
}

fn append<T: Serialize>(out: Vec<u8>, value: &T) -> Result<Vec<u8>, CodecError> {
    postcard::to_extend(value, out).map_err(CodecError::Encode)
}

/// Checks a length prefix before the body is read.
pub fn check_length(header: [u8; HEADER_LEN]) -> Result<usize, CodecError> {
    let len = u32::from_be_bytes(header) as usize;
    match len {
        0 => Err(CodecError::Empty),
        len if len > MAX_FRAME => Err(CodecError::Oversized { len, max: MAX_FRAME }),
        len => Ok(len),
    }
}

/// Decodes a frame body (type byte and message, without the length prefix).
pub fn decode(body: &[u8]) -> Result<Message, CodecError> {
    let (&ty, rest) = body.split_first().ok_or(CodecError::Empty)?;
    let kind = MessageType::from_u8(ty).ok_or(CodecError::UnknownType(ty))?;
    Ok(match kind {
        MessageType::Start => Message::Start(body_as(kind, rest)?),
        MessageType::Reject => Message::Reject(body_as(kind, rest)?),
        MessageType::PairReply => Message::PairReply(body_as(kind, rest)?),
        MessageType::PairConfirm => Message::PairConfirm(body_as(kind, rest)?),
        MessageType::Accepted => Message::Accepted(body_as(kind, rest)?),
        MessageType::Hello => Message::Hello(body_as(kind, rest)?),
        MessageType::Ping => Message::Ping(body_as(kind, rest)?),
        MessageType::Pong => Message::Pong(body_as(kind, rest)?),
        MessageType::Plan => Message::Plan(body_as(kind, rest)?),
        MessageType::Results => Message::Results(body_as(kind, rest)?),
        MessageType::Report => Message::Report(body_as(kind, rest)?),
        MessageType::Again => Message::Again(body_as(kind, rest)?),
        MessageType::Witness => Message::Witness(body_as(kind, rest)?),
        MessageType::Witnessed => Message::Witnessed(body_as(kind, rest)?),
    })
}

fn body_as<T: DeserializeOwned>(kind: MessageType, bytes: &[u8]) -> Result<T, CodecError> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|source| CodecError::Malformed { kind, source })?;
    if !rest.is_empty() {
        return Err(CodecError::Trailing { kind, extra: rest.len() });
    }
    Ok(value)
}

/// The protocol version at the front of a `Start` or `Reject` body, readable even when
/// the rest of the message is from another version.
pub fn leading_version(body: &[u8]) -> Option<u16> {
    let (&ty, rest) = body.split_first()?;
    if ty != MessageType::Start as u8 && ty != MessageType::Reject as u8 {
        return None;
    }
    postcard::take_from_bytes::<u16>(rest).ok().map(|(v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::icmp::IcmpWitness;
    use crate::msg::*;
    use crate::plan::ProbePlan;
    use crate::vocab::{Outcome, PlannedProbe, ProbeResult, ProbeResults, Proto, ServiceProbe, ServiceResult};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// One sample of every message with the exact bytes it must encode to. A change
    /// here is a wire-format change: bump [`PROTOCOL_VERSION`].
    fn samples() -> Vec<(Message, &'static str)> {
        vec![
            (
                Message::Start(Start { version: 1, name: "pc".into(), auth: StartAuth::Pair { spake: vec![0x41, 7] } }),
                "0000000901010270630002  4107",
            ),
            (
                Message::Start(Start { version: 1, name: "pc".into(), auth: StartAuth::Pinned }),
                "00000006 01 01 02 7063 01",
            ),
            (
                Message::Reject(Reject { version: 1, code: RejectCode::WrongCode, detail: "no".into() }),
                "000000060201 02 026e6f",
            ),
            (
                Message::PairReply(PairReply {
                    offers: vec![PairOffer { spake: vec![0x42], confirm: [0xaa; 32], retired: false }],
                }),
                "000000250301 0142 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 00",
            ),
            (
                Message::PairConfirm(PairConfirm { confirm: [0x55; 32] }),
                "0000002104 5555555555555555555555555555555555555555555555555555555555555555",
            ),
            (Message::Accepted(Accepted { paired: true }), "000000020501"),
            (
                Message::Hello(Hello {
                    name: "h".into(),
                    os: "linux".into(),
                    software: "a".into(),
                    addresses: vec![
                        HelloAddress { ip: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), interface: "e".into() },
                        HelloAddress { ip: IpAddr::V6(Ipv6Addr::LOCALHOST), interface: "lo".into() },
                    ],
                }),
                "0000002706 0168 056c696e7578 0161 02 00c6336401 0165 0100000000000000000000000000000001 026c6f",
            ),
            (Message::Ping(Ping { nonce: 300 }), "0000000307ac02"),
            (Message::Pong(Ping { nonce: 1 }), "000000020801"),
            (
                Message::Plan(ProbePlan {
                    session: [0x11; 16],
                    key: [0x22; 32],
                    probes: vec![PlannedProbe {
                        id: 0,
                        proto: Proto::Udp,
                        bind: "0.0.0.0:258".parse().expect("addr"),
                        target: "198.51.100.1:258".parse().expect("addr"),
                    }],
                    services: vec![ServiceProbe {
                        id: 0,
                        proto: Proto::Tcp,
                        target: "198.51.100.1:3000".parse().expect("addr"),
                    }],
                }),
                "0000004c09 11111111111111111111111111111111 \
                 2222222222222222222222222222222222222222222222222222222222222222 \
                 01 00 01 00 00000000 8202 00 c6336401 8202 \\
                 01 00 00 00 c6336401 b817",
            ),
            (
                Message::Results(ProbeResults {
                    results: vec![ProbeResult {
                        id: 3,
                        outcome: Outcome::Unreachable,
                        rtt_us: Some(1500),
                        errno: Some(113),
                        attempts: 1,
                        proven: false,
                    }],
                    services: vec![ServiceResult {
                        id: 0,
                        outcome: Outcome::Open,
                        rtt_us: None,
                        errno: None,
                        http_status: Some(421),
                        attempts: 2,
                        proven: true,
                        source_ports: vec![40000],
                    }],
                }),
                "0000001a0a 01 03 03 01dc0b 01e201 01 00 \\
                 01 00 00 00 00 01a503 02 01 01c0b802",
            ),
            (Message::Report(ReportJson::new("{}")), "000000060b04abae0500"),
            (Message::Again(Again { round: 300 }), "000000030cac02"),
            (Message::Witness(WitnessAsk), "000000010d"),
            (
                Message::Witnessed(Some(IcmpWitness { sent: [2, 0], limited: [0, 300], global_limited: 0 })),
                "000000080e010200 00ac0200",
            ),
            (Message::Witnessed(None), "000000020e00"),
        ]
    }

    #[test]
    fn every_message_encodes_to_fixed_bytes() {
        for (msg, expected) in samples() {
            let expected: String = expected.split_whitespace().filter(|w| *w != "\\").collect();
            let bytes = encode(&msg).expect("encodes");
            assert_eq!(hex(&bytes), expected, "{msg:?}");
        }
    }

    #[test]
    fn every_message_round_trips() {
        for (msg, _) in samples() {
            let bytes = encode(&msg).expect("encodes");
            let header: [u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().expect("header");
            assert_eq!(check_length(header).expect("length ok"), bytes.len() - HEADER_LEN);
            assert_eq!(decode(&bytes[HEADER_LEN..]).expect("decodes"), msg);
        }
    }

    #[test]
    fn oversized_and_empty_lengths_are_refused_before_reading() {
        let too_big = u32::try_from(MAX_FRAME + 1).expect("fits").to_be_bytes();
        assert!(matches!(check_length(too_big), Err(CodecError::Oversized { .. })));
        assert!(matches!(check_length([0; 4]), Err(CodecError::Empty)));
        assert!(matches!(check_length([0xff; 4]), Err(CodecError::Oversized { .. })));
    }

    #[test]
    fn unknown_types_garbage_and_trailing_bytes_are_typed_errors() {
        assert!(matches!(decode(&[99]), Err(CodecError::UnknownType(99))));
        assert!(matches!(decode(&[]), Err(CodecError::Empty)));
        assert!(matches!(decode(&[1, 0xff, 0xff, 0xff, 0xff]), Err(CodecError::Malformed { .. })));
        assert!(matches!(decode(&[5, 1, 0]), Err(CodecError::Trailing { extra: 1, .. })));
        // A bool that is neither 0 nor 1.
        assert!(matches!(decode(&[5, 7]), Err(CodecError::Malformed { .. })));
    }

    #[test]
    fn version_is_readable_from_any_start_or_reject() {
        // A future version's Start whose remaining fields we cannot parse.
        assert_eq!(leading_version(&[1, 9, 0xff, 0xff]), Some(9));
        assert_eq!(leading_version(&[2, 0x80, 0x01]), Some(128));
        assert_eq!(leading_version(&[7, 1]), None);
    }

    #[test]
    fn too_large_messages_are_not_sent() {
        let msg = Message::Hello(Hello {
            name: "x".repeat(MAX_FRAME),
            os: String::new(),
            software: String::new(),
            addresses: vec![],
        });
        assert!(matches!(encode(&msg), Err(CodecError::TooLargeToSend { .. })));
    }
}
