//! The user's own services (`--check 3000`): the inside facts about a port, the outside
//! probes of it, and the verdict that joins them with the test listeners' picture of
//! the path — pure rules, each with a message and a concrete fix.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::plan::Proto;
use crate::report::{Finding, Outcome, ProbeReport, Severity};

/// Most ports one `--check` may name.
pub const MAX_CHECKED_PORTS: usize = 64;

/// A port the user asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CheckedPort {
    /// The port.
    pub port: u16,
    /// Its protocol (TCP unless `/udp` was given).
    pub proto: Proto,
}

impl fmt::Display for CheckedPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.proto {
            Proto::Tcp => write!(f, "{}", self.port),
            Proto::Udp => write!(f, "{}/udp", self.port),
        }
    }
}

/// A `--check` list that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--check {given:?}: {why}; give ports like 3000 or 3000,8080 or 53/udp")]
pub struct BadPorts {
    given: String,
    why: String,
}

/// Parses `3000`, `3000,8080`, `53/udp`, `8080/tcp`.
pub fn parse_ports(text: &str) -> Result<Vec<CheckedPort>, BadPorts> {
    let bad = |why: String| BadPorts { given: text.to_owned(), why };
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (num, proto) = match item.split_once('/') {
            Some((n, p)) if p.eq_ignore_ascii_case("tcp") => (n, Proto::Tcp),
            Some((n, p)) if p.eq_ignore_ascii_case("udp") => (n, Proto::Udp),
            Some((_, p)) => return Err(bad(format!("unknown protocol {p:?}"))),
            None => (item, Proto::Tcp),
        };
        let port: u16 = num.parse().ok().filter(|p| *p != 0).ok_or_else(|| bad(format!("{num:?} is not a port")))?;
        let checked = CheckedPort { port, proto };
        if !out.contains(&checked) {
            out.push(checked);
        }
    }
    if out.is_empty() {
        return Err(bad("no port given".into()));
    }
    if out.len() > MAX_CHECKED_PORTS {
        return Err(bad(format!("at most {MAX_CHECKED_PORTS} ports")));
    }
    Ok(out)
}

/// An inside fact: a socket listening on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketFact {
    /// Protocol.
    pub proto: Proto,
    /// Bound address.
    pub bind: SocketAddr,
    /// For `[::]`: whether it refuses IPv4 (IPV6_V6ONLY), when that could be learnt.
    pub v6only: Option<bool>,
    /// Owning process, when visible (other users' processes need root).
    pub pid: Option<u32>,
    /// Owning program's name (`node`, `python3`…).
    pub program: Option<String>,
    /// Its command line, for recognising frameworks.
    pub cmdline: Option<String>,
}

impl SocketFact {
    /// Whether a connection to `ip` on this socket's port reaches this socket.
    pub fn accepts(&self, ip: IpAddr) -> bool {
        let bind = self.bind.ip();
        if bind.is_unspecified() {
            return bind.is_ipv4() == ip.is_ipv4() || (bind.is_ipv6() && self.v6only == Some(false));
        }
        bind.to_canonical() == ip.to_canonical()
    }
}

/// Docker's publication of a container port on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerPublish {
    /// Container name.
    pub container: String,
    /// Image.
    pub image: String,
    /// Host address of the binding (`0.0.0.0`, `127.0.0.1`, a specific address).
    pub host_ip: IpAddr,
    /// Host port.
    pub host_port: u16,
    /// Port inside the container.
    pub container_port: u16,
    /// Protocol.
    pub proto: Proto,
    /// Sockets listening inside the container's network namespace, when readable.
    pub inner_listeners: Option<Vec<SocketAddr>>,
}

/// An outside probe of a checked port (part of the plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceProbe {
    /// Index, echoed in the result.
    pub id: u32,
    /// Protocol.
    pub proto: Proto,
    /// Address to dial.
    pub target: SocketAddr,
}

/// What an outside probe of a checked port found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceResult {
    /// The probe's ID.
    pub id: u32,
    /// What happened (`open`: accepted and talked or stayed open).
    pub outcome: Outcome,
    /// Connect round trip, microseconds.
    pub rtt_us: Option<u32>,
    /// OS error number, when there was one.
    pub errno: Option<i32>,
    /// HTTP status of the answer to a minimal request, when the server spoke HTTP.
    pub http_status: Option<u16>,
}

