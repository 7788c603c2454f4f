//! Every read of a ledger, as typed rows: which units are done (the one definition,
//! [`LatestUnits::is_done`]: `run` asks it of whole files, `process` of each unit of its
//! slice through `Ledger::latest_units`), each vendor's cost history for `plan`, what `publish` may
//! deliver, and the figures `report` (and `demo`'s check) sum up.
//!
//! Most reads are of the `latest` view ([`make_latest`]): the latest attempt of each unit (a
//! file, or a part of a split file), among the units of the file's latest cut. A ledger's
//! writes are in [`super`]; merging many ledgers, and the tables only a merged ledger has, in
//! [`super::merge`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use duckdb::{Connection, params};

/// The latest attempt of each unit, among the units of the file's latest split: when a later
/// plan cut a file into a different number of parts, the parts of the earlier cut no longer
/// count (their byte ranges are not the new parts'). A failed unit of a file in quarantine
/// (the `quarantined` view) has the state `quarantined`, so every view of the states says so.
pub(crate) const LATEST: &str = "CREATE OR REPLACE TEMP VIEW quarantined AS
    SELECT * FROM quarantine q
    WHERE NOT EXISTS (
        SELECT 1 FROM releases r WHERE r.input_path = q.input_path AND r.released_at >= q.quarantined_at
    )
    QUALIFY row_number() OVER (PARTITION BY input_path ORDER BY quarantined_at DESC) = 1;
CREATE OR REPLACE TEMP VIEW latest AS
    SELECT * EXCLUDE (latest_split) REPLACE (
        CASE WHEN status = 'failed' AND input_path IN (SELECT input_path FROM quarantined)
             THEN 'quarantined' ELSE status END AS status
    ) FROM (
        SELECT *, first_value(coalesce(parts, 1)) OVER (PARTITION BY input_path ORDER BY ended_at DESC) AS latest_split
        FROM files
    )
    WHERE coalesce(parts, 1) = latest_split
    QUALIFY row_number() OVER (PARTITION BY input_path, coalesce(part, -1) ORDER BY ended_at DESC) = 1";

/// Makes (again) the `latest` and `quarantined` views on `conn`, which every read below but
/// [`cost_history`] needs. Temporary views: nothing is written to the ledger file.
pub fn make_latest(conn: &Connection) -> duckdb::Result<()> {
    conn.execute_batch(LATEST)
}

// ---------------------------------------------------------------------------------------------
// Quarantine

/// A file in quarantine, or due to be: its latest failed attempt, and how many runs failed on
/// its data since it was last released.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Quarantined {
    pub vendor: String,
    pub input_path: String,
    /// The checksum of what the last failed attempt read (a part's, for a split file).
    pub input_sha256: String,
    pub attempts: i64,
    /// The last failed attempt's error.
    pub error: Option<String>,
    /// UTC, `YYYY-MM-DD HH:MM:SS`; `None` for a file only due (not recorded yet).
    pub quarantined_at: Option<String>,
}

/// Files whose latest attempt failed on their data (`files.failed_on`) and that at least
/// `max_attempts` runs failed on since they were last released (a split file: the part
/// attempted most), not in quarantine yet. A run counts once however many of a file's parts
/// it failed; cancelled, deferred and blocked attempts and failures of the run (a write, the
/// ledger) do not count.
pub fn quarantine_due(conn: &Connection, max_attempts: u32) -> duckdb::Result<Vec<Quarantined>> {
    let mut stmt = conn.prepare(
        "WITH since AS (SELECT input_path, max(released_at) AS at FROM releases GROUP BY input_path),
         tries AS (
             SELECT f.input_path, coalesce(f.part, -1) AS part, count(DISTINCT f.run_id) AS n
             FROM files f LEFT JOIN since s USING (input_path)
             WHERE f.status = 'failed' AND f.failed_on = 'data' AND (s.at IS NULL OR f.ended_at > s.at)
             GROUP BY ALL
         )
         SELECT l.vendor, l.input_path, arg_max(l.input_sha256, l.ended_at), max(t.n),
                arg_max(l.error, l.ended_at)
         FROM latest l JOIN tries t ON t.input_path = l.input_path AND t.part = coalesce(l.part, -1)
         WHERE l.status = 'failed' AND l.failed_on = 'data'
         GROUP BY l.vendor, l.input_path
         HAVING max(t.n) >= ?
         ORDER BY l.vendor, l.input_path",
    )?;
    let rows = stmt.query_map(params![i64::from(max_attempts)], |r| {
        Ok(Quarantined {
            vendor: r.get(0)?,
            input_path: r.get(1)?,
            input_sha256: r.get(2)?,
            attempts: r.get(3)?,
            error: r.get(4)?,
            quarantined_at: None,
        })
    })?;
    rows.collect()
}

/// The [`Quarantined`] in a row's columns: vendor, input, checksum, attempts, error, time.
fn quarantined_row(r: &duckdb::Row<'_>) -> duckdb::Result<Quarantined> {
    Ok(Quarantined {
        vendor: r.get(0)?,
        input_path: r.get(1)?,
        input_sha256: r.get(2)?,
        attempts: r.get::<_, i32>(3)?.into(),
        error: r.get(4)?,
        quarantined_at: r.get(5)?,
    })
}

/// Files in quarantine now (not released since), by vendor and path.
pub fn quarantined(conn: &Connection) -> duckdb::Result<Vec<Quarantined>> {
    let mut stmt = conn.prepare(
        "SELECT vendor, input_path, input_sha256, attempts, error,
                strftime(quarantined_at, '%Y-%m-%d %H:%M:%S')
         FROM quarantined ORDER BY vendor, input_path",
    )?;
    let rows = stmt.query_map([], quarantined_row)?;
    rows.collect()
}

/// A release of a file from quarantine, as `log --why` tells it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReleaseEvent {
    pub input_path: String,
    pub released_by: String,
    pub note: Option<String>,
    /// UTC, `YYYY-MM-DD HH:MM:SS`.
    pub released_at: String,
}

