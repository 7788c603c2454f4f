//! Whether a priority will make its SLA, while the run goes on: the plan's estimated finish
//! per priority (the cost model `plan` uses), stretched by how much longer the slices ended so
//! far took than the plan estimated them (measured throughput), against the SLA counted from
//! the window's start. Each priority is reported at risk once per run; the report says
//! afterwards whether it was met ([`missed`]).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::Priority;
use crate::notify::Event;
use crate::plan::{Plan, PriorityEstimate};

use super::day::WindowDay;

pub(crate) struct SlaWatch {
    /// When the slices started.
    started: DateTime<Utc>,
    priorities: Vec<PriorityEstimate>,
    /// Each slice's estimated seconds.
    estimates: Vec<f64>,
    /// Seconds the ended slices took and were estimated to take.
    taken: f64,
    estimated: f64,
    warned: HashSet<Priority>,
}

impl SlaWatch {
    pub fn new(plan: &Plan, started: DateTime<Utc>) -> SlaWatch {
        SlaWatch {
            started,
            priorities: plan.estimate.priorities.clone(),
            estimates: plan.slices.iter().map(|s| s.estimated_seconds).collect(),
            taken: 0.0,
            estimated: 0.0,
            warned: HashSet::new(),
        }
    }

    /// Slice `k` ended after `seconds`.
    pub fn slice_ended(&mut self, k: usize, seconds: f64) {
        if let Some(e) = self.estimates.get(k) {
            self.taken += seconds;
            self.estimated += e;
        }
    }

    /// How much longer than estimated the work takes (1 before any slice ended). A slice of
    /// almost no estimated work (a process starting is most of it) says little: below a
    /// second of estimated work, the plan's figures stand.
    fn stretch(&self) -> f64 {
        if self.estimated >= 1.0 {
            (self.taken / self.estimated).max(1.0)
        } else {
            1.0
        }
    }

    /// The priorities newly estimated to finish after their SLA.
    pub fn at_risk(&mut self, w: &WindowDay) -> Vec<Event> {
        let stretch = self.stretch();
        let mut out = Vec::new();
        for p in &self.priorities {
            let Some(sla) = p.sla_seconds else { continue };
            if p.units == 0 || self.warned.contains(&p.priority) {
                continue;
            }
            let eta = self.started + secs(p.estimated_finish_seconds * stretch);
            let sla_at = w.start + secs(sla);
            if eta > sla_at {
                self.warned.insert(p.priority);
                out.push(Event::SlaAtRisk {
                    window: w.name.clone(),
                    date: w.date.clone(),
                    priority: p.priority.to_string(),
                    units: p.units as u64,
                    eta: rfc3339(eta),
                    sla: rfc3339(sla_at),
                    late_by_seconds: (eta - sla_at).num_milliseconds() as f64 / 1000.0,
                });
            }
        }
        out
    }
}

fn secs(s: f64) -> chrono::Duration {
    chrono::Duration::milliseconds((s.max(0.0) * 1000.0).min(1e15) as i64)
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
