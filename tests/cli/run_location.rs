//! Slices that share no filesystem: a generated day fetched to staging on an object store
//! (the S3 API server, Azurite), planned to a run location there, each slice run as its own
//! process in its own empty folder with its own scratch and nothing but the store's
//! credentials in its environment; then report and publish from the run location. The servers
//! are those `scripts/services/object-stores-up` starts.

use std::collections::BTreeMap;
use std::path::Path;

use batchwin::storage::{Store, StoreOptions};

use crate::storage::{runtime, s3_options};
use crate::util::{DATE, Dir, MASK_KEY, assert_published, generate_day, process_day, service};

/// A store the tests write below, under a prefix of their own, and the environment a worker
/// needs to reach it (credentials and endpoint, as an engine would give them).
pub(crate) struct Location {
    base: String,
    pub env: Vec<(String, String)>,
    /// For the test itself to look at and change what is stored.
    opts: StoreOptions,
    /// The folder of a run location in a folder, removed with the last copy of it.
    _folder: Option<std::sync::Arc<tempfile::TempDir>>,
}

impl Location {
    /// The same location, its workers given another S3 endpoint (a proxy, a dead port); the
    /// test itself still reaches the store directly.
    fn at_endpoint(&self, endpoint: &str) -> Location {
        let mut env = self.env.clone();
        for (k, v) in &mut env {
            if k == "AWS_ENDPOINT" {
                *v = endpoint.to_string();
            }
        }
        Location {
            base: self.base.clone(),
            env,
            opts: self.opts.clone(),
            _folder: self._folder.clone(),
        }
    }

    /// The same location, its workers given an S3 endpoint nothing listens on, and its port.
    fn unanswered(&self) -> (Location, u16) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        (self.at_endpoint(&format!("http://127.0.0.1:{port}")), port)
    }
}

pub(crate) fn s3() -> Option<Location> {
    let endpoint = service("BATCHWIN_TEST_S3")?;
    Some(Location {
        base: format!("s3://batchwin-test/{}", uuid::Uuid::new_v4().simple()),
        env: vec![
            ("AWS_ENDPOINT".into(), endpoint.clone()),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ],
        opts: s3_options(endpoint),
        _folder: None,
    })
}

