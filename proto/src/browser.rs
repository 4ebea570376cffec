//! The browser peer's rules, without sockets: what a browser can test, the plan its page
//! runs (a [`ProbePlan`] turned into URLs and WebRTC answers), and how the page's raw
//! observations become probe results the report is assembled from.
//!
//! A page knows three classes per `fetch()` (BROWSER.md in the workspace notes): a
//! response, a fast failure (`TypeError`), a hang. The agent adds what only it sees:
//! which of its test listeners the page's requests and STUN packets reached. The API
//! and the page's side are described in `docs/browser-api.md`.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::defaults::{ATTEMPTS, BROWSER_ATTEMPT, BROWSER_CONCURRENCY, BROWSER_RUN_DEADLINE, BROWSER_UDP_WINDOW};
use crate::facts::CheckedPort;
use crate::plan::ProbePlan;
use crate::report::{Report, Severity, Verdict};
use crate::text::printable;
use crate::vocab::{ListenerHit, Outcome, ProbeResult, ProbeResults, Proto, ServiceResult};

/// The Fetch standard's "bad ports": every browser refuses to connect to them, without
/// sending a packet (<https://fetch.spec.whatwg.org/#port-blocking>).
pub const BAD_PORTS: &[u16] = &[
    0, 1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109,
    110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531,
    532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060,
    5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
];

/// Why a browser cannot test a port from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untestable {
    /// A page cannot send UDP to an arbitrary port.
    Udp,
    /// Browsers refuse to connect to this port.
    BadPort,
    /// The service does not speak HTTP: a page sees any other answer as a failure.
    NotHttp,
}

/// Why a browser cannot test `port` at all, before trying: UDP, or a bad port. (Whether
/// it speaks HTTP shows only when a request fails.)
pub fn untestable(port: CheckedPort) -> Option<Untestable> {
    match port.proto {
        Proto::Udp => Some(Untestable::Udp),
        Proto::Tcp if BAD_PORTS.contains(&port.port) => Some(Untestable::BadPort),
        Proto::Tcp => None,
    }
}

/// `POST /api/plan`'s body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PlanRequest {
    /// `navigator.userAgent`, shown sanitised as the peer's name.
    #[serde(default)]
    pub ua: Option<String>,
}

/// What a probe of the page dials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebKind {
    /// A test listener: `fetch` in `cors` mode; the listener answers with CORS headers.
    Listener,
    /// One of the user's ports: `fetch` in `no-cors` mode.
    Service,
}

/// One `fetch` probe of the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebProbe {
    /// Unique among the plan's fetch probes.
    pub id: u32,
    /// Test listener or service.
    pub kind: WebKind,
    /// The agent address it dials.
    pub target: IpAddr,
    /// Whether it is a knock: its answer verifies `target` for the other probes.
    pub knock: bool,
    /// The URL to fetch.
    pub url: String,
}

/// One WebRTC probe of a UDP test listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebUdpProbe {
    /// Unique among the plan's UDP probes.
    pub id: u32,
    /// The agent address it dials (as `ip`).
    pub target: IpAddr,
    /// The candidate's address.
    pub ip: IpAddr,
    /// The candidate's port: the UDP test listener's.
    pub port: u16,
    /// The agent's ICE username fragment: names the session to the listener.
    pub ufrag: String,
    /// The agent's ICE password (never checked: the agent answers no STUN request).
    pub pwd: String,
    /// A well-formed DTLS fingerprint (no DTLS ever starts).
    pub fingerprint: String,
}

/// The agent as the page names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebAgent {
    /// Its name.
    pub name: String,
    /// Its short key ID.
    pub id: String,
}

/// The plan the page runs (`POST /api/plan`'s answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebPlan {
    /// The run's ID, 32 hex digits.
    pub run: String,
    /// Who the agent is.
    pub agent: WebAgent,
    /// A first attempt's deadline.
    pub attempt_ms: u64,
    /// The retry's deadline after a hang; 0: no retry (the attempt outlives the SYN
    /// retransmission, which retries by itself).
    pub retry_ms: u64,
    /// How long a WebRTC probe stays open.
    pub udp_ms: u64,
    /// The results must arrive this long after the plan.
    pub deadline_ms: u64,
    /// Fetches in flight at once.
    pub concurrency: usize,
    /// The fetch probes.
    pub probes: Vec<WebProbe>,
    /// The WebRTC probes.
    pub udp: Vec<WebUdpProbe>,
}

