//! The report in every format: the table printed by default, markdown, CSV (one row per
//! vendor), JSON (the data model), a self-contained HTML page, and the node_exporter textfile
//! of `--prometheus`. Rendering only: the figures are [`super::RunReport`]'s.

use std::fmt::Write as _;

use super::{PriorityRow, RunReport};
use crate::printer::thousands;

/// The report as a plain-text table: totals, priorities against their SLAs, vendors, slices,
/// then what failed, what is missing and which ledgers could not be read.
pub fn table(s: &RunReport) -> String {
    table_or_markdown(s, false)
}

/// The table as markdown: headings, pipe tables and lists.
pub fn markdown(s: &RunReport) -> String {
    table_or_markdown(s, true)
}

/// The data model as pretty-printed JSON, with a final newline.
pub fn json(s: &RunReport) -> String {
    serde_json::to_string_pretty(s).unwrap_or_default() + "\n"
}

/// The report as one self-contained HTML page (no scripts, no network): cards, the SLA table,
/// a timeline of units per slice, throughput over time, vendors and reject reasons. Rendered
/// with minijinja from `templates/report.html`, which escapes every value.
pub fn html(s: &RunReport) -> Result<String, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    env.add_template("report.html", include_str!("templates/report.html"))?;
    env.get_template("report.html")?
        .render(minijinja::context! { s => minijinja::value::Serde(s) })
}

fn table_or_markdown(s: &RunReport, markdown: bool) -> String {
    let t = &s.totals;
    let mut o = String::new();
    let h = |o: &mut String, title: &str| {
        if markdown {
            let _ = writeln!(o, "\n## {title}\n");
        } else {
            let _ = writeln!(o, "\n{title}");
        }
    };
    if markdown {
        o.push_str("# batchwin report\n\n");
    }
    let _ = writeln!(
        o,
        "{}files      {} ({} units: {})",
        if markdown { "    " } else { "" },
        t.files,
        t.units,
        t.states()
    );
    let lines = [
        format!(
            "records    {} in, {} out, {} rejected",
            thousands(t.records_in as u64),
            thousands(t.records_out as u64),
            thousands(t.records_rejected as u64)
        ),
        format!("bytes      {:.1} MB", t.bytes as f64 / 1e6),
        format!(
            "wall time  {:.1} s, {} records/s",
            t.wall_seconds,
            thousands(t.records_per_second as u64)
        ),
    ];
    for l in lines
        .into_iter()
        .chain(s.cost.render().lines().map(String::from))
    {
        let _ = writeln!(o, "{}{l}", if markdown { "    " } else { "" });
    }
    for m in &s.masking {
        let _ = writeln!(
            o,
            "{}masking    {}",
            if markdown { "    " } else { "" },
            masking_line(m)
        );
    }
    let row = |o: &mut String, cells: &[String], widths: &[usize]| {
        if markdown {
            let _ = writeln!(o, "| {} |", cells.join(" | "));
        } else {
            let padded: Vec<String> = cells
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            let _ = writeln!(o, "{}", padded.join("  ").trim_end());
        }
    };
    let sep = |o: &mut String, n: usize| {
        if markdown {
            let _ = writeln!(o, "|{}", " --- |".repeat(n));
        }
    };
    if !s.priorities.is_empty() {
        h(&mut o, "Priorities");
        let w = [8, 6, 7, 8, 16, 10, 0];
        row(
            &mut o,
            &[
                "priority",
                "done",
                "failed",
                "missing",
                "finished after",
                "SLA",
                "SLA met",
            ]
            .map(String::from),
            &w,
        );
        sep(&mut o, 7);
        for p in &s.priorities {
            let secs =
                |v: Option<f64>| v.map(|x| format!("{x:.1} s")).unwrap_or_else(|| "-".into());
            let met = match p.late_by_seconds {
                _ if !p.not_done().is_empty() => format!("no: {}", p.not_done()),
                Some(l) if l > 0.0 => format!("MISSED by {l:.1} s"),
                Some(l) => format!("met, {:.1} s to spare", -l),
                None if p.sla_met => "yes (no SLA)".into(),
                None => "no".into(),
            };
            let cells = [
                p.priority.clone(),
                p.units_done.to_string(),
                p.units_failed.to_string(),
                p.units_missing.to_string(),
                secs(p.finished_after_seconds),
                secs(p.sla_seconds),
                met,
            ];
            row(&mut o, &cells, &w);
        }
    }
    h(&mut o, "Vendors");
    let w = [8, 8, 6, 7, 12, 10, 9, 12, 0];
    row(
        &mut o,
        &[
            "vendor",
            "priority",
            "units",
            "failed",
            "records",
            "rejected",
            "seconds",
            "records/s",
            "top reasons",
        ]
        .map(String::from),
        &w,
    );
    sep(&mut o, 9);
    for v in &s.vendors {
        let reasons: Vec<String> = v
            .top_reasons
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        row(
            &mut o,
            &[
                v.vendor.clone(),
                v.priority.clone(),
                v.units.to_string(),
                v.failed.to_string(),
                thousands(v.records_in as u64),
                thousands(v.records_rejected as u64),
                format!("{:.2}", v.seconds),
                thousands(v.records_per_second as u64),
                reasons.join(", "),
            ],
            &w,
        );
    }
    h(&mut o, "Slices");
    let w = [12, 19, 19, 9, 6, 12, 7, 0];
    row(
        &mut o,
        &[
            "slice",
            "start (UTC)",
            "end (UTC)",
            "seconds",
            "units",
            "records",
            "idle s",
            "straggler",
        ]
        .map(String::from),
        &w,
    );
    sep(&mut o, 8);
    for sl in &s.slices {
        row(
            &mut o,
            &[
                sl.slice.clone(),
                sl.start.clone(),
                sl.end.clone(),
                format!("{:.2}", sl.seconds),
                sl.units.to_string(),
                thousands(sl.records as u64),
                format!("{:.1}", sl.idle_seconds),
                if sl.straggler {
                    "yes".into()
                } else {
                    String::new()
                },
            ],
            &w,
        );
    }
    if !s.failures.is_empty() {
        h(&mut o, "Not done");
        for f in &s.failures {
            let part = f
                .part
                .map(|p| format!(" part {}", p + 1))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "{}{:<9} {} `{}`{part}: {}",
                if markdown { "- " } else { "" },
                f.status,
                f.vendor,
                f.input_path,
                f.error
            );
        }
    }
    if !s.quarantined.is_empty() {
        h(&mut o, "Quarantined");
        for q in &s.quarantined {
            let _ = writeln!(
                o,
                "{}{} `{}`: {} failed attempts, since {}: {}",
                if markdown { "- " } else { "" },
                q.vendor,
                q.input_path,
                q.attempts,
                q.quarantined_at.as_deref().unwrap_or("-"),
                q.error.as_deref().unwrap_or("failed")
            );
        }
    }
    if !s.missing.is_empty() || !s.slices_never_started.is_empty() {
        h(&mut o, "Missing");
        let dash = if markdown { "- " } else { "" };
        for k in &s.slices_never_started {
            let _ = writeln!(o, "{dash}slice {k} never started (no ledger)");
        }
        for m in &s.missing {
            let part = m
                .part
                .map(|p| format!(" part {}", p + 1))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "{dash}{} `{}`{part} (slice {}): no result",
                m.vendor, m.location, m.slice
            );
        }
    }
    if !s.unreadable.is_empty() {
        h(&mut o, "Ledgers that could not be read");
        for u in &s.unreadable {
            let _ = writeln!(
                o,
                "{}{} `{}`: {}",
                if markdown { "- " } else { "" },
                u.slice,
                u.path,
                u.error.as_deref().unwrap_or("")
            );
        }
    }
    o
}

