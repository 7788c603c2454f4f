//! `fetch` and `publish` end to end: a local folder, the OpenSSH server, the S3 API server and
//! Azurite (all started by `scripts/test`), with idempotence, conflicts, in-progress uploads,
//! unsafe names, wrong host keys and a server restarted in the middle of a transfer.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use batchwin::storage::Store;

use crate::storage::{azurite_options, runtime, s3_options};
use crate::util::{
    Dir, Sftp, assert_published, deliveries, generate_day, process_day, process_slices, service,
    stderr, stdout, tree,
};

const DATE: &str = "2026-11-29";

fn lines(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Copies a folder tree (the server's disk is this machine's).
fn copy_tree(from: &Path, to: &Path) {
    for (rel, bytes) in tree(from) {
        let p = to.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

/// Vendor ids of a generated day, in config order.
fn vendor_ids(d: &Dir) -> Vec<String> {
    let cfg: toml::Value = toml::from_str(&d.read("day/batchwin.toml")).unwrap();
    cfg["vendor"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

fn fetch_args<'a>(source: &'a str, extra: &'a [&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "fetch",
        "--config",
        "day/batchwin.toml",
        "--source",
        source,
        "--date",
        DATE,
    ];
    // Defaults that `extra` may replace.
    for (flag, value) in [
        ("--staging", "staging"),
        ("--manifest", "manifest.jsonl"),
        ("--settle", "0s"),
    ] {
        if !extra.contains(&flag) {
            a.extend([flag, value]);
        }
    }
    a.extend_from_slice(extra);
    a
}

#[test]
fn fetch_from_a_folder_is_idempotent_and_flags_changed_files() {
    let d = Dir::new();
    generate_day(&d, "6", "3000", "2", "11");
    let vendors = vendor_ids(&d);
    // Not data: a file of an unknown vendor, names still being written.
    d.write(&format!("day/inbound/{DATE}/nobody/x.csv"), "a\n");
    d.write(
        &format!("day/inbound/{DATE}/{}/late.csv.part", vendors[0]),
        "a\n",
    );
    d.write(
        &format!("day/inbound/{DATE}/{}/.hidden.csv", vendors[0]),
        "a\n",
    );

    let first = d.cmd().args(fetch_args("day", &[])).assert().code(0);
    assert!(
        stderr(&first).contains("`nobody`, which is not a configured vendor"),
        "{}",
        stderr(&first)
    );
    let rows = lines(&d.path("manifest.jsonl"));
    assert_eq!(rows.len(), 6, "{rows:?}");
    let staged = tree(&d.path(&format!("staging/{DATE}")));
    let mut source = tree(&d.path(&format!("day/inbound/{DATE}")));
    source.retain(|k, _| !k.starts_with("nobody/") && !k.ends_with(".part") && !k.contains("/."));
    assert_eq!(staged, source, "staged files equal the sources");
    for r in &rows {
        let p = PathBuf::from(r["location"].as_str().unwrap());
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(r["bytes"].as_u64().unwrap(), bytes.len() as u64);
        assert_eq!(
            r["sha256"].as_str().unwrap(),
            batchwin::plan::manifest::checksum(&p).unwrap().sha256
        );
        assert!(
            r["source"].as_str().unwrap().starts_with("day/inbound/"),
            "{r}"
        );
    }

    let again = d.cmd().args(fetch_args("day", &[])).assert().code(0);
    assert!(
        stdout(&again).contains("0 files staged (0.0 MB), 6 already staged"),
        "{}",
        stdout(&again)
    );
    assert_eq!(
        lines(&d.path("manifest.jsonl")),
        rows,
        "a second fetch adds no rows"
    );

    // A file that changed at the source is staged again, flagged, and still has one row.
    let changed = rows[0]["source"].as_str().unwrap().to_string();
    let mut bytes = std::fs::read(d.path(&changed)).unwrap();
    bytes.extend_from_slice(b"\n");
    std::thread::sleep(Duration::from_millis(1100)); // a new modification time
    std::fs::write(d.path(&changed), &bytes).unwrap();
    let third = d.cmd().args(fetch_args("day", &[])).assert().code(0);
    assert!(
        stdout(&third).contains("1 files staged") && stdout(&third).contains("1 changed"),
        "{}",
        stdout(&third)
    );
    let after = lines(&d.path("manifest.jsonl"));
    assert_eq!(after.len(), 6);
    let row = after
        .iter()
        .find(|r| r["source"] == changed.as_str())
        .unwrap();
    assert_eq!(row["replaced_sha256"], rows[0]["sha256"]);
    assert_eq!(
        std::fs::read(row["location"].as_str().unwrap()).unwrap(),
        bytes
    );
}

#[test]
fn in_progress_uploads_are_not_fetched_until_complete() {
    let d = Dir::new();
    generate_day(&d, "4", "2000", "2", "12");
    let vendors = vendor_ids(&d);
    // The last vendor writes a completion marker after each file.
    let cfg = d.read("day/batchwin.toml") + "\n[vendor.transfer]\nmarker = \"{file}.done\"\n";
    d.write("day/batchwin.toml", cfg);
    let marked = &vendors[1];
    let inbound = d.path(&format!("day/inbound/{DATE}"));
    let marked_files: Vec<String> = tree(&inbound.join(marked)).into_keys().collect();

    let o = d.cmd().args(fetch_args("day", &[])).assert().code(0);
    let rows = lines(&d.path("manifest.jsonl"));
    assert!(
        rows.iter().all(|r| r["vendor"] != marked.as_str()),
        "no marker, no fetch: {rows:?}"
    );
    assert!(
        stdout(&o).contains(&format!("{} still being uploaded", marked_files.len())),
        "{}",
        stdout(&o)
    );

    d.write(
        &format!("day/inbound/{DATE}/{marked}/{}.done", marked_files[0]),
        "",
    );
    d.cmd().args(fetch_args("day", &[])).assert().code(0);
    let rows = lines(&d.path("manifest.jsonl"));
    let got: Vec<&str> = rows
        .iter()
        .filter(|r| r["vendor"] == marked.as_str())
        .map(|r| r["location"].as_str().unwrap())
        .collect();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].ends_with(&marked_files[0]),
        "the marker itself is not data: {got:?}"
    );

    // Without a marker, a file must keep its size and time for the settle interval.
    let growing = inbound.join(&vendors[0]).join("growing.csv");
    let writer = {
        let growing = growing.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::File::create(&growing).unwrap();
            for i in 0..30 {
                writeln!(f, "line {i}").unwrap();
                f.flush().unwrap();
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let o = d
        .cmd()
        .args(fetch_args("day", &["--settle", "1s"]))
        .assert()
        .code(0);
    assert!(
        !d.read("manifest.jsonl").contains("growing.csv"),
        "{}",
        stdout(&o)
    );
    // The growing file, and the marked vendor's files that still have no marker.
    let waiting = format!("{} still being uploaded", marked_files.len());
    assert!(stdout(&o).contains(&waiting), "{}", stdout(&o));
    writer.join().unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    d.cmd()
        .args(fetch_args("day", &["--settle", "1s"]))
        .assert()
        .code(0);
    assert!(d.read("manifest.jsonl").contains("growing.csv"));
}

/// The SFTP flags and the source URL of a generated day copied to the server.
fn day_on_sftp(d: &Dir, s: &Sftp) -> (String, PathBuf) {
    let (url, local) = s.folder();
    copy_tree(&d.path("day/inbound"), &local.join("inbound"));
    (url, local)
}

/// plan (2 slices, files split) of `manifest.jsonl` and process both slices into `run/`.
fn plan_and_process(d: &Dir) {
    d.cmd()
        .args([
            "plan",
            "--config",
            "day/batchwin.toml",
            "--manifest",
            "manifest.jsonl",
            "--slices",
            "2",
        ])
        .args([
            "--split-bytes",
            "60000",
            "--date",
            DATE,
            "--out",
            "plan.json",
        ])
        .assert()
        .success();
    let slices = process_slices(d, "plan.json", "run", &["--date", DATE]);
    assert_eq!(slices, 2, "one stage of two slices");
}

#[test]
fn a_day_goes_from_sftp_through_processing_back_to_sftp() {
    let Some(s) = Sftp::get() else { return };
    let d = Dir::new();
    generate_day(&d, "8", "20000", "3", "7");
    process_day(&d, "whole");
    let (url, remote) = day_on_sftp(&d, &s);
    let flags = s.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();

    d.cmd().args(fetch_args(&url, &flags)).assert().code(0);
    assert_eq!(
        tree(&d.path(&format!("staging/{DATE}"))),
        tree(&remote.join(format!("inbound/{DATE}")))
    );
    assert!(
        d.read("manifest.jsonl")
            .contains(&format!("\"source\":\"{url}/inbound/{DATE}/"))
    );
    plan_and_process(&d);

    let publish = |extra: &[&str]| {
        let mut c = d.cmd();
        c.args([
            "publish",
            "--config",
            "day/batchwin.toml",
            "--ledgers",
            "run/ledgers",
            "--target",
            &url,
            "--date",
            DATE,
        ]);
        c.args(&flags).args(extra);
        c.assert()
    };
    let first = publish(&[]).code(0);
    let outputs = tree(&d.path("whole"))
        .keys()
        .filter(|k| k.contains('/') && !k.contains(".rejects."))
        .count();
    assert!(
        stdout(&first).contains(&format!("{outputs} delivered")),
        "{}",
        stdout(&first)
    );

    // Read back with OpenSSH's own client: byte-identical to processing the files locally,
    // split files put together, nothing partial or temporary beside them.
    let back = d.path("back");
    std::fs::create_dir_all(&back).unwrap();
    let got = s.client(&format!(
        "get -r {}/outbound/{DATE} {}\n",
        remote.display(),
        back.display()
    ));
    assert!(
        got.status.success(),
        "sftp: {}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert_published(&d.path("whole"), &back.join(DATE));

    // Again: nothing to do. Then a target that differs is refused, unless --overwrite.
    let again = publish(&[]).code(0);
    assert!(
        stdout(&again).contains(&format!("0 delivered (0.0 MB), {outputs} already there")),
        "{}",
        stdout(&again)
    );
    let (victim, original) = tree(&remote.join(format!("outbound/{DATE}")))
        .into_iter()
        .next()
        .unwrap();
    let victim = remote.join(format!("outbound/{DATE}")).join(victim);
    std::fs::write(&victim, b"changed by someone else\n").unwrap();
    let refused = publish(&[]).code(1);
    assert!(
        stderr(&refused).contains("already exists with different content"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"changed by someone else\n"
    );
    publish(&["--overwrite"]).code(0);
    assert_eq!(std::fs::read(&victim).unwrap(), original);

    let ledger = d.path("run/ledgers/publish.duckdb");
    let n = outputs as i64;
    assert_eq!(
        deliveries(&ledger),
        [
            ("delivered".into(), n + 1),
            ("refused".into(), 1),
            ("skipped".into(), 2 * n + n - 2)
        ]
    );
}

#[test]
fn unsafe_remote_names_and_wrong_host_keys_are_refused() {
    let Some(s) = Sftp::get() else { return };
    let d = Dir::new();
    generate_day(&d, "2", "500", "1", "3");
    let (url, remote) = day_on_sftp(&d, &s);
    let vendor = &vendor_ids(&d)[0];
    std::fs::write(
        remote.join(format!("inbound/{DATE}/{vendor}/evil\nname.csv")),
        "a\n",
    )
    .unwrap();
    std::fs::write(
        remote.join(format!("inbound/{DATE}/{vendor}/bell\u{7}.csv")),
        "a\n",
    )
    .unwrap();
    let flags = s.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let o = d.cmd().args(fetch_args(&url, &flags)).assert().code(1);
    assert!(
        stderr(&o).contains("refused remote name") && stderr(&o).contains("control characters"),
        "{}",
        stderr(&o)
    );
    let staged = tree(&d.path("staging"));
    assert_eq!(staged.len(), 2, "only the safe files: {:?}", staged.keys());
    assert!(
        staged
            .keys()
            .all(|k| !k.contains("evil") && !k.contains("bell"))
    );

    let wrong = [
        "--ssh-key",
        &s.key,
        "--known-hosts",
        &s.wrong_known_hosts,
        "--retries",
        "0",
        "--manifest",
        "m2.jsonl",
    ];
    // A refused host key is for the configuration to fix, not a data failure: exit 2.
    let refused = d.cmd().args(fetch_args(&url, &wrong)).assert().code(2);
    assert!(
        stderr(&refused).contains("REFUSED") && stderr(&refused).contains("differs"),
        "{}",
        stderr(&refused)
    );
    assert!(!d.path("m2.jsonl").exists() || d.read("m2.jsonl").is_empty());

    // A layout that would climb out of the target is a config error with its line.
    let cfg = d.read("day/batchwin.toml").replacen(
        "[[vendor]]",
        "[transfer]\noutbound = \"../{vendor}/{file}\"\n\n[[vendor]]",
        1,
    );
    d.write("day/batchwin.toml", cfg);
    let bad = d.cmd().args(fetch_args(&url, &flags)).assert().code(2);
    assert!(
        stderr(&bad).contains("transfer.outbound") && stderr(&bad).contains("line"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn an_unreachable_source_exits_with_the_retryable_code() {
    let d = Dir::new();
    generate_day(&d, "2", "500", "1", "3");
    let o = d
        .cmd()
        .args(fetch_args(
            "sftp://root@127.0.0.1:1/nowhere",
            &["--retries", "2", "--ssh-key", "/dev/null"],
        ))
        .assert()
        .code(3);
    assert!(
        stderr(&o).contains("retrying") && stderr(&o).contains("cannot connect"),
        "{}",
        stderr(&o)
    );
    let o = d
        .cmd()
        .args(fetch_args("s3://bucket/x", &["--retries", "1"]))
        .env("AWS_ENDPOINT", "http://127.0.0.1:1")
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "very-secret-value")
        .env("AWS_REGION", "us-east-1")
        .assert()
        .code(3);
    assert!(!stderr(&o).contains("very-secret-value"), "{}", stderr(&o));
}

/// Finds a hidden temporary file (a transfer in progress) below `dir`.
fn transfer_in_progress(dir: &Path, min: u64) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if e.file_name().to_string_lossy().contains(".batchwin-")
                && e.metadata().is_ok_and(|m| m.len() >= min)
            {
                return true;
            }
        }
    }
    false
}

fn restart_sshd() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/services/sshd-restart");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .arg("stop")
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(1500));
    let status = std::process::Command::new("bash")
        .arg(&script)
        .arg("start")
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_server_restarted_mid_transfer_leads_to_a_clean_retry() {
    let Some(s) = Sftp::alone() else { return };
    let d = Dir::new();
    generate_day(&d, "2", "500", "1", "3");
    let (url, remote) = day_on_sftp(&d, &s);
    let vendor = vendor_ids(&d)[0].clone();
    // A large file, so the transfer is surely under way when the server stops.
    let big = remote.join(format!("inbound/{DATE}/{vendor}/big.csv"));
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        for i in 0..6_000_000u32 {
            writeln!(f, "{i},{}", i % 977).unwrap();
        }
    }
    let bin = assert_cmd::cargo::cargo_bin("batchwin");
    let child = std::process::Command::new(&bin)
        .args(fetch_args(
            &url,
            &[
                "--ssh-key",
                &s.key,
                "--known-hosts",
                &s.known_hosts,
                "--retries",
                "8",
                "--timeout",
                "5s",
            ],
        ))
        .current_dir(d.root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !transfer_in_progress(&d.path("staging"), 1 << 20) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the transfer never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    restart_sshd();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("retrying"), "the transfer was retried: {err}");
    let staged = d.path(&format!("staging/{DATE}/{vendor}/big.csv"));
    assert_eq!(
        std::fs::read(&staged).unwrap(),
        std::fs::read(&big).unwrap()
    );
    assert!(
        !transfer_in_progress(&d.path("staging"), 0),
        "no temporary files left"
    );
    assert_eq!(
        lines(&d.path("manifest.jsonl")).len(),
        3,
        "one row per file"
    );

    // The same for an upload: the server ends up with the whole file once, nothing else.
    let rt = runtime();
    let mut opts = crate::storage::sftp_options(&s);
    opts.retry.attempts = 8;
    opts.timeout = Some(Duration::from_secs(5));
    let store = rt.block_on(Store::open(&url, &opts)).unwrap();
    let uploading = std::thread::spawn({
        let remote = remote.clone();
        move || {
            let start = Instant::now();
            while !transfer_in_progress(&remote.join("up"), 1 << 20) {
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "the upload never started"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            restart_sshd();
        }
    });
    let put = rt
        .block_on(store.put_file("up/big.csv", &staged, false))
        .expect("upload retried");
    uploading.join().unwrap();
    assert_eq!(put.bytes, std::fs::metadata(&big).unwrap().len());
    let up = tree(&remote.join("up"));
    assert_eq!(
        up.keys().collect::<Vec<_>>(),
        ["big.csv"],
        "only the finished file"
    );
    assert!(up["big.csv"] == std::fs::read(&big).unwrap());
}

/// fetch, process, publish, re-publish (no-op) and a conflicting publish against an object store.
fn object_store_round_trip(
    base: &str,
    env: &[(&str, String)],
    config_extra: &str,
    opts: batchwin::storage::StoreOptions,
) {
    let d = Dir::new();
    generate_day(&d, "6", "8000", "2", "21");
    let cfg = d.read("day/batchwin.toml").replacen(
        "[[vendor]]",
        &format!("{config_extra}\n[[vendor]]"),
        1,
    );
    d.write("day/batchwin.toml", cfg);
    let rt = runtime();
    let source = rt.block_on(Store::open(base, &opts)).unwrap();
    for rel in tree(&d.path("day/inbound")).into_keys() {
        rt.block_on(source.put_file(
            &format!("inbound/{rel}"),
            &d.path(&format!("day/inbound/{rel}")),
            true,
        ))
        .unwrap();
    }
    let cmd = |args: &[&str]| {
        let mut c = d.cmd();
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c
    };
    cmd(&fetch_args(base, &[])).assert().code(0);
    assert_eq!(lines(&d.path("manifest.jsonl")).len(), 6);
    let again = cmd(&fetch_args(base, &[])).assert().code(0);
    assert!(
        stdout(&again).contains("6 already staged"),
        "{}",
        stdout(&again)
    );
    d.cmd()
        .args([
            "process",
            "--config",
            "day/batchwin.toml",
            "--inbound",
            &format!("staging/{DATE}"),
            "--out",
            "run",
            "--date",
            DATE,
        ])
        .assert()
        .code(0);
    let publish = |extra: &[&str]| {
        let mut a = vec![
            "publish",
            "--config",
            "day/batchwin.toml",
            "--ledgers",
            "run",
            "--target",
            base,
            "--date",
            DATE,
        ];
        a.extend_from_slice(extra);
        cmd(&a).assert()
    };
    publish(&[]).code(0);
    let back = d.path("back");
    let names: Vec<String> = rt
        .block_on(source.list(&format!("outbound/{DATE}")))
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    for n in &names {
        rt.block_on(source.get_file(
            n,
            &back.join(n.strip_prefix(&format!("outbound/{DATE}/")).unwrap()),
        ))
        .unwrap();
    }
    assert_published(&d.path("run"), &back);
    let again = publish(&[]).code(0);
    assert!(
        stdout(&again).contains(&format!(
            "0 delivered (0.0 MB), {} already there",
            names.len()
        )),
        "{}",
        stdout(&again)
    );
    let other = d.write("other.csv", "not what was delivered\n");
    rt.block_on(source.put_file(&names[0], &other, true))
        .unwrap();
    let refused = publish(&[]).code(1);
    assert!(
        stderr(&refused).contains("already exists with different content"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        rt.block_on(source.get_bytes(&names[0])).unwrap(),
        b"not what was delivered\n"
    );
    publish(&["--overwrite"]).code(0);
    assert!(
        rt.block_on(source.get_bytes(&names[0])).unwrap()
            == tree(&back)[names[0].strip_prefix(&format!("outbound/{DATE}/")).unwrap()]
    );
}

#[test]
fn s3_fetch_publish_republish_and_conflict() {
    let Some(endpoint) = service("BATCHWIN_TEST_S3") else {
        return;
    };
    let base = format!("s3://batchwin-test/{}", uuid::Uuid::new_v4().simple());
    // Credentials and endpoint from the usual environment variables.
    let env = [
        ("AWS_ENDPOINT", endpoint.clone()),
        ("AWS_ALLOW_HTTP", "true".to_string()),
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
    ];
    object_store_round_trip(&base, &env, "", s3_options(endpoint));
}

#[test]
fn azure_blob_fetch_publish_republish_and_conflict() {
    if service("BATCHWIN_TEST_AZURITE").is_none() {
        return;
    }
    let base = format!("az://batchwin-test/{}", uuid::Uuid::new_v4().simple());
    // The emulator chosen in the config file's object store options.
    let extra = "[transfer.options]\nazure_storage_use_emulator = \"true\"\n";
    object_store_round_trip(&base, &[], extra, azurite_options());
}

/// `publish` of the ledgers in `out` to the local folder `server`, with `extra` arguments.
fn publish_out_to_server(d: &Dir, extra: &[&str]) -> assert_cmd::assert::Assert {
    let mut a = vec![
        "publish",
        "--config",
        "day/batchwin.toml",
        "--ledgers",
        "out",
        "--target",
        "server",
        "--date",
        DATE,
    ];
    a.extend_from_slice(extra);
    d.cmd().args(&a).assert()
}

#[test]
fn an_output_changed_since_processing_is_not_delivered() {
    let d = Dir::new();
    generate_day(&d, "4", "2000", "2", "12");
    process_day(&d, "out");
    let outputs: Vec<String> = tree(&d.path("out"))
        .into_keys()
        .filter(|k| k.contains('/') && !k.contains(".rejects."))
        .collect();
    assert_eq!(outputs.len(), 4, "{outputs:?}");
    // Someone edits one output after processing, keeping its size (later than the
    // filesystem clock's tick after processing ended: docs/transfer.md).
    std::thread::sleep(std::time::Duration::from_millis(50));
    let changed = d.path(&format!("out/{}", outputs[0]));
    let mut bytes = std::fs::read(&changed).unwrap();
    let last = bytes.len() - 2;
    bytes[last] = if bytes[last] == b'0' { b'1' } else { b'0' };
    std::fs::write(&changed, &bytes).unwrap();

    let o = publish_out_to_server(&d, &[]).code(1);
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(
        out.contains("3 delivered") && out.contains("1 failed"),
        "{out}"
    );
    assert!(
        err.contains("is not what it should be") && err.contains("nothing was delivered"),
        "{err}"
    );
    // The three others are delivered; of the changed one, nothing at all, not even a
    // temporary file.
    let name = outputs[0].rsplit('/').next().unwrap().to_string();
    let delivered = tree(&d.path("server"));
    assert_eq!(
        delivered
            .keys()
            .filter(|k| !k.contains(".rejects."))
            .count(),
        3,
        "{delivered:?}"
    );
    assert!(
        !delivered.keys().any(|k| k.contains(&name)),
        "{name} was delivered: {delivered:?}"
    );
}

/// Publishing to a local folder again: what is there with the same bytes is left as it is
/// (read and compared, not written), and a file someone changed there, even to bytes of the
/// same size, is refused and kept, unless `--overwrite`.
#[test]
fn a_local_folder_published_again_is_compared_not_rewritten() {
    let d = Dir::new();
    generate_day(&d, "4", "2000", "2", "14");
    process_day(&d, "out");
    let publish = |extra: &[&str]| publish_out_to_server(&d, extra);
    publish(&[]).code(0);
    let delivered = tree(&d.path("server"));
    let n = delivered.len();
    assert!(n >= 4, "{delivered:?}");
    let again = publish(&[]).code(0);
    assert!(
        stdout(&again).contains(&format!("0 delivered (0.0 MB), {n} already there")),
        "{}",
        stdout(&again)
    );
    assert_eq!(tree(&d.path("server")), delivered);

    // A delivered file replaced by a link to the same bytes elsewhere is compared through it.
    let (linked, bytes) = delivered.iter().next().unwrap();
    let elsewhere = d.write("elsewhere.bin", bytes);
    let link = d.path(&format!("server/{linked}"));
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let linked_again = publish(&[]).code(0);
    assert!(
        stdout(&linked_again).contains(&format!("0 delivered (0.0 MB), {n} already there")),
        "{}",
        stdout(&linked_again)
    );

    // One delivered file's last byte changes; its size does not.
    let (name, original) = delivered
        .iter()
        .find(|(k, v)| !k.contains(".rejects.") && v.len() > 2)
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    let victim = d.path(&format!("server/{name}"));
    let mut changed = original.clone();
    let last = changed.len() - 2;
    changed[last] ^= 1;
    // A new file under the name, not the delivered one (which the output shares) changed.
    std::fs::remove_file(&victim).unwrap();
    std::fs::write(&victim, &changed).unwrap();
    let refused = publish(&[]).code(1);
    assert!(
        stderr(&refused).contains("already exists with different content"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(std::fs::read(&victim).unwrap(), changed);
    publish(&["--overwrite"]).code(0);
    assert_eq!(std::fs::read(&victim).unwrap(), original);
}

/// A vendor folder as vendors leave them, below `root` (the source's folder): links to a
/// folder, to `.`, in a loop, to files inside and outside the vendor's folder and outside the
/// source, one whose target's size equals the link's own length, and a fifo. `elsewhere` is a
/// folder outside the source. Returns (the link that may be followed, the file it leads to,
/// the names of everything that must be skipped, the contents that must never be staged).
fn vendor_folder_with_links(
    root: &Path,
    vendor: &str,
    elsewhere: &Path,
) -> (String, String, Vec<String>, Vec<Vec<u8>>) {
    use std::os::unix::fs::symlink;
    let folder = root.join(format!("inbound/{DATE}/{vendor}"));
    let inside = tree(&folder).into_keys().next().expect("a generated file");
    std::fs::create_dir_all(root.join("archive")).unwrap();
    std::fs::write(root.join("archive/old.csv"), "id\n1\n").unwrap();
    std::fs::create_dir_all(root.join("outside")).unwrap();
    let secret_in_root = b"secret of another vendor\n".to_vec();
    std::fs::write(root.join("outside/secret.csv"), &secret_in_root).unwrap();
    std::fs::create_dir_all(elsewhere).unwrap();
    let secret_elsewhere = b"secret outside the source\n".to_vec();
    std::fs::write(elsewhere.join("secret.csv"), &secret_elsewhere).unwrap();
    // A target whose size is the length of the link's text: `stat` of the link (its own size)
    // and of the target agree, so only where it leads tells them apart.
    let same = elsewhere.join("same-size.csv");
    let same_text = same.display().to_string();
    let secret_same = vec![b's'; same_text.len()];
    std::fs::write(&same, &secret_same).unwrap();

    symlink(root.join("archive"), folder.join("archive")).unwrap();
    symlink(".", folder.join("loop")).unwrap();
    symlink("cycle-b", folder.join("cycle-a")).unwrap();
    symlink("cycle-a", folder.join("cycle-b")).unwrap();
    symlink(&inside, folder.join("inside-link.csv")).unwrap();
    symlink(
        "../../../outside/secret.csv",
        folder.join("outside-link.csv"),
    )
    .unwrap();
    symlink(elsewhere.join("secret.csv"), folder.join("escape-link.csv")).unwrap();
    symlink(&same_text, folder.join("same-size-link.csv")).unwrap();
    symlink("gone.csv", folder.join("dangling-link.csv")).unwrap();
    let fifo = folder.join("pipe.csv");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo");
    let skipped = [
        "archive",
        "loop",
        "cycle-a",
        "cycle-b",
        "outside-link.csv",
        "escape-link.csv",
        "same-size-link.csv",
        "dangling-link.csv",
        "pipe.csv",
    ]
    .map(String::from)
    .to_vec();
    (
        "inside-link.csv".to_string(),
        inside,
        skipped,
        vec![secret_in_root, secret_elsewhere, secret_same],
    )
}

/// Fetches a day whose vendor folder holds links and a fifo from `url` (whose folder is
/// `root`) under both `[transfer] symlinks` settings.
fn fetch_with_links(d: &Dir, url: &str, root: &Path, flags: &[&str]) {
    let vendor = vendor_ids(d)[0].clone();
    // Read before the links are made (`tree` follows links).
    let generated = tree(&root.join(format!("inbound/{DATE}/{vendor}")));
    let (link, target, skipped, secrets) =
        vendor_folder_with_links(root, &vendor, &d.path("elsewhere"));
    let never_staged = |staged: &std::collections::BTreeMap<String, Vec<u8>>| {
        for (k, v) in staged {
            assert!(
                !secrets.contains(v) && !v.starts_with(b"secret"),
                "{k} holds a file from outside the vendor's folder"
            );
        }
    };

    // By default no link is followed; each skipped entry is named, and the day's files are
    // fetched.
    let o = d.cmd().args(fetch_args(url, flags)).assert().code(0);
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(
        out.contains(&format!("{} files staged", generated.len()))
            && out.contains(&format!("{} skipped", skipped.len() + 1)),
        "{out}"
    );
    for name in skipped.iter().chain([&link]) {
        assert!(
            err.contains(&format!("/{vendor}/{name}: skipped")),
            "{name}: {err}"
        );
    }
    assert!(
        err.contains("not followed ([transfer] symlinks = \"skip\")"),
        "{err}"
    );
    assert!(err.contains("a fifo"), "{err}");
    let staged = tree(&d.path(&format!("staging/{DATE}/{vendor}")));
    assert_eq!(
        staged.keys().collect::<Vec<_>>(),
        generated.keys().collect::<Vec<_>>(),
        "only the regular files"
    );
    never_staged(&staged);

    // Followed inside the vendor's folder: the link is staged under its name with its
    // target's bytes (and size, in the manifest); the others are still skipped, by name.
    let cfg = d.read("day/batchwin.toml").replacen(
        "[[vendor]]",
        "[transfer]\nsymlinks = \"follow-inside\"\n\n[[vendor]]",
        1,
    );
    d.write("day/batchwin.toml", cfg);
    let o = d.cmd().args(fetch_args(url, flags)).assert().code(0);
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(
        out.contains("1 files staged")
            && out.contains(&format!("{} already staged", generated.len()))
            && out.contains(&format!("{} skipped", skipped.len())),
        "{out}"
    );
    for name in &skipped {
        assert!(
            err.contains(&format!("/{vendor}/{name}: skipped")),
            "{name}: {err}"
        );
    }
    for why in [
        "outside the vendor's folder",
        "outside the source",
        "folders are not followed",
        "leads nowhere or in a loop",
        "a fifo",
    ] {
        assert!(err.contains(why), "{why}: {err}");
    }
    let staged = tree(&d.path(&format!("staging/{DATE}/{vendor}")));
    assert_eq!(staged.len(), generated.len() + 1, "{:?}", staged.keys());
    assert_eq!(staged[&link], generated[&target], "the target's bytes");
    never_staged(&staged);
    let rows = lines(&d.path("manifest.jsonl"));
    let row = rows
        .iter()
        .find(|r| {
            r["location"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/{link}"))
        })
        .expect("a row for the followed link");
    assert_eq!(
        row["bytes"].as_u64().unwrap(),
        generated[&target].len() as u64
    );
    // And again: the followed link is already staged, with the target's size and time.
    let o = d.cmd().args(fetch_args(url, flags)).assert().code(0);
    assert!(
        stdout(&o).contains(&format!(
            "0 files staged (0.0 MB), {} already staged",
            generated.len() + 1
        )),
        "{}",
        stdout(&o)
    );
}

#[test]
fn links_and_special_files_on_an_sftp_server_are_skipped_or_followed_inside() {
    let Some(s) = Sftp::get() else { return };
    let d = Dir::new();
    generate_day(&d, "2", "500", "1", "3");
    let (url, remote) = day_on_sftp(&d, &s);
    let flags = s.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    fetch_with_links(&d, &url, &remote, &flags);
}

#[test]
fn links_and_special_files_in_a_local_folder_are_skipped_or_followed_inside() {
    let d = Dir::new();
    generate_day(&d, "2", "500", "1", "3");
    let root = d.path("day");
    fetch_with_links(&d, "day", &root, &[]);
}

/// The SFTP server of `tests/servers/hostile_sftp.py`, started with the tests' Python on a
/// free port; killed when dropped.
struct Hostile {
    child: std::process::Child,
    port: String,
    /// A known_hosts file with the server's key, and a client key (any key is accepted).
    known_hosts: PathBuf,
    key: PathBuf,
    _keys: tempfile::TempDir,
}

impl Hostile {
    fn start() -> Option<Hostile> {
        use std::io::BufRead;
        let python = service("BATCHWIN_TEST_PYTHON")?;
        let keys = tempfile::tempdir().unwrap();
        let host_key = keys.path().join("host_key");
        let key = keys.path().join("client_ed25519");
        let made = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen");
        assert!(made.success());
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/hostile_sftp.py");
        let mut child = std::process::Command::new(python)
            .arg(&script)
            .args(["--date", DATE, "--host-key"])
            .arg(&host_key)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the hostile SFTP server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("the hostile server said {line:?} (is paramiko there?)"))
            .trim()
            .to_string();
        Some(Hostile {
            child,
            port,
            known_hosts: keys.path().join("host_key.pub"),
            key,
            _keys: keys,
        })
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A vendor of the hostile server's day, in CSV.
fn hostile_vendor(id: &str) -> String {
    format!(
        "[[vendor]]\nid = \"{id}\"\n[vendor.input]\nformat = \"csv\"\nheader = true\n\
         [[vendor.fields]]\nname = \"id\"\ntype = \"integer\"\n[[vendor.fields]]\nname = \"name\"\n\
         [vendor.output]\nformat = \"csv\"\n"
    )
}

/// Each way of misbehaving of `tests/servers/hostile_sftp.py`, fetched beside an honest
/// vendor: the documented exit code (docs/transfer.md), the honest files staged, nothing of the
/// others, nothing written anywhere else. Permission denied comes from this server: the tests
/// run as root, whom OpenSSH lets read even a mode-000 folder.
#[test]
fn a_hostile_sftp_server_cannot_fill_the_disk_or_write_outside_staging() {
    let Some(server) = Hostile::start() else {
        return;
    };
    let escape = Path::new("/tmp/hostile-escape.csv");
    let _ = std::fs::remove_file(escape);
    let url = format!("sftp://batchwin@127.0.0.1:{}/srv", server.port);
    // (vendor, exit code, what stderr or stdout says, whether its `ok.csv` is staged)
    let cases: &[(&str, i32, &str, bool)] = &[
        ("good", 0, "", false),
        (
            "flood",
            1,
            "sent more than the 16 bytes it was listed with",
            true,
        ),
        ("short", 1, "sent 10 bytes but lists 100", true),
        ("liar", 0, "1 still being uploaded", true),
        ("stall", 3, "retrying", true),
        ("names", 1, "refused remote name", true),
        ("denied", 1, "cannot be listed (permission denied", false),
        ("locked", 1, "Permission denied", true),
        ("missing", 1, "is not in", true),
        ("folder", 1, "is not a regular file (a folder)", true),
    ];
    for &(vendor, code, says, ok) in cases {
        let d = Dir::new();
        let mut cfg = hostile_vendor("good");
        if vendor != "good" {
            cfg.push_str(&hostile_vendor(vendor));
        }
        d.write("day/batchwin.toml", cfg);
        let o = d
            .cmd()
            .args(fetch_args(
                &url,
                &[
                    "--ssh-key",
                    server.key.to_str().unwrap(),
                    "--known-hosts",
                    server.known_hosts.to_str().unwrap(),
                    "--timeout",
                    "1s",
                    "--retries",
                    "1",
                    // One transfer at a time, in name order: the good files are read before
                    // the stalled one. The files of one server share a session, and a server
                    // that stops answering holds every request on it until the timeout (see
                    // docs/transfer.md), so with transfers at once whether a good file
                    // outlasts the stall's retries is a matter of timing.
                    "--concurrency",
                    "1",
                ],
            ))
            .timeout(Duration::from_secs(120))
            .assert()
            .code(code);
        let said = stdout(&o) + &stderr(&o);
        assert!(said.contains(says), "{vendor}: {said}");
        // The good vendor's file, and the scenario's honest one, and nothing else.
        let mut expected = vec![format!("staging/{DATE}/good/a.csv")];
        if ok {
            expected.push(format!("staging/{DATE}/{vendor}/ok.csv"));
        }
        expected.sort();
        let mut got: Vec<String> = tree(d.root())
            .into_keys()
            .filter(|k| k != "day/batchwin.toml" && k != "manifest.jsonl")
            .collect();
        got.sort();
        assert_eq!(got, expected, "{vendor}: nothing else written anywhere");
        let bytes: usize = tree(&d.path("staging")).values().map(Vec::len).sum();
        assert!(bytes <= 2 * 20, "{vendor}: {bytes} bytes staged");
        assert_eq!(
            lines(&d.path("manifest.jsonl")).len(),
            expected.len(),
            "{vendor}"
        );
        if vendor == "names" {
            assert_eq!(said.matches("refused remote name").count(), 7, "{said}");
        }
        assert!(
            !escape.exists(),
            "{vendor}: a file was written outside staging"
        );
    }
}

/// A generated day whose folder `rel(d)` (below `day/`) has moved to `elsewhere/` and is now a
/// link to it; `check` sees `fetch` of the day under each `[transfer] symlinks` setting.
fn fetch_with_a_linked_folder(
    rel: impl Fn(&Dir) -> String,
    check: impl Fn(&Dir, &str, assert_cmd::assert::Assert),
) {
    let d = Dir::new();
    generate_day(&d, "4", "500", "2", "5");
    let folder = d.path(&format!("day/{}", rel(&d)));
    std::fs::rename(&folder, d.path("elsewhere")).unwrap();
    std::os::unix::fs::symlink(d.path("elsewhere"), &folder).unwrap();
    let base = d.read("day/batchwin.toml");
    for setting in ["skip", "follow-inside"] {
        let cfg = base.replacen(
            "[[vendor]]",
            &format!("[transfer]\nsymlinks = \"{setting}\"\n\n[[vendor]]"),
            1,
        );
        d.write("day/batchwin.toml", cfg);
        let o = d.cmd().args(fetch_args("day", &[])).assert();
        check(&d, setting, o);
    }
}

/// A vendor's folder that is itself a link is named and not walked, under either setting.
#[test]
fn a_vendor_folder_that_is_a_link_is_named_and_not_walked() {
    let linked = |d: &Dir| vendor_ids(d)[1].clone();
    fetch_with_a_linked_folder(
        |d| format!("inbound/{DATE}/{}", linked(d)),
        |d, setting, o| {
            let linked = linked(d);
            let o = o.code(0);
            assert!(
                stderr(&o).contains(&format!("/{linked}: skipped: a symbolic link")),
                "{setting}: {}",
                stderr(&o)
            );
            assert!(stdout(&o).contains("1 skipped"), "{}", stdout(&o));
            assert!(
                !d.path(&format!("staging/{DATE}/{linked}")).exists(),
                "{setting}: nothing of the linked folder"
            );
        },
    );
}

/// A day folder that is itself a link (to a folder outside the vendors' tree) is named and not
/// walked: nothing below it is staged, under either `symlinks` setting.
#[test]
fn a_day_folder_that_is_a_link_is_named_and_not_walked() {
    fetch_with_a_linked_folder(
        |_| format!("inbound/{DATE}"),
        |d, setting, o| {
            let said = stdout(&o) + &stderr(&o);
            assert!(
                said.contains(&format!("inbound/{DATE}")) && said.contains("symbolic link"),
                "{setting}: {said}"
            );
            assert!(
                !d.path(&format!("staging/{DATE}")).exists()
                    || tree(&d.path(&format!("staging/{DATE}"))).is_empty(),
                "{setting}: nothing staged from the linked day folder"
            );
        },
    );
}

/// `batchwin ARGS` in `d` run with umask 0, so that a file has the mode batchwin asks for and
/// not what the test's umask would leave of it.
fn run_with_open_umask(d: &Dir, args: &[&str]) {
    use std::os::unix::process::CommandExt;
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("batchwin"));
    for (k, _) in std::env::vars() {
        if k.starts_with("BATCHWIN_") || k.starts_with("RAYON_") {
            c.env_remove(k);
        }
    }
    c.env("BATCHWIN_MASK_KEY", crate::util::MASK_KEY)
        .current_dir(d.root())
        .args(args);
    // SAFETY: umask is async-signal-safe and touches only the child's own mask.
    unsafe {
        c.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let o = c.output().expect("run batchwin");
    assert!(
        o.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every file below `dir` with its mode bits.
fn modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.expect("directory entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let m = std::fs::metadata(&p)
                    .expect("metadata")
                    .permissions()
                    .mode()
                    & 0o7777;
                out.push((p, m));
            }
        }
    }
    out
}

/// Staging copies, the manifest, outputs, rejects, ledgers, published copies, the merged report
/// ledger and the Prometheus file are created without world access (the data files at most
/// 0640), even when the umask would allow everything: they hold vendor data, personal data
/// included.
#[test]
fn files_batchwin_creates_have_no_world_access() {
    let d = Dir::new();
    generate_day(&d, "3", "400", "2", "11");
    // Rejects are written too: the generated day has invalid records.
    run_with_open_umask(&d, &fetch_args("day", &[]));
    run_with_open_umask(
        &d,
        &[
            "process",
            "--config",
            "day/batchwin.toml",
            "--inbound",
            &format!("staging/{DATE}"),
            "--out",
            "run",
            "--date",
            DATE,
        ],
    );
    run_with_open_umask(
        &d,
        &[
            "publish",
            "--config",
            "day/batchwin.toml",
            "--ledgers",
            "run",
            "--target",
            "target",
            "--date",
            DATE,
        ],
    );
    run_with_open_umask(
        &d,
        &[
            "report",
            "--ledgers",
            "run",
            "--out",
            "report.duckdb",
            "--prometheus",
            "batchwin.prom",
            "--fail-on",
            "missing",
        ],
    );
    let mut seen = Vec::new();
    for dir in ["staging", "run", "target"] {
        let files = modes(&d.path(dir));
        assert!(!files.is_empty(), "nothing in `{dir}`");
        seen.extend(files);
    }
    seen.extend(modes(d.root()).into_iter().filter(|(p, _)| {
        ["report.duckdb", "batchwin.prom", "manifest.jsonl"]
            .iter()
            .any(|n| p.ends_with(n))
    }));
    let names: Vec<String> = seen
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for kind in [
        "manifest.jsonl",
        ".rejects.jsonl",
        ".duckdb",
        "report.duckdb",
        ".prom",
    ] {
        assert!(
            names.iter().any(|n| n.ends_with(kind)),
            "no {kind} in {names:?}"
        );
    }
    for (p, m) in &seen {
        assert_eq!(m & 0o007, 0, "`{}` has mode {m:o}", p.display());
        assert_eq!(m & !0o640, 0, "`{}` has mode {m:o}", p.display());
    }
    // The masking key `generate` wrote: the owner only, whoever could read it could undo
    // `mask = "hash"` by hashing guesses.
    let key = modes(&d.path("day"))
        .into_iter()
        .find(|(p, _)| p.ends_with("mask.key"))
        .expect("day/mask.key");
    assert_eq!(key.1, 0o600, "mask.key has mode {:o}", key.1);
}

/// Every object under `prefix` of the test bucket, as the S3 API server describes it to boto3
/// (an independent client): (key, `ServerSideEncryption`, `SSEKMSKeyId`).
fn s3_encryption(endpoint: &str, prefix: &str) -> Vec<(String, String, String)> {
    let python = service("BATCHWIN_TEST_S3_PYTHON").expect("boto3's Python");
    let script = r#"
import json, sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
pages = s3.get_paginator("list_objects_v2").paginate(Bucket="batchwin-test", Prefix=sys.argv[2])
for page in pages:
    for o in page.get("Contents", []):
        h = s3.head_object(Bucket="batchwin-test", Key=o["Key"])
        print(json.dumps([o["Key"], h.get("ServerSideEncryption", ""), h.get("SSEKMSKeyId", "")]))
"#;
    let out = std::process::Command::new(python)
        .args(["-c", script, endpoint, prefix])
        .output()
        .expect("run boto3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Server-side encryption set in `[transfer.options]` reaches the S3 API server for every
/// object batchwin writes: outputs and reject files published (small puts), and a file large
/// enough to go in parts (multipart upload), with SSE-KMS and its key id, and with SSE-S3.
#[test]
fn s3_objects_are_written_with_the_configured_server_side_encryption() {
    let Some(endpoint) = service("BATCHWIN_TEST_S3") else {
        return;
    };
    let key_id = "arn:aws:kms:us-east-1:123456789012:key/batchwin-test-key";
    for (sse, kms) in [("aws:kms", Some(key_id)), ("AES256", None)] {
        let prefix = uuid::Uuid::new_v4().simple().to_string();
        let base = format!("s3://batchwin-test/{prefix}");
        let mut options = format!("aws_server_side_encryption = \"{sse}\"\n");
        if let Some(k) = kms {
            options.push_str(&format!("aws_sse_kms_key_id = \"{k}\"\n"));
        }
        let d = Dir::new();
        generate_day(&d, "3", "600", "2", "31");
        let cfg = d.read("day/batchwin.toml").replacen(
            "[[vendor]]",
            &format!(
                "[transfer.options]\n\
                 aws_endpoint = \"{endpoint}\"\n\
                 aws_allow_http = \"true\"\n\
                 aws_access_key_id = \"test\"\n\
                 aws_secret_access_key = \"test\"\n\
                 aws_region = \"us-east-1\"\n\
                 {options}\n\
                 [[vendor]]"
            ),
            1,
        );
        // Reject files are published too.
        let cfg = cfg.replace(
            "[vendor.output]",
            "[vendor.transfer]\npublish_rejects = true\n\n[vendor.output]",
        );
        d.write("day/batchwin.toml", cfg);
        process_day(&d, "run");
        d.cmd()
            .args([
                "publish",
                "--config",
                "day/batchwin.toml",
                "--ledgers",
                "run",
            ])
            .args(["--target", &base, "--date", DATE])
            .assert()
            .code(0);
        // A file in parts, through the same options as the commands use.
        let mut opts = s3_options(endpoint.clone());
        opts.pairs
            .push(("aws_server_side_encryption".into(), sse.into()));
        if let Some(k) = kms {
            opts.pairs.push(("aws_sse_kms_key_id".into(), k.into()));
        }
        let big = d.write(
            "big.csv",
            vec![b'x'; batchwin::storage::MULTIPART_BYTES as usize + (1 << 20)],
        );
        let rt = runtime();
        let store = rt.block_on(Store::open(&base, &opts)).unwrap();
        rt.block_on(store.put_file("big/big.csv", &big, false))
            .unwrap();

        let objects = s3_encryption(&endpoint, &prefix);
        let keys: Vec<&str> = objects.iter().map(|(k, _, _)| k.as_str()).collect();
        assert!(keys.iter().any(|k| k.ends_with("big/big.csv")), "{keys:?}");
        assert!(keys.iter().any(|k| k.contains(".rejects.")), "{keys:?}");
        assert!(keys.len() >= 5, "{keys:?}");
        for (key, got_sse, got_kms) in &objects {
            assert_eq!(got_sse, sse, "{key}");
            match kms {
                Some(k) => assert!(
                    got_kms.ends_with(k.rsplit('/').next().unwrap()),
                    "{key}: {got_kms}"
                ),
                None => assert_eq!(got_kms, "", "{key}"),
            }
        }
    }
}

/// The requests Azurite logged (`--debug`, see scripts/services/object-stores-up) whose URL
/// holds `needle`: method, URL, headers (as logged) and response status, one per request.
fn azurite_requests(log: &str, needle: &str) -> Vec<(String, String, String, String)> {
    let text = std::fs::read_to_string(log).expect("Azurite's debug log");
    let mut by_id: std::collections::BTreeMap<&str, (String, String, String, String)> =
        Default::default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ' ');
        let (Some(_), Some(id), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if let Some(r) = rest.split_once("RequestMethod=").map(|(_, r)| r) {
            let (method, r) = r.split_once(" RequestURL=").unwrap();
            let (url, headers) = r.split_once(" RequestHeaders:").unwrap();
            if url.contains(needle) {
                let e = by_id.entry(id).or_default();
                (e.0, e.1, e.2) = (method.into(), url.into(), headers.into());
            }
        } else if let Some(r) = rest.split_once("StatusCode=").map(|(_, r)| r)
            && let Some(e) = by_id.get_mut(id)
        {
            e.3 = r.split(' ').next().unwrap().to_string();
        }
    }
    by_id.into_values().collect()
}

/// `azure_encryption_scope` in `[transfer.options]` reaches Azurite on every blob batchwin
/// writes (outputs and reject files published, each block and the block list of a file in
/// parts) in the header the service reads, inside the account-key signature (Azurite checks it:
/// a header outside it is refused with 403), and on no read.
#[test]
fn azure_blobs_are_written_with_the_configured_encryption_scope() {
    let (Some(_), Some(log)) = (
        service("BATCHWIN_TEST_AZURITE"),
        service("BATCHWIN_TEST_AZURITE_LOG"),
    ) else {
        return;
    };
    let prefix = uuid::Uuid::new_v4().simple().to_string();
    let base = format!("az://batchwin-test/{prefix}");
    let d = Dir::new();
    generate_day(&d, "3", "600", "2", "32");
    let cfg = d.read("day/batchwin.toml").replacen(
        "[[vendor]]",
        "[transfer.options]\n\
         azure_storage_use_emulator = \"true\"\n\
         azure_encryption_scope = \"day-data-1\"\n\n\
         [[vendor]]",
        1,
    );
    let cfg = cfg.replace(
        "[vendor.output]",
        "[vendor.transfer]\npublish_rejects = true\n\n[vendor.output]",
    );
    d.write("day/batchwin.toml", cfg);
    process_day(&d, "run");
    let publish = |target: &str| {
        d.cmd()
            .args([
                "publish",
                "--config",
                "day/batchwin.toml",
                "--ledgers",
                "run",
            ])
            .args(["--target", target, "--date", DATE])
            .assert()
            .code(0);
    };
    publish(&base);
    // Again: everything is there already, so publish only reads.
    publish(&base);
    let mut opts = azurite_options();
    opts.pairs
        .push(("azure_encryption_scope".into(), "day-data-1".into()));
    let big = d.write(
        "big.csv",
        vec![b'x'; batchwin::storage::MULTIPART_BYTES as usize + (1 << 20)],
    );
    let rt = runtime();
    let store = rt.block_on(Store::open(&base, &opts)).unwrap();
    rt.block_on(store.put_file("big/big.csv", &big, false))
        .unwrap();

    // Azurite writes its log behind its responses: wait for the last request's end.
    let deadline = Instant::now() + Duration::from_secs(20);
    let requests = loop {
        let requests = azurite_requests(&log, &prefix);
        let last_logged = requests
            .iter()
            .any(|r| r.1.contains("comp=blocklist") && !r.3.is_empty());
        if last_logged || Instant::now() > deadline {
            break requests;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let writes: Vec<_> = requests.iter().filter(|r| r.0 == "PUT").collect();
    assert!(
        writes.iter().any(|r| r.1.contains(".rejects.")),
        "{requests:#?}"
    );
    assert!(
        writes.iter().any(|r| r.1.contains("comp=block&")),
        "{requests:#?}"
    );
    assert!(
        writes.iter().any(|r| r.1.contains("comp=blocklist")),
        "{requests:#?}"
    );
    assert!(writes.len() >= 5, "{requests:#?}");
    for (method, url, headers, status) in &requests {
        let scoped = headers.contains(r#""x-ms-encryption-scope":"day-data-1""#);
        assert_eq!(scoped, method == "PUT", "{method} {url}: {headers}");
        assert!(
            status.starts_with('2') || method != "PUT",
            "{method} {url}: {status}"
        );
    }
}

/// `publish --follow` delivers each output as soon as a slice's journal records it, while the
/// slices run (a file split between two slices once both have recorded their parts); once its
/// file exists (the slices have ended) it delivers the rest from the ledgers, folding the
/// journals into them, and delivers nothing twice.
#[test]
fn publish_follows_the_slices_and_delivers_each_output_once() {
    let d = Dir::new();
    generate_day(&d, "8", "20000", "3", "7");
    process_day(&d, "whole");
    crate::util::plan_day(
        &d,
        &[
            "--slices",
            "2",
            "--split-bytes",
            "500000",
            "--out",
            "plan.json",
        ],
    );
    let ended = d.path("slices.ended");
    // Killed if the test fails before it ends.
    struct Publish(Option<std::process::Child>);
    impl Drop for Publish {
        fn drop(&mut self) {
            if let Some(c) = self.0.as_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let child = d
        .process()
        .args(["publish", "--config", "day/batchwin.toml"])
        .args(["--ledgers", "run/ledgers", "--target", "server"])
        .args(["--date", DATE, "--ledger", "publish.duckdb", "--follow"])
        .arg(&ended)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut publish = Publish(Some(child));
    let target = d.path(&format!("server/outbound/{DATE}"));
    // Outputs (`VENDOR/NAME`), not reject files, ledgers or a delivery's hidden temporary.
    let is_output = |k: &String| {
        k.contains('/')
            && !k.contains(".rejects.")
            && !k.ends_with(".duckdb")
            && !k.rsplit('/').next().unwrap_or_default().starts_with('.')
    };
    let outputs =
        |t: &std::collections::BTreeMap<String, Vec<u8>>| t.keys().filter(|k| is_output(k)).count();
    let whole = outputs(&tree(&d.path("whole")));

    crate::util::process_slice(&d, "plan.json", 0, "run", &["--journal", "-q"]);
    // The slice's rows are in its journal, and its outputs reach the target while the
    // publish still follows.
    assert!(d.path("run/ledgers/slice-00000.duckdb.journal").is_file());
    assert!(!d.path("run/ledgers/slice-00000.duckdb").exists());
    let until = Instant::now() + Duration::from_secs(30);
    while outputs(&tree(&target)) == 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let early = tree(&target);
    // The files the first slice did whole; not those split between the two.
    assert!(
        outputs(&early) > 0 && outputs(&early) < whole,
        "{} of {whole} delivered from the first slice's journal",
        outputs(&early)
    );
    assert!(
        publish.0.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the publish waits for the slices to end"
    );
    let finished = tree(&d.path("whole"));
    for (k, v) in early.iter().filter(|(k, _)| is_output(k)) {
        assert!(
            &finished[k] == v,
            "{k}: delivered bytes differ from the output"
        );
    }

    crate::util::process_slice(&d, "plan.json", 1, "run", &["--journal", "-q"]);
    std::fs::write(&ended, "").unwrap();
    let out = publish.0.take().unwrap().wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("{DATE}: {whole} delivered")) && text.contains(", 0 already there"),
        "{text}"
    );
    assert_published(&d.path("whole"), &target);
    // Every output delivered once, none checked again; the journals folded into the ledgers.
    assert_eq!(
        deliveries(&d.path("publish.duckdb")),
        [("delivered".into(), whole as i64)]
    );
    for k in 0..2 {
        assert!(
            d.path(&format!("run/ledgers/slice-0000{k}.duckdb"))
                .is_file()
        );
        assert!(
            !d.path(&format!("run/ledgers/slice-0000{k}.duckdb.journal"))
                .exists()
        );
    }
}
