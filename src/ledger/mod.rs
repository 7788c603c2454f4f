//! The run ledger: a DuckDB file that records each run, each file it processed, the reject
//! counts by field and rule, and what `publish` delivered. The only room that names the
//! ledger's tables: this file creates them and writes them (`process`, `publish`);
//! [`query`] holds every read, among them the one answer to "is this unit done?";
//! [`find_ledgers`] finds a run's ledgers; [`merge`] puts many ledgers (one per slice)
//! together for `report`, `run`, `publish`;
//! [`journal`] names them too, in the lines it keeps for DuckDB.
//!
//! The schema is documented in `docs/ledger.md` and versioned in the `meta` table. Times are
//! stored as `TIMESTAMP` in UTC (no time-zone extension needed to read them). Rows are written
//! as units finish, in batches of one transaction each ([`Batch`]: 256 rows, or every 100 ms
//! for `process` and 2 s for `publish`), so a ledger is useful even when a run is killed
//! half-way. While it is being written, a second connection can copy it whole, as its last
//! committed transaction left it, into a file of its own ([`Snapshots`]): what a slice over a
//! run location uploads as it goes, never the ledger's own file in the middle of a write.
//! A small `process` run writes the same rows to a journal beside the ledger instead, folded
//! into it by the next command that opens it ([`journal`]).

use std::path::{Path, PathBuf};

use duckdb::{Connection, OptionalExt, params};

pub mod journal;
pub mod merge;
pub mod query;

use crate::outcome::FileOutcome;

/// The ledger, in a run folder's ledgers, that records the files `run` put in quarantine (its
/// `quarantine` table).
pub const QUARANTINE_LEDGER: &str = "quarantine.duckdb";
/// The ledger, in a run folder's ledgers, that records `release`s (its `releases` table).
pub const RELEASES_LEDGER: &str = "releases.duckdb";

/// The schema version written to `meta.schema_version`.
pub const SCHEMA_VERSION: &str = "7";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS runs (
    run_id      VARCHAR PRIMARY KEY,
    command     VARCHAR NOT NULL,
    host        VARCHAR NOT NULL,
    version     VARCHAR NOT NULL,
    threads     INTEGER NOT NULL,
    started_at  TIMESTAMP NOT NULL,
        ended_at    TIMESTAMP,
    exit_code   INTEGER,
    config_sha256 VARCHAR,
    mask_profile  VARCHAR,
    token_subject VARCHAR,
    token_issuer  VARCHAR,
    token_key_id  VARCHAR,
    cpu_seconds   DOUBLE
);
CREATE TABLE IF NOT EXISTS files (
    run_id            VARCHAR NOT NULL,
    vendor            VARCHAR NOT NULL,
    priority          VARCHAR NOT NULL,
    input_path        VARCHAR NOT NULL,
    input_bytes       BIGINT NOT NULL,
    input_sha256      VARCHAR NOT NULL,
    records_in        BIGINT NOT NULL,
    records_out       BIGINT NOT NULL,
    records_rejected  BIGINT NOT NULL,
    status            VARCHAR NOT NULL,
    error             VARCHAR,
    started_at        TIMESTAMP NOT NULL,
    ended_at          TIMESTAMP NOT NULL,
    output_path       VARCHAR,
    output_bytes      BIGINT NOT NULL,
    output_sha256     VARCHAR,
    reject_path       VARCHAR,
    part              INTEGER,
    parts             INTEGER,
    failed_on         VARCHAR,
    first_record      BIGINT,
    lines             BIGINT
);
CREATE TABLE IF NOT EXISTS rejects (
    run_id      VARCHAR NOT NULL,
    vendor      VARCHAR NOT NULL,
    input_path  VARCHAR NOT NULL,
    field       VARCHAR,
    rule        VARCHAR NOT NULL,
    count       BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    run_id      VARCHAR NOT NULL,
    vendor      VARCHAR NOT NULL,
    input_path  VARCHAR NOT NULL,
    kind        VARCHAR NOT NULL,
    target      VARCHAR NOT NULL,
    bytes       BIGINT,
    sha256      VARCHAR,
    status      VARCHAR NOT NULL,
    error       VARCHAR,
    delivered_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    run_id         VARCHAR NOT NULL,
    vendor         VARCHAR NOT NULL,
    input_path     VARCHAR NOT NULL,
    input_sha256   VARCHAR NOT NULL,
    attempts       INTEGER NOT NULL,
    error          VARCHAR,
    quarantined_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS releases (
    run_id      VARCHAR NOT NULL,
    vendor      VARCHAR NOT NULL,
    input_path  VARCHAR NOT NULL,
    released_by VARCHAR NOT NULL,
    note        VARCHAR,
    released_at TIMESTAMP NOT NULL
);
";

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger `{path}`: {source}")]
    Db {
        path: String,
        #[source]
        source: duckdb::Error,
    },
    #[error(
        "ledger `{path}` has schema version {found}, this batchwin writes version {SCHEMA_VERSION}"
    )]
    Version { path: String, found: String },
    #[error("ledger `{path}`: cannot take world access away from it: {source}")]
    Mode {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("ledger journal `{path}` is being written by another batchwin run")]
    Busy { path: String },
    #[error("ledger `{path}` is held open by another process (a batchwin run writing it?)")]
    InUse { path: String },
    #[error("ledger `{path}` is not a DuckDB file")]
    NotDuckdb { path: String },
    #[error("ledger journal `{path}` line {line}: {message} (the journal is kept as it is)")]
    Journal {
        path: String,
        line: usize,
        message: String,
    },
    #[error("ledger file `{path}`: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Every ledger below `dir` (or `dir` itself when it is a file), sorted, skipping `skip`: each
