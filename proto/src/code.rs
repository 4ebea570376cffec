//! Pairing codes and the agent's book of current and retired codes.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use rand::rngs::StdRng;

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

/// An attempt may use the live code: its generation, the code, and the retired codes.
#[derive(Debug, Clone)]
pub struct AttemptCodes {
    /// Generation of `live`, to settle the attempt with.
    pub generation: u64,
    /// The live code.
    pub live: PairingCode,
    /// Recently retired codes, newest first.
    pub retired: Vec<PairingCode>,
}

/// The agent's codes: the live one, its attempts, and recently retired ones.
///
/// An attempt counts as failed from the moment it begins until it succeeds, and at most
/// [`MAX_FAILED_ATTEMPTS`] attempts may begin per code, including concurrent ones: an
/// attacker gets three guesses per code however it times its connections. Every code
/// has a generation number so that an attempt begun under one code cannot consume or
/// spoil its successor. Replacements queue up for the agent to announce.
#[derive(Debug)]
pub struct CodeBook {
    current: PairingCode,
    generation: u64,
    begun: u32,
    failed: u32,
    retired: VecDeque<PairingCode>,
    changes: Vec<CodeChange>,
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

    /// Begins an attempt, or `None` when [`MAX_FAILED_ATTEMPTS`] attempts on the live
    /// code are already under way.
    pub fn begin_attempt(&mut self) -> Option<AttemptCodes> {
        if self.begun >= MAX_FAILED_ATTEMPTS {
            return None;
        }
        self.begun += 1;
        Some(AttemptCodes {
            generation: self.generation,
            live: self.current.clone(),
            retired: self.retired.iter().cloned().collect(),
        })
    }

    /// Settles an attempt as failed; the last allowed failure retires the code.
    /// Attempts against an older code change nothing.
    pub fn fail(&mut self, generation: u64) {
        if generation != self.generation {
            return;
        }
        self.failed += 1;
        if self.failed >= MAX_FAILED_ATTEMPTS {
            self.retire(RetireReason::TooManyFailures);
        }
    }

    /// Settles an attempt as successful and consumes the code. Returns false when
    /// `generation` is no longer live (another peer used the code first).
    pub fn succeed(&mut self, generation: u64) -> bool {
        if generation != self.generation {
            return false;
        }
        self.retire(RetireReason::Used);
        true
    }

    /// Replacements since the last call, oldest first.
    pub fn take_changes(&mut self) -> Vec<CodeChange> {
        std::mem::take(&mut self.changes)
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

    #[test]
    fn third_failure_retires_the_code() {
        let mut book = book();
        for _ in 0..2 {
            let attempt = book.begin_attempt().expect("attempt allowed");
            book.fail(attempt.generation);
        }
        assert!(book.take_changes().is_empty());
        let attempt = book.begin_attempt().expect("third attempt allowed");
        assert_eq!(attempt.live, code("AAAA-AAAA"));
        book.fail(attempt.generation);
        let changes = book.take_changes();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].reason, RetireReason::TooManyFailures);
        assert_eq!(book.current(), &changes[0].new);
        assert_eq!(book.generation(), 1);
        let next = book.begin_attempt().expect("new code accepts attempts");
        assert_eq!(next.retired, vec![code("AAAA-AAAA")]);
    }

    #[test]
    fn concurrent_attempts_are_capped_per_code() {
        let mut book = book();
        let attempts: Vec<_> = (0..3).map(|_| book.begin_attempt()).collect();
        assert!(attempts.iter().all(Option::is_some));
        assert!(book.begin_attempt().is_none(), "a fourth guess at the same code");
    }

    #[test]
    fn codes_are_single_use_and_stale_attempts_change_nothing() {
        let mut book = book();
        let first = book.begin_attempt().expect("attempt");
        let second = book.begin_attempt().expect("attempt");
        assert!(book.succeed(first.generation));
        assert_eq!(book.take_changes().first().map(|c| c.reason), Some(RetireReason::Used));
        // The second peer started under the same code: it can no longer use it...
        assert!(!book.succeed(second.generation));
        // ...and its failure does not count against the new code.
        book.fail(second.generation);
        assert_eq!(book.failures(), 0);
        assert!(book.take_changes().is_empty());
    }

    #[test]
    fn remembers_a_bounded_number_of_retired_codes() {
        let mut book = book();
        for _ in 0..10 {
            let a = book.begin_attempt().expect("attempt");
            book.succeed(a.generation);
        }
        let a = book.begin_attempt().expect("attempt");
        assert_eq!(a.retired.len(), REMEMBERED_RETIRED);
    }
}
