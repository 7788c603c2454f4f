//! The run report: what `report` shows of a run, summed up from its slices' ledgers.
//!
//! [`build`] merges the ledgers ([`crate::ledger::merge`]) and assembles a [`RunReport`] from
//! the ledger's reads ([`crate::ledger::query`]), counting each unit (a file, or a part of a
//! split file) once, by its latest attempt; [`render`] writes it in every text format (table,
//! markdown, CSV, JSON, HTML, Prometheus) and [`pdf`] as a PDF for paper. The report's JSON is
//! its data model as serialized here, so the field names and order below are part of the
//! output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use duckdb::Connection;
use serde::Serialize;

use crate::ledger::merge::{self, LedgerSource};
use crate::ledger::query;

pub mod pdf;
pub mod render;

/// Units by the state of their latest attempt: each view (the table, JSON, Prometheus, the
/// exit status) names which, so a unit the window's end deferred is never shown as failed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub files: i64,
    pub units: i64,
    pub succeeded: i64,
    /// Failed on their data or their output (see [`crate::outcome::UnitError`]).
    pub failed: i64,
    /// Not started: the window had ended (MEDIUM and LOW only); the next run does them.
    pub deferred: i64,
    /// Stopped by a signal; the next run does them again.
    pub cancelled: i64,
    /// Not started: a vendor they come `after` did not finish; the next run does them.
    pub blocked: i64,
    /// Failed, and their file failed the window's `max_attempts` runs: set aside, not planned
    /// until released (see [`crate::window::quarantine`]).
    pub quarantined: i64,
    pub records_in: i64,
    pub records_out: i64,
    pub records_rejected: i64,
    pub bytes: i64,
    pub wall_seconds: f64,
    pub records_per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct VendorRow {
    pub vendor: String,
    pub priority: String,
    pub units: i64,
    pub failed: i64,
    pub deferred: i64,
    pub cancelled: i64,
    pub blocked: i64,
    pub quarantined: i64,
    pub records_in: i64,
    pub records_rejected: i64,
    pub seconds: f64,
    pub records_per_second: f64,
    pub top_reasons: Vec<(String, i64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SliceRow {
    pub slice: String,
    pub start: String,
    pub end: String,
    pub seconds: f64,
    pub units: i64,
    pub records: i64,
    /// Seconds between this slice's end and the last slice's end.
    pub idle_seconds: f64,
    pub straggler: bool,
}

/// A unit whose latest attempt did not succeed.
#[derive(Debug, Clone, Serialize)]
pub struct FailedUnit {
    pub vendor: String,
    pub input_path: String,
    pub part: Option<i64>,
    /// `failed`, `deferred`, `cancelled` or `blocked`.
    pub status: String,
    pub error: String,
}

/// One priority's files against its SLA.
#[derive(Debug, Clone, Serialize)]
pub struct PriorityRow {
    pub priority: String,
    pub units_done: i64,
    pub units_failed: i64,
    pub units_deferred: i64,
    pub units_cancelled: i64,
    pub units_blocked: i64,
    pub units_quarantined: i64,
    /// Units in the plan with no result (needs the plan).
    pub units_missing: i64,
    /// Seconds from the window start to the priority's last finish.
    pub finished_after_seconds: Option<f64>,
    /// The tightest SLA among the priority's vendors (needs the config).
    pub sla_seconds: Option<f64>,
    /// How much later than the SLA it finished (negative: how much earlier).
    pub late_by_seconds: Option<f64>,
    pub sla_met: bool,
}

impl PriorityRow {
    /// Its units that are not done, by state, the non-zero ones: `15 deferred, 2 missing`.
    pub fn not_done(&self) -> String {
        states(&[
            (self.units_failed, "failed"),
            (self.units_deferred, "deferred"),
            (self.units_cancelled, "cancelled"),
            (self.units_blocked, "blocked"),
            (self.units_quarantined, "quarantined"),
            (self.units_missing, "missing"),
        ])
    }
}

impl Totals {
    /// Units by state: `8 succeeded, 0 failed`, then deferred, cancelled, blocked and
    /// quarantined when there are any.
    pub fn states(&self) -> String {
        let mut s = format!("{} succeeded, {} failed", self.succeeded, self.failed);
        let more = states(&[
            (self.deferred, "deferred"),
            (self.cancelled, "cancelled"),
            (self.blocked, "blocked"),
            (self.quarantined, "quarantined"),
        ]);
        if !more.is_empty() {
            s.push_str(", ");
            s.push_str(&more);
        }
        s
    }
}

/// `n state` for each non-zero count, comma-separated.
fn states(counts: &[(i64, &str)]) -> String {
    counts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, s)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A planned unit with no result.
#[derive(Debug, Clone, Serialize)]
pub struct Missing {
    pub slice: usize,
    pub vendor: String,
    pub priority: String,
    pub location: String,
    pub part: Option<u32>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub window_start: Option<String>,
    /// The masking profiles the runs applied and whose verified tokens chose them (the audit
    /// trail); empty, and left out of the JSON, when no run had a token.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub masking: Vec<query::MaskingAudit>,
    pub totals: Totals,
    pub priorities: Vec<PriorityRow>,
    pub vendors: Vec<VendorRow>,
    pub slices: Vec<SliceRow>,
    pub failures: Vec<FailedUnit>,
    /// Files in quarantine, with their attempts and last error (their units are not in
    /// `failures`).
    pub quarantined: Vec<query::Quarantined>,
    pub missing: Vec<Missing>,
    /// Planned slices with no ledger at all.
    pub slices_never_started: Vec<usize>,
    pub unreadable: Vec<LedgerSource>,
    /// Every unit's run, in seconds from the window start, for the timeline.
    pub timeline: Vec<TimelineItem>,
    /// Records finished in each tenth of the run.
    pub throughput: Vec<ThroughputBucket>,
    /// What the `process` runs cost: their measured wall time × threads, priced.
    pub cost: crate::plan::cost::RunCost,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineItem {
    pub slice: String,
    pub vendor: String,
    pub priority: String,
    pub name: String,
    pub start_seconds: f64,
    pub end_seconds: f64,
    pub failed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThroughputBucket {
    pub end_seconds: f64,
    pub records: i64,
}

/// What the report knows besides the ledgers.
#[derive(Debug, Default)]
pub struct Context<'a> {
    pub plan: Option<&'a crate::plan::Plan>,
    /// Each priority's tightest SLA, seconds.
    pub slas: BTreeMap<String, f64>,
    /// When the window opened; default: the first start in the ledgers.
    pub window_start: Option<chrono::DateTime<chrono::Utc>>,
    /// The config's `[pricing]`; `None`: the example prices.
    pub pricing: Option<crate::plan::cost::Pricing>,
}

impl RunReport {
    /// Whether `priority` finished later than its SLA.
    pub fn sla_missed(&self, priority: &str) -> bool {
        self.priorities
            .iter()
            .any(|r| r.priority == priority && r.late_by_seconds.is_some_and(|l| l > 0.0))
    }
}

/// Merges `ledgers` into the ledger at `merged` (created when missing, its slices' rows
/// replaced when there) and sums it up.
pub fn build(merged: &Path, ledgers: &[PathBuf], ctx: &Context<'_>) -> anyhow::Result<RunReport> {
    let (conn, sources) = merge::merge(merged, ledgers)?;
    summarize(&conn, &sources, ctx).map_err(|e| anyhow::anyhow!("`{}`: {e}", merged.display()))
}

/// Sums up a merged ledger (and writes its `history` table).
pub fn summarize(
    conn: &Connection,
    sources: &[LedgerSource],
    ctx: &Context<'_>,
) -> Result<RunReport, duckdb::Error> {
    query::make_latest(conn)?;
    merge::write_history(conn)?;
    let t = query::totals(conn)?;
    let totals = Totals {
        files: t.files,
        units: t.units,
        succeeded: t.succeeded,
        failed: t.failed,
        deferred: t.deferred,
        cancelled: t.cancelled,
        blocked: t.blocked,
        quarantined: t.quarantined,
        records_in: t.records_in,
        records_out: t.records_out,
        records_rejected: t.records_rejected,
        bytes: t.bytes,
        wall_seconds: t.wall_seconds,
        records_per_second: per_second(t.records_in, t.wall_seconds),
    };

    // Each vendor's three most frequent reasons.
    let mut reasons: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    for r in query::reject_reasons(conn)? {
        let list = reasons.entry(r.vendor).or_default();
        if list.len() < 3 {
            list.push((r.reason, r.count));
        }
    }
    let vendors = query::vendor_totals(conn)?
        .into_iter()
        .map(|v| VendorRow {
            top_reasons: reasons.remove(&v.vendor).unwrap_or_default(),
            records_per_second: per_second(v.records_in, v.seconds),
            vendor: v.vendor,
            priority: v.priority,
            units: v.units,
            failed: v.failed,
            deferred: v.deferred,
            cancelled: v.cancelled,
            blocked: v.blocked,
            quarantined: v.quarantined,
            records_in: v.records_in,
            records_rejected: v.records_rejected,
            seconds: v.seconds,
        })
        .collect();
    let mut slices: Vec<SliceRow> = query::slice_totals(conn)?
        .into_iter()
        .map(|s| SliceRow {
            slice: s.slice,
            start: s.start,
            end: s.end,
            seconds: s.seconds,
            units: s.units,
            records: s.records,
            idle_seconds: s.idle_seconds,
            straggler: false,
        })
        .collect();
    // A straggler takes half again as long as the median slice, and at least a second more.
    let mut d: Vec<f64> = slices.iter().map(|s| s.seconds).collect();
    d.sort_by(f64::total_cmp);
    if let Some(median) = d.get(d.len() / 2).copied() {
        for s in &mut slices {
            s.straggler = d.len() >= 2 && s.seconds > median * 1.5 && s.seconds - median >= 1.0;
        }
    }
    let failures = query::failed_attempts(conn)?
        .into_iter()
        .filter(|f| f.status != "quarantined")
        .map(|f| FailedUnit {
            vendor: f.vendor,
            input_path: f.input_path,
            part: f.part,
            status: f.status,
            error: f.error,
        })
        .collect();
    // What the plan expected and the ledgers do not have.
    let mut missing = Vec::new();
    let mut slices_never_started = Vec::new();
    if let Some(plan) = ctx.plan {
        let done = query::attempted_units(conn)?;
        let ran: std::collections::HashSet<&str> = sources
            .iter()
            .filter(|s| s.error.is_none())
            .map(|s| s.slice.as_str())
            .collect();
        for sl in &plan.slices {
            if !ran.contains(format!("slice-{:05}", sl.index).as_str()) {
                slices_never_started.push(sl.index);
            }
            for u in &sl.units {
                let part = u.part.as_ref().map(|p| p.index);
                if !done.contains(&(u.location.clone(), part.map(i64::from))) {
                    missing.push(Missing {
                        slice: sl.index,
                        vendor: u.vendor.clone(),
                        priority: u.priority.to_string(),
                        location: u.location.clone(),
                        part,
                    });
                }
            }
        }
    }
    // Files the plan left for the next run (the day did not fit): deferred, with its reason.
    let planned_later: Vec<FailedUnit> = ctx
        .plan
        .and_then(|p| p.deferred.as_ref())
        .map(|d| {
            d.files
                .iter()
                .map(|f| FailedUnit {
                    vendor: f.vendor.clone(),
                    input_path: f.location.clone(),
                    part: None,
                    status: "deferred".into(),
                    error: format!("left for the next run by the plan: {}", d.reason),
                })
                .collect()
        })
        .unwrap_or_default();
    let later_of = |p: &str| {
        ctx.plan.and_then(|pl| pl.deferred.as_ref()).map_or(0, |d| {
            d.files
                .iter()
                .filter(|f| f.priority.to_string() == p)
                .count() as i64
        })
    };
    // Priorities against their SLAs, measured from the window start.
    let first_start = query::first_start(conn)?;
    let window_start = ctx.window_start.or_else(|| {
        first_start
            .as_deref()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.with_timezone(&chrono::Utc))
    });
    let mut priorities = Vec::new();
    for p in ["high", "medium", "low"] {
        let query::PriorityTotals {
            succeeded: done,
            failed,
            deferred,
            cancelled,
            blocked,
            quarantined,
            last_end: last,
        } = query::priority_totals(conn, p)?;
        let deferred = deferred + later_of(p);
        let units_missing = missing.iter().filter(|m| m.priority == p).count() as i64;
        let not_done = failed + deferred + cancelled + blocked + quarantined + units_missing;
        if done + not_done == 0 {
            continue;
        }
        let finished = match (&last, window_start) {
            (Some(l), Some(w)) => chrono::DateTime::parse_from_rfc3339(l)
                .ok()
                .map(|e| (e.with_timezone(&chrono::Utc) - w).num_milliseconds() as f64 / 1000.0),
            _ => None,
        };
        let sla = ctx.slas.get(p).copied();
        let late = match (finished, sla) {
            (Some(f), Some(s)) => Some(f - s),
            _ => None,
        };
        priorities.push(PriorityRow {
            priority: p.to_string(),
            units_done: done,
            units_failed: failed,
            units_deferred: deferred,
            units_cancelled: cancelled,
            units_blocked: blocked,
            units_quarantined: quarantined,
            units_missing,
            finished_after_seconds: finished,
            sla_seconds: sla,
            late_by_seconds: late,
            sla_met: not_done == 0 && late.is_none_or(|l| l <= 0.0),
        });
    }
    // The timeline and throughput, relative to the window start.
    let origin = window_start
        .map(|w| w.timestamp_micros() as f64 / 1e6)
        .unwrap_or(0.0);
    let timeline: Vec<TimelineItem> = query::unit_spans(conn)?
        .into_iter()
        .map(|u| {
            let name = u
                .input_path
                .rsplit('/')
                .next()
                .unwrap_or(&u.input_path)
                .to_string();
            TimelineItem {
                slice: u.slice,
                vendor: u.vendor,
                priority: u.priority,
                name: match u.part {
                    Some(p) => format!("{name} part {}", p + 1),
                    None => name,
                },
                start_seconds: u.started - origin,
                end_seconds: u.ended - origin,
                failed: !u.succeeded,
            }
        })
        .collect();
    let span = timeline.iter().map(|t| t.end_seconds).fold(0.0, f64::max);
    let mut throughput: Vec<ThroughputBucket> = (1..=10)
        .map(|i| ThroughputBucket {
            end_seconds: span * i as f64 / 10.0,
            records: 0,
        })
        .collect();
    for (end, n) in query::unit_ends(conn, origin)? {
        let i = if span > 0.0 {
            ((end / span) * 10.0).ceil() as usize
        } else {
            1
        };
        if let Some(b) = throughput.get_mut(i.clamp(1, 10) - 1) {
            b.records += n;
        }
    }
    let mut totals = totals;
    totals.deferred += planned_later.len() as i64;
    totals.units += planned_later.len() as i64;
    totals.files += planned_later.len() as i64;
    let mut failures: Vec<FailedUnit> = failures;
    failures.extend(planned_later);
    let pricing = ctx.pricing.clone().unwrap_or_else(|| {
        crate::plan::cost::Pricing::from_config(&crate::config::PricingConfig::default())
    });
    let used = query::process_use(conn)?;
    Ok(RunReport {
        cost: crate::plan::cost::run_cost(
            used.runs,
            used.vcpu_seconds_held,
            (used.cpu_seconds, used.runs_with_cpu),
            &pricing,
        ),
        timeline,
        throughput,
        masking: query::masking_audit(conn)?,
        window_start: window_start.map(|w| w.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        totals,
        priorities,
        vendors,
        slices,
        failures,
        quarantined: query::quarantined(conn)?,
        missing,
        slices_never_started,
        unreadable: sources
            .iter()
            .filter(|s| s.error.is_some())
            .cloned()
            .collect(),
    })
}

/// Records per second, 0 when no time passed.
fn per_second(records: i64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        records as f64 / seconds
    } else {
        0.0
    }
}