/// `*.duckdb`, and each ledger that only has a journal yet (`*.duckdb.journal`, see
/// [`journal`]), whose rows are folded into it here. A journal that cannot be folded
/// is left as it is and said in a warning; a journal a run still holds, with no ledger beside
/// it yet, is not listed, nor is a ledger left unmade ([`left_unmade`], said in a warning).
pub fn find_ledgers(dir: &Path, skip: Option<&Path>) -> std::io::Result<Vec<PathBuf>> {
    if dir.is_file() || (is_ledger(dir) && journal::path_of(dir).is_file()) {
        fold_warning(dir);
        // Not listed while a run still holds a journal the ledger does not exist beside yet.
        return Ok(if dir.exists() && !unmade_warning(dir) {
            vec![dir.to_path_buf()]
        } else {
            Vec::new()
        });
    }
    let skip = skip.and_then(|s| std::fs::canonicalize(s).ok());
    let mut out = Vec::new();
    for p in files_below(dir)? {
        let ledger = match p.extension() {
            Some(x) if x == "duckdb" => p,
            // `NAME.duckdb.journal`: the ledger `NAME.duckdb`, made by the fold when it had
            // only its journal (listed twice when both are there; deduplicated below).
            Some(x) if x == "journal" && is_ledger(&p.with_extension("")) => p.with_extension(""),
            _ => continue,
        };
        fold_warning(&ledger);
        if ledger.exists()
            && std::fs::canonicalize(&ledger).ok() != skip
            && !unmade_warning(&ledger)
        {
            out.push(ledger);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The files below `dir`, at any depth.
fn files_below(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    Ok(out)
}

/// DuckDB makes a database file in this order: it creates the file, takes its lock (a POSIX
/// record lock over the whole file, held while the database is open), writes the main header
/// (its magic `DUCK` at byte 8) and two database headers, 4 KiB each, then syncs; nothing else
/// is written before those.
const DUCKDB_HEADERS: u64 = 3 * 4096;

/// Whether `path` is a ledger whose maker was stopped (killed) between creating the file and
/// writing DuckDB's headers ([`unmade_shape`]) that no process holds DuckDB's lock on. It holds
/// no row, and DuckDB refuses to open it ("not a valid DuckDB database file"), which would
/// otherwise fail every later command on the ledger: a slice run again after `kill -9`, the
/// publish after a publish that died. Any other file is left to DuckDB to name.
///
/// Record locks belong to a process, which neither sees its own in `F_GETLK` nor keeps them
/// once it closes any descriptor of the file: a descriptor is opened only on a file shorter
/// than DuckDB's headers ([`short`]), which this process never has open outside DuckDB's
/// creation of it (a ledger it has open, in `run` or `publish` say, is never touched).
fn left_unmade(path: &Path) -> bool {
    short(path)
        && std::fs::File::open(path)
            .is_ok_and(|f| unmade_shape(&f, path) && lock(&f, LockOp::Test).is_ok_and(|held| !held))
}

/// Whether `path` is a regular file shorter than [`DUCKDB_HEADERS`], asked of the path alone.
fn short(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() < DUCKDB_HEADERS)
}

/// Whether the file `f` (at `path`) has the shape DuckDB leaves when stopped before its headers
/// were written: shorter than [`DUCKDB_HEADERS`], empty or starting with DuckDB's main header,
/// with no `.wal` beside it (DuckDB removes one before it makes a database).
fn unmade_shape(f: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::FileExt;
    // The open file's length: the path's was looked at before it was opened.
    let short = f
        .metadata()
        .is_ok_and(|m| m.is_file() && m.len() < DUCKDB_HEADERS);
    let mut wal = path.as_os_str().to_owned();
    wal.push(".wal");
    if !short || Path::new(&wal).exists() {
        return false;
    }
    // At offset 0 whatever was read from `f` before.
    let mut head = [0u8; 12];
    match f.read_at(&mut head, 0) {
        Ok(0) => true,
        Ok(12) => &head[8..12] == b"DUCK",
        _ => false,
    }
}

/// Removes the ledger at `path` when it was left unmade, holding a write lock on it (DuckDB's
/// kind) from before its shape is looked at until the file given back is dropped, after DuckDB
/// has made the new one: a second writer that opened the old file meanwhile meets that lock and
/// is refused, as DuckDB's lock would refuse it, rather than writing into a file no longer there.
fn remove_unmade(path: &Path) -> Result<Option<std::fs::File>, LedgerError> {
    if !short(path) {
        return Ok(None);
    }
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    else {
        return Ok(None);
    };
    // Looked at under the lock: a maker that holds DuckDB's lock is never seen half-way.
    if !lock(&f, LockOp::Take).unwrap_or(false)
        || !journal::same_file(&f, path)
        || !unmade_shape(&f, path)
    {
        return Ok(None);
    }
    tracing::warn!(
        "ledger `{}` was left unmade by a run stopped as it created it (it holds nothing): made again",
        path.display()
    );
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LedgerError::File {
            path: path.display().to_string(),
            source: e,
        }),
        _ => Ok(Some(f)),
    }
}

