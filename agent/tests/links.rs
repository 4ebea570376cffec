//! Pairing links and QR codes as a person meets them: the agent in a real
//! pseudo-terminal (`script`), its QR codes decoded from the printed text, the peer
//! pairing from the printed link and from the decoded one; a multi-homed agent on a
//! LAN in a box; the race's losing handshake.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod support;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::lab::{self, Lab};
use support::qr::{Seen, decode_all};
use support::{arg, free_udp_port, peer_bin, stdout_of_success};

const CODE: &str = "7K3Q-M2XD";

/// Whether `script` (util-linux) is here to give the agent a pseudo-terminal.
fn have_script(test: &str) -> bool {
    let ok = Command::new("sh").args(["-c", "command -v script"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("\n*** SKIPPED {test}: `script` (util-linux) is not installed ***\n");
    }
    ok
}

/// The shell command that runs `program args` in a pseudo-terminal.
fn in_a_pty(program: &str, args: &[&str]) -> Vec<String> {
    let command = std::iter::once(program).chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
    vec!["script".into(), "-qfec".into(), command, "/dev/null".into()]
}

/// The agent in a pseudo-terminal on loopback, its output collected; killed on drop.
struct PtyAgent {
    child: Child,
    // Bytes, not text: a read may end in the middle of a character.
    output: Arc<Mutex<Vec<u8>>>,
}

impl PtyAgent {
    fn start(state: &std::path::Path, columns: &str, colour: bool) -> PtyAgent {
        let port = free_udp_port().to_string();
        let control = format!("127.0.0.1:{port}");
        let argv = in_a_pty(
            env!("CARGO_BIN_EXE_lanreach-agent"),
            &["--control", &control, "--no-mdns", "--state-dir", arg(state), "--code", CODE, "--name", "box"],
        );
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).env("COLUMNS", columns).env("TERM", "xterm-256color");
        if colour {
            cmd.env_remove("NO_COLOR");
        } else {
            cmd.env("NO_COLOR", "1");
        }
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("script");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (mut stdout, sink) = (child.stdout.take().expect("stdout"), output.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(&buf[..n]);
            }
        });
        PtyAgent { child, output }
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    /// Waits (15 s at most) until the output satisfies `done`.
    fn wait(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = self.output();
            if done(&out) {
                return out;
            }
            assert!(Instant::now() < deadline, "no {what} within 15 s; output:\n{out}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PtyAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The links the agent printed (the line after "or pair from this link"), in order.
fn printed_links(output: &str) -> Vec<String> {
    output
        .lines()
        .map(|l| l.trim())
        .filter(|l| l.starts_with("lanreach://") || l.starts_with("http://"))
        .map(str::to_owned)
        .collect()
}

/// The commands of the first "run one of" list.
fn run_one_of(output: &str) -> Vec<String> {
    output
        .lines()
        .skip_while(|l| !l.contains("run one of:"))
        .skip(1)
        .map(|l| l.trim())
        .take_while(|l| l.starts_with("lanreach-peer "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_printed_qr_code_holds_the_link_and_each_new_code_brings_a_new_one() {
    if !have_script("the_printed_qr_code_holds_the_link_and_each_new_code_brings_a_new_one") {
        return;
    }
    let (agent_state, peer_state) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let agent = PtyAgent::start(agent_state.path(), "80", true);
    let out = agent.wait("banner", |o| o.contains("Ctrl-C stops the agent"));
    let link = printed_links(&out).first().cloned().expect("a printed link");
    let codes = decode_all(&out);
    assert_eq!(codes, [(Seen::Colour, link.clone())], "the QR code is the printed link, in colour");
    for line in out.lines().filter(|l| l.contains('█')) {
        let visible = line.trim_end_matches('\r').replace("\x1b[30;107m", "").replace("\x1b[0m", "");
        assert!(visible.chars().count() <= 80, "a QR line wider than the terminal: {visible:?}");
    }

    // A phone pairs with what it scanned.
    let out = Command::new(peer_bin())
        .args([&codes[0].1, "--state-dir", arg(peer_state.path()), "--name", "phone"])
        .output()
        .expect("peer");
    let stdout = stdout_of_success(&out);
    assert!(stdout.contains("Paired with agent \"box\""), "{stdout}");

    // The code was used: the new one comes with its own QR code.
    let out = agent.wait("a second QR code", |o| decode_all(o).len() == 2);
    let (seen, fresh) = decode_all(&out).pop().expect("second QR code");
    assert_eq!(seen, Seen::Colour);
    assert!(out.contains("New pairing code (the last code was used)"), "{out}");
    assert!(!fresh.contains(CODE) && fresh.contains("code="), "{fresh}");
    assert_eq!(printed_links(&out).last(), Some(&fresh), "the new QR code is the new printed link");
}

#[test]
fn without_colour_the_qr_code_is_for_dark_terminals_and_a_narrow_terminal_gets_a_sentence() {
    if !have_script("without_colour_the_qr_code_is_for_dark_terminals_and_a_narrow_terminal_gets_a_sentence") {
        return;
    }
    let state = tempfile::tempdir().expect("dir");
    let agent = PtyAgent::start(state.path(), "80", false);
    let out = agent.wait("banner", |o| o.contains("Ctrl-C stops the agent"));
    assert!(!out.contains("\x1b[30;107m"), "no colour codes with NO_COLOR");
    let link = printed_links(&out).first().cloned().expect("a printed link");
    assert_eq!(decode_all(&out), [(Seen::LightOnDark, link)]);
    drop(agent);

    // At 30 columns sentences wrap: compare words.
    let words = |o: &str| o.split_whitespace().collect::<Vec<_>>().join(" ");
    let agent = PtyAgent::start(state.path(), "30", true);
    let out = agent.wait("banner", |o| words(o).contains("Ctrl-C stops the agent"));
    assert!(decode_all(&out).is_empty(), "no QR code at 30 columns:\n{out}");
    let said = words(&out);
    assert!(said.contains("QR code left out: it needs") && said.contains("this terminal has 30"), "{out}");
    assert!(!printed_links(&out).is_empty(), "the link is still printed");
}

/// A host on the LAN (`eth0`, the default route) with a container-like link `ctr0` and a
/// second NIC `eno2` on networks the phone cannot reach, both named before `eth0`.
fn multi_homed(lab: &mut Lab) -> (lab::Node, lab::Node) {
    let host = lab.node("host", 1);
    let phone = lab.node("phone", 2);
    lab.container_behind(&host, "ctr");
    lab.second_interface_in(&host, "eno2", "203.0.113.129/25", "2001:db8:2::1/64");
    lab.default_routes(&host, "198.51.100.254", "2001:db8:1::fe");
    (host, phone)
}

#[test]
fn a_multi_homed_agent_is_paired_from_its_printed_link_and_from_its_qr_code() {
    let test = "a_multi_homed_agent_is_paired_from_its_printed_link_and_from_its_qr_code";
    if !lab::available_with(test, &["script"]) {
        return;
    }
    let mut lab = Lab::new();
    let (host, phone) = multi_homed(&mut lab);
    let state = tempfile::tempdir().expect("dir");
    let pty = in_a_pty(
        env!("CARGO_BIN_EXE_lanreach-agent"),
        &["--state-dir", arg(state.path()), "--code", CODE, "--name", "box", "--no-mdns"],
    );
    let mut argv: Vec<&str> = vec!["-u", "NO_COLOR", "COLUMNS=100", "TERM=xterm-256color"];
    argv.extend(pty.iter().map(String::as_str));
    let mut agent = lab.spawn(&host, "env", &argv);
    agent.wait_line("Ctrl-C stops the agent");
    let out = agent.stdout();

    // The LAN address of the default route first, then the others; the link holds the
    // four best, with their prefix lengths.
    assert_eq!(
        run_one_of(&out),
        [
            "lanreach-peer 198.51.100.1 --code 7K3Q-M2XD",
            "lanreach-peer 2001:db8:1::1 --code 7K3Q-M2XD",
            "lanreach-peer 203.0.113.1 --code 7K3Q-M2XD",
            "lanreach-peer 203.0.113.129 --code 7K3Q-M2XD",
            "lanreach-peer 2001:db8:2::1 --code 7K3Q-M2XD",
        ],
        "{out}"
    );
    let link = printed_links(&out).first().cloned().expect("link");
    assert!(
        link.starts_with(
            "http://198.51.100.1:47800/#a=198.51.100.1/24,2001:db8:1::1/64,203.0.113.1/24,203.0.113.129/25&id="
        ),
        "{link}"
    );
    assert_eq!(decode_all(&out), [(Seen::Colour, link.clone())]);

    // From the printed link: the phone cannot reach ctr0 or eno2 and pairs over eth0.
    let peer = arg(&peer_bin()).to_owned();
    let first = tempfile::tempdir().expect("dir");
    let run = lab.run(&phone, &peer, &[&link, "--state-dir", arg(first.path()), "--name", "phone"]);
    let stdout = stdout_of_success(&run);
    assert!(stdout.contains("Paired with agent \"box\"") && stdout.contains("at 198.51.100.1:47800"), "{stdout}");
    // The agent's addresses, grouped by interface; link-local ones counted, not listed.
    assert!(stdout.contains("addresses: eth0 198.51.100.1, 2001:db8:1::1\n"), "{stdout}");
    assert!(stdout.contains("link-local; --all-addresses lists them)"), "{stdout}");

    // From the QR code printed with the new code.
    agent.wait_line("New pairing code (the last code was used)");
    let deadline = Instant::now() + Duration::from_secs(15);
    let fresh = loop {
        let codes = decode_all(&agent.stdout());
        if codes.len() == 2 {
            break codes[1].1.clone();
        }
        assert!(Instant::now() < deadline, "no second QR code:\n{}", agent.stdout());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!fresh.contains(CODE), "{fresh}");
    let second = tempfile::tempdir().expect("dir");
    let run = lab.run(&phone, &peer, &[&fresh, "--state-dir", arg(second.path()), "--name", "tablet"]);
    let stdout = stdout_of_success(&run);
    assert!(stdout.contains("Paired with agent \"box\""), "{stdout}");
    agent.wait_line("Paired with peer \"tablet\"");
}

#[test]
fn a_losing_handshake_is_closed_unused_and_the_agent_says_nothing_of_it() {
    let test = "a_losing_handshake_is_closed_unused_and_the_agent_says_nothing_of_it";
    if !lab::available_with(test, &["nft"]) {
        return;
    }
    let mut lab = Lab::new();
    let host = lab.node("host", 1);
    let phone = lab.node("phone", 2);
    // The first four packets to the agent's IPv4 address (4,900 bytes) are lost: that
    // handshake completes after its retransmissions (QUIC's 50 ms initial RTT backs off
    // 150, 300, 600 ms…), after the IPv6 one (started 250 ms in) has won.
    // Port 9 is silent, so the session outlasts the late handshake.
    lab.nft(
        &host,
        "table inet lossy {\n chain input {\n  type filter hook input priority 0;\n  \
         ip daddr 198.51.100.1 udp dport 47800 quota until 4900 bytes drop\n  tcp dport 9 drop\n }\n}\n",
    );
    let state = tempfile::tempdir().expect("dir");
    let mut agent = lab.spawn(
        &host,
        env!("CARGO_BIN_EXE_lanreach-agent"),
        &["--state-dir", arg(state.path()), "--code", CODE, "--name", "box", "--no-mdns", "--check", "9"],
    );
    let link = agent.wait_line("http://").trim().to_owned();
    let peer_state = tempfile::tempdir().expect("dir");
    let run = lab.run(
        &phone,
        arg(&peer_bin()),
        &[&link, "--state-dir", arg(peer_state.path()), "--name", "phone", "--timeout", "1500", "-v"],
    );
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(stdout.contains("Paired with agent \"box\" (ID"), "{stdout}{stderr}");
    assert!(stdout.contains("at [2001:db8:1::1]:47800"), "the IPv6 handshake won: {stdout}");
    assert!(stderr.contains("also reached the agent at 198.51.100.1:47800: closed unused"), "{stderr}");
    agent.wait_line("round-trip time to \"phone\"");
    std::thread::sleep(Duration::from_millis(500));
    let lines = agent.lines_so_far();
    let paired = lines.iter().filter(|l| l.contains("Paired with peer")).count();
    assert_eq!(paired, 1, "{lines:#?}");
    assert!(!lines.iter().any(|l| l.starts_with("Peer at ")), "the loser is not reported: {lines:#?}");
}

#[test]
fn name_dot_local_resolves_over_lanreach_mdns() {
    if !lab::available("name_dot_local_resolves_over_lanreach_mdns") {
        return;
    }
    let mut lab = Lab::new();
    let host = lab.node("host", 1);
    let phone = lab.node("phone", 2);
    let state = tempfile::tempdir().expect("dir");
    let mut agent = lab.spawn(
        &host,
        env!("CARGO_BIN_EXE_lanreach-agent"),
        &["--state-dir", arg(state.path()), "--code", CODE, "--name", "box"],
    );
    agent.wait_line("advertised on the LAN");
    let peer_state = tempfile::tempdir().expect("dir");
    let run = lab.run(
        &phone,
        arg(&peer_bin()),
        &["box.local", "--code", CODE, "--state-dir", arg(peer_state.path()), "--name", "phone"],
    );
    let stdout = stdout_of_success(&run);
    assert!(stdout.contains("Paired with agent \"box\""), "{stdout}");
    assert!(stdout.contains("next time `lanreach-peer box.local:47800` needs no code"), "{stdout}");
}
