//! Command line: clap definitions, checked once into a [`Config`].

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use lanreach_proto::PairingCode;
use lanreach_proto::defaults::DEFAULT_CONTROL_PORT;
use lanreach_proto::endpoint::{default_state_dir, host_name};

use lanreach_proto::facts::CheckedPort;

use crate::listeners::PortRange;

/// lanreach agent: run it on the machine whose services should be reachable, then run
/// `lanreach-peer` on another device of the same network.
#[derive(Debug, Parser)]
#[command(name = "lanreach-agent", version, about, long_about = None)]
pub struct Cli {
    /// UDP address of the control channel [default: 0.0.0.0:47800 and [::]:47800]
    // This text is the flag's --help line: `[::]` is an address there, not a doc link.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(long, value_name = "ADDR:PORT")]
    pub control: Option<SocketAddr>,

    /// Use this pairing code first instead of a random one (for scripts and tests)
    #[arg(long, value_name = "CODE")]
    pub code: Option<String>,

    /// Directory for this agent's identity and trusted peers
    /// [default: ~/.config/lanreach/agent]
    #[arg(long, value_name = "DIR", env = "LANREACH_AGENT_STATE_DIR", global = true)]
    pub state_dir: Option<PathBuf>,

    /// Name shown to peers [default: the host name]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Your own ports to diagnose, e.g. 3000, 3000,8080, 3000-3010 or 53/udp
    #[arg(long, value_name = "PORTS")]
    pub check: Option<String>,

    /// Also audit every listening TCP port of this machine: which can the LAN reach?
    #[arg(long)]
    pub exposed: bool,

    /// Single-machine self-check: probe this machine's own addresses and print the report
    #[arg(long, conflicts_with_all = ["once", "code", "control"])]
    pub local: bool,

    /// Exit after the first peer's report
    #[arg(long)]
    pub once: bool,

    /// Print each report as one JSON document (lanreach.report/1) on stdout
    #[arg(long)]
    pub json: bool,

    /// Port range for the test listeners, e.g. 40000-40100 [default: ports the OS picks]
    #[arg(long, value_name = "A-B")]
    pub ports: Option<String>,

    /// Do not advertise this agent on the LAN over mDNS
    #[arg(long)]
    pub no_mdns: bool,

    /// Do not serve the browser page (TCP, on the control channel's port number) that a
    /// phone opens from the QR code
    #[arg(long)]
    pub no_web: bool,

    /// Print only the pairing code, reports and errors
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,

    /// List every address of a peer (link-local, container and VPN links too)
    #[arg(long)]
    pub all_addresses: bool,

    /// More log output on stderr (-v: info, -vv: debug)
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Per-attempt probe deadline in --local mode, milliseconds [default: 150]
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u64>,

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
    /// Print shell completions (bash, zsh, fish, elvish, powershell)
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff; view it with `man -l -`)
    Man,
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
    /// Probe this machine's own addresses.
    Local,
    /// List trusted peers.
    ListPeers,
    /// Remove trusted peers matching this text.
    RemovePeer(String),
    /// Print shell completions.
    Completions(clap_complete::Shell),
    /// Print the man page.
    Man,
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
    /// Exit after the first report.
    pub once: bool,
    /// Reports as JSON on stdout.
    pub json: bool,
    /// Where test-listener ports come from.
    pub ports: PortRange,
    /// Per-attempt probe deadline override.
    pub timeout: Option<Duration>,
    /// Ports to diagnose.
    pub check: Vec<CheckedPort>,
    /// Audit every listening TCP port.
    pub exposed: bool,
    /// Do not advertise over mDNS.
    pub no_mdns: bool,
    /// Do not serve the browser page.
    pub no_web: bool,
    /// Only the essentials on stderr.
    pub quiet: bool,
    /// List every address of a peer, not only those that matter.
    pub all_addresses: bool,
}

/// A flag that cannot be used as given.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// `--code` is not a valid code.
    #[error("--code {given:?} is not a pairing code")]
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
    /// A malformed `--check`.
    #[error(transparent)]
    Check(#[from] lanreach_proto::facts::BadPorts),
    /// A malformed `--ports`.
    #[error("--ports {0:?}: give a range like 40000-40100 (at least 16 ports, none below 1024)")]
    Ports(String),
    /// `--timeout` out of range.
    #[error("--timeout {0}: give milliseconds between 10 and 10000")]
    Timeout(u64),
}

/// Parses `A-B`.
fn port_range(text: &str) -> Result<PortRange, UsageError> {
    let bad = || UsageError::Ports(text.to_owned());
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let (a, b): (u16, u16) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
    if a < 1024 || b < a || b - a < 15 {
        return Err(bad());
    }
    Ok(PortRange::Range(a, b))
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
        let check = match &self.check {
            Some(text) => lanreach_proto::facts::parse_ports(text)?,
            None => Vec::new(),
        };
        let ports = match &self.ports {
            Some(text) => port_range(text)?,
            None => PortRange::Ephemeral,
        };
        let timeout = match self.timeout {
            Some(ms) if !(10..=10_000).contains(&ms) => return Err(UsageError::Timeout(ms)),
            ms => ms.map(Duration::from_millis),
        };
        let command = match self.command {
            None if self.local => Command::Local,
            None => Command::Serve,
            Some(CliCommand::Peers { action: None | Some(PeersAction::List) }) => Command::ListPeers,
            Some(CliCommand::Peers { action: Some(PeersAction::Remove { peer }) }) => Command::RemovePeer(peer),
            Some(CliCommand::Completions { shell }) => Command::Completions(shell),
            Some(CliCommand::Man) => Command::Man,
        };
        Ok(Config {
            command,
            control,
            control_explicit,
            code,
            state_dir,
            name,
            once: self.once,
            json: self.json,
            ports,
            timeout,
            check,
            exposed: self.exposed,
            no_mdns: self.no_mdns,
            no_web: self.no_web,
            quiet: self.quiet,
            all_addresses: self.all_addresses,
        })
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
    fn local_json_ports_and_timeout() {
        let c = config(&["--local", "--json", "--ports", "40000-40100", "--timeout", "500"]).expect("config");
        assert!(matches!(c.command, Command::Local) && c.json);
        assert_eq!(c.ports, PortRange::Range(40000, 40100));
        assert_eq!(c.timeout, Some(Duration::from_millis(500)));
        for bad in ["40000", "40100-40000", "80-200", "40000-40003", "a-b"] {
            let err = config(&["--ports", bad]).expect_err(bad);
            assert!(err.to_string().starts_with("--ports"), "{err}");
        }
        assert!(config(&["--timeout", "1"]).is_err());
    }

    #[test]
    fn peers_subcommands() {
        assert!(matches!(config(&["peers"]).expect("ok").command, Command::ListPeers));
        assert!(
            matches!(config(&["peers", "remove", "AB12"]).expect("ok").command, Command::RemovePeer(p) if p == "AB12")
        );
    }
}
