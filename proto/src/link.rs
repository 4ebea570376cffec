//! Pairing links: what the agent prints and shows as a QR code, and what `lanreach-peer`
//! accepts in place of an address, so a phone can scan it and paste it into Termux.
//!
//! ```text
//! lanreach://198.51.100.1:47800?a=198.51.100.1/24,2001:db8:1::1/64&id=8A6H5HMKFSCKNQ82&code=7K3Q-M2XD
//! ```
//!
//! The authority is the address to try first and the port; `a` lists every address
//! with its prefix length, most likely reached first; `id` is the agent's short key ID;
//! `code` the pairing code, or `t` a browser token. The parameters without the scheme
//! and authority ([`LinkParams`]) are the same wherever a link goes (a `lanreach://`
//! query, the fragment of a browser link). The whole format, and why, is in
//! `docs/link-format.md`. Links of the first format (`lanreach://HOST:PORT?code=…&id=…`,
//! one address) still parse.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::code::{BadCode, PairingCode};
use crate::defaults::MAX_LINK_ADDRESSES;
use crate::id::{KeyId, crockford_value};
use crate::target::{BadTarget, Target};

/// The link scheme.
pub const SCHEME: &str = "lanreach://";

/// Shortest and longest browser token, in Crockford base32 symbols.
pub const TOKEN_SYMBOLS: std::ops::RangeInclusive<usize> = 16..=64;

/// One address of the agent in a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkAddress {
    /// An IP literal, or (only in a link's authority) a host name, lowercase.
    pub host: String,
    /// The prefix length of the address's network, when the link names it.
    pub prefix: Option<u8>,
}

impl LinkAddress {
    /// An IP address with the prefix length of its network.
    pub fn ip(ip: IpAddr, prefix: Option<u8>) -> Self {
        LinkAddress { host: ip.to_string(), prefix }
    }
}

/// The scheme of a browser link, which `lanreach-peer` accepts too.
pub const BROWSER_SCHEME: &str = "http://";

/// The parameters of a link: everything but its scheme and authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkParams {
    /// `a`: the addresses with their prefix lengths, most likely reached first (empty
    /// in links of the first format).
    pub addresses: Vec<LinkAddress>,
    /// `id`: the agent's short key ID, without dashes.
    pub id: Option<String>,
    /// `code`: the pairing code, for `lanreach-peer`.
    pub code: Option<PairingCode>,
    /// `t`: a token for the agent's browser page, in Crockford base32 (uppercase).
    pub token: Option<String>,
}

/// A parsed pairing link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingLink {
    /// The agent's addresses, most likely reached first; never empty. The first is the
    /// link's authority.
    pub addresses: Vec<LinkAddress>,
    /// The agent's control port (UDP), the same at every address.
    pub port: u16,
    /// The agent's short key ID, without dashes, when the link names it.
    pub id: Option<String>,
    /// The pairing code (a browser link may carry it too, so that one QR code serves
    /// both a phone's browser and `lanreach-peer`).
    pub code: Option<PairingCode>,
    /// The browser token.
    pub token: Option<String>,
}

impl PairingLink {
    /// The link for an agent at `addresses` (most likely reached first; at most
    /// [`MAX_LINK_ADDRESSES`] are kept) on `port`, with `code` and key `id`. `None`
    /// without an address.
    pub fn new(addresses: &[(IpAddr, Option<u8>)], port: u16, code: &PairingCode, id: &KeyId) -> Option<Self> {
        let mut kept: Vec<LinkAddress> = Vec::new();
        for (ip, prefix) in addresses {
            let address = LinkAddress::ip(ip.to_canonical(), *prefix);
            if kept.len() < MAX_LINK_ADDRESSES && !kept.iter().any(|k| k.host == address.host) {
                kept.push(address);
            }
        }
        (!kept.is_empty()).then(|| PairingLink {
            addresses: kept,
            port,
            id: Some(id.short().replace('-', "")),
            code: Some(code.clone()),
            token: None,
        })
    }

