//! A window's day at a run location URL (`run --run-location URL`): the day's data lives at
//! `URL/DATE-WINDOW/` (staging, the plan and the configuration beside it, outputs, the slices'
//! ledgers and status documents, the deliveries' ledger, `window.json`, and `.lock`, the lease
//! lock that keeps runs of the day on different machines apart: [`super::lease`]), and the
//! slices run over it with local scratch. What belongs to the machine that runs the window
//! stays in the local run folder (`RUNS/DATE-WINDOW/`): its own lock, `state.json`, the
//! manifest and what is left of it (copies of both go to the run location too, for
//! `log --why`), the split files, a copy of the plan, notifications and the report's pages.
//!
//! What is left of a day is judged as in a local run folder, from the run location: its
//! ledgers are copied here, and an output is still there when the run location lists it with
//! the size its ledger recorded.

use std::path::{Path, PathBuf};

use anyhow::anyhow;

use crate::exit::Failure;
use crate::storage::{StorageError, Store, StoreOptions};
use crate::transfer::location::{LocalCopies, download_ledgers};

/// One day's run location, opened.
pub(crate) struct DayLocation {
    rt: tokio::runtime::Runtime,
    store: Store,
    opts: StoreOptions,
    /// `URL/DATE-WINDOW`, as the steps are given it.
    pub url: PathBuf,
}

impl DayLocation {
    /// The run location of the day `name` (`DATE-WINDOW`) below `base`, with the store options
    /// of `config`'s `[transfer]`.
    pub fn open(
        base: &str,
        name: &str,
        config: &crate::config::Config,
    ) -> Result<DayLocation, Failure> {
        let url = crate::storage::join_url(base, name);
        let opts: StoreOptions =
            crate::transfer::TransferSettings::resolve(config, &Default::default())?.store;
        let rt = crate::transfer::runtime()?;
        let store = rt.block_on(Store::open(&url, &opts))?;
        Ok(DayLocation {
            rt,
            store,
            opts,
            url: PathBuf::from(url),
        })
    }

    /// Takes the day's lock at the run location ([`super::lease`]): held, and renewed, until
    /// dropped.
    pub fn lock(&self, w: &super::WindowDay) -> Result<super::lease::Lease, Failure> {
        super::lease::Lease::take(&self.url.display().to_string(), &self.opts, w)
    }

    /// The URL of `name` in the day's run location, as a step is given it.
    pub fn at(&self, name: &str) -> PathBuf {
        PathBuf::from(self.store.url_of(name))
    }

    /// Uploads the local file `local` as `name`, whole.
    pub fn put(&self, name: &str, local: &Path) -> Result<(), Failure> {
        self.rt.block_on(self.store.put_file(name, local, true))?;
        Ok(())
    }

    /// Downloads `name` to `local`.
    pub fn get(&self, name: &str, local: &Path) -> Result<(), Failure> {
        self.rt.block_on(self.store.get_file(name, local))?;
        Ok(())
    }

    /// Whether the run location holds any slice's ledger yet (the report needs one).
    pub fn has_ledgers(&self) -> Result<bool, Failure> {
        match self.rt.block_on(self.store.list("ledgers")) {
            Ok(v) => Ok(v.iter().any(|e| e.name.ends_with(".duckdb"))),
            Err(StorageError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Puts in quarantine the files of the run location's ledgers due for it (see
    /// [`super::quarantine::update`]): decided on local copies of its ledgers, and the
    /// quarantine's ledger put back whole (`ledgers/quarantine.duckdb`).
    pub fn quarantine_due(
        &self,
        max_attempts: u32,
    ) -> Result<Vec<crate::ledger::query::Quarantined>, Failure> {
        let copies = LocalCopies::new("quarantine")?;
        let ledgers = match self.rt.block_on(download_ledgers(
            &self.store.url_of("ledgers"),
            copies.path(),
            &self.opts,
        )) {
            Ok(dir) => dir,
            Err(StorageError::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let due = super::quarantine::update(&ledgers, max_attempts).map_err(Failure::data)?;
        if !due.is_empty() {
            let name = crate::ledger::QUARANTINE_LEDGER;
            self.put(&format!("ledgers/{name}"), &ledgers.join(name))?;
        }
        Ok(due)
    }

    /// The manifest's files not done yet at the run location, and how many are (see
    /// [`super::resume::remaining`]).
    pub fn remaining(
        &self,
        manifest: &Path,
        split: &Path,
        config_sha256: Option<&str>,
    ) -> Result<super::resume::Remaining, Failure> {
        let copies = LocalCopies::new("resume")?;
        let ledgers_url = self.store.url_of("ledgers");
        let ledgers =
            match self
                .rt
                .block_on(download_ledgers(&ledgers_url, copies.path(), &self.opts))
            {
                Ok(dir) => dir,
                Err(StorageError::NotFound { .. }) => copies.path().to_path_buf(),
                Err(e) => return Err(e.into()),
            };
        // Every object's size, by URL, from one listing: what the ledgers name is looked up.
        let sizes = self.rt.block_on(self.store.sizes(""))?;
        super::resume::remaining_where(manifest, &ledgers, split, config_sha256, |a| {
            crate::ledger::query::listed_output_present(&sizes, a)
        })
        .map_err(|e| {
            Failure::data(anyhow!(
                "what is left of the day at `{}`: {}",
                self.url.display(),
                crate::exit::error_text(&e)
            ))
        })
    }
}
