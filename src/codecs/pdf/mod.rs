//! PDF output: a file's valid records as a paginated table, and the drawing pieces the PDF
//! run report shares ([`canvas`]).
//!
//! A PDF cannot be put together from chunk outputs the way CSV lines are: its page count is
//! printed on every page ("page 3 of 41") and its cross-reference table comes last. So the
//! encoder ([`PdfEncoder`]) writes each record, already mapped and masked like every other
//! format's, as a *row* in a compact spool format (per value: its length as four bytes, or
//! `u32::MAX` for an empty one, then its UTF-8 text), and the engine keeps the rows in input
//! order in a spool file next to the output. At the end of the file [`write_table`] reads the
//! spool three times: to measure the columns, to wrap the cells and cut the pages (wrapping
//! depends only on the text, the font and the widths, so the page count is known before a page
//! is drawn), and to draw. Memory holds one row and the document being written, whose size
//! the page limit bounds, never the records.
//!
//! The same rows and settings give the same bytes: no creation date, a document id derived
//! from the title, fonts subset the same way whatever the number of threads that made the rows.

pub mod canvas;

use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};

use krilla::Document;
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::surface::Surface;

use super::{EncodeError, Encoder, check_arity};
use canvas::{Face, fill_box, line, text_color};

/// The spool length of an absent or empty value.
const EMPTY: u32 = u32::MAX;

/// Writes records as spool rows (see the module header); the table is drawn by
/// [`write_table`].
pub struct PdfEncoder {
    columns: usize,
}

impl PdfEncoder {
    pub fn new(columns: usize) -> Result<PdfEncoder, String> {
        if columns == 0 {
            return Err("a PDF table needs at least one output field".into());
        }
        Ok(PdfEncoder { columns })
    }
}

impl Encoder for PdfEncoder {
    fn header(&self, _out: &mut Vec<u8>) {}

    fn record(&self, values: &[Option<&str>], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        check_arity(values, self.columns)?;
        for (i, v) in values.iter().enumerate() {
            if v.is_some_and(|v| v.len() >= EMPTY as usize) {
                return Err(EncodeError {
                    field: i.to_string(),
                    reason: "a value of 4 GiB or more cannot be written in a PDF cell".into(),
                });
            }
        }
        for v in values {
            match v {
                Some(v) if !v.is_empty() => {
                    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    out.extend_from_slice(v.as_bytes());
                }
                _ => out.extend_from_slice(&EMPTY.to_le_bytes()),
            }
        }
        Ok(())
    }

    fn footer(&self, _out: &mut Vec<u8>) {}
}

/// Reads one spool row into `row` (one string per column, empty for an empty value);
/// `Ok(false)` at the end of the spool.
fn read_row<R: BufRead>(spool: &mut R, row: &mut [String]) -> io::Result<bool> {
    if spool.fill_buf()?.is_empty() {
        return Ok(false);
    }
    for cell in row.iter_mut() {
        cell.clear();
        let mut len = [0u8; 4];
        spool.read_exact(&mut len)?;
        let len = u32::from_le_bytes(len);
        if len == EMPTY {
            continue;
        }
        let mut bytes = std::mem::take(cell).into_bytes();
        bytes.resize(len as usize, 0);
        spool.read_exact(&mut bytes)?;
        // The encoder wrote `&str`s: invalid UTF-8 means the spool was damaged.
        *cell = String::from_utf8(bytes)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "damaged PDF row spool"))?;
    }
    Ok(true)
}

/// The paper: its portrait width and height in points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paper {
    pub width: f32,
    pub height: f32,
}

impl Paper {
    pub const A4: Paper = Paper {
        width: 595.28,
        height: 841.89,
    };
    pub const LETTER: Paper = Paper {
        width: 612.0,
        height: 792.0,
    };
}

/// How pages are turned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orientation {
    /// Landscape when the columns' natural widths do not fit across a portrait page.
    Auto,
    Portrait,
    Landscape,
}

/// How a vendor's table is laid out.
#[derive(Debug, Clone)]
pub struct TableLayout {
    /// Printed at the top of the first page, and at the foot of every page.
    pub title: String,
    /// Column headings, in output field order.
    pub columns: Vec<String>,
    /// Per column: right-aligned (a number).
    pub numeric: Vec<bool>,
    pub paper: Paper,
    pub orientation: Orientation,
    /// Text size in points.
    pub font_size: f32,
    /// A document that would have more pages is refused before it is drawn.
    pub max_pages: u32,
}

