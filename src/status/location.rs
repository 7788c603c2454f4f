//! `status` of a run at a run location URL (`s3://`, `az://`, `gs://`, `sftp://`): the plan
//! (`RUN/plan.json`), `RUN/window.json` when `run` wrote one, the slices' status documents
//! (`RUN/status/slice-K.json`) and their ledgers (`RUN/ledgers/slice-K.duckdb`) are copied into
//! a local folder laid out as a run folder is (`plan.json`, `out/status/`, `out/ledgers/`), which
//! [`super::read`] then reads as it reads any run folder.
//!
//! Each document is one object put whole by its slice, so a copy is an old document or a new
//! one, never part of one. A slice's ledger is copied only once its document says the slice
//! ended: [`super::read`] reads no other (a running slice puts copies of its ledger every few
//! seconds, which would be downloaded again at each redraw). With `--watch` the copy is brought
//! up to date at each redraw: the documents are read again, a ledger only when its size or time
//! changed.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;

use crate::engine::live::STATUS_DIR;
use crate::storage::{Entry, StorageError, Store, StoreOptions};
use crate::transfer::location::{LocalCopies, download_ledgers};

use super::WINDOW_FILE;

/// A local copy of a run location's status, kept up to date by [`Mirror::refresh`].
pub struct Mirror {
    rt: tokio::runtime::Runtime,
    store: Store,
    opts: StoreOptions,
    copies: LocalCopies,
    /// The ledgers copied so far, by name, with the size and time they had.
    ledgers: HashMap<String, Entry>,
    /// The plan's URL when it is not `RUN/plan.json`; `None` with a local plan given.
    plan: PlanAt,
}

/// Where the run's plan is read from.
pub enum PlanAt {
    /// `RUN/plan.json`.
    InRun,
    /// Another URL (`status --plan URL`).
    Url(String),
    /// A local file the reader is given: nothing to copy.
    Local,
}

impl Mirror {
    /// Opens the run location `url`, whose plan is `plan` (nothing is read yet).
    pub fn open(url: &str, plan: PlanAt, opts: &StoreOptions) -> anyhow::Result<Mirror> {
        let rt = crate::transfer::runtime().map_err(|f| f.error)?;
        let store = rt
            .block_on(Store::open(url, opts))
            .with_context(|| format!("cannot open the run location `{url}`"))?;
        Ok(Mirror {
            rt,
            store,
            copies: LocalCopies::new("status")?,
            ledgers: HashMap::new(),
            plan,
            opts: opts.clone(),
        })
    }

    /// The run location's URL, without credentials.
    pub fn url(&self) -> &str {
        self.store.url()
    }