/// The verdict for one checked port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The peer reached it.
    Reachable,
    /// Bound to 127.0.0.1 / ::1 only.
    LoopbackOnly,
    /// Bound only to an address the peer did not dial (another NIC, a VPN).
    InterfaceOnly,
    /// IPv4 only, and the peer reached this host over IPv6 only.
    Ipv4Only,
    /// IPv6 only, and the peer reached this host over IPv4 only.
    Ipv6Only,
    /// Something listens on a matching address; the port times out from outside.
    FirewallDrop,
    /// Something listens on a matching address; refused or admin-prohibited from outside.
    FirewallReject,
    /// Nothing listens on the port.
    NotListening,
    /// A userland proxy accepted and closed: its backend is down or bound to loopback.
    ProxyNoBackend,
    /// Docker: the app inside the container listens on 127.0.0.1.
    ContainerLoopback,
    /// Docker: published with `-p 127.0.0.1:…`.
    PublishedLoopback,
    /// TCP works but the app rejects the Host/Origin (400, 403, 421).
    HttpHostCheck,
    /// Not even the agent's wildcard test listeners are reachable.
    NetworkBlocked,
}

impl Verdict {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Reachable => "reachable",
            Verdict::LoopbackOnly => "loopback_only",
            Verdict::InterfaceOnly => "interface_only",
            Verdict::Ipv4Only => "ipv4_only",
            Verdict::Ipv6Only => "ipv6_only",
            Verdict::FirewallDrop => "firewall_drop",
            Verdict::FirewallReject => "firewall_reject",
            Verdict::NotListening => "not_listening",
            Verdict::ProxyNoBackend => "proxy_no_backend",
            Verdict::ContainerLoopback => "container_loopback",
            Verdict::PublishedLoopback => "published_loopback",
            Verdict::HttpHostCheck => "http_host_check",
            Verdict::NetworkBlocked => "network_blocked",
        }
    }
}

/// A listening socket in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceListener {
    /// Bound socket address.
    pub bind: SocketAddr,
    /// Owning process, null when not visible.
    pub pid: Option<u32>,
    /// Owning program, null when not visible.
    pub program: Option<String>,
    /// For `[::]`: IPV6_V6ONLY, when known.
    pub v6only: Option<bool>,
}

/// An outside probe in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceProbeReport {
    /// The socket address dialled.
    pub target: SocketAddr,
    /// What happened.
    pub outcome: Outcome,
    /// Connect round trip, milliseconds.
    pub rtt_ms: Option<f64>,
    /// HTTP status, when the server spoke HTTP.
    pub http_status: Option<u16>,
    /// OS error number, when there was one.
    pub errno: Option<i32>,
}

/// Why a port is in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortSource {
    /// Named with `--check`: counts for the exit code.
    Check,
    /// Found listening by `--exposed`: an audit, not a requirement.
    Exposed,
}

/// The inside facts about one port, gathered by the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInput {
    /// The port.
    pub port: CheckedPort,
    /// Why it is checked.
    pub source: PortSource,
    /// Sockets listening on it.
    pub listeners: Vec<SocketFact>,
    /// Docker publications of it.
    pub docker: Vec<DockerPublish>,
    /// The HTTP status this machine gets for `GET /` with `Host: localhost`, asked
    /// only when the peer's answer was 400, 403 or 421 (to tell a Host check from a
    /// page that refuses everyone).
    pub local_http_status: Option<u16>,
}

/// One checked port in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceReport {
    /// The port.
    pub port: u16,
    /// `check` (counts for the exit code) or `exposed` (audit).
    pub source: PortSource,
    /// Its protocol.
    pub proto: Proto,
    /// Sockets listening on it here.
    pub listeners: Vec<ServiceListener>,
    /// Docker publications of it.
    pub docker: Vec<DockerPublish>,
    /// Outside probes of it.
    pub probes: Vec<ServiceProbeReport>,
    /// The verdict.
    pub verdict: Verdict,
}

