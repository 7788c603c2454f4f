//! The journal beside a ledger: where a small `process` run, or a slice given `--journal`,
//! writes its rows instead of starting DuckDB; the fold that moves them into the ledger; and
//! [`Tail`], which reads them as they are written (`publish --follow`).
//!
//! Starting DuckDB, creating a ledger's tables and closing it with a checkpoint costs 30-35 ms
//! of CPU (measured: an empty database alone opens in 13-17 ms), most of a `process --input`
//! of one small file. A run of local files (`process --input`, `--inbound`) of at most
//! [`SMALL_RUN_BYTES`] of input therefore appends its rows to `LEDGER.journal` (JSON lines:
//! the run, each file with its reject counts, the run's end), one write and one sync per batch
//! where the ledger would commit one transaction. The run holds an exclusive lock on the
//! journal (`flock`) from start to end: a second run on the same ledger is refused, as
//! DuckDB's own lock refuses it, and so is a run that writes the ledger through DuckDB while
//! the other holds the journal or the database (each takes its own lock, then looks at the
//! other's).
//!
//! [`fold`] moves a journal's rows into the ledger in one transaction and removes the journal.
//! Every batchwin command that reads or writes a ledger folds it first ([`super::Ledger::open`],
//! [`super::find_ledgers`], [`super::merge::merge`]); a journal whose run still holds
//! it is left alone (its rows are not committed yet, as a running ledger's open transaction is
//! not). Lines are folded run by run: a run already in the ledger (a fold whose journal was not
//! removed before a crash) is not added again; a last line cut short by a kill is not
//! committed and is dropped.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{LedgerError, RunInfo, ts};
use crate::outcome::FileOutcome;

/// The most input a run may have to write a journal rather than open DuckDB: 4 MiB take
/// 10-30 ms to process, less than DuckDB's start and checkpoint. Above it DuckDB opens on a
/// thread of its own while the first units are processed; on two busy cores its cost still
/// shows (measured: the fixed-width vendors of the bench's tenth of a day, 86 MB, took
/// 0.35-0.40 s against 0.32-0.35 s through the journal), and the run leaves a ledger that
/// DuckDB reads directly.
pub const SMALL_RUN_BYTES: u64 = 4 << 20;

/// The journal of the ledger at `ledger`.
pub fn path_of(ledger: &Path) -> PathBuf {
    let mut p = ledger.as_os_str().to_owned();
    p.push(".journal");
    PathBuf::from(p)
}

/// A row of `runs` as the ledger stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    pub run_id: String,
    pub command: String,
    pub host: String,
    pub version: String,
    pub threads: i64,
    pub started_at: String,
    pub config_sha256: Option<String>,
    pub mask_profile: Option<String>,
    pub token_subject: Option<String>,
    pub token_issuer: Option<String>,
    pub token_key_id: Option<String>,
}

impl RunRow {
    pub fn of(run: &RunInfo) -> RunRow {
        RunRow {
            run_id: run.run_id.clone(),
            command: run.command.clone(),
            host: run.host.clone(),
            version: run.version.clone(),
            threads: run.threads as i64,
            started_at: ts(&run.started_at),
            config_sha256: run.config_sha256.clone(),
            mask_profile: run.masking.profile.clone(),
            token_subject: run.masking.subject.clone(),
            token_issuer: run.masking.issuer.clone(),
            token_key_id: run.masking.key_id.clone(),
        }
    }
}

/// A row of `files` as the ledger stores it, with the file's rows of `rejects`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRow {
    pub run_id: String,
    pub vendor: String,
    pub priority: String,
    pub input_path: String,
    pub input_bytes: i64,
    pub input_sha256: String,
    pub records_in: i64,
    pub records_out: i64,
    pub records_rejected: i64,
    pub status: String,
    pub error: Option<String>,
    pub started_at: String,
    pub ended_at: String,
    pub output_path: Option<String>,
    pub output_bytes: i64,
    pub output_sha256: Option<String>,
    pub reject_path: Option<String>,
    pub part: Option<i64>,
    pub parts: Option<i64>,
    pub failed_on: Option<String>,
    #[serde(default)]
    pub first_record: Option<i64>,
    #[serde(default)]
    pub lines: Option<i64>,
    pub rejects: Vec<RejectRow>,
}

