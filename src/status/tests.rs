//! [`super::read`] and [`super::render`] on run folders written by the code itself: plans,
//! slices' status documents written by [`Live`], ledgers written by [`Ledger`]; the time to
//! judge against is set from the documents' own times. The SLA watch's tests build their run
//! folders with the same fixtures, so that both read the same documents.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::engine::Progress;
use crate::engine::live::{Live, PlannedUnit};
use crate::ledger::{Ledger, RunInfo};
use crate::outcome::{FailedOn, FileOutcome, FileStatus};
use crate::plan::{Estimate, PLAN_VERSION, PriorityEstimate, Slice, Unit};

/// Each unit: 100 bytes, estimated at 10 s.
const BYTES: u64 = 100;
const SECONDS: f64 = 10.0;

pub(crate) fn run_folder() -> PathBuf {
    let d = std::env::temp_dir().join(format!("bw-status-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(d.join("out/status")).unwrap();
    std::fs::create_dir_all(d.join("out/ledgers")).unwrap();
    d
}

pub(crate) fn unit(vendor: &str, priority: Priority, name: &str) -> Unit {
    Unit {
        vendor: vendor.into(),
        location: format!("/in/{name}"),
        priority,
        bytes: BYTES,
        file_bytes: BYTES,
        sha256: String::new(),
        modified: None,
        estimated_seconds: SECONDS,
        part: None,
    }
}

/// A plan of `slices` (stage, units), every priority with an SLA of `sla` seconds, written to
/// `RUN/plan.json`.
pub(crate) fn plan(run: &Path, slices: Vec<(usize, Vec<Unit>)>, sla: f64) -> Plan {
    let priorities = [Priority::High, Priority::Medium, Priority::Low]
        .into_iter()
        .map(|p| PriorityEstimate {
            priority: p,
            units: slices
                .iter()
                .flat_map(|s| &s.1)
                .filter(|u| u.priority == p)
                .count(),
            estimated_finish_seconds: 0.0,
            sla_seconds: Some(sla),
            meets_sla: true,
        })
        .collect();
    let plan = Plan {
        version: PLAN_VERSION,
        created_at: String::new(),
        date: "2026-12-03".into(),
        manifest_sha256: String::new(),
        config_sha256: String::new(),
        estimate: Estimate {
            total_bytes: 0,
            total_work_seconds: 0.0,
            window_seconds: None,
            utilization: 0.0,
            slices: slices.len(),
            makespan_seconds: 0.0,
            priorities,
        },
        stages: Vec::new(),
        slices: slices
            .into_iter()
            .enumerate()
            .map(|(index, (stage, units))| Slice {
                index,
                stage,
                estimated_seconds: units.len() as f64 * SECONDS,
                units,
            })
            .collect(),
        masking: Default::default(),
        deferred: None,
        traceparent: None,
        config: None,
    };
    std::fs::write(run.join("plan.json"), serde_json::to_vec(&plan).unwrap()).unwrap();
    plan
}

/// Slice `k`'s live status, as `process` keeps it, with every unit of the plan's slice to do.
pub(crate) fn live(run: &Path, plan: &Plan, k: usize) -> (Live, Progress) {
    let live = Live::in_folder(&run.join("out/status"), &Live::slice_name(k), Some(k), 0);
    let progress = Progress::default();
    let units: Vec<PlannedUnit> = plan.slices[k]
        .units
        .iter()
        .map(|u| PlannedUnit {
            vendor: u.vendor.clone(),
            priority: u.priority.to_string(),
            bytes: u.bytes,
        })
        .collect();
    live.begin(&units, &progress);
    (live, progress)
}

fn outcome(u: &Unit, status: FileStatus) -> FileOutcome {
    let mut o = FileOutcome::new(&u.vendor, Path::new(&u.location), u.bytes, None);
    o.status = status;
    o.records_in = 10;
    if status != FileStatus::Succeeded {
        o.error = Some("over the skip limit".into());
        o.failed_on = Some(FailedOn::Data);
        o.records_rejected = 3;
    }
    o
}

/// Unit `u` of the live slice done, in `status`.
pub(crate) fn done(live: &Live, progress: &Progress, u: &Unit, status: FileStatus) {
    live.unit_started(&u.vendor, Path::new(&u.location), None);
    progress.add(u.bytes, 10, 0);
    live.unit_ended(&outcome(u, status), Path::new(&u.location), u.bytes);
}

/// A run of slice `k` recorded in its ledger, each unit in its state.
fn ledger(run: &Path, k: usize, units: &[(&Unit, FileStatus)]) -> PathBuf {
    let path = run.join(format!("out/ledgers/slice-{k:05}.duckdb"));
    let mut l = Ledger::open(&path).unwrap();
    let r = RunInfo::new("process");
    l.begin_run(&r).unwrap();
    let files: Vec<(String, FileOutcome)> = units
        .iter()
        .map(|(u, s)| (u.priority.to_string(), outcome(u, *s)))
        .collect();
    l.record_files(&r, &files).unwrap();
    l.end_run(&r, 1).unwrap();
    path
}

fn started(run: &Path, k: usize) -> DateTime<Utc> {
    let d = read_document(&run.join("out/status").join(Live::slice_name(k)))
        .unwrap()
        .unwrap();
    parse_time(&d.started_at).unwrap()
}

fn settings(run: &Path, window_start: DateTime<Utc>, now: DateTime<Utc>) -> StatusSettings {
    StatusSettings {
        plan: None,
        run: run.to_path_buf(),
        stale_seconds: 600.0,
        window_start: Some(window_start),
        now,
    }
}

fn priority<'a>(s: &'a RunStatus, p: &str) -> &'a PriorityStatus {
    s.priorities
        .iter()
        .find(|x| x.priority == p)
        .unwrap_or_else(|| panic!("{p} in {s:?}"))
}

