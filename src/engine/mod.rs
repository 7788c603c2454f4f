//! The engine: one file at a time ([`file`]: chunks in parallel, outputs in order) and many
//! files at once ([`batch`]: file workers, delivery threads, the ledger recorded as units
//! finish), and a slice over a run location URL ([`remote`]: inputs downloaded ahead to
//! scratch and checked, outputs and the ledger uploaded). What both share lives here: the tuning of a run ([`EngineOptions`]), the signal
//! that the run can record what it delivers ([`Ready`]), the pool of chunk buffers
//! ([`Buffers`]) and the counts of work done so far ([`Progress`]), which the live status
//! document ([`live`]) publishes while a run goes on. A unit's input and output checksums are
//! taken side by side ([`crate::checksum`]).

#[cfg(feature = "cli")]
pub mod batch;
pub mod file;
#[cfg(feature = "cli")]
pub mod live;
#[cfg(feature = "cli")]
pub mod remote;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

pub use file::{KnownInput, Pending, process_file, process_file_deferred};

/// Tuning for one file.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Target bytes of input per chunk.
    pub chunk_bytes: usize,
    /// Chunks of a file in flight at once (framed and not yet written) are two windows of these.
    pub window_chunks: usize,
    /// The business date of the run, for `{date}` in output names.
    pub date: String,
    /// Set when the run is asked to stop; checked before each chunk is written, and by each chunk
    /// before it is processed.
    pub cancel: crate::cancel::Cancel,
    /// After a signal, how long work in flight may take before the process stops anyway
    /// (see `crate::cancel`).
    pub grace: std::time::Duration,
    /// After this time no unit of a MEDIUM or LOW vendor starts (it is deferred); HIGH units
    /// always start.
    pub deadline: Option<chrono::DateTime<chrono::Utc>>,
    /// sha256 of the configuration file, recorded with the run so that a re-run can tell
    /// whether earlier results were made with the same rules.
    pub config_sha256: Option<String>,
    /// The masking profile applied and whose token chose it, recorded with the run.
    pub masking: crate::vendor::profile::MaskingChoice,
    /// What outputs wait for before they are renamed into place (see [`Ready`]).
    pub ready: Ready,
    /// Chunk output buffers, reused from chunk to chunk and file to file (see [`Buffers`]).
    pub buffers: Buffers,
    /// Work done so far, counted as each chunk is written (see [`Progress`]).
    pub progress: Progress,
    /// Whether whole inputs of at most `files::WHOLE_MAX` bytes are read into memory past the
    /// page cache instead of mapped (`files::read_whole`), on three file workers per thread
    /// instead of two (see `batch::run`): set for a plan's slices in a local folder, whose
    /// inputs are staging copies that the fetch of a local folder wrote past the page cache
    /// and nothing reads again.
    pub inputs_past_cache: bool,
    /// The run's live status document, kept up to date as units start and end, and written
    /// once a second by a thread of its own (see [`live`]); none: no document.
    #[cfg(feature = "cli")]
    pub live: Option<live::Live>,
    /// When the run writes its ledger rows to the ledger's journal rather than to DuckDB.
    #[cfg(feature = "cli")]
    pub journal: Journaling,
}

/// When a run writes its ledger rows to the ledger's journal rather than to DuckDB (see
/// [`crate::ledger::journal`]).
#[cfg(feature = "cli")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Journaling {
    /// Never: a plan's slice writes its ledger.
    #[default]
    Never,
    /// When the run has at most [`crate::ledger::journal::SMALL_RUN_BYTES`] of input (`process
    /// --input` and `--inbound`): starting DuckDB would cost it more than its work.
    Small,
    /// Always (`process --journal`): a `publish --follow` beside the run delivers each unit's
    /// outputs once their row is in the journal.
    Always,
}

#[cfg(feature = "cli")]
impl Journaling {
    /// [`Journaling::Always`] when asked for (`--journal`), else [`Journaling::Never`].
    pub fn when(asked: bool) -> Journaling {
        if asked {
            Journaling::Always
        } else {
            Journaling::Never
        }
    }
}

