//! What one unit (a file, or a part of a split file) did: its status, counts, outputs and
//! checksums ([`FileOutcome`]), and why it failed when it did ([`UnitError`]). The engine
//! fills it in, the ledger records it, and the report and the commands read it; it depends on
//! none of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::plan::Part;

/// The error of a unit not started because the window had ended.
pub const DEFERRED: &str =
    "deferred: the window ended before it started; the next run of the window does it";

/// Why a unit failed. The engine decides what to keep of a unit by its variant (a cancelled
/// unit or a failed write leaves nothing; an unusable input keeps its reject file), and the
/// ledger records its text.
#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    /// Stopped by SIGTERM or SIGINT: nothing of it stays, the next run does it again.
    #[error("cancelled by a signal before it finished")]
    Cancelled,
    /// An output or reject file could not be written (a full disk, a folder gone): what was
    /// written is partial, so nothing of the unit stays.
    #[error("cannot write `{}`: {source}", path.display())]
    WriteFailed {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The input cannot be read as the configured format (no header, a record that cannot be
    /// framed); the reject file says what was read before.
    #[error("{0}")]
    Unreadable(String),
    /// More records were rejected than the vendor's skip limit allows.
    #[error(
        "{rejected} of {records} records rejected, over the skip limit of {limit} (top reasons: {reasons})"
    )]
    SkipLimit {
        rejected: u64,
        records: u64,
        limit: String,
        reasons: String,
    },
    /// The run could not record the unit (its ledger did not open), so nothing is delivered.
    #[error("not delivered: {0}")]
    NotDelivered(String),
}

impl UnitError {
    /// Whether nothing of the unit may stay behind: what was written is partial or unwanted.
    pub fn leaves_nothing(&self) -> bool {
        matches!(self, UnitError::Cancelled | UnitError::WriteFailed { .. })
    }

    /// What the failure was on; `None` for a cancelled unit, which did not fail.
    pub fn failed_on(&self) -> Option<FailedOn> {
        match self {
            UnitError::Cancelled => None,
            UnitError::Unreadable(_) | UnitError::SkipLimit { .. } => Some(FailedOn::Data),
            UnitError::WriteFailed { .. } | UnitError::NotDelivered(_) => Some(FailedOn::Run),
        }
    }
}

/// What a failed unit failed on, recorded as the ledger's `files.failed_on`. Only failures on
/// the data count towards a file's quarantine (`max_attempts`): the same bytes fail the same
/// way every time, while a full disk or an unreachable ledger is the run's trouble, not the
/// file's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedOn {
    /// The input: unreadable as its format, or over the vendor's skip limit.
    Data,
    /// The run: an output that could not be written, a unit that could not be recorded.
    Run,
}

impl std::fmt::Display for FailedOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FailedOn::Data => "data",
            FailedOn::Run => "run",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    Succeeded,
    Failed,
    /// Stopped by SIGTERM or SIGINT; done again by the next run.
    Cancelled,
    /// Not started: the window's deadline had passed (MEDIUM and LOW units only).
    Deferred,
    /// Not started: a vendor it comes `after` did not finish (failed, deferred, blocked).
    Blocked,
}

impl std::fmt::Display for FileStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileStatus::Succeeded => "succeeded",
            FileStatus::Failed => "failed",
            FileStatus::Cancelled => "cancelled",
            FileStatus::Deferred => "deferred",
            FileStatus::Blocked => "blocked",
        })
    }
}

/// Reject counts keyed by (field, rule).
pub type RejectCounts = BTreeMap<(Option<String>, String), u64>;

/// Everything known about one processed file.
#[derive(Debug, Clone)]
pub struct FileOutcome {
    pub vendor: String,
    pub input_path: PathBuf,
    pub input_bytes: u64,
    pub input_sha256: String,
    pub records_in: u64,
    pub records_out: u64,
    pub records_rejected: u64,
    pub status: FileStatus,
    pub error: Option<String>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub ended_at: chrono::DateTime<chrono::Utc>,
    pub output_path: Option<PathBuf>,
    pub output_bytes: u64,
    pub output_sha256: Option<String>,
    pub reject_path: Option<PathBuf>,
    pub reject_counts: RejectCounts,
    /// For a part of a split file: (0-based index, number of parts).
    pub part: Option<(u32, u32)>,
    /// For a part of a split file: the number of its first record in the whole file, 0 when it
    /// numbers its records and lines from its own start (a part of a file at a URL after the
    /// first: see `plan::Part`).
    pub first_record: Option<u64>,
    /// For a part of a file at a URL: the line feeds in its bytes (the first part's counted
    /// from the file's start). With `records_in`, what `publish` adds to the numbers in the
    /// reject files of the parts after it (see `rejects`).
    pub lines: Option<u64>,
    /// What a failed unit failed on (`None` unless it failed).
    pub failed_on: Option<FailedOn>,
}

impl FileOutcome {
    /// A unit not started because a vendor it comes `after` did not finish; `bytes` is its
    /// file's size.
    pub fn blocked(
        vendor: &str,
        input: &Path,
        bytes: u64,
        part: Option<&Part>,
        reason: &str,
    ) -> FileOutcome {
        FileOutcome::not_started(vendor, input, bytes, part, FileStatus::Blocked, reason)
    }

    /// A unit not started (`status` deferred or blocked), and why.
    fn not_started(
        vendor: &str,
        input: &Path,
        bytes: u64,
        part: Option<&Part>,
        status: FileStatus,
        reason: &str,
    ) -> FileOutcome {
        FileOutcome {
            status,
            error: Some(reason.to_string()),
            ..FileOutcome::new(vendor, input, bytes, part)
        }
    }

    /// A unit not processed yet: nothing read, nothing written.
    pub fn new(vendor: &str, input: &Path, input_bytes: u64, part: Option<&Part>) -> FileOutcome {
        let now = chrono::Utc::now();
        FileOutcome {
            vendor: vendor.to_string(),
            input_path: input.to_path_buf(),
            input_bytes,
            input_sha256: String::new(),
            records_in: 0,
            records_out: 0,
            records_rejected: 0,
            status: FileStatus::Succeeded,
            error: None,
            started_at: now,
            ended_at: now,
            output_path: None,
            output_bytes: 0,
            output_sha256: None,
            reject_path: None,
            reject_counts: RejectCounts::new(),
            part: part.map(|p| (p.index, p.count)),
            first_record: part.map(|p| p.first_record),
            lines: None,
            failed_on: None,
        }
    }

    /// A unit that was not started because the window had ended; `bytes` is its file's size.
    pub fn deferred(vendor: &str, input: &Path, bytes: u64, part: Option<&Part>) -> FileOutcome {
        FileOutcome::not_started(vendor, input, bytes, part, FileStatus::Deferred, DEFERRED)
    }
}

impl FileOutcome {
    /// Marks the unit failed (or cancelled) with `error`: nothing is delivered, so the records
    /// written to its abandoned output do not count.
    pub fn fail(&mut self, error: UnitError) {
        self.status = match error {
            UnitError::Cancelled => FileStatus::Cancelled,
            _ => FileStatus::Failed,
        };
        self.error = Some(error.to_string());
        self.failed_on = error.failed_on();
        self.records_out = 0;
    }
}
