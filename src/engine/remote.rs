//! A slice of a plan run against a run location (a URL: S3, Azure Blob, GCS, SFTP, or a
//! folder), on a machine that shares no filesystem with the planner or the other slices.
//!
//! The plan is read from its URL, and the configuration from beside it (the copy `plan --out
//! URL` stores there) unless one is given. Each unit's input is downloaded to local scratch by
//! a downloader thread running ahead of the file workers, checked against the plan's size and
//! sha256 (a file that is not the one planned is never processed: the unit fails with the
//! retryable exit code, naming it), memory-mapped and processed by the batch scheduler as in
//! local mode ([`super::batch::run_with`]), and its outputs and reject file uploaded to
//! `RUN/VENDOR/` before the unit is recorded. The slice's ledger goes to
//! `RUN/ledgers/slice-NNNNN.duckdb` when the slice ends, and also while it runs: after units
//! were recorded, at most every [`LEDGER_UPLOAD_EVERY`], a thread of its own copies the ledger
//! as its last committed transaction left it ([`crate::ledger::Snapshots`], never the file
//! being written) and puts the copy there, so a slice killed half-way and run again skips what
//! the copy records. When the slice ends (done, failed, or stopped by SIGTERM) a copy being
//! put to an object store or SFTP server is given up, so the final put of the ledger starts at
//! once. Every upload is atomic (one put or a completed multipart upload on object stores, a
//! temporary name renamed in folders and on SFTP): a slice killed at any moment leaves whole
//! objects or nothing.
//!
//! A part of a large file that the planner cut by ranged reads (see `plan::split`) is
//! downloaded alone, with ranged reads of the file's preamble and the part's bytes, and
//! checked for the file's size, its ETag when it was cut and the part's length (not a
//! checksum: see `Hooks::download_part`).
//!
//! Scratch stays bounded: at most [`AHEAD`] more inputs than there are file workers (two per
//! thread) are held at once, whatever the slice's number of files, and a unit's input and outputs are removed as soon as it is uploaded.
//! A slice run again first downloads its ledger from the run location and skips the units it
//! records as done whose outputs are still there with the recorded size (asked of the store).
//!
//! The slice's live status document goes to `RUN/status/slice-NNNNN.json` through
//! [`ObjectStatusStore`], from the status thread (see [`super::live`]): each document is one
//! whole put, and one that the store does not take within [`STATUS_WRITE_TIMEOUT`] is given up
//! until the next tick, so a slow, failing or hanging store never slows or fails the slice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::anyhow;

use crate::config::Config;
use crate::exit::{ExitStatus, Failure};
use crate::ledger::query;
use crate::outcome::FileOutcome;
use crate::plan::{Plan, Unit};
use crate::storage::{StorageError, Store, StoreOptions, join_url};
use crate::vendor::Vendor;

use super::batch::{self, BatchSummary, UnitHooks, UnitSite, Work};
use super::live::{Live, STATUS_DIR, StatusStore};
use super::{EngineOptions, KnownInput};

/// How long the upload of one status document may take before it is given up (and the next
/// tick tries again): a store that hangs holds the slice's end back by at most twice this (the
/// document being written when the slice ends, then the last one).
pub const STATUS_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The least time between two copies of a slice's ledger put to the run location while the
/// slice runs (the first goes as soon as units are recorded): a slice killed and run again
/// redoes at most the units of the last few seconds. Copying and uploading a ledger is done
/// off the file workers' and the deliveries' path, by a thread of its own.
pub const LEDGER_UPLOAD_EVERY: Duration = Duration::from_secs(5);

/// Inputs downloaded beyond those the file workers are processing: the next units are on disk
/// when a worker is free, and scratch holds a few files, not the slice.
pub const AHEAD: usize = 2;

/// The modification time a downloaded input is given, recorded with its checked checksum as
/// the unit's known input, so that the engine does not read the file a second time only to
/// hash it (the download hashed it).
const CHECKED_MTIME: &str = "2000-01-01T00:00:00.000000000Z";
const CHECKED_EPOCH_SECONDS: u64 = 946_684_800;

/// Where a slice runs from: the plan's and the run's locations, opened.
pub struct RunLocation {
    rt: tokio::runtime::Runtime,
    opts: StoreOptions,
    /// The plan's folder (URL or path) and the plan's name in it.
    plan_dir: String,
    plan_store: Store,
    run: Arc<Store>,
    scratch: Scratch,
    /// The plan, as read from the plan's location.
    pub plan: Plan,
    /// The configuration to load: the one given, or the run location's copy in scratch.
    pub config_path: PathBuf,
}

