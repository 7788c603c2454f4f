//! `batchwin release`: puts files of a run folder back from quarantine, so that the next run
//! of the window plans them again, recording who released them and when. Glue: the flags,
//! resolved into [`ReleaseSettings`], then [`crate::window::quarantine::release`].

use std::path::PathBuf;

use anyhow::anyhow;
use clap::Args;

use crate::exit::{ExitStatus, Failure};
use crate::printer::GlobalArgs;
use crate::window::quarantine::{ReleaseSettings, Selection, release};

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["files", "vendor", "all"])))]
pub struct ReleaseArgs {
    /// Quarantined files to release: their paths, or their names when unique in the run folder.
    #[arg(value_name = "FILE")]
    pub files: Vec<String>,
    /// Release every quarantined file of this vendor (repeatable).
    #[arg(long, value_name = "VENDOR")]
    pub vendor: Vec<String>,
    /// Release every quarantined file of the run folder.
    #[arg(long)]
    pub all: bool,
    /// The run folder (`RUNS/DATE-WINDOW`) whose quarantine holds the files, or a day's run
    /// location (`URL/DATE-WINDOW` of `run --run-location URL`).
    #[arg(long, default_value = ".")]
    pub run: PathBuf,
    /// Who releases them, as recorded in the ledger (default: the user, `USER`).
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    /// Why, as recorded in the ledger (for example the vendor's ticket).
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// The vendor configuration, for a run location's `[transfer.options]` (credentials
    /// otherwise come from the environment).
    #[arg(long, env = crate::env::ENV_CONFIG)]
    pub config: Option<PathBuf>,
}

pub fn run(g: &GlobalArgs, a: ReleaseArgs) -> Result<ExitStatus, Failure> {
    // A signal stops it at once, with its local copies of a run location removed.
    let _signals = crate::cancel::Cancel::exit_on_signal(
        "a release that was not recorded is not made; run it again",
    )
    .map_err(Failure::data)?;
    let selection = if a.all {
        Selection::All
    } else if !a.vendor.is_empty() {
        Selection::Vendors(a.vendor)
    } else {
        Selection::Files(a.files)
    };
    let by = a.by.or_else(crate::env::user).ok_or_else(|| {
        Failure::usage(anyhow!(
            "who releases the files is recorded: give --by NAME (USER is not set)"
        ))
    })?;
    let config = a
        .config
        .as_deref()
        .map(crate::config::Config::load)
        .transpose()?;
    let store = crate::transfer::store_options_of(config.as_ref())?;
    let settings = ReleaseSettings {
        run: a.run,
        store,
        selection,
        by,
        note: a.note,
    };
    let released = release(&settings).map_err(|e| {
        // A store's error says how it ends (3 only when trying again may help); anything
        // else is the command's.
        let status = e
            .chain()
            .find_map(|c| c.downcast_ref::<crate::storage::StorageError>())
            .map_or(ExitStatus::Usage, |s| s.exit_status());
        Failure { status, error: e }
    })?;
    if !g.quiet {
        for q in &released {
            println!(
                "released   {} `{}` ({} failed attempts): the next run plans it again",
                q.vendor, q.input_path, q.attempts
            );
        }
        if released.is_empty() {
            println!("released   nothing: no file is in quarantine");
        }
    }
    Ok(ExitStatus::Success)
}