/// What one fetch probe met, as the page classes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebClass {
    /// The promise resolved: an HTTP answer of any status.
    Response,
    /// A `TypeError` at once.
    Failed,
    /// Aborted at the deadline.
    Hang,
    /// Not sent: the target's knocks got no answer.
    Skipped,
}

/// One fetch probe's result from the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebResult {
    /// The probe's ID.
    pub id: u32,
    /// What it met.
    pub class: WebClass,
    /// The decisive attempt's time to its outcome, milliseconds.
    #[serde(default)]
    pub ms: Option<u32>,
    /// Attempts made (1 or 2).
    #[serde(default)]
    pub attempts: Option<u8>,
    /// A test listener's answer (ignored: the listener's own record is the evidence).
    #[serde(default)]
    pub body: Option<String>,
}

/// One WebRTC probe's result from the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebUdpResult {
    /// The probe's ID.
    pub id: u32,
    /// Whether the page could start it.
    pub sent: bool,
    /// Why not.
    #[serde(default)]
    pub error: Option<String>,
}

/// `POST /api/results`' body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebResults {
    /// The run's ID.
    pub run: String,
    /// One per fetch probe.
    pub results: Vec<WebResult>,
    /// One per WebRTC probe.
    #[serde(default)]
    pub udp: Vec<WebUdpResult>,
}

/// What a page probe stands for in the [`ProbePlan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Listener(u32),
    Service(u32),
}

/// One browser run: the plan it was made from, and how the page's probes map onto it.
#[derive(Debug, Clone)]
pub struct BrowserRun {
    /// The probe plan (the test listeners and the user's ports) the report is made of.
    pub plan: ProbePlan,
    /// What the page is sent.
    pub web: WebPlan,
    fetch_slots: Vec<Slot>,
    udp_slots: Vec<u32>,
}

/// Why a page's results are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadResults {
    /// Another run's ID.
    #[error("these results belong to another run")]
    WrongRun,
    /// Not one entry per planned probe.
    #[error("the results must hold one entry per planned probe ({planned}); they hold {got}")]
    Count {
        /// Probes planned.
        planned: usize,
        /// Entries received.
        got: usize,
    },
    /// An unknown or repeated probe ID.
    #[error("result {0} is not a planned probe, or comes twice")]
    BadId(u32),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn url_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// The path a test listener answers a page's request on: `/k/SESSION/NONCE`, in hex.
pub fn knock_path(session: &[u8; 16], nonce: &[u8; 16]) -> String {
    format!("/k/{}/{}", hex(session), hex(nonce))
}

/// Parses a test listener request's path back into its session and nonce.
pub fn parse_knock_path(path: &str) -> Option<([u8; 16], [u8; 16])> {
    let rest = path.strip_prefix("/k/")?;
    let (session, nonce) = rest.split_once('/')?;
    Some((unhex16(session)?, unhex16(nonce)?))
}

