//! `batchwin run`: a whole window on this machine or on Slurm, deferral at the window's end and
//! the next run finishing the work, the overlap lock, and `--dry-run`.
//!
//! Windows are placed around the time the test runs (SLAs count from the window's start), and
//! the generated day is that window's day.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};

use crate::util::{Dir, assert_published, generate_day_on, process_day_on, stdout, tree};

/// A window from `start` to `end` minutes from now (UTC): its day and its `[windows.day]`.
fn window(d: &Dir, start: i64, end: i64) -> String {
    let s = Utc::now() + chrono::Duration::minutes(start);
    let e = Utc::now() + chrono::Duration::minutes(end);
    let date = s.format("%Y-%m-%d").to_string();
    let cfg = d.read("day/batchwin.toml")
        + &format!(
            "\n[windows.day]\nstart = \"{:02}:{:02}\"\nend = \"{:02}:{:02}\"\ntime_zone = \"UTC\"\nsource = {:?}\ntarget = {:?}\n\n[transfer]\nsettle = \"0s\"\n",
            s.hour(),
            s.minute(),
            e.hour(),
            e.minute(),
            d.path("day").display().to_string(),
            d.path("server").display().to_string()
        );
    d.write("day/batchwin.toml", cfg);
    date
}

/// A generated day (`files`, `records`, `vendors`, `seed`) on the vendors' server and a window
/// open from a minute ago for three hours: the window's date.
pub(crate) fn day_on_server(
    d: &Dir,
    files: &str,
    records: &str,
    vendors: &str,
    seed: &str,
) -> String {
    let date = day_of(-1);
    generate_day_on(d, files, records, vendors, seed, &date);
    window(d, -1, 180)
}

/// [`day_on_server`], each file also processed alone into `whole/` for comparison.
pub(crate) fn day_processed_whole(
    d: &Dir,
    files: &str,
    records: &str,
    vendors: &str,
    seed: &str,
) -> String {
    let date = day_on_server(d, files, records, vendors, seed);
    process_day_on(d, "whole", &date);
    date
}

/// The day a window starting `start` minutes from now belongs to.
fn day_of(start: i64) -> String {
    (Utc::now() + chrono::Duration::minutes(start))
        .format("%Y-%m-%d")
        .to_string()
}

/// The arguments of `run` of the window `day` on `date` into `runs`, then `extra`.
pub(crate) fn run_args(date: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "run",
        "--config",
        "day/batchwin.toml",
        "--window",
        "day",
        "--date",
        date,
        "--runs",
        "runs",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// `run` of the window `day` on `date` with `extra` arguments, which must succeed: its stdout.
fn run_ok(d: &Dir, date: &str, extra: &[&str]) -> String {
    let o = d.cmd().args(run_args(date, extra)).assert().code(0);
    stdout(&o)
}

/// The run's merged ledgers, from `report --format json`.
fn report(d: &Dir, date: &str) -> serde_json::Value {
    let o = d
        .cmd()
        .args([
            "report",
            "--ledgers",
            &format!("runs/{date}-day/out/ledgers"),
            "--format",
            "json",
        ])
        .assert();
    serde_json::from_slice(&o.get_output().stdout).expect("report json")
}

/// The report `run` prints for the run folder `runs/DATE-day`: with the configuration's SLAs,
/// the plan and the window's start.
fn report_as_run(d: &Dir, date: &str) -> serde_json::Value {
    let run = format!("runs/{date}-day");
    let window: serde_json::Value =
        serde_json::from_str(&d.read(&format!("{run}/window.json"))).expect("window.json");
    let o = d
        .cmd()
        .args(["report", "--ledgers", &format!("{run}/out/ledgers")])
        .args([
            "--config",
            "day/batchwin.toml",
            "--plan",
            &format!("{run}/plan.json"),
        ])
        .args(["--window-start", window["start"].as_str().unwrap()])
        .args(["--format", "json"])
        .assert();
    serde_json::from_slice(&o.get_output().stdout).expect("report json")
}

fn expected(d: &Dir) -> serde_json::Value {
    serde_json::from_str(&d.read("day/expected.json")).unwrap()
}

fn assert_counts(d: &Dir, date: &str) {
    let r = report(d, date);
    let e = expected(d);
    assert_eq!(r["totals"]["records_in"], e["records"], "{}", r["totals"]);
    assert_eq!(
        r["totals"]["records_rejected"], e["invalid"],
        "{}",
        r["totals"]
    );
}

#[test]
fn a_window_runs_end_to_end_and_matches_single_file_processing() {
    let d = Dir::new();
    // Ten vendors: some run after others, so the plan has two stages.
    let date = day_processed_whole(&d, "20", "30000", "10", "5");
    let out = run_ok(&d, &date, &["--workers", "2"]);
    for step in [
        "step       fetch: batchwin fetch",
        "step       plan: batchwin plan",
        "step       slice 1: batchwin process",
        "step       publish: batchwin publish",
        "step       report: batchwin report",
    ] {
        assert!(out.contains(step), "{step}: {out}");
    }
    assert!(out.contains("SLA"), "the report is printed: {out}");
    // The day's first run: the fetch runs beside the plan and the slices.
    assert!(
        out.contains("fetch      runs beside the plan and the slices: 20 files to stage")
            && out.contains("--listing")
            && out.contains("--fetching"),
        "{out}"
    );
    // The publish runs beside the slices, which record their units in their journals.
    assert!(
        out.contains("publish    runs beside the slices")
            && out.contains("--follow")
            && out.contains("--journal"),
        "{out}"
    );
    // Stages in order: no slice starts before every slice of an earlier stage has ended.
    let plan: serde_json::Value =
        serde_json::from_str(&d.read(&format!("runs/{date}-day/plan.json"))).unwrap();
    let stage: Vec<u64> = plan["slices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_u64().unwrap())
        .collect();
    assert!(
        stage.iter().any(|&s| s > 0),
        "the generated day has vendors that run after others"
    );
    let lines: Vec<&str> = out.lines().collect();
    let at = |needle: String| {
        lines
            .iter()
            .position(|l| l.starts_with(&needle))
            .unwrap_or_else(|| panic!("{needle}: {out}"))
    };
    for (k, &sk) in stage.iter().enumerate() {
        for (j, &sj) in stage.iter().enumerate() {
            if sj < sk {
                assert!(
                    at(format!("slice      {j} ended")) < at(format!("step       slice {k}:")),
                    "slice {k} (stage {sk}) started before slice {j} (stage {sj}) ended: {out}"
                );
            }
        }
    }
    assert_published(
        &d.path("whole"),
        &d.path(&format!("server/outbound/{date}")),
    );
    assert_counts(&d, &date);
    let run = d.path(&format!("runs/{date}-day"));
    for f in [
        "manifest.jsonl",
        "plan.json",
        "publish.duckdb",
        "state.json",
    ] {
        assert!(run.join(f).is_file(), "{f} kept in the run folder");
    }
    // Each output delivered once by the publish beside the slices, none checked again.
    assert_eq!(
        crate::util::deliveries(&run.join("publish.duckdb")),
        [("delivered".into(), 20)]
    );
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        html.starts_with("<!DOCTYPE html>"),
        "{}",
        &html[..html.len().min(200)]
    );

    // Again: nothing left to do, nothing delivered twice; the fetch runs first.
    let again = d.cmd().args(run_args(&date, &[])).assert().code(0);
    assert!(
        !stdout(&again).contains("--listing") && !stdout(&again).contains("runs beside"),
        "{}",
        stdout(&again)
    );
    assert!(
        stdout(&again).contains("20 files already done"),
        "{}",
        stdout(&again)
    );
    assert!(
        stdout(&again).contains("nothing left to do"),
        "{}",
        stdout(&again)
    );
    assert!(
        stdout(&again).contains("0 delivered (0.0 MB), 20 already there"),
        "{}",
        stdout(&again)
    );
}

/// The pid of a running process whose command line holds every one of `args`.
fn pid_running_with(args: &[&str]) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let line = std::fs::read(e.path().join("cmdline")).ok()?;
        let words: Vec<&[u8]> = line.split(|&b| b == 0).collect();
        args.iter()
            .all(|a| words.contains(&a.as_bytes()))
            .then_some(pid)
    })
}

