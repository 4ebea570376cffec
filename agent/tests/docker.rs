//! Docker features against the real Docker engine, with an image built here (no
//! registry is reachable): `docker import` of a root filesystem holding the statically
//! linked busybox from Debian's busybox-static. The verdicts come from Docker's facts
//! joined with what the probes saw.
//!
//! Three vantage points: a peer on this machine over loopback (Docker's userland proxy
//! answers); a peer in a namespace joined to the root namespace by a veth pair with
//! documentation addresses (`lab::RootLink`), which takes Docker's LAN path through its
//! NAT rules; and an agent in a namespace of its own while the containers run on the
//! host's engine (a devcontainer that mounts the host's docker.sock is in that place).
//! No traffic leaves this machine.
//!
//! Skips loudly where no engine answers, unless `LANREACH_REQUIRE_DOCKER=1` (set by
//! CI when `docker info` works), where it fails instead; the namespace tests also need
//! root and iproute2 (`lab::available_with`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;
use support::lab::{self, Lab, RootLink};
use support::{arg, free_udp_port, peer_bin};

const IMAGE: &str = "lanreach-test-busybox:1";
const CODE: &str = "7K3Q-M2XD";
static COUNTER: AtomicU32 = AtomicU32::new(0);

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().expect("run docker")
}

/// Whether the engine answers; prints why not.
fn engine(test: &str) -> bool {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("LANREACH_REQUIRE_DOCKER").as_deref() == Ok("1") {
            panic!("{test}: the Docker engine does not answer");
        }
        eprintln!("\n*** SKIPPED {test}: no Docker engine answers (docker info failed) ***\n");
    }
    ok
}

/// Builds the test image once: /bin/busybox (static) and an empty /www.
fn image() {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        if docker(&["image", "inspect", IMAGE]).status.success() {
            return;
        }
        let busybox = std::path::Path::new("/bin/busybox");
        let ldd = Command::new("ldd").arg(busybox).output().expect("ldd");
        assert!(
            busybox.exists() && !ldd.status.success(),
            "a static /bin/busybox is needed (apt-get install busybox-static)"
        );
        let root = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(root.path().join("bin")).expect("mkdir");
        std::fs::create_dir_all(root.path().join("www")).expect("mkdir");
        std::fs::copy(busybox, root.path().join("bin/busybox")).expect("copy busybox");
        let tar = Command::new("tar").args(["-C", arg(root.path()), "-c", "."]).output().expect("tar");
        assert!(tar.status.success());
        let mut import = Command::new("docker")
            .args(["import", "-", IMAGE])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("docker import");
        std::io::Write::write_all(&mut import.stdin.take().expect("stdin"), &tar.stdout).expect("write");
        assert!(import.wait().expect("wait").success(), "docker import failed");
    });
}

/// A running container, removed on drop.
struct Container(String);

