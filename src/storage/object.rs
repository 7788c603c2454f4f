//! Local folders and object stores (S3, Azure Blob, GCS) through the `object_store` crate.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig, WriteMultipart,
};

use super::{
    Entry, ExpectedContent, HashingReader, LinkTarget, Listing, MULTIPART_BYTES, Other, OtherKind,
    Sink, StorageError, StoreOptions, Transferred, Version, Versioned, sha256_hex,
};

/// The Azure encryption scope of every blob written: batchwin's own key, as object_store 0.14
/// has none (see [`super::azure_scope`]).
const AZURE_ENCRYPTION_SCOPE: &str = "azure_encryption_scope";

fn unknown_key(k: &str) -> String {
    format!(
        "`{k}` in `[transfer.options]` is not an object store setting this store knows; check its \
         spelling (see docs/transfer.md)"
    )
}

/// A store that can sign URLs, for the requests object_store cannot make itself.
enum Signing {
    S3(Arc<object_store::aws::AmazonS3>),
    Azure(Arc<object_store::azure::MicrosoftAzure>),
}

pub(super) struct ObjectBackend {
    inner: Arc<dyn ObjectStore>,
    root: Path,
    display: String,
    /// The store itself when it is a local folder, which knows the file behind a name (see
    /// [`Self::local_file`]): transfers to and from it do not go through object_store.
    local_fs: Option<Arc<object_store::local::LocalFileSystem>>,
    /// The folder of a local store, every link in its path resolved: listed by
    /// [`list_local`], which sees links and special files, unlike object_store.
    local_root: Option<PathBuf>,
    /// The store itself when it is S3 or Azure Blob, which signs the URLs of conditional
    /// deletes ([`Self::delete_if`]).
    signer: Option<Signing>,
}

impl ObjectBackend {
    pub fn local(path: &FsPath, display: &str) -> Result<ObjectBackend, StorageError> {
        std::fs::create_dir_all(path).map_err(|e| StorageError::local(path, e))?;
        let real = std::fs::canonicalize(path).map_err(|e| StorageError::local(path, e))?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(path).map_err(|e| {
            StorageError::BadUrl {
                url: display.to_string(),
                reason: e.to_string(),
            }
        })?;
        // Read local files in large pieces: the plain store hands them out 8 KiB at a time,
        // each a trip to the blocking thread pool.
        let fs = Arc::new(fs);
        let chunked = object_store::chunked::ChunkedStore::new(fs.clone(), super::STREAM_BUF);
        Ok(ObjectBackend {
            inner: Arc::new(chunked),
            root: Path::default(),
            display: display.to_string(),
            local_fs: Some(fs),
            local_root: Some(real),
            signer: None,
        })
    }

    /// Whether this is a local folder.
    pub fn is_local(&self) -> bool {
        self.local_fs.is_some()
    }

    /// The file behind `name` in a local store (as object_store maps names to files).
    pub fn local_file(&self, name: &str) -> Option<std::path::PathBuf> {
        self.local_fs
            .as_ref()?
            .path_to_filesystem(&self.path(name))
            .ok()
    }

