//! The start of every conversation, for both roles: the version check and
//! authentication (pairing with a code, or pinned keys). What follows authentication is
//! in [`crate::conversation`].
//!
//! These functions drive a [`Channel`]; they hold no clock and no sockets. The agent's
//! side comes in steps ([`agent_start`], [`PairRequest::offer`], [`Offered::confirm`]) so
//! that the caller can put its own deadline on each. Its attempt bookkeeping is
//! cancellation-safe: an attempt counts as failed from the agent's reply until it
//! succeeds, also when the caller's deadline drops the future half-way.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::{CryptoRng, RngCore};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::addr::Source;
use crate::channel::{Channel, ChannelError};
use crate::code::{Attempt, CodeBook, NotNow, PairingCode};
use crate::codec;
use crate::codec::MAX_FRAME;
use crate::defaults::{MAX_PREAUTH_FRAME, PROTOCOL_VERSION};
use crate::msg::{Accepted, Message, MessageType, PairConfirm, PairReply, Reject, RejectCode, Start, StartAuth};
use crate::pairing::{AgentOffer, Binding, PairingError, PeerPairing};
use crate::sync::lock;

/// Length of a SPAKE2 (Ed25519) message: a side byte and a 32-byte point.
const SPAKE2_MESSAGE_LEN: usize = 33;

/// Why a handshake failed. The same type serves both roles.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The two sides speak different protocol versions.
    #[error("protocol version mismatch: this side speaks version {ours}, the other side {theirs}")]
    VersionMismatch {
        /// Our [`PROTOCOL_VERSION`].
        ours: u16,
        /// Theirs.
        theirs: u16,
    },
    /// The codes differ (or a relay sits between the sides).
    #[error("the pairing code does not match")]
    WrongCode,
    /// The code was retired.
    #[error("the pairing code has been retired")]
    CodeRetired,
    /// The agent does not trust this peer's key.
    #[error("the agent does not know this peer")]
    NotTrusted,
    /// The agent will not begin a pairing attempt now, spending nothing: attempts on the
    /// live code are under way (or one from the same address), or (peer side) the
    /// address is waiting after a failed attempt.
    #[error("the agent is not taking a pairing attempt from this device right now")]
    Busy,
    /// An attempt from the same address failed moments ago (agent side; the peer hears
    /// `Busy`).
    #[error("a pairing attempt from this address failed moments ago; try again in {} s", .wait.as_millis().div_ceil(1000))]
    Backoff {
        /// How long the address still has to wait.
        wait: Duration,
    },
    /// The other side refused for another reason.
    #[error("the other side refused: {detail} ({code:?})")]
    Rejected {
        /// Its code.
        code: RejectCode,
        /// Its words, sanitised.
        detail: String,
    },
    /// A pairing message was malformed.
    #[error(transparent)]
    Pairing(#[from] PairingError),
    /// A valid message arrived out of turn.
    #[error("unexpected {got:?} message while waiting for {expected}")]
    Unexpected {
        /// What arrived.
        got: MessageType,
        /// What we waited for.
        expected: &'static str,
    },
    /// Reading or writing failed.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// A Hello listed more addresses than the protocol allows.
    #[error("the Hello lists {count} addresses; at most {max} are accepted")]
    TooManyAddresses {
        /// Addresses listed.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// More pings than one run needs.
    #[error("more than {max} pings in one run")]
    TooManyPings {
        /// The limit.
        max: u32,
    },
    /// More ICMP witness questions than one run needs.
    #[error("more than {max} witness questions in one run")]
    TooManyWitness {
        /// The limit.
        max: u32,
    },
    /// Results that do not answer the plan.
    #[error("the results do not match the plan")]
    BadResults(#[from] crate::plan::ResultsError),
    /// A report that does not inflate to JSON text within bounds.
    #[error(transparent)]
    BadReport(#[from] crate::msg::ReportJsonError),
}

impl HandshakeError {
    fn from_reject(r: Reject) -> Self {
        let detail = crate::text::printable(&r.detail, 200);
        match r.code {
            RejectCode::VersionMismatch => {
                HandshakeError::VersionMismatch { ours: PROTOCOL_VERSION, theirs: r.version }
            }
            RejectCode::WrongCode => HandshakeError::WrongCode,
            RejectCode::CodeRetired => HandshakeError::CodeRetired,
            RejectCode::NotTrusted => HandshakeError::NotTrusted,
            RejectCode::Busy => HandshakeError::Busy,
            code => HandshakeError::Rejected { code, detail },
        }
    }

    /// What to tell the other side about this error, if anything.
    fn reject_code(&self) -> Option<RejectCode> {
        Some(match self {
            HandshakeError::VersionMismatch { .. } => RejectCode::VersionMismatch,
            HandshakeError::WrongCode => RejectCode::WrongCode,
            HandshakeError::CodeRetired => RejectCode::CodeRetired,
            HandshakeError::NotTrusted => RejectCode::NotTrusted,
            HandshakeError::Busy | HandshakeError::Backoff { .. } => RejectCode::Busy,
            HandshakeError::Pairing(_) => RejectCode::Malformed,
            HandshakeError::Unexpected { .. }
            | HandshakeError::TooManyPings { .. }
            | HandshakeError::TooManyWitness { .. } => RejectCode::Unexpected,
            HandshakeError::TooManyAddresses { .. } | HandshakeError::BadResults(_) | HandshakeError::BadReport(_) => {
                RejectCode::Malformed
            }
            HandshakeError::Channel(ChannelError::Codec(_)) => RejectCode::Malformed,
            // They refused, or the connection is gone: nothing to say.
            HandshakeError::Rejected { .. } | HandshakeError::Channel(_) => return None,
        })
    }
}

/// Sends a typed refusal for `err` when one applies, ignoring send failures (the
/// connection is being abandoned anyway), and hands `err` back.
pub(crate) async fn refuse<R, W>(ch: &mut Channel<R, W>, err: HandshakeError) -> HandshakeError
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if let Some(code) = err.reject_code() {
        let reject = Reject { version: PROTOCOL_VERSION, code, detail: crate::text::error_chain(&err) };
        let _ = ch.send(&Message::Reject(reject)).await;
    }
    err
}

/// Receives a message, turning a `Reject` into its error and refusing undecodable input.
pub(crate) async fn recv<R, W>(ch: &mut Channel<R, W>) -> Result<Message, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match ch.recv().await {
        Ok(Message::Reject(r)) => Err(HandshakeError::from_reject(r)),
        Ok(m) => Ok(m),
        // Undecodable input is answered with a typed refusal before closing.
        Err(e) => Err(refuse(ch, e.into()).await),
    }
}

/// How a connection was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// With a pairing code, just now.
    Paired,
    /// With keys pinned by an earlier pairing.
    Pinned,
}

