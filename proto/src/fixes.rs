//! Program recognition and fix texts: what is wrong, in words, and the fix in the terms
//! of the program that was found (Vite, Flask, Docker…), the firewall's commands and
//! WSL2's own explanation.

use crate::facts::DockerPublish;
use crate::report::{Finding, FindingCode, ServiceProbeReport, Severity, Verdict};
use crate::verdict::ServiceFacts;
use crate::vocab::{Outcome, Proto};

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

/// The fix for a firewall that drops or rejects `proto`: the commands of nftables, ufw
/// and firewalld for `port`, or, when no one port is known (the test listeners' finding),
/// for an example port with a word about filters on the path.
pub fn firewall_fix(proto: Proto, port: Option<u16>) -> String {
    let commands = |n: u16| {
        format!(
            "`sudo nft add rule inet filter input {proto} dport {n} accept`, `sudo ufw allow {n}/{proto}` or \
             `sudo firewall-cmd --add-port={n}/{proto} --permanent && sudo firewall-cmd --reload`"
        )
    };
    match port {
        Some(n) => format!("open the port in this machine's firewall: {}", commands(n)),
        None => format!(
            "allow the ports you need on this machine, e.g. {}; if this machine's firewall is open, look at the \
             path (router or Wi-Fi access point filters)",
            commands(3000)
        ),
    }
}

/// `-p` / `ports:` notation for publishing container port `inner` on host port `host`.
fn publish_spec(host: u16, inner: u16, proto: Proto) -> String {
    match proto {
        Proto::Tcp => format!("{host}:{inner}"),
        Proto::Udp => format!("{host}:{inner}/udp"),
    }
}

/// What this report's outside probes of a published port met, in words. Docker's two
/// paths fail differently when the app inside listens on its loopback: its NAT rules
/// (connections from other devices) forward to the container's own address and are
/// refused; its userland proxy (connections from this machine) accepts, then closes.
fn docker_path_seen(probes: &[ServiceProbeReport]) -> String {
    const SEEN: &[(Outcome, &str)] = &[
        (
            Outcome::Refused,
            "refused: Docker's NAT rules forward it to the container's own address, where nothing listens",
        ),
        (Outcome::EmptyReply, "accepted by Docker's userland proxy (docker-proxy), then closed without an answer"),
        (Outcome::Reset, "accepted, then reset by the proxy in front of the container"),
        (Outcome::Unreachable, "rejected with \"host unreachable\""),
        (Outcome::Timeout, "not answered at all (a firewall may drop it as well)"),
    ];
    let mut parts = Vec::new();
    for (outcome, words) in SEEN {
        let at: Vec<String> = probes.iter().filter(|p| p.outcome == *outcome).map(|p| p.target.to_string()).collect();
        match at.as_slice() {
            [] => {}
            [one] => parts.push(format!("the connection to {one} was {words}")),
            many => parts.push(format!("connections to {} were {words}", many.join(", "))),
        }
    }
    if parts.is_empty() { "connections from other devices cannot reach it".into() } else { parts.join("; ") }
}

/// The finding for a container whose app listens on its own loopback behind a
/// publication: where it listens, and what this report's probes met on the way.
fn container_loopback(f: &ServiceFacts<'_>, c: Option<&DockerPublish>) -> (String, String) {
    let port = f.port;
    let inner = c.map(|c| c.container_port).unwrap_or(port.port);
    let (name, published) = match c {
        Some(c) => (format!("{} ({})", c.container, c.image), format!(" on {}:{}", c.host_ip, c.host_port)),
        None => ("the container".to_owned(), String::new()),
    };
    let message = format!(
        "Port {port}: Docker publishes it{published}, but the app inside container {name} listens on \
         127.0.0.1:{inner}, the container's own loopback, which Docker's forwarding cannot reach; {}.",
        docker_path_seen(f.probes)
    );
    let fix = format!(
        "make the app in the container listen on 0.0.0.0:{inner} (every address of the container) instead of \
         127.0.0.1, then restart it"
    );
    (message, fix)
}

