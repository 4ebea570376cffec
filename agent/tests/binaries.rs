//! Both binaries on loopback, as a user runs them: output, exit codes, a waiting agent.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::io::{BufRead, BufReader};
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::{free_udp_port, peer_bin};

/// A running `lanreach-agent`, killed by PID on drop; its stderr lines arrive on a channel.
struct AgentProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl AgentProcess {
    fn start(state: &Path, extra: &[&str]) -> AgentProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lanreach-agent"))
            .arg("--state-dir")
            .arg(state)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lanreach-agent");
        let stderr: ChildStderr = child.stderr.take().expect("stderr piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        AgentProcess { child, lines, seen: Vec::new() }
    }

    /// Waits (10 s at most) for a stderr line containing `needle`.
    fn wait_line(&mut self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("agent printed no line with {needle:?}; it printed:\n{}", self.seen.join("\n")),
            }
        }
    }

    fn still_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peer(state: &Path, args: &[&str]) -> Output {
    Command::new(peer_bin()).args(args).arg("--state-dir").arg(state).output().expect("run lanreach-peer")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `text` with every run of whitespace (a wrapped line's break and indent) one space.
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn pair_on_loopback_then_wrong_code_leaves_the_agent_waiting() {
    let (agent_state, peer_state, other_state) =
        (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let port = free_udp_port();
    let control = format!("127.0.0.1:{port}");
    let mut agent =
        AgentProcess::start(agent_state.path(), &["--control", &control, "--code", "7K3Q-M2XD", "--name", "box"]);
    let command = agent.wait_line("lanreach-peer 127.0.0.1");
    assert!(command.contains(&format!("lanreach-peer {control} --code 7K3Q-M2XD")), "{command}");

    let out = peer(peer_state.path(), &[&control, "--code", "7K3Q-M2XD", "--name", "phone"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout, text(&out.stderr));
    assert!(stdout.contains("Paired with agent \"box\""), "{stdout}");
    assert!(stdout.contains("Round-trip time:"), "{stdout}");
    agent.wait_line("Paired with peer \"phone\"");
    agent.wait_line("round-trip time to \"phone\"");
    agent.wait_line("New pairing code (the last code was used)");

    let out = peer(other_state.path(), &[&control, "--code", "AAAA-AAAA", "--name", "guess"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    // Status lines wrap at the width (100 columns without a terminal): read them as words.
    assert!(words(&stderr).contains("the pairing code does not match"), "{stderr}");
    agent.wait_line("pairing failed: wrong code (failed attempt 1 of 3)");
    assert!(agent.still_running(), "the agent keeps waiting after a wrong code");

    // The first peer comes back without a code.
    let out = peer(peer_state.path(), &[&control, "--name", "phone"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("with pinned keys"));
}

#[test]
fn second_agent_on_a_taken_port_exits_2() {
    let (a, b) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let control = format!("127.0.0.1:{}", free_udp_port());
    let mut first = AgentProcess::start(a.path(), &["--control", &control]);
    first.wait_line("pairing code:");
    let out = Command::new(env!("CARGO_BIN_EXE_lanreach-agent"))
        .args(["--state-dir"])
        .arg(b.path())
        .args(["--control", &control])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("already in use") && stderr.contains("--control"), "{stderr}");
}

#[test]
fn peers_lists_and_removes_trusted_peers() {
    let (agent_state, peer_state) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let control = format!("127.0.0.1:{}", free_udp_port());
    let mut agent = AgentProcess::start(agent_state.path(), &["--control", &control, "--code", "7K3Q-M2XD"]);
    agent.wait_line("pairing code:");
    let out = peer(peer_state.path(), &[&control, "--code", "7K3Q-M2XD", "--name", "tablet"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    agent.wait_line("Paired with peer");

    let list = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_lanreach-agent"))
            .arg("--state-dir")
            .arg(agent_state.path())
            .args(args)
            .output()
            .expect("run")
    };
    let out = list(&["peers"]);
    assert!(text(&out.stdout).contains("tablet"), "{}", text(&out.stdout));
    let out = list(&["peers", "remove", "tablet"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("Removed peer \"tablet\""));
    let out = list(&["peers", "remove", "tablet"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no trusted peer matches"));
    // The running agent no longer trusts it either.
    let out = peer(peer_state.path(), &[&control, "--name", "tablet"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("does not trust this device"), "{}", text(&out.stderr));
}

#[test]
fn sigterm_stops_the_agent_cleanly() {
    let state = tempfile::tempdir().expect("dir");
    let control = format!("127.0.0.1:{}", free_udp_port());
    let mut agent = AgentProcess::start(state.path(), &["--control", &control]);
    agent.wait_line("pairing code:");
    let pid = agent.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
    assert!(status.success());
    agent.wait_line("Agent stopped.");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let code = loop {
        if let Some(status) = agent.child.try_wait().expect("wait") {
            break status.code();
        }
        assert!(std::time::Instant::now() < deadline, "agent still running 5 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
    // The port is free again.
    std::net::UdpSocket::bind(&control).expect("control port released");
}

#[test]
fn the_printed_link_pairs_and_a_link_to_another_agent_is_refused() {
    let (agent_state, peer_state) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let control = format!("127.0.0.1:{}", free_udp_port());
    let mut agent = AgentProcess::start(agent_state.path(), &["--control", &control, "--code", "7K3Q-M2XD"]);
    // One link for both: the phone's browser opens it, lanreach-peer pairs with it.
    let line = agent.wait_line("http://");
    let link = line.trim().to_owned();
    assert!(link.starts_with(&format!("http://{control}/#a=127.0.0.1/8&id=")), "{link}");
    assert!(link.contains("&t=") && link.ends_with("&code=7K3Q-M2XD"), "{link}");

    // The same link with another agent's ID: refused before pairing.
    let id_start = link.find("&id=").expect("id") + 4;
    let id_end = link.find("&t=").expect("token");
    let forged = format!("{}ZZZZZZZZZZZZZZZZ{}", &link[..id_start], &link[id_end..]);
    let out = peer(peer_state.path(), &[&forged]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is not the one in the link"), "{}", text(&out.stderr));

    let out = peer(peer_state.path(), &[&link, "--name", "phone"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Paired with agent") && stdout.contains("verification: "), "{stdout}");
    // Both sides show the same verification string.
    let shown = stdout.lines().find_map(|l| l.strip_prefix("verification: ")).expect("verification line");
    let digits = &shown[..7];
    let agent_line = agent.wait_line("verification: ");
    assert!(agent_line.contains(digits), "agent shows {agent_line:?}, peer {digits:?}");
    drop(agent);

    // Without the page, the link is for lanreach-peer alone.
    let control = format!("127.0.0.1:{}", free_udp_port());
    let mut agent = AgentProcess::start(agent_state.path(), &["--control", &control, "--no-web"]);
    assert!(agent.wait_line("browser page:").contains("off (--no-web)"));
    let line = agent.wait_line("lanreach://");
    assert!(line.trim().starts_with(&format!("lanreach://{control}?a=127.0.0.1/8&id=")), "{line}");
}

/// Runs `command` under a pseudo-terminal (util-linux `script`), returning what the
/// terminal showed.
fn on_a_terminal(command: &str, no_color: bool) -> String {
    let mut c = Command::new("script");
    c.args(["-q", "-e", "-c", command, "/dev/null"]).env_remove("NO_COLOR");
    if no_color {
        c.env("NO_COLOR", "1");
    }
    text(&c.output().expect("run script").stdout)
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("\n*** SKIPPED colour test: `script` (util-linux) is not installed ***\n");
        return;
    }
    let (agent_state, peer_state) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let control = format!("127.0.0.1:{}", free_udp_port());
    let mut agent = AgentProcess::start(agent_state.path(), &["--control", &control, "--code", "7K3Q-M2XD"]);
    agent.wait_line("pairing code:");
    // Piped: no escape codes anywhere.
    let out = peer(peer_state.path(), &[&control, "--code", "7K3Q-M2XD"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!out.stdout.contains(&0x1b) && !out.stderr.contains(&0x1b), "escape codes in piped output");
    assert!(agent.seen.iter().all(|l| !l.contains('\u{1b}')), "escape codes in the agent's piped stderr");

    let state = peer_state.path().to_str().expect("utf-8");
    let run = format!("{} {control} --state-dir {state}", peer_bin().display());
    assert!(on_a_terminal(&run, false).contains('\u{1b}'), "a terminal gets colour");
    assert!(!on_a_terminal(&run, true).contains('\u{1b}'), "NO_COLOR turns it off");
}

#[test]
fn completions_and_man_pages_generate() {
    for (bin, name) in
        [(PathBuf::from(env!("CARGO_BIN_EXE_lanreach-agent")), "lanreach-agent"), (peer_bin(), "lanreach-peer")]
    {
        for shell in ["bash", "zsh", "fish"] {
            let out = Command::new(&bin).args(["completions", shell]).output().expect("run");
            assert_eq!(out.status.code(), Some(0), "{name} completions {shell}");
            assert!(text(&out.stdout).contains(name), "{name} {shell}");
        }
        let out = Command::new(&bin).arg("man").output().expect("run");
        assert_eq!(out.status.code(), Some(0));
        let page = text(&out.stdout);
        assert!(page.starts_with(".ie") || page.contains(".TH"), "{name} man");
        for section in [".SH COMMANDS", ".SH EXIT STATUS", ".SH FILES", ".SH EXAMPLES"] {
            assert!(page.contains(section), "{name} man page lacks {section}");
        }
        assert!(!page.contains("(1)"), "{name} man page names pages that do not exist");
        assert!(page.contains("completions bash"), "{name} man page says where completions go");
    }
}

/// `--help` must match the snapshot in tests/snapshots; `UPDATE_SNAPSHOTS=1` rewrites it.
fn help_snapshot(bin: &Path, file: &str) {
    let out = Command::new(bin)
        .arg("--help")
        .env("NO_COLOR", "1")
        .env_remove("LANREACH_AGENT_STATE_DIR")
        .env_remove("LANREACH_PEER_STATE_DIR")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(file);
    if std::env::var("UPDATE_SNAPSHOTS").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&path, &help).expect("write snapshot");
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_SNAPSHOTS=1 creates it)", path.display()));
    assert_eq!(help, want, "--help changed; review it and rerun with UPDATE_SNAPSHOTS=1");
}

#[test]
fn help_texts_match_their_snapshots() {
    help_snapshot(Path::new(env!("CARGO_BIN_EXE_lanreach-agent")), "lanreach-agent.help");
    help_snapshot(&peer_bin(), "lanreach-peer.help");
}

/// `lanreach-agent … | head -1`: a reader that goes away ends either binary quietly
/// with the documented status 141, never a panic ("failed printing to stdout").
#[test]
fn a_closed_pipe_ends_quietly_with_status_141() {
    for (bin, args) in
        [(PathBuf::from(env!("CARGO_BIN_EXE_lanreach-agent")), ["completions", "bash"]), (peer_bin(), ["man", ""])]
    {
        let args: Vec<&str> = args.iter().copied().filter(|a| !a.is_empty()).collect();
        // A pipe whose reader is gone before the program starts: every write fails.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let child = Command::new(&bin).args(&args).stdout(writer).stderr(Stdio::piped()).spawn().expect("start");
        let out = child.wait_with_output().expect("wait");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{bin:?} {args:?}: {stderr}");
        assert!(stderr.is_empty(), "{bin:?} {args:?} printed: {stderr}");
    }
}

/// Two trusted peers share the name "phone": `peers remove phone` removes neither and
/// lists their IDs; removing by ID then works.
#[test]
fn removing_a_shared_name_asks_for_the_id() {
    let (agent_state, first, second) =
        (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let control = format!("127.0.0.1:{}", free_udp_port());
    let mut agent = AgentProcess::start(agent_state.path(), &["--control", &control, "--code", "7K3Q-M2XD"]);
    agent.wait_line("pairing code:");
    let out = peer(first.path(), &[&control, "--code", "7K3Q-M2XD", "--name", "phone"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    agent.wait_line("Paired with peer");
    let next = agent.wait_line("pairing code:");
    let code = next.split("pairing code:").nth(1).and_then(|r| r.split_whitespace().next()).expect("new code");
    let out = peer(second.path(), &[&control, "--code", code, "--name", "phone"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let agent_cmd = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_lanreach-agent"))
            .arg("--state-dir")
            .arg(agent_state.path())
            .args(args)
            .output()
            .expect("run")
    };
    let out = agent_cmd(&["peers", "remove", "phone"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let said = words(&err);
    assert!(said.contains("2 trusted peers are named \"phone\"") && said.contains("by its ID"), "{err}");
    let listing = text(&agent_cmd(&["peers"]).stdout);
    assert_eq!(listing.matches("phone").count(), 2, "nothing was removed: {listing}");
    let id = said.rsplit(", ").next().expect("an ID").trim().to_owned();
    let out = agent_cmd(&["peers", "remove", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&agent_cmd(&["peers"]).stdout).matches("phone").count(), 1);
}

/// `--state-dir` naming a file says so, on both binaries, with exit code 2 (on
/// loopback only: the agent serves 127.0.0.1 without mDNS, the peer dials 127.0.0.1).
#[test]
fn a_state_dir_that_is_a_file_is_named_as_such() {
    let file = tempfile::NamedTempFile::new().expect("file");
    let control = format!("127.0.0.1:{}", free_udp_port());
    let runs: [(PathBuf, Vec<&str>); 2] = [
        (PathBuf::from(env!("CARGO_BIN_EXE_lanreach-agent")), vec!["--control", &control, "--no-mdns"]),
        (peer_bin(), vec!["127.0.0.1:9", "--code", "7K3Q-M2XD"]),
    ];
    for (bin, args) in runs {
        let mut child = Command::new(&bin)
            .arg("--state-dir")
            .arg(file.path())
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run");
        let started = std::time::Instant::now();
        while matches!(child.try_wait(), Ok(None)) && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let out = child.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(2), "{bin:?}");
        let err = text(&out.stderr);
        assert!(err.contains("is a file, not a directory"), "{bin:?}: {err}");
        assert!(!err.contains("os error 17"), "{bin:?}: {err}");
    }
}

/// At the default verbosity a warning reads as a sentence, not as a log line with a
/// timestamp, a level and a module path.
#[test]
fn warnings_are_sentences_at_the_default_verbosity() {
    use std::os::unix::fs::PermissionsExt;
    let state = tempfile::tempdir().expect("dir");
    let control = format!("127.0.0.1:{}", free_udp_port());
    // A first start creates the identity; make its key readable by others.
    {
        let mut agent = AgentProcess::start(state.path(), &["--control", &control, "--no-mdns"]);
        agent.wait_line("pairing code:");
    }
    let key = state.path().join("identity.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut agent = AgentProcess::start(state.path(), &["--control", &control, "--no-mdns"]);
    let warning = agent.wait_line("readable by other users");
    assert!(warning.starts_with(&key.display().to_string()), "a plain sentence: {warning}");
    assert!(!warning.contains("WARN") && !warning.contains("lanreach_proto::"), "{warning}");
}

/// `lanreach-peer` with no arguments reconnects to the one agent it has paired with;
/// `lanreach-peer agents` lists the pins; with two agents it names both and asks.
#[test]
fn no_arguments_reach_the_one_paired_agent_and_several_are_listed() {
    let (first_state, second_state, peer_state) =
        (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let first = format!("127.0.0.1:{}", free_udp_port());
    let mut agent =
        AgentProcess::start(first_state.path(), &["--control", &first, "--code", "7K3Q-M2XD", "--name", "desk"]);
    agent.wait_line("pairing code:");
    let out = peer(peer_state.path(), &[&first, "--code", "7K3Q-M2XD"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let out = peer(peer_state.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "no arguments, one pinned agent: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("lanreach report"), "{}", text(&out.stdout));
    let listing = text(&peer(peer_state.path(), &["agents"]).stdout);
    assert!(listing.contains("\"desk\"") && listing.contains(&first), "{listing}");

    let second = format!("127.0.0.1:{}", free_udp_port());
    let mut other =
        AgentProcess::start(second_state.path(), &["--control", &second, "--code", "7K3Q-M2XD", "--name", "attic"]);
    other.wait_line("pairing code:");
    let out = peer(peer_state.path(), &[&second, "--code", "7K3Q-M2XD"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = peer(peer_state.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("paired with 2 agents; name one") && err.contains("desk") && err.contains("attic"), "{err}");
}