impl FileRow {
    /// The row as `publish` reads a unit's latest attempt from a ledger
    /// ([`super::query::deliverables`]).
    pub fn deliverable(&self) -> super::query::Deliverable {
        let ended_us = super::parse_ts(&self.ended_at).map_or(0, |t| t.timestamp_micros());
        super::query::Deliverable {
            vendor: self.vendor.clone(),
            input_path: self.input_path.clone(),
            part: self.part,
            parts: self.parts,
            status: self.status.clone(),
            error: self.error.clone(),
            output_path: self.output_path.clone(),
            output_sha256: self.output_sha256.clone(),
            reject_path: self.reject_path.clone(),
            records_in: self.records_in,
            records_rejected: self.records_rejected,
            output_bytes: self.output_bytes,
            ended_us,
            first_record: self.first_record,
            lines: self.lines,
        }
    }
}

/// A row of `rejects`: how many records of a file a rule rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectRow {
    pub field: Option<String>,
    pub rule: String,
    pub count: i64,
}

impl FileRow {
    pub fn of(run_id: &str, priority: &str, f: &FileOutcome) -> FileRow {
        FileRow {
            run_id: run_id.to_string(),
            vendor: f.vendor.clone(),
            priority: priority.to_string(),
            input_path: f.input_path.display().to_string(),
            input_bytes: f.input_bytes as i64,
            input_sha256: f.input_sha256.clone(),
            records_in: f.records_in as i64,
            records_out: f.records_out as i64,
            records_rejected: f.records_rejected as i64,
            status: f.status.to_string(),
            error: f.error.clone(),
            started_at: ts(&f.started_at),
            ended_at: ts(&f.ended_at),
            output_path: f.output_path.as_ref().map(|p| p.display().to_string()),
            output_bytes: f.output_bytes as i64,
            output_sha256: f.output_sha256.clone(),
            reject_path: f.reject_path.as_ref().map(|p| p.display().to_string()),
            part: f.part.map(|p| p.0 as i64),
            parts: f.part.map(|p| p.1 as i64),
            failed_on: f.failed_on.map(|k| k.to_string()),
            first_record: f.first_record.map(|n| n as i64),
            lines: f.lines.map(|n| n as i64),
            rejects: f
                .reject_counts
                .iter()
                .map(|((field, rule), count)| RejectRow {
                    field: field.clone(),
                    rule: rule.clone(),
                    count: *count as i64,
                })
                .collect(),
        }
    }
}

/// One line of a journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "row", rename_all = "snake_case")]
enum Line {
    Run(RunRow),
    File(FileRow),
    End {
        run_id: String,
        ended_at: String,
        exit_code: i32,
        #[serde(default)]
        cpu_seconds: Option<f64>,
    },
}

/// A journal being written by a run, which holds its lock until it is dropped.
pub struct Journal {
    file: std::fs::File,
    path: PathBuf,
}

impl Journal {
    /// Opens the journal of the ledger at `ledger` (creating it) for a run, and records the
    /// run's start. Refused while another run holds it, or when `ledger` exists and is not a
    /// DuckDB file (what opening it would have said at once).
    pub fn begin(ledger: &Path, run: &RunInfo) -> Result<Journal, LedgerError> {
        check_is_duckdb(ledger)?;
        let path = path_of(ledger);
        let file_err = |source| LedgerError::File {
            path: path.display().to_string(),
            source,
        };
        // A fold removes the journal it emptied while holding its lock: a lock taken on a file
        // that is no longer at `path` is let go and taken again on the new one.
        let file = loop {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(&path)
                .map_err(file_err)?;
            // A fold holds the lock for a moment; a run, for its whole life.
            if !lock_within(&file, BRIEF_HOLD).map_err(file_err)? {
                return Err(LedgerError::Busy {
                    path: path.display().to_string(),
                });
            }
            if same_file(&file, &path) {
                break file;
            }
        };
        // A run that writes the ledger itself holds DuckDB's lock on it (taken before it looks
        // at the journal, see `Ledger::open_for_run`): with both locks taken in that order by
        // each kind of run, one of two runs started together always sees the other. A command
        // that only reads the ledger holds it briefly.
        let deadline = std::time::Instant::now() + BRIEF_HOLD;
        while ledger_locked(ledger).map_err(file_err)? {
            if std::time::Instant::now() >= deadline {
                return Err(LedgerError::InUse {
                    path: ledger.display().to_string(),
                });
            }
            std::thread::sleep(LOCK_POLL);
        }
        crate::files::restrict(&path).map_err(file_err)?;
        cut_after_last_line(&file).map_err(file_err)?;
        let mut journal = Journal { file, path };
        // Not synced on its own: the run's first batch syncs it (a run killed before then has
        // recorded nothing, as its ledger would have recorded only its start).
        journal.append(&[Line::Run(RunRow::of(run))], false)?;
        Ok(journal)
    }

