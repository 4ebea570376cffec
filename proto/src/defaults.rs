//! Every protocol constant and deadline, in one place, with the reason for each.
//!
//! The deadlines depend on each other ("the agent waits for results longer than the
//! peer's probe run may last"); those relations are compile-time assertions at the end
//! of this module, so changing one number cannot quietly break another. Size limits of
//! messages live beside the checks that enforce them (`codec::MAX_FRAME`,
//! `plan::MAX_PROBES`, `msg::MAX_HELLO_ADDRESSES`).

use std::time::Duration;

// ---- Protocol identity -------------------------------------------------------------

/// The protocol version this build speaks (the leading field of `Start` and `Reject`).
pub const PROTOCOL_VERSION: u16 = 2;

/// The QUIC ALPN of the control channel.
pub const ALPN: &[u8] = b"lanreach/1";

/// Default UDP port of the agent's control channel.
pub const DEFAULT_CONTROL_PORT: u16 = 47800;

/// QUIC application close codes, the same on both sides.
pub mod close {
    /// The conversation finished normally.
    pub const DONE: u32 = 0;
    /// The side refused or gave up (a `Reject` was sent, or a deadline passed).
    pub const REFUSED: u32 = 1;
    /// The sender was stopped by its user (Ctrl-C, SIGTERM): the other side says so
    /// ("the agent was stopped", "the peer was stopped") at once.
    pub const SHUTDOWN: u32 = 2;
}

// ---- QUIC transport ----------------------------------------------------------------

/// Keep-alive interval: holds the connection (and NAT bindings) open while the peer
/// probes and sends nothing on the control stream.
pub const KEEP_ALIVE: Duration = Duration::from_secs(4);

/// A connection silent for this long is gone.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// QUIC receive window, per stream and per connection: the most one connection can make
/// the other side buffer. A frame larger than this (a report may reach
/// `codec::MAX_FRAME`) still flows, one window at a time, as the reader consumes it.
pub const RECEIVE_WINDOW: u32 = 128 * 1024;

/// The most an unauthenticated side may send as one frame (`Start`, `PairReply`,
/// `PairConfirm` are well below it): before authentication nobody gets a megabyte.
pub const MAX_PREAUTH_FRAME: usize = 4 * 1024;

// ---- Authentication and the conversation -------------------------------------------

/// Agent: from the first QUIC packet to an authenticated peer.
pub const AGENT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Peer: authentication, once QUIC is up.
pub const PEER_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Agent: each later step of a session (Hello, the ping exchange).
pub const AGENT_STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Peer: each later step (Hello, one ping).
pub const PEER_STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Agent: from sending the plan to receiving the results: the peer's probe run, which
/// [`RUN_DEADLINE`] bounds below this.
pub const RESULTS_TIMEOUT: Duration = Duration::from_secs(120);

/// Peer: from sending the results to receiving the report (the agent reads its socket
/// tables, asks Docker and may ask a local HTTP server first).
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// After a refusal, how long a side waits for the other to read it and close.
pub const REJECT_LINGER: Duration = Duration::from_secs(2);

/// Agent: on shutdown, how long connections may say goodbye.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Peer: after closing, how long the endpoint may take to deliver the close.
pub const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// Pings in the peer's round-trip measurement.
pub const PINGS: u64 = 5;

/// The most pings the agent answers in one run; a peer that sends more is refused
/// (164,720 pings in 20 s were once answered at 44 % CPU).
pub const MAX_PINGS: u32 = 32;

// ---- The probe run -----------------------------------------------------------------

/// Shortest per-attempt deadline, whatever the measured round trip. A lost SYN or
/// datagram costs one attempt: the retry covers it, so the floor can sit far below the
/// OS's 1 s SYN retransmission.
pub const PROBE_TIMEOUT_FLOOR: Duration = Duration::from_millis(150);

/// Longest per-attempt deadline.
pub const PROBE_TIMEOUT_CEILING: Duration = Duration::from_secs(3);

/// The per-attempt deadline is this many control-channel round trips (plus the floor).
pub const RTT_FACTOR: u32 = 4;

/// Probes in flight at once.
pub const CONCURRENCY: usize = 64;