    /// `s3://`, `az://` and `gs://`: configured from the environment, then from `opts.pairs`.
    /// The client's own retries are kept short; [`super::Store`] retries whole operations.
    pub fn remote(
        url: &url::Url,
        opts: &StoreOptions,
        display: &str,
    ) -> Result<ObjectBackend, StorageError> {
        let bad = |reason: String| StorageError::BadUrl {
            url: display.to_string(),
            reason,
        };
        let retry = RetryConfig {
            max_retries: 2,
            retry_timeout: std::time::Duration::from_secs(60),
            ..Default::default()
        };
        // Timeouts go in as configuration keys: client options given as a whole would replace
        // what the builder read from the environment (AWS_ALLOW_HTTP, proxies, ...).
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(t) = opts.timeout {
            let connect = t.min(std::time::Duration::from_secs(10));
            pairs.push(("timeout".into(), format!("{}ms", t.as_millis())));
            pairs.push((
                "connect_timeout".into(),
                format!("{}ms", connect.as_millis()),
            ));
        }
        pairs.extend(opts.pairs.iter().cloned());
        let base = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
        let mut signer = None;
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "s3" => {
                use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
                let mut b = AmazonS3Builder::from_env()
                    .with_url(&base)
                    .with_retry(retry);
                for (k, v) in &pairs {
                    match k.parse::<AmazonS3ConfigKey>() {
                        Ok(key) => b = b.with_config(key, v),
                        // A misspelt `aws_server_side_encryption` would store objects
                        // unencrypted without a word: an S3 key that is not one is refused.
                        Err(_) if k.starts_with("aws_") => return Err(bad(unknown_key(k))),
                        Err(_) => {}
                    }
                }
                let s3 = Arc::new(b.build().map_err(|e| bad(e.to_string()))?);
                signer = Some(Signing::S3(s3.clone()));
                s3
            }
            "az" => {
                use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
                let mut b = MicrosoftAzureBuilder::from_env()
                    .with_url(&base)
                    .with_retry(retry);
                let mut scope = None;
                for (k, v) in &pairs {
                    match k.parse::<AzureConfigKey>() {
                        Ok(key) => b = b.with_config(key, v),
                        Err(_) if k == AZURE_ENCRYPTION_SCOPE => scope = Some(v),
                        Err(_) if k.starts_with("azure_") => return Err(bad(unknown_key(k))),
                        Err(_) => {}
                    }
                }
                if let Some(scope) = scope {
                    let key = b.get_config_value(&AzureConfigKey::AccessKey);
                    // object_store's own reading of a boolean setting.
                    let emulator = b
                        .get_config_value(&AzureConfigKey::UseEmulator)
                        .is_some_and(|v| {
                            matches!(
                                v.trim().to_ascii_lowercase().as_str(),
                                "1" | "true" | "on" | "yes" | "y"
                            )
                        });
                    b = b.with_http_connector(
                        super::azure_scope::EncryptionScope::new(scope, key.as_deref(), emulator)
                            .map_err(bad)?,
                    );
                }
                let az = Arc::new(b.build().map_err(|e| bad(e.to_string()))?);
                signer = Some(Signing::Azure(az.clone()));
                az
            }
            "gs" => {
                use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
                let mut b = GoogleCloudStorageBuilder::from_env()
                    .with_url(&base)
                    .with_retry(retry);
                for (k, v) in &pairs {
                    match k.parse::<GoogleConfigKey>() {
                        Ok(key) => b = b.with_config(key, v),
                        Err(_) if k.starts_with("google_") => return Err(bad(unknown_key(k))),
                        Err(_) => {}
                    }
                }
                Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
            }
            other => return Err(bad(format!("unknown scheme `{other}`"))),
        };
        let root = Path::from_url_path(url.path()).map_err(|e| bad(e.to_string()))?;
        Ok(ObjectBackend {
            inner: store,
            root,
            display: display.to_string(),
            local_fs: None,
            local_root: None,
            signer,
        })
    }

    fn path(&self, name: &str) -> Path {
        name.split('/')
            .fold(self.root.clone(), |p, part| p.join(part))
    }

    fn err(&self, name: &str, e: object_store::Error) -> StorageError {
        let store = self.display.clone();
        match e {
            object_store::Error::NotFound { .. } => StorageError::NotFound {
                store,
                name: name.to_string(),
            },
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => StorageError::AlreadyExists {
                store,
                name: name.to_string(),
            },
            // What the client could not complete after its own retries: the network, a server
            // error, a timeout. Running again may well succeed; a request the store refused
            // for what it is (see `retry_may_help`) fails the same way again.
            object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
                if retry_may_help(&e) =>
            {
                StorageError::Transient {
                    store,
                    message: format!("`{name}`: {}", crate::exit::chain_text(&e)),
                }
            }
            e => StorageError::Failed {
                store,
                message: format!("`{name}`: {}", crate::exit::chain_text(&e)),
            },
        }
    }

    /// Object stores hold objects only: no links, no special files, so `others` stays empty
    /// there. Local folders are walked here ([`list_local`]).
    pub async fn list(&self, prefix: &str, resolve_links: bool) -> Result<Listing, StorageError> {
        if let Some(root) = &self.local_root {
            let (root, prefix) = (root.clone(), prefix.trim_end_matches('/').to_string());
            return tokio::task::spawn_blocking(move || list_local(&root, &prefix, resolve_links))
                .await
                .map_err(|e| StorageError::Failed {
                    store: self.display.clone(),
                    message: format!("the listing stopped: {e}"),
                })?;
        }
        Ok(Listing {
            files: self.list_objects(prefix).await?,
            others: Vec::new(),
        })
    }

    async fn list_objects(&self, prefix: &str) -> Result<Vec<Entry>, StorageError> {
        let base = if prefix.is_empty() {
            self.root.clone()
        } else {
            self.path(prefix.trim_end_matches('/'))
        };
        let mut out = Vec::new();
        let mut stream = self.inner.list(Some(&base));
        while let Some(meta) = stream.next().await {
            let meta = match meta {
                Ok(m) => m,
                // A prefix that does not exist lists as empty on every store.
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(self.err(prefix, e)),
            };
            let name = match meta.location.prefix_match(&self.root) {
                Some(parts) => parts
                    .map(|p| p.as_ref().to_string())
                    .collect::<Vec<_>>()
                    .join("/"),
                None => continue,
            };
            out.push(Entry {
                name,
                size: meta.size,
                modified: meta.last_modified,
            });
        }
        Ok(out)
    }

    pub async fn head(&self, name: &str) -> Result<Option<Entry>, StorageError> {
        match self.inner.head(&self.path(name)).await {
            Ok(m) => Ok(Some(Entry {
                name: name.to_string(),
                size: m.size,
                modified: m.last_modified,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(name, e)),
        }
    }

    pub async fn put_file(
        &self,
        name: &str,
        local: &FsPath,
        overwrite: bool,
        expected: Option<&ExpectedContent>,
    ) -> Result<Transferred, StorageError> {
        if let Some(dest) = self.local_file(name) {
            let (store, owned, local) =
                (self.display.clone(), name.to_string(), local.to_path_buf());
            let expected = expected.cloned();
            return tokio::task::spawn_blocking(move || {
                put_local(&dest, &store, &owned, &local, overwrite, expected.as_ref())
            })
            .await
            .map_err(|e| StorageError::Failed {
                store: self.display.clone(),
                message: format!("the upload of `{name}` stopped: {e}"),
            })?;
        }
        let path = self.path(name);
        let expected = expected.map(|e| &e.content);
        let (mut reader, size) = HashingReader::open(local).await?;
        let mut buf = Vec::new();
        if size <= MULTIPART_BYTES {
            // One request: atomic everywhere, and create-only (`If-None-Match: *`) where asked.
            let mut body = Vec::with_capacity(size as usize);
            while reader.next(&mut buf).await? {
                body.extend_from_slice(&buf);
            }
            let read = reader.finish();
            read.check(local, expected)?;
            let mode = if overwrite {
                PutMode::Overwrite
            } else {
                PutMode::Create
            };
            self.inner
                .put_opts(
                    &path,
                    PutPayload::from(body),
                    PutOptions {
                        mode,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| self.err(name, e))?;
            Ok(read)
        } else {
            // Streamed in parts so memory stays bounded; the object appears only when the
            // upload completes. Stores have no create-only multipart upload: check first.
            if !overwrite && self.head(name).await?.is_some() {
                return Err(StorageError::AlreadyExists {
                    store: self.display.clone(),
                    name: name.to_string(),
                });
            }
            let upload = self
                .inner
                .put_multipart(&path)
                .await
                .map_err(|e| self.err(name, e))?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, 8 << 20);
            let streamed = async {
                while reader.next(&mut buf).await? {
                    w.wait_for_capacity(4)
                        .await
                        .map_err(|e| self.err(name, e))?;
                    w.write(&buf);
                }
                Ok::<_, StorageError>(())
            }
            .await;
            let read = reader.finish();
            // The object appears only when the upload completes: not unless it is right.
            match streamed.and_then(|()| read.check(local, expected)) {
                Ok(()) => {
                    w.finish().await.map_err(|e| self.err(name, e))?;
                    Ok(read)
                }
                Err(e) => {
                    let _ = w.abort().await;
                    Err(e)
                }
            }
        }
    }

    /// A conditional write's error: a store set not to write conditionally
    /// (`aws_conditional_put = disabled`) says so instead of failing as the store.
    fn conditional_err(&self, name: &str, e: object_store::Error) -> StorageError {
        match e {
            object_store::Error::NotImplemented { .. }
            | object_store::Error::NotSupported { .. } => StorageError::Failed {
                store: self.display.clone(),
                message: format!(
                    "`{name}`: this store is set not to write conditionally ({}); batchwin \
                         needs conditional writes here (for S3, leave `aws_conditional_put` at \
                         its default, `etag`)",
                    crate::exit::chain_text(&e)
                ),
            },
            e => self.err(name, e),
        }
    }

    /// See [`super::Store::create_bytes`]: `If-None-Match: *` (GCS: generation 0) on object
    /// stores; in a folder, a temporary file renamed into place only if the name is free.
    pub async fn create_bytes(&self, name: &str, bytes: &[u8]) -> Result<Version, StorageError> {
        if let Some(dest) = self.local_file(name) {
            let (store, owned, bytes) = (self.display.clone(), name.to_string(), bytes.to_vec());
            return tokio::task::spawn_blocking(move || {
                create_local(&dest, &store, &owned, &bytes)
            })
            .await
            .map_err(|e| StorageError::Failed {
                store: self.display.clone(),
                message: format!("the creation of `{name}` stopped: {e}"),
            })?;
        }
        let put = self
            .inner
            .put_opts(
                &self.path(name),
                PutPayload::from(bytes.to_vec()),
                PutOptions {
                    mode: PutMode::Create,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.conditional_err(name, e))?;
        Ok(Version::new(put.e_tag, put.version, bytes))
    }

    /// See [`super::Store::get_versioned`].
    pub async fn get_versioned(&self, name: &str) -> Result<Option<Versioned>, StorageError> {
        if let Some(file) = self.local_file(name) {
            let read = || -> std::io::Result<(Vec<u8>, std::fs::Metadata)> {
                let bytes = std::fs::read(&file)?;
                Ok((bytes, std::fs::metadata(&file)?))
            };
            return match read() {
                Ok((bytes, meta)) => Ok(Some(Versioned {
                    version: Version::new(None, None, &bytes),
                    modified: local_entry(String::new(), &meta).modified,
                    bytes,
                })),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(StorageError::local(&file, e)),
            };
        }
        let got = match self.inner.get(&self.path(name)).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.err(name, e)),
        };
        let meta = got.meta.clone();
        let bytes = got.bytes().await.map_err(|e| self.err(name, e))?.to_vec();
        Ok(Some(Versioned {
            version: Version::new(meta.e_tag, meta.version, &bytes),
            modified: meta.last_modified,
            bytes,
        }))
    }

    /// See [`super::Store::replace_bytes`]: `If-Match` on the ETag read (GCS: its generation)
    /// on object stores; in a folder, the file compared with what was read, then replaced by
    /// a rename.
    pub async fn replace_bytes(
        &self,
        name: &str,
        bytes: &[u8],
        expected: &Version,
    ) -> Result<Version, StorageError> {
        if let Some(dest) = self.local_file(name) {
            let (store, owned, bytes) = (self.display.clone(), name.to_string(), bytes.to_vec());
            let expected = expected.sha256.clone();
            return tokio::task::spawn_blocking(move || {
                replace_local(&dest, &store, &owned, &bytes, &expected)
            })
            .await
            .map_err(|e| StorageError::Failed {
                store: self.display.clone(),
                message: format!("the replacement of `{name}` stopped: {e}"),
            })?;
        }
        let conflict = || StorageError::Conflict {
            store: self.display.clone(),
            name: name.to_string(),
        };
        let put = self
            .inner
            .put_opts(
                &self.path(name),
                PutPayload::from(bytes.to_vec()),
                PutOptions {
                    mode: PutMode::Update(object_store::UpdateVersion {
                        e_tag: expected.e_tag.clone(),
                        version: expected.version.clone(),
                    }),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| match e {
                object_store::Error::Precondition { .. }
                | object_store::Error::NotFound { .. }
                | object_store::Error::AlreadyExists { .. } => conflict(),
                e => self.conditional_err(name, e),
            })?;
        Ok(Version::new(put.e_tag, put.version, bytes))
    }

    pub async fn get_into(&self, name: &str, sink: &mut impl Sink) -> Result<(), StorageError> {
        let got = self
            .inner
            .get(&self.path(name))
            .await
            .map_err(|e| self.err(name, e))?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.err(name, e))?;
            sink.write(&chunk).await?;
        }
        Ok(())
    }

    /// Reads bytes `range` of `name` into `sink` (to the end of the file when it ends first)
    /// with one ranged GET, only while the object has the ETag `if_match` when one is given
    /// ([`StorageError::NotAsExpected`] otherwise); gives the file's size and ETag as the
    /// store reports them.
    pub async fn get_range_into(
        &self,
        name: &str,
        range: std::ops::Range<u64>,
        if_match: Option<&str>,
        sink: &mut impl Sink,
    ) -> Result<(u64, Option<String>), StorageError> {
        let opts = object_store::GetOptions {
            range: Some(object_store::GetRange::Bounded(range)),
            if_match: if_match.map(str::to_string),
            ..Default::default()
        };
        let got = self
            .inner
            .get_opts(&self.path(name), opts)
            .await
            .map_err(|e| match e {
                object_store::Error::Precondition { .. } => StorageError::NotAsExpected {
                    store: self.display.clone(),
                    name: name.to_string(),
                    reason: format!(
                        "it is no longer the object it was (ETag {})",
                        if_match.unwrap_or("")
                    ),
                },
                e => self.err(name, e),
            })?;
        let size = (got.meta.size, got.meta.e_tag.clone());
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.err(name, e))?;
            sink.write(&chunk).await?;
        }
        Ok(size)
    }

    /// See [`super::Store::delete_if`]. On S3 and Azure Blob: one delete request with
    /// `If-Match` on the ETag, sent to a URL the store signs (a presigned URL on S3, a shared
    /// access signature on Azure; object_store 0.14 deletes without conditions, and in batches,
    /// so it cannot carry the header). `Ok(false)` on GCS and folders, for a version without an
    /// ETag, when the store's credentials cannot sign a URL (a SAS given as the credential) or
    /// the service refuses the signed one, and when an S3 API server says it cannot take the
    /// condition (400 or 501). The signed request is sent with object_store's default client
    /// (HTTP allowed for an `http` URL), not with the store's proxy or certificate settings:
    /// a caller that cannot reach the store that way gets the error, and deletes plainly. AWS S3 honours `If-Match` on DeleteObject since September 2025;
    /// a server that ignores the header deletes the object as a plain delete would.
    pub async fn delete_if(&self, name: &str, expected: &Version) -> Result<bool, StorageError> {
        use object_store::client::{HttpConnector, ReqwestConnector};
        use object_store::signer::Signer;
        let (Some(signer), Some(e_tag)) = (&self.signer, &expected.e_tag) else {
            return Ok(false);
        };
        let signer: &dyn Signer = match signer {
            Signing::S3(s3) => s3.as_ref(),
            Signing::Azure(az) => az.as_ref(),
        };
        let signed = signer
            .signed_url(
                http::Method::DELETE,
                &self.path(name),
                std::time::Duration::from_secs(600),
            )
            .await;
        let url = match signed {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(
                    "`{}`: no conditional delete of `{name}`: {}",
                    self.display,
                    crate::exit::chain_text(&e)
                );
                return Ok(false);
            }
        };
        let options = object_store::ClientOptions::new().with_allow_http(url.scheme() == "http");
        let client = ReqwestConnector::default()
            .connect(&options)
            .map_err(|e| self.err(name, e))?;
        let failed = |message: String| StorageError::Failed {
            store: self.display.clone(),
            message: format!("`{name}`: {message}"),
        };
        let req = http::Request::builder()
            .method(http::Method::DELETE)
            .uri(url.as_str())
            .header(http::header::IF_MATCH, e_tag.as_str())
            .body(Vec::<u8>::new().into())
            .map_err(|e| failed(format!("cannot make the delete request: {e}")))?;
        let answer = client
            .execute(req)
            .await
            .map_err(|e| StorageError::Transient {
                store: self.display.clone(),
                message: format!("`{name}`: the conditional delete: {e}"),
            })?;
        let status = answer.status();
        match status {
            s if s.is_success() || s == http::StatusCode::NOT_FOUND => Ok(true),
            http::StatusCode::PRECONDITION_FAILED => Err(StorageError::Conflict {
                store: self.display.clone(),
                name: name.to_string(),
            }),
            // The signature refused (a clock ahead of the service's makes a SAS that is not
            // valid yet; credentials without the right to sign), or an S3 API server that
            // does not take the condition: as a store that cannot.
            http::StatusCode::FORBIDDEN | http::StatusCode::UNAUTHORIZED => {
                tracing::debug!(
                    "`{}`: the conditional delete of `{name}` was refused ({status})",
                    self.display
                );
                Ok(false)
            }
            http::StatusCode::BAD_REQUEST | http::StatusCode::NOT_IMPLEMENTED
                if matches!(self.signer, Some(Signing::S3(_))) =>
            {
                tracing::debug!(
                    "`{}`: the conditional delete of `{name}` was refused ({status})",
                    self.display
                );
                Ok(false)
            }
            s if s.is_server_error() || s == http::StatusCode::TOO_MANY_REQUESTS => {
                Err(StorageError::Transient {
                    store: self.display.clone(),
                    message: format!("`{name}`: the conditional delete was answered {s}"),
                })
            }
            s => Err(failed(format!("the conditional delete was answered {s}"))),
        }
    }

    pub async fn delete(&self, name: &str) -> Result<(), StorageError> {
        match self.inner.delete(&self.path(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(name, e)),
        }
    }

    pub async fn rename(&self, from: &str, to: &str) -> Result<(), StorageError> {
        let (f, t) = (self.path(from), self.path(to));
        match self.inner.rename_if_not_exists(&f, &t).await {
            Ok(()) => Ok(()),
            // Stores without an atomic conditional rename (S3 unless configured): check, then
            // copy and delete.
            Err(
                object_store::Error::NotSupported { .. }
                | object_store::Error::NotImplemented { .. },
            ) => {
                if self.head(to).await?.is_some() {
                    return Err(StorageError::AlreadyExists {
                        store: self.display.clone(),
                        name: to.to_string(),
                    });
                }
                self.inner.copy(&f, &t).await.map_err(|e| self.err(to, e))?;
                self.delete(from).await
            }
            Err(e) => Err(self.err(to, e)),
        }
    }
}