/// Why a table could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error(
        "the PDF would have {pages} or more pages, over pdf_max_pages = {max}: raise the limit or choose another output format for files this large"
    )]
    TooManyPages { pages: u64, max: u32 },
    #[error("the PDF writer failed: {0}")]
    Pdf(String),
}

/// What writing a table did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStats {
    pub rows: u64,
    pub pages: u64,
    /// Characters the font has no glyph for, drawn as the replacement character.
    pub replaced: u64,
    pub landscape: bool,
}

const MARGIN: f32 = 36.0;
const PAD_X: f32 = 3.0;
const PAD_Y: f32 = 2.0;
/// A column's natural width is capped, so that one long value wraps rather than takes the page.
const MAX_NATURAL: f32 = 220.0;
/// Header fill: a light grey-blue.
const HEAD_FILL: (u8, u8, u8) = (222, 228, 238);

/// The geometry of one document, decided after the measuring pass.
struct Geometry {
    page_w: f32,
    page_h: f32,
    widths: Vec<f32>,
    size: f32,
    line_h: f32,
    /// The heading row: its lines per column and height.
    head: Vec<Vec<String>>,
    head_h: f32,
    /// Height of the title block on the first page.
    title_h: f32,
    /// The most lines a cell keeps (a row always fits on a page).
    max_lines: usize,
}

impl Geometry {
    fn body_top(&self, page: u64) -> f32 {
        MARGIN + if page == 0 { self.title_h } else { 0.0 }
    }
    fn body_bottom(&self) -> f32 {
        self.page_h - MARGIN - self.line_h * 1.5
    }
}

/// Title block lines: a label and its value (`Input file`, `in.csv`).
pub type TitleLines = Vec<(String, String)>;

