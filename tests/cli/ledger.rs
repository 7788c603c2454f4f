//! The DuckDB run ledger: it records what the run did, exactly, and other tools can read it.

use std::collections::BTreeMap;

use crate::util::{Dir, generate, process_day};

/// A generated day of ten files, processed whole into `out/`.
fn process_generated_day(d: &Dir) {
    generate(d, "day", "10", "20000", &["--seed", "3"]);
    process_day(d, "out");
}

#[test]
fn ledger_matches_what_the_generator_wrote() {
    let d = Dir::new();
    process_generated_day(&d);
    let expected: serde_json::Value = serde_json::from_str(&d.read("day/expected.json")).unwrap();
    let ledger = batchwin::ledger::Ledger::open(&d.path("out/ledger.duckdb")).unwrap();
    let conn = ledger.connection();

    let (runs, exit_code): (i64, i32) = conn
        .query_row(
            "SELECT count(*), max(exit_code) FROM runs WHERE ended_at IS NOT NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((runs, exit_code), (1, 0));

    for f in expected["per_file"].as_array().unwrap() {
        let name = f["path"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        let (rin, rout, rej, status, sha): (i64, i64, i64, String, String) = conn
            .query_row(
                "SELECT records_in, records_out, records_rejected, status, input_sha256 FROM files WHERE input_path LIKE '%/' || ?",
                [&name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        let records = f["records"].as_i64().unwrap();
        let invalid = f["invalid"].as_i64().unwrap();
        assert_eq!(
            (rin, rout, rej, status.as_str()),
            (records, records - invalid, invalid, "succeeded"),
            "{name}"
        );
        let bytes = std::fs::read(d.path(&format!("day/{}", f["path"].as_str().unwrap()))).unwrap();
        assert_eq!(
            sha,
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
        );

        let mut stmt = conn
            .prepare("SELECT coalesce(field || '.', '') || rule, count FROM rejects WHERE input_path LIKE '%/' || ? ORDER BY 1")
            .unwrap();
        let got: BTreeMap<String, u64> = stmt
            .query_map([&name], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let want: BTreeMap<String, u64> = f["reasons"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .collect();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn python_duckdb_reads_the_ledger() {
    let Some(python) = std::env::var_os("BATCHWIN_TEST_PYTHON") else {
        eprintln!("BATCHWIN_TEST_PYTHON is not set; scripts/test sets it. Not checked here.");
        return;
    };
    let d = Dir::new();
    process_generated_day(&d);
    let read = python_reads(
        &python,
        &d.path("out/ledger.duckdb"),
        "print(con.sql(\"SELECT value FROM meta WHERE key = 'schema_version'\").fetchall()[0][0])\n",
    );
    assert_eq!(read, "(10, 20000)\n7\n");
}

/// What Python's duckdb prints of the ledger at `ledger` (opened read-only as `con`): its
/// files and their records, then what `more` prints.
fn python_reads(python: &std::ffi::OsStr, ledger: &std::path::Path, more: &str) -> String {
    let script = format!(
        "import duckdb, sys\n\
con = duckdb.connect(sys.argv[1], read_only=True)\n\
print(con.sql('SELECT count(*), sum(records_in) FROM files').fetchall()[0])\n{more}"
    );
    let out = std::process::Command::new(python)
        .args(["-c", &script])
        .arg(ledger)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The ledger opens while the first files are processed; when it cannot be opened, nothing is
/// delivered: no output, no reject file, no temporary file left, and the run fails.
#[test]
fn a_ledger_that_cannot_be_opened_leaves_nothing_delivered() {
    let d = Dir::new();
    crate::util::generate_day(&d, "6", "6000", "4", "5");
    d.write("out/ledger.duckdb", "not a DuckDB file\n");
    let out = crate::util::process_day_command(&d, "out", "2026-11-29")
        .assert()
        .code(1);
    let err = crate::util::stderr(&out);
    assert!(err.contains("ledger.duckdb"), "{err}");
    let left: Vec<String> = crate::util::tree(&d.path("out"))
        .into_keys()
        .filter(|k| k != "status.json")
        .collect();
    assert_eq!(left, vec!["ledger.duckdb".to_string()], "{err}");
}

/// A small run writes its rows to the ledger's journal, not the ledger; a second run on the
/// same ledger adds its own; `report` folds them into the ledger (what DuckDB, and so Python,
/// then reads) and removes the journal, with the same figures the generator wrote.
#[test]
fn small_runs_reach_the_ledger_through_its_journal() {
    let d = Dir::new();
    crate::util::generate_day(&d, "4", "2000", "1", "8");
    let inputs: Vec<String> = crate::util::tree(&d.path("day/inbound"))
        .into_keys()
        .map(|k| format!("day/inbound/{k}"))
        .collect();
    assert_eq!(inputs.len(), 4, "{inputs:?}");
    for half in inputs.chunks(2) {
        let mut c = d.cmd();
        c.args([
            "process",
            "--config",
            "day/batchwin.toml",
            "--vendor",
            "V001",
        ])
        .args(["--out", "out", "--date", "2026-11-29"]);
        for input in half {
            c.args(["--input", input]);
        }
        c.assert().success();
    }
    assert!(!d.path("out/ledger.duckdb").exists());
    let journal = d.read("out/ledger.duckdb.journal");
    assert_eq!(journal.lines().count(), 2 * (1 + 2 + 1), "{journal}");

    let o = d
        .cmd()
        .args(["report", "--ledgers", "out", "--format", "json"])
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&o.get_output().stdout).expect("report");
    let expected: serde_json::Value = serde_json::from_str(&d.read("day/expected.json")).unwrap();
    assert_eq!(report["totals"]["records_in"], expected["records"]);
    assert_eq!(report["totals"]["records_rejected"], expected["invalid"]);
    assert!(!d.path("out/ledger.duckdb.journal").exists());

    let ledger = batchwin::ledger::Ledger::open(&d.path("out/ledger.duckdb")).unwrap();
    let (runs, ended, files): (i64, i64, i64) = ledger
        .connection()
        .query_row(
            "SELECT count(*), count(ended_at), (SELECT count(*) FROM files) FROM runs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((runs, ended, files), (2, 2, 4));
    drop(ledger);
    let Some(python) = std::env::var_os("BATCHWIN_TEST_PYTHON") else {
        return;
    };
    assert_eq!(
        python_reads(&python, &d.path("out/ledger.duckdb"), ""),
        "(4, 2000)\n"
    );
}

/// A small run and a run that writes the ledger through DuckDB never run on the same ledger at
/// once: a small run is refused while another process has the ledger open, and a large run
/// while another holds the journal; each delivers nothing, and runs once the other let go.
#[test]
fn a_small_run_and_a_large_run_never_share_a_ledger() {
    let d = Dir::new();
    // One vendor, 60,000 records: more than the 4 MiB a small run may have.
    crate::util::generate_day(&d, "3", "60000", "1", "9");
    std::fs::create_dir_all(d.path("out")).unwrap();
    let delivered = |d: &Dir| {
        crate::util::tree(&d.path("out"))
            .into_keys()
            .filter(|k| !k.starts_with("ledger.duckdb") && k != "status.json")
            .count()
    };
    let small = |d: &Dir| {
        let input = crate::util::tree(&d.path("day/inbound"))
            .into_keys()
            .next()
            .unwrap();
        let mut c = d.cmd();
        c.args([
            "process",
            "--config",
            "day/batchwin.toml",
            "--vendor",
            "V001",
        ])
        .args(["--input", &format!("day/inbound/{input}")])
        .args(["--out", "out", "--date", "2026-11-29"]);
        c
    };

    // The test holds the ledger open, as a large run would.
    let held = batchwin::ledger::Ledger::open(&d.path("out/ledger.duckdb")).unwrap();
    let err = crate::util::stderr(&small(&d).assert().code(1));
    assert!(err.contains("held open by another process"), "{err}");
    assert_eq!(delivered(&d), 0, "{err}");
    drop(held);

    // The test holds the journal, as a small run would.
    let journal = std::fs::File::create(d.path("out/ledger.duckdb.journal")).unwrap();
    journal.lock().unwrap();
    let err = crate::util::stderr(
        &crate::util::process_day_command(&d, "out", "2026-11-29")
            .assert()
            .code(1),
    );
    assert!(
        err.contains("being written by another batchwin run"),
        "{err}"
    );
    assert_eq!(delivered(&d), 0, "{err}");
    drop(journal);

    small(&d).assert().success();
    crate::util::process_day_command(&d, "out", "2026-11-29")
        .assert()
        .success();
    assert!(!d.path("out/ledger.duckdb.journal").exists());
}

/// A ledger named by its file that has only its journal yet (`report --ledgers
/// OUT/ledger.duckdb` after one small run) is folded and reported.
#[test]
fn a_ledger_named_by_its_file_is_folded_from_its_journal() {
    let d = Dir::new();
    crate::util::generate_day(&d, "1", "300", "1", "9");
    let input = crate::util::tree(&d.path("day/inbound"))
        .into_keys()
        .next()
        .expect("a generated file");
    d.cmd()
        .args([
            "process",
            "--config",
            "day/batchwin.toml",
            "--vendor",
            "V001",
        ])
        .args(["--out", "out", "--date", "2026-11-29", "--input"])
        .arg(format!("day/inbound/{input}"))
        .assert()
        .success();
    assert!(d.path("out/ledger.duckdb.journal").exists());
    let o = d
        .cmd()
        .args([
            "report",
            "--ledgers",
            "out/ledger.duckdb",
            "--format",
            "json",
        ])
        .args(["--out", "report.duckdb"])
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&o.get_output().stdout).expect("report");
    assert_eq!(report["totals"]["records_in"], 300);
    assert!(d.path("out/ledger.duckdb").exists());
    assert!(!d.path("out/ledger.duckdb.journal").exists());
}