/// Every quarantine and release of the files whose path is `file` or ends with `/file`, oldest
/// first: `(quarantines, releases)`.
pub fn quarantine_history(
    conn: &Connection,
    file: &str,
) -> duckdb::Result<(Vec<Quarantined>, Vec<ReleaseEvent>)> {
    let mut stmt = conn.prepare(
        "SELECT vendor, input_path, input_sha256, attempts, error,
                strftime(quarantined_at, '%Y-%m-%d %H:%M:%S')
         FROM quarantine WHERE input_path = ?1 OR input_path LIKE '%/' || ?1
         ORDER BY quarantined_at",
    )?;
    let quarantines = stmt
        .query_map([file], quarantined_row)?
        .collect::<duckdb::Result<Vec<_>>>()?;
    let mut stmt = conn.prepare(
        "SELECT input_path, released_by, note, strftime(released_at, '%Y-%m-%d %H:%M:%S')
         FROM releases WHERE input_path = ?1 OR input_path LIKE '%/' || ?1
         ORDER BY released_at",
    )?;
    let releases = stmt
        .query_map([file], |r| {
            Ok(ReleaseEvent {
                input_path: r.get(0)?,
                released_by: r.get(1)?,
                note: r.get(2)?,
                released_at: r.get(3)?,
            })
        })?
        .collect::<duckdb::Result<Vec<_>>>()?;
    Ok((quarantines, releases))
}

// ---------------------------------------------------------------------------------------------
// Which units are done

/// The latest attempt of one unit (a file processed whole, or one part of a split file), with
/// what the ledger recorded of its input, its output and the configuration it ran under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitAttempt {
    pub input_path: String,
    /// The part's index (from 0); `None` for a file processed whole.
    pub part: Option<u32>,
    /// How many parts the file was cut into; `None` for a file processed whole.
    pub parts: Option<u32>,
    pub succeeded: bool,
    /// The checksum of what the unit read: the file's, or for a part the part's bytes'.
    pub input_sha256: String,
    pub output_path: Option<String>,
    pub output_bytes: u64,
    /// The checksum of the configuration of the run that made the attempt, when it read one.
    pub config_sha256: Option<String>,
    /// The masking profile the run applied (`None`: the masks as configured).
    pub mask_profile: Option<String>,
}

/// Why a unit (or a file) is not done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotDone {
    /// The ledgers have no attempt of it.
    NeverAttempted,
    /// Its latest attempt did not succeed (failed, cancelled, deferred, blocked).
    Failed,
    /// Its latest attempt ran under another configuration.
    OtherConfig,
    /// Its latest attempt applied another masking profile (see [`LatestUnits::is_done_as`]).
    OtherProfile,
    /// Its output is gone, or no longer has the size recorded.
    OutputGone,
    /// Its input is not the one done (another checksum).
    InputChanged,
    /// A split file with parts of its latest cut that have no attempt.
    PartMissing,
}

/// What to ask [`LatestUnits::is_done`] about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitRef<'a> {
    /// One unit: a file processed whole (`part: None`) or one part of a split file.
    One { input: &'a str, part: Option<u32> },
    /// A whole file, however it was processed: done when every unit of its latest cut is.
    File(&'a str),
}

/// The latest attempt of every unit in one or more ledgers, by input file (its units in part
/// order).
#[derive(Debug, Clone, Default)]
pub struct LatestUnits {
    files: HashMap<String, Vec<UnitAttempt>>,
}

impl LatestUnits {
    /// Reads the `latest` view ([`make_latest`]).
    pub fn read(conn: &Connection) -> duckdb::Result<LatestUnits> {
        let mut stmt = conn.prepare(
            "SELECT l.input_path, l.part, l.parts, l.status = 'succeeded', l.input_sha256,
                    l.output_path, l.output_bytes, r.config_sha256, r.mask_profile
             FROM latest l LEFT JOIN runs r USING (run_id)",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(UnitAttempt {
                input_path: r.get(0)?,
                part: r.get::<_, Option<i64>>(1)?.map(|p| p as u32),
                parts: r.get::<_, Option<i64>>(2)?.map(|p| p as u32),
                succeeded: r.get(3)?,
                input_sha256: r.get(4)?,
                output_path: r.get(5)?,
                output_bytes: r.get::<_, i64>(6)?.max(0) as u64,
                config_sha256: r.get(7)?,
                mask_profile: r.get(8)?,
            })
        })?;
        let mut attempts = Vec::new();
        for a in rows {
            attempts.push(a?);
        }
        Ok(LatestUnits::from_attempts(attempts))
    }

    /// Groups attempts that are each the latest of their unit.
    pub fn from_attempts(attempts: impl IntoIterator<Item = UnitAttempt>) -> LatestUnits {
        let mut files: HashMap<String, Vec<UnitAttempt>> = HashMap::new();
        for a in attempts {
            files.entry(a.input_path.clone()).or_default().push(a);
        }
        for units in files.values_mut() {
            units.sort_by_key(|a| a.part);
        }
        LatestUnits { files }
    }

    /// The latest attempt of one unit.
    pub fn attempt(&self, input: &str, part: Option<u32>) -> Option<&UnitAttempt> {
        self.files.get(input)?.iter().find(|a| a.part == part)
    }

    /// Every unit's latest attempt, in no particular order.
    pub fn attempts(&self) -> impl Iterator<Item = &UnitAttempt> {
        self.files.values().flatten()
    }

    /// Whether `unit` is done, the one answer every command gives: its latest attempt
    /// succeeded, under the configuration with checksum `config_sha256` when that is known,
    /// its output is still there with the size recorded, and its input is the one done
    /// (`same_input` is asked with the attempt, last, as it may have to read the input). For a
    /// whole file ([`UnitRef::File`]), each unit of its latest cut must be done, and the cut
    /// complete.
    pub fn is_done(
        &self,
        unit: UnitRef<'_>,
        config_sha256: Option<&str>,
        same_input: impl FnMut(&UnitAttempt) -> bool,
    ) -> Result<(), NotDone> {
        self.is_done_where(unit, config_sha256, same_input, local_output_present)
    }

    /// [`is_done`](Self::is_done), asking `output_present` whether an attempt's output is
    /// still there with the size recorded: a run location on an object store answers with the
    /// object's size, a local folder with the file's.
    pub fn is_done_where(
        &self,
        unit: UnitRef<'_>,
        config_sha256: Option<&str>,
        mut same_input: impl FnMut(&UnitAttempt) -> bool,
        mut output_present: impl FnMut(&UnitAttempt) -> bool,
    ) -> Result<(), NotDone> {
        let attempts: Vec<&UnitAttempt> = match unit {
            UnitRef::One { input, part } => {
                vec![self.attempt(input, part).ok_or(NotDone::NeverAttempted)?]
            }
            UnitRef::File(input) => {
                let units = self.files.get(input).ok_or(NotDone::NeverAttempted)?;
                let cut = units.first().and_then(|u| u.parts).unwrap_or(1).max(1);
                if units.len() != cut as usize {
                    return Err(NotDone::PartMissing);
                }
                units.iter().collect()
            }
        };
        for a in &attempts {
            recorded_done(a, config_sha256)?;
        }
        for a in &attempts {
            if !output_present(a) {
                return Err(NotDone::OutputGone);
            }
        }
        for a in &attempts {
            if !same_input(a) {
                return Err(NotDone::InputChanged);
            }
        }
        Ok(())
    }
}