/// A running slice at twice the plan's estimate, a slice of the next stage waiting: each
/// priority's ETA, and the verdict against SLAs a little later and a little earlier than the
/// ETA; the webhook's estimate ([`eta::late`]) says at risk exactly when `status` does.
#[test]
fn each_priority_has_an_eta_at_the_measured_pace_and_its_verdict() {
    let run = run_folder();
    let h = |n: &str| unit("H", Priority::High, n);
    let l = |n: &str| unit("L", Priority::Low, n);
    let plan = plan(
        &run,
        vec![
            (0, vec![h("h1.csv"), h("h2.csv"), l("l1.csv"), l("l2.csv")]),
            (1, vec![h("h3.csv")]),
        ],
        1000.0,
    );
    let (live0, progress) = live(&run, &plan, 0);
    done(
        &live0,
        &progress,
        &plan.slices[0].units[0],
        FileStatus::Succeeded,
    );
    live0.unit_started("H", Path::new("/in/h2.csv"), None);
    live0.publish(&progress);
    // 20 s after the slice started, 10 s of estimated work done: a pace of 2.
    let now = started(&run, 0) + Duration::seconds(20);
    let at = |s: f64| rfc(now + Duration::milliseconds((s * 1000.0) as i64));
    // HIGH: h2 left in slice 0 (10 s × 2), then slice 1 once stage 0 ended (after l1 and l2,
    // 60 s from now), h3 at the same pace: 80 s from now. LOW: slice 0's end, 60 s.
    let low_eta = 2.0 * SECONDS * 3.0;
    let high_eta = low_eta + 2.0 * SECONDS;

    // The SLA (1000 s after the window opened) 10 s after HIGH's ETA, then 10 s before it.
    for (late_by, verdict) in [(-10.0, "on track"), (10.0, "at risk")] {
        let sla_at = high_eta - late_by;
        let window = now + Duration::seconds((sla_at - 1000.0) as i64);
        let s = read(&settings(&run, window, now)).unwrap();
        let high = priority(&s, "high");
        assert_eq!(high.eta.as_deref(), Some(at(high_eta).as_str()), "{high:?}");
        assert_eq!(high.sla.as_deref(), Some(at(sla_at).as_str()), "{high:?}");
        assert_eq!(high.verdict, verdict, "{high:?}");
        assert_eq!((high.units, high.done, high.left), (3, 1, 2), "{high:?}");
        let low = priority(&s, "low");
        assert_eq!(low.eta.as_deref(), Some(at(low_eta).as_str()), "{low:?}");
        assert_eq!(low.verdict, "on track", "{low:?}");
        assert_eq!(s.slices[0].eta.as_deref(), Some(at(low_eta).as_str()));
        assert_eq!(s.slices[1].eta.as_deref(), Some(at(high_eta).as_str()));
        assert_eq!(s.slices[1].state, "waiting");
        // The figures add up: 1 succeeded, 1 running, 3 left.
        let t = &s.totals;
        assert_eq!((t.units, t.done, t.running, t.left), (5, 1, 1, 3), "{t:?}");
        assert_eq!(t.succeeded, t.done, "{t:?}");
        // What `run` tells the webhooks, from the same documents.
        let docs: Vec<Option<SliceStatus>> = (0..2)
            .map(|k| read_document(&run.join("out/status").join(Live::slice_name(k))).unwrap())
            .collect();
        let late = eta::late(&plan, &docs, window, now);
        let late: Vec<String> = late.iter().map(|l| l.priority.to_string()).collect();
        let at_risk: Vec<String> = s
            .priorities
            .iter()
            .filter(|p| p.verdict == "at risk")
            .map(|p| p.priority.clone())
            .collect();
        assert_eq!(late, at_risk);
        // On the screen: the ETA against the SLA, and the verdict.
        let table = render::table(&s);
        let clock = |t: &str| parse_time(t).unwrap().format("%H:%M:%S").to_string();
        let line = format!(
            "HIGH    1/3 units, ETA {}, SLA {}, {verdict}",
            clock(&at(high_eta)),
            clock(&at(sla_at))
        );
        assert!(table.contains(&line), "{line} in\n{table}");
        assert_eq!(needs_attention(&s), verdict == "at risk");
    }
    let _ = std::fs::remove_dir_all(&run);
}

