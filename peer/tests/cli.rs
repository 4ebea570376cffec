//! The `lanreach-peer` binary as a user or a script meets it: messages and exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn peer(args: &[&str], state: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lanreach-peer"))
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()
        .expect("run lanreach-peer")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn agent_not_running_is_named_from_the_icmp_answer_before_the_deadline() {
    let state = tempfile::tempdir().expect("tempdir");
    // A loopback UDP port where nothing listens.
    let port = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let target = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let out = peer(&[&target, "--code", "7K3Q-M2XD", "--json"], state.path());
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // The host answered "port unreachable" at once: no need to wait out the 10 s.
    assert!(took < Duration::from_secs(4), "took {took:?}");
    let text = stderr(&out);
    for needle in
        ["nothing listens on UDP port", "the agent is not running", "fix: start the agent", "ICMP port unreachable"]
    {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    // For scripts: the cause as a code, with its evidence.
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON document on stdout");
    assert_eq!(doc["schema"], "lanreach.nopath/1");
    assert_eq!(doc["cause"]["code"], "agent_not_running");
    assert!(doc["cause"]["evidence"].as_array().is_some_and(|e| !e.is_empty()), "{doc}");
}

#[test]
fn usage_errors_exit_2_and_name_the_flag() {
    let state = tempfile::tempdir().expect("tempdir");
    let cases: [(&[&str], &str); 6] = [
        (&["127.0.0.1", "--code", "7K3Q"], "--code"),
        (&["127.0.0.1", "--connect-timeout", "0"], "--connect-timeout"),
        (&["[::1"], "HOST[:PORT]"),
        (&[], "HOST[:PORT]"),
        // Typos of IPv4 addresses are named, never resolved to some other address.
        (&["198.51.100", "--code", "7K3Q-M2XD"], "\"198.51.100\" is not HOST[:PORT] (not a standard IPv4 address"),
        (&["300.1.1.1", "--code", "7K3Q-M2XD"], "\"300.1.1.1\" is not HOST[:PORT] (not a standard IPv4 address"),
    ];
    for (args, needle) in cases {
        let out = peer(args, state.path());
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn forgetting_an_unknown_agent_says_so() {
    let state = tempfile::tempdir().expect("tempdir");
    let out = peer(&["--forget", "198.51.100.7"], state.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("No pinned agent at 198.51.100.7:47800"));
}
