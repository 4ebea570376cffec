//! The rules of a probe run, without sockets and without a clock: which attempt to
//! start next, what an attempt's answer means, and when the run is over.
//!
//! Like quinn-proto and trippy's tracer, [`Run`] only decides. Its caller (the probe
//! engine, or a test's simulated network) starts each [`AttemptOrder`] it hands out,
//! feeds back what happened as an [`AttemptAnswer`], and passes the current time into
//! every call. The rules:
//!
//! - **Knock first.** At an address not yet known to be the agent's, only the knocks go
//!   out: one probe of a wildcard test listener of the address's own family per
//!   protocol, at no more than [`MAX_CLAIMED_ADDRESSES`] such addresses per run.
//!   A knock answered with this session's MAC (`open`) verifies the address, and only
//!   then do its other probes start (test listeners and the user's services). Once every
//!   knock at an address has failed, its other probes are `not_probed`: the peer sends
//!   nothing more to a host that has not proved to be the agent's, and what it reports
//!   about that address is one coarse reason (`unreachable`: no route; `timeout`:
//!   silent; `not_probed`: not the agent), never what answered on which port. Trusted
//!   addresses (the one the control channel reached) are probed in full without a knock.
//! - **The user's ports first.** After the knocks, the service probes start (in plan
//!   order: the `--check` ports before the `--exposed` ones), then the test listeners:
//!   the probes whose reject-versus-drop matters meet the host's ICMP errors unspent.
//! - **One retry after silence.** An attempt that heard nothing is tried again once (up
//!   to [`ATTEMPTS`] in all); any answer settles the probe, silence after the last
//!   attempt is `timeout`.
//! - **Silence is re-probed quietly where reject-versus-drop matters.** A host sends a
//!   peer only a burst of ICMP errors, then about one per [`ICMP_RATE_WINDOW`] (per
//!   address family), so in a burst of probes a REJECT rule's answer may never come: that
//!   silence is no drop. For the user's ports and the wildcard test listeners at their
//!   own family (the path picture), the retry is a *quiet re-probe*: it starts only when
//!   nothing else of its family is under way or waiting and the family's traffic has
//!   been quiet long enough for the host to have earned back every ICMP error the
//!   re-probe may draw (one window for UDP, two for TCP, whose quiet re-probe also waits
//!   past the SYN retransmission, [`SYN_RETRANSMIT`]). The run keeps that ICMP credit per
//!   family: it earns one error per window while no ordinary attempt of the family is
//!   under way (never more than [`ICMP_CREDIT_CAP`]), a quiet re-probe reserves what it
//!   may draw, and gets back what it did not draw (silence, an answer that is no ICMP
//!   error). Silence after a quiet re-probe is a drop; a `timeout` with one attempt (the
//!   run ended before its quiet re-probe) is not. The cost falls on silent probes only.
//!   IPv4 TCP quiet re-probes go together (a `Group`): every one waiting joins the group
//!   the credit allows, and a group that met no error at all met no rejection (its first
//!   rejected SYN would have found the host's token), so its silent members are drops;
//!   after a group that met errors, its silent members wait for the next. IPv6 ones go
//!   one at a time (a connect may miss its first SYN's error there).
//! - **The agent's witness first.** Before any quiet re-probe of a family, the caller
//!   asks the agent whether its host sent or suppressed any ICMP error of that family
//!   since the plan ([`crate::icmp`]): if not, no silence of the family hides a
//!   rejection by that host, and silent probes of its verified addresses on the peer's
//!   own link are drops at once (`proven`), with no wait for ICMP credit. Otherwise, or
//!   without an answer, the quiet re-probes decide as above. A `timeout` is `proven`
//!   only by one or the other.
//! - **Paced.** At most `concurrency` attempts in flight; UDP attempts start at least
//!   [`UDP_SPACING`] apart, so that the hosts' ICMP rate limit turns fewer refusals into
//!   silence.
//! - **One deadline.** [`RUN_DEADLINE`] after the start the run is over: unsettled
//!   probes are `timeout`, except those still waiting for their address to be verified,
//!   which are `not_probed`.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::defaults::{
    ATTEMPTS, CONCURRENCY, ICMP_CREDIT_CAP, ICMP_RATE_WINDOW, MAX_CLAIMED_ADDRESSES, RUN_DEADLINE, SYN_RETRANSMIT,
    UDP_SPACING, probe_timeout,
};
use crate::icmp::IcmpWitness;
use crate::plan::ProbePlan;
use crate::vocab::{EACCES, EHOSTUNREACH, ENETUNREACH, Outcome, ProbeResult, ProbeResults, Proto, ServiceResult};

/// How to run a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunConfig {
    /// Deadline of one attempt.
    pub attempt_timeout: Duration,
    /// Attempts in flight at once (at least one).
    pub concurrency: usize,
}

impl RunConfig {
    /// Defaults for a control channel with round trip `rtt`.
    pub fn for_rtt(rtt: Duration) -> Self {
        RunConfig { attempt_timeout: probe_timeout(rtt), concurrency: CONCURRENCY }
    }
}

/// What a probe dials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// One of the agent's test listeners: an attempt sends the knock, and only a reply
    /// carrying this session's MAC is `open`.
    Listener,
    /// One of the user's own ports: an attempt connects and looks at what answers.
    Service,
}

/// Names one attempt, to feed its answer back with [`Run::on_answer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttemptId {
    slot: usize,
    attempt: u8,
}

/// One attempt the caller is to make now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptOrder {
    /// Hand this back with the answer.
    pub id: AttemptId,
    /// Test listener or service.
    pub kind: ProbeKind,
    /// The plan's ID of the probe (of its kind).
    pub probe: u32,
    /// Protocol.
    pub proto: Proto,
    /// The address to dial.
    pub target: SocketAddr,
    /// 1 for the first attempt, 2 for the retry after silence.
    pub attempt: u8,
    /// Whether this is a quiet re-probe (see the [module documentation](self)).
    pub quiet: bool,
    /// How long the connect (TCP) may wait: for a quiet TCP re-probe, past the SYN
    /// retransmission; otherwise `timeout`.
    pub connect_timeout: Duration,
    /// How long each other step of the attempt may wait for the other side.
    pub timeout: Duration,
}

/// What one attempt found, as the network saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttemptAnswer {
    /// The outcome; `None` for silence (nothing came back before the deadline).
    pub outcome: Option<Outcome>,
    /// Round trip of the connect or exchange (none for silence).
    pub rtt: Option<Duration>,
    /// The OS error number behind the answer, when there was one.
    pub errno: Option<i32>,
    /// HTTP status of the answer to a minimal request (services only).
    pub http_status: Option<u16>,
    /// UDP: the local port the attempt's datagrams left from.
    pub source_port: Option<u16>,
}

impl AttemptAnswer {
    /// Nothing came back.
    pub fn silence() -> Self {
        AttemptAnswer::default()
    }

    /// A decisive answer after `rtt`.
    pub fn answered(outcome: Outcome, rtt: Duration) -> Self {
        AttemptAnswer { outcome: Some(outcome), rtt: Some(rtt), ..AttemptAnswer::default() }
    }
}

/// Whether an address is known to be the agent's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// Trusted from the start, or a knock there was answered with the session's MAC.
    Verified,
    /// Knocks there are still under way.
    Pending,
    /// No knock there can verify it any more.
    Failed,
}

/// A target address and the knocks that may verify it.
#[derive(Debug)]
struct Address {
    ip: IpAddr,
    trust: Trust,
    knocks_left: usize,
}

/// How a probe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Settled {
    outcome: Outcome,
    rtt: Option<Duration>,
    errno: Option<i32>,
    http_status: Option<u16>,
    attempts: u8,
    /// A `timeout` whose silence hides no rejection.
    proven: bool,
}

impl Settled {
    /// The last attempt's answer; silence is a timeout, which has no round trip.
    fn from_answer(answer: AttemptAnswer, attempts: u8) -> Self {
        Settled {
            outcome: answer.outcome.unwrap_or(Outcome::Timeout),
            rtt: answer.outcome.and(answer.rtt),
            errno: answer.errno,
            http_status: answer.http_status,
            attempts,
            proven: false,
        }
    }

    /// Silence proven to be a drop (by a quiet re-probe or the agent's witness).
    fn proven_silence(answer: AttemptAnswer, attempts: u8) -> Self {
        let settled = Settled::from_answer(answer, attempts);
        Settled { proven: settled.outcome == Outcome::Timeout, ..settled }
    }

    fn without_answer(outcome: Outcome, attempts: u8) -> Self {
        Settled { outcome, rtt: None, errno: None, http_status: None, attempts, proven: false }
    }
}

/// Whether the run has asked the agent's witness (see [`crate::icmp`]) for a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Witness {
    /// Not yet: ordinary attempts of the family are still to come.
    Unasked,
    /// Handed to the caller by [`Run::wants_witness`]; the answer is due.
    Asked,
    /// Answered (or given up): quiet re-probes may follow.
    Answered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not started.
    Waiting,
    /// Attempt number `attempt` is under way (`quiet`: a quiet re-probe).
    InFlight {
        attempt: u8,
        quiet: bool,
    },
    /// `attempts` attempts heard nothing; the next one is due at once.
    Retry {
        attempts: u8,
    },
    /// `attempts` attempts heard nothing; the quiet re-probe is due when the family's
    /// ICMP credit allows it.
    Quiet {
        attempts: u8,
    },
    /// A quiet re-probe of a group (see [`Group`]) heard nothing: settled when the whole
    /// group has answered.
    Held {
        attempt: u8,
    },
    Done(Settled),
}

/// The index of IPv4 in per-family arrays.
const IPV4: usize = 0;