/// Runs the peer's side: sends `Start`, pairs with `code` (or relies on pinned keys
/// when there is none) and waits for `Accepted`.
pub async fn peer_handshake<R, W>(
    ch: &mut Channel<R, W>,
    name: &str,
    code: Option<&PairingCode>,
    binding: &Binding,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<AuthMethod, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let name = name.to_owned();
    ch.set_limit(MAX_PREAUTH_FRAME);
    let result = peer_auth(ch, name, code, binding, rng).await;
    ch.set_limit(MAX_FRAME);
    result
}

async fn peer_auth<R, W>(
    ch: &mut Channel<R, W>,
    name: String,
    code: Option<&PairingCode>,
    binding: &Binding,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<AuthMethod, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Some(code) = code else {
        ch.send(&Message::Start(Start { version: PROTOCOL_VERSION, name, auth: StartAuth::Pinned })).await?;
        return match recv(ch).await? {
            Message::Accepted(_) => Ok(AuthMethod::Pinned),
            m => Err(refuse(ch, unexpected(&m, "Accepted")).await),
        };
    };
    let (pairing, spake) = PeerPairing::start(code, rng);
    ch.send(&Message::Start(Start { version: PROTOCOL_VERSION, name, auth: StartAuth::Pair { spake } })).await?;
    let offers = match recv(ch).await? {
        Message::PairReply(PairReply { offers }) => offers,
        m => return Err(refuse(ch, unexpected(&m, "PairReply")).await),
    };
    let confirm = match pairing.finish(&offers, binding) {
        Ok(confirm) => confirm,
        Err(PairingError::WrongCode) => return Err(refuse(ch, HandshakeError::WrongCode).await),
        Err(PairingError::CodeRetired) => return Err(refuse(ch, HandshakeError::CodeRetired).await),
        Err(e) => return Err(refuse(ch, e.into()).await),
    };
    ch.send(&Message::PairConfirm(PairConfirm { confirm })).await?;
    match recv(ch).await? {
        Message::Accepted(_) => Ok(AuthMethod::Paired),
        m => Err(refuse(ch, unexpected(&m, "Accepted")).await),
    }
}