/// The finding for a port that nothing here listens on while a container does, in its
/// own network namespace, without a publication on the port.
fn container_not_published(f: &ServiceFacts<'_>) -> (String, String) {
    let port = f.port;
    let n = port.port;
    let mut containers = f.unpublished.iter().filter(|c| c.proto == port.proto);
    let Some(c) = containers.next() else {
        return (format!("Port {port}: nothing listens on it on this machine."), String::new());
    };
    let others = match containers.count() {
        0 => String::new(),
        1 => " (and one more container)".to_owned(),
        more => format!(" (and {more} more containers)"),
    };
    let binds: Vec<String> = c.listeners.iter().map(ToString::to_string).collect();
    let loopback_only = !c.listeners.is_empty() && c.listeners.iter().all(|a| a.ip().is_loopback());
    let published = if c.published_as.is_empty() {
        "Docker does not publish it, so no other device can reach it".to_owned()
    } else {
        let ports: Vec<String> = c.published_as.iter().map(ToString::to_string).collect();
        format!("Docker publishes it on host port {} instead, not on {n}", ports.join(", "))
    };
    let mut message = format!(
        "Port {port}: nothing on this machine listens on it, but container {} ({}){others} does, inside its own \
         network namespace ({}); {published}.",
        c.container,
        c.image,
        binds.join(", ")
    );
    let spec = publish_spec(n, n, port.proto);
    let mut fix = match &c.compose_service {
        Some(service) => format!(
            "publish it: add `ports: [\"{spec}\"]` to service `{service}` in the compose file, then run \
             `docker compose up -d` (which recreates the container)"
        ),
        None => format!(
            "publish it: start the container with `docker run -p {spec} …` (a running container cannot gain a \
             published port: remove it and run it again)"
        ),
    };
    if let Some(first) = c.published_as.first() {
        fix = format!("use port {first}, or {fix}");
    }
    if loopback_only {
        message.push_str(" The app there listens on the container's loopback only, which no publication reaches.");
        fix.push_str(&format!("; and make the app listen on 0.0.0.0:{n} inside the container"));
    }
    (message, fix)
}