/// A publish beside the slices that dies while they run (here: killed with SIGKILL as soon as
/// it is seen, which may be as it makes its ledger) is said, and the publish runs after the slices as it would without one: the run
/// ends with 0 and every output is delivered once, byte-identical to processing each file
/// alone.
#[test]
fn a_publish_beside_the_slices_that_dies_is_run_after_them() {
    let d = Dir::new();
    let date = day_processed_whole(&d, "20", "30000", "10", "5");
    let run = d.path(&format!("runs/{date}-day"));
    let follow = run.join("slices.ended").display().to_string();
    let mut child = d
        .process()
        .args(run_args(&date, &["--workers", "2"]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run starts");
    let started = Instant::now();
    let publish = loop {
        if let Some(pid) = pid_running_with(&["publish", "--follow", &follow]) {
            break pid;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its publish beside the slices was seen"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no publish beside"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &publish.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains(
            "publish    the publish beside the slices ended early, with exit code 137: publishing after them"
        ),
        "{out}"
    );
    assert!(
        out.contains("step       publish: batchwin publish"),
        "{out}"
    );
    assert_published(
        &d.path("whole"),
        &d.path(&format!("server/outbound/{date}")),
    );
    // Every output delivered, none twice: what the publish beside delivered before it died
    // (when the kill comes late on a busy machine) the publish after finds there, the same.
    let conn = duckdb::Connection::open(run.join("publish.duckdb")).unwrap();
    let (targets, twice): (i64, i64) = conn
        .query_row(
            "SELECT count(DISTINCT target) FILTER (status IN ('delivered', 'skipped')),
                    (SELECT count(*) FROM (SELECT target FROM deliveries WHERE status = 'delivered'
                                           GROUP BY target HAVING count(*) > 1))
             FROM deliveries",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((targets, twice), (20, 0));
}

#[test]
fn a_window_too_short_defers_medium_and_low_and_the_next_run_finishes_them() {
    let d = Dir::new();
    let date = day_of(-3);
    generate_day_on(&d, "12", "30000", "3", "32", &date);
    process_day_on(&d, "whole", &date);
    // The window ended a minute ago: only HIGH units start.
    let date = window(&d, -3, -1);
    let first = d.cmd().args(run_args(&date, &[])).assert().code(1);
    let out = stdout(&first);
    assert!(out.contains("deferred"), "{out}");
    let e = expected(&d);
    let per_file = e["per_file"].as_array().unwrap();
    let high = per_file.iter().filter(|f| f["priority"] == "high").count();
    let published = tree(&d.path(&format!("server/outbound/{date}")));
    let outputs = published
        .keys()
        .filter(|k| !k.contains(".rejects."))
        .count();
    assert_eq!(
        outputs,
        high,
        "only HIGH files were done and published: {:?}",
        published.keys()
    );
    assert!(high > 0 && high < per_file.len());
    let state: serde_json::Value =
        serde_json::from_str(&d.read(&format!("runs/{date}-day/state.json"))).unwrap();
    assert_eq!(state["complete"], false);
    let r = report(&d, &date);
    let deferred = r["failures"].as_array().map_or(0, |f| {
        f.iter()
            .filter(|x| x.to_string().contains("deferred"))
            .count()
    });
    assert_eq!(
        deferred,
        per_file.len() - high,
        "the report names the deferred units: {}",
        r["failures"]
    );
    // Deferred is its own state in every view, never counted as failed.
    let later = (per_file.len() - high) as u64;
    assert_eq!(r["totals"]["deferred"], later, "{}", r["totals"]);
    assert_eq!(r["totals"]["failed"], 0, "{}", r["totals"]);
    assert!(
        r["failures"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["status"] == "deferred"),
        "{}",
        r["failures"]
    );
    let medium = &r["priorities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["priority"] == "medium")
        .expect("a MEDIUM row")
        .clone();
    assert_eq!(medium["units_failed"], 0, "{medium}");
    assert!(medium["units_deferred"].as_u64().unwrap() > 0, "{medium}");
    assert!(
        out.contains(&format!(
            "units: {high} succeeded, 0 failed, {later} deferred)"
        )),
        "{out}"
    );
    assert!(out.contains("no: ") && out.contains(" deferred"), "{out}");
    assert!(
        !out.contains("no: 0") && !out.contains("failed, 0"),
        "{out}"
    );
    // `log` says so too: the run is `deferred`, not `failed`, in the table and the JSON.
    let log = d
        .cmd()
        .args(["log", "runs", "--format", "json"])
        .assert()
        .code(0);
    let log: serde_json::Value = serde_json::from_slice(&log.get_output().stdout).unwrap();
    assert_eq!(log[0]["status"], "deferred", "{log}");
    assert_eq!(log[0]["deferred"], later, "{log}");
    assert_eq!(log[0]["failed"], 0, "{log}");
    let table = stdout(&d.cmd().args(["log", "runs"]).assert().code(0));
    let line = table.lines().nth(1).unwrap_or_default();
    assert!(line.contains(" deferred "), "{table}");
    assert!(!line.contains("failed"), "{table}");

    // The next run finishes them (past the window's end only with --catch-up).
    let second = d.cmd().args(run_args(&date, &["--catch-up"])).assert();
    assert!(
        stdout(&second).contains(&format!("{high} files already done")),
        "{}",
        stdout(&second)
    );
    assert_published(
        &d.path("whole"),
        &d.path(&format!("server/outbound/{date}")),
    );
    assert_counts(&d, &date);
    let r = report(&d, &date);
    assert_eq!(
        r["failures"].as_array().map_or(0, Vec::len),
        0,
        "{}",
        r["failures"]
    );
}

#[test]
fn two_runs_of_one_window_never_overlap() {
    let d = Dir::new();
    let date = day_on_server(&d, "2", "500", "1", "33");
    let dir = d.path(&format!("runs/{date}-day"));
    std::fs::create_dir_all(&dir).unwrap();
    let held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))
        .unwrap();
    held.try_lock().expect("the test holds the lock");
    let o = d.cmd().args(run_args(&date, &[])).assert().code(1);
    let err = String::from_utf8_lossy(&o.get_output().stderr).into_owned();
    assert!(
        err.contains(&format!(
            "another run of window `day` for {date} is in progress"
        )),
        "{err}"
    );
    assert!(!dir.join("manifest.jsonl").exists(), "nothing was fetched");
    drop(held);
    d.cmd().args(run_args(&date, &[])).assert().code(0);
}

#[test]
fn a_dry_run_shows_the_work_and_touches_nothing() {
    let d = Dir::new();
    let date = day_on_server(&d, "6", "3000", "2", "34");
    let before = tree(&d.path("day"));
    let out = run_ok(&d, &date, &["--dry-run"]);
    assert!(out.contains("would fetch 6 files"), "{out}");
    assert!(
        out.contains("slices") && out.contains("step       slice 0: batchwin process"),
        "{out}"
    );
    // The day's first run: the command lines of the fetch beside the plan and the slices.
    assert!(
        out.contains("fetch      would run beside the plan and the slices")
            && out.contains("--listing")
            && out.contains("--fetching"),
        "{out}"
    );
    // And of the publish beside the slices.
    assert!(
        out.contains("publish    would run beside the slices")
            && out.contains("--follow")
            && out.contains("--journal"),
        "{out}"
    );
    assert!(!d.path("runs").exists(), "a dry run creates nothing");
    assert!(!d.path("server").exists());
    assert_eq!(tree(&d.path("day")), before);
}

#[test]
fn a_window_runs_on_slurm() {
    let Some(conf) = crate::util::service("SLURM_CONF") else {
        return;
    };
    let d = Dir::new();
    let date = day_processed_whole(&d, "8", "20000", "3", "35");
    let started = Instant::now();
    let o = d
        .cmd()
        .args(run_args(&date, &["--executor", "slurm"]))
        .env("SLURM_CONF", conf)
        .assert()
        .code(0);
    let out = stdout(&o);
    assert!(
        out.contains("submitted") && out.contains("completed"),
        "{out}"
    );
    assert!(started.elapsed() < Duration::from_secs(300));
    assert_published(
        &d.path("whole"),
        &d.path(&format!("server/outbound/{date}")),
    );
    assert_counts(&d, &date);
}

/// A day bigger than Slurm may take (`--max-slices`, with a window it cannot fill): `run
/// --executor slurm` plans what fits, HIGH first, runs and publishes it, and leaves the rest
/// deferred with the reason printed (exit 1); the next run, given room, does the rest.
#[test]
fn a_day_bigger_than_slurm_allows_runs_what_fits_and_defers_the_rest() {
    let Some(conf) = crate::util::service("SLURM_CONF") else {
        return;
    };
    let d = Dir::new();
    let date = day_processed_whole(&d, "8", "8000", "4", "37");
    let e = expected(&d);
    let files = e["per_file"].as_array().unwrap();
    let high = files.iter().filter(|f| f["priority"] == "high").count();
    assert!(
        high > 0 && high < files.len(),
        "a day with HIGH and other files"
    );
    let o = d
        .cmd()
        .args(run_args(
            &date,
            &[
                "--executor",
                "slurm",
                "--max-slices",
                "1",
                "--utilization",
                "0.000001",
            ],
        ))
        .env("SLURM_CONF", &conf)
        .assert()
        .code(1);
    let out = stdout(&o);
    assert!(
        out.contains("left for the next run") && out.contains("does not fit the window"),
        "{out}"
    );
    assert!(
        out.contains("submitted") && out.contains("completed"),
        "{out}"
    );
    let plan: serde_json::Value =
        serde_json::from_str(&d.read(&format!("runs/{date}-day/plan.json"))).unwrap();
    let planned: Vec<&serde_json::Value> = plan["slices"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["units"].as_array().unwrap())
        .collect();
    let deferred = plan["deferred"]["files"].as_array().unwrap();
    assert!(!deferred.is_empty(), "{plan}");
    // Every HIGH file is planned; what is left is MEDIUM and LOW.
    assert_eq!(
        planned.iter().filter(|u| u["priority"] == "high").count(),
        high,
        "{plan}"
    );
    assert!(deferred.iter().all(|f| f["priority"] != "high"), "{plan}");
    assert_eq!(planned.len() + deferred.len(), files.len());
    let r = report(&d, &date);
    assert_eq!(r["totals"]["failed"], 0, "{}", r["totals"]);
    // What was planned is delivered; nothing deferred is.
    let published = crate::util::tree(&d.path(&format!("server/outbound/{date}")));
    let stem = |loc: &serde_json::Value| {
        std::path::Path::new(loc.as_str().unwrap())
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    for u in &planned {
        let s = stem(&u["location"]);
        assert!(
            published.keys().any(|k| k.contains(&s)),
            "{s} not delivered"
        );
    }
    for f in deferred {
        let s = stem(&f["location"]);
        assert!(!published.keys().any(|k| k.contains(&s)), "{s} delivered");
    }

    // Given room, the next run of the day does the rest.
    d.cmd()
        .args(run_args(&date, &["--executor", "slurm"]))
        .env("SLURM_CONF", &conf)
        .assert()
        .code(0);
    assert_published(
        &d.path("whole"),
        &d.path(&format!("server/outbound/{date}")),
    );
    assert_counts(&d, &date);
}

#[test]
fn sigterm_reaches_the_local_workers_and_the_next_run_finishes() {
    let d = Dir::new();
    let date = day_on_server(&d, "40", "1500000", "4", "36");
    let child = d
        .process()
        .args(run_args(&date, &["--workers", "2"]))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start");
    // Once the slices are running, stop the run as a scheduler would.
    let ledgers = d.path(&format!("runs/{date}-day/out/ledgers"));
    let started = Instant::now();
    while std::fs::read_dir(&ledgers).map_or(0, |r| r.count()) < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the slices never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let stopped = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        stopped.elapsed() < Duration::from_secs(15),
        "no exit within 15 s of SIGTERM"
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(143), "{text}");
    assert!(
        text.contains("ended with exit code 143"),
        "the workers got the signal: {text}"
    );
    let leftovers: Vec<String> = tree(&d.path(&format!("runs/{date}-day/out")))
        .into_keys()
        .filter(|k| k.rsplit('/').next().is_some_and(|n| n.starts_with('.')))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let state: serde_json::Value =
        serde_json::from_str(&d.read(&format!("runs/{date}-day/state.json"))).unwrap();
    assert_eq!(state["complete"], false);

    d.cmd().args(run_args(&date, &[])).assert().code(0);
    assert_counts(&d, &date);
}

#[test]
fn sigterm_cancels_the_slurm_jobs_and_the_next_run_finishes() {
    let Some(conf) = crate::util::service("SLURM_CONF") else {
        return;
    };
    let d = Dir::new();
    let date = day_on_server(&d, "40", "1500000", "4", "37");
    let mut child = d
        .process()
        .args(run_args(&date, &["--executor", "slurm"]))
        .env("SLURM_CONF", &conf)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start");
    // Read what run prints as it goes; stop it once Slurm runs its jobs.
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = lines.clone();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                lines.lock().unwrap().push(l);
            }
        })
    };
    let printed = |what: &str| lines.lock().unwrap().iter().any(|l| l.contains(what));
    let started = Instant::now();
    while !printed(" running") {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "Slurm never ran the jobs: {:?}",
            lines.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let text = lines.lock().unwrap().join("\n");
    assert_eq!(status.code(), Some(143), "{text}");
    let ids: Vec<String> = text
        .lines()
        .find_map(|l| l.strip_prefix("cancel     scancel "))
        .unwrap_or_else(|| panic!("no scancel: {text}"))
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert!(!ids.is_empty(), "{text}");
    // Slurm ends every job: none is left pending or running, and none completed all its work.
    let states = || {
        let q = std::process::Command::new("squeue")
            .args(["-h", "-t", "all", "-o", "%T", "-j", &ids.join(",")])
            .env("SLURM_CONF", &conf)
            .output()
            .expect("squeue");
        String::from_utf8_lossy(&q.stdout).into_owned()
    };
    let waiting = Instant::now();
    while states()
        .lines()
        .any(|s| ["PENDING", "RUNNING", "COMPLETING", "CONFIGURING"].contains(&s))
    {
        assert!(
            waiting.elapsed() < Duration::from_secs(60),
            "jobs still active: {}",
            states()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(states().contains("CANCELLED"), "{}", states());
    let state: serde_json::Value =
        serde_json::from_str(&d.read(&format!("runs/{date}-day/state.json"))).unwrap();
    assert_eq!(state["complete"], false);

    // The next run, on Slurm again, does what was left.
    d.cmd()
        .args(run_args(&date, &["--executor", "slurm"]))
        .env("SLURM_CONF", &conf)
        .assert()
        .code(0);
    assert_counts(&d, &date);
}

#[test]
fn a_run_again_knows_the_split_files_it_finished() {
    let d = Dir::new();
    // Three large files for two workers: the plan cuts the larger ones into parts.
    let date = day_on_server(&d, "3", "900000", "3", "38");
    run_ok(&d, &date, &["--workers", "2"]);
    let split: serde_json::Value =
        serde_json::from_str(&d.read(&format!("runs/{date}-day/split.json"))).unwrap();
    let split = split.as_object().expect("split.json is an object");
    assert!(!split.is_empty(), "no file was split: make the day larger");
    assert_counts(&d, &date);

    // Everything is done: the next run plans nothing, split files included.
    let out = run_ok(&d, &date, &["--workers", "2"]);
    assert!(
        out.contains("resume     3 files already done")
            && out.contains("plan       nothing left to do"),
        "{out}"
    );
    assert_counts(&d, &date);
}

/// Waits until no process works in `dir` any more (the workers of a killed `run` get SIGTERM
/// and stop within their grace period).
fn wait_for_workers_in(dir: &std::path::Path) {
    let started = Instant::now();
    loop {
        let busy = std::process::Command::new("pgrep")
            .args(["-f", &dir.display().to_string()])
            .output()
            .expect("pgrep");
        if busy.stdout.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "workers of a killed run still busy after 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigkill_of_run_at_random_moments_then_a_run_again_delivers_the_same_day() {
    use rand::Rng;
    let d = Dir::new();
    let date = day_processed_whole(&d, "16", "600000", "4", "40");
    // Kills fall within the time an uninterrupted run takes. A run that ends before its kill
    // shortens the range: the timed run can be slower than the others on a busy machine.
    let started = Instant::now();
    run_ok(&d, &date, &["--workers", "2"]);
    let mut max_ms = (started.elapsed().as_millis() as u64).max(300);
    std::fs::remove_dir_all(d.path("server")).unwrap();
    std::fs::remove_dir_all(d.path("runs")).unwrap();

    let mut rng = rand::thread_rng();
    let mut killed = 0;
    for _ in 0..20 {
        let mut child = d
            .process()
            .args(run_args(&date, &["--workers", "2", "-q"]))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..max_ms)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        } else {
            max_ms = (max_ms * 4 / 5).max(100);
        }
        child.wait().unwrap();
        wait_for_workers_in(&d.path("runs"));
    }
    eprintln!("{killed} of 20 runs killed in flight");
    assert!(killed >= 3, "runs were killed in flight ({killed} of 20)");
    run_ok(&d, &date, &["--workers", "2"]);
    // Every output delivered once, byte for byte, nothing else in the outbound folders; each
    // unit counted once.
    assert_published(
        &d.path("whole"),
        &d.path(&format!("server/outbound/{date}")),
    );
    assert_counts(&d, &date);
}

/// The words of a command line as `run` prints it (`shell_word` quotes with `'...'`).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if !quoted => {
                quoted = true;
                any = true;
            }
            '\'' if quoted => {
                // `'\''` inside a quoted word is a quote.
                if chars.peek() == Some(&'\\') {
                    chars.next();
                    chars.next();
                    chars.next();
                    word.push('\'');
                } else {
                    quoted = false;
                }
            }
            ' ' if !quoted => {
                if any || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            c => word.push(c),
        }
    }
    if any || !word.is_empty() {
        words.push(word);
    }
    words
}

