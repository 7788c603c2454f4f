//! The run report as a PDF a manager can read on paper: A4 landscape pages with the totals,
//! each priority against its SLA, the timeline drawn as a chart (one lane per slice, one bar
//! per unit over time, coloured by priority, failed units in red), vendors with their reject
//! reasons, slices, failures and what is missing. Rendering only: the figures are
//! [`super::RunReport`]'s; the fonts and drawing are the PDF output's (`codecs::pdf::canvas`).
//!
//! Pages are laid out first as lists of drawing steps, then drawn, so that every page can say
//! "page N of M".

use krilla::Document;
use krilla::metadata::Metadata;
use krilla::page::PageSettings;

use super::RunReport;
use crate::codecs::pdf::canvas::{self, Fonts, fill_box, line, text_color};
use crate::codecs::pdf::{Paper, fit};
use crate::printer::thousands;

const MARGIN: f32 = 36.0;
const SIZE: f32 = 8.5;
const LINE_H: f32 = SIZE * 1.3;
const PAD_X: f32 = 3.0;
const PAD_Y: f32 = 2.0;
const HEAD_FILL: (u8, u8, u8) = (222, 228, 238);
const FAILED: (u8, u8, u8) = (200, 40, 40);

/// One drawing step.
enum Step {
    Text {
        x: f32,
        y: f32,
        size: f32,
        bold: bool,
        color: Option<(u8, u8, u8)>,
        text: String,
    },
    Line {
        from: (f32, f32),
        to: (f32, f32),
        width: f32,
        gray: u8,
    },
    Box {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        color: (u8, u8, u8),
    },
}

/// Pages being laid out, top to bottom.
struct Flow<'f> {
    fonts: &'f Fonts,
    pages: Vec<Vec<Step>>,
    y: f32,
    w: f32,
    h: f32,
}

impl<'f> Flow<'f> {
    fn new(fonts: &'f Fonts) -> Flow<'f> {
        let paper = Paper::A4;
        Flow {
            fonts,
            pages: vec![Vec::new()],
            y: MARGIN,
            w: paper.height,
            h: paper.width,
        }
    }

    fn bottom(&self) -> f32 {
        self.h - MARGIN - LINE_H * 1.5
    }

    fn width(&self) -> f32 {
        self.w - 2.0 * MARGIN
    }

    fn push(&mut self, step: Step) {
        if let Some(p) = self.pages.last_mut() {
            p.push(step);
        }
    }

    /// Starts a new page unless `height` more fits on this one.
    fn room(&mut self, height: f32) {
        if self.y + height > self.bottom() && self.y > MARGIN {
            self.pages.push(Vec::new());
            self.y = MARGIN;
        }
    }

    fn text(&mut self, x: f32, y: f32, size: f32, bold: bool, text: &str) {
        self.colored(x, y, size, bold, None, text);
    }

    fn colored(
        &mut self,
        x: f32,
        y: f32,
        size: f32,
        bold: bool,
        color: Option<(u8, u8, u8)>,
        text: &str,
    ) {
        let face = if bold {
            &self.fonts.bold
        } else {
            &self.fonts.regular
        };
        let text = face.clean(text, &mut 0).into_owned();
        self.push(Step::Text {
            x,
            y,
            size,
            bold,
            color,
            text,
        });
    }

    fn heading(&mut self, title: &str) {
        self.room(LINE_H * 6.0);
        self.y += LINE_H * 1.2;
        let size = SIZE + 4.0;
        self.text(MARGIN, self.y + size, size, true, title);
        self.y += size * 1.6;
    }

    fn para(&mut self, text: &str) {
        let face = &self.fonts.regular;
        let lines = face.wrap(&face.clean(text, &mut 0), SIZE, self.width(), 1000);
        for l in lines {
            self.room(LINE_H);
            self.text(MARGIN, self.y + SIZE, SIZE, false, &l);
            self.y += LINE_H;
        }
    }

    /// A table: the heading row repeated on each page it runs onto; `right`: numeric columns.
    fn table(&mut self, heads: &[&str], rows: &[Vec<String>], right: &[bool]) {
        let (reg, bold) = (&self.fonts.regular, &self.fonts.bold);
        let mut natural: Vec<f32> = heads
            .iter()
            .map(|h| bold.width(&bold.clean(h, &mut 0), SIZE) + 2.0 * PAD_X)
            .collect();
        for r in rows {
            for (n, v) in natural.iter_mut().zip(r) {
                *n = n.max((reg.width(&reg.clean(v, &mut 0), SIZE) + 2.0 * PAD_X).min(320.0));
            }
        }
        let want: f32 = natural.iter().sum();
        let widths = if want < self.width() {
            natural
        } else {
            fit(&natural, self.width())
        };
        let total_w: f32 = widths.iter().sum();
        let wrap = |face: &canvas::Face, row: &[String]| -> Vec<Vec<String>> {
            row.iter()
                .zip(&widths)
                .map(|(v, w)| face.wrap(&face.clean(v, &mut 0), SIZE, w - 2.0 * PAD_X, 12))
                .collect()
        };
        let height = |cells: &[Vec<String>]| {
            cells.iter().map(Vec::len).max().unwrap_or(1).max(1) as f32 * LINE_H + 2.0 * PAD_Y
        };
        let head: Vec<String> = heads.iter().map(|h| h.to_string()).collect();
        let head = wrap(bold, &head);
        let head_h = height(&head);
        let no_right = vec![false; heads.len()];
        let draw_head = |flow: &mut Flow<'_>| {
            let y = flow.y;
            flow.push(Step::Box {
                x: MARGIN,
                y,
                w: total_w,
                h: head_h,
                color: HEAD_FILL,
            });
            flow.cells(&head, &widths, &no_right, true);
            flow.y += head_h;
            flow.rule(total_w, 0.8, 0);
        };
        self.room(head_h + LINE_H * 2.0);
        draw_head(self);
        for r in rows {
            let cells = wrap(reg, r);
            let h = height(&cells);
            if self.y + h > self.bottom() {
                self.room(f32::MAX);
                draw_head(self);
            }
            self.cells(&cells, &widths, right, false);
            self.y += h;
            self.rule(total_w, 0.3, 170);
        }
        self.y += LINE_H * 0.5;
    }

