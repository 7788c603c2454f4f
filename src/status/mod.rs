//! `batchwin status`: one view of a whole run, while it runs and after, read from what its
//! slices write (never from an engine's API, so it is the same on every engine): the plan
//! (`RUN/plan.json`, or `--plan`: every unit, its priority and its estimated cost), each slice's live status
//! document (`RUN/out/status/slice-K.json`, see [`crate::engine::live`]) and, once a slice has
//! ended, its ledger (`RUN/out/ledgers/slice-K.duckdb`; a running slice's ledger cannot be
//! opened by another process).
//!
//! [`read`] builds a [`RunStatus`]: per priority the units done and left and the estimated
//! finish against the SLA, per slice its progress with stragglers flagged, the failures so far.
//! [`render`] draws it for a terminal; its JSON is the struct as serialized. [`history`] is the
//! runs seen afterwards (`batchwin log`). A run at a run location URL is read from a local copy
//! of its plan, documents and ledgers ([`location`], through [`RunReader`]).
//!
//! The estimate (see docs/operations.md): each unit's cost is the plan's estimate (the cost
//! history `plan --history` measured, seconds per byte per vendor); a running slice's pace is
//! its elapsed time over the estimated cost of the work it did so far (bytes done), and what
//! is left of it (every unit of that priority or a higher one, which the slice does first) is
//! its estimated cost at that pace. A slice not started yet starts when the slices of the
//! earlier stages end, and goes at the pace the running slices keep on average.

