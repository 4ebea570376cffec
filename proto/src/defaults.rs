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
pub const PROTOCOL_VERSION: u16 = 4;

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
    /// The peer reached the agent at several addresses and goes on with another
    /// connection (the race of `lanreach-peer`): this one sent nothing, so the agent
    /// counts no attempt and says nothing.
    pub const UNUSED: u32 = 3;
}

// ---- QUIC transport ----------------------------------------------------------------

/// Keep-alive interval: holds the connection (and NAT bindings) open while the peer
/// probes and sends nothing on the control stream.
pub const KEEP_ALIVE: Duration = Duration::from_secs(4);

/// QUIC's round-trip estimate before the first sample (quinn's default, 333 ms, is
/// RFC 9002's for the Internet): the handshake's loss recovery waits about three of
/// these. At 5 % loss each way a lost handshake packet once cost a run 6.6 s.
pub const INITIAL_RTT: Duration = Duration::from_millis(50);

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

/// Peer: how long it waits for the agent's first answer (`--connect-timeout`'s default).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
/// tables and its firewall's configuration, asks Docker and may ask a local HTTP server
/// first).
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// After a refusal, how long a side waits for the other to read it and close.
pub const REJECT_LINGER: Duration = Duration::from_secs(2);

/// Agent: on shutdown, how long connections may say goodbye.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Peer: after closing, how long the endpoint may take to send the close. It goes out on
/// the endpoint's next turn; waiting for the draining period after it (three PTOs, which
/// include QUIC's 25 ms maximum ACK delay: ~80 ms on a LAN) only answers late packets,
/// and cost every run a third of its time. The agent has the peer's finished stream
/// already, so it loses nothing if the close itself is lost.
pub const CLOSE_GRACE: Duration = Duration::from_millis(10);

/// Watch mode: the peer starts the next round this long after a report.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Agent: after a report, how long it waits for a watching peer's next round before it
/// ends the session.
pub const WATCH_IDLE: Duration = Duration::from_secs(30);

/// Agent: in watch mode, interfaces and Docker facts are re-read every this many rounds
/// (the socket table every round: that is how a rebind is seen).
pub const WATCH_REFRESH_ROUNDS: u32 = 5;

/// Pings in the peer's round-trip measurement.
pub const PINGS: u64 = 5;

/// The most pings the agent answers in one run; a peer that sends more is refused
/// (164,720 pings in 20 s were once answered at 44 % CPU).
pub const MAX_PINGS: u32 = 32;

/// The most ICMP witness questions the agent answers in one run (a run asks once).
pub const MAX_WITNESS: u32 = 2;

// ---- Admission: the agent before a peer has authenticated --------------------------
//
// A connection that has not authenticated is anybody on the LAN. It gets a short
// deadline, a place in a bounded pool shared by all sources (a newcomer may push out the
// oldest), at most a few places per source, and a QUIC Retry first when the pool is
// busy; authenticated sessions have a pool of their own. Pairing attempts are limited
// per code (`code::MAX_FAILED_ATTEMPTS`) and per source (a backoff after failures).

/// Agent: from a connection's first packet to an authenticated peer (the QUIC handshake,
/// then the pinned keys or the pairing exchange). A peer on a LAN needs tens of
/// milliseconds; a connection that says nothing is closed after this.
pub const PREAUTH_TIMEOUT: Duration = Duration::from_secs(4);

/// Agent: after its `PairReply`, how long it waits for the peer's `PairConfirm` (one
/// round trip and a SPAKE2 finish). The attempt counts as failed after that.
pub const PAIR_CONFIRM_TIMEOUT: Duration = Duration::from_secs(2);

/// An unauthenticated connection pending at least this long may be closed to make room
/// for a newcomer: old enough that a real peer on the LAN would have authenticated.
pub const PREAUTH_GRACE: Duration = Duration::from_millis(250);

/// Unauthenticated connections the agent keeps at once, from all sources together.
pub const MAX_UNAUTHENTICATED: usize = 128;

/// Unauthenticated connections the agent keeps at once from one source (an IPv4 address,
/// an IPv6 /64): a device needs one.
pub const MAX_UNAUTHENTICATED_PER_SOURCE: usize = 8;

