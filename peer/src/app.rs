//! The program: parse the command line once, run the chosen command (connect, list,
//! forget, completions, man), print the outcome and map it to an exit code.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser};

use crate::cli::{self, Cli, Config};
use crate::connect::{self, Completed, PeerError, SessionEvent};
use crate::{known, render, target};
use lanreach_proto::defaults::BROWSE_TIMEOUT;
use lanreach_proto::endpoint::store::StateFile;
use lanreach_proto::endpoint::{discovery, term};
use lanreach_proto::handshake::HandshakeError;
use lanreach_proto::render::Paint;
use lanreach_proto::text::error_chain;

/// Exit code when a port the agent checks is not reachable from here.
pub const EXIT_UNREACHABLE: u8 = 1;

/// Exit code when the user stops the peer (Ctrl-C, SIGTERM): 128 + SIGINT, as shells
/// report it.
pub const EXIT_STOPPED: u8 = 130;

/// Exit code for usage, connection and authentication errors.
pub const EXIT_ERROR: u8 = 2;

/// Parses the command line, runs, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    term::init_logging(cli.verbose, cli.quiet);
    let config = match cli.into_config() {
        Ok(c) => c,
        Err(e) => return fail_with(&e),
    };
    match &config.command {
        cli::Command::Completions(shell) => {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "lanreach-peer", &mut script);
            term::out_bytes(&script);
            ExitCode::SUCCESS
        }
        cli::Command::Man => {
            let mut page = Vec::new();
            match clap_mangen::Man::new(Cli::command()).render(&mut page) {
                Ok(()) => {
                    let page = String::from_utf8_lossy(&page);
                    term::out(&term::finish_man_page(&page, "lanreach-peer", render::MAN_SECTIONS));
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&format!("lanreach-peer: cannot render the man page: {}\n", error_chain(&e))),
            }
        }
        cli::Command::Forget(target) => forget(&config, target),
        cli::Command::Agents => match known::KnownAgents::load(&config.state_dir) {
            Ok(known) => {
                term::out(&render::known_agents(&known));
                ExitCode::SUCCESS
            }
            Err(e) => fail_with(&e),
        },
        cli::Command::List => with_runtime(|rt| rt.block_on(list(&config))),
        cli::Command::Connect { find, code } => with_runtime(|rt| rt.block_on(connect(&config, find, code.as_ref()))),
    }
}

fn with_runtime(f: impl FnOnce(&tokio::runtime::Runtime) -> ExitCode) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(rt) => f(&rt),
        Err(e) => fail(&format!("lanreach-peer: cannot start the async runtime: {}\n", error_chain(&e))),
    }
}

fn status(config: &Config, text: &str) {
    if !config.quiet {
        let _ = std::io::stderr().write_all(lanreach_proto::text::terminal_safe(text).as_bytes());
    }
}

async fn list(config: &Config) -> ExitCode {
    status(config, "Looking for lanreach agents on this network (mDNS)…\n");
    match discovery::browse(BROWSE_TIMEOUT).await {
        Ok(found) if found.is_empty() => fail(&render::nothing_found()),
        Ok(found) => {
            term::out(&render::found(&found));
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("lanreach-peer: {}\n{}", error_chain(&e), render::nothing_found())),
    }
}

/// Finds the agent (address, link or mDNS), runs the session and prints the report.
async fn connect(config: &Config, find: &cli::Find, code: Option<&lanreach_proto::PairingCode>) -> ExitCode {
    let candidates: Vec<(target::Target, Option<String>)> = match find {
        cli::Find::At(t) => vec![(t.clone(), None)],
        cli::Find::Link(t, id) => vec![(t.clone(), id.clone())],
        cli::Find::Pinned => match pinned_agent(config) {
            Ok(target) => vec![(target, None)],
            Err(code) => return code,
        },
        cli::Find::Discover => {
            status(config, "No address given: looking for lanreach agents on this network (mDNS)…\n");
            let found = match discovery::browse(BROWSE_TIMEOUT).await {
                Ok(found) => found,
                Err(e) => return fail(&format!("lanreach-peer: {}\n{}", error_chain(&e), render::nothing_found())),
            };
            if found.is_empty() {
                return fail(&render::nothing_found());
            }
            found
                .iter()
                .flat_map(|f| {
                    let id = f.id.replace('-', "");
                    f.addresses.iter().filter(|ip| !ip.is_loopback()).map(move |ip| {
                        (target::Target { host: ip.to_string(), port: f.port, port_given: true }, Some(id.clone()))
                    })
                })
                .collect()
        }
    };
    let mut last = None;
    for (target, expect_id) in &candidates {
        if candidates.len() > 1 {
            status(config, &format!("Trying the agent at {target}…\n"));
        }
        match session(config, target, code, expect_id.as_deref()).await {
            Ok(outcome) => return print_outcome(config, &outcome),
            // With several candidates, keep the one where pairing succeeds.
            Err(e @ PeerError::Handshake { source: HandshakeError::WrongCode, .. })
            | Err(e @ PeerError::NoAnswer { .. })
            | Err(e @ PeerError::WrongAgent { .. })
                if candidates.len() > 1 =>
            {
                last = Some(e);
            }
            Err(PeerError::Stopped) => {
                let _ = fail(&render::error(&PeerError::Stopped));
                return ExitCode::from(EXIT_STOPPED);
            }
            Err(e) => return fail(&render::error(&e)),
        }
    }
    match last {
        Some(e) => fail(&render::error(&e)),
        None => fail(&render::nothing_found()),
    }
}

