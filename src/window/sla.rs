//! Whether a priority will make its SLA, while the run goes on: the estimate `status` shows
//! ([`crate::status::eta`]: the plan's cost model, at the pace each running slice measured in
//! its live status document), looked at when the slices start, every few seconds while they
//! run and each time one ends, against the SLA counted from the window's start. A priority
//! `status` would call `at risk` (or `missed`, the SLA passed with units left) is reported at
//! risk, once per run; the report says afterwards whether it was met ([`missed`]).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};
use serde_json::Value;

use crate::config::Priority;
use crate::engine::live::SliceStatus;
use crate::notify::Event;
use crate::plan::Plan;

use super::day::WindowDay;

/// How often the documents are read again while the slices run (each is replaced about once a
/// second): the webhook follows `status` within this.
const LOOK_EVERY: Duration = Duration::from_secs(2);

pub(crate) struct SlaWatch<'a> {
    plan: Plan,
    /// When the slices started: a document from before (an earlier run of the day) is not
    /// this run's.
    started: DateTime<Utc>,
    /// Reads the status document of the plan's slice with this index (`None`: none yet).
    document: Box<dyn FnMut(usize) -> Option<SliceStatus> + 'a>,
    looked: Option<Instant>,
    warned: HashSet<Priority>,
}

impl<'a> SlaWatch<'a> {
    pub fn new(
        plan: Plan,
        started: DateTime<Utc>,
        document: impl FnMut(usize) -> Option<SliceStatus> + 'a,
    ) -> SlaWatch<'a> {
        SlaWatch {
            plan,
            started,
            document: Box::new(document),
            looked: None,
            warned: HashSet::new(),
        }
    }

    /// The priorities newly estimated to finish after their SLA, when it is time to look
    /// again (`now_anyway`: a slice just ended, or the slices start).
    pub fn look(&mut self, w: &WindowDay, now_anyway: bool) -> Vec<Event> {
        if !now_anyway && self.looked.is_some_and(|t| t.elapsed() < LOOK_EVERY) {
            return Vec::new();
        }
        self.looked = Some(Instant::now());
        self.at_risk(w, Utc::now())
    }

    /// The priorities newly estimated, at `now`, to finish after their SLA.
    pub fn at_risk(&mut self, w: &WindowDay, now: DateTime<Utc>) -> Vec<Event> {
        // Documents give times to the second.
        let started = self.started.with_nanosecond(0).unwrap_or(self.started);
        let docs: Vec<Option<SliceStatus>> = self
            .plan
            .slices
            .iter()
            .map(|sl| {
                (self.document)(sl.index).filter(|d| {
                    crate::status::eta::parse_time(&d.started_at).is_some_and(|t| t >= started)
                })
            })
            .collect();
        let mut out = Vec::new();
        for l in crate::status::eta::late(&self.plan, &docs, w.start, now) {
            if !self.warned.insert(l.priority) {
                continue;
            }
            out.push(Event::SlaAtRisk {
                window: w.name.clone(),
                date: w.date.clone(),
                priority: l.priority.to_string(),
                units: l.units,
                eta: rfc3339(l.eta),
                sla: rfc3339(l.sla),
                late_by_seconds: (l.eta - l.sla).num_milliseconds() as f64 / 1000.0,
            });
        }
        out
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The priorities the report (`report --format json`) says missed their SLA.
pub(crate) fn missed(report: &Value, w: &WindowDay) -> Vec<Event> {
    let rows = report["priorities"].as_array().cloned().unwrap_or_default();
    rows.iter()
        .filter(|p| p["sla_met"] == Value::Bool(false))
        .filter_map(|p| {
            let not = |k: &str, what: &str| {
                let n = p[k].as_i64().unwrap_or(0);
                (n > 0).then(|| format!("{n} {what}"))
            };
            let not_done: Vec<String> = [
                not("units_failed", "failed"),
                not("units_deferred", "deferred"),
                not("units_blocked", "blocked"),
                not("units_cancelled", "cancelled"),
                not("units_quarantined", "quarantined"),
                not("units_missing", "missing"),
            ]
            .into_iter()
            .flatten()
            .collect();
            Some(Event::SlaMissed {
                window: w.name.clone(),
                date: w.date.clone(),
                priority: p["priority"].as_str()?.to_string(),
                sla_seconds: p["sla_seconds"].as_f64()?,
                finished_after_seconds: p["finished_after_seconds"].as_f64(),
                late_by_seconds: p["late_by_seconds"].as_f64(),
                not_done: not_done.join(", "),
            })
        })
        .collect()
}

/// The window's end with the report's totals (zeros when no report was made).
pub(crate) fn finished(report: Option<&Value>, w: &WindowDay, exit_code: i32) -> Event {
    let t = report.map(|r| &r["totals"]);
    let n = |k: &str| t.and_then(|t| t[k].as_i64()).unwrap_or(0);
    Event::WindowFinished {
        window: w.name.clone(),
        date: w.date.clone(),
        exit_code,
        files: n("files"),
        units: n("units"),
        succeeded: n("succeeded"),
        failed: n("failed"),
        deferred: n("deferred"),
        cancelled: n("cancelled"),
        blocked: n("blocked"),
        quarantined: n("quarantined"),
        records_in: n("records_in"),
        records_out: n("records_out"),
        records_rejected: n("records_rejected"),
        bytes: n("bytes"),
        wall_seconds: t.and_then(|t| t["wall_seconds"].as_f64()).unwrap_or(0.0),
    }
}
