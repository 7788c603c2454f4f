//! `batchwin plan` and `process --plan`: slices, splitting at record boundaries, engine files.

use std::collections::BTreeMap;

use predicates::prelude::*;

use crate::util::{
    Dir, assert_same_outputs, generate_day, plan_and_process_day, plan_day, plan_day_command,
    plan_json, process_day, process_slices,
};

#[test]
fn a_generated_day_is_balanced_over_slices() {
    let d = Dir::new();
    generate_day(&d, "200", "400000", "20", "11");
    let out = plan_day(&d, &["--slices", "4", "--split-bytes", "100000000"]);
    assert!(out.contains("8 slices in 2 stage(s)"), "{out}");
    let p = plan_json(&d, "plan.json");
    let mut seen = BTreeMap::new();
    // Stage 0 holds 18 vendors' files; stage 1 only the two dependent vendors' 20 files, too few
    // to balance closely.
    for stage in &p["stages"].as_array().unwrap()[..1] {
        let first = stage["first_slice"].as_u64().unwrap() as usize;
        let n = stage["slices"].as_u64().unwrap() as usize;
        let spans: Vec<f64> = p["slices"].as_array().unwrap()[first..first + n]
            .iter()
            .map(|s| s["estimated_seconds"].as_f64().unwrap())
            .collect();
        let (lo, hi) = (
            spans.iter().cloned().fold(f64::MAX, f64::min),
            spans.iter().cloned().fold(0.0, f64::max),
        );
        assert!(
            (hi - lo) / hi < 0.05,
            "stage {}: slice makespans {spans:?}",
            stage["index"]
        );
    }
    for s in p["slices"].as_array().unwrap() {
        for u in s["units"].as_array().unwrap() {
            *seen
                .entry(u["location"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
    }
    assert_eq!(seen.len(), 200);
    assert!(seen.values().all(|n| *n == 1));
}

/// Splitting a file into parts at several sizes: the parts' outputs, put together in order,
/// are byte for byte the output of the whole file (CSV with quoted newlines, XML, JSON Lines,
/// fixed-width), and so are the reject files.
#[test]
fn split_files_give_the_same_output_as_whole_files() {
    let d = Dir::new();
    generate_day(&d, "4", "24000", "4", "11");
    process_day(&d, "whole");
    for split in ["20000", "77777", "300000"] {
        let plan = format!("plan-{split}.json");
        let run = format!("run-{split}");
        let slices =
            plan_and_process_day(&d, &plan, &["--slices", "3", "--split-bytes", split], &run);
        let p = plan_json(&d, &plan);
        assert_eq!(slices, p["slices"].as_array().unwrap().len());
        let parts: usize = p["slices"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["units"].as_array().unwrap())
            .filter(|u| u.get("part").is_some())
            .count();
        assert!(parts > 4, "split {split}: only {parts} parts");
        assert_same_outputs(&d.path("whole"), &d.path(&run));
    }
}

#[test]
fn the_slice_comes_from_the_engine_index_and_offset() {
    let d = Dir::new();
    // Ten vendors: V010 runs after V009, so there are two stages.
    generate_day(&d, "20", "6000", "10", "11");
    plan_day(&d, &["--slices", "2"]);
    let slices = plan_json(&d, "plan.json")["slices"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(slices, 4, "two slices in each of two stages");
    let run = |envs: &[(&str, &str)]| {
        let mut c = d.cmd();
        c.args([
            "process",
            "--config",
            "day/batchwin.toml",
            "--plan",
            "plan.json",
            "--out",
            "run",
        ]);
        for (k, v) in envs {
            c.env(k, v);
        }
        c.assert()
    };
    // Stage 0 first: V010's units wait for V009's (they would be blocked).
    run(&[("AWS_BATCH_JOB_ARRAY_INDEX", "0")])
        .code(0)
        .stdout(predicate::str::contains("slice      0 of 4"));
    run(&[("JOB_COMPLETION_INDEX", "1")])
        .code(0)
        .stdout(predicate::str::contains("slice      1 of 4"));
    run(&[("SLURM_ARRAY_TASK_ID", "1"), ("BATCHWIN_SLICE_OFFSET", "2")])
        .code(0)
        .stdout(predicate::str::contains("slice      3 of 4"));
    run(&[("BATCHWIN_SLICE", "2")])
        .code(0)
        .stdout(predicate::str::contains("slice      2 of 4"));
    assert!(d.path("run/ledgers/slice-00003.duckdb").is_file());
    run(&[("BATCHWIN_SLICE", "4")])
        .code(2)
        .stderr(predicate::str::contains(
            "slice 4 is outside the plan, which has slices 0 to 3",
        ));
    run(&[])
        .code(2)
        .stderr(predicate::str::contains("which slice?"));
}

/// Past `--max-slices`, the plan has what fits, HIGH first, and leaves the rest for the next
/// run, saying why; the report of the run counts those files as deferred.
#[test]
fn a_day_too_big_for_max_slices_plans_what_fits() {
    let d = Dir::new();
    generate_day(&d, "8", "8000", "4", "11");
    plan_day_command(
        &d,
        &[
            "--window",
            "06:00-06:01",
            "--max-slices",
            "1",
            "--split-bytes",
            "100000000",
        ],
    )
    .env("BATCHWIN_DATE", "2026-11-29")
    .assert()
    .code(0);
    // 60 s at 0.8 is plenty for 2 MB; at a utilization of a millionth it is not.
    let o = plan_day_command(
        &d,
        &[
            "--window",
            "06:00-06:01",
            "--max-slices",
            "2",
            "--utilization",
            "0.000001",
        ],
    )
    .assert()
    .code(0);
    let out = String::from_utf8_lossy(&o.get_output().stdout).into_owned();
    assert!(out.contains("left for the next run"), "{out}");
    assert!(out.contains("does not fit the window"), "{out}");
    let p = plan_json(&d, "plan.json");
    let e: serde_json::Value = serde_json::from_str(&d.read("day/expected.json")).unwrap();
    let files = e["per_file"].as_array().unwrap();
    let high = files.iter().filter(|f| f["priority"] == "high").count();
    assert!(high > 0 && high < files.len());
    let planned: Vec<&serde_json::Value> = p["slices"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["units"].as_array().unwrap())
        .collect();
    assert!(planned.iter().all(|u| u["priority"] == "high"), "{p}");
    assert_eq!(
        p["deferred"]["files"].as_array().unwrap().len(),
        files.len() - high,
        "{p}"
    );
    // The slices run; the report with the plan counts the files left as deferred.
    process_slices(&d, "plan.json", "run", &["-q"]);
    let r = d
        .cmd()
        .args(["report", "--ledgers", "run/ledgers", "--plan", "plan.json"])
        .args(["--format", "json"])
        .assert()
        .code(1);
    let r: serde_json::Value = serde_json::from_slice(&r.get_output().stdout).unwrap();
    assert_eq!(
        r["totals"]["deferred"],
        files.len() - high,
        "{}",
        r["totals"]
    );
    assert_eq!(r["totals"]["failed"], 0, "{}", r["totals"]);
    assert!(
        r["failures"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["status"] == "deferred"
                && f["error"]
                    .as_str()
                    .unwrap()
                    .contains("left for the next run")),
        "{}",
        r["failures"]
    );
}

#[test]
fn a_dependency_cycle_names_the_vendors() {
    let d = Dir::new();
    generate_day(&d, "8", "800", "10", "11");
    // V010 already runs after V009; make V009 run after V010.
    let config = d
        .read("day/batchwin.toml")
        .replace("id = \"V009\"", "id = \"V009\"\nafter = [\"V010\"]");
    d.write("day/batchwin.toml", config);
    plan_day_command(&d, &[])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cycle: V009 -> V010 -> V009"));
}

#[test]
fn emitted_engine_files_pass_the_engines_own_models() {
    let d = Dir::new();
    generate_day(&d, "30", "3000", "10", "11");
    plan_day(
        &d,
        &[
            "--slices",
            "7",
            "--emit",
            "slurm,aws-batch,azure-batch,k8s",
            "--emit-dir",
            "emit",
            "--slurm-max-array-size",
            "4",
        ],
    );
    // Slurm: stage 0 has 7 slices, so two arrays of at most 4 tasks (the second at offset 4);
    // stage 1 (V010's three files after V009) has 3 slices in one array at offset 7.
    let p = plan_json(&d, "plan.json");
    let stages: Vec<(u64, u64)> = p["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["first_slice"].as_u64().unwrap(),
                s["slices"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(stages, [(0, 7), (7, 3)]);
    let submit = d.read("emit/slurm/submit.sh");
    assert_eq!(
        submit.matches("sbatch --parsable").count(),
        2 + 1 + 1,
        "{submit}"
    );
    assert!(
        submit.contains(
            "job_1_7=$(sbatch --parsable --dependency=afterany:$job_0_0:$job_0_4 stage-1-7.sbatch)"
        ),
        "{submit}"
    );
    assert!(
        submit.contains("--dependency=afterany:$job_0_0:$job_0_4:$job_1_7 report.sbatch"),
        "{submit}"
    );
    let s0 = d.read("emit/slurm/stage-0-4.sbatch");
    assert!(
        s0.contains("#SBATCH --array=0-2%100")
            && s0.contains("BATCHWIN_SLICE_OFFSET=4")
            && s0.contains("--requeue"),
        "{s0}"
    );
    // Kubernetes: one Indexed Job per stage.
    let k: serde_json::Value =
        serde_json::from_str(&d.read("emit/k8s/batchwin-2026-11-29-s1.json")).unwrap();
    assert_eq!(k["spec"]["completionMode"], "Indexed");
    assert_eq!(k["spec"]["completions"], 3);

    let Some(py) = std::env::var_os("BATCHWIN_TEST_PYTHON") else {
        eprintln!(
            "BATCHWIN_TEST_PYTHON is not set; scripts/test sets it. Engine models not checked here."
        );
        return;
    };
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validators");
    let out = std::process::Command::new(py)
        .arg(here.join("aws_batch.py"))
        .arg(d.path("emit/aws-batch"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let az = std::env::var_os("BATCHWIN_TEST_AZURE_PYTHON")
        .expect("scripts/test sets BATCHWIN_TEST_AZURE_PYTHON with BATCHWIN_TEST_PYTHON");
    let out = std::process::Command::new(az)
        .arg(here.join("azure_batch.py"))
        .arg(d.path("emit/azure-batch"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--history` balances on each vendor's measured cost per byte from earlier ledgers.
#[test]
fn history_gives_each_vendor_its_measured_cost() {
    let d = Dir::new();
    generate_day(&d, "8", "20000", "4", "11");
    process_day(&d, "past");
    plan_day(&d, &["--slices", "2", "--history", "past"]);
    let ledger = batchwin::ledger::Ledger::open(&d.path("past/ledger.duckdb")).unwrap();
    let mut stmt = ledger
        .connection()
        .prepare("SELECT vendor, (sum(epoch(ended_at) - epoch(started_at)) / sum(input_bytes))::DOUBLE FROM files GROUP BY vendor")
        .unwrap();
    let measured: BTreeMap<String, f64> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(measured.len(), 4);
    let p = plan_json(&d, "plan.json");
    for u in p["slices"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["units"].as_array().unwrap())
    {
        let per_byte = u["estimated_seconds"].as_f64().unwrap() / u["bytes"].as_f64().unwrap();
        let want = measured[u["vendor"].as_str().unwrap()];
        assert!(
            (per_byte - want).abs() <= want * 1e-6,
            "{}: {per_byte} s/byte, measured {want}",
            u["location"]
        );
        assert!(
            (per_byte - 1.0 / 50e6).abs() > 1e-12,
            "the default cost was used"
        );
    }
}
