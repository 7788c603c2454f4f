//! `batchwin report`: one view of a run from every slice's ledger.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use clap::Args;

use crate::cli::GlobalArgs;
use crate::exit::{ExitStatus, Failure};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A folder of ledgers (`*.duckdb`, searched recursively), or one ledger file.
    #[arg(long)]
    pub ledgers: PathBuf,
}

/// Totals over every file row of every ledger.
#[derive(Debug, Default)]
struct Totals {
    ledgers: usize,
    files: i64,
    failed: i64,
    records_in: i64,
    records_out: i64,
    rejected: i64,
    bytes: i64,
    failures: Vec<(String, String, String)>,
    unreadable: Vec<(PathBuf, String)>,
}

fn ledger_files(p: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if p.is_file() {
        return Ok(vec![p.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("cannot read `{}`", d.display()))? {
            let path = e?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "duckdb") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn read_ledger(path: &Path, t: &mut Totals) -> anyhow::Result<()> {
    let cfg = duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly)?;
    let conn = duckdb::Connection::open_with_flags(path, cfg)?;
    let (files, failed, rin, rout, rej, bytes): (i64, i64, i64, i64, i64, i64) = conn.query_row(
        "SELECT count(*), count(*) FILTER (WHERE status <> 'succeeded'), coalesce(sum(records_in), 0)::BIGINT,
                coalesce(sum(records_out), 0)::BIGINT, coalesce(sum(records_rejected), 0)::BIGINT, coalesce(sum(input_bytes), 0)::BIGINT
         FROM files",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
    )?;
    let mut stmt = conn.prepare("SELECT vendor, input_path, coalesce(error, '') FROM files WHERE status <> 'succeeded' ORDER BY vendor, input_path")?;
    let failures = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    t.ledgers += 1;
    t.files += files;
    t.failed += failed;
    t.records_in += rin;
    t.records_out += rout;
    t.rejected += rej;
    t.bytes += bytes;
    t.failures.extend(failures);
    Ok(())
}

pub fn run(g: &GlobalArgs, a: ReportArgs) -> Result<ExitStatus, Failure> {
    let paths = ledger_files(&a.ledgers).map_err(Failure::usage)?;
    if paths.is_empty() {
        return Err(Failure::data(anyhow!(
            "no ledgers (`*.duckdb`) under `{}`",
            a.ledgers.display()
        )));
    }
    let mut t = Totals::default();
    for p in &paths {
        if let Err(e) = read_ledger(p, &mut t) {
            t.unreadable.push((p.clone(), format!("{e:#}")));
        }
    }
    if !g.quiet {
        use super::process::thousands;
        println!(
            "ledgers    {} read, {} unreadable",
            t.ledgers,
            t.unreadable.len()
        );
        println!(
            "files      {} ({} succeeded, {} failed)",
            t.files,
            t.files - t.failed,
            t.failed
        );
        println!(
            "records    {} in, {} out, {} rejected",
            thousands(t.records_in as u64),
            thousands(t.records_out as u64),
            thousands(t.rejected as u64)
        );
        println!("bytes      {:.1} MB", t.bytes as f64 / 1e6);
        for (v, f, e) in &t.failures {
            println!("failed     {v} `{f}`: {e}");
        }
        for (p, e) in &t.unreadable {
            println!("unreadable `{}`: {e}", p.display());
        }
    }
    Ok(if t.failed > 0 || !t.unreadable.is_empty() {
        ExitStatus::DataFailure
    } else {
        ExitStatus::Success
    })
}