/// The folder and name of a file's URL or path: `s3://b/run/plan.json` is `s3://b/run` and
/// `plan.json`.
fn split_location(location: &str) -> Result<(String, String), Failure> {
    let trimmed = location.trim_end_matches('/');
    let at_root = trimmed
        .split_once("://")
        .is_some_and(|(_, rest)| !rest.contains('/'));
    match trimmed.rsplit_once('/') {
        Some((dir, name)) if !at_root && !name.is_empty() => {
            let dir = if dir.is_empty() { "/" } else { dir };
            Ok((dir.to_string(), name.to_string()))
        }
        _ if !trimmed.contains("://") && !trimmed.is_empty() => {
            Ok((".".to_string(), trimmed.to_string()))
        }
        _ => Err(Failure::usage(anyhow!(
            "`{location}` names no file in a folder or bucket (like s3://bucket/run/plan.json)"
        ))),
    }
}

/// Removes the slice's scratch folder when the slice ends, however it ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl RunLocation {
    /// Opens the plan at `plan` and the run location `run`, with a scratch folder below
    /// `scratch` (the system's temporary folder when `None`), and reads the plan and, unless
    /// `config` is given, the configuration stored beside it.
    pub fn open(
        plan: &Path,
        run: &Path,
        config: Option<&Path>,
        scratch: Option<&Path>,
        opts: &StoreOptions,
    ) -> Result<RunLocation, Failure> {
        let rt = crate::transfer::runtime()?;
        let parent = scratch.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let dir = parent.join(format!(
            "batchwin-slice-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| {
            Failure::data(anyhow!(
                "cannot create the scratch folder `{}`: {e}; give --scratch a writable folder",
                dir.display()
            ))
        })?;
        let scratch = Scratch(dir);
        let plan_url = plan.display().to_string();
        let (plan_dir, plan_name) = split_location(&plan_url)?;
        let (plan_store, run) = rt.block_on(async {
            let p = Store::open(&plan_dir, opts).await?;
            let r = Store::open(&run.display().to_string(), opts).await?;
            Ok::<_, StorageError>((p, r))
        })?;
        let local_plan = scratch.0.join("plan.json");
        rt.block_on(plan_store.get_file(&plan_name, &local_plan))
            .map_err(|e| match e {
                StorageError::NotFound { .. } => Failure::usage(e),
                e => e.into(),
            })?;
        let plan_read = Plan::read(&local_plan).map_err(|e| {
            Failure::usage(e.context(format!("the plan `{}`", plan_store.url_of(&plan_name))))
        })?;
        let config_path = match (config, &plan_read.config) {
            (Some(c), _) => c.to_path_buf(),
            (None, Some(name)) => {
                let base = Path::new(name)
                    .file_name()
                    .map_or_else(|| "batchwin.toml".into(), |n| n.to_os_string());
                let local = scratch.0.join("config").join(base);
                rt.block_on(plan_store.get_file(name, &local))?;
                local
            }
            (None, None) => {
                return Err(Failure::usage(anyhow!(
                    "the plan `{}` names no configuration stored beside it (plan --out URL stores one); give --config",
                    plan_store.url_of(&plan_name)
                )));
            }
        };
        Ok(RunLocation {
            rt,
            opts: opts.clone(),
            plan_dir,
            plan_store,
            run: Arc::new(run),
            scratch,
            plan: plan_read,
            config_path,
        })
    }

    /// Runs slice `k` with `profiles` (built from `config`), downloading, checking,
    /// processing and uploading each unit, then the slice's ledger.
    pub fn run_slice(
        &self,
        config: &Config,
        profiles: &[Vendor],
        k: usize,
        opts: &EngineOptions,
        progress: bool,
    ) -> Result<SliceRun, Failure> {
        let plan = &self.plan;
        let ledger_name = format!("ledgers/slice-{k:05}.duckdb");
        let ledgers = self.scratch.0.join("ledgers");
        let ledger = ledgers.join(format!("slice-{k:05}.duckdb"));
        // This slice's ledger (an earlier run of it), and those of the earlier stages' slices
        // (whether the vendors this one comes after finished).
        let stage = plan.slices[k].stage;
        for s in plan
            .slices
            .iter()
            .filter(|s| s.index == k || s.stage < stage)
        {
            let name = format!("ledgers/slice-{:05}.duckdb", s.index);
            let local = ledgers.join(format!("slice-{:05}.duckdb", s.index));
            match self.rt.block_on(self.run.get_file(&name, &local)) {
                Ok(_) | Err(StorageError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let site = RemoteSite {
            loc: self,
            stores: Mutex::default(),
            units: Mutex::default(),
            inputs: self.scratch.0.join("in"),
        };
        let config_sha = crate::plan::manifest::file_sha256(&self.config_path).ok();
        let todo = batch::slice_units(
            config,
            &self.config_path,
            plan,
            k,
            &site,
            &self.scratch.0.join("out"),
            &ledger,
            config_sha.as_deref(),
        )?;
        // The live status document goes to the run location, written by the status thread.
        let mut opts = opts.clone();
        opts.live = Some(Live::new(
            Box::new(self.status_store()),
            &Live::slice_name(k),
            Some(k),
            todo.resumed,
        ));
        let opts = &opts;
        let units = site.units.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut items = todo.units;
        for (w, (_, u)) in items.iter_mut().zip(&units) {
            w.known = u.part.is_none().then(|| super::KnownInput {
                bytes: u.file_bytes,
                modified: CHECKED_MTIME.to_string(),
                sha256: u.sha256.clone(),
            });
            // A part cut by ranged reads is downloaded alone after the file's preamble (see
            // `Hooks::download`): in the local copy its bytes start where the preamble ends.
            if let Some(p) = w.part.as_mut()
                && p.preamble_bytes.is_some()
            {
                let ranges = crate::plan::split::part_ranges(p, u.file_bytes);
                let pre = ranges[0].end - ranges[0].start;
                (p.start, p.end) = (pre, pre + (p.end - p.start));
            }
        }
        let stores = site.stores.into_inner().unwrap_or_else(|e| e.into_inner());
        let fetches = Fetches {
            state: Mutex::new(FetchState {
                ready: vec![Fetch::NotStarted; items.len()],
                held: 0,
                stop: false,
                gave_up: None,
                bytes: 0,
                peak: 0,
            }),
            changed: Condvar::new(),
            capacity: super::batch::FILE_WORKERS_PER_THREAD * rayon::current_num_threads().max(1)
                + AHEAD,
        };
        let uploads = LedgerUploads::default();
        let hooks = Hooks {
            loc: self,
            fetches: &fetches,
            units: &units,
            stores: &stores,
            uploads: &uploads,
        };
        let copy = self
            .scratch
            .0
            .join("ledger-copy")
            .join(format!("slice-{k:05}.duckdb"));
        let result = std::thread::scope(|scope| {
            let downloader = scope.spawn(|| hooks.download_all(&items));
            let uploader = scope.spawn(|| self.upload_ledger_copies(&uploads, &ledger_name, &copy));
            let result = batch::run_with(
                profiles,
                items.clone(),
                &ledger,
                opts,
                progress,
                Vec::new(),
                &hooks,
            );
            fetches.stop();
            // The copies stop before the ledger itself goes up (and their connection to it
            // closes, so that DuckDB checkpoints it into its file): a copy being put to an
            // object store or SFTP server is given up, not waited for.
            uploads.stop();
            let _ = downloader.join();
            let _ = uploader.join();
            result
        });
        // The ledger goes up whatever happened to the units: the next run of the slice skips
        // what this one finished.
        let ledger_url = self.run.url_of(&ledger_name);
        if ledger.exists() {
            self.rt
                .block_on(self.run.put_file(&ledger_name, &ledger, true))?;
        }
        let mut summary = result?;
        summary.ledger = PathBuf::from(&ledger_url);
        let peak = fetches.lock().peak;
        Ok(SliceRun {
            summary,
            resumed: todo.resumed,
            scratch_peak: peak,
        })
    }

    /// Puts copies of the slice's ledger to `name` while the slice runs: once units were
    /// recorded and [`LEDGER_UPLOAD_EVERY`] has passed since the last copy, a copy is written
    /// to `local` ([`crate::ledger::Snapshots::write`]) and put whole, until told to stop. A copy
    /// that cannot be made or put is only warned about: the slice's end puts the ledger.
    fn upload_ledger_copies(&self, uploads: &LedgerUploads, name: &str, local: &Path) {
        if let Some(dir) = local.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            tracing::warn!(
                "no copies of the ledger go to the run location while the slice runs: cannot create `{}`: {e}",
                dir.display()
            );
            return;
        }
        let mut snapshots = None;
        let mut last: Option<std::time::Instant> = None;
        loop {
            {
                let mut s = uploads.lock();
                loop {
                    if s.stop {
                        return;
                    }
                    if let Some(c) = s.snapshots.take() {
                        snapshots = Some(c);
                    }
                    let wait = last.map_or(Duration::ZERO, |t| {
                        LEDGER_UPLOAD_EVERY.saturating_sub(t.elapsed())
                    });
                    if s.dirty && snapshots.is_some() && wait.is_zero() {
                        break;
                    }
                    s = if s.dirty && !wait.is_zero() {
                        uploads
                            .changed
                            .wait_timeout(s, wait)
                            .unwrap_or_else(|e| e.into_inner())
                            .0
                    } else {
                        uploads.changed.wait(s).unwrap_or_else(|e| e.into_inner())
                    };
                }
                s.dirty = false;
            }
            let Some(c) = snapshots.as_ref() else {
                continue;
            };
            let started = std::time::Instant::now();
            last = Some(started);
            if let Err(e) = c.write(local) {
                tracing::warn!(
                    "cannot put a copy of the ledger to `{}` (the slice's end puts it): {}",
                    self.run.url_of(name),
                    crate::exit::chain_text(&e)
                );
                continue;
            }
            // Given up as soon as the slice ends, so that the ledger itself goes up at once
            // (after a SIGTERM, within the grace period). In a folder the copy runs on a
            // thread of its own that would go on regardless: it is waited for (a local copy).
            let Some(put) = put_unless_cancelled(&self.rt, &self.run, name, local, &uploads.cancel)
            else {
                tracing::debug!(
                    "gave up the copy of the ledger being put to `{}`: the slice ended, its ledger goes up now",
                    self.run.url_of(name)
                );
                return;
            };
            match put.map_err(anyhow::Error::from) {
                Ok(t) => tracing::debug!(
                    "put a copy of the ledger to `{}` ({} bytes) in {:.3} s",
                    self.run.url_of(name),
                    t.bytes,
                    started.elapsed().as_secs_f64()
                ),
                Err(e) => tracing::warn!(
                    "cannot put a copy of the ledger to `{}` (the slice's end puts it): {}",
                    self.run.url_of(name),
                    crate::exit::error_text(&e)
                ),
            }
        }
    }

    /// Status documents as objects of the run location (`RUN/status/`).
    pub fn status_store(&self) -> ObjectStatusStore {
        ObjectStatusStore {
            rt: self.rt.handle().clone(),
            store: self.run.clone(),
            local: self.scratch.0.join(STATUS_DIR),
            timeout: STATUS_WRITE_TIMEOUT,
        }
    }

    /// The location of a plan's unit: a URL as it is; a relative path from the plan's folder.
    fn unit_url(&self, location: &str) -> String {
        if location.contains("://") || Path::new(location).is_absolute() {
            location.to_string()
        } else if self.plan_dir.contains("://") {
            join_url(self.plan_store.url(), location)
        } else {
            Path::new(&self.plan_dir)
                .join(location)
                .display()
                .to_string()
        }
    }
}

/// Puts `local` to `name` in `store` (overwriting), unless `cancel` is told first (or was
/// told before: its permit): then the put is dropped where it is and `None` comes back. In a
/// folder the copy runs on a thread of its own that dropping would not stop (and whose
/// temporary name the next put of the same name uses): it is waited for.
fn put_unless_cancelled(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    name: &str,
    local: &Path,
    cancel: &tokio::sync::Notify,
) -> Option<Result<crate::storage::Transferred, StorageError>> {
    let put = store.put_file(name, local, true);
    if store.is_local() {
        return Some(rt.block_on(put));
    }
    rt.block_on(async {
        tokio::select! {
            r = put => Some(r),
            () = cancel.notified() => None,
        }
    })
}

/// Status documents as objects of a run location: `RUN/status/NAME`, each written to a local
/// file and put whole (a reader sees the old document or the new one), within a time limit.
pub struct ObjectStatusStore {
    rt: tokio::runtime::Handle,
    store: Arc<Store>,
    /// Where a document is written before its upload (the slice's scratch).
    local: PathBuf,
    /// The longest one upload may take, retries included.
    timeout: Duration,
}

impl ObjectStatusStore {
    /// Documents below `store`'s `status/`, through the runtime `rt`, each upload given up
    /// after `timeout`; `local` holds each document while it is uploaded.
    pub fn new(
        rt: tokio::runtime::Handle,
        store: Arc<Store>,
        local: PathBuf,
        timeout: Duration,
    ) -> ObjectStatusStore {
        ObjectStatusStore {
            rt,
            store,
            local,
            timeout,
        }
    }
}

impl StatusStore for ObjectStatusStore {
    fn write(&self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        use anyhow::Context;
        std::fs::create_dir_all(&self.local)
            .with_context(|| format!("cannot create `{}`", self.local.display()))?;
        let local = self.local.join(name);
        crate::files::write(&local, bytes)
            .with_context(|| format!("cannot write `{}`", local.display()))?;
        let key = format!("{STATUS_DIR}/{name}");
        let put = self.store.put_file(&key, &local, true);
        match self
            .rt
            .block_on(async { tokio::time::timeout(self.timeout, put).await })
        {
            Ok(r) => r.map(|_| ()).map_err(anyhow::Error::from),
            Err(_) => Err(anyhow!(
                "`{}` took no upload within {} s",
                self.store.url_of(&key),
                self.timeout.as_secs_f64()
            )),
        }
    }

    fn describe(&self) -> String {
        self.store.url_of(STATUS_DIR)
    }
}

/// What a slice over a run location did.
pub struct SliceRun {
    pub summary: BatchSummary,
    /// Units an earlier run of the slice had done (skipped).
    pub resumed: usize,
    /// Most bytes of inputs and outputs held in scratch at once.
    pub scratch_peak: u64,
}

/// Units read from the run location: the ledger's name of an input is its URL.
struct RemoteSite<'a> {
    loc: &'a RunLocation,
    /// Stores of the inputs' folders, opened once each.
    stores: Mutex<HashMap<String, Arc<Store>>>,
    /// The units to do, in order, with their input URL.
    units: Mutex<Vec<(String, Unit)>>,
    inputs: PathBuf,
}

