//! Who may take the agent's time before authenticating: the rules for admitting a new
//! connection, for making room, and for moving an authenticated one to its own pool.
//!
//! A connection that has not authenticated is anybody on the LAN, and cheap to make: an
//! attacker with many addresses (IPv6 gives one millions) can open them faster than any
//! deadline ends them. So:
//!
//! - unauthenticated connections share one pool of [`MAX_UNAUTHENTICATED`] places, at most
//!   [`MAX_UNAUTHENTICATED_PER_SOURCE`] per [`Source`];
//! - when the pool (or the source's share) is full, a newcomer takes the place of the
//!   oldest connection that has been pending for at least [`PREAUTH_GRACE`]: a real peer
//!   authenticates within tens of milliseconds, connections that say nothing grow old.
//!   A flood therefore cannot starve a real peer: it only shortens how long a silent
//!   connection lives;
//! - with [`RETRY_ABOVE`] connections pending, a newcomer whose address QUIC has not
//!   validated gets a Retry instead of a place: a spoofed Initial costs one packet;
//! - a connection that authenticates (pinned keys are known right after the TLS
//!   handshake) leaves the pool for the pool of sessions ([`MAX_SESSIONS`]), which
//!   unauthenticated connections never touch.
//!
//! Pure rules: time comes in as a parameter, the agent acts on the decisions (accepting,
//! retrying, refusing, closing the evicted connection).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Instant;

use crate::addr::Source;
use crate::defaults::{MAX_SESSIONS, MAX_UNAUTHENTICATED, MAX_UNAUTHENTICATED_PER_SOURCE, PREAUTH_GRACE, RETRY_ABOVE};

/// One admitted connection's place. Tickets grow with arrival: a lower one is older.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(u64);

/// What to do with a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Serve it under `ticket`; close `evict` first, whose place it takes.
    Admit {
        /// Its place.
        ticket: Ticket,
        /// An older unauthenticated connection to close now.
        evict: Option<Ticket>,
    },
    /// Answer with a QUIC Retry: a real client comes back with a token that proves its
    /// address, and then counts as validated.
    Retry,
    /// Refuse it.
    Refuse(Refusal),
}

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its source holds all the places one source may, and none is old enough to give up.
    SourceFull,
    /// The pool is full and no connection in it is old enough to give up.
    Full,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::SourceFull => "too many unauthenticated connections from this address",
            Refusal::Full => "too many unauthenticated connections",
        })
    }
}

/// Why a connection could not move to the pool of sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSession {
    /// It lost its place to a newcomer before it authenticated.
    Evicted,
    /// [`MAX_SESSIONS`] sessions are running.
    Full,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    source: Source,
    since: Instant,
}

/// The agent's unauthenticated pool and its pool of sessions.
#[derive(Debug, Default)]
pub struct Admission {
    pending: BTreeMap<Ticket, Pending>,
    sessions: BTreeSet<Ticket>,
    next: u64,
}

impl Admission {
    /// Empty pools.
    pub fn new() -> Self {
        Admission::default()
    }

    /// Decides about a connection from `source` arriving `now`; `validated` when QUIC has
    /// already validated its address (it came back with a Retry token).
    pub fn arrive(&mut self, source: Source, validated: bool, now: Instant) -> Decision {
        if !validated && self.pending.len() >= RETRY_ABOVE {
            return Decision::Retry;
        }
        let old_enough = |p: &Pending| now.saturating_duration_since(p.since) >= PREAUTH_GRACE;
        let mut own = self.pending.iter().filter(|(_, p)| p.source == source);
        let evict = if own.clone().count() >= MAX_UNAUTHENTICATED_PER_SOURCE {
            match own.next().filter(|(_, p)| old_enough(p)) {
                Some((t, _)) => Some(*t),
                None => return Decision::Refuse(Refusal::SourceFull),
            }
        } else if self.pending.len() >= MAX_UNAUTHENTICATED {
            match self.pending.iter().next().filter(|(_, p)| old_enough(p)) {
                Some((t, _)) => Some(*t),
                None => return Decision::Refuse(Refusal::Full),
            }
        } else {
            None
        };
        if let Some(t) = evict {
            self.pending.remove(&t);
        }
        let ticket = Ticket(self.next);
        self.next += 1;
        self.pending.insert(ticket, Pending { source, since: now });
        Decision::Admit { ticket, evict }
    }

    /// Moves an authenticated connection to the pool of sessions (again is fine).
    pub fn authenticated(&mut self, ticket: Ticket) -> Result<(), NoSession> {
        if self.sessions.contains(&ticket) {
            return Ok(());
        }
        if self.pending.remove(&ticket).is_none() {
            return Err(NoSession::Evicted);
        }
        if self.sessions.len() >= MAX_SESSIONS {
            return Err(NoSession::Full);
        }
        self.sessions.insert(ticket);
        Ok(())
    }

    /// Whether `ticket` is in the pool of sessions.
    pub fn is_session(&self, ticket: Ticket) -> bool {
        self.sessions.contains(&ticket)
    }

    /// The connection ended: its place is free.
    pub fn leave(&mut self, ticket: Ticket) {
        self.pending.remove(&ticket);
        self.sessions.remove(&ticket);
    }

