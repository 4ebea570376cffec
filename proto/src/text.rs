//! Text from the other side made safe for a terminal.
//!
//! Names, details and report strings come over the network; an escape sequence in them
//! must never move the cursor, clear the screen or fake a line on the user's terminal.

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

#[cfg(test)]
mod tests {
    use super::*;

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