    /// Records processed files and their reject counts: one write, one sync.
    pub fn record_files(
        &mut self,
        run: &RunInfo,
        files: &[(String, FileOutcome)],
    ) -> Result<(), LedgerError> {
        if files.is_empty() {
            return Ok(());
        }
        let lines: Vec<Line> = files
            .iter()
            .map(|(priority, f)| Line::File(FileRow::of(&run.run_id, priority, f)))
            .collect();
        self.append(&lines, true)
    }

    /// Records the last processed files and the end of the run: one write, one sync.
    pub fn end_run_with_files(
        &mut self,
        run: &RunInfo,
        files: &[(String, FileOutcome)],
        exit_code: i32,
    ) -> Result<(), LedgerError> {
        let mut lines: Vec<Line> = files
            .iter()
            .map(|(priority, f)| Line::File(FileRow::of(&run.run_id, priority, f)))
            .collect();
        lines.push(Line::End {
            run_id: run.run_id.clone(),
            ended_at: ts(&chrono::Utc::now()),
            exit_code,
            cpu_seconds: super::cpu_seconds(),
        });
        self.append(&lines, true)
    }

    /// Appends `lines` in one write, and syncs them when `sync`. A write that fails is cut off
    /// again, so that no part of a line is left before the next one.
    fn append(&mut self, lines: &[Line], sync: bool) -> Result<(), LedgerError> {
        let mut buf = Vec::new();
        for l in lines {
            // Rows of strings and numbers always serialize.
            serde_json::to_writer(&mut buf, l).map_err(|e| LedgerError::File {
                path: self.path.display().to_string(),
                source: std::io::Error::other(e),
            })?;
            buf.push(b'\n');
        }
        let file_err = |source| LedgerError::File {
            path: self.path.display().to_string(),
            source,
        };
        let before = self.file.metadata().map_err(file_err)?.len();
        let written = self.file.write_all(&buf).and_then(|()| match sync {
            true => self.file.sync_data(),
            false => Ok(()),
        });
        if let Err(e) = written {
            let _ = self.file.set_len(before);
            return Err(file_err(e));
        }
        Ok(())
    }
}

/// Where a run records its rows: the ledger itself, or its journal (a small run).
pub enum Recorder {
    Ledger(super::Ledger),
    Journal(Journal),
}

impl Recorder {
    /// Records processed files and their reject counts, in one transaction or one write.
    pub fn record_files(
        &mut self,
        run: &RunInfo,
        files: &[(String, FileOutcome)],
    ) -> Result<(), LedgerError> {
        match self {
            Recorder::Ledger(l) => l.record_files(run, files),
            Recorder::Journal(j) => j.record_files(run, files),
        }
    }

    /// Records the last processed files and the end of the run, in one transaction or one
    /// write.
    pub fn end_run_with_files(
        &mut self,
        run: &RunInfo,
        files: &[(String, FileOutcome)],
        exit_code: i32,
    ) -> Result<(), LedgerError> {
        match self {
            Recorder::Ledger(l) => l.end_run_with_files(run, files, exit_code),
            Recorder::Journal(j) => j.end_run_with_files(run, files, exit_code),
        }
    }

    /// The ledger, when rows go to it directly.
    pub fn ledger(&self) -> Option<&super::Ledger> {
        match self {
            Recorder::Ledger(l) => Some(l),
            Recorder::Journal(_) => None,
        }
    }
}

/// Cuts off a last line left without its newline by a run that was killed while writing it,
/// so that the next line appended does not join it (it would then stop every fold).
fn cut_after_last_line(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    let mut end = len;
    let mut buf = [0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        file.read_exact_at(&mut buf[..n], start)?;
        match buf[..n].iter().rposition(|&b| b == b'\n') {
            Some(i) => {
                end = start + i as u64 + 1;
                break;
            }
            None => end = start,
        }
    }
    if end < len {
        file.set_len(end)?;
    }
    Ok(())
}