/// Joins a port's inside facts, its outside probes and the path picture into its report
/// entry and, unless it is reachable, a finding.
pub fn judge(
    input: &ServiceInput,
    plan: &[ServiceProbe],
    results: &[ServiceResult],
    path: &[ProbeReport],
    wsl2: bool,
) -> (ServiceReport, Option<Finding>) {
    let probes: Vec<ServiceProbeReport> = plan
        .iter()
        .filter(|p| p.proto == input.port.proto && p.target.port() == input.port.port)
        .map(|p| {
            let r = results.iter().find(|r| r.id == p.id);
            ServiceProbeReport {
                target: p.target,
                outcome: r.map_or(Outcome::Timeout, |r| r.outcome),
                rtt_ms: r.and_then(|r| r.rtt_us).map(|us| f64::from(us) / 1000.0),
                http_status: r.and_then(|r| r.http_status),
                errno: r.and_then(|r| r.errno),
            }
        })
        .collect();
    let verdict = verdict(&ServiceFacts {
        port: input.port,
        listeners: &input.listeners,
        docker: &input.docker,
        probes: &probes,
        path,
        local_http_status: input.local_http_status,
    });
    let unconfirmed = verdict == Verdict::Reachable && !probes.iter().any(|p| p.outcome == Outcome::Open);
    let finding = if unconfirmed {
        Some(Finding {
            code: "udp_unconfirmed".into(),
            severity: Severity::Warning,
            message: format!(
                "Port {}: a socket listens and UDP reaches this machine, but the server did not answer an empty \
                 datagram; many UDP protocols stay silent, so reachability is likely but not confirmed.",
                input.port
            ),
            fix: "test with the protocol's own client from the other device".into(),
        })
    } else {
        (verdict != Verdict::Reachable).then(|| finding(input.port, verdict, &input.listeners, &input.docker, wsl2))
    };
    let finding = finding.map(|mut f| {
        if input.source == PortSource::Exposed {
            f.severity = Severity::Info;
        }
        f
    });
    let listeners = input
        .listeners
        .iter()
        .map(|l| ServiceListener { bind: l.bind, pid: l.pid, program: l.program.clone(), v6only: l.v6only })
        .collect();
    let report = ServiceReport {
        port: input.port.port,
        source: input.source,
        proto: input.port.proto,
        listeners,
        docker: input.docker.clone(),
        probes,
        verdict,
    };
    (report, finding)
}

/// Everything the verdict for one port is made from.
#[derive(Debug, Clone)]
pub struct ServiceFacts<'a> {
    /// The port.
    pub port: CheckedPort,
    /// Listening sockets on it.
    pub listeners: &'a [SocketFact],
    /// Docker publications of it.
    pub docker: &'a [DockerPublish],
    /// Outside probes of it.
    pub probes: &'a [ServiceProbeReport],
    /// The test-listener probes (the path picture).
    pub path: &'a [ProbeReport],
    /// The status this machine gets with `Host: localhost` (see [`ServiceInput`]).
    pub local_http_status: Option<u16>,
}

fn http_rejects(status: Option<u16>) -> bool {
    matches!(status, Some(400 | 403 | 421))
}

/// Whether traffic of `proto` reached this host at `ip`: a wildcard test listener of
/// that family answered there.
fn path_open(path: &[ProbeReport], proto: Proto, ip: IpAddr) -> bool {
    path.iter().any(|p| {
        p.proto == proto
            && p.bind.ip().is_unspecified()
            && p.bind.is_ipv4() == ip.is_ipv4()
            && p.target.ip() == ip
            && p.outcome == Outcome::Open
    })
}

