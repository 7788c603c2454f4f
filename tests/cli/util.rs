//! A temporary folder with fixtures and a `batchwin` command that runs in it with the
//! project's environment variables cleared; the steps most tests share on a generated day
//! (generate, plan, process every slice or the whole day), written once; comparisons of output
//! trees; the test services.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use sha2::{Digest, Sha256};

pub struct Dir {
    pub tmp: tempfile::TempDir,
}

pub const MASK_KEY: &str = "0123456789abcdef0123456789abcdef";

impl Dir {
    pub fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, contents).expect("write fixture");
        p
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// `batchwin` as a plain child process in this folder, with the masking key: for tests
    /// that signal or kill it while it runs.
    pub fn process(&self) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("batchwin"));
        c.env("BATCHWIN_MASK_KEY", MASK_KEY)
            .current_dir(self.root());
        c
    }

    /// `batchwin` in this folder, with every `BATCHWIN_*` (and `RAYON_*`, `OTEL_*` and
    /// `TRACEPARENT`) variable removed, a known masking key, and the test's Azurite as the
    /// Azure emulator.
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("batchwin").expect("binary");
        for (k, _) in std::env::vars() {
            if k.starts_with("BATCHWIN_")
                || k.starts_with("RAYON_")
                || k.starts_with("OTEL_")
                || k == "TRACEPARENT"
            {
                c.env_remove(k);
            }
        }
        c.env("BATCHWIN_MASK_KEY", MASK_KEY);
        // Where a configuration's `azure_storage_use_emulator` finds the test's Azurite.
        if let Some(azurite) = service("BATCHWIN_TEST_AZURITE") {
            c.env("AZURITE_BLOB_STORAGE_URL", azurite);
        }
        c.current_dir(self.root());
        c
    }
}

/// sha256 of every file below `dir` (relative path -> hex), for comparing whole trees.
pub fn tree_hashes(
    dir: &Path,
    skip: &dyn Fn(&Path) -> bool,
) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if !skip(&p) {
                let rel = p.strip_prefix(dir).expect("prefix").display().to_string();
                out.insert(
                    rel,
                    hex::encode(Sha256::digest(std::fs::read(&p).expect("read"))),
                );
            }
        }
    }
    out
}

/// Whether `p` is a run's live status document (`OUT/status.json`, `OUT/status/slice-K.json`),
/// which changes from run to run (its times) and stays beside the outputs.
pub fn is_status_document(p: &Path) -> bool {
    p.file_name().is_some_and(|n| n == "status.json")
        || p.parent()
            .and_then(|d| d.file_name())
            .is_some_and(|d| d == "status")
}

/// Replaces the temp folder in a message by `[TMP]` so snapshots are stable.
pub fn redact(text: &str, dir: &Dir) -> String {
    text.replace(&dir.root().display().to_string(), "[TMP]")
}

