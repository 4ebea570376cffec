//! The shared vocabulary of a probe run: the small types that the plan, the messages,
//! the probe engine, the report and the rules all speak. Nothing here imports from
//! another module of this crate.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Transport protocol of a listener or probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// One of the agent's test listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ListenerSpec {
    /// Protocol.
    pub proto: Proto,
    /// The socket address it is bound to, e.g. `0.0.0.0:40001`.
    pub bind: SocketAddr,
}

/// One probe of a test listener: dial `target` with `proto`, expecting the listener
/// bound to `bind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedProbe {
    /// Index in the plan, echoed in the result.
    pub id: u32,
    /// Protocol.
    pub proto: Proto,
    /// The listener's bound address (a row of the matrix).
    pub bind: SocketAddr,
    /// The address to dial (a column of the matrix).
    pub target: SocketAddr,
}

/// An outside probe of one of the user's own ports (`--check`, `--exposed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceProbe {
    /// Index, echoed in the result.
    pub id: u32,
    /// Protocol.
    pub proto: Proto,
    /// Address to dial.
    pub target: SocketAddr,
}

/// errno of "No route to host" on Linux: ICMP host unreachable or admin-prohibited, or a
/// failed neighbour lookup.
pub const EHOSTUNREACH: i32 = 113;

/// errno of "Network is unreachable" on Linux: ICMP network unreachable, or no route.
pub const ENETUNREACH: i32 = 101;

/// errno of "Permission denied" on Linux, what an ICMPv6 administratively-prohibited
/// error gives a connect or a connected UDP socket.
pub const EACCES: i32 = 13;

/// What one probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Our listener answered the handshake.
    Open,
    /// Connection refused (RST or ICMP port unreachable): nothing listens there, or a
    /// REJECT rule.
    Refused,
    /// No answer before the deadline, after one retry: a DROP rule or a filter on the path.
    Timeout,
    /// EHOSTUNREACH / ENETUNREACH (ICMP admin-prohibited, no route, failed ARP).
    Unreachable,
    /// Connection reset after it was accepted.
    Reset,
    /// Accepted, then closed without any data.
    EmptyReply,
    /// Something other than our listener answered.
    Foreign,
    /// Not probed: no lanreach listener proved the address to be the agent's.
    NotProbed,
    /// A browser's request failed at once (a `TypeError` from `fetch`): refused, reset,
    /// rejected by a firewall, accepted then closed, or not HTTP. A browser cannot tell
    /// these apart; the agent's inside facts may.
    Failed,
}

impl Outcome {
    /// Every outcome, in a stable order.
    pub const ALL: [Outcome; 9] = [
        Outcome::Open,
        Outcome::Refused,
        Outcome::Timeout,
        Outcome::Unreachable,
        Outcome::Reset,
        Outcome::EmptyReply,
        Outcome::Foreign,
        Outcome::NotProbed,
        Outcome::Failed,
    ];

    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Open => "open",
            Outcome::Refused => "refused",
            Outcome::Timeout => "timeout",
            Outcome::Unreachable => "unreachable",
            Outcome::Reset => "reset",
            Outcome::EmptyReply => "empty_reply",
            Outcome::Foreign => "foreign",
            Outcome::NotProbed => "not_probed",
            Outcome::Failed => "failed",
        }
    }

    /// Whether nothing took the connection at that address, as far as the prober could
    /// tell: refused, or (a browser) failed at once.
    pub fn refused_like(self) -> bool {
        matches!(self, Outcome::Refused | Outcome::Failed)
    }
}

/// A test-listener probe's result as the peer reports it to the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// The planned probe's ID.
    pub id: u32,
    /// What happened.
    pub outcome: Outcome,
    /// Round trip of the decisive attempt, microseconds (none for timeouts).
    pub rtt_us: Option<u32>,
    /// The OS error number behind `refused`/`unreachable`, when there was one.
    pub errno: Option<i32>,
    /// Attempts made (1, or 2 after a silent first try).
    pub attempts: u8,
    /// A `timeout` whose silence hides no rejection: the quiet re-probe met silence too,
    /// or the agent's host witnessed that it sent and suppressed no ICMP error while the
    /// probes ran (see [`crate::icmp`]). Silence without it proves nothing.
    pub proven: bool,
}

/// What an outside probe of one of the user's ports found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceResult {
    /// The probe's ID.
    pub id: u32,
    /// What happened (`open`: accepted and talked or stayed open).
    pub outcome: Outcome,
    /// Connect round trip, microseconds.
    pub rtt_us: Option<u32>,
    /// OS error number, when there was one.
    pub errno: Option<i32>,
    /// HTTP status of the answer to a minimal request, when the server spoke HTTP.
    pub http_status: Option<u16>,
    /// Attempts that finished: 2 when the first met silence and the quiet re-probe (after
    /// the ICMP rate-limit window) was made. Whether a `timeout` proves a drop is
    /// [`proven`](Self::proven), not this count.
    pub attempts: u8,
    /// As [`ProbeResult::proven`].
    pub proven: bool,
    /// UDP: the peer's source port of each attempt, so that the agent can find the
    /// datagrams in its connection-tracking table (at most [`ATTEMPTS`](crate::defaults::ATTEMPTS)).
    pub source_ports: Vec<u16>,
}

/// The peer's raw results, in plan order: what the `Results` message carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResults {
    /// One result per planned test-listener probe.
    pub results: Vec<ProbeResult>,
    /// One result per planned service probe.
    pub services: Vec<ServiceResult>,
}

/// A probe that reached one of the agent's test listeners, as the listener saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerHit {
    /// Protocol.
    pub proto: Proto,
    /// The listener's bound address.
    pub bind: SocketAddr,
    /// The address the probe arrived at.
    pub local: SocketAddr,
    /// The probe's source address as seen by the agent.
    pub source: SocketAddr,
}