/// The verdict for one port.
///
/// Outside evidence from the LAN wins (an answer at a non-loopback address is reachable
/// whatever the inside facts say: something may forward the port unseen). Without it,
/// inside facts about bind scope decide, since a peer on this machine (loopback) or the
/// `--local` self-check cannot show what the LAN sees. Then the path picture of the
/// test listeners tells the network and the firewall apart.
pub fn verdict(f: &ServiceFacts<'_>) -> Verdict {
    let proto = f.port.proto;
    let open_at = |lan: bool| -> Vec<&ServiceProbeReport> {
        f.probes.iter().filter(|p| p.outcome == Outcome::Open && p.target.ip().is_loopback() != lan).collect()
    };
    // A Host check refuses the peer's request but answers the same request for localhost;
    // a page that refuses everyone (auth, no index) is reachable all the same.
    let local_ok = f.local_http_status.is_some_and(|s| s < 400);
    let answer = |open: &[&ServiceProbeReport]| {
        if local_ok && open.iter().all(|p| http_rejects(p.http_status)) {
            Verdict::HttpHostCheck
        } else {
            Verdict::Reachable
        }
    };
    let open_lan = open_at(true);
    if !open_lan.is_empty() {
        return answer(&open_lan);
    }
    if f.probes.iter().any(|p| matches!(p.outcome, Outcome::EmptyReply | Outcome::Reset)) {
        let inner_loopback = f.docker.iter().any(|d| {
            d.inner_listeners.as_ref().is_some_and(|inner| {
                let on_port: Vec<_> = inner.iter().filter(|a| a.port() == d.container_port).collect();
                !on_port.is_empty() && on_port.iter().all(|a| a.ip().is_loopback())
            })
        });
        return if inner_loopback { Verdict::ContainerLoopback } else { Verdict::ProxyNoBackend };
    }
    let published: Vec<&DockerPublish> = f.docker.iter().filter(|d| d.proto == proto).collect();
    if !published.is_empty() && published.iter().all(|d| d.host_ip.is_loopback()) {
        return Verdict::PublishedLoopback;
    }
    // Docker's DNAT path (no userland proxy in the way) refuses when the app inside does
    // not listen where the forwarding goes: the inside facts say which.
    for d in published.iter().filter(|d| !d.host_ip.is_loopback()) {
        if let Some(inner) = &d.inner_listeners {
            let on_port: Vec<_> = inner.iter().filter(|a| a.port() == d.container_port).collect();
            if on_port.is_empty() {
                return Verdict::ProxyNoBackend;
            }
            if on_port.iter().all(|a| a.ip().is_loopback()) {
                return Verdict::ContainerLoopback;
            }
        }
    }
    if f.listeners.is_empty() && published.is_empty() {
        return Verdict::NotListening;
    }
    if !f.listeners.is_empty() && f.listeners.iter().all(|l| l.bind.ip().is_loopback()) && published.is_empty() {
        return Verdict::LoopbackOnly;
    }
    let open_local = open_at(false);
    if !open_local.is_empty() {
        return answer(&open_local);
    }
    let dialled: Vec<IpAddr> = f.probes.iter().map(|p| p.target.ip()).collect();
    let reachable: Vec<IpAddr> = dialled.iter().copied().filter(|ip| path_open(f.path, proto, *ip)).collect();
    if reachable.is_empty() {
        return Verdict::NetworkBlocked;
    }
    let covered =
        |ip: IpAddr| f.listeners.iter().any(|l| l.accepts(ip)) || published.iter().any(|d| d.host_ip.is_unspecified());
    let matching: Vec<IpAddr> = reachable.iter().copied().filter(|ip| covered(*ip)).collect();
    let silent_at =
        |ips: &[IpAddr]| f.probes.iter().any(|p| ips.contains(&p.target.ip()) && p.outcome == Outcome::Timeout);
    if matching.is_empty() {
        // A wrong bind address is refused; silence where the path is open is a filter.
        if silent_at(&reachable) {
            return Verdict::FirewallDrop;
        }
        let v4 = f.listeners.iter().any(|l| l.bind.is_ipv4() || l.accepts(IpAddr::from([127, 0, 0, 1])));
        let v6 = f.listeners.iter().any(|l| l.bind.is_ipv6());
        let reach_v4 = reachable.iter().any(IpAddr::is_ipv4);
        let reach_v6 = reachable.iter().any(IpAddr::is_ipv6);
        return match (v4, v6, reach_v4, reach_v6) {
            (true, false, false, true) => Verdict::Ipv4Only,
            (false, true, true, false) => Verdict::Ipv6Only,
            _ => Verdict::InterfaceOnly,
        };
    }
    if silent_at(&matching) {
        // Many UDP servers stay silent at an empty datagram: listening, with the UDP path
        // open, is as far as UDP can be confirmed (`judge` says so in a warning).
        if proto == Proto::Udp { Verdict::Reachable } else { Verdict::FirewallDrop }
    } else {
        Verdict::FirewallReject
    }
}

/// A program recognised from its name and command line, for fixes in its own terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// Vite dev server.
    Vite,
    /// Next.js.
    NextJs,
    /// webpack-dev-server.
    WebpackDevServer,
    /// Create React App.
    CreateReactApp,
    /// Any other Node.js program (Express…).
    Node,
    /// `python -m http.server`.
    PythonHttpServer,
    /// Flask.
    Flask,
    /// Django's runserver.
    Django,
    /// Uvicorn (FastAPI…).
    Uvicorn,
    /// Ruby on Rails.
    Rails,
    /// Docker's userland proxy.
    DockerProxy,
    /// Anything else.
    Other,
}

/// Recognises a program from its name and command line.
pub fn recognise(program: Option<&str>, cmdline: Option<&str>) -> Program {
    let name = program.unwrap_or("").to_ascii_lowercase();
    let cmd = cmdline.unwrap_or("").to_ascii_lowercase();
    let has = |s: &str| cmd.contains(s);
    if name == "docker-proxy" || has("docker-proxy") {
        Program::DockerProxy
    } else if has("vite") {
        Program::Vite
    } else if has("next dev") || has("next-server") || has("next start") || has("/next ") {
        Program::NextJs
    } else if has("webpack") {
        Program::WebpackDevServer
    } else if has("react-scripts") {
        Program::CreateReactApp
    } else if name.starts_with("node") || has("node ") {
        Program::Node
    } else if has("http.server") {
        Program::PythonHttpServer
    } else if has("flask") {
        Program::Flask
    } else if has("manage.py") || has("django") {
        Program::Django
    } else if has("uvicorn") {
        Program::Uvicorn
    } else if has("rails") || has("puma") {
        Program::Rails
    } else {
        Program::Other
    }
}