impl UnitSite for RemoteSite<'_> {
    fn key(&self, location: &str) -> PathBuf {
        PathBuf::from(self.loc.unit_url(location))
    }
    fn local(&self, n: usize, u: &Unit) -> PathBuf {
        let url = self.loc.unit_url(&u.location);
        let file = url.rsplit('/').next().unwrap_or("input").to_string();
        self.units
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((url, u.clone()));
        self.inputs.join(format!("{n:05}")).join(file)
    }
    fn output_present(&self, a: &query::UnitAttempt) -> bool {
        let Some(out) = &a.output_path else {
            return false;
        };
        let Some(name) = out.strip_prefix(&format!("{}/", self.loc.run.url())) else {
            return query::local_output_present(a);
        };
        match self.loc.rt.block_on(self.loc.run.head(name)) {
            Ok(Some(e)) => e.size == a.output_bytes,
            _ => false,
        }
    }
    fn same_input(&self, u: &Unit, _: &Path, a: &query::UnitAttempt) -> bool {
        // The input is checked against the plan's checksum when it is downloaded, so the
        // plan's checksum is what a run reads; a part's own checksum is not in the plan.
        u.part.is_none() && u.sha256 == a.input_sha256
    }
}

/// What the deliveries tell the thread that puts copies of the ledger
/// ([`RunLocation::upload_ledger_copies`]).
#[derive(Default)]
struct LedgerUploads {
    state: Mutex<UploadState>,
    changed: Condvar,
    /// Told when the slice ends: the copy being put then is given up.
    cancel: tokio::sync::Notify,
}

