//! One interface over where files live: local folders and object stores (S3, Azure Blob, GCS)
//! through the `object_store` crate. `fetch` and `publish` talk to a [`Store`] and never to a
//! backend directly; every backend passes the same conformance suite (`tests/cli/storage.rs`).
//!
//! A store is opened from a URL: a plain path or `file:///dir`, `s3://bucket/prefix`,
//! `az://container/prefix` (also `azure://`), `gs://bucket/prefix`. Credentials, endpoints and
//! regions come from the usual variables (`AWS_*`, `AZURE_*`, `GOOGLE_*`), gathered once by
//! `settings` and handed over as [`StoreOptions`]; object stores retry transient failures
//! (timeouts, 5xx) with exponential backoff before an error reaches the caller, and such an error
//! is [`StorageError::Transient`], which commands turn into the retryable exit code.
//!
//! Names inside a store are relative, `/`-separated, and checked by [`safe_name`]: no `..`, no
//! absolute paths, no control characters.

use std::path::Path as FsPath;
use std::sync::Arc;

use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

/// Bytes above which uploads go in parts (a completed multipart upload is still atomic).
pub const MULTIPART_BYTES: u64 = 16 << 20;
const PART_BYTES: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("`{url}` is not a location batchwin can use: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("unsafe name {name:?}: {reason}")]
    UnsafeName { name: String, reason: &'static str },
    #[error("`{name}` already exists in `{store}`")]
    AlreadyExists { store: String, name: String },
    #[error("`{name}` is not in `{store}`")]
    NotFound { store: String, name: String },
    #[error("`{store}`: {source}")]
    Transient {
        store: String,
        #[source]
        source: object_store::Error,
    },
    #[error("`{store}`: {source}")]
    Failed {
        store: String,
        #[source]
        source: object_store::Error,
    },
    #[error("local file `{path}`: {source}")]
    Local {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl StorageError {
    /// Whether running the same command again may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StorageError::Transient { .. })
    }
}

/// Settings for opening object stores: `(key, value)` pairs in object_store's configuration
/// keys (`aws_endpoint`, `aws_allow_http`, `azure_storage_use_emulator`, ...).
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    pub pairs: Vec<(String, String)>,
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Name relative to the store's root.
    pub name: String,
    pub size: u64,
    pub modified: chrono::DateTime<chrono::Utc>,
}

/// A location opened for reading and writing.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    root: Path,
    /// The URL without credentials, for messages.
    display: String,
}

/// Checks a relative name: `/`-separated, no `..`, `.` or empty parts, not absolute, no NUL
/// or control characters.
pub fn safe_name(name: &str) -> Result<(), StorageError> {
    let bad = |reason| Err(StorageError::UnsafeName { name: name.to_string(), reason });
    if name.is_empty() {
        return bad("empty");
    }
    if name.starts_with('/') || name.starts_with('\\') || name.contains(':') && name.len() > 1 && name.as_bytes()[1] == b':' {
        return bad("absolute paths are not allowed");
    }
    if name.chars().any(|c| c.is_control()) {
        return bad("control characters are not allowed");
    }
    if name.split(['/', '\\']).any(|p| p.is_empty() || p == "." || p == "..") {
        return bad("`..`, `.` and empty path parts are not allowed");
    }
    Ok(())
}

/// The URL with any password removed, for logs, ledgers and errors.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_string(),
    }
}

