//! `HOST[:PORT]` as typed on the command line, checked and normalised.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::defaults::DEFAULT_CONTROL_PORT;

/// An agent address as the user names it: host (IP literal or name) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// IP literal or host name (lowercase).
    pub host: String,
    /// UDP port of the agent's control channel.
    pub port: u16,
    /// Whether the port was typed (for matching `--forget HOST`).
    pub port_given: bool,
}

/// A `HOST[:PORT]` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{given:?} is not HOST[:PORT] ({why}); examples: 198.51.100.7, 198.51.100.7:47800, [2001:db8::7]:47800, myhost.local"
)]
pub struct BadTarget {
    given: String,
    why: &'static str,
}

impl FromStr for Target {
    type Err = BadTarget;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| BadTarget { given: s.to_owned(), why };
        let s = s.trim();
        if s.is_empty() {
            return Err(bad("empty"));
        }
        let port_of = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad("bad port"));
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            match after {
                "" => (host, None),
                _ => (host, Some(port_of(after.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?)?)),
            }
        } else if s.matches(':').count() > 1 {
            (s, None) // a bare IPv6 address
        } else if let Some((host, port)) = s.split_once(':') {
            (host, Some(port_of(port)?))
        } else {
            (s, None)
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let is_ip = host.parse::<IpAddr>().is_ok();
        if !is_ip && (host.contains(':') || !host.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))) {
            return Err(bad("not an IP address or host name"));
        }
        if !is_ip && looks_numeric(host) {
            // Name resolution would take `198.51.100` as 198.51.0.100 and `300.1.1.1` as
            // a name: a typo must not dial some other address.
            return Err(bad("not a standard IPv4 address: four numbers 0-255 separated by dots"));
        }
        Ok(Target {
            host: host.to_ascii_lowercase(),
            port: port.unwrap_or(DEFAULT_CONTROL_PORT),
            port_given: port.is_some(),
        })
    }
}

/// Whether `host` is numeric the way only an IP address is: its last label is a number
/// (decimal, or the legacy `0x…` hex form). No host name ends in a numeric label.
fn looks_numeric(host: &str) -> bool {
    let last = host.trim_end_matches('.').rsplit('.').next().unwrap_or("");
    let hex = last.strip_prefix("0x").or_else(|| last.strip_prefix("0X"));
    !last.is_empty()
        && (last.chars().all(|c| c.is_ascii_digit()) || hex.is_some_and(|h| h.chars().all(|c| c.is_ascii_hexdigit())))
}

impl Target {
    /// Whether this target names `other`: same host, and same port when a port was typed.
    pub fn names(&self, other: &Target) -> bool {
        self.host == other.host && (!self.port_given || self.port == other.port)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> String {
        s.parse::<Target>().expect("target").to_string()
    }

    #[test]
    fn forms_people_type() {
        assert_eq!(t("198.51.100.7"), "198.51.100.7:47800");
        assert_eq!(t("198.51.100.7:5000"), "198.51.100.7:5000");
        assert_eq!(t("2001:db8::7"), "[2001:db8::7]:47800");
        assert_eq!(t("[2001:db8::7]"), "[2001:db8::7]:47800");
        assert_eq!(t("[2001:db8::7]:5000"), "[2001:db8::7]:5000");
        assert_eq!(t("MyHost.local"), "myhost.local:47800");
    }

    #[test]
    fn mistakes_are_named() {
        for bad in ["", "host:0", "host:99999", "[::1", "[::1]x", "a b", ":5000"] {
            assert!(bad.parse::<Target>().is_err(), "{bad:?}");
        }
        // Legacy and mistyped IPv4 forms are usage errors, never dialled elsewhere.
        for typo in ["198.51.100", "300.1.1.1", "198.51.100.7.", "3325256711", "0x7f.1", "198.51.100.07x"] {
            let err = typo.parse::<Target>();
            if typo == "198.51.100.07x" {
                assert!(err.is_ok(), "a name whose last label is not numeric: {err:?}");
                continue;
            }
            let err = err.expect_err(typo).to_string();
            assert!(err.contains("not a standard IPv4 address") && err.contains(typo), "{typo}: {err}");
        }
        for name in ["my-laptop.local", "host1", "1password.example", "box.lan"] {
            assert!(name.parse::<Target>().is_ok(), "{name}");
        }
    }

    #[test]
    fn names_matches_with_or_without_port() {
        let pinned: Target = "198.51.100.7:5000".parse().expect("t");
        assert!("198.51.100.7".parse::<Target>().expect("t").names(&pinned));
        assert!(!"198.51.100.7:47800".parse::<Target>().expect("t").names(&pinned));
    }
}