pub(crate) fn unexpected(m: &Message, expected: &'static str) -> HandshakeError {
    HandshakeError::Unexpected { got: m.message_type(), expected }
}

/// What the agent learnt from a successful handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAccepted {
    /// The peer's name as it gave it (unsanitised).
    pub name: String,
    /// How it authenticated.
    pub method: AuthMethod,
}

/// Settles a pairing attempt as failed unless it is marked done: runs on every exit
/// path, including a dropped future.
struct AttemptGuard<'a> {
    book: &'a Mutex<CodeBook>,
    attempt: Attempt,
    done: bool,
}

impl Drop for AttemptGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            lock(self.book).fail(&self.attempt);
        }
    }
}

/// What the peer's `Start` asked of the agent, once checked.
#[derive(Debug)]
pub enum Started {
    /// A trusted peer with pinned keys: accepted, authenticated.
    Pinned(PeerAccepted),
    /// A pairing attempt, not answered yet: see [`PairRequest::offer`].
    Pair(PairRequest),
}

/// A `Start` that asks to pair with a SPAKE2 message of the right shape.
#[derive(Debug)]
pub struct PairRequest {
    name: String,
    spake: Vec<u8>,
}

/// Who asks to pair, for the code book's per-source limits.
#[derive(Debug, Clone, Copy)]
pub struct Requester {
    /// Where the connection comes from.
    pub source: Source,
    /// Now.
    pub now: Instant,
}

/// A pairing attempt the agent has answered. From here it counts as failed unless
/// [`Offered::confirm`] succeeds, also when it is dropped: the reply lets the peer check
/// a guess offline, so an abandoned attempt spends one of the code's attempts.
pub struct Offered<'a> {
    guard: AttemptGuard<'a>,
    live: AgentOffer,
    name: String,
}

/// The agent's side, first step: reads the peer's `Start` (refusing another protocol
/// version, garbage, or pinned keys it does not trust) and accepts a trusted peer's
/// pinned keys. A pairing attempt comes back unanswered, having spent nothing.
///
/// The agent's handshake comes in steps so that the caller can put a deadline on each:
/// the whole phase before authentication, and a short one on [`Offered::confirm`].
pub async fn agent_start<R, W>(ch: &mut Channel<R, W>, peer_trusted: bool) -> Result<Started, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    ch.set_limit(MAX_PREAUTH_FRAME);
    let body = match ch.recv_body().await {
        Ok(body) => body,
        Err(e) => return Err(refuse(ch, e.into()).await),
    };
    if let Some(theirs) = codec::leading_version(&body).filter(|v| *v != PROTOCOL_VERSION) {
        return Err(refuse(ch, HandshakeError::VersionMismatch { ours: PROTOCOL_VERSION, theirs }).await);
    }
    let start = match codec::decode(&body) {
        Ok(Message::Start(start)) => start,
        Ok(m) => return Err(refuse(ch, unexpected(&m, "Start")).await),
        Err(e) => return Err(refuse(ch, ChannelError::Codec(e).into()).await),
    };
    let spake = match start.auth {
        StartAuth::Pinned if peer_trusted => {
            ch.send(&Message::Accepted(Accepted { paired: false })).await?;
            ch.set_limit(MAX_FRAME);
            return Ok(Started::Pinned(PeerAccepted { name: start.name, method: AuthMethod::Pinned }));
        }
        StartAuth::Pinned => return Err(refuse(ch, HandshakeError::NotTrusted).await),
        StartAuth::Pair { spake } => spake,
    };
    // A message that is not a SPAKE2 point of the right shape is refused before it can
    // spend one of the code's attempts.
    // The same two checks SPAKE2 itself makes first, with its own error values.
    let shape = if spake.len() != SPAKE2_MESSAGE_LEN {
        Some(spake2::Error::WrongLength)
    } else if spake.first() != Some(&b'A') {
        Some(spake2::Error::BadSide)
    } else {
        None
    };
    if let Some(e) = shape {
        return Err(refuse(ch, PairingError::BadMessage(e).into()).await);
    }
    Ok(Started::Pair(PairRequest { name: start.name, spake }))
}