/// Asserts that every output and reject file under `whole/VENDOR/` equals, byte for byte, the
/// same file under `run/VENDOR/`, or the concatenation of its parts (`NAME.part-…`) in order.
pub fn assert_same_outputs(whole: &Path, run: &Path) {
    let mut checked = 0;
    for vendor in std::fs::read_dir(whole).expect("whole outputs") {
        let vendor = vendor.expect("entry");
        if !vendor.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(vendor.path()).expect("vendor outputs") {
            let f = f.expect("entry");
            let name = f.file_name().to_string_lossy().into_owned();
            let expected = std::fs::read(f.path()).expect("read");
            let dir = run.join(vendor.file_name());
            let mut pieces: Vec<String> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .filter(|n| n == &name || n.starts_with(&format!("{name}.part-")))
                .collect();
            pieces.sort();
            assert!(
                !pieces.is_empty(),
                "no output for {name} in {}",
                dir.display()
            );
            let joined: Vec<u8> = pieces
                .iter()
                .flat_map(|p| std::fs::read(dir.join(p)).expect("read"))
                .collect();
            assert!(
                joined == expected,
                "{name}: {} pieces differ from the whole-file output",
                pieces.len()
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no outputs compared under {}", whole.display());
}

/// A test service's variable (set by `scripts/test`, which starts the service). When the
/// whole suite runs from `scripts/test` (`BATCHWIN_REQUIRE_SERVICES=1`), a missing service
/// fails the test; a developer's plain `cargo test` skips it with a note.
pub fn service(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var_os("BATCHWIN_REQUIRE_SERVICES").is_some() => {
            panic!("{var} is not set although scripts/test should have started its service")
        }
        _ => {
            eprintln!("{var} is not set: skipped (scripts/test starts the service)");
            None
        }
    }
}

/// The OpenSSH server started by `scripts/services/sshd-up`.
/// Tests that use the shared OpenSSH server hold it shared; the one that stops and starts it
/// holds it alone, so that no other test's session is cut.
static SSHD: std::sync::RwLock<()> = std::sync::RwLock::new(());

#[allow(dead_code)]
enum Hold {
    Shared(std::sync::RwLockReadGuard<'static, ()>),
    Alone(std::sync::RwLockWriteGuard<'static, ()>),
}

pub struct Sftp {
    /// Held for the test's whole life.
    _hold: Hold,
    /// `sftp://root@127.0.0.1:PORT`
    pub base: String,
    /// Folder on the server (and on this machine) the tests write below.
    pub root: PathBuf,
    pub key: String,
    pub known_hosts: String,
    pub wrong_known_hosts: String,
    pub port: String,
}

impl Sftp {
    /// The shared server, beside other tests.
    pub fn get() -> Option<Sftp> {
        Self::with(|| Hold::Shared(SSHD.read().unwrap_or_else(|e| e.into_inner())))
    }

    /// The shared server, with no other test using it (to stop and start it).
    pub fn alone() -> Option<Sftp> {
        Self::with(|| Hold::Alone(SSHD.write().unwrap_or_else(|e| e.into_inner())))
    }

    fn with(hold: impl FnOnce() -> Hold) -> Option<Sftp> {
        let base = service("BATCHWIN_TEST_SFTP")?;
        let _hold = hold();
        let port = base.rsplit(':').next().unwrap_or("22").to_string();
        Some(Sftp {
            _hold,
            base,
            root: PathBuf::from(
                std::env::var("BATCHWIN_TEST_SFTP_ROOT").expect("BATCHWIN_TEST_SFTP_ROOT"),
            ),
            key: std::env::var("BATCHWIN_TEST_SFTP_KEY").expect("BATCHWIN_TEST_SFTP_KEY"),
            known_hosts: std::env::var("BATCHWIN_TEST_SFTP_KNOWN_HOSTS")
                .expect("BATCHWIN_TEST_SFTP_KNOWN_HOSTS"),
            wrong_known_hosts: std::env::var("BATCHWIN_TEST_SFTP_WRONG_KNOWN_HOSTS")
                .expect("BATCHWIN_TEST_SFTP_WRONG_KNOWN_HOSTS"),
            port,
        })
    }

    /// A fresh folder on the server: (its URL, its local path).
    pub fn folder(&self) -> (String, PathBuf) {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let local = self.root.join(&id);
        std::fs::create_dir_all(&local).expect("sftp folder");
        (format!("{}{}", self.base, local.display()), local)
    }

    /// The flags that give batchwin the key and known_hosts.
    pub fn flags(&self) -> [String; 4] {
        [
            "--ssh-key".into(),
            self.key.clone(),
            "--known-hosts".into(),
            self.known_hosts.clone(),
        ]
    }

    /// Runs the OpenSSH `sftp` client with a batch of commands, checking the host key.
    pub fn client(&self, batch: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = std::process::Command::new("sftp")
            .args([
                "-P",
                &self.port,
                "-i",
                &self.key,
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
            ])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts))
            .args(["-b", "-", "root@127.0.0.1"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sftp client");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(batch.as_bytes())
            .unwrap();
        child.wait_with_output().expect("sftp client")
    }
}

/// Every file below `dir`, relative path -> bytes.
pub fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

/// Asserts that `published` (laid out `VENDOR/NAME`) holds exactly the outputs under `whole`
/// (`VENDOR/NAME`, reject files and ledgers left out), byte for byte.
pub fn assert_published(whole: &Path, published: &Path) {
    let expected: std::collections::BTreeMap<String, Vec<u8>> = tree(whole)
        .into_iter()
        .filter(|(k, _)| k.contains('/') && !k.contains(".rejects.") && !k.ends_with(".duckdb"))
        .collect();
    let got = tree(published);
    assert!(!expected.is_empty(), "no outputs under {}", whole.display());
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "published files differ from the outputs"
    );
    for (k, v) in &expected {
        assert!(&got[k] == v, "{k}: published bytes differ from the output");
    }
}

/// The deliveries a publish ledger recorded: how many of each status, by status.
pub fn deliveries(ledger: &Path) -> Vec<(String, i64)> {
    let conn = duckdb::Connection::open_with_flags(
        ledger,
        duckdb::Config::default()
            .access_mode(duckdb::AccessMode::ReadOnly)
            .unwrap(),
    )
    .unwrap();
    let mut stmt = conn
        .prepare("SELECT status, count(*) FROM deliveries GROUP BY status ORDER BY status")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// What a finished command printed on standard output.
pub fn stdout(o: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&o.get_output().stdout).into_owned()
}

/// What a finished command printed on standard error.
pub fn stderr(o: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&o.get_output().stderr).into_owned()
}

// The generated day: `generate`, then `plan` and `process` of every slice, or `process` of the
// whole day. Written once here so that every test runs the same commands.

/// The day the `*_day` helpers generate, plan and process.
pub const DATE: &str = "2026-11-29";

/// `batchwin generate --out OUT --files FILES --records RECORDS FLAGS`; must succeed.
pub fn generate(d: &Dir, out: &str, files: &str, records: &str, flags: &[&str]) {
    d.cmd()
        .args([
            "generate",
            "--out",
            out,
            "--files",
            files,
            "--records",
            records,
        ])
        .args(flags)
        .assert()
        .success();
}

/// `batchwin generate` of a small day into `DIR/day` (for 2026-11-29).
pub fn generate_day(d: &Dir, files: &str, records: &str, vendors: &str, seed: &str) {
    generate_day_on(d, files, records, vendors, seed, DATE);
}

/// `batchwin generate` of a small day for `date` into `DIR/day`.
pub fn generate_day_on(d: &Dir, files: &str, records: &str, vendors: &str, seed: &str, date: &str) {
    generate(
        d,
        "day",
        files,
        records,
        &["--vendors", vendors, "--seed", seed, "--date", date],
    );
}

/// `batchwin plan` of the generated day (`DIR/day`, its inbound folder for 2026-11-29 scanned)
/// with `flags`, to run and check.
pub fn plan_day_command(d: &Dir, flags: &[&str]) -> Command {
    let mut c = d.cmd();
    c.args([
        "plan",
        "--config",
        "day/batchwin.toml",
        "--scan",
        &format!("day/inbound/{DATE}"),
    ])
    .args(flags);
    c
}

/// [`plan_day_command`] for 2026-11-29 (`--date`), which must succeed: its stdout. The plan is
/// `DIR/plan.json` unless `flags` hold `--out`.
pub fn plan_day(d: &Dir, flags: &[&str]) -> String {
    let o = plan_day_command(d, flags)
        .args(["--date", DATE])
        .assert()
        .success();
    stdout(&o)
}

/// The plan at `DIR/PATH`.
pub fn plan_json(d: &Dir, path: &str) -> serde_json::Value {
    serde_json::from_str(&d.read(path)).unwrap_or_else(|e| panic!("plan {path}: {e}"))
}

/// The arguments of `batchwin process` of slice `k` of the plan `DIR/PLAN` into `DIR/OUT`.
pub fn slice_args(plan: &str, k: usize, out: &str) -> Vec<String> {
    [
        "process",
        "--config",
        "day/batchwin.toml",
        "--plan",
        plan,
        "--slice",
        &k.to_string(),
        "--out",
        out,
    ]
    .map(String::from)
    .to_vec()
}

/// `batchwin process` of slice `k` of the plan `DIR/PLAN` into `DIR/OUT` with `flags`, which
/// must exit 0: its stdout.
pub fn process_slice(d: &Dir, plan: &str, k: usize, out: &str, flags: &[&str]) -> String {
    let o = d
        .cmd()
        .args(slice_args(plan, k, out))
        .args(flags)
        .assert()
        .code(0);
    stdout(&o)
}

/// Every slice of the plan `DIR/PLAN`, one after the other, into `DIR/OUT` (see
/// [`process_slice`]): how many slices there were.
pub fn process_slices(d: &Dir, plan: &str, out: &str, flags: &[&str]) -> usize {
    let slices = plan_json(d, plan)["slices"]
        .as_array()
        .unwrap_or_else(|| panic!("plan {plan} has no slices"))
        .len();
    for k in 0..slices {
        process_slice(d, plan, k, out, flags);
    }
    slices
}

/// The generated day planned into `DIR/PLAN` with `flags` ([`plan_day`]) and every slice of it
/// processed, quietly, into `DIR/OUT`: how many slices there were.
pub fn plan_and_process_day(d: &Dir, plan: &str, flags: &[&str], out: &str) -> usize {
    plan_day(d, &[&["--out", plan], flags].concat());
    process_slices(d, plan, out, &["-q"])
}

/// `batchwin process` of the whole generated day (`DIR/day`, 2026-11-29) into `DIR/OUT`; must
/// succeed.
pub fn process_day(d: &Dir, out: &str) {
    process_day_on(d, out, DATE);
}

/// `batchwin process` of the whole generated day for `date` into `DIR/OUT`; must succeed.
pub fn process_day_on(d: &Dir, out: &str, date: &str) {
    process_day_command(d, out, date).assert().code(0);
}

/// The command of [`process_day_on`], to run and check otherwise.
pub fn process_day_command(d: &Dir, out: &str, date: &str) -> Command {
    let mut c = d.cmd();
    c.args(process_day_args(out, date));
    c
}

/// The arguments of [`process_day_command`], for a plain child process ([`Dir::process`]).
pub fn process_day_args(out: &str, date: &str) -> Vec<String> {
    [
        "process",
        "--config",
        "day/batchwin.toml",
        "--inbound",
        &format!("day/inbound/{date}"),
        "--out",
        out,
        "--date",
        date,
    ]
    .map(String::from)
    .to_vec()
}
