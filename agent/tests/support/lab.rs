//! LAN in a box: network namespaces joined by veth pairs to a bridge that lives in its
//! own namespace. Documentation addresses only (198.51.100.0/24, 203.0.113.0/24,
//! 2001:db8::/32). Every namespace and process is removed on drop, on every exit path.
//!
//! Needs root and iproute2. Without them a test skips with a loud message, unless
//! `LANREACH_REQUIRE_NETNS=1` (set by CI), where it fails instead.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Whether this machine can run lab tests; prints why not.
pub fn available(test: &str) -> bool {
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    let ip = Command::new("ip").arg("-V").output().map(|o| o.status.success()).unwrap_or(false);
    if root && ip {
        return true;
    }
    let why = if root { "iproute2 (`ip`) is not installed" } else { "it needs root for network namespaces" };
    if std::env::var("LANREACH_REQUIRE_NETNS").as_deref() == Ok("1") {
        panic!("{test}: LAN-in-a-box test cannot run: {why}");
    }
    eprintln!("\n*** SKIPPED {test}: {why} (run the tests as root to include it) ***\n");
    false
}

/// Runs a command, panicking with its output when it fails.
pub fn sh(args: &[&str]) -> Output {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// A namespace on the lab's bridge.
#[derive(Debug, Clone)]
pub struct Node {
    /// The namespace's name.
    pub ns: String,
    /// Its IPv4 address on the bridge.
    pub v4: String,
    /// Its IPv6 address on the bridge.
    pub v6: String,
    /// Its port on the bridge (in the bridge's namespace).
    bridge_port: String,
}

/// A lab: one bridge namespace and the nodes attached to it.
pub struct Lab {
    prefix: String,
    bridge_ns: String,
    nodes: Vec<Node>,
    processes: Vec<Child>,
}

impl Lab {
    /// A new, empty lab with a unique name prefix.
    pub fn new() -> Lab {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("lr{}x{n}", std::process::id());
        let bridge_ns = format!("{prefix}-br");
        let lab = Lab { prefix, bridge_ns, nodes: Vec::new(), processes: Vec::new() };
        sh(&["ip", "netns", "add", &lab.bridge_ns]);
        lab.exec_in(&lab.bridge_ns, &["ip", "link", "add", "br0", "type", "bridge"]);
        lab.exec_in(&lab.bridge_ns, &["ip", "link", "set", "br0", "up"]);
        lab
    }

    fn exec_in(&self, ns: &str, args: &[&str]) -> Output {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// Adds a namespace `role` with `198.51.100.<host>/24` and `2001:db8:1::<host>/64`
    /// on interface `eth0`, attached to the bridge.
    pub fn node(&mut self, role: &str, host: u8) -> Node {
        let ns = format!("{}-{role}", self.prefix);
        let bridge_port = format!("p{host}");
        sh(&["ip", "netns", "add", &ns]);
        let node =
            Node { ns: ns.clone(), v4: format!("198.51.100.{host}"), v6: format!("2001:db8:1::{host}"), bridge_port };
        self.nodes.push(node.clone());
        sh(&[
            "ip",
            "-n",
            &self.bridge_ns,
            "link",
            "add",
            &node.bridge_port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &ns,
        ]);
        sh(&["ip", "-n", &self.bridge_ns, "link", "set", &node.bridge_port, "master", "br0", "up"]);
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        sh(&["ip", "-n", &ns, "addr", "add", &format!("{}/24", node.v4), "dev", "eth0"]);
        sh(&["ip", "-n", &ns, "addr", "add", &format!("{}/64", node.v6), "dev", "eth0", "nodad"]);
        sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        node
    }

    /// Wi-Fi client isolation: bridge ports that are isolated cannot talk to each other.
    pub fn isolate(&self, node: &Node) {
        sh(&["ip", "-n", &self.bridge_ns, "link", "set", &node.bridge_port, "type", "bridge_slave", "isolated", "on"]);
    }

    /// Starts `program args` inside `node`'s namespace; it is killed by PID on drop.
    /// Returns its index for [`Lab::wait_line`].
    pub fn spawn(&mut self, node: &Node, program: &str, args: &[&str]) -> Spawned {
        let mut child = start_in(node, program, args);
        let (tx, lines) = mpsc::channel();
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        self.processes.push(child);
        Spawned { lines, seen: Vec::new() }
    }

    /// Runs `program args` inside `node`'s namespace to completion (60 s at most).
    pub fn run(&self, node: &Node, program: &str, args: &[&str]) -> Output {
        wait_with_deadline(start_in(node, program, args), Duration::from_secs(60))
    }
}

/// Starts `program args` in `node`'s namespace with piped output.
fn start_in(node: &Node, program: &str, args: &[&str]) -> Child {
    Command::new("ip")
        .args(["netns", "exec", &node.ns, program])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {program} in {}: {e}", node.ns))
}

/// Waits for `child`, killing it (by PID) at the deadline.
fn wait_with_deadline(mut child: Child, deadline: Duration) -> Output {
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().expect("collect output"),
            Ok(None) if started.elapsed() > deadline => {
                let _ = child.kill();
                panic!("process still running after {deadline:?}");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("wait: {e}"),
        }
    }
}

/// Output lines of a spawned process.
pub struct Spawned {
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Spawned {
    /// Waits (15 s at most) for a line containing `needle`.
    pub fn wait_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?}; output so far:\n{}", self.seen.join("\n")),
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
        for node in &self.nodes {
            let _ = Command::new("ip").args(["netns", "del", &node.ns]).output();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.bridge_ns]).output();
    }
}
