//! The live status of a running `process`: a small JSON document ([`SliceStatus`]) that says
//! how far the run is (units done, running and left, records and rejects so far, the units in
//! flight, the failures so far, started and last-update times), replaced whole about once a
//! second while the run goes on and a last time when it ends. `batchwin status` reads these
//! documents beside the slices' ledgers: a running slice's DuckDB ledger cannot be opened by
//! another process, its status document can.
//!
//! The engine tells a [`Live`] when a unit starts and ends (a short lock, once per unit, never
//! per record or chunk); the bytes and records come from the engine's [`Progress`] atomics. The
//! document is written by a thread of its own ([`Live::publish_every`]), through a
//! [`StatusStore`], so a slow store never slows processing: a write that takes long only delays
//! the next document.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::outcome::{FileOutcome, FileStatus};

use super::Progress;

/// The version of [`SliceStatus`] written here; a reader refuses documents of another.
pub const STATUS_FORMAT: u32 = 1;

/// The folder of a plan's slices' documents, in their `--out` folder (`OUT/status/`).
pub const STATUS_DIR: &str = "status";

/// The document of a run of `--input` or `--inbound`, in its `--out` folder.
pub const STATUS_FILE: &str = "status.json";

/// How often the document is replaced while the run goes on.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// Where status documents go: a name (`slice-00003.json`) and its bytes, replaced whole. The
/// local folder is [`FolderStore`]; a run location's objects are `ObjectStatusStore` (in the
/// engine's `remote.rs`, which uses this module).
pub trait StatusStore: Send + Sync {
    /// Replaces the document `name` with `bytes`, whole: a reader sees the old or the new one.
    fn write(&self, name: &str, bytes: &[u8]) -> anyhow::Result<()>;
    /// Where the documents go, for messages.
    fn describe(&self) -> String;
}

/// Status documents as files of a local (or shared) folder, each written to a temporary file
/// beside it and renamed over the old one.
#[derive(Debug, Clone)]
pub struct FolderStore {
    pub dir: PathBuf,
}

impl StatusStore for FolderStore {
    fn write(&self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        use anyhow::Context;
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create `{}`", self.dir.display()))?;
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp-{}", std::process::id()));
        crate::files::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| format!("cannot write `{}`", path.display()))
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }
}

/// Whether the run is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LiveState {
    #[default]
    Running,
    /// The run ended (`exit_code` says how).
    Ended,
}

/// A unit being processed now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurrentUnit {
    pub vendor: String,
    pub input: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<u32>,
    pub started_at: String,
}

/// A unit whose attempt in this run did not succeed, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveFailure {
    pub vendor: String,
    pub input: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<u32>,
    /// `failed`, `deferred`, `cancelled` or `blocked`.
    pub status: String,
    pub error: String,
}

/// One vendor's units in this run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VendorProgress {
    pub vendor: String,
    /// `high`, `medium` or `low`.
    pub priority: String,
    /// Units of this vendor the run has to do (not counting those resumed).
    pub units: u64,
    /// Of which ended, whatever their state.
    pub done: u64,
    pub succeeded: u64,
    /// Input bytes of the vendor's units, and of those ended.
    pub bytes: u64,
    pub bytes_done: u64,
    /// When its last unit so far ended (UTC, RFC 3339).
    #[serde(default)]
    pub last_ended_at: Option<String>,
}

/// Units by the state they ended in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StateCounts {
    pub succeeded: u64,
    pub failed: u64,
    pub deferred: u64,
    pub cancelled: u64,
    pub blocked: u64,
}

/// The status document of one `process` run (one slice of a plan, or one `--input` run).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SliceStatus {
    /// [`STATUS_FORMAT`].
    pub format: u32,
    /// The plan's slice, or none for a run of `--input` or `--inbound`.
    #[serde(default)]
    pub slice: Option<usize>,
    pub host: String,
    pub pid: u32,
    pub state: LiveState,
    /// The exit code, once ended.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// UTC, RFC 3339.
    pub started_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub ended_at: Option<String>,
    /// Units this run has to do; `resumed` more were done by an earlier run of the slice.
    pub units: u64,
    pub resumed: u64,
    /// Units ended (in any state), being processed, and not started yet.
    pub done: u64,
    pub running: u64,
    pub left: u64,
    pub states: StateCounts,
    /// Input bytes of the run's units, and of those done so far (counted as chunks are done).
    pub bytes: u64,
    pub bytes_done: u64,
    /// Records read and rejected so far (counted as chunks are done).
    pub records: u64,
    pub rejected: u64,
    pub current: Vec<CurrentUnit>,
    pub vendors: Vec<VendorProgress>,
    pub failures: Vec<LiveFailure>,
}