/// IPv4 TCP quiet re-probes made together. A group starts when the IPv4 ICMP credit
/// allows one quiet TCP re-probe (the host can send this peer at least one error), and
/// every other IPv4 TCP probe waiting for its quiet re-probe joins it before any answer
/// arrives. An IPv4 connect sees the error its first SYN draws, and the first rejected
/// SYN of the group finds the host's token: a group that met no error at all met no
/// rejection, and every silent member is a drop, proven as by a lone quiet re-probe. A
/// group that met errors settles those members; its silent ones wait for the next group,
/// after the credit is earned again. Measured with `--exposed` over 128 ports, 16
/// dropped: 21 s one by one.
///
/// Not IPv6: there a connect may miss the error of its first SYN (measured), so only a
/// retransmitted SYN's error shows, and it comes only if the host earned a token back in
/// that second, too close to call. IPv6 quiet re-probes stay one at a time, each with its
/// own credit, until the engine reads queued ICMP errors (IPV6_RECVERR).
#[derive(Debug, Clone)]
struct Group {
    /// Answers that may have been ICMP errors (refused, unreachable).
    errors: u32,
    /// Members under way.
    pending: usize,
    /// Whether an answer arrived (nobody joins after that).
    answered: bool,
    /// Silent members: slot, attempt, answer.
    held: Vec<(usize, u8, AttemptAnswer)>,
}

/// One probe of the plan.
#[derive(Debug)]
struct Slot {
    kind: ProbeKind,
    id: u32,
    proto: Proto,
    target: SocketAddr,
    /// Whether this probe is a knock that may verify its address.
    knock: bool,
    /// Whether its silence is re-probed quietly: a service, or a wildcard test listener
    /// at an address of its own family.
    sensitive: bool,
    /// Index into `Run::addresses`.
    address: usize,
    state: State,
    /// UDP source ports of its attempts.
    source_ports: Vec<u16>,
    /// Answers of its attempts that were certainly ICMP errors ([`is_icmp_error`]).
    icmp_errors: u8,
}

impl Slot {
    /// Index into `Run::credit`: the target's address family.
    fn family(&self) -> usize {
        usize::from(!self.target.ip().to_canonical().is_ipv4())
    }
}

/// Whether `answer` was certainly an ICMP error (to hold against what the agent's
/// witness counts its host sent): a refused UDP datagram (port unreachable), or a host,
/// network or administrative unreachable. A TCP refusal may be a RST or an ICMP error, so
/// it is not counted: a witness that sent more than the run saw vouches for nothing. Only
/// the errors of the probes the witness covers are counted (see [`Run::on_witness`]).
fn is_icmp_error(proto: Proto, answer: &AttemptAnswer) -> bool {
    match answer.outcome {
        Some(Outcome::Refused) => proto == Proto::Udp,
        Some(Outcome::Unreachable) => matches!(answer.errno, Some(EACCES | ENETUNREACH | EHOSTUNREACH)),
        _ => false,
    }
}

/// The ICMP errors a quiet re-probe of `proto` may draw from the host, as credit time.
fn need(proto: Proto) -> Duration {
    match proto {
        // The SYN, and the retransmitted SYN the quiet re-probe waits for.
        Proto::Tcp => ICMP_RATE_WINDOW * 2,
        // The first datagram: its ICMP error ends the attempt.
        Proto::Udp => ICMP_RATE_WINDOW,
    }
}

/// What a quiet re-probe did not draw and gives back: everything, unless an ICMP error
/// may have answered it (refused, unreachable); a TCP error before the SYN
/// retransmission drew one error, not two.
fn refund(proto: Proto, answer: &AttemptAnswer) -> Duration {
    match answer.outcome {
        Some(Outcome::Refused | Outcome::Unreachable) => match proto {
            Proto::Tcp if answer.rtt.is_some_and(|rtt| rtt < SYN_RETRANSMIT) => ICMP_RATE_WINDOW,
            _ => Duration::ZERO,
        },
        _ => need(proto),
    }
}

/// What the run knows of the ICMP errors the agent's host may still send the peer in one
/// address family: a lower bound, counted as time (one [`ICMP_RATE_WINDOW`] per error).
#[derive(Debug, Clone, Copy)]
struct IcmpCredit {
    /// Ordinary attempts of the family under way: while any is, the credit is unknown
    /// (nothing).
    ordinary: usize,
    /// Quiet re-probes of the family under way.
    quiet: usize,
    /// The credit at `since`.
    credit: Duration,
    since: Instant,
}

impl IcmpCredit {
    fn new(now: Instant) -> Self {
        IcmpCredit { ordinary: 0, quiet: 0, credit: Duration::ZERO, since: now }
    }

    /// The credit at `now`: earned while no ordinary attempt is under way, up to the cap.
    fn at(&self, now: Instant) -> Duration {
        if self.ordinary > 0 {
            return Duration::ZERO;
        }
        (self.credit + now.saturating_duration_since(self.since)).min(ICMP_RATE_WINDOW * ICMP_CREDIT_CAP)
    }

    /// When the credit reaches `need`, if nothing changes first.
    fn reaches(&self, need: Duration) -> Instant {
        self.since + need.saturating_sub(self.credit)
    }

    fn ordinary_started(&mut self) {
        self.ordinary += 1;
        self.credit = Duration::ZERO;
    }

    /// An ordinary attempt may have drawn errors the run cannot count: start from nothing.
    fn ordinary_ended(&mut self, now: Instant) {
        self.ordinary = self.ordinary.saturating_sub(1);
        self.credit = Duration::ZERO;
        self.since = now;
    }

    fn quiet_started(&mut self, now: Instant, need: Duration) {
        self.credit = self.at(now).saturating_sub(need);
        self.since = now;
        self.quiet += 1;
    }

    fn quiet_ended(&mut self, now: Instant, refund: Duration) {
        self.credit = (self.at(now) + refund).min(ICMP_RATE_WINDOW * ICMP_CREDIT_CAP);
        self.since = now;
        self.quiet = self.quiet.saturating_sub(1);
    }
}

/// The state of one probe run. See the [module documentation](self) for its rules.
#[derive(Debug)]
pub struct Run {
    config: RunConfig,
    deadline: Instant,
    /// The plan's test-listener probes, then its service probes, in plan order.
    slots: Vec<Slot>,
    addresses: Vec<Address>,
    /// ICMP credit per address family: IPv4, IPv6.
    credit: [IcmpCredit; 2],
    /// The group of quiet TCP re-probes under way per address family.
    groups: [Option<Group>; 2],
    /// The agent's witness per address family.
    witness: [Witness; 2],
    in_flight: usize,
    settled: usize,
    last_udp_start: Option<Instant>,
}

impl Run {
    /// Starts a run of `plan` at `now`. `trusted` addresses are known to be the agent's
    /// (the address the control channel reached): they are probed in full without a
    /// knock.
    pub fn new(plan: &ProbePlan, trusted: &[IpAddr], config: RunConfig, now: Instant) -> Run {
        let is_trusted = |ip: IpAddr| trusted.iter().any(|t| t.to_canonical() == ip.to_canonical());
        let mut addresses: Vec<Address> = Vec::new();
        let mut address_of = |ip: IpAddr| {
            let ip = ip.to_canonical();
            match addresses.iter().position(|a| a.ip == ip) {
                Some(i) => i,
                None => {
                    let trust = if is_trusted(ip) { Trust::Verified } else { Trust::Pending };
                    addresses.push(Address { ip, trust, knocks_left: 0 });
                    addresses.len() - 1
                }
            }
        };
        // A wildcard listener of the target's family answers at any address of the
        // agent's, so its knock tells whether the address is the agent's at all. One
        // knock per claimed address and protocol, at no more than MAX_CLAIMED_ADDRESSES
        // addresses: a plan cannot make the peer knock all over another host.
        let mut knocked: Vec<(IpAddr, Proto)> = Vec::new();
        let mut claimed: Vec<IpAddr> = Vec::new();
        let listeners: Vec<_> = plan
            .probes
            .iter()
            .map(|p| {
                let ip = p.target.ip().to_canonical();
                let wildcard = p.bind.ip().is_unspecified() && p.bind.is_ipv4() == ip.is_ipv4();
                let mut knock = false;
                if wildcard && !is_trusted(ip) && !knocked.contains(&(ip, p.proto)) {
                    if !claimed.contains(&ip) && claimed.len() < MAX_CLAIMED_ADDRESSES {
                        claimed.push(ip);
                    }
                    if claimed.contains(&ip) {
                        knocked.push((ip, p.proto));
                        knock = true;
                    }
                }
                (ProbeKind::Listener, p.id, p.proto, p.target, knock, wildcard)
            })
            .collect();
        let listeners = listeners.into_iter();
        let services = plan.services.iter().map(|p| (ProbeKind::Service, p.id, p.proto, p.target, false, true));
        let slots: Vec<Slot> = listeners
            .chain(services)
            .map(|(kind, id, proto, target, knock, sensitive)| Slot {
                kind,
                id,
                proto,
                target,
                knock,
                sensitive,
                address: address_of(target.ip()),
                state: State::Waiting,
                source_ports: Vec::new(),
                icmp_errors: 0,
            })
            .collect();
        for slot in slots.iter().filter(|s| s.knock) {
            addresses[slot.address].knocks_left += 1;
        }
        let mut run = Run {
            config,
            deadline: now + RUN_DEADLINE,
            slots,
            addresses,
            credit: [IcmpCredit::new(now); 2],
            groups: [None, None],
            witness: [Witness::Unasked; 2],
            in_flight: 0,
            settled: 0,
            last_udp_start: None,
        };
        for address in 0..run.addresses.len() {
            if run.addresses[address].knocks_left == 0 && run.addresses[address].trust == Trust::Pending {
                run.fail(address);
            }
        }
        run
    }

