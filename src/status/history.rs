//! `batchwin log`: the runs of a runs folder, one line each, from what each run folder keeps
//! (`window.json`, `state.json`, `plan.json`, the slices' ledgers); and `log RUN --why FILE`:
//! why a file was processed, skipped, re-run or left in that run, and which check decided.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::ledger::query::{self, NotDone, UnitRef};
use crate::plan::Plan;

use super::{WINDOW_FILE, WindowRecord};

/// One past run, as `log` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RunLine {
    /// The run folder's name, `DATE-WINDOW`.
    pub run: String,
    pub date: String,
    pub window: String,
    /// `ok`; for exit code 1 or 3, the worst state a unit was left in: `failed`, `quarantined`,
    /// `cancelled`, `blocked`, `deferred` or `missing`, else `late` (every unit succeeded, a
    /// priority after its SLA), else `failed` (a step failed: a delivery, a server); `stopped`
    /// (130, 143), `usage` (2), or `running` (no `state.json` yet: in progress, or killed).
    pub status: String,
    pub exit_code: Option<i32>,
    pub files: i64,
    pub units: i64,
    pub records: i64,
    /// Units by the state of their latest attempt, as the report counts them: failed on their
    /// data or output; deferred (the window ended, or the plan left them for the next run);
    /// blocked (a vendor they come after failed); cancelled (stopped by a signal).
    pub failed: i64,
    pub deferred: i64,
    pub blocked: i64,
    pub cancelled: i64,
    /// Units of files in quarantine: set aside after the window's `max_attempts` failed runs.
    pub quarantined: i64,
    /// Planned units with no attempt recorded.
    pub missing: i64,
    /// From the first unit's start to the last unit's end.
    pub duration_seconds: f64,
    /// Every priority met its SLA; none when no SLA applies or nothing was recorded.
    pub sla_met: Option<bool>,
    pub ended_at: Option<String>,
}

/// What `state.json` says (written by `run` when a run folder's run ends).
#[derive(Debug, serde::Deserialize)]
struct State {
    exit_code: i32,
    ended_at: String,
}

/// The runs under `runs` (each a `DATE-WINDOW` folder with a `plan.json` or `state.json`),
/// oldest first.
pub fn runs(runs: &Path) -> anyhow::Result<Vec<RunLine>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(runs)
        .with_context(|| format!("cannot read the runs folder `{}`", runs.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("plan.json").exists() || p.join("state.json").exists())
        .collect();
    dirs.sort();
    let mut lines = Vec::new();
    for d in dirs {
        lines.push(run_line(&d)?);
    }
    lines.sort_by(|a, b| (&a.date, &a.window).cmp(&(&b.date, &b.window)));
    Ok(lines)
}

