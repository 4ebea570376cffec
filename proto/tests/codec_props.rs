//! Property tests of the framing codec: whatever bytes the other side sends, decoding
//! returns a message or a typed [`CodecError`], never a panic; and every message that
//! decodes encodes again to the same message.
//!
//! Random bytes rarely get past the first fields of a postcard body, so besides plain
//! random input the tests feed every known type byte with a random body, and mutate
//! valid frames of the deepest messages (plan, results, hello, pairing).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lanreach_proto::codec::{self, CodecError, HEADER_LEN, MAX_FRAME};
use lanreach_proto::defaults::PROTOCOL_VERSION;
use lanreach_proto::msg::*;
use lanreach_proto::plan::ProbePlan;
use lanreach_proto::vocab::{Outcome, PlannedProbe, ProbeResult, ProbeResults, Proto, ServiceProbe, ServiceResult};
use proptest::prelude::*;

/// Highest type number this version knows (`Report`).
const LAST_TYPE: u8 = MessageType::Report as u8;

/// Decodes `body`; when it is a message, checks that it survives encode → check_length
/// → decode unchanged and carries the announced type.
fn decode_and_round_trip(body: &[u8]) -> Result<Message, CodecError> {
    let decoded = codec::decode(body);
    if let Ok(msg) = &decoded {
        assert_eq!(Some(msg.message_type() as u8), body.first().copied(), "type byte kept");
        let frame = codec::encode(msg).expect("a decoded message encodes again");
        let header: [u8; HEADER_LEN] = frame[..HEADER_LEN].try_into().expect("header");
        assert_eq!(codec::check_length(header).expect("own length accepted"), frame.len() - HEADER_LEN);
        let again = codec::decode(&frame[HEADER_LEN..]).expect("re-encoded message decodes");
        assert_eq!(&again, msg);
    }
    decoded
}

/// Frame bodies (without the length prefix) of messages with nested fields to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let sock = |s: &str| s.parse().expect("socket address");
    let messages = [
        Message::Start(Start {
            version: PROTOCOL_VERSION,
            name: "pc".into(),
            auth: StartAuth::Pair { spake: vec![7; 33] },
        }),
        Message::Reject(Reject { version: PROTOCOL_VERSION, code: RejectCode::Other(77), detail: "no".into() }),
        Message::PairReply(PairReply {
            offers: vec![
                PairOffer { spake: vec![0x42; 33], confirm: [0xaa; 32], retired: false },
                PairOffer { spake: vec![0x43; 33], confirm: [0xbb; 32], retired: true },
            ],
        }),
        Message::Hello(Hello {
            name: "h".into(),
            os: "linux x86_64".into(),
            software: "lanreach-agent 0.1.0".into(),
            addresses: vec![
                HelloAddress { ip: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), interface: "eth0".into() },
                HelloAddress { ip: IpAddr::V6(Ipv6Addr::LOCALHOST), interface: "lo".into() },
            ],
        }),
        Message::Plan(ProbePlan {
            session: [0x11; 16],
            key: [0x22; 32],
            probes: vec![
                PlannedProbe { id: 0, proto: Proto::Udp, bind: sock("0.0.0.0:258"), target: sock("198.51.100.1:258") },
                PlannedProbe {
                    id: 1,
                    proto: Proto::Tcp,
                    bind: sock("[::]:40000"),
                    target: sock("[2001:db8::1]:40000"),
                },
            ],
            services: vec![ServiceProbe { id: 0, proto: Proto::Tcp, target: sock("198.51.100.1:3000") }],
        }),
        Message::Results(ProbeResults {
            results: vec![ProbeResult {
                id: 3,
                outcome: Outcome::Unreachable,
                rtt_us: Some(1500),
                errno: Some(113),
                attempts: 2,
                proven: false,
            }],
            services: vec![ServiceResult {
                id: 0,
                outcome: Outcome::Open,
                rtt_us: None,
                errno: Some(-1),
                http_status: Some(421),
                attempts: 2,
                proven: false,
                source_ports: vec![40000, 40001],
            }],
        }),
        Message::Report(ReportJson::new(r#"{"schema":"lanreach.report/1"}"#)),
        Message::Witnessed(Some(lanreach_proto::icmp::IcmpWitness {
            sent: [3, 1],
            limited: [0, 2],
            global_limited: 1,
        })),
    ];
    messages.iter().map(|m| codec::encode(m).expect("seed encodes")[HEADER_LEN..].to_vec()).collect()
}