    fn cells(&mut self, cells: &[Vec<String>], widths: &[f32], right: &[bool], bold: bool) {
        let mut x = MARGIN;
        for ((lines, w), r) in cells
            .iter()
            .zip(widths)
            .zip(right.iter().chain(std::iter::repeat(&false)))
        {
            for (i, l) in lines.iter().enumerate() {
                let face = if bold {
                    &self.fonts.bold
                } else {
                    &self.fonts.regular
                };
                let lx = if *r {
                    x + w - PAD_X - face.width(l, SIZE)
                } else {
                    x + PAD_X
                };
                let y = self.y + PAD_Y + SIZE + i as f32 * LINE_H;
                self.text(lx, y, SIZE, bold, l);
            }
            x += w;
        }
    }

    fn rule(&mut self, w: f32, width: f32, gray: u8) {
        let y = self.y;
        self.push(Step::Line {
            from: (MARGIN, y),
            to: (MARGIN + w, y),
            width,
            gray,
        });
    }

    /// Draws the pages, each with `title` and "page N of M" at its foot.
    fn finish(self, title: &str) -> Result<Vec<u8>, String> {
        let mut doc = Document::new();
        doc.set_metadata(
            Metadata::new()
                .title(title.to_string())
                .creator("batchwin".into())
                .document_id(format!("batchwin report: {title}")),
        );
        let total = self.pages.len();
        for (n, steps) in self.pages.iter().enumerate() {
            let settings =
                PageSettings::from_wh(self.w, self.h).ok_or_else(|| "bad page size".to_string())?;
            let mut page = doc.start_page_with(settings);
            let mut s = page.surface();
            for step in steps {
                match step {
                    Step::Text {
                        x,
                        y,
                        size,
                        bold,
                        color,
                        text,
                    } => {
                        let face = if *bold {
                            &self.fonts.bold
                        } else {
                            &self.fonts.regular
                        };
                        text_color(&mut s, *color);
                        face.draw(&mut s, *x, *y, *size, text);
                        text_color(&mut s, None);
                    }
                    Step::Line {
                        from,
                        to,
                        width,
                        gray,
                    } => line(&mut s, *from, *to, *width, *gray),
                    Step::Box { x, y, w, h, color } => fill_box(&mut s, *x, *y, *w, *h, *color),
                }
            }
            let y = self.h - MARGIN;
            line(
                &mut s,
                (MARGIN, y - SIZE * 1.3),
                (self.w - MARGIN, y - SIZE * 1.3),
                0.5,
                120,
            );
            let reg = &self.fonts.regular;
            text_color(&mut s, Some((70, 70, 70)));
            reg.draw(&mut s, MARGIN, y, SIZE, &reg.clean(title, &mut 0));
            let number = format!("page {} of {total}", n + 1);
            let nw = reg.width(&number, SIZE);
            reg.draw(&mut s, self.w - MARGIN - nw, y, SIZE, &number);
            text_color(&mut s, None);
            s.finish();
            page.finish();
        }
        doc.finish().map_err(|e| format!("{e:?}"))
    }
}

/// A priority's colour on the timeline.
fn priority_color(priority: &str) -> (u8, u8, u8) {
    match priority {
        "high" => (46, 95, 170),
        "medium" => (70, 150, 120),
        _ => (150, 150, 150),
    }
}