/// With this many unauthenticated connections pending, a new one must first prove its
/// address with a QUIC Retry: a spoofed Initial then costs the agent one small packet
/// and no state.
pub const RETRY_ABOVE: usize = 16;

/// Authenticated sessions at once (paired or pinned peers), apart from the
/// unauthenticated pool.
pub const MAX_SESSIONS: usize = 64;

/// After a failed pairing attempt, the same source may begin its next one this long
/// after the failed one began; the wait doubles with each further failure.
pub const PAIR_BACKOFF: Duration = Duration::from_secs(3);

/// The longest backoff; a source's failures are forgotten this long after its backoff
/// ends.
pub const PAIR_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Sources whose failed pairing attempts the agent remembers.
pub const MAX_BACKOFF_SOURCES: usize = 1024;

/// The agent reprints its pairing code at most this often, and reports failed
/// connections one by one only a few times per such period (then as a count).
pub const CODE_REPRINT: Duration = Duration::from_secs(5);

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

/// Most SYNs (each on a fresh socket) one ordinary TCP attempt sends, spread over its
/// deadline while nothing answers: a lost SYN or SYN-ACK costs no attempt.
pub const CONNECT_TRIES: usize = 4;

/// Most datagrams one UDP knock sends, spread over the attempt's deadline while nothing
/// answers.
pub const UDP_KNOCK_TRIES: usize = 4;

/// How long a connected knock waits for the listener's reply at least: past Linux's
/// minimum retransmission timeout (200 ms) twice, so a lost knock or reply segment is
/// sent again in time rather than taken for another program's silence.
pub const KNOCK_REPLY_WAIT: Duration = Duration::from_millis(700);

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

// ---- Pairing links and the race to the agent ---------------------------------------

/// Most addresses in a pairing link: the agent writes its best ones, a peer refuses a
/// link with more, so a scanned link cannot make it send to a list of other hosts.
/// Four keep a two-family, two-interface link's QR code within 80 columns.
pub const MAX_LINK_ADDRESSES: usize = 4;

/// The peer starts its QUIC handshake to the next address of a link this long after
/// the previous one, unless that one failed first (RFC 8305's connection attempt
/// delay). On a LAN a reachable agent answers well within it, so the agent rarely sees
/// a second connection at all.
pub const RACE_STAGGER: Duration = Duration::from_millis(250);

/// When the agent does not answer, a cause the peer's own facts make certain (another
/// network, a VPN route, the agent's page answering while UDP is silent, a failed
/// neighbour lookup) ends the wait once this long has passed since the first handshake
/// without one completing: a LAN handshake takes milliseconds, a VPN's a few hundred, a
/// debug build on a loaded machine a few hundred more. (The network's own answers end it
/// sooner: no route at once, ICMP errors after a second: `nopath::Cause::grace`.)
pub const NOPATH_GRACE: Duration = Duration::from_millis(2500);

/// How often the no-path facts are read again while waiting.
pub const NOPATH_TICK: Duration = Duration::from_millis(100);

/// When the side probe sends its first one-byte datagrams to the control port, from the
/// start (a lost datagram or a rate-limited ICMP error is tried again; Linux gives up a
/// neighbour lookup after about 3 s); then every [`NOPATH_RESEND`]. Each one's answer
/// replaces the last: an agent may bind its port a moment after the peer started.
pub const NOPATH_SEND_AT: &[Duration] = &[
    Duration::from_millis(0),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_millis(800),
    Duration::from_millis(1200),
];

/// After [`NOPATH_SEND_AT`], the side probe sends again this often.
pub const NOPATH_RESEND: Duration = Duration::from_millis(1000);

/// Reading the firewall's configuration (`nft`, `iptables-save`, `ufw`, `firewall-cmd`):
/// the whole read. firewall-cmd asks firewalld over D-Bus, which may hang; what is not
/// read by then is "could not be evaluated".
pub const FIREWALL_READ_TIMEOUT: Duration = Duration::from_secs(5);

// ---- Discovery and display ---------------------------------------------------------

/// Longest mDNS browse.
pub const BROWSE_TIMEOUT: Duration = Duration::from_secs(3);

/// After the first agent answers, how long to wait for others.
pub const BROWSE_SETTLE: Duration = Duration::from_millis(800);

