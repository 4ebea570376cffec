//! Pairing links, `lanreach://HOST:PORT?code=CODE&id=ID`: what the agent prints and
//! shows as a QR code, and what `lanreach-peer` accepts in place of an address, so a
//! phone can scan it and paste it into Termux.

use std::fmt;
use std::str::FromStr;

use crate::code::{BadCode, PairingCode};
use crate::id::{KeyId, crockford_value};
use crate::target::{BadTarget, Target};

/// The link scheme.
pub const SCHEME: &str = "lanreach://";

/// A parsed pairing link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingLink {
    /// The agent's control address.
    pub target: Target,
    /// The pairing code.
    pub code: PairingCode,
    /// The agent's short key ID, without dashes, when the link names it.
    pub id: Option<String>,
}

impl PairingLink {
    /// The link for an agent at `host:port` with `code` and key `id`.
    pub fn new(host: &str, port: u16, code: &PairingCode, id: &KeyId) -> Self {
        let target = Target { host: host.to_ascii_lowercase(), port, port_given: true };
        PairingLink { target, code: code.clone(), id: Some(id.short().replace('-', "")) }
    }

    /// Whether `id` is the agent the link names (always true for links without an ID).
    pub fn names(&self, id: &KeyId) -> bool {
        self.id.as_deref().is_none_or(|want| id.short().replace('-', "") == want)
    }
}

impl fmt::Display for PairingLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}?code={}", self.target, self.code)?;
        if let Some(id) = &self.id {
            write!(f, "&id={id}")?;
        }
        Ok(())
    }
}

/// A link that cannot be used; [`LinkProblem`] says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a lanreach link (links look like lanreach://198.51.100.7:47800?code=7K3Q-M2XD&id=…)")]
pub struct BadLink(#[from] pub LinkProblem);

/// What is wrong with a link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkProblem {
    /// Another scheme.
    #[error("it does not start with {SCHEME}")]
    Scheme,
    /// No query part.
    #[error("no ?code=")]
    NoQuery,
    /// The address part is not `HOST[:PORT]`.
    #[error(transparent)]
    Target(#[from] BadTarget),
    /// The code is not a pairing code.
    #[error(transparent)]
    Code(#[from] BadCode),
    /// The `id` is not a short key ID.
    #[error("bad id {0:?}")]
    Id(String),
    /// A query without `code=`.
    #[error("no code")]
    NoCode,
}

impl FromStr for PairingLink {
    type Err = BadLink;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let rest = s
            .get(..SCHEME.len())
            .filter(|p| p.eq_ignore_ascii_case(SCHEME))
            .map(|_| &s[SCHEME.len()..])
            .ok_or(LinkProblem::Scheme)?;
        let (authority, query) = rest.split_once('?').ok_or(LinkProblem::NoQuery)?;
        let mut target: Target = authority.trim_end_matches('/').parse().map_err(LinkProblem::Target)?;
        // A link always names its port (the default when left out).
        target.port_given = true;
        let mut code = None;
        let mut id = None;
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("code", v)) => code = Some(v.parse::<PairingCode>().map_err(LinkProblem::Code)?),
                Some(("id", v)) => {
                    let clean: Option<String> = v
                        .chars()
                        .filter(|c| *c != '-')
                        .map(|c| crockford_value(c).map(|_| c.to_ascii_uppercase()))
                        .collect();
                    id = Some(clean.filter(|i| !i.is_empty()).ok_or_else(|| LinkProblem::Id(v.to_owned()))?);
                }
                _ => {}
            }
        }
        let code = code.ok_or(LinkProblem::NoCode)?;
        Ok(PairingLink { target, code, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_round_trip() {
        let code: PairingCode = "7K3Q-M2XD".parse().expect("code");
        let id = KeyId::from_spki(b"agent");
        for host in ["198.51.100.7", "2001:db8::7", "box.local"] {
            let link = PairingLink::new(host, 47801, &code, &id);
            let text = link.to_string();
            assert!(text.starts_with("lanreach://"), "{text}");
            let back: PairingLink = text.parse().expect("parses");
            assert_eq!(back, link);
            assert!(back.names(&id) && !back.names(&KeyId::from_spki(b"other")));
        }
        assert_eq!(
            PairingLink::new("2001:db8::7", 47800, &code, &id).to_string(),
            format!("lanreach://[2001:db8::7]:47800?code=7K3Q-M2XD&id={}", id.short().replace('-', ""))
        );
    }

    #[test]
    fn typed_links_are_forgiving_but_checked() {
        let l: PairingLink = "LANREACH://198.51.100.7/?code=7k3qm2xd".parse().expect("parses");
        assert_eq!((l.target.host.as_str(), l.target.port, l.id), ("198.51.100.7", 47800, None));
        for bad in [
            "http://x?code=7K3Q-M2XD",
            "lanreach://?code=7K3Q-M2XD",
            "lanreach://x",
            "lanreach://x?code=12",
            "lanreach://x:0?code=7K3Q-M2XD",
        ] {
            assert!(bad.parse::<PairingLink>().is_err(), "{bad}");
        }
    }
}