/// One run folder summed up.
pub fn run_line(dir: &Path) -> anyhow::Result<RunLine> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let record: Option<WindowRecord> = std::fs::read(dir.join(WINDOW_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let (date, window) = match &record {
        Some(w) => (w.date.clone(), w.window.clone()),
        None if name.len() > 11 => (name[..10].to_string(), name[11..].to_string()),
        None => (name.clone(), String::new()),
    };
    let state: Option<State> = std::fs::read(dir.join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let status = match state.as_ref().map(|s| s.exit_code) {
        None => "running",
        Some(0) => "ok",
        Some(2) => "usage",
        Some(130 | 143) => "stopped",
        Some(_) => "failed",
    };
    let plan = Plan::read(&dir.join("plan.json")).ok();
    let mut line = RunLine {
        run: name,
        date,
        window,
        status: status.into(),
        exit_code: state.as_ref().map(|s| s.exit_code),
        files: 0,
        units: 0,
        records: 0,
        failed: 0,
        deferred: 0,
        blocked: 0,
        cancelled: 0,
        quarantined: 0,
        missing: 0,
        duration_seconds: 0.0,
        sla_met: None,
        ended_at: state.map(|s| s.ended_at),
    };
    let ledgers = ledgers_of(dir);
    if ledgers.is_empty() {
        return Ok(line);
    }
    let mut ctx = crate::report::Context {
        plan: plan.as_ref(),
        ..Default::default()
    };
    if let Some(p) = &plan {
        ctx.slas = super::slas(p, record.as_ref())
            .into_iter()
            .map(|(p, s)| (p.to_string(), s))
            .collect();
    }
    ctx.window_start = record
        .as_ref()
        .and_then(|w| chrono::DateTime::parse_from_rfc3339(&w.start).ok())
        .map(|t| t.with_timezone(&chrono::Utc));
    let report = crate::ledger::merge::with_latest(&ledgers, |c| {
        Ok(crate::report::summarize(c, &[], &ctx)?)
    })
    .with_context(|| format!("cannot read the ledgers of `{}`", dir.display()))?;
    let t = &report.totals;
    line.files = t.files;
    line.units = t.units;
    line.records = t.records_in;
    line.failed = t.failed;
    line.deferred = t.deferred;
    line.blocked = t.blocked;
    line.cancelled = t.cancelled;
    line.quarantined = t.quarantined;
    line.missing = report.missing.len() as i64;
    line.duration_seconds = t.wall_seconds;
    if report.priorities.iter().any(|p| p.sla_seconds.is_some()) {
        line.sla_met = Some(report.priorities.iter().all(|p| p.sla_met));
    }
    // A run that ended with exit code 1 or 3 says why, by the worst state a unit was left in.
    if line.status == "failed" {
        let worst = [
            (line.failed, "failed"),
            (line.quarantined, "quarantined"),
            (line.cancelled, "cancelled"),
            (line.blocked, "blocked"),
            (line.deferred, "deferred"),
            (line.missing, "missing"),
        ]
        .into_iter()
        .find(|(n, _)| *n > 0);
        if let Some((_, word)) = worst {
            line.status = word.into();
        } else if line.sla_met == Some(false) {
            // Every unit succeeded, too late.
            line.status = "late".into();
        }
    }
    Ok(line)
}

/// The slices' ledgers of a run folder.
fn ledgers_of(dir: &Path) -> Vec<PathBuf> {
    let ledgers = dir.join("out").join("ledgers");
    if !ledgers.is_dir() {
        return Vec::new();
    }
    crate::ledger::find_ledgers(&ledgers, None).unwrap_or_default()
}

/// Why a file was (or was not) processed in a run, step by step.
#[derive(Debug, Clone, Serialize)]
pub struct Why {
    pub file: String,
    /// What happened, in order, each with the check that decided it.
    pub steps: Vec<String>,
    /// The check's answer now: done, or why not.
    pub now: String,
}

/// What happened to `file` (a path, or its name) in the run folder `dir`.
pub fn why(dir: &Path, file: &str) -> anyhow::Result<Why> {
    why_where(
        dir,
        &dir.display().to_string(),
        file,
        query::local_output_present,
    )
}

/// [`why`], from a run folder `dir` (its manifest, what was left of it, its plan and its
/// ledgers) that is named `run` in what it says, asking `output_present` whether an attempt's
/// output is still there with its recorded size (a run location answers from a listing).
pub fn why_where(
    dir: &Path,
    run: &str,
    file: &str,
    mut output_present: impl FnMut(&query::UnitAttempt) -> bool,
) -> anyhow::Result<Why> {
    let matches = |location: &str| location == file || location.ends_with(&format!("/{file}"));
    let mut steps = Vec::new();
    let manifest = crate::plan::manifest::read(&dir.join("manifest.jsonl")).unwrap_or_default();
    let Some(row) = manifest.iter().find(|r| matches(&r.location)) else {
        anyhow::bail!(
            "`{file}` is not in the manifest of `{run}`: the run did not fetch it (not delivered for this day, or not complete when the run fetched)"
        );
    };
    steps.push(format!(
        "fetched: in the manifest as `{}` (vendor {}, {} bytes, sha256 {})",
        row.location,
        row.vendor,
        row.bytes,
        &row.sha256[..row.sha256.len().min(12)]
    ));
    let todo = crate::plan::manifest::read(&dir.join("todo.jsonl")).unwrap_or_default();
    let planned_again = todo.iter().any(|r| r.location == row.location);
    let skipped = !planned_again && dir.join("todo.jsonl").exists();
    let plan = Plan::read(&dir.join("plan.json")).ok();
    // A file the resume check skipped is in no plan of this attempt (`plan.json` may be an
    // earlier attempt's, when nothing was left to plan).
    if let Some(p) = plan.as_ref().filter(|_| !skipped) {
        let units: Vec<(usize, Option<u32>)> = p
            .slices
            .iter()
            .flat_map(|s| s.units.iter().map(move |u| (s.index, u)))
            .filter(|(_, u)| u.location == row.location)
            .map(|(k, u)| (k, u.part.as_ref().map(|x| x.index)))
            .collect();
        if let Some(d) = p
            .deferred
            .as_ref()
            .filter(|d| d.files.iter().any(|f| f.location == row.location))
        {
            steps.push(format!("left for the next run by the plan: {}", d.reason));
        } else if !units.is_empty() {
            let slices: std::collections::BTreeSet<usize> = units.iter().map(|u| u.0).collect();
            steps.push(format!(
                "planned: {} in slice{} {}",
                if units.len() > 1 {
                    format!("cut into {} parts", units.len())
                } else {
                    "whole".to_string()
                },
                if slices.len() > 1 { "s" } else { "" },
                slices
                    .iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        } else if planned_again {
            steps.push("not in the latest plan of the run".into());
        }
    }
    let ledgers = ledgers_of(dir);
    let config_sha = plan.as_ref().map(|p| p.config_sha256.clone());
    let (attempts, verdict, (quarantines, releases), held) = if ledgers.is_empty() {
        (
            Vec::new(),
            Err(NotDone::NeverAttempted),
            Default::default(),
            None,
        )
    } else {
        crate::ledger::merge::with_latest(&ledgers, |c| {
            let attempts = query::file_attempts(c, &row.location)?;
            let latest = query::LatestUnits::read(c)?;
            let verdict = latest.is_done_where(
                UnitRef::File(&row.location),
                config_sha.as_deref(),
                |a| a.parts.unwrap_or(1) > 1 || a.input_sha256 == row.sha256,
                &mut output_present,
            );
            let history = query::quarantine_history(c, &row.location)?;
            let held = query::quarantined(c)?
                .into_iter()
                .find(|q| q.input_path == row.location);
            Ok((attempts, verdict, history, held))
        })?
    };
    // The resume check came after every attempt recorded: it ends the list.
    let resume_check = skipped.then(|| {
            if held.is_some() {
                "not planned: `run`'s resume check found it in quarantine".into()
            } else {
                "skipped: `run`'s resume check (ledger::query::LatestUnits::is_done) found every unit of it done by an earlier attempt: succeeded under the same configuration, same input checksum, output still there".to_string()
            }
    });
    // Attempts, quarantines and releases, in the order they happened.
    // (time, rank, line): within a second, an attempt comes before the quarantine it caused.
    let mut events: Vec<(String, u8, String)> = Vec::new();
    for q in &quarantines {
        let at = q.quarantined_at.clone().unwrap_or_default();
        events.push((
            at.clone(),
            1,
            format!(
                "{at} UTC: quarantined after {} failed attempts (the window's max_attempts): not planned again until released",
                q.attempts
            ),
        ));
    }
    for r in &releases {
        events.push((
            r.released_at.clone(),
            2,
            format!(
                "{} UTC: released by {}{}: the next run plans it again",
                r.released_at,
                r.released_by,
                r.note
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ),
        ));
    }
    let mut previous: std::collections::HashMap<Option<i64>, String> = Default::default();
    for a in &attempts {
        let unit = match a.part {
            Some(p) => format!("part {p} of {}", a.parts.unwrap_or(0)),
            None => "the file".into(),
        };
        let again = match previous.get(&a.part).map(String::as_str) {
            None => String::new(),
            Some("succeeded") => " again: its earlier attempt had succeeded, but the slice's resume check (LatestUnits::is_done_as) found its input, output, configuration or masking profile changed".into(),
            Some(s) => format!(" again: its earlier attempt was {s}, so the slice's resume check did not count it done"),
        };
        let mut line = format!(
            "{} to {} UTC, {}: {unit} processed{again}: {}",
            a.started_at, a.ended_at, a.slice, a.status
        );
        if let Some(e) = &a.error {
            line.push_str(&format!(" ({e})"));
        }
        events.push((a.ended_at.clone(), 0, line));
        previous.insert(a.part, a.status.clone());
    }
    events.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    steps.extend(events.into_iter().map(|(_, _, line)| line));
    steps.extend(resume_check);
    let now = match (verdict, &held) {
        (_, Some(q)) => format!(
            "quarantined after {} failed attempts: not planned until `batchwin release --run {} {}`",
            q.attempts, run, row.location
        ),
        (Ok(()), None) => "done: the next run skips it".to_string(),
        (Err(n), None) => format!("not done ({}): the next run does it", not_done(n)),
    };
    Ok(Why {
        file: row.location.clone(),
        steps,
        now,
    })
}

/// [`NotDone`] in words.
fn not_done(n: NotDone) -> &'static str {
    match n {
        NotDone::NeverAttempted => "no attempt in the ledgers",
        NotDone::Failed => "its latest attempt did not succeed",
        NotDone::OtherConfig => "its latest attempt ran under another configuration",
        NotDone::OtherProfile => "its latest attempt applied another masking profile",
        NotDone::OutputGone => "its output is gone or changed size",
        NotDone::InputChanged => "its input has another checksum",
        NotDone::PartMissing => "parts of its latest cut have no attempt",
    }
}

/// The runs as a table, one line each: units not done in a column per state.
pub fn table(lines: &[RunLine]) -> String {
    let mut o = format!(
        "{:<10}  {:<10}  {:<11}  {:>6}  {:>12}  {:>6}  {:>8}  {:>7}  {:>9}  {:>11}  {:>7}  {:>9}  {}\n",
        "date",
        "window",
        "status",
        "files",
        "records",
        "failed",
        "deferred",
        "blocked",
        "cancelled",
        "quarantined",
        "missing",
        "duration",
        "SLA met"
    );
    for l in lines {
        o.push_str(&format!(
            "{:<10}  {:<10}  {:<11}  {:>6}  {:>12}  {:>6}  {:>8}  {:>7}  {:>9}  {:>11}  {:>7}  {:>8.1}s  {}\n",
            l.date,
            l.window,
            l.status,
            l.files,
            crate::printer::thousands(l.records.max(0) as u64),
            l.failed,
            l.deferred,
            l.blocked,
            l.cancelled,
            l.quarantined,
            l.missing,
            l.duration_seconds,
            match l.sla_met {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            }
        ));
    }
    o
}

/// [`why`] as text.
pub fn why_text(w: &Why) -> String {
    let mut o = format!("{}\n", w.file);
    for s in &w.steps {
        o.push_str(&format!("  - {s}\n"));
    }
    o.push_str(&format!("  now: {}\n", w.now));
    o
}
