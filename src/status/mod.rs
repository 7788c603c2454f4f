//! `batchwin status`: one view of a whole run, while it runs and after, read from what its
//! slices write (never from an engine's API, so it is the same on every engine): the plan
//! (`RUN/plan.json`, or `--plan`: every unit, its priority and its estimated cost), each slice's
//! live status document (`RUN/out/status/slice-K.json`, see [`crate::engine::live`]) and the
//! ledgers that can be read (`RUN/out/ledgers/`: an ended slice's, the day's earlier runs', the
//! quarantine's; a running slice's ledger cannot be opened by another process).
//!
//! [`read`] builds a [`RunStatus`]: each unit of the day counted once by its latest state (as
//! the report counts it), per priority the units done and left and the estimated finish against
//! the SLA, per slice its progress with stragglers flagged, the failures so far. [`render`]
//! draws it for a terminal; its JSON is the struct as serialized. [`history`] is the runs seen
//! afterwards (`batchwin log`). A run at a run location URL is read from a local copy of its
//! plan, documents and ledgers ([`location`], through [`RunReader`]).
//!
//! The estimate and the SLA verdict are [`eta`]'s, the same `run` tells the `sla_at_risk`
//! webhooks from (see docs/operations.md, "How the ETA is estimated").

pub mod eta;
pub mod history;
pub mod location;
pub mod render;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Priority;
use crate::engine::live::{LiveState, STATUS_DIR, STATUS_FORMAT, SliceStatus};
use crate::plan::Plan;

/// The run folder's file that says when the window opened (written by `run`).
pub const WINDOW_FILE: &str = "window.json";

/// What `run` records of its window in the run folder, for `status` and `log`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WindowRecord {
    pub window: String,
    pub date: String,
    /// UTC, RFC 3339.
    pub start: String,
    pub end: String,
    /// The day's run location URL, when `run --run-location` put its data there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Each priority's tightest SLA in seconds, from the configuration: what `status` and `log`
    /// judge a priority by when the latest plan has none of its units (an earlier run of the
    /// day did them), as the report does from `--config`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slas: BTreeMap<String, f64>,
}