    /// Unauthenticated connections pending now.
    pub fn unauthenticated(&self) -> usize {
        self.pending.len()
    }

    /// Sessions running now.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn source(i: u32) -> Source {
        Source::of(std::net::Ipv4Addr::from(0xc633_6400 + i).into())
    }

    fn admitted(d: Decision) -> (Ticket, Option<Ticket>) {
        match d {
            Decision::Admit { ticket, evict } => (ticket, evict),
            other => panic!("not admitted: {other:?}"),
        }
    }

    /// `n` validated connections, one every `gap`, from `sources` sources in turn;
    /// returns the time after the last.
    fn flood(a: &mut Admission, n: usize, sources: u32, start: Instant, gap: Duration) -> Instant {
        let mut now = start;
        for i in 0..n {
            let i = u32::try_from(i).expect("small");
            let _ = a.arrive(source(100 + i % sources), true, now);
            now += gap;
        }
        now
    }

    #[test]
    fn a_newcomer_takes_the_place_of_the_oldest_connection_past_the_grace() {
        let mut a = Admission::new();
        let t0 = Instant::now();
        // 16 sources at 100 connections a second fill the pool, and keep coming.
        let now = flood(&mut a, 1000, 16, t0, Duration::from_millis(10));
        assert_eq!(a.unauthenticated(), MAX_UNAUTHENTICATED);
        // The real peer is admitted, pushing out the oldest silent connection.
        let (phone, evict) = admitted(a.arrive(source(2), true, now));
        assert!(evict.is_some());
        // It survives the next connections of the flood for far longer than a LAN
        // pairing takes.
        let later = flood(&mut a, 64, 16, now, Duration::from_millis(10));
        assert_eq!(later - now, Duration::from_millis(640));
        assert_eq!(a.authenticated(phone), Ok(()));
        assert_eq!(a.sessions(), 1);
    }

    #[test]
    fn young_connections_are_not_pushed_out() {
        let mut a = Admission::new();
        let now = flood(&mut a, MAX_UNAUTHENTICATED, 16, Instant::now(), Duration::ZERO);
        assert_eq!(a.arrive(source(2), true, now), Decision::Refuse(Refusal::Full));
        let (_, evict) = admitted(a.arrive(source(2), true, now + PREAUTH_GRACE));
        assert_eq!(evict, Some(Ticket(0)), "the oldest goes first");
    }

    #[test]
    fn one_source_holds_a_few_places_and_pushes_out_only_its_own() {
        let mut a = Admission::new();
        let t0 = Instant::now();
        let now = flood(&mut a, 50, 1, t0, Duration::ZERO);
        assert_eq!(a.unauthenticated(), MAX_UNAUTHENTICATED_PER_SOURCE);
        assert_eq!(a.arrive(source(100), true, now), Decision::Refuse(Refusal::SourceFull));
        let (other, evict) = admitted(a.arrive(source(7), true, now));
        assert_eq!(evict, None);
        let (_, evict) = admitted(a.arrive(source(100), true, now + PREAUTH_GRACE));
        assert!(evict.is_some_and(|t| t != other));
    }

    #[test]
    fn unvalidated_newcomers_get_a_retry_when_the_pool_is_busy() {
        let mut a = Admission::new();
        let t0 = Instant::now();
        for i in 0..RETRY_ABOVE {
            let i = u32::try_from(i).expect("small");
            admitted(a.arrive(source(i), false, t0));
        }
        // Half-open Initials from spoofed sources now cost a Retry packet and no place.
        for i in 0..1000 {
            assert_eq!(a.arrive(source(1000 + i), false, t0), Decision::Retry);
        }
        assert_eq!(a.unauthenticated(), RETRY_ABOVE);
        // The real peer comes back with its token.
        admitted(a.arrive(source(2), true, t0));
    }

    #[test]
    fn sessions_have_their_own_pool() {
        let mut a = Admission::new();
        let now = Instant::now();
        let tickets: Vec<Ticket> =
            (0..MAX_SESSIONS as u32 + 1).map(|i| admitted(a.arrive(source(i), true, now)).0).collect();
        for t in &tickets[..MAX_SESSIONS] {
            assert_eq!(a.authenticated(*t), Ok(()));
            assert!(a.is_session(*t));
        }
        assert_eq!(a.authenticated(tickets[MAX_SESSIONS]), Err(NoSession::Full));
        // Sessions leave the unauthenticated pool empty for newcomers.
        assert_eq!(a.unauthenticated(), 0);
        a.leave(tickets[0]);
        assert_eq!(a.sessions(), MAX_SESSIONS - 1);
    }

    #[test]
    fn an_evicted_connection_cannot_become_a_session() {
        let mut a = Admission::new();
        let t0 = Instant::now();
        let first = admitted(a.arrive(source(1), true, t0)).0;
        let now = flood(&mut a, MAX_UNAUTHENTICATED, 16, t0, Duration::ZERO) + PREAUTH_GRACE;
        let (_, evict) = admitted(a.arrive(source(2), true, now));
        assert_eq!(evict, Some(first));
        assert_eq!(a.authenticated(first), Err(NoSession::Evicted));
        a.leave(first);
        assert_eq!(a.unauthenticated(), MAX_UNAUTHENTICATED);
    }
}
