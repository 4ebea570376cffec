//! The probe handshake between a peer's probe and an agent's test listener.
//!
//! The probe sends `KNOCK_MAGIC ‖ session (16) ‖ nonce (16)`; a listener that knows the
//! session answers `REPLY_MAGIC ‖ HMAC-SHA256(key, proto ‖ session ‖ nonce)`, so the
//! peer knows it reached *this* agent's listener and not some other program. Anything
//! else is closed without a reply. Both messages are [`KNOCK_LEN`] bytes, over a TCP
//! stream or in one UDP datagram.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::vocab::Proto;

/// First bytes of a probe.
pub const KNOCK_MAGIC: &[u8; 8] = b"LANRCHK1";
/// First bytes of a listener's answer.
pub const REPLY_MAGIC: &[u8; 8] = b"LANRCHR1";
/// Length of a probe and of an answer.
pub const KNOCK_LEN: usize = 40;

/// A parsed probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Knock {
    /// The session it belongs to.
    pub session: [u8; 16],
    /// Unique per probe attempt.
    pub nonce: [u8; 16],
}

impl Knock {
    /// The bytes a probe sends.
    pub fn encode(&self) -> [u8; KNOCK_LEN] {
        let mut out = [0u8; KNOCK_LEN];
        out[..8].copy_from_slice(KNOCK_MAGIC);
        out[8..24].copy_from_slice(&self.session);
        out[24..].copy_from_slice(&self.nonce);
        out
    }

    /// Parses probe bytes; `None` for anything else.
    pub fn parse(bytes: &[u8]) -> Option<Knock> {
        if bytes.len() != KNOCK_LEN || &bytes[..8] != KNOCK_MAGIC {
            return None;
        }
        let mut session = [0u8; 16];
        let mut nonce = [0u8; 16];
        session.copy_from_slice(&bytes[8..24]);
        nonce.copy_from_slice(&bytes[24..]);
        Some(Knock { session, nonce })
    }

    fn mac(&self, key: &[u8; 32], proto: Proto) -> Hmac<Sha256> {
        let mut m = match Hmac::<Sha256>::new_from_slice(key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        m.update(&[proto as u8]);
        m.update(&self.session);
        m.update(&self.nonce);
        m
    }

    /// The listener's answer to this probe.
    pub fn reply(&self, key: &[u8; 32], proto: Proto) -> [u8; KNOCK_LEN] {
        let mut out = [0u8; KNOCK_LEN];
        out[..8].copy_from_slice(REPLY_MAGIC);
        out[8..].copy_from_slice(&self.mac(key, proto).finalize().into_bytes());
        out
    }

    /// Whether `bytes` is the right answer to this probe.
    pub fn verify_reply(&self, key: &[u8; 32], proto: Proto, bytes: &[u8]) -> bool {
        bytes.len() == KNOCK_LEN && &bytes[..8] == REPLY_MAGIC && self.mac(key, proto).verify_slice(&bytes[8..]).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knock_round_trips_and_replies_verify() {
        let k = Knock { session: [1; 16], nonce: [2; 16] };
        let bytes = k.encode();
        assert_eq!(&bytes[..8], b"LANRCHK1");
        assert_eq!(Knock::parse(&bytes), Some(k));
        let key = [9; 32];
        let reply = k.reply(&key, Proto::Tcp);
        assert!(k.verify_reply(&key, Proto::Tcp, &reply));
        assert!(!k.verify_reply(&key, Proto::Udp, &reply), "the protocol is bound");
        assert!(!k.verify_reply(&[8; 32], Proto::Tcp, &reply), "another session's key");
        let other = Knock { nonce: [3; 16], ..k };
        assert!(!other.verify_reply(&key, Proto::Tcp, &reply), "a replayed answer");
    }

    #[test]
    fn anything_else_is_not_a_knock() {
        assert_eq!(Knock::parse(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(Knock::parse(&[0; KNOCK_LEN]), None);
        let mut long = Knock { session: [1; 16], nonce: [2; 16] }.encode().to_vec();
        long.push(0);
        assert_eq!(Knock::parse(&long), None);
    }
}
