//! The pairing cryptography: SPAKE2 on the code, then key confirmation bound to this
//! connection.
//!
//! Both sides feed SPAKE2 (Ed25519 group, identities `lanreach-peer` / `lanreach-agent`)
//! with the code and get a 32-byte key `K`, equal only when the codes are equal. Each
//! then proves it holds `K` with an HMAC-SHA256 over a transcript hash of:
//! the protocol version, the agent's key ID, the peer's key ID, the TLS exporter value
//! of this QUIC connection, and both SPAKE2 messages ([`Binding`] holds the first four).
//!
//! * An eavesdropper learns nothing that lets it test codes offline (SPAKE2).
//! * An active attacker gets one guess per attempt; the agent retires a code after
//!   three failures.
//! * A relay that terminates TLS has different exporter values and certificate keys on
//!   its two legs, so the MACs cannot match and both sides fail.
//! * The key IDs in the transcript bind the pairing to the TLS keys that each side
//!   then pins.

use hmac::{Hmac, Mac};
use rand::rngs::StdRng;
use rand::{CryptoRng, RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use spake2::{Ed25519Group, Identity, Password, Spake2};

use crate::code::PairingCode;
use crate::defaults::PROTOCOL_VERSION;
use crate::id::KeyId;
use crate::msg::{MAX_OFFERS, PairOffer};

/// Label of the TLS exporter value both sides mix into the transcript.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-lanreach-pairing";

const ID_PEER: &[u8] = b"lanreach-peer";
const ID_AGENT: &[u8] = b"lanreach-agent";

type HmacSha256 = Hmac<Sha256>;

/// What ties a pairing to this connection, as each side sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The agent's key ID (the server certificate's key).
    pub agent: KeyId,
    /// The peer's key ID (the client certificate's key).
    pub peer: KeyId,
    /// 32 bytes exported from this connection's TLS session under [`EXPORTER_LABEL`].
    pub exporter: [u8; 32],
}

/// Why pairing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairingError {
    /// No offer matched: the codes differ, or something relayed the connection.
    #[error("the pairing code does not match")]
    WrongCode,
    /// The code matches one the agent has retired.
    #[error("that pairing code has been retired")]
    CodeRetired,
    /// The peer's confirmation did not verify.
    #[error("the peer's key confirmation does not verify")]
    BadConfirmation,
    /// A SPAKE2 message of the wrong size or side, or an invalid point.
    #[error("malformed SPAKE2 message")]
    BadMessage(#[source] spake2::Error),
    /// An empty offer list, more than [`MAX_OFFERS`], or not exactly one live offer first.
    #[error("malformed pairing reply with {0} offers (expected one live offer, then up to 3 retired ones)")]
    BadOfferCount(usize),
}

fn transcript(binding: &Binding, peer_msg: &[u8], agent_msg: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"lanreach pairing transcript");
    h.update(PROTOCOL_VERSION.to_be_bytes());
    h.update(binding.agent.0);
    h.update(binding.peer.0);
    h.update(binding.exporter);
    for part in [peer_msg, agent_msg] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

fn mac(key: &[u8], role: &[u8], transcript: &[u8; 32]) -> HmacSha256 {
    // HMAC accepts keys of any length; this cannot fail.
    let mut m = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    m.update(role);
    m.update(transcript);
    m
}

fn confirmation(key: &[u8], role: &[u8], transcript: &[u8; 32]) -> [u8; 32] {
    mac(key, role, transcript).finalize().into_bytes().into()
}

fn verify(key: &[u8], role: &[u8], transcript: &[u8; 32], tag: &[u8; 32]) -> bool {
    // Constant-time comparison.
    mac(key, role, transcript).verify_slice(tag).is_ok()
}

/// The peer's half of a pairing.
pub struct PeerPairing {
    /// Seed of the SPAKE2 scalar, so that one message can be finished against several
    /// offers (`Spake2` is consumed by `finish`).
    seed: [u8; 32],
    password: Password,
    message: Vec<u8>,
}

