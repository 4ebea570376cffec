//! Text for a terminal: network text made safe, and errors with their causes.
//!
//! Names, details and report strings come over the network; an escape sequence in them
//! must never move the cursor, clear the screen or fake a line on the user's terminal.
//!
//! Errors follow one convention in every crate: a message says what failed and never
//! repeats its cause, which is returned by `source()` instead (`"cannot create the
//! state directory {path}"`, not `"…{path}: {source}"`). [`error_chain`] then prints
//! each cause exactly once.

/// `text` made safe to print: control characters replaced, at most `max` characters.
pub fn printable(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// Status text for a terminal: every control character but newline replaced. Error
/// texts can carry bytes from the network (a QUIC close reason, a peer's name); none of
/// them may move the cursor, clear the screen or fake a line.
pub fn terminal_safe(text: &str) -> String {
    text.chars().map(|c| if c.is_control() && c != '\n' { '\u{fffd}' } else { c }).collect()
}

/// [`terminal_safe`], except that the exact escape sequences in `keep` stay: a caller
/// may keep its own fixed colour codes (the agent's QR code sets black on bright white
/// and resets), which cannot move the cursor or hide text, while any other control
/// character, in network text too, is still replaced.
pub fn terminal_safe_keeping(text: &str, keep: &[&str]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if let Some(seq) = keep.iter().find(|k| !k.is_empty() && rest.starts_with(**k)) {
            out.push_str(seq);
            rest = &rest[seq.len()..];
            continue;
        }
        out.push(if c.is_control() && c != '\n' { '\u{fffd}' } else { c });
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// An error and its causes on one line, joined with `": "`, outermost first. Each
/// cause appears once because no message repeats its `source()`. The result may carry
/// network text (a QUIC close reason): print it through [`terminal_safe`].
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_kept_sequences_survive() {
        let keep = ["\x1b[30;107m", "\x1b[0m"];
        let text = "\x1b[30;107m█▀\x1b[0m\n\x1b[2Jname\x1b[30;10";
        assert_eq!(terminal_safe_keeping(text, &keep), "\x1b[30;107m█▀\x1b[0m\n\u{fffd}[2Jname\u{fffd}[30;10");
        assert_eq!(terminal_safe_keeping(text, &[]), terminal_safe(text));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read the file")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("the frame is damaged")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn error_chains_name_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, "bad bytes");
        let text = error_chain(&Outer(Middle(io)));
        assert_eq!(text, "cannot read the file: the frame is damaged: bad bytes");
        for part in ["cannot read the file", "the frame is damaged", "bad bytes"] {
            assert_eq!(text.matches(part).count(), 1, "{part} in {text}");
        }
        assert_eq!(error_chain(&std::io::Error::other("alone")), "alone");
    }

    #[test]
    fn terminal_safe_keeps_lines_and_drops_escapes() {
        assert_eq!(terminal_safe("a\nb\x1b[2J\rc"), "a\nb\u{fffd}[2J\u{fffd}c");
    }

    #[test]
    fn printable_strips_escape_sequences() {
        assert_eq!(printable("ok\x1b[31mred", 64), "ok\u{fffd}[31mred");
        assert_eq!(printable("abcdef", 3), "abc…");
    }
}