/// The agent's steps in a row, under whatever single deadline the caller puts around
/// them (a test's fake agent; the agent itself puts a shorter one on the confirmation).
pub async fn agent_handshake<R, W>(
    ch: &mut Channel<R, W>,
    codes: &Mutex<CodeBook>,
    peer_trusted: bool,
    from: Requester,
    binding: &Binding,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<PeerAccepted, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match agent_start(ch, peer_trusted).await? {
        Started::Pinned(accepted) => Ok(accepted),
        Started::Pair(request) => request.offer(ch, codes, from, binding, rng).await?.confirm(ch).await,
    }
}

impl PairRequest {
    /// Begins an attempt on the live code for `from` and sends the `PairReply`; or
    /// refuses with `Busy`, spending nothing, when the code book says not now (attempts
    /// under way, or `from`'s backoff after a failure).
    pub async fn offer<'a, R, W>(
        self,
        ch: &mut Channel<R, W>,
        codes: &'a Mutex<CodeBook>,
        from: Requester,
        binding: &Binding,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Offered<'a>, HandshakeError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let begun = lock(codes).begin_attempt(from.source, from.now);
        let codes_now = match begun {
            Ok(codes_now) => codes_now,
            Err(NotNow::Busy) => return Err(refuse(ch, HandshakeError::Busy).await),
            Err(NotNow::Backoff { wait }) => return Err(refuse(ch, HandshakeError::Backoff { wait }).await),
        };
        let guard = AttemptGuard { book: codes, attempt: codes_now.attempt, done: false };
        let (live, first) = match AgentOffer::new(&codes_now.live, false, &self.spake, binding, rng) {
            Ok(offer) => offer,
            Err(e) => return Err(refuse(ch, e.into()).await),
        };
        let mut offers = vec![first];
        for code in &codes_now.retired {
            match AgentOffer::new(code, true, &self.spake, binding, rng) {
                Ok((_, offer)) => offers.push(offer),
                Err(e) => return Err(refuse(ch, e.into()).await),
            }
        }
        ch.send(&Message::PairReply(PairReply { offers })).await?;
        Ok(Offered { guard, live, name: self.name })
    }
}