/// A seed frame body with a few bytes overwritten, then kept, cut short or extended.
fn mutated_seed() -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds();
    let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4);
    let tail = prop::collection::vec(any::<u8>(), 1..8);
    (0..seeds.len(), edits, 0..3u8, any::<prop::sample::Index>(), tail).prop_map(
        move |(seed, edits, shape, cut, tail)| {
            let mut body = seeds[seed].clone();
            // The type byte stays: the point is to reach deep into a known body.
            for (at, byte) in edits {
                let i = 1 + at.index(body.len() - 1);
                body[i] = byte;
            }
            match shape {
                0 => {}
                1 => body.truncate(1 + cut.index(body.len() - 1)),
                _ => body.extend_from_slice(&tail),
            }
            body
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn any_bytes_decode_to_a_message_or_a_typed_error(body in prop::collection::vec(any::<u8>(), 0..512)) {
        match decode_and_round_trip(&body) {
            Ok(_) => {}
            Err(CodecError::Empty) => prop_assert!(body.is_empty()),
            Err(CodecError::UnknownType(t)) => {
                prop_assert_eq!(Some(t), body.first().copied());
                prop_assert!(MessageType::from_u8(t).is_none());
            }
            Err(CodecError::Malformed { kind, .. } | CodecError::Trailing { kind, .. }) => {
                prop_assert_eq!(Some(kind as u8), body.first().copied());
            }
            Err(e @ (CodecError::Oversized { .. } | CodecError::TooLargeToSend { .. } | CodecError::Encode(_))) => {
                prop_assert!(false, "decoding gave an encoder or length error: {e}");
            }
        }
    }

    #[test]
    fn known_types_with_random_bodies_fail_only_as_that_type(
        ty in 1..=LAST_TYPE,
        rest in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut body = vec![ty];
        body.extend_from_slice(&rest);
        match decode_and_round_trip(&body) {
            Ok(msg) => prop_assert_eq!(msg.message_type() as u8, ty),
            Err(CodecError::Malformed { kind, .. } | CodecError::Trailing { kind, .. }) => {
                prop_assert_eq!(kind as u8, ty);
            }
            Err(e) => prop_assert!(false, "type {ty}: unexpected error {e}"),
        }
        // Never panics; a version is only read from Start and Reject.
        if codec::leading_version(&body).is_some() {
            prop_assert!(ty == MessageType::Start as u8 || ty == MessageType::Reject as u8);
        }
    }

    #[test]
    fn mutated_valid_frames_decode_or_fail_typed(body in mutated_seed()) {
        match decode_and_round_trip(&body) {
            Ok(_) | Err(CodecError::Malformed { .. } | CodecError::Trailing { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
        let _ = codec::leading_version(&body);
    }

    #[test]
    fn length_prefix_is_accepted_exactly_up_to_the_limit(header in any::<[u8; HEADER_LEN]>()) {
        let len = u32::from_be_bytes(header) as usize;
        match codec::check_length(header) {
            Ok(n) => prop_assert!(n == len && (1..=MAX_FRAME).contains(&n)),
            Err(CodecError::Empty) => prop_assert_eq!(len, 0),
            Err(CodecError::Oversized { len: announced, max }) => {
                prop_assert!(announced == len && len > MAX_FRAME && max == MAX_FRAME);
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    #[test]
    fn leading_version_never_panics(body in prop::collection::vec(any::<u8>(), 0..64)) {
        if codec::leading_version(&body).is_some() {
            prop_assert!(matches!(body.first(), Some(1 | 2)));
        }
    }

    #[test]
    fn version_is_read_from_a_start_or_reject_whatever_follows(
        version in any::<u16>(),
        reject in any::<bool>(),
        junk in prop::collection::vec(any::<u8>(), 0..32),
    ) {
        let msg = if reject {
            Message::Reject(Reject { version, code: RejectCode::Busy, detail: String::new() })
        } else {
            Message::Start(Start { version, name: String::new(), auth: StartAuth::Pinned })
        };
        let frame = codec::encode(&msg).expect("encodes");
        // Keep the type byte and the version, replace the rest: a future version's body.
        let version_end = HEADER_LEN + 1 + frame[HEADER_LEN + 1..].iter().position(|b| b & 0x80 == 0).expect("varint end") + 1;
        let mut body = frame[HEADER_LEN..version_end].to_vec();
        body.extend_from_slice(&junk);
        prop_assert_eq!(codec::leading_version(&body), Some(version));
    }
}