impl WindowRecord {
    /// The record `run` wrote in the run folder `run`, if any.
    pub fn read(run: &Path) -> Option<WindowRecord> {
        std::fs::read(run.join(WINDOW_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// Each priority's tightest SLA among `vendors`, seconds.
    pub fn slas_of(vendors: &[crate::config::VendorConfig]) -> BTreeMap<String, f64> {
        let mut slas: BTreeMap<String, f64> = BTreeMap::new();
        for v in vendors {
            if let Some(sla) = v.sla.map(|s| s.0.as_secs_f64()) {
                let e = slas.entry(v.priority.to_string()).or_insert(sla);
                *e = e.min(sla);
            }
        }
        slas
    }
}

/// Each priority's SLA in seconds: the plan's, else the one `run` recorded in `window.json`.
pub fn slas(plan: &Plan, record: Option<&WindowRecord>) -> BTreeMap<Priority, f64> {
    let mut out: BTreeMap<Priority, f64> = record
        .map(|r| {
            r.slas
                .iter()
                .filter_map(|(p, s)| priority_of(p).map(|p| (p, *s)))
                .collect()
        })
        .unwrap_or_default();
    for p in &plan.estimate.priorities {
        if let Some(s) = p.sla_seconds {
            out.insert(p.priority, s);
        }
    }
    out
}

/// What reading a run failed with, as an exit status: a run location that did not answer is
/// worth asking again (exit code 3); anything else is not a run to read (2).
pub fn read_failure(e: anyhow::Error) -> crate::exit::Failure {
    match e.downcast_ref::<crate::storage::StorageError>() {
        Some(s) if s.is_transient() => crate::exit::Failure::retryable(e),
        _ => crate::exit::Failure::usage(e),
    }
}

/// The run location a local run folder's `window.json` names (`run --run-location`), if any.
pub fn location_of(run: &Path) -> Option<String> {
    WindowRecord::read(run).and_then(|w| w.location)
}

/// How `status` reads a run.
#[derive(Debug, Clone)]
pub struct StatusSettings {
    /// The run's plan when it is not `RUN/plan.json` (a local file).
    pub plan: Option<PathBuf>,
    /// The run folder (`RUNS/DATE-WINDOW`).
    pub run: PathBuf,
    /// A running slice with no update for longer is flagged stale.
    pub stale_seconds: f64,
    /// When the window opened; default: `RUN/window.json`, then the first slice's start.
    pub window_start: Option<DateTime<Utc>>,
    /// The time to judge against (now, except in tests).
    pub now: DateTime<Utc>,
}

/// One priority's units against its SLA, each counted once by its latest state (as the
/// report counts them).
#[derive(Debug, Clone, Serialize)]
pub struct PriorityStatus {
    pub priority: String,
    pub units: u64,
    /// Units ended (in any state) and still to end (running or not started).
    pub done: u64,
    pub left: u64,
    /// Ended units in any state but succeeded: the priority misses its SLA when any is.
    pub not_succeeded: u64,
    /// Ended units by state (see [`StatusTotals`]).
    pub succeeded: u64,
    pub failed: u64,
    pub deferred: u64,
    pub cancelled: u64,
    pub blocked: u64,
    pub quarantined: u64,
    pub missing: u64,
    /// When the last of its units is expected to end (UTC), or ended when none is left.
    pub eta: Option<String>,
    /// Its tightest SLA, as a time (UTC), when the plan knows one and the window start is known.
    pub sla: Option<String>,
    /// `on track`, `at risk` (the ETA is past the SLA), `met`, `missed` (finished late, or
    /// with units that did not succeed, or the SLA passed) or `no SLA`.
    pub verdict: String,
}

/// One slice's progress.
#[derive(Debug, Clone, Serialize)]
pub struct SliceView {
    pub slice: usize,
    pub stage: usize,
    /// `waiting` (no document yet), `running` or `ended`.
    pub state: String,
    pub exit_code: Option<i32>,
    pub units: u64,
    pub done: u64,
    pub running: u64,
    /// Input bytes of the slice's units and of those done (resumed units included).
    pub bytes: u64,
    pub bytes_done: u64,
    pub records: u64,
    pub rejected: u64,
    pub host: Option<String>,
    pub started_at: Option<String>,
    pub updated_at: Option<String>,
    pub seconds_since_update: Option<f64>,
    /// The units in flight.
    pub current: Vec<String>,
    pub eta: Option<String>,
    /// Why it is flagged: no update for a while, or far behind the others.
    pub straggler: Option<String>,
}

/// A unit whose latest state is not succeeded (a quarantined one is listed with its file's
/// quarantine instead).
#[derive(Debug, Clone, Serialize)]
pub struct FailureView {
    /// Its slice; none for a file the plan left for the next run.
    pub slice: Option<usize>,
    pub vendor: String,
    pub input: String,
    pub part: Option<u32>,
    pub status: String,
    pub error: String,
}

/// Units by state over the whole run, each unit counted once by its latest state: `done` is
/// the sum of the states, `units` is `done + running + left`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusTotals {
    pub units: u64,
    pub done: u64,
    pub running: u64,
    pub left: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub deferred: u64,
    pub cancelled: u64,
    pub blocked: u64,
    /// Units of files in quarantine (see [`crate::window::quarantine`]).
    pub quarantined: u64,
    /// Planned units a slice ended without recording (as the report's `missing`).
    pub missing: u64,
    pub records: u64,
    pub rejected: u64,
}

/// The whole view.
#[derive(Debug, Clone, Serialize)]
pub struct RunStatus {
    pub run: String,
    pub now: String,
    pub window_start: Option<String>,
    /// Every slice has ended.
    pub ended: bool,
    pub totals: StatusTotals,
    pub priorities: Vec<PriorityStatus>,
    pub slices: Vec<SliceView>,
    pub failures: Vec<FailureView>,
    /// Files in quarantine: not planned again until released.
    pub quarantined: Vec<crate::ledger::query::Quarantined>,
    /// Status documents or ledgers that could not be read, and why.
    pub unreadable: Vec<String>,
}

/// `RFC 3339` to the second.
fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

use eta::parse_time;

/// Reads the status document at `path`; `None` when there is none yet.
pub fn read_document(path: &Path) -> anyhow::Result<Option<SliceStatus>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read `{}`", path.display())),
    };
    let d: SliceStatus = serde_json::from_slice(&bytes)
        .with_context(|| format!("`{}` is not a batchwin status document", path.display()))?;
    anyhow::ensure!(
        d.format == STATUS_FORMAT,
        "`{}` has format {}, this batchwin reads format {STATUS_FORMAT}",
        path.display(),
        d.format
    );
    Ok(Some(d))
}

