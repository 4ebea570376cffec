//! Command line: clap definitions, checked once into a [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use lanreach_proto::PairingCode;
use lanreach_proto::endpoint::{default_state_dir, host_name};
use lanreach_proto::link::{BadLink, PairingLink};

use crate::target::{BadTarget, Target};

/// Default for `--connect-timeout`, seconds.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: f64 = lanreach_proto::defaults::CONNECT_TIMEOUT.as_secs_f64();

/// lanreach peer: run it on another device of the network to test whether the agent's
/// machine is reachable from there.
#[derive(Debug, Parser)]
#[command(name = "lanreach-peer", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// The agent: HOST, HOST:PORT or a lanreach:// link as the agent prints it; leave it
    /// out with --code to find the agent on the LAN, or with nothing to reach the one
    /// agent paired before
    #[arg(value_name = "HOST[:PORT]|LINK")]
    pub target: Option<String>,

    /// The pairing code the agent shows (first connection only)
    #[arg(long, value_name = "CODE")]
    pub code: Option<String>,

    /// Give up when the agent does not answer within this many seconds
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_CONNECT_TIMEOUT_SECS)]
    pub connect_timeout: f64,

    /// Directory for this peer's identity and known agents [default: ~/.config/lanreach/peer]
    #[arg(long, value_name = "DIR", env = "LANREACH_PEER_STATE_DIR", global = true)]
    pub state_dir: Option<PathBuf>,

    /// Name shown to the agent [default: the host name]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Print the report as one JSON document (lanreach.report/1) on stdout; other
    /// messages go to stderr
    #[arg(long)]
    pub json: bool,

    /// Repeat the checks every 2 s over the same connection and print only what changed,
    /// until Ctrl-C (edit the server's bind, restart it, watch the verdict change)
    #[arg(long)]
    pub watch: bool,

    /// Per-attempt probe deadline in milliseconds [default: 4 round trips + 150, at most 3000]
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u64>,

    /// Forget the pinned key of the agent at HOST (to pair again after it changed)
    #[arg(long, value_name = "HOST[:PORT]", conflicts_with_all = ["target", "code", "list"])]
    pub forget: Option<String>,

    /// List the agents that announce themselves on this network (mDNS) and exit
    #[arg(long, conflicts_with_all = ["target", "code"])]
    pub list: bool,

    /// Print only the report and errors
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,

    /// List every address of the agent (link-local, container and VPN links too)
    #[arg(long)]
    pub all_addresses: bool,

    /// More log output on stderr (-v: info, -vv: debug)
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Other things to do.
    #[command(subcommand)]
    pub command: Option<PeerCommand>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum PeerCommand {
    /// Print shell completions (bash, zsh, fish, elvish, powershell)
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff; view it with `man -l -`)
    Man,
    /// List the agents this device has paired with (their pinned keys and addresses)
    Agents,
}

/// How to find the agent.
#[derive(Debug, Clone)]
pub enum Find {
    /// At this address.
    At(Target),
    /// At the addresses of a pairing link (raced), where the agent must present the
    /// link's key ID.
    Link(PairingLink),
    /// Browse the LAN over mDNS.
    Discover,
    /// The one agent this device has paired with (no address and no code given).
    Pinned,
}

/// What to do, checked.
#[derive(Debug, Clone)]
pub enum Command {
    /// Connect, authenticate, probe and report.
    Connect {
        /// Where the agent is.
        find: Find,
        /// Pairing code, for a first connection.
        code: Option<PairingCode>,
    },
    /// Remove pins.
    Forget(Target),
    /// List agents found over mDNS.
    List,
    /// Print shell completions.
    Completions(clap_complete::Shell),
    /// Print the man page.
    Man,
    /// List the pinned agents.
    Agents,
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
    /// Repeat until Ctrl-C, printing changes.
    pub watch: bool,
    /// Per-attempt probe deadline override.
    pub probe_timeout: Option<Duration>,
    /// Only the report and errors.
    pub quiet: bool,
    /// List every address of the agent, not only those that matter.
    pub all_addresses: bool,
}

/// A flag that cannot be used as given.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// The address is malformed.
    #[error(transparent)]
    Target(#[from] BadTarget),
    /// The link is malformed.
    #[error(transparent)]
    Link(#[from] BadLink),
    /// `--code` is not a valid code.
    #[error("--code {given:?} is not a pairing code")]
    Code {
        /// What was typed.
        given: String,
        /// Why it is not a code.
        source: lanreach_proto::code::BadCode,
    },
    /// A browser link (a token, no code).
    #[error("this link is for a browser (it holds a token, not a pairing code); open it in a browser")]
    BrowserLink,
    /// `--code` disagrees with the link's code.
    #[error("--code differs from the code in the link; give one of them")]
    TwoCodes,
    /// `--connect-timeout` out of range.
    #[error("--connect-timeout {0}: give a number of seconds between 0.1 and 600")]
    Timeout(f64),
    /// `--timeout` out of range.
    #[error("--timeout {0}: give milliseconds between 10 and 10000")]
    ProbeTimeout(u64),
    /// No config directory and no `--state-dir`.
    #[error("cannot find a configuration directory for the peer's identity; pass --state-dir DIR")]
    NoStateDir,
    /// An empty `--name`.
    #[error("--name must not be empty")]
    EmptyName,
    /// Neither a target, nor a code to discover with, nor a pinned agent.
    #[error(
        "name the agent (lanreach-peer HOST[:PORT] --code CODE, or the lanreach:// link it prints), or give --code \
         CODE alone to find it on this network"
    )]
    NoTarget,
}