/// A unit as the live status knows it before it starts.
#[derive(Debug, Clone)]
pub struct PlannedUnit {
    pub vendor: String,
    pub priority: String,
    pub bytes: u64,
}

/// The live status of one run: the document, kept up to date by the engine, and where it goes.
#[derive(Clone)]
pub struct Live(Arc<Inner>);

struct Inner {
    store: Box<dyn StatusStore>,
    name: String,
    doc: Mutex<SliceStatus>,
    /// The engine's counts when the run began, taken away from what it counts later (the
    /// counts are shared by everything a process runs).
    base: Mutex<(u64, u64, u64)>,
    /// A failed write is logged once, not every second.
    warned: AtomicBool,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Live({} in {})", self.0.name, self.0.store.describe())
    }
}

/// Now, UTC, RFC 3339 to the second.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Live {
    /// The live status `name` of the run of `slice` (none for `--input` runs), written to
    /// `store`; `resumed` units were done by an earlier run of the slice.
    pub fn new(
        store: Box<dyn StatusStore>,
        name: &str,
        slice: Option<usize>,
        resumed: usize,
    ) -> Live {
        let t = now();
        Live(Arc::new(Inner {
            store,
            name: name.to_string(),
            doc: Mutex::new(SliceStatus {
                format: STATUS_FORMAT,
                slice,
                host: gethostname::gethostname().to_string_lossy().into_owned(),
                pid: std::process::id(),
                started_at: t.clone(),
                updated_at: t,
                resumed: resumed as u64,
                ..SliceStatus::default()
            }),
            base: Mutex::new((0, 0, 0)),
            warned: AtomicBool::new(false),
        }))
    }

    /// The document name for slice `k` of a plan.
    pub fn slice_name(k: usize) -> String {
        format!("slice-{k:05}.json")
    }

    /// Status documents in the local folder `dir`.
    pub fn in_folder(dir: &Path, name: &str, slice: Option<usize>, resumed: usize) -> Live {
        Live::new(
            Box::new(FolderStore {
                dir: dir.to_path_buf(),
            }),
            name,
            slice,
            resumed,
        )
    }

    fn doc(&self) -> std::sync::MutexGuard<'_, SliceStatus> {
        // A poisoned lock only means a thread panicked while updating counts.
        self.0.doc.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The units the run has to do, before it starts them, and the engine's counts now.
    pub fn begin(&self, units: &[PlannedUnit], progress: &Progress) {
        *self.0.base.lock().unwrap_or_else(|e| e.into_inner()) = progress.get();
        let mut d = self.doc();
        d.units = units.len() as u64;
        d.left = d.units;
        d.bytes = units.iter().map(|u| u.bytes).sum();
        for u in units {
            let i = match d.vendors.iter().position(|v| v.vendor == u.vendor) {
                Some(i) => i,
                None => {
                    d.vendors.push(VendorProgress {
                        vendor: u.vendor.clone(),
                        priority: u.priority.clone(),
                        ..VendorProgress::default()
                    });
                    d.vendors.len() - 1
                }
            };
            d.vendors[i].units += 1;
            d.vendors[i].bytes += u.bytes;
        }
    }

    /// A unit starts.
    pub fn unit_started(&self, vendor: &str, input: &Path, part: Option<u32>) {
        let mut d = self.doc();
        d.left = d.left.saturating_sub(1);
        d.running += 1;
        d.current.push(CurrentUnit {
            vendor: vendor.to_string(),
            input: input.display().to_string(),
            part,
            started_at: now(),
        });
    }

    /// A unit ended (delivered and recorded, or not started: deferred, blocked); `input` is
    /// the path it was started with (a slice over a run location records its URL in `o`).
    pub fn unit_ended(&self, o: &FileOutcome, input: &Path, bytes: u64) {
        let input = input.display().to_string();
        let part = o.part.map(|(i, _)| i);
        let mut d = self.doc();
        if let Some(i) = d
            .current
            .iter()
            .position(|c| c.input == input && c.part == part)
        {
            d.current.remove(i);
            d.running = d.running.saturating_sub(1);
        }
        d.done += 1;
        let s = &mut d.states;
        match o.status {
            FileStatus::Succeeded => s.succeeded += 1,
            FileStatus::Failed => s.failed += 1,
            FileStatus::Deferred => s.deferred += 1,
            FileStatus::Cancelled => s.cancelled += 1,
            FileStatus::Blocked => s.blocked += 1,
        }
        if let Some(v) = d.vendors.iter_mut().find(|v| v.vendor == o.vendor) {
            v.done += 1;
            v.bytes_done += bytes;
            v.last_ended_at = Some(now());
            if o.status == FileStatus::Succeeded {
                v.succeeded += 1;
            }
        }
        if o.status != FileStatus::Succeeded {
            d.failures.push(LiveFailure {
                vendor: o.vendor.clone(),
                input,
                part,
                status: o.status.to_string(),
                error: o.error.clone().unwrap_or_default(),
            });
        }
    }

    /// The document now, with the engine's counts.
    pub fn snapshot(&self, progress: &Progress) -> SliceStatus {
        let base = *self.0.base.lock().unwrap_or_else(|e| e.into_inner());
        let (bytes, records, rejected) = progress.get();
        let mut d = self.doc().clone();
        d.bytes_done = bytes.saturating_sub(base.0).min(d.bytes);
        d.records = records.saturating_sub(base.1);
        d.rejected = rejected.saturating_sub(base.2);
        d.updated_at = now();
        d
    }

    /// Writes the document now; a failure is logged (once) and costs the run nothing.
    pub fn publish(&self, progress: &Progress) {
        let d = self.snapshot(progress);
        let result = serde_json::to_vec_pretty(&d)
            .map_err(anyhow::Error::from)
            .and_then(|b| self.0.store.write(&self.0.name, &b));
        if let Err(e) = result
            && !self.0.warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "cannot write the status document `{}` to `{}` (the run goes on without it): {}",
                self.0.name,
                self.0.store.describe(),
                crate::exit::error_text(&e)
            );
        }
    }

    /// Starts the thread that writes the document every [`PUBLISH_EVERY`] until the returned
    /// guard is finished.
    pub fn publish_every(&self, progress: &Progress) -> Publisher {
        let stop = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let (live, counts, stop2) = (self.clone(), progress.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let (lock, wake) = &*stop2;
            let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
            while !*stopped {
                drop(stopped);
                live.publish(&counts);
                stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
                if *stopped {
                    break;
                }
                stopped = wake
                    .wait_timeout(stopped, PUBLISH_EVERY)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        });
        Publisher {
            live: self.clone(),
            progress: progress.clone(),
            stop,
            thread: Some(thread),
            finished: false,
        }
    }
}