    /// The browser link of this link's agent: `http://HOST:PORT/#` and the parameters
    /// with the browser `token` (and the code, so that `lanreach-peer` accepts the same
    /// link). `HOST` is [`browser_host`]'s choice; the page is served on TCP at the
    /// control channel's port number.
    pub fn browser(&self, token: &str) -> String {
        let host = browser_host(&self.addresses).unwrap_or_default();
        let authority = Target { host: host.to_owned(), port: self.port, port_given: true };
        let params = LinkParams { token: Some(token.to_owned()), ..self.params() };
        format!("{BROWSER_SCHEME}{authority}/#{params}")
    }

    /// Whether `id` is the agent the link names (always true for links without an ID).
    pub fn names(&self, id: &KeyId) -> bool {
        self.id.as_deref().is_none_or(|want| id.short().replace('-', "") == want)
    }

    /// The pairing code, when the link carries one.
    pub fn code(&self) -> Option<&PairingCode> {
        self.code.as_ref()
    }

    /// Each address with the port, in the link's order.
    pub fn targets(&self) -> Vec<Target> {
        self.addresses.iter().map(|a| Target { host: a.host.clone(), port: self.port, port_given: true }).collect()
    }

    /// The parameters, as a query or a fragment carries them.
    pub fn params(&self) -> LinkParams {
        // A single address without a prefix is all in the authority (the first format).
        let addresses = match self.addresses.as_slice() {
            [only] if only.prefix.is_none() => Vec::new(),
            all => all.to_vec(),
        };
        LinkParams { addresses, id: self.id.clone(), code: self.code.clone(), token: self.token.clone() }
    }
}

/// The address a browser link names: the first private one (RFC 1918, 100.64/10, an IPv6
/// ULA, or the documentation ranges that stand in for a LAN in tests), IPv4 first, else
/// the first. Chrome's Local Network Access blocks a page on a public address (a global
/// IPv6 one) from fetching private addresses over http, so the page must come from a
/// private one where the agent has one.
pub fn browser_host(addresses: &[LinkAddress]) -> Option<&str> {
    let ips: Vec<(usize, IpAddr)> =
        addresses.iter().enumerate().filter_map(|(i, a)| a.host.parse::<IpAddr>().ok().map(|ip| (i, ip))).collect();
    let private = |v4: bool| {
        ips.iter().find(|(_, ip)| ip.is_ipv4() == v4 && crate::addr::scope(*ip) == crate::addr::Scope::Private)
    };
    let chosen = private(true).or_else(|| private(false)).map(|(i, _)| *i).unwrap_or(0);
    addresses.get(chosen).map(|a| a.host.as_str())
}

impl fmt::Display for LinkAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)?;
        match self.prefix {
            Some(p) => write!(f, "/{p}"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for LinkParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.addresses.is_empty() {
            let list: Vec<String> = self.addresses.iter().map(ToString::to_string).collect();
            parts.push(format!("a={}", list.join(",")));
        }
        if let Some(id) = &self.id {
            parts.push(format!("id={id}"));
        }
        if let Some(token) = &self.token {
            parts.push(format!("t={token}"));
        }
        if let Some(code) = &self.code {
            parts.push(format!("code={code}"));
        }
        f.write_str(&parts.join("&"))
    }
}

impl fmt::Display for PairingLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.addresses.first().map(|a| a.host.as_str()).unwrap_or_default();
        let authority = Target { host: first.to_owned(), port: self.port, port_given: true };
        write!(f, "{SCHEME}{authority}?{}", self.params())
    }
}

/// A link that cannot be used; [`LinkProblem`] says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a lanreach link (links look like lanreach://198.51.100.7:47800?a=…&id=…&code=7K3Q-M2XD)")]
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
    /// An entry of `a` is not `IP` or `IP/PREFIX`.
    #[error("bad address {0:?} (addresses look like 198.51.100.7/24 or 2001:db8::7/64)")]
    Address(String),
    /// `a` lists more addresses than a peer dials.
    #[error("{0} addresses; a link names at most {MAX_LINK_ADDRESSES}")]
    TooManyAddresses(usize),
    /// The `t` is not a browser token.
    #[error("bad token")]
    Token,
    /// A browser link without a code: for the browser only.
    #[error(
        "it is a link for a web browser only (it has no pairing code): open it in a browser, or use the code the agent prints"
    )]
    BrowserOnly,
    /// A query without `code=` (or `t=`).
    #[error("no code (typed into a shell without quotes, a link is cut at the first &: put it in single quotes)")]
    NoCode,
}