/// Units by state, counted once each by its latest state: a priority's, or the run's.
#[derive(Debug, Clone, Default)]
struct Tally {
    units: u64,
    done: u64,
    running: u64,
    succeeded: u64,
    failed: u64,
    deferred: u64,
    cancelled: u64,
    blocked: u64,
    quarantined: u64,
    missing: u64,
    records: u64,
    rejected: u64,
    /// When its last unit that ran ended.
    last_end: Option<DateTime<Utc>>,
}

impl Tally {
    /// One ended unit in `state`.
    fn ended(&mut self, state: &str) {
        self.units += 1;
        self.done += 1;
        match state {
            "succeeded" => self.succeeded += 1,
            "deferred" => self.deferred += 1,
            "cancelled" => self.cancelled += 1,
            "blocked" => self.blocked += 1,
            "quarantined" => self.quarantined += 1,
            "missing" => self.missing += 1,
            _ => self.failed += 1,
        }
    }

    fn ended_at(&mut self, t: Option<DateTime<Utc>>) {
        self.last_end = self.last_end.max(t);
    }

    fn not_succeeded(&self) -> u64 {
        self.failed
            + self.deferred
            + self.cancelled
            + self.blocked
            + self.quarantined
            + self.missing
    }
}

fn priority_of(s: &str) -> Option<Priority> {
    match s {
        "high" => Some(Priority::High),
        "medium" => Some(Priority::Medium),
        "low" => Some(Priority::Low),
        _ => None,
    }
}

/// A slice ledger's index from its file name (`slice-00003.duckdb`).
fn ledger_slice(p: &Path) -> Option<usize> {
    p.file_name()?
        .to_str()?
        .strip_prefix("slice-")?
        .strip_suffix(".duckdb")?
        .parse()
        .ok()
}