/// Input bytes and records done so far by a run, counted as each chunk is written, not only
/// when a file ends: what a progress bar draws while one large file is processed. A unit not
/// processed (blocked, deferred) or cut short counts its remaining bytes when it ends, so the
/// bytes reach the run's total. Shared by every file worker; three atomic adds per chunk (a
/// megabyte), nothing per record.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<ProgressCounts>);

#[derive(Debug, Default)]
struct ProgressCounts {
    bytes: AtomicU64,
    records: AtomicU64,
    rejected: AtomicU64,
}

impl Progress {
    /// Adds a chunk's (or a skipped unit's) input bytes, records read and rejected.
    pub fn add(&self, bytes: u64, records: u64, rejected: u64) {
        self.0.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.0.records.fetch_add(records, Ordering::Relaxed);
        self.0.rejected.fetch_add(rejected, Ordering::Relaxed);
    }

    /// Input bytes, records read and records rejected so far.
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.0.bytes.load(Ordering::Relaxed),
            self.0.records.load(Ordering::Relaxed),
            self.0.rejected.load(Ordering::Relaxed),
        )
    }
}

/// The output and reject buffers of chunks already written, kept for the next chunks of any
/// file. Fresh memory costs a page fault and the kernel's zeroing of each page on its first
/// touch (measured: 7% of the CPU time of the CSV vendors of a tenth of a day went to zeroing
/// the pages of each chunk's new output buffer); a buffer used before has its pages already.
/// The pool holds at most the buffers that were in flight at once (up to two windows of chunks
/// of every file worker, between being processed and being written), and drops a buffer that
/// grew far beyond a chunk (a chunk of one enormous record).
#[derive(Debug, Clone, Default)]
pub struct Buffers(Arc<std::sync::Mutex<Vec<OutputBuffers>>>);

/// A chunk's output and reject buffers.
type OutputBuffers = (Vec<u8>, Vec<u8>);

impl Buffers {
    /// An empty output and reject buffer pair, the output with room for `out_bytes`.
    fn take(&self, out_bytes: usize) -> OutputBuffers {
        let (mut out, rejects) = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        out.reserve(out_bytes);
        (out, rejects)
    }

    /// Gives a pair back, emptied; one larger than `keep_bytes` is freed instead.
    fn give(&self, mut out: Vec<u8>, mut rejects: Vec<u8>, keep_bytes: usize) {
        if out.capacity() > keep_bytes || rejects.capacity() > keep_bytes {
            return;
        }
        out.clear();
        rejects.clear();
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((out, rejects));
    }
}

/// A signal, given once, that the run can record what it delivers (its ledger is open). A
/// unit may be processed before it is given, but its outputs wait for it before they are
/// renamed into place, and are dropped when it fails: a run that cannot record delivers
/// nothing. The default is given already.
#[derive(Debug, Clone, Default)]
pub struct Ready(Option<Arc<OnceLock<Result<(), String>>>>);

impl Ready {
    /// A signal not given yet.
    pub fn pending() -> Ready {
        Ready(Some(Arc::default()))
    }

    /// Gives the signal; only the first call counts.
    pub fn set(&self, result: Result<(), String>) {
        if let Some(cell) = &self.0 {
            let _ = cell.set(result);
        }
    }

    /// Waits for the signal.
    pub fn wait(&self) -> Result<(), String> {
        self.0.as_ref().map_or(Ok(()), |cell| cell.wait().clone())
    }

    /// Whether the signal was given as a failure.
    pub fn failed(&self) -> bool {
        self.0
            .as_ref()
            .and_then(|cell| cell.get())
            .is_some_and(Result::is_err)
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        let threads = rayon::current_num_threads().max(1);
        EngineOptions {
            chunk_bytes: 1 << 20,
            window_chunks: threads * 4,
            date: chrono::Local::now().format("%Y-%m-%d").to_string(),
            cancel: crate::cancel::Cancel::default(),
            grace: crate::cancel::default_grace(),
            deadline: None,
            config_sha256: None,
            masking: Default::default(),
            ready: Ready::default(),
            buffers: Buffers::default(),
            progress: Progress::default(),
            inputs_past_cache: false,
            #[cfg(feature = "cli")]
            live: None,
            #[cfg(feature = "cli")]
            journal: Journaling::Never,
        }
    }
}
