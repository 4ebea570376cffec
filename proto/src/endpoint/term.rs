//! Terminal policy shared by both binaries: colour only on a terminal and never with
//! `NO_COLOR`, the width output is laid out for, and logging. The colours themselves
//! are `render::Paint`; the layouts are in `render` and the binaries' render modules,
//! which take the width as a parameter.

use std::io::IsTerminal;

use crate::defaults::{DEFAULT_WIDTH, MIN_WIDTH};

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

/// The columns output to stdout is laid out for: `COLUMNS` when it holds a number, else
/// the width of the terminal stdout is, else [`DEFAULT_WIDTH`] (a pipe or a file).
pub fn stdout_width() -> usize {
    width(terminal_size::terminal_size_of(std::io::stdout()).map(|(w, _)| usize::from(w.0)))
}

/// [`stdout_width`] for stderr, where status lines, errors and the banner go.
pub fn stderr_width() -> usize {
    width(terminal_size::terminal_size_of(std::io::stderr()).map(|(w, _)| usize::from(w.0)))
}

fn width(terminal: Option<usize>) -> usize {
    let columns = std::env::var("COLUMNS").ok();
    choose_width(columns.as_deref(), terminal)
}

/// `COLUMNS` wins (a user's or a script's choice), then the terminal's own width, then
/// [`DEFAULT_WIDTH`]; never below [`MIN_WIDTH`].
fn choose_width(columns: Option<&str>, terminal: Option<usize>) -> usize {
    let columns = columns.and_then(|c| c.trim().parse::<usize>().ok()).filter(|&c| c > 0);
    columns.or(terminal.filter(|&t| t > 0)).unwrap_or(DEFAULT_WIDTH).max(MIN_WIDTH)
}

/// The width of the terminal on stderr when it is one (or `COLUMNS` says): `None` for a
/// pipe or a file. The QR code is drawn only where it is known to fit.
pub fn stderr_columns() -> Option<usize> {
    let columns = std::env::var("COLUMNS").ok();
    columns
        .as_deref()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0)
        .or_else(|| terminal_size::terminal_size_of(std::io::stderr()).map(|(w, _)| usize::from(w.0)))
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
    let custom = std::env::var_os("LANREACH_LOG").is_some();
    let filter = tracing_subscriber::EnvFilter::try_from_env("LANREACH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(stderr_fancy());
    // At the default verbosity a warning is a sentence for a person, not a log line with
    // a timestamp, a level and a module path; `-v` and `LANREACH_LOG` show those.
    let _ = if verbose == 0 && !custom {
        builder.without_time().with_level(false).with_target(false).try_init()
    } else {
        builder.try_init()
    };
}

/// Exit status when standard output is closed before everything was written
/// (`lanreach-peer … | head -1`): 141, the status a shell reports for a program ended by
/// SIGPIPE, so scripts see the same thing as with any other Unix tool.
pub const EXIT_CLOSED_PIPE: u8 = 141;

/// Exit status when standard output cannot be written for another reason (disk full,
/// I/O error): the binaries' general error status.
pub const EXIT_STDOUT_FAILED: u8 = 2;

/// Writes `bytes` to standard output and flushes. A reader that went away ends the
/// program at once and quietly with [`EXIT_CLOSED_PIPE`]; any other write error is named
/// on stderr and ends it with [`EXIT_STDOUT_FAILED`]. Never panics, unlike `print!`.
pub fn out_bytes(bytes: &[u8]) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let result = stdout.write_all(bytes).and_then(|()| stdout.flush());
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(i32::from(EXIT_CLOSED_PIPE)),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "cannot write to standard output: {e}");
            std::process::exit(i32::from(EXIT_STDOUT_FAILED));
        }
    }
}

/// [`out_bytes`] for text.
pub fn out(text: &str) {
    out_bytes(text.as_bytes());
}

/// [`out`] for text a person reads, its long lines wrapped to [`stdout_width`]
/// ([`crate::text::fit`]). Not for JSON, scripts or man pages, which must stay whole.
pub fn out_fitted(text: &str) {
    out(&crate::text::fit(text, stdout_width()));
}

