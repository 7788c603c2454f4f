//! The one estimate of when each slice and each priority ends, and the SLA verdict it leads
//! to: `status` draws it ([`super::read`]) and `run` tells the `sla_at_risk` webhooks from it
//! ([`crate::window`]'s SLA watch), both fed by the live status documents the slices write
//! ([`crate::engine::live`]), so a webhook says "at risk" when `status` does.
//!
//! Each unit's cost is the plan's estimate (the cost history `plan --history` measured,
//! seconds per byte per vendor). A running slice's pace is its elapsed time over the estimated
//! cost of the work it did so far (bytes done); what is left of it for a priority (every unit
//! of that priority or a higher one, which the slice does first) is its estimated cost at that
//! pace, from now. A slice not started yet starts when the slices of the earlier stages end,
//! and goes at the pace the running slices keep on average (the plan's estimate as it is,
//! before any slice measured one). An ended slice ended when its document says.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::config::Priority;
use crate::engine::live::{LiveState, SliceStatus};
use crate::plan::Plan;

/// When each slice and each priority is expected to end.
#[derive(Debug, Clone, Default)]
pub struct Finish {
    /// Per plan slice (in the plan's order): when its last unit of each priority it has ends.
    pub slices: Vec<BTreeMap<Priority, DateTime<Utc>>>,
    /// Per priority: the latest of its slices'.
    pub priorities: BTreeMap<Priority, DateTime<Utc>>,
}

/// A priority's progress by the documents alone: its planned units, and those ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PriorityProgress {
    pub units: u64,
    pub done: u64,
}

/// Seconds between two times, never negative.
fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds().max(0) as f64 / 1000.0
}

pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn after(t: DateTime<Utc>, s: f64) -> DateTime<Utc> {
    t + chrono::Duration::milliseconds((s.max(0.0) * 1000.0).min(1e15) as i64)
}

/// Units of `vendor` the plan gives a slice (`n`) that have ended, by its document: units this
/// run of the slice did not have to do were done by an earlier run (resumed).
fn vendor_done(doc: Option<&SliceStatus>, vendor: &str, n: u64) -> u64 {
    match doc {
        Some(d) if d.state == LiveState::Ended => n,
        Some(d) => d
            .vendors
            .iter()
            .find(|x| x.vendor == vendor)
            .map_or(0, |x| (n.saturating_sub(x.units) + x.done).min(n)),
        None => 0,
    }
}

/// A slice's input bytes done, resumed units included.
pub(crate) fn bytes_done(bytes: u64, doc: &SliceStatus) -> u64 {
    (bytes.saturating_sub(doc.bytes) + doc.bytes_done).min(bytes)
}

/// Per vendor of a plan slice: its priority, units, estimated seconds.
fn vendors_of(slice: &crate::plan::Slice) -> BTreeMap<&str, (Priority, u64, f64)> {
    let mut m: BTreeMap<&str, (Priority, u64, f64)> = BTreeMap::new();
    for u in &slice.units {
        let e = m.entry(u.vendor.as_str()).or_insert((u.priority, 0, 0.0));
        e.1 += 1;
        e.2 += u.estimated_seconds;
    }
    m
}

/// A running slice's pace: elapsed seconds per estimated second of the work it did; `None`
/// while too little is done to measure one.
fn pace_of(slice: &crate::plan::Slice, doc: &SliceStatus, now: DateTime<Utc>) -> Option<f64> {
    if doc.state != LiveState::Running {
        return None;
    }
    let bytes: u64 = slice.units.iter().map(|u| u.bytes).sum();
    let est: f64 = slice.units.iter().map(|u| u.estimated_seconds).sum();
    let done_est = if bytes > 0 {
        est * bytes_done(bytes, doc) as f64 / bytes as f64
    } else {
        0.0
    };
    let elapsed = parse_time(&doc.started_at).map_or(0.0, |t| seconds(t, now));
    (done_est > 0.0 && elapsed > 0.0).then(|| elapsed / done_est)
}