/// An ended run whose HIGH file is in quarantine, beside an earlier run's slice the plan no
/// longer has: each unit counted once by its latest state, the figures add up, and each
/// priority has the report's verdict (HIGH missed for its quarantined unit, MEDIUM met); one
/// finished after its SLA is missed.
#[test]
fn met_and_missed_are_the_reports_and_each_unit_counts_once() {
    let run = run_folder();
    let a = unit("A", Priority::High, "a.csv");
    let b = unit("A", Priority::High, "b.csv");
    let c = unit("C", Priority::Medium, "c.csv");
    let d = unit("A", Priority::High, "d.csv");
    let plan = plan(
        &run,
        vec![(0, vec![a.clone(), b.clone(), c.clone()])],
        1000.0,
    );
    // An earlier run did d in slice 1; this run's plan has slice 0 only.
    let earlier = ledger(&run, 1, &[(&d, FileStatus::Succeeded)]);
    let slice0 = ledger(
        &run,
        0,
        &[
            (&a, FileStatus::Failed),
            (&b, FileStatus::Succeeded),
            (&c, FileStatus::Succeeded),
        ],
    );
    // a has failed `max_attempts` (here 1) runs: in quarantine.
    let due = crate::ledger::merge::with_latest(std::slice::from_ref(&slice0), |c| {
        Ok(crate::ledger::query::quarantine_due(c, 1)?)
    })
    .unwrap();
    assert_eq!(due.len(), 1);
    let quarantine = run
        .join("out/ledgers")
        .join(crate::ledger::QUARANTINE_LEDGER);
    Ledger::open(&quarantine)
        .unwrap()
        .record_quarantine("q", &due, Utc::now())
        .unwrap();
    let (live0, progress) = live(&run, &plan, 0);
    done(&live0, &progress, &a, FileStatus::Failed);
    done(&live0, &progress, &b, FileStatus::Succeeded);
    done(&live0, &progress, &c, FileStatus::Succeeded);
    live0.publish_every(&progress).finish(1);

    let report_of = |window: DateTime<Utc>| {
        let ctx = crate::report::Context {
            plan: Some(&plan),
            slas: ["high", "medium"]
                .iter()
                .map(|p| (p.to_string(), 1000.0))
                .collect(),
            window_start: Some(window),
            pricing: None,
        };
        crate::ledger::merge::with_latest(
            &[earlier.clone(), slice0.clone(), quarantine.clone()],
            |c| Ok(crate::report::summarize(c, &[], &ctx)?),
        )
        .unwrap()
    };
    let now = Utc::now() + Duration::seconds(5);
    // The window opened 100 s ago (every unit ended well within the SLA), then 2000 s ago
    // (every unit ended after it).
    for (opened, medium) in [(100, "met"), (2000, "missed")] {
        let window = now - Duration::seconds(opened);
        let s = read(&settings(&run, window, now)).unwrap();
        let r = report_of(window);
        let t = &s.totals;
        assert_eq!(t.units as i64, r.totals.units, "{t:?} {:?}", r.totals);
        assert_eq!(t.succeeded as i64, r.totals.succeeded, "{t:?}");
        assert_eq!(t.quarantined as i64, r.totals.quarantined, "{t:?}");
        assert_eq!(t.failed as i64, r.totals.failed, "{t:?}");
        assert_eq!((t.units, t.done, t.left, t.running), (4, 4, 0, 0), "{t:?}");
        assert_eq!((t.succeeded, t.quarantined, t.failed), (3, 1, 0), "{t:?}");
        for row in &r.priorities {
            let p = priority(&s, &row.priority);
            let verdict = if row.sla_met { "met" } else { "missed" };
            assert_eq!(p.verdict, verdict, "{p:?} against {row:?}");
            assert_eq!(p.quarantined as i64, row.units_quarantined, "{p:?}");
            assert_eq!(p.succeeded as i64, row.units_done, "{p:?}");
            assert_eq!(p.left, 0, "{p:?}");
        }
        assert_eq!(priority(&s, "high").verdict, "missed");
        assert_eq!(priority(&s, "medium").verdict, medium);
        assert!(s.ended);
        // Its quarantine is listed apart, not as a failure.
        assert!(s.failures.is_empty(), "{:?}", s.failures);
        assert_eq!(s.quarantined.len(), 1);
        let table = render::table(&s);
        assert!(
            table.contains(
                "units      4/4 done (3 succeeded, 0 failed, 1 quarantined), 0 running, 0 left"
            ),
            "{table}"
        );
        assert!(table.contains(", missed (1 quarantined)"), "{table}");
        // Finished: nothing for the webhook to call at risk.
        let docs = vec![read_document(&run.join("out/status").join(Live::slice_name(0))).unwrap()];
        assert!(eta::late(&plan, &docs, window, now).is_empty());
    }
    let _ = std::fs::remove_dir_all(&run);
}