    /// The next attempt to make at `now`, or `None` until an answer arrives or
    /// [`poll_timeout`](Self::poll_timeout) passes. Call it until it returns `None`.
    pub fn next_attempt(&mut self, now: Instant) -> Option<AttemptOrder> {
        if self.is_finished(now) || self.in_flight >= self.config.concurrency.max(1) {
            return None;
        }
        let udp_ready = self.udp_ready().is_none_or(|at| now >= at);
        let (slot, attempt, quiet) =
            self.startable(now).find(|&(i, _, _)| udp_ready || self.slots[i].proto == Proto::Tcp)?;
        let s = &mut self.slots[slot];
        s.state = State::InFlight { attempt, quiet };
        self.in_flight += 1;
        let (proto, family) = (s.proto, s.family());
        if proto == Proto::Udp {
            self.last_udp_start = Some(now);
        }
        let credit = &mut self.credit[family];
        let timeout = self.config.attempt_timeout;
        let mut connect_timeout = timeout;
        if quiet && proto == Proto::Tcp {
            connect_timeout += SYN_RETRANSMIT;
        }
        if quiet && proto == Proto::Tcp && family == IPV4 {
            match &mut self.groups[family] {
                // Joins the group under way: its credit was taken when it started.
                Some(group) => {
                    group.pending += 1;
                    credit.quiet += 1;
                }
                None => {
                    credit.quiet_started(now, need(proto));
                    self.groups[family] = Some(Group { errors: 0, pending: 1, answered: false, held: Vec::new() });
                }
            }
        } else if quiet {
            credit.quiet_started(now, need(proto));
        } else {
            credit.ordinary_started();
        }
        let s = &self.slots[slot];
        Some(AttemptOrder {
            id: AttemptId { slot, attempt },
            kind: s.kind,
            probe: s.id,
            proto: s.proto,
            target: s.target,
            attempt,
            quiet,
            connect_timeout,
            timeout,
        })
    }

