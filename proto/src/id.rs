//! Key identities: the SHA-256 of a public key, with a short form people can compare.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Symbols of the short forms, in value order: Crockford's base32, which has no I, L,
/// O or U, so what is read aloud or off a screen is typed back right.
pub(crate) const SYMBOLS: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Encodes the first `symbols * 5` bits of `bytes` (most significant first) as Crockford symbols.
pub(crate) fn crockford(bytes: &[u8], symbols: usize) -> String {
    let mut out = String::with_capacity(symbols);
    for i in 0..symbols {
        let mut value = 0u8;
        for b in 0..5 {
            let bit = i * 5 + b;
            let byte = bytes.get(bit / 8).copied().unwrap_or(0);
            value = (value << 1) | ((byte >> (7 - bit % 8)) & 1);
        }
        out.push(char::from(SYMBOLS[usize::from(value)]));
    }
    out
}

/// Maps a typed character to its Crockford value, accepting the usual confusions.
pub(crate) fn crockford_value(c: char) -> Option<u8> {
    let c = match c.to_ascii_uppercase() {
        'O' => '0',
        'I' | 'L' => '1',
        c => c,
    };
    SYMBOLS.iter().position(|&s| char::from(s) == c).and_then(|p| u8::try_from(p).ok())
}

/// The identity of an agent or a peer: SHA-256 of its certificate's SubjectPublicKeyInfo.
///
/// Serialised as 64 hex digits in human-readable formats (the trust files) and as 32
/// raw bytes otherwise (the wire).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 32]);

impl Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() { s.serialize_str(&self.hex()) } else { self.0.serialize(s) }
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(d).map(KeyId)
        }
    }
}

impl KeyId {
    /// The ID of a public key given as SubjectPublicKeyInfo DER.
    pub fn from_spki(spki_der: &[u8]) -> Self {
        KeyId(Sha256::digest(spki_der).into())
    }

    /// Short human form, 80 bits in four groups: `7K3Q-M2XD-A9F4-0TRE`.
    pub fn short(&self) -> String {
        let s = crockford(&self.0, 16);
        format!("{}-{}-{}-{}", &s[0..4], &s[4..8], &s[8..12], &s[12..16])
    }

    /// Full lowercase hex, as stored in the trust files.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `text` names this ID: the full hex, or a prefix (at least 4 symbols) of
    /// the short form, dashes and case ignored.
    pub fn matches(&self, text: &str) -> bool {
        let wanted: String = text.chars().filter(|c| *c != '-' && !c.is_whitespace()).collect();
        if wanted.len() == 64 && wanted.eq_ignore_ascii_case(&self.hex()) {
            return true;
        }
        let short: String = self.short().chars().filter(|c| *c != '-').collect();
        let normalised: Option<String> =
            wanted.chars().map(|c| crockford_value(c).map(|v| char::from(SYMBOLS[usize::from(v)]))).collect();
        matches!(normalised, Some(n) if n.len() >= 4 && short.starts_with(&n))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.short())
    }
}

/// A string that is not a 64-digit hex key ID.
#[derive(Debug, thiserror::Error)]
#[error("not a key ID (expected 64 hex digits): {0:?}")]
pub struct BadKeyId(String);

impl FromStr for KeyId {
    type Err = BadKeyId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadKeyId(s.to_owned());
        if s.len() != 64 || !s.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).map_err(|_| bad())?;
        }
        Ok(KeyId(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_form_is_four_groups_of_crockford() {
        let id = KeyId([0u8; 32]);
        assert_eq!(id.short(), "0000-0000-0000-0000");
        let id = KeyId([0xff; 32]);
        assert_eq!(id.short(), "ZZZZ-ZZZZ-ZZZZ-ZZZZ");
    }

    #[test]
    fn serialises_as_hex_for_people_and_bytes_on_the_wire() {
        let id = KeyId([0xab; 32]);
        let json = serde_json::to_string(&id).expect("json");
        assert_eq!(json, format!("\"{}\"", "ab".repeat(32)));
        assert_eq!(serde_json::from_str::<KeyId>(&json).expect("parse"), id);
        assert_eq!(postcard::to_allocvec(&id).expect("postcard"), vec![0xab; 32]);
    }

    #[test]
    fn hex_round_trips() {
        let id = KeyId::from_spki(b"some key");
        assert_eq!(id.hex().parse::<KeyId>().ok(), Some(id));
        assert!("xyz".parse::<KeyId>().is_err());
    }

    #[test]
    fn matches_short_prefix_case_and_dash_insensitively() {
        let id = KeyId::from_spki(b"some key");
        let short = id.short();
        assert!(id.matches(&short));
        assert!(id.matches(&short[..4].to_lowercase()));
        assert!(id.matches(&id.hex()));
        assert!(!id.matches(&short[..3]));
        assert!(!id.matches("ZZZZ-ZZZZ") || short.starts_with("ZZZZ-ZZZZ"));
    }
}