/// Slices of one stage: one far behind the others is flagged, then every running one once
/// none has written for longer than the limit; an ended slice never is.
#[test]
fn stragglers_are_flagged_far_behind_or_quiet() {
    let run = run_folder();
    let units = |k: usize| -> Vec<Unit> {
        (0..4)
            .map(|i| unit(&format!("V{k}"), Priority::High, &format!("s{k}-{i}.csv")))
            .collect()
    };
    let plan = plan(
        &run,
        vec![(0, units(0)), (0, units(1)), (0, units(2)), (0, units(3))],
        1000.0,
    );
    // Slices 0 and 1 did 3 of 4 units, slice 2 none, slice 3 ended.
    for k in 0..4 {
        let (l, progress) = live(&run, &plan, k);
        let n = match k {
            0 | 1 => 3,
            2 => 0,
            _ => 4,
        };
        for u in &plan.slices[k].units[..n] {
            done(&l, &progress, u, FileStatus::Succeeded);
        }
        if k == 3 {
            l.publish_every(&progress).finish(0);
        } else {
            l.publish(&progress);
        }
    }
    let updated = (0..3)
        .map(|k| {
            let d = read_document(&run.join("out/status").join(Live::slice_name(k)))
                .unwrap()
                .unwrap();
            parse_time(&d.updated_at).unwrap()
        })
        .max()
        .unwrap();
    let window = updated - Duration::seconds(10);

    let s = read(&settings(&run, window, updated)).unwrap();
    let flagged: Vec<(usize, Option<&str>)> = s
        .slices
        .iter()
        .map(|v| (v.slice, v.straggler.as_deref()))
        .collect();
    // The stage's median share of bytes done is 75% (of 0%, 75%, 75%, 100%).
    assert_eq!(
        flagged,
        [
            (0, None),
            (1, None),
            (2, Some("far behind: 0% done, the stage's median 75%")),
            (3, None)
        ]
    );
    assert!(needs_attention(&s));
    let table = render::table(&s);
    let line = table
        .lines()
        .find(|l| l.starts_with("2 "))
        .unwrap_or_default();
    assert!(line.contains("STRAGGLER: far behind"), "{table}");

    // No update for 100 s, over a limit of 60 s: every running slice.
    let mut quiet = settings(&run, window, updated + Duration::seconds(100));
    quiet.stale_seconds = 60.0;
    let s = read(&quiet).unwrap();
    for v in &s.slices {
        match v.state.as_str() {
            "running" => assert!(
                v.straggler
                    .as_deref()
                    .is_some_and(|w| w.starts_with("no update for 10")),
                "{v:?}"
            ),
            _ => assert_eq!(v.straggler, None, "{v:?}"),
        }
    }
    // Under the limit, nothing quiet; the far-behind one still flagged.
    quiet.stale_seconds = 600.0;
    let s = read(&quiet).unwrap();
    assert_eq!(s.slices.iter().filter(|v| v.straggler.is_some()).count(), 1);
    let _ = std::fs::remove_dir_all(&run);
}

