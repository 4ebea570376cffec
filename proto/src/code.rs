//! Pairing codes and the agent's book of current and retired codes, with who may begin
//! an attempt on them.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use rand::RngCore;
use rand::rngs::StdRng;

use crate::addr::Source;
use crate::defaults::{MAX_BACKOFF_SOURCES, PAIR_BACKOFF, PAIR_BACKOFF_MAX};
use crate::id::{SYMBOLS, crockford, crockford_value};

/// Symbols in a code: 8 Crockford symbols carry 40 bits.
pub const CODE_SYMBOLS: usize = 8;

/// Failed attempts after which the agent retires a code and issues a new one.
pub const MAX_FAILED_ATTEMPTS: u32 = 3;

/// Retired codes the agent still recognises, to tell a peer "retired" rather than "wrong".
pub const REMEMBERED_RETIRED: usize = 3;

/// A one-time pairing code such as `7K3Q-M2XD`: 40 random bits, typeable on a phone.
///
/// Parsing ignores case, dashes and spaces and reads `O` as `0` and `I`/`L` as `1`.
#[derive(Clone, PartialEq, Eq)]
pub struct PairingCode(String);

impl PairingCode {
    /// A fresh random code.
    pub fn random(rng: &mut impl RngCore) -> Self {
        let mut bytes = [0u8; 5];
        rng.fill_bytes(&mut bytes);
        PairingCode(crockford(&bytes, CODE_SYMBOLS))
    }

    /// The canonical symbols without the dash: the SPAKE2 password.
    pub fn canonical(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PairingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", &self.0[..4], &self.0[4..])
    }
}

impl fmt::Debug for PairingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Codes are secrets while they are live: keep them out of debug logs.
        f.write_str("PairingCode(…)")
    }
}

/// Why a typed code is not a pairing code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadCode {
    /// Too few or too many symbols.
    #[error("a pairing code has {CODE_SYMBOLS} letters and digits (like 7K3Q-M2XD); got {0}")]
    Length(usize),
    /// A character outside the code alphabet.
    #[error("{0:?} cannot appear in a pairing code (codes use digits and letters except U)")]
    Symbol(char),
}

impl FromStr for PairingCode {
    type Err = BadCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = String::with_capacity(CODE_SYMBOLS);
        for c in s.chars().filter(|c| *c != '-' && !c.is_whitespace()) {
            let v = crockford_value(c).ok_or(BadCode::Symbol(c))?;
            out.push(char::from(SYMBOLS[usize::from(v)]));
        }
        if out.len() != CODE_SYMBOLS {
            return Err(BadCode::Length(out.len()));
        }
        Ok(PairingCode(out))
    }
}

/// Why a code stopped being valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetireReason {
    /// A peer paired with it; codes are single-use.
    Used,
    /// [`MAX_FAILED_ATTEMPTS`] attempts failed.
    TooManyFailures,
}

/// The agent's current code was replaced; the agent shows `new` to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChange {
    /// Why the old code went.
    pub reason: RetireReason,
    /// The code now in force.
    pub new: PairingCode,
}

/// One pairing attempt, as the book settles it: the code generation it began under, its
/// source and when it began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    generation: u64,
    source: Source,
    began: Instant,
}

/// An attempt may use the live code: the attempt, the code, and the retired codes.
#[derive(Debug, Clone)]
pub struct AttemptCodes {
    /// The attempt, to settle with [`CodeBook::fail`] or [`CodeBook::succeed`].
    pub attempt: Attempt,
    /// The live code.
    pub live: PairingCode,
    /// Recently retired codes, newest first.
    pub retired: Vec<PairingCode>,
}

/// Why an attempt may not begin now. Nothing is spent: the peer may try again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotNow {
    /// [`MAX_FAILED_ATTEMPTS`] attempts on the live code are under way, or one from the
    /// same source.
    Busy,
    /// An attempt from this source failed recently; it may begin another after `wait`.
    Backoff {
        /// How long it still has to wait.
        wait: Duration,
    },
}

/// What the book remembers about one source's attempts.
#[derive(Debug, Clone, Copy)]
struct SourceRecord {
    /// An attempt from it is under way.
    in_flight: bool,
    /// Failed attempts in a row.
    failures: u32,
    /// No new attempt before this.
    until: Instant,
}

/// How long a source waits after a failure when the book remembers `failures` failed
/// attempts in all (this one included), counted from the start of the failed attempt:
/// [`PAIR_BACKOFF`], doubling with each remembered failure, at most [`PAIR_BACKOFF_MAX`].
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    PAIR_BACKOFF.saturating_mul(1 << doublings).min(PAIR_BACKOFF_MAX)
}

