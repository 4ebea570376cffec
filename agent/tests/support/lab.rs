//! LAN in a box: network namespaces joined by veth pairs to a bridge that lives in its
//! own namespace. Documentation addresses only (198.51.100.0/24, 203.0.113.0/24,
//! 2001:db8::/32). Every namespace and process is removed on drop, on every exit path.
//!
//! Needs root and iproute2. Without them a test skips with a loud message, unless
//! `LANREACH_REQUIRE_NETNS=1` (set by CI), where it fails instead.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Whether this machine can run lab tests that use `tools` besides `ip`; prints why not.
pub fn available_with(test: &str, tools: &[&str]) -> bool {
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    let missing: Vec<&str> = std::iter::once("ip")
        .chain(tools.iter().copied())
        .filter(|t| {
            Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .map(|o| !o.status.success())
                .unwrap_or(true)
        })
        .collect();
    if root && missing.is_empty() {
        return true;
    }
    let why = if root {
        format!("{} not installed (scripts/install-test-deps.sh installs them)", missing.join(", "))
    } else {
        "it needs root for network namespaces".to_owned()
    };
    if std::env::var("LANREACH_REQUIRE_NETNS").as_deref() == Ok("1") {
        panic!("{test}: LAN-in-a-box test cannot run: {why}");
    }
    eprintln!("\n*** SKIPPED {test}: {why} ***\n");
    false
}