/// A status document an earlier run of the day left for a slice of a later stage is not
/// taken for this run's: until the slice starts, `status` shows it waiting, not ended.
#[test]
fn an_earlier_runs_document_is_not_this_runs() {
    let run = run_folder();
    let h = |n: &str| unit("H", Priority::High, n);
    let mut earlier = plan(
        &run,
        vec![(0, vec![h("a.csv")]), (1, vec![h("b.csv")])],
        1000.0,
    );
    let (l, progress) = live(&run, &earlier, 1);
    done(
        &l,
        &progress,
        &earlier.slices[1].units[0],
        FileStatus::Succeeded,
    );
    l.publish_every(&progress).finish(0);
    let written = started(&run, 1);
    let window = written - Duration::seconds(10);
    // The same plan, as the earlier run had it: its slice 1 ended.
    earlier.created_at = (written - Duration::seconds(5)).to_rfc3339();
    std::fs::write(run.join("plan.json"), serde_json::to_vec(&earlier).unwrap()).unwrap();
    let s = read(&settings(&run, window, written)).unwrap();
    assert_eq!(s.slices[1].state, "ended", "{s:?}");
    // A new plan made a minute later: the document is the earlier run's.
    let mut later = earlier.clone();
    later.created_at = (written + Duration::seconds(60)).to_rfc3339();
    std::fs::write(run.join("plan.json"), serde_json::to_vec(&later).unwrap()).unwrap();
    let s = read(&settings(&run, window, written + Duration::seconds(61))).unwrap();
    assert_eq!(s.slices[1].state, "waiting", "{s:?}");
    assert!(!s.ended);
    let _ = std::fs::remove_dir_all(&run);
}

/// `log` names the states apart: a run that only deferred work is `deferred`, not `failed`,
/// with its units in their own columns; one with a failed unit too is `failed`.
#[test]
fn log_says_deferred_apart_from_failed() {
    let run = run_folder().join("2026-12-03-morning");
    std::fs::create_dir_all(run.join("out/ledgers")).unwrap();
    let a = unit("A", Priority::Medium, "a.csv");
    let b = unit("A", Priority::Medium, "b.csv");
    let c = unit("B", Priority::Low, "c.csv");
    plan(
        &run,
        vec![(0, vec![a.clone(), b.clone(), c.clone()])],
        1000.0,
    );
    std::fs::write(
        run.join("state.json"),
        r#"{"exit_code": 1, "ended_at": "2026-12-03T08:00:00Z"}"#,
    )
    .unwrap();
    let slice0 = ledger(
        &run,
        0,
        &[
            (&a, FileStatus::Succeeded),
            (&b, FileStatus::Deferred),
            (&c, FileStatus::Deferred),
        ],
    );
    let line = history::run_line(&run).unwrap();
    assert_eq!(line.status, "deferred", "{line:?}");
    assert_eq!(
        (
            line.failed,
            line.deferred,
            line.blocked,
            line.cancelled,
            line.quarantined
        ),
        (0, 2, 0, 0, 0),
        "{line:?}"
    );
    let table = history::table(std::slice::from_ref(&line));
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    let column = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(column("status"), "deferred", "{table}");
    assert_eq!(column("deferred"), "2", "{table}");
    assert_eq!(column("failed"), "0", "{table}");
    let json = serde_json::to_value(&line).unwrap();
    assert_eq!(json["deferred"], 2);
    assert_eq!(json["failed"], 0);

    // A later attempt of c failed: the run is `failed`, its deferred unit still deferred.
    std::fs::remove_file(&slice0).unwrap();
    ledger(
        &run,
        0,
        &[
            (&a, FileStatus::Succeeded),
            (&b, FileStatus::Deferred),
            (&c, FileStatus::Failed),
        ],
    );
    let line = history::run_line(&run).unwrap();
    assert_eq!(line.status, "failed", "{line:?}");
    assert_eq!((line.failed, line.deferred), (1, 1), "{line:?}");
    let _ = std::fs::remove_dir_all(run.parent().unwrap());
}
