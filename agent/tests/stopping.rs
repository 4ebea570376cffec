//! Ctrl-C on either side: the other side says so at once ("the agent was stopped",
//! "the peer was stopped"), in the LAN in a box, with a fake agent or a fake peer from
//! `lanreach-attack` where the real counterpart could not be stopped at a chosen moment.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod support;

use std::time::{Duration, Instant};

use support::lab::{self, Lab};
use support::{arg, attack_bin, peer_bin};

const CODE: &str = "7K3Q-M2XD";

/// The agent is stopped while the peer is in the middle of a long probe run: the peer
/// names it at once instead of finishing the run and reporting a lost connection.
#[test]
fn a_stopped_agent_is_named_at_once_even_during_the_probe_run() {
    if !lab::available_with("a_stopped_agent_is_named_at_once_even_during_the_probe_run", &["nft"]) {
        return;
    }
    let mut lab = Lab::new();
    let phone = lab.node("phone", 2);
    let mallory = lab.node("mallory", 66);
    // A claimed address that drops everything: the peer's knock there would wait for
    // its full deadline twice.
    let silent = lab.node("silent", 99);
    lab.nft(
        &silent,
        "table inet blackhole {\n chain input {\n type filter hook input priority 0; policy drop;\n }\n}\n",
    );
    let mut fake = lab.spawn(
        &mallory,
        arg(&attack_bin()),
        &[
            "fake-agent",
            "--listen",
            "198.51.100.66:47800",
            "--code",
            CODE,
            "--claim",
            &silent.v4,
            "--ports",
            "1",
            "--then",
            "shutdown",
        ],
    );
    fake.wait_line("fake agent ready");
    let state = tempfile::tempdir().expect("dir");
    let started = Instant::now();
    let out = lab.run(
        &phone,
        arg(&peer_bin()),
        &[&mallory.v4, "--code", CODE, "--timeout", "5000", "--state-dir", arg(state.path())],
    );
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("the agent at 198.51.100.66:47800 was stopped"), "{stderr}");
    // The run alone would take two 5 s knock deadlines.
    assert!(took < Duration::from_secs(5), "the peer noticed only after {took:?}");
}

/// Ctrl-C on the peer: it exits 130 saying "stopped", and the agent learns the reason
/// from the close code; the real agent prints "the peer was stopped".
#[test]
fn a_stopped_peer_tells_the_agent() {
    if !lab::available("a_stopped_peer_tells_the_agent") {
        return;
    }
    let mut lab = Lab::new();
    let phone = lab.node("phone", 2);
    let mallory = lab.node("mallory", 66);
    let host = lab.node("host", 1);
    let mut fake = lab.spawn(
        &mallory,
        arg(&attack_bin()),
        &[
            "fake-agent",
            "--listen",
            "198.51.100.66:47800",
            "--code",
            CODE,
            "--claim",
            "198.51.100.66",
            "--then",
            "stall",
        ],
    );
    fake.wait_line("fake agent ready");
    let state = tempfile::tempdir().expect("dir");
    let mut peer =
        lab.spawn(&phone, arg(&peer_bin()), &[&mallory.v4, "--code", CODE, "--state-dir", arg(state.path())]);
    fake.wait_line("stalling");
    let kill = std::process::Command::new("kill").args(["-INT", &peer.pid().to_string()]).status().expect("kill");
    assert!(kill.success());
    let code = lab.wait_exit(&peer, Duration::from_secs(10));
    assert_eq!(code, Some(130));
    peer.wait_line("lanreach-peer: stopped");
    let _ = lab.wait_exit(&fake, Duration::from_secs(10));
    assert!(fake.stdout().contains("closed code=2"), "the agent saw: {}", fake.stdout());

    // The real agent, and a peer stopped after receiving its plan.
    let agent_state = tempfile::tempdir().expect("dir");
    let mut agent = lab.spawn(
        &host,
        env!("CARGO_BIN_EXE_lanreach-agent"),
        &["--state-dir", arg(agent_state.path()), "--code", CODE, "--no-mdns"],
    );
    agent.wait_line("pairing code:");
    let out = lab.run(&phone, arg(&attack_bin()), &["fake-peer", "198.51.100.1:47800", "--code", CODE]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    agent.wait_line("the peer was stopped");
}