/// Reads the run in `s.run` as it is now.
///
/// Each unit of the day is counted once, by its latest state, as the report counts it: the
/// units of the ledgers that can be read (the ended slices', the day's earlier runs' and the
/// quarantine's), except those the plan gives a slice that is still running or waiting (or
/// ended without a ledger to read yet), which its status document counts; the plan's units a
/// slice ended without recording are `missing`, and the files the plan left for the next run
/// `deferred`.
pub fn read(s: &StatusSettings) -> anyhow::Result<RunStatus> {
    let plan = match &s.plan {
        Some(p) => Plan::read(p).with_context(|| format!("the plan `{}`", p.display()))?,
        None => Plan::read(&s.run.join("plan.json")).with_context(|| {
            format!(
                "`{}` is not a run folder with a plan (`plan.json`); give --plan",
                s.run.display()
            )
        })?,
    };
    let out = s.run.join("out");
    let mut unreadable = Vec::new();
    let docs: Vec<Option<SliceStatus>> = plan
        .slices
        .iter()
        .map(|slice| {
            let path = out
                .join(STATUS_DIR)
                .join(crate::engine::live::Live::slice_name(slice.index));
            read_document(&path).unwrap_or_else(|e| {
                unreadable.push(crate::exit::error_text(&e));
                None
            })
        })
        .map(|d| d.filter(|d| of_this_plan(&plan, d)))
        .collect();
    let record = WindowRecord::read(&s.run);
    let window_start = s
        .window_start
        .or_else(|| record.as_ref().and_then(|w| parse_time(&w.start)));
    let first_start = docs
        .iter()
        .filter_map(|d| d.as_ref().and_then(|d| parse_time(&d.started_at)))
        .min();
    let window_start = window_start.or(first_start);
    let is_ended = |i: usize| {
        docs[i]
            .as_ref()
            .is_some_and(|d| d.state == LiveState::Ended)
    };

    // The ledgers that can be read: not those of the plan's slices that did not end (a
    // running slice's cannot be opened; a waiting one's is about to be), and not a journal
    // alone (see `crate::ledger::journal`; its slice is counted by its document).
    let ledgers = out.join("ledgers");
    let not_ended: std::collections::BTreeSet<usize> = plan
        .slices
        .iter()
        .enumerate()
        .filter(|(i, _)| !is_ended(*i))
        .map(|(_, sl)| sl.index)
        .collect();
    let mut readable: Vec<PathBuf> = std::fs::read_dir(&ledgers)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    readable.retain(|p| {
        p.extension().is_some_and(|x| x == "duckdb")
            && p.is_file()
            && match ledger_slice(p) {
                Some(k) => !not_ended.contains(&k),
                None => [
                    crate::ledger::QUARANTINE_LEDGER,
                    crate::ledger::RELEASES_LEDGER,
                ]
                .iter()
                .any(|n| p.file_name().is_some_and(|f| f == *n)),
            }
    });
    readable.sort();
    let mut latest = Vec::new();
    let mut quarantined = Vec::new();
    let mut ledgers_read = false;
    if !readable.is_empty() {
        match crate::ledger::merge::with_latest(&readable, |c| {
            Ok((
                crate::ledger::query::latest_units(c)?,
                crate::ledger::query::quarantined(c)?,
            ))
        }) {
            Ok((l, q)) => {
                latest = l;
                quarantined = q;
                ledgers_read = true;
            }
            Err(e) => unreadable.push(format!(
                "the ended slices' ledgers: {}",
                crate::exit::error_text(&e)
            )),
        }
    }
    // The plan's slices counted by their ledger; the others by their document.
    let by_ledger: Vec<bool> = plan
        .slices
        .iter()
        .enumerate()
        .map(|(i, sl)| {
            ledgers_read
                && is_ended(i)
                && readable.iter().any(|p| ledger_slice(p) == Some(sl.index))
        })
        .collect();
    // Units whose document (or the plan's deferral) says what they are now: the ledgers'
    // record of them is older. A file cut otherwise than the plan cuts it now is the plan's.
    let mut by_document: BTreeMap<&str, (Option<u32>, std::collections::BTreeSet<Option<i64>>)> =
        BTreeMap::new();
    for (sl, _) in plan.slices.iter().zip(&by_ledger).filter(|(_, b)| !**b) {
        for u in &sl.units {
            let e = by_document
                .entry(u.location.as_str())
                .or_insert((u.part.as_ref().map(|p| p.count), Default::default()));
            e.1.insert(u.part.as_ref().map(|p| i64::from(p.index)));
        }
    }
    let later = plan
        .deferred
        .as_ref()
        .map(|d| d.files.as_slice())
        .unwrap_or_default();
    let superseded = |u: &crate::ledger::query::LatestUnit| {
        later.iter().any(|f| f.location == u.input_path)
            || by_document
                .get(u.input_path.as_str())
                .is_some_and(|(count, parts)| {
                    parts.contains(&u.part) || u.parts.map(|n| n as u32) != *count
                })
    };

    let now = s.now;
    let mut tally: BTreeMap<Priority, Tally> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut recorded: std::collections::HashSet<(&str, Option<i64>)> = Default::default();
    for u in &latest {
        recorded.insert((u.input_path.as_str(), u.part));
        let Some(p) = priority_of(&u.priority) else {
            continue;
        };
        if superseded(u) {
            continue;
        }
        let t = tally.entry(p).or_default();
        t.ended(&u.status);
        t.records += u.records_in.max(0) as u64;
        t.rejected += u.records_rejected.max(0) as u64;
        t.ended_at(u.ended_at.as_deref().and_then(parse_time));
        // Quarantined units are listed with their file's quarantine, not as failures.
        if u.status != "succeeded" && u.status != "quarantined" {
            failures.push(FailureView {
                slice: u.slice.strip_prefix("slice-").and_then(|k| k.parse().ok()),
                vendor: u.vendor.clone(),
                input: u.input_path.clone(),
                part: u.part.map(|p| p as u32),
                status: u.status.clone(),
                error: u.error.clone(),
            });
        }
    }
    for f in later {
        tally.entry(f.priority).or_default().ended("deferred");
        failures.push(FailureView {
            slice: None,
            vendor: f.vendor.clone(),
            input: f.location.clone(),
            part: None,
            status: "deferred".into(),
            error: format!(
                "left for the next run by the plan: {}",
                plan.deferred.as_ref().map_or("", |d| d.reason.as_str())
            ),
        });
    }

    let mut slices = Vec::new();
    // Records read and rejected by the slices counted by their documents.
    let mut records = (0u64, 0u64);
    for (i, sl) in plan.slices.iter().enumerate() {
        let units: u64 = sl.units.len() as u64;
        let bytes: u64 = sl.units.iter().map(|u| u.bytes).sum();
        if by_ledger[i] {
            // Planned units its ledgers have no attempt of (a slice that stopped early).
            for u in &sl.units {
                let part = u.part.as_ref().map(|p| i64::from(p.index));
                if !recorded.contains(&(u.location.as_str(), part)) {
                    tally.entry(u.priority).or_default().ended("missing");
                }
            }
        }
        let mut v = SliceView {
            slice: sl.index,
            stage: sl.stage,
            state: "waiting".into(),
            exit_code: None,
            units,
            done: 0,
            running: 0,
            bytes,
            bytes_done: 0,
            records: 0,
            rejected: 0,
            host: None,
            started_at: None,
            updated_at: None,
            seconds_since_update: None,
            current: Vec::new(),
            eta: None,
            straggler: None,
        };
        let d = docs[i].as_ref();
        if let Some(d) = d {
            v.state = match d.state {
                LiveState::Running => "running",
                LiveState::Ended => "ended",
            }
            .into();
            v.exit_code = d.exit_code;
            // Units the plan gives the slice that this run of it did not have to do were done
            // by an earlier run (resumed).
            v.done = (units.saturating_sub(d.units) + d.done).min(units);
            v.running = d.running;
            v.bytes_done = eta::bytes_done(bytes, d);
            v.records = d.records;
            v.rejected = d.rejected;
            v.host = Some(d.host.clone());
            v.started_at = Some(d.started_at.clone());
            v.updated_at = Some(d.updated_at.clone());
            v.seconds_since_update = parse_time(&d.updated_at)
                .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
            v.current = d
                .current
                .iter()
                .map(|c| match c.part {
                    Some(p) => format!("{} part {p}", c.input),
                    None => c.input.clone(),
                })
                .collect();
        }
        if !by_ledger[i] {
            count_by_document(sl, d, &mut tally, &mut failures);
            // Records and rejects are the slice's, not a priority's.
            if let Some(d) = d {
                records.0 += d.records;
                records.1 += d.rejected;
            }
        }
        slices.push(v);
    }
    failures.sort_by(|a, b| {
        (a.slice, &a.vendor, &a.input, a.part).cmp(&(b.slice, &b.vendor, &b.input, b.part))
    });

    // The estimate `run`'s SLA watch makes too (see [`eta`]).
    let estimate = eta::estimate(&plan, &docs, now);
    for (v, m) in slices.iter_mut().zip(&estimate.slices) {
        v.eta = m.values().max().copied().map(rfc);
    }
    flag_stragglers(&mut slices, s.stale_seconds);

    let slas: BTreeMap<Priority, DateTime<Utc>> = window_start
        .map(|w| {
            slas(&plan, record.as_ref())
                .into_iter()
                .map(|(p, s)| (p, w + chrono::Duration::milliseconds((s * 1000.0) as i64)))
                .collect()
        })
        .unwrap_or_default();
    let mut priorities = Vec::new();
    let mut totals = StatusTotals::default();
    for (p, t) in &tally {
        let finished = t.done >= t.units && t.running == 0;
        let mut eta = estimate.priorities.get(p).copied();
        if finished {
            // Finished: when its last unit ended, as the ledgers or documents recorded it.
            eta = t.last_end.or(eta);
        }
        let sla = slas.get(p).copied();
        let verdict = eta::Verdict::of(sla, eta, finished, t.not_succeeded(), now);
        priorities.push(PriorityStatus {
            priority: p.to_string(),
            units: t.units,
            done: t.done,
            left: t.units.saturating_sub(t.done),
            not_succeeded: t.not_succeeded(),
            succeeded: t.succeeded,
            failed: t.failed,
            deferred: t.deferred,
            cancelled: t.cancelled,
            blocked: t.blocked,
            quarantined: t.quarantined,
            missing: t.missing,
            eta: eta.map(rfc),
            sla: sla.map(rfc),
            verdict: verdict.as_str().into(),
        });
        totals.units += t.units;
        totals.done += t.done;
        totals.running += t.running;
        totals.succeeded += t.succeeded;
        totals.failed += t.failed;
        totals.deferred += t.deferred;
        totals.cancelled += t.cancelled;
        totals.blocked += t.blocked;
        totals.quarantined += t.quarantined;
        totals.missing += t.missing;
        totals.records += t.records;
        totals.rejected += t.rejected;
    }
    totals.records += records.0;
    totals.rejected += records.1;
    totals.left = totals.units.saturating_sub(totals.done + totals.running);

    Ok(RunStatus {
        run: s.run.display().to_string(),
        now: rfc(now),
        window_start: window_start.map(rfc),
        ended: slices.iter().all(|v| v.state == "ended"),
        totals,
        priorities,
        slices,
        failures,
        quarantined,
        unreadable,
    })
}

