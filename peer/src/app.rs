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
                term::out_fitted(&render::known_agents(&known));
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
        to_stderr(text);
    }
}

/// Writes text for a person to stderr, made safe and fitted to its width; a closed
/// stderr is ignored.
fn to_stderr(text: &str) {
    let fitted = lanreach_proto::text::fit(&lanreach_proto::text::terminal_safe(text), term::stderr_width());
    let _ = std::io::stderr().write_all(fitted.as_bytes());
}

async fn list(config: &Config) -> ExitCode {
    status(config, "Looking for lanreach agents on this network (mDNS)…\n");
    match discovery::browse(BROWSE_TIMEOUT).await {
        Ok(found) if found.is_empty() => fail(&render::nothing_found()),
        Ok(found) => {
            term::out_fitted(&render::found(&found));
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("lanreach-peer: {}\n{}", error_chain(&e), render::nothing_found())),
    }
}

/// Finds the agent (address, link, pins or mDNS), runs the session and prints the
/// report.
async fn connect(config: &Config, find: &cli::Find, code: Option<&lanreach_proto::PairingCode>) -> ExitCode {
    let agents: Vec<(connect::Dial, Option<String>)> = match find {
        cli::Find::At(t) => vec![(connect::Dial::at(t.clone()), None)],
        cli::Find::Link(link) => vec![(connect::Dial::of_link(link), None)],
        cli::Find::Pinned => match pinned_agent(config) {
            Ok(dial) => vec![(dial, None)],
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
                .map(|f| {
                    let targets = f
                        .addresses
                        .iter()
                        .filter(|ip| !ip.is_loopback())
                        .map(|ip| target::Target { host: ip.to_string(), port: f.port, port_given: true })
                        .collect();
                    let dial = connect::Dial {
                        targets,
                        expect_id: Some(f.id.replace('-', "")),
                        prefixes: Vec::new(),
                        page_served: false,
                    };
                    (dial, Some(f.name.clone()))
                })
                .filter(|(dial, _)| !dial.targets.is_empty())
                .collect()
        }
    };
    let mut last = None;
    for (dial, name) in &agents {
        if let Some(name) = name.as_deref().filter(|_| agents.len() > 1) {
            status(config, &format!("Trying the agent \"{}\"…\n", lanreach_proto::text::printable(name, 64)));
        }
        match session(config, dial, code).await {
            Ok(outcome) => return print_outcome(config, &outcome),
            // With several agents, keep the one where pairing succeeds.
            Err(e @ PeerError::Handshake { source: HandshakeError::WrongCode, .. })
            | Err(e @ PeerError::NoPath { .. })
            | Err(e @ PeerError::WrongAgent { .. })
                if agents.len() > 1 =>
            {
                last = Some(e);
            }
            Err(PeerError::Stopped) => {
                let _ = fail(&render::error(&PeerError::Stopped));
                return ExitCode::from(EXIT_STOPPED);
            }
            Err(PeerError::Watched(report)) => {
                return if report.all_clear() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_UNREACHABLE) };
            }
            Err(e) => return fail_json(config, &e),
        }
    }
    match last {
        Some(e) => fail_json(config, &e),
        None => fail(&render::nothing_found()),
    }
}

/// The one agent this device has paired with, at every address it was pinned at (most
/// recent first, raced); with none or several, the reason (exit 2).
fn pinned_agent(config: &Config) -> Result<connect::Dial, ExitCode> {
    let known = known::KnownAgents::load(&config.state_dir).map_err(|e| fail_with(&e))?;
    let agents = known.by_agent();
    match agents.as_slice() {
        [] => Err(fail_with(&cli::UsageError::NoTarget)),
        [one] => {
            let targets = one.iter().map(|k| k.address.parse()).collect::<Result<Vec<target::Target>, _>>();
            let expect_id = one.first().map(|k| k.id.short().replace('-', ""));
            let targets = targets.map_err(|e| fail_with(&e))?;
            Ok(connect::Dial { targets, expect_id, prefixes: Vec::new(), page_served: false })
        }
        _ => Err(fail(&format!(
            "lanreach-peer: this device has paired with {} agents; name one:\n{}",
            agents.len(),
            render::known_agents(&known)
        ))),
    }
}