/// Whether this machine can run lab tests; prints why not.
pub fn available(test: &str) -> bool {
    available_with(test, &[])
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

    /// Adds a second interface `name` to `node` with `v4/24` and `v6/64`: one end of a
    /// veth pair whose other end (`NAMEp`) stays in the node, so the link has carrier
    /// (dummy links need a kernel module that may be missing).
    pub fn second_interface(&self, node: &Node, name: &str, v4: &str, v6: &str) {
        self.second_interface_in(node, name, &format!("{v4}/24"), &format!("{v6}/64"));
    }

    /// [`Lab::second_interface`] with prefix lengths: `v4` and `v6` as `ADDR/LEN`.
    pub fn second_interface_in(&self, node: &Node, name: &str, v4: &str, v6: &str) {
        let other = format!("{name}p");
        sh(&["ip", "-n", &node.ns, "link", "add", name, "type", "veth", "peer", "name", &other]);
        sh(&["ip", "-n", &node.ns, "link", "set", &other, "up"]);
        sh(&["ip", "-n", &node.ns, "addr", "add", v4, "dev", name]);
        sh(&["ip", "-n", &node.ns, "addr", "add", v6, "dev", name, "nodad"]);
        sh(&["ip", "-n", &node.ns, "link", "set", name, "up"]);
    }

    /// Gives `node` `count` more IPv4 addresses on its bridge interface, from
    /// `198.51.100.<first>` up (an attacker with many sources); returns them.
    pub fn extra_addresses(&self, node: &Node, first: u8, count: u8) -> Vec<String> {
        let addrs: Vec<String> = (0..count).map(|i| format!("198.51.100.{}", first + i)).collect();
        for addr in &addrs {
            sh(&["ip", "-n", &node.ns, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
        }
        addrs
    }

    /// Gives `node` default routes via `v4` and `v6` on `eth0` (gateways that need not
    /// exist: the routing table is what the agent reads).
    pub fn default_routes(&self, node: &Node, v4: &str, v6: &str) {
        sh(&["ip", "-n", &node.ns, "route", "add", "default", "via", v4, "dev", "eth0"]);
        sh(&["ip", "-n", &node.ns, "-6", "route", "add", "default", "via", v6, "dev", "eth0"]);
    }

    /// Removes `node`'s IPv6 address on the bridge: it then reaches others over IPv4 only.
    pub fn drop_ipv6(&self, node: &Node) {
        sh(&["ip", "-n", &node.ns, "addr", "del", &format!("{}/64", node.v6), "dev", "eth0"]);
    }

    /// Waits (5 s at most) until something listens on TCP `port` in `node`.
    pub fn wait_tcp_listen(&self, node: &Node, port: u16) {
        let script = format!(
            "for i in $(seq 100); do ss -Hltn \"sport = :{port}\" | grep -q . && exit 0; sleep 0.05; done; exit 1"
        );
        let out = self.run(node, "sh", &["-c", &script]);
        assert!(out.status.success(), "nothing listens on TCP {port} in {} after 5 s", node.ns);
    }

    /// Adds a namespace `role` joined to `node` by a point-to-point veth: `node` gets
    /// `203.0.113.1/24` on `ctr0`, the new one `203.0.113.2/24` on `eth0` (a
    /// container-like network behind the host).
    pub fn container_behind(&mut self, node: &Node, role: &str) -> Node {
        let ns = format!("{}-{role}", self.prefix);
        sh(&["ip", "netns", "add", &ns]);
        let inner =
            Node { ns: ns.clone(), v4: "203.0.113.2".into(), v6: "2001:db8:3::2".into(), bridge_port: String::new() };
        self.nodes.push(inner.clone());
        sh(&["ip", "-n", &node.ns, "link", "add", "ctr0", "type", "veth", "peer", "name", "eth0", "netns", &ns]);
        sh(&["ip", "-n", &node.ns, "addr", "add", "203.0.113.1/24", "dev", "ctr0"]);
        sh(&["ip", "-n", &node.ns, "link", "set", "ctr0", "up"]);
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        sh(&["ip", "-n", &ns, "addr", "add", "203.0.113.2/24", "dev", "eth0"]);
        sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        inner
    }

    /// Routes `prefix` from `node` via `gateway`.
    pub fn route(&self, node: &Node, prefix: &str, gateway: &str) {
        sh(&["ip", "-n", &node.ns, "route", "add", prefix, "via", gateway]);
    }

    /// Loads an nftables ruleset into `node`'s namespace.
    pub fn nft(&self, node: &Node, ruleset: &str) {
        use std::io::Write;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &node.ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nft");
        child.stdin.take().expect("stdin").write_all(ruleset.as_bytes()).expect("write ruleset");
        let out = child.wait_with_output().expect("nft");
        assert!(out.status.success(), "nft failed: {}\n{ruleset}", String::from_utf8_lossy(&out.stderr));
    }

    /// Wi-Fi client isolation: bridge ports that are isolated cannot talk to each other.
    pub fn isolate(&self, node: &Node) {
        sh(&["ip", "-n", &self.bridge_ns, "link", "set", &node.bridge_port, "type", "bridge_slave", "isolated", "on"]);
    }

    /// Starts `program args` inside `node`'s namespace; it is killed by PID on drop.
    pub fn spawn(&mut self, node: &Node, program: &str, args: &[&str]) -> Spawned {
        let mut child = start_in(node, program, args);
        let (tx, lines) = mpsc::channel();
        let stdout = Arc::new(Mutex::new(String::new()));
        let streams: [(Option<Box<dyn Read + Send>>, bool); 2] = [
            (child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>), true),
            (child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>), false),
        ];
        for (stream, is_stdout) in streams {
            let Some(stream) = stream else { continue };
            let (tx, stdout) = (tx.clone(), stdout.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if is_stdout {
                        let mut out = stdout.lock().unwrap_or_else(|p| p.into_inner());
                        out.push_str(&line);
                        out.push('\n');
                    }
                    // Keep draining after the caller dropped its `Spawned`: a closed pipe
                    // would make the program's next log line fail (python's http.server
                    // then drops the connection it was answering).
                    let _ = tx.send(line);
                }
            });
        }
        let index = self.processes.len();
        // `ip netns exec` execs the program itself: this is the program's PID.
        let pid = child.id();
        self.processes.push(child);
        Spawned { index, pid, lines, seen: Vec::new(), stdout }
    }

    /// Waits (`deadline` at most) for a spawned process to exit; returns its exit code.
    pub fn wait_exit(&mut self, spawned: &Spawned, deadline: Duration) -> Option<i32> {
        let child = &mut self.processes[spawned.index];
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.code(),
                Ok(None) if started.elapsed() > deadline => panic!("process still running after {deadline:?}"),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("wait: {e}"),
            }
        }
    }

    /// Runs `program args` inside `node`'s namespace to completion (60 s at most).
    pub fn run(&self, node: &Node, program: &str, args: &[&str]) -> Output {
        wait_with_deadline(start_in(node, program, args), Duration::from_secs(60))
    }
}