/// How long a run waits for a lock that something brief holds (a fold of the journal, about
/// 30 ms; a command reading the ledger) before it takes the holder for another run.
const BRIEF_HOLD: std::time::Duration = std::time::Duration::from_secs(2);
const LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// Takes `file`'s exclusive lock, waiting at most `wait` for its holder to let it go; false
/// when it is still held then.
fn lock_within(file: &std::fs::File, wait: std::time::Duration) -> std::io::Result<bool> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(true),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(LOCK_POLL);
            }
            Err(std::fs::TryLockError::WouldBlock) => return Ok(false),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// Whether another process holds DuckDB's lock on the ledger file (DuckDB takes a POSIX record
/// lock, `fcntl(F_SETLK)`, over the whole file while it has the database open); asked with
/// `F_GETLK`, which takes no lock. A ledger that does not exist yet is not locked.
fn ledger_locked(ledger: &Path) -> std::io::Result<bool> {
    let file = match std::fs::File::open(ledger) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    // Closing `file` would drop this process's own record locks on the ledger: this is only
    // called by a run that has none (it never opened DuckDB).
    super::lock(&file, super::LockOp::Test)
}

/// Whether `file` is still the file at `path` (not removed or replaced since it was opened).
pub(super) fn same_file(file: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// A ledger file that exists must start as a DuckDB file does: its magic bytes `DUCK` at
/// offset 8 (what a run that writes a journal checks instead of opening it).
fn check_is_duckdb(ledger: &Path) -> Result<(), LedgerError> {
    let mut head = [0u8; 12];
    let read = std::fs::File::open(ledger).and_then(|mut f| f.read_exact(&mut head));
    match read {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Ok(()) if &head[8..12] == b"DUCK" => Ok(()),
        // Made again by the fold that opens it ([`super::Ledger::open_db`]).
        Err(_) if super::left_unmade(ledger) => Ok(()),
        Ok(()) => Err(LedgerError::NotDuckdb {
            path: ledger.display().to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(LedgerError::NotDuckdb {
            path: ledger.display().to_string(),
        }),
        Err(e) => Err(LedgerError::File {
            path: ledger.display().to_string(),
            source: e,
        }),
    }
}

/// What [`fold`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folded {
    /// No journal, or an empty one.
    Nothing,
    /// A run holds the journal: its rows stay there.
    Busy,
    /// The journal's rows are in the ledger and the journal is gone.
    Rows(usize),
}

/// Moves the rows of the journal of the ledger at `ledger` into it (creating the ledger when
/// needed), in one transaction, and removes the journal (see the module's header).
pub fn fold(ledger: &Path) -> Result<Folded, LedgerError> {
    fold_with(ledger, None)
}

/// [`fold`] into a ledger this process has open, for a run that is about to write it: waits
/// for a fold that holds the journal a moment; [`Folded::Busy`] means a run holds it.
pub fn fold_into(ledger: &Path, db: &mut super::Ledger) -> Result<Folded, LedgerError> {
    fold_with(ledger, Some(db))
}

fn fold_with(ledger: &Path, db: Option<&mut super::Ledger>) -> Result<Folded, LedgerError> {
    let path = path_of(ledger);
    let file_err = |source| LedgerError::File {
        path: path.display().to_string(),
        source,
    };
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Folded::Nothing),
        Err(e) => return Err(file_err(e)),
    };
    let wait = if db.is_some() {
        BRIEF_HOLD
    } else {
        std::time::Duration::ZERO
    };
    if !lock_within(&file, wait).map_err(file_err)? {
        return Ok(Folded::Busy);
    }
    // Removed and made again by a run since it was opened: that run's journal is folded next
    // time.
    if !same_file(&file, &path) {
        return Ok(Folded::Nothing);
    }
    let mut text = Vec::new();
    file.read_to_end(&mut text).map_err(file_err)?;
    let lines = parse(&text).map_err(|(n, e)| LedgerError::Journal {
        path: path.display().to_string(),
        line: n,
        message: e,
    })?;
    let rows = lines.len();
    if rows > 0 {
        match db {
            Some(l) => l.in_transaction(|tx| write_lines(tx, &lines))?,
            None => super::Ledger::open_db(ledger)?.in_transaction(|tx| write_lines(tx, &lines))?,
        }
    }
    // Removed while it is locked: a run that opened it meanwhile finds it gone and opens a new
    // one (see `Journal::begin`).
    std::fs::remove_file(&path).map_err(file_err)?;
    Ok(if rows > 0 {
        Folded::Rows(rows)
    } else {
        Folded::Nothing
    })
}

