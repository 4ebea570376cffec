//! The start of every conversation, for both roles: the version check and
//! authentication (pairing with a code, or pinned keys). What follows authentication is
//! in [`crate::conversation`].
//!
//! These functions drive a [`Channel`]; they hold no clock and no sockets. The agent's
//! attempt bookkeeping is cancellation-safe: an attempt counts as failed until it
//! succeeds, also when the caller's deadline drops the future half-way.

use std::sync::Mutex;

use rand::{CryptoRng, RngCore};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::channel::{Channel, ChannelError};
use crate::code::{CodeBook, PairingCode};
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
    /// Too many attempts on the live code are under way.
    #[error("too many pairing attempts are under way")]
    Busy,
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
    /// Results that do not answer the plan.
    #[error("the results do not match the plan")]
    BadResults(#[from] crate::plan::ResultsError),
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
            HandshakeError::Busy => RejectCode::Busy,
            HandshakeError::Pairing(_) => RejectCode::Malformed,
            HandshakeError::Unexpected { .. } | HandshakeError::TooManyPings { .. } => RejectCode::Unexpected,
            HandshakeError::TooManyAddresses { .. } | HandshakeError::BadResults(_) => RejectCode::Malformed,
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
    generation: u64,
    done: bool,
}

impl Drop for AttemptGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            lock(self.book).fail(self.generation);
        }
    }
}

/// Runs the agent's side: checks the version, then pairs against `codes` or accepts
/// pinned keys when `peer_trusted`. Code replacements are queued in `codes`.
pub async fn agent_handshake<R, W>(
    ch: &mut Channel<R, W>,
    codes: &Mutex<CodeBook>,
    peer_trusted: bool,
    binding: &Binding,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<PeerAccepted, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    ch.set_limit(MAX_PREAUTH_FRAME);
    let result = agent_auth(ch, codes, peer_trusted, binding, rng).await;
    ch.set_limit(MAX_FRAME);
    result
}

async fn agent_auth<R, W>(
    ch: &mut Channel<R, W>,
    codes: &Mutex<CodeBook>,
    peer_trusted: bool,
    binding: &Binding,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<PeerAccepted, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
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
            return Ok(PeerAccepted { name: start.name, method: AuthMethod::Pinned });
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
    let Some(codes_now) = lock(codes).begin_attempt() else {
        return Err(refuse(ch, HandshakeError::Busy).await);
    };
    let mut attempt = AttemptGuard { book: codes, generation: codes_now.generation, done: false };
    let (live, first) = match AgentOffer::new(&codes_now.live, false, &spake, binding, rng) {
        Ok(offer) => offer,
        Err(e) => return Err(refuse(ch, e.into()).await),
    };
    let mut offers = vec![first];
    for code in &codes_now.retired {
        match AgentOffer::new(code, true, &spake, binding, rng) {
            Ok((_, offer)) => offers.push(offer),
            Err(e) => return Err(refuse(ch, e.into()).await),
        }
    }
    ch.send(&Message::PairReply(PairReply { offers })).await?;
    let confirm = match recv(ch).await? {
        Message::PairConfirm(PairConfirm { confirm }) => confirm,
        m => return Err(refuse(ch, unexpected(&m, "PairConfirm")).await),
    };
    if live.verify_peer(&confirm).is_err() {
        return Err(refuse(ch, HandshakeError::WrongCode).await);
    }
    attempt.done = true;
    if !lock(codes).succeed(attempt.generation) {
        return Err(refuse(ch, HandshakeError::CodeRetired).await);
    }
    ch.send(&Message::Accepted(Accepted { paired: true })).await?;
    Ok(PeerAccepted { name: start.name, method: AuthMethod::Paired })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::CodecError;
    use crate::id::KeyId;
    use rand::SeedableRng;
    use rand::rngs::{OsRng, StdRng};
    use tokio::io::{DuplexStream, ReadHalf, WriteHalf};

    type Half = Channel<ReadHalf<DuplexStream>, WriteHalf<DuplexStream>>;

    fn pipe() -> (Half, Half) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (ar, aw) = tokio::io::split(a);
        let (br, bw) = tokio::io::split(b);
        (Channel::new(ar, aw), Channel::new(br, bw))
    }

    fn binding(exporter: u8) -> Binding {
        Binding { agent: KeyId([1; 32]), peer: KeyId([2; 32]), exporter: [exporter; 32] }
    }

    fn code(s: &str) -> PairingCode {
        s.parse().expect("code")
    }

    fn book(live: &str) -> Mutex<CodeBook> {
        Mutex::new(CodeBook::new(code(live), StdRng::seed_from_u64(7)))
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
        let agent = agent_handshake(&mut a, codes, trusted, &agent_binding, &mut rng);
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
            let agent = agent_handshake(&mut a, &codes, false, &b, &mut rng);
            let r = tokio::time::timeout(std::time::Duration::from_millis(50), agent).await;
            assert!(r.is_err(), "agent should still be waiting");
        }
        assert_eq!(lock(&codes).failures(), 1);
    }

    #[tokio::test]
    async fn malformed_spake_messages_do_not_spend_attempts() {
        let codes = book("7K3Q-M2XD");
        for junk in [vec![0x41; 5], vec![0x42; 33]] {
            let (mut p, mut a) = pipe();
            let start = Start { version: PROTOCOL_VERSION, name: "x".into(), auth: StartAuth::Pair { spake: junk } };
            p.send(&Message::Start(start)).await.expect("send");
            let r = agent_handshake(&mut a, &codes, false, &binding(3), &mut OsRng).await;
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
        let r = agent_handshake(&mut a, &codes, false, &binding(3), &mut OsRng).await;
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
        let r = agent_handshake(&mut a, &codes, false, &binding(3), &mut OsRng).await;
        assert!(matches!(r, Err(HandshakeError::Channel(ChannelError::Codec(CodecError::UnknownType(0xee))))));
    }

    #[tokio::test]
    async fn an_oversized_first_frame_is_refused_unread_and_spends_no_attempt() {
        use tokio::io::AsyncWriteExt;
        let codes = book("7K3Q-M2XD");
        let (mut raw, mut a) = raw_pipe();
        let len = u32::try_from(MAX_PREAUTH_FRAME + 1).expect("small");
        raw.write_all(&len.to_be_bytes()).await.expect("write");
        let r = agent_handshake(&mut a, &codes, false, &binding(3), &mut OsRng).await;
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
