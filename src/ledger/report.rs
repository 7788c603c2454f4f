//! Merging many ledgers into one and summing them up: what `report` shows.
//!
//! [`merge`] copies every ledger of a run (one per slice) into one DuckDB file with the same
//! tables plus the `slice` each row came from. Merging is idempotent (a slice's rows are replaced,
//! not added again) and tolerant: a ledger that cannot be read is listed in `sources` with its
//! error instead of stopping the merge. [`summarize`] reads the merged file, counting each unit
//! (a file, or a part of a split file) once, by its latest attempt.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use duckdb::{Connection, params};
use serde::Serialize;

use super::{Ledger, LedgerError};

/// One ledger merged (or not).
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub slice: String,
    pub path: String,
    pub error: Option<String>,
}

fn quote_sql(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Every `*.duckdb` below `dir` (or `dir` itself when it is a file), sorted, skipping `skip`.
pub fn find_ledgers(dir: &Path, skip: Option<&Path>) -> std::io::Result<Vec<PathBuf>> {
    if dir.is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let skip = skip.and_then(|s| std::fs::canonicalize(s).ok());
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "duckdb")
                && std::fs::canonicalize(&p).ok() != skip
            {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Merges `ledgers` into the ledger at `merged` (created when missing).
pub fn merge(merged: &Path, ledgers: &[PathBuf]) -> Result<(Connection, Vec<Source>), LedgerError> {
    let ledger = Ledger::open(merged)?;
    let conn = ledger.conn;
    let p = merged.display().to_string();
    let err = |source| LedgerError::Db {
        path: p.clone(),
        source,
    };
    conn.execute_batch(
        "ALTER TABLE files ADD COLUMN IF NOT EXISTS slice VARCHAR;
         ALTER TABLE runs ADD COLUMN IF NOT EXISTS slice VARCHAR;
         ALTER TABLE rejects ADD COLUMN IF NOT EXISTS slice VARCHAR;
         ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS slice VARCHAR;
         CREATE TABLE IF NOT EXISTS sources (slice VARCHAR PRIMARY KEY, path VARCHAR, error VARCHAR);",
    )
    .map_err(err)?;
    let already: std::collections::HashSet<String> = {
        let mut stmt = conn.prepare("SELECT slice FROM sources").map_err(err)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(err)?;
        rows.filter_map(Result::ok).collect()
    };
    let mut sources = Vec::new();
    // Ledgers are attached and copied in batches: one transaction per batch, not per ledger,
    // keeps a merge of a thousand slices to seconds.
    for batch in ledgers.chunks(64) {
        let mut good: Vec<(String, String)> = Vec::new(); // (alias, slice)
        for (i, path) in batch.iter().enumerate() {
            let slice = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let alias = format!("src{i}");
            let check = (|| -> Result<(), String> {
                conn.execute_batch(&format!(
                    "ATTACH {} AS {alias} (READ_ONLY)",
                    quote_sql(&path.display().to_string())
                ))
                .map_err(|e| e.to_string())?;
                let version: String = conn
                    .query_row(
                        &format!("SELECT value FROM {alias}.meta WHERE key = 'schema_version'"),
                        [],
                        |r| r.get(0),
                    )
                    .map_err(|e| format!("not a batchwin ledger: {e}"))?;
                if version != super::SCHEMA_VERSION {
                    return Err(format!(
                        "schema version {version}, this batchwin reads {}",
                        super::SCHEMA_VERSION
                    ));
                }
                Ok(())
            })();
            match check {
                Ok(()) => good.push((alias, slice.clone())),
                Err(e) => {
                    let _ = conn.execute_batch(&format!("DETACH {alias}"));
                    sources.push(Source {
                        slice,
                        path: path.display().to_string(),
                        error: Some(e),
                    });
                    continue;
                }
            }
            sources.push(Source {
                slice,
                path: path.display().to_string(),
                error: None,
            });
        }
        if !good.is_empty() {
            let copy = (|| -> Result<(), duckdb::Error> {
                conn.execute_batch("BEGIN TRANSACTION")?;
                let replaced: Vec<String> = good
                    .iter()
                    .filter(|(_, s)| already.contains(s))
                    .map(|(_, s)| quote_sql(s))
                    .collect();
                for table in ["files", "runs", "rejects", "deliveries"] {
                    if !replaced.is_empty() {
                        conn.execute_batch(&format!(
                            "DELETE FROM {table} WHERE slice IN ({})",
                            replaced.join(", ")
                        ))?;
                    }
                    let selects: Vec<String> = good
                        .iter()
                        .map(|(a, s)| format!("SELECT *, {} FROM {a}.{table}", quote_sql(s)))
                        .collect();
                    // A run id is unique per process; a copied ledger may repeat one: keep the first.
                    let verb = if table == "runs" {
                        "INSERT OR IGNORE"
                    } else {
                        "INSERT"
                    };
                    conn.execute_batch(&format!(
                        "{verb} INTO {table} {}",
                        selects.join(" UNION ALL ")
                    ))?;
                }
                conn.execute_batch("COMMIT")
            })();
            if let Err(e) = copy {
                let _ = conn.execute_batch("ROLLBACK");
                for s in sources.iter_mut().rev().take(batch.len()) {
                    if s.error.is_none() {
                        s.error = Some(e.to_string());
                    }
                }
            }
            for (alias, _) in &good {
                let _ = conn.execute_batch(&format!("DETACH {alias}"));
            }
        }
    }
    // One transaction for the whole list: each commit is a sync to disk.
    conn.execute_batch("BEGIN TRANSACTION").map_err(err)?;
    for s in &sources {
        conn.execute(
            "INSERT OR REPLACE INTO sources VALUES (?, ?, ?)",
            params![s.slice, s.path, s.error],
        )
        .map_err(err)?;
    }
    conn.execute_batch("COMMIT").map_err(err)?;
    Ok((conn, sources))
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub files: i64,
    pub units: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub records_in: i64,
    pub records_out: i64,
    pub records_rejected: i64,
    pub bytes: i64,
    pub wall_seconds: f64,
    pub records_per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct VendorRow {
    pub vendor: String,
    pub priority: String,
    pub units: i64,
    pub failed: i64,
    pub records_in: i64,
    pub records_rejected: i64,
    pub seconds: f64,
    pub records_per_second: f64,
    pub top_reasons: Vec<(String, i64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SliceRow {
    pub slice: String,
    pub start: String,
    pub end: String,
    pub seconds: f64,
    pub units: i64,
    pub records: i64,
    /// Seconds between this slice's end and the last slice's end.
    pub idle_seconds: f64,
    pub straggler: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub vendor: String,
    pub input_path: String,
    pub part: Option<i64>,
    pub error: String,
}

/// One priority's files against its SLA.
#[derive(Debug, Clone, Serialize)]
pub struct PriorityRow {
    pub priority: String,
    pub units_done: i64,
    pub units_failed: i64,
    /// Units in the plan with no result (needs the plan).
    pub units_missing: i64,
    /// Seconds from the window start to the priority's last finish.
    pub finished_after_seconds: Option<f64>,
    /// The tightest SLA among the priority's vendors (needs the config).
    pub sla_seconds: Option<f64>,
    /// How much later than the SLA it finished (negative: how much earlier).
    pub late_by_seconds: Option<f64>,
    pub sla_met: bool,
}

/// A planned unit with no result.
#[derive(Debug, Clone, Serialize)]
pub struct Missing {
    pub slice: usize,
    pub vendor: String,
    pub priority: String,
    pub location: String,
    pub part: Option<u32>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub window_start: Option<String>,
    pub totals: Totals,
    pub priorities: Vec<PriorityRow>,
    pub vendors: Vec<VendorRow>,
    pub slices: Vec<SliceRow>,
    pub failures: Vec<Failure>,
    pub missing: Vec<Missing>,
    /// Planned slices with no ledger at all.
    pub slices_never_started: Vec<usize>,
    pub unreadable: Vec<Source>,
    /// Every unit's run, in seconds from the window start, for the timeline.
    pub timeline: Vec<TimelineItem>,
    /// Records finished in each tenth of the run.
    pub throughput: Vec<ThroughputBucket>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineItem {
    pub slice: String,
    pub vendor: String,
    pub priority: String,
    pub name: String,
    pub start_seconds: f64,
    pub end_seconds: f64,
    pub failed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThroughputBucket {
    pub end_seconds: f64,
    pub records: i64,
}

/// What the report knows besides the ledgers.
#[derive(Debug, Default)]
pub struct Context<'a> {
    pub plan: Option<&'a crate::plan::Plan>,
    /// Each priority's tightest SLA, seconds.
    pub slas: BTreeMap<String, f64>,
    /// When the window opened; default: the first start in the ledgers.
    pub window_start: Option<chrono::DateTime<chrono::Utc>>,
}

/// The latest attempt of each unit, among the units of the file's latest split: when a later
/// plan cut a file into a different number of parts, the parts of the earlier cut no longer
/// count (their byte ranges are not the new parts').
pub(crate) const LATEST: &str = "CREATE OR REPLACE TEMP VIEW latest AS
    SELECT * EXCLUDE (latest_split) FROM (
        SELECT *, first_value(coalesce(parts, 1)) OVER (PARTITION BY input_path ORDER BY ended_at DESC) AS latest_split
        FROM files
    )
    WHERE coalesce(parts, 1) = latest_split
    QUALIFY row_number() OVER (PARTITION BY input_path, coalesce(part, -1) ORDER BY ended_at DESC) = 1";

/// Merges `ledgers` into a ledger held in memory (nothing to clean up, even when the process
/// is killed), makes the `latest` view (the latest attempt of each unit) and runs `f` on it.
/// Ledgers that cannot be read are named in a warning.
pub fn with_latest<T>(
    ledgers: &[PathBuf],
    f: impl FnOnce(&Connection) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let (conn, sources) = merge(Path::new(IN_MEMORY), ledgers)?;
    for s in sources.iter().filter(|s| s.error.is_some()) {
        tracing::warn!(
            "ledger `{}` cannot be read: {}",
            s.path,
            s.error.as_deref().unwrap_or("")
        );
    }
    conn.execute_batch(LATEST)?;
    f(&conn)
}

/// DuckDB's name for a database that lives in memory only.
const IN_MEMORY: &str = ":memory:";

/// Sums up a merged ledger.
pub fn summarize(
    conn: &Connection,
    sources: &[Source],
    ctx: &Context<'_>,
) -> Result<Summary, duckdb::Error> {
    conn.execute_batch(LATEST)?;
    // Each vendor's measured cost, for planning the next runs (`plan --history` reads the same
    // figures from any ledger).
    conn.execute_batch(
        "CREATE OR REPLACE TABLE history AS
         SELECT vendor,
                count(*) AS units,
                sum(input_bytes)::BIGINT AS bytes,
                sum(records_in)::BIGINT AS records,
                sum(epoch(ended_at) - epoch(started_at))::DOUBLE AS seconds,
                (sum(epoch(ended_at) - epoch(started_at)) / nullif(sum(input_bytes), 0))::DOUBLE AS seconds_per_byte,
                (sum(epoch(ended_at) - epoch(started_at)) / nullif(sum(records_in), 0))::DOUBLE AS seconds_per_record
         FROM latest WHERE status = 'succeeded' GROUP BY vendor ORDER BY vendor",
    )?;
    let totals = conn.query_row(
        "SELECT count(DISTINCT input_path), count(*), count(*) FILTER (WHERE status = 'succeeded'),
                count(*) FILTER (WHERE status <> 'succeeded'),
                coalesce(sum(records_in), 0)::BIGINT, coalesce(sum(records_out), 0)::BIGINT,
                coalesce(sum(records_rejected), 0)::BIGINT, coalesce(sum(input_bytes), 0)::BIGINT,
                coalesce(epoch(max(ended_at)) - epoch(min(started_at)), 0)::DOUBLE
         FROM latest",
        [],
        |r| {
            let wall: f64 = r.get(8)?;
            let rin: i64 = r.get(4)?;
            Ok(Totals {
                files: r.get(0)?,
                units: r.get(1)?,
                succeeded: r.get(2)?,
                failed: r.get(3)?,
                records_in: rin,
                records_out: r.get(5)?,
                records_rejected: r.get(6)?,
                bytes: r.get(7)?,
                wall_seconds: wall,
                records_per_second: if wall > 0.0 { rin as f64 / wall } else { 0.0 },
            })
        },
    )?;

    let mut reasons: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT r.vendor, coalesce(r.field || '.', '') || r.rule, sum(r.count)::BIGINT AS n
             FROM rejects r JOIN (SELECT DISTINCT run_id, input_path FROM latest) l USING (run_id, input_path)
             GROUP BY 1, 2 ORDER BY 1, n DESC, 2",
        )?;
        for row in stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })? {
            let (v, k, n) = row?;
            let list = reasons.entry(v).or_default();
            if list.len() < 3 {
                list.push((k, n));
            }
        }
    }
    let mut vendors = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT vendor, min(priority), count(*), count(*) FILTER (WHERE status <> 'succeeded'),
                    sum(records_in)::BIGINT, sum(records_rejected)::BIGINT,
                    sum(epoch(ended_at) - epoch(started_at))::DOUBLE
             FROM latest GROUP BY vendor ORDER BY vendor",
        )?;
        for row in stmt.query_map([], |r| {
            let secs: f64 = r.get(6)?;
            let rin: i64 = r.get(4)?;
            Ok(VendorRow {
                vendor: r.get(0)?,
                priority: r.get(1)?,
                units: r.get(2)?,
                failed: r.get(3)?,
                records_in: rin,
                records_rejected: r.get(5)?,
                seconds: secs,
                records_per_second: if secs > 0.0 { rin as f64 / secs } else { 0.0 },
                top_reasons: Vec::new(),
            })
        })? {
            let mut v = row?;
            v.top_reasons = reasons.remove(&v.vendor).unwrap_or_default();
            vendors.push(v);
        }
    }
    let mut slices: Vec<SliceRow> = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT slice, strftime(min(started_at), '%Y-%m-%d %H:%M:%S'), strftime(max(ended_at), '%Y-%m-%d %H:%M:%S'),
                    (epoch(max(ended_at)) - epoch(min(started_at)))::DOUBLE, count(*), sum(records_in)::BIGINT,
                    (epoch((SELECT max(ended_at) FROM latest)) - epoch(max(ended_at)))::DOUBLE
             FROM latest GROUP BY slice ORDER BY slice",
        )?;
        for row in stmt.query_map([], |r| {
            Ok(SliceRow {
                slice: r.get(0)?,
                start: r.get(1)?,
                end: r.get(2)?,
                seconds: r.get(3)?,
                units: r.get(4)?,
                records: r.get(5)?,
                idle_seconds: r.get(6)?,
                straggler: false,
            })
        })? {
            slices.push(row?);
        }
        // A straggler takes half again as long as the median slice, and at least a second more.
        let mut d: Vec<f64> = slices.iter().map(|s| s.seconds).collect();
        d.sort_by(f64::total_cmp);
        if let Some(median) = d.get(d.len() / 2).copied() {
            for s in &mut slices {
                s.straggler = d.len() >= 2 && s.seconds > median * 1.5 && s.seconds - median >= 1.0;
            }
        }
    }
    let mut failures = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT vendor, input_path, part, coalesce(error, status) FROM latest WHERE status <> 'succeeded' ORDER BY vendor, input_path, part",
        )?;
        for row in stmt.query_map([], |r| {
            Ok(Failure {
                vendor: r.get(0)?,
                input_path: r.get(1)?,
                part: r.get(2)?,
                error: r.get(3)?,
            })
        })? {
            failures.push(row?);
        }
    }
    // What the plan expected and the ledgers do not have.
    let mut missing = Vec::new();
    let mut slices_never_started = Vec::new();
    if let Some(plan) = ctx.plan {
        let mut done = std::collections::HashSet::new();
        let mut stmt = conn.prepare("SELECT input_path, part FROM latest")?;
        for row in stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?))
        })? {
            done.insert(row?);
        }
        let ran: std::collections::HashSet<&str> = sources
            .iter()
            .filter(|s| s.error.is_none())
            .map(|s| s.slice.as_str())
            .collect();
        for sl in &plan.slices {
            if !ran.contains(format!("slice-{:05}", sl.index).as_str()) {
                slices_never_started.push(sl.index);
            }
            for u in &sl.units {
                let part = u.part.as_ref().map(|p| p.index);
                if !done.contains(&(u.location.clone(), part.map(i64::from))) {
                    missing.push(Missing {
                        slice: sl.index,
                        vendor: u.vendor.clone(),
                        priority: u.priority.to_string(),
                        location: u.location.clone(),
                        part,
                    });
                }
            }
        }
    }
    // Priorities against their SLAs, measured from the window start.
    let first_start: Option<String> = conn.query_row(
        "SELECT strftime(min(started_at), '%Y-%m-%dT%H:%M:%S.%fZ') FROM latest",
        [],
        |r| r.get(0),
    )?;
    let window_start = ctx.window_start.or_else(|| {
        first_start
            .as_deref()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.with_timezone(&chrono::Utc))
    });
    let mut priorities = Vec::new();
    for p in ["high", "medium", "low"] {
        let (done, failed, last): (i64, i64, Option<String>) = conn.query_row(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status <> 'succeeded'),
                    strftime(max(ended_at), '%Y-%m-%dT%H:%M:%S.%fZ')
             FROM latest WHERE priority = ?",
            params![p],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let units_missing = missing.iter().filter(|m| m.priority == p).count() as i64;
        if done + failed + units_missing == 0 {
            continue;
        }
        let finished = match (&last, window_start) {
            (Some(l), Some(w)) => chrono::DateTime::parse_from_rfc3339(l)
                .ok()
                .map(|e| (e.with_timezone(&chrono::Utc) - w).num_milliseconds() as f64 / 1000.0),
            _ => None,
        };
        let sla = ctx.slas.get(p).copied();
        let late = match (finished, sla) {
            (Some(f), Some(s)) => Some(f - s),
            _ => None,
        };
        priorities.push(PriorityRow {
            priority: p.to_string(),
            units_done: done,
            units_failed: failed,
            units_missing,
            finished_after_seconds: finished,
            sla_seconds: sla,
            late_by_seconds: late,
            sla_met: failed == 0 && units_missing == 0 && late.is_none_or(|l| l <= 0.0),
        });
    }
    // The timeline and throughput, relative to the window start.
    let mut timeline = Vec::new();
    let origin = window_start
        .map(|w| w.timestamp_micros() as f64 / 1e6)
        .unwrap_or(0.0);
    {
        let mut stmt = conn.prepare(
            "SELECT slice, vendor, priority, input_path, part, epoch(started_at)::DOUBLE, epoch(ended_at)::DOUBLE, status
             FROM latest ORDER BY slice, started_at",
        )?;
        let rows = stmt.query_map([], |r| {
            let path: String = r.get(3)?;
            let part: Option<i64> = r.get(4)?;
            let name = path.rsplit('/').next().unwrap_or(&path).to_string();
            Ok(TimelineItem {
                slice: r.get(0)?,
                vendor: r.get(1)?,
                priority: r.get(2)?,
                name: match part {
                    Some(p) => format!("{name} part {}", p + 1),
                    None => name,
                },
                start_seconds: r.get::<_, f64>(5)? - origin,
                end_seconds: r.get::<_, f64>(6)? - origin,
                failed: r.get::<_, String>(7)? != "succeeded",
            })
        })?;
        for t in rows {
            timeline.push(t?);
        }
    }
    let span = timeline.iter().map(|t| t.end_seconds).fold(0.0, f64::max);
    let mut throughput: Vec<ThroughputBucket> = (1..=10)
        .map(|i| ThroughputBucket {
            end_seconds: span * i as f64 / 10.0,
            records: 0,
        })
        .collect();
    {
        let mut stmt =
            conn.prepare("SELECT (epoch(ended_at) - ?)::DOUBLE, records_in FROM latest")?;
        let rows = stmt.query_map(params![origin], |r| {
            Ok((r.get::<_, f64>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (end, n) = row?;
            let i = if span > 0.0 {
                ((end / span) * 10.0).ceil() as usize
            } else {
                1
            };
            if let Some(b) = throughput.get_mut(i.clamp(1, 10) - 1) {
                b.records += n;
            }
        }
    }
    Ok(Summary {
        timeline,
        throughput,
        window_start: window_start.map(|w| w.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        totals,
        priorities,
        vendors,
        slices,
        failures,
        missing,
        slices_never_started,
        unreadable: sources
            .iter()
            .filter(|s| s.error.is_some())
            .cloned()
            .collect(),
    })
}

/// The report as one self-contained HTML page (no scripts, no network): cards, the SLA table,
/// a timeline of units per slice, throughput over time, vendors and reject reasons. Rendered
/// with minijinja from `templates/report.html`, which escapes every value.
pub fn html(s: &Summary) -> Result<String, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    env.add_template("report.html", include_str!("templates/report.html"))?;
    env.get_template("report.html")?
        .render(minijinja::context! { s => minijinja::value::Serde(s) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts `latest` rows per (input, parts) after the given attempts.
    fn latest_of(rows: &[(&str, Option<i32>, Option<i32>, &str)]) -> Vec<(String, i64, i64)> {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE files (input_path VARCHAR, part INTEGER, parts INTEGER, ended_at TIMESTAMP)",
        )
        .unwrap();
        for (input, part, parts, at) in rows {
            conn.execute(
                "INSERT INTO files VALUES (?, ?, ?, ?::TIMESTAMP)",
                duckdb::params![input, part, parts, at],
            )
            .unwrap();
        }
        conn.execute_batch(LATEST).unwrap();
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
}
