//! Command line: clap definitions, checked once into a [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use lanreach_proto::PairingCode;
use lanreach_proto::endpoint::{default_state_dir, host_name};

use crate::target::{BadTarget, Target};

/// Default for `--connect-timeout`, seconds.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: f64 = 10.0;

/// lanreach peer: run it on another device of the network to test whether the agent's
/// machine is reachable from there.
#[derive(Debug, Parser)]
#[command(name = "lanreach-peer", version, about, long_about = None)]
pub struct Cli {
    /// The agent's address, as the agent prints it: HOST or HOST:PORT
    #[arg(value_name = "HOST[:PORT]", required_unless_present = "forget")]
    pub target: Option<String>,

    /// The pairing code the agent shows (first connection only)
    #[arg(long, value_name = "CODE")]
    pub code: Option<String>,

    /// Give up when the agent does not answer within this many seconds
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_CONNECT_TIMEOUT_SECS)]
    pub connect_timeout: f64,

    /// Directory for this peer's identity and known agents [default: ~/.config/lanreach/peer]
    #[arg(long, value_name = "DIR", env = "LANREACH_PEER_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Name shown to the agent [default: the host name]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Print the report as one JSON document (lanreach.report/1) on stdout; other
    /// messages go to stderr
    #[arg(long)]
    pub json: bool,

    /// Per-attempt probe deadline in milliseconds [default: 4 round trips + 150, at most 3000]
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u64>,

    /// Forget the pinned key of the agent at HOST (to pair again after it changed)
    #[arg(long, value_name = "HOST[:PORT]", conflicts_with_all = ["target", "code"])]
    pub forget: Option<String>,
}

/// What to do, checked.
#[derive(Debug, Clone)]
pub enum Command {
    /// Connect, authenticate, exchange Hellos and measure the round trip.
    Connect {
        /// The agent.
        target: Target,
        /// Pairing code, for a first connection.
        code: Option<PairingCode>,
    },
    /// Remove pins.
    Forget(Target),
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// What to do.
    pub command: Command,
    /// How long to wait for the agent to answer.
    pub connect_timeout: Duration,
    /// Identity and pin files.
    pub state_dir: PathBuf,
    /// Name shown to the agent.
    pub name: String,
    /// Report as JSON on stdout.
    pub json: bool,
    /// Per-attempt probe deadline override.
    pub probe_timeout: Option<Duration>,
}

/// A flag that cannot be used as given.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// The address is malformed.
    #[error(transparent)]
    Target(#[from] BadTarget),
    /// `--code` is not a valid code.
    #[error("--code {given:?}: {source}")]
    Code {
        /// What was typed.
        given: String,
        /// Why it is not a code.
        source: lanreach_proto::code::BadCode,
    },
    /// `--connect-timeout` out of range.
    #[error("--connect-timeout {0}: give a number of seconds between 0.1 and 600")]
    Timeout(f64),
    /// No config directory and no `--state-dir`.
    #[error("cannot find a configuration directory for the peer's identity; pass --state-dir DIR")]
    NoStateDir,
    /// An empty `--name`.
    #[error("--name must not be empty")]
    EmptyName,
    /// `--timeout` out of range.
    #[error("--timeout {0}: give milliseconds between 10 and 60000")]
    ProbeTimeout(u64),
    /// Neither a target nor `--forget`.
    #[error("name the agent: lanreach-peer HOST[:PORT] --code CODE")]
    NoTarget,
}

impl Cli {
    /// Checks the flags once; every later step trusts the result.
    pub fn into_config(self) -> Result<Config, UsageError> {
        if !(0.1..=600.0).contains(&self.connect_timeout) {
            return Err(UsageError::Timeout(self.connect_timeout));
        }
        let code = match self.code {
            Some(given) => Some(given.parse().map_err(|source| UsageError::Code { given, source })?),
            None => None,
        };
        let command = match (self.forget, self.target) {
            (Some(host), _) => Command::Forget(host.parse()?),
            (None, Some(target)) => Command::Connect { target: target.parse()?, code },
            (None, None) => return Err(UsageError::NoTarget),
        };
        let state_dir = match self.state_dir {
            Some(dir) => dir,
            None => default_state_dir("peer").ok_or(UsageError::NoStateDir)?,
        };
        let name = match self.name {
            Some(n) if n.trim().is_empty() => return Err(UsageError::EmptyName),
            Some(n) => n,
            None => host_name(),
        };
        let probe_timeout = match self.timeout {
            Some(ms) if !(10..=60_000).contains(&ms) => return Err(UsageError::ProbeTimeout(ms)),
            ms => ms.map(Duration::from_millis),
        };
        Ok(Config {
            command,
            connect_timeout: Duration::from_secs_f64(self.connect_timeout),
            state_dir,
            name,
            json: self.json,
            probe_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, UsageError> {
        let mut argv = vec!["lanreach-peer", "--state-dir", "/tmp/x"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect("parses").into_config()
    }

    #[test]
    fn target_and_code() {
        let c = config(&["198.51.100.7", "--code", "7k3q-m2xd"]).expect("config");
        assert_eq!(c.connect_timeout, Duration::from_secs(10));
        match c.command {
            Command::Connect { target, code } => {
                assert_eq!(target.to_string(), "198.51.100.7:47800");
                assert_eq!(code.map(|c| c.to_string()).as_deref(), Some("7K3Q-M2XD"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn mistakes_name_the_flag() {
        assert!(config(&["h", "--code", "xx"]).expect_err("code").to_string().starts_with("--code"));
        assert!(config(&["h", "--connect-timeout", "0"]).expect_err("t").to_string().starts_with("--connect-timeout"));
        assert!(config(&["[::1"]).is_err());
        assert!(Cli::try_parse_from(["lanreach-peer", "--state-dir", "/x"]).is_err(), "target required");
        assert!(matches!(config(&["--forget", "h"]).expect("forget").command, Command::Forget(_)));
    }
}