fn secs(s: f64) -> String {
    if s < 0.0 {
        // How much earlier than the SLA.
        return format!("-{}", secs(-s));
    }
    if s >= 3600.0 {
        format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    } else if s >= 60.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{s:.1}s")
    }
}

/// The timeline: one lane per slice, one bar per unit from its start to its end.
fn chart(f: &mut Flow<'_>, s: &RunReport) {
    let mut lanes: Vec<&str> = s.timeline.iter().map(|t| t.slice.as_str()).collect();
    lanes.sort_unstable();
    lanes.dedup();
    if lanes.is_empty() {
        f.para("No unit ran.");
        return;
    }
    let span = s
        .timeline
        .iter()
        .map(|t| t.end_seconds)
        .fold(0.0f64, f64::max)
        .max(1.0);
    let lane_h = 16.0f32;
    let label_w = lanes
        .iter()
        .map(|l| f.fonts.regular.width(l, SIZE))
        .fold(0.0f32, f32::max)
        + 10.0;
    let x0 = MARGIN + label_w;
    let plot_w = f.width() - label_w - 10.0;
    let height = lanes.len() as f32 * lane_h + LINE_H * 4.0;
    f.room(height.min(f.bottom() - MARGIN));
    let x_of = |t: f64| x0 + (t / span) as f32 * plot_w;
    for (i, lane) in lanes.iter().enumerate() {
        if f.y + lane_h > f.bottom() - LINE_H * 3.0 {
            f.room(f32::MAX);
        }
        let top = f.y;
        f.text(MARGIN, top + lane_h / 2.0 + SIZE / 3.0, SIZE, false, lane);
        if i % 2 == 0 {
            f.push(Step::Box {
                x: x0,
                y: top,
                w: plot_w,
                h: lane_h,
                color: (245, 246, 248),
            });
        }
        for t in s.timeline.iter().filter(|t| t.slice == *lane) {
            let (a, b) = (x_of(t.start_seconds), x_of(t.end_seconds));
            f.push(Step::Box {
                x: a,
                y: top + 3.0,
                w: (b - a).max(0.8),
                h: lane_h - 6.0,
                color: if t.failed {
                    FAILED
                } else {
                    priority_color(&t.priority)
                },
            });
        }
        f.y += lane_h;
    }
    // The time axis: five ticks.
    let y = f.y;
    f.push(Step::Line {
        from: (x0, y),
        to: (x0 + plot_w, y),
        width: 0.8,
        gray: 0,
    });
    for k in 0..=4 {
        let t = span * f64::from(k) / 4.0;
        let x = x_of(t);
        f.push(Step::Line {
            from: (x, y),
            to: (x, y + 3.0),
            width: 0.8,
            gray: 0,
        });
        let label = secs(t);
        let w = f.fonts.regular.width(&label, SIZE);
        f.text(x - w / 2.0, y + 3.0 + SIZE + 1.0, SIZE, false, &label);
    }
    f.y += LINE_H * 2.0;
    // The legend.
    let mut x = x0;
    for (name, color) in [
        ("high", priority_color("high")),
        ("medium", priority_color("medium")),
        ("low", priority_color("low")),
        ("failed", FAILED),
    ] {
        f.push(Step::Box {
            x,
            y: f.y,
            w: 10.0,
            h: 7.0,
            color,
        });
        let yy = f.y + 7.0;
        f.text(x + 13.0, yy, SIZE, false, name);
        x += 13.0 + f.fonts.regular.width(name, SIZE) + 16.0;
    }
    f.y += LINE_H * 1.5;
    f.para("Time runs from the window start (left) to the last unit's end (right).");
}