/// Finishes a man page rendered by clap_mangen: its SUBCOMMANDS section names pages
/// such as `lanreach-agent-peers(1)` that do not exist, so it becomes a COMMANDS list of
/// the subcommands themselves (`name`, `what it does`); `sections` (title, roff body)
/// follow it, before VERSION. The bodies are roff text written by the binaries.
pub fn finish_man_page(page: &str, program: &str, sections: &[(&str, &str)]) -> String {
    let (head, rest) = match page.find(".SH SUBCOMMANDS\n") {
        Some(i) => (&page[..i], &page[i + ".SH SUBCOMMANDS\n".len()..]),
        None => match page.find(".SH VERSION\n") {
            Some(i) => (&page[..i], &page[i..]),
            None => (page, ""),
        },
    };
    let (subcommands, tail) = match rest.find("\n.SH ") {
        Some(i) if !rest.starts_with(".SH ") => (&rest[..i + 1], &rest[i + 1..]),
        _ => ("", rest),
    };
    let mut out = head.to_owned();
    let prefix = format!("{}\\-", program.replace('-', "\\-"));
    let mut commands = String::new();
    for item in subcommands.split(".TP\n").filter(|s| !s.trim().is_empty()) {
        let (name, about) = item.split_once('\n').unwrap_or((item, ""));
        let name = name.trim().trim_start_matches(&prefix).trim_end_matches("(1)");
        if name == "help" {
            continue;
        }
        commands.push_str(&format!(".TP\n\\fB{name}\\fR\n{about}"));
        if !about.ends_with('\n') {
            commands.push('\n');
        }
    }
    if !commands.is_empty() {
        out.push_str(".SH COMMANDS\n");
        out.push_str(&commands);
    }
    for (title, body) in sections {
        out.push_str(&format!(".SH {title}\n{}", body.trim_end()));
        out.push('\n');
    }
    out.push_str(tail);
    out
}

/// Ctrl-C and SIGTERM, caught from the moment [`Stop::install`] returns: a signal that
/// arrives before anything waits for it is not lost and does not kill the program.
#[derive(Debug)]
pub struct Stop {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Stop {
    /// Starts catching Ctrl-C (SIGINT) and SIGTERM. Needs a Tokio runtime.
    pub fn install() -> Stop {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signals = signal(SignalKind::interrupt()).and_then(|i| Ok((i, signal(SignalKind::terminate())?)));
            Stop { signals: signals.ok() }
        }
        #[cfg(not(unix))]
        {
            Stop {}
        }
    }

    /// Completes when one of the signals arrives (or has arrived since `install`).
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some((interrupt, terminate)) = &mut self.signals {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_wins_then_the_terminal_then_the_default() {
        assert_eq!(choose_width(Some("40"), Some(120)), 40);
        assert_eq!(choose_width(None, Some(120)), 120);
        assert_eq!(choose_width(None, None), DEFAULT_WIDTH);
        assert_eq!(choose_width(Some("wide"), Some(80)), 80, "a COLUMNS that is not a number is ignored");
        assert_eq!(choose_width(Some("0"), None), DEFAULT_WIDTH);
        assert_eq!(choose_width(Some("5"), None), MIN_WIDTH);
    }

    #[test]
    fn man_pages_list_commands_without_missing_pages_and_gain_sections() {
        let page = ".TH x\n.SH OPTIONS\nopts\n.SH SUBCOMMANDS\n.TP\nlanreach\\-agent\\-peers(1)\nList peers\n.TP\n\
                    lanreach\\-agent\\-help(1)\nPrint help\n.SH VERSION\nv0.1.0\n";
        let done = finish_man_page(page, "lanreach-agent", &[("EXIT STATUS", ".TP\n0\nok\n")]);
        assert!(!done.contains("(1)"), "{done}");
        assert!(done.contains(".SH COMMANDS\n.TP\n\\fBpeers\\fR\nList peers\n"), "{done}");
        assert!(!done.contains("help"), "{done}");
        let exit = done.find(".SH EXIT STATUS").expect("exit status");
        assert!(exit < done.find(".SH VERSION").expect("version"), "{done}");
    }
}

/// Where the time of a run goes: each [`Phases::mark`] logs (at debug level, `-vv`) how
/// long the phase since the last mark took, and the total so far.
#[derive(Debug)]
pub struct Phases {
    what: &'static str,
    start: std::time::Instant,
    last: std::time::Instant,
}

impl Phases {
    /// Starts timing `what` (e.g. "agent round") now.
    pub fn start(what: &'static str) -> Phases {
        let now = std::time::Instant::now();
        Phases { what, start: now, last: now }
    }

    /// Ends `phase`: logs its duration and the total.
    pub fn mark(&mut self, phase: &str) {
        let now = std::time::Instant::now();
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        tracing::debug!(
            "timing: {} / {phase}: {:.1} ms (total {:.1} ms)",
            self.what,
            ms(now - self.last),
            ms(now - self.start)
        );
        self.last = now;
    }
}
