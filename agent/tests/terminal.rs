//! What a person sees: both binaries in a real pseudo-terminal (tmux) at the widths
//! people use — 40 columns (a phone held upright), 80, 120. No printed line is wider
//! than the terminal, and each checked port's verdict, cause and fix appear, word for
//! word. The agent and the peer run on 127.0.0.1 (`--control 127.0.0.1:PORT
//! --no-mdns`), or inside the network namespaces of a LAN in a box.
//!
//! Needs tmux (`scripts/install-test-deps.sh` installs it); without it the tests skip
//! with a loud message, unless `LANREACH_REQUIRE_NETNS=1` (CI), where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lanreach_proto::report::{Report, ServiceReport};
use lanreach_proto::text;
use support::lab::{self, Lab};
use support::{arg, free_udp_port, peer_bin};
use tempfile::TempDir;

const CODE: &str = "7K3Q-M2XD";

/// How long a pane may take to show what the test waits for.
const SCREEN_DEADLINE: Duration = Duration::from_secs(30);

/// What the shell in a pane prints once the program ended.
const EXITED: &str = "lanreach-exit=";

/// Whether tmux is installed; prints why the test skips when not.
fn tmux_available(test: &str) -> bool {
    let found = Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("LANREACH_REQUIRE_NETNS").as_deref() == Ok("1") {
            panic!("{test}: tmux is not installed (scripts/install-test-deps.sh installs it)");
        }
        eprintln!("\n*** SKIPPED {test}: tmux not installed (scripts/install-test-deps.sh installs it) ***\n");
    }
    found
}

/// A tmux server of this test alone (its socket lives in a temporary directory of the
/// test), killed on drop with everything running in it.
struct Tmux {
    socket: PathBuf,
    width: usize,
    _dir: TempDir,
}

impl Tmux {
    fn new(width: usize) -> Tmux {
        let dir = tempfile::tempdir().expect("dir");
        Tmux { socket: dir.path().join("tmux"), width, _dir: dir }
    }