/// The thread writing a run's status document; [`Publisher::finish`] writes the last one. One
/// dropped without it (the run stopped on an error) writes a last document that says the run
/// ended, without an exit code.
pub struct Publisher {
    live: Live,
    progress: Progress,
    stop: Arc<(Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
    finished: bool,
}

impl Publisher {
    fn stop(&mut self) {
        *self.stop.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.stop.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Stops the thread and writes the last document: the run ended with `exit_code`.
    pub fn finish(mut self, exit_code: i32) {
        self.end(Some(exit_code));
    }

    fn end(&mut self, exit_code: Option<i32>) {
        self.stop();
        self.finished = true;
        {
            let mut d = self.live.doc();
            d.state = LiveState::Ended;
            d.exit_code = exit_code;
            d.ended_at = Some(now());
            // Units never started (the run stopped early) stay counted as left.
            d.running = 0;
            d.current.clear();
        }
        self.live.publish(&self.progress);
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if !self.finished {
            self.end(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_follows_the_units_and_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("bw-live-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let live = Live::in_folder(&dir, "slice-00001.json", Some(1), 2);
        let progress = Progress::default();
        progress.add(10, 1, 0);
        let units = [
            PlannedUnit {
                vendor: "V1".into(),
                priority: "high".into(),
                bytes: 100,
            },
            PlannedUnit {
                vendor: "V1".into(),
                priority: "high".into(),
                bytes: 50,
            },
        ];
        live.begin(&units, &progress);
        live.unit_started("V1", Path::new("a.csv"), None);
        progress.add(100, 7, 1);
        let mut o = FileOutcome::new("V1", Path::new("a.csv"), 100, None);
        o.status = FileStatus::Failed;
        o.error = Some("bad".into());
        // A slice over a run location records its input's URL: the unit ends as it started.
        o.input_path = PathBuf::from("s3://bucket/run/staging/a.csv");
        let p = live.publish_every(&progress);
        live.unit_ended(&o, Path::new("a.csv"), 100);
        {
            let d = live.doc();
            assert_eq!((d.running, d.current.len()), (0, 0), "the unit still runs");
        }
        p.finish(1);
        let d: SliceStatus =
            serde_json::from_slice(&std::fs::read(dir.join("slice-00001.json")).unwrap()).unwrap();
        assert_eq!((d.units, d.done, d.running, d.left), (2, 1, 0, 1));
        assert_eq!((d.bytes_done, d.records, d.rejected), (100, 7, 1));
        assert_eq!(d.states.failed, 1);
        assert_eq!(d.failures[0].error, "bad");
        assert_eq!(
            (d.state, d.exit_code, d.resumed),
            (LiveState::Ended, Some(1), 2)
        );
        assert_eq!(d.vendors[0].units, 2);
        // No temporary file stays behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