fn bind_fix(program: Program, port: u16) -> String {
    match program {
        Program::Vite => {
            "start Vite with `vite --host` (or `npm run dev -- --host`), or set `server.host: true` in vite.config"
                .into()
        }
        Program::NextJs => format!("start Next.js with `next dev -H 0.0.0.0 -p {port}`"),
        Program::WebpackDevServer => {
            "run webpack-dev-server with `--host 0.0.0.0` (or `devServer.host: '0.0.0.0'`)".into()
        }
        Program::CreateReactApp => "start it with `HOST=0.0.0.0 npm start`".into(),
        Program::Node => format!("listen on every address: `app.listen({port}, '0.0.0.0')` (or leave out the host)"),
        Program::PythonHttpServer => format!("run `python3 -m http.server {port} --bind 0.0.0.0`"),
        Program::Flask => format!("run `flask run --host=0.0.0.0 --port={port}` (or `app.run(host='0.0.0.0')`)"),
        Program::Django => {
            format!("run `python manage.py runserver 0.0.0.0:{port}` and add this machine's address to ALLOWED_HOSTS")
        }
        Program::Uvicorn => format!("run uvicorn with `--host 0.0.0.0 --port {port}`"),
        Program::Rails => format!("run `rails server -b 0.0.0.0 -p {port}`"),
        Program::DockerProxy | Program::Other => {
            format!("make the server listen on 0.0.0.0:{port} (every address) instead of 127.0.0.1/localhost")
        }
    }
}

fn host_check_fix(program: Program) -> String {
    match program {
        Program::Vite => {
            "add the host to `server.allowedHosts` in vite.config (Vite rejects unknown Host headers with 403)".into()
        }
        Program::WebpackDevServer | Program::CreateReactApp => {
            "set `devServer.allowedHosts: 'all'` (or DANGEROUSLY_DISABLE_HOST_CHECK=true for Create React App)".into()
        }
        Program::Django => {
            "add this machine's address (or '*' while developing) to ALLOWED_HOSTS in settings.py".into()
        }
        Program::NextJs => {
            "allow the origin in next.config (`allowedDevOrigins`) or open the app by its expected host name".into()
        }
        _ => "allow this machine's address or name in the server's allowed hosts / origins setting".into(),
    }
}

fn firewall_fix(port: CheckedPort) -> String {
    let (n, p) = (port.port, port.proto);
    format!(
        "open the port in this machine's firewall: `sudo nft add rule inet filter input {p} dport {n} accept`, \
         `sudo ufw allow {n}/{p}` or `sudo firewall-cmd --add-port={n}/{p} --permanent && sudo firewall-cmd --reload`"
    )
}