async fn session(
    config: &Config,
    dial: &connect::Dial,
    code: Option<&lanreach_proto::PairingCode>,
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
        let text = render::session_event(&event, config.all_addresses);
        let write = || if config.json { status(config, &text) } else { term::out_fitted(&text) };
        match &spinner {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    };
    // Watch mode: the first report in full, then only what changed, as each arrives.
    let last: std::sync::Mutex<Option<lanreach_proto::report::Report>> = std::sync::Mutex::new(None);
    let watching = |report: &lanreach_proto::report::Report| {
        let mut last = lanreach_proto::sync::lock(&last);
        let text = match last.as_ref() {
            None if config.json => format!("{}\n", report.to_json_compact()),
            None => format!(
                "\n{}",
                lanreach_proto::render::render_text(report, Paint::new(term::stdout_colour()), term::stdout_width())
            ),
            Some(before) => {
                let changes = lanreach_proto::watch::changes(before, report);
                if config.json && !changes.is_empty() {
                    format!("{}\n", report.to_json_compact())
                } else {
                    changes.iter().map(|c| format!("{c}\n")).collect()
                }
            }
        };
        if !text.is_empty() {
            match &spinner {
                Some(bar) => bar.suspend(|| term::out(&text)),
                None => term::out(&text),
            }
        }
        if last.is_none() && !config.quiet {
            status(config, "Watching: the checks repeat every 2 s and only changes are printed; Ctrl-C stops.\n");
        }
        *last = Some(report.clone());
    };
    let options = connect::Options {
        dial,
        code,
        name: &config.name,
        state_dir: &config.state_dir,
        connect_timeout: config.connect_timeout,
        probe_timeout: config.probe_timeout,
        progress: Some(progress.clone()),
        events: Some(&print_now),
        watch: if config.watch { Some(&watching) } else { None },
    };
    let result = connect::run(&options).await;
    if let Some((bar, ticker)) = bar {
        ticker.abort();
        bar.finish_and_clear();
    }
    // Ctrl-C is how watch mode ends: the answer is the last report's.
    match (result, lanreach_proto::sync::lock(&last).take()) {
        (Err(PeerError::Stopped), Some(report)) if config.watch => Err(PeerError::Watched(Box::new(report))),
        (result, _) => result,
    }
}

fn print_outcome(config: &Config, outcome: &Completed) -> ExitCode {
    // The header was printed as the session went (see `session`).
    let started = std::time::Instant::now();
    let text = if config.json {
        format!("{}\n", outcome.report.to_json())
    } else {
        let paint = Paint::new(term::stdout_colour());
        if !config.quiet {
            term::out("\n");
        }
        lanreach_proto::render::render_text(&outcome.report, paint, term::stdout_width())
    };
    let what = if config.json { "JSON" } else { "text" };
    tracing::debug!("timing: peer output / report as {what}: {:.1} ms", started.elapsed().as_secs_f64() * 1000.0);
    term::out(&text);
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
    term::out_fitted(&render::forgotten(target, &gone));
    if gone.is_empty() { ExitCode::from(EXIT_ERROR) } else { ExitCode::SUCCESS }
}

/// Prints `error` with its causes and exits 2.
fn fail_with(error: &dyn std::error::Error) -> ExitCode {
    fail(&format!("lanreach-peer: {}\n", error_chain(error)))
}

/// Fails with `e`; with `--json`, a missing path's cause also goes to stdout as a
/// `lanreach.nopath/1` document, for scripts.
fn fail_json(config: &Config, e: &PeerError) -> ExitCode {
    if config.json
        && let PeerError::NoPath { cause } = e
    {
        let doc = serde_json::json!({ "schema": lanreach_proto::nopath::SCHEMA, "cause": cause });
        term::out(&format!("{doc}\n"));
    }
    fail(&render::error(e))
}

fn fail(text: &str) -> ExitCode {
    to_stderr(text);
    ExitCode::from(EXIT_ERROR)
}