#[derive(Default)]
struct UploadState {
    /// The connection copies are made through, opened on the ledger once it recorded units
    /// and handed to the uploading thread.
    snapshots: Option<crate::ledger::Snapshots>,
    opened: bool,
    /// Units were recorded since the last copy.
    dirty: bool,
    stop: bool,
}

impl LedgerUploads {
    fn lock(&self) -> std::sync::MutexGuard<'_, UploadState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn stop(&self) {
        let mut s = self.lock();
        s.stop = true;
        // A connection not handed over yet is closed here, before the ledger goes up.
        s.snapshots = None;
        drop(s);
        self.changed.notify_all();
        // A permit, kept for a copy whose put has not started waiting yet.
        self.cancel.notify_one();
    }
}

struct Fetches {
    state: Mutex<FetchState>,
    changed: Condvar,
    /// Most inputs in scratch at once.
    capacity: usize,
}

/// Where a unit's download is.
#[derive(Clone)]
enum Fetch {
    NotStarted,
    Downloading,
    Done(Result<(), (ExitStatus, String)>),
    /// Not needed: the unit ended without reading its input (blocked, deferred).
    Skipped,
}

struct FetchState {
    ready: Vec<Fetch>,
    /// Inputs in scratch (downloaded and not yet removed).
    held: usize,
    stop: bool,
    /// Why the slice stopped downloading: a store that still failed after its retries. The
    /// units not yet downloaded then fail at once (retryable), rather than each waiting out
    /// the same timeouts: the slice ends with exit code 3 and its engine runs it again.
    gave_up: Option<String>,
    /// Bytes of inputs and outputs in scratch, and the most at once.
    bytes: u64,
    peak: u64,
}