/// The complete lines of a journal: a last line without its newline was cut short by a kill
/// and is dropped. A line that does not parse gives its number (from 1) and why.
fn parse(text: &[u8]) -> Result<Vec<Line>, (usize, String)> {
    let complete = match text.iter().rposition(|&b| b == b'\n') {
        Some(i) => &text[..=i],
        None => &[][..],
    };
    parse_lines(complete, 0)
}

/// The lines of `complete` (whole lines), after `before` lines of the same journal: a line
/// that does not parse gives its number in the journal (from 1) and why.
fn parse_lines(complete: &[u8], before: usize) -> Result<Vec<Line>, (usize, String)> {
    complete
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_slice(l).map_err(|e| (before + i + 1, e.to_string())))
        .collect()
}

/// Writes journal lines to the ledger (inside a transaction), leaving out the lines of runs
/// the ledger already has.
fn write_lines(tx: &duckdb::Transaction<'_>, lines: &[Line]) -> duckdb::Result<()> {
    let known: std::collections::HashSet<String> = {
        let mut stmt = tx.prepare("SELECT run_id FROM runs")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut files = Vec::new();
    let mut ends = Vec::new();
    for l in lines {
        match l {
            Line::Run(r) if !known.contains(&r.run_id) => super::insert_run(tx, r)?,
            Line::File(f) if !known.contains(&f.run_id) => files.push(f.clone()),
            Line::End {
                run_id,
                ended_at,
                exit_code,
                cpu_seconds,
            } if !known.contains(run_id) => ends.push((run_id, ended_at, *exit_code, *cpu_seconds)),
            _ => {}
        }
    }
    super::append_file_rows(tx, &files)?;
    for (run_id, ended_at, exit_code, cpu_seconds) in ends {
        super::set_run_end(tx, run_id, ended_at, exit_code, cpu_seconds)?;
    }
    Ok(())
}

/// Follows the journals of the ledgers below a folder (or of one ledger) as runs append to
/// them (what `publish --follow` delivers from while the slices run): each [`Tail::files`]
/// gives the file rows written since the one before. Only complete lines are read; a line
/// being written is read once its newline is there. A journal folded meanwhile (removed) is
/// read to its end through the handle already open; rows folded before their journal was seen
/// are in the ledger, where a reader of the ledgers finds them.
pub struct Tail {
    dir: PathBuf,
    journals: std::collections::HashMap<PathBuf, Followed>,
}

/// A journal being followed: its open file, the bytes of its complete lines read, and the
/// lines read (for the line numbers of errors).
struct Followed {
    file: std::fs::File,
    consumed: u64,
    lines: usize,
}

impl Followed {
    /// The complete lines written since the last call. Read from the end of the last complete
    /// line each time: a line cut short by a killed run is cut off by the next run
    /// ([`cut_after_last_line`]) and written again whole.
    fn read_lines(&mut self) -> std::io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let len = self.file.metadata()?.len();
        let mut buf = vec![0u8; len.saturating_sub(self.consumed) as usize];
        self.file.read_exact_at(&mut buf, self.consumed)?;
        let whole = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        buf.truncate(whole);
        self.consumed += whole as u64;
        Ok(buf)
    }
}

impl Tail {
    /// A tail of the journals below `dir` (or of the ledger `dir`'s journal).
    pub fn new(dir: &Path) -> Tail {
        Tail {
            dir: dir.to_path_buf(),
            journals: Default::default(),
        }
    }

