//! The inside facts about the user's ports: which ports were asked about (`--check`
//! parsing), the sockets listening on this machine, Docker's publications and the
//! containers that listen without one, and whether this kernel is WSL2's. Every fact is
//! about the agent's own network namespace: Docker facts only reach here when Docker's
//! engine shares it. Gathered by the agent, judged by [`crate::verdict`].

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::vocab::Proto;

/// Most ports one `--check` may name.
pub const MAX_CHECKED_PORTS: usize = 64;

/// A port the user asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CheckedPort {
    /// The port.
    pub port: u16,
    /// Its protocol (TCP unless `/udp` was given).
    pub proto: Proto,
}

impl fmt::Display for CheckedPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.proto {
            Proto::Tcp => write!(f, "{}", self.port),
            Proto::Udp => write!(f, "{}/udp", self.port),
        }
    }
}

/// A `--check` list that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--check {given:?}: {why}; give ports like 3000, 3000,8080, 3000-3010 or 53/udp")]
pub struct BadPorts {
    /// What was typed.
    pub given: String,
    /// What is wrong with it.
    pub why: PortsProblem,
}

/// What is wrong with a `--check` list. Part of [`BadPorts`]'s own message (it says
/// what the typed text lacks), not a separate cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortsProblem {
    /// A protocol other than `tcp` or `udp` after the slash.
    UnknownProtocol(String),
    /// Not a number at all.
    NotAPort(String),
    /// A number outside 1–65535.
    OutOfRange(String),
    /// A range whose end comes before its start.
    BackwardsRange(String),
    /// Nothing but commas and spaces.
    Empty,
    /// More than [`MAX_CHECKED_PORTS`].
    TooMany,
}

impl fmt::Display for PortsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortsProblem::UnknownProtocol(p) => write!(f, "unknown protocol {p:?}"),
            PortsProblem::NotAPort(n) => write!(f, "{n:?} is not a port"),
            PortsProblem::OutOfRange(n) => write!(f, "{n} is not a port: ports go from 1 to 65535"),
            PortsProblem::BackwardsRange(r) => write!(f, "{r:?} ends before it starts"),
            PortsProblem::Empty => f.write_str("no port given"),
            PortsProblem::TooMany => write!(f, "at most {MAX_CHECKED_PORTS} ports"),
        }
    }
}

/// Parses `3000`, `3000,8080`, `3000-3010`, `53/udp`, `8080/tcp`, `5000-5010/udp`.
pub fn parse_ports(text: &str) -> Result<Vec<CheckedPort>, BadPorts> {
    let bad = |why| BadPorts { given: text.to_owned(), why };
    let port_of = |n: &str| -> Result<u16, BadPorts> {
        let n = n.trim();
        match n.parse::<u64>() {
            Ok(p) if (1..=65535).contains(&p) => u16::try_from(p).map_err(|_| bad(PortsProblem::OutOfRange(n.into()))),
            Ok(_) => Err(bad(PortsProblem::OutOfRange(n.to_owned()))),
            Err(_) => Err(bad(PortsProblem::NotAPort(n.to_owned()))),
        }
    };
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (nums, proto) = match item.split_once('/') {
            Some((n, p)) if p.eq_ignore_ascii_case("tcp") => (n, Proto::Tcp),
            Some((n, p)) if p.eq_ignore_ascii_case("udp") => (n, Proto::Udp),
            Some((_, p)) => return Err(bad(PortsProblem::UnknownProtocol(p.to_owned()))),
            None => (item, Proto::Tcp),
        };
        let (first, last) = match nums.split_once('-') {
            Some((a, b)) => (port_of(a)?, port_of(b)?),
            None => {
                let p = port_of(nums)?;
                (p, p)
            }
        };
        if last < first {
            return Err(bad(PortsProblem::BackwardsRange(nums.to_owned())));
        }
        if usize::from(last - first) >= MAX_CHECKED_PORTS {
            return Err(bad(PortsProblem::TooMany));
        }
        for port in first..=last {
            let checked = CheckedPort { port, proto };
            if !out.contains(&checked) {
                out.push(checked);
            }
            if out.len() > MAX_CHECKED_PORTS {
                return Err(bad(PortsProblem::TooMany));
            }
        }
    }
    if out.is_empty() {
        return Err(bad(PortsProblem::Empty));
    }
    Ok(out)
}

/// An inside fact: a socket listening on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketFact {
    /// Protocol.
    pub proto: Proto,
    /// Bound address.
    pub bind: SocketAddr,
    /// For `[::]`: whether it refuses IPv4 (IPV6_V6ONLY), when that could be learnt.
    pub v6only: Option<bool>,
    /// Owning process, when visible (other users' processes need root).
    pub pid: Option<u32>,
    /// Owning program's name (`node`, `python3`…).
    pub program: Option<String>,
    /// Its command line, for recognising frameworks.
    pub cmdline: Option<String>,
}

impl SocketFact {
    /// Whether a connection to `ip` on this socket's port reaches this socket.
    pub fn accepts(&self, ip: IpAddr) -> bool {
        let bind = self.bind.ip();
        if bind.is_unspecified() {
            return bind.is_ipv4() == ip.is_ipv4() || (bind.is_ipv6() && self.v6only == Some(false));
        }
        bind.to_canonical() == ip.to_canonical()
    }
}

