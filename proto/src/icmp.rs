//! The agent's witness of its own ICMP errors: Linux counts, per network namespace,
//! every ICMP destination-unreachable it sends and every ICMP error its rate limiter
//! suppresses (`/proc/net/snmp`, `/proc/net/snmp6`; the rate-limit counters exist since
//! Linux 6.0). While a peer probes, a silent probe hides a rejection by this host only
//! if the host suppressed the error, or sent it and the peer never saw it. So when the
//! host suppressed nothing and sent no more errors than the peer saw as ICMP errors,
//! silence is a drop without the quiet re-probe's wait for the host's ICMP credit (the
//! rule is [`IcmpWitness::vouches`]; [`crate::run`] applies it).
//!
//! The counters are the namespace's, not the peer's: an error sent to anyone else, or
//! suppressed for anyone else, spoils the witness (the run then falls back to the quiet
//! re-probes). The per-host limiter has a counter per family; IPv6's share of the global
//! limiter is counted in the IPv4 table (`OutRateLimitGlobal`), so that counter spoils
//! both families. Errors sent from another namespace are not counted: a router's, a
//! forwarding host's (the peer applies the witness only to the agent's declared
//! addresses on its own link), a container's behind a published port (not to UDP
//! services: TCP there answers with a RST). A bridge on the same link that filters with
//! br_netfilter and rejects with rate-limited ICMP is the case left: its REJECT could be
//! taken for a DROP.

use serde::{Deserialize, Serialize};

/// The counters of one namespace at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpCounters {
    /// Destination-unreachable errors sent, IPv4 then IPv6 (`Icmp: OutDestUnreachs`,
    /// `Icmp6OutDestUnreachs`).
    pub unreachable: [u64; 2],
    /// Errors the per-destination limiter suppressed, IPv4 then IPv6
    /// (`OutRateLimitHost`, `Icmp6OutRateLimitHost`).
    pub limited: [u64; 2],
    /// Errors of both families the global limiter suppressed (`OutRateLimitGlobal`).
    pub global_limited: u64,
}

/// What the agent tells a peer that asks mid-run ([`crate::msg::Message::Witness`]):
/// the errors its host sent and suppressed since it sent the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IcmpWitness {
    /// Destination-unreachable errors sent, IPv4 then IPv6.
    pub sent: [u32; 2],
    /// Errors the per-destination limiter suppressed, IPv4 then IPv6.
    pub limited: [u32; 2],
    /// Errors of either family the global limiter suppressed.
    pub global_limited: u32,
}

impl IcmpWitness {
    /// Whether no silence of `family` (0: IPv4, 1: IPv6) at this host hides a rejection,
    /// given that the peer saw `seen` ICMP errors of the family so far: nothing was
    /// suppressed, and every error sent is one the peer saw (none was lost, nor missed by
    /// a socket).
    pub fn vouches(&self, family: usize, seen: u32) -> bool {
        let (Some(&sent), Some(&limited)) = (self.sent.get(family), self.limited.get(family)) else {
            return false;
        };
        self.global_limited == 0 && limited == 0 && sent <= seen
    }
}

impl IcmpCounters {
    /// Reads the counters from the text of `/proc/net/snmp` and `/proc/net/snmp6`;
    /// `None` unless every one is there (a kernel before 6.0 lacks the rate-limit ones).
    pub fn parse(snmp: &str, snmp6: &str) -> Option<IcmpCounters> {
        // `Icmp:` comes as two lines: the names, then the values.
        let mut icmp = snmp.lines().filter(|l| l.starts_with("Icmp:"));
        let (names, values) = (icmp.next()?, icmp.next()?);
        let v4 = |name: &str| {
            let at = names.split_whitespace().position(|n| n == name)?;
            values.split_whitespace().nth(at)?.parse::<u64>().ok()
        };
        let v6 = |name: &str| {
            snmp6.lines().find_map(|l| {
                let mut words = l.split_whitespace();
                (words.next()? == name).then(|| words.next()?.parse::<u64>().ok())?
            })
        };
        Some(IcmpCounters {
            unreachable: [v4("OutDestUnreachs")?, v6("Icmp6OutDestUnreachs")?],
            limited: [v4("OutRateLimitHost")?, v6("Icmp6OutRateLimitHost")?],
            global_limited: v4("OutRateLimitGlobal")?,
        })
    }

    /// What happened from `earlier` to `self`.
    pub fn since(&self, earlier: &IcmpCounters) -> IcmpWitness {
        let delta = |now: u64, then: u64| u32::try_from(now.saturating_sub(then)).unwrap_or(u32::MAX);
        IcmpWitness {
            sent: [0, 1].map(|f| delta(self.unreachable[f], earlier.unreachable[f])),
            limited: [0, 1].map(|f| delta(self.limited[f], earlier.limited[f])),
            global_limited: delta(self.global_limited, earlier.global_limited),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNMP: &str = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
        Icmp: InMsgs InErrors OutMsgs OutErrors OutRateLimitGlobal OutRateLimitHost OutDestUnreachs OutTimeExcds\n\
        Icmp: 9 0 12 0 3 4 5 0\n\
        IcmpMsg: OutType3\nIcmpMsg: 5\n";
    const SNMP6: &str = "Icmp6InMsgs                     \t1\nIcmp6OutRateLimitHost           \t7\n\
        Icmp6OutDestUnreachs            \t8\nIcmp6OutType1                   \t8\n";

    #[test]
    fn counters_are_read_by_name() {
        let c = IcmpCounters::parse(SNMP, SNMP6).expect("counters");
        assert_eq!(c, IcmpCounters { unreachable: [5, 8], limited: [4, 7], global_limited: 3 });
    }

    #[test]
    fn a_kernel_without_rate_limit_counters_gives_no_witness() {
        let old = "Icmp: InMsgs OutMsgs OutDestUnreachs\nIcmp: 1 2 3\n";
        assert_eq!(IcmpCounters::parse(old, SNMP6), None);
        assert_eq!(IcmpCounters::parse(SNMP, "Icmp6OutDestUnreachs 1\n"), None);
        assert_eq!(IcmpCounters::parse("", ""), None);
    }

    #[test]
    fn the_witness_vouches_only_when_nothing_was_suppressed_and_every_error_was_seen() {
        let base = IcmpCounters::parse(SNMP, SNMP6).expect("counters");
        let quiet = base.since(&base);
        assert_eq!(quiet, IcmpWitness::default());
        assert!(quiet.vouches(0, 0) && quiet.vouches(1, 0));
        // Two errors sent (the UDP test listeners bound elsewhere): vouches once the peer
        // saw both, not before.
        let sent = IcmpCounters { unreachable: [7, 8], ..base }.since(&base);
        assert_eq!(sent.sent, [2, 0]);
        assert!(!sent.vouches(0, 1) && sent.vouches(0, 2) && sent.vouches(1, 0));
        // Suppressed for IPv6: IPv6 only; by the global limiter: both.
        let limited6 = IcmpCounters { limited: [4, 8], ..base }.since(&base);
        assert!(limited6.vouches(0, 0) && !limited6.vouches(1, 5));
        let global = IcmpCounters { global_limited: 4, ..base }.since(&base);
        assert!(!global.vouches(0, 9) && !global.vouches(1, 9));
        // Counters that went backwards (a namespace replaced) count as nothing new;
        // an unknown family vouches for nothing.
        assert_eq!(base.since(&IcmpCounters { unreachable: [9, 9], ..base }).sent, [0, 0]);
        assert!(!quiet.vouches(2, 0));
    }
}