/// The S3 API server that checks request signatures (s3s-fs), with the keys
/// `scripts/services/object-stores-up` gave it.
pub(crate) fn s3_sigv4() -> Option<Location> {
    let endpoint = service("BATCHWIN_TEST_S3_SIGV4")?;
    let env = vec![
        ("AWS_ENDPOINT".to_string(), endpoint.clone()),
        ("AWS_ALLOW_HTTP".into(), "true".into()),
        ("AWS_ACCESS_KEY_ID".into(), "batchwin-ak".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "batchwin-secret-key".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
    ];
    Some(Location {
        base: format!("s3://batchwin-test/{}", uuid::Uuid::new_v4().simple()),
        opts: StoreOptions {
            pairs: env
                .iter()
                .map(|(k, v)| (k.to_lowercase(), v.clone()))
                .collect(),
            ..Default::default()
        },
        env,
        _folder: None,
    })
}

/// A folder as the run location, as machines sharing a filesystem would see it.
fn folder() -> Location {
    let dir = tempfile::tempdir().expect("run location folder");
    Location {
        base: format!("file://{}", dir.path().join("location").display()),
        env: Vec::new(),
        opts: StoreOptions::default(),
        _folder: Some(std::sync::Arc::new(dir)),
    }
}

/// A fresh folder on the test SFTP server as the run location, with the server held (shared)
/// while the second value lives.
fn sftp() -> Option<(Location, crate::util::Sftp)> {
    let s = crate::util::Sftp::get()?;
    let (base, _) = s.folder();
    let loc = Location {
        base,
        env: vec![
            ("BATCHWIN_SSH_KEY".into(), s.key.clone()),
            ("BATCHWIN_KNOWN_HOSTS".into(), s.known_hosts.clone()),
        ],
        opts: crate::storage::sftp_options(&s),
        _folder: None,
    };
    Some((loc, s))
}

/// The emulator's published development key (not a secret).
pub(crate) const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn azurite() -> Option<Location> {
    let endpoint = service("BATCHWIN_TEST_AZURITE")?;
    Some(Location {
        base: format!("az://batchwin-test/{}", uuid::Uuid::new_v4().simple()),
        env: vec![
            ("AZURE_STORAGE_USE_EMULATOR".into(), "true".into()),
            ("AZURITE_BLOB_STORAGE_URL".into(), endpoint.clone()),
        ],
        // The emulator's account by its endpoint, for this process (which cannot set
        // AZURITE_BLOB_STORAGE_URL for itself alone).
        opts: StoreOptions {
            pairs: vec![
                (
                    "azure_storage_account_name".into(),
                    "devstoreaccount1".into(),
                ),
                ("azure_storage_account_key".into(), AZURITE_KEY.into()),
                (
                    "azure_storage_endpoint".into(),
                    format!("{endpoint}/devstoreaccount1"),
                ),
                ("azure_allow_http".into(), "true".into()),
            ],
            ..Default::default()
        },
        _folder: None,
    })
}

impl Location {
    /// `batchwin` with this store's environment and nothing else of the test's: no
    /// `BATCHWIN_*` variable but the masking key (as an engine's secret would give it).
    pub(crate) fn cmd(&self, cwd: &Path) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("batchwin"));
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("BATCHWIN_MASK_KEY", MASK_KEY)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(cwd);
        c
    }

    pub(crate) fn run(&self, cwd: &Path, args: &[&str]) -> std::process::Output {
        let o = self.cmd(cwd).args(args).output().expect("batchwin runs");
        eprintln!(
            "batchwin {}: {:?}\n{}{}",
            args.join(" "),
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    pub(crate) fn url(&self, rel: &str) -> String {
        format!("{}/{rel}", self.base)
    }

    /// The object `rel`, when it is there.
    pub(crate) fn get(&self, rel: &str) -> Option<Vec<u8>> {
        runtime().block_on(async {
            let store = Store::open(&self.base, &self.opts).await.expect("store");
            store
                .get_versioned(rel)
                .await
                .expect("get")
                .map(|v| v.bytes)
        })
    }

    /// Puts `bytes` as the object `rel`, replacing one there.
    pub(crate) fn put(&self, rel: &str, bytes: &[u8]) {
        let local = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(local.path(), bytes).expect("write");
        runtime().block_on(async {
            let store = Store::open(&self.base, &self.opts).await.expect("store");
            store.put_file(rel, local.path(), true).await.expect("put");
        })
    }

    /// Every object below `rel` (name relative to it -> bytes).
    pub(crate) fn objects(&self, rel: &str) -> BTreeMap<String, Vec<u8>> {
        runtime().block_on(async {
            let store = Store::open(&self.url(rel), &self.opts)
                .await
                .expect("store");
            let mut out = BTreeMap::new();
            for e in store.list_all("", false).await.expect("list").files {
                let bytes = store.get_bytes(&e.name).await.expect("get");
                out.insert(e.name, bytes);
            }
            out
        })
    }
}

/// A generated day whose configuration reads the masking key from the environment (a worker
/// has no key file), fetched to `BASE/staging` and planned into `slices` slices at
/// `BASE/run/plan.json`.
fn stage_and_plan(d: &Dir, loc: &Location, files: &str, records: &str, slices: &str) {
    stage(d, loc, files, records, "3");
    planned(plan_command(d, loc, &["--slices", slices]));
}

/// Runs a `plan` command, which must succeed.
fn planned(mut plan: std::process::Command) {
    let o = plan.output().expect("plan runs");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A generated day of `vendors` vendors whose configuration reads the masking key from the
/// environment (a worker has no key file), fetched to `BASE/staging` with its manifest in
/// `DIR/manifest.jsonl`.
pub(crate) fn stage(d: &Dir, loc: &Location, files: &str, records: &str, vendors: &str) {
    stage_edited(d, loc, files, records, vendors, &|_| {});
}

/// Takes `[masking] key_file` out of the day's configuration: the key comes from the
/// environment (`BATCHWIN_MASK_KEY`), as on workers that read the configuration from a run
/// location, where no key file is.
fn key_from_env(d: &Dir) {
    let config: String = d
        .read("day/batchwin.toml")
        .lines()
        .filter(|l| !l.starts_with("key_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    d.write("day/batchwin.toml", config);
}

/// [`stage`], with the generated day changed by `edit` before it is fetched.
fn stage_edited(
    d: &Dir,
    loc: &Location,
    files: &str,
    records: &str,
    vendors: &str,
    edit: &dyn Fn(&Dir),
) {
    generate_day(d, files, records, vendors, "41");
    edit(d);
    key_from_env(d);
    let staging = loc.url("staging");
    let o = loc.run(
        d.root(),
        &[
            "fetch",
            "--config",
            "day/batchwin.toml",
            "--source",
            "day",
            "--date",
            DATE,
            "--staging",
            &staging,
            "--manifest",
            "manifest.jsonl",
            "--settle",
            "0s",
        ],
    );
    assert_eq!(o.status.code(), Some(0));
    let manifest = d.read("manifest.jsonl");
    assert!(
        manifest
            .lines()
            .all(|l| l.contains(&format!("\"location\":\"{staging}/{DATE}/"))),
        "{manifest}"
    );
}

/// `plan` of the staged day's manifest to `BASE/run/plan.json`, with `flags`.
pub(crate) fn plan_command(d: &Dir, loc: &Location, flags: &[&str]) -> std::process::Command {
    plan_command_from(d, loc, "manifest.jsonl", flags)
}

/// [`plan_command`] of the manifest at `manifest` (a path in `DIR` or a URL).
fn plan_command_from(
    d: &Dir,
    loc: &Location,
    manifest: &str,
    flags: &[&str],
) -> std::process::Command {
    let mut c = loc.cmd(d.root());
    c.args([
        "plan",
        "--config",
        "day/batchwin.toml",
        "--manifest",
        manifest,
        "--out",
        &loc.url("run/plan.json"),
        "--date",
        DATE,
    ])
    .args(flags);
    c
}

/// Runs slice `k` in a new empty folder with its own scratch, as an engine's task would.
fn slice_command(d: &Dir, loc: &Location, k: usize, attempt: usize) -> std::process::Command {
    let work = d.path(&format!("workers/{k}-{attempt}"));
    let scratch = d.path(&format!("scratch/{k}-{attempt}"));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&scratch).unwrap();
    let mut c = loc.cmd(&work);
    c.args([
        "process",
        "--plan",
        &loc.url("run/plan.json"),
        "--slice",
        &k.to_string(),
        "--out",
        &loc.url("run"),
        "--scratch",
        &scratch.display().to_string(),
    ]);
    c
}

fn run_slice(d: &Dir, loc: &Location, k: usize, attempt: usize) -> std::process::Output {
    let o = slice_command(d, loc, k, attempt)
        .output()
        .expect("slice runs");
    eprintln!(
        "slice {k}: {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Nothing left in any worker's folder or scratch: a slice cleans up after itself.
fn assert_scratch_empty(d: &Dir) {
    for dir in ["workers", "scratch"] {
        let left = crate::util::tree(&d.path(dir));
        assert!(left.is_empty(), "left in {dir}: {:?}", left.keys());
    }
}

/// Report and publish from the run location; the report's totals are the generator's and the
/// published files are, byte for byte, those of processing the same files locally: the outputs,
/// and with `publish_rejects` the reject files too, a split file's put together from its parts'
/// (those of a file cut by ranged reads renumbered: see [`assert_parts_rejects`]). Returns how
/// many rejects of parts numbered from their own start were renumbered.
/// Whether `key`, a path in a run's output folder, is an output or reject file (in a vendor's
/// folder), not a ledger.
fn is_output(key: &str) -> bool {
    key.contains('/') && !key.ends_with(".duckdb")
}

/// Asserts that the run location's objects `run` hold one object per output or reject file of
/// the local run `local`, and nothing else but ledgers and status documents; their names.
fn one_object_per_output<'a>(
    run: &'a BTreeMap<String, Vec<u8>>,
    local: &BTreeMap<String, Vec<u8>>,
) -> Vec<&'a String> {
    let outputs: Vec<&String> = run
        .keys()
        .filter(|k| k.contains('/') && !k.starts_with("ledgers/") && !k.starts_with("status/"))
        .collect();
    let expected: Vec<&String> = local.keys().filter(|k| is_output(k)).collect();
    assert_eq!(outputs, expected, "one object per output, nothing else");
    outputs
}

pub(crate) fn report_and_publish(d: &Dir, loc: &Location) -> usize {
    let ledgers = loc.url("run/ledgers");
    let plan = loc.url("run/plan.json");
    let o = loc.run(
        d.root(),
        &[
            "report",
            "--ledgers",
            &ledgers,
            "--plan",
            &plan,
            "--format",
            "json",
            "--fail-on",
            "failed,missing",
        ],
    );
    assert_eq!(o.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("report json");
    let expected: serde_json::Value =
        serde_json::from_str(&d.read("day/expected.json")).expect("expected.json");
    let t = &report["totals"];
    assert_eq!(t["records_in"], expected["records"]);
    assert_eq!(t["records_rejected"], expected["invalid"]);
    assert_eq!(t["failed"], 0);
    assert_eq!(report["missing"].as_array().map(Vec::len), Some(0));

    let o = loc.run(
        d.root(),
        &[
            "publish",
            "--config",
            "day/batchwin.toml",
            "--ledgers",
            &ledgers,
            "--target",
            "published",
            "--date",
            DATE,
        ],
    );
    assert_eq!(o.status.code(), Some(0));
    if !d.path("local").exists() {
        process_day(d, "local");
    }
    assert_published(
        &d.path("local"),
        &d.path(&format!("published/outbound/{DATE}")),
    );
    // The reject files as the run location holds them (a split file's in parts).
    let run = loc.objects("run");
    let mut renumbered = 0;
    for (rel, bytes) in crate::util::tree(&d.path("local")) {
        if !rel.contains(".rejects.") {
            continue;
        }
        let pieces: Vec<&Vec<u8>> = run
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{rel}.part-")))
            .map(|(_, v)| v)
            .collect();
        if pieces.is_empty() {
            assert!(
                run.get(&rel) == Some(&bytes),
                "{rel}: differs in the run location"
            );
        } else {
            renumbered += assert_parts_rejects(&rel, &bytes, &pieces);
        }
    }
    // Published with their reject files: every file is the one of processing the day locally.
    let config = d.read("day/batchwin.toml").replace(
        "[vendor.output]",
        "[vendor.transfer]\npublish_rejects = true\n\n[vendor.output]",
    );
    d.write("day/batchwin-rejects.toml", config);
    let o = loc.run(
        d.root(),
        &[
            "publish",
            "--config",
            "day/batchwin-rejects.toml",
            "--ledgers",
            &ledgers,
            "--target",
            "published-rejects",
            "--date",
            DATE,
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let want: BTreeMap<String, Vec<u8>> = crate::util::tree(&d.path("local"))
        .into_iter()
        .filter(|(k, _)| is_output(k))
        .collect();
    let got = crate::util::tree(&d.path(&format!("published-rejects/outbound/{DATE}")));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "published files differ from the outputs and reject files"
    );
    for (k, v) in &want {
        assert!(
            got[k] == *v,
            "{k}: published bytes differ from processing the file whole"
        );
    }
    renumbered
}

/// The reject files of a file's parts as the run location holds them: put together, the whole
/// file's but for the numbers of records and lines, which each part of a file cut by ranged
/// reads but the first counts from its own start (the planner does not read what comes before
/// a cut; `publish` renumbers them). The first part's are the whole file's exactly. Returns how
/// many rejects the later parts hold.
fn assert_parts_rejects(rel: &str, whole: &[u8], pieces: &[&Vec<u8>]) -> usize {
    let lines = |b: &[u8]| -> Vec<serde_json::Value> {
        String::from_utf8_lossy(b)
            .lines()
            .map(|l| serde_json::from_str(l).expect("a reject line"))
            .collect()
    };
    // Without the numbers: the record's and line's, and the line a reason may name (`... at
    // line 308 column 257`).
    let unnumbered = |v: Vec<serde_json::Value>| -> Vec<String> {
        v.into_iter()
            .map(|mut l| {
                let o = l.as_object_mut().expect("a reject object");
                assert!(o.remove("record").is_some() && o.remove("line").is_some());
                let text = l.to_string();
                let mut out = String::new();
                let mut rest = text.as_str();
                while let Some(i) = rest.find(" at line ") {
                    out.push_str(&rest[..i]);
                    rest = rest[i + " at line ".len()..]
                        .trim_start_matches(|c: char| c.is_ascii_digit());
                }
                out + rest
            })
            .collect()
    };
    let joined: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
    let (got, want) = (unnumbered(lines(&joined)), unnumbered(lines(whole)));
    assert_eq!(
        got.len(),
        want.len(),
        "{rel}: not as many rejects as the whole file's"
    );
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "{rel}: the parts' rejects are not the whole file's");
    }
    assert!(
        whole.starts_with(pieces[0]),
        "{rel}: the first part's rejects are not the whole file's first ones"
    );
    pieces[1..].iter().map(|p| lines(p).len()).sum()
}

fn a_day_runs_from_the_location(loc: Location) {
    let d = Dir::new();
    stage(&d, &loc, "12", "6000", "3");
    // The planner reads the manifest from the store too: nothing of the day stays local.
    let manifest = std::fs::read(d.path("manifest.jsonl")).unwrap();
    loc.put("manifest.jsonl", &manifest);
    std::fs::remove_file(d.path("manifest.jsonl")).unwrap();
    let manifest = loc.url("manifest.jsonl");
    planned(plan_command_from(&d, &loc, &manifest, &["--slices", "3"]));
    for k in 0..3 {
        let o = run_slice(&d, &loc, k, 0);
        assert_eq!(o.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("slice      {k} of 3")));
    }
    assert_scratch_empty(&d);
    // A slice run again does nothing twice.
    let o = run_slice(&d, &loc, 1, 1);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("resumed") && out.contains("files      0 "),
        "{out}"
    );
    report_and_publish(&d, &loc);
}

/// Staged and run over SFTP: the staging, the manifest, the plan, the outputs and the
/// ledgers on the test OpenSSH server, each slice in its own empty folder.
#[test]
fn a_day_runs_from_an_sftp_run_location_without_a_shared_filesystem() {
    if let Some((loc, _server)) = sftp() {
        a_day_runs_from_the_location(loc);
    }
}

#[test]
fn a_day_runs_from_an_s3_run_location_without_a_shared_filesystem() {
    if let Some(loc) = s3() {
        a_day_runs_from_the_location(loc);
    }
}

#[test]
fn a_day_runs_from_an_azure_blob_run_location_without_a_shared_filesystem() {
    if let Some(loc) = azurite() {
        a_day_runs_from_the_location(loc);
    }
}

#[test]
fn a_day_runs_from_an_s3_run_location_that_checks_signatures() {
    let Some(mut loc) = s3_sigv4() else {
        return;
    };
    a_day_runs_from_the_location(Location {
        base: loc.base.clone(),
        env: loc.env.clone(),
        opts: loc.opts.clone(),
        _folder: None,
    });
    // Signed with the wrong secret, a worker is refused by the server: it fails, and says
    // where.
    for (k, v) in &mut loc.env {
        if k == "AWS_SECRET_ACCESS_KEY" {
            *v = "not-the-secret".into();
        }
    }
    let d = Dir::new();
    let o = run_slice(&d, &loc, 0, 0);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&loc.url("run")),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_staged_input_changed_after_fetch_is_refused_with_exit_3() {
    let Some(loc) = s3_sigv4() else {
        return;
    };
    let d = Dir::new();
    stage_and_plan(&d, &loc, "6", "3000", "1");
    // One staged file's bytes change after it was fetched (same size).
    let staged = loc.objects("staging");
    let (victim, bytes) = staged
        .iter()
        .find(|(k, _)| k.ends_with(".csv"))
        .expect("a staged csv");
    let mut changed = bytes.clone();
    let at = changed.len() - 3;
    changed[at] = if changed[at] == b'7' { b'8' } else { b'7' };
    let local = d.write("changed", &changed);
    runtime().block_on(async {
        let store = Store::open(&loc.url("staging"), &loc.opts).await.unwrap();
        store.put_file(victim, &local, true).await.unwrap();
    });
    let o = run_slice(&d, &loc, 0, 0);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    let url = loc.url(&format!("staging/{victim}"));
    assert!(
        err.contains(&url) && err.contains("not the file the plan was made from"),
        "{err}"
    );
    // Nothing of it in the run location; the other files are there.
    let stem = Path::new(victim).file_stem().unwrap().to_string_lossy();
    let run = loc.objects("run");
    assert!(
        !run.keys().any(|k| k.contains(stem.as_ref())),
        "{:?}",
        run.keys()
    );
    assert!(run.keys().filter(|k| k.contains(".out.")).count() >= 4);
    assert_scratch_empty(&d);
    // A publish of what the slice recorded delivers the other files and nothing of this one.
    let ledgers = loc.url("run/ledgers");
    let o = loc.run(
        d.root(),
        &[
            "publish",
            "--config",
            "day/batchwin.toml",
            "--ledgers",
            &ledgers,
            "--target",
            "published",
            "--date",
            DATE,
        ],
    );
    assert_eq!(o.status.code(), Some(0));
    let delivered = crate::util::tree(&d.path("published"));
    assert!(
        delivered.keys().filter(|k| k.contains(".out.")).count() >= 4
            && !delivered.keys().any(|k| k.contains(stem.as_ref())),
        "{:?}",
        delivered.keys()
    );
}

#[test]
fn a_slice_killed_during_its_uploads_leaves_nothing_partial_and_finishes_the_same() {
    let Some(loc) = s3_sigv4() else {
        return;
    };
    use rand::Rng;
    let d = Dir::new();
    stage_and_plan(&d, &loc, "24", "60000", "1");
    process_day(&d, "local");
    let local = crate::util::tree(&d.path("local"));
    let check = |when: &str| {
        for (rel, bytes) in loc.objects("run") {
            if rel.ends_with(".duckdb") || rel == "plan.json" || rel == "batchwin.toml" {
                continue;
            }
            // A status document is whole too: one it can read.
            if rel.starts_with("status/") {
                let doc: Result<serde_json::Value, _> = serde_json::from_slice(&bytes);
                assert!(doc.is_ok(), "{when}: `{rel}` is not a whole document");
                continue;
            }
            assert!(
                local.get(&rel) == Some(&bytes),
                "{when}: `{rel}` is not a whole output ({} bytes)",
                bytes.len()
            );
        }
    };
    // How long a whole run of the slice takes here, to kill the next ones inside it.
    let started = std::time::Instant::now();
    assert_eq!(run_slice(&d, &loc, 0, 100).status.code(), Some(0));
    let whole = started.elapsed().as_millis() as u64;
    check("after a whole run");
    let ledger = "ledgers/slice-00000.duckdb";
    let forget_ledger = || {
        // Without its ledger the next run does every unit again, uploading over what is
        // there: the kills land in uploads of a run location that already holds outputs.
        runtime().block_on(async {
            let store = Store::open(&loc.url("run"), &loc.opts).await.unwrap();
            store.delete(ledger).await.unwrap();
        })
    };
    forget_ledger();
    let mut rng = rand::thread_rng();
    let mut killed = 0;
    for attempt in 0..10 {
        let mut child = slice_command(&d, &loc, 0, attempt)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let after = rng.gen_range(whole / 10..whole.max(20));
        std::thread::sleep(std::time::Duration::from_millis(after));
        // SIGKILL: nothing of the slice's own clean-up runs.
        let _ = child.kill();
        let status = child.wait().unwrap();
        check(&format!("after kill {attempt}"));
        let objects = loc.objects("run");
        eprintln!(
            "kill {attempt} after {after} of {whole} ms ({status}): {} objects in the run location",
            objects.len()
        );
        if status.code().is_none() {
            killed += 1;
        }
        if objects.contains_key(ledger) {
            forget_ledger();
        }
    }
    assert!(
        killed >= 5,
        "only {killed} of 10 runs were killed while working"
    );
    let o = run_slice(&d, &loc, 0, 99);
    assert_eq!(o.status.code(), Some(0));
    check("at the end");
    one_object_per_output(&loc.objects("run"), &local);
    report_and_publish(&d, &loc);
}

/// A TCP proxy on 127.0.0.1 in front of a real store: it forwards every byte until it is told
/// to stall; from then on it holds every connection, open or new, without a byte of answer,
/// as a store that stopped answering mid-run does.
struct StallingProxy {
    port: u16,
    stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl StallingProxy {
    fn start(target: &str) -> StallingProxy {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let target = target.trim_start_matches("http://").to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let stalled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hold = |stalled: &std::sync::atomic::AtomicBool| {
            if stalled.load(Ordering::SeqCst) {
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(60));
                }
            }
        };
        let pump =
            move |mut from: std::net::TcpStream,
                  mut to: std::net::TcpStream,
                  stalled: std::sync::Arc<std::sync::atomic::AtomicBool>| {
                let mut buf = [0u8; 64 * 1024];
                loop {
                    let n = match from.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    hold(&stalled);
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = to.shutdown(std::net::Shutdown::Write);
            };
        let flag = stalled.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let stalled = flag.clone();
                let target = target.clone();
                std::thread::spawn(move || {
                    hold(&stalled);
                    let Ok(server) = std::net::TcpStream::connect(&target) else {
                        return;
                    };
                    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let back = stalled.clone();
                    std::thread::spawn(move || pump(s2, c2, back));
                    pump(client, server, stalled);
                });
            }
        });
        StallingProxy { port, stalled }
    }

    fn stall(&self) {
        self.stalled
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A run location that stops answering while a slice works (requests time out, connections
/// hang): the slice retries, then ends with the retryable exit code 3 naming the store, so
/// an engine runs it again; run again against the store, it finishes the day with outputs
/// identical to local processing and nothing partial or doubled. On the S3 server that
/// checks signatures.
#[test]
fn a_run_location_that_stops_answering_mid_slice_ends_it_with_exit_3_and_a_rerun_finishes() {
    let Some(loc) = s3_sigv4() else {
        return;
    };
    let d = Dir::new();
    stage_and_plan(&d, &loc, "40", "20000", "1");
    process_day(&d, "local");
    let local = crate::util::tree(&d.path("local"));
    let endpoint = loc
        .env
        .iter()
        .find(|(k, _)| k == "AWS_ENDPOINT")
        .map(|(_, v)| v.clone())
        .unwrap();
    let proxy = StallingProxy::start(&endpoint);
    let through = loc.at_endpoint(&format!("http://127.0.0.1:{}", proxy.port));
    let mut child = slice_command(&d, &through, 0, 0)
        .args(["--retries", "2", "--timeout", "2s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Stall once the slice has put its first outputs.
    let started = std::time::Instant::now();
    while loc
        .objects("run")
        .keys()
        .filter(|k| k.contains(".out."))
        .count()
        < 2
    {
        assert!(started.elapsed().as_secs() < 120, "no output came");
        assert!(child.try_wait().unwrap().is_none(), "the slice ended first");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    proxy.stall();
    let stalled_at = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if stalled_at.elapsed().as_secs() >= 180 {
            let _ = child.kill();
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("the slice did not give up on a store that does not answer: {err}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(err.contains("retrying"), "retried first: {err}");
    assert!(
        err.contains(&format!("127.0.0.1:{}", proxy.port)) || err.contains(&loc.base),
        "the store is named: {err}"
    );
    eprintln!(
        "gave up {} ms after the store stopped answering",
        stalled_at.elapsed().as_millis()
    );
    assert_scratch_empty(&d);

    // What the run location holds is whole; run again against the store, the slice finishes.
    for (rel, bytes) in loc.objects("run") {
        if rel.contains(".out.") {
            assert_eq!(local.get(&rel), Some(&bytes), "`{rel}` is whole");
        }
    }
    let o = run_slice(&d, &loc, 0, 1);
    assert_eq!(o.status.code(), Some(0));
    // Scratch held a few units at a time, not the slice: at most two file workers per thread
    // and two inputs ahead, each with its input and outputs.
    let out = String::from_utf8_lossy(&o.stdout);
    let peak_mb: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("scratch "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no scratch line: {out}"));
    let staged = loc.objects("staging");
    let largest_in = staged.values().map(Vec::len).max().unwrap() as f64;
    let outputs_of_day = || {
        local
            .iter()
            .filter(|(k, _)| is_output(k))
            .map(|(_, b)| b.len() as f64)
    };
    let largest_out = outputs_of_day().fold(0.0, f64::max);
    let held = 2.0 * std::thread::available_parallelism().unwrap().get() as f64 + 2.0;
    let total: f64 =
        staged.values().map(|b| b.len() as f64).sum::<f64>() + outputs_of_day().sum::<f64>();
    assert!(
        peak_mb * 1e6 <= (held * (largest_in + 2.0 * largest_out)).min(total / 2.0) + 0.05e6,
        "scratch peak {peak_mb} MB; {total} bytes in the slice"
    );
    let run = loc.objects("run");
    for k in one_object_per_output(&run, &local) {
        assert_eq!(local.get(k), run.get(k), "`{k}`");
    }
    report_and_publish(&d, &loc);
}

/// On AWS Batch a job that fails stops every job after it, the report's too. A slice that
/// cannot reach its run location (here: an endpoint nothing answers on) exits 3 while the
/// engine has attempts left (`AWS_BATCH_JOB_ATTEMPT` below `--attempts`), to be retried; on
/// its last attempt it exits with `--failures-exit 0` instead and says why. The other slice
/// runs, and the report names the first slice's units as missing and exits 1.
#[test]
fn the_last_attempt_of_a_slice_that_cannot_reach_its_run_location_lets_the_later_jobs_run() {
    let Some(live) = s3() else {
        return;
    };
    let d = Dir::new();
    stage_and_plan(&d, &live, "4", "2000", "2");
    let (dead, port) = live.unanswered();
    let flags = [
        "--failures-exit",
        "0",
        "--attempts",
        "2",
        "--retries",
        "1",
        "--timeout",
        "1s",
    ];
    let attempt = |n: &str| {
        let o = slice_command(&d, &dead, 0, n.parse().unwrap())
            .args(flags)
            .env("AWS_BATCH_JOB_ATTEMPT", n)
            .output()
            .expect("slice runs");
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        (o.status.code(), err)
    };
    let (code, err) = attempt("1");
    assert_eq!(code, Some(3), "{err}");
    assert!(!err.contains("none is left"), "{err}");
    let (code, err) = attempt("2");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(
        err.contains(
            "attempt    2 of 2 ended on a retryable error and none is left: exit code 0 instead of 3"
        ),
        "{err}"
    );
    // An error no retry mends (exit code 2; here the masking key's secret is not given) ends
    // the slice the same way on any attempt with `--attempts` and `--failures-exit 0`, and
    // with 2 otherwise.
    let keyless = |extra: &[&str]| {
        let o = slice_command(&d, &live, 1, 9)
            .args(extra)
            .env_remove("BATCHWIN_MASK_KEY")
            .env("AWS_BATCH_JOB_ATTEMPT", "1")
            .output()
            .expect("slice runs");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    for flags in [&[][..], &["--attempts", "2"]] {
        // Without `--failures-exit 0` nothing would be gained: 2 says what to fix.
        let (code, err) = keyless(flags);
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains("BATCHWIN_MASK_KEY") && !err.contains("no retry mends"),
            "{err}"
        );
    }
    let (code, err) = keyless(&flags);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("BATCHWIN_MASK_KEY")
            && err
                .contains("attempt    ended on an error no retry mends: exit code 0 instead of 2"),
        "{err}"
    );
    // A slice that reaches its `--stop-after` stops as a SIGTERM would and ends with
    // `--failures-exit`'s code, before an engine's time limit would fail it from outside.
    for (failures_exit, code) in [("1", 1), ("0", 0)] {
        let o = slice_command(&d, &live, 1, 8)
            .args(["--stop-after", "0s", "--failures-exit", failures_exit])
            .output()
            .expect("slice runs");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{err}");
        assert!(
            err.contains(&format!(
                "stopped    the slice ran for its --stop-after of 0s: exit code {code}"
            )),
            "{err}"
        );
    }
    let o = run_slice(&d, &live, 1, 0);
    assert_eq!(o.status.code(), Some(0));
    let plan: serde_json::Value =
        serde_json::from_slice(&live.get("run/plan.json").expect("plan")).unwrap();
    let units = plan["slices"][0]["units"].as_array().unwrap().len();
    let o = live.run(
        d.root(),
        &[
            "report",
            "--ledgers",
            &live.url("run/ledgers"),
            "--plan",
            &live.url("run/plan.json"),
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("report json");
    assert_eq!(report["slices_never_started"], serde_json::json!([0]));
    let missing = report["missing"].as_array().unwrap();
    assert_eq!(missing.len(), units, "{missing:?}");
    assert!(missing.iter().all(|m| m["slice"] == 0), "{missing:?}");
}

/// The integers of a log line, after its first backquoted name (a URL holds digits too).
fn numbers_after_name(line: &str) -> Vec<u64> {
    let rest = line.splitn(3, '`').nth(2).unwrap_or("");
    rest.split(|c: char| !c.is_ascii_digit())
        .filter_map(|t| t.parse().ok())
        .collect()
}

/// Files larger than the split size, staged on the S3 API server, are cut into the parts a
/// local copy would have by ranged reads of a small share of them, and each part's worker, in
/// its own empty folder, downloads only the part's bytes: the outputs put together are, byte
/// for byte, those of processing the same files locally, and so are the reject files, whose
/// parts after the first number their rejects from their own start until `publish` renumbers
/// them.
#[test]
fn large_staged_files_are_split_by_ranged_reads_and_each_worker_downloads_only_its_part() {
    let Some(loc) = s3() else {
        return;
    };
    let (d, parts) = large_files_split_by_ranged_reads(&loc);
    // A part's reject file that does not hold reject lines as batchwin writes them is not
    // renumbered by guesswork: that file's reject file is not delivered, and why is said (the
    // piece and its line), with exit code 1; everything else is.
    let run = loc.objects("run");
    let (rel, bytes) = run
        .iter()
        .find(|(k, v)| k.contains(".rejects.") && k.contains(".part-00002-of-") && !v.is_empty())
        .expect("a later part with rejects");
    let mut broken = bytes.clone();
    broken.splice(0..0, b"{\"file\":1}\n".iter().copied());
    loc.put(&format!("run/{rel}"), &broken);
    let o = loc.run(
        d.root(),
        &[
            "publish",
            "--config",
            "day/batchwin-rejects.toml",
            "--ledgers",
            &loc.url("run/ledgers"),
            "--target",
            "published-broken",
            "--date",
            DATE,
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let whole = rel.split(".part-").next().unwrap();
    assert!(
        err.contains(" line 1: it is not a reject line")
            && err.contains("not delivered rather than with wrong record and line numbers"),
        "{err}"
    );
    let published = crate::util::tree(&d.path(&format!("published-broken/outbound/{DATE}")));
    let delivered = crate::util::tree(&d.path(&format!("published-rejects/outbound/{DATE}")));
    assert!(!published.contains_key(whole), "{whole} was delivered");
    assert_eq!(published.len() + 1, delivered.len());
    loc.put(&format!("run/{rel}"), bytes);
    // A staged file changed since it was planned, even to the same size, is refused by the
    // worker of each of its parts with exit code 3, naming it (the part is read only while the
    // object has the ETag it had when it was cut), and nothing of it is processed.
    let (url, ..) = parts.iter().find(|p| p.0.ends_with(".txt")).unwrap();
    let name = url
        .strip_prefix(&format!("{}/", loc.url("staging")))
        .unwrap();
    let mut bytes = loc.objects("staging")[name].clone();
    let at = bytes.len() / 2;
    bytes[at] = if bytes[at] == b'7' { b'8' } else { b'7' };
    let local = d.write("changed", &bytes);
    runtime().block_on(async {
        let store = Store::open(&loc.url("staging"), &loc.opts).await.unwrap();
        store.put_file(name, &local, true).await.unwrap();
    });
    let mut refused = 0;
    for k in 0..3 {
        let o = run_slice(&d, &loc, k, 1);
        let err = String::from_utf8_lossy(&o.stderr);
        if err.contains(url.as_str()) {
            assert_eq!(o.status.code(), Some(3), "{err}");
            assert!(
                err.contains("not the file the plan was made from")
                    && err.contains("changed since it was planned"),
                "{err}"
            );
            refused += 1;
        }
    }
    assert!(refused > 0, "no slice ran a part of `{url}`");
}

#[test]
fn large_files_staged_on_azure_blob_are_split_by_ranged_reads() {
    if let Some(loc) = azurite() {
        large_files_split_by_ranged_reads(&loc);
    }
}

#[test]
fn large_files_staged_on_an_s3_server_that_checks_signatures_are_split_by_ranged_reads() {
    if let Some(loc) = s3_sigv4() {
        large_files_split_by_ranged_reads(&loc);
    }
}

/// The run of a staged day with large files, cut by ranged reads (see the first test above),
/// and its publication, reject files included, byte for byte the whole files' (a later part's
/// rejects renumbered): its folder, and the parts (file URL, start, end, preamble) the plan cut
/// by ranged reads.
fn large_files_split_by_ranged_reads(
    loc: &Location,
) -> (Dir, std::collections::BTreeSet<(String, u64, u64, u64)>) {
    let d = Dir::new();
    // Four vendors: CSV, JSON Lines, XML and fixed-width; the largest files are over 100 kB.
    // The XML records are indented, and every record of the XML files after the first is
    // unreadable on its first line: the first record of every XML part is rejected with a
    // column that counts the indentation before it, as in the whole file.
    stage_edited(&d, loc, "12", "20000", "4", &indent_and_break_xml_records);
    let flags = ["--slices", "3", "--split-bytes", "100000"];
    let o = plan_command(&d, loc, &flags).arg("-vv").output().unwrap();
    let log = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(0), "{log}");
    let plan: serde_json::Value =
        serde_json::from_slice(&loc.objects("run")["plan.json"]).expect("plan");
    // Its XML parts are downloaded with the file's closing bytes, which version 1 lacks.
    assert_eq!(plan["version"], 2);
    // (file, start, end, preamble) of every part cut by ranged reads.
    let mut parts = std::collections::BTreeSet::new();
    for u in plan["slices"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["units"].as_array().unwrap())
    {
        if let Some(pre) = u["part"]["preamble_bytes"].as_u64() {
            let loc = u["location"].as_str().unwrap().to_string();
            let (s, e) = (u["part"]["start"].as_u64(), u["part"]["end"].as_u64());
            parts.insert((loc, s.unwrap(), e.unwrap(), pre));
        }
    }
    let all_split: std::collections::BTreeSet<&String> = parts.iter().map(|p| &p.0).collect();
    for ext in [".jsonl", ".txt", ".csv", ".xml"] {
        assert!(
            all_split.iter().any(|f| f.ends_with(ext)),
            "a `{ext}` file is split: {all_split:?}"
        );
    }
    // An XML file whose every record is rejected is split too (see
    // `indent_and_break_xml_records`).
    assert!(
        all_split.iter().filter(|f| f.ends_with(".xml")).count() > 1,
        "{all_split:?}"
    );
    // Files whose records are lines are cut by ranged reads, where planning the same files
    // from a local folder cuts them. CSV and XML files are cut at the places `fetch` found
    // when it staged them (the manifest's `cuts`), without reading them.
    let is_lines = |f: &&String| f.ends_with(".jsonl") || f.ends_with(".txt");
    let split: std::collections::BTreeSet<&String> =
        all_split.iter().copied().filter(is_lines).collect();
    let staged = all_split.len() - split.len();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("at the places fetch found"))
            .count(),
        staged,
        "{log}"
    );
    let o = loc.run(
        d.root(),
        &[
            "plan",
            "--config",
            "day/batchwin.toml",
            "--scan",
            &format!("day/inbound/{DATE}"),
            "--out",
            "local-plan.json",
            "--date",
            DATE,
            "--slices",
            "3",
            "--split-bytes",
            "100000",
        ],
    );
    assert_eq!(o.status.code(), Some(0));
    let name = |l: &str| l.rsplit('/').next().unwrap_or(l).to_string();
    let local: serde_json::Value = serde_json::from_str(&d.read("local-plan.json")).unwrap();
    assert_eq!(
        local["version"], 1,
        "nothing in a local plan needs version 2"
    );
    let local_cuts: std::collections::BTreeSet<(String, u64, u64)> = local["slices"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["units"].as_array().unwrap())
        .filter(|u| u["part"].is_object())
        .filter(|u| {
            split
                .iter()
                .any(|f| name(f) == name(u["location"].as_str().unwrap()))
        })
        .map(|u| {
            let p = &u["part"];
            (
                name(u["location"].as_str().unwrap()),
                p["start"].as_u64().unwrap(),
                p["end"].as_u64().unwrap(),
            )
        })
        .collect();
    let url_cuts: std::collections::BTreeSet<(String, u64, u64)> = parts
        .iter()
        .filter(|p| is_lines(&&p.0))
        .map(|p| (name(&p.0), p.1, p.2))
        .collect();
    assert_eq!(url_cuts, local_cuts);
    // The planner read a small share of each file it cut.
    let cut_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ranged requests"))
        .collect();
    assert_eq!(cut_lines.len(), split.len(), "{log}");
    for l in &cut_lines {
        let n = numbers_after_name(l);
        let (size, read) = (n[0], n[2]);
        assert!(read * 2 < size, "the planner read too much: {l}");
    }
    // Each slice in its own empty folder; each part's worker downloads the part's bytes and
    // the file's preamble, never the whole file.
    let mut downloaded = std::collections::BTreeSet::new();
    for k in 0..3 {
        let o = slice_command(&d, loc, k, 0).arg("-vv").output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(0), "{err}");
        for l in err.lines().filter(|l| l.contains(" for part ")) {
            let url = l.split('`').nth(1).unwrap().to_string();
            // `downloaded N bytes of `URL` (SIZE bytes) for part I of K: bytes S..E and its
            // P-byte preamble[ and X-byte end]` (an XML file's closing tags)
            let got: u64 = l
                .split("downloaded ")
                .nth(1)
                .and_then(|t| t.split(' ').next())
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("{l}"));
            let n = numbers_after_name(l);
            let (size, start, end, pre) = (n[0], n[3], n[4], n[5]);
            let epilogue = n.get(6).copied().unwrap_or(0);
            assert_eq!(url.ends_with(".xml"), epilogue > 0, "{l}");
            assert_eq!(got, end - start + pre + epilogue, "{l}");
            assert!(got < size, "the whole file was downloaded: {l}");
            downloaded.insert((url, start, end, pre));
        }
    }
    assert_eq!(
        downloaded, parts,
        "every part was downloaded by ranged reads"
    );
    assert_scratch_empty(&d);
    // Rejects in the parts after the first, numbered from the part's own start at the run
    // location, are published with the numbers of the whole file.
    let renumbered = report_and_publish(&d, loc);
    assert!(
        renumbered > 0,
        "no rejects in a part after the first of a file cut by ranged reads"
    );
    (d, parts)
}

/// Indents every record of the generated day's XML files by two spaces, and makes every
/// record of the XML files after the first (in `expected.json`'s order) unreadable on its
/// first line (an undefined entity after its start tag), with `expected.json` counting them
/// as rejected for that reason and the vendor's skip limit at 100 %.
fn indent_and_break_xml_records(d: &Dir) {
    let mut expected: serde_json::Value =
        serde_json::from_str(&d.read("day/expected.json")).expect("expected.json");
    let mut added = 0;
    let mut xml_files = 0;
    let mut reasons = expected["reasons"].take();
    for f in expected["per_file"].as_array_mut().unwrap() {
        let path = format!("day/{}", f["path"].as_str().unwrap());
        if !path.ends_with(".xml") {
            continue;
        }
        xml_files += 1;
        let broken = xml_files > 1;
        let text = d.read(&path);
        let mut out = String::with_capacity(text.len() * 11 / 10);
        let mut records = 0;
        for line in text.split_inclusive('\n') {
            if !line.starts_with("<record ") {
                out.push_str(line);
                continue;
            }
            records += 1;
            out.push_str("  ");
            match line.find('>').filter(|_| broken) {
                Some(end) => {
                    out.push_str(&line[..=end]);
                    out.push_str("&bogus;");
                    out.push_str(&line[end + 1..]);
                }
                None => out.push_str(line),
            }
        }
        assert_eq!(Some(records), f["records"].as_u64(), "{path}");
        d.write(&path, out);
        if broken {
            added += records - f["invalid"].as_u64().unwrap();
            f["invalid"] = records.into();
            // Each record's first reason is now the entity.
            for (reason, n) in f["reasons"].as_object().unwrap() {
                let total = &mut reasons[reason.as_str()];
                *total = (total.as_u64().unwrap() - n.as_u64().unwrap()).into();
            }
            f["reasons"] = serde_json::json!({ "xml": records });
            let xml = &mut reasons["xml"];
            *xml = (xml.as_u64().unwrap_or(0) + records).into();
        }
    }
    expected["reasons"] = reasons;
    assert!(xml_files > 1, "the day has XML files");
    // Files whose every record is rejected are not over the XML vendor's skip limit.
    let vendor = expected["per_file"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["format"] == "xml")
        .and_then(|f| f["vendor"].as_str())
        .unwrap()
        .to_string();
    let config = d.read("day/batchwin.toml");
    let (head, tail) = config
        .split_once(&format!("id = \"{vendor}\"\n"))
        .expect("the XML vendor");
    let (block, rest) = tail.split_once("skip_limit = ").expect("its skip limit");
    let rest = rest.split_once('\n').unwrap().1;
    d.write(
        "day/batchwin.toml",
        format!("{head}id = \"{vendor}\"\n{block}skip_limit = \"100%\"\n{rest}"),
    );
    let invalid = expected["invalid"].as_u64().unwrap() + added;
    expected["invalid"] = invalid.into();
    d.write(
        "day/expected.json",
        serde_json::to_string_pretty(&expected).unwrap(),
    );
}

/// `status RUN_URL --format json`, run as anyone who can read the run location would.
fn status_at(d: &Dir, loc: &Location, run: &str) -> serde_json::Value {
    let o = loc
        .cmd(d.root())
        .args(["status", run, "--format", "json"])
        .output()
        .expect("status runs");
    crate::status::status_json(&o)
}

/// A slice over the run location, slow enough to be watched (many small files on one thread,
/// in chunks of a kilobyte), followed with `status RUN_URL`: its figures only rise, and end
/// equal to those `report --ledgers URL` gives.
fn status_follows_a_slice_at_the_location(loc: Location) {
    use crate::status::{assert_ends_as_reported, follow, n};
    let d = Dir::new();
    stage_and_plan(&d, &loc, "600", "300000", "1");
    let run = loc.url("run");
    let before = status_at(&d, &loc, &run);
    assert_eq!(before["slices"][0]["state"], "waiting", "{before}");
    assert_eq!(before["run"], run.as_str());
    let units = n(&before, &["totals", "units"]);
    assert!(units >= 600, "{units} units");
    let mut child = slice_command(&d, &loc, 0, 0)
        .args(["--chunk-bytes", "1024", "-q"])
        .env("RAYON_NUM_THREADS", "1")
        .spawn()
        .expect("slice runs");
    follow(&mut child, units, || status_at(&d, &loc, &run));
    // The document is an object of the run location, beside the ledger.
    let objects = loc.objects("run/status");
    assert_eq!(
        objects.keys().collect::<Vec<_>>(),
        ["slice-00000.json"],
        "{:?}",
        objects.keys()
    );
    let end = status_at(&d, &loc, &run);
    let o = loc.run(
        d.root(),
        &[
            "report",
            "--ledgers",
            &loc.url("run/ledgers"),
            "--format",
            "json",
        ],
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("report json");
    assert_ends_as_reported(&end, &report, units);
    // A plan kept elsewhere (`process --plan URL`), at a URL or as a file, is given with --plan.
    let elsewhere = loc.url("plans/day.json");
    runtime().block_on(async {
        let runs = Store::open(&run, &loc.opts).await.unwrap();
        let copy = d.write("plan-copy.json", runs.get_bytes("plan.json").await.unwrap());
        let plans = Store::open(&loc.url("plans"), &loc.opts).await.unwrap();
        plans.put_file("day.json", &copy, true).await.unwrap();
    });
    for given in [elsewhere.as_str(), "plan-copy.json"] {
        let o = loc
            .cmd(d.root())
            .args(["status", &run, "--plan", given, "--format", "json"])
            .output()
            .expect("status runs");
        let view = crate::status::status_json(&o);
        assert_eq!(view["totals"], end["totals"], "--plan {given}");
    }
    // `--watch` ends by itself once every slice has ended, with the same view.
    let o = loc
        .cmd(d.root())
        .args([
            "status",
            &run,
            "--watch",
            "--interval",
            "0.2",
            "--format",
            "json",
        ])
        .output()
        .expect("status --watch runs");
    let last = String::from_utf8_lossy(&o.stdout);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{last}");
    assert!(last.contains("\"ended\": true"), "{last}");
    assert_scratch_empty(&d);
}

#[test]
fn status_follows_a_slice_at_an_s3_run_location() {
    if let Some(loc) = s3() {
        status_follows_a_slice_at_the_location(loc);
    }
}

#[test]
fn status_follows_a_slice_at_an_azure_blob_run_location() {
    if let Some(loc) = azurite() {
        status_follows_a_slice_at_the_location(loc);
    }
}

/// The report of the day run at `day` (`URL/DATE-WINDOW`) from its ledgers there: its totals
/// are those of the generated day's expected.json, which is returned, and nothing failed.
fn assert_totals_as_generated(d: &Dir, loc: &Location, day: &str) -> serde_json::Value {
    let ledgers = format!("{day}/ledgers");
    let o = loc.run(
        d.root(),
        &["report", "--ledgers", &ledgers, "--format", "json"],
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("report json");
    let expected: serde_json::Value =
        serde_json::from_str(&d.read("day/expected.json")).expect("expected.json");
    assert_eq!(report["totals"]["records_in"], expected["records"]);
    assert_eq!(report["totals"]["records_rejected"], expected["invalid"]);
    assert_eq!(report["totals"]["failed"], 0);
    expected
}

/// `run --run-location URL`: a generated day through `run` with its data at the run location
/// and its bookkeeping in the local run folder; outputs byte for byte those of a local `run` of
/// the same day, totals those of expected.json, and a second `run` does nothing new.
fn a_window_runs_at_the_location(loc: Location) {
    let d = Dir::new();
    let date = crate::run::day_processed_whole(&d, "12", "6000", "3", "41");
    let runs = loc.url("runs");
    let day = format!("{runs}/{date}-day");
    let args = crate::run::run_args(&date, &["--workers", "2", "--run-location", &runs]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = loc.run(d.root(), &args);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    for step in [
        format!("--staging {day}/staging"),
        format!("--out {day}/plan.json"),
        format!("--plan {day}/plan.json --slice 1 --out {day}"),
        "--scratch".to_string(),
        format!("--ledgers {day}/ledgers"),
    ] {
        assert!(out.contains(&step), "{step}: {out}");
    }
    // The day's data is at the run location; the local run folder keeps the bookkeeping only.
    let stored = loc.objects(&format!("runs/{date}-day"));
    for name in ["plan.json", "window.json", "ledgers/publish.duckdb"] {
        assert!(stored.contains_key(name), "{name}: {:?}", stored.keys());
    }
    assert!(stored.keys().any(|k| k.starts_with("staging/")));
    assert!(stored.keys().any(|k| k.starts_with("status/slice-")));
    let local = d.path(&format!("runs/{date}-day"));
    assert!(local.join("state.json").is_file() && !local.join("out").exists());
    assert!(crate::util::tree(&local.join("scratch")).is_empty());
    assert_published(
        &d.path("whole"),
        &d.path(&format!("server/outbound/{date}")),
    );

    let expected = assert_totals_as_generated(&d, &loc, &day);

    // `status` of the run location, and of the local run folder, which leads there.
    for run in [day.clone(), format!("runs/{date}-day")] {
        let s = status_at(&d, &loc, &run);
        assert!(s["ended"].as_bool().unwrap(), "{run}: {s}");
        assert_eq!(s["run"], day.as_str());
        assert_eq!(s["totals"]["records"], expected["records"], "{run}: {s}");
    }

    // The same day run locally: the same outputs and reject files, byte for byte.
    let mut args = crate::run::run_args(&date, &["--workers", "2"]);
    let at = args.iter().position(|a| a == "--runs").expect("--runs");
    args[at + 1] = "runs-local".into();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(loc.run(d.root(), &args).status.code(), Some(0));
    let outputs = |tree: BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        tree.into_iter()
            .filter(|(k, _)| k.contains(".out.") || k.contains(".rejects."))
            .filter(|(k, _)| !k.starts_with("staging/"))
            .collect()
    };
    let here = outputs(crate::util::tree(
        &d.path(&format!("runs-local/{date}-day/out")),
    ));
    assert!(!here.is_empty());
    assert_eq!(
        outputs(stored).keys().collect::<Vec<_>>(),
        here.keys().collect::<Vec<_>>()
    );
    let stored = loc.objects(&format!("runs/{date}-day"));
    for (k, bytes) in &here {
        assert!(
            stored.get(k) == Some(bytes),
            "{k} differs at the run location"
        );
    }

    // Again: everything is recorded at the run location; nothing is processed or delivered.
    let args = crate::run::run_args(&date, &["--run-location", &runs]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = loc.run(d.root(), &args);
    assert_eq!(o.status.code(), Some(0));
    let again = String::from_utf8_lossy(&o.stdout);
    for said in [
        "12 files already done",
        "nothing left to do",
        "0 delivered (0.0 MB), 12 already there",
    ] {
        assert!(again.contains(said), "{said}: {again}");
    }
    assert!(!again.contains("step       slice"), "{again}");

    // From a machine that has none of the local run folder (lost, or another one): what is
    // done is read from the run location, and nothing is processed again.
    std::fs::remove_dir_all(d.path("runs")).expect("remove the local run folders");
    let o = loc.run(d.root(), &args);
    assert_eq!(o.status.code(), Some(0));
    let fresh = String::from_utf8_lossy(&o.stdout);
    for said in ["12 files already done", "nothing left to do"] {
        assert!(fresh.contains(said), "{said}: {fresh}");
    }
}

#[test]
fn a_window_runs_at_an_s3_run_location() {
    if let Some(loc) = s3() {
        a_window_runs_at_the_location(loc);
    }
}

/// `run --executor slurm --run-location URL`: the day's data at the run location that checks
/// request signatures, the slices as Slurm array tasks that read the plan there with node-local
/// scratch (no `--config`); outputs byte for byte those of local processing, totals those of
/// expected.json.
#[test]
fn a_window_runs_on_slurm_at_an_s3_run_location() {
    let Some(conf) = crate::util::service("SLURM_CONF") else {
        return;
    };
    let Some(loc) = s3_sigv4() else {
        return;
    };
    let d = Dir::new();
    let date = crate::run::day_on_server(&d, "8", "8000", "3", "43");
    let runs = loc.url("runs");
    let day = format!("{runs}/{date}-day");
    let args = crate::run::run_args(&date, &["--executor", "slurm", "--run-location", &runs]);
    // The tasks read the configuration at the run location: a key file beside it is refused
    // up front, and the key is given in the environment instead.
    // `Location::cmd` clears the environment: Slurm's configuration is given each time.
    let run = || {
        loc.cmd(d.root())
            .args(&args)
            .env("SLURM_CONF", &conf)
            .output()
            .expect("run")
    };
    let o = run();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("`[masking] key_file`"));
    key_from_env(&d);
    crate::util::process_day_on(&d, "whole", &date);
    let o = run();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("submitted") && out.contains("completed"),
        "{out}"
    );
    // The tasks as emitted: the plan at the run location, node-local scratch, no --config.
    let emitted = d.read(&format!("runs/{date}-day/emit/slurm/stage-0-0.sbatch"));
    assert!(
        emitted.contains(&format!(
            "process --plan {day}/plan.json --out {day} --scratch"
        )) && !emitted.contains("--config"),
        "{emitted}"
    );
    let stored = loc.objects(&format!("runs/{date}-day"));
    assert!(stored.keys().any(|k| k.starts_with("ledgers/slice-")));
    assert!(!d.path(&format!("runs/{date}-day/out")).exists());
    assert_published(
        &d.path("whole"),
        &d.path(&format!("server/outbound/{date}")),
    );
    assert_totals_as_generated(&d, &loc, &day);
}

#[test]
fn a_window_runs_at_an_azure_blob_run_location() {
    if let Some(loc) = azurite() {
        a_window_runs_at_the_location(loc);
    }
}

/// The quarantine of a day kept at a run location: V001's files, failing on their data with
/// `max_attempts = 1`, are put in quarantine at the run location by the first `run`, not planned
/// by the next, shown by `status RUN_URL`, released at the run location, and done once fixed.
#[test]
fn the_quarantine_of_a_day_at_a_run_location() {
    let Some(loc) = s3() else { return };
    let d = Dir::new();
    let date = crate::run::day_on_server(&d, "6", "2000", "3", "31");
    let runs = loc.url("runs");
    let day = format!("{runs}/{date}-day");
    let good = d.read("day/batchwin.toml");
    d.write(
        "day/batchwin.toml",
        good.replacen("skip_limit = \"5%\"", "skip_limit = 0", 1)
            .replace("[windows.day]\n", "[windows.day]\nmax_attempts = 1\n"),
    );
    let args = crate::run::run_args(&date, &["--run-location", &runs]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = |code: i32| -> String {
        let o = loc.run(d.root(), &args);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert_eq!(o.status.code(), Some(code), "{out}");
        out
    };
    let first = run(1);
    let n = first
        .lines()
        .filter(|l| l.starts_with("quarantine V001 `"))
        .count();
    assert!(n > 0, "{first}");
    assert!(
        loc.objects(&format!("runs/{date}-day/ledgers"))
            .contains_key("quarantine.duckdb")
    );
    let second = run(1);
    assert!(
        second.contains(&format!("quarantine {n} files not planned")),
        "{second}"
    );
    assert!(!second.contains("step       slice"), "{second}");
    let s = status_at(&d, &loc, &day);
    assert_eq!(s["quarantined"].as_array().unwrap().len(), n, "{s}");
    assert_eq!(s["totals"]["quarantined"], n, "{s}");

    // Why one of them is not planned: from the run location alone, as any machine asks, and
    // from the local run folder of the day, whose ledgers are at the run location.
    let held = first
        .lines()
        .find_map(|l| l.strip_prefix("quarantine V001 `"))
        .and_then(|r| r.split('`').next())
        .expect("a quarantined file");
    let name = held.rsplit('/').next().unwrap();
    for run in [day.clone(), format!("runs/{date}-day")] {
        let o = loc.run(d.root(), &["log", &run, "--why", name, "--format", "json"]);
        assert_eq!(o.status.code(), Some(0), "log {run}");
        let w: serde_json::Value = serde_json::from_slice(&o.stdout).expect("why json");
        assert_eq!(w["file"], held, "{w}");
        let now = w["now"].as_str().unwrap();
        assert!(
            now.starts_with("quarantined after 1 failed attempts"),
            "{w}"
        );
        let steps: Vec<&str> = w["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert!(steps[0].starts_with("fetched: in the manifest as"), "{w}");
        assert!(
            steps.iter().any(|s| s.contains(": the file processed")),
            "{w}"
        );
        assert!(
            steps
                .iter()
                .any(|s| s.contains("quarantined after 1 failed")),
            "{w}"
        );
    }
    // A file the day never fetched is said to be so, naming the run location.
    let o = loc.run(d.root(), &["log", &day, "--why", "nothing.csv"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("not in the manifest of `{day}`")),
        "{err}"
    );

    let o = loc.run(
        d.root(),
        &[
            "release", "--run", &day, "--vendor", "V001", "--by", "oncall",
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert_eq!(out.matches("released   V001").count(), n, "{out}");
    d.write("day/batchwin.toml", &good);
    run(0);
    let o = loc.run(
        d.root(),
        &[
            "report",
            "--ledgers",
            &format!("{day}/ledgers"),
            "--format",
            "json",
        ],
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("report json");
    let expected: serde_json::Value =
        serde_json::from_str(&d.read("day/expected.json")).expect("expected.json");
    assert_eq!(report["totals"]["records_in"], expected["records"]);
    assert_eq!(report["totals"]["quarantined"], 0, "{}", report["totals"]);
    assert!(report["quarantined"].as_array().unwrap().is_empty());
}

/// A lock object as a run writes it (`RUN_URL/.lock`), for a holder that is not a run.
fn lock_of(host: &str, pid: u32, renewed: chrono::DateTime<chrono::Utc>) -> Vec<u8> {
    let at = renewed.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    serde_json::to_vec(&serde_json::json!({
        "host": host, "pid": pid, "since": at, "renewed_at": at, "token": "not-a-run"
    }))
    .unwrap()
}

/// The lock of a day at a run location, between machines (here: runs with local run folders of
/// their own, whose local locks cannot see each other): a second `run` of the day is refused
/// while the first runs, naming it, and leaves its lock alone; the lock is gone once the run
/// ended; a lock not renewed for the lease is taken over, one renewed lately is not.
fn a_day_at_the_location_runs_on_one_machine_at_a_time(loc: Location) {
    let d = Dir::new();
    let date = crate::run::day_on_server(&d, "24", "20000", "3", "43");
    let runs = loc.url("runs");
    let lock = format!("runs/{date}-day/.lock");
    let args = |local: &str| -> Vec<String> {
        let mut a = crate::run::run_args(&date, &["--workers", "2", "--run-location", &runs]);
        let at = a.iter().position(|x| x == "--runs").expect("--runs");
        a[at + 1] = local.into();
        a
    };
    let out = std::fs::File::create(d.path("first.out")).unwrap();
    let mut first = loc
        .cmd(d.root())
        .args(args("runs-a"))
        .stdout(out)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("first run starts");
    let started = std::time::Instant::now();
    let held = loop {
        if let Some(bytes) = loc.get(&lock) {
            break bytes;
        }
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended before its lock was seen: {}",
            d.read("first.out")
        );
        assert!(started.elapsed().as_secs() < 60, "no lock at `{lock}`");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let holder: serde_json::Value = serde_json::from_slice(&held).expect("the lock is JSON");
    assert_eq!(holder["pid"], first.id(), "{holder}");
    for key in ["host", "since", "renewed_at", "token"] {
        assert!(holder[key].is_string(), "{key}: {holder}");
    }

    let args_b = args("runs-b");
    let o = loc.run(
        d.root(),
        &args_b.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run ended before the second was refused"
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "another run of window `day` for {date} is in progress (host {} pid {} since",
            holder["host"].as_str().unwrap(),
            first.id()
        )) && err.contains(&loc.url(&lock)),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("step       fetch"));
    // The first run's lock is left as it was (or renewed by it).
    let now: serde_json::Value =
        serde_json::from_slice(&loc.get(&lock).expect("still held")).unwrap();
    assert_eq!(now["token"], holder["token"]);

    assert_eq!(
        first.wait().unwrap().code(),
        Some(0),
        "{}",
        d.read("first.out")
    );
    assert_eq!(
        loc.get(&lock),
        None,
        "the lock is deleted when the run ends"
    );

    // A lock last renewed an hour ago (its machine died) is taken over, and deleted at the end.
    let args_b: Vec<&str> = args_b.iter().map(String::as_str).collect();
    let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    loc.put(&lock, &lock_of("gone-host", 4242, hour_ago));
    let o = loc.run(d.root(), &args_b);
    assert_eq!(o.status.code(), Some(0));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains("lock       took over the stale lock")
            && said.contains("host gone-host pid 4242"),
        "{said}"
    );
    assert_eq!(loc.get(&lock), None);

    // One renewed a minute ago is not.
    let fresh = lock_of(
        "other-host",
        4343,
        chrono::Utc::now() - chrono::Duration::minutes(1),
    );
    loc.put(&lock, &fresh);
    let o = loc.run(d.root(), &args_b);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("is in progress (host other-host pid 4343 since"),
        "{err}"
    );
    assert_eq!(
        loc.get(&lock),
        Some(fresh),
        "a refused run leaves the lock alone"
    );
}

#[test]
fn a_day_at_an_s3_run_location_runs_on_one_machine_at_a_time() {
    if let Some(loc) = s3() {
        a_day_at_the_location_runs_on_one_machine_at_a_time(loc);
    }
}

#[test]
fn a_day_at_an_s3_run_location_that_checks_signatures_runs_on_one_machine_at_a_time() {
    if let Some(loc) = s3_sigv4() {
        a_day_at_the_location_runs_on_one_machine_at_a_time(loc);
    }
}

/// In a folder a run takes the stale lock over once it has claimed it (`lease::take_over`).
#[test]
fn a_day_at_a_run_location_in_a_folder_runs_on_one_machine_at_a_time() {
    a_day_at_the_location_runs_on_one_machine_at_a_time(folder());
}

/// Runs started together on several machines at an SFTP run location whose lock is stale:
/// one takes it over and runs the day, staging its files in the day's folder (which no run
/// made before it); each other one is refused before it fetched anything, and no claim is
/// left beside the lock. (The race of the takeover itself, requests interleaved, is
/// `window::lease::tests::over_sftp_of_several_runs_taking_over_a_stale_lock_one_wins`. The
/// test server offers `posix-rename@openssh.com`, so the lock is replaced without ever being
/// absent: a run cannot find no lock and create one meanwhile.)
#[test]
fn of_runs_taking_over_a_stale_lock_at_an_sftp_run_location_at_once_one_runs() {
    let Some((loc, _sftp)) = sftp() else { return };
    let d = Dir::new();
    let date = crate::run::day_on_server(&d, "2", "200", "1", "47");
    // Fetch waits 20 s for the files to settle: the winner holds the lock while the others try.
    let config = d.read("day/batchwin.toml");
    assert!(config.contains("settle = \"0s\""), "{config}");
    d.write(
        "day/batchwin.toml",
        config.replace("settle = \"0s\"", "settle = \"20s\""),
    );
    let runs = loc.url("runs");
    let day = format!("runs/{date}-day");
    let lock = format!("{day}/.lock");
    let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    loc.put(&lock, &lock_of("gone-host", 4242, hour_ago));
    let racers: Vec<std::process::Child> = (0..4)
        .map(|k| {
            let mut a = crate::run::run_args(&date, &["--run-location", &runs]);
            let at = a.iter().position(|x| x == "--runs").expect("--runs");
            a[at + 1] = format!("runs-{k}");
            let out = std::fs::File::create(d.path(&format!("{k}.out"))).unwrap();
            let err = std::fs::File::create(d.path(&format!("{k}.err"))).unwrap();
            loc.cmd(d.root())
                .args(&a)
                .stdout(out)
                .stderr(err)
                .spawn()
                .expect("a run starts")
        })
        .collect();
    let mut won = Vec::new();
    for (k, mut r) in racers.into_iter().enumerate() {
        let code = r.wait().unwrap().code();
        let (said, err) = (d.read(&format!("{k}.out")), d.read(&format!("{k}.err")));
        if said.contains("lock       took over the stale lock") {
            assert_eq!(code, Some(0), "{said}{err}");
            assert!(
                said.contains("host gone-host pid 4242") && said.contains("step       slice 0"),
                "{said}"
            );
            won.push(k);
        } else {
            // Refused: the lock was taken (exit 1), or it kept changing while this run
            // tried (exit 3, for the scheduler to run it again later).
            assert!(
                (code == Some(1) && err.contains("is in progress"))
                    || (code == Some(3) && err.contains("kept changing")),
                "run {k}: {code:?}\n{said}{err}"
            );
            assert!(!said.contains("step       fetch"), "{said}");
        }
    }
    assert_eq!(won.len(), 1, "runs {won:?} took the lock over");
    let at_location = loc.objects(&day);
    let staged = at_location
        .keys()
        .filter(|n| n.starts_with("staging/"))
        .count();
    assert_eq!(staged, 2, "{:?}", at_location.keys());
    let left: Vec<&String> = at_location.keys().filter(|n| n.contains(".lock")).collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_day_at_an_azure_blob_run_location_runs_on_one_machine_at_a_time() {
    if let Some(loc) = azurite() {
        a_day_at_the_location_runs_on_one_machine_at_a_time(loc);
    }
}

/// A run whose lock another holder took (here: replaced by the test while the run's fetch
/// waits for files to settle) finds out at its next renewal, says who has it, stops as a
/// SIGTERM would (exit code 143) before it processed anything, and leaves the other holder's
/// lock as it is: no ledger, no output at the run location. On the S3 server and on Azure
/// Blob (conditional puts with `If-Match`, and a conditional delete).
#[test]
fn a_run_whose_lock_was_taken_over_stops_with_exit_143_and_leaves_the_lock_alone() {
    let Some(loc) = s3() else { return };
    a_run_whose_lock_was_taken_over_stops(loc);
}

#[test]
fn a_run_whose_lock_was_taken_over_on_azure_blob_stops_with_exit_143() {
    let Some(loc) = azurite() else { return };
    a_run_whose_lock_was_taken_over_stops(loc);
}

fn a_run_whose_lock_was_taken_over_stops(loc: Location) {
    let d = Dir::new();
    let date = crate::run::day_on_server(&d, "2", "200", "1", "45");
    // Fetch waits 45 s for the files to settle: past the lock's first renewal (30 s).
    let config = d.read("day/batchwin.toml");
    assert!(config.contains("settle = \"0s\""), "{config}");
    d.write(
        "day/batchwin.toml",
        config.replace("settle = \"0s\"", "settle = \"45s\""),
    );
    let runs = loc.url("runs");
    let lock = format!("runs/{date}-day/.lock");
    let args = crate::run::run_args(&date, &["--run-location", &runs]);
    let out = std::fs::File::create(d.path("run.out")).unwrap();
    let err = std::fs::File::create(d.path("run.err")).unwrap();
    let mut run = loc
        .cmd(d.root())
        .args(&args)
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("the run starts");
    let started = std::time::Instant::now();
    while loc.get(&lock).is_none() {
        assert!(run.try_wait().unwrap().is_none(), "{}", d.read("run.err"));
        assert!(started.elapsed().as_secs() < 20, "no lock at `{lock}`");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let other = lock_of("other-host", 4545, chrono::Utc::now());
    loc.put(&lock, &other);
    let status = loop {
        if let Some(s) = run.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed().as_secs() < 150,
            "the run went on without its lock: {}",
            d.read("run.out")
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let (said, err) = (d.read("run.out"), d.read("run.err"));
    assert_eq!(status.code(), Some(143), "{said}{err}");
    assert!(
        err.contains("lost the lock")
            && err.contains("another holder has it now (host other-host pid 4545"),
        "{err}"
    );
    assert!(!said.contains("step       process"), "{said}");
    assert_eq!(
        loc.get(&lock),
        Some(other),
        "the other holder's lock is left alone"
    );
    let left: Vec<String> = loc
        .objects(&format!("runs/{date}-day"))
        .into_keys()
        .filter(|k| k != ".lock" && k != "window.json")
        .collect();
    assert!(left.is_empty(), "left at the run location: {left:?}");
}

/// A lock whose `renewed_at` is far in the future (its holder's clock ran ahead, then it died):
/// not believed, the time of its last write stands for it. Written an hour ago, it is taken
/// over; written just now, it is not (here at a run location that is a folder, whose files'
/// times the test can set).
#[test]
fn a_lock_renewed_in_the_future_is_judged_by_when_it_was_written() {
    let d = Dir::new();
    let date = crate::run::day_on_server(&d, "2", "200", "1", "46");
    let runs = d.path("location");
    let lock = runs.join(format!("{date}-day/.lock"));
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let future = chrono::Utc::now() + chrono::Duration::days(365);
    let url = format!("file://{}", runs.display());
    let args = crate::run::run_args(&date, &["--run-location", &url]);

    std::fs::write(&lock, lock_of("fast-clock", 4646, future)).unwrap();
    let o = d.cmd().args(&args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is in progress (host fast-clock pid 4646"),
        "{err}"
    );

    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&lock)
        .and_then(|f| f.set_modified(hour_ago))
        .unwrap();
    let o = d.cmd().args(&args).output().unwrap();
    let (said, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(0), "{said}{err}");
    assert!(
        said.contains("lock       took over the stale lock")
            && said.contains("host fast-clock pid 4646"),
        "{said}"
    );
    assert!(!lock.exists(), "the run's own lock is deleted at its end");
}

/// A run location that does not answer when the lock is taken: retried as every transfer is
/// (`[transfer] retries`), then exit code 3 (run again later), before anything is fetched.
#[test]
fn a_run_location_that_does_not_answer_when_the_lock_is_taken_ends_the_run_with_exit_3() {
    let Some(live) = s3() else { return };
    let d = Dir::new();
    let date = crate::run::day_on_server(&d, "2", "200", "1", "44");
    // The config's last table is `[transfer]`: one retry, soon.
    let config = d.read("day/batchwin.toml");
    assert!(config.trim_end().ends_with("settle = \"0s\""), "{config}");
    d.write(
        "day/batchwin.toml",
        config + "retries = 1\nretry_wait = \"100ms\"\n",
    );
    // A port nothing listens on.
    let (loc, _) = live.unanswered();
    let runs = loc.url("runs");
    let args = crate::run::run_args(&date, &["--run-location", &runs]);
    let o = loc.run(
        d.root(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("{runs}/{date}-day")) && err.contains(".lock"),
        "{err}"
    );
    assert!(err.contains("retrying"), "retried first: {err}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("step       fetch"));
}

/// A slice puts copies of its ledger to the run location while it runs: killed (SIGKILL) once
/// a copy is there, and run again, it does not redo the units the copy records, and does all
/// the others.
#[test]
fn a_slice_killed_after_a_copy_of_its_ledger_went_up_does_not_redo_what_it_records() {
    let Some(loc) = s3() else {
        return;
    };
    let d = Dir::new();
    let units = 300;
    stage_and_plan(&d, &loc, &units.to_string(), "30000", "1");
    let ledger = "run/ledgers/slice-00000.duckdb";
    let mut child = slice_command(&d, &loc, 0, 0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while loc.get(ledger).is_none() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the slice ended before a copy of its ledger was seen"
        );
        assert!(started.elapsed().as_secs() < 60, "no copy of the ledger");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SIGKILL: nothing of the slice's own clean-up runs, its ledger's end is never put.
    let _ = child.kill();
    assert_eq!(child.wait().unwrap().code(), None, "killed while it ran");

    // What the copy at the run location records as done.
    let copy = d.write("copy/slice-00000.duckdb", loc.get(ledger).unwrap());
    let recorded: i64 = {
        let l = batchwin::ledger::Ledger::open(&copy).unwrap();
        l.connection()
            .query_row(
                "SELECT count(DISTINCT input_path) FROM files WHERE status = 'succeeded'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert!(
        recorded > 0 && recorded < units,
        "{recorded} of {units} units in the copy"
    );

    let o = run_slice(&d, &loc, 0, 1);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    // Units done in the killed run after its last copy went up are done again; those the copy
    // records are not.
    let resumed = out
        .lines()
        .find_map(|l| l.strip_prefix("resumed    "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse::<i64>().ok())
        .unwrap_or_else(|| panic!("nothing resumed: {out}"));
    assert!(
        resumed >= recorded,
        "{resumed} resumed, {recorded} recorded: {out}"
    );
    assert!(
        out.contains(&format!("files      {} (", units - resumed)),
        "{units} units, {resumed} resumed: {out}"
    );
    report_and_publish(&d, &loc);
}