/// The finding for a port's verdict: what is wrong, in words, and the fix for what
/// was found. `wsl2` adds WSL2's own explanation where the cause may be its NAT.
pub fn finding(facts: &ServiceFacts<'_>, verdict: Verdict, wsl2: bool) -> Finding {
    let (port, listeners, docker) = (facts.port, facts.listeners, facts.docker);
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
            firewall_fix(port.proto, Some(port.port)),
        ),
        Verdict::FirewallReject => (
            Severity::Error,
            format!("Port {port}: {who} listens on {binds}, yet connections from the peer are refused or rejected: a firewall rule answers in its place."),
            firewall_fix(port.proto, Some(port.port)),
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
            let (message, fix) = container_loopback(facts, container);
            (Severity::Error, message, fix)
        }
        Verdict::PublishedLoopback => {
            let c = container.map(|c| format!("{} ({})", c.container, c.image)).unwrap_or_else(|| "the container".into());
            let inner = container.map(|c| c.container_port).unwrap_or(n);
            let loopback = match container.map(|c| c.host_ip) {
                Some(ip @ std::net::IpAddr::V6(_)) => format!("[{ip}]"),
                Some(ip) => ip.to_string(),
                None => "127.0.0.1".into(),
            };
            let spec = publish_spec(n, inner, port.proto);
            (
                Severity::Error,
                format!("Port {port}: container {c} is published on {loopback} only (`-p {loopback}:{spec}`), so only this machine can reach it."),
                format!("publish it on every address: `docker run -p {spec} …` (or `ports: [\"{spec}\"]` in compose)"),
            )
        }
        Verdict::ContainerNotPublished => {
            let (message, fix) = container_not_published(facts);
            (Severity::Error, message, fix)
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
    Finding { code: FindingCode::of_verdict(verdict), severity, message, fix }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{CheckedPort, SocketFact, UnpublishedContainer};

    const P: CheckedPort = CheckedPort { port: 3000, proto: Proto::Tcp };

    fn facts(listeners: &[SocketFact]) -> ServiceFacts<'_> {
        ServiceFacts {
            port: P,
            listeners,
            docker: &[],
            unpublished: &[],
            probes: &[],
            path: &[],
            local_http_status: None,
        }
    }

    fn probe(target: &str, outcome: Outcome) -> ServiceProbeReport {
        ServiceProbeReport {
            target: target.parse().expect("target"),
            outcome,
            rtt_ms: None,
            http_status: None,
            errno: None,
        }
    }

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

    #[test]
    fn fixes_speak_the_programs_language() {
        let vite = sock("127.0.0.1:5173", "node", "node /app/node_modules/.bin/vite");
        let f = finding(&facts(&[vite]), Verdict::LoopbackOnly, false);
        assert_eq!(f.code, "loopback_only");
        assert!(f.fix.contains("--host") && f.message.contains("node (pid 42)"), "{f:?}");
        let flask = sock("127.0.0.1:5000", "python3", "python3 -m flask run");
        assert!(finding(&facts(&[flask]), Verdict::LoopbackOnly, false).fix.contains("flask run --host=0.0.0.0"));
        let django = sock("0.0.0.0:8000", "python3", "python manage.py runserver");
        assert!(finding(&facts(&[django]), Verdict::HttpHostCheck, false).fix.contains("ALLOWED_HOSTS"));
        let fw = finding(&facts(&[]), Verdict::FirewallDrop, false);
        assert!(
            fw.fix.contains("dport 3000") && fw.fix.contains("ufw allow 3000/tcp") && fw.fix.contains("firewall-cmd")
        );
        let wsl = finding(&facts(&[]), Verdict::LoopbackOnly, true);
        assert!(wsl.fix.contains("WSL2") && wsl.fix.contains("portproxy"));
    }

    #[test]
    fn container_loopback_says_what_the_probes_met() {
        let publish = DockerPublish {
            container: "web".into(),
            image: "app:1".into(),
            host_ip: "0.0.0.0".parse().expect("ip"),
            host_port: 3000,
            container_port: 8080,
            proto: Proto::Tcp,
            inner_listeners: Some(vec!["127.0.0.1:8080".parse().expect("addr")]),
        };
        let docker = [publish];
        // From another device: Docker's NAT rules, refused.
        let lan = [probe("198.51.100.1:3000", Outcome::Refused)];
        let f =
            finding(&ServiceFacts { docker: &docker, probes: &lan, ..facts(&[]) }, Verdict::ContainerLoopback, false);
        assert!(f.message.contains("198.51.100.1:3000 was refused") && !f.message.contains("accepted"), "{f:?}");
        assert!(f.message.contains("web (app:1)") && f.message.contains("127.0.0.1:8080"), "{f:?}");
        assert!(f.message.contains("Docker publishes it on 0.0.0.0:3000"), "{f:?}");
        assert!(f.fix.contains("0.0.0.0:8080") && !f.fix.contains("127.0.0.1/localhost"), "{f:?}");
        // From this machine: docker-proxy accepts, then closes.
        let local = [probe("127.0.0.1:3000", Outcome::EmptyReply)];
        let f =
            finding(&ServiceFacts { docker: &docker, probes: &local, ..facts(&[]) }, Verdict::ContainerLoopback, false);
        assert!(f.message.contains("accepted by Docker's userland proxy") && !f.message.contains("refused"), "{f:?}");
    }

    #[test]
    fn an_unpublished_container_gets_the_publish_fix() {
        let web = |compose: Option<&str>, bind: &str, published_as: Vec<u16>| UnpublishedContainer {
            container: "web".into(),
            image: "app:1".into(),
            proto: Proto::Tcp,
            listeners: vec![bind.parse().expect("addr")],
            compose_service: compose.map(Into::into),
            published_as,
        };
        let f = |c: &[UnpublishedContainer]| {
            finding(&ServiceFacts { unpublished: c, ..facts(&[]) }, Verdict::ContainerNotPublished, false)
        };
        let plain = f(&[web(None, "0.0.0.0:3000", vec![])]);
        assert_eq!(plain.code, "container_not_published");
        assert!(plain.message.contains("container web (app:1)") && plain.message.contains("0.0.0.0:3000"), "{plain:?}");
        assert!(plain.fix.contains("`docker run -p 3000:3000 …`"), "{plain:?}");
        let compose = f(&[web(Some("api"), "0.0.0.0:3000", vec![])]);
        assert!(compose.fix.contains("`ports: [\"3000:3000\"]` to service `api`"), "{compose:?}");
        let inside_lo = f(&[web(None, "127.0.0.1:3000", vec![])]);
        assert!(
            inside_lo.fix.contains("docker run -p 3000:3000") && inside_lo.fix.contains("0.0.0.0:3000"),
            "{inside_lo:?}"
        );
        let elsewhere = f(&[web(None, "0.0.0.0:3000", vec![8080])]);
        assert!(
            elsewhere.message.contains("host port 8080") && elsewhere.fix.starts_with("use port 8080"),
            "{elsewhere:?}"
        );
        let udp = CheckedPort { port: 5353, proto: Proto::Udp };
        let dns = [UnpublishedContainer { proto: Proto::Udp, ..web(None, "0.0.0.0:5353", vec![]) }];
        let f = finding(
            &ServiceFacts { port: udp, unpublished: &dns, ..facts(&[]) },
            Verdict::ContainerNotPublished,
            false,
        );
        assert!(f.fix.contains("-p 5353:5353/udp"), "{f:?}");
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