/// What [`lock`] does with a write lock over the whole file (DuckDB's kind of lock).
#[derive(Clone, Copy)]
enum LockOp {
    /// Whether another process holds a lock that would conflict with it (`F_GETLK`).
    Test,
    /// Takes it, without waiting (`F_SETLK`).
    Take,
}

/// [`LockOp::Test`]: whether another process holds a record lock on `f`; [`LockOp::Take`]:
/// whether the write lock was taken (`false` when another process holds a lock on it).
fn lock(f: &std::fs::File, op: LockOp) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: `flock` is plain data, zeroed is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    let cmd = match op {
        LockOp::Test => libc::F_GETLK,
        LockOp::Take => libc::F_SETLK,
    };
    // SAFETY: a valid open descriptor and a valid `flock` for the call's lifetime.
    if unsafe { libc::fcntl(f.as_raw_fd(), cmd, &mut fl) } == -1 {
        let e = std::io::Error::last_os_error();
        return match (op, e.raw_os_error()) {
            (LockOp::Take, Some(libc::EACCES | libc::EAGAIN)) => Ok(false),
            _ => Err(e),
        };
    }
    Ok(match op {
        LockOp::Test => fl.l_type != libc::F_UNLCK as libc::c_short,
        LockOp::Take => true,
    })
}

fn is_ledger(p: &Path) -> bool {
    p.extension().is_some_and(|x| x == "duckdb")
}

/// Whether `ledger` was left unmade ([`left_unmade`]), said in a warning: it holds nothing and
/// is not listed.
fn unmade_warning(ledger: &Path) -> bool {
    let unmade = left_unmade(ledger);
    if unmade {
        tracing::warn!(
            "ledger `{}` was left unmade by a run stopped as it created it (it holds nothing): skipped",
            ledger.display()
        );
    }
    unmade
}

/// Folds the journal of `ledger`, if any ([`journal::fold`]); a fold that fails is said
/// in a warning and the journal kept.
fn fold_warning(ledger: &Path) {
    if let Err(e) = journal::fold(ledger) {
        tracing::warn!("{e}");
    }
}

/// What identifies a run in the ledger.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub run_id: String,
    pub command: String,
    pub host: String,
    pub version: String,
    pub threads: usize,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// sha256 of the configuration file the run used, when it read one.
    pub config_sha256: Option<String>,
    /// The masking profile applied and the verified token's subject, issuer and key id
    /// (all `None` without a token): the run's audit trail.
    pub masking: crate::vendor::profile::MaskingChoice,
}