impl Container {
    /// A container of the test image with `options` (`-p …`, `--label …`) whose app
    /// (busybox httpd) listens on `app_bind` inside.
    fn run(options: &[&str], app_bind: &str) -> Container {
        let name = format!("lanreach-test-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        let mut args = vec!["run", "-d", "--rm", "--name", &name];
        args.extend_from_slice(options);
        args.extend_from_slice(&[IMAGE, "/bin/busybox", "httpd", "-f", "-p", app_bind, "-h", "/www"]);
        let out = docker(&args);
        assert!(out.status.success(), "docker run: {}", String::from_utf8_lossy(&out.stderr));
        let c = Container(name);
        // Wait until the app inside listens.
        for _ in 0..100 {
            let out = docker(&["exec", &c.0, "/bin/busybox", "netstat", "-ltn"]);
            if String::from_utf8_lossy(&out.stdout).contains(app_bind) {
                return c;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the app in {} never listened on {app_bind}", c.0);
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.0]);
    }
}

/// An agent on 127.0.0.1 checking `port`, stopped by PID on drop.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs an agent (`--check port --once`) and a peer over loopback; returns the peer's
/// exit code and report.
fn check(port: u16) -> (Option<i32>, Value) {
    let (agent_state, peer_state) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let control = format!("127.0.0.1:{}", free_udp_port());
    let child = Command::new(env!("CARGO_BIN_EXE_lanreach-agent"))
        .args(["--state-dir", arg(agent_state.path()), "--control", &control, "--code", CODE, "--once"])
        .args(["--check", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start agent");
    let _agent = Agent(child);
    // The peer's connect deadline covers the agent's start-up.
    let out = Command::new(peer_bin())
        .args([&control, "--code", CODE, "--json", "--state-dir", arg(peer_state.path()), "--connect-timeout", "10"])
        .output()
        .expect("run peer");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no report ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), report)
}

/// Runs an agent in the root namespace (`--check port --once --json`, its control channel
/// on the link's root address, no mDNS) and a peer at the link's other end, whose probes
/// take Docker's LAN path (its NAT rules, not the userland proxy on loopback). Returns the
/// peer's exit code, the peer's terminal report and the agent's JSON report.
fn check_from_lan(lab: &Lab, link: &RootLink, port: u16) -> (Option<i32>, String, Value) {
    let (agent_state, peer_state) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let control = format!("{}:{}", link.root_ip, free_udp_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_lanreach-agent"))
        .args(["--state-dir", arg(agent_state.path()), "--control", &control, "--code", CODE, "--once"])
        .args(["--no-mdns", "--json", "--check", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start agent");
    let mut stdout = child.stdout.take().expect("agent stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    let mut agent = Agent(child);
    let out = lab.run(
        &link.node,
        arg(&peer_bin()),
        &[&control, "--code", CODE, "--state-dir", arg(peer_state.path()), "--connect-timeout", "10"],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // With --once the agent exits after this report.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while agent.0.try_wait().expect("wait").is_none() {
        assert!(std::time::Instant::now() < deadline, "the agent did not exit after its report:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let json = reader.join().expect("agent output");
    let report: Value = serde_json::from_str(&json).unwrap_or_else(|e| {
        panic!("no report from the agent ({e}); the peer printed:\n{text}{}", String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code(), text, report)
}

fn service(report: &Value, port: u16) -> Value {
    report["services"].as_array().expect("services").iter().find(|s| s["port"] == port).cloned().expect("service")
}

fn finding(report: &Value, code: &str) -> Value {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["code"] == code)
        .cloned()
        .unwrap_or_else(|| panic!("no finding {code} in {}", report["findings"]))
}

fn host_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

#[test]
fn app_bound_to_loopback_inside_the_container_is_container_loopback() {
    if !engine("app_bound_to_loopback_inside_the_container_is_container_loopback") {
        return;
    }
    image();
    let port = host_port();
    let _c = Container::run(&["-p", &format!("{port}:3000")], "127.0.0.1:3000");
    let (code, report) = check(port);
    let s = service(&report, port);
    assert_eq!(s["verdict"], "container_loopback", "{s}");
    assert_eq!(code, Some(1));
    assert_eq!(s["docker"][0]["container_port"], 3000);
    assert_eq!(s["docker"][0]["image"], IMAGE);
    let inner =
        s["docker"][0]["inner_listeners"].as_array().expect("inner listeners read from the container's namespace");
    assert!(inner.iter().any(|a| a == "127.0.0.1:3000"), "{inner:?}");
    let f = finding(&report, "container_loopback");
    assert!(f["fix"].as_str().expect("fix").contains("0.0.0.0:3000"), "{f}");
    // Over loopback, Docker's userland proxy is in the path: accepted, then closed.
    let message = f["message"].as_str().expect("message");
    assert!(message.contains("accepted by Docker's userland proxy") && !message.contains("refused"), "{f}");
}

#[test]
fn published_on_loopback_is_published_loopback() {
    if !engine("published_on_loopback_is_published_loopback") {
        return;
    }
    image();
    let port = host_port();
    let _c = Container::run(&["-p", &format!("127.0.0.1:{port}:3000")], "0.0.0.0:3000");
    let (code, report) = check(port);
    let s = service(&report, port);
    assert_eq!(s["verdict"], "published_loopback", "{s}");
    assert_eq!(code, Some(1));
    let f = finding(&report, "published_loopback");
    assert!(f["fix"].as_str().expect("fix").contains(&format!("docker run -p {port}:3000")), "{f}");
}

#[test]
fn published_on_every_address_with_the_app_on_every_address_is_reachable() {
    if !engine("published_on_every_address_with_the_app_on_every_address_is_reachable") {
        return;
    }
    image();
    let port = host_port();
    let _c = Container::run(&["-p", &format!("{port}:3000")], "0.0.0.0:3000");
    let (code, report) = check(port);
    let s = service(&report, port);
    assert_eq!(s["verdict"], "reachable", "{s}");
    assert_eq!(code, Some(0));
}

/// Whether this machine can run a test that needs the engine and network namespaces.
fn engine_and_lab(test: &str) -> bool {
    engine(test) && lab::available(test)
}

#[test]
fn a_container_listening_on_an_unpublished_port_is_named_with_the_publish_fix() {
    let test = "a_container_listening_on_an_unpublished_port_is_named_with_the_publish_fix";
    if !engine_and_lab(test) {
        return;
    }
    image();
    // Nothing on this machine listens on `port`; the app does, inside its container.
    let port = host_port();
    let c = Container::run(&[], &format!("0.0.0.0:{port}"));
    let mut lab = Lab::new();
    let link = lab.root_link("phone");
    let (code, text, report) = check_from_lan(&lab, &link, port);
    let s = service(&report, port);
    assert_eq!(s["verdict"], "container_not_published", "{s}");
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(s["unpublished"][0]["container"], c.0.as_str(), "{s}");
    let f = finding(&report, "container_not_published");
    let message = f["message"].as_str().expect("message");
    assert!(message.contains(&c.0) && message.contains(&format!("0.0.0.0:{port}")), "{f}");
    assert!(!message.contains("nothing listens on it"), "{f}");
    let fix = f["fix"].as_str().expect("fix");
    assert!(fix.contains(&format!("docker run -p {port}:{port}")), "{f}");
    assert!(text.contains(&format!("0.0.0.0:{port} in container {}", c.0)), "{text}");
}

#[test]
fn a_compose_service_listening_on_an_unpublished_port_gets_the_ports_line() {
    let test = "a_compose_service_listening_on_an_unpublished_port_gets_the_ports_line";
    if !engine(test) {
        return;
    }
    image();
    let port = host_port();
    let labels = ["--label", "com.docker.compose.project=lanreach-test", "--label", "com.docker.compose.service=web"];
    let _c = Container::run(&labels, &format!("0.0.0.0:{port}"));
    let (code, report) = check(port);
    let s = service(&report, port);
    assert_eq!(s["verdict"], "container_not_published", "{s}");
    assert_eq!(code, Some(1));
    let f = finding(&report, "container_not_published");
    let fix = f["fix"].as_str().expect("fix");
    assert!(fix.contains(&format!("ports: [\"{port}:{port}\"]")) && fix.contains("service `web`"), "{f}");
}

#[test]
fn app_on_loopback_in_a_published_container_is_refused_over_docker_nat_and_the_report_says_so() {
    let test = "app_on_loopback_in_a_published_container_is_refused_over_docker_nat_and_the_report_says_so";
    if !engine_and_lab(test) {
        return;
    }
    image();
    let port = host_port();
    let c = Container::run(&["-p", &format!("{port}:3000")], "127.0.0.1:3000");
    let mut lab = Lab::new();
    let link = lab.root_link("phone");
    let (code, text, report) = check_from_lan(&lab, &link, port);
    let s = service(&report, port);
    assert_eq!(s["verdict"], "container_loopback", "{s}");
    assert_eq!(code, Some(1), "{text}");
    // Docker's NAT rules forward the LAN connection to the container's address, where
    // nothing listens: refused, not accepted-then-closed (that is docker-proxy on loopback).
    let lan_probe = s["probes"]
        .as_array()
        .expect("probes")
        .iter()
        .find(|p| p["target"] == format!("{}:{port}", link.root_ip))
        .cloned()
        .expect("the probe at the dialled address");
    assert_eq!(lan_probe["outcome"], "refused", "{s}");
    let f = finding(&report, "container_loopback");
    let message = f["message"].as_str().expect("message");
    assert!(message.contains("refused") && !message.contains("accepted"), "{f}");
    assert!(message.contains(&c.0) && message.contains("127.0.0.1:3000"), "{f}");
    assert!(f["fix"].as_str().expect("fix").contains("0.0.0.0:3000"), "{f}");
    // The table shows where the app listens (inside, on 127.0.0.1), and Docker's
    // publication as what it is.
    assert!(text.contains(&format!("127.0.0.1:3000 in container {}", c.0)), "{text}");
    assert!(text.contains(&format!("published on 0.0.0.0:{port}")), "{text}");
    assert!(!text.contains(&format!("docker {} → 0.0.0.0", c.0)), "{text}");
}

#[test]
fn an_agent_in_its_own_namespace_blames_its_own_socket_owner_not_the_hosts_docker() {
    let test = "an_agent_in_its_own_namespace_blames_its_own_socket_owner_not_the_hosts_docker";
    if !engine_and_lab(test) || !lab::available_with(test, &["node"]) {
        return;
    }
    image();
    // On the host's engine: `port` published on 127.0.0.1, and a container listening on
    // `other` without publishing it.
    let (port, other) = (host_port(), host_port());
    let _published = Container::run(&["-p", &format!("127.0.0.1:{port}:3000")], "0.0.0.0:3000");
    let _unpublished = Container::run(&[], &format!("0.0.0.0:{other}"));
    // In the agent's namespace, node holds `port` on 127.0.0.1; nothing holds `other`.
    let mut lab = Lab::new();
    let host = lab.node("host", 1);
    let phone = lab.node("phone", 2);
    let app = format!("require('http').createServer((q, s) => s.end('ok')).listen({port}, '127.0.0.1')");
    lab.spawn(&host, "node", &["-e", &app]);
    lab.wait_tcp_listen(&host, port);
    let (agent_state, peer_state) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let check = format!("{port},{other}");
    let args = ["--state-dir", arg(agent_state.path()), "--code", CODE, "--once", "--no-mdns", "--check", &check];
    let mut agent = lab.spawn(&host, env!("CARGO_BIN_EXE_lanreach-agent"), &args);
    agent.wait_line("pairing code:");
    let out =
        lab.run(&phone, arg(&peer_bin()), &[&host.v4, "--code", CODE, "--json", "--state-dir", arg(peer_state.path())]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no report ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(1), "{report}");

    let s = service(&report, port);
    assert_eq!(s["verdict"], "loopback_only", "{s}");
    assert_eq!(s["docker"], serde_json::json!([]), "the host's publication is not about this namespace: {s}");
    let f = finding(&report, "loopback_only");
    assert!(f["message"].as_str().expect("message").contains("node"), "{f}");
    let fix = f["fix"].as_str().expect("fix");
    assert!(fix.contains("every IPv4") && !fix.contains("docker"), "the bind fix, not a Docker one: {f}");

    let s = service(&report, other);
    assert_eq!(s["verdict"], "not_listening", "a container on another namespace's engine is not here: {s}");
}