impl Store {
    /// Opens a location URL or a plain local path (created when missing).
    pub fn open(location: &str, opts: &StoreOptions) -> Result<Store, StorageError> {
        let display = redact_url(location);
        let bad = |reason: String| StorageError::BadUrl { url: display.clone(), reason };
        let is_url = location.contains("://");
        if !is_url || location.starts_with("file://") {
            let path = if is_url {
                url::Url::parse(location)
                    .map_err(|e| bad(e.to_string()))?
                    .to_file_path()
                    .map_err(|()| bad("not a local path".into()))?
            } else {
                std::path::PathBuf::from(location)
            };
            std::fs::create_dir_all(&path).map_err(|source| StorageError::Local { path: path.display().to_string(), source })?;
            let fs = object_store::local::LocalFileSystem::new_with_prefix(&path).map_err(|e| bad(e.to_string()))?;
            return Ok(Store { inner: Arc::new(fs), root: Path::default(), display });
        }
        let url = url::Url::parse(&location.replacen("azure://", "az://", 1)).map_err(|e| bad(e.to_string()))?;
        match url.scheme() {
            "s3" | "az" | "gs" => {}
            other => return Err(bad(format!("unknown scheme `{other}`; use a path, file://, s3://, az:// or gs://"))),
        }
        let (store, root) = object_store::parse_url_opts(&url, opts.pairs.iter().map(|(k, v)| (k.as_str(), v.clone())))
            .map_err(|e| bad(e.to_string()))?;
        Ok(Store { inner: Arc::from(store), root, display })
    }

    fn path(&self, name: &str) -> Result<Path, StorageError> {
        safe_name(name)?;
        let mut p = self.root.clone();
        for part in name.split('/') {
            p = p.child(part);
        }
        Ok(p)
    }