    /// Copies what is at the run location now into the local folder, and gives that folder.
    pub fn refresh(&mut self) -> anyhow::Result<&Path> {
        let local = self.copies.path().to_path_buf();
        let out = local.join("out");
        let store = &self.store;
        let (plan, opts) = (&self.plan, &self.opts);
        self.rt.block_on(async {
            let copy = local.join("plan.json");
            match plan {
                PlanAt::InRun => {
                    store.get_file("plan.json", &copy).await.with_context(|| {
                        format!(
                            "`{}` is not a run location with a plan (`plan.json`); give --plan",
                            store.url()
                        )
                    })?;
                }
                PlanAt::Url(url) => {
                    crate::transfer::location::download(url, &copy, opts)
                        .await
                        .with_context(|| format!("the plan `{url}`"))?;
                }
                PlanAt::Local => {}
            }
            match store.get_file(WINDOW_FILE, &local.join(WINDOW_FILE)).await {
                Ok(_) | Err(StorageError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            // The documents now: each one whole, old or new; one gone is gone here too. The
            // slices whose document says they ended (`slice-NNNNN`).
            let docs = out.join(STATUS_DIR);
            let _ = std::fs::remove_dir_all(&docs);
            let mut ended = std::collections::HashSet::new();
            for e in list(store, STATUS_DIR).await? {
                if let Some(stem) = e.name.strip_suffix(".json") {
                    let local = out.join(&e.name);
                    store.get_file(&e.name, &local).await?;
                    if super::read_document(&local)
                        .ok()
                        .flatten()
                        .is_some_and(|d| d.state == crate::engine::live::LiveState::Ended)
                    {
                        ended.insert(stem.rsplit('/').next().unwrap_or(stem).to_string());
                    }
                }
            }
            for e in list(store, "ledgers").await? {
                let copied = self.ledgers.get(&e.name);
                // The ledgers of the slices that ended (a running slice's changes with every
                // copy it puts, and is not read), and the window's quarantine and its releases.
                let wanted = match e
                    .name
                    .strip_prefix("ledgers/")
                    .and_then(|n| n.strip_suffix(".duckdb"))
                {
                    Some(stem) if stem.starts_with("slice-") => ended.contains(stem),
                    Some(stem) => [
                        crate::ledger::QUARANTINE_LEDGER,
                        crate::ledger::RELEASES_LEDGER,
                    ]
                    .iter()
                    .any(|n| n.strip_suffix(".duckdb") == Some(stem)),
                    None => false,
                };
                if wanted && copied != Some(&e) {
                    store.get_file(&e.name, &out.join(&e.name)).await?;
                    self.ledgers.insert(e.name.clone(), e);
                }
            }
            Ok::<_, anyhow::Error>(())
        })?;
        Ok(self.copies.path())
    }
}

/// `log RUN_URL --why FILE`: what happened to `file` in the run at the run location `url`
/// (`URL/DATE-WINDOW`), from copies of its manifest, what was left of it and its plan
/// (`manifest.jsonl`, `todo.jsonl`, `plan.json`, which `run` puts there) and of its ledgers,
/// laid out as a run folder. A document the run location lacks (a run from before it put them
/// there) is taken from `local`, the run folder of the machine that ran the day, when given.
/// An output is still there when the run location lists it with its recorded size.
pub fn why_at(
    url: &str,
    local: Option<&Path>,
    file: &str,
    opts: &StoreOptions,
) -> anyhow::Result<super::history::Why> {
    let rt = crate::transfer::runtime().map_err(|f| f.error)?;
    let store = rt
        .block_on(Store::open(url, opts))
        .with_context(|| format!("cannot open the run location `{url}`"))?;
    let copies = LocalCopies::new("log")?;
    let dir = copies.path();
    let sizes = rt.block_on(async {
        for name in ["manifest.jsonl", "todo.jsonl", "plan.json"] {
            match store.get_file(name, &dir.join(name)).await {
                Ok(_) => {}
                Err(StorageError::NotFound { .. }) => {
                    if let Some(from) = local.map(|l| l.join(name)).filter(|f| f.is_file()) {
                        std::fs::copy(&from, dir.join(name))
                            .with_context(|| format!("cannot copy `{}`", from.display()))?;
                    }
                }
                Err(e) => return Err(anyhow::Error::from(e)),
            }
        }
        let ledgers = dir.join("out").join("ledgers");
        match download_ledgers(&store.url_of("ledgers"), &ledgers, opts).await {
            Ok(_) | Err(StorageError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        // Every object's size, by URL, from one listing: what the ledgers name is looked up.
        Ok::<_, anyhow::Error>(store.sizes("").await?)
    })?;
    super::history::why_where(dir, store.url(), file, |a| {
        crate::ledger::query::listed_output_present(&sizes, a)
    })
}

/// The files below `prefix`, none when there is no such folder yet.
async fn list(store: &Store, prefix: &str) -> Result<Vec<Entry>, StorageError> {
    match store.list(prefix).await {
        Ok(v) => Ok(v),
        Err(StorageError::NotFound { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::live::{LiveState, STATUS_FORMAT, SliceStatus};

    /// A running slice's ledger is not copied (it changes with every copy the slice puts);
    /// once its document says it ended, it is, and then again only when it changed. The
    /// window's quarantine is copied whatever the slices do.
    #[test]
    fn only_the_ledgers_of_slices_that_ended_are_copied() {
        let run = tempfile::tempdir().expect("temp dir");
        let at = |rel: &str| run.path().join(rel);
        std::fs::create_dir_all(at("status")).expect("status");
        std::fs::create_dir_all(at("ledgers")).expect("ledgers");
        let doc = |state| {
            let d = SliceStatus {
                format: STATUS_FORMAT,
                slice: Some(0),
                state,
                ..SliceStatus::default()
            };
            std::fs::write(
                at("status/slice-00000.json"),
                serde_json::to_vec(&d).expect("json"),
            )
            .expect("doc");
        };
        doc(LiveState::Running);
        std::fs::write(at("ledgers/slice-00000.duckdb"), b"copy 1").expect("ledger");
        let quarantine = format!("ledgers/{}", crate::ledger::QUARANTINE_LEDGER);
        std::fs::write(at(&quarantine), b"q").expect("quarantine");
        let mut m = Mirror::open(
            &run.path().display().to_string(),
            PlanAt::Local,
            &StoreOptions::default(),
        )
        .expect("mirror");
        let local = m.refresh().expect("refreshed").join("out");
        assert!(local.join("status/slice-00000.json").exists());
        assert!(!local.join("ledgers/slice-00000.duckdb").exists());
        assert!(local.join(&quarantine).exists());
        std::fs::write(at("ledgers/slice-00000.duckdb"), b"copy 22").expect("ledger");
        m.refresh().expect("refreshed");
        assert!(!local.join("ledgers/slice-00000.duckdb").exists());

        doc(LiveState::Ended);
        std::fs::write(at("ledgers/slice-00000.duckdb"), b"the end").expect("ledger");
        m.refresh().expect("refreshed");
        assert_eq!(
            std::fs::read(local.join("ledgers/slice-00000.duckdb")).expect("copied"),
            b"the end"
        );
    }
}