    /// When to call [`next_attempt`](Self::next_attempt) again (after calling it at
    /// `now` until it returned `None`) if no answer arrives first: the end of a UDP
    /// spacing, the moment a family's ICMP credit allows a quiet re-probe, or the run
    /// deadline. `None` once every probe is settled.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        if self.settled == self.slots.len() {
            return None;
        }
        let mut wake = self.deadline;
        if self.in_flight >= self.config.concurrency.max(1) {
            return Some(wake);
        }
        if let Some(at) = self.udp_ready().filter(|at| *at > now)
            && self.startable(now).any(|(i, _, _)| self.slots[i].proto == Proto::Udp)
        {
            wake = wake.min(at);
        }
        for (family, credit) in self.credit.iter().enumerate() {
            if !self.quiet_may_start(family) {
                continue;
            }
            let due = self.slots.iter().filter(|s| s.family() == family && matches!(s.state, State::Quiet { .. }));
            if let Some(at) = due.map(|s| credit.reaches(need(s.proto))).filter(|at| *at > now).min() {
                wake = wake.min(at);
            }
        }
        Some(wake)
    }

    /// Takes in what attempt `id` found. Answers to attempts not under way (repeated,
    /// or arriving after the run deadline) change nothing.
    pub fn on_answer(&mut self, id: AttemptId, answer: AttemptAnswer, now: Instant) {
        if now >= self.deadline {
            return;
        }
        let Some(slot) = self.slots.get_mut(id.slot) else { return };
        let State::InFlight { attempt, quiet } = slot.state else { return };
        if attempt != id.attempt {
            return;
        }
        self.in_flight -= 1;
        if let Some(port) = answer.source_port {
            slot.source_ports.push(port);
        }
        if is_icmp_error(slot.proto, &answer) {
            slot.icmp_errors = slot.icmp_errors.saturating_add(1);
        }
        let credit = &mut self.credit[slot.family()];
        if quiet {
            credit.quiet_ended(now, refund(slot.proto, &answer));
        } else {
            credit.ordinary_ended(now);
        }
        let silent = matches!(answer.outcome, None | Some(Outcome::Timeout));
        let family = slot.family();
        if quiet
            && slot.proto == Proto::Tcp
            && let Some(group) = &mut self.groups[family]
        {
            group.pending = group.pending.saturating_sub(1);
            group.answered = true;
            if silent {
                group.held.push((id.slot, attempt, answer));
                slot.state = State::Held { attempt };
            } else {
                if matches!(answer.outcome, Some(Outcome::Refused | Outcome::Unreachable)) {
                    group.errors += 1;
                }
                self.settle(id.slot, Settled::from_answer(answer, attempt));
            }
            self.close_group(family, now);
            return;
        }
        if silent && attempt < ATTEMPTS {
            slot.state =
                if slot.sensitive { State::Quiet { attempts: attempt } } else { State::Retry { attempts: attempt } };
        } else if quiet {
            self.settle(id.slot, Settled::proven_silence(answer, attempt));
        } else {
            self.settle(id.slot, Settled::from_answer(answer, attempt));
        }
    }

    /// Whether to ask the agent's witness now (see [`crate::icmp`]): for a family whose
    /// ordinary attempts are over while some of its probes wait for their quiet re-probe.
    /// Returns `true` once per such family (marking it asked); the caller then asks, and
    /// passes the answer to [`on_witness`](Self::on_witness) before anything else.
    pub fn wants_witness(&mut self) -> bool {
        let mut ask = false;
        for family in 0..2 {
            let due = self.witness[family] == Witness::Unasked
                && self.ordinary_over(family)
                && self.slots.iter().any(|s| s.family() == family && matches!(s.state, State::Quiet { .. }));
            if due {
                self.witness[family] = Witness::Asked;
                ask = true;
            }
        }
        ask
    }

    /// The witness's answer for the families asked (`None`: it cannot tell, or did not
    /// answer). It speaks for the agent's own network namespace only, so it covers the
    /// probes at addresses verified to be the agent's and `on_link` (no router between
    /// the peer and them whose errors it does not count, as the caller judges), and not
    /// UDP services (a published port's datagrams may be forwarded into a container,
    /// whose namespace answers and rate-limits on its own; TCP there answers with a RST).
    /// Where it vouches for a family ([`IcmpWitness::vouches`], given the ICMP errors the
    /// covered probes met), their silent probes are proven drops at once; the others wait
    /// for their quiet re-probe.
    pub fn on_witness(&mut self, witness: Option<IcmpWitness>, on_link: impl Fn(IpAddr) -> bool, now: Instant) {
        if now >= self.deadline {
            return;
        }
        for family in 0..2 {
            if self.witness[family] != Witness::Asked {
                continue;
            }
            self.witness[family] = Witness::Answered;
            let covered = |s: &Slot| {
                s.family() == family
                    && self.addresses[s.address].trust == Trust::Verified
                    && !(s.kind == ProbeKind::Service && s.proto == Proto::Udp)
                    && on_link(s.target.ip().to_canonical())
            };
            // Only errors of covered probes count as seen: an error from elsewhere (a
            // router, this device's own stack) is none the agent's host sent.
            let seen: u32 = self.slots.iter().filter(|s| covered(s)).map(|s| u32::from(s.icmp_errors)).sum();
            if !witness.is_some_and(|w| w.vouches(family, seen)) {
                continue;
            }
            let proven: Vec<(usize, u8)> = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| match s.state {
                    State::Quiet { attempts } if covered(s) => Some((i, attempts)),
                    _ => None,
                })
                .collect();
            for (i, attempts) in proven {
                self.settle(i, Settled::proven_silence(AttemptAnswer::silence(), attempts));
            }
        }
    }

    /// Once every member of `family`'s group has answered: its silent members are drops
    /// when the group met no error; else they wait for the next group. A group that drew
    /// errors leaves no credit: the host may have spent its burst on them.
    fn close_group(&mut self, family: usize, now: Instant) {
        if self.groups[family].as_ref().is_none_or(|g| g.pending > 0) {
            return;
        }
        let Some(group) = self.groups[family].take() else { return };
        if group.errors > 0 {
            let credit = &mut self.credit[family];
            credit.credit = Duration::ZERO;
            credit.since = now;
        }
        let proven = group.errors == 0;
        for (slot, attempt, answer) in group.held {
            if proven {
                self.settle(slot, Settled::proven_silence(answer, attempt));
            } else {
                self.slots[slot].state = State::Quiet { attempts: attempt - 1 };
            }
        }
    }

    /// Whether the run is over at `now`: every probe settled, or the run deadline passed.
    pub fn is_finished(&self, now: Instant) -> bool {
        self.settled == self.slots.len() || now >= self.deadline
    }

    /// Probes settled so far (for a progress display), `not_probed` ones included.
    pub fn settled(&self) -> usize {
        self.settled
    }

    /// Ends the run: one result per probe, in plan order. Probes not settled yet are
    /// `timeout`, except those still waiting for their address to be verified, which
    /// are `not_probed`. A quiet re-probe cut off by the deadline does not count as an
    /// attempt: its probe's silence stays unconfirmed.
    pub fn finish(self) -> ProbeResults {
        let mut results = ProbeResults { results: Vec::new(), services: Vec::new() };
        let reasons: Vec<Option<Outcome>> = (0..self.addresses.len()).map(|a| self.coarse_reason(a)).collect();
        for slot in self.slots {
            let settled = match slot.state {
                // An address that never proved to be the agent's: its knocks report one
                // coarse reason for the whole address, never what answered there.
                _ if slot.knock && reasons[slot.address].is_some() => {
                    let attempts = match slot.state {
                        State::Done(s) => s.attempts,
                        State::InFlight { attempt, quiet } => attempt - u8::from(quiet),
                        State::Retry { attempts } | State::Quiet { attempts } => attempts,
                        State::Held { attempt } => attempt - 1,
                        State::Waiting => 0,
                    };
                    Settled::without_answer(reasons[slot.address].unwrap_or(Outcome::NotProbed), attempts)
                }
                State::Done(settled) => settled,
                State::InFlight { attempt, quiet } => {
                    Settled::without_answer(Outcome::Timeout, attempt - u8::from(quiet))
                }
                State::Retry { attempts } | State::Quiet { attempts } => {
                    Settled::without_answer(Outcome::Timeout, attempts)
                }
                // Its group did not finish: its silence is not proven.
                State::Held { attempt } => Settled::without_answer(Outcome::Timeout, attempt - 1),
                State::Waiting if slot.knock || self.addresses[slot.address].trust == Trust::Verified => {
                    Settled::without_answer(Outcome::Timeout, 0)
                }
                State::Waiting => Settled::without_answer(Outcome::NotProbed, 0),
            };
            let rtt_us = settled.rtt.map(|d| u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
            match slot.kind {
                ProbeKind::Listener => results.results.push(ProbeResult {
                    id: slot.id,
                    outcome: settled.outcome,
                    rtt_us,
                    errno: settled.errno,
                    attempts: settled.attempts,
                    proven: settled.proven,
                }),
                ProbeKind::Service => results.services.push(ServiceResult {
                    id: slot.id,
                    outcome: settled.outcome,
                    rtt_us,
                    errno: settled.errno,
                    http_status: settled.http_status,
                    attempts: settled.attempts,
                    proven: settled.proven,
                    source_ports: slot.source_ports,
                }),
            }
        }
        results
    }

    /// For an address that did not prove to be the agent's, the one thing the agent
    /// may learn about it: `unreachable` (no route), `timeout` (silent) or `not_probed`
    /// (something else answered, or nothing was sent). `None` for a verified address.
    fn coarse_reason(&self, address: usize) -> Option<Outcome> {
        if self.addresses[address].trust == Trust::Verified {
            return None;
        }
        let knocks: Vec<Option<Outcome>> = self
            .slots
            .iter()
            .filter(|s| s.knock && s.address == address)
            .map(|s| match s.state {
                State::Done(settled) => Some(settled.outcome),
                State::InFlight { .. } | State::Retry { .. } | State::Quiet { .. } | State::Held { .. } => {
                    Some(Outcome::Timeout)
                }
                State::Waiting => None,
            })
            .collect();
        Some(if knocks.contains(&Some(Outcome::Unreachable)) {
            Outcome::Unreachable
        } else if !knocks.is_empty() && knocks.iter().all(|k| *k == Some(Outcome::Timeout)) {
            Outcome::Timeout
        } else {
            Outcome::NotProbed
        })
    }

    /// When the next UDP attempt may start.
    fn udp_ready(&self) -> Option<Instant> {
        self.last_udp_start.map(|at| at + UDP_SPACING)
    }

    /// Attempts that may start at `now` but for pacing (concurrency, UDP spacing), most
    /// urgent first: ordinary attempts, then quiet re-probes the ICMP credit allows.
    /// Each with the number of its attempt and whether it is a quiet re-probe.
    fn startable(&self, now: Instant) -> impl Iterator<Item = (usize, u8, bool)> + '_ {
        let ordinary = self.ordinary().filter(|&(i, _)| self.credit[self.slots[i].family()].quiet == 0);
        let quiet = self.slots.iter().enumerate().filter_map(move |(i, s)| match s.state {
            // A TCP group that has not heard back yet takes every other one that waits.
            State::Quiet { attempts }
                if s.proto == Proto::Tcp
                    && s.family() == IPV4
                    && self.groups[s.family()].as_ref().is_some_and(|g| !g.answered)
                    && self.quiet_may_start(s.family()) =>
            {
                Some((i, attempts + 1))
            }
            State::Quiet { attempts }
                if self.groups[s.family()].is_none()
                    && self.quiet_may_start(s.family())
                    && self.credit[s.family()].at(now) >= need(s.proto) =>
            {
                Some((i, attempts + 1))
            }
            _ => None,
        });
        ordinary.map(|(i, a)| (i, a, false)).chain(quiet.map(|(i, a)| (i, a, true)))
    }

    /// Whether a quiet re-probe of `family` may start now, credit allowing: nothing
    /// ordinary of the family is under way or waiting to start.
    fn quiet_may_start(&self, family: usize) -> bool {
        self.witness[family] == Witness::Answered && self.ordinary_over(family)
    }

    /// Whether no ordinary attempt of `family` is under way or may start.
    fn ordinary_over(&self, family: usize) -> bool {
        self.credit[family].ordinary == 0 && !self.ordinary().any(|(i, _)| self.slots[i].family() == family)
    }

    /// Ordinary attempts that may start, most urgent first: retries, knocks, the user's
    /// services, then the other test-listener probes at verified addresses, each in plan
    /// order.
    fn ordinary(&self) -> impl Iterator<Item = (usize, u8)> + '_ {
        let retries = self.slots.iter().enumerate().filter_map(|(i, s)| match s.state {
            State::Retry { attempts } => Some((i, attempts + 1)),
            _ => None,
        });
        retries
            .chain(self.waiting(|s| s.knock))
            .chain(self.waiting(|s| !s.knock && s.kind == ProbeKind::Service))
            .chain(self.waiting(|s| !s.knock && s.kind == ProbeKind::Listener))
    }

    /// Probes not started yet that `pick` selects and that may start: knocks, or any
    /// probe at a verified address.
    fn waiting(&self, pick: fn(&Slot) -> bool) -> impl Iterator<Item = (usize, u8)> + '_ {
        self.slots.iter().enumerate().filter_map(move |(i, s)| {
            let ready =
                s.state == State::Waiting && pick(s) && (s.knock || self.addresses[s.address].trust == Trust::Verified);
            ready.then_some((i, 1))
        })
    }

    fn settle(&mut self, slot: usize, settled: Settled) {
        let s = &mut self.slots[slot];
        s.state = State::Done(settled);
        self.settled += 1;
        if !s.knock {
            return;
        }
        let address = &mut self.addresses[s.address];
        address.knocks_left = address.knocks_left.saturating_sub(1);
        if settled.outcome == Outcome::Open {
            address.trust = Trust::Verified;
        } else if address.knocks_left == 0 && address.trust == Trust::Pending {
            let address = s.address;
            self.fail(address);
        }
    }

    /// No knock can verify `address` any more: its other probes are not probed.
    fn fail(&mut self, address: usize) {
        self.addresses[address].trust = Trust::Failed;
        for s in &mut self.slots {
            if s.address == address && !s.knock && s.state == State::Waiting {
                s.state = State::Done(Settled::without_answer(Outcome::NotProbed, 0));
                self.settled += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::{PlannedProbe, ServiceProbe};

    const TIMEOUT: Duration = Duration::from_millis(200);
    const MS: Duration = Duration::from_millis(1);

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    /// A plan from `(proto, bind, target)` listener probes and `(proto, target)` services.
    fn plan(probes: &[(Proto, &str, &str)], services: &[(Proto, &str)]) -> ProbePlan {
        ProbePlan {
            session: [1; 16],
            key: [2; 32],
            probes: probes
                .iter()
                .enumerate()
                .map(|(i, (proto, bind, target))| PlannedProbe {
                    id: i as u32,
                    proto: *proto,
                    bind: addr(bind),
                    target: addr(target),
                })
                .collect(),
            services: services
                .iter()
                .enumerate()
                .map(|(i, (proto, target))| ServiceProbe { id: i as u32, proto: *proto, target: addr(target) })
                .collect(),
        }
    }

    /// What a simulated network does with one attempt: answer after a delay, or never.
    type Behaviour = dyn Fn(&AttemptOrder) -> Option<(Duration, AttemptAnswer)>;

    /// The same, for a network with a state of its own: also told when (after the run's
    /// start) the attempt starts.
    type Clocked<'a> = dyn FnMut(Duration, &AttemptOrder) -> Option<(Duration, AttemptAnswer)> + 'a;

    /// Answers after `after`.
    fn after(after: Duration, answer: AttemptAnswer) -> Option<(Duration, AttemptAnswer)> {
        Some((after, answer))
    }

    /// Silence: nothing comes back before the attempt's deadline.
    fn silent(order: &AttemptOrder) -> Option<(Duration, AttemptAnswer)> {
        Some((order.connect_timeout.max(order.timeout), AttemptAnswer::silence()))
    }

    fn outcome(o: Outcome) -> AttemptAnswer {
        AttemptAnswer::answered(o, MS)
    }

    /// A run against a simulated network, on a simulated clock.
    struct Sim {
        results: ProbeResults,
        /// Every attempt, with its start time after the run's start.
        started: Vec<(Duration, AttemptOrder)>,
        /// When the run ended, after its start.
        ended: Duration,
        /// Most attempts in flight at once.
        max_in_flight: usize,
    }

    impl Sim {
        fn orders_to(&self, target: &str) -> Vec<(Duration, ProbeKind, u32, u8)> {
            let ip = ip(target);
            self.started
                .iter()
                .filter(|(_, o)| o.target.ip() == ip)
                .map(|(at, o)| (*at, o.kind, o.probe, o.attempt))
                .collect()
        }

        fn outcomes(&self) -> (Vec<Outcome>, Vec<Outcome>) {
            (
                self.results.results.iter().map(|r| r.outcome).collect(),
                self.results.services.iter().map(|r| r.outcome).collect(),
            )
        }
    }

    fn simulate(plan: &ProbePlan, trusted: &[&str], config: RunConfig, network: &Behaviour) -> Sim {
        simulate_clocked(plan, trusted, config, &mut |_, o| network(o))
    }

    fn simulate_clocked(plan: &ProbePlan, trusted: &[&str], config: RunConfig, network: &mut Clocked<'_>) -> Sim {
        simulate_witnessed(plan, trusted, config, network, &|| None, &|_| true)
    }

    /// As [`simulate_clocked`], with the agent's witness; `on_link` says which addresses
    /// are on the peer's link.
    fn simulate_witnessed(
        plan: &ProbePlan,
        trusted: &[&str],
        config: RunConfig,
        network: &mut Clocked<'_>,
        witness: &dyn Fn() -> Option<IcmpWitness>,
        on_link: &dyn Fn(IpAddr) -> bool,
    ) -> Sim {
        let trusted: Vec<IpAddr> = trusted.iter().map(|s| ip(s)).collect();
        let start = Instant::now();
        let mut now = start;
        let mut run = Run::new(plan, &trusted, config, now);
        let mut pending: Vec<(Instant, AttemptId, AttemptAnswer)> = Vec::new();
        let mut started = Vec::new();
        let (mut in_flight, mut max_in_flight) = (0usize, 0usize);
        for _ in 0..100_000 {
            while let Some(order) = run.next_attempt(now) {
                started.push((now - start, order));
                in_flight += 1;
                max_in_flight = max_in_flight.max(in_flight);
                if let Some((delay, answer)) = network(now - start, &order) {
                    pending.push((now + delay, order.id, answer));
                }
            }
            if run.wants_witness() {
                run.on_witness(witness(), on_link, now);
                continue;
            }
            if run.is_finished(now) {
                let results = run.finish();
                return Sim { results, started, ended: now - start, max_in_flight };
            }
            let next_answer = pending.iter().map(|p| p.0).min();
            let wake = match (next_answer, run.poll_timeout(now)) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).expect("an unfinished run has a deadline"),
            };
            assert!(wake > now || next_answer.is_some_and(|a| a <= now), "the run would spin at {:?}", now - start);
            now = now.max(wake);
            pending.sort_by_key(|p| p.0);
            while pending.first().is_some_and(|p| p.0 <= now) {
                let (_, id, answer) = pending.remove(0);
                in_flight -= 1;
                run.on_answer(id, answer, now);
            }
        }
        panic!("the run never finished");
    }

    fn config(concurrency: usize) -> RunConfig {
        RunConfig { attempt_timeout: TIMEOUT, concurrency }
    }

    /// The agent at 127.0.0.1: its wildcard listener answers the knock after 10 ms,
    /// everything else there is refused at once.
    fn agent(o: &AttemptOrder) -> Option<(Duration, AttemptAnswer)> {
        match o.kind {
            ProbeKind::Listener if o.probe == 0 => after(10 * MS, outcome(Outcome::Open)),
            _ => after(MS, outcome(Outcome::Refused)),
        }
    }

    #[test]
    fn the_knock_goes_first_and_a_verified_address_is_probed_in_full() {
        let plan = plan(
            &[(Proto::Tcp, "0.0.0.0:1", "127.0.0.1:1"), (Proto::Tcp, "127.0.0.1:2", "127.0.0.1:2")],
            &[(Proto::Tcp, "127.0.0.1:80")],
        );
        let sim = simulate(&plan, &[], config(8), &agent);
        assert_eq!(
            sim.orders_to("127.0.0.1"),
            [
                (Duration::ZERO, ProbeKind::Listener, 0, 1),
                (10 * MS, ProbeKind::Service, 0, 1),
                (10 * MS, ProbeKind::Listener, 1, 1),
            ],
            "the rest starts when the knock answers, the user's port first"
        );
        assert_eq!(sim.outcomes(), (vec![Outcome::Open, Outcome::Refused], vec![Outcome::Refused]));
    }

    /// Whatever way the knock fails, nothing more goes to that address: its other
    /// listener probes and its service probes are `not_probed`, and the knock reports
    /// only the coarse reason (no route, silent, or not the agent) with no errno or rtt.
    #[test]
    fn a_failed_knock_leaves_the_address_not_probed() {
        let plan = plan(
            &[(Proto::Tcp, "0.0.0.0:1", "127.0.0.2:1"), (Proto::Tcp, "127.0.0.2:2", "127.0.0.2:2")],
            &[(Proto::Tcp, "127.0.0.2:80"), (Proto::Udp, "127.0.0.2:53")],
        );
        let table: [(&str, &Behaviour, Outcome, u8); 5] = [
            ("refused", &|_| after(MS, outcome(Outcome::Refused)), Outcome::NotProbed, 1),
            ("foreign (no MAC)", &|_| after(MS, outcome(Outcome::Foreign)), Outcome::NotProbed, 1),
            ("empty reply", &|_| after(MS, outcome(Outcome::EmptyReply)), Outcome::NotProbed, 1),
            ("unreachable", &|_| after(MS, outcome(Outcome::Unreachable)), Outcome::Unreachable, 1),
            ("silence", &silent, Outcome::Timeout, 2),
        ];
        for (name, network, knock, attempts) in table {
            let sim = simulate(&plan, &[], config(8), network);
            assert_eq!(
                sim.outcomes(),
                (vec![knock, Outcome::NotProbed], vec![Outcome::NotProbed, Outcome::NotProbed]),
                "{name}"
            );
            assert_eq!(sim.results.results[0].attempts, attempts, "{name}");
            assert_eq!(sim.results.results[1].attempts, 0, "{name}");
            assert_eq!((sim.results.results[0].errno, sim.results.results[0].rtt_us), (None, None), "{name}");
            let sent: Vec<_> = sim.orders_to("127.0.0.2").iter().map(|o| (o.1, o.2)).collect();
            assert_eq!(sent, vec![(ProbeKind::Listener, 0); attempts as usize], "{name}: only the knock is sent");
        }
    }

    /// A hostile plan that claims a bystander's address with 2040 wildcard probes per
    /// protocol gets one knock per protocol there (and the retry after silence), and
    /// at most MAX_CLAIMED_ADDRESSES claimed addresses are knocked at all.
    #[test]
    fn a_claimed_address_gets_one_knock_per_protocol_and_eight_addresses_at_most() {
        let mut probes = Vec::new();
        for port in 1..=2040u16 {
            for proto in [Proto::Tcp, Proto::Udp] {
                let id = u32::try_from(probes.len()).expect("small");
                let bind = SocketAddr::from(([0, 0, 0, 0], port));
                probes.push(PlannedProbe { id, proto, bind, target: SocketAddr::from(([203, 0, 113, 9], port)) });
            }
        }
        let hostile = ProbePlan { session: [1; 16], key: [2; 32], probes, services: vec![] };
        let sim = simulate(&hostile, &[], config(64), &silent);
        let sent = sim.orders_to("203.0.113.9");
        assert_eq!(sent.len(), 4, "one TCP and one UDP knock, each retried once: {sent:?}");
        assert!(sim.results.results.iter().all(|r| matches!(r.outcome, Outcome::Timeout | Outcome::NotProbed)));

        let mut probes = Vec::new();
        for host in 1..=20u8 {
            let id = u32::try_from(probes.len()).expect("small");
            let target = SocketAddr::from(([203, 0, 113, host], 4000));
            probes.push(PlannedProbe { id, proto: Proto::Tcp, bind: "0.0.0.0:4000".parse().expect("bind"), target });
        }
        let many = ProbePlan { session: [1; 16], key: [2; 32], probes, services: vec![] };
        let sim = simulate(&many, &[], config(64), &|_| after(MS, outcome(Outcome::Refused)));
        let knocked: std::collections::BTreeSet<IpAddr> = sim.started.iter().map(|(_, o)| o.target.ip()).collect();
        assert_eq!(knocked.len(), MAX_CLAIMED_ADDRESSES, "{knocked:?}");
        assert!(sim.results.results.iter().all(|r| r.outcome == Outcome::NotProbed), "nothing about them is reported");
    }

    /// Two knocks at one address (TCP and UDP wildcards): one with the MAC suffices.
    #[test]
    fn one_answered_knock_verifies_the_address() {
        let plan = plan(
            &[
                (Proto::Tcp, "0.0.0.0:1", "127.0.0.1:1"),
                (Proto::Udp, "0.0.0.0:1", "127.0.0.1:1"),
                (Proto::Tcp, "127.0.0.1:2", "127.0.0.1:2"),
            ],
            &[],
        );
        let network = |o: &AttemptOrder| match o.proto {
            Proto::Tcp if o.probe == 0 => after(MS, outcome(Outcome::Refused)),
            Proto::Udp => after(5 * MS, outcome(Outcome::Open)),
            Proto::Tcp => after(MS, outcome(Outcome::Refused)),
        };
        let sim = simulate(&plan, &[], config(8), &network);
        assert_eq!(sim.outcomes().0, [Outcome::Refused, Outcome::Open, Outcome::Refused]);
        assert_eq!(sim.orders_to("127.0.0.1")[2], (5 * MS, ProbeKind::Listener, 2, 1));
    }

    /// Only wildcard listeners of the address's own family knock: an IPv6 wildcard at
    /// an IPv4 address, or a specific listener, proves nothing, so nothing is sent.
    #[test]
    fn only_wildcards_of_the_address_family_knock() {
        let plan = plan(
            &[(Proto::Tcp, "[::]:1", "127.0.0.1:1"), (Proto::Tcp, "127.0.0.1:2", "127.0.0.1:2")],
            &[(Proto::Tcp, "127.0.0.1:80")],
        );
        let sim = simulate(&plan, &[], config(8), &agent);
        assert!(sim.started.is_empty(), "{:?}", sim.started);
        assert_eq!(sim.outcomes(), (vec![Outcome::NotProbed; 2], vec![Outcome::NotProbed]));
        assert_eq!(sim.ended, Duration::ZERO);
    }

    #[test]
    fn a_trusted_address_is_probed_in_full_without_a_knock() {
        let plan = plan(
            &[(Proto::Tcp, "0.0.0.0:1", "127.0.0.1:1"), (Proto::Tcp, "127.0.0.1:2", "127.0.0.1:2")],
            &[(Proto::Tcp, "127.0.0.1:80")],
        );
        let network = |_: &AttemptOrder| after(MS, outcome(Outcome::Refused));
        let sim = simulate(&plan, &["127.0.0.1"], config(8), &network);
        assert!(sim.started.iter().all(|(at, _)| at.is_zero()), "all at once: {:?}", sim.started);
        assert_eq!(sim.started.len(), 3);
        assert_eq!(sim.outcomes(), (vec![Outcome::Refused; 2], vec![Outcome::Refused]));
        // A mapped address is the same host.
        let sim = simulate(&plan, &["::ffff:127.0.0.1"], config(8), &network);
        assert_eq!(sim.started.len(), 3);
    }

    /// A slow knock elsewhere holds back nothing at an address already verified.
    #[test]
    fn each_address_waits_for_its_own_knock_only() {
        let plan = plan(
            &[
                (Proto::Tcp, "0.0.0.0:1", "127.0.0.1:1"),
                (Proto::Tcp, "0.0.0.0:1", "127.0.0.3:1"),
                (Proto::Tcp, "127.0.0.1:2", "127.0.0.1:2"),
                (Proto::Tcp, "127.0.0.3:2", "127.0.0.3:2"),
            ],
            &[],
        );
        let network = |o: &AttemptOrder| match (o.probe, o.target.ip() == ip("127.0.0.1")) {
            (0, _) => after(MS, outcome(Outcome::Open)),
            (1, _) => after(50 * MS, outcome(Outcome::Open)),
            _ => after(MS, outcome(Outcome::Refused)),
        };
        let sim = simulate(&plan, &[], config(8), &network);
        assert_eq!(sim.orders_to("127.0.0.1")[1].0, MS);
        assert_eq!(sim.orders_to("127.0.0.3")[1].0, 50 * MS);
    }

    /// Silence is retried once, right after the first attempt's deadline; an answer,
    /// even a refusal, is final.
    #[test]
    fn silence_is_retried_once_and_an_answer_is_final() {
        let plan = plan(
            &[
                (Proto::Tcp, "127.0.0.1:1", "127.0.0.1:1"),
                (Proto::Tcp, "127.0.0.1:2", "127.0.0.1:2"),
                (Proto::Udp, "127.0.0.1:3", "127.0.0.1:3"),
            ],
            &[(Proto::Udp, "127.0.0.1:53")],
        );
        let network = |o: &AttemptOrder| match (o.kind, o.probe, o.attempt) {
            // An OS timeout error is silence too; its errno is kept.
            (ProbeKind::Listener, 0, _) => {
                after(TIMEOUT, AttemptAnswer { errno: Some(110), ..AttemptAnswer::silence() })
            }
            (ProbeKind::Listener, 1, _) => after(MS, AttemptAnswer { errno: Some(111), ..outcome(Outcome::Refused) }),
            (ProbeKind::Listener, 2, 1) => silent(o),
            (ProbeKind::Listener, 2, _) => after(MS, outcome(Outcome::Open)),
            _ => silent(o),
        };
        let sim = simulate(&plan, &["127.0.0.1"], config(8), &network);
        assert_eq!(sim.outcomes(), (vec![Outcome::Timeout, Outcome::Refused, Outcome::Open], vec![Outcome::Timeout]));
        let attempts: Vec<u8> = sim.results.results.iter().map(|r| r.attempts).collect();
        assert_eq!(attempts, [2, 1, 2]);
        let r = &sim.results.results;
        assert_eq!((r[0].rtt_us, r[0].errno), (None, Some(110)), "a timeout has no round trip");
        assert_eq!((r[1].rtt_us, r[1].errno), (Some(1000), Some(111)));
        let first: Vec<Duration> =
            sim.started.iter().filter(|(_, o)| o.probe == 0 && o.kind == ProbeKind::Listener).map(|s| s.0).collect();
        assert_eq!(first, [Duration::ZERO, TIMEOUT], "a test listener at a specific address: retried at once");
        let service: Vec<(Duration, bool)> =
            sim.started.iter().filter(|(_, o)| o.kind == ProbeKind::Service).map(|(at, o)| (*at, o.quiet)).collect();
        // The user's port: re-probed quietly once its family's last ordinary attempt (the
        // listener's retry) has ended and one ICMP error's window has passed.
        assert_eq!(service, [(Duration::ZERO, false), (2 * TIMEOUT + ICMP_RATE_WINDOW, true)]);
        assert_eq!(sim.results.services[0].attempts, 2);
        assert_eq!(sim.started.len(), 2 + 1 + 2 + 2, "nothing beyond the retry");
        assert_eq!(sim.ended, 3 * TIMEOUT + ICMP_RATE_WINDOW, "the run ends when every probe is settled");
    }

    #[test]
    fn udp_attempts_start_spaced() {
        let probes: Vec<(Proto, String)> = (1..=6)
            .map(|port| (if port <= 4 { Proto::Udp } else { Proto::Tcp }, format!("127.0.0.1:{port}")))
            .collect();
        let probes: Vec<(Proto, &str, &str)> = probes.iter().map(|(p, a)| (*p, a.as_str(), a.as_str())).collect();
        let plan = plan(&probes, &[(Proto::Udp, "127.0.0.1:53"), (Proto::Udp, "127.0.0.1:54")]);
        let network = |_: &AttemptOrder| after(100 * MS, outcome(Outcome::Refused));
        let sim = simulate(&plan, &["127.0.0.1"], config(64), &network);
        let udp: Vec<Duration> = sim.started.iter().filter(|(_, o)| o.proto == Proto::Udp).map(|s| s.0).collect();
        assert_eq!(udp.len(), 6, "listener and service probes share one spacing");
        assert!(udp.windows(2).all(|w| w[1] - w[0] >= UDP_SPACING), "{udp:?}");
        assert_eq!(udp[5], UDP_SPACING * 5, "and no slower than that");
        let tcp: Vec<Duration> = sim.started.iter().filter(|(_, o)| o.proto == Proto::Tcp).map(|s| s.0).collect();
        assert_eq!(tcp, [Duration::ZERO; 2], "TCP does not wait for UDP's spacing");
    }

    #[test]
    fn concurrency_is_never_exceeded() {
        let targets: Vec<String> = (1..=20).map(|port| format!("127.0.0.1:{port}")).collect();
        let probes: Vec<(Proto, &str, &str)> = targets.iter().map(|t| (Proto::Tcp, t.as_str(), t.as_str())).collect();
        let plan = plan(&probes, &[(Proto::Tcp, "127.0.0.1:80")]);
        // Uneven latencies, some silent: slots free up in every order.
        let network = |o: &AttemptOrder| match o.probe % 3 {
            0 => silent(o),
            1 => after(MS * (o.probe + 1), outcome(Outcome::Refused)),
            _ => after(7 * MS, outcome(Outcome::Open)),
        };
        for concurrency in [1, 3, 64] {
            let sim = simulate(&plan, &["127.0.0.1"], config(concurrency), &network);
            assert_eq!(sim.max_in_flight, concurrency.min(21), "concurrency {concurrency}");
            assert!(sim.results.results.iter().all(|r| r.outcome != Outcome::NotProbed));
        }
        // Zero means one.
        assert_eq!(simulate(&plan, &["127.0.0.1"], config(0), &network).max_in_flight, 1);
    }

    /// At the run deadline, attempts under way and probes never started at verified
    /// addresses are timeouts; probes still waiting for a knock are not probed.
    #[test]
    fn the_run_deadline_ends_the_run() {
        let plan = plan(
            &[
                (Proto::Tcp, "127.0.0.1:1", "127.0.0.1:1"),
                (Proto::Tcp, "127.0.0.1:2", "127.0.0.1:2"),
                (Proto::Tcp, "127.0.0.1:3", "127.0.0.1:3"),
                (Proto::Tcp, "0.0.0.0:4", "127.0.0.2:4"),
                (Proto::Tcp, "127.0.0.2:5", "127.0.0.2:5"),
            ],
            &[(Proto::Tcp, "127.0.0.1:80")],
        );
        // Nothing ever answers (an attempt that hangs past its own deadline).
        let network = |_: &AttemptOrder| None;
        let sim = simulate(&plan, &["127.0.0.1"], config(2), &network);
        assert_eq!(sim.ended, RUN_DEADLINE);
        assert_eq!(
            sim.outcomes(),
            (
                vec![Outcome::Timeout, Outcome::Timeout, Outcome::Timeout, Outcome::Timeout, Outcome::NotProbed],
                vec![Outcome::Timeout]
            )
        );
        let attempts: Vec<u8> = sim.results.results.iter().map(|r| r.attempts).collect();
        assert_eq!(attempts, [0, 0, 0, 1, 0], "two in flight (the knock, the user's port), the rest never started");
        assert_eq!(sim.results.services[0].attempts, 1);
    }

    #[test]
    fn stray_and_late_answers_change_nothing() {
        let plan = plan(&[(Proto::Tcp, "127.0.0.1:1", "127.0.0.1:1")], &[]);
        let start = Instant::now();
        let mut run = Run::new(&plan, &[ip("127.0.0.1")], config(8), start);
        let order = run.next_attempt(start).expect("an attempt");
        assert_eq!(run.next_attempt(start), None);
        let stray = AttemptId { slot: 7, attempt: 1 };
        run.on_answer(stray, outcome(Outcome::Open), start);
        let retry = AttemptId { attempt: 2, ..order.id };
        run.on_answer(retry, outcome(Outcome::Open), start);
        assert!(!run.is_finished(start));
        // After the deadline, the attempt still under way is a timeout.
        run.on_answer(order.id, outcome(Outcome::Open), start + RUN_DEADLINE);
        assert!(run.is_finished(start + RUN_DEADLINE));
        assert_eq!(run.poll_timeout(start + RUN_DEADLINE), Some(start + RUN_DEADLINE));
        assert_eq!(run.finish().results[0].outcome, Outcome::Timeout);
    }

    #[test]
    fn settled_counts_every_probe_once() {
        let plan = plan(
            &[(Proto::Tcp, "0.0.0.0:1", "127.0.0.2:1"), (Proto::Tcp, "127.0.0.2:2", "127.0.0.2:2")],
            &[(Proto::Tcp, "127.0.0.2:80")],
        );
        let start = Instant::now();
        let mut run = Run::new(&plan, &[], config(8), start);
        assert_eq!(run.settled(), 0);
        let knock = run.next_attempt(start).expect("the knock");
        run.on_answer(knock.id, outcome(Outcome::Refused), start);
        run.on_answer(knock.id, outcome(Outcome::Refused), start);
        assert_eq!(run.settled(), 3);
        assert!(run.is_finished(start));
        assert_eq!(run.poll_timeout(start), None);
    }

    /// One Linux host's ICMP errors to one peer in one family (`inet_peer_xrlim_allow`):
    /// a burst of 6, then one more per second earned back.
    #[derive(Debug, Clone, Copy)]
    struct Bucket {
        tokens: Duration,
        last: Duration,
    }

    impl Bucket {
        const FULL: Bucket = Bucket { tokens: Duration::from_secs(6), last: Duration::ZERO };

        fn allow(&mut self, at: Duration) -> bool {
            self.tokens = (self.tokens + at.saturating_sub(self.last)).min(Duration::from_secs(6));
            self.last = self.last.max(at);
            let allowed = self.tokens >= Duration::from_secs(1);
            if allowed {
                self.tokens -= Duration::from_secs(1);
            }
            allowed
        }
    }

    /// What a simulated host does with traffic to a port.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Port {
        Open,
        /// A REJECT rule: an ICMP error, when the host's rate limit allows one.
        Rejected,
        /// A DROP rule: silence.
        Dropped,
        /// No route there: "network unreachable" at once, from this device's own stack.
        Unreachable,
    }

    /// A host behind a firewall, with Linux's ICMP rate limit per family. `lock_drop`:
    /// a TCP connect ignores the ICMP error of its first SYN (IPv6 on a fast path,
    /// measured) and fails only when the retransmitted SYN draws a second one.
    struct Host {
        ports: fn(&AttemptOrder) -> Port,
        lock_drop: bool,
        buckets: [Bucket; 2],
        /// Quiet re-probes whose ICMP error the rate limit swallowed: must stay empty.
        denied_quiet: Vec<AttemptOrder>,
        /// The errors it sent and suppressed, as its counters would say.
        counted: IcmpWitness,
    }

    impl Host {
        fn new(ports: fn(&AttemptOrder) -> Port, lock_drop: bool) -> Host {
            let counted = IcmpWitness::default();
            Host { ports, lock_drop, buckets: [Bucket::FULL; 2], denied_quiet: Vec::new(), counted }
        }

        /// An error the rate limit `allowed` (sent) or not (suppressed).
        fn count(&mut self, family: usize, allowed: bool) -> bool {
            let c = if allowed { &mut self.counted.sent[family] } else { &mut self.counted.limited[family] };
            *c += 1;
            allowed
        }

        fn attempt(&mut self, at: Duration, o: &AttemptOrder) -> Option<(Duration, AttemptAnswer)> {
            let error = |after: Duration| {
                let (outcome, errno) = match o.proto {
                    Proto::Tcp => (Outcome::Unreachable, 113),
                    Proto::Udp => (Outcome::Refused, 111),
                };
                Some((after, AttemptAnswer { errno: Some(errno), ..AttemptAnswer::answered(outcome, after) }))
            };
            let family = usize::from(o.target.is_ipv6());
            match (self.ports)(o) {
                Port::Open => after(MS, outcome(Outcome::Open)),
                Port::Dropped => silent(o),
                Port::Unreachable => {
                    Some((MS, AttemptAnswer { errno: Some(101), ..AttemptAnswer::answered(Outcome::Unreachable, MS) }))
                }
                Port::Rejected => {
                    let allowed = self.buckets[family].allow(at);
                    let first = self.count(family, allowed);
                    let lost = self.lock_drop && o.proto == Proto::Tcp;
                    if first && !lost {
                        error(MS)
                    } else if o.proto == Proto::Tcp && o.connect_timeout > SYN_RETRANSMIT && {
                        let allowed = self.buckets[family].allow(at + SYN_RETRANSMIT);
                        self.count(family, allowed)
                    } {
                        error(SYN_RETRANSMIT + MS)
                    } else {
                        if o.quiet {
                            self.denied_quiet.push(*o);
                        }
                        silent(o)
                    }
                }
            }
        }
    }

    /// `count` service probes of `proto` at `ip`, ports 6000 and up, plus the wildcard
    /// test listener of the family (open: the path picture).
    fn ports_at(ip: &str, proto: Proto, count: u16) -> ProbePlan {
        let host = |port: u16| if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") };
        let wildcard = if ip.contains(':') { "[::]:4000" } else { "0.0.0.0:4000" };
        let targets: Vec<String> = (0..count).map(|i| host(6000 + i)).collect();
        let services: Vec<(Proto, &str)> = targets.iter().map(|t| (proto, t.as_str())).collect();
        plan(&[(Proto::Tcp, wildcard, &host(4000))], &services)
    }

    fn service_port(o: &AttemptOrder) -> Port {
        if o.kind == ProbeKind::Listener { Port::Open } else { Port::Rejected }
    }

    /// Issue 10 item 5: twelve rejected ports at once. The host's rate limit lets six
    /// errors through; the others meet silence, and their quiet re-probes (in groups: a
    /// group that meets an error proves nothing about its silent members, which wait for
    /// the next) meet the errors: every port is rejected, none dropped.
    #[test]
    fn rejects_silenced_by_the_rate_limit_are_found_by_quiet_re_probes() {
        for proto in [Proto::Tcp, Proto::Udp] {
            let plan = ports_at("198.51.100.1", proto, 12);
            let mut host = Host::new(service_port, false);
            let sim = simulate_clocked(&plan, &["198.51.100.1"], config(64), &mut |at, o| host.attempt(at, o));
            let expected = if proto == Proto::Tcp { Outcome::Unreachable } else { Outcome::Refused };
            assert_eq!(sim.outcomes().1, vec![expected; 12], "{proto}");
            let attempts: Vec<u8> = sim.results.services.iter().map(|r| r.attempts).collect();
            assert_eq!(attempts.iter().filter(|a| **a == 2).count(), 6, "{proto}: six were silenced: {attempts:?}");
            // The host earns back one error a second: six silenced ports cost about six
            // windows, and nothing more.
            assert!(sim.ended < TIMEOUT + 7 * ICMP_RATE_WINDOW + 2 * MS, "{proto}: {:?}", sim.ended);
        }
    }

    /// Issue 10 item 5: an IPv6-only service behind `reject with icmpx type
    /// admin-prohibited`, where the connect sees the error only with the retransmitted
    /// SYN, after the attempt deadline: the quiet re-probe waits past the retransmission
    /// and finds the reject, for one port and for several at once.
    #[test]
    fn a_reject_seen_only_with_the_syn_retransmission_is_found() {
        for count in [1, 4] {
            let plan = ports_at("2001:db8::1", Proto::Tcp, count);
            let mut host = Host::new(service_port, true);
            let sim = simulate_clocked(&plan, &["2001:db8::1"], config(64), &mut |at, o| host.attempt(at, o));
            assert_eq!(sim.outcomes().1, vec![Outcome::Unreachable; usize::from(count)], "{count} ports");
            assert!(host.denied_quiet.is_empty(), "IPv6 re-probes one at a time: {:?}", host.denied_quiet);
            let quiet: Vec<&AttemptOrder> = sim.started.iter().filter(|(_, o)| o.quiet).map(|s| &s.1).collect();
            assert!(quiet.iter().all(|o| o.connect_timeout == TIMEOUT + SYN_RETRANSMIT), "{quiet:?}");
        }
    }

    /// A DROP: silence on the quiet re-probe too, so `timeout` with two attempts (a drop
    /// the verdict may name). The wait is paid once, and the dropped ports are re-probed
    /// together: a group that met no error met no rejection.
    #[test]
    fn drops_cost_one_window_and_one_quiet_re_probe_together() {
        let plan = ports_at("198.51.100.1", Proto::Tcp, 4);
        let mut host = Host::new(|o| if o.kind == ProbeKind::Listener { Port::Open } else { Port::Dropped }, false);
        let sim = simulate_clocked(&plan, &["198.51.100.1"], config(64), &mut |at, o| host.attempt(at, o));
        assert_eq!(sim.outcomes().1, vec![Outcome::Timeout; 4]);
        assert!(sim.results.services.iter().all(|r| r.attempts == 2));
        let quiet: Vec<Duration> = sim.started.iter().filter(|(_, o)| o.quiet).map(|s| s.0).collect();
        let each = TIMEOUT + SYN_RETRANSMIT;
        let first = TIMEOUT + 2 * ICMP_RATE_WINDOW;
        assert_eq!(quiet, [first; 4]);
        assert_eq!(sim.ended, first + each);
        // IPv6: one at a time (a connect there may miss its first SYN's error).
        let plan = ports_at("2001:db8::1", Proto::Tcp, 4);
        let mut host = Host::new(|o| if o.kind == ProbeKind::Listener { Port::Open } else { Port::Dropped }, true);
        let sim = simulate_clocked(&plan, &["2001:db8::1"], config(64), &mut |at, o| host.attempt(at, o));
        assert!(sim.results.services.iter().all(|r| r.outcome == Outcome::Timeout && r.attempts == 2));
        let quiet: Vec<Duration> = sim.started.iter().filter(|(_, o)| o.quiet).map(|s| s.0).collect();
        assert_eq!(quiet, [first, first + each, first + 2 * each, first + 3 * each]);
    }

    /// Runs `plan` against `host` (its address `ip` trusted, every address on the link),
    /// with the host's own counters as the agent's witness.
    fn witnessed(plan: &ProbePlan, ip: &str, host: Host) -> (Sim, Host) {
        witnessed_from(plan, &[ip], host, &|_| true)
    }

    fn witnessed_from(plan: &ProbePlan, trusted: &[&str], host: Host, on_link: &dyn Fn(IpAddr) -> bool) -> (Sim, Host) {
        let host = std::cell::RefCell::new(host);
        let sim = simulate_witnessed(
            plan,
            trusted,
            config(64),
            &mut |at, o| host.borrow_mut().attempt(at, o),
            &|| Some(host.borrow().counted),
            on_link,
        );
        (sim, host.into_inner())
    }

    /// Adds a test-listener probe of `proto` bound to `bind`, dialled at `target`.
    fn with_listener(plan: &mut ProbePlan, proto: Proto, bind: &str, target: &str) {
        let id = u32::try_from(plan.probes.len()).expect("few probes");
        plan.probes.push(PlannedProbe { id, proto, bind: addr(bind), target: addr(target) });
    }

    fn drops(o: &AttemptOrder) -> Port {
        if o.kind == ProbeKind::Listener { Port::Open } else { Port::Dropped }
    }

    /// The agent's witness: its host sent and suppressed no ICMP error of the family while
    /// the probes ran, so silence at its on-link addresses is a drop after one attempt,
    /// with no quiet re-probe; in both families, IPv6 (whose connects may miss an error)
    /// included.
    #[test]
    fn a_quiet_witness_proves_drops_after_one_attempt() {
        for ip in ["198.51.100.1", "2001:db8::1"] {
            let (sim, _) = witnessed(&ports_at(ip, Proto::Tcp, 16), ip, Host::new(drops, true));
            assert_eq!(sim.outcomes().1, vec![Outcome::Timeout; 16]);
            assert!(sim.results.services.iter().all(|r| r.proven && r.attempts == 1), "{:?}", sim.results);
            assert!(sim.started.iter().all(|(_, o)| !o.quiet), "no quiet re-probe");
            assert_eq!(sim.ended, TIMEOUT, "one attempt deadline");
        }
    }

    /// Errors the peer saw as ICMP errors (refused UDP datagrams) do not spoil the
    /// witness: the host sent no more than the run saw.
    #[test]
    fn errors_the_run_saw_leave_the_witness_vouching() {
        let mut plan = ports_at("198.51.100.1", Proto::Tcp, 4);
        with_listener(&mut plan, Proto::Udp, "127.0.0.1:4001", "198.51.100.1:4001");
        let ports = |o: &AttemptOrder| match (o.kind, o.proto) {
            (ProbeKind::Listener, Proto::Udp) => Port::Rejected,
            (ProbeKind::Listener, Proto::Tcp) => Port::Open,
            _ => Port::Dropped,
        };
        let (sim, host) = witnessed(&plan, "198.51.100.1", Host::new(ports, false));
        assert_eq!(host.counted.sent, [1, 0]);
        assert_eq!(sim.results.results[1].outcome, Outcome::Refused);
        assert!(sim.results.services.iter().all(|r| r.proven && r.attempts == 1), "{:?}", sim.results);
    }

    /// A witness that suppressed errors (rate limit) proves nothing: the quiet re-probes
    /// decide, and every rejection the rate limit silenced is still found.
    #[test]
    fn a_witness_that_suppressed_errors_leaves_silence_to_the_quiet_re_probes() {
        let (sim, host) =
            witnessed(&ports_at("198.51.100.1", Proto::Tcp, 12), "198.51.100.1", Host::new(service_port, false));
        assert!(host.counted.limited[0] > 0);
        assert_eq!(sim.outcomes().1, vec![Outcome::Unreachable; 12], "every rejection found");
        assert!(sim.started.iter().any(|(_, o)| o.quiet));
    }

    /// An error the host sent but the peer's socket missed (IPv6 connect on a fast path)
    /// is one more sent than seen: no proof, and the quiet re-probe finds the rejection
    /// among drops.
    #[test]
    fn an_error_sent_but_missed_spoils_the_witness() {
        let ports = |o: &AttemptOrder| match (o.kind, o.probe) {
            (ProbeKind::Listener, _) => Port::Open,
            (_, 0) => Port::Rejected,
            _ => Port::Dropped,
        };
        let (sim, host) = witnessed(&ports_at("2001:db8::1", Proto::Tcp, 4), "2001:db8::1", Host::new(ports, true));
        assert_eq!(host.counted.limited, [0, 0]);
        let (_, services) = sim.outcomes();
        assert_eq!(services, [Outcome::Unreachable, Outcome::Timeout, Outcome::Timeout, Outcome::Timeout]);
        assert!(sim.results.services[1..].iter().all(|r| r.proven && r.attempts == 2), "by the quiet re-probes");
    }

    /// Without a witness (an agent that cannot read its counters), as before.
    #[test]
    fn without_a_witness_the_quiet_re_probes_decide() {
        let host = std::cell::RefCell::new(Host::new(drops, false));
        let plan = ports_at("198.51.100.1", Proto::Tcp, 2);
        let sim = simulate_witnessed(
            &plan,
            &["198.51.100.1"],
            config(64),
            &mut |at, o| host.borrow_mut().attempt(at, o),
            &|| None,
            &|_| true,
        );
        assert!(sim.results.services.iter().all(|r| r.proven && r.attempts == 2));
    }

    /// The witness covers only what its host's counters can speak for: an address off the
    /// peer's link (a router between could have sent and rate-limited the error), an
    /// address not yet verified to be the agent's, and UDP services (a published port's
    /// datagrams may be answered from a container's namespace) keep their quiet re-probe.
    #[test]
    fn the_witness_covers_only_verified_on_link_addresses_and_not_udp_services() {
        let plan = ports_at("198.51.100.1", Proto::Tcp, 2);
        // Off the link: the quiet re-probes decide.
        let (sim, _) = witnessed_from(&plan, &["198.51.100.1"], Host::new(drops, false), &|_| false);
        assert!(sim.results.services.iter().all(|r| r.proven && r.attempts == 2), "{:?}", sim.results);
        // Not verified: its silent knock is no proven drop at once.
        let (sim, _) = witnessed_from(&plan, &[], Host::new(|_| Port::Dropped, false), &|_| true);
        assert!(sim.started.iter().any(|(_, o)| o.quiet), "the knock is re-probed quietly");
        assert_eq!(sim.results.results[0].attempts, 2);
        // UDP services: not covered, while the TCP test listener beside them is.
        let mut plan = ports_at("198.51.100.1", Proto::Udp, 2);
        with_listener(&mut plan, Proto::Tcp, "198.51.100.1:4001", "198.51.100.1:4001");
        let (sim, _) = witnessed(&plan, "198.51.100.1", Host::new(|_| Port::Dropped, false));
        assert!(sim.results.services.iter().all(|r| r.attempts == 2), "UDP services re-probed: {:?}", sim.results);
        assert_eq!((sim.results.results[0].attempts, sim.results.results[0].proven), (1, true));
    }

    /// Errors the run met at an address the witness does not cover (an unroutable
    /// address the agent claims) are not counted as seen: they cannot stand in for an
    /// error the host sent and the peer missed.
    #[test]
    fn errors_from_elsewhere_do_not_count_as_seen() {
        let mut plan = ports_at("2001:db8::1", Proto::Tcp, 1);
        // A second claimed address whose knock fails at once with "network unreachable".
        with_listener(&mut plan, Proto::Tcp, "[::]:4000", "[2001:db8:9::1]:4000");
        let ports = |o: &AttemptOrder| match (o.kind, o.target.ip() == ip("2001:db8:9::1")) {
            (_, true) => Port::Unreachable,
            (ProbeKind::Listener, _) => Port::Open,
            _ => Port::Rejected,
        };
        // The host's error for the rejected port is missed (lock drop): nothing is
        // suppressed and the covered probes saw no error, though the run met errors elsewhere.
        let elsewhere = |a: IpAddr| a != ip("2001:db8:9::1");
        let (sim, host) = witnessed_from(&plan, &["2001:db8::1"], Host::new(ports, true), &elsewhere);
        assert_eq!(host.counted.limited, [0, 0], "nothing suppressed: only the count of seen errors decides");
        assert_eq!(
            sim.results.services[0].outcome,
            Outcome::Unreachable,
            "the quiet re-probe finds it: {:?}",
            sim.results
        );
    }

    /// Dropped and rejected ports in one family: the group that meets the reject settles
    /// it and proves nothing of the others, which are proven by the next group.
    #[test]
    fn a_reject_in_a_group_sends_its_silent_members_to_the_next() {
        let plan = ports_at("198.51.100.1", Proto::Tcp, 8);
        let ports = |o: &AttemptOrder| match (o.kind, o.probe) {
            (ProbeKind::Listener, _) => Port::Open,
            (_, 0..=5) => Port::Dropped,
            _ => Port::Rejected,
        };
        let mut host = Host::new(ports, false);
        // Spend the host's burst first, so the rejects' first attempts meet silence.
        host.buckets[0] = Bucket { tokens: Duration::ZERO, last: Duration::ZERO };
        let sim = simulate_clocked(&plan, &["198.51.100.1"], config(64), &mut |at, o| host.attempt(at, o));
        let mut expected = vec![Outcome::Timeout; 6];
        expected.extend([Outcome::Unreachable; 2]);
        assert_eq!(sim.outcomes().1, expected);
        assert!(sim.results.services.iter().all(|r| r.attempts == 2), "{:?}", sim.results.services);
    }

    /// The open wildcard test listener answers at once; it is no reason to wait. But no
    /// ordinary attempt of a family starts while its quiet re-probe is under way, and a
    /// quiet re-probe waits for every ordinary attempt of its family, not of the other.
    #[test]
    fn quiet_re_probes_have_their_family_to_themselves() {
        let plan = plan(
            &[(Proto::Tcp, "0.0.0.0:4000", "198.51.100.1:4000"), (Proto::Tcp, "[::]:4000", "[2001:db8::1]:4000")],
            &[(Proto::Tcp, "198.51.100.1:6000"), (Proto::Tcp, "[2001:db8::1]:6000")],
        );
        // IPv6 answers slowly (5 s); the IPv4 port is dropped.
        let network = |o: &AttemptOrder| match (o.target.is_ipv6(), o.kind) {
            (true, _) => after(Duration::from_secs(5), outcome(Outcome::Refused)),
            (false, ProbeKind::Service) => silent(o),
            (false, ProbeKind::Listener) => after(MS, outcome(Outcome::Open)),
        };
        let sim = simulate(&plan, &["198.51.100.1", "2001:db8::1"], config(64), &network);
        let quiet: Vec<Duration> = sim.started.iter().filter(|(_, o)| o.quiet).map(|s| s.0).collect();
        assert_eq!(quiet, [TIMEOUT + 2 * ICMP_RATE_WINDOW], "IPv6's slow answers do not hold IPv4 back");
        for (at, o) in &sim.started {
            let during = sim.started.iter().any(|(q, qo)| {
                qo.quiet && qo.target.is_ipv4() == o.target.is_ipv4() && *q < *at && *at < *q + qo.connect_timeout
            });
            assert!(!during, "{o:?} started at {at:?} during a quiet re-probe of its family");
        }
    }

    /// A hundred dropped ports: two groups (64 at a time), all proven in seconds.
    #[test]
    fn a_hundred_drops_are_proven_in_two_groups() {
        let plan = ports_at("198.51.100.1", Proto::Tcp, 100);
        let mut host = Host::new(|o| if o.kind == ProbeKind::Listener { Port::Open } else { Port::Dropped }, false);
        let sim = simulate_clocked(&plan, &["198.51.100.1"], config(64), &mut |at, o| host.attempt(at, o));
        let services = &sim.results.services;
        assert!(services.iter().all(|r| r.outcome == Outcome::Timeout && r.attempts == 2), "{services:?}");
        assert!(sim.ended < Duration::from_secs(10), "{:?}", sim.ended);
    }

    /// Silence and the run deadline: a quiet re-probe cut off by the deadline (here it
    /// never returns) does not count; its probe keeps one attempt and is no proven drop.
    #[test]
    fn silence_the_deadline_cut_short_keeps_one_attempt() {
        let plan = ports_at("198.51.100.1", Proto::Tcp, 10);
        let network = |o: &AttemptOrder| match (o.kind, o.quiet) {
            (ProbeKind::Listener, _) => after(MS, outcome(Outcome::Open)),
            (_, true) => None,
            (_, false) => silent(o),
        };
        let sim = simulate(&plan, &["198.51.100.1"], config(64), &network);
        assert_eq!(sim.ended, RUN_DEADLINE);
        let services = &sim.results.services;
        assert!(services.iter().all(|r| r.outcome == Outcome::Timeout && r.attempts == 1), "{services:?}");
    }
}