/// The finding for a port's verdict: what is wrong, in words, and the fix for what
/// was found. `wsl2` adds WSL2's own explanation where the cause may be its NAT.
pub fn finding(
    port: CheckedPort,
    verdict: Verdict,
    listeners: &[SocketFact],
    docker: &[DockerPublish],
    wsl2: bool,
) -> Finding {
    let who = listeners.iter().find_map(|l| {
        l.program.as_deref().map(|p| match l.pid {
            Some(pid) => format!("{p} (pid {pid})"),
            None => p.to_owned(),
        })
    });
    let who = who.unwrap_or_else(|| {
        if listeners.iter().any(|l| l.pid.is_none()) {
            "a program whose owner is not visible without root".to_owned()
        } else {
            "the server".to_owned()
        }
    });
    let program = listeners
        .iter()
        .map(|l| recognise(l.program.as_deref(), l.cmdline.as_deref()))
        .find(|p| *p != Program::Other)
        .unwrap_or(Program::Other);
    let binds: Vec<String> = listeners.iter().map(|l| l.bind.to_string()).collect();
    let binds = binds.join(", ");
    let n = port.port;
    let container = docker.first();
    let (severity, message, fix) = match verdict {
        Verdict::Reachable => (Severity::Info, format!("Port {port} is reachable from the peer ({who} on {binds})."), String::new()),
        Verdict::LoopbackOnly => (
            Severity::Error,
            format!("Port {port}: {who} listens on {binds} only, which accepts connections from this machine alone."),
            bind_fix(program, n),
        ),
        Verdict::InterfaceOnly => (
            Severity::Error,
            format!("Port {port}: {who} listens only on {binds}, an address the peer did not reach (another network interface or a VPN)."),
            format!("listen on 0.0.0.0:{n}, or on the address the other device uses; {}", bind_fix(program, n)),
        ),
        Verdict::Ipv4Only => (
            Severity::Error,
            format!("Port {port}: {who} listens on IPv4 only ({binds}), but the peer reaches this machine over IPv6 only."),
            "listen on :: as well (or on a dual-stack :: socket), or give the other device an IPv4 route".into(),
        ),
        Verdict::Ipv6Only => (
            Severity::Error,
            format!("Port {port}: {who} listens on IPv6 only ({binds}), but the peer reaches this machine over IPv4 only."),
            "listen on 0.0.0.0 as well, or clear IPV6_V6ONLY on the :: socket".into(),
        ),
        Verdict::FirewallDrop => (
            Severity::Error,
            format!("Port {port}: {who} listens on {binds}, and the network passes traffic to this machine, but connections to the port time out: a firewall rule drops it."),
            firewall_fix(port),
        ),
        Verdict::FirewallReject => (
            Severity::Error,
            format!("Port {port}: {who} listens on {binds}, yet connections from the peer are refused or rejected: a firewall rule answers in its place."),
            firewall_fix(port),
        ),
        Verdict::NotListening => (
            Severity::Error,
            format!("Port {port}: nothing listens on it on this machine."),
            format!("start the server, and check the port it prints (is it really {n}?)"),
        ),
        Verdict::ProxyNoBackend => (
            Severity::Error,
            match container {
                Some(c) => format!("Port {port}: Docker forwards it to container {} port {}, where nothing listens: the app is down, or listens on another port.", c.container, c.container_port),
                None => format!("Port {port}: a proxy ({who}) accepts connections and closes them without an answer: whatever it forwards to is down, or bound to its own loopback."),
            },
            match container {
                Some(c) => format!("make the app in container {} listen on 0.0.0.0:{} (not 127.0.0.1), then restart it", c.container, c.container_port),
                None => "start the backend the proxy forwards to, and make it listen on an address the proxy can reach".into(),
            },
        ),
        Verdict::ContainerLoopback => {
            let c = container.map(|c| format!("{} ({})", c.container, c.image)).unwrap_or_else(|| "the container".into());
            let inner = container.map(|c| c.container_port).unwrap_or(n);
            (
                Severity::Error,
                format!("Port {port}: Docker publishes it, but the app inside container {c} listens on 127.0.0.1:{inner}, which Docker's forwarding cannot reach (connections are accepted, then closed)."),
                format!("make the app in the container listen on 0.0.0.0:{inner}; {}", bind_fix(program, inner)),
            )
        }
        Verdict::PublishedLoopback => {
            let c = container.map(|c| format!("{} ({})", c.container, c.image)).unwrap_or_else(|| "the container".into());
            let inner = container.map(|c| c.container_port).unwrap_or(n);
            (
                Severity::Error,
                format!("Port {port}: container {c} is published on 127.0.0.1 only (`-p 127.0.0.1:{n}:{inner}`), so only this machine can reach it."),
                format!("publish it on every address: `docker run -p {n}:{inner} …` (or `ports: [\"{n}:{inner}\"]` in compose)"),
            )
        }
        Verdict::HttpHostCheck => (
            Severity::Error,
            format!("Port {port}: the connection works, but {who} rejects the request's Host/Origin (HTTP 400/403/421): it only answers requests for localhost."),
            host_check_fix(program),
        ),
        Verdict::NetworkBlocked => (
            Severity::Error,
            format!("Port {port}: not even lanreach's own test listeners are reachable from the peer over {}: the network path or a firewall blocks everything, whatever the server does.", port.proto.to_string().to_uppercase()),
            "check Wi-Fi client isolation (guest networks), the host firewall's default policy, and that both devices are on the same network".into(),
        ),
    };
    let fix = if wsl2 && verdict != Verdict::Reachable {
        format!(
            "{fix}. This agent runs inside WSL2, which sits behind Windows' NAT: other devices reach Windows, not WSL. \
             Use WSL's mirrored networking (`networkingMode=mirrored` in %UserProfile%\\.wslconfig) or forward the port: \
             `netsh interface portproxy add v4tov4 listenport={n} connectport={n} connectaddress=<WSL address>` and allow it in Windows Firewall"
        )
    } else {
        fix
    };
    Finding { code: verdict.as_str().to_owned(), severity, message, fix }
}