impl LatestUnits {
    /// [`is_done`](Self::is_done), for a slice of a plan whose outputs must have been made
    /// under masking profile `profile` (`None`: the masks as configured): an output made under
    /// another profile shows other values, so its unit is not done. `run`, which asks what is
    /// left of a day before it plans, asks [`is_done`](Self::is_done): what was delivered under
    /// a profile is done whatever the next token.
    pub fn is_done_as(
        &self,
        unit: UnitRef<'_>,
        config_sha256: Option<&str>,
        profile: Option<&str>,
        same_input: impl FnMut(&UnitAttempt) -> bool,
        output_present: impl FnMut(&UnitAttempt) -> bool,
    ) -> Result<(), NotDone> {
        if let UnitRef::One { input, part } = unit
            && self
                .attempt(input, part)
                .is_some_and(|a| a.succeeded && a.mask_profile.as_deref() != profile)
        {
            return Err(NotDone::OtherProfile);
        }
        self.is_done_where(unit, config_sha256, same_input, output_present)
    }
}

/// Whether an attempt's output is a local file with the size recorded.
pub fn local_output_present(a: &UnitAttempt) -> bool {
    a.output_path.as_ref().is_some_and(|o| {
        std::fs::metadata(o).is_ok_and(|m| m.is_file() && m.len() == a.output_bytes)
    })
}

/// Whether an attempt's output is among `sizes` (each file of a store by its URL, with its
/// size: [`crate::storage::Store::sizes`]) with the size recorded.
pub fn listed_output_present(
    sizes: &std::collections::HashMap<String, u64>,
    a: &UnitAttempt,
) -> bool {
    a.output_path
        .as_ref()
        .is_some_and(|o| sizes.get(o) == Some(&a.output_bytes))
}

/// What the ledger alone tells of an attempt: it succeeded, with an output, under the
/// configuration asked about (when known).
fn recorded_done(a: &UnitAttempt, config_sha256: Option<&str>) -> Result<(), NotDone> {
    if !a.succeeded {
        return Err(NotDone::Failed);
    }
    if config_sha256.is_some_and(|c| a.config_sha256.as_deref() != Some(c)) {
        return Err(NotDone::OtherConfig);
    }
    if a.output_path.is_none() {
        return Err(NotDone::OutputGone);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// plan: each vendor's measured cost

/// A vendor's succeeded work in earlier ledgers: input bytes and seconds spent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct VendorCost {
    pub bytes: f64,
    pub seconds: f64,
}

/// Each vendor's bytes and seconds over every succeeded attempt in the ledgers below `dir`
/// ([`super::find_ledgers`], which folds their journals), each opened read-only.
pub fn cost_history(dir: &Path) -> anyhow::Result<BTreeMap<String, VendorCost>> {
    use anyhow::Context;
    let mut totals: BTreeMap<String, VendorCost> = BTreeMap::new();
    let ledgers = super::find_ledgers(dir, None)
        .with_context(|| format!("cannot read `{}`", dir.display()))?;
    for p in ledgers {
        let conn = Connection::open_with_flags(
            &p,
            duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly)?,
        )
        .with_context(|| format!("cannot open ledger `{}`", p.display()))?;
        let mut stmt = conn.prepare(
            "SELECT vendor, sum(input_bytes)::DOUBLE, sum(epoch(ended_at) - epoch(started_at))::DOUBLE FROM files WHERE status = 'succeeded' GROUP BY vendor",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, f64>(1)?,
                r.get::<_, f64>(2)?,
            ))
        })?;
        for r in rows {
            let (v, bytes, secs) = r?;
            let t = totals.entry(v).or_default();
            t.bytes += bytes;
            t.seconds += secs;
        }
    }
    Ok(totals)
}

/// What the `process` runs of the ledgers below `dir` held against the file time they
/// recorded: (vCPU-seconds held, seconds of file time). Files of one run overlap (file workers
/// and chunks run side by side), so a run's summed file time is not its cost; its wall time
/// times its threads is (see [`process_use`]).
pub fn held_vcpu_history(dir: &Path) -> anyhow::Result<(f64, f64)> {
    use anyhow::Context;
    let (mut held, mut file_seconds) = (0.0, 0.0);
    let ledgers = super::find_ledgers(dir, None)
        .with_context(|| format!("cannot read `{}`", dir.display()))?;
    for p in ledgers {
        let conn = Connection::open_with_flags(
            &p,
            duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly)?,
        )
        .with_context(|| format!("cannot open ledger `{}`", p.display()))?;
        let (h, f): (f64, f64) = conn.query_row(
            "SELECT coalesce(sum((epoch(coalesce(r.ended_at, f.last)) - epoch(r.started_at)) * r.threads), 0)::DOUBLE,
                    coalesce(sum(f.file_seconds), 0)::DOUBLE
             FROM runs r JOIN (SELECT run_id, max(ended_at) AS last,
                                      sum(epoch(ended_at) - epoch(started_at)) AS file_seconds
                               FROM files GROUP BY run_id) f USING (run_id)
             WHERE r.command = 'process'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        held += h;
        file_seconds += f;
    }
    Ok((held, file_seconds))
}

// ---------------------------------------------------------------------------------------------
// publish: what may be delivered