fn unhex16(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The ICE username fragment that names `session` to the UDP test listeners.
pub fn ufrag(session: &[u8; 16]) -> String {
    hex(session)
}

/// The session a STUN Binding Request names: its USERNAME is `agentufrag:browserufrag`.
/// `None` for anything that is not a STUN Binding Request with a USERNAME.
pub fn stun_session(datagram: &[u8]) -> Option<[u8; 16]> {
    const BINDING_REQUEST: u16 = 0x0001;
    const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
    const USERNAME: u16 = 0x0006;
    if datagram.len() < 20 || u16::from_be_bytes([datagram[0], datagram[1]]) != BINDING_REQUEST {
        return None;
    }
    if datagram[4..8] != MAGIC_COOKIE {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let mut attrs = datagram.get(20..20 + length)?;
    while attrs.len() >= 4 {
        let kind = u16::from_be_bytes([attrs[0], attrs[1]]);
        let len = usize::from(u16::from_be_bytes([attrs[2], attrs[3]]));
        let value = attrs.get(4..4 + len)?;
        if kind == USERNAME {
            let text = std::str::from_utf8(value).ok()?;
            let (agent, _) = text.split_once(':')?;
            return unhex16(agent);
        }
        // Attributes are padded to four bytes.
        attrs = attrs.get(4 + len.div_ceil(4) * 4..).unwrap_or_default();
    }
    None
}

impl BrowserRun {
    /// The page's plan for `plan`, whose page was loaded from `origin` (trusted, as a
    /// peer trusts the address its control channel reached: no knocks there). `nonce`
    /// makes each test-listener URL unique; `pwd` is the ICE password.
    ///
    /// Test listeners are probed over TCP (fetch); UDP only at the wildcard and specific
    /// listeners of each address, over WebRTC (loopback listeners cannot be told from a
    /// closed port without ICMP, which a page never sees). The user's ports a browser
    /// cannot test ([`untestable`]) are left out: their verdict comes from the inside
    /// facts, or says so.
    pub fn new(mut plan: ProbePlan, origin: IpAddr, agent: WebAgent, run: [u8; 16], pwd: &str) -> BrowserRun {
        plan.probes.retain(|p| p.proto == Proto::Tcp || !p.bind.ip().is_loopback());
        plan.services.retain(|s| untestable(CheckedPort { port: s.target.port(), proto: s.proto }).is_none());
        renumber(&mut plan);
        let origin = origin.to_canonical();
        let mut probes = Vec::new();
        let mut fetch_slots = Vec::new();
        let mut udp = Vec::new();
        let mut udp_slots = Vec::new();
        let mut knocked: HashSet<IpAddr> = HashSet::new();
        for p in &plan.probes {
            let target = p.target.ip().to_canonical();
            match p.proto {
                Proto::Tcp => {
                    // One knock per address: the wildcard listener of its own family.
                    let knock = target != origin
                        && p.bind.ip().is_unspecified()
                        && p.bind.is_ipv4() == target.is_ipv4()
                        && knocked.insert(target);
                    let mut nonce = [0u8; 16];
                    nonce[..4].copy_from_slice(&p.id.to_be_bytes());
                    nonce[4..].copy_from_slice(&run[..12]);
                    let url =
                        format!("http://{}:{}{}", url_host(target), p.target.port(), knock_path(&plan.session, &nonce));
                    let id = u32::try_from(probes.len()).unwrap_or(u32::MAX);
                    probes.push(WebProbe { id, kind: WebKind::Listener, target, knock, url });
                    fetch_slots.push(Slot::Listener(p.id));
                }
                Proto::Udp => {
                    let id = u32::try_from(udp.len()).unwrap_or(u32::MAX);
                    let digest: String =
                        plan.session.iter().chain(&run).map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
                    udp.push(WebUdpProbe {
                        id,
                        target,
                        ip: target,
                        port: p.target.port(),
                        ufrag: ufrag(&plan.session),
                        pwd: pwd.to_owned(),
                        fingerprint: format!("sha-256 {digest}"),
                    });
                    udp_slots.push(p.id);
                }
            }
        }
        for s in &plan.services {
            let target = s.target.ip().to_canonical();
            let id = u32::try_from(probes.len()).unwrap_or(u32::MAX);
            let url = format!("http://{}:{}/", url_host(target), s.target.port());
            probes.push(WebProbe { id, kind: WebKind::Service, target, knock: false, url });
            fetch_slots.push(Slot::Service(s.id));
        }
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let web = WebPlan {
            run: hex(&run),
            agent,
            attempt_ms: ms(BROWSER_ATTEMPT),
            retry_ms: 0,
            udp_ms: ms(BROWSER_UDP_WINDOW),
            deadline_ms: ms(BROWSER_RUN_DEADLINE),
            concurrency: BROWSER_CONCURRENCY,
            probes,
            udp,
        };
        BrowserRun { plan, web, fetch_slots, udp_slots }
    }

    /// The page's results as probe results in the plan's order, joined with what the
    /// test listeners saw (`hits`): a test listener is `open` when it saw the request
    /// (TCP) or a STUN request (UDP) arrive, whatever the page says; a response it did not
    /// see came from something else (`foreign`). A WebRTC probe the listener did not hear
    /// from is silence (browsers retransmit STUN requests many times, so it counts as
    /// tried twice); one the page could not start is `not_probed`.
    pub fn results(&self, page: &WebResults, hits: &[ListenerHit]) -> Result<ProbeResults, BadResults> {
        if page.run != self.web.run {
            return Err(BadResults::WrongRun);
        }
        let planned = self.fetch_slots.len() + self.udp_slots.len();
        let got = page.results.len() + page.udp.len();
        if page.results.len() != self.fetch_slots.len() || page.udp.len() != self.udp_slots.len() {
            return Err(BadResults::Count { planned, got });
        }
        let mut listeners: Vec<Option<ProbeResult>> = vec![None; self.plan.probes.len()];
        let mut services: Vec<Option<ServiceResult>> = vec![None; self.plan.services.len()];
        let seen = |proto: Proto, bind: SocketAddr, target: SocketAddr| {
            hits.iter().any(|h| h.proto == proto && h.bind == bind && h.local.ip() == target.ip())
        };
        for r in &page.results {
            let slot = self.fetch_slots.get(r.id as usize).ok_or(BadResults::BadId(r.id))?;
            // A hang lasted out an attempt that spans the SYN retransmission: proven
            // silence, as after a peer's quiet re-probe.
            let attempts = match r.class {
                WebClass::Hang => ATTEMPTS,
                _ => r.attempts.unwrap_or(1).clamp(1, ATTEMPTS),
            };
            let rtt_us = r.ms.filter(|_| r.class != WebClass::Hang).map(|ms| ms.saturating_mul(1000));
            let class_outcome = match r.class {
                WebClass::Response => Outcome::Open,
                WebClass::Failed => Outcome::Failed,
                WebClass::Hang => Outcome::Timeout,
                WebClass::Skipped => Outcome::NotProbed,
            };
            match *slot {
                Slot::Listener(id) => {
                    let entry = listeners.get_mut(id as usize).ok_or(BadResults::BadId(r.id))?;
                    if entry.is_some() {
                        return Err(BadResults::BadId(r.id));
                    }
                    let p = self.plan.probes[id as usize];
                    let outcome = match (seen(p.proto, p.bind, p.target), class_outcome) {
                        (true, _) => Outcome::Open,
                        (false, Outcome::Open) => Outcome::Foreign,
                        (false, other) => other,
                    };
                    let attempts = if outcome == Outcome::NotProbed { 0 } else { attempts };
                    let proven = outcome == Outcome::Timeout;
                    *entry = Some(ProbeResult { id, outcome, rtt_us, errno: None, attempts, proven });
                }
                Slot::Service(id) => {
                    let entry = services.get_mut(id as usize).ok_or(BadResults::BadId(r.id))?;
                    if entry.is_some() {
                        return Err(BadResults::BadId(r.id));
                    }
                    let attempts = if class_outcome == Outcome::NotProbed { 0 } else { attempts };
                    *entry = Some(ServiceResult {
                        id,
                        outcome: class_outcome,
                        rtt_us,
                        errno: None,
                        http_status: None,
                        attempts,
                        proven: class_outcome == Outcome::Timeout,
                        source_ports: Vec::new(),
                    });
                }
            }
        }
        for u in &page.udp {
            let id = *self.udp_slots.get(u.id as usize).ok_or(BadResults::BadId(u.id))?;
            let entry = listeners.get_mut(id as usize).ok_or(BadResults::BadId(u.id))?;
            if entry.is_some() {
                return Err(BadResults::BadId(u.id));
            }
            let p = self.plan.probes[id as usize];
            let (outcome, attempts) = match (seen(p.proto, p.bind, p.target), u.sent) {
                (true, _) => (Outcome::Open, 1),
                (false, true) => (Outcome::Timeout, ATTEMPTS),
                (false, false) => (Outcome::NotProbed, 0),
            };
            let proven = outcome == Outcome::Timeout;
            *entry = Some(ProbeResult { id, outcome, rtt_us: None, errno: None, attempts, proven });
        }
        // Every slot was filled exactly once (counts match, no ID twice).
        Ok(ProbeResults {
            results: listeners.into_iter().flatten().collect(),
            services: services.into_iter().flatten().collect(),
        })
    }
}

/// Probe IDs count up from 0 again after probes were left out.
fn renumber(plan: &mut ProbePlan) {
    for (i, p) in plan.probes.iter_mut().enumerate() {
        p.id = u32::try_from(i).unwrap_or(u32::MAX);
    }
    for (i, s) in plan.services.iter_mut().enumerate() {
        s.id = u32::try_from(i).unwrap_or(u32::MAX);
    }
}

/// The name a browser gets in the report: what its user agent says it is, in a few
/// words (`Chrome on Android`), sanitised.
pub fn browser_name(user_agent: Option<&str>) -> String {
    let ua = user_agent.unwrap_or_default();
    let has = |s: &str| ua.contains(s);
    let browser = if has("Firefox/") {
        "Firefox"
    } else if has("Edg/") {
        "Edge"
    } else if has("Chrome/") || has("Chromium/") || has("CriOS/") {
        "Chrome"
    } else if has("Safari/") {
        "Safari"
    } else {
        "a browser"
    };
    let system = if has("Android") {
        " on Android"
    } else if has("iPhone") || has("iPad") {
        " on iOS"
    } else if has("Windows") {
        " on Windows"
    } else if has("Mac OS X") {
        " on macOS"
    } else if has("Linux") {
        " on Linux"
    } else {
        ""
    };
    printable(&format!("{browser}{system}"), 40)
}

/// One thing the page shows in large type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// `Port 3000`, or a finding's heading.
    pub title: String,
    /// The port's verdict code, or the finding's code.
    pub verdict: String,
    /// Good news.
    pub ok: bool,
    /// `ok`, `warning` or `error`: how the page colours it.
    pub severity: String,
    /// What was found, in words.
    pub cause: String,
    /// What to do (may be empty).
    pub fix: String,
}

/// `POST /api/results`' answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    /// What the page shows in large type.
    pub items: Vec<Item>,
    /// The report as text, for a `<pre>`.
    pub details: String,
    /// The whole report.
    pub report: Report,
}