/// The agent's codes: the live one, its attempts, and recently retired ones.
///
/// An attempt counts as failed from the moment it begins until it succeeds, and at most
/// [`MAX_FAILED_ATTEMPTS`] attempts may begin per code, including concurrent ones: an
/// attacker gets three guesses per code however it times its connections. Every code
/// has a generation number so that an attempt begun under one code cannot consume or
/// spoil its successor. Replacements queue up for the agent to announce.
///
/// So that nobody can keep the code burning, each source (an IPv4 address, an IPv6 /64)
/// has one attempt under way at most, and after a failure waits [`backoff`] before its
/// next; refusals spend nothing. The wait doubles with every failure the book remembers,
/// from any source: an attacker with many addresses gets one quick failure per address,
/// then slows down as fast as one with a single address. A source that has not failed
/// (a person typing the code for the first time) never waits; a success forgets the
/// source's failures, and a source is forgotten [`PAIR_BACKOFF_MAX`] after its wait ends.
#[derive(Debug)]
pub struct CodeBook {
    current: PairingCode,
    generation: u64,
    begun: u32,
    failed: u32,
    retired: VecDeque<PairingCode>,
    changes: Vec<CodeChange>,
    sources: HashMap<Source, SourceRecord>,
    rng: StdRng,
}

impl CodeBook {
    /// A book whose first code is `initial`; `rng` makes the codes that follow.
    pub fn new(initial: PairingCode, rng: StdRng) -> Self {
        CodeBook {
            current: initial,
            generation: 0,
            begun: 0,
            failed: 0,
            retired: VecDeque::new(),
            changes: Vec::new(),
            sources: HashMap::new(),
            rng,
        }
    }

    /// The live code.
    pub fn current(&self) -> &PairingCode {
        &self.current
    }

    /// The live code's generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Failed attempts against the live code so far.
    pub fn failures(&self) -> u32 {
        self.failed
    }

    /// Begins an attempt from `source` at `now`, or says why not (spending nothing).
    pub fn begin_attempt(&mut self, source: Source, now: Instant) -> Result<AttemptCodes, NotNow> {
        self.forget(now);
        let fresh = SourceRecord { in_flight: false, failures: 0, until: now };
        let record = self.sources.get(&source).copied().unwrap_or(fresh);
        if record.in_flight {
            return Err(NotNow::Busy);
        }
        if record.until > now {
            return Err(NotNow::Backoff { wait: record.until - now });
        }
        if self.begun >= MAX_FAILED_ATTEMPTS {
            return Err(NotNow::Busy);
        }
        if !self.sources.contains_key(&source) && self.sources.len() >= MAX_BACKOFF_SOURCES {
            self.make_room();
        }
        self.sources.insert(source, SourceRecord { in_flight: true, ..record });
        self.begun += 1;
        Ok(AttemptCodes {
            attempt: Attempt { generation: self.generation, source, began: now },
            live: self.current.clone(),
            retired: self.retired.iter().cloned().collect(),
        })
    }

    /// Settles an attempt as failed: its source waits before the next, and the last
    /// allowed failure retires the code. Attempts against an older code do not count
    /// against the live one.
    pub fn fail(&mut self, attempt: &Attempt) {
        let remembered = self.sources.values().fold(1u32, |n, r| n.saturating_add(r.failures));
        let record = self.sources.entry(attempt.source).or_insert(SourceRecord {
            in_flight: false,
            failures: 0,
            until: attempt.began,
        });
        record.in_flight = false;
        record.failures = record.failures.saturating_add(1);
        record.until = attempt.began + backoff(remembered);
        if attempt.generation != self.generation {
            return;
        }
        self.failed += 1;
        if self.failed >= MAX_FAILED_ATTEMPTS {
            self.retire(RetireReason::TooManyFailures);
        }
    }

    /// Settles an attempt as successful and consumes the code. Returns false when its
    /// generation is no longer live (another peer used the code first).
    pub fn succeed(&mut self, attempt: &Attempt) -> bool {
        self.sources.remove(&attempt.source);
        if attempt.generation != self.generation {
            return false;
        }
        self.retire(RetireReason::Used);
        true
    }

    /// Replacements since the last call, oldest first.
    pub fn take_changes(&mut self) -> Vec<CodeChange> {
        std::mem::take(&mut self.changes)
    }

