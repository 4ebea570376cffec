//! What the agent's terminal shows over time: events in, text out, the current pairing
//! code last.
//!
//! Anybody on the LAN can make connections fail, and codes retire after failed attempts,
//! so without limits an attacker decides how much the agent prints (once ~11,000 lines in
//! 5 s, the real code long scrolled away). Here:
//!
//! - what authenticated peers do is shown at once (only paired peers get there);
//! - failed or refused connections from the unauthenticated side are described one by
//!   one a few times per [`CODE_REPRINT`], then counted into one summary line;
//! - a code retired after failed attempts is announced once, at most every
//!   [`CODE_REPRINT`]: codes burned in between are never shown, only counted;
//! - whenever anything was printed after the code, the code is shown again (right after
//!   a summary, otherwise at most every [`CODE_REPRINT`]), so the last thing on the
//!   screen is the code that works now.
//!
//! Pure: time comes in as a parameter; `app` feeds events and ticks and prints the text.

use std::collections::HashSet;
use std::time::Instant;

use lanreach_proto::addr::Source;
use lanreach_proto::code::{CodeChange, PairingCode, RetireReason};
use lanreach_proto::defaults::CODE_REPRINT;

use crate::control::Event;
use crate::render::{self, Invite};

/// Failed connections described one by one per [`CODE_REPRINT`].
pub(crate) const FAILURES_SHOWN: usize = 3;

/// Sources counted apart in a summary line; beyond, the count is "at least".
const SOURCES_COUNTED: usize = 4096;

/// The terminal's state: which code it shows, when it last showed it, and the failures
/// it has not described yet.
#[derive(Debug)]
pub(crate) struct Screen {
    invite: Invite,
    quiet: bool,
    /// The code in force.
    code: PairingCode,
    /// When the code was last printed.
    shown_at: Instant,
    /// Something was printed after the code, or the code changed, since it was shown.
    due: bool,
    /// Why the newest code not announced yet replaced its predecessor.
    changed: Option<RetireReason>,
    /// Codes retired after failed attempts and not announced.
    burned: u32,
    /// Start of the current period of failure descriptions.
    period: Instant,
    /// Failures described in this period.
    described: usize,
    /// Failures not described in this period, and from how many sources.
    hidden: usize,
    hidden_sources: HashSet<Source>,
    /// A used browser link whose successor is shown when that browser's run ends.
    link_due: Option<crate::web::LinkChange>,
}

impl Screen {
    /// The screen right after the banner showed `code` at `now`.
    pub(crate) fn new(code: PairingCode, invite: Invite, quiet: bool, now: Instant) -> Screen {
        Screen {
            invite,
            quiet,
            code,
            shown_at: now,
            due: false,
            changed: None,
            burned: 0,
            period: now,
            described: 0,
            hidden: 0,
            hidden_sources: HashSet::new(),
            link_due: None,
        }
    }

    /// What to print for `event` now (possibly nothing).
    pub(crate) fn event(&mut self, event: &Event, now: Instant) -> String {
        let from_outside = match event {
            Event::CodeChanged(change) => return self.code_changed(change, now),
            Event::BrowserLink { token, change } => {
                self.invite.token = Some(token.clone());
                // A used link: its successor is shown after that browser's report, which
                // would push it off the screen (the page tells the user to scan it).
                if *change == crate::web::LinkChange::Used {
                    self.link_due = Some(*change);
                    return String::new();
                }
                return self.show_link(*change, now);
            }
            Event::BrowserFinished { .. } | Event::BrowserFailed { ended: true, .. } if self.link_due.is_some() => {
                let text = render::event(event, &self.invite, self.quiet).unwrap_or_default();
                let change = self.link_due.take().unwrap_or(crate::web::LinkChange::Used);
                return text + &self.show_link(change, now);
            }
            Event::PeerFailed { from, authenticated: false, .. }
            | Event::Refused { from, .. }
            | Event::BrowserFailed { from, .. } => Some(*from),
            _ => None,
        };
        let Some(text) = render::event(event, &self.invite, self.quiet) else { return String::new() };
        if let Some(from) = from_outside {
            if self.described >= FAILURES_SHOWN {
                self.hidden += 1;
                if self.hidden_sources.len() < SOURCES_COUNTED {
                    self.hidden_sources.insert(Source::of(from.ip()));
                }
                return String::new();
            }
            self.described += 1;
        }
        self.due = true;
        text
    }

