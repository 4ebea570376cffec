//! The peers this agent trusts: written after a successful pairing, read on every
//! pinned connection, listed and pruned with `lanreach-agent peers`.

use std::net::SocketAddr;

use lanreach_proto::KeyId;
use lanreach_proto::endpoint::store::{self, StateFile};
use serde::{Deserialize, Serialize};

/// File name inside the state directory.
pub const FILE: &str = "trusted_peers.json";

/// Why `peers remove` removed nothing.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    /// No trusted peer has that name or ID.
    #[error("no trusted peer matches {0:?}; see lanreach-agent peers")]
    NoSuchPeer(String),
    /// Several peers share the name: the user must say which, by ID.
    #[error("{} trusted peers are named {name:?}; remove one by its ID: {}", ids.len(), ids.join(", "))]
    Ambiguous {
        /// The name given.
        name: String,
        /// The IDs of the peers with that name.
        ids: Vec<String>,
    },
}

/// One trusted peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedPeer {
    /// The peer's key ID.
    pub id: KeyId,
    /// The name it gave when it paired (sanitised).
    pub name: String,
    /// When it paired (seconds since the Unix epoch).
    pub paired_at: u64,
    /// The address it paired from.
    pub address: String,
}

/// The trusted-peers file.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TrustedPeers {
    /// Every trusted peer.
    pub peers: Vec<TrustedPeer>,
}

impl StateFile for TrustedPeers {
    const FILE: &'static str = FILE;
}

impl TrustedPeers {
    /// Whether `id` is trusted.
    pub fn contains(&self, id: &KeyId) -> bool {
        self.peers.iter().any(|p| p.id == *id)
    }

    /// Trusts `id` (replacing an older entry with the same key).
    pub fn add(&mut self, id: KeyId, name: &str, from: SocketAddr) {
        self.peers.retain(|p| p.id != id);
        self.peers.push(TrustedPeer {
            id,
            name: name.to_owned(),
            paired_at: store::now_unix(),
            address: from.to_string(),
        });
    }

    /// Removes the one peer whose ID matches `text` (see [`KeyId::matches`]) or whose
    /// name equals it, and returns it. Several matches remove nothing: names are not
    /// unique (two phones called "phone"), so the user must name one by its ID.
    pub fn remove(&mut self, text: &str) -> Result<TrustedPeer, RemoveError> {
        let matching: Vec<usize> =
            (0..self.peers.len()).filter(|&i| self.peers[i].id.matches(text) || self.peers[i].name == text).collect();
        match matching.as_slice() {
            [] => Err(RemoveError::NoSuchPeer(text.to_owned())),
            [one] => Ok(self.peers.remove(*one)),
            many => Err(RemoveError::Ambiguous {
                name: text.to_owned(),
                ids: many.iter().map(|&i| self.peers[i].id.short()).collect(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_persist_and_remove_by_short_id_or_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut peers = TrustedPeers::default();
        let a = KeyId::from_spki(b"a");
        let b = KeyId::from_spki(b"b");
        let from: SocketAddr = "198.51.100.2:5000".parse().expect("addr");
        peers.add(a, "phone", from);
        peers.add(b, "laptop", from);
        peers.add(a, "phone", from);
        assert_eq!(peers.peers.len(), 2);
        peers.save(dir.path()).expect("save");
        let mut loaded = TrustedPeers::load(dir.path()).expect("load");
        assert!(loaded.contains(&a) && loaded.contains(&b));
        let gone = loaded.remove(&a.short()[..9]).expect("by ID");
        assert_eq!(gone.id, a);
        assert_eq!(loaded.remove("laptop").expect("by name").id, b);
        assert!(loaded.peers.is_empty());
        assert!(matches!(loaded.remove("laptop"), Err(RemoveError::NoSuchPeer(_))));
    }

    #[test]
    fn a_shared_name_removes_nothing_and_lists_the_ids() {
        let mut peers = TrustedPeers::default();
        let (a, b) = (KeyId::from_spki(b"a"), KeyId::from_spki(b"b"));
        let from: SocketAddr = "198.51.100.2:5000".parse().expect("addr");
        peers.add(a, "phone", from);
        peers.add(b, "phone", from);
        let err = peers.remove("phone").expect_err("ambiguous");
        let text = err.to_string();
        assert!(text.contains(&a.short()) && text.contains(&b.short()) && text.contains("by its ID"), "{text}");
        assert_eq!(peers.peers.len(), 2, "nothing removed");
        assert_eq!(peers.remove(&b.short()).expect("by ID").id, b);
    }
}