/// Gap between UDP probes, so that the host's ICMP rate limit (a burst of about 6, then
/// 1/s) turns fewer refusals into silence.
pub const UDP_SPACING: Duration = Duration::from_millis(5);

/// Attempts per probe: the first, and one retry after silence (for the probes whose
/// reject-versus-drop matters, the quiet re-probe).
pub const ATTEMPTS: u8 = 2;

/// How long a host takes to earn back one ICMP error for a destination, with a margin.
/// Linux sends a peer at most a burst of 6 ICMP errors, then one per
/// `net.ipv4.icmp_ratelimit` (1000 ms) for IPv4 and per `net.ipv6.icmp.ratelimit`
/// (1000 ms on older kernels; 100 ms, less for wide prefixes, on 6.x) for IPv6: measured
/// in network namespaces on 6.18, IPv4 earned one error back after 0.9–1.0 s and IPv6
/// after 25 ms. A silent probe is re-probed only once the peer's traffic to the host has
/// been quiet this long per error the re-probe may draw.
pub const ICMP_RATE_WINDOW: Duration = Duration::from_millis(1100);

/// The most ICMP errors a quiet stretch is counted to earn back: below Linux's burst of
/// 6, and enough for the most one quiet re-probe may draw (a SYN and its retransmission).
pub const ICMP_CREDIT_CAP: u32 = 2;

/// When Linux sends a connect's first SYN again (`TCP_TIMEOUT_INIT`). A quiet TCP
/// re-probe waits past it: an ICMP error that arrives while the connecting socket is
/// still locked by `connect()` (IPv6 on a fast path, measured: `TcpExtLockDroppedIcmps`)
/// only fails the connect when the retransmitted SYN draws a second one.
pub const SYN_RETRANSMIT: Duration = Duration::from_secs(1);

/// Most addresses a run knocks at that are not proven to be the agent's (the address
/// the control channel reached is proven): a hostile agent that claims other hosts'
/// addresses gets one knock (and its retry) per address and protocol, at this many.
pub const MAX_CLAIMED_ADDRESSES: usize = 8;

/// Most datagrams one UDP service attempt sends (see [`crate::payload`]): the port's
/// own request, the empty datagram and the other common requests.
pub const MAX_UDP_PAYLOADS: usize = 7;

/// Gap between the datagrams of one UDP service attempt: an answer to an earlier one is
/// read in the gap, long before the next goes out on a LAN.
pub const UDP_PAYLOAD_GAP: Duration = Duration::from_millis(10);

/// The whole probe run ends by then, whatever the per-attempt deadlines.
pub const RUN_DEADLINE: Duration = Duration::from_secs(90);

/// A service probe that connected waits at least this long for a banner before it
/// sends its own request.
pub const BANNER_WAIT_FLOOR: Duration = Duration::from_millis(300);

/// The service probe waits this many attempt deadlines for the answer to its request.
pub const ANSWER_WAIT_FACTOR: u32 = 4;

/// The per-attempt deadline for a control channel with round trip `rtt`.
pub fn probe_timeout(rtt: Duration) -> Duration {
    (rtt * RTT_FACTOR + PROBE_TIMEOUT_FLOOR).min(PROBE_TIMEOUT_CEILING)
}

// ---- The agent's inside view -------------------------------------------------------

/// A test listener waits this long for the knock on an accepted TCP connection. A real
/// peer writes its knock the moment the connection is up, so it arrives within a round
/// trip; a connection that stays silent holds a slot no longer than this.
pub const KNOCK_TIMEOUT: Duration = Duration::from_secs(1);

/// Dialling a `[::]` socket's port on 127.0.0.1 to learn IPV6_V6ONLY.
pub const V6ONLY_PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// How often the agent reads its connection-tracking table while the peer probes: well
/// within the life of an unanswered UDP entry (`nf_conntrack_udp_timeout`, 30 s by
/// default, 10 s on some routers).
pub const CONNTRACK_POLL: Duration = Duration::from_secs(1);

/// One request to the Docker Engine API.
pub const DOCKER_API_TIMEOUT: Duration = Duration::from_secs(3);

/// The local `GET /` with `Host: localhost` that tells a Host check from a page that
/// refuses everyone.
pub const LOCAL_HTTP_TIMEOUT: Duration = Duration::from_secs(2);

