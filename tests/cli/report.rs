//! `batchwin report`: merging the slices' ledgers of a run and summing them up.

use predicates::prelude::*;

use crate::util::{Dir, generate_day, plan_and_process_day, plan_day, process_slice, stdout};

/// A generated day of ten vendors, planned (files split) and every slice processed into `run/`:
/// how many slices.
fn run_plan(d: &Dir) -> usize {
    generate_day(d, "20", "12000", "10", "21");
    plan_and_process_day(
        d,
        "plan.json",
        &["--slices", "2", "--split-bytes", "40000"],
        "run",
    )
}

fn report_json(d: &Dir) -> serde_json::Value {
    let out = d
        .cmd()
        .args(["report", "--ledgers", "run/ledgers", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn merged_figures_match_the_generated_day_and_merging_again_changes_nothing() {
    let d = Dir::new();
    let slices = run_plan(&d);
    let expected: serde_json::Value = serde_json::from_str(&d.read("day/expected.json")).unwrap();
    let first = report_json(&d);
    let t = &first["totals"];
    assert_eq!(t["files"], 20);
    assert_eq!(t["records_in"], expected["records"]);
    assert_eq!(t["records_rejected"], expected["invalid"]);
    assert_eq!(t["failed"], 0);
    assert_eq!(first["slices"].as_array().unwrap().len(), slices);
    // Per vendor, records and rejects add up to what the generator wrote.
    for v in first["vendors"].as_array().unwrap() {
        let id = v["vendor"].as_str().unwrap();
        let files: Vec<&serde_json::Value> = expected["per_file"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["vendor"] == id)
            .collect();
        let records: u64 = files.iter().map(|f| f["records"].as_u64().unwrap()).sum();
        let invalid: u64 = files.iter().map(|f| f["invalid"].as_u64().unwrap()).sum();
        assert_eq!(
            (
                v["records_in"].as_u64().unwrap(),
                v["records_rejected"].as_u64().unwrap()
            ),
            (records, invalid),
            "{id}"
        );
    }
    // Merging the same ledgers again, and re-running a slice, counts nothing twice.
    process_slice(&d, "plan.json", 0, "run", &["-q"]);
    let second = report_json(&d);
    assert_eq!(
        second["totals"]["records_in"],
        first["totals"]["records_in"]
    );
    assert_eq!(second["totals"]["units"], first["totals"]["units"]);
    assert_eq!(
        second["vendors"].as_array().unwrap().len(),
        first["vendors"].as_array().unwrap().len()
    );

    // The merged ledger is a plain DuckDB file with a `slice` column.
    let merged = duckdb::Connection::open(d.path("run/report.duckdb")).unwrap();
    let n: i64 = merged
        .query_row("SELECT count(DISTINCT slice) FROM files", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n as usize, slices);
}

/// The table report (the default format) of a small day planned in two slices, with its plan
/// and config: what an operator reads after a run. What changes from run to run is masked:
/// the temporary folder, times, durations and rates.
#[test]
fn table_report_of_a_small_day() {
    let d = Dir::new();
    generate_day(&d, "6", "3000", "3", "17");
    plan_and_process_day(&d, "plan.json", &["--slices", "2"], "run");
    let o = d
        .cmd()
        .args(["report", "--ledgers", "run/ledgers", "--plan", "plan.json"])
        .args(["--config", "day/batchwin.toml"])
        .assert()
        .code(0);
    // Each masked cell keeps its column's width (the value and its padding are replaced
    // together), so the snapshot stays a readable, aligned table.
    let root = regex::escape(&d.root().display().to_string());
    let filters = vec![
        (root.as_str(), "[TMP]"),
        (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "YYYY-MM-DD hh:mm:ss"),
        (
            r"(?m)^wall time  \d+\.\d s, [\d,]+ records/s$",
            "wall time  [SECONDS] s, [RATE] records/s",
        ),
        // The cost of the measured run, and each engine's price of it.
        (
            r"(?m)^cost       \d+\.\d+ vCPU-hours, \d+\.\d+ GB-hours measured",
            "cost       [HOURS] vCPU-hours, [HOURS] GB-hours measured",
        ),
        (
            r"(?m)^cpu        \d+\.\d+ vCPU-hours of CPU time measured \((\d+) of (\d+) runs\), \d+ % of the vCPUs held$",
            "cpu        [HOURS] vCPU-hours of CPU time measured ($1 of $2 runs), [SHARE] % of the vCPUs held",
        ),
        (
            r"(?m)^  (aws-batch|azure-batch|k8s|slurm) +[\d.]+ USD +[\d.]+ USD",
            "  $1 [COST] USD [COST] USD",
        ),
        // Priorities: finished after, and the time to spare before the SLA.
        (
            r"(?m)^((?:high|medium|low) +\d+ +\d+ +\d+ +)\d+\.\d s +(\d+\.\d s +)met, \d+\.\d s to spare$",
            "${1}[SECONDS] s       ${2}met, [SECONDS] s to spare",
        ),
        // Vendors: seconds and records/s.
        (
            r"(?m)^(V\d{3} +\w+ +\d+ +\d+ +[\d,]+ +[\d,]+ +)\d+\.\d\d +[\d,]+ +",
            "${1}[SECONDS]  [RATE]        ",
        ),
        // Slices: seconds, and idle seconds with the straggler mark that follows from them.
        (
            r"(?m)^(slice-\d{5} +YYYY-MM-DD hh:mm:ss  YYYY-MM-DD hh:mm:ss  )\d+\.\d\d +(\d+ +[\d,]+ +)\d+\.\d(?: +yes)?$",
            "${1}[SECONDS]  ${2}[SECONDS]",
        ),
    ];
    insta::with_settings!({filters => filters}, {
        insta::assert_snapshot!(stdout(&o));
    });
}

#[test]
fn an_unreadable_slice_ledger_is_named_and_fails_the_report() {
    let d = Dir::new();
    run_plan(&d);
    d.write("run/ledgers/slice-00099.duckdb", b"this is not a ledger");
    d.cmd()
        .args(["report", "--ledgers", "run/ledgers"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("Ledgers that could not be read"))
        .stdout(predicate::str::contains("slice-00099"));
}

#[test]
fn markdown_and_csv_formats() {
    let d = Dir::new();
    run_plan(&d);
    d.cmd()
        .args(["report", "--ledgers", "run/ledgers", "--format", "markdown"])
        .assert()
        .code(0)
        .stdout(predicate::str::starts_with("# batchwin report"))
        .stdout(predicate::str::contains("| vendor | priority |"));
    let out = d
        .cmd()
        .args(["report", "--ledgers", "run/ledgers", "--format", "csv"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(
            "vendor,priority,units,failed,records_in,records_rejected,seconds,records_per_second\n"
        ),
        "{text}"
    );
    assert_eq!(text.lines().count(), 11, "a header and ten vendors: {text}");
}

#[test]
fn missing_slices_and_units_late_priorities_and_prometheus() {
    let d = Dir::new();
    generate_day(&d, "12", "6000", "4", "3");
    plan_day(&d, &["--slices", "3"]);
    for k in [0, 1] {
        process_slice(&d, "plan.json", k, "run", &["-q"]);
    }
    // Slice 2 never ran: the report names it and its files, and exits 1.
    d.cmd()
        .args([
            "report",
            "--ledgers",
            "run/ledgers",
            "--plan",
            "plan.json",
            "--config",
            "day/batchwin.toml",
            "--prometheus",
            "run.prom",
        ])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "slice 2 never started (no ledger)",
        ))
        .stdout(predicate::str::contains("(slice 2): no result"));
    let prom = d.read("run.prom");
    assert!(
        prom.contains("# TYPE batchwin_records_in gauge\nbatchwin_records_in "),
        "{prom}"
    );
    assert!(
        prom.contains("batchwin_priority_sla_met{priority=\"high\"} "),
        "{prom}"
    );
    // An operator may choose to look only at failures.
    d.cmd()
        .args([
            "report",
            "--ledgers",
            "run/ledgers",
            "--plan",
            "plan.json",
            "--fail-on",
            "failed",
        ])
        .assert()
        .code(0);
    // A window that opened a day earlier: every SLA is missed.
    d.cmd()
        .args([
            "report",
            "--ledgers",
            "run/ledgers",
            "--config",
            "day/batchwin.toml",
            "--window-start",
            "2000-01-01T06:00:00Z",
        ])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("MISSED by"));
}

/// The HTML report in a real headless Chromium (installed by `scripts/test`): it loads without
/// errors, and shows the SLA table, the timeline and the throughput chart.
#[test]
fn html_report_renders_in_headless_chromium() {
    let Some(chromium) = std::env::var_os("BATCHWIN_TEST_CHROMIUM") else {
        eprintln!("BATCHWIN_TEST_CHROMIUM is not set; scripts/test installs Chromium and sets it.");
        return;
    };
    let d = Dir::new();
    run_plan(&d);
    let out = d
        .cmd()
        .args([
            "report",
            "--ledgers",
            "run/ledgers",
            "--config",
            "day/batchwin.toml",
            "--format",
            "html",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    std::fs::write(d.path("report.html"), &out.stdout).unwrap();
    let url = format!("file://{}", d.path("report.html").display());
    let chrome = |extra: &[&str]| {
        let profile = tempfile::tempdir().unwrap();
        std::process::Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--enable-logging=stderr",
                "--v=0",
                "--window-size=1200,1100",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .output()
            .expect("chromium")
    };
    let shot = d.path("report.png");
    let out = chrome(&[&format!("--screenshot={}", shot.display())]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        !log.contains("Uncaught") && !log.contains("CONSOLE"),
        "the page logged errors:\n{log}"
    );
    let png = std::fs::read(&shot).expect("screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "screenshot of {} bytes",
        png.len()
    );
    let dom = String::from_utf8_lossy(&chrome(&["--dump-dom"]).stdout).into_owned();
    assert!(
        dom.contains("id=\"sla-table\"") && dom.contains(">high<"),
        "no SLA table"
    );
    let timeline = dom
        .split("id=\"timeline-chart\"")
        .nth(1)
        .expect("timeline chart");
    assert!(
        timeline
            .split("</svg>")
            .next()
            .unwrap()
            .matches("<rect")
            .count()
            >= 20,
        "timeline has no bars"
    );
    assert!(
        dom.contains("id=\"throughput-chart\""),
        "no throughput chart"
    );
}

/// Other tools read the merged ledger: the Python duckdb package, including the `history`
/// table of each vendor's measured cost.
#[test]
fn python_duckdb_reads_the_merged_ledger_and_its_history() {
    let Some(python) = std::env::var_os("BATCHWIN_TEST_PYTHON") else {
        eprintln!("BATCHWIN_TEST_PYTHON is not set; scripts/test sets it.");
        return;
    };
    let d = Dir::new();
    run_plan(&d);
    report_json(&d);
    let script = "import duckdb, sys\n\
con = duckdb.connect(sys.argv[1], read_only=True)\n\
print(con.sql('SELECT count(DISTINCT slice) > 1, sum(records_in) FROM files').fetchall()[0])\n\
print(con.sql('SELECT count(*), min(seconds_per_byte) > 0 FROM history').fetchall()[0])\n";
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(d.path("run/report.duckdb"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "(True, 12000)\n(10, True)\n"
    );
}

/// `--html FILE` and `--json FILE` write what `--format html` and `--format json` print, from
/// the same merge as what is printed beside them (what `run` asks for in one report): the same
/// bytes as that invocation prints in the same layout, with no temporary file left.
#[test]
fn the_page_and_the_json_are_written_beside_the_table_from_one_merge() {
    let d = Dir::new();
    run_plan(&d);
    let report = |extra: &[&str]| {
        let out = d
            .cmd()
            .args([
                "report",
                "--ledgers",
                "run/ledgers",
                "--config",
                "day/batchwin.toml",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let table =
        String::from_utf8(report(&["--html", "page.html", "--json", "report.json"])).unwrap();
    assert!(
        table.contains("Priorities") && table.contains("Vendors"),
        "{table}"
    );
    let page = std::fs::read_to_string(d.path("page.html")).unwrap();
    assert!(page.contains("<html") && page.contains("V001"), "{page}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path("report.json")).unwrap()).unwrap();
    assert_eq!(json["totals"]["records_in"], 12000);
    // Printed and written from one merge: the same bytes.
    let printed = report(&["--format", "json", "--json", "again.json"]);
    assert_eq!(std::fs::read(d.path("again.json")).unwrap(), printed);
    let printed = report(&["--format", "html", "--html", "again.html"]);
    assert_eq!(std::fs::read(d.path("again.html")).unwrap(), printed);
    let left: Vec<String> = std::fs::read_dir(d.root())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