/// Refresh interval of the peer's progress display.
pub const PROGRESS_TICK: Duration = Duration::from_millis(100);

/// Refresh interval of the agent's "waiting for a peer" spinner.
pub const SPINNER_TICK: Duration = Duration::from_millis(120);

/// How often the agent's screen prints what waited (a summary of failures, the code
/// again); see [`CODE_REPRINT`].
pub const SCREEN_TICK: Duration = Duration::from_millis(500);

// ---- Terminal width ----------------------------------------------------------------

/// Columns assumed when the output is not a terminal and `COLUMNS` is not set: the
/// README's example reports are rendered at this width.
pub const DEFAULT_WIDTH: usize = 100;

/// The narrowest width the output is laid out for; a smaller terminal (or `COLUMNS`)
/// counts as this many columns, since below it no word-wrapped sentence stays readable.
pub const MIN_WIDTH: usize = 20;

/// Below this many columns (a phone held upright) a report with `--check` ports leaves
/// the listener matrix out, so the ports' verdicts, causes and fixes fit on one screen.
pub const NARROW_WIDTH: usize = 60;

// ---- The browser page ----------------------------------------------------------------

/// A browser's one attempt at a port. It outlives the kernel's SYN retransmission
/// ([`SYN_RETRANSMIT`]) by more than a second, so a lost SYN is sent again and a
/// rate-limited ICMP rejection answers the retransmitted SYN within it: a hang that
/// lasts it out is silence proven as a peer's quiet re-probe proves it, at the cost of
/// one deadline (a retry would double it). A LAN answers in milliseconds.
pub const BROWSER_ATTEMPT: Duration = Duration::from_millis(2500);

/// How long a WebRTC probe keeps sending STUN requests to a UDP test listener. Chromium
/// sends its first check at once and retransmits every few tens of milliseconds at first
/// (41 requests in 2.5 s measured), so this window holds several: losing all of them is
/// no accident. It runs beside the fetches, so it is most of a clean run's time.
pub const BROWSER_UDP_WINDOW: Duration = Duration::from_millis(600);

/// A browser run must post its results this long after its plan; then it is forgotten.
pub const BROWSER_RUN_DEADLINE: Duration = Duration::from_secs(45);

/// Fetches a browser page keeps in flight at once.
pub const BROWSER_CONCURRENCY: usize = 12;

/// An unused browser link expires this long after it was printed (a new one is printed).
pub const BROWSER_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Browser runs in progress at once; more are told the agent is busy.
pub const MAX_BROWSER_RUNS: usize = 8;

/// HTTP connections to the page at once, and per source address; more are closed.
pub const MAX_WEB_CONNECTIONS: usize = 64;
/// See [`MAX_WEB_CONNECTIONS`].
pub const MAX_WEB_CONNECTIONS_PER_SOURCE: usize = 8;

/// A request's head (request line and headers) must arrive within this, and be at most
/// [`MAX_WEB_HEAD`] bytes; its body within [`WEB_BODY_TIMEOUT`], at most
/// [`MAX_WEB_BODY`] bytes.
pub const WEB_HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// See [`WEB_HEAD_TIMEOUT`].
pub const WEB_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// See [`WEB_HEAD_TIMEOUT`].
pub const MAX_WEB_HEAD: usize = 8 * 1024;
/// See [`WEB_HEAD_TIMEOUT`]: a plan of 2048 probes posts about 80 KiB of results.
pub const MAX_WEB_BODY: usize = 256 * 1024;