/// Lists a local folder below `root` (a path with its links resolved) the way SFTP folders are
/// listed: regular files, and the rest named in `others`. Links are looked at with `lstat`,
/// never walked into; with `resolve_links`, each is resolved (`canonicalize`, which follows
/// every link in the chain) and its target described. Hidden temporaries of uploads in
/// progress are regular files like any other: the layout and [`crate::transfer`] skip them.
fn list_local(root: &FsPath, prefix: &str, resolve_links: bool) -> Result<Listing, StorageError> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Listing::default();
    // A link on the way to `prefix` (a day folder that leads elsewhere) is named and not
    // walked: the walk below only ever checks the last part of each name.
    let mut on_the_way = root.to_path_buf();
    for part in prefix.split('/').filter(|p| !p.is_empty()) {
        on_the_way.push(part);
        match std::fs::symlink_metadata(&on_the_way) {
            Ok(m) if m.file_type().is_symlink() => {
                let name = on_the_way
                    .strip_prefix(root)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| part.to_string());
                out.others.push(Other {
                    name,
                    kind: OtherKind::Link(LinkTarget::NotResolved),
                });
                return Ok(out);
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let mut stack = vec![prefix.to_string()];
    let join = |rel: &str, file: &str| {
        if rel.is_empty() {
            file.to_string()
        } else {
            format!("{rel}/{file}")
        }
    };
    while let Some(rel) = stack.pop() {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        let read = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            // A folder that does not exist lists as empty, as on object stores.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && rel != prefix => {
                out.others.push(Other {
                    name: rel.clone(),
                    kind: OtherKind::Unreadable(e.to_string()),
                });
                continue;
            }
            Err(e) => return Err(StorageError::local(&dir, e)),
        };
        for entry in read {
            let entry = entry.map_err(|e| StorageError::local(&dir, e))?;
            let file = entry.file_name();
            let Some(file) = file.to_str() else {
                out.others.push(Other {
                    name: join(&rel, &file.to_string_lossy()),
                    kind: OtherKind::Unsafe("the name is not UTF-8".into()),
                });
                continue;
            };
            let name = join(&rel, file);
            if let Err(e) = super::safe_name(&name) {
                out.others.push(Other {
                    name,
                    kind: OtherKind::Unsafe(e.to_string()),
                });
                continue;
            }
            let path = entry.path();
            let meta =
                std::fs::symlink_metadata(&path).map_err(|e| StorageError::local(&path, e))?;
            let kind = meta.file_type();
            if kind.is_dir() {
                stack.push(name);
            } else if kind.is_file() {
                out.files.push(local_entry(name, &meta));
            } else if kind.is_symlink() {
                let target = if resolve_links {
                    resolve_local(root, &path, &name)
                } else {
                    LinkTarget::NotResolved
                };
                out.others.push(Other {
                    name,
                    kind: OtherKind::Link(target),
                });
            } else {
                out.others.push(Other {
                    name,
                    kind: OtherKind::Special(super::special_kind(meta.mode())),
                });
            }
        }
    }
    Ok(out)
}