/// Docker's publication of a container port on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerPublish {
    /// Container name.
    pub container: String,
    /// Image.
    pub image: String,
    /// Host address of the binding (`0.0.0.0`, `127.0.0.1`, a specific address).
    pub host_ip: IpAddr,
    /// Host port.
    pub host_port: u16,
    /// Port inside the container.
    pub container_port: u16,
    /// Protocol.
    pub proto: Proto,
    /// Sockets listening inside the container's network namespace, when readable.
    pub inner_listeners: Option<Vec<SocketAddr>>,
}

/// A running container with a socket on the port inside its own network namespace, which
/// Docker does not publish on that port of this host: no other device can reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpublishedContainer {
    /// Container name.
    pub container: String,
    /// Image.
    pub image: String,
    /// Protocol.
    pub proto: Proto,
    /// The sockets on the port inside the container's network namespace.
    pub listeners: Vec<SocketAddr>,
    /// The compose service it belongs to (label `com.docker.compose.service`), if any.
    pub compose_service: Option<String>,
    /// Host ports where Docker does publish this container port (another port than the
    /// one checked); empty when it is not published at all.
    pub published_as: Vec<u16>,
}

/// Why a port is in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortSource {
    /// Named with `--check`: counts for the exit code.
    Check,
    /// Found listening by `--exposed`: an audit, not a requirement.
    Exposed,
}

/// The inside facts about one port, gathered by the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInput {
    /// The port.
    pub port: CheckedPort,
    /// Why it is checked.
    pub source: PortSource,
    /// Sockets listening on it.
    pub listeners: Vec<SocketFact>,
    /// Docker publications of it.
    pub docker: Vec<DockerPublish>,
    /// Running containers that listen on it inside their own network namespace, where
    /// Docker does not publish it.
    pub unpublished: Vec<UnpublishedContainer>,
    /// The HTTP status this machine gets for `GET /` with `Host: localhost`, asked
    /// only when the peer's answer was 400, 403 or 421 (to tell a Host check from a
    /// page that refuses everyone).
    pub local_http_status: Option<u16>,
}

/// Whether a kernel release string is WSL2's.
pub fn is_wsl2(kernel_release: &str) -> bool {
    let r = kernel_release.to_ascii_lowercase();
    r.contains("microsoft") && (r.contains("wsl2") || r.contains("standard"))
}

/// The inside view of UDP delivery: what this machine's connection-tracking table
/// (netfilter conntrack, in the agent's network namespace) held of UDP while the peer
/// probed. An entry is confirmed only once its first packet has passed every input
/// filter chain, so the table lists the datagrams that got through the firewall, never
/// those a rule dropped or rejected — per flow, which the namespace-wide counters of
/// `/proc/net/snmp` cannot say (the control channel's own QUIC datagrams count there
/// too). Tracking runs only while some firewall rule uses it (a stateful ruleset such as
/// ufw's, firewalld's or Docker's); the peer's knocks to the UDP test listeners, which
/// surely arrived, tell whether it does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Conntrack {
    /// Not read: no UDP port was checked.
    #[default]
    NotRead,
    /// The table could not be read: why, in words.
    Unreadable(String),
    /// The UDP entries seen while the peer probed, each in its original direction.
    Flows(Vec<UdpFlow>),
}

/// One UDP flow of the connection-tracking table, as the first datagram had it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpFlow {
    /// Its source.
    pub src: SocketAddr,
    /// Its destination (before any NAT).
    pub dst: SocketAddr,
}

/// A TCP socket owned by `program` (pid 42), for the rules' unit tests; a `[::]` bind is
/// v6-only.
#[cfg(test)]
pub(crate) fn test_socket(bind: &str, program: &str, cmdline: &str) -> SocketFact {
    SocketFact {
        proto: Proto::Tcp,
        bind: bind.parse().unwrap_or_else(|e| panic!("{bind}: {e}")),
        v6only: if bind.starts_with("[::]") { Some(true) } else { None },
        pid: Some(42),
        program: Some(program.into()),
        cmdline: Some(cmdline.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse() {
        let p = CheckedPort { port: 3000, proto: Proto::Tcp };
        assert_eq!(parse_ports("3000").expect("ok"), [p]);
        assert_eq!(parse_ports(" 3000, 8080/tcp,53/UDP,3000").expect("ok").len(), 3);
        assert!(parse_ports("0").is_err() && parse_ports("x").is_err() && parse_ports("1/sctp").is_err());
        assert!(parse_ports("").is_err());
    }

    #[test]
    fn ranges_and_out_of_range_ports() {
        let ports = parse_ports("3000-3010,53/udp").expect("ok");
        assert_eq!(ports.len(), 12);
        assert_eq!(ports[10], CheckedPort { port: 3010, proto: Proto::Tcp });
        assert_eq!(parse_ports("5000-5001/udp").expect("ok")[1], CheckedPort { port: 5001, proto: Proto::Udp });
        let err = parse_ports("70000").expect_err("out of range").to_string();
        assert!(err.contains("70000 is not a port: ports go from 1 to 65535"), "{err}");
        let err = parse_ports("3010-3000").expect_err("backwards").to_string();
        assert!(err.contains("ends before it starts"), "{err}");
        let err = parse_ports("1-65535").expect_err("too many").to_string();
        assert!(err.contains(&format!("at most {MAX_CHECKED_PORTS} ports")), "{err}");
        assert!(parse_ports("0").is_err() && parse_ports("3000-").is_err());
    }

    #[test]
    fn wsl2_kernels() {
        assert!(is_wsl2("5.15.153.1-microsoft-standard-WSL2") && !is_wsl2("6.8.0-45-generic"));
    }
}
