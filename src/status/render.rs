//! The run's status drawn for a terminal (one screen: totals, priorities against their SLA,
//! slices with stragglers flagged, failures) and as JSON for dashboards.

use std::fmt::Write;

use super::RunStatus;
use crate::printer::thousands;

/// Failures listed on the screen; the JSON has them all.
const FAILURES_SHOWN: usize = 20;

/// `HH:MM:SS` of an RFC 3339 time (UTC), or `-`.
fn clock(t: Option<&str>) -> String {
    t.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc).format("%H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

/// The status as JSON, pretty-printed.
pub fn json(s: &RunStatus) -> String {
    let mut out = serde_json::to_string_pretty(s).unwrap_or_default();
    out.push('\n');
    out
}

/// The status as text for a terminal. Times are UTC.
pub fn table(s: &RunStatus) -> String {
    let mut o = String::new();
    let t = &s.totals;
    let _ = writeln!(
        o,
        "run        {}  ({}, {} UTC)",
        s.run,
        if s.ended { "ended" } else { "running" },
        clock(Some(&s.now))
    );
    if let Some(w) = &s.window_start {
        let _ = writeln!(o, "window     opened {} UTC", clock(Some(w)));
    }
    let mut states = format!("{} succeeded, {} failed", t.succeeded, t.failed);
    for (n, name) in [
        (t.deferred, "deferred"),
        (t.cancelled, "cancelled"),
        (t.blocked, "blocked"),
        (t.quarantined, "quarantined"),
        (t.missing, "missing"),
    ] {
        if n > 0 {
            let _ = write!(states, ", {n} {name}");
        }
    }
    let _ = writeln!(
        o,
        "units      {}/{} done ({states}), {} running, {} left",
        t.done, t.units, t.running, t.left
    );
    let _ = writeln!(
        o,
        "records    {} read, {} rejected",
        thousands(t.records),
        thousands(t.rejected)
    );
    o.push('\n');
    for p in &s.priorities {
        let when = if p.left == 0 { "finished" } else { "ETA" };
        let _ = write!(
            o,
            "{:<6}  {}/{} units, {when} {}",
            p.priority.to_uppercase(),
            p.done,
            p.units,
            clock(p.eta.as_deref())
        );
        if let Some(sla) = &p.sla {
            let _ = write!(o, ", SLA {}", clock(Some(sla)));
        }
        let _ = write!(o, ", {}", p.verdict);
        // The units that keep it from its SLA, by state, as the report names them.
        let not: Vec<String> = [
            (p.failed, "failed"),
            (p.deferred, "deferred"),
            (p.cancelled, "cancelled"),
            (p.blocked, "blocked"),
            (p.quarantined, "quarantined"),
            (p.missing, "missing"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, s)| format!("{n} {s}"))
        .collect();
        if !not.is_empty() {
            let _ = write!(o, " ({})", not.join(", "));
        }
        o.push('\n');
    }
    o.push('\n');
    let _ = writeln!(
        o,
        "{:<5}  {:<5}  {:<7}  {:>11}  {:>4}  {:>9}  {:<8}  now",
        "slice", "stage", "state", "units", "done", "records", "updated"
    );
    for v in &s.slices {
        let pct = if v.bytes > 0 {
            v.bytes_done as f64 * 100.0 / v.bytes as f64
        } else if v.units > 0 {
            v.done as f64 * 100.0 / v.units as f64
        } else {
            100.0
        };
        let state = match (v.state.as_str(), v.exit_code) {
            ("ended", Some(c)) if c != 0 => format!("exit {c}"),
            (s, _) => s.to_string(),
        };
        let mut now = match &v.straggler {
            Some(why) => format!("STRAGGLER: {why}"),
            None => String::new(),
        };
        if !v.current.is_empty() {
            if !now.is_empty() {
                now.push_str("; ");
            }
            // File names only, the first two: the line stays one line.
            let names: Vec<&str> = v
                .current
                .iter()
                .take(2)
                .map(|c| c.rsplit('/').next().unwrap_or(c))
                .collect();
            now.push_str(&names.join(", "));
            if v.current.len() > 2 {
                let _ = write!(now, " +{} more", v.current.len() - 2);
            }
        }
        let _ = writeln!(
            o,
            "{:<5}  {:<5}  {:<7}  {:>11}  {:>3.0}%  {:>9}  {:<8}  {}",
            v.slice,
            v.stage,
            state,
            format!("{}/{}", v.done, v.units),
            pct,
            thousands(v.records),
            clock(v.updated_at.as_deref()),
            now.trim_end()
        );
    }
    if !s.failures.is_empty() {
        let _ = writeln!(o, "\nNot succeeded ({})", s.failures.len());
        for f in s.failures.iter().take(FAILURES_SHOWN) {
            let part = f.part.map(|p| format!(" part {p}")).unwrap_or_default();
            let slice = match f.slice {
                Some(k) => format!("slice {k}"),
                None => "plan".into(),
            };
            let _ = writeln!(
                o,
                "  {:<11}  {slice}  {}  {}{part}: {}",
                f.status, f.vendor, f.input, f.error
            );
        }
    }
    if s.failures.len() > FAILURES_SHOWN {
        let _ = writeln!(
            o,
            "  ... {} more (`--format json` lists them all)",
            s.failures.len() - FAILURES_SHOWN
        );
    }
    if !s.quarantined.is_empty() {
        let _ = writeln!(
            o,
            "\nQuarantined ({}): not planned again until `batchwin release`",
            s.quarantined.len()
        );
        for q in &s.quarantined {
            let _ = writeln!(
                o,
                "  {}  {}  {} failed attempts, since {}: {}",
                q.vendor,
                q.input_path,
                q.attempts,
                q.quarantined_at.as_deref().unwrap_or("-"),
                q.error.as_deref().unwrap_or("failed")
            );
        }
    }
    for u in &s.unreadable {
        let _ = writeln!(o, "unreadable {u}");
    }
    // Columns left empty leave no trailing blanks.
    o.lines().map(|l| format!("{}\n", l.trim_end())).collect()
}