impl Fetches {
    fn lock(&self) -> std::sync::MutexGuard<'_, FetchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn stop(&self) {
        self.lock().stop = true;
        self.changed.notify_all();
    }
    fn add_bytes(&self, n: u64) {
        let mut s = self.lock();
        s.bytes += n;
        s.peak = s.peak.max(s.bytes);
    }
}

struct Hooks<'a> {
    loc: &'a RunLocation,
    fetches: &'a Fetches,
    units: &'a [(String, Unit)],
    stores: &'a HashMap<String, Arc<Store>>,
    uploads: &'a LedgerUploads,
}

impl Hooks<'_> {
    /// A store that failed with a transient error after its retries (`status` 3) stops the
    /// slice's downloads (see [`FetchState::gave_up`]).
    fn store_failed(&self, status: ExitStatus, message: &str) {
        if status != ExitStatus::Retryable {
            return;
        }
        let mut s = self.fetches.lock();
        if s.gave_up.is_none() {
            tracing::warn!("the slice stops downloading its inputs: {message}");
            s.gave_up = Some(message.to_string());
        }
        s.stop = true;
        drop(s);
        self.fetches.changed.notify_all();
    }

    /// A download's store error as its unit's failure, stopping the downloads when it is
    /// transient (see [`Hooks::store_failed`]).
    fn store_error(&self, e: StorageError) -> (ExitStatus, String) {
        let (status, message) = (e.exit_status(), e.to_string());
        self.store_failed(status, &message);
        (status, message)
    }

    /// Downloads every unit's input in order, at most `capacity` held at once, until told to
    /// stop.
    fn download_all(&self, items: &[Work]) {
        let mut stores = self.stores.clone();
        for (i, w) in items.iter().enumerate() {
            {
                let mut s = self.fetches.lock();
                while s.held >= self.fetches.capacity && !s.stop {
                    s = self
                        .fetches
                        .changed
                        .wait(s)
                        .unwrap_or_else(|e| e.into_inner());
                }
                if s.stop {
                    return;
                }
                if w.blocked.is_some() || matches!(s.ready[i], Fetch::Skipped) {
                    s.ready[i] = Fetch::Skipped;
                    continue;
                }
                s.held += 1;
                s.ready[i] = Fetch::Downloading;
            }
            let result = self.download(&mut stores, i, w);
            let mut s = self.fetches.lock();
            s.ready[i] = Fetch::Done(result);
            drop(s);
            self.fetches.changed.notify_all();
        }
    }

    /// Downloads unit `i`'s input to `w.input` and checks it against the plan.
    fn download(
        &self,
        stores: &mut HashMap<String, Arc<Store>>,
        i: usize,
        w: &Work,
    ) -> Result<(), (ExitStatus, String)> {
        let (url, u) = &self.units[i];
        let fail = |e: StorageError| self.store_error(e);
        let (dir, name) =
            split_location(url).map_err(|f| (f.status, crate::exit::error_text(&f.error)))?;
        let store = match stores.get(&dir) {
            Some(s) => s.clone(),
            None => {
                let s = Arc::new(
                    self.loc
                        .rt
                        .block_on(Store::open(&dir, &self.loc.opts))
                        .map_err(fail)?,
                );
                stores.insert(dir, s.clone());
                s
            }
        };
        if let Some(p) = u.part.as_ref().filter(|p| p.preamble_bytes.is_some()) {
            return self.download_part(&store, url, &name, u, p, w);
        }
        let got = self
            .loc
            .rt
            .block_on(store.get_file_capped(&name, &w.input, Some(u.file_bytes)))
            .map_err(|e| match e {
                StorageError::Oversize { .. } => (
                    ExitStatus::Retryable,
                    format!(
                        "input `{url}` is larger than the {} bytes the plan was made with; not processed",
                        u.file_bytes
                    ),
                ),
                e => fail(e),
            })?;
        if got.bytes != u.file_bytes || got.sha256 != u.sha256 {
            let _ = std::fs::remove_file(&w.input);
            return Err((
                ExitStatus::Retryable,
                format!(
                    "input `{url}` is not the file the plan was made from ({} bytes with sha256 {}, the plan says {} bytes with sha256 {}); not processed: stage it again and plan again, or restore it",
                    got.bytes, got.sha256, u.file_bytes, u.sha256
                ),
            ));
        }
        let checked = std::time::UNIX_EPOCH + std::time::Duration::from_secs(CHECKED_EPOCH_SECONDS);
        std::fs::File::options()
            .write(true)
            .open(&w.input)
            .and_then(|f| f.set_modified(checked))
            .map_err(|e| {
                (
                    ExitStatus::Retryable,
                    format!("scratch file `{}`: {e}", w.input.display()),
                )
            })?;
        self.fetches.add_bytes(got.bytes);
        Ok(())
    }

    /// Downloads part `p` of the input at `url` (the file's preamble and the part's bytes, by
    /// ranged reads) to `w.input`, and checks what can be checked without the rest of the
    /// file: that the file still has the size the plan was made with and (on object stores)
    /// the ETag it had when it was cut, and that every byte of the part came. The whole
    /// file's sha256 cannot be checked on a part, and the plan holds
    /// no checksum of the part: computing one would have meant reading the whole file when
    /// planning, which cutting it by ranged reads is there to avoid (see `plan::split`).
    fn download_part(
        &self,
        store: &Store,
        url: &str,
        name: &str,
        u: &Unit,
        p: &crate::plan::Part,
        w: &Work,
    ) -> Result<(), (ExitStatus, String)> {
        let ranges = crate::plan::split::part_ranges(p, u.file_bytes);
        let want: u64 = ranges.iter().map(|r| r.end - r.start).sum();
        let (got, size) = self
            .loc
            .rt
            .block_on(store.get_ranges_file(name, &ranges, p.e_tag.as_deref(), &w.input))
            .map_err(|e| match e {
                StorageError::Oversize { .. } => (
                    ExitStatus::Retryable,
                    format!(
                        "input `{url}` sent more than the {want} bytes of part {} asked for; not processed",
                        p.index + 1
                    ),
                ),
                StorageError::NotAsExpected { .. } => (
                    ExitStatus::Retryable,
                    format!(
                        "input `{url}` is not the file the plan was made from: it changed since it was planned ({e}); part {} not processed: stage it again and plan again, or restore it",
                        p.index + 1
                    ),
                ),
                e => self.store_error(e),
            })?;
        if size != u.file_bytes || got.bytes != want {
            let _ = std::fs::remove_file(&w.input);
            return Err((
                ExitStatus::Retryable,
                format!(
                    "input `{url}` is not the file the plan was made from ({size} bytes, the plan says {}; {} of the {want} bytes of part {} came); not processed: stage it again and plan again, or restore it",
                    u.file_bytes,
                    got.bytes,
                    p.index + 1
                ),
            ));
        }
        tracing::debug!(
            "downloaded {} bytes of `{url}` ({} bytes) for part {} of {}: bytes {}..{} and its {}-byte preamble{}",
            got.bytes,
            u.file_bytes,
            p.index + 1,
            p.count,
            p.start,
            p.end,
            ranges[0].end,
            ranges
                .get(2)
                .map(|e| format!(" and {}-byte end", e.end - e.start))
                .unwrap_or_default()
        );
        self.fetches.add_bytes(got.bytes);
        Ok(())
    }

    /// Uploads one local output to `RUN/VENDOR/FILE`, removes it, and gives its URL.
    fn upload(&self, vendor: &str, local: &Path) -> Result<PathBuf, Failure> {
        let file = local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = format!("{vendor}/{file}");
        self.loc
            .rt
            .block_on(self.loc.run.put_file(&name, local, true))?;
        let _ = std::fs::remove_file(local);
        Ok(PathBuf::from(self.loc.run.url_of(&name)))
    }
}

