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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WindowConfig;
    use crate::engine::live::Live;
    use crate::outcome::FileStatus;
    use crate::plan::Unit;
    use crate::status::tests::{done, live, plan, run_folder, unit};

    /// A slice going at twice the plan's estimate: the webhook says at risk as `status` does,
    /// from the slice's document (the plan's estimate alone, 40 s, would be in time), once; a
    /// document older than the watch (an earlier run's) is not read.
    #[test]
    fn at_risk_follows_the_documents_as_status_does() {
        let dir = run_folder();
        let docs = dir.join("out/status");
        let units: Vec<Unit> = (0..4)
            .map(|i| unit("H", Priority::High, &format!("h{i}.csv")))
            .collect();
        // Every unit estimated at 10 s: 40 s for the slice, the SLA 1,000 s after the window
        // opens. `plan` writes it to the run folder, where `status` reads it below.
        let plan = plan(&dir, vec![(0, units.clone())], 1000.0);
        let watch_started = Utc::now();
        let (live, progress) = live(&dir, &plan, 0);
        done(&live, &progress, &units[0], FileStatus::Succeeded);
        live.publish(&progress);
        let doc = crate::status::read_document(&docs.join(Live::slice_name(0)))
            .unwrap()
            .unwrap();
        // 20 s after the slice started, 10 s of estimated work done: 30 s left at a pace of 2,
        // 60 s from now; the SLA 40 s from now.
        let now = crate::status::eta::parse_time(&doc.started_at).unwrap()
            + chrono::Duration::seconds(20);
        let config: WindowConfig =
            toml::from_str("start = \"07:00\"\nend = \"09:00\"\nsource = \"/in\"").unwrap();
        let w = WindowDay {
            name: "morning".into(),
            date: "2026-12-03".into(),
            start: now + chrono::Duration::seconds(40) - chrono::Duration::seconds(1000),
            end: now + chrono::Duration::hours(1),
            span: "07:00-09:00".into(),
            config,
        };
        let at = |s: i64| rfc3339(now + chrono::Duration::seconds(s));

        // A watch started after the document: the document is this run's.
        let mut sw = SlaWatch::new(plan.clone(), watch_started, |k| {
            crate::status::read_document(&docs.join(Live::slice_name(k)))
                .ok()
                .flatten()
        });
        let events = sw.at_risk(&w, now);
        assert_eq!(events.len(), 1, "{events:?}");
        match &events[0] {
            Event::SlaAtRisk {
                priority,
                eta,
                sla,
                late_by_seconds,
                units,
                ..
            } => {
                assert_eq!(priority, "high");
                assert_eq!(*units, 4);
                assert_eq!(eta, &at(60));
                assert_eq!(sla, &at(40));
                assert_eq!(*late_by_seconds, 20.0);
            }
            other => panic!("{other:?}"),
        }
        // `status` says the same of the same documents.
        let view = crate::status::read(&crate::status::StatusSettings {
            plan: None,
            run: dir.clone(),
            stale_seconds: 600.0,
            window_start: Some(w.start),
            now,
        })
        .unwrap();
        assert_eq!(view.priorities[0].verdict, "at risk");
        assert_eq!(view.priorities[0].eta.as_deref(), Some(at(60).as_str()));
        // Once per run.
        assert!(sw.at_risk(&w, now).is_empty());

        // A watch started after the document was written (an earlier run's document): the
        // plan's estimate from now, 40 s, is in time.
        let later = Utc::now() + chrono::Duration::seconds(2);
        let mut sw = SlaWatch::new(plan, later, |k| {
            crate::status::read_document(&docs.join(Live::slice_name(k)))
                .ok()
                .flatten()
        });
        assert!(sw.at_risk(&w, now).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
