//! `batchwin publish`: deliver processed outputs to vendors' outbound locations, atomically
//! and idempotently, recording every delivery in a ledger.

use std::path::PathBuf;

use clap::Args;

use super::transfer::TransferArgs;
use crate::exit::{ExitStatus, Failure};
use crate::ledger::{Ledger, RunInfo};
use crate::printer::{self, GlobalArgs};
use crate::transfer::publish::{PublishRequest, publish};
use crate::transfer::{location, runtime};

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The vendor configuration file.
    #[arg(long, env = crate::env::ENV_CONFIG, default_value = "batchwin.toml")]
    pub config: PathBuf,
    /// The slices' ledgers: a folder of *.duckdb files (searched recursively) or one ledger,
    /// or the URL of a run location's ledgers (s3://BUCKET/RUN/ledgers, ...): they and the
    /// outputs they name are then read from there.
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
    /// Deliver each output as soon as a slice records it, while the slices run: follow the
    /// journals below the local `--ledgers` folder (`process --journal`) until FILE exists,
    /// then deliver what is left from the ledgers. `run` does this beside its slices.
    #[arg(long, value_name = "FILE")]
    pub follow: Option<PathBuf>,
    /// Accepted for symmetry with `plan`'s outputs; the ledgers say what ran.
    #[arg(long, hide = true)]
    pub plan: Option<PathBuf>,
    #[command(flatten)]
    pub transfer: TransferArgs,
}

pub fn run(g: &GlobalArgs, a: PublishArgs) -> Result<ExitStatus, Failure> {
    // SIGTERM or SIGINT (an engine stopping the job, `run` stopping its step) stops it at once,
    // with its local copies and the files it was putting together removed.
    let _signals = crate::cancel::Cancel::exit_on_signal(
        "what was not delivered and recorded is delivered by the next publish",
    )
    .map_err(Failure::data)?;
    let config = crate::config::Config::load(&a.config)?;
    let ts = a.transfer.resolve(&config, None)?;
    let date = a.date.clone().unwrap_or_else(printer::today);
    let rt = runtime()?;
    // A run location's ledgers are read from a local copy; the deliveries' ledger goes back
    // beside them when none is named.
    let remote = location::is_url(&a.ledgers.display().to_string()).then_some(&a.ledgers);
    if remote.is_some() && a.follow.is_some() {
        return Err(Failure::usage(anyhow::anyhow!(
            "--follow reads the journals of slices in a local folder; publish a run location's ledgers once its slices have ended"
        )));
    }
    let copies = location::LocalCopies::new("ledgers")?;
    let ledgers = match remote {
        Some(url) => rt.block_on(location::download_ledgers(
            &url.display().to_string(),
            copies.path(),
            &ts.store,
        ))?,
        None => a.ledgers.clone(),
    };
    let ledger_path = a.ledger.clone().unwrap_or_else(|| {
        if ledgers.is_file() || crate::ledger::journal::path_of(&ledgers).is_file() {
            ledgers.with_file_name("publish.duckdb")
        } else {
            ledgers.join("publish.duckdb")
        }
    });
    let upload_ledger = remote.filter(|_| a.ledger.is_none());
    if let Some(url) = upload_ledger {
        let earlier = format!("{}/publish.duckdb", url.display());
        match rt.block_on(location::download(&earlier, &ledger_path, &ts.store)) {
            Ok(_) | Err(crate::storage::StorageError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let run = RunInfo::new("publish");
    {
        let l = Ledger::open(&ledger_path).map_err(Failure::data)?;
        l.begin_run(&run).map_err(Failure::data)?;
    }
    let result = rt.block_on(async {
        let req = PublishRequest {
            config: &config,
            settings: &ts,
            target: a.target.as_deref(),
            date: &date,
            ledgers: &ledgers,
            ledger: &ledger_path,
            run: &run,
            overwrite: a.overwrite,
            progress: printer::progress_enabled(g),
            follow: a.follow.as_deref(),
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
    if let Some(url) = upload_ledger {
        let url = url.display().to_string();
        rt.block_on(location::upload(
            &url,
            &[("publish.duckdb", &ledger_path)],
            &ts.store,
        ))?;
    }
    let o = outcome.map_err(|error| Failure { status, error })?;
    if o.no_ledgers && !g.quiet {
        println!("publish    nothing to publish: no slice recorded anything");
    } else if !g.quiet {
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