/// The one agent this device has paired with, at the address it was last pinned at;
/// with none or several, the reason (exit 2).
fn pinned_agent(config: &Config) -> Result<target::Target, ExitCode> {
    let known = known::KnownAgents::load(&config.state_dir).map_err(|e| fail_with(&e))?;
    let agents = known.by_agent();
    match agents.as_slice() {
        [] => Err(fail_with(&cli::UsageError::NoTarget)),
        [one] => one[0].address.parse().map_err(|e| fail_with(&e)),
        _ => Err(fail(&format!(
            "lanreach-peer: this device has paired with {} agents; name one:\n{}",
            agents.len(),
            render::known_agents(&known)
        ))),
    }
}

async fn session(
    config: &Config,
    target: &target::Target,
    code: Option<&lanreach_proto::PairingCode>,
    expect_id: Option<&str>,
) -> Result<Completed, PeerError> {
    let progress = Arc::new(connect::Progress::default());
    let bar = (term::stderr_fancy() && !config.quiet).then(|| render::progress_bar(progress.clone()));
    // What is known is printed as soon as it is known, above the progress display: on
    // stdout before the report, or on stderr when stdout carries JSON.
    let spinner = bar.as_ref().map(|(bar, _)| bar.clone());
    let print_now = |event: SessionEvent<'_>| {
        if config.quiet {
            return;
        }
        let text = render::session_event(&event);
        let write = || if config.json { status(config, &text) } else { term::out(&text) };
        match &spinner {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    };
    let options = connect::Options {
        target,
        code,
        name: &config.name,
        state_dir: &config.state_dir,
        connect_timeout: config.connect_timeout,
        probe_timeout: config.probe_timeout,
        expect_id,
        progress: Some(progress.clone()),
        events: Some(&print_now),
    };
    let result = connect::run(&options).await;
    if let Some((bar, ticker)) = bar {
        ticker.abort();
        bar.finish_and_clear();
    }
    result
}

fn print_outcome(config: &Config, outcome: &Completed) -> ExitCode {
    // The header was printed as the session went (see `session`).
    if config.json {
        term::out(&format!("{}\n", outcome.report.to_json()));
    } else {
        let paint = Paint::new(term::stdout_colour());
        if !config.quiet {
            term::out("\n");
        }
        term::out(&lanreach_proto::render::render_text(&outcome.report, paint));
    }
    if outcome.report.all_clear() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_UNREACHABLE) }
}

fn forget(config: &Config, target: &target::Target) -> ExitCode {
    let mut known = match known::KnownAgents::load(&config.state_dir) {
        Ok(k) => k,
        Err(e) => return fail_with(&e),
    };
    let gone = known.forget(target);
    if let Err(e) = known.save(&config.state_dir) {
        return fail_with(&e);
    }
    term::out(&render::forgotten(target, &gone));
    if gone.is_empty() { ExitCode::from(EXIT_ERROR) } else { ExitCode::SUCCESS }
}

/// Prints `error` with its causes and exits 2.
fn fail_with(error: &dyn std::error::Error) -> ExitCode {
    fail(&format!("lanreach-peer: {}\n", error_chain(error)))
}

fn fail(text: &str) -> ExitCode {
    let _ = std::io::stderr().write_all(lanreach_proto::text::terminal_safe(text).as_bytes());
    ExitCode::from(EXIT_ERROR)
}