/// The latest attempt of a unit, as `publish` needs it.
#[derive(Debug, Clone)]
pub struct Deliverable {
    pub vendor: String,
    pub input_path: String,
    pub part: Option<i64>,
    pub parts: Option<i64>,
    pub status: String,
    pub error: Option<String>,
    pub output_path: Option<String>,
    pub output_sha256: Option<String>,
    pub reject_path: Option<String>,
    pub records_in: i64,
    pub records_rejected: i64,
    pub output_bytes: i64,
    /// `ended_at`, microseconds since the epoch.
    pub ended_us: i64,
    /// For a part: the number of its first record in the whole file, 0 when it numbered its
    /// records and lines from its own start; `None` for a whole file, or a row written before
    /// the ledger recorded it.
    pub first_record: Option<i64>,
    /// For a part of a file at a URL: the line feeds in its bytes (the first part's from the
    /// file's start).
    pub lines: Option<i64>,
}

/// The latest attempt of every unit, by vendor, input and part.
pub fn deliverables(conn: &Connection) -> duckdb::Result<Vec<Deliverable>> {
    let mut stmt = conn.prepare(
        "SELECT vendor, input_path, part, parts, status, error, output_path, output_sha256, reject_path,
                records_in, records_rejected, output_bytes, epoch_us(ended_at), first_record, lines
         FROM latest ORDER BY vendor, input_path, coalesce(part, -1)",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Deliverable {
            vendor: r.get(0)?,
            input_path: r.get(1)?,
            part: r.get(2)?,
            parts: r.get(3)?,
            status: r.get(4)?,
            error: r.get(5)?,
            output_path: r.get(6)?,
            output_sha256: r.get(7)?,
            reject_path: r.get(8)?,
            records_in: r.get(9)?,
            records_rejected: r.get(10)?,
            output_bytes: r.get(11)?,
            ended_us: r.get(12)?,
            first_record: r.get(13)?,
            lines: r.get(14)?,
        })
    })?;
    rows.collect()
}

// ---------------------------------------------------------------------------------------------
// Figures of the latest attempts (demo, report)

/// Sums over the latest attempt of every unit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatestTotals {
    pub files: i64,
    pub units: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub deferred: i64,
    pub cancelled: i64,
    pub blocked: i64,
    pub quarantined: i64,
    pub records_in: i64,
    pub records_out: i64,
    pub records_rejected: i64,
    pub bytes: i64,
    /// Seconds from the first start to the last end.
    pub wall_seconds: f64,
}

/// The count of latest attempts in each state but `succeeded`, as SQL select items: failed,
/// deferred, cancelled, blocked (see [`crate::outcome::FileStatus`]), quarantined (see
/// [`LATEST`]).
const NOT_DONE: &str = "count(*) FILTER (WHERE status = 'failed'), \
     count(*) FILTER (WHERE status = 'deferred'), count(*) FILTER (WHERE status = 'cancelled'), \
     count(*) FILTER (WHERE status = 'blocked'), count(*) FILTER (WHERE status = 'quarantined')";

pub fn totals(conn: &Connection) -> duckdb::Result<LatestTotals> {
    conn.query_row(
        &format!(
            "SELECT count(DISTINCT input_path), count(*), count(*) FILTER (WHERE status = 'succeeded'),
                {NOT_DONE},
                coalesce(sum(records_in), 0)::BIGINT, coalesce(sum(records_out), 0)::BIGINT,
                coalesce(sum(records_rejected), 0)::BIGINT, coalesce(sum(input_bytes), 0)::BIGINT,
                coalesce(epoch(max(ended_at)) - epoch(min(started_at)), 0)::DOUBLE
         FROM latest"
        ),
        [],
        |r| {
            Ok(LatestTotals {
                files: r.get(0)?,
                units: r.get(1)?,
                succeeded: r.get(2)?,
                failed: r.get(3)?,
                deferred: r.get(4)?,
                cancelled: r.get(5)?,
                blocked: r.get(6)?,
                quarantined: r.get(7)?,
                records_in: r.get(8)?,
                records_out: r.get(9)?,
                records_rejected: r.get(10)?,
                bytes: r.get(11)?,
                wall_seconds: r.get(12)?,
            })
        },
    )
}

/// Records a vendor's latest attempts rejected for one reason (`field.rule`, or `rule`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectReason {
    pub vendor: String,
    pub reason: String,
    pub count: i64,
}

/// Reject reasons by vendor, each vendor's most frequent first.
pub fn reject_reasons(conn: &Connection) -> duckdb::Result<Vec<RejectReason>> {
    let mut stmt = conn.prepare(
        "SELECT r.vendor, coalesce(r.field || '.', '') || r.rule, sum(r.count)::BIGINT AS n
         FROM rejects r JOIN (SELECT DISTINCT run_id, input_path FROM latest) l USING (run_id, input_path)
         GROUP BY 1, 2 ORDER BY 1, n DESC, 2",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(RejectReason {
            vendor: r.get(0)?,
            reason: r.get(1)?,
            count: r.get(2)?,
        })
    })?;
    rows.collect()
}

/// Sums over one vendor's latest attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct VendorTotals {
    pub vendor: String,
    pub priority: String,
    pub units: i64,
    pub failed: i64,
    pub deferred: i64,
    pub cancelled: i64,
    pub blocked: i64,
    pub quarantined: i64,
    pub records_in: i64,
    pub records_rejected: i64,
    /// Seconds its units ran, added up.
    pub seconds: f64,
}

/// Each vendor's sums, by vendor.
pub fn vendor_totals(conn: &Connection) -> duckdb::Result<Vec<VendorTotals>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT vendor, min(priority), count(*), {NOT_DONE},
                sum(records_in)::BIGINT, sum(records_rejected)::BIGINT,
                sum(epoch(ended_at) - epoch(started_at))::DOUBLE
         FROM latest GROUP BY vendor ORDER BY vendor"
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok(VendorTotals {
            vendor: r.get(0)?,
            priority: r.get(1)?,
            units: r.get(2)?,
            failed: r.get(3)?,
            deferred: r.get(4)?,
            cancelled: r.get(5)?,
            blocked: r.get(6)?,
            quarantined: r.get(7)?,
            records_in: r.get(8)?,
            records_rejected: r.get(9)?,
            seconds: r.get(10)?,
        })
    })?;
    rows.collect()
}

/// Sums over one slice's latest attempts (a merged ledger's `slice` column).
#[derive(Debug, Clone, PartialEq)]
pub struct SliceTotals {
    pub slice: String,
    /// First start and last end, `YYYY-MM-DD HH:MM:SS` (UTC).
    pub start: String,
    pub end: String,
    pub seconds: f64,
    pub units: i64,
    pub records: i64,
    /// Seconds between this slice's end and the last slice's end.
    pub idle_seconds: f64,
}