pub mod history;
pub mod location;
pub mod render;

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
    std::fs::read(run.join(WINDOW_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<WindowRecord>(&b).ok())
        .and_then(|w| w.location)
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

/// One priority's units against its SLA.
#[derive(Debug, Clone, Serialize)]
pub struct PriorityStatus {
    pub priority: String,
    pub units: u64,
    /// Units ended (in any state) and still to end.
    pub done: u64,
    pub left: u64,
    pub failed: u64,
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

/// A unit whose latest attempt did not succeed.
#[derive(Debug, Clone, Serialize)]
pub struct FailureView {
    pub slice: usize,
    pub vendor: String,
    pub input: String,
    pub part: Option<u32>,
    pub status: String,
    pub error: String,
}

/// Units by state over the whole run.
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

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

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

/// What one slice knows, before the estimates.
struct SliceFacts {
    doc: Option<SliceStatus>,
    /// Per vendor: units in the plan's slice, their priority and estimated seconds.
    plan_vendors: BTreeMap<String, (Priority, u64, f64, u64)>,
}

/// Reads the run in `s.run` as it is now.
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
    let mut facts = Vec::new();
    for slice in &plan.slices {
        let path = out
            .join(STATUS_DIR)
            .join(crate::engine::live::Live::slice_name(slice.index));
        let doc = read_document(&path).unwrap_or_else(|e| {
            unreadable.push(format!("{e:#}"));
            None
        });
        let mut plan_vendors: BTreeMap<String, (Priority, u64, f64, u64)> = BTreeMap::new();
        for u in &slice.units {
            let e = plan_vendors
                .entry(u.vendor.clone())
                .or_insert((u.priority, 0, 0.0, 0));
            e.1 += 1;
            e.2 += u.estimated_seconds;
            e.3 += u.bytes;
        }
        facts.push(SliceFacts { doc, plan_vendors });
    }
    let window_start = s.window_start.or_else(|| {
        std::fs::read(s.run.join(WINDOW_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<WindowRecord>(&b).ok())
            .and_then(|w| parse_time(&w.start))
    });
    let first_start = facts
        .iter()
        .filter_map(|f| f.doc.as_ref().and_then(|d| parse_time(&d.started_at)))
        .min();
    let window_start = window_start.or(first_start);

    // The ledgers of the slices that ended: their failures, as every run of them left them.
    let ledgers = out.join("ledgers");
    let ended: Vec<(usize, PathBuf)> = plan
        .slices
        .iter()
        .zip(&facts)
        .filter(|(_, f)| f.doc.as_ref().is_some_and(|d| d.state == LiveState::Ended))
        .map(|(sl, _)| {
            let p = ledgers.join(format!("slice-{:05}.duckdb", sl.index));
            (sl.index, p)
        })
        .filter(|(_, p)| p.exists())
        .collect();
    // With the window's quarantine and its releases: the files set aside.
    let quarantine: Vec<PathBuf> = [
        crate::ledger::QUARANTINE_LEDGER,
        crate::ledger::RELEASES_LEDGER,
    ]
    .iter()
    .map(|name| ledgers.join(name))
    .filter(|p| p.exists())
    .collect();
    let ended_ledgers: Vec<PathBuf> = ended.iter().map(|(_, p)| p.clone()).collect();
    let mut ledger_failures = Vec::new();
    let mut ledger_totals = None;
    let mut quarantined = Vec::new();
    if !ended_ledgers.is_empty() || !quarantine.is_empty() {
        let both: Vec<PathBuf> = ended_ledgers.iter().chain(&quarantine).cloned().collect();
        match crate::ledger::merge::with_latest(&both, |c| {
            Ok((
                crate::ledger::query::failed_attempts_by_slice(c)?,
                crate::ledger::query::totals(c)?,
                crate::ledger::query::quarantined(c)?,
            ))
        }) {
            Ok((f, t, q)) => {
                ledger_failures = f;
                ledger_totals = Some(t);
                quarantined = q;
            }
            Err(e) => unreadable.push(format!("the ended slices' ledgers: {e:#}")),
        }
    }
    // A slice counted by its ledger; one that ended without a ledger to read yet (a run
    // location's slice uploads it just after its last document) is counted by its document.
    let by_ledger: std::collections::BTreeSet<usize> = match ledger_totals {
        Some(_) => ended.iter().map(|(k, _)| *k).collect(),
        None => Default::default(),
    };

    let now = s.now;
    let mut slices = Vec::new();
    let mut totals = StatusTotals::default();
    let mut failures = Vec::new();
    // Pace of each running slice: elapsed seconds per estimated second of work done.
    let mut paces = Vec::new();
    for (sl, f) in plan.slices.iter().zip(&facts) {
        let units: u64 = sl.units.len() as u64;
        let bytes: u64 = sl.units.iter().map(|u| u.bytes).sum();
        let est: f64 = sl.units.iter().map(|u| u.estimated_seconds).sum();
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
        if let Some(d) = &f.doc {
            v.state = match d.state {
                LiveState::Running => "running",
                LiveState::Ended => "ended",
            }
            .into();
            v.exit_code = d.exit_code;
            // Units the plan gives the slice that this run of it did not have to do were done
            // by an earlier run (resumed).
            let resumed_bytes = bytes.saturating_sub(d.bytes);
            v.done = (units.saturating_sub(d.units) + d.done).min(units);
            v.running = d.running;
            v.bytes_done = (resumed_bytes + d.bytes_done).min(bytes);
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
            if d.state == LiveState::Running || !by_ledger.contains(&sl.index) {
                totals.succeeded += units.saturating_sub(d.units) + d.states.succeeded;
                totals.failed += d.states.failed;
                totals.deferred += d.states.deferred;
                totals.cancelled += d.states.cancelled;
                totals.blocked += d.states.blocked;
                totals.records += d.records;
                totals.rejected += d.rejected;
                failures.extend(d.failures.iter().map(|x| FailureView {
                    slice: sl.index,
                    vendor: x.vendor.clone(),
                    input: x.input.clone(),
                    part: x.part,
                    status: x.status.clone(),
                    error: x.error.clone(),
                }));
            }
            if d.state == LiveState::Running {
                let done_est = if bytes > 0 {
                    est * v.bytes_done as f64 / bytes as f64
                } else {
                    0.0
                };
                let elapsed = parse_time(&d.started_at)
                    .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0)
                    .unwrap_or(0.0);
                // Too little done to measure a pace: the estimate is taken as it is.
                if done_est > 0.0 && elapsed > 0.0 {
                    paces.push(elapsed / done_est);
                }
            }
        }
        totals.units += units;
        totals.done += v.done;
        totals.running += v.running;
        slices.push(v);
    }
    if let Some(t) = &ledger_totals {
        totals.succeeded += t.succeeded as u64;
        totals.failed += t.failed as u64;
        totals.deferred += t.deferred as u64;
        totals.cancelled += t.cancelled as u64;
        totals.blocked += t.blocked as u64;
        totals.quarantined += t.quarantined as u64;
        totals.records += t.records_in as u64;
        totals.rejected += t.records_rejected as u64;
    }
    // Quarantined units are listed with their file's quarantine, not as failures.
    for x in ledger_failures
        .into_iter()
        .filter(|x| x.attempt.status != "quarantined")
    {
        let a = x.attempt;
        failures.push(FailureView {
            slice: x
                .slice
                .strip_prefix("slice-")
                .and_then(|k| k.parse().ok())
                .unwrap_or(0),
            vendor: a.vendor,
            input: a.input_path,
            part: a.part.map(|p| p as u32),
            status: a.status,
            error: a.error,
        });
    }
    failures.sort_by(|a, b| {
        (a.slice, &a.vendor, &a.input, a.part).cmp(&(b.slice, &b.vendor, &b.input, b.part))
    });
    totals.left = totals.units.saturating_sub(totals.done + totals.running);

    let pace = if paces.is_empty() {
        1.0
    } else {
        paces.iter().sum::<f64>() / paces.len() as f64
    };
    // Estimated end of each slice, per priority: when its last unit of that priority (or of a
    // higher one, done before) ends. Slices of later stages start when the earlier ones end.
    let stages = plan
        .slices
        .iter()
        .map(|s| s.stage)
        .max()
        .map_or(0, |m| m + 1);
    let mut stage_end: Vec<DateTime<Utc>> = vec![now; stages];
    let mut slice_eta: Vec<BTreeMap<Priority, DateTime<Utc>>> = vec![BTreeMap::new(); slices.len()];
    for stage in 0..stages {
        let begin = if stage == 0 {
            now
        } else {
            stage_end[stage - 1]
        };
        let mut end = begin;
        for (i, (sl, f)) in plan.slices.iter().zip(&facts).enumerate() {
            if sl.stage != stage {
                continue;
            }
            let v = &slices[i];
            let ended = f.doc.as_ref().is_some_and(|d| d.state == LiveState::Ended);
            let ended_at = f
                .doc
                .as_ref()
                .and_then(|d| d.ended_at.as_deref())
                .and_then(parse_time);
            let (start, slice_pace) = match &f.doc {
                Some(d) if d.state == LiveState::Running => {
                    let elapsed = parse_time(&d.started_at)
                        .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0)
                        .unwrap_or(0.0);
                    let est: f64 = f.plan_vendors.values().map(|x| x.2).sum();
                    let done_est = if v.bytes > 0 {
                        est * v.bytes_done as f64 / v.bytes as f64
                    } else {
                        0.0
                    };
                    (
                        now,
                        if done_est > 0.0 && elapsed > 0.0 {
                            elapsed / done_est
                        } else {
                            pace
                        },
                    )
                }
                _ => (begin, pace),
            };
            let mut cumulative = 0.0;
            for p in [Priority::High, Priority::Medium, Priority::Low] {
                let mut has = false;
                for (vendor, (pr, n, secs, _)) in &f.plan_vendors {
                    if *pr != p {
                        continue;
                    }
                    has = true;
                    let done_v = f
                        .doc
                        .as_ref()
                        .and_then(|d| {
                            d.vendors
                                .iter()
                                .find(|x| &x.vendor == vendor)
                                .map(|x| (x.units, x.done))
                        })
                        .map_or(0, |(u, dn)| n.saturating_sub(u) + dn);
                    let left = n.saturating_sub(done_v) as f64;
                    cumulative += secs / (*n).max(1) as f64 * left;
                }
                if has {
                    let t = if ended {
                        ended_at.unwrap_or(now)
                    } else {
                        start
                            + chrono::Duration::milliseconds(
                                (cumulative * slice_pace * 1000.0) as i64,
                            )
                    };
                    slice_eta[i].insert(p, t);
                    end = end.max(t);
                }
            }
            if let Some(t) = slice_eta[i].values().max() {
                slices[i].eta = Some(rfc(*t));
            }
        }
        stage_end[stage] = end;
    }

    // Stragglers: running slices with no update for a while, or far behind the others of
    // their stage (less than half the median share of bytes done).
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
            if let Some(quiet) = v.seconds_since_update.filter(|q| *q > s.stale_seconds) {
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

    let slas: BTreeMap<Priority, f64> = plan
        .estimate
        .priorities
        .iter()
        .filter_map(|p| p.sla_seconds.map(|s| (p.priority, s)))
        .collect();
    let mut priorities = Vec::new();
    for p in [Priority::High, Priority::Medium, Priority::Low] {
        let mut units = 0u64;
        let mut done = 0u64;
        let mut has = false;
        for (i, f) in facts.iter().enumerate() {
            let ended = slices[i].state == "ended";
            for (vendor, (pr, n, _, _)) in &f.plan_vendors {
                if *pr != p {
                    continue;
                }
                has = true;
                units += n;
                done += if ended {
                    *n
                } else {
                    f.doc
                        .as_ref()
                        .and_then(|d| d.vendors.iter().find(|x| &x.vendor == vendor))
                        .map_or(0, |x| n.saturating_sub(x.units) + x.done)
                };
            }
        }
        if !has {
            continue;
        }
        let failed = failures
            .iter()
            .filter(|x| vendor_priority(&plan, &x.vendor) == Some(p))
            .count() as u64;
        let mut eta = slice_eta.iter().filter_map(|m| m.get(&p)).max().copied();
        if done >= units {
            // Finished: when its last unit ended, as the slices' documents recorded it.
            let last = facts
                .iter()
                .filter_map(|f| f.doc.as_ref())
                .flat_map(|d| &d.vendors)
                .filter(|v| v.priority == p.to_string())
                .filter_map(|v| v.last_ended_at.as_deref().and_then(parse_time))
                .max();
            eta = last.or(eta);
        }
        let sla = slas
            .get(&p)
            .zip(window_start)
            .map(|(s, w)| w + chrono::Duration::milliseconds((s * 1000.0) as i64));
        let finished = done >= units;
        let verdict = match (sla, eta) {
            (None, _) => "no SLA",
            // Units that did not succeed keep the priority from its SLA, as in the report.
            (Some(_), _) if finished && failed > 0 => "missed",
            (Some(sla), Some(eta)) if finished => {
                if eta <= sla {
                    "met"
                } else {
                    "missed"
                }
            }
            (Some(sla), _) if now > sla => "missed",
            (Some(sla), Some(eta)) if eta > sla => "at risk",
            (Some(_), _) => "on track",
        };
        priorities.push(PriorityStatus {
            priority: p.to_string(),
            units,
            done,
            left: units.saturating_sub(done),
            failed,
            eta: eta.map(rfc),
            sla: sla.map(rfc),
            verdict: verdict.into(),
        });
    }

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

/// The priority the plan gives `vendor`.
fn vendor_priority(plan: &Plan, vendor: &str) -> Option<Priority> {
    plan.slices
        .iter()
        .flat_map(|s| &s.units)
        .find(|u| u.vendor == vendor)
        .map(|u| u.priority)
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