// ---- Discovery and display ---------------------------------------------------------

/// Longest mDNS browse.
pub const BROWSE_TIMEOUT: Duration = Duration::from_secs(3);

/// After the first agent answers, how long to wait for others.
pub const BROWSE_SETTLE: Duration = Duration::from_millis(800);

/// Refresh interval of the peer's progress display.
pub const PROGRESS_TICK: Duration = Duration::from_millis(100);

/// Refresh interval of the agent's "waiting for a peer" spinner.
pub const SPINNER_TICK: Duration = Duration::from_millis(120);

// ---- Relations ---------------------------------------------------------------------

const fn ms(d: Duration) -> u128 {
    d.as_millis()
}

const _: () = {
    // The agent waits for results longer than the peer's run may last.
    assert!(ms(RESULTS_TIMEOUT) > ms(RUN_DEADLINE));
    // Every attempt of a probe fits in the run many times over, the quiet re-probe and
    // the wait for it included.
    assert!(ms(PROBE_TIMEOUT_CEILING) * (ATTEMPTS as u128) < ms(RUN_DEADLINE));
    assert!(
        ms(ICMP_RATE_WINDOW) * (ICMP_CREDIT_CAP as u128) + ms(SYN_RETRANSMIT) + ms(PROBE_TIMEOUT_CEILING) * 2
            < ms(RUN_DEADLINE) / 8
    );
    // A UDP attempt's datagrams go out within one shortest attempt deadline.
    assert!(ms(UDP_PAYLOAD_GAP) * (MAX_UDP_PAYLOADS as u128) <= ms(PROBE_TIMEOUT_FLOOR));
    // The window covers Linux's slowest refill (1000 ms) with a margin; the credit never
    // counts on more than Linux's burst of 6.
    assert!(ms(ICMP_RATE_WINDOW) > 1000);
    assert!(ICMP_CREDIT_CAP >= 2 && ICMP_CREDIT_CAP <= 6);
    // A quiet TCP re-probe outlives the SYN retransmission by a whole attempt deadline.
    assert!(ms(SYN_RETRANSMIT) >= 1000);
    assert!(ms(PROBE_TIMEOUT_FLOOR) < ms(PROBE_TIMEOUT_CEILING));
    // A test listener waits for the knock (sent right after connect) several times the
    // shortest attempt deadline.
    assert!(ms(KNOCK_TIMEOUT) >= 4 * ms(PROBE_TIMEOUT_FLOOR));
    // An unanswered UDP entry outlives several reads of the table.
    assert!(ms(CONNTRACK_POLL) * 4 <= 10_000);
    // The peer waits for the report longer than the agent's slowest inside facts take.
    assert!(ms(REPORT_TIMEOUT) > ms(DOCKER_API_TIMEOUT) + ms(LOCAL_HTTP_TIMEOUT) + ms(V6ONLY_PROBE_TIMEOUT));
    // The agent gives the peer's steps at least the time the peer gives itself.
    assert!(ms(AGENT_STEP_TIMEOUT) >= ms(PEER_STEP_TIMEOUT));
    assert!(ms(AGENT_HANDSHAKE_TIMEOUT) >= ms(PEER_HANDSHAKE_TIMEOUT));
    // Keep-alives hold the connection open while the peer probes in silence.
    assert!(ms(KEEP_ALIVE) * 2 < ms(IDLE_TIMEOUT));
    // A refusal is read before the other side's step deadline gives up.
    assert!(ms(REJECT_LINGER) < ms(PEER_STEP_TIMEOUT));
    assert!(ms(BROWSE_SETTLE) < ms(BROWSE_TIMEOUT));
    // A well-behaved peer's pings are answered.
    assert!(PINGS < MAX_PINGS as u64);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_follows_rtt_within_floor_and_ceiling() {
        assert_eq!(probe_timeout(Duration::ZERO), PROBE_TIMEOUT_FLOOR);
        assert_eq!(probe_timeout(Duration::from_millis(10)), Duration::from_millis(190));
        assert_eq!(probe_timeout(Duration::from_secs(5)), PROBE_TIMEOUT_CEILING);
    }
}