/// Each slice's sums, by slice.
pub fn slice_totals(conn: &Connection) -> duckdb::Result<Vec<SliceTotals>> {
    let mut stmt = conn.prepare(
        "SELECT slice, strftime(min(started_at), '%Y-%m-%d %H:%M:%S'), strftime(max(ended_at), '%Y-%m-%d %H:%M:%S'),
                (epoch(max(ended_at)) - epoch(min(started_at)))::DOUBLE, count(*), sum(records_in)::BIGINT,
                (epoch((SELECT max(ended_at) FROM latest)) - epoch(max(ended_at)))::DOUBLE
         FROM latest GROUP BY slice ORDER BY slice",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(SliceTotals {
            slice: r.get(0)?,
            start: r.get(1)?,
            end: r.get(2)?,
            seconds: r.get(3)?,
            units: r.get(4)?,
            records: r.get(5)?,
            idle_seconds: r.get(6)?,
        })
    })?;
    rows.collect()
}

/// A unit whose latest attempt did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedAttempt {
    pub vendor: String,
    pub input_path: String,
    pub part: Option<i64>,
    /// `failed`, `deferred`, `cancelled` or `blocked`.
    pub status: String,
    /// The error recorded, or else the status.
    pub error: String,
}

/// Units whose latest attempt did not succeed, by vendor, input and part.
pub fn failed_attempts(conn: &Connection) -> duckdb::Result<Vec<FailedAttempt>> {
    let mut stmt = conn.prepare(
        "SELECT vendor, input_path, part, status, coalesce(error, status) FROM latest WHERE status <> 'succeeded' ORDER BY vendor, input_path, part",
    )?;
    let rows = stmt.query_map([], |r| failed_attempt(r, 0))?;
    rows.collect()
}

/// The [`FailedAttempt`] in a row's columns from `at` on: vendor, input, part, status, error.
fn failed_attempt(r: &duckdb::Row<'_>, at: usize) -> duckdb::Result<FailedAttempt> {
    Ok(FailedAttempt {
        vendor: r.get(at)?,
        input_path: r.get(at + 1)?,
        part: r.get(at + 2)?,
        status: r.get(at + 3)?,
        error: r.get(at + 4)?,
    })
}

/// The latest attempt of one unit, with its state, from a merged ledger: what `status` counts
/// each unit by, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestUnit {
    /// The slice ledger it is recorded in (`slice-00000`).
    pub slice: String,
    pub vendor: String,
    pub priority: String,
    pub input_path: String,
    pub part: Option<i64>,
    /// How many parts the file was cut into; `None` for a file processed whole.
    pub parts: Option<i64>,
    /// `succeeded`, `failed`, `deferred`, `cancelled`, `blocked` or `quarantined`.
    pub status: String,
    /// The error recorded, or else the status.
    pub error: String,
    pub records_in: i64,
    pub records_rejected: i64,
    /// When it ended, RFC 3339 with microseconds (`...Z`); `None` for a unit that never ran
    /// (deferred, blocked), as [`priority_totals`]'s `last_end` counts them.
    pub ended_at: Option<String>,
}

/// Every unit's latest attempt ([`LatestUnit`]), by slice, vendor, input and part, from a
/// merged ledger (which has a `slice` column).
pub fn latest_units(conn: &Connection) -> duckdb::Result<Vec<LatestUnit>> {
    let mut stmt = conn.prepare(
        "SELECT slice, vendor, priority, input_path, part, parts, status, coalesce(error, status),
                records_in, records_rejected,
                CASE WHEN status NOT IN ('deferred', 'blocked')
                     THEN strftime(ended_at, '%Y-%m-%dT%H:%M:%S.%fZ') END
         FROM latest ORDER BY slice, vendor, input_path, part",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(LatestUnit {
            slice: r.get(0)?,
            vendor: r.get(1)?,
            priority: r.get(2)?,
            input_path: r.get(3)?,
            part: r.get(4)?,
            parts: r.get(5)?,
            status: r.get(6)?,
            error: r.get(7)?,
            records_in: r.get(8)?,
            records_rejected: r.get(9)?,
            ended_at: r.get(10)?,
        })
    })?;
    rows.collect()
}

/// One attempt of a unit, as `log --why` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAttempt {
    /// The slice ledger it is recorded in (a merged ledger's `slice`).
    pub slice: String,
    pub input_path: String,
    pub part: Option<i64>,
    pub parts: Option<i64>,
    pub status: String,
    pub error: Option<String>,
    /// UTC, `YYYY-MM-DD HH:MM:SS`.
    pub started_at: String,
    pub ended_at: String,
    pub input_sha256: String,
    pub config_sha256: Option<String>,
}

/// Every attempt, in a merged ledger, of the input files whose path is `file` or ends with
/// `/file`, oldest first.
pub fn file_attempts(conn: &Connection, file: &str) -> duckdb::Result<Vec<FileAttempt>> {
    let mut stmt = conn.prepare(
        "SELECT f.slice, f.input_path, f.part, f.parts, f.status, f.error,
                strftime(f.started_at, '%Y-%m-%d %H:%M:%S'), strftime(f.ended_at, '%Y-%m-%d %H:%M:%S'),
                f.input_sha256, r.config_sha256
         FROM files f LEFT JOIN runs r USING (run_id)
         WHERE f.input_path = ?1 OR f.input_path LIKE '%/' || ?1
         ORDER BY f.ended_at, f.part",
    )?;
    let rows = stmt.query_map([file], |r| {
        Ok(FileAttempt {
            slice: r.get(0)?,
            input_path: r.get(1)?,
            part: r.get(2)?,
            parts: r.get(3)?,
            status: r.get(4)?,
            error: r.get(5)?,
            started_at: r.get(6)?,
            ended_at: r.get(7)?,
            input_sha256: r.get(8)?,
            config_sha256: r.get(9)?,
        })
    })?;
    rows.collect()
}

/// Every unit with an attempt: (input path, part).
pub fn attempted_units(conn: &Connection) -> duckdb::Result<HashSet<(String, Option<i64>)>> {
    let mut stmt = conn.prepare("SELECT input_path, part FROM latest")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?))
    })?;
    rows.collect()
}