fn local_entry(name: String, meta: &std::fs::Metadata) -> Entry {
    Entry {
        name,
        size: meta.len(),
        modified: meta
            .modified()
            .map(chrono::DateTime::<chrono::Utc>::from)
            .unwrap_or_default(),
    }
}

/// Where the link at `path` (named `name`) leads, relative to `root`.
fn resolve_local(root: &FsPath, path: &FsPath, name: &str) -> LinkTarget {
    let real = match std::fs::canonicalize(path) {
        Ok(r) => r,
        Err(e) => return LinkTarget::Broken(e.to_string()),
    };
    let Some(rel) = real
        .strip_prefix(root)
        .ok()
        .and_then(|r| r.to_str())
        .filter(|r| !r.is_empty())
        .map(str::to_string)
    else {
        return LinkTarget::Outside(real.display().to_string());
    };
    match std::fs::metadata(&real) {
        Err(e) => LinkTarget::Broken(e.to_string()),
        Ok(m) if m.is_dir() => LinkTarget::Folder(rel),
        Ok(m) if m.is_file() => LinkTarget::File {
            target: rel,
            entry: local_entry(name.to_string(), &m),
        },
        Ok(m) => {
            use std::os::unix::fs::MetadataExt;
            LinkTarget::Special(rel, super::special_kind(m.mode()))
        }
    }
}