/// Counts a plan slice's units by its status document (`None`: not started): units this run
/// of it did not have to do succeeded in an earlier run; those it ended by the state its
/// document gives; those an ended slice did not get to are `missing`; the rest are running or
/// left.
fn count_by_document(
    sl: &crate::plan::Slice,
    doc: Option<&SliceStatus>,
    tally: &mut BTreeMap<Priority, Tally>,
    failures: &mut Vec<FailureView>,
) {
    let mut planned: BTreeMap<&str, (Priority, u64)> = BTreeMap::new();
    for u in &sl.units {
        planned.entry(&u.vendor).or_insert((u.priority, 0)).1 += 1;
    }
    for (vendor, (p, n)) in &planned {
        let t = tally.entry(*p).or_default();
        let Some(d) = doc else {
            t.units += n;
            continue;
        };
        let x = d.vendors.iter().find(|x| x.vendor == *vendor);
        let resumed = n.saturating_sub(x.map_or(0, |x| x.units));
        let succeeded = x.map_or(0, |x| x.succeeded);
        let not = d.failures.iter().filter(|f| f.vendor == *vendor);
        let mut ended = resumed + succeeded;
        for _ in 0..ended {
            t.ended("succeeded");
        }
        for f in not {
            t.ended(&f.status);
            ended += 1;
        }
        let rest = n.saturating_sub(ended);
        if d.state == LiveState::Ended {
            for _ in 0..rest {
                t.ended("missing");
            }
        } else {
            let running = d.current.iter().filter(|c| c.vendor == *vendor).count() as u64;
            t.units += rest;
            t.running += running.min(rest);
        }
        t.ended_at(
            x.and_then(|x| x.last_ended_at.as_deref())
                .and_then(parse_time),
        );
    }
    if let Some(d) = doc {
        failures.extend(d.failures.iter().map(|x| FailureView {
            slice: Some(sl.index),
            vendor: x.vendor.clone(),
            input: x.input.clone(),
            part: x.part,
            status: x.status.clone(),
            error: x.error.clone(),
        }));
    }
}

