//! The peers this agent trusts: written after a successful pairing, read on every
//! pinned connection, listed and pruned with `lanreach-agent peers`.

use std::net::SocketAddr;

use lanreach_proto::KeyId;
use lanreach_proto::endpoint::store::{self, StateFile};
use serde::{Deserialize, Serialize};

/// File name inside the state directory.
pub const FILE: &str = "trusted_peers.json";

/// `peers remove` named no trusted peer.
#[derive(Debug, thiserror::Error)]
#[error("no trusted peer matches {0:?}; see lanreach-agent peers")]
pub struct NoSuchPeer(pub String);

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

    /// Removes every peer whose ID matches `text` (see [`KeyId::matches`]) or whose
    /// name equals it; returns the removed peers.
    pub fn remove(&mut self, text: &str) -> Vec<TrustedPeer> {
        let (gone, kept) = self.peers.drain(..).partition(|p| p.id.matches(text) || p.name == text);
        self.peers = kept;
        gone
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
        let gone = loaded.remove(&a.short()[..9]);
        assert_eq!(gone.len(), 1);
        assert_eq!(loaded.remove("laptop").len(), 1);
        assert!(loaded.peers.is_empty());
    }
}
