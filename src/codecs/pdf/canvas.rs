//! What every PDF of batchwin draws with: the embedded DejaVu Sans fonts (regular and bold,
//! from `assets/fonts/`, subset into each document by krilla), text measured and drawn with
//! the same glyphs and advances so that wrapping decided on measures matches the page, and
//! lines and filled boxes.
//!
//! A character the font has no glyph for is drawn as U+FFFD (the replacement character, a box
//! with a question mark in DejaVu Sans) and counted, so that no text is dropped silently.

use std::borrow::Cow;
use std::sync::OnceLock;

use krilla::color::{luma, rgb};
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;
use krilla::text::{Font, GlyphId, KrillaGlyph};

static REGULAR: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans-Bold.ttf");

/// One embedded typeface: krilla's handle to embed it, and its character map and advances.
pub struct Face {
    font: Font,
    parsed: ttf_parser::Face<'static>,
    units_per_em: f32,
    /// What a character without a glyph is drawn as.
    replacement: char,
    /// Glyph id and advance (font units) of every character of the Basic Multilingual Plane,
    /// glyph 0 for none: a table read instead of the character map's search for each of the
    /// tens of millions of look-ups of a large table (measured: 100,000 records of 8 columns
    /// written in 12.2 s with the search, 4.2 s with the table).
    bmp: Vec<(u16, u16)>,
}

/// The regular and bold faces.
pub struct Fonts {
    pub regular: Face,
    pub bold: Face,
}

impl Face {
    fn load(data: &'static [u8]) -> Result<Face, String> {
        let parsed = ttf_parser::Face::parse(data, 0)
            .map_err(|e| format!("the embedded font cannot be read: {e}"))?;
        let font = Font::new(data.into(), 0)
            .ok_or_else(|| "the embedded font cannot be used by the PDF writer".to_string())?;
        let replacement = if parsed.glyph_index('\u{FFFD}').is_some() {
            '\u{FFFD}'
        } else {
            '?'
        };
        let bmp = (0..=0xFFFFu32)
            .map(|u| {
                char::from_u32(u)
                    .and_then(|c| parsed.glyph_index(c))
                    .map_or((0, 0), |g| (g.0, parsed.glyph_hor_advance(g).unwrap_or(0)))
            })
            .collect();
        Ok(Face {
            units_per_em: f32::from(parsed.units_per_em().max(1)),
            font,
            parsed,
            replacement,
            bmp,
        })
    }

    /// The glyph id and advance (font units) of `c`, `None` when the font has no glyph for it.
    fn glyph(&self, c: char) -> Option<(u16, u16)> {
        match self.bmp.get(c as usize) {
            Some(&(0, _)) => None,
            Some(&g) => Some(g),
            None => self
                .parsed
                .glyph_index(c)
                .map(|g| (g.0, self.parsed.glyph_hor_advance(g).unwrap_or(0))),
        }
    }

