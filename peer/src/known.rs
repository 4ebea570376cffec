//! Agents this peer has paired with, by the address it used: the pins.

use lanreach_proto::KeyId;
use lanreach_proto::endpoint::store::{self, StateFile};
use serde::{Deserialize, Serialize};

use crate::target::Target;

/// File name inside the state directory.
pub const FILE: &str = "known_agents.json";

/// One pinned agent address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownAgent {
    /// The address as the user names it (`host:port`).
    pub address: String,
    /// The agent's key ID.
    pub id: KeyId,
    /// Its name from its Hello (sanitised).
    pub name: String,
    /// When it was pinned (seconds since the Unix epoch).
    pub paired_at: u64,
}

/// The known-agents file.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct KnownAgents {
    /// Every pin.
    pub agents: Vec<KnownAgent>,
}

impl StateFile for KnownAgents {
    const FILE: &'static str = FILE;
}

impl KnownAgents {
    /// The pin for exactly this address.
    pub fn get(&self, target: &Target) -> Option<&KnownAgent> {
        let key = target.to_string();
        self.agents.iter().find(|a| a.address == key)
    }

    /// Whether any address is pinned to `id`.
    pub fn knows(&self, id: &KeyId) -> Option<&KnownAgent> {
        self.agents.iter().find(|a| a.id == *id)
    }

    /// Pins `target` to `id`.
    pub fn pin(&mut self, target: &Target, id: KeyId, name: &str) {
        let address = target.to_string();
        self.agents.retain(|a| a.address != address);
        self.agents.push(KnownAgent { address, id, name: name.to_owned(), paired_at: store::now_unix() });
    }

    /// The pinned agents, one entry per key, each with its addresses (most recently
    /// pinned first); agents most recently paired first.
    pub fn by_agent(&self) -> Vec<Vec<&KnownAgent>> {
        let mut out: Vec<Vec<&KnownAgent>> = Vec::new();
        let mut sorted: Vec<&KnownAgent> = self.agents.iter().collect();
        sorted.sort_by_key(|a| std::cmp::Reverse(a.paired_at));
        for a in sorted {
            match out.iter_mut().find(|group| group[0].id == a.id) {
                Some(group) => group.push(a),
                None => out.push(vec![a]),
            }
        }
        out
    }

    /// Removes the pins that `target` names; returns them.
    pub fn forget(&mut self, target: &Target) -> Vec<KnownAgent> {
        let (gone, kept) =
            self.agents.drain(..).partition(|a| a.address.parse::<Target>().map(|t| target.names(&t)).unwrap_or(false));
        self.agents = kept;
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_look_up_and_forget() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut known = KnownAgents::default();
        let a: Target = "198.51.100.7".parse().expect("t");
        let b: Target = "[2001:db8::7]:5000".parse().expect("t");
        let id = KeyId::from_spki(b"agent");
        known.pin(&a, id, "host");
        known.pin(&b, id, "host");
        known.save(dir.path()).expect("save");
        let mut known = KnownAgents::load(dir.path()).expect("load");
        assert_eq!(known.get(&a).map(|k| k.id), Some(id));
        assert!(known.knows(&id).is_some());
        assert_eq!(known.by_agent().len(), 1, "one agent at two addresses");
        known.pin(&"198.51.100.8".parse().expect("t"), KeyId::from_spki(b"other"), "box2");
        assert_eq!(known.by_agent().len(), 2);
        let forgotten = known.forget(&"2001:db8::7".parse().expect("t"));
        assert_eq!(forgotten.len(), 1);
        assert!(known.get(&b).is_none() && known.get(&a).is_some());
    }
}