impl Offered<'_> {
    /// Waits for the peer's key confirmation; on a match consumes the code and sends
    /// `Accepted`.
    pub async fn confirm<R, W>(mut self, ch: &mut Channel<R, W>) -> Result<PeerAccepted, HandshakeError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let confirm = match recv(ch).await? {
            Message::PairConfirm(PairConfirm { confirm }) => confirm,
            m => return Err(refuse(ch, unexpected(&m, "PairConfirm")).await),
        };
        if self.live.verify_peer(&confirm).is_err() {
            return Err(refuse(ch, HandshakeError::WrongCode).await);
        }
        self.guard.done = true;
        if !lock(self.guard.book).succeed(&self.guard.attempt) {
            return Err(refuse(ch, HandshakeError::CodeRetired).await);
        }
        ch.send(&Message::Accepted(Accepted { paired: true })).await?;
        ch.set_limit(MAX_FRAME);
        Ok(PeerAccepted { name: std::mem::take(&mut self.name), method: AuthMethod::Paired })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::CodecError;
    use crate::defaults::PAIR_BACKOFF;
    use crate::id::KeyId;
    use rand::SeedableRng;
    use rand::rngs::{OsRng, StdRng};
    use tokio::io::DuplexStream;

    use crate::channel::{TestHalf as Half, pipe};

    fn binding(exporter: u8) -> Binding {
        Binding { agent: KeyId([1; 32]), peer: KeyId([2; 32]), exporter: [exporter; 32] }
    }

    fn code(s: &str) -> PairingCode {
        s.parse().expect("code")
    }

    fn book(live: &str) -> Mutex<CodeBook> {
        Mutex::new(CodeBook::new(code(live), StdRng::seed_from_u64(7)))
    }

    /// A different device each time, so that per-source backoff stays out of the way.
    fn someone() -> Requester {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Requester { source: Source::of(std::net::Ipv4Addr::from(0x0a00_0000 + n).into()), now: Instant::now() }
    }

    async fn run(
        peer_code: Option<&str>,
        codes: &Mutex<CodeBook>,
        trusted: bool,
        peer_binding: Binding,
        agent_binding: Binding,
    ) -> (Result<AuthMethod, HandshakeError>, Result<PeerAccepted, HandshakeError>) {
        let (mut p, mut a) = pipe();
        let peer_code = peer_code.map(code);
        let peer = async {
            let r = peer_handshake(&mut p, "phone", peer_code.as_ref(), &peer_binding, &mut OsRng).await;
            drop(p); // the binaries close the connection on failure
            r
        };
        let mut rng = OsRng;
        let agent = agent_handshake(&mut a, codes, trusted, someone(), &agent_binding, &mut rng);
        tokio::join!(peer, agent)
    }

    #[tokio::test]
    async fn right_code_confirms_both_sides_and_is_single_use() {
        let codes = book("7K3Q-M2XD");
        let (p, a) = run(Some("7k3q m2xd"), &codes, false, binding(3), binding(3)).await;
        assert_eq!(p.expect("peer paired"), AuthMethod::Paired);
        let accepted = a.expect("agent paired");
        assert_eq!(accepted, PeerAccepted { name: "phone".into(), method: AuthMethod::Paired });
        let changes = lock(&codes).take_changes();
        assert_eq!(changes.len(), 1, "a used code is replaced");

        // The same code again is now retired, and both sides say so.
        let (p, a) = run(Some("7K3Q-M2XD"), &codes, false, binding(3), binding(3)).await;
        assert!(matches!(p, Err(HandshakeError::CodeRetired)), "{p:?}");
        assert!(matches!(a, Err(HandshakeError::CodeRetired)), "{a:?}");
    }

    #[tokio::test]
    async fn wrong_code_fails_on_both_sides() {
        let codes = book("7K3Q-M2XD");
        let (p, a) = run(Some("7K3Q-M2XE"), &codes, false, binding(3), binding(3)).await;
        assert!(matches!(p, Err(HandshakeError::WrongCode)), "{p:?}");
        assert!(matches!(a, Err(HandshakeError::WrongCode)), "{a:?}");
        assert_eq!(lock(&codes).failures(), 1);
    }

    #[tokio::test]
    async fn tls_terminating_relay_fails_on_both_sides() {
        let codes = book("7K3Q-M2XD");
        let (p, a) = run(Some("7K3Q-M2XD"), &codes, false, binding(3), binding(4)).await;
        assert!(matches!(p, Err(HandshakeError::WrongCode)), "{p:?}");
        assert!(matches!(a, Err(HandshakeError::WrongCode)), "{a:?}");
    }

    #[tokio::test]
    async fn three_failures_retire_the_code() {
        let codes = book("7K3Q-M2XD");
        for _ in 0..3 {
            let (p, _) = run(Some("AAAA-AAAA"), &codes, false, binding(3), binding(3)).await;
            assert!(matches!(p, Err(HandshakeError::WrongCode)));
        }
        let changes = lock(&codes).take_changes();
        assert_eq!(changes.len(), 1);
        let (p, _) = run(Some("7K3Q-M2XD"), &codes, false, binding(3), binding(3)).await;
        assert!(matches!(p, Err(HandshakeError::CodeRetired)), "{p:?}");
        let fresh = changes[0].new.to_string();
        let (p, a) = run(Some(&fresh), &codes, false, binding(3), binding(3)).await;
        assert!(p.is_ok() && a.is_ok(), "{p:?} {a:?}");
    }

    #[tokio::test]
    async fn an_abandoned_attempt_counts_as_failed() {
        let codes = book("7K3Q-M2XD");
        let (mut p, mut a) = pipe();
        let (_, spake) = PeerPairing::start(&code("AAAA-AAAA"), &mut OsRng);
        let start = Start { version: PROTOCOL_VERSION, name: "x".into(), auth: StartAuth::Pair { spake } };
        p.send(&Message::Start(start)).await.expect("send");
        {
            // The agent answers, then waits for a confirmation that never comes: the
            // caller's deadline drops the future.
            let (b, mut rng) = (binding(3), OsRng);
            let agent = agent_handshake(&mut a, &codes, false, someone(), &b, &mut rng);
            let r = tokio::time::timeout(std::time::Duration::from_millis(50), agent).await;
            assert!(r.is_err(), "agent should still be waiting");
        }
        assert_eq!(lock(&codes).failures(), 1);
    }

    #[tokio::test]
    async fn an_attempt_that_stalls_before_its_spake_message_spends_nothing() {
        let codes = book("7K3Q-M2XD");
        let (from, b, live) = (someone(), binding(3), code("7K3Q-M2XD"));
        for _ in 0..5 {
            let (_p, mut a) = pipe();
            let mut rng = OsRng;
            let agent = agent_handshake(&mut a, &codes, false, from, &b, &mut rng);
            let r = tokio::time::timeout(std::time::Duration::from_millis(20), agent).await;
            assert!(r.is_err(), "agent should still be waiting for Start");
        }
        assert_eq!(lock(&codes).failures(), 0);
        // The same source may still pair at once.
        let (mut p, mut a) = pipe();
        let (mut rng, mut agent_rng) = (OsRng, OsRng);
        let peer = peer_handshake(&mut p, "phone", Some(&live), &b, &mut rng);
        let (p, a) = tokio::join!(peer, agent_handshake(&mut a, &codes, false, from, &b, &mut agent_rng));
        assert!(p.is_ok() && a.is_ok(), "{p:?} {a:?}");
    }

    #[tokio::test]
    async fn after_a_failure_the_same_source_is_refused_before_spending_an_attempt() {
        let codes = book("7K3Q-M2XD");
        let (from, b) = (someone(), binding(3));
        let attempt = |guess: &'static str, from: Requester| {
            let (codes, b) = (&codes, &b);
            async move {
                let (mut p, mut a) = pipe();
                let guess = code(guess);
                let peer = async {
                    let r = peer_handshake(&mut p, "x", Some(&guess), b, &mut OsRng).await;
                    drop(p);
                    r
                };
                let mut rng = OsRng;
                tokio::join!(peer, agent_handshake(&mut a, codes, false, from, b, &mut rng))
            }
        };
        let (p, _) = attempt("AAAA-AAAA", from).await;
        assert!(matches!(p, Err(HandshakeError::WrongCode)), "{p:?}");
        // Even the right code waits out the backoff: the peer hears Busy, the agent
        // knows why, and the code keeps its remaining attempts.
        let (p, a) = attempt("7K3Q-M2XD", Requester { now: from.now + Duration::from_secs(1), ..from }).await;
        assert!(matches!(p, Err(HandshakeError::Busy)), "{p:?}");
        assert!(matches!(a, Err(HandshakeError::Backoff { .. })), "{a:?}");
        assert_eq!(lock(&codes).failures(), 1);
        let (p, a) = attempt("7K3Q-M2XD", Requester { now: from.now + PAIR_BACKOFF, ..from }).await;
        assert!(p.is_ok() && a.is_ok(), "{p:?} {a:?}");
    }

    #[tokio::test]
    async fn malformed_spake_messages_do_not_spend_attempts() {
        let codes = book("7K3Q-M2XD");
        for junk in [vec![0x41; 5], vec![0x42; 33]] {
            let (mut p, mut a) = pipe();
            let start = Start { version: PROTOCOL_VERSION, name: "x".into(), auth: StartAuth::Pair { spake: junk } };
            p.send(&Message::Start(start)).await.expect("send");
            let r = agent_handshake(&mut a, &codes, false, someone(), &binding(3), &mut OsRng).await;
            assert!(matches!(r, Err(HandshakeError::Pairing(PairingError::BadMessage(_)))), "{r:?}");
        }
        assert_eq!(lock(&codes).failures(), 0);
    }

    #[tokio::test]
    async fn pinned_keys_need_a_trusted_peer() {
        let codes = book("7K3Q-M2XD");
        let (p, a) = run(None, &codes, true, binding(3), binding(3)).await;
        assert_eq!(p.expect("pinned"), AuthMethod::Pinned);
        assert_eq!(a.expect("pinned").method, AuthMethod::Pinned);
        let (p, a) = run(None, &codes, false, binding(3), binding(3)).await;
        assert!(matches!(p, Err(HandshakeError::NotTrusted)), "{p:?}");
        assert!(matches!(a, Err(HandshakeError::NotTrusted)), "{a:?}");
    }

    /// An agent channel and the raw other end of its pipe.
    fn raw_pipe() -> (DuplexStream, Half) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (br, bw) = tokio::io::split(b);
        (a, Channel::new(br, bw))
    }

    #[tokio::test]
    async fn other_versions_are_told_apart_from_garbage() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let codes = book("7K3Q-M2XD");
        let (mut raw, mut a) = raw_pipe();
        // A next version's Start whose body this version cannot parse.
        let next = u8::try_from(PROTOCOL_VERSION + 1).expect("small");
        raw.write_all(&[0, 0, 0, 4, MessageType::Start as u8, next, 0xff, 0xff]).await.expect("write");
        let r = agent_handshake(&mut a, &codes, false, someone(), &binding(3), &mut OsRng).await;
        let theirs = PROTOCOL_VERSION + 1;
        assert!(
            matches!(r, Err(HandshakeError::VersionMismatch { ours: PROTOCOL_VERSION, theirs: t }) if t == theirs),
            "{r:?}"
        );
        // The agent told the peer which version it speaks.
        let mut header = [0u8; 4];
        raw.read_exact(&mut header).await.expect("reply header");
        let mut body = vec![0u8; codec::check_length(header).expect("length")];
        raw.read_exact(&mut body).await.expect("reply body");
        let reply = codec::decode(&body).expect("reply decodes");
        assert!(matches!(
            reply,
            Message::Reject(Reject { code: RejectCode::VersionMismatch, version: PROTOCOL_VERSION, .. })
        ));
    }

    #[tokio::test]
    async fn garbage_first_frame_is_a_typed_error() {
        use tokio::io::AsyncWriteExt;
        let codes = book("7K3Q-M2XD");
        let (mut raw, mut a) = raw_pipe();
        raw.write_all(&[0, 0, 0, 2, 0xee, 0xee]).await.expect("write");
        let r = agent_handshake(&mut a, &codes, false, someone(), &binding(3), &mut OsRng).await;
        assert!(matches!(r, Err(HandshakeError::Channel(ChannelError::Codec(CodecError::UnknownType(0xee))))));
    }

    #[tokio::test]
    async fn an_oversized_first_frame_is_refused_unread_and_spends_no_attempt() {
        use tokio::io::AsyncWriteExt;
        let codes = book("7K3Q-M2XD");
        let (mut raw, mut a) = raw_pipe();
        let len = u32::try_from(MAX_PREAUTH_FRAME + 1).expect("small");
        raw.write_all(&len.to_be_bytes()).await.expect("write");
        let r = agent_handshake(&mut a, &codes, false, someone(), &binding(3), &mut OsRng).await;
        assert!(
            matches!(
                r,
                Err(HandshakeError::Channel(ChannelError::Codec(CodecError::Oversized { max: MAX_PREAUTH_FRAME, .. })))
            ),
            "{r:?}"
        );
        assert_eq!(lock(&codes).failures(), 0);
    }
}
