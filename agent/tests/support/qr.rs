//! Reading the QR codes the agent draws on a terminal back into their text, as a phone
//! would: the half-block glyphs are turned into an image (4 pixels per module) and
//! decoded with rqrr, which knows nothing of how lanreach drew them.

/// How the terminal shows the drawing: dark modules are glyphs in colour (black on a
/// white background), but the background in the plain drawing for light-on-dark
/// terminals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Drawn with explicit colours.
    Colour,
    /// Drawn without colour, on a dark terminal.
    LightOnDark,
}

const COLOUR_ON: &str = "\x1b[30;107m";
const COLOUR_OFF: &str = "\x1b[0m";

/// The text of every QR code in `output` (terminal output, `\r` allowed), in order,
/// with how each was drawn.
pub fn decode_all(output: &str) -> Vec<(Seen, String)> {
    let mut found = Vec::new();
    let mut block: Vec<String> = Vec::new();
    let mut style = None;
    let lines: Vec<&str> = output.split('\n').collect();
    for line in lines.iter().map(|l| l.trim_end_matches('\r')).chain(std::iter::once("")) {
        let (this, cells) = if let Some(rest) = line.strip_prefix(COLOUR_ON) {
            (Some(Seen::Colour), rest.strip_suffix(COLOUR_OFF).unwrap_or(rest).to_owned())
        } else if line.chars().count() >= 21 && line.chars().all(|c| "█▀▄ ".contains(c)) && line.contains('█') {
            (Some(Seen::LightOnDark), line.to_owned())
        } else {
            (None, String::new())
        };
        if this.is_none() || (style.is_some() && this != style) {
            if let Some(seen) = style.take()
                && let Some(text) = decode_block(&block, seen)
            {
                found.push((seen, text));
            }
            block.clear();
        }
        if this.is_some() {
            style = this;
            block.push(cells);
        }
    }
    found
}

/// The text of one drawn QR code.
fn decode_block(lines: &[String], seen: Seen) -> Option<String> {
    const SCALE: usize = 4;
    let cols = lines.iter().map(|l| l.chars().count()).max()?;
    // Each glyph holds two module rows: is the top / the bottom one dark?
    let mut dark = vec![vec![false; cols]; lines.len() * 2];
    for (row, line) in lines.iter().enumerate() {
        for (col, glyph) in line.chars().enumerate() {
            let (top, bottom) = match glyph {
                '█' => (true, true),
                '▀' => (true, false),
                '▄' => (false, true),
                _ => (false, false),
            };
            let (top, bottom) = match seen {
                Seen::Colour => (top, bottom),
                Seen::LightOnDark => (!top, !bottom),
            };
            dark[row * 2][col] = top;
            dark[row * 2 + 1][col] = bottom;
        }
    }
    // A light margin, as the screen around the code would be.
    let margin = 4 * SCALE;
    let (w, h) = (cols * SCALE + 2 * margin, lines.len() * 2 * SCALE + 2 * margin);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        let inside = x >= margin && y >= margin && x < w - margin && y < h - margin;
        if inside && dark[(y - margin) / SCALE][(x - margin) / SCALE] { 0 } else { 255 }
    });
    image.detect_grids().first().and_then(|grid| grid.decode().ok()).map(|(_, text)| text)
}
