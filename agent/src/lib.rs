//! lanreach-agent: the host side. It holds this machine's identity, serves peers on the
//! authenticated QUIC control channel and keeps the list of trusted peers.

pub mod cli;
pub mod control;
pub mod docker;
pub mod listeners;
pub mod local;
pub mod render;
pub mod session;
pub mod sockets;
pub mod trust;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use lanreach_proto::endpoint::interfaces;

pub use cli::{Cli, Config};
pub use control::{Agent, AgentError, Event};

/// Exit code when a port named with `--check` is not reachable.
pub const EXIT_UNREACHABLE: u8 = 1;

/// Exit code for usage, start-up and connection errors.
pub const EXIT_ERROR: u8 = 2;

/// Parses the command line, runs, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = cli.into_config().map_err(anyhow::Error::from).and_then(run);
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_UNREACHABLE),
        Err(e) => {
            render::status(&format!("lanreach-agent: {e:#}\n"));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LANREACH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Runs a checked configuration. `Ok(false)`: a port named with `--check` is not
/// reachable (exit code 1).
pub fn run(config: Config) -> anyhow::Result<bool> {
    match &config.command {
        cli::Command::ListPeers => {
            let peers = trust::TrustedPeers::load(&config.state_dir)?;
            print!("{}", render::peers(&peers.peers));
            Ok(true)
        }
        cli::Command::RemovePeer(which) => {
            let mut peers = trust::TrustedPeers::load(&config.state_dir)?;
            let gone = peers.remove(which);
            anyhow::ensure!(!gone.is_empty(), "no trusted peer matches {which:?}; see lanreach-agent peers");
            peers.save(&config.state_dir)?;
            for p in gone {
                println!("Removed peer \"{}\" (ID {}); it must pair again with a code.", p.name, p.id);
            }
            Ok(true)
        }
        cli::Command::Serve => runtime()?.block_on(serve(config)),
        cli::Command::Local => {
            let report = runtime()?.block_on(local::run(&config))?;
            print!("{}", render::report(&report, config.json));
            Ok(report.checked_ports_reachable())
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("cannot start the async runtime")
}

async fn serve(config: Config) -> anyhow::Result<bool> {
    let (events, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let agent = Agent::bind(&config, events)?;
    let bound = agent.local_addrs();
    let ifaces = interfaces::list().unwrap_or_default();
    let reachable = control::reachable_addresses(&bound, &ifaces);
    let reachable = if reachable.is_empty() { loopback_fallback(&bound) } else { reachable };
    render::status(&render::banner(agent.name(), agent.id(), &bound, &agent.code(), &reachable));
    let (once, json) = (config.once, config.json);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let all_reachable = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let verdicts = all_reachable.clone();
    let printer = tokio::spawn(async move {
        let mut done = Some(done_tx);
        while let Some(event) = rx.recv().await {
            if let Event::PeerReport { report, .. } = &event {
                if !report.checked_ports_reachable() {
                    verdicts.store(false, std::sync::atomic::Ordering::SeqCst);
                }
                print!("{}", render::report(report, json));
                let _ = std::io::Write::flush(&mut std::io::stdout());
            }
            render::status(&render::event(&event, &reachable));
            if once && matches!(event, Event::PeerFinished { .. }) {
                if let Some(tx) = done.take() {
                    let _ = tx.send(());
                }
            }
        }
    });
    agent
        .serve(async {
            tokio::select! {
                _ = shutdown_signal() => {}
                _ = done_rx => {}
            }
        })
        .await;
    printer.abort();
    render::status("Agent stopped.\n");
    // With --once the exit code answers for that report; a long-running agent ends on
    // Ctrl-C and exits 0.
    Ok(!config.once || all_reachable.load(std::sync::atomic::Ordering::SeqCst))
}

/// With no LAN address, the loopback address is the only one a local peer can use.
fn loopback_fallback(bound: &[std::net::SocketAddr]) -> Vec<std::net::SocketAddr> {
    bound
        .iter()
        .map(|b| match b.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => (std::net::Ipv4Addr::LOCALHOST, b.port()).into(),
            ip if ip.is_unspecified() => (std::net::Ipv6Addr::LOCALHOST, b.port()).into(),
            _ => *b,
        })
        .take(1)
        .collect()
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