impl RunInfo {
    pub fn new(command: &str) -> RunInfo {
        RunInfo {
            run_id: uuid::Uuid::new_v4().to_string(),
            command: command.to_string(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            threads: rayon::current_num_threads(),
            started_at: chrono::Utc::now(),
            config_sha256: None,
            masking: Default::default(),
        }
    }
}

/// One delivery by `publish`: `kind` is `output` or `rejects`; `status` is `delivered`,
/// `skipped` (the same bytes were already there), `refused` (different bytes were there) or
/// `failed`.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub vendor: String,
    pub input_path: String,
    pub kind: &'static str,
    pub target: String,
    pub bytes: Option<u64>,
    pub sha256: Option<String>,
    pub status: &'static str,
    pub error: Option<String>,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// An open ledger file.
pub struct Ledger {
    conn: Connection,
    path: String,
}

fn ts(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format(TS_FORMAT).to_string()
}

/// A time as [`ts`] writes it.
fn parse_ts(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::NaiveDateTime::parse_from_str(text, TS_FORMAT)
        .ok()
        .map(|t| t.and_utc())
}

/// How the ledger writes times (UTC).
const TS_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.6f";

impl Ledger {
    /// Opens (creating when needed) the ledger at `path`, with the rows of its journal folded
    /// in first ([`journal::fold`]).
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        journal::fold(path)?;
        Ledger::open_db(path)
    }

    /// Opens the ledger at `path` for a run that writes it: DuckDB's lock first, then the
    /// journal folded in. A journal a small run still holds refuses this run (the two would
    /// otherwise write the same outputs at once), as DuckDB's lock refuses a second run.
    pub fn open_for_run(path: &Path) -> Result<Ledger, LedgerError> {
        let mut ledger = Ledger::open_db(path)?;
        match journal::fold_into(path, &mut ledger)? {
            journal::Folded::Busy => Err(LedgerError::Busy {
                path: journal::path_of(path).display().to_string(),
            }),
            _ => Ok(ledger),
        }
    }