/// Writes the table of the rows in `spool` (written by [`PdfEncoder`]) as a PDF to `out`.
/// `details` is printed under the title on the first page.
pub fn write_table<S: Read + Seek>(
    layout: &TableLayout,
    details: &TitleLines,
    spool: &mut S,
    out: &mut dyn Write,
) -> Result<TableStats, TableError> {
    let fonts = canvas::fonts().map_err(TableError::Pdf)?;
    let (reg, bold) = (&fonts.regular, &fonts.bold);
    let size = layout.font_size;
    let cols = layout.columns.len();
    let mut row = vec![String::new(); cols];
    let mut ignore = 0u64;

    // Pass 1: the columns' natural widths.
    let mut natural: Vec<f32> = layout
        .columns
        .iter()
        .map(|c| bold.width(&bold.clean(c, &mut ignore), size) + 2.0 * PAD_X)
        .collect();
    let mut rows = 0u64;
    {
        let mut r = rewind(spool)?;
        while read_row(&mut r, &mut row)? {
            rows += 1;
            for (n, v) in natural.iter_mut().zip(&row) {
                if *n < MAX_NATURAL {
                    let w = reg.width(&reg.clean(v, &mut ignore), size) + 2.0 * PAD_X;
                    *n = n.max(w.min(MAX_NATURAL));
                }
            }
        }
    }
    let want: f32 = natural.iter().sum();
    let portrait_w = layout.paper.width - 2.0 * MARGIN;
    let landscape = match layout.orientation {
        Orientation::Portrait => false,
        Orientation::Landscape => true,
        Orientation::Auto => want > portrait_w,
    };
    let (page_w, page_h) = if landscape {
        (layout.paper.height, layout.paper.width)
    } else {
        (layout.paper.width, layout.paper.height)
    };
    let widths = fit(&natural, page_w - 2.0 * MARGIN);
    let line_h = size * 1.25;
    let head: Vec<Vec<String>> = layout
        .columns
        .iter()
        .zip(&widths)
        .map(|(c, w)| bold.wrap(&bold.clean(c, &mut ignore), size, w - 2.0 * PAD_X, 4))
        .collect();
    let head_h = row_height(&head, line_h);
    let title_h = (size + 8.0) * 1.4 + details.len() as f32 * line_h + line_h;
    let mut geo = Geometry {
        page_w,
        page_h,
        widths,
        size,
        line_h,
        head,
        head_h,
        title_h,
        max_lines: 1,
    };
    // The first page has the least room: a row that fits there fits everywhere.
    let room = geo.body_bottom() - geo.body_top(0) - geo.head_h - 2.0 * PAD_Y;
    geo.max_lines = ((room / line_h).floor() as usize).max(1);

    // Pass 2: cut the pages (rows per page).
    let mut pages: Vec<u32> = Vec::new();
    {
        let mut r = rewind(spool)?;
        let mut y = geo.body_top(0) + geo.head_h;
        let mut on_page = 0u32;
        while read_row(&mut r, &mut row)? {
            let h = row_height(&wrap_row(reg, &geo, &row, &mut ignore), line_h);
            if y + h > geo.body_bottom() && on_page > 0 {
                pages.push(on_page);
                if pages.len() as u64 >= u64::from(layout.max_pages) {
                    return Err(TableError::TooManyPages {
                        pages: pages.len() as u64 + 1,
                        max: layout.max_pages,
                    });
                }
                on_page = 0;
                y = geo.body_top(pages.len() as u64) + geo.head_h;
            }
            y += h;
            on_page += 1;
        }
        pages.push(on_page);
    }
    let total = pages.len() as u64;

    // Pass 3: draw.
    let mut doc = Document::new();
    doc.set_metadata(
        Metadata::new()
            .title(layout.title.clone())
            .creator("batchwin".into())
            .document_id(format!("batchwin table: {}", layout.title)),
    );
    let mut replaced = 0u64;
    let mut r = rewind(spool)?;
    for (p, &count) in pages.iter().enumerate() {
        let p = p as u64;
        let settings = PageSettings::from_wh(page_w, page_h)
            .ok_or_else(|| TableError::Pdf(format!("bad page size {page_w} x {page_h}")))?;
        let mut page = doc.start_page_with(settings);
        let mut s = page.surface();
        if p == 0 {
            draw_title(&mut s, &geo, fonts, &layout.title, details, &mut replaced);
        }
        let mut y = geo.body_top(p);
        // A number column's heading sits over its numbers, on the right.
        draw_cells(&mut s, &geo, bold, &geo.head, y, &layout.numeric, true);
        y += geo.head_h;
        line(&mut s, (MARGIN, y), (page_w - MARGIN, y), 0.8, 0);
        for _ in 0..count {
            if !read_row(&mut r, &mut row)? {
                return Err(TableError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the PDF row spool ended early",
                )));
            }
            let cells = wrap_row(reg, &geo, &row, &mut replaced);
            let h = row_height(&cells, line_h);
            draw_cells(&mut s, &geo, reg, &cells, y, &layout.numeric, false);
            y += h;
            line(&mut s, (MARGIN, y), (page_w - MARGIN, y), 0.3, 170);
        }
        if rows == 0 {
            text_color(&mut s, Some((90, 90, 90)));
            reg.draw(
                &mut s,
                MARGIN + PAD_X,
                y + PAD_Y + size,
                size,
                "(no records)",
            );
            text_color(&mut s, None);
        }
        draw_footer(
            &mut s,
            &geo,
            reg,
            &layout.title,
            p + 1,
            total,
            &mut replaced,
        );
        s.finish();
        page.finish();
    }
    let bytes = doc
        .finish()
        .map_err(|e| TableError::Pdf(format!("{e:?}")))?;
    out.write_all(&bytes)?;
    Ok(TableStats {
        rows,
        pages: total,
        replaced,
        landscape,
    })
}

/// The spool from its start, buffered.
fn rewind<S: Read + Seek>(spool: &mut S) -> io::Result<io::BufReader<&mut S>> {
    spool.seek(SeekFrom::Start(0))?;
    Ok(io::BufReader::with_capacity(256 << 10, spool))
}

/// Column widths filling `avail`: the natural widths grown in proportion when they fit; when
/// they do not, columns narrower than an even share keep their width and the others share
/// what is left evenly (they wrap).
pub fn fit(natural: &[f32], avail: f32) -> Vec<f32> {
    let want: f32 = natural.iter().sum();
    if want <= avail {
        let grow = avail / want.max(1.0);
        return natural.iter().map(|w| w * grow).collect();
    }
    let mut fixed = vec![false; natural.len()];
    loop {
        let open = fixed.iter().filter(|f| !**f).count().max(1);
        let used: f32 = natural
            .iter()
            .zip(&fixed)
            .filter(|(_, f)| **f)
            .map(|(w, _)| w)
            .sum();
        let share = (avail - used) / open as f32;
        let mut changed = false;
        for (i, w) in natural.iter().enumerate() {
            if !fixed[i] && *w <= share {
                fixed[i] = true;
                changed = true;
            }
        }
        if !changed {
            return natural
                .iter()
                .zip(&fixed)
                .map(|(w, f)| if *f { *w } else { share })
                .collect();
        }
    }
}

