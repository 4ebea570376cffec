//! Helpers shared by the agent's integration tests.

#![allow(dead_code)] // each test file uses a different part
#![allow(unreachable_pub)] // helpers of test crates, shared by `mod support;`

pub mod browser;
pub mod lab;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The peer binary, built next to the agent's; built on demand when a partial test run
/// did not build it.
pub fn peer_bin() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_lanreach-agent")).with_file_name("lanreach-peer");
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "lanreach-peer", "--bin", "lanreach-peer"])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building lanreach-peer failed");
    }
    path
}

/// The hostile-client tool (`attack/`), built on demand like the peer.
pub fn attack_bin() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_lanreach-agent")).with_file_name("lanreach-attack");
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "lanreach-attack", "--bin", "lanreach-attack"])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building lanreach-attack failed");
    }
    path
}

/// A loopback UDP port that was free a moment ago.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A path as a command-line argument.
pub fn arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Asserts that a command exited 0 and returns its stdout (both streams in the message
/// when it did not).
pub fn stdout_of_success(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

pub mod qr;