    /// Opens (creating when needed) the DuckDB file at `path`, as it is; a file whose making
    /// was stopped before it held anything ([`left_unmade`]) is made again.
    fn open_db(path: &Path) -> Result<Ledger, LedgerError> {
        let p = path.display().to_string();
        let err = |source| LedgerError::Db {
            path: p.clone(),
            source,
        };
        // Held until DuckDB has made the new file and holds its own lock.
        let _unmade = remove_unmade(path)?;
        // One thread: a ledger's statements write and read a few rows, which DuckDB's worker
        // threads only hand back and forth (in `perf record` of `process`, the end of a run
        // showed its task queue on both threads). `process --input` of a 4.5 MB CSV took 69.6
        // to 70.7 ms a run against 73.4 to 74.7 ms with a thread per core (`perf stat -r 30`, 6
        // rounds alternating), and `scripts/compare` of the JSON Lines vendors, 10 rounds, 0.975
        // of the CPU time and 0.646 s against 0.663 s.
        let config = duckdb::Config::default().threads(1).map_err(err)?;
        let mut conn = Connection::open_with_flags(path, config).map_err(err)?;
        // One transaction (one commit, one sync) creates a new ledger's tables and version. The
        // version is looked up, then written when missing, rather than written by one `INSERT
        // ... WHERE NOT EXISTS (SELECT ...)`: this opening took 117.9M instructions against
        // 130.4M that way (callgrind of `process`).
        let mut found = (|| -> duckdb::Result<String> {
            let tx = conn.transaction()?;
            tx.execute_batch(SCHEMA)?;
            let found = tx
                .query_row(
                    "SELECT value FROM meta WHERE key = 'schema_version'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            let found = match found {
                Some(v) => v,
                None => {
                    tx.execute(
                        "INSERT INTO meta VALUES ('schema_version', ?)",
                        [SCHEMA_VERSION],
                    )?;
                    SCHEMA_VERSION.to_string()
                }
            };
            tx.commit()?;
            Ok(found)
        })()
        .map_err(err)?;
        // Each version since 3 only added columns and tables, all empty in an older ledger: a
        // slice's ledger from before an upgrade is brought up to date rather than refused.
        // Version 4 added the audit columns of `runs`; version 5 `files.failed_on` and the
        // `quarantine` and `releases` tables (created above with the rest of the schema);
        // version 6 `files.first_record` and `files.lines`; version 7 `runs.cpu_seconds`. The
        // columns are added in the order of the schema, which is the order `append_files`
        // writes a row's values in.
        if ["3", "4", "5", "6"].contains(&found.as_str()) {
            conn.execute_batch(&format!(
                "BEGIN TRANSACTION;
                 ALTER TABLE runs ADD COLUMN IF NOT EXISTS mask_profile VARCHAR;
                 ALTER TABLE runs ADD COLUMN IF NOT EXISTS token_subject VARCHAR;
                 ALTER TABLE runs ADD COLUMN IF NOT EXISTS token_issuer VARCHAR;
                 ALTER TABLE runs ADD COLUMN IF NOT EXISTS token_key_id VARCHAR;
                 ALTER TABLE files ADD COLUMN IF NOT EXISTS failed_on VARCHAR;
                 ALTER TABLE files ADD COLUMN IF NOT EXISTS first_record BIGINT;
                 ALTER TABLE files ADD COLUMN IF NOT EXISTS lines BIGINT;
                 ALTER TABLE runs ADD COLUMN IF NOT EXISTS cpu_seconds DOUBLE;
                 UPDATE meta SET value = '{SCHEMA_VERSION}' WHERE key = 'schema_version';
                 COMMIT;"
            ))
            .map_err(err)?;
            found = SCHEMA_VERSION.to_string();
        }
        if found != SCHEMA_VERSION {
            return Err(LedgerError::Version { path: p, found });
        }
        // DuckDB creates the file and its `.wal` with the default mode less the umask, which
        // the binary has taken world access out of (`files::restrict_umask`); a ledger made
        // before that, or by another program, loses it here.
        let mut wal = path.as_os_str().to_owned();
        wal.push(".wal");
        for f in [path, Path::new(&wal)] {
            match crate::files::restrict(f) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(LedgerError::Mode {
                        path: f.display().to_string(),
                        source: e,
                    });
                }
                _ => {}
            }
        }
        Ok(Ledger { conn, path: p })
    }

    fn err(&self, source: duckdb::Error) -> LedgerError {
        LedgerError::Db {
            path: self.path.clone(),
            source,
        }
    }

    /// Records the start of a run.
    pub fn begin_run(&self, run: &RunInfo) -> Result<(), LedgerError> {
        insert_run(&self.conn, &journal::RunRow::of(run)).map_err(|e| self.err(e))
    }

    /// Records the end of a run and its exit code.
    pub fn end_run(&self, run: &RunInfo, exit_code: i32) -> Result<(), LedgerError> {
        end_run(&self.conn, run, exit_code).map_err(|e| self.err(e))
    }

    /// Records the last processed files and the end of the run in one transaction.
    pub fn end_run_with_files(
        &mut self,
        run: &RunInfo,
        files: &[(String, FileOutcome)],
        exit_code: i32,
    ) -> Result<(), LedgerError> {
        self.in_transaction(|tx| {
            append_files(tx, run, files)?;
            end_run(tx, run, exit_code)
        })
    }

    /// Runs `write` in one transaction and commits it (one commit for many rows costs far less
    /// than one each).
    fn in_transaction(
        &mut self,
        write: impl FnOnce(&duckdb::Transaction<'_>) -> duckdb::Result<()>,
    ) -> Result<(), LedgerError> {
        let path = self.path.clone();
        let err = |source| LedgerError::Db { path, source };
        (|| {
            let tx = self.conn.transaction()?;
            write(&tx)?;
            tx.commit()
        })()
        .map_err(err)
    }

    /// Records processed files and their reject counts in one transaction.
    pub fn record_files(
        &mut self,
        run: &RunInfo,
        files: &[(String, FileOutcome)],
    ) -> Result<(), LedgerError> {
        if files.is_empty() {
            return Ok(());
        }
        self.in_transaction(|tx| append_files(tx, run, files))
    }

    /// Records what `publish` did with output and reject files, in one transaction.
    pub fn record_deliveries(
        &mut self,
        run: &RunInfo,
        deliveries: &[Delivery],
    ) -> Result<(), LedgerError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        self.in_transaction(|tx| {
            let mut app = tx.appender("deliveries")?;
            for d in deliveries {
                app.append_row(params![
                    run.run_id,
                    d.vendor,
                    d.input_path,
                    d.kind,
                    d.target,
                    d.bytes.map(|b| b as i64),
                    d.sha256,
                    d.status,
                    d.error,
                    ts(&d.at)
                ])?;
            }
            app.flush()
        })
    }

    /// Records files put in quarantine by run `run_id` (see [`query::quarantine_due`]), in one
    /// transaction.
    pub fn record_quarantine(
        &mut self,
        run_id: &str,
        files: &[query::Quarantined],
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), LedgerError> {
        if files.is_empty() {
            return Ok(());
        }
        self.in_transaction(|tx| {
            let mut app = tx.appender("quarantine")?;
            for q in files {
                app.append_row(params![
                    run_id,
                    q.vendor,
                    q.input_path,
                    q.input_sha256,
                    q.attempts,
                    q.error,
                    ts(&at)
                ])?;
            }
            app.flush()
        })
    }

    /// Records that `by` released `files` (vendor, input path) from quarantine, in one
    /// transaction: the next run plans them again.
    pub fn record_releases(
        &mut self,
        run_id: &str,
        files: &[(String, String)],
        by: &str,
        note: Option<&str>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), LedgerError> {
        if files.is_empty() {
            return Ok(());
        }
        self.in_transaction(|tx| {
            let mut app = tx.appender("releases")?;
            for (vendor, input) in files {
                app.append_row(params![run_id, vendor, input, by, note, ts(&at)])?;
            }
            app.flush()
        })
    }

    /// The latest attempt of every unit this ledger records, to ask
    /// [`query::LatestUnits::is_done`] whether a unit is done.
    pub fn latest_units(&self) -> Result<query::LatestUnits, LedgerError> {
        query::make_latest(&self.conn).map_err(|e| self.err(e))?;
        query::LatestUnits::read(&self.conn).map_err(|e| self.err(e))
    }

    /// A second connection to this ledger, which copies it while it goes on being written
    /// ([`Snapshots::write`]).
    pub fn snapshots(&self) -> Result<Snapshots, LedgerError> {
        let conn = self.conn.try_clone().map_err(|e| self.err(e))?;
        let database: String = conn
            .query_row("SELECT current_database()", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(Snapshots {
            conn,
            database,
            path: self.path.clone(),
        })
    }

    /// The underlying connection, for [`query`]'s reads (and tests).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// Copies of an open ledger, made through a connection of their own (see [`Ledger::snapshots`]).
pub struct Snapshots {
    conn: Connection,
    /// The ledger's name as its connection knows it (`current_database()`).
    database: String,
    path: String,
}

impl Snapshots {
    /// Writes the ledger, as its last committed transaction left it, to the new DuckDB file
    /// `to` (replacing one there): DuckDB copies every table in one read transaction (`COPY
    /// FROM DATABASE`), so rows being written meanwhile are not in it, and the copy is
    /// checkpointed and closed, with no `.wal` beside it: a whole ledger that can be uploaded
    /// as it is. The ledger's own file, which its writer may be changing, is never read.
    pub fn write(&self, to: &Path) -> Result<(), LedgerError> {
        let err = |source| LedgerError::Db {
            path: self.path.clone(),
            source,
        };
        let mut wal = to.as_os_str().to_owned();
        wal.push(".wal");
        for f in [to, Path::new(&wal)] {
            match std::fs::remove_file(f) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(LedgerError::File {
                        path: f.display().to_string(),
                        source: e,
                    });
                }
                _ => {}
            }
        }
        let file = to.display().to_string().replace('\'', "''");
        let database = self.database.replace('"', "\"\"");
        let copied = self.conn.execute_batch(&format!(
            "ATTACH '{file}' AS batchwin_snapshot;
             COPY FROM DATABASE \"{database}\" TO batchwin_snapshot;
             CHECKPOINT batchwin_snapshot;
             DETACH batchwin_snapshot;"
        ));
        if copied.is_err() {
            let _ = self
                .conn
                .execute_batch("DETACH DATABASE IF EXISTS batchwin_snapshot");
        }
        copied.map_err(err)
    }
}