/// A masking choice in words: the profile, and whose token chose it.
fn masking_line(m: &crate::ledger::query::MaskingAudit) -> String {
    let profile = match &m.profile {
        Some(p) => format!("profile {p}"),
        None => "configured masks".to_string(),
    };
    let runs = if m.runs == 1 { "run" } else { "runs" };
    match &m.subject {
        Some(sub) => format!(
            "{profile}, token of {sub} (issuer {}, key {}), {} {runs}",
            m.issuer.as_deref().unwrap_or("-"),
            m.key_id.as_deref().unwrap_or("-"),
            m.runs
        ),
        None => format!("{profile}, no token, {} {runs}", m.runs),
    }
}

/// One row per vendor, for spreadsheets.
pub fn csv(s: &RunReport) -> String {
    let mut o = String::from(
        "vendor,priority,units,failed,records_in,records_rejected,seconds,records_per_second\n",
    );
    for v in &s.vendors {
        let _ = writeln!(
            o,
            "{},{},{},{},{},{},{:.3},{:.0}",
            v.vendor,
            v.priority,
            v.units,
            v.failed,
            v.records_in,
            v.records_rejected,
            v.seconds,
            v.records_per_second
        );
    }
    o
}

/// Totals and per-priority SLA figures in the node_exporter textfile format.
pub fn prometheus(s: &RunReport) -> String {
    let t = &s.totals;
    let mut o = String::new();
    let mut metric = |name: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(
            o,
            "# HELP batchwin_{name} {help}\n# TYPE batchwin_{name} gauge"
        );
        for (labels, v) in samples {
            let _ = writeln!(o, "batchwin_{name}{labels} {v}");
        }
    };
    let one = |v: f64| [(String::new(), v)];
    metric("files", "Files in the run.", &one(t.files as f64));
    metric(
        "units_failed",
        "Units (files or parts) that failed.",
        &one(t.failed as f64),
    );
    metric(
        "units",
        "Units (files or parts) by the state of their latest attempt.",
        &[
            ("succeeded", t.succeeded),
            ("failed", t.failed),
            ("deferred", t.deferred),
            ("cancelled", t.cancelled),
            ("blocked", t.blocked),
            ("quarantined", t.quarantined),
        ]
        .map(|(state, n)| (format!("{{state=\"{state}\"}}"), n as f64)),
    );
    metric("records_in", "Records read.", &one(t.records_in as f64));
    metric(
        "records_out",
        "Records delivered.",
        &one(t.records_out as f64),
    );
    metric(
        "records_rejected",
        "Records rejected.",
        &one(t.records_rejected as f64),
    );
    metric(
        "wall_seconds",
        "Seconds from the first start to the last end.",
        &one(t.wall_seconds),
    );
    metric(
        "missing_units",
        "Planned units with no result.",
        &one(s.missing.len() as f64),
    );
    let by = |f: &dyn Fn(&PriorityRow) -> Option<f64>| -> Vec<(String, f64)> {
        s.priorities
            .iter()
            .filter_map(|p| f(p).map(|v| (format!("{{priority=\"{}\"}}", p.priority), v)))
            .collect()
    };
    metric(
        "priority_finished_seconds",
        "Seconds from the window start to the priority's last finish.",
        &by(&|p| p.finished_after_seconds),
    );
    metric(
        "priority_sla_seconds",
        "The priority's tightest SLA in seconds.",
        &by(&|p| p.sla_seconds),
    );
    metric(
        "priority_sla_met",
        "1 when the priority met its SLA with nothing failed or missing.",
        &by(&|p| Some(f64::from(u8::from(p.sla_met)))),
    );
    o
}