impl Cli {
    /// Checks the flags once; every later step trusts the result.
    pub fn into_config(self) -> Result<Config, UsageError> {
        if !(0.1..=600.0).contains(&self.connect_timeout) {
            return Err(UsageError::Timeout(self.connect_timeout));
        }
        let code: Option<PairingCode> = match self.code {
            Some(given) => Some(given.parse().map_err(|source| UsageError::Code { given, source })?),
            None => None,
        };
        let command = match (self.command, self.forget, self.list, self.target) {
            (Some(PeerCommand::Completions { shell }), ..) => Command::Completions(shell),
            (Some(PeerCommand::Man), ..) => Command::Man,
            (Some(PeerCommand::Agents), ..) => Command::Agents,
            (None, Some(host), ..) => Command::Forget(host.parse()?),
            (None, None, true, _) => Command::List,
            (None, None, false, Some(text)) if is_link(&text) => {
                let link: PairingLink = text.parse()?;
                let Some(link_code) = link.code().cloned() else {
                    return Err(UsageError::BrowserLink);
                };
                if code.as_ref().is_some_and(|c| *c != link_code) {
                    return Err(UsageError::TwoCodes);
                }
                Command::Connect { find: Find::Link(link), code: Some(link_code) }
            }
            (None, None, false, Some(text)) => Command::Connect { find: Find::At(text.parse()?), code },
            (None, None, false, None) if code.is_some() => Command::Connect { find: Find::Discover, code },
            (None, None, false, None) => Command::Connect { find: Find::Pinned, code: None },
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
            Some(ms) if !(10..=10_000).contains(&ms) => return Err(UsageError::ProbeTimeout(ms)),
            ms => ms.map(Duration::from_millis),
        };
        Ok(Config {
            command,
            connect_timeout: Duration::from_secs_f64(self.connect_timeout),
            state_dir,
            name,
            json: self.json,
            watch: self.watch,
            probe_timeout,
            quiet: self.quiet,
            all_addresses: self.all_addresses,
        })
    }
}

/// Whether a target is a link: `lanreach://…`, or the agent's browser link (`http://…`),
/// which carries the pairing code too.
fn is_link(text: &str) -> bool {
    let lower = text.trim().to_ascii_lowercase();
    lower.starts_with(lanreach_proto::link::SCHEME) || lower.starts_with(lanreach_proto::link::BROWSER_SCHEME)
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
            Command::Connect { find: Find::At(target), code } => {
                assert_eq!(target.to_string(), "198.51.100.7:47800");
                assert_eq!(code.map(|c| c.to_string()).as_deref(), Some("7K3Q-M2XD"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn links_carry_address_code_and_id() {
        let c = config(&["lanreach://198.51.100.7:47801?code=7K3Q-M2XD&id=ABCD"]).expect("config");
        match c.command {
            Command::Connect { find: Find::Link(link), code } => {
                let targets: Vec<String> = link.targets().iter().map(ToString::to_string).collect();
                assert_eq!(targets, ["198.51.100.7:47801"]);
                assert_eq!(link.id.as_deref(), Some("ABCD"));
                assert_eq!(code.map(|c| c.to_string()).as_deref(), Some("7K3Q-M2XD"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let several = "lanreach://198.51.100.7:47800?a=198.51.100.7/24,2001:db8::7/64&id=ABCD&code=7K3Q-M2XD";
        match config(&[several]).expect("config").command {
            Command::Connect { find: Find::Link(link), .. } => assert_eq!(link.targets().len(), 2),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(config(&["lanreach://198.51.100.7?t=0123456789ABCDEFGH"]), Err(UsageError::BrowserLink)));
        assert!(matches!(
            config(&["lanreach://198.51.100.7?code=7K3Q-M2XD", "--code", "AAAA-AAAA"]),
            Err(UsageError::TwoCodes)
        ));
    }

    #[test]
    fn a_code_alone_discovers() {
        assert!(matches!(
            config(&["--code", "7K3Q-M2XD"]).expect("ok").command,
            Command::Connect { find: Find::Discover, .. }
        ));
        assert!(matches!(config(&[]).expect("ok").command, Command::Connect { find: Find::Pinned, code: None }));
        assert!(matches!(config(&["--list"]).expect("ok").command, Command::List));
    }

    #[test]
    fn mistakes_name_the_flag() {
        assert!(config(&["h", "--code", "xx"]).expect_err("code").to_string().starts_with("--code"));
        assert!(config(&["h", "--connect-timeout", "0"]).expect_err("t").to_string().starts_with("--connect-timeout"));
        assert!(config(&["[::1"]).is_err());
        assert!(matches!(config(&["--forget", "h"]).expect("forget").command, Command::Forget(_)));
        let cli = Cli::try_parse_from(["lanreach-peer", "completions", "bash"]).expect("parses");
        assert!(matches!(cli.command, Some(PeerCommand::Completions { .. })));
    }
}