/// What the page shows in large type: each `--check` port with its verdict, the cause
/// and the fix; without `--check`, the most important findings.
pub fn items(report: &Report) -> Vec<Item> {
    let checked: Vec<_> = report.services.iter().filter(|s| s.source == crate::facts::PortSource::Check).collect();
    if checked.is_empty() {
        // Without --check: the problems on the path, or the good news, and how to test a
        // server next.
        let mut out: Vec<Item> = report
            .findings
            .iter()
            .filter(|f| f.severity != Severity::Info)
            .take(3)
            .map(|f| Item {
                title: if f.severity == Severity::Error { "Problem".into() } else { "To look at".into() },
                verdict: f.code.as_str().to_owned(),
                ok: false,
                severity: severity_word(Some(f.severity)).into(),
                cause: f.message.clone(),
                fix: f.fix.clone(),
            })
            .collect();
        if out.is_empty() {
            let reached = report.findings.iter().find(|f| f.code.as_str().starts_with("lan_reachable"));
            out.push(Item {
                title: "The network".into(),
                verdict: reached.map_or("none", |f| f.code.as_str()).to_owned(),
                ok: true,
                severity: "ok".into(),
                cause: reached.map_or_else(
                    || "Nothing stopped this browser's requests to the agent.".to_owned(),
                    |_| {
                        "This browser reached the agent's test servers: the network and the firewall pass its traffic."
                            .to_owned()
                    },
                ),
                fix: String::new(),
            });
        }
        out.push(Item {
            title: "Your own server".into(),
            verdict: "no_check".into(),
            ok: true,
            severity: "ok".into(),
            cause: "No port of yours was tested.".into(),
            fix: "run the agent again naming the port your server listens on: `lanreach-agent --check 3000`".into(),
        });
        return out;
    }
    let mut out: Vec<Item> = checked
        .iter()
        .map(|s| {
            let label = s.label();
            let prefix = format!("Port {label}");
            let finding = report.findings.iter().find(|f| {
                f.code.as_str() == s.verdict.as_str()
                    && f.message
                        .strip_prefix(&prefix)
                        .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit() || c == '/'))
            });
            let ok = s.verdict == Verdict::Reachable;
            let cause = match finding {
                // The title already names the port.
                Some(f) => f.message.strip_prefix(&format!("{prefix}: ")).unwrap_or(&f.message).to_owned(),
                None if ok => {
                    let at: Vec<String> =
                        s.probes.iter().filter(|p| p.outcome == Outcome::Open).map(|p| p.target.to_string()).collect();
                    format!("This browser reached port {label} at {}.", at.join(", "))
                }
                None => String::new(),
            };
            let severity = if ok { "ok" } else { severity_word(finding.map(|f| f.severity).or(Some(Severity::Error))) };
            Item {
                title: prefix,
                verdict: s.verdict.as_str().to_owned(),
                ok,
                severity: severity.into(),
                cause,
                fix: finding.map(|f| f.fix.clone()).unwrap_or_default(),
            }
        })
        .collect();
    // Problems on the path itself (a firewall dropping UDP, IPv6 not routed) matter
    // beside the ports: the most severe two, after them.
    let port_codes: Vec<&str> = Verdict::ALL.iter().map(|v| v.as_str()).collect();
    out.extend(
        report
            .findings
            .iter()
            .filter(|f| f.severity != Severity::Info && !port_codes.contains(&f.code.as_str()))
            .take(2)
            .map(|f| Item {
                title: "Also found".into(),
                verdict: f.code.as_str().to_owned(),
                ok: false,
                severity: severity_word(Some(f.severity)).into(),
                cause: f.message.clone(),
                fix: f.fix.clone(),
            }),
    );
    out
}