/// Flags running slices with no update for longer than `stale_seconds`, or far behind the
/// others of their stage (less than half the median share of bytes done).
fn flag_stragglers(slices: &mut [SliceView], stale_seconds: f64) {
    let stages = slices.iter().map(|v| v.stage + 1).max().unwrap_or(0);
    for stage in 0..stages {
        let mut shares: Vec<f64> = slices
            .iter()
            .filter(|v| v.stage == stage && v.state != "waiting")
            .map(share)
            .collect();
        shares.sort_by(f64::total_cmp);
        let median = shares.get(shares.len() / 2).copied().unwrap_or(0.0);
        for v in slices
            .iter_mut()
            .filter(|v| v.stage == stage && v.state == "running")
        {
            if let Some(quiet) = v.seconds_since_update.filter(|q| *q > stale_seconds) {
                v.straggler = Some(format!("no update for {quiet:.0} s"));
            } else if shares.len() > 1 && share(v) < median / 2.0 {
                v.straggler = Some(format!(
                    "far behind: {:.0}% done, the stage's median {:.0}%",
                    share(v) * 100.0,
                    median * 100.0
                ));
            }
        }
    }
}

/// The share of a slice's bytes done.
fn share(v: &SliceView) -> f64 {
    if v.bytes == 0 {
        if v.units == 0 {
            1.0
        } else {
            v.done as f64 / v.units as f64
        }
    } else {
        v.bytes_done as f64 / v.bytes as f64
    }
}