/// Writes the rows of processed files and their reject counts (inside a transaction).
fn append_files(
    tx: &duckdb::Transaction<'_>,
    run: &RunInfo,
    files: &[(String, FileOutcome)],
) -> duckdb::Result<()> {
    let rows: Vec<journal::FileRow> = files
        .iter()
        .map(|(priority, f)| journal::FileRow::of(&run.run_id, priority, f))
        .collect();
    append_file_rows(tx, &rows)
}

/// Writes file rows, each with its reject counts (inside a transaction): what
/// [`append_files`] and a journal's fold ([`journal::fold`]) write.
fn append_file_rows(tx: &duckdb::Transaction<'_>, rows: &[journal::FileRow]) -> duckdb::Result<()> {
    // The appender writes rows in bulk; it casts the timestamp text to TIMESTAMP.
    let mut files_app = tx.appender("files")?;
    for f in rows {
        files_app.append_row(params![
            f.run_id,
            f.vendor,
            f.priority,
            f.input_path,
            f.input_bytes,
            f.input_sha256,
            f.records_in,
            f.records_out,
            f.records_rejected,
            f.status,
            f.error,
            f.started_at,
            f.ended_at,
            f.output_path,
            f.output_bytes,
            f.output_sha256,
            f.reject_path,
            f.part,
            f.parts,
            f.failed_on,
            f.first_record,
            f.lines,
        ])?;
    }
    files_app.flush()?;
    let mut rejects_app = tx.appender("rejects")?;
    for f in rows {
        for r in &f.rejects {
            rejects_app.append_row(params![
                f.run_id,
                f.vendor,
                f.input_path,
                r.field,
                r.rule,
                r.count
            ])?;
        }
    }
    rejects_app.flush()
}

