//! lanreach-peer: the outside view. It pairs with an agent over the authenticated QUIC
//! control channel and (in later versions) probes the agent's machine from this device.

pub mod cli;
pub mod connect;
pub mod known;
pub mod render;
pub mod target;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

pub use cli::{Cli, Config};
pub use connect::{Outcome, PeerError};

/// Exit code when a port the agent checks is not reachable from here.
pub const EXIT_UNREACHABLE: u8 = 1;

/// Exit code for usage, connection and authentication errors.
pub const EXIT_ERROR: u8 = 2;

/// Parses the command line, runs, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let config = match cli.into_config() {
        Ok(c) => c,
        Err(e) => return fail(&format!("lanreach-peer: {e}\n")),
    };
    match &config.command {
        cli::Command::Forget(target) => forget(&config, target),
        cli::Command::Connect { target, code } => {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => return fail(&format!("lanreach-peer: cannot start the async runtime: {e}\n")),
            };
            let session = connect::Session {
                target,
                code: code.as_ref(),
                name: &config.name,
                state_dir: &config.state_dir,
                connect_timeout: config.connect_timeout,
                probe_timeout: config.probe_timeout,
            };
            match runtime.block_on(connect::run(&session)) {
                Ok(outcome) => {
                    if config.json {
                        let _ = std::io::stderr().write_all(render::outcome(&outcome).as_bytes());
                        println!("{}", outcome.report.to_json());
                    } else {
                        print!(
                            "{}\n{}",
                            render::outcome(&outcome),
                            lanreach_proto::report::render_text(&outcome.report)
                        );
                    }
                    let _ = std::io::stdout().flush();
                    if outcome.report.checked_ports_reachable() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(EXIT_UNREACHABLE)
                    }
                }
                Err(e) => fail(&render::error(&e)),
            }
        }
    }
}

fn forget(config: &Config, target: &target::Target) -> ExitCode {
    let mut known = match known::KnownAgents::load(&config.state_dir) {
        Ok(k) => k,
        Err(e) => return fail(&format!("lanreach-peer: {e}\n")),
    };
    let gone = known.forget(target);
    if let Err(e) = known.save(&config.state_dir) {
        return fail(&format!("lanreach-peer: {e}\n"));
    }
    print!("{}", render::forgotten(target, &gone));
    if gone.is_empty() { ExitCode::from(EXIT_ERROR) } else { ExitCode::SUCCESS }
}

fn fail(text: &str) -> ExitCode {
    let _ = std::io::stderr().write_all(text.as_bytes());
    ExitCode::from(EXIT_ERROR)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LANREACH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
