//! `batchwin publish`: deliver processed outputs to vendors' outbound locations, atomically
//! and idempotently, recording every delivery in a ledger.

use std::path::PathBuf;

use clap::Args;

use super::transfer::TransferArgs;
use crate::exit::{ExitStatus, Failure};
use crate::ledger::{Ledger, RunInfo};
use crate::printer::{self, GlobalArgs};
use crate::transfer::publish::{PublishRequest, publish};
use crate::transfer::runtime;

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The vendor configuration file.
    #[arg(long, env = crate::env::ENV_CONFIG, default_value = "batchwin.toml")]
    pub config: PathBuf,
    /// The slices' ledgers: a folder of *.duckdb files (searched recursively) or one ledger.
    #[arg(long)]
    pub ledgers: PathBuf,
    /// Where outputs go: a folder, file://, s3://, az://, gs:// or sftp://USER@HOST:PORT/DIR
    /// (a vendor's transfer.outbound replaces it).
    #[arg(long)]
    pub target: Option<String>,
    /// The day the outputs belong to (YYYY-MM-DD; default today), for the outbound layout.
    #[arg(long, env = crate::env::ENV_DATE, value_parser = printer::check_date)]
    pub date: Option<String>,
    /// The ledger deliveries are recorded in (default: LEDGERS/publish.duckdb).
    #[arg(long)]
    pub ledger: Option<PathBuf>,
    /// Replace a delivered file whose content differs (default: refuse).
    #[arg(long)]
    pub overwrite: bool,
    /// Accepted for symmetry with `plan`'s outputs; the ledgers say what ran.
    #[arg(long, hide = true)]
    pub plan: Option<PathBuf>,
    #[command(flatten)]
    pub transfer: TransferArgs,
}

pub fn run(g: &GlobalArgs, a: PublishArgs) -> Result<ExitStatus, Failure> {
    let config = crate::config::Config::load(&a.config)?;
    let ts = a.transfer.resolve(&config, None)?;
    let date = a.date.clone().unwrap_or_else(printer::today);
    let ledger_path = a.ledger.clone().unwrap_or_else(|| {
        if a.ledgers.is_file() {
            a.ledgers.with_file_name("publish.duckdb")
        } else {
            a.ledgers.join("publish.duckdb")
        }
    });
    let run = RunInfo::new("publish");
    {
        let l = Ledger::open(&ledger_path).map_err(Failure::data)?;
        l.begin_run(&run).map_err(Failure::data)?;
    }
    let rt = runtime()?;
    let result = rt.block_on(async {
        let req = PublishRequest {
            config: &config,
            settings: &ts,
            target: a.target.as_deref(),
            date: &date,
            ledgers: &a.ledgers,
            ledger: &ledger_path,
            run: &run,
            overwrite: a.overwrite,
            progress: printer::progress_enabled(g),
        };
        publish(&req).await
    });
    let (status, outcome) = match result {
        Ok(o) => {
            // A refused host key first: running again cannot help until it is dealt with.
            let s = if o.host_key_refused {
                ExitStatus::Usage
            } else if o.transient {
                ExitStatus::Retryable
            } else if !o.refused.is_empty() || !o.failed.is_empty() || !o.not_ready.is_empty() {
                ExitStatus::DataFailure
            } else {
                ExitStatus::Success
            };
            (s, Ok(o))
        }
        Err(e) => (
            e.downcast_ref::<crate::storage::StorageError>()
                .map_or(ExitStatus::DataFailure, |s| s.exit_status()),
            Err(e),
        ),
    };
    if let Ok(l) = Ledger::open(&ledger_path) {
        let _ = l.end_run(&run, status.code() as i32);
    }
    let o = outcome.map_err(|error| Failure { status, error })?;
    if !g.quiet {
        println!(
            "publish    {date}: {} delivered ({:.1} MB), {} already there, {} refused, {} failed, {} not ready; ledger `{}`",
            o.delivered,
            o.bytes as f64 / 1e6,
            o.skipped,
            o.refused.len(),
            o.failed.len(),
            o.not_ready.len(),
            ledger_path.display()
        );
    }
    Ok(status)
}