/// An error and its causes on one line.
/// Whether running a failed request again may succeed. object_store reports every HTTP status
/// but 401, 403, 404, 409 and 412 as `Generic`, its status only in the text ("Server returned
/// non-2xx status code: 400 Bad Request: ..."); a local folder's I/O error comes the same way.
/// Retryable: no status at all (the network, a timeout), 408, 429 and the 5xx. Not: any other
/// status (a 400 for a wrong KMS key id or a malformed request), and a local permission,
/// missing-path, read-only or full-disk error.
fn retry_may_help(e: &object_store::Error) -> bool {
    use std::io::ErrorKind as K;
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = src {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                K::PermissionDenied
                    | K::NotFound
                    | K::ReadOnlyFilesystem
                    | K::StorageFull
                    | K::IsADirectory
                    | K::NotADirectory
            )
        {
            return false;
        }
        src = c.source();
    }
    let text = crate::exit::chain_text(e);
    match text
        .split("status code: ")
        .nth(1)
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
    {
        Some(code) => code == 408 || code == 429 || code >= 500,
        None => true,
    }
}

/// The local files being copied or read ([`copy_local`]: the fetch's copies of a local source,
/// uploads to a local folder; one blocking thread each, as many as the transfer's
/// concurrency): their checksums are taken two pieces at a time.
static LOCAL_COPIES: crate::checksum::Pairing<crate::files::Memory> =
    crate::checksum::Pairing::new();