fn severity_word(severity: Option<Severity>) -> &'static str {
    match severity {
        Some(Severity::Error) => "error",
        Some(Severity::Warning) => "warning",
        Some(Severity::Info) | None => "ok",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::{PlannedProbe, ServiceProbe};

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    fn plan() -> ProbePlan {
        let probe =
            |id, proto, bind: &str, target: &str| PlannedProbe { id, proto, bind: addr(bind), target: addr(target) };
        ProbePlan {
            session: [0xab; 16],
            key: [1; 32],
            probes: vec![
                probe(0, Proto::Tcp, "0.0.0.0:40000", "198.51.100.1:40000"),
                probe(1, Proto::Tcp, "0.0.0.0:40000", "198.51.100.9:40000"),
                probe(2, Proto::Tcp, "127.0.0.1:40001", "198.51.100.1:40001"),
                probe(3, Proto::Udp, "127.0.0.1:40001", "198.51.100.1:40001"),
                probe(4, Proto::Udp, "0.0.0.0:40000", "198.51.100.1:40000"),
            ],
            services: vec![
                ServiceProbe { id: 0, proto: Proto::Tcp, target: addr("198.51.100.1:3000") },
                ServiceProbe { id: 1, proto: Proto::Tcp, target: addr("198.51.100.1:6000") },
                ServiceProbe { id: 2, proto: Proto::Udp, target: addr("198.51.100.1:5353") },
            ],
        }
    }

    fn run() -> BrowserRun {
        let agent = WebAgent { name: "box".into(), id: "AAAA".into() };
        BrowserRun::new(plan(), "198.51.100.1".parse().expect("ip"), agent, [7; 16], "pwdpwdpwdpwdpwdpwdpwdpwd")
    }

    #[test]
    fn the_page_knocks_at_addresses_it_did_not_come_from_and_never_tries_what_a_browser_cannot() {
        let r = run();
        let knocks: Vec<&str> = r.web.probes.iter().filter(|p| p.knock).map(|p| p.url.as_str()).collect();
        assert_eq!(knocks.len(), 1, "{knocks:?}");
        assert!(knocks[0].starts_with("http://198.51.100.9:40000/k/abab"), "{knocks:?}");
        // The loopback UDP listener, the bad port and the UDP service are left out.
        assert_eq!(r.web.udp.len(), 1);
        assert_eq!(r.web.udp[0].port, 40000);
        let services: Vec<&str> =
            r.web.probes.iter().filter(|p| p.kind == WebKind::Service).map(|p| p.url.as_str()).collect();
        assert_eq!(services, ["http://198.51.100.1:3000/"]);
        assert_eq!(r.plan.services.len(), 1);
        assert!(r.plan.probes.iter().enumerate().all(|(i, p)| p.id as usize == i));
        let (session, _) = parse_knock_path(r.web.probes[0].url.trim_start_matches("http://198.51.100.1:40000"))
            .expect("a knock path");
        assert_eq!(session, [0xab; 16]);
    }

    fn result(id: u32, class: WebClass) -> WebResult {
        WebResult { id, class, ms: Some(3), attempts: Some(1), body: None }
    }

    #[test]
    fn the_listeners_record_outranks_the_page_and_classes_map_to_outcomes() {
        let r = run();
        let hit = |proto, bind: &str, local: &str| ListenerHit {
            proto,
            bind: addr(bind),
            local: addr(local),
            source: addr("198.51.100.2:50000"),
        };
        let hits = [
            hit(Proto::Tcp, "0.0.0.0:40000", "198.51.100.1:40000"),
            hit(Proto::Udp, "0.0.0.0:40000", "198.51.100.1:40000"),
        ];
        let page = WebResults {
            run: r.web.run.clone(),
            results: vec![
                result(0, WebClass::Failed),   // seen by the listener: open all the same
                result(1, WebClass::Response), // not seen: something else answered
                result(2, WebClass::Failed),
                result(3, WebClass::Hang),
            ],
            udp: vec![WebUdpResult { id: 0, sent: true, error: None }],
        };
        let got = r.results(&page, &hits).expect("valid");
        let outcomes: Vec<Outcome> = got.results.iter().map(|p| p.outcome).collect();
        assert_eq!(outcomes, [Outcome::Open, Outcome::Foreign, Outcome::Failed, Outcome::Open]);
        assert_eq!(got.services[0].outcome, Outcome::Timeout);
        // Without the STUN hit, the UDP listener met silence after many requests.
        let got = r.results(&page, &hits[..1]).expect("valid");
        assert_eq!((got.results[3].outcome, got.results[3].attempts), (Outcome::Timeout, ATTEMPTS));
    }

    #[test]
    fn results_that_do_not_answer_the_plan_are_refused() {
        let r = run();
        let all = |ids: &[u32]| WebResults {
            run: r.web.run.clone(),
            results: ids.iter().map(|id| result(*id, WebClass::Failed)).collect(),
            udp: vec![WebUdpResult { id: 0, sent: false, error: Some("no WebRTC".into()) }],
        };
        assert!(r.results(&all(&[0, 1, 2, 3]), &[]).is_ok());
        assert_eq!(r.results(&all(&[0, 1, 2]), &[]), Err(BadResults::Count { planned: 5, got: 4 }));
        assert_eq!(r.results(&all(&[0, 1, 2, 2]), &[]), Err(BadResults::BadId(2)));
        assert_eq!(r.results(&all(&[0, 1, 2, 99]), &[]), Err(BadResults::BadId(99)));
        let mut other = all(&[0, 1, 2, 3]);
        other.run = "00".into();
        assert_eq!(r.results(&other, &[]), Err(BadResults::WrongRun));
    }

    #[test]
    fn stun_binding_requests_name_their_session() {
        let mut packet = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xA4, 0x42];
        packet.extend([9u8; 12]);
        // PRIORITY (4 bytes), then USERNAME "hex:abcd" padded.
        let mut attrs = vec![0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4];
        let user = format!("{}:abcd", ufrag(&[0x5a; 16]));
        attrs.extend([0x00, 0x06]);
        attrs.extend(u16::try_from(user.len()).expect("short").to_be_bytes());
        attrs.extend(user.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        packet[2..4].copy_from_slice(&u16::try_from(attrs.len()).expect("short").to_be_bytes());
        packet.extend(&attrs);
        assert_eq!(stun_session(&packet), Some([0x5a; 16]));
        assert_eq!(stun_session(&packet[..packet.len() - 4]), None, "truncated");
        let mut response = packet.clone();
        response[1] = 0x01;
        response[0] = 0x01;
        assert_eq!(stun_session(&response), None, "not a Binding Request");
        assert_eq!(stun_session(b"LANRCHK1"), None);
    }

    #[test]
    fn browsers_are_named_in_a_few_words() {
        let android = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Mobile Safari/537.36";
        assert_eq!(browser_name(Some(android)), "Chrome on Android");
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1";
        assert_eq!(browser_name(Some(iphone)), "Safari on iOS");
        assert_eq!(browser_name(Some("\u{1b}[31mevil")), "a browser");
        assert_eq!(browser_name(None), "a browser");
    }

    #[test]
    fn bad_ports_and_udp_are_untestable() {
        let tcp = |port| CheckedPort { port, proto: Proto::Tcp };
        assert_eq!(untestable(tcp(6000)), Some(Untestable::BadPort));
        assert_eq!(untestable(tcp(10080)), Some(Untestable::BadPort));
        assert_eq!(untestable(tcp(3000)), None);
        assert_eq!(untestable(CheckedPort { port: 5353, proto: Proto::Udp }), Some(Untestable::Udp));
    }
}