/// A namespace joined to the root namespace by a veth pair, for tests of paths that only
/// exist there (Docker's NAT rules): the root end is `lrrootK` with `203.0.113.(4K+1)/30`,
/// the namespace end `eth0` with `203.0.113.(4K+2)/30`, IPv6 off on both and no default
/// route, so nothing in the namespace can send to any other address. Slot K is claimed by
/// creating the link (atomic across test processes); the link is removed on drop, and with
/// the namespace when the lab goes.
pub struct RootLink {
    /// The root end's name.
    name: String,
    /// The root end's address (the agent's side).
    pub root_ip: String,
    /// The namespace at the other end.
    pub node: Node,
}

impl Lab {
    /// Adds a namespace `role` joined to the root namespace (see [`RootLink`]).
    pub fn root_link(&mut self, role: &str) -> RootLink {
        let ns = format!("{}-{role}", self.prefix);
        sh(&["ip", "netns", "add", &ns]);
        let free = |slot: u8| {
            let subnet = format!("203.0.113.{}/30", slot * 4);
            let used = sh(&["ip", "-o", "addr", "show", "to", &subnet]);
            used.stdout.is_empty()
        };
        for slot in 1..63u8 {
            let name = format!("lrroot{slot}");
            if !free(slot) {
                continue;
            }
            let made = Command::new("ip")
                .args(["link", "add", &name, "type", "veth", "peer", "name", "eth0", "netns", &ns])
                .output()
                .expect("run ip");
            if !made.status.success() {
                continue; // another test holds this slot
            }
            let node = Node {
                ns: ns.clone(),
                v4: format!("203.0.113.{}", slot * 4 + 2),
                v6: String::new(),
                bridge_port: String::new(),
            };
            self.nodes.push(node.clone());
            let link = RootLink { name: name.clone(), root_ip: format!("203.0.113.{}", slot * 4 + 1), node };
            sh(&["sysctl", "-q", "-w", &format!("net.ipv6.conf.{name}.disable_ipv6=1")]);
            sh(&["ip", "addr", "add", &format!("{}/30", link.root_ip), "dev", &name]);
            sh(&["ip", "link", "set", &name, "up"]);
            sh(&["ip", "netns", "exec", &ns, "sysctl", "-q", "-w", "net.ipv6.conf.eth0.disable_ipv6=1"]);
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            sh(&["ip", "-n", &ns, "addr", "add", &format!("{}/30", link.node.v4), "dev", "eth0"]);
            sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            return link;
        }
        panic!("no free 203.0.113.0/30 slot for a root link");
    }
}

impl Drop for RootLink {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.name]).output();
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

/// Output of a spawned process: all lines in order, and stdout alone.
pub struct Spawned {
    index: usize,
    pid: u32,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stdout: Arc<Mutex<String>>,
}

impl Spawned {
    /// The process's PID.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its resident memory now, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).expect("process status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("VmRSS")
    }

    /// Everything it wrote to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every line it printed so far (stdout and stderr, in order).
    pub fn lines_so_far(&mut self) -> Vec<String> {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.clone()
    }

    /// Waits (15 s at most) for a line containing `needle`.
    pub fn wait_line(&mut self, needle: &str) -> String {
        self.wait_line_for(needle, Duration::from_secs(15))
    }

    /// Waits (`limit` at most) for a line containing `needle`.
    pub fn wait_line_for(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
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

impl Spawned {
    /// Every line (stdout and stderr) it wrote so far, in order.
    pub fn lines(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
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