    /// The file rows written to the journals since the last call, journal by journal, in the
    /// order they were written.
    pub fn files(&mut self) -> Result<Vec<FileRow>, LedgerError> {
        let found: Vec<PathBuf> = if self.dir.is_dir() {
            super::files_below(&self.dir)
                .map_err(|source| LedgerError::File {
                    path: self.dir.display().to_string(),
                    source,
                })?
                .into_iter()
                .filter(|p| p.to_string_lossy().ends_with(".duckdb.journal"))
                .collect()
        } else if self.dir.extension().is_some_and(|x| x == "duckdb") {
            vec![path_of(&self.dir)]
        } else {
            // The folder is made by the first run that writes a ledger in it.
            Vec::new()
        };
        let mut rows = Vec::new();
        for p in found {
            // A journal folded (removed) and begun again by a run since it was opened: the rest
            // of the old one, then the new one.
            if let Some(f) = self.journals.get(&p) {
                if same_file(&f.file, &p) {
                    continue;
                }
                self.read(&p, &mut rows)?;
                self.journals.remove(&p);
            }
            match std::fs::File::open(&p) {
                Ok(file) => {
                    let f = Followed {
                        file,
                        consumed: 0,
                        lines: 0,
                    };
                    self.journals.insert(p, f);
                }
                // Folded between the listing and now: its rows are in the ledger.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(LedgerError::File {
                        path: p.display().to_string(),
                        source,
                    });
                }
            }
        }
        let mut paths: Vec<PathBuf> = self.journals.keys().cloned().collect();
        paths.sort();
        for p in paths {
            self.read(&p, &mut rows)?;
        }
        Ok(rows)
    }

    /// Adds to `rows` the file rows written to the journal at `p` since it was last read.
    fn read(&mut self, p: &Path, rows: &mut Vec<FileRow>) -> Result<(), LedgerError> {
        let Some(f) = self.journals.get_mut(p) else {
            return Ok(());
        };
        let complete = f.read_lines().map_err(|source| LedgerError::File {
            path: p.display().to_string(),
            source,
        })?;
        let lines =
            parse_lines(&complete, f.lines).map_err(|(line, message)| LedgerError::Journal {
                path: p.display().to_string(),
                line,
                message,
            })?;
        f.lines += lines.len();
        rows.extend(lines.into_iter().filter_map(|l| match l {
            Line::File(row) => Some(row),
            _ => None,
        }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Ledger;

    fn unit(name: &str, rejected: u64) -> (String, FileOutcome) {
        let mut f = FileOutcome::new("v", Path::new(name), 10, None);
        f.status = crate::outcome::FileStatus::Succeeded;
        f.records_in = 5;
        f.records_rejected = rejected;
        if rejected > 0 {
            f.reject_counts
                .insert((Some("amount".into()), "max".into()), rejected);
        }
        ("high".to_string(), f)
    }

    fn count(l: &Ledger, sql: &str) -> i64 {
        l.connection().query_row(sql, [], |r| r.get(0)).expect(sql)
    }

    /// The rows a journal folds are the rows the ledger would have had, written directly.
    #[test]
    fn a_folded_journal_holds_what_the_ledger_would_have() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (direct, journaled) = (dir.path().join("a.duckdb"), dir.path().join("b.duckdb"));
        let run = RunInfo::new("process");
        let files = [unit("a.csv", 0), unit("b.csv", 2)];
        {
            let mut l = Ledger::open(&direct).expect("ledger");
            l.begin_run(&run).expect("begin");
            l.record_files(&run, &files[..1]).expect("files");
            l.end_run_with_files(&run, &files[1..], 0).expect("end");
        }
        {
            let mut j = Journal::begin(&journaled, &run).expect("journal");
            j.record_files(&run, &files[..1]).expect("files");
            j.end_run_with_files(&run, &files[1..], 0).expect("end");
        }
        assert!(!journaled.exists());
        assert_eq!(fold(&journaled).expect("fold"), Folded::Rows(4));
        assert!(!path_of(&journaled).exists());
        let (a, b) = (
            Ledger::open(&direct).expect("a"),
            Ledger::open(&journaled).expect("b"),
        );
        for q in [
            "SELECT * EXCLUDE (ended_at, cpu_seconds) FROM runs",
            "SELECT * FROM files ORDER BY input_path",
            "SELECT * FROM rejects",
        ] {
            let rows = |l: &Ledger| -> Vec<String> {
                let mut stmt = l.connection().prepare(q).expect(q);
                let n = stmt.column_count();
                let _ = n;
                let mut out = Vec::new();
                let mut rows = stmt.query([]).expect(q);
                while let Some(r) = rows.next().expect(q) {
                    let n = r.as_ref().column_count();
                    let v: Vec<String> = (0..n)
                        .map(|i| format!("{:?}", r.get_ref(i).expect("value")))
                        .collect();
                    out.push(v.join("|"));
                }
                out
            };
            assert_eq!(rows(&a), rows(&b), "{q}");
        }
        assert_eq!(
            count(
                &b,
                "SELECT count(*) FROM runs WHERE exit_code = 0 AND ended_at IS NOT NULL AND cpu_seconds > 0"
            ),
            1
        );
    }

    /// A run killed in the middle of a write leaves a last line cut short: the complete lines
    /// are folded, the rest dropped; folding again adds nothing, and a fold whose journal was
    /// left behind (a crash before it was removed) does not add its runs twice.
    #[test]
    fn a_cut_last_line_is_dropped_and_no_run_is_folded_twice() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ledger = dir.path().join("l.duckdb");
        let run = RunInfo::new("process");
        {
            let mut j = Journal::begin(&ledger, &run).expect("journal");
            j.record_files(&run, &[unit("a.csv", 1)]).expect("files");
        }
        let journal = path_of(&ledger);
        let whole = std::fs::read(&journal).expect("journal");
        let mut cut = whole.clone();
        cut.extend_from_slice(b"{\"row\":\"file\",\"run_id\":\"x");
        std::fs::write(&journal, &cut).expect("write");
        assert_eq!(fold(&ledger).expect("fold"), Folded::Rows(2));
        // The same lines again, as if the journal had not been removed.
        std::fs::write(&journal, &whole).expect("write");
        assert_eq!(fold(&ledger).expect("fold"), Folded::Rows(2));
        let l = Ledger::open(&ledger).expect("ledger");
        assert_eq!(count(&l, "SELECT count(*) FROM runs"), 1);
        assert_eq!(count(&l, "SELECT count(*) FROM files"), 1);
        assert_eq!(count(&l, "SELECT count(*) FROM rejects"), 1);
        assert_eq!(
            count(&l, "SELECT count(*) FROM runs WHERE ended_at IS NULL"),
            1
        );
    }

    /// A run that begins while a fold holds the journal for a moment waits for it, rather
    /// than taking it for another run.
    #[test]
    fn a_run_waits_for_a_fold_that_holds_the_journal() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ledger = dir.path().join("l.duckdb");
        let held = std::fs::File::create(path_of(&ledger)).expect("journal");
        held.lock().expect("lock");
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(held);
        });
        let run = RunInfo::new("process");
        let j = Journal::begin(&ledger, &run).expect("the run waits, then begins");
        release.join().expect("thread");
        drop(j);
    }

    /// A run that begins after one was killed in the middle of a line cuts that line off:
    /// the journal still folds, with both runs' complete lines.
    #[test]
    fn a_run_after_a_cut_line_starts_on_a_line_of_its_own() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ledger = dir.path().join("l.duckdb");
        let first = RunInfo::new("process");
        drop(Journal::begin(&ledger, &first).expect("journal"));
        let mut text = std::fs::read(path_of(&ledger)).expect("journal");
        text.extend_from_slice(b"{\"row\":\"file\",\"run_id\":\"x");
        std::fs::write(path_of(&ledger), &text).expect("write");
        let second = RunInfo::new("process");
        let mut j = Journal::begin(&ledger, &second).expect("journal");
        j.end_run_with_files(&second, &[unit("a.csv", 0)], 0)
            .expect("end");
        drop(j);
        assert_eq!(fold(&ledger).expect("fold"), Folded::Rows(4));
    }

    /// While a run holds its journal, a second run is refused and a fold leaves it alone;
    /// once the run ended the journal folds.
    #[test]
    fn a_journal_in_use_is_left_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ledger = dir.path().join("l.duckdb");
        let run = RunInfo::new("process");
        let mut j = Journal::begin(&ledger, &run).expect("journal");
        j.record_files(&run, &[unit("a.csv", 0)]).expect("files");
        assert!(matches!(
            Journal::begin(&ledger, &RunInfo::new("process")),
            Err(LedgerError::Busy { .. })
        ));
        assert_eq!(fold(&ledger).expect("fold"), Folded::Busy);
        assert!(!ledger.exists());
        j.end_run_with_files(&run, &[], 3).expect("end");
        drop(j);
        assert_eq!(fold(&ledger).expect("fold"), Folded::Rows(3));
        let l = Ledger::open(&ledger).expect("ledger");
        assert_eq!(count(&l, "SELECT max(exit_code) FROM runs"), 3);
    }

    /// A line in the middle that does not parse stops the fold, names the journal and the
    /// line, and leaves the journal as it was.
    #[test]
    fn a_damaged_journal_is_named_and_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ledger = dir.path().join("l.duckdb");
        std::fs::write(path_of(&ledger), "{\"row\":\"end\"}\nnot json\n").expect("write");
        let e = fold(&ledger).expect_err("damaged").to_string();
        assert!(
            e.contains("l.duckdb.journal") && e.contains("line 1"),
            "{e}"
        );
        assert!(path_of(&ledger).exists());
        assert!(Ledger::open(&ledger).is_err());
    }

    /// A file in the ledger's place that is not a DuckDB file is refused before anything runs.
    #[test]
    fn a_ledger_that_is_not_duckdb_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ledger = dir.path().join("l.duckdb");
        std::fs::write(&ledger, "not a DuckDB file\n").expect("write");
        let e = Journal::begin(&ledger, &RunInfo::new("process"))
            .err()
            .expect("refused");
        assert!(matches!(e, LedgerError::NotDuckdb { .. }), "{e}");
        assert!(!path_of(&ledger).exists());
    }

    /// A tail gives the rows as each batch is written, a line once it is whole, also after a
    /// cut-short line was cut off and written again; after a fold removed the journal and a
    /// run began a new one, the new one's.
    #[test]
    fn a_tail_follows_journals_as_runs_write_them() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("temp dir");
        let folder = dir.path().join("ledgers");
        let ledger = folder.join("slice-00000.duckdb");
        let names = |rows: Vec<FileRow>| -> Vec<String> {
            rows.into_iter().map(|r| r.input_path).collect()
        };
        let mut tail = Tail::new(&folder);
        assert!(tail.files().expect("no folder yet").is_empty());
        std::fs::create_dir_all(&folder).expect("folder");
        let run = RunInfo::new("process");
        let mut j = Journal::begin(&ledger, &run).expect("journal");
        assert!(tail.files().expect("read").is_empty());
        j.record_files(&run, &[unit("a.csv", 0), unit("b.csv", 1)])
            .expect("files");
        assert_eq!(names(tail.files().expect("read")), ["a.csv", "b.csv"]);
        assert!(tail.files().expect("read").is_empty());
        // Half a line: read once its newline is there.
        let line = |name: &str| {
            serde_json::to_string(&Line::File(FileRow::of(
                &run.run_id,
                "high",
                &unit(name, 0).1,
            )))
            .expect("line")
        };
        let c = line("c.csv");
        let mut raw = std::fs::OpenOptions::new()
            .append(true)
            .open(path_of(&ledger))
            .expect("open");
        raw.write_all(&c.as_bytes()[..20]).expect("write");
        assert!(tail.files().expect("read").is_empty());
        raw.write_all(format!("{}\n", &c[20..]).as_bytes())
            .expect("write");
        assert_eq!(names(tail.files().expect("read")), ["c.csv"]);
        // Half a line left by a killed run, cut off by the next, which writes on.
        raw.write_all(&line("lost.csv").as_bytes()[..30])
            .expect("write");
        assert!(tail.files().expect("read").is_empty());
        drop(j);
        let next = RunInfo::new("process");
        let mut j = Journal::begin(&ledger, &next).expect("journal");
        j.end_run_with_files(&next, &[unit("d.csv", 0)], 0)
            .expect("end");
        drop(j);
        let row = tail.files().expect("read").pop().expect("d.csv");
        assert_eq!(row.input_path, "d.csv");
        assert_eq!(row.deliverable().status, "succeeded");
        assert!(row.deliverable().ended_us > 0);

        // Folded, and begun again by another run.
        assert!(matches!(fold(&ledger).expect("fold"), Folded::Rows(_)));
        let last = RunInfo::new("process");
        let mut j = Journal::begin(&ledger, &last).expect("journal");
        j.record_files(&last, &[unit("e.csv", 0)]).expect("files");
        assert_eq!(names(tail.files().expect("read")), ["e.csv"]);
        // One ledger given instead of a folder.
        let mut one = Tail::new(&ledger);
        assert_eq!(names(one.files().expect("read")), ["e.csv"]);
    }
}