impl PeerPairing {
    /// Starts pairing with `code`; send the returned SPAKE2 message in `Start`.
    pub fn start(code: &PairingCode, rng: &mut (impl RngCore + CryptoRng)) -> (Self, Vec<u8>) {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let password = Password::new(code.canonical().as_bytes());
        let (_, message) = Self::instance(&seed, &password);
        (PeerPairing { seed, password, message: message.clone() }, message)
    }

    fn instance(seed: &[u8; 32], password: &Password) -> (Spake2<Ed25519Group>, Vec<u8>) {
        Spake2::<Ed25519Group>::start_a_with_rng(
            password,
            &Identity::new(ID_PEER),
            &Identity::new(ID_AGENT),
            StdRng::from_seed(*seed),
        )
    }

    /// Checks the agent's offers. On a match with the live code, returns the peer's
    /// confirmation to send in `PairConfirm`.
    pub fn finish(self, offers: &[PairOffer], binding: &Binding) -> Result<[u8; 32], PairingError> {
        // Exactly one live offer, first: an impostor agent must not get several guesses
        // at the code from one attempt by offering several "live" codes.
        let shape_ok = offers.first().is_some_and(|o| !o.retired) && offers.iter().skip(1).all(|o| o.retired);
        if offers.is_empty() || offers.len() > MAX_OFFERS || !shape_ok {
            return Err(PairingError::BadOfferCount(offers.len()));
        }
        let mut malformed = None;
        for offer in offers {
            let (spake, _) = Self::instance(&self.seed, &self.password);
            let key = match spake.finish(&offer.spake) {
                Ok(key) => key,
                Err(e) => {
                    malformed = Some(PairingError::BadMessage(e));
                    continue;
                }
            };
            let t = transcript(binding, &self.message, &offer.spake);
            if verify(&key, b"agent", &t, &offer.confirm) {
                if offer.retired {
                    return Err(PairingError::CodeRetired);
                }
                return Ok(confirmation(&key, b"peer", &t));
            }
        }
        Err(malformed.unwrap_or(PairingError::WrongCode))
    }
}

/// The agent's half of a pairing for one code.
pub struct AgentOffer {
    key: Vec<u8>,
    transcript: [u8; 32],
}

