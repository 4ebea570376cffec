//! Command line: clap definitions, checked once into a [`Config`].

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use lanreach_proto::PairingCode;
use lanreach_proto::endpoint::{default_state_dir, host_name};
use lanreach_proto::msg::DEFAULT_CONTROL_PORT;

/// lanreach agent: run it on the machine whose services should be reachable, then run
/// `lanreach-peer` on another device of the same network.
#[derive(Debug, Parser)]
#[command(name = "lanreach-agent", version, about, long_about = None)]
pub struct Cli {
    /// UDP address of the control channel [default: 0.0.0.0:47800 and [::]:47800]
    #[arg(long, value_name = "ADDR:PORT")]
    pub control: Option<SocketAddr>,

    /// Use this pairing code first instead of a random one (for scripts and tests)
    #[arg(long, value_name = "CODE")]
    pub code: Option<String>,

    /// Directory for this agent's identity and trusted peers
    /// [default: ~/.config/lanreach/agent]
    #[arg(long, value_name = "DIR", env = "LANREACH_AGENT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Name shown to peers [default: the host name]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// What to do instead of serving peers.
    #[command(subcommand)]
    pub command: Option<CliCommand>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// List or remove the peers this agent trusts
    Peers {
        /// List (default) or remove.
        #[command(subcommand)]
        action: Option<PeersAction>,
    },
}

/// `peers` actions.
#[derive(Debug, Subcommand)]
pub enum PeersAction {
    /// List trusted peers (the default)
    List,
    /// Stop trusting a peer: give its ID (or the first characters of it) or its name
    Remove {
        /// ID, ID prefix or name
        peer: String,
    },
}

/// What to do, checked.
#[derive(Debug, Clone)]
pub enum Command {
    /// Serve peers.
    Serve,
    /// List trusted peers.
    ListPeers,
    /// Remove trusted peers matching this text.
    RemovePeer(String),
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// What to do.
    pub command: Command,
    /// Control-channel addresses to bind.
    pub control: Vec<SocketAddr>,
    /// Whether `control` was given explicitly (a failure to bind it is then fatal).
    pub control_explicit: bool,
    /// The first pairing code, if fixed.
    pub code: Option<PairingCode>,
    /// Identity and trust files.
    pub state_dir: PathBuf,
    /// Name shown to peers.
    pub name: String,
}

/// A flag that cannot be used as given.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// `--code` is not a valid code.
    #[error("--code {given:?}: {source}")]
    Code {
        /// What was typed.
        given: String,
        /// Why it is not a code.
        source: lanreach_proto::code::BadCode,
    },
    /// No config directory and no `--state-dir`.
    #[error("cannot find a configuration directory for the agent's identity; pass --state-dir DIR")]
    NoStateDir,
    /// An empty `--name`.
    #[error("--name must not be empty")]
    EmptyName,
}

impl Cli {
    /// Checks the flags once; every later step trusts the result.
    pub fn into_config(self) -> Result<Config, UsageError> {
        let code = match self.code {
            Some(given) => Some(given.parse().map_err(|source| UsageError::Code { given, source })?),
            None => None,
        };
        let state_dir = match self.state_dir {
            Some(dir) => dir,
            None => default_state_dir("agent").ok_or(UsageError::NoStateDir)?,
        };
        let name = match self.name {
            Some(n) if n.trim().is_empty() => return Err(UsageError::EmptyName),
            Some(n) => n,
            None => host_name(),
        };
        let (control, control_explicit) = match self.control {
            Some(addr) => (vec![addr], true),
            None => (
                vec![
                    SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_CONTROL_PORT)),
                    SocketAddr::from((Ipv6Addr::UNSPECIFIED, DEFAULT_CONTROL_PORT)),
                ],
                false,
            ),
        };
        let command = match self.command {
            None => Command::Serve,
            Some(CliCommand::Peers { action: None | Some(PeersAction::List) }) => Command::ListPeers,
            Some(CliCommand::Peers { action: Some(PeersAction::Remove { peer }) }) => Command::RemovePeer(peer),
        };
        Ok(Config { command, control, control_explicit, code, state_dir, name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, UsageError> {
        let mut argv = vec!["lanreach-agent", "--state-dir", "/tmp/x"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect("parses").into_config()
    }

    #[test]
    fn defaults_bind_both_families_on_47800() {
        let c = config(&[]).expect("config");
        assert_eq!(c.control.len(), 2);
        assert!(c.control.iter().all(|a| a.port() == 47800 && a.ip().is_unspecified()));
        assert!(!c.control_explicit);
        assert!(matches!(c.command, Command::Serve));
    }

    #[test]
    fn bad_code_names_the_flag() {
        let err = config(&["--code", "12"]).expect_err("bad code");
        assert!(err.to_string().starts_with("--code \"12\""), "{err}");
    }

    #[test]
    fn peers_subcommands() {
        assert!(matches!(config(&["peers"]).expect("ok").command, Command::ListPeers));
        assert!(
            matches!(config(&["peers", "remove", "AB12"]).expect("ok").command, Command::RemovePeer(p) if p == "AB12")
        );
    }
}
