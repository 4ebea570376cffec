//! Text for a terminal: network text made safe, errors with their causes, and text
//! measured and wrapped to the terminal's width.
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

/// The columns `text` takes on a terminal: colour escape sequences take none, wide
/// characters (CJK, most emoji) two.
pub fn width(text: &str) -> usize {
    units(text).iter().map(|(_, w)| w).sum()
}

/// `text` cut into what a terminal draws: each character with its width, and each
/// escape sequence (`ESC [ … final`) whole, with width 0.
fn units(text: &str) -> Vec<(&str, usize)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let len = match rest.strip_prefix("\x1b[") {
            // The final byte of a control sequence is ASCII, so `i + 1` is a boundary.
            Some(params) => params.find(|c: char| ('\x40'..='\x7e').contains(&c)).map_or(rest.len(), |i| 2 + i + 1),
            None => c.len_utf8(),
        };
        let (unit, tail) = rest.split_at(len);
        let w = if c == '\x1b' { 0 } else { unicode_width::UnicodeWidthChar::width(c).unwrap_or(0) };
        out.push((unit, w));
        rest = tail;
    }
    out
}

/// `text` (one paragraph) wrapped to `width` columns at its spaces: the first line
/// begins with `first`, every other line with `rest` (a hanging indent). A word longer
/// than a whole line is split across lines, never cut: every character of `text`
/// appears. Each line ends with a newline and carries no trailing space.
pub fn wrap(text: &str, width: usize, first: &str, rest: &str) -> String {
    let mut lines = vec![first.to_owned()];
    let mut used = self::width(first);
    // Whether the current line holds nothing but its prefix.
    let mut blank = true;
    let mut words = text.split(' ').peekable();
    let mut spaces = 0;
    while let Some(word) = words.next() {
        if word.is_empty() {
            // A run of spaces: kept inside a line, dropped at a break.
            spaces += usize::from(words.peek().is_some());
            continue;
        }
        let gap = if blank { 0 } else { spaces };
        if !blank && used + gap + self::width(word) > width {
            lines.push(rest.to_owned());
            used = self::width(rest);
            blank = true;
        } else if let Some(line) = lines.last_mut() {
            line.push_str(&" ".repeat(gap));
            used += gap;
        }
        spaces = 1;
        for (unit, w) in units(word) {
            // Only a word too long for a whole line reaches the edge here.
            if !blank && w > 0 && used + w > width {
                lines.push(rest.to_owned());
                used = self::width(rest);
            }
            if let Some(line) = lines.last_mut() {
                line.push_str(unit);
            }
            used += w;
            blank &= w == 0;
        }
    }
    let mut out = String::new();
    for line in lines {
        out.push_str(line.trim_end_matches(' '));
        out.push('\n');
    }
    out
}

/// Lines of `text` fitted to `width` columns: a line that is too wide is wrapped at its
/// spaces ([`wrap`]), its continuation lines indented two columns more than the line
/// itself; lines that fit are left as they are.
pub fn fit(text: &str, width: usize) -> String {
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let body = line.strip_suffix('\n').unwrap_or(line);
        if self::width(body) <= width {
            out.push_str(line);
            continue;
        }
        let indent = body.len() - body.trim_start_matches(' ').len();
        let lead = &body[..indent];
        let hang = " ".repeat((indent + 2).min(width / 2));
        let wrapped = wrap(&body[indent..], width, lead, &hang);
        out.push_str(if line.ends_with('\n') { &wrapped } else { wrapped.trim_end_matches('\n') });
    }
    out
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

    /// Every line of `text` fits in `width` columns.
    fn fits(text: &str, width: usize) -> bool {
        text.lines().all(|l| super::width(l) <= width)
    }

    #[test]
    fn width_counts_columns_not_bytes_nor_escapes() {
        assert_eq!(width("abc"), 3);
        assert_eq!(width("→ 198.51.100.1"), 14);
        assert_eq!(width("\x1b[1m\x1b[31mPROBLEM\x1b[0m"), 7);
        assert_eq!(width("日本"), 4);
    }

    #[test]
    fn wrap_breaks_at_spaces_with_a_hanging_indent() {
        let text = "allow the ports you need on this machine, e.g. `sudo ufw allow 3000/tcp`";
        let out = wrap(text, 30, "  fix: ", "    ");
        assert_eq!(out, "  fix: allow the ports you\n    need on this machine, e.g.\n    `sudo ufw allow 3000/tcp`\n");
        assert!(fits(&out, 30));
        let words: Vec<&str> = out.split_whitespace().skip(1).collect();
        assert_eq!(words, text.split_whitespace().collect::<Vec<_>>(), "every word kept, in order");
    }

    #[test]
    fn wrap_splits_a_word_longer_than_a_line_and_cuts_nothing() {
        let out = wrap("see [2001:db8:1234:5678:9abc:def0:1234:5678]:47800 now", 20, "", "  ");
        assert!(fits(&out, 20), "{out}");
        let joined: String = out.split_whitespace().collect();
        assert_eq!(joined, "see[2001:db8:1234:5678:9abc:def0:1234:5678]:47800now");
    }

    #[test]
    fn wrap_keeps_spaces_inside_a_line_and_measures_colour_as_nothing() {
        assert_eq!(wrap("code: 7K3Q   (single use)", 80, "", ""), "code: 7K3Q   (single use)\n");
        let red = "\x1b[31mPROBLEM\x1b[0m";
        let out = wrap("one two three", 17, &format!("[{red}] "), "    ");
        assert_eq!(out, format!("[{red}] one two\n    three\n"));
    }

    #[test]
    fn fit_wraps_only_the_lines_that_do_not_fit() {
        let text = "short\n  - the agent is not running on 198.51.100.1 (start it there)\nend";
        let out = fit(text, 32);
        assert_eq!(out, "short\n  - the agent is not running on\n    198.51.100.1 (start it\n    there)\nend");
        assert!(fits(&out, 32));
    }

    #[test]
    fn printable_strips_escape_sequences() {
        assert_eq!(printable("ok\x1b[31mred", 64), "ok\u{fffd}[31mred");
        assert_eq!(printable("abcdef", 3), "abc…");
    }
}
