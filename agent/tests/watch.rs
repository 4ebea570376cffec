//! Watch mode on the LAN in a box: the user fixes the server's bind while
//! `lanreach-peer --watch` runs, and both sides print the change.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod support;

use std::time::Duration;

use support::lab::{self, Lab};
use support::{arg, peer_bin};

const CODE: &str = "7K3Q-M2XD";

/// A server on 127.0.0.1:3000 is restarted on every address while the peer watches: the
/// change shows within two rounds on both sides, and Ctrl-C ends the watch with the last
/// report's exit code (0: reachable now).
#[test]
fn a_rebind_shows_up_while_watching() {
    if !lab::available_with("a_rebind_shows_up_while_watching", &["python3"]) {
        return;
    }
    let mut lab = Lab::new();
    let host = lab.node("host", 1);
    let phone = lab.node("phone", 2);
    let www = tempfile::tempdir().expect("dir");
    let server = lab.spawn(
        &host,
        "python3",
        &["-m", "http.server", "3000", "--bind", "127.0.0.1", "--directory", arg(www.path())],
    );
    lab.wait_tcp_listen(&host, 3000);
    let agent_state = tempfile::tempdir().expect("dir");
    let mut agent = lab.spawn(
        &host,
        env!("CARGO_BIN_EXE_lanreach-agent"),
        &["--state-dir", arg(agent_state.path()), "--code", CODE, "--check", "3000", "--no-mdns"],
    );
    agent.wait_line("pairing code:");
    let peer_state = tempfile::tempdir().expect("dir");
    let mut peer = lab.spawn(
        &phone,
        arg(&peer_bin()),
        &[&host.v4, "--code", CODE, "--watch", "--state-dir", arg(peer_state.path()), "--name", "phone"],
    );
    peer.wait_line("loopback_only");

    // The user fixes the bind and restarts the server.
    std::process::Command::new("kill").arg(server.pid().to_string()).status().expect("kill");
    lab.spawn(&host, "python3", &["-m", "http.server", "3000", "--bind", "::", "--directory", arg(www.path())]);
    lab.wait_tcp_listen(&host, 3000);
    let change = peer.wait_line("3000: loopback_only → reachable");
    assert!(peer.lines().iter().any(|l| l.starts_with("Watching:")), "the peer says it is watching");
    assert!(change.ends_with('✓'), "{change}");
    let seen = agent.wait_line("round");
    assert!(seen.contains("\"phone\"") && seen.contains("3000: loopback_only → reachable"), "{seen}");

    std::process::Command::new("kill").args(["-INT", &peer.pid().to_string()]).status().expect("kill");
    assert_eq!(lab.wait_exit(&peer, Duration::from_secs(10)), Some(0), "the last report says reachable");
    agent.wait_line("session done");
}