/// Which masking profile `process` runs applied and whose token chose it (see
/// `vendor::profile::MaskingChoice`): one row per distinct choice, with its number of runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MaskingAudit {
    /// `None`: the masks as configured.
    pub profile: Option<String>,
    /// The token's `sub`, `iss` and key id; `None` for runs without a token.
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub key_id: Option<String>,
    pub runs: i64,
}

/// The runs' masking choices ([`MaskingAudit`]); empty when no run had a token.
pub fn masking_audit(conn: &Connection) -> duckdb::Result<Vec<MaskingAudit>> {
    let mut stmt = conn.prepare(
        "SELECT mask_profile, token_subject, token_issuer, token_key_id, count(*)
         FROM runs WHERE command = 'process'
         GROUP BY ALL
         ORDER BY min(started_at), mask_profile NULLS FIRST, token_subject NULLS FIRST",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(MaskingAudit {
            profile: r.get(0)?,
            subject: r.get(1)?,
            issuer: r.get(2)?,
            key_id: r.get(3)?,
            runs: r.get(4)?,
        })
    })?;
    let rows: Vec<MaskingAudit> = rows.collect::<duckdb::Result<_>>()?;
    let any = rows
        .iter()
        .any(|a| a.profile.is_some() || a.subject.is_some());
    Ok(if any { rows } else { Vec::new() })
}

/// The first start of any latest attempt, RFC 3339 with microseconds (`...Z`).
pub fn first_start(conn: &Connection) -> duckdb::Result<Option<String>> {
    conn.query_row(
        "SELECT strftime(min(started_at), '%Y-%m-%dT%H:%M:%S.%fZ') FROM latest",
        [],
        |r| r.get(0),
    )
}

/// One priority's latest attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityTotals {
    pub succeeded: i64,
    pub failed: i64,
    pub deferred: i64,
    pub cancelled: i64,
    pub blocked: i64,
    pub quarantined: i64,
    /// The last end of a unit that ran (a deferred or blocked one never did), RFC 3339 with
    /// microseconds (`...Z`).
    pub last_end: Option<String>,
}

pub fn priority_totals(conn: &Connection, priority: &str) -> duckdb::Result<PriorityTotals> {
    conn.query_row(
        &format!(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'), {NOT_DONE},
                strftime(max(ended_at) FILTER (WHERE status NOT IN ('deferred', 'blocked')), '%Y-%m-%dT%H:%M:%S.%fZ')
         FROM latest WHERE priority = ?"
        ),
        params![priority],
        |r| {
            Ok(PriorityTotals {
                succeeded: r.get(0)?,
                failed: r.get(1)?,
                deferred: r.get(2)?,
                cancelled: r.get(3)?,
                blocked: r.get(4)?,
                quarantined: r.get(5)?,
                last_end: r.get(6)?,
            })
        },
    )
}

/// When a unit's latest attempt ran.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitSpan {
    pub slice: String,
    pub vendor: String,
    pub priority: String,
    pub input_path: String,
    pub part: Option<i64>,
    /// Seconds since the epoch.
    pub started: f64,
    pub ended: f64,
    pub succeeded: bool,
}

/// Every unit's latest attempt, by slice and start.
pub fn unit_spans(conn: &Connection) -> duckdb::Result<Vec<UnitSpan>> {
    let mut stmt = conn.prepare(
        "SELECT slice, vendor, priority, input_path, part, epoch(started_at)::DOUBLE, epoch(ended_at)::DOUBLE, status
         FROM latest ORDER BY slice, started_at",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(UnitSpan {
            slice: r.get(0)?,
            vendor: r.get(1)?,
            priority: r.get(2)?,
            input_path: r.get(3)?,
            part: r.get(4)?,
            started: r.get(5)?,
            ended: r.get(6)?,
            succeeded: r.get::<_, String>(7)? == "succeeded",
        })
    })?;
    rows.collect()
}

/// Each latest attempt's end, seconds after `origin` (seconds since the epoch), and the
/// records it read.
pub fn unit_ends(conn: &Connection, origin: f64) -> duckdb::Result<Vec<(f64, i64)>> {
    let mut stmt = conn.prepare("SELECT (epoch(ended_at) - ?)::DOUBLE, records_in FROM latest")?;
    let rows = stmt.query_map(params![origin], |r| {
        Ok((r.get::<_, f64>(0)?, r.get::<_, i64>(1)?))
    })?;
    rows.collect()
}

/// What the `process` runs of a (merged) ledger held and used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessUse {
    pub runs: u64,
    /// Each run's wall time times its threads, a run killed before its end counted to its last
    /// file: what an engine bills, the vCPUs a worker holds, busy or not.
    pub vcpu_seconds_held: f64,
    /// The CPU time the runs measured (`runs.cpu_seconds`), over the runs that recorded it
    /// (ended runs of ledger version 7 or later), and how many did.
    pub cpu_seconds: f64,
    pub runs_with_cpu: u64,
}