/// A download from a local folder: `from` copied to `to` ([`copy_local`]), at most `max` bytes.
pub(super) fn copy_local_file(
    from: &FsPath,
    to: &FsPath,
    max: Option<u64>,
) -> Result<Transferred, StorageError> {
    copy_local(from, Some(to), max)
}

/// Reads a local file past the page cache ([`crate::files::DirectReader`]), hashing it (two
/// pieces at a time with the other copies running, see [`LOCAL_COPIES`]), and with `to`
/// copies it there; syncs what it wrote (or, for
/// a file only read, the file itself: usually already on disk, then cheap). Only a regular file
/// is read: `from` itself may not be a symbolic link (a name listed as a file and replaced by a
/// link since is refused, not followed out of the folder), and a fifo or device is refused
/// before a byte is read (opened without blocking, so a fifo without a writer cannot hang it).
/// More than `max` bytes are refused ([`super::oversize`]) and never written.
pub(super) fn copy_local(
    from: &FsPath,
    to: Option<&FsPath>,
    max: Option<u64>,
) -> Result<Transferred, StorageError> {
    read_copying(from, to, max, true)
}

/// The size and SHA-256 of the local file `from`, read as [`copy_local`] reads it, and not
/// synced: a comparison with what a delivery would write (`Store::checksum`) does not make the
/// file's own bytes durable, nor report an earlier write's failure as its own.
pub(super) fn hash_local(from: &FsPath, max: Option<u64>) -> Result<Transferred, StorageError> {
    read_copying(from, None, max, false)
}

/// [`copy_local`]; a file only read is synced when `sync_read`.
fn read_copying(
    from: &FsPath,
    to: Option<&FsPath>,
    max: Option<u64>,
    sync_read: bool,
) -> Result<Transferred, StorageError> {
    let mut src = crate::files::DirectReader::open(from, libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => StorageError::NotAFile {
                store: String::new(),
                name: String::new(),
                what: "a symbolic link".into(),
            },
            _ => StorageError::local(from, e),
        })?;
    let meta = src
        .file()
        .metadata()
        .map_err(|e| StorageError::local(from, e))?;
    if !meta.is_file() {
        use std::os::unix::fs::MetadataExt;
        return Err(StorageError::NotAFile {
            store: String::new(),
            name: String::new(),
            what: super::special_kind(meta.mode()).into(),
        });
    }
    let mut out = match to {
        Some(to) => Some((
            crate::files::DirectFile::create(to).map_err(|e| StorageError::local(to, e))?,
            to,
        )),
        None => None,
    };
    let mut sha = crate::checksum::Sha256::new();
    let pairing = LOCAL_COPIES.join();
    let mut bytes = 0u64;
    loop {
        let piece = src.read().map_err(|e| StorageError::local(from, e))?;
        let n = piece.len();
        if n == 0 {
            break;
        }
        if let Some(m) = max
            && bytes + n as u64 > m
        {
            return Err(super::oversize(m));
        }
        src.lend(|buf| pairing.update(&mut sha, buf, piece.clone()));
        if let Some((file, to)) = out.as_mut() {
            // The piece is written from the buffer it was read into.
            file.write_read(&mut src, piece)
                .map_err(|e| StorageError::local(to, e))?;
        }
        bytes += n as u64;
    }
    // Not a partner to wait for while it syncs.
    drop(pairing);
    match out {
        Some((file, to)) => file
            .finish()
            .and_then(|f| f.sync_all())
            .map_err(|e| StorageError::local(to, e))?,
        None if sync_read => src
            .file()
            .sync_all()
            .map_err(|e| StorageError::local(from, e))?,
        None => {}
    }
    Ok(Transferred {
        bytes,
        sha256: hex::encode(sha.finalize()),
    })
}