    /// What to print because time passed: the summary of undescribed failures, then the
    /// code when it is due, last.
    pub(crate) fn tick(&mut self, now: Instant) -> String {
        let mut out = String::new();
        let mut summed_up = false;
        if now.saturating_duration_since(self.period) >= CODE_REPRINT {
            if self.hidden > 0 {
                let sources = self.hidden_sources.len();
                let secs = now.saturating_duration_since(self.period).as_secs();
                out.push_str(&render::undescribed_failures(self.hidden, sources, secs));
                self.due = true;
                summed_up = true;
            }
            self.period = now;
            self.described = 0;
            self.hidden = 0;
            self.hidden_sources.clear();
        }
        // A summary (at most one per period) is always followed by the code.
        if self.due && (summed_up || now.saturating_duration_since(self.shown_at) >= CODE_REPRINT) {
            out.push_str(&self.show_code(now));
        }
        out
    }

    fn code_changed(&mut self, change: &CodeChange, now: Instant) -> String {
        self.code = change.new.clone();
        self.due = true;
        self.changed = Some(change.reason);
        if change.reason == RetireReason::TooManyFailures {
            self.burned += 1;
        }
        // A used code means a peer just paired: announce its successor at once. Codes
        // burned by failed attempts are announced at most every CODE_REPRINT.
        if change.reason == RetireReason::Used || now.saturating_duration_since(self.shown_at) >= CODE_REPRINT {
            return self.show_code(now);
        }
        String::new()
    }

    /// The new browser link and its QR code, with the code in force.
    fn show_link(&mut self, change: crate::web::LinkChange, now: Instant) -> String {
        self.shown(now);
        render::new_link(render::browser_link_reason(change), &self.code, &self.invite)
    }

    /// The whole block (code, link, QR code) was printed at `now`: nothing is due.
    fn shown(&mut self, now: Instant) {
        self.shown_at = now;
        self.due = false;
        self.changed = None;
        self.burned = 0;
    }

    fn show_code(&mut self, now: Instant) -> String {
        let why = match (self.changed, self.burned) {
            (None, _) => return self.remind(now),
            (Some(RetireReason::Used), _) => "the last code was used".to_owned(),
            (Some(RetireReason::TooManyFailures), 0 | 1) => {
                "the last code had too many failed attempts and is retired".to_owned()
            }
            (Some(RetireReason::TooManyFailures), n) => format!("{n} codes were retired after failed attempts"),
        };
        self.shown(now);
        render::new_code(&why, &self.code, &self.invite)
    }