/// When each slice and priority of `plan` is expected to end, at `now`, from the slices'
/// documents (`docs[i]` is the plan's `i`th slice's, `None` before it wrote one).
pub fn estimate(plan: &Plan, docs: &[Option<SliceStatus>], now: DateTime<Utc>) -> Finish {
    let doc = |i: usize| docs.get(i).and_then(Option::as_ref);
    let paces: Vec<f64> = plan
        .slices
        .iter()
        .enumerate()
        .filter_map(|(i, sl)| doc(i).and_then(|d| pace_of(sl, d, now)))
        .collect();
    let pace = if paces.is_empty() {
        1.0
    } else {
        paces.iter().sum::<f64>() / paces.len() as f64
    };
    let stages = plan
        .slices
        .iter()
        .map(|s| s.stage)
        .max()
        .map_or(0, |m| m + 1);
    let mut begin = now;
    let mut out = Finish {
        slices: vec![BTreeMap::new(); plan.slices.len()],
        priorities: BTreeMap::new(),
    };
    for stage in 0..stages {
        let mut end = begin;
        for (i, sl) in plan.slices.iter().enumerate() {
            if sl.stage != stage {
                continue;
            }
            let d = doc(i);
            let ended_at = d
                .filter(|d| d.state == LiveState::Ended)
                .map(|d| d.ended_at.as_deref().and_then(parse_time).unwrap_or(now));
            let (start, slice_pace) = match d {
                Some(d) if d.state == LiveState::Running => {
                    (now, pace_of(sl, d, now).unwrap_or(pace))
                }
                _ => (begin, pace),
            };
            let vendors = vendors_of(sl);
            let mut cumulative = 0.0;
            for p in [Priority::High, Priority::Medium, Priority::Low] {
                let mut has = false;
                for (vendor, (pr, n, secs)) in &vendors {
                    if *pr != p {
                        continue;
                    }
                    has = true;
                    let left = n.saturating_sub(vendor_done(d, vendor, *n)) as f64;
                    cumulative += secs / (*n).max(1) as f64 * left;
                }
                if has {
                    let t = ended_at.unwrap_or_else(|| after(start, cumulative * slice_pace));
                    out.slices[i].insert(p, t);
                    end = end.max(t);
                    let e = out.priorities.entry(p).or_insert(t);
                    *e = (*e).max(t);
                }
            }
        }
        begin = end;
    }
    out
}

/// Each priority's planned units and those ended, by the documents alone.
pub fn progress(plan: &Plan, docs: &[Option<SliceStatus>]) -> BTreeMap<Priority, PriorityProgress> {
    let mut out: BTreeMap<Priority, PriorityProgress> = BTreeMap::new();
    for (i, sl) in plan.slices.iter().enumerate() {
        let d = docs.get(i).and_then(Option::as_ref);
        for (vendor, (p, n, _)) in vendors_of(sl) {
            let e = out.entry(p).or_default();
            e.units += n;
            e.done += vendor_done(d, vendor, n);
        }
    }
    out
}

/// Each priority's SLA as a time: its tightest, counted from the window's start.
pub fn slas(plan: &Plan, window_start: DateTime<Utc>) -> BTreeMap<Priority, DateTime<Utc>> {
    plan.estimate
        .priorities
        .iter()
        .filter_map(|p| p.sla_seconds.map(|s| (p.priority, after(window_start, s))))
        .collect()
}

/// A priority against its SLA, the one judgement `status` shows and the webhooks follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    NoSla,
    OnTrack,
    /// Units are left and the estimated finish is past the SLA.
    AtRisk,
    Met,
    /// Finished late or with units that did not succeed (as the report judges it), or the
    /// SLA passed with units left.
    Missed,
}

impl Verdict {
    /// Judges a priority: `finished` when none of its units is left or running, `eta` its
    /// (estimated, or last) end, `not_succeeded` its ended units in any state but succeeded.
    pub fn of(
        sla: Option<DateTime<Utc>>,
        eta: Option<DateTime<Utc>>,
        finished: bool,
        not_succeeded: u64,
        now: DateTime<Utc>,
    ) -> Verdict {
        match (sla, eta) {
            (None, _) => Verdict::NoSla,
            // Units that did not succeed keep the priority from its SLA, as in the report.
            (Some(_), _) if finished && not_succeeded > 0 => Verdict::Missed,
            (Some(sla), Some(eta)) if finished => {
                if eta <= sla {
                    Verdict::Met
                } else {
                    Verdict::Missed
                }
            }
            (Some(sla), _) if now > sla => Verdict::Missed,
            (Some(sla), Some(eta)) if eta > sla => Verdict::AtRisk,
            (Some(_), _) => Verdict::OnTrack,
        }
    }

    /// Its word on the screen and in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::NoSla => "no SLA",
            Verdict::OnTrack => "on track",
            Verdict::AtRisk => "at risk",
            Verdict::Met => "met",
            Verdict::Missed => "missed",
        }
    }
}

/// A priority whose units are not all ended and whose estimated finish is past its SLA
/// (`status` says `at risk`, or `missed` once the SLA passed).
#[derive(Debug, Clone, PartialEq)]
pub struct Late {
    pub priority: Priority,
    pub units: u64,
    pub eta: DateTime<Utc>,
    pub sla: DateTime<Utc>,
}

/// The priorities of `plan` estimated, from the slices' documents, to end after their SLA
/// counted from `window_start`.
pub fn late(
    plan: &Plan,
    docs: &[Option<SliceStatus>],
    window_start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<Late> {
    let est = estimate(plan, docs, now);
    let progress = progress(plan, docs);
    let slas = slas(plan, window_start);
    let mut out = Vec::new();
    for (p, pr) in progress {
        let (Some(sla), Some(eta)) = (slas.get(&p), est.priorities.get(&p)) else {
            continue;
        };
        let finished = pr.done >= pr.units;
        let v = Verdict::of(Some(*sla), Some(*eta), finished, 0, now);
        if !finished && matches!(v, Verdict::AtRisk | Verdict::Missed) {
            out.push(Late {
                priority: p,
                units: pr.units,
                eta: *eta,
                sla: *sla,
            });
        }
    }
    out
}