/// Inserts a run's row, its end not known yet.
fn insert_run(conn: &Connection, r: &journal::RunRow) -> duckdb::Result<()> {
    conn.execute(
        "INSERT INTO runs VALUES (?, ?, ?, ?, ?, CAST(? AS TIMESTAMP), NULL, NULL, ?, ?, ?, ?, ?, NULL)",
        params![
            r.run_id,
            r.command,
            r.host,
            r.version,
            r.threads,
            r.started_at,
            r.config_sha256,
            r.mask_profile,
            r.token_subject,
            r.token_issuer,
            r.token_key_id
        ],
    )
    .map(|_| ())
}

fn end_run(conn: &Connection, run: &RunInfo, exit_code: i32) -> duckdb::Result<()> {
    set_run_end(
        conn,
        &run.run_id,
        &ts(&chrono::Utc::now()),
        exit_code,
        cpu_seconds(),
    )
}

/// Records when run `run_id` ended (`ended_at` as [`ts`] writes it), its exit code and the CPU
/// time it used.
fn set_run_end(
    conn: &Connection,
    run_id: &str,
    ended_at: &str,
    exit_code: i32,
    cpu_seconds: Option<f64>,
) -> duckdb::Result<()> {
    conn.execute(
        "UPDATE runs SET ended_at = CAST(? AS TIMESTAMP), exit_code = ?, cpu_seconds = ? WHERE run_id = ?",
        params![ended_at, exit_code, cpu_seconds, run_id],
    )
    .map(|_| ())
}

/// The CPU time (user and system, every thread) this process has used so far, in seconds: a
/// run is one process, so at its end this is the run's CPU time (`runs.cpu_seconds`).
pub fn cpu_seconds() -> Option<f64> {
    // SAFETY: `rusage` is plain data, zeroed is a valid value; `getrusage` only writes into it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a `rusage` for the call's lifetime.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return None;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(secs(u.ru_utime) + secs(u.ru_stime))
}

/// Rows waiting to be written to a ledger in one transaction: one commit for many rows costs
/// far less than one each. A batch is due at [`Batch::ROWS`] rows or a wait ([`Batch::WAIT`]
/// by default) after the last one was written; what a crash loses in between is redone
/// (`process`) or found already done (`publish`) by the next run.
pub struct Batch<T> {
    rows: Vec<T>,
    since: std::time::Instant,
    wait: std::time::Duration,
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Batch::every(Self::WAIT)
    }
}

impl<T> Batch<T> {
    pub const ROWS: usize = 256;
    pub const WAIT: std::time::Duration = std::time::Duration::from_secs(2);

    /// A batch due `wait` after the last one was written (or at [`Batch::ROWS`] rows).
    pub fn every(wait: std::time::Duration) -> Batch<T> {
        Batch {
            rows: Vec::new(),
            since: std::time::Instant::now(),
            wait,
        }
    }

    /// Adds a row; true when the batch is due to be written.
    pub fn push(&mut self, row: T) -> bool {
        self.rows.push(row);
        self.rows.len() >= Self::ROWS || self.since.elapsed() >= self.wait
    }

