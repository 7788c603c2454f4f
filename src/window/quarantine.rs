//! The window's quarantine, its dead-letter queue: a file that runs of the window failed on
//! (its data: unreadable, over the skip limit) `max_attempts` times is set aside, recorded
//! with its attempts and last error in the run folder's `out/ledgers/quarantine.duckdb`, and
//! not planned again until `batchwin release` records a release (who, when, why) in
//! `out/ledgers/releases.duckdb`. Which files are due and which are in quarantine are
//! questions for [`crate::ledger::query`]; every view of the states (report, status, log,
//! Prometheus) reads them from the merged ledgers, where a quarantined file's failed units
//! have the state `quarantined`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::ledger::find_ledgers;
use crate::ledger::merge::with_latest;
use crate::ledger::query::{Quarantined, quarantine_due, quarantined};
use crate::ledger::{Ledger, QUARANTINE_LEDGER, RELEASES_LEDGER};

/// The ledgers folder of run folder `run` (`RUN/out/ledgers`).
pub fn ledgers_of(run: &Path) -> PathBuf {
    run.join("out").join("ledgers")
}

/// Puts in quarantine the files of `ledgers` due for it after `max_attempts` failed runs, and
/// returns them (already quarantined files are not returned again).
pub(crate) fn update(ledgers: &Path, max_attempts: u32) -> anyhow::Result<Vec<Quarantined>> {
    let found = if ledgers.is_dir() {
        find_ledgers(ledgers, None)?
    } else {
        Vec::new()
    };
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let due = with_latest(&found, |conn| Ok(quarantine_due(conn, max_attempts)?))?;
    if !due.is_empty() {
        let run_id = uuid::Uuid::new_v4().to_string();
        Ledger::open(&ledgers.join(QUARANTINE_LEDGER))?.record_quarantine(
            &run_id,
            &due,
            chrono::Utc::now(),
        )?;
    }
    Ok(due)
}

/// Which quarantined files to release.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Files by path, or by name when the name is unique (as `log --why` finds them).
    Files(Vec<String>),
    /// Every quarantined file of these vendors.
    Vendors(Vec<String>),
    All,
}

/// A release: which files, by whom, why.
#[derive(Debug, Clone)]
pub struct ReleaseSettings {
    /// The run folder (`RUNS/DATE-WINDOW`), or a day's run location (`URL/DATE-WINDOW`, as
    /// `run --run-location URL` keeps it).
    pub run: PathBuf,
    /// How to reach a run location.
    pub store: crate::storage::StoreOptions,
    pub selection: Selection,
    pub by: String,
    pub note: Option<String>,
}

/// Releases the selected files of run folder `s.run` from quarantine, recording who and when;
/// the next run of the window plans them again. Returns the files released. A selected file or
/// vendor with nothing in quarantine is an error naming it, so a typo does not pass silently.
pub fn release(s: &ReleaseSettings) -> anyhow::Result<Vec<Quarantined>> {
    let run = s.run.display().to_string();
    if !crate::transfer::location::is_url(&run) {
        return release_in(s, &ledgers_of(&s.run));
    }
    // A run location: decided on local copies of its ledgers, the releases' ledger put back
    // whole.
    let copies = crate::transfer::location::LocalCopies::new("release")?;
    let rt = crate::transfer::runtime()?;
    let ledgers_url = crate::storage::join_url(&run, "ledgers");
    let ledgers = rt
        .block_on(crate::transfer::location::download_ledgers(
            &ledgers_url,
            copies.path(),
            &s.store,
        ))
        .with_context(|| format!("cannot read the ledgers at `{ledgers_url}`"))?;
    let released = release_in(s, &ledgers)?;
    if !released.is_empty() {
        rt.block_on(async {
            let store = crate::storage::Store::open(&ledgers_url, &s.store).await?;
            store
                .put_file(RELEASES_LEDGER, &ledgers.join(RELEASES_LEDGER), true)
                .await
        })
        .with_context(|| format!("cannot record the release at `{ledgers_url}`"))?;
    }
    Ok(released)
}

/// [`release`] in the ledgers folder `ledgers`.
fn release_in(s: &ReleaseSettings, ledgers: &Path) -> anyhow::Result<Vec<Quarantined>> {
    if !ledgers.is_dir() {
        bail!(
            "`{}` is not a run folder with ledgers (no `{}`)",
            s.run.display(),
            ledgers.display()
        );
    }
    let found = find_ledgers(ledgers, None)?;
    if found.is_empty() {
        bail!(
            "`{}` has no ledgers: nothing is in quarantine",
            s.run.display()
        );
    }
    let held = with_latest(&found, |conn| Ok(quarantined(conn)?))?;
    let chosen: Vec<Quarantined> = match &s.selection {
        Selection::All => held,
        Selection::Vendors(vendors) => {
            for v in vendors {
                if !held.iter().any(|q| &q.vendor == v) {
                    bail!(
                        "vendor `{v}` has no file in quarantine in `{}`",
                        s.run.display()
                    );
                }
            }
            held.into_iter()
                .filter(|q| vendors.contains(&q.vendor))
                .collect()
        }
        Selection::Files(files) => {
            let mut out = Vec::new();
            for f in files {
                let matches: Vec<&Quarantined> = held
                    .iter()
                    .filter(|q| q.input_path == *f || q.input_path.ends_with(&format!("/{f}")))
                    .collect();
                match matches.as_slice() {
                    [] => bail!("`{f}` is not in quarantine in `{}`", s.run.display()),
                    [one] => out.push((*one).clone()),
                    many => bail!(
                        "`{f}` names {} files in quarantine ({}): give its path",
                        many.len(),
                        many.iter()
                            .map(|q| q.input_path.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }
            }
            out
        }
    };
    if !chosen.is_empty() {
        let files: Vec<(String, String)> = chosen
            .iter()
            .map(|q| (q.vendor.clone(), q.input_path.clone()))
            .collect();
        let path = ledgers.join(RELEASES_LEDGER);
        Ledger::open(&path)
            .and_then(|mut l| {
                l.record_releases(
                    &uuid::Uuid::new_v4().to_string(),
                    &files,
                    &s.by,
                    s.note.as_deref(),
                    chrono::Utc::now(),
                )
            })
            .with_context(|| format!("cannot record the release in `{}`", path.display()))?;
    }
    Ok(chosen)
}
