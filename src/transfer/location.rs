//! Files of a run location that commands read or write whole: the plan and the configuration
//! beside it (`plan --out URL`), a manifest (`plan --manifest URL`), a run's ledgers and
//! outputs (`report` and `publish --ledgers URL`). A run location is a URL (`s3://`, `az://`,
//! `gs://`, `sftp://`, `file://`) or a folder; what is downloaded goes to a [`LocalCopies`]
//! folder removed when it is dropped.

use std::path::{Path, PathBuf};

use crate::storage::{StorageError, Store, StoreOptions, Transferred};

/// Whether a location is a URL rather than a local path.
pub fn is_url(location: &str) -> bool {
    location.contains("://")
}

/// A temporary local folder for downloaded copies, removed with what it holds when dropped.
pub struct LocalCopies(PathBuf);

impl LocalCopies {
    /// A new folder below the system's temporary folder, named after `what`.
    pub fn new(what: &str) -> Result<LocalCopies, StorageError> {
        let dir = std::env::temp_dir().join(format!(
            "batchwin-{what}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| StorageError::local(&dir, e))?;
        // Removed too by a command that a signal stops (`crate::cancel`).
        crate::cancel::register_temporary(&dir);
        Ok(LocalCopies(dir))
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for LocalCopies {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        crate::cancel::forget_temporary(&self.0);
    }
}

/// The folder and the name of a file's URL: `s3://b/run/plan.json` is `s3://b/run` and
/// `plan.json`.
fn parent_and_name(url: &str) -> Result<(String, String), StorageError> {
    let trimmed = url.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some((dir, name)) if !dir.ends_with('/') && !dir.ends_with(':') && !name.is_empty() => {
            Ok((dir.to_string(), name.to_string()))
        }
        _ => Err(StorageError::BadUrl {
            url: crate::storage::redact_url(url),
            reason: "it names no file in a bucket or folder (like s3://bucket/run/plan.json)"
                .into(),
        }),
    }
}

/// Downloads the file at `url` to `local`.
pub async fn download(
    url: &str,
    local: &Path,
    opts: &StoreOptions,
) -> Result<Transferred, StorageError> {
    let (dir, name) = parent_and_name(url)?;
    Store::open(&dir, opts).await?.get_file(&name, local).await
}

/// Uploads each `(name, local file)` to the folder `dir_url`, in order, each whole or not at
/// all, replacing what is there.
pub async fn upload(
    dir_url: &str,
    files: &[(&str, &Path)],
    opts: &StoreOptions,
) -> Result<(), StorageError> {
    let store = Store::open(dir_url, opts).await?;
    for (name, local) in files {
        store.put_file(name, local, true).await?;
    }
    Ok(())
}

/// Downloads every ledger (`*.duckdb`) below `url` into `into`, keeping their names below it;
/// returns the local folder that holds them.
pub async fn download_ledgers(
    url: &str,
    into: &Path,
    opts: &StoreOptions,
) -> Result<PathBuf, StorageError> {
    let store = Store::open(url, opts).await?;
    let listing = store.list_all("", false).await?;
    for e in listing
        .files
        .iter()
        .filter(|e| e.name.ends_with(".duckdb") && !e.name.ends_with("publish.duckdb"))
    {
        store.get_file(&e.name, &into.join(&e.name)).await?;
    }
    Ok(into.to_path_buf())
}

/// Downloads each output a ledger names by URL into `into` (as `N/FILE`), and gives the
/// local copy of each URL; local paths are left as they are.
pub async fn download_outputs(
    urls: &[String],
    into: &Path,
    opts: &StoreOptions,
) -> Result<std::collections::HashMap<String, PathBuf>, StorageError> {
    let mut stores: std::collections::HashMap<String, Store> = Default::default();
    let mut copies = std::collections::HashMap::new();
    for (i, url) in urls.iter().filter(|u| is_url(u)).enumerate() {
        if copies.contains_key(url) {
            continue;
        }
        let (dir, name) = parent_and_name(url)?;
        if !stores.contains_key(&dir) {
            stores.insert(dir.clone(), Store::open(&dir, opts).await?);
        }
        let local = into.join(format!("{i:06}")).join(&name);
        stores[&dir].get_file(&name, &local).await?;
        copies.insert(url.clone(), local);
    }
    Ok(copies)
}

/// A local copy of `location`: the path itself when it is one, else the file downloaded into
/// `copies`.
pub async fn local_copy(
    location: &Path,
    copies: &LocalCopies,
    opts: &StoreOptions,
) -> Result<PathBuf, StorageError> {
    let text = location.display().to_string();
    if !is_url(&text) {
        return Ok(location.to_path_buf());
    }
    let (_, name) = parent_and_name(&text)?;
    let local = copies
        .path()
        .join(format!("{:08x}", rand::random::<u32>()))
        .join(name);
    download(&text, &local, opts).await?;
    Ok(local)
}

/// The name a configuration is stored under beside a plan in a run location (its file name),
/// which the plan records ([`crate::plan::Plan::config`]).
pub fn config_name(config: &Path) -> String {
    config.file_name().map_or_else(
        || "batchwin.toml".into(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Uploads the configuration (as [`config_name`]) and then the plan at `plan_url` beside it:
/// the configuration first, so that a plan never names one that is not there.
pub async fn store_plan(
    plan_url: &str,
    plan_text: &str,
    config: &Path,
    opts: &StoreOptions,
) -> Result<(), StorageError> {
    let (dir, name) = parent_and_name(plan_url)?;
    let copies = LocalCopies::new("plan")?;
    let local = copies.path().join(&name);
    crate::files::write(&local, plan_text).map_err(|e| StorageError::local(&local, e))?;
    let cname = config_name(config);
    upload(&dir, &[(&cname, config), (&name, &local)], opts).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_url_splits_into_folder_and_name() {
        assert_eq!(
            parent_and_name("s3://b/run/plan.json").unwrap(),
            ("s3://b/run".into(), "plan.json".into())
        );
        assert_eq!(
            parent_and_name("az://c/plan.json").unwrap(),
            ("az://c".into(), "plan.json".into())
        );
        assert!(parent_and_name("s3://bucket").is_err());
        assert!(parent_and_name("s3://bucket/").is_err());
    }
}