fn wrap_row(face: &Face, geo: &Geometry, row: &[String], replaced: &mut u64) -> Vec<Vec<String>> {
    row.iter()
        .zip(&geo.widths)
        .map(|(v, w)| {
            face.wrap(
                &face.clean(v, replaced),
                geo.size,
                w - 2.0 * PAD_X,
                geo.max_lines,
            )
        })
        .collect()
}

fn row_height(cells: &[Vec<String>], line_h: f32) -> f32 {
    cells.iter().map(Vec::len).max().unwrap_or(1).max(1) as f32 * line_h + 2.0 * PAD_Y
}

/// Draws one row of wrapped cells whose top is at `y`.
fn draw_cells(
    s: &mut Surface<'_>,
    geo: &Geometry,
    face: &Face,
    cells: &[Vec<String>],
    y: f32,
    right: &[bool],
    heading: bool,
) {
    if heading {
        let w: f32 = geo.widths.iter().sum();
        fill_box(s, MARGIN, y, w, geo.head_h, HEAD_FILL);
        line(s, (MARGIN, y), (MARGIN + w, y), 0.8, 0);
    }
    let mut x = MARGIN;
    for ((lines, w), right) in cells.iter().zip(&geo.widths).zip(right) {
        for (i, l) in lines.iter().enumerate() {
            let base = y + PAD_Y + geo.size + i as f32 * geo.line_h;
            let lx = if *right {
                x + w - PAD_X - face.width(l, geo.size)
            } else {
                x + PAD_X
            };
            face.draw(s, lx, base, geo.size, l);
        }
        x += w;
    }
}

fn draw_title(
    s: &mut Surface<'_>,
    geo: &Geometry,
    fonts: &canvas::Fonts,
    title: &str,
    details: &TitleLines,
    replaced: &mut u64,
) {
    let big = geo.size + 8.0;
    let title = fonts.bold.clean(title, replaced);
    let width = geo.page_w - 2.0 * MARGIN;
    let first = fonts
        .bold
        .wrap(&title, big, width, 1)
        .into_iter()
        .next()
        .unwrap_or_default();
    fonts.bold.draw(s, MARGIN, MARGIN + big, big, &first);
    let mut y = MARGIN + big * 1.4;
    let label_w = details
        .iter()
        .map(|(l, _)| fonts.bold.width(&fonts.bold.clean(l, replaced), geo.size))
        .fold(0.0f32, f32::max)
        + 8.0;
    for (label, value) in details {
        y += geo.line_h;
        fonts
            .bold
            .draw(s, MARGIN, y, geo.size, &fonts.bold.clean(label, replaced));
        let value = fonts.regular.clean(value, replaced);
        let v = fonts
            .regular
            .wrap(&value, geo.size, width - label_w, 1)
            .into_iter()
            .next()
            .unwrap_or_default();
        fonts.regular.draw(s, MARGIN + label_w, y, geo.size, &v);
    }
}

