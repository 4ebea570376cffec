//! The program: parse the command line once, run the chosen command, map the outcome
//! to an exit code. `serve` wires the control channel, the banner, the spinner and the
//! printing of reports together; everything it calls lives in its own module.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use crate::cli::{self, Cli, Config};
use crate::control::{self, Agent, Event};
use crate::qr::QrStyle;
use crate::screen::Screen;
use crate::{local, render, trust};
use lanreach_proto::defaults::SCREEN_TICK;
use lanreach_proto::endpoint::store::StateFile;
use lanreach_proto::endpoint::{discovery, interfaces, term};
use lanreach_proto::render::Paint;
use lanreach_proto::text::error_chain;
use tokio::time::Instant;

/// Exit code when a port named with `--check` is not reachable (with `--local`: when
/// something wrong is visible from this machine).
pub const EXIT_UNREACHABLE: u8 = 1;

/// Exit code for usage, start-up and connection errors.
pub const EXIT_ERROR: u8 = 2;

/// Parses the command line, runs, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    lanreach_proto::endpoint::term::init_logging(cli.verbose, cli.quiet);
    let result = cli.into_config().map_err(anyhow::Error::from).and_then(run);
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_UNREACHABLE),
        Err(e) => {
            render::status(&format!("lanreach-agent: {}\n", render::error_chain(&e)));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Runs a checked configuration. `Ok(false)`: a port named with `--check` is not
/// reachable, or `--local` sees something wrong (exit code 1).
pub fn run(config: Config) -> anyhow::Result<bool> {
    match &config.command {
        cli::Command::ListPeers => {
            let peers = trust::TrustedPeers::load(&config.state_dir)?;
            term::out_fitted(&render::peers(&peers.peers, term::stdout_width()));
            Ok(true)
        }
        cli::Command::RemovePeer(which) => {
            let mut peers = trust::TrustedPeers::load(&config.state_dir)?;
            let gone = peers.remove(which)?;
            peers.save(&config.state_dir)?;
            term::out_fitted(&format!(
                "Removed peer \"{}\" (ID {}); it must pair again with a code.\n",
                gone.name, gone.id
            ));
            Ok(true)
        }
        cli::Command::Completions(shell) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "lanreach-agent", &mut script);
            term::out_bytes(&script);
            Ok(true)
        }
        cli::Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut page)
                .context("cannot render the man page")?;
            let page = String::from_utf8_lossy(&page);
            term::out(&term::finish_man_page(&page, "lanreach-agent", render::MAN_SECTIONS));
            Ok(true)
        }
        cli::Command::Serve => runtime()?.block_on(serve(config)),
        cli::Command::Local => {
            let report = runtime()?.block_on(local::run(&config))?;
            let paint = Paint::new(lanreach_proto::endpoint::term::stdout_colour());
            term::out(&render::report(&report, config.json, paint, term::stdout_width()));
            Ok(report.all_clear())
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("cannot start the async runtime")
}

async fn serve(config: Config) -> anyhow::Result<bool> {
    let mut phases = lanreach_proto::endpoint::term::Phases::start("agent start");
    // Caught from now on: a SIGTERM right after the banner still stops the agent cleanly.
    let mut stop = term::Stop::install();
    let (events, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let agent = Agent::bind(&config, events)?;
    phases.mark("identity, control channel, test listeners, page bound");
    let bound = agent.local_addrs();
    let ifaces = interfaces::list().unwrap_or_default();
    let reachable = control::reachable_addresses(&bound, &ifaces);
    let reachable = if reachable.is_empty() {
        loopback_fallback(&bound).into_iter().map(|a| (a, None)).collect()
    } else {
        reachable
    };
    let fancy = lanreach_proto::endpoint::term::stderr_fancy() && !config.quiet;
    // A QR code only for a person at a terminal: in colour when colour is allowed, else
    // for the usual light text on a dark background.
    let qr = (std::io::IsTerminal::is_terminal(&std::io::stderr()) && !config.quiet).then_some(if fancy {
        QrStyle::Colour
    } else {
        QrStyle::LightOnDark
    });
    let invite = render::Invite {
        addresses: reachable,
        id: agent.id(),
        qr,
        width: term::stderr_columns(),
        all_addresses: config.all_addresses,
        token: agent.browser_token(),
    };
    // Advertise only a control channel other devices can reach.
    let _advertisement = match bound.iter().find(|a| !a.ip().is_loopback()) {
        Some(addr) if !config.no_mdns => match discovery::advertise(agent.name(), &agent.id(), addr.port()) {
            Ok(ad) => Some(ad),
            Err(e) => {
                tracing::warn!("not advertised on the LAN: {}", error_chain(&e));
                None
            }
        },
        _ => None,
    };
    render::status(&render::banner(&render::Banner {
        name: agent.name(),
        bound: &bound,
        code: &agent.code(),
        invite: &invite,
        quiet: config.quiet,
        advertised: _advertisement.is_some(),
        web: &agent.web_addrs(),
        web_failed: agent.web_failures(),
        no_web: config.no_web,
    }));
    phases.mark("interfaces, mDNS, code printed: ready");
    let (once, json, quiet) = (config.once, config.json, config.quiet);
    let paint = Paint::new(lanreach_proto::endpoint::term::stdout_colour());
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let all_reachable = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let verdicts = all_reachable.clone();
    let mut screen = Screen::new(agent.code(), invite.clone(), quiet, Instant::now().into_std());
    let printer = tokio::spawn(async move {
        let spinner = fancy.then(|| render::spinner("waiting for a peer…"));
        let show = |text: &str| match (&spinner, text.is_empty()) {
            (_, true) => {}
            (Some(bar), false) => bar.suspend(|| render::status(text)),
            (None, false) => render::status(text),
        };
        let mut done = Some(done_tx);
        let mut ticks = tokio::time::interval(SCREEN_TICK);
        loop {
            let event = tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => event,
                    None => break,
                },
                _ = ticks.tick() => {
                    show(&screen.tick(Instant::now().into_std()));
                    continue;
                }
            };
            if let Event::PeerReport { report, .. } = &event {
                if !report.all_clear() {
                    verdicts.store(false, std::sync::atomic::Ordering::SeqCst);
                }
                let text = render::report(report, json, paint, term::stdout_width());
                let print = || {
                    term::out(&text);
                };
                match &spinner {
                    Some(bar) => bar.suspend(print),
                    None => print(),
                }
            }
            show(&screen.event(&event, Instant::now().into_std()));
            if once
                && matches!(event, Event::PeerFinished { .. } | Event::BrowserFinished { .. })
                && let Some(tx) = done.take()
            {
                let _ = tx.send(());
            }
        }
        if let Some(bar) = spinner {
            bar.finish_and_clear();
        }
    });
    agent
        .serve(async {
            tokio::select! {
                _ = stop.recv() => {}
                _ = done_rx => {}
            }
        })
        .await;
    // Every event sender is gone with the agent: the printer prints what is left and
    // clears its spinner, so no remnant stays on the last line.
    let printer_abort = printer.abort_handle();
    if tokio::time::timeout(lanreach_proto::defaults::SHUTDOWN_GRACE, printer).await.is_err() {
        printer_abort.abort();
    }
    if !config.quiet {
        render::status("Agent stopped.\n");
    }
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