/// Whether anything in the view calls for attention: failures, a stale or far-behind slice,
/// an SLA at risk or missed (the exit status of `status`).
pub fn needs_attention(s: &RunStatus) -> bool {
    !s.failures.is_empty()
        || !s.quarantined.is_empty()
        || s.slices.iter().any(|v| v.straggler.is_some())
        || s.priorities
            .iter()
            .any(|p| p.verdict == "at risk" || p.verdict == "missed")
}

/// Where `status` reads a run: its folder, or a local copy of its run location brought up to
/// date before each reading.
pub struct RunReader {
    settings: StatusSettings,
    mirror: Option<location::Mirror>,
}

impl RunReader {
    /// Reads the run folder `settings.run`, or, with `mirror`, the run location it copies.
    pub fn new(settings: StatusSettings, mirror: Option<location::Mirror>) -> RunReader {
        RunReader { settings, mirror }
    }

    /// The run as it is at `now`.
    pub fn read(&mut self, now: DateTime<Utc>) -> anyhow::Result<RunStatus> {
        let Some(m) = self.mirror.as_mut() else {
            return read(&StatusSettings {
                now,
                ..self.settings.clone()
            });
        };
        let local = m.refresh()?.to_path_buf();
        let plan = self.settings.plan.clone();
        let mut view = read(&StatusSettings {
            run: local.clone(),
            plan,
            now,
            ..self.settings.clone()
        })?;
        // Messages name the run location, not its local copy.
        let here = local.display().to_string();
        let url = m.url().trim_end_matches('/').to_string();
        for u in &mut view.unreadable {
            *u = u.replace(&format!("{here}/out"), &url).replace(&here, &url);
        }
        view.run = url;
        Ok(view)
    }
}

/// Reads the run every `interval` seconds and hands each view to `draw`, until every slice has
/// ended (or a signal stops the process): the last view.
pub fn watch(
    reader: &mut RunReader,
    interval: f64,
    mut draw: impl FnMut(&RunStatus),
) -> anyhow::Result<RunStatus> {
    loop {
        let view = reader.read(Utc::now())?;
        draw(&view);
        if view.ended {
            return Ok(view);
        }
        std::thread::sleep(std::time::Duration::from_secs_f64(interval));
    }
}

/// Whether a slice's status document was written by a slice of `plan`: one that started
/// before the plan was made is an earlier run's of the same day (the slice of this run has not
/// started yet, a later stage's perhaps for a long while) and is not read. Workers' clocks may
/// be behind the planner's: a document is taken for an earlier run's only when it started more
/// than [`CLOCK_ALLOWANCE_SECONDS`] before the plan. A plan without its time (`--plan` of an
/// older batchwin) takes every document.
fn of_this_plan(plan: &Plan, d: &SliceStatus) -> bool {
    match (parse_time(&plan.created_at), parse_time(&d.started_at)) {
        (Some(planned), Some(started)) => {
            started >= planned - chrono::Duration::seconds(CLOCK_ALLOWANCE_SECONDS)
        }
        _ => true,
    }
}

/// How far behind the planner's clock a worker's may be (the run location lock allows as much).
const CLOCK_ALLOWANCE_SECONDS: i64 = 30;
