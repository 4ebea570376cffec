//! Terminal policy shared by both binaries: colour only on a terminal and never with
//! `NO_COLOR`, and logging. The colours themselves are `report::Paint`.

use std::io::IsTerminal;

/// Whether output to a stream that `is_terminal` may carry colour: a terminal,
/// `NO_COLOR` unset or empty, and not `TERM=dumb`.
fn colour_allowed(is_terminal: bool) -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
    is_terminal && !no_color && !dumb
}

/// Whether stdout may carry colour.
pub fn stdout_colour() -> bool {
    colour_allowed(std::io::stdout().is_terminal())
}

/// Whether stderr may carry colour and animation (spinners).
pub fn stderr_fancy() -> bool {
    colour_allowed(std::io::stderr().is_terminal())
}

/// Sets up tracing logs on stderr: warnings by default, `-v` info, `-vv` debug,
/// `--quiet` errors only; `LANREACH_LOG` (an env-filter directive) overrides.
pub fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LANREACH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(stderr_fancy())
        .try_init();
}
