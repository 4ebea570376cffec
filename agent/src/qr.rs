//! The pairing link as a QR code on a terminal: two module rows per character cell
//! (the half blocks `▀ ▄ █`), so the code is as wide as it has modules.
//!
//! A scanner needs dark modules on a light quiet zone. With colour allowed the code is
//! drawn in explicit colours (black on bright white), which scans on light and dark
//! terminals alike; without colour it is drawn for the common default of light text on
//! a dark background: the glyphs are the light modules and the background shows
//! through as the dark ones.

use qrcode::{Color, EcLevel, QrCode};

/// Black foreground on a bright white background, then back to the terminal's own.
const COLOUR_ON: &str = "\x1b[30;107m";
const COLOUR_OFF: &str = "\x1b[0m";

/// The escape sequences a drawing in [`QrStyle::Colour`] contains, which status output
/// keeps while replacing every other control character.
pub(crate) const ESCAPES: [&str; 2] = [COLOUR_ON, COLOUR_OFF];

/// Light modules around the code on every side, as the QR specification asks.
pub(crate) const QUIET_ZONE: usize = 4;

/// How to draw the modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QrStyle {
    /// Black modules on a bright white quiet zone (ANSI colours).
    Colour,
    /// No colour codes: glyphs for the light modules, the terminal's (dark)
    /// background for the dark ones.
    LightOnDark,
}

/// A drawn QR code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Qr {
    /// The lines, without line ends.
    pub lines: Vec<String>,
    /// Columns each line takes on a terminal.
    pub width: usize,
}

/// Columns the QR code of `text` takes (quiet zone included); `None` when `text` is
/// too long for a QR code.
pub(crate) fn width(text: &str) -> Option<usize> {
    encode(text).map(|code| code.width() + 2 * QUIET_ZONE)
}

fn encode(text: &str) -> Option<QrCode> {
    // Level L (7 % recovery): a screen is not a scratched label, and the smaller code
    // fits narrower terminals.
    QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L).ok()
}

/// The QR code of `text` drawn in `style`; `None` when `text` is too long for one.
pub(crate) fn draw(text: &str, style: QrStyle) -> Option<Qr> {
    let code = encode(text)?;
    let modules = code.width();
    let colors = code.to_colors();
    let size = modules + 2 * QUIET_ZONE;
    let dark = |x: usize, y: usize| -> bool {
        let inside = |v: usize| (QUIET_ZONE..QUIET_ZONE + modules).contains(&v);
        inside(x) && inside(y) && colors[(y - QUIET_ZONE) * modules + (x - QUIET_ZONE)] == Color::Dark
    };
    let mut lines = Vec::with_capacity(size.div_ceil(2));
    for row in (0..size).step_by(2) {
        let mut line = String::new();
        if style == QrStyle::Colour {
            line.push_str(COLOUR_ON);
        }
        for x in 0..size {
            let top = dark(x, row);
            // Below the last row lies more quiet zone.
            let bottom = row + 1 < size && dark(x, row + 1);
            let (top, bottom) = match style {
                // The glyph draws what is dark.
                QrStyle::Colour => (top, bottom),
                // The glyph draws what is light; the background is the dark.
                QrStyle::LightOnDark => (!top, row + 1 < size && !bottom),
            };
            line.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        if style == QrStyle::Colour {
            line.push_str(COLOUR_OFF);
        }
        lines.push(line);
    }
    Some(Qr { lines, width: size })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: &str =
        "lanreach://198.51.100.1:47800?a=198.51.100.1/24,2001:db8:1::1/64&id=8A6H5HMKFSCKNQ82&code=7K3Q-M2XD";

    #[test]
    fn every_line_is_as_wide_as_the_code_says() {
        for style in [QrStyle::Colour, QrStyle::LightOnDark] {
            let qr = draw(LINK, style).expect("fits a QR code");
            assert_eq!(Some(qr.width), width(LINK));
            assert_eq!(qr.lines.len(), qr.width.div_ceil(2));
            for line in &qr.lines {
                let visible = line.replace("\x1b[30;107m", "").replace("\x1b[0m", "");
                assert_eq!(visible.chars().count(), qr.width, "{line:?}");
            }
        }
    }

    #[test]
    fn colour_draws_dark_modules_on_light_and_plain_draws_light_glyphs() {
        let colour = draw(LINK, QrStyle::Colour).expect("qr");
        let plain = draw(LINK, QrStyle::LightOnDark).expect("qr");
        // The first line is all quiet zone: light. In colour that is the white
        // background (spaces); without colour, full blocks in the terminal's light text.
        let quiet = " ".repeat(colour.width);
        assert_eq!(colour.lines[0], format!("\x1b[30;107m{quiet}\x1b[0m"));
        assert_eq!(plain.lines[0], "█".repeat(plain.width));
        assert!(plain.lines.iter().all(|l| !l.contains('\x1b')), "no escape codes without colour");
    }

    #[test]
    fn a_four_address_link_fits_eighty_columns() {
        let long = "lanreach://198.51.100.1:47800?a=198.51.100.1/24,2001:db8:1::1/64,203.0.113.129/25,\
                    2001:db8:2::1/64&id=8A6H5HMKFSCKNQ82&code=7K3Q-M2XD";
        let w = width(long).expect("qr");
        assert!(w <= 80, "{w} columns");
        assert!(width(&"x".repeat(4000)).is_none());
    }
}