fn draw_footer(
    s: &mut Surface<'_>,
    geo: &Geometry,
    face: &Face,
    title: &str,
    page: u64,
    total: u64,
    replaced: &mut u64,
) {
    let y = geo.page_h - MARGIN;
    let size = geo.size;
    line(
        s,
        (MARGIN, y - size * 1.3),
        (geo.page_w - MARGIN, y - size * 1.3),
        0.5,
        120,
    );
    text_color(s, Some((70, 70, 70)));
    let number = format!("page {page} of {total}");
    let nw = face.width(&number, size);
    // Counted once, on the first page: the title is the same on every page.
    let mut again = 0;
    let title = face.clean(title, if page == 1 { replaced } else { &mut again });
    let t = face
        .wrap(&title, size, geo.page_w - 2.0 * MARGIN - nw - 12.0, 1)
        .into_iter()
        .next()
        .unwrap_or_default();
    face.draw(s, MARGIN, y, size, &t);
    face.draw(s, geo.page_w - MARGIN - nw, y, size, &number);
    text_color(s, None);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool(rows: &[Vec<Option<&str>>]) -> io::Cursor<Vec<u8>> {
        let enc = PdfEncoder::new(rows[0].len()).unwrap();
        let mut out = Vec::new();
        for r in rows {
            enc.record(r, &mut out).unwrap();
        }
        io::Cursor::new(out)
    }

    fn layout(cols: &[&str]) -> TableLayout {
        TableLayout {
            title: "T".into(),
            columns: cols.iter().map(|c| c.to_string()).collect(),
            numeric: vec![false; cols.len()],
            paper: Paper::A4,
            orientation: Orientation::Auto,
            font_size: 8.0,
            max_pages: 100,
        }
    }

    #[test]
    fn rows_round_trip_through_the_spool() {
        let mut s = spool(&[
            vec![Some("a"), None, Some("")],
            vec![Some("é\nx"), Some("2"), Some("3")],
        ]);
        let mut row = vec![String::new(); 3];
        let mut r = rewind(&mut s).unwrap();
        assert!(read_row(&mut r, &mut row).unwrap());
        assert_eq!(row, ["a", "", ""]);
        assert!(read_row(&mut r, &mut row).unwrap());
        assert_eq!(row, ["é\nx", "2", "3"]);
        assert!(!read_row(&mut r, &mut row).unwrap());
    }

    #[test]
    fn the_same_rows_give_the_same_bytes_and_pages_are_counted() {
        let rows: Vec<Vec<Option<&str>>> = (0..200).map(|_| vec![Some("x"), Some("y")]).collect();
        let mut a = Vec::new();
        let mut b = Vec::new();
        let sa = write_table(&layout(&["a", "b"]), &vec![], &mut spool(&rows), &mut a).unwrap();
        write_table(&layout(&["a", "b"]), &vec![], &mut spool(&rows), &mut b).unwrap();
        assert_eq!(a, b);
        assert!(sa.pages > 1, "{sa:?}");
        assert!(a.starts_with(b"%PDF-"));
        let mut small = layout(&["a", "b"]);
        small.max_pages = 1;
        let e = write_table(&small, &vec![], &mut spool(&rows), &mut Vec::new()).unwrap_err();
        assert!(matches!(e, TableError::TooManyPages { max: 1, .. }), "{e}");
    }

    #[test]
    fn wrapping_breaks_at_spaces_and_inside_long_words() {
        let f = &canvas::fonts().unwrap().regular;
        let w = f.width("hello", 10.0).max(f.width("world", 10.0)) + 1.0;
        assert_eq!(f.wrap("hello world", 10.0, w, 10), ["hello", "world"]);
        let long = f.wrap("abcdefghijklmnop", 10.0, w, 10);
        assert!(
            long.len() > 1 && long.concat() == "abcdefghijklmnop",
            "{long:?}"
        );
        let cut = f.wrap("a b c d e f", 10.0, f.width("a", 10.0) + 0.5, 2);
        assert_eq!(cut.len(), 2);
        assert!(cut[1].ends_with('…'), "{cut:?}");
        // A value of megabytes in a narrow column: only the lines kept are laid out.
        let huge = "x".repeat(4 << 20);
        let cut = f.wrap(&huge, 10.0, f.width("xx", 10.0) + 0.5, 3);
        assert_eq!(cut.len(), 3);
        assert!(cut[2].ends_with('…'), "{cut:?}");
        // Cut or not, the same lines as when every line is laid out.
        assert_eq!(
            f.wrap("aa bb cc dd\nee", 10.0, w, 2),
            f.wrap("aa bb cc dd\nee ff gg hh ii", 10.0, w, 2)
        );
    }

    #[test]
    fn characters_without_a_glyph_are_replaced_and_counted() {
        let f = &canvas::fonts().unwrap().regular;
        let mut n = 0;
        // DejaVu Sans has no CJK ideographs.
        assert_eq!(f.clean("a\u{6F22}b\tc", &mut n), "a\u{FFFD}b c");
        assert_eq!(n, 1);
    }

    #[test]
    fn columns_that_do_not_fit_share_the_room_left() {
        let w = fit(&[50.0, 300.0, 400.0], 450.0);
        assert_eq!(w[0], 50.0);
        assert!(
            (w[1] - 200.0).abs() < 0.01 && (w[2] - 200.0).abs() < 0.01,
            "{w:?}"
        );
        let grown = fit(&[50.0, 50.0], 200.0);
        assert_eq!(grown, [100.0, 100.0]);
    }
}
