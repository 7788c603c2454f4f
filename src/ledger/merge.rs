//! Merging many ledgers into one: copying them into one DuckDB file (each one's journal folded
//! in first), and the tables only a merged ledger has (`sources`, each row's `slice`,
//! `history`). Finding a run's ledgers is [`super::find_ledgers`].
//!
//! [`merge`] copies every ledger of a run (one per slice) into one DuckDB file with the same
//! tables plus the `slice` each row came from. Merging is idempotent (a slice's rows are replaced,
//! not added again) and tolerant: a ledger that cannot be read is listed in `sources` with its
//! error instead of stopping the merge. [`with_latest`] merges into memory for the commands that
//! only read (`run`, `publish`, `demo`); what they read is in [`super::query`].

use std::path::{Path, PathBuf};

use duckdb::{Connection, params};
use serde::Serialize;

use super::{Ledger, LedgerError};

/// One ledger merged (or not): the slice it is named after, where it is, and why it could not
/// be read.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerSource {
    pub slice: String,
    pub path: String,
    pub error: Option<String>,
}

fn quote_sql(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Merges `ledgers` into the ledger at `merged` (created when missing).
pub fn merge(
    merged: &Path,
    ledgers: &[PathBuf],
) -> Result<(Connection, Vec<LedgerSource>), LedgerError> {
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
         ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS slice VARCHAR;
         ALTER TABLE releases ADD COLUMN IF NOT EXISTS slice VARCHAR;
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
        let mut good: Vec<(String, String, String)> = Vec::new(); // (alias, slice, version)
        for (i, path) in batch.iter().enumerate() {
            let slice = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let alias = format!("src{i}");
            let check = (|| -> Result<String, String> {
                // A journal that cannot be folded is named and kept; what the ledger itself
                // holds is still merged.
                if let Err(e) = super::journal::fold(path) {
                    tracing::warn!("{e}");
                }
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
                // Versions 3 to 6 lack only columns (left empty by a merge), and 3 and 4 the
                // tables of the quarantine (no rows): the ledgers of a day before the upgrade
                // still report.
                if !["3", "4", "5", "6", super::SCHEMA_VERSION].contains(&version.as_str()) {
                    return Err(format!(
                        "schema version {version}, this batchwin reads 3 to {}",
                        super::SCHEMA_VERSION
                    ));
                }
                Ok(version)
            })();
            match check {
                Ok(version) => good.push((alias, slice.clone(), version)),
                Err(e) => {
                    let _ = conn.execute_batch(&format!("DETACH {alias}"));
                    sources.push(LedgerSource {
                        slice,
                        path: path.display().to_string(),
                        error: Some(e),
                    });
                    continue;
                }
            }
            sources.push(LedgerSource {
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
                    .filter(|(_, s, _)| already.contains(s))
                    .map(|(_, s, _)| quote_sql(s))
                    .collect();
                for table in [
                    "files",
                    "runs",
                    "rejects",
                    "deliveries",
                    "quarantine",
                    "releases",
                ] {
                    if !replaced.is_empty() {
                        conn.execute_batch(&format!(
                            "DELETE FROM {table} WHERE slice IN ({})",
                            replaced.join(", ")
                        ))?;
                    }
                    // By name: an older ledger's tables have fewer columns (left NULL), and it
                    // has no quarantine tables at all.
                    let new_table = matches!(table, "quarantine" | "releases");
                    let selects: Vec<String> = good
                        .iter()
                        .filter(|(_, _, v)| !new_table || !["3", "4"].contains(&v.as_str()))
                        .map(|(a, s, _)| {
                            format!("SELECT *, {} AS slice FROM {a}.{table}", quote_sql(s))
                        })
                        .collect();
                    if selects.is_empty() {
                        continue;
                    }
                    // A run id is unique per process; a copied ledger may repeat one: keep the first.
                    let verb = if table == "runs" {
                        "INSERT OR IGNORE"
                    } else {
                        "INSERT"
                    };
                    conn.execute_batch(&format!(
                        "{verb} INTO {table} BY NAME {}",
                        selects.join(" UNION ALL BY NAME ")
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
            for (alias, _, _) in &good {
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

/// Writes (again) the merged ledger's `history` table: each vendor's measured cost over the
/// latest attempt of its succeeded units, for planning the next runs (`plan --history` reads
/// the same figures from any ledger). Needs the `latest` view ([`super::query::make_latest`]).
pub fn write_history(conn: &Connection) -> duckdb::Result<()> {
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
    )
}

/// Merges `ledgers` into a ledger held in memory (nothing to clean up, even when the process
/// is killed), makes the `latest` view (the latest attempt of each unit) and runs `f` on it,
/// typically one of [`super::query`]'s reads. Ledgers that cannot be read are named in a
/// warning.
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
    super::query::make_latest(&conn)?;
    f(&conn)
}

/// DuckDB's name for a database that lives in memory only.
const IN_MEMORY: &str = ":memory:";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Ledger, RunInfo};
    use crate::outcome::FileOutcome;

    /// A slice ledger written before the masking audit columns (schema 3) is merged with one of
    /// today: both runs and files count, the old run's audit columns empty.
    #[test]
    fn a_schema_3_ledger_merges_beside_a_schema_4_one() {
        let dir = std::env::temp_dir().join(format!("bw-merge-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut paths = Vec::new();
        for (i, version) in ["3", "4"].iter().enumerate() {
            let path = dir.join(format!("slice-0000{i}.duckdb"));
            let mut l = Ledger::open(&path).unwrap();
            let run = RunInfo::new("process");
            l.begin_run(&run).unwrap();
            let o = FileOutcome::new("V001", Path::new(&format!("/in/f{i}.csv")), 10, None);
            l.record_files(&run, &[("high".into(), o)]).unwrap();
            l.end_run(&run, 0).unwrap();
            if *version == "3" {
                l.conn
                    .execute_batch(
                        "ALTER TABLE runs DROP COLUMN mask_profile;
                         ALTER TABLE runs DROP COLUMN token_subject;
                         ALTER TABLE runs DROP COLUMN token_issuer;
                         ALTER TABLE runs DROP COLUMN token_key_id;
                         UPDATE meta SET value = '3' WHERE key = 'schema_version';",
                    )
                    .unwrap();
            }
            drop(l);
            paths.push(path);
        }
        let (conn, sources) = merge(&dir.join("report.duckdb"), &paths).unwrap();
        assert!(sources.iter().all(|s| s.error.is_none()), "{sources:?}");
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("SELECT count(*) FROM files"), 2);
        assert_eq!(count("SELECT count(*) FROM runs"), 2);
        assert_eq!(
            count("SELECT count(*) FROM runs WHERE slice = 'slice-00000' AND mask_profile IS NULL"),
            1
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
