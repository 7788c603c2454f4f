//! `batchwin fetch`: copy a day's complete inbound files from a source (SFTP, object store or
//! folder) to a staging folder or store and write the manifest for `plan`.

use std::path::PathBuf;

use clap::Args;

use super::transfer::TransferArgs;
use crate::exit::{ExitStatus, Failure};
use crate::printer::{self, GlobalArgs};
use crate::storage::Store;
use crate::transfer::fetch::{FetchRequest, fetch};
use crate::transfer::runtime;

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The vendor configuration file.
    #[arg(long, env = crate::env::ENV_CONFIG, default_value = "batchwin.toml")]
    pub config: PathBuf,
    /// Where vendors drop files: a folder, file://, s3://, az://, gs:// or sftp://USER@HOST:PORT/DIR.
    #[arg(long)]
    pub source: String,
    /// The day to fetch (YYYY-MM-DD; default today).
    #[arg(long, env = crate::env::ENV_DATE, value_parser = printer::check_date)]
    pub date: Option<String>,
    /// Where the files are staged, as STAGING/DATE/VENDOR/FILE: a local folder, or a URL
    /// (s3://, az://, gs://, sftp://, file://) that slices run with `process --plan URL`
    /// download from.
    #[arg(long)]
    pub staging: PathBuf,
    /// The manifest to write (JSON Lines); rows already in it are kept.
    #[arg(long, default_value = "manifest.jsonl")]
    pub manifest: PathBuf,
    /// Before copying, write the rows this fetch will stage to this file (JSON Lines, the
    /// manifest's rows with empty checksums, in the order the files are copied: HIGH vendors'
    /// first), and when it ends (not killed by a signal) `MANIFEST.ended`. `plan --manifest
    /// LISTING --fetching MANIFEST` and `process --fetching MANIFEST` then work while the files
    /// arrive; `run` does so on a day's first run.
    #[arg(long)]
    pub listing: Option<PathBuf>,
    /// How long a file's size and time must stay the same to count as complete (default:
    /// [transfer] settle, then 30s); 0s takes every file as it is listed.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub settle: Option<std::time::Duration>,
    #[command(flatten)]
    pub transfer: TransferArgs,
}

pub fn run(g: &GlobalArgs, a: FetchArgs) -> Result<ExitStatus, Failure> {
    // SIGTERM or SIGINT (an engine stopping the job, `run` stopping its step) stops a fetch
    // at once, with its temporary files and folder removed.
    let cancel =
        crate::cancel::Cancel::exit_on_signal("files in flight are fetched again by the next run")
            .map_err(Failure::data)?;
    // With a listing, whoever waits for the files is told when the fetch has ended (unless a
    // signal ends it): an earlier fetch's marker and listing go first.
    let _ended = match &a.listing {
        Some(listing) => {
            for old in [&crate::plan::arrivals::ended_marker(&a.manifest), listing] {
                match std::fs::remove_file(old) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(Failure::data(anyhow::anyhow!(
                            "cannot remove `{}`: {e}",
                            old.display()
                        )));
                    }
                    _ => {}
                }
            }
            Some(MarkEnded(&a.manifest, &cancel))
        }
        None => None,
    };
    let config = crate::config::Config::load(&a.config)?;
    let ts = a.transfer.resolve(&config, a.settle)?;
    let date = a.date.clone().unwrap_or_else(printer::today);
    let staging_url = a.staging.display().to_string();
    let remote = crate::transfer::location::is_url(&staging_url);
    // A staging store is written through a local folder holding only the files in flight.
    let through = match remote {
        true => Some(crate::transfer::location::LocalCopies::new("fetch")?),
        false => None,
    };
    let rt = runtime()?;
    let outcome = rt.block_on(async {
        let source = Store::open(&a.source, &ts.store).await?;
        let staging_store = match remote {
            true => Some(Store::open(&staging_url, &ts.store).await?),
            false => None,
        };
        let req = FetchRequest {
            config: &config,
            settings: &ts,
            source: &source,
            staging: through.as_ref().map_or(a.staging.as_path(), |t| t.path()),
            staging_store: staging_store.as_ref(),
            date: &date,
            manifest: &a.manifest,
            listing: a.listing.as_deref(),
            progress: printer::progress_enabled(g),
        };
        fetch(&req).await
    });
    // A signal that came while the fetch went on ends it as the signal would have.
    if let Some(sig) = cancel.exiting() {
        return Ok(ExitStatus::Interrupted(sig));
    }
    let o = match outcome {
        Ok(o) => o,
        Err(e) => {
            return Err(Failure {
                status: e.exit_status(),
                error: e.into(),
            });
        }
    };
    for (name, why) in &o.unsafe_names {
        tracing::error!("refused remote name {name}: {why}");
    }
    if !g.quiet {
        let bytes: u64 = o.fetched.iter().map(|r| r.bytes).sum();
        println!(
            "fetch      {date}: {} files staged ({:.1} MB), {} already staged, {} changed and staged again, \
             {} still being uploaded, {} of unknown vendors, {} refused names, {} skipped, {} failed; manifest `{}`: {} files",
            o.fetched.len(),
            bytes as f64 / 1e6,
            o.unchanged,
            o.changed.len(),
            o.waiting.len(),
            o.unknown.len(),
            o.unsafe_names.len(),
            o.skipped.len(),
            o.failed.len(),
            a.manifest.display(),
            o.manifest_rows
        );
    }
    // A refused host key before a transient failure: running again cannot help until the
    // configuration changes.
    let statuses: Vec<ExitStatus> = o.failed.iter().map(|(_, e)| e.exit_status()).collect();
    for worst in [ExitStatus::Usage, ExitStatus::Retryable] {
        if statuses.contains(&worst) {
            return Ok(worst);
        }
    }
    if !o.failed.is_empty() || !o.unsafe_names.is_empty() {
        return Ok(ExitStatus::DataFailure);
    }
    Ok(ExitStatus::Success)
}

/// Writes the manifest's [`crate::plan::arrivals::ended_marker`] when dropped: as the fetch
/// returns, also with an error, unless a signal stopped it.
struct MarkEnded<'a>(&'a std::path::Path, &'a crate::cancel::Cancel);

impl Drop for MarkEnded<'_> {
    fn drop(&mut self) {
        if self.1.is_cancelled() {
            return;
        }
        if let Err(e) = crate::plan::arrivals::mark_ended(self.0) {
            tracing::error!(
                "cannot write `{}` (units waiting for the fetch wait until `run` writes it): {e}",
                crate::plan::arrivals::ended_marker(self.0).display()
            );
        }
    }
}