impl UnitHooks for Hooks<'_> {
    fn recorded(&self, ledger: &crate::ledger::Ledger) {
        let mut s = self.uploads.lock();
        if s.stop {
            return;
        }
        if !s.opened {
            s.opened = true;
            match ledger.snapshots() {
                Ok(c) => s.snapshots = Some(c),
                Err(e) => {
                    tracing::warn!(
                        "no copies of the ledger go to the run location while the slice runs: {e}"
                    );
                    return;
                }
            }
        }
        s.dirty = true;
        drop(s);
        self.uploads.changed.notify_all();
    }

    fn before(&self, i: usize, _: &Work) -> Result<Option<KnownInput>, Failure> {
        let mut s = self.fetches.lock();
        loop {
            match &s.ready[i] {
                Fetch::Done(Ok(())) | Fetch::Skipped => return Ok(None),
                Fetch::Done(Err((status, message))) => {
                    return Err(Failure {
                        status: *status,
                        error: anyhow!("{message}"),
                    });
                }
                Fetch::NotStarted if s.stop => {
                    let why = match &s.gave_up {
                        Some(m) => format!("a store did not answer after its retries ({m})"),
                        None => "the slice stopped".to_string(),
                    };
                    return Err(Failure::retryable(anyhow!(
                        "`{}` was not downloaded: {why}",
                        self.units[i].0
                    )));
                }
                Fetch::NotStarted | Fetch::Downloading => {
                    s = self
                        .fetches
                        .changed
                        .wait(s)
                        .unwrap_or_else(|e| e.into_inner())
                }
            }
        }
    }

    fn after(&self, i: usize, w: &Work, outcome: Option<&mut FileOutcome>) -> Result<(), Failure> {
        let (url, u) = &self.units[i];
        let mut result = Ok(());
        if let Some(o) = outcome {
            let outputs = [o.output_path.clone(), o.reject_path.clone()];
            let sizes: u64 = outputs
                .iter()
                .flatten()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum();
            self.fetches.add_bytes(sizes);
            let vendor = o.vendor.clone();
            let up = |p: &mut Option<PathBuf>| -> Result<(), Failure> {
                if let Some(local) = p.as_ref().filter(|l| l.exists()) {
                    *p = Some(self.upload(&vendor, local)?);
                }
                Ok(())
            };
            result = up(&mut o.output_path).and_then(|()| up(&mut o.reject_path));
            if let Err(f) = &result {
                self.store_failed(f.status, &crate::exit::error_text(&f.error));
            }
            if result.is_err() {
                for p in outputs.iter().flatten() {
                    let _ = std::fs::remove_file(p);
                }
            }
            self.fetches.lock().bytes -= sizes;
            o.input_path = PathBuf::from(url);
            if o.input_bytes == 0 {
                o.input_bytes = u.part.as_ref().map_or(u.file_bytes, |p| p.end - p.start);
            }
        }
        // The input leaves scratch, once its download (if one started) has ended.
        let mut s = self.fetches.lock();
        loop {
            match s.ready[i] {
                Fetch::NotStarted => {
                    s.ready[i] = Fetch::Skipped;
                    return result;
                }
                Fetch::Skipped => return result,
                Fetch::Downloading if !s.stop => {
                    s = self
                        .fetches
                        .changed
                        .wait(s)
                        .unwrap_or_else(|e| e.into_inner());
                }
                Fetch::Downloading | Fetch::Done(_) => break,
            }
        }
        let size = std::fs::metadata(&w.input).map_or(0, |m| m.len());
        let _ = std::fs::remove_file(&w.input);
        if let Some(dir) = w.input.parent() {
            let _ = std::fs::remove_dir(dir);
        }
        s.held = s.held.saturating_sub(1);
        s.bytes = s.bytes.saturating_sub(size);
        drop(s);
        self.fetches.changed.notify_all();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store at an S3 endpoint on 127.0.0.1 that takes connections and never answers them.
    fn store_that_never_answers(rt: &tokio::runtime::Runtime) -> Store {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let port = listener.local_addr().expect("port").port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for c in listener.incoming() {
                held.push(c);
            }
        });
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        let opts = StoreOptions {
            pairs: vec![
                pair("aws_endpoint", &format!("http://127.0.0.1:{port}")),
                pair("aws_allow_http", "true"),
                pair("aws_access_key_id", "test"),
                pair("aws_secret_access_key", "test"),
                pair("aws_region", "us-east-1"),
            ],
            ..StoreOptions::default()
        };
        rt.block_on(Store::open("s3://bucket/run", &opts))
            .expect("store")
    }

    #[test]
    fn a_status_store_that_never_answers_holds_the_slice_back_only_briefly() {
        let rt = crate::transfer::runtime().expect("runtime");
        let store = Arc::new(store_that_never_answers(&rt));
        let local = tempfile::tempdir().expect("temp dir");
        let timeout = Duration::from_millis(300);
        let docs = ObjectStatusStore::new(
            rt.handle().clone(),
            store,
            local.path().to_path_buf(),
            timeout,
        );
        let started = std::time::Instant::now();
        let err = docs
            .write("slice-00000.json", b"{}")
            .expect_err("no answer");
        assert!(started.elapsed() < 4 * timeout, "{:?}", started.elapsed());
        assert!(
            format!("{err:#}").contains("s3://bucket/run/status/slice-00000.json"),
            "{err:#}"
        );
        // A slice whose documents go there ends within twice the limit.
        let live = Live::new(Box::new(docs), "slice-00000.json", Some(0), 0);
        let progress = super::super::Progress::default();
        let started = std::time::Instant::now();
        let publisher = live.publish_every(&progress);
        std::thread::sleep(Duration::from_millis(100));
        publisher.finish(0);
        assert!(started.elapsed() < 4 * timeout, "{:?}", started.elapsed());
    }

    /// A copy of the ledger being put to a store that does not answer is given up as soon as
    /// the slice ends (told before or while the put waits), not after the store's timeouts
    /// and retries: the final put of the ledger goes at once.
    #[test]
    fn a_ledger_copy_being_put_is_given_up_when_the_slice_ends() {
        let rt = crate::transfer::runtime().expect("runtime");
        let store = store_that_never_answers(&rt);
        let dir = tempfile::tempdir().expect("temp dir");
        let local = dir.path().join("slice-00000.duckdb");
        std::fs::write(&local, b"a copy of the ledger").expect("copy");
        let cancel = tokio::sync::Notify::new();
        std::thread::scope(|scope| {
            let started = std::time::Instant::now();
            let put = scope.spawn(|| {
                put_unless_cancelled(&rt, &store, "ledgers/slice-00000.duckdb", &local, &cancel)
            });
            std::thread::sleep(Duration::from_millis(300));
            assert!(!put.is_finished(), "the store answered");
            cancel.notify_one();
            let got = put.join().expect("joined");
            assert!(got.is_none(), "not given up");
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "{:?}",
                started.elapsed()
            );
        });
        // Told before the put started: given up at once.
        cancel.notify_one();
        let started = std::time::Instant::now();
        assert!(
            put_unless_cancelled(&rt, &store, "ledgers/slice-00000.duckdb", &local, &cancel)
                .is_none()
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn locations_split_into_folder_and_name() {
        let s = |l: &str| split_location(l).map_err(|f| f.error.to_string());
        assert_eq!(
            s("s3://b/run/plan.json").unwrap(),
            ("s3://b/run".to_string(), "plan.json".to_string())
        );
        assert_eq!(
            s("az://c/plan.json").unwrap(),
            ("az://c".to_string(), "plan.json".to_string())
        );
        assert_eq!(
            s("/abs/plan.json").unwrap(),
            ("/abs".to_string(), "plan.json".to_string())
        );
        assert_eq!(
            s("plan.json").unwrap(),
            (".".to_string(), "plan.json".to_string())
        );
        assert!(s("s3://bucket").is_err());
        assert!(s("s3://bucket/").is_err());
    }
}