/// [`ProcessUse`] of the `process` runs of a (merged) ledger.
pub fn process_use(conn: &Connection) -> duckdb::Result<ProcessUse> {
    conn.query_row(
        "SELECT count(*)::BIGINT,
                coalesce(sum((epoch(coalesce(r.ended_at, f.last)) - epoch(r.started_at)) * r.threads), 0)::DOUBLE,
                coalesce(sum(r.cpu_seconds), 0)::DOUBLE,
                count(r.cpu_seconds)::BIGINT
         FROM runs r LEFT JOIN (SELECT run_id, max(ended_at) AS last FROM files GROUP BY run_id) f
              USING (run_id)
         WHERE r.command = 'process'",
        [],
        |r| {
            Ok(ProcessUse {
                runs: r.get::<_, i64>(0)?.max(0) as u64,
                vcpu_seconds_held: r.get(1)?,
                cpu_seconds: r.get(2)?,
                runs_with_cpu: r.get::<_, i64>(3)?.max(0) as u64,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Ledger, RunInfo};
    use crate::outcome::{FailedOn, FileOutcome, FileStatus};
    use std::path::PathBuf;

    /// Counts `latest` rows per (input, parts) after the given attempts.
    fn latest_of(rows: &[(&str, Option<i32>, Option<i32>, &str)]) -> Vec<(String, i64, i64)> {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE files (input_path VARCHAR, part INTEGER, parts INTEGER, ended_at TIMESTAMP, status VARCHAR DEFAULT 'succeeded');
             CREATE TABLE quarantine (input_path VARCHAR, quarantined_at TIMESTAMP);
             CREATE TABLE releases (input_path VARCHAR, released_at TIMESTAMP);",
        )
        .unwrap();
        for (input, part, parts, at) in rows {
            conn.execute(
                "INSERT INTO files (input_path, part, parts, ended_at) VALUES (?, ?, ?, ?::TIMESTAMP)",
                duckdb::params![input, part, parts, at],
            )
            .unwrap();
        }
        make_latest(&conn).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT input_path, coalesce(parts, 1), count(*) FROM latest GROUP BY ALL ORDER BY ALL",
            )
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn only_the_latest_cut_of_a_file_counts() {
        let mut rows = Vec::new();
        // `a` cut into 6 parts, then again into 4: the 4 count, not parts 4 and 5 of the 6.
        for p in 0..6 {
            rows.push(("a", Some(p), Some(6), "2026-11-29 01:00:00"));
        }
        for p in 0..4 {
            rows.push(("a", Some(p), Some(4), "2026-11-29 02:00:00"));
        }
        // `b` whole, then again whole: one unit. `c` cut into 2, then processed whole.
        rows.push(("b", None, None, "2026-11-29 01:00:00"));
        rows.push(("b", None, None, "2026-11-29 02:00:00"));
        rows.push(("c", Some(0), Some(2), "2026-11-29 01:00:00"));
        rows.push(("c", Some(1), Some(2), "2026-11-29 01:00:00"));
        rows.push(("c", None, None, "2026-11-29 03:00:00"));
        assert_eq!(
            latest_of(&rows),
            [
                ("a".to_string(), 4, 4),
                ("b".to_string(), 1, 1),
                ("c".to_string(), 1, 1)
            ]
        );
    }

    /// A ledger in a temporary folder, written through [`Ledger`] as `process` writes it.
    struct Fixture {
        dir: tempfile::TempDir,
        ledger: Ledger,
        /// Seconds added to each attempt's end, so that later attempts are the latest.
        clock: i64,
    }

    const CONFIG: &str = "config-a";

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let ledger = Ledger::open(&dir.path().join("slice-00000.duckdb")).unwrap();
            Fixture {
                dir,
                ledger,
                clock: 0,
            }
        }

        /// Records one attempt at a unit of `input` under `config`; a succeeded one writes an
        /// output of 5 bytes.
        fn attempt(
            &mut self,
            input: &str,
            part: Option<(u32, u32)>,
            status: FileStatus,
            config: &str,
        ) {
            self.clock += 1;
            let mut run = RunInfo::new("process");
            run.config_sha256 = Some(config.to_string());
            self.ledger.begin_run(&run).unwrap();
            let mut f = FileOutcome::new("v", Path::new(input), 10, None);
            f.part = part;
            f.status = status;
            f.input_sha256 = format!("sha-of-{input}-{part:?}");
            f.ended_at = chrono::DateTime::UNIX_EPOCH + chrono::Duration::seconds(self.clock);
            f.started_at = f.ended_at;
            if status == FileStatus::Succeeded {
                let name = format!("{input}-{}.out", part.map_or(0, |p| p.0));
                let out = self.dir.path().join(name);
                std::fs::write(&out, b"12345").unwrap();
                f.output_path = Some(out);
                f.output_bytes = 5;
            }
            self.ledger
                .record_files(&run, &[("high".to_string(), f)])
                .unwrap();
        }

        fn latest(&self) -> LatestUnits {
            make_latest(self.ledger.connection()).unwrap();
            LatestUnits::read(self.ledger.connection()).unwrap()
        }
    }

    /// The input is the one recorded.
    fn same(a: &UnitAttempt) -> bool {
        a.input_sha256 == format!("sha-of-{}-{:?}", a.input_path, a.part.zip(a.parts))
    }

    fn whole(input: &str) -> UnitRef<'_> {
        UnitRef::One { input, part: None }
    }

    #[test]
    fn a_unit_whose_latest_attempt_succeeded_is_done() {
        let mut f = Fixture::new();
        f.attempt("a", None, FileStatus::Failed, CONFIG);
        f.attempt("a", None, FileStatus::Succeeded, CONFIG);
        let l = f.latest();
        assert_eq!(l.is_done(whole("a"), Some(CONFIG), same), Ok(()));
        assert_eq!(l.is_done(UnitRef::File("a"), Some(CONFIG), same), Ok(()));
        // Unknown configuration: not asked about.
        assert_eq!(l.is_done(whole("a"), None, same), Ok(()));
        assert_eq!(
            l.is_done(whole("other"), Some(CONFIG), same),
            Err(NotDone::NeverAttempted)
        );
        // Another input checksum: not the input that was done.
        assert_eq!(
            l.is_done(whole("a"), Some(CONFIG), |_| false),
            Err(NotDone::InputChanged)
        );
    }

    #[test]
    fn a_unit_whose_latest_attempt_failed_is_not_done() {
        let mut f = Fixture::new();
        f.attempt("a", None, FileStatus::Succeeded, CONFIG);
        f.attempt("a", None, FileStatus::Failed, CONFIG);
        f.attempt("b", None, FileStatus::Cancelled, CONFIG);
        let l = f.latest();
        for input in ["a", "b"] {
            assert_eq!(
                l.is_done(whole(input), Some(CONFIG), same),
                Err(NotDone::Failed)
            );
        }
    }

    #[test]
    fn a_unit_done_under_another_configuration_is_not_done() {
        let mut f = Fixture::new();
        f.attempt("a", None, FileStatus::Succeeded, "config-b");
        let l = f.latest();
        assert_eq!(
            l.is_done(whole("a"), Some(CONFIG), same),
            Err(NotDone::OtherConfig)
        );
        assert_eq!(l.is_done(whole("a"), Some("config-b"), same), Ok(()));
    }

    #[test]
    fn a_unit_whose_output_was_removed_or_changed_is_not_done() {
        let mut f = Fixture::new();
        f.attempt("a", None, FileStatus::Succeeded, CONFIG);
        f.attempt("b", None, FileStatus::Succeeded, CONFIG);
        let l = f.latest();
        let out = |i: &str| PathBuf::from(l.attempt(i, None).unwrap().output_path.clone().unwrap());
        std::fs::remove_file(out("a")).unwrap();
        std::fs::write(out("b"), b"1234").unwrap();
        for input in ["a", "b"] {
            assert_eq!(
                l.is_done(whole(input), Some(CONFIG), same),
                Err(NotDone::OutputGone)
            );
        }
    }

    #[test]
    fn a_split_file_is_done_when_every_part_of_its_latest_cut_is() {
        let mut f = Fixture::new();
        // Cut in 3, parts 0 and 2 done, part 1 never attempted.
        f.attempt("a", Some((0, 3)), FileStatus::Succeeded, CONFIG);
        f.attempt("a", Some((2, 3)), FileStatus::Succeeded, CONFIG);
        // Cut in 2, both parts done.
        f.attempt("b", Some((0, 2)), FileStatus::Succeeded, CONFIG);
        f.attempt("b", Some((1, 2)), FileStatus::Succeeded, CONFIG);
        // Cut in 2, part 1 failed.
        f.attempt("c", Some((0, 2)), FileStatus::Succeeded, CONFIG);
        f.attempt("c", Some((1, 2)), FileStatus::Failed, CONFIG);
        let l = f.latest();
        assert_eq!(
            l.is_done(UnitRef::File("a"), Some(CONFIG), same),
            Err(NotDone::PartMissing)
        );
        let part = |input, part| UnitRef::One {
            input,
            part: Some(part),
        };
        // Each part on its own is done or not.
        assert_eq!(l.is_done(part("a", 0), Some(CONFIG), same), Ok(()));
        assert_eq!(
            l.is_done(part("a", 1), Some(CONFIG), same),
            Err(NotDone::NeverAttempted)
        );
        assert_eq!(l.is_done(UnitRef::File("b"), Some(CONFIG), same), Ok(()));
        assert_eq!(
            l.is_done(UnitRef::File("c"), Some(CONFIG), same),
            Err(NotDone::Failed)
        );
        assert_eq!(
            l.is_done(part("c", 1), Some(CONFIG), same),
            Err(NotDone::Failed)
        );
        // A part's output removed: the file is not done.
        std::fs::remove_file(
            l.attempt("b", Some(1))
                .unwrap()
                .output_path
                .as_deref()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            l.is_done(UnitRef::File("b"), Some(CONFIG), same),
            Err(NotDone::OutputGone)
        );
    }

    /// One run that failed on `on` every unit of `units` (input, part).
    fn failed_run(f: &mut Fixture, units: &[(&str, Option<(u32, u32)>)], on: FailedOn) {
        f.clock += 1;
        let run = RunInfo::new("process");
        f.ledger.begin_run(&run).unwrap();
        let rows: Vec<(String, FileOutcome)> = units
            .iter()
            .map(|(input, part)| {
                let mut o = FileOutcome::new("v", Path::new(input), 10, None);
                o.part = *part;
                o.status = FileStatus::Failed;
                o.failed_on = Some(on);
                o.error = Some(format!("{on} trouble"));
                o.input_sha256 = format!("sha-of-{input}");
                o.ended_at = chrono::DateTime::UNIX_EPOCH + chrono::Duration::seconds(f.clock);
                ("high".to_string(), o)
            })
            .collect();
        f.ledger.record_files(&run, &rows).unwrap();
    }

    /// The files due for quarantine after `max` attempts, by path.
    fn due(f: &Fixture, max: u32) -> Vec<(String, i64)> {
        make_latest(f.ledger.connection()).unwrap();
        quarantine_due(f.ledger.connection(), max)
            .unwrap()
            .into_iter()
            .map(|q| (q.input_path, q.attempts))
            .collect()
    }

    /// Runs that failed on a file's data count towards its quarantine, once per run however
    /// many of its parts failed; failures of the run (a write) do not count; a file whose
    /// latest attempt succeeded is not due; once quarantined it is listed as such, and its
    /// failed units have the state `quarantined`; a release starts the count again.
    #[test]
    fn files_that_fail_on_their_data_max_attempts_runs_are_due_for_quarantine() {
        let mut f = Fixture::new();
        let split = [("s", Some((0, 2))), ("s", Some((1, 2)))];
        for _ in 0..2 {
            failed_run(&mut f, &[("a", None)], FailedOn::Data);
            failed_run(&mut f, &split, FailedOn::Data);
            failed_run(&mut f, &[("w", None)], FailedOn::Run);
            failed_run(&mut f, &[("ok", None)], FailedOn::Data);
        }
        f.attempt("ok", None, FileStatus::Succeeded, CONFIG);
        assert_eq!(due(&f, 3), vec![]);
        assert_eq!(due(&f, 2), vec![("a".into(), 2), ("s".into(), 2)]);
        failed_run(&mut f, &[("w", None)], FailedOn::Run);
        failed_run(&mut f, &[("a", None)], FailedOn::Data);
        let now = chrono::DateTime::UNIX_EPOCH + chrono::Duration::seconds(f.clock + 1);
        let a = quarantine_due(f.ledger.connection(), 3).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].input_path, "a");
        assert_eq!(a[0].error.as_deref(), Some("data trouble"));
        f.ledger.record_quarantine("r1", &a, now).unwrap();
        make_latest(f.ledger.connection()).unwrap();
        let held = quarantined(f.ledger.connection()).unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!((held[0].input_path.as_str(), held[0].attempts), ("a", 3));
        assert_eq!(totals(f.ledger.connection()).unwrap().quarantined, 1);
        // Already in quarantine: not due again.
        assert_eq!(due(&f, 3), vec![]);
        // Released: out of quarantine, failed again, and its count starts from zero.
        let later = now + chrono::Duration::seconds(1);
        f.ledger
            .record_releases("r2", &[("v".into(), "a".into())], "oncall", None, later)
            .unwrap();
        f.clock += 2;
        make_latest(f.ledger.connection()).unwrap();
        assert!(quarantined(f.ledger.connection()).unwrap().is_empty());
        // a, both parts of s, and w.
        assert_eq!(totals(f.ledger.connection()).unwrap().failed, 4);
        failed_run(&mut f, &[("a", None)], FailedOn::Data);
        assert_eq!(due(&f, 2), vec![("s".into(), 2)]);
        assert_eq!(due(&f, 1), vec![("a".into(), 1), ("s".into(), 2)]);
    }
}