    fn tmux(&self, args: &[&str]) -> Output {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .output()
            .expect("run tmux");
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    /// Runs `argv` in a new session `name` of the test's width, as a user would in a
    /// terminal: `COLUMNS` and `NO_COLOR` unset, so the width is the terminal's and
    /// colour is on. The pane stays after the program ends.
    fn run(&self, name: &str, argv: &[&str]) {
        let quoted: Vec<String> = argv.iter().map(|a| format!("'{}'", a.replace('\'', r"'\''"))).collect();
        let command = format!("env -u COLUMNS -u NO_COLOR {}; echo {EXITED}$?; sleep 600", quoted.join(" "));
        let width = self.width.to_string();
        self.tmux(&["new-session", "-d", "-s", name, "-x", &width, "-y", "50", &command]);
        let shown = self.tmux(&["display-message", "-p", "-t", name, "#{pane_width}"]);
        assert_eq!(String::from_utf8_lossy(&shown.stdout).trim(), width, "the pane is {width} columns wide");
    }

    /// Everything pane `name` printed (its history included), lines that the terminal
    /// wrapped joined again, so a line wider than the pane shows as one line; with
    /// `escapes`, colour sequences kept.
    fn capture(&self, name: &str, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-J", "-S", "-", "-E", "-", "-t", name];
        if escapes {
            args.push("-e");
        }
        String::from_utf8_lossy(&self.tmux(&args).stdout).into_owned()
    }

    /// The screen of `name` once it shows `needle`.
    fn wait_for(&self, name: &str, needle: &str) -> String {
        let started = Instant::now();
        loop {
            let screen = self.capture(name, false);
            if screen.contains(needle) {
                return screen;
            }
            assert!(started.elapsed() < SCREEN_DEADLINE, "pane {name} never showed {needle:?}:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").arg("-S").arg(&self.socket).arg("kill-server").env_remove("TMUX").output();
    }
}

/// A process of the test, killed by PID on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback TCP port that was free a moment ago.
fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `python3 -m http.server PORT --bind 127.0.0.1`, once it accepts connections.
fn http_server_on_loopback(port: u16, www: &Path) -> Killed {
    let child = Command::new("python3")
        .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory", arg(www)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start python3 -m http.server");
    let server = Killed(child);
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "http.server did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// Every line on `screen` fits in `width` columns — but a line that is one token (the
/// pairing or browser link): breaking it with a newline would break copying it; the terminal wraps
/// it softly instead.
fn assert_fits(screen: &str, width: usize, what: &str) {
    for line in screen.lines() {
        let line = line.trim_end();
        let link = ["lanreach://", "http://"].iter().any(|s| line.trim_start().starts_with(s));
        if link && !line.trim().contains(' ') {
            continue;
        }
        assert!(text::width(line) <= width, "{what}: a line is wider than {width} columns: {line:?}\n{screen}");
    }
}

/// Every word of `part` is on `screen`, whole and in order.
fn assert_words(screen: &str, part: &str, what: &str) {
    let words: Vec<&str> = screen.split_whitespace().collect();
    let wanted: Vec<&str> = part.split_whitespace().collect();
    if wanted.is_empty() {
        return;
    }
    assert!(
        words.windows(wanted.len()).any(|w| w == wanted.as_slice()),
        "{what}: {part:?} is not on the screen word for word:\n{screen}"
    );
}

fn port_label(s: &ServiceReport) -> String {
    match s.proto {
        lanreach_proto::vocab::Proto::Tcp => s.port.to_string(),
        lanreach_proto::vocab::Proto::Udp => format!("{}/udp", s.port),
    }
}

/// Each checked port's verdict, and the cause and fix of its finding, are on `screen`
/// word for word; no line is wider than the terminal.
fn assert_story(screen: &str, report: &Report, width: usize, what: &str) {
    assert_fits(screen, width, what);
    assert!(!report.services.is_empty(), "{what}: the report has the checked ports");
    for s in &report.services {
        assert_words(screen, s.verdict.as_str(), what);
        let prefix = format!("Port {}: ", port_label(s));
        let finding = report.findings.iter().find(|f| f.message.starts_with(&prefix));
        if let Some(f) = finding {
            assert_words(screen, f.message.strip_prefix(&prefix).unwrap_or(&f.message), what);
            assert_words(screen, &f.fix, what);
        }
    }
}

fn report_from(out: &Output) -> Report {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {}", String::from_utf8_lossy(&out.stderr)))
}

/// The agent checks a python server on 127.0.0.1 and a closed port; the peer pairs
/// with it. Both screens are `width` columns wide.
fn loopback_at(test: &str, width: usize) {
    if !tmux_available(test) {
        return;
    }
    let dir = || tempfile::tempdir().expect("dir");
    let (agent_state, peer_state, www) = (dir(), dir(), dir());
    let (http, closed) = (free_tcp_port(), free_tcp_port());
    let _server = http_server_on_loopback(http, www.path());
    let control = format!("127.0.0.1:{}", free_udp_port());
    let ports = format!("{http},{closed}");
    let tmux = Tmux::new(width);
    let agent = env!("CARGO_BIN_EXE_lanreach-agent");
    let state = arg(agent_state.path());
    tmux.run(
        "agent",
        &[agent, "--state-dir", state, "--control", &control, "--no-mdns", "--code", CODE, "--check", &ports],
    );
    tmux.wait_for("agent", "pairing code:");
    let peer = peer_bin();
    let state = arg(peer_state.path());
    tmux.run("peer", &[arg(&peer), &control, "--code", CODE, "--state-dir", state, "--name", "phone"]);
    let peer_screen = tmux.wait_for("peer", EXITED);
    let agent_screen = tmux.wait_for("agent", "session done");
    // The same report as data, from a second run with the keys now pinned.
    let json = Command::new(&peer).args([&control, "--json", "--state-dir", state]).env_remove("COLUMNS").output();
    let report = report_from(&json.expect("run lanreach-peer --json"));
    // What a person sees (shown with --nocapture).
    eprintln!("--- peer at {width} columns:\n{peer_screen}\n--- agent at {width} columns:\n{agent_screen}");

    assert!(peer_screen.contains(&format!("{EXITED}1")), "a closed port: exit 1\n{peer_screen}");
    for (screen, what) in [(&peer_screen, "peer"), (&agent_screen, "agent")] {
        let what = format!("{what} at {width} columns");
        assert_story(screen, &report, width, &what);
        if width < 60 {
            assert!(screen.contains("Left out at this width"), "{what}: the matrix is left out\n{screen}");
        }
        if width >= 120 {
            assert!(screen.contains("┌") && screen.contains("TCP listener"), "{what}: tables\n{screen}");
        } else {
            assert!(!screen.contains("┌"), "{what}: no table at {width} columns\n{screen}");
        }
    }
    // The verdicts stand out: the terminal got them in colour.
    let coloured = tmux.capture("peer", true);
    assert!(coloured.contains("\x1b[") && coloured.contains("loopback_only"), "{coloured}");
}

#[test]
fn on_loopback_at_40_columns_every_line_fits_and_the_fix_is_whole() {
    loopback_at("on_loopback_at_40_columns_every_line_fits_and_the_fix_is_whole", 40);
}

#[test]
fn on_loopback_at_80_columns_every_line_fits_and_the_fix_is_whole() {
    loopback_at("on_loopback_at_80_columns_every_line_fits_and_the_fix_is_whole", 80);
}

#[test]
fn on_loopback_at_120_columns_the_tables_show_and_every_line_fits() {
    loopback_at("on_loopback_at_120_columns_the_tables_show_and_every_line_fits", 120);
}

/// On a LAN in a box, a phone at `width` columns checks a server bound to 127.0.0.1 on
/// the host: the verdict, its cause and its fix come first, each on its own lines.
fn lan_at(test: &str, width: usize) {
    if !lab::available_with(test, &["python3", "tmux"]) || !tmux_available(test) {
        return;
    }
    let mut lab = Lab::new();
    let host = lab.node("host", 1);
    let phone = lab.node("phone", 2);
    let dir = || tempfile::tempdir().expect("dir");
    let (agent_state, peer_state, www) = (dir(), dir(), dir());
    lab.spawn(&host, "python3", &["-m", "http.server", "3000", "--bind", "127.0.0.1", "--directory", arg(www.path())]);
    lab.wait_tcp_listen(&host, 3000);
    let tmux = Tmux::new(width);
    let agent = env!("CARGO_BIN_EXE_lanreach-agent");
    let state = arg(agent_state.path());
    let control = format!("{}:47800", host.v4);
    tmux.run(
        "agent",
        &["ip", "netns", "exec", &host.ns, agent, "--state-dir", state, "--control", &control, "--no-mdns"]
            .into_iter()
            .chain(["--code", CODE, "--check", "3000", "--name", "box"])
            .collect::<Vec<_>>(),
    );
    tmux.wait_for("agent", "pairing code:");
    let peer = peer_bin();
    let state = arg(peer_state.path());
    tmux.run(
        "peer",
        &[
            "ip",
            "netns",
            "exec",
            &phone.ns,
            arg(&peer),
            &host.v4,
            "--code",
            CODE,
            "--state-dir",
            state,
            "--name",
            "phone",
        ],
    );
    let peer_screen = tmux.wait_for("peer", EXITED);
    let agent_screen = tmux.wait_for("agent", "session done");
    // What a person sees (shown with --nocapture).
    eprintln!("--- peer at {width} columns:\n{peer_screen}\n--- agent at {width} columns:\n{agent_screen}");
    let report = report_from(&lab.run(&phone, arg(&peer), &[&host.v4, "--json", "--state-dir", state]));
    let s = report.services.first().expect("port 3000");
    assert_eq!(s.verdict.as_str(), "loopback_only", "{}", report.to_json());

    for (screen, what) in [(&peer_screen, "peer"), (&agent_screen, "agent")] {
        assert_story(screen, &report, width, what);
    }
    // The story reads top-down: the verdict line, then the cause, then the fix, a
    // dozen lines at most, with the report's header right above it.
    let lines: Vec<&str> = peer_screen.lines().map(str::trim_end).collect();
    let title = lines.iter().rposition(|l| l.starts_with("lanreach report")).expect("report title");
    let verdict = lines.iter().position(|l| *l == "Port 3000: loopback_only").expect("verdict line");
    let fix = lines.iter().position(|l| l.starts_with("  fix: ")).expect("fix line");
    let end = lines[fix + 1..].iter().position(|l| !l.starts_with("    ")).map_or(lines.len(), |i| fix + 1 + i);
    assert!(title < verdict && verdict - title <= 8, "the verdict right after the header:\n{peer_screen}");
    assert!(verdict < fix && end - verdict <= 12, "verdict, cause and fix within 12 lines:\n{peer_screen}");
    assert!(lines[fix..end].join(" ").contains("--bind ::"), "{peer_screen}");
    if width < 60 {
        // The whole report fits on one phone screen (Termux upright shows about 50 lines).
        let last = lines.iter().rposition(|l| l.starts_with(EXITED)).expect("exit line");
        assert!(last - title <= 50, "{} report lines at {width} columns:\n{peer_screen}", last - title);
    }
}

#[test]
fn a_phone_screen_shows_loopback_only_with_its_fix_first() {
    lan_at("a_phone_screen_shows_loopback_only_with_its_fix_first", 40);
}

#[test]
fn a_laptop_terminal_shows_loopback_only_with_its_fix_first() {
    lan_at("a_laptop_terminal_shows_loopback_only_with_its_fix_first", 80);
}