    fn remind(&mut self, now: Instant) -> String {
        self.shown_at = now;
        self.due = false;
        render::code_reminder(&self.code, &self.invite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::SessionError;
    use lanreach_proto::KeyId;
    use lanreach_proto::admission::Refusal;
    use lanreach_proto::handshake::HandshakeError;
    use std::net::SocketAddr;
    use std::time::Duration;

    fn code(s: &str) -> PairingCode {
        s.parse().expect("code")
    }

    fn invite() -> Invite {
        Invite {
            addresses: vec![("198.51.100.1:47800".parse().expect("addr"), Some(24))],
            id: KeyId([1; 32]),
            qr: None,
            width: None,
            all_addresses: false,
            token: None,
        }
    }

    fn screen(now: Instant) -> Screen {
        Screen::new(code("7K3Q-M2XD"), invite(), false, now)
    }

    fn wrong_code(i: u32) -> Event {
        let from = SocketAddr::from(([198, 51, 100, 66], 40000 + u16::try_from(i % 1000).expect("small")));
        Event::PeerFailed {
            from,
            error: SessionError::Handshake(HandshakeError::WrongCode),
            failures: 1,
            authenticated: false,
        }
    }

    fn burned(new: &str) -> Event {
        Event::CodeChanged(CodeChange { reason: RetireReason::TooManyFailures, new: code(new) })
    }

    /// The code in the last line that shows one.
    fn last_code(text: &str) -> Option<String> {
        text.lines().rev().find_map(|l| l.split("pairing code: ").nth(1)).map(|r| r.chars().take(9).collect())
    }

    #[test]
    fn a_flood_of_failures_and_burned_codes_prints_a_bounded_screen_ending_with_the_code() {
        let t0 = Instant::now();
        let mut s = screen(t0);
        let mut out = String::new();
        let mut now = t0;
        let mut live = String::from("7K3Q-M2XD");
        // 1000 codes burned in 5 s, three failures each, as once happened.
        for i in 0..3000u32 {
            now = t0 + Duration::from_millis(u64::from(i) * 5 / 3);
            out.push_str(&s.event(&wrong_code(i), now));
            if i % 3 == 2 {
                live = PairingCode::random(&mut rand::thread_rng()).to_string();
                out.push_str(&s.event(&burned(&live), now));
            }
            if i % 30 == 0 {
                out.push_str(&s.tick(now));
            }
        }
        out.push_str(&s.tick(now + CODE_REPRINT));
        let lines = out.lines().count();
        assert!(lines < 40, "{lines} lines:\n{out}");
        assert_eq!(last_code(&out), Some(live), "{out}");
        assert!(out.contains("codes were retired after failed attempts"), "{out}");
        assert!(out.contains("more connections"), "{out}");
        assert!(out.trim_end().lines().last().is_some_and(|l| !l.starts_with("Peer at")), "{out}");
    }

    #[test]
    fn a_used_code_is_replaced_on_screen_at_once() {
        let t0 = Instant::now();
        let mut s = screen(t0);
        let text = s.event(&Event::CodeChanged(CodeChange { reason: RetireReason::Used, new: code("AAAA-BBBB") }), t0);
        assert!(text.starts_with("New pairing code (the last code was used):"), "{text}");
        assert_eq!(last_code(&text).as_deref(), Some("AAAA-BBBB"));
        assert_eq!(s.tick(t0 + CODE_REPRINT * 3), "", "nothing printed since");
    }

    #[test]
    fn lines_after_the_code_bring_it_back_last() {
        let t0 = Instant::now();
        let mut s = screen(t0);
        let refused = Event::Refused { from: "198.51.100.66:4000".parse().expect("addr"), why: Refusal::Full };
        assert!(s.event(&refused, t0).starts_with("Peer at 198.51.100.66:4000: refused"));
        assert_eq!(s.tick(t0 + Duration::from_secs(1)), "", "not before CODE_REPRINT");
        let text = s.tick(t0 + CODE_REPRINT);
        assert_eq!(last_code(&text).as_deref(), Some("7K3Q-M2XD"), "{text}");
        assert_eq!(text.lines().count(), 1, "a reminder is one line: {text}");
    }

    #[test]
    fn a_used_browser_link_is_replaced_on_screen_after_that_browsers_report() {
        let t0 = Instant::now();
        let mut s = screen(t0);
        let from: SocketAddr = "198.51.100.2:50000".parse().expect("addr");
        let used =
            Event::BrowserLink { token: "NEWTOKEN0123456789ABCDEFGH".into(), change: crate::web::LinkChange::Used };
        assert_eq!(s.event(&used, t0), "", "not while the browser's report is still to come");
        let text = s.event(&Event::BrowserFinished { from, name: "Chrome on Android".into() }, t0);
        assert!(text.starts_with("Browser at 198.51.100.2:50000: its page shows the answer"), "{text}");
        assert!(text.contains("New browser link and QR code (the last browser link was used)"), "{text}");
        assert_eq!(last_code(&text).as_deref(), Some("7K3Q-M2XD"), "the code is unchanged: {text}");
        let expired =
            Event::BrowserLink { token: "NEXT0123456789ABCDEFGHJKMN".into(), change: crate::web::LinkChange::Expired };
        assert!(s.event(&expired, t0).contains("the last browser link expired unused"));
    }

    #[test]
    fn quiet_screens_still_show_failures_and_codes() {
        let t0 = Instant::now();
        let mut s = Screen::new(code("7K3Q-M2XD"), invite(), true, t0);
        assert!(!s.event(&wrong_code(1), t0).is_empty());
        let text = s.event(&burned("AAAA-BBBB"), t0 + CODE_REPRINT);
        assert_eq!(last_code(&text).as_deref(), Some("AAAA-BBBB"), "{text}");
    }
}