    /// The rows to write now; the batch starts again empty.
    pub fn take(&mut self) -> Vec<T> {
        self.since = std::time::Instant::now();
        std::mem::take(&mut self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy made while the ledger is being written holds what was committed, not what a
    /// transaction in progress wrote, and is a whole ledger by itself (no `.wal` beside it).
    #[test]
    fn a_copy_holds_what_was_committed_and_stands_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ledger = Ledger::open(&dir.path().join("slice-00000.duckdb")).expect("ledger");
        let run = RunInfo::new("process");
        ledger.begin_run(&run).expect("run");
        let unit = |name: &str| {
            let mut f = FileOutcome::new("v", Path::new(name), 10, None);
            f.status = crate::outcome::FileStatus::Succeeded;
            ("high".to_string(), f)
        };
        ledger
            .record_files(&run, &[unit("a.csv"), unit("b.csv")])
            .expect("recorded");
        let copies = ledger.snapshots().expect("snapshots");
        // A transaction in progress on the ledger's own connection.
        ledger
            .conn
            .execute_batch("BEGIN TRANSACTION; DELETE FROM files WHERE input_path = 'a.csv';")
            .expect("a delete in a transaction");
        let copy = dir.path().join("copy").join("slice-00000.duckdb");
        std::fs::create_dir_all(copy.parent().expect("parent")).expect("mkdir");
        copies.write(&copy).expect("copied");
        ledger.conn.execute_batch("ROLLBACK").expect("rollback");
        // Made again over the first copy, as the next upload does.
        copies.write(&copy).expect("copied again");
        let mut wal = copy.as_os_str().to_owned();
        wal.push(".wal");
        assert!(!Path::new(&wal).exists());
        // The file alone, elsewhere, is a ledger with both units.
        let moved = dir.path().join("moved.duckdb");
        std::fs::copy(&copy, &moved).expect("copy the file");
        drop(copies);
        let read = Ledger::open(&moved).expect("the copy opens");
        let n: i64 = read
            .connection()
            .query_row("SELECT count(*) FROM files", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 2);
    }

    /// A slice's ledger from before the parts' counts (version 5) opens, is brought up to
    /// date, and records a part's first record and lines beside its earlier rows (left empty).
    #[test]
    fn a_version_5_ledger_opens_and_records_the_parts_counts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("slice-00000.duckdb");
        let run = RunInfo::new("process");
        let part = crate::plan::Part {
            index: 1,
            count: 3,
            start: 100,
            end: 200,
            first_record: 0,
            first_line: 0,
            preamble_bytes: Some(3),
            epilogue_bytes: None,
            e_tag: None,
        };
        let unit = |name: &str, lines: Option<u64>| {
            let mut f = FileOutcome::new("v", Path::new(name), 10, Some(&part));
            f.lines = lines;
            ("high".to_string(), f)
        };
        {
            let old = Ledger::open(&path).expect("ledger");
            old.begin_run(&run).expect("run");
            old.conn
                .execute_batch(
                    "ALTER TABLE files DROP COLUMN first_record;
                     ALTER TABLE files DROP COLUMN lines;
                     UPDATE meta SET value = '5' WHERE key = 'schema_version';",
                )
                .expect("made version 5");
            old.conn
                .execute_batch(
                    "INSERT INTO files (run_id, vendor, priority, input_path, input_bytes, input_sha256,
                         records_in, records_out, records_rejected, status, started_at, ended_at,
                         output_bytes, part, parts)
                     VALUES ('r', 'v', 'high', 'old.jsonl', 1, '', 1, 1, 0, 'succeeded',
                         TIMESTAMP '2026-01-01', TIMESTAMP '2026-01-01', 0, 1, 3)",
                )
                .expect("an old row");
        }
        let mut ledger = Ledger::open(&path).expect("a version 5 ledger opens");
        ledger
            .record_files(&run, &[unit("new.jsonl", Some(42))])
            .expect("recorded");
        let rows: Vec<(String, Option<i64>, Option<i64>)> = {
            let mut stmt = ledger
                .conn
                .prepare("SELECT input_path, first_record, lines FROM files ORDER BY input_path")
                .expect("query");
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .expect("rows")
                .collect::<Result<_, _>>()
                .expect("read")
        };
        assert_eq!(
            rows,
            vec![
                ("new.jsonl".to_string(), Some(0), Some(42)),
                ("old.jsonl".to_string(), None, None)
            ]
        );
        let version: String = ledger
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
    }
}
