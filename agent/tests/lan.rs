//! The control channel across a real (virtual) LAN: agent and peer in their own
//! network namespaces on a bridge.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod support;

use std::time::{Duration, Instant};

use support::lab::{self, Lab, Node, Spawned};
use support::{arg, peer_bin, stdout_of_success};
use tempfile::TempDir;

/// A host and a phone on one bridge, each with an empty state directory.
fn host_and_phone() -> (Lab, Node, Node, TempDir, TempDir) {
    let mut lab = Lab::new();
    let host = lab.node("host", 1);
    let phone = lab.node("phone", 2);
    (lab, host, phone, tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"))
}

/// `lanreach-agent --code 7K3Q-M2XD --name box` on `host`.
fn start_agent(lab: &mut Lab, host: &Node, state: &TempDir) -> Spawned {
    lab.spawn(
        host,
        env!("CARGO_BIN_EXE_lanreach-agent"),
        &["--state-dir", arg(state.path()), "--code", "7K3Q-M2XD", "--name", "box"],
    )
}

#[test]
fn pairing_across_the_bridge_over_ipv4_and_ipv6() {
    if !lab::available("pairing_across_the_bridge_over_ipv4_and_ipv6") {
        return;
    }
    let (mut lab, host, phone, agent_state, peer_state) = host_and_phone();
    let mut agent = start_agent(&mut lab, &host, &agent_state);
    // The agent prints the exact command for its LAN address.
    agent.wait_line("lanreach-peer 198.51.100.1 --code 7K3Q-M2XD");
    agent.wait_line("lanreach-peer 2001:db8:1::1 --code 7K3Q-M2XD");

    let peer = arg(&peer_bin()).to_owned();
    let state = arg(peer_state.path()).to_owned();
    let out = lab.run(&phone, &peer, &[&host.v4, "--code", "7K3Q-M2XD", "--state-dir", &state, "--name", "phone"]);
    let stdout = stdout_of_success(&out);
    assert!(stdout.contains("Paired with agent \"box\""), "{stdout}");
    assert!(stdout.contains("eth0 198.51.100.1"), "the agent's Hello lists its LAN address: {stdout}");
    let seen = agent.wait_line("Paired with peer \"phone\"");
    assert!(seen.contains("from 198.51.100.2:"), "the agent sees the peer's own address: {seen}");
    agent.wait_line("round-trip time to \"phone\"");

    // Pinned keys work over IPv6 too: same agent key under another address.
    let out = lab.run(&phone, &peer, &[&host.v6, "--state-dir", &state, "--name", "phone"]);
    let stdout = stdout_of_success(&out);
    assert!(stdout.contains("with pinned keys"), "{stdout}");
    agent.wait_line("connected from [2001:db8:1::2]:");
}

#[test]
fn isolated_devices_fail_within_the_deadline_naming_isolation() {
    if !lab::available("isolated_devices_fail_within_the_deadline_naming_isolation") {
        return;
    }
    let (mut lab, host, phone, agent_state, peer_state) = host_and_phone();
    lab.isolate(&host);
    lab.isolate(&phone);
    let mut agent = start_agent(&mut lab, &host, &agent_state);
    agent.wait_line("pairing code:");
    let started = Instant::now();
    let out = lab.run(
        &phone,
        arg(&peer_bin()),
        &[&host.v4, "--code", "7K3Q-M2XD", "--connect-timeout", "3", "--state-dir", arg(peer_state.path())],
    );
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    // Named from the failed address resolution, before the connect deadline.
    assert!(took < Duration::from_secs(3), "gave up after {took:?}");
    assert!(stderr.contains("isolates clients") && stderr.contains("(cause: isolation)"), "{stderr}");
}

#[test]
fn discovery_finds_and_pairs_without_an_address() {
    if !lab::available("discovery_finds_and_pairs_without_an_address") {
        return;
    }
    let (mut lab, host, phone, agent_state, peer_state) = host_and_phone();
    let mut agent = start_agent(&mut lab, &host, &agent_state);
    agent.wait_line("advertised on the LAN");
    let peer = arg(&peer_bin()).to_owned();
    let out = lab.run(&phone, &peer, &["--list", "--state-dir", arg(peer_state.path())]);
    let listed = stdout_of_success(&out);
    assert!(listed.contains("box") && listed.contains("198.51.100.1") && listed.contains("port 47800"), "{listed}");

    let out =
        lab.run(&phone, &peer, &["--code", "7K3Q-M2XD", "--state-dir", arg(peer_state.path()), "--name", "phone"]);
    let stdout = stdout_of_success(&out);
    assert!(stdout.contains("Paired with agent \"box\""), "{stdout}");
    agent.wait_line("Paired with peer \"phone\"");
}

#[test]
fn discovery_that_finds_nothing_says_so_and_gives_the_manual_command() {
    if !lab::available("discovery_that_finds_nothing_says_so_and_gives_the_manual_command") {
        return;
    }
    let (lab, _host, phone, _agent_state, peer_state) = host_and_phone();
    let started = Instant::now();
    let out = lab.run(&phone, arg(&peer_bin()), &["--code", "7K3Q-M2XD", "--state-dir", arg(peer_state.path())]);
    assert_eq!(out.status.code(), Some(2));
    assert!(started.elapsed() < Duration::from_secs(8));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no lanreach agent answered") && stderr.contains("lanreach-peer HOST --code CODE"),
        "{stderr}"
    );
}