/// The report as PDF bytes.
pub fn pdf(s: &RunReport) -> Result<Vec<u8>, String> {
    let fonts = canvas::fonts()?;
    let mut f = Flow::new(fonts);
    let t = &s.totals;
    let big = SIZE + 10.0;
    f.text(MARGIN, f.y + big, big, true, "batchwin run report");
    f.y += big * 1.6;
    if let Some(w) = &s.window_start {
        f.para(&format!("Window start: {w}"));
    }
    f.heading("Totals");
    let kv = vec![
        vec!["Files".into(), thousands(t.files as u64)],
        vec![
            "Units".into(),
            format!("{} ({})", thousands(t.units as u64), t.states()),
        ],
        vec![
            "Records".into(),
            format!(
                "{} in, {} out, {} rejected",
                thousands(t.records_in as u64),
                thousands(t.records_out as u64),
                thousands(t.records_rejected as u64)
            ),
        ],
        vec!["Bytes".into(), thousands(t.bytes as u64)],
        vec!["Wall time".into(), secs(t.wall_seconds)],
        vec![
            "Records per second".into(),
            thousands(t.records_per_second as u64),
        ],
    ];
    f.table(&["figure", "value"], &kv, &[false, false]);

    f.heading("SLA per priority");
    let opt = |v: Option<f64>| v.map(secs).unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = s
        .priorities
        .iter()
        .map(|p| {
            vec![
                p.priority.clone(),
                p.units_done.to_string(),
                p.units_failed.to_string(),
                p.units_deferred.to_string(),
                p.units_blocked.to_string(),
                p.units_missing.to_string(),
                opt(p.finished_after_seconds),
                opt(p.sla_seconds),
                opt(p.late_by_seconds),
                if p.sla_seconds.is_none() {
                    "no SLA".into()
                } else if p.sla_met {
                    "met".into()
                } else {
                    "MISSED".into()
                },
            ]
        })
        .collect();
    f.table(
        &[
            "priority",
            "done",
            "failed",
            "deferred",
            "blocked",
            "missing",
            "finished after",
            "SLA",
            "late by",
            "SLA met",
        ],
        &rows,
        &[false, true, true, true, true, true, true, true, false],
    );

    f.heading("Timeline");
    chart(&mut f, s);

    f.heading("Vendors and reject reasons");
    let rows: Vec<Vec<String>> = s
        .vendors
        .iter()
        .map(|v| {
            vec![
                v.vendor.clone(),
                v.priority.clone(),
                v.units.to_string(),
                v.failed.to_string(),
                thousands(v.records_in as u64),
                thousands(v.records_rejected as u64),
                format!("{:.1}", v.seconds),
                thousands(v.records_per_second as u64),
                v.top_reasons
                    .iter()
                    .map(|(r, n)| format!("{r}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    f.table(
        &[
            "vendor",
            "priority",
            "units",
            "failed",
            "records in",
            "rejected",
            "seconds",
            "records/s",
            "top reject reasons",
        ],
        &rows,
        &[false, false, true, true, true, true, true, true, false],
    );

    f.heading("Slices");
    let rows: Vec<Vec<String>> = s
        .slices
        .iter()
        .map(|x| {
            vec![
                x.slice.clone(),
                x.start.clone(),
                x.end.clone(),
                format!("{:.1}", x.seconds),
                x.units.to_string(),
                thousands(x.records as u64),
                format!("{:.1}", x.idle_seconds),
                if x.straggler {
                    "straggler".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    f.table(
        &[
            "slice", "start", "end", "seconds", "units", "records", "idle s", "",
        ],
        &rows,
        &[false, false, false, true, true, true, true, false],
    );

    f.heading("Not done");
    if s.failures.is_empty() {
        f.para("Every unit succeeded.");
    } else {
        let rows: Vec<Vec<String>> = s
            .failures
            .iter()
            .map(|x| {
                vec![
                    x.status.clone(),
                    x.vendor.clone(),
                    x.input_path.clone(),
                    x.part.map(|p| p.to_string()).unwrap_or_default(),
                    x.error.clone(),
                ]
            })
            .collect();
        f.table(
            &["state", "vendor", "input", "part", "reason"],
            &rows,
            &[false, false, false, true, false],
        );
    }
    if !s.quarantined.is_empty() {
        f.heading("Quarantined");
        let rows: Vec<Vec<String>> = s
            .quarantined
            .iter()
            .map(|q| {
                vec![
                    q.vendor.clone(),
                    q.input_path.clone(),
                    q.attempts.to_string(),
                    q.quarantined_at.clone().unwrap_or_default(),
                    q.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        f.table(
            &["vendor", "input", "attempts", "since", "last error"],
            &rows,
            &[false, false, true, false, false],
        );
    }
    if !s.missing.is_empty() || !s.slices_never_started.is_empty() {
        f.heading("Missing");
        let rows: Vec<Vec<String>> = s
            .missing
            .iter()
            .map(|m| {
                vec![
                    m.slice.to_string(),
                    m.vendor.clone(),
                    m.priority.clone(),
                    m.location.clone(),
                    m.part.map(|p| p.to_string()).unwrap_or_default(),
                ]
            })
            .collect();
        if !rows.is_empty() {
            f.table(
                &["slice", "vendor", "priority", "location", "part"],
                &rows,
                &[true, false, false, false, true],
            );
        }
        if !s.slices_never_started.is_empty() {
            let list: Vec<String> = s
                .slices_never_started
                .iter()
                .map(|n| n.to_string())
                .collect();
            f.para(&format!(
                "Slices with no ledger at all: {}",
                list.join(", ")
            ));
        }
    }
    if !s.unreadable.is_empty() {
        f.heading("Ledgers that could not be read");
        for u in &s.unreadable {
            f.para(&format!(
                "{} (slice {}): {}",
                u.path,
                u.slice,
                u.error.as_deref().unwrap_or("unreadable")
            ));
        }
    }
    f.finish("batchwin run report")
}