impl FromStr for LinkParams {
    type Err = LinkProblem;

    /// Parses `key=value` pairs joined by `&`; unknown keys are ignored, so that later
    /// fields do not break older readers.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (mut addresses, mut id, mut code, mut token) = (Vec::new(), None, None, None);
        for pair in s.split('&') {
            match pair.split_once('=') {
                Some(("a", v)) => addresses = parse_addresses(v)?,
                Some(("code", v)) => code = Some(v.parse::<PairingCode>()?),
                Some(("t", v)) => token = Some(parse_token(v)?),
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
        if code.is_none() && token.is_none() {
            return Err(LinkProblem::NoCode);
        }
        Ok(LinkParams { addresses, id, code, token })
    }
}

fn parse_addresses(list: &str) -> Result<Vec<LinkAddress>, LinkProblem> {
    let mut out: Vec<LinkAddress> = Vec::new();
    for entry in list.split(',').filter(|e| !e.is_empty()) {
        let bad = || LinkProblem::Address(entry.to_owned());
        let (ip, prefix) = match entry.split_once('/') {
            Some((ip, p)) => (ip, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (entry, None),
        };
        let ip: IpAddr = ip.trim_start_matches('[').trim_end_matches(']').parse().map_err(|_| bad())?;
        let longest = if ip.is_ipv4() { 32 } else { 128 };
        if prefix.is_some_and(|p| p > longest) {
            return Err(bad());
        }
        let address = LinkAddress::ip(ip.to_canonical(), prefix);
        if !out.iter().any(|o| o.host == address.host) {
            out.push(address);
        }
    }
    if out.len() > MAX_LINK_ADDRESSES {
        return Err(LinkProblem::TooManyAddresses(out.len()));
    }
    Ok(out)
}

fn parse_token(v: &str) -> Result<String, LinkProblem> {
    let token: Option<String> = v.chars().map(|c| crockford_value(c).map(|_| c.to_ascii_uppercase())).collect();
    token.filter(|t| TOKEN_SYMBOLS.contains(&t.len())).ok_or(LinkProblem::Token)
}

impl FromStr for PairingLink {
    type Err = BadLink;

    /// Parses a `lanreach://HOST[:PORT]?PARAMS` link, or a browser link
    /// (`http://HOST[:PORT]/#PARAMS`) that carries a code.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let after =
            |scheme: &str| s.get(..scheme.len()).filter(|p| p.eq_ignore_ascii_case(scheme)).map(|_| &s[scheme.len()..]);
        let (authority, query, browser) = match (after(SCHEME), after(BROWSER_SCHEME)) {
            (Some(rest), _) => {
                let (authority, query) = rest.split_once('?').ok_or(LinkProblem::NoQuery)?;
                (authority, query, false)
            }
            (None, Some(rest)) => {
                let (authority, fragment) = rest.split_once('#').ok_or(LinkProblem::NoQuery)?;
                (authority, fragment, true)
            }
            (None, None) => return Err(LinkProblem::Scheme.into()),
        };
        let target: Target = authority.trim_end_matches('/').parse().map_err(LinkProblem::Target)?;
        let params: LinkParams = query.parse()?;
        if browser && params.code.is_none() {
            return Err(LinkProblem::BrowserOnly.into());
        }
        // The authority is the first address; a writer repeats it at the head of `a`.
        let mut addresses = params.addresses;
        let first = LinkAddress { host: target.host.clone(), prefix: None };
        match addresses.iter().position(|a| a.host == first.host) {
            Some(_) => {}
            None if addresses.len() < MAX_LINK_ADDRESSES => addresses.insert(0, first),
            None => return Err(LinkProblem::TooManyAddresses(addresses.len() + 1).into()),
        }
        // A link always names its port (the default when left out).
        Ok(PairingLink { addresses, port: target.port, id: params.id, code: params.code, token: params.token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code() -> PairingCode {
        "7K3Q-M2XD".parse().expect("code")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn links_with_several_addresses_round_trip() {
        let id = KeyId::from_spki(b"agent");
        let short = id.short().replace('-', "");
        let addrs = [(ip("198.51.100.1"), Some(24)), (ip("2001:db8:1::1"), Some(64)), (ip("203.0.113.1"), None)];
        let link = PairingLink::new(&addrs, 47800, &code(), &id).expect("link");
        let text = link.to_string();
        assert_eq!(
            text,
            format!(
                "lanreach://198.51.100.1:47800?a=198.51.100.1/24,2001:db8:1::1/64,203.0.113.1&id={short}&code=7K3Q-M2XD"
            )
        );
        let back: PairingLink = text.parse().expect("parses");
        assert_eq!(back, link);
        assert!(back.names(&id) && !back.names(&KeyId::from_spki(b"other")));
        let targets: Vec<String> = back.targets().iter().map(ToString::to_string).collect();
        assert_eq!(targets, ["198.51.100.1:47800", "[2001:db8:1::1]:47800", "203.0.113.1:47800"]);
        assert_eq!(back.code(), Some(&code()));
    }

    #[test]
    fn a_link_names_at_most_four_addresses_each_once() {
        let id = KeyId::from_spki(b"agent");
        let many: Vec<(IpAddr, Option<u8>)> =
            (1..=6).map(|i| (ip(&format!("198.51.100.{i}")), Some(24))).chain([(ip("198.51.100.1"), None)]).collect();
        let link = PairingLink::new(&many, 47800, &code(), &id).expect("link");
        assert_eq!(link.addresses.len(), MAX_LINK_ADDRESSES);
        assert!(PairingLink::new(&[], 47800, &code(), &id).is_none());
        let five =
            "lanreach://198.51.100.1?a=198.51.100.1,198.51.100.2,198.51.100.3,198.51.100.4,198.51.100.5&code=7K3QM2XD";
        assert_eq!(five.parse::<PairingLink>(), Err(BadLink(LinkProblem::TooManyAddresses(5))));
    }

    #[test]
    fn links_of_the_first_format_still_parse() {
        let id = KeyId::from_spki(b"agent");
        let short = id.short().replace('-', "");
        for (text, host, port) in [
            (format!("lanreach://198.51.100.7:47801?code=7K3Q-M2XD&id={short}"), "198.51.100.7", 47801),
            (format!("lanreach://[2001:db8::7]:47800?code=7K3Q-M2XD&id={short}"), "2001:db8::7", 47800),
            ("lanreach://box.local:47800?code=7K3Q-M2XD".to_owned(), "box.local", 47800),
        ] {
            let link: PairingLink = text.parse().expect("parses");
            assert_eq!(link.addresses, [LinkAddress { host: host.into(), prefix: None }], "{text}");
            assert_eq!((link.port, link.code()), (port, Some(&code())));
            // Written again, a single address without a prefix keeps the first format.
            let again = link.to_string();
            assert!(!again.contains("a=") && again.starts_with(&text[..text.find('?').expect("query")]), "{again}");
            assert_eq!(again.parse::<PairingLink>().as_ref(), Ok(&link));
        }
    }

    #[test]
    fn an_authority_missing_from_the_list_comes_first() {
        let link: PairingLink =
            "lanreach://198.51.100.9:5000?a=2001:db8::7/64,[2001:db8::8]&code=7K3QM2XD".parse().expect("parses");
        let hosts: Vec<&str> = link.addresses.iter().map(|a| a.host.as_str()).collect();
        assert_eq!(hosts, ["198.51.100.9", "2001:db8::7", "2001:db8::8"]);
        assert_eq!(link.port, 5000);
    }

    #[test]
    fn browser_tokens_and_unknown_keys() {
        let params: LinkParams = "a=198.51.100.1/24&id=ABCD&t=0123456789abcdefgh&later=1".parse().expect("parses");
        assert_eq!(params.token.as_deref(), Some("0123456789ABCDEFGH"));
        assert_eq!(params.to_string(), "a=198.51.100.1/24&id=ABCD&t=0123456789ABCDEFGH");
        assert_eq!("t=SHORT".parse::<LinkParams>(), Err(LinkProblem::Token));
        let both: LinkParams = "code=7K3QM2XD&t=0123456789ABCDEFGH".parse().expect("both");
        assert_eq!((both.code, both.token.as_deref()), (Some(code()), Some("0123456789ABCDEFGH")));
    }

    #[test]
    fn one_browser_link_serves_the_browser_and_the_peer() {
        let id = KeyId::from_spki(b"agent");
        let short = id.short().replace('-', "");
        let addrs = [(ip("198.51.100.1"), Some(24)), (ip("2001:db8:1::1"), Some(64))];
        let link = PairingLink::new(&addrs, 47800, &code(), &id).expect("link");
        let url = link.browser("0123456789ABCDEFGHJK");
        assert_eq!(
            url,
            format!(
                "http://198.51.100.1:47800/#a=198.51.100.1/24,2001:db8:1::1/64&id={short}&t=0123456789ABCDEFGHJK&code=7K3Q-M2XD"
            )
        );
        let back: PairingLink = url.parse().expect("lanreach-peer accepts it");
        assert_eq!((back.code(), back.port, back.addresses.len()), (Some(&code()), 47800, 2));
        let browser_only = "http://198.51.100.1:47800/#t=0123456789ABCDEFGHJK";
        assert_eq!(browser_only.parse::<PairingLink>(), Err(BadLink(LinkProblem::BrowserOnly)));
    }

    #[test]
    fn the_browser_link_names_a_private_address_ipv4_first() {
        let at = |list: &[&str]| -> Option<String> {
            let addresses: Vec<LinkAddress> = list.iter().map(|s| LinkAddress::ip(ip(s), None)).collect();
            browser_host(&addresses).map(str::to_owned)
        };
        // A global IPv6 address first (the default route's interface), a private IPv4 after.
        assert_eq!(at(&["2a00:1450::1", "192.168.1.20"]).as_deref(), Some("192.168.1.20"));
        // No private IPv4: a ULA before a global address.
        assert_eq!(at(&["2a00:1450::1", "fd12:3456::20"]).as_deref(), Some("fd12:3456::20"));
        // A public IPv4 and a private one: the private one.
        assert_eq!(at(&["8.8.4.4", "10.0.0.5"]).as_deref(), Some("10.0.0.5"));
        // Nothing private: the first.
        assert_eq!(at(&["2a00:1450::1", "8.8.4.4"]).as_deref(), Some("2a00:1450::1"));
        assert_eq!(at(&[]), None);
    }

    #[test]
    fn typed_links_are_forgiving_but_checked() {
        let l: PairingLink = "LANREACH://198.51.100.7/?code=7k3qm2xd".parse().expect("parses");
        assert_eq!((l.addresses[0].host.as_str(), l.port, l.id), ("198.51.100.7", 47800, None));
        for bad in [
            "http://x?code=7K3Q-M2XD",
            "ftp://x/#code=7K3Q-M2XD",
            "lanreach://?code=7K3Q-M2XD",
            "lanreach://x",
            "lanreach://x?code=12",
            "lanreach://x:0?code=7K3Q-M2XD",
            "lanreach://x?a=198.51.100.1/33&code=7K3Q-M2XD",
            "lanreach://x?a=box.local&code=7K3Q-M2XD",
            "lanreach://x?a=fe80::1%25eth0&code=7K3Q-M2XD",
        ] {
            assert!(bad.parse::<PairingLink>().is_err(), "{bad}");
        }
    }
}