/// Wrong tokens one source may present before every API call from it is refused for
/// [`WEB_THROTTLE`].
pub const WEB_WRONG_TOKENS: u32 = 5;
/// See [`WEB_WRONG_TOKENS`].
pub const WEB_THROTTLE: Duration = Duration::from_secs(60);

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
    // A browser's attempt outlives the SYN retransmission by a second; its whole run
    // (knocks, then an attempt, the UDP window beside it) fits in the run's deadline.
    assert!(ms(BROWSER_ATTEMPT) > ms(SYN_RETRANSMIT) + 1000);
    assert!(ms(BROWSER_ATTEMPT) * 2 + ms(BROWSER_UDP_WINDOW) < ms(BROWSER_RUN_DEADLINE) / 4);
    assert!(ms(BROWSER_RUN_DEADLINE) < ms(BROWSER_TOKEN_LIFETIME));
    // A quiet TCP re-probe outlives the SYN retransmission by a whole attempt deadline.
    assert!(ms(SYN_RETRANSMIT) >= 1000);
    assert!(ms(PROBE_TIMEOUT_FLOOR) < ms(PROBE_TIMEOUT_CEILING));
    // A test listener waits for the knock (sent right after connect) several times the
    // shortest attempt deadline.
    assert!(ms(KNOCK_TIMEOUT) >= 4 * ms(PROBE_TIMEOUT_FLOOR));
    // An unanswered UDP entry outlives several reads of the table.
    assert!(ms(CONNTRACK_POLL) * 4 <= 10_000);
    // The peer waits for the report longer than the agent's slowest inside facts take.
    assert!(
        ms(REPORT_TIMEOUT)
            > ms(DOCKER_API_TIMEOUT) + ms(LOCAL_HTTP_TIMEOUT) + ms(V6ONLY_PROBE_TIMEOUT) + ms(FIREWALL_READ_TIMEOUT)
    );
    // The agent gives the peer's steps at least the time the peer gives itself.
    assert!(ms(AGENT_STEP_TIMEOUT) >= ms(PEER_STEP_TIMEOUT));
    // Before authentication it is the other way round: the agent ends the phase before
    // the peer would give up, so a slow authentication ends with the agent's reason.
    assert!(ms(PREAUTH_TIMEOUT) <= ms(PEER_HANDSHAKE_TIMEOUT));
    assert!(ms(PREAUTH_TIMEOUT) <= ms(CONNECT_TIMEOUT));
    // A pairing attempt is confirmed (or failed) within the pre-authentication phase,
    // and a newcomer never pushes out a connection before it could have confirmed.
    assert!(ms(PREAUTH_GRACE) < ms(PAIR_CONFIRM_TIMEOUT));
    assert!(ms(PAIR_CONFIRM_TIMEOUT) < ms(PREAUTH_TIMEOUT));
    // The backoff counts from the start of the failed attempt, which may last until its
    // confirmation deadline: the source still waits after that.
    assert!(ms(PAIR_BACKOFF) > ms(PAIR_CONFIRM_TIMEOUT));
    assert!(ms(PAIR_BACKOFF) < ms(PAIR_BACKOFF_MAX));
    // One source cannot fill the unauthenticated pool: it takes 16 of them together.
    assert!(MAX_UNAUTHENTICATED_PER_SOURCE * 16 <= MAX_UNAUTHENTICATED);
    // Retry starts well before the pool is full.
    assert!(RETRY_ABOVE < MAX_UNAUTHENTICATED);
    // Three failed attempts (one code's worth) fit in the memory of one source.
    assert!(MAX_BACKOFF_SOURCES > 3);
    // The screen looks often enough to keep to its reprint period.
    assert!(ms(SCREEN_TICK) * 4 <= ms(CODE_REPRINT));
    // Keep-alives hold the connection open while the peer probes in silence.
    assert!(ms(KEEP_ALIVE) * 2 < ms(IDLE_TIMEOUT));
    // A refusal is read before the other side's step deadline gives up.
    assert!(ms(REJECT_LINGER) < ms(PEER_STEP_TIMEOUT));
    assert!(ms(BROWSE_SETTLE) < ms(BROWSE_TIMEOUT));
    // The agent waits for a watching peer's next round longer than the peer waits.
    assert!(ms(WATCH_IDLE) > ms(WATCH_INTERVAL) * 4);
    assert!(ms(WATCH_IDLE) < ms(IDLE_TIMEOUT) * 2);
    // Every address of a link is tried well before the agent gives up on the first.
    assert!(ms(RACE_STAGGER) * (MAX_LINK_ADDRESSES as u128) < ms(PREAUTH_TIMEOUT) / 2);
    // A well-behaved peer's pings are answered.
    assert!(PINGS < MAX_PINGS as u64);
    // Narrow is narrower than the default, and still a layout of its own.
    assert!(MIN_WIDTH < NARROW_WIDTH && NARROW_WIDTH < DEFAULT_WIDTH);
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