impl AgentOffer {
    /// Answers the peer's SPAKE2 message for `code`, returning what to keep and the
    /// offer to send.
    pub fn new(
        code: &PairingCode,
        retired: bool,
        peer_message: &[u8],
        binding: &Binding,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(Self, PairOffer), PairingError> {
        let (spake, message) = Spake2::<Ed25519Group>::start_b_with_rng(
            &Password::new(code.canonical().as_bytes()),
            &Identity::new(ID_PEER),
            &Identity::new(ID_AGENT),
            rng,
        );
        let key = spake.finish(peer_message).map_err(PairingError::BadMessage)?;
        let t = transcript(binding, peer_message, &message);
        let confirm = confirmation(&key, b"agent", &t);
        Ok((AgentOffer { key, transcript: t }, PairOffer { spake: message, confirm, retired }))
    }

    /// Verifies the peer's confirmation.
    pub fn verify_peer(&self, confirm: &[u8; 32]) -> Result<(), PairingError> {
        if verify(&self.key, b"peer", &self.transcript, confirm) { Ok(()) } else { Err(PairingError::BadConfirmation) }
    }
}

/// A six-digit string both sides derive from this connection's binding, for users who
/// want to compare screens: equal on both sides of a direct connection, different
/// through a relay.
pub fn verification(binding: &Binding) -> String {
    let mut h = Sha256::new();
    h.update(b"lanreach verification");
    h.update(binding.agent.0);
    h.update(binding.peer.0);
    h.update(binding.exporter);
    let digest = h.finalize();
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 1_000_000;
    format!("{:03} {:03}", n / 1000, n % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    fn binding(exporter: u8) -> Binding {
        Binding { agent: KeyId([1; 32]), peer: KeyId([2; 32]), exporter: [exporter; 32] }
    }

    fn code(s: &str) -> PairingCode {
        s.parse().expect("code")
    }

    fn pair(
        peer_code: &str,
        live: &str,
        retired: &[&str],
        peer_b: &Binding,
        agent_b: &Binding,
    ) -> Result<(), PairingError> {
        let (peer, x) = PeerPairing::start(&code(peer_code), &mut OsRng);
        let (live_offer, first) = AgentOffer::new(&code(live), false, &x, agent_b, &mut OsRng)?;
        let mut offers = vec![first];
        for r in retired {
            offers.push(AgentOffer::new(&code(r), true, &x, agent_b, &mut OsRng)?.1);
        }
        let confirm = peer.finish(&offers, peer_b)?;
        live_offer.verify_peer(&confirm)
    }

    #[test]
    fn verification_strings_match_on_one_connection_only() {
        let v = verification(&binding(9));
        assert_eq!(v.len(), 7);
        assert_eq!(v, verification(&binding(9)));
        assert_ne!(v, verification(&binding(8)));
    }

    #[test]
    fn same_code_confirms_both_ways() {
        assert_eq!(pair("7K3Q-M2XD", "7K3Q-M2XD", &[], &binding(9), &binding(9)), Ok(()));
    }

    #[test]
    fn wrong_code_fails() {
        assert_eq!(pair("7K3Q-M2XE", "7K3Q-M2XD", &[], &binding(9), &binding(9)), Err(PairingError::WrongCode));
    }

    #[test]
    fn retired_code_is_named() {
        let r = pair("AAAA-BBBB", "7K3Q-M2XD", &["CCCC-DDDD", "AAAA-BBBB"], &binding(9), &binding(9));
        assert_eq!(r, Err(PairingError::CodeRetired));
    }

    #[test]
    fn relay_with_different_exporters_fails() {
        assert_eq!(pair("7K3Q-M2XD", "7K3Q-M2XD", &[], &binding(1), &binding(2)), Err(PairingError::WrongCode));
    }

    #[test]
    fn relay_with_its_own_keys_fails() {
        let relayed = Binding { agent: KeyId([7; 32]), ..binding(9) };
        assert_eq!(pair("7K3Q-M2XD", "7K3Q-M2XD", &[], &binding(9), &relayed), Err(PairingError::WrongCode));
    }

    #[test]
    fn forged_peer_confirmation_fails() {
        let (_, x) = PeerPairing::start(&code("7K3Q-M2XD"), &mut OsRng);
        let (offer, _) = AgentOffer::new(&code("7K3Q-M2XD"), false, &x, &binding(9), &mut OsRng).expect("offer");
        assert_eq!(offer.verify_peer(&[0; 32]), Err(PairingError::BadConfirmation));
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let e = AgentOffer::new(&code("7K3Q-M2XD"), false, b"junk", &binding(9), &mut OsRng).err();
        assert!(matches!(e, Some(PairingError::BadMessage(_))));
        let (peer, _) = PeerPairing::start(&code("7K3Q-M2XD"), &mut OsRng);
        let bad = PairOffer { spake: vec![0x42; 3], confirm: [0; 32], retired: false };
        assert!(matches!(peer.finish(&[bad], &binding(9)), Err(PairingError::BadMessage(_))));
        let (peer, _) = PeerPairing::start(&code("7K3Q-M2XD"), &mut OsRng);
        assert_eq!(peer.finish(&[], &binding(9)), Err(PairingError::BadOfferCount(0)));
    }

    #[test]
    fn an_impostor_gets_one_guess_per_attempt() {
        // Several "live" offers with different guessed codes: refused outright, even when
        // one of the guesses is right.
        let (peer, x) = PeerPairing::start(&code("7K3Q-M2XD"), &mut OsRng);
        let guesses = ["AAAA-AAAA", "7K3Q-M2XD"]
            .iter()
            .map(|g| AgentOffer::new(&code(g), false, &x, &binding(9), &mut OsRng).expect("offer").1)
            .collect::<Vec<_>>();
        assert_eq!(peer.finish(&guesses, &binding(9)), Err(PairingError::BadOfferCount(2)));
    }
}