/// `run` builds its steps' command lines itself; a flag renamed in a step's own parser must fail
/// here, not in a night's run. Every step `run --dry-run` prints (both executors, and the day at
/// a run location) is parsed by `batchwin`'s own command-line parser and lands on that step,
/// with the values `run` meant.
#[test]
fn every_step_run_builds_parses_with_the_steps_own_parser() {
    use batchwin::cli::{Cli, Command};
    use clap::Parser;
    let d = Dir::new();
    let date = day_on_server(&d, "6", "3000", "2", "35");
    let mut seen = std::collections::BTreeSet::new();
    let location = "s3://bucket/runs";
    for (executor, at) in [("local", None), ("slurm", None), ("local", Some(location))] {
        let mut flags = vec!["--dry-run", "--executor", executor];
        flags.extend(at.iter().flat_map(|l| ["--run-location", l]));
        let out = run_ok(&d, &date, &flags);
        // At a run location, what the steps share is there; the report's merged ledger is not.
        let day = format!("{location}/{date}-day");
        let shared = |p: &std::path::Path| at.is_none() || p.starts_with(&day);
        for line in out.lines() {
            let Some(step) = line.strip_prefix("step       ") else {
                continue;
            };
            let (name, command) = step.split_once(": ").expect("step NAME: COMMAND");
            if name == "submit" {
                assert!(command.starts_with("bash "), "{line}");
                continue;
            }
            let command = command.split(" > ").next().unwrap_or(command);
            let words = shell_words(command);
            assert_eq!(words[0], "batchwin", "{line}");
            let cli = Cli::try_parse_from(&words)
                .unwrap_or_else(|e| panic!("`run` built a step that does not parse: {line}\n{e}"));
            match (name, cli.command) {
                ("fetch", Command::Fetch(a)) => {
                    assert_eq!(a.date.as_deref(), Some(date.as_str()));
                    assert!(a.manifest.ends_with("manifest.jsonl"), "{line}");
                    assert!(shared(&a.staging), "{line}");
                }
                ("plan", Command::Plan(a)) => {
                    assert_eq!(a.date.as_deref(), Some(date.as_str()));
                    assert!(a.out.ends_with("plan.json"), "{line}");
                    assert!(shared(std::path::Path::new(&a.out)), "{line}");
                    assert_eq!(a.emit.is_empty(), executor == "local", "{line}");
                    if executor == "slurm" {
                        assert_eq!(a.slices, "auto");
                        assert!(a.worker_out.ends_with("/out"), "{line}");
                    }
                }
                ("publish", Command::Publish(a)) => {
                    assert_eq!(a.date.as_deref(), Some(date.as_str()));
                    assert!(a.target.is_some(), "{line}");
                    assert!(shared(&a.ledgers), "{line}");
                    assert_eq!(a.ledger.is_none(), at.is_some(), "{line}");
                }
                ("report", Command::Report(a)) => {
                    assert!(a.window_start.is_some(), "{line}");
                    assert!(a.ledgers.ends_with("ledgers"), "{line}");
                    assert!(shared(&a.ledgers), "{line}");
                    assert_eq!(a.out.is_some(), at.is_some(), "{line}");
                }
                (slice, Command::Process(a)) if slice.starts_with("slice ") => {
                    let k: usize = slice["slice ".len()..].parse().expect("slice number");
                    assert_eq!(a.slice, Some(k), "{line}");
                    assert!(a.plan.as_ref().is_some_and(|p| p.ends_with("plan.json")));
                    assert!(a.plan.as_deref().is_some_and(shared), "{line}");
                    assert!(shared(&a.out), "{line}");
                    assert_eq!(a.scratch.is_some(), at.is_some(), "{line}");
                }
                (name, _) => panic!("step `{name}` ran another subcommand: {line}"),
            }
            seen.insert(name.split(' ').next().unwrap_or(name).to_string());
        }
    }
    let want: std::collections::BTreeSet<String> = ["fetch", "plan", "slice", "publish", "report"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(seen, want, "every kind of step was shown and checked");
}

/// A vendor declared `after` another does not start when that one did not finish: its units
/// are recorded as blocked, naming the vendor it waited for, while a vendor of the same stage
/// whose parents finished runs; the summary, the report, its JSON and the exit status say
/// blocked, not failed. Fixed and run again, the day finishes.
#[test]
fn a_vendor_after_one_that_failed_is_blocked_and_the_others_run() {
    let d = Dir::new();
    let date = day_on_server(&d, "6", "2000", "3", "31");
    let e = expected(&d);
    let files_of = |v: &str| {
        e["per_file"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["vendor"] == v)
            .count()
    };
    assert!(
        e["per_file"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["vendor"] == "V001")
            .all(|f| f["invalid"].as_u64().unwrap() > 0),
        "every file of V001 has an invalid record"
    );
    // V002 comes after V001, whose files all fail (no reject allowed); V003 after V002's
    // stage-mate nothing: it comes after nobody, so it runs.
    let good = d.read("day/batchwin.toml");
    let failing = good
        .replacen("skip_limit = \"5%\"", "skip_limit = 0", 1)
        .replace("id = \"V002\"", "id = \"V002\"\nafter = [\"V001\"]");
    d.write("day/batchwin.toml", &failing);
    let first = d.cmd().args(run_args(&date, &[])).assert().code(1);
    let out = stdout(&first);
    let r = report(&d, &date);
    assert_eq!(r["totals"]["failed"], files_of("V001"), "{}", r["totals"]);
    assert_eq!(r["totals"]["blocked"], files_of("V002"), "{}", r["totals"]);
    assert_eq!(
        r["totals"]["succeeded"],
        files_of("V003"),
        "{}",
        r["totals"]
    );
    for f in r["failures"].as_array().unwrap() {
        match f["vendor"].as_str().unwrap() {
            "V001" => assert_eq!(f["status"], "failed", "{f}"),
            "V002" => {
                assert_eq!(f["status"], "blocked", "{f}");
                assert!(
                    f["error"]
                        .as_str()
                        .unwrap()
                        .contains("vendor V001, which it comes after, did not finish"),
                    "{f}"
                );
            }
            other => panic!("{other} has a unit not done: {f}"),
        }
    }
    assert!(
        out.contains(&format!("{} blocked", files_of("V002"))),
        "{out}"
    );

    // The vendor fixed its files (here: the limit relaxed): the next run does V001, then V002.
    d.write(
        "day/batchwin.toml",
        good.replace("id = \"V002\"", "id = \"V002\"\nafter = [\"V001\"]"),
    );
    d.cmd().args(run_args(&date, &[])).assert().code(0);
    let r = report(&d, &date);
    assert_eq!(r["totals"]["blocked"], 0, "{}", r["totals"]);
    assert_eq!(r["totals"]["failed"], 0, "{}", r["totals"]);
    assert_counts(&d, &date);
}

/// `log` lists the run folder's run with its failures, and `log RUN --why FILE` says which
/// check decided each step of a file: failed, done again once fixed; another skipped by the
/// resume check.
#[test]
fn log_lists_runs_and_says_why_a_file_was_done_again_or_skipped() {
    let d = Dir::new();
    let date = day_on_server(&d, "6", "2000", "3", "31");
    let e = expected(&d);
    let files_of = |v: &str| {
        e["per_file"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["vendor"] == v)
            .map(|f| f["path"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let good = d.read("day/batchwin.toml");
    d.write(
        "day/batchwin.toml",
        good.replacen("skip_limit = \"5%\"", "skip_limit = 0", 1),
    );
    d.cmd().args(run_args(&date, &[])).assert().code(1);
    let log = |d: &Dir| -> serde_json::Value {
        let o = d
            .cmd()
            .args(["log", "runs", "--format", "json"])
            .assert()
            .code(0);
        serde_json::from_slice(&o.get_output().stdout).unwrap()
    };
    let first = log(&d);
    assert_eq!(first.as_array().unwrap().len(), 1, "{first}");
    assert_eq!(first[0]["status"], "failed", "{first}");
    assert_eq!(first[0]["window"], "day");
    assert_eq!(first[0]["files"], 6);
    assert_eq!(first[0]["failed"], files_of("V001").len(), "{first}");
    for other_state in ["deferred", "blocked", "cancelled", "quarantined", "missing"] {
        assert_eq!(first[0][other_state], 0, "{first}");
    }
    assert_eq!(first[0]["sla_met"], false, "{first}");
    let failing = files_of("V001")[0].rsplit('/').next().unwrap().to_string();
    let other = files_of("V003")[0].rsplit('/').next().unwrap().to_string();
    let run = format!("runs/{date}-day");
    let why = |d: &Dir, f: &str| stdout(&d.cmd().args(["log", &run, "--why", f]).assert().code(0));
    let w = why(&d, &failing);
    assert!(w.contains("planned: whole in slice"), "{w}");
    assert!(w.contains("the file processed: failed"), "{w}");
    assert!(w.contains("over the skip limit"), "{w}");
    assert!(
        w.contains("now: not done (its latest attempt did not succeed)"),
        "{w}"
    );

    // Fixed: the next run does the failed file again and skips the others.
    d.write("day/batchwin.toml", &good);
    d.cmd().args(run_args(&date, &[])).assert().code(0);
    let w = why(&d, &failing);
    assert!(
        w.contains("processed again: its earlier attempt was failed"),
        "{w}"
    );
    assert!(w.contains("now: done"), "{w}");
    // Done before, but under another configuration: done again.
    let w = why(&d, &other);
    assert!(
        w.contains("processed again: its earlier attempt had succeeded"),
        "{w}"
    );
    // Run once more: everything is done, the resume check skips it.
    d.cmd().args(run_args(&date, &[])).assert().code(0);
    let w = why(&d, &other);
    assert!(w.contains("skipped: `run`'s resume check"), "{w}");
    assert!(!w.contains("planned:"), "{w}");
    let second = log(&d);
    assert_eq!(second[0]["status"], "ok", "{second}");
    assert_eq!(second[0]["failed"], 0, "{second}");
    assert_eq!(second[0]["records"], e["records"], "{second}");
    let table = stdout(&d.cmd().args(["log", "runs"]).assert().code(0));
    assert!(table.starts_with("date "), "{table}");
    assert!(table.contains(&format!("{date}  day")), "{table}");
    // A file the run never fetched is named as such.
    let none = d
        .cmd()
        .args(["log", &run, "--why", "no-such-file.csv"])
        .assert()
        .code(2);
    assert!(stderr_of(&none).contains("is not in the manifest"));
}

/// `status RUN --format json` (exit code 0 or 1).
fn status_of(d: &Dir, run: &str) -> serde_json::Value {
    crate::status::status_json(
        &d.cmd()
            .args(["status", run, "--format", "json"])
            .output()
            .expect("status"),
    )
}

fn stderr_of(o: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&o.get_output().stderr).into_owned()
}

/// The quarantine: a vendor whose files always fail is quarantined after `max_attempts` runs
/// (the default, 3), and the webhook is told once per file; the runs after skip it, while the
/// report, `status`, `log` and the exit status say quarantined; released (who and why are
/// recorded), it is processed once fixed and the day finishes.
#[test]
fn a_file_that_always_fails_is_quarantined_skipped_released_and_done_once_fixed() {
    let d = Dir::new();
    let date = day_on_server(&d, "6", "2000", "3", "31");
    let e = expected(&d);
    let v001: Vec<String> = e["per_file"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["vendor"] == "V001")
        .map(|f| {
            f["path"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    let n = v001.len();
    assert!(n > 0);
    let good = d.read("day/batchwin.toml");
    d.write(
        "day/batchwin.toml",
        good.replacen("skip_limit = \"5%\"", "skip_limit = 0", 1)
            + "\n[notify]\nretry_wait = \"100ms\"\n\n[[notify.webhook]]\nname = \"oncall\"\nurl_env = \"BATCHWIN_TEST_HOOK\"\nevents = [\"file_quarantined\"]\n",
    );
    let hooks = crate::telemetry::Recorder::start(d.root(), "hooks");
    let run_failing = |d: &Dir| {
        stdout(
            &d.cmd()
                .args(run_args(&date, &[]))
                .env("BATCHWIN_TEST_HOOK", hooks.url("/hook"))
                .assert()
                .code(1),
        )
    };
    let told = || -> Vec<serde_json::Value> {
        hooks
            .requests()
            .into_iter()
            .map(|q| q["body"].clone())
            .collect()
    };
    for attempt in 1..=3 {
        let out = run_failing(&d);
        let said = out
            .lines()
            .filter(|l| l.starts_with("quarantine V001 `"))
            .count();
        if attempt < 3 {
            assert_eq!(said, 0, "attempt {attempt}:\n{out}");
            assert!(told().is_empty());
        } else {
            assert_eq!(said, n, "{out}");
            assert!(out.contains("after 3 failed attempts"), "{out}");
        }
    }
    let r = report(&d, &date);
    assert_eq!(r["totals"]["quarantined"], n, "{}", r["totals"]);
    assert_eq!(r["totals"]["failed"], 0, "{}", r["totals"]);
    let held = r["quarantined"].as_array().unwrap();
    assert_eq!(held.len(), n, "{held:?}");
    for q in held {
        assert_eq!(q["vendor"], "V001");
        assert_eq!(q["attempts"], 3);
        assert!(q["error"].as_str().unwrap().contains("skip limit"), "{q}");
    }
    let events = told();
    assert_eq!(events.len(), n, "{events:?}");
    for ev in &events {
        assert_eq!(ev["event"], "file_quarantined");
        assert_eq!(ev["attempts"], 3);
        assert_eq!(ev["vendor"], "V001");
    }

    // The next run does not plan them, and still exits 1: they are not done.
    let out = run_failing(&d);
    assert!(
        out.contains(&format!("quarantine {n} files not planned")),
        "{out}"
    );
    assert_eq!(told().len(), n, "each file is announced once");
    let run_dir = format!("runs/{date}-day");
    let why = |d: &Dir| {
        stdout(
            &d.cmd()
                .args(["log", &run_dir, "--why", &v001[0]])
                .assert()
                .code(0),
        )
    };
    let w = why(&d);
    assert_eq!(w.matches("the file processed").count(), 3, "{w}");
    assert!(w.contains("quarantined after 3 failed attempts"), "{w}");
    assert!(
        w.contains("not planned: `run`'s resume check found it in quarantine"),
        "{w}"
    );
    assert!(w.contains("now: quarantined"), "{w}");
    let status = d
        .cmd()
        .args(["status", &run_dir, "--format", "json"])
        .assert()
        .code(1);
    let s: serde_json::Value = serde_json::from_slice(&status.get_output().stdout).unwrap();
    assert_eq!(s["quarantined"].as_array().unwrap().len(), n, "{s}");
    // Each unit of the day counted once, by its latest state, as the report counts it: the
    // figures add up, and each priority has the report's verdict.
    let r = report_as_run(&d, &date);
    let t = &s["totals"];
    for (st, rp) in [
        ("units", "units"),
        ("done", "units"),
        ("succeeded", "succeeded"),
        ("failed", "failed"),
        ("quarantined", "quarantined"),
    ] {
        assert_eq!(
            t[st], r["totals"][rp],
            "{st}: status {t} report {}",
            r["totals"]
        );
    }
    assert_eq!(t["quarantined"], n, "{t}");
    assert_eq!(t["left"], 0, "{t}");
    for p in r["priorities"].as_array().unwrap() {
        let mine = s["priorities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["priority"] == p["priority"])
            .unwrap_or_else(|| panic!("{} in {s}", p["priority"]));
        assert_eq!(mine["quarantined"], p["units_quarantined"], "{mine} {p}");
        assert_eq!(
            mine["done"].as_i64().unwrap(),
            p["units_done"].as_i64().unwrap() + p["units_quarantined"].as_i64().unwrap(),
            "{mine} {p}"
        );
        assert!(!p["sla_seconds"].is_null(), "{p}");
        let verdict = if p["sla_met"].as_bool().unwrap() {
            "met"
        } else {
            "missed"
        };
        assert_eq!(mine["verdict"], verdict, "{mine} {p}");
    }
    let table = stdout(&d.cmd().args(["status", &run_dir]).assert().code(1));
    assert!(table.contains(&format!("Quarantined ({n})")), "{table}");
    let units = r["totals"]["units"].as_u64().unwrap();
    assert!(
        table.contains(&format!(
            "units      {units}/{units} done ({} succeeded, 0 failed, {n} quarantined), 0 running, 0 left",
            units - n as u64
        )),
        "{table}"
    );
    let log = d
        .cmd()
        .args(["log", "runs", "--format", "json"])
        .assert()
        .code(0);
    let log: serde_json::Value = serde_json::from_slice(&log.get_output().stdout).unwrap();
    assert_eq!(log[0]["quarantined"], n, "{log}");
    assert_eq!(log[0]["status"], "quarantined", "{log}");
    assert_eq!(log[0]["failed"], 0, "{log}");
    let prom = d.path("quarantine.prom");
    d.cmd()
        .args([
            "report",
            "--ledgers",
            &format!("{run_dir}/out/ledgers"),
            "--prometheus",
        ])
        .arg(&prom)
        .assert()
        .code(1);
    let prom = std::fs::read_to_string(prom).unwrap();
    assert!(
        prom.contains(&format!("batchwin_units{{state=\"quarantined\"}} {n}")),
        "{prom}"
    );

    // A name that is not in quarantine is refused, naming it; then the vendor's files are
    // released and, fixed, done.
    let refused = d
        .cmd()
        .args([
            "release",
            "--run",
            &run_dir,
            "no-such-file.csv",
            "--by",
            "oncall",
        ])
        .assert()
        .code(2);
    assert!(
        String::from_utf8_lossy(&refused.get_output().stderr).contains("is not in quarantine"),
        "{refused:?}"
    );
    // One file by its name, then the rest with --all (`--vendor` is run_location.rs's).
    assert!(n >= 2, "two files of V001 to release apart");
    let out = stdout(
        &d.cmd()
            .args(["release", "--run", &run_dir, &v001[0]])
            .args(["--by", "oncall", "--note", "ticket 42"])
            .assert()
            .code(0),
    );
    assert_eq!(out.matches("released   V001").count(), 1, "{out}");
    assert!(out.contains(&v001[0]), "{out}");
    let s = status_of(&d, &run_dir);
    assert_eq!(s["quarantined"].as_array().unwrap().len(), n - 1, "{s}");
    assert!(
        !s["quarantined"].to_string().contains(&v001[0]),
        "{}",
        s["quarantined"]
    );
    // Released, its unit is `failed` again (the next run does it), not quarantined.
    assert_eq!(s["totals"]["quarantined"], n - 1, "{}", s["totals"]);
    assert_eq!(s["totals"]["failed"], 1, "{}", s["totals"]);
    let out = stdout(
        &d.cmd()
            .args(["release", "--run", &run_dir, "--all", "--by", "oncall"])
            .assert()
            .code(0),
    );
    assert_eq!(out.matches("released   V001").count(), n - 1, "{out}");
    assert!(!out.contains(&v001[0]), "released once: {out}");
    let s = status_of(&d, &run_dir);
    assert!(s["quarantined"].as_array().unwrap().is_empty(), "{s}");
    assert_eq!(s["totals"]["quarantined"], 0, "{}", s["totals"]);
    let out = stdout(
        &d.cmd()
            .args(["release", "--run", &run_dir, "--all", "--by", "oncall"])
            .assert()
            .code(0),
    );
    assert!(out.contains("released   nothing"), "{out}");
    d.write("day/batchwin.toml", &good);
    run_ok(&d, &date, &[]);
    assert_counts(&d, &date);
    let r = report(&d, &date);
    assert_eq!(r["totals"]["quarantined"], 0, "{}", r["totals"]);
    assert!(r["quarantined"].as_array().unwrap().is_empty());
    let w = why(&d);
    assert!(w.contains("released by oncall (ticket 42)"), "{w}");
    assert!(w.contains("now: done"), "{w}");
}

/// A generated day staged by `fetch --listing` into `staging`, with its manifest kept aside
/// (`all.jsonl`) and the listing planned as one slice (`plan.json`) while `manifest.jsonl`,
/// which the slice is to wait on, is not there yet: the listing's rows, and each file's
/// manifest line by location.
fn listed_day(d: &Dir) -> (Vec<serde_json::Value>, HashMap<String, String>) {
    use crate::util::DATE;
    let fetched = d
        .cmd()
        .args(["fetch", "--config", "day/batchwin.toml", "--source", "day"])
        .args(["--date", DATE, "--staging", "staging", "--settle", "0s"])
        .args(["--manifest", "all.jsonl", "--listing", "listing.jsonl"])
        .assert()
        .code(0);
    assert!(d.path("all.jsonl.ended").is_file(), "{}", stdout(&fetched));
    let listing: Vec<serde_json::Value> = d
        .read("listing.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("listing row"))
        .collect();
    let rows = d
        .read("all.jsonl")
        .lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).expect("row");
            (r["location"].as_str().unwrap().to_string(), l.to_string())
        })
        .collect();
    d.cmd()
        .args(["plan", "--config", "day/batchwin.toml"])
        .args([
            "--manifest",
            "listing.jsonl",
            "--fetching",
            "manifest.jsonl",
        ])
        .args(["--slices", "1", "--date", DATE, "--out", "plan.json"])
        .assert()
        .code(0);
    (listing, rows)
}

/// The manifest lines of `listed` rows, as the fetch appends them.
fn arrived(listed: &[serde_json::Value], rows: &HashMap<String, String>) -> String {
    listed
        .iter()
        .map(|r| rows[r["location"].as_str().unwrap()].clone() + "\n")
        .collect()
}

/// The slice of `plan.json` into `out`, waiting for the files of `manifest.jsonl`, with
/// `flags` and the variables `env`, as a child process whose output is kept.
fn slice_beside(d: &Dir, flags: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    d.process()
        .args(crate::util::slice_args("plan.json", 0, "out"))
        .args(["--fetching", "manifest.jsonl"])
        .args(flags)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("slice")
}

#[test]
fn slices_beside_the_fetch_wait_for_each_file_and_leave_one_never_staged_to_the_next_run() {
    use crate::util::{generate_day, process_day, slice_args, stderr as stderr_text};
    let d = Dir::new();
    generate_day(&d, "6", "20000", "3", "44");
    process_day(&d, "whole");
    let (listing, rows) = listed_day(&d);
    assert_eq!(listing.len(), 6);
    assert!(listing.iter().all(|r| r["sha256"] == ""), "{listing:?}");
    // HIGH vendors' files first, then larger files first within a priority.
    let rank = |p: &serde_json::Value| ["high", "medium", "low"].iter().position(|x| p == x);
    let order: Vec<(Option<usize>, i64)> = listing
        .iter()
        .map(|r| (rank(&r["priority"]), -r["bytes"].as_i64().unwrap()))
        .collect();
    assert!(order.is_sorted(), "{order:?}");

    // The one slice starts while nothing is staged yet: it waits.
    let mut slice = slice_beside(&d, &[], &[]);
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        slice.try_wait().expect("slice").is_none(),
        "the slice waits for its files"
    );
    // Every file but the last listed arrives; the fetch ends without the last.
    let missing = listing[5]["location"].as_str().unwrap().to_string();
    d.write("manifest.jsonl", arrived(&listing[..5], &rows));
    d.write("manifest.jsonl.ended", "2026-11-29T00:00:00Z\n");
    let done = slice.wait_with_output().expect("slice");
    let err = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&missing) && err.contains("not staged"),
        "{err}"
    );
    // The five files staged are done as alone, the sixth not at all.
    let name = std::path::Path::new(&missing)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let expected: BTreeMap<String, Vec<u8>> = tree(&d.path("whole"))
        .into_iter()
        .filter(|(k, _)| k.contains('/') && !k.ends_with(".duckdb") && !k.contains(&name))
        .collect();
    let got: BTreeMap<String, Vec<u8>> = tree(&d.path("out"))
        .into_iter()
        .filter(|(k, _)| !k.starts_with("ledgers/") && !k.starts_with("status/"))
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    assert!(
        got == expected,
        "outputs differ from the files processed alone"
    );

    // The same slice again once the file is staged: only it is done.
    d.write("manifest.jsonl", arrived(&listing, &rows));
    let again = d
        .cmd()
        .args(slice_args("plan.json", 0, "out"))
        .args(["--fetching", "manifest.jsonl"])
        .assert()
        .code(0);
    assert!(
        stdout(&again).contains("files      1 (1 succeeded"),
        "{}{}",
        stdout(&again),
        stderr_text(&again)
    );
}

#[test]
fn a_unit_whose_file_arrives_after_the_window_ended_is_deferred_unless_high() {
    let d = Dir::new();
    crate::util::generate_day(&d, "6", "20000", "3", "45");
    let (listing, rows) = listed_day(&d);
    let deadline = (Utc::now() + chrono::Duration::seconds(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // Eight file workers (two per thread): every unit, HIGH or not, is taken up and waits for
    // its file before the window ends, whatever the machine's cores.
    let slice = slice_beside(
        &d,
        &["--deadline", &deadline],
        &[("RAYON_NUM_THREADS", "4")],
    );
    // The units start waiting before the window ends; their files come after it.
    std::thread::sleep(Duration::from_secs(4));
    d.write("manifest.jsonl", arrived(&listing, &rows));
    d.write("manifest.jsonl.ended", "2026-11-29T00:00:00Z\n");
    let done = slice.wait_with_output().expect("slice");
    let out = String::from_utf8_lossy(&done.stdout);
    let high = listing.iter().filter(|r| r["priority"] == "high").count();
    assert!(high > 0 && high < 6, "{listing:?}");
    assert!(
        out.contains(&format!("files      6 ({high} succeeded, 0 failed)"))
            && out.contains(&format!("deferred   {} units of MEDIUM and LOW", 6 - high)),
        "{out}{}",
        String::from_utf8_lossy(&done.stderr)
    );
}

#[test]
fn a_day_with_no_files_succeeds_and_a_fetch_that_fails_first_gives_its_exit_code() {
    let d = Dir::new();
    let date = day_on_server(&d, "2", "100", "2", "46");
    // No files for the day at the source: nothing to plan, process or publish.
    std::fs::remove_dir_all(d.path("day/inbound")).unwrap();
    let out = run_ok(&d, &date, &[]);
    assert!(
        out.contains("plan       nothing left to do")
            && out.contains("publish    nothing to publish: no slice recorded anything"),
        "{out}"
    );
    // A source the fetch cannot even start on: its exit code is the run's, and nothing is
    // planned.
    let cfg = d.read("day/batchwin.toml").replace(
        &format!("source = {:?}", d.path("day").display().to_string()),
        "source = \"sftp://batch@127.0.0.1:1/srv\"",
    );
    d.write("day/batchwin.toml", cfg);
    std::fs::remove_dir_all(d.path("runs")).unwrap();
    let failed = d.cmd().args(run_args(&date, &[])).assert();
    let code = failed.get_output().status.code();
    let fetch_code = stdout(&failed)
        .lines()
        .find_map(|l| l.strip_prefix("took       fetch "))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|c| c.parse::<i32>().ok());
    assert!(
        code.is_some() && code != Some(0) && code == fetch_code,
        "{}",
        stdout(&failed)
    );
    assert!(
        stdout(&failed).contains("plan       nothing was fetched: nothing to plan")
            && !stdout(&failed).contains("step       plan:"),
        "{}",
        stdout(&failed)
    );
}