    /// Forgets sources whose wait ended [`PAIR_BACKOFF_MAX`] ago.
    fn forget(&mut self, now: Instant) {
        self.sources.retain(|_, r| r.in_flight || now.saturating_duration_since(r.until) < PAIR_BACKOFF_MAX);
    }

    /// Forgets the source whose backoff ends first (the table is full).
    fn make_room(&mut self) {
        let first = self.sources.iter().filter(|(_, r)| !r.in_flight).min_by_key(|(_, r)| r.until).map(|(s, _)| *s);
        if let Some(source) = first {
            self.sources.remove(&source);
        }
    }

    fn retire(&mut self, reason: RetireReason) {
        let new = PairingCode::random(&mut self.rng);
        let old = std::mem::replace(&mut self.current, new.clone());
        self.retired.push_front(old);
        self.retired.truncate(REMEMBERED_RETIRED);
        self.generation += 1;
        self.begun = 0;
        self.failed = 0;
        self.changes.push(CodeChange { reason, new });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn code(s: &str) -> PairingCode {
        s.parse().expect("valid code")
    }

    #[test]
    fn parse_ignores_case_dashes_and_confusable_letters() {
        assert_eq!(code("7k3q-m2xd"), code("7K3QM2XD"));
        assert_eq!(code(" 7K3Q m2xd "), code("7K3Q-M2XD"));
        assert_eq!(code("OIL0-0000"), code("0110-0000"));
        assert_eq!(code("7K3QM2XD").to_string(), "7K3Q-M2XD");
    }

    #[test]
    fn parse_rejects_wrong_length_and_symbols() {
        assert_eq!("7K3Q-M2X".parse::<PairingCode>(), Err(BadCode::Length(7)));
        assert_eq!("7K3Q-M2XDD".parse::<PairingCode>(), Err(BadCode::Length(9)));
        assert_eq!("7K3Q-M2XU".parse::<PairingCode>(), Err(BadCode::Symbol('U')));
        assert_eq!("7K3Q-M2X!".parse::<PairingCode>(), Err(BadCode::Symbol('!')));
    }

    #[test]
    fn random_codes_differ_and_reparse() {
        let mut rng = StdRng::seed_from_u64(1);
        let a = PairingCode::random(&mut rng);
        let b = PairingCode::random(&mut rng);
        assert_ne!(a, b);
        assert_eq!(code(&a.to_string()), a);
        assert_eq!(format!("{a:?}"), "PairingCode(…)");
    }

    fn book() -> CodeBook {
        CodeBook::new(code("AAAA-AAAA"), StdRng::seed_from_u64(2))
    }

    fn source(i: u8) -> Source {
        Source::of(std::net::Ipv4Addr::new(198, 51, 100, i).into())
    }

    #[test]
    fn third_failure_retires_the_code() {
        let mut book = book();
        let now = Instant::now();
        for i in 0..2 {
            let a = book.begin_attempt(source(i), now).expect("attempt allowed");
            book.fail(&a.attempt);
        }
        assert!(book.take_changes().is_empty());
        let a = book.begin_attempt(source(2), now).expect("third attempt allowed");
        assert_eq!(a.live, code("AAAA-AAAA"));
        book.fail(&a.attempt);
        let changes = book.take_changes();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].reason, RetireReason::TooManyFailures);
        assert_eq!(book.current(), &changes[0].new);
        assert_eq!(book.generation(), 1);
        let next = book.begin_attempt(source(3), now).expect("new code accepts attempts");
        assert_eq!(next.retired, vec![code("AAAA-AAAA")]);
    }

    #[test]
    fn concurrent_attempts_are_capped_per_code_and_per_source() {
        let mut book = book();
        let now = Instant::now();
        assert!(book.begin_attempt(source(0), now).is_ok());
        assert_eq!(book.begin_attempt(source(0), now).err(), Some(NotNow::Busy), "a second at once from one source");
        assert!((1..3).all(|i| book.begin_attempt(source(i), now).is_ok()));
        assert_eq!(book.begin_attempt(source(9), now).err(), Some(NotNow::Busy), "a fourth guess at the same code");
    }

    #[test]
    fn a_source_waits_longer_after_each_failure() {
        let mut book = book();
        let t0 = Instant::now();
        let a = book.begin_attempt(source(0), t0).expect("attempt");
        book.fail(&a.attempt);
        let soon = t0 + Duration::from_secs(1);
        assert_eq!(
            book.begin_attempt(source(0), soon).err(),
            Some(NotNow::Backoff { wait: PAIR_BACKOFF - Duration::from_secs(1) })
        );
        // Others are not affected, and the refusal spent nothing.
        let other = book.begin_attempt(source(1), soon).expect("another source");
        assert_eq!(book.failures(), 1);
        assert!(book.succeed(&other.attempt));
        let t1 = t0 + PAIR_BACKOFF;
        let a = book.begin_attempt(source(0), t1).expect("after the backoff");
        book.fail(&a.attempt);
        assert!(book.begin_attempt(source(0), t1 + PAIR_BACKOFF).is_err(), "the second backoff is longer");
        assert!(book.begin_attempt(source(0), t1 + PAIR_BACKOFF * 2).is_ok());
        assert_eq!(backoff(1), PAIR_BACKOFF);
        assert_eq!(backoff(3), PAIR_BACKOFF * 4);
        assert_eq!(backoff(40), PAIR_BACKOFF_MAX);
    }

    #[test]
    fn one_source_burns_codes_slowly() {
        // Wrong guesses from one source as fast as the agent allows, for 30 s: three
        // guesses every 300 ms once retired 98 codes in that time.
        let mut book = book();
        let t0 = Instant::now();
        let mut now = t0;
        while now < t0 + Duration::from_secs(30) {
            if let Ok(a) = book.begin_attempt(source(66), now) {
                book.fail(&a.attempt);
            }
            now += Duration::from_millis(100);
        }
        let retired = book.take_changes().len();
        assert!(retired <= 2, "{retired} codes retired");
    }

    #[test]
    fn many_sources_burn_codes_slowly_too() {
        // 16 addresses guessing as fast as the agent allows, for 30 s.
        let mut book = book();
        let t0 = Instant::now();
        let mut now = t0;
        let mut failures = 0;
        while now < t0 + Duration::from_secs(30) {
            for i in 0..16 {
                if let Ok(a) = book.begin_attempt(source(100 + i), now) {
                    book.fail(&a.attempt);
                    failures += 1;
                }
            }
            now += Duration::from_millis(100);
        }
        assert!(failures <= 16 + 5, "{failures} failed attempts");
        // A first attempt from a new address is never delayed.
        assert!(book.begin_attempt(source(2), now).is_ok());
    }

    #[test]
    fn a_success_forgets_the_sources_failures() {
        let mut book = book();
        let t0 = Instant::now();
        let a = book.begin_attempt(source(0), t0).expect("attempt");
        book.fail(&a.attempt);
        let a = book.begin_attempt(source(0), t0 + PAIR_BACKOFF).expect("attempt");
        assert!(book.succeed(&a.attempt));
        let a = book.begin_attempt(source(0), t0 + PAIR_BACKOFF).expect("no backoff after a success");
        book.fail(&a.attempt);
        assert_eq!(book.begin_attempt(source(0), t0 + PAIR_BACKOFF * 2).map(|_| ()), Ok(()), "first failure again");
    }

    #[test]
    fn the_memory_of_sources_is_bounded() {
        let mut book = book();
        let t0 = Instant::now();
        for i in 0..MAX_BACKOFF_SOURCES as u32 + 10 {
            let s = Source::of(std::net::Ipv4Addr::from(0x0a00_0000 + i).into());
            if let Ok(a) = book.begin_attempt(s, t0) {
                book.fail(&a.attempt);
            }
        }
        assert!(book.sources.len() <= MAX_BACKOFF_SOURCES);
        book.forget(t0 + PAIR_BACKOFF_MAX * 3);
        assert!(book.sources.is_empty());
    }

    #[test]
    fn codes_are_single_use_and_stale_attempts_change_nothing() {
        let mut book = book();
        let now = Instant::now();
        let first = book.begin_attempt(source(0), now).expect("attempt");
        let second = book.begin_attempt(source(1), now).expect("attempt");
        assert!(book.succeed(&first.attempt));
        assert_eq!(book.take_changes().first().map(|c| c.reason), Some(RetireReason::Used));
        // The second peer started under the same code: it can no longer use it...
        assert!(!book.succeed(&second.attempt));
        // ...and its failure does not count against the new code.
        book.fail(&second.attempt);
        assert_eq!(book.failures(), 0);
        assert!(book.take_changes().is_empty());
    }

    #[test]
    fn remembers_a_bounded_number_of_retired_codes() {
        let mut book = book();
        let now = Instant::now();
        for i in 0..10 {
            let a = book.begin_attempt(source(i), now).expect("attempt");
            book.succeed(&a.attempt);
        }
        let a = book.begin_attempt(source(0), now).expect("attempt");
        assert_eq!(a.retired.len(), REMEMBERED_RETIRED);
    }
}