/// An upload to a local folder. object_store would stage it beside the target as `NAME#N`,
/// which a process killed in the middle leaves in the vendor's folder under a visible name.
/// Here the file gets a hidden temporary name beside the target (`.NAME.batchwin-tmp`, the
/// same on every attempt, so a retry or the next run replaces what a killed one left): a hard
/// link to it on the same filesystem, a copy elsewhere. Its bytes are hashed, synced, checked
/// against `expected`, then moved into place: renamed over the target with `overwrite`,
/// otherwise only if the name is free.
fn put_local(
    dest: &FsPath,
    store: &str,
    name: &str,
    local: &FsPath,
    overwrite: bool,
    expected: Option<&ExpectedContent>,
) -> Result<Transferred, StorageError> {
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::local(dir, e))?;
    }
    let file_name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dest.with_file_name(format!(".{file_name}.batchwin-tmp"));
    let copy = || -> Result<Transferred, StorageError> {
        // What a killed attempt left under the temporary name goes first.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StorageError::local(&tmp, e));
            }
            _ => {}
        }
        // On the same filesystem the file itself is delivered: the temporary name is a second
        // link to it, so its bytes are never written again, and read (to check them) only if
        // it may have changed since it was made (see `ExpectedContent::written_by`). Outputs are
        // never changed once written, so the two names can share them. Elsewhere (another
        // filesystem, one without hard links) the bytes are copied.
        let read = if std::fs::hard_link(local, &tmp).is_ok() {
            match expected.filter(|e| unchanged_since(&tmp, e)) {
                Some(e) => e.content.clone(),
                None => copy_local(&tmp, None, None)?,
            }
        } else {
            copy_local(local, Some(&tmp), None)?
        };
        read.check(local, expected.map(|e| &e.content))?;
        if overwrite {
            std::fs::rename(&tmp, dest).map_err(|e| StorageError::local(dest, e))?;
        } else {
            match rename_if_free(&tmp, dest) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(StorageError::AlreadyExists {
                        store: store.to_string(),
                        name: name.to_string(),
                    });
                }
                Err(e) => return Err(StorageError::local(dest, e)),
            }
        }
        Ok(read)
    };
    let result = copy();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `bytes` written to a new file beside `dest` and synced, then renamed to `dest` only if that
/// name is free ([`StorageError::AlreadyExists`] otherwise): the creation of a small file in a
/// folder, exclusive and whole.
fn create_local(
    dest: &FsPath,
    store: &str,
    name: &str,
    bytes: &[u8],
) -> Result<Version, StorageError> {
    let tmp = write_beside(dest, bytes)?;
    match rename_if_free(&tmp, dest) {
        Ok(()) => Ok(Version::new(None, None, bytes)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
                StorageError::AlreadyExists {
                    store: store.to_string(),
                    name: name.to_string(),
                }
            } else {
                StorageError::local(dest, e)
            })
        }
    }
}

/// `dest` replaced by `bytes` (a synced file renamed over it) if it still holds what has the
/// sha256 `expected` ([`StorageError::Conflict`] otherwise, or when it is gone): checked, then
/// written.
fn replace_local(
    dest: &FsPath,
    store: &str,
    name: &str,
    bytes: &[u8],
    expected: &str,
) -> Result<Version, StorageError> {
    let conflict = || StorageError::Conflict {
        store: store.to_string(),
        name: name.to_string(),
    };
    match std::fs::read(dest) {
        Ok(now) if sha256_hex(&now) == expected => {}
        Ok(_) => return Err(conflict()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(conflict()),
        Err(e) => return Err(StorageError::local(dest, e)),
    }
    let tmp = write_beside(dest, bytes)?;
    if let Err(e) = std::fs::rename(&tmp, dest) {
        let _ = std::fs::remove_file(&tmp);
        return Err(StorageError::local(dest, e));
    }
    Ok(Version::new(None, None, bytes))
}

/// `bytes` in a new hidden file of its own beside `dest` (see [`super::temp_sibling`]), synced.
fn write_beside(dest: &FsPath, bytes: &[u8]) -> Result<PathBuf, StorageError> {
    use std::io::Write;
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::local(dir, e))?;
    }
    let tmp = super::temp_sibling(dest);
    let written = crate::files::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(StorageError::local(&tmp, e));
    }
    Ok(tmp)
}

/// Whether `path` has the size `expected` records and was last modified no later than the
/// moment its writer had finished it: then it has not been written since.
fn unchanged_since(path: &FsPath, expected: &ExpectedContent) -> bool {
    let Some(written_by) = expected.written_by else {
        return false;
    };
    std::fs::metadata(path).is_ok_and(|m| {
        m.len() == expected.content.bytes && m.modified().is_ok_and(|t| t <= written_by)
    })
}