    fn err(&self, name: &str, e: object_store::Error) -> StorageError {
        match e {
            object_store::Error::NotFound { .. } => StorageError::NotFound { store: self.display.clone(), name: name.to_string() },
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
                StorageError::AlreadyExists { store: self.display.clone(), name: name.to_string() }
            }
            // Everything the client could not complete after its own retries: the network, a
            // server error, a timeout. Running again may well succeed.
            object_store::Error::Generic { .. } | object_store::Error::JoinError { .. } => {
                StorageError::Transient { store: self.display.clone(), source: e }
            }
            e => StorageError::Failed { store: self.display.clone(), source: e },
        }
    }

    /// The URL this store was opened from, without credentials.
    pub fn url(&self) -> &str {
        &self.display
    }

    /// Every object below `prefix` ("" for all), names relative to the root, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Entry>, StorageError> {
        let base = if prefix.is_empty() { self.root.clone() } else { self.path(prefix)? };
        let mut out = Vec::new();
        let mut stream = self.inner.list(Some(&base));
        while let Some(meta) = stream.next().await {
            let meta = meta.map_err(|e| self.err(prefix, e))?;
            let name = match meta.location.prefix_match(&self.root) {
                Some(parts) => parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>().join("/"),
                None => meta.location.to_string(),
            };
            out.push(Entry { name, size: meta.size, modified: meta.last_modified });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Size and time of one object, or `None`.
    pub async fn head(&self, name: &str) -> Result<Option<Entry>, StorageError> {
        match self.inner.head(&self.path(name)?).await {
            Ok(m) => Ok(Some(Entry { name: name.to_string(), size: m.size, modified: m.last_modified })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(name, e)),
        }
    }

    /// Uploads a local file atomically: one put, or a completed multipart upload for large
    /// files, so readers see all of it or nothing. With `overwrite` false an existing object
    /// is never replaced (`AlreadyExists`). Returns (bytes, sha256).
    pub async fn put_file(&self, name: &str, local: &FsPath, overwrite: bool) -> Result<(u64, String), StorageError> {
        let path = self.path(name)?;
        let local_err = |source| StorageError::Local { path: local.display().to_string(), source };
        let size = std::fs::metadata(local).map_err(local_err)?.len();
        let mut file = tokio::fs::File::open(local).await.map_err(local_err)?;
        let mut sha = Sha256::new();
        if size <= MULTIPART_BYTES || !overwrite {
            // A conditional put cannot be multipart on every store; files that must not
            // replace anything go in one request, which is fine at the sizes vendors send.
            let mut buf = Vec::with_capacity(size as usize);
            file.read_to_end(&mut buf).await.map_err(local_err)?;
            sha.update(&buf);
            let mode = if overwrite { PutMode::Overwrite } else { PutMode::Create };
            self.inner
                .put_opts(&path, PutPayload::from(buf), PutOptions { mode, ..Default::default() })
                .await
                .map_err(|e| self.err(name, e))?;
        } else {
            let upload = self.inner.put_multipart(&path).await.map_err(|e| self.err(name, e))?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = file.read(&mut buf).await.map_err(local_err)?;
                if n == 0 {
                    break;
                }
                sha.update(&buf[..n]);
                w.wait_for_capacity(4).await.map_err(|e| self.err(name, e))?;
                w.write(&buf[..n]);
            }
            w.finish().await.map_err(|e| self.err(name, e))?;
        }
        Ok((size, hex::encode(sha.finalize())))
    }

    /// Downloads an object to a local file, streaming, written under a temporary name and
    /// renamed when complete. Returns (bytes, sha256).
    pub async fn get_file(&self, name: &str, local: &FsPath) -> Result<(u64, String), StorageError> {
        use tokio::io::AsyncWriteExt;
        let path = self.path(name)?;
        let local_err = |source| StorageError::Local { path: local.display().to_string(), source };
        if let Some(dir) = local.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(local_err)?;
        }
        let tmp = local.with_file_name(format!(
            ".{}.part-{}",
            local.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            std::process::id()
        ));
        let result = async {
            let got = self.inner.get(&path).await.map_err(|e| self.err(name, e))?;
            let mut stream = got.into_stream();
            let mut f = tokio::fs::File::create(&tmp).await.map_err(local_err)?;
            let mut sha = Sha256::new();
            let mut bytes = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.err(name, e))?;
                sha.update(&chunk);
                bytes += chunk.len() as u64;
                f.write_all(&chunk).await.map_err(local_err)?;
            }
            f.flush().await.map_err(local_err)?;
            f.sync_all().await.map_err(local_err)?;
            drop(f);
            tokio::fs::rename(&tmp, local).await.map_err(local_err)?;
            Ok((bytes, hex::encode(sha.finalize())))
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    /// Reads a whole (small) object.
    pub async fn get_bytes(&self, name: &str) -> Result<Vec<u8>, StorageError> {
        let got = self.inner.get(&self.path(name)?).await.map_err(|e| self.err(name, e))?;
        Ok(got.bytes().await.map_err(|e| self.err(name, e))?.to_vec())
    }

    /// Deletes an object (absent is fine).
    pub async fn delete(&self, name: &str) -> Result<(), StorageError> {
        match self.inner.delete(&self.path(name)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(name, e)),
        }
    }

    /// Renames `from` to `to`, refusing to replace an existing `to` where the store can tell.
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), StorageError> {
        let (f, t) = (self.path(from)?, self.path(to)?);
        match self.inner.rename_if_not_exists(&f, &t).await {
            Ok(()) => Ok(()),
            // Stores without an atomic conditional rename: check, then copy and delete.
            Err(object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented { .. }) => {
                if self.head(to).await?.is_some() {
                    return Err(StorageError::AlreadyExists { store: self.display.clone(), name: to.to_string() });
                }
                self.inner.copy(&f, &t).await.map_err(|e| self.err(to, e))?;
                self.delete(from).await
            }
            Err(e) => Err(self.err(to, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_escape_the_root_are_refused() {
        for bad in ["", "/etc/passwd", "a/../../b", "..", "a//b", "./a", "a\0b", "a\nb", "C:\\x", "a\\..\\b"] {
            assert!(safe_name(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "inbound/2026-11-29/ACME/f.csv", "a.b..c", "é/ü"] {
            assert!(safe_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn credentials_never_show() {
        assert_eq!(redact_url("sftp://user:secret@host:22/x"), "sftp://user@host:22/x");
        assert_eq!(redact_url("s3://bucket/p"), "s3://bucket/p");
    }
}