/// Whether a kernel release string is WSL2's.
pub fn is_wsl2(kernel_release: &str) -> bool {
    let r = kernel_release.to_ascii_lowercase();
    r.contains("microsoft") && (r.contains("wsl2") || r.contains("standard"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(bind: &str, program: &str, cmdline: &str) -> SocketFact {
        SocketFact {
            proto: Proto::Tcp,
            bind: bind.parse().expect("bind"),
            v6only: if bind.starts_with("[::]") { Some(true) } else { None },
            pid: Some(42),
            program: Some(program.into()),
            cmdline: Some(cmdline.into()),
        }
    }

    fn probe(target: &str, outcome: Outcome, http: Option<u16>) -> ServiceProbeReport {
        ServiceProbeReport {
            target: target.parse().expect("target"),
            outcome,
            rtt_ms: None,
            http_status: http,
            errno: None,
        }
    }

    fn path(targets: &[(&str, Outcome)]) -> Vec<ProbeReport> {
        targets
            .iter()
            .map(|(t, o)| {
                let target: SocketAddr = t.parse().expect("target");
                let bind: SocketAddr =
                    if target.is_ipv4() { "0.0.0.0:40000" } else { "[::]:40001" }.parse().expect("bind");
                ProbeReport {
                    proto: Proto::Tcp,
                    bind,
                    target,
                    outcome: *o,
                    rtt_ms: None,
                    errno: None,
                    attempts: 1,
                    seen_by_listener: false,
                }
            })
            .collect()
    }

    const P: CheckedPort = CheckedPort { port: 3000, proto: Proto::Tcp };
    const LAN: &str = "198.51.100.1:3000";
    const LAN6: &str = "[2001:db8::1]:3000";

    fn v(
        listeners: &[SocketFact],
        docker: &[DockerPublish],
        probes: &[ServiceProbeReport],
        path: &[ProbeReport],
    ) -> Verdict {
        verdict(&ServiceFacts { port: P, listeners, docker, probes, path, local_http_status: Some(200) })
    }

    fn lan_path() -> Vec<ProbeReport> {
        path(&[("198.51.100.1:40000", Outcome::Open), ("[2001:db8::1]:40001", Outcome::Open)])
    }

    #[test]
    fn ports_parse() {
        assert_eq!(parse_ports("3000").expect("ok"), [P]);
        assert_eq!(parse_ports(" 3000, 8080/tcp,53/UDP,3000").expect("ok").len(), 3);
        assert!(parse_ports("0").is_err() && parse_ports("x").is_err() && parse_ports("1/sctp").is_err());
        assert!(parse_ports("").is_err());
    }

    #[test]
    fn verdicts_from_facts() {
        use Outcome::*;
        let p = lan_path();
        let any = sock("0.0.0.0:3000", "node", "node server.js");
        assert_eq!(v(std::slice::from_ref(&any), &[], &[probe(LAN, Open, None)], &p), Verdict::Reachable);
        assert_eq!(v(std::slice::from_ref(&any), &[], &[probe(LAN, Open, Some(403))], &p), Verdict::HttpHostCheck);
        assert_eq!(v(std::slice::from_ref(&any), &[], &[probe(LAN, Timeout, None)], &p), Verdict::FirewallDrop);
        assert_eq!(v(std::slice::from_ref(&any), &[], &[probe(LAN, Refused, None)], &p), Verdict::FirewallReject);
        assert_eq!(v(std::slice::from_ref(&any), &[], &[probe(LAN, Unreachable, None)], &p), Verdict::FirewallReject);
        assert_eq!(v(&[], &[], &[probe(LAN, Refused, None)], &p), Verdict::NotListening);
        let lo = sock("127.0.0.1:3000", "node", "node node_modules/.bin/vite");
        assert_eq!(v(std::slice::from_ref(&lo), &[], &[probe(LAN, Refused, None)], &p), Verdict::LoopbackOnly);
        assert_eq!(v(&[lo], &[], &[probe("127.0.0.1:3000", Open, None)], &p), Verdict::LoopbackOnly);
        // Outside evidence from the LAN wins over inside facts.
        let hidden = sock("127.0.0.1:3000", "sshd", "sshd: forwarding");
        assert_eq!(v(&[hidden], &[], &[probe(LAN, Open, None)], &p), Verdict::Reachable);
        let other_nic = sock("203.0.113.1:3000", "python3", "python3 -m http.server");
        assert_eq!(v(&[other_nic], &[], &[probe(LAN, Refused, None)], &p), Verdict::InterfaceOnly);
        let blocked = path(&[("198.51.100.1:40000", Timeout)]);
        assert_eq!(v(std::slice::from_ref(&any), &[], &[probe(LAN, Timeout, None)], &blocked), Verdict::NetworkBlocked);
        // Reached over IPv6 only; the server is IPv4 only.
        let v6_path = path(&[("198.51.100.1:40000", Timeout), ("[2001:db8::1]:40001", Open)]);
        let probes = [probe(LAN, Timeout, None), probe(LAN6, Refused, None)];
        assert_eq!(v(std::slice::from_ref(&any), &[], &probes, &v6_path), Verdict::Ipv4Only);
        let v4_path = path(&[("198.51.100.1:40000", Open), ("[2001:db8::1]:40001", Timeout)]);
        let only6 = sock("[::]:3000", "node", "node x");
        assert_eq!(
            v(&[only6], &[], &[probe(LAN, Refused, None), probe(LAN6, Timeout, None)], &v4_path),
            Verdict::Ipv6Only
        );
        // Silence is never blamed on the bind family.
        let only6 = sock("[::]:3000", "nginx", "nginx");
        assert_eq!(v(&[only6], &[], &[probe(LAN, Timeout, None)], &p), Verdict::FirewallDrop);
        // 403 for everyone (auth, no index page) is not a Host check.
        let f = ServiceFacts {
            port: P,
            listeners: std::slice::from_ref(&any),
            docker: &[],
            probes: &[probe(LAN, Open, Some(403))],
            path: &p,
            local_http_status: Some(403),
        };
        assert_eq!(verdict(&f), Verdict::Reachable);
        assert_eq!(v(&[any], &[], &[probe(LAN, EmptyReply, None)], &p), Verdict::ProxyNoBackend);
    }

    #[test]
    fn docker_verdicts() {
        use Outcome::*;
        let p = lan_path();
        let publish = |host_ip: &str, inner: Option<&str>| DockerPublish {
            container: "web".into(),
            image: "app:1".into(),
            host_ip: host_ip.parse().expect("ip"),
            host_port: 3000,
            container_port: 3000,
            proto: Proto::Tcp,
            inner_listeners: inner.map(|a| vec![a.parse().expect("addr")]),
        };
        let proxy = sock("0.0.0.0:3000", "docker-proxy", "/usr/bin/docker-proxy -proto tcp");
        let inside_lo = [publish("0.0.0.0", Some("127.0.0.1:3000"))];
        assert_eq!(
            v(std::slice::from_ref(&proxy), &inside_lo, &[probe(LAN, EmptyReply, None)], &p),
            Verdict::ContainerLoopback
        );
        // DNAT path (no userland proxy): refused, but the inside facts know better.
        let local = [publish("127.0.0.1", Some("0.0.0.0:3000"))];
        assert_eq!(v(&[], &local, &[probe(LAN, Refused, None)], &p), Verdict::PublishedLoopback);
        // A peer on this machine reaches it over loopback; the LAN still cannot.
        assert_eq!(v(&[], &local, &[probe("127.0.0.1:3000", Open, Some(200))], &p), Verdict::PublishedLoopback);
        let ok = [publish("0.0.0.0", Some("0.0.0.0:3000"))];
        assert_eq!(v(&[proxy], &ok, &[probe(LAN, Open, Some(200))], &p), Verdict::Reachable);
        assert_eq!(v(&[], &ok, &[probe(LAN, Timeout, None)], &p), Verdict::FirewallDrop);
        // The DNAT path (no userland proxy) refuses; the inside facts still know why.
        let inside_lo = [publish("0.0.0.0", Some("127.0.0.1:3000"))];
        assert_eq!(v(&[], &inside_lo, &[probe(LAN, Refused, None)], &p), Verdict::ContainerLoopback);
        let app_down = [publish("0.0.0.0", Some("0.0.0.0:9999"))];
        assert_eq!(v(&[], &app_down, &[probe(LAN, Refused, None)], &p), Verdict::ProxyNoBackend);
    }

    #[test]
    fn fixes_speak_the_programs_language() {
        let vite = sock("127.0.0.1:5173", "node", "node /app/node_modules/.bin/vite");
        let f = finding(P, Verdict::LoopbackOnly, &[vite], &[], false);
        assert_eq!(f.code, "loopback_only");
        assert!(f.fix.contains("--host") && f.message.contains("node (pid 42)"), "{f:?}");
        let flask = sock("127.0.0.1:5000", "python3", "python3 -m flask run");
        assert!(finding(P, Verdict::LoopbackOnly, &[flask], &[], false).fix.contains("flask run --host=0.0.0.0"));
        let django = sock("0.0.0.0:8000", "python3", "python manage.py runserver");
        assert!(finding(P, Verdict::HttpHostCheck, &[django], &[], false).fix.contains("ALLOWED_HOSTS"));
        let fw = finding(P, Verdict::FirewallDrop, &[], &[], false);
        assert!(
            fw.fix.contains("dport 3000") && fw.fix.contains("ufw allow 3000/tcp") && fw.fix.contains("firewall-cmd")
        );
        let wsl = finding(P, Verdict::LoopbackOnly, &[], &[], true);
        assert!(wsl.fix.contains("WSL2") && wsl.fix.contains("portproxy"));
        assert!(is_wsl2("5.15.153.1-microsoft-standard-WSL2") && !is_wsl2("6.8.0-45-generic"));
    }

    #[test]
    fn recognises_frameworks() {
        assert_eq!(recognise(Some("node"), Some("node /x/next dev")), Program::NextJs);
        assert_eq!(recognise(Some("node"), Some("node /x/webpack serve")), Program::WebpackDevServer);
        assert_eq!(recognise(Some("python3"), Some("python3 -m http.server 8000")), Program::PythonHttpServer);
        assert_eq!(recognise(Some("docker-proxy"), None), Program::DockerProxy);
        assert_eq!(recognise(None, None), Program::Other);
    }
}