/// Moves `from` to `to` unless `to` exists (`AlreadyExists` then). One atomic rename where the
/// filesystem can refuse to replace (Linux `renameat2` with `RENAME_NOREPLACE`), otherwise a
/// hard link and the removal of `from`.
fn rename_if_free(from: &FsPath, to: &FsPath) -> std::io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &FsPath| {
            std::ffi::CString::new(p.as_os_str().as_bytes())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
        };
        let (f, t) = (c(from)?, c(to)?);
        // SAFETY: two NUL-terminated paths that outlive the call; no memory is shared.
        let r = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                f.as_ptr(),
                libc::AT_FDCWD,
                t.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        // Filesystems without it (some network ones) say EINVAL: link instead.
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(e);
        }
    }
    std::fs::hard_link(from, to)?;
    let _ = std::fs::remove_file(from);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(url: &str, pairs: &[(&str, &str)]) -> Result<ObjectBackend, StorageError> {
        let opts = StoreOptions {
            pairs: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        ObjectBackend::remote(&url::Url::parse(url).unwrap(), &opts, url)
    }

    /// A local copy is the source's bytes with their checksum, an empty file included; a
    /// source larger than the cap is refused, and nothing of it is written past the cap.
    #[test]
    fn a_local_copy_has_the_sources_bytes_and_checksum_and_keeps_to_its_cap() {
        use sha2::Digest;
        let dir = tempfile::tempdir().unwrap();
        for len in [0usize, 1, 5000, 3 << 20] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let from = dir.path().join(format!("in-{len}"));
            let to = dir.path().join(format!("out-{len}"));
            std::fs::write(&from, &bytes).unwrap();
            let t = copy_local_file(&from, &to, Some(len as u64)).unwrap();
            assert_eq!(t.bytes, len as u64);
            assert_eq!(t.sha256, hex::encode(sha2::Sha256::digest(&bytes)));
            assert_eq!(std::fs::read(&to).unwrap(), bytes);
            if len > 0 {
                let capped_to = dir.path().join(format!("capped-{len}"));
                let capped = copy_local_file(&from, &capped_to, Some(len as u64 - 1));
                assert!(
                    matches!(capped, Err(StorageError::Oversize { .. })),
                    "{capped:?}"
                );
                let written = std::fs::metadata(&capped_to).map_or(0, |m| m.len());
                assert!(written < len as u64, "{written} bytes written past the cap");
            }
        }
    }

    /// A misspelt encryption key would leave objects unencrypted without a word: it is refused,
    /// as is a value the store does not know; keys of other stores are left alone.
    #[test]
    fn misspelt_or_invalid_encryption_settings_are_refused() {
        let s3 = [
            ("aws_region", "us-east-1"),
            ("azure_encryption_scope", "s1x"),
        ];
        assert!(
            open(
                "s3://b/p",
                &[&s3[..], &[("aws_server_side_encryption", "aws:kms")]].concat()
            )
            .is_ok()
        );
        let e = open("s3://b/p", &[("aws_server_side_encription", "aws:kms")])
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("`aws_server_side_encription`"), "{e}");
        let e = open("s3://b/p", &[("aws_server_side_encryption", "kms")])
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("Invalid encryption type"), "{e}");
        let az = [
            ("azure_storage_use_emulator", "true"),
            ("aws_region", "us-east-1"),
        ];
        assert!(open("az://c/p", &az).is_ok());
        let e = open(
            "az://c/p",
            &[&az[..], &[("azure_encryption_scop", "s")]].concat(),
        )
        .err()
        .expect("refused")
        .to_string();
        assert!(e.contains("`azure_encryption_scop`"), "{e}");
        assert!(
            open(
                "az://c/p",
                &[&az[..], &[("azure_encryption_scope", "day-1")]].concat()
            )
            .is_ok()
        );
        // A name the service would refuse on every write is refused before the first.
        let e = open(
            "az://c/p",
            &[&az[..], &[("azure_encryption_scope", "Day_1")]].concat(),
        )
        .err()
        .expect("refused")
        .to_string();
        assert!(e.contains("name of an encryption scope"), "{e}");
    }

    /// Exit code 3 only where a retry may help: the statuses object_store hands over as text
    /// and local I/O errors are told apart.
    #[test]
    fn only_what_a_retry_can_fix_is_transient() {
        let generic =
            |source: Box<dyn std::error::Error + Send + Sync>| object_store::Error::Generic {
                store: "S3",
                source,
            };
        let status = |code: &str| {
            generic(format!("Error performing PUT http://s/b/k in 1s - Server returned non-2xx status code: {code}: <Error/>").into())
        };
        assert!(!retry_may_help(&status("400 Bad Request")));
        assert!(!retry_may_help(&status("405 Method Not Allowed")));
        assert!(retry_may_help(&status("503 Service Unavailable")));
        assert!(retry_may_help(&status("500 Internal Server Error")));
        assert!(retry_may_help(&status("429 Too Many Requests")));
        assert!(retry_may_help(&status("408 Request Timeout")));
        assert!(retry_may_help(&generic(
            "error sending request: connection refused".into()
        )));
        let io = |kind| generic(Box::new(std::io::Error::new(kind, "local")));
        assert!(!retry_may_help(&io(std::io::ErrorKind::PermissionDenied)));
        assert!(!retry_may_help(&io(std::io::ErrorKind::StorageFull)));
        assert!(retry_may_help(&io(std::io::ErrorKind::ConnectionReset)));
    }
}