    /// The text as it will be drawn: line breaks kept (see [`Face::wrap`]), tabs and other
    /// white space as spaces, and every character without a glyph as the replacement
    /// character, counted in `replaced`.
    pub fn clean<'t>(&self, text: &'t str, replaced: &mut u64) -> Cow<'t, str> {
        let fine = |c: char| c != '\n' && !c.is_control() && self.glyph(c).is_some();
        if text.chars().all(fine) {
            return Cow::Borrowed(text);
        }
        Cow::Owned(
            text.chars()
                .map(|c| {
                    if fine(c) || c == '\n' {
                        c
                    } else if c.is_whitespace() {
                        ' '
                    } else {
                        // Other control characters are no text a reader can see either: they
                        // are shown as replaced too, so that none is lost without a trace.
                        *replaced += 1;
                        self.replacement
                    }
                })
                .collect(),
        )
    }

    /// The advance of one character at `size` points (0 for one without a glyph: `clean`
    /// text has none).
    pub fn advance(&self, c: char, size: f32) -> f32 {
        self.glyph(c)
            .map_or(0.0, |(_, a)| f32::from(a) / self.units_per_em * size)
    }

    /// The width of `clean` text at `size` points.
    pub fn width(&self, text: &str, size: f32) -> f32 {
        text.chars().map(|c| self.advance(c, size)).sum()
    }

    /// Draws `clean` text with its baseline starting at (`x`, `y`), in the current fill.
    pub fn draw(&self, surface: &mut Surface<'_>, x: f32, y: f32, size: f32, text: &str) {
        if text.is_empty() {
            return;
        }
        let glyphs: Vec<KrillaGlyph> = text
            .char_indices()
            .map(|(i, c)| {
                let (gid, adv) = self.glyph(c).unwrap_or((0, 0));
                let adv = f32::from(adv) / self.units_per_em;
                KrillaGlyph::new(
                    GlyphId::new(u32::from(gid)),
                    adv,
                    0.0,
                    0.0,
                    0.0,
                    i..i + c.len_utf8(),
                    None,
                )
            })
            .collect();
        surface.draw_glyphs(
            Point::from_xy(x, y),
            &glyphs,
            self.font.clone(),
            text,
            size,
            false,
        );
    }

    /// Splits `clean` text into lines no wider than `width` points: at spaces where it can,
    /// inside a word when the word alone is wider; a line break in the value starts a line.
    /// At most `max_lines` lines: the last one kept then ends with `…` to show that text
    /// was cut. The text past the first line that will not be kept is not laid out: a value of
    /// megabytes in a narrow column costs a page's worth of lines, not millions.
    pub fn wrap(&self, text: &str, size: f32, width: f32, max_lines: usize) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        let enough = max_lines.max(1) + 1;
        'paras: for para in text.split('\n') {
            let mut line = String::new();
            let mut line_w = 0.0f32;
            // Byte offset in `line` just after its last space, and the width before it.
            let mut last_space: Option<(usize, f32)> = None;
            for c in para.chars() {
                let c = if c.is_control() { ' ' } else { c };
                let w = self.advance(c, size);
                if line_w + w > width && !line.is_empty() {
                    match last_space {
                        Some((at, before)) if c != ' ' => {
                            let rest = line.split_off(at);
                            lines.push(line.trim_end().to_string());
                            line_w -= before;
                            line = rest;
                        }
                        _ => {
                            lines.push(std::mem::take(&mut line).trim_end().to_string());
                            line_w = 0.0;
                        }
                    }
                    last_space = None;
                    if lines.len() >= enough {
                        break 'paras;
                    }
                    if c == ' ' {
                        continue;
                    }
                }
                line.push(c);
                line_w += w;
                if c == ' ' {
                    last_space = Some((line.len(), line_w));
                }
            }
            lines.push(line.trim_end().to_string());
            if lines.len() >= enough {
                break;
            }
        }
        if lines.len() > max_lines.max(1) {
            lines.truncate(max_lines.max(1));
            if let Some(last) = lines.last_mut() {
                while !last.is_empty() && self.width(last, size) + self.advance('…', size) > width
                {
                    last.pop();
                }
                last.push('…');
            }
        }
        lines
    }
}

/// The embedded fonts, loaded once per process.
pub fn fonts() -> Result<&'static Fonts, String> {
    static FONTS: OnceLock<Result<Fonts, String>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            Ok(Fonts {
                regular: Face::load(REGULAR)?,
                bold: Face::load(BOLD)?,
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Strokes a straight line `width` points wide, in grey `gray` (0 black, 255 white).
pub fn line(surface: &mut Surface<'_>, from: (f32, f32), to: (f32, f32), width: f32, gray: u8) {
    let mut pb = PathBuilder::new();
    pb.move_to(from.0, from.1);
    pb.line_to(to.0, to.1);
    if let Some(path) = pb.finish() {
        surface.set_fill(None);
        surface.set_stroke(Some(Stroke {
            paint: luma::Color::new(gray).into(),
            width,
            ..Stroke::default()
        }));
        surface.draw_path(&path);
        surface.set_stroke(None);
    }
}

/// Fills a box with its top-left corner at (`x`, `y`) in colour `rgb`.
pub fn fill_box(surface: &mut Surface<'_>, x: f32, y: f32, w: f32, h: f32, color: (u8, u8, u8)) {
    let Some(rect) = Rect::from_xywh(x, y, w.max(0.01), h.max(0.01)) else {
        return;
    };
    let mut pb = PathBuilder::new();
    pb.push_rect(rect);
    if let Some(path) = pb.finish() {
        surface.set_stroke(None);
        surface.set_fill(Some(Fill {
            paint: rgb::Color::new(color.0, color.1, color.2).into(),
            ..Fill::default()
        }));
        surface.draw_path(&path);
        surface.set_fill(None);
    }
}

/// Sets the colour of the text drawn next (black when `None`).
pub fn text_color(surface: &mut Surface<'_>, color: Option<(u8, u8, u8)>) {
    surface.set_fill(color.map(|c| Fill {
        paint: rgb::Color::new(c.0, c.1, c.2).into(),
        ..Fill::default()
    }));
}
