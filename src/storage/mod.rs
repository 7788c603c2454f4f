//! One interface over where files live: local folders, object stores (S3, Azure Blob, GCS)
//! through the `object_store` crate, and SFTP servers through `russh`/`russh-sftp`. `fetch` and
//! `publish` talk to a [`Store`] and never to a backend directly; every backend passes the same
//! conformance suite (`tests/cli/storage.rs`).
//!
//! A store is opened from a URL: a plain path or `file:///dir`, `s3://bucket/prefix`,
//! `az://container/prefix` (also `azure://`), `gs://bucket/prefix`, `sftp://user@host:port/dir`.
//! Credentials, endpoints and regions come from the usual variables (`AWS_*`, `AZURE_*`,
//! `GOOGLE_*`) and from the `[transfer.options]` table of the config, gathered once into
//! [`StoreOptions`]. SSH uses keys only, and verifies the server against a known_hosts file.
//!
//! Transient failures (connection refused or reset, timeouts, 5xx answers, a dropped SFTP
//! session) are retried with exponential backoff and jitter ([`Retry`]); an error that outlasts
//! the retries is [`StorageError::Transient`], which commands turn into the retryable exit code.
//!
//! Small files can also be written conditionally ([`Store::create_bytes`] only where there is
//! none, [`Store::replace_bytes`] only while it is the version read): in one request that the
//! store refuses on object stores, checked then written (whole, by a rename) on SFTP and in
//! folders ([`Store::conditional`]), and deleted only while unchanged where the store can
//! ([`Store::delete_if`]: S3 and Azure Blob). The lock at a run location is made of them.
//!
//! Names inside a store are relative, `/`-separated, and checked by [`safe_name`]: no `..`, no
//! absolute paths, no control characters. A name that fails the check is never sent anywhere.
//!
//! A listing ([`Store::list_all`]) holds regular files only; everything else it met is named in
//! [`Listing::others`]: symbolic links (with where they lead, when asked), fifos, sockets and
//! devices, folders the server would not list, names that are not safe. File types come from
//! the type bits of the mode (`mode & 0o170000`): a link's bits (0o120000) contain a regular
//! file's (0o100000), so testing single bits calls links files. Object stores have no links.

mod azure_scope;
mod object;
mod sftp;

use std::path::{Path as FsPath, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// Bytes above which uploads to object stores go in parts (a completed multipart upload is
/// still atomic: readers see the whole object or nothing).
pub const MULTIPART_BYTES: u64 = 16 << 20;
/// Size of the buffers files are streamed through.
pub(crate) const STREAM_BUF: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("`{url}` is not a location batchwin can use: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("unsafe remote name {name:?}: {reason}; nothing was written")]
    UnsafeName { name: String, reason: &'static str },
    #[error("`{name}` already exists in `{store}`")]
    AlreadyExists { store: String, name: String },
    #[error("`{name}` is not in `{store}`")]
    NotFound { store: String, name: String },
    /// A conditional write found the file changed (or gone) since it was read.
    #[error("`{store}`: `{name}` changed since it was read; not written")]
    Conflict { store: String, name: String },
    #[error("`{store}`: {message}")]
    Transient { store: String, message: String },
    #[error("`{store}`: {message}")]
    Failed { store: String, message: String },
    #[error("`{store}`: {message}")]
    HostKey { store: String, message: String },
    #[error("local file `{path}` is not what it should be: {reason}; nothing was delivered")]
    Changed { path: String, reason: String },
    #[error("`{store}`: `{name}` is not what it should be: {reason}")]
    NotAsExpected {
        store: String,
        name: String,
        reason: String,
    },
    #[error(
        "`{store}`: `{name}` sent more than the {listed} bytes it was listed with (and still \
         has); refused, nothing of it was kept"
    )]
    Oversize {
        store: String,
        name: String,
        listed: u64,
    },
    #[error("`{store}`: `{name}` is not a regular file ({what}); a permanent error, not retried")]
    NotAFile {
        store: String,
        name: String,
        what: String,
    },
    #[error(
        "the day's files need {needed} bytes but `{path}` has {available} bytes free; nothing \
         was copied. Free some space (or stage elsewhere) and run fetch again"
    )]
    NoRoom {
        path: String,
        needed: u64,
        available: u64,
    },
    #[error("local file `{path}`: {source}")]
    Local {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl StorageError {
    /// Whether running the same operation again may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StorageError::Transient { .. })
    }
    /// How a command that this error stops ends: 3 only when running it again may help (the
    /// network, a timeout, a server error); 2 for what the configuration must fix (a location
    /// that cannot be used, a refused host key); 1 for the rest, which is permanent.
    pub fn exit_status(&self) -> crate::exit::ExitStatus {
        use crate::exit::ExitStatus;
        match self {
            StorageError::Transient { .. } => ExitStatus::Retryable,
            StorageError::BadUrl { .. }
            | StorageError::UnsafeName { .. }
            | StorageError::HostKey { .. } => ExitStatus::Usage,
            _ => ExitStatus::DataFailure,
        }
    }
    pub(crate) fn local(path: &FsPath, source: std::io::Error) -> StorageError {
        StorageError::Local {
            path: path.display().to_string(),
            source,
        }
    }
}

impl From<StorageError> for crate::exit::Failure {
    /// A store's error ends a command with the status it calls for (3 when running again may
    /// help).
    fn from(e: StorageError) -> crate::exit::Failure {
        crate::exit::Failure {
            status: e.exit_status(),
            error: e.into(),
        }
    }
}

/// How transient failures are retried: `attempts` retries after the first try, waiting
/// `base * 2^n` (at most `max`), each wait scaled by a random factor in [0.5, 1) so that many
/// workers do not retry in step.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            attempts: 5,
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl Retry {
    /// The wait before retry number `n` (0-based).
    pub fn delay(&self, n: u32) -> Duration {
        use rand::Rng;
        let full = self.base.saturating_mul(1u32 << n.min(20)).min(self.max);
        full.mul_f64(rand::thread_rng().gen_range(0.5..1.0))
    }
}

/// SSH settings for `sftp://` locations.
#[derive(Debug, Clone, Default)]
pub struct SshOptions {
    /// Private key file (OpenSSH format). Passwords are never accepted.
    pub key: Option<PathBuf>,
    /// known_hosts file the server's key must be in (default `~/.ssh/known_hosts`).
    pub known_hosts: Option<PathBuf>,
    /// Add an unknown server's key to known_hosts instead of refusing it (first contact only:
    /// a key that differs from a recorded one is always refused).
    pub accept_new_host_key: bool,
    /// The user when a location names none (the environment's `USER`).
    pub user: Option<String>,
    /// Where `~/.ssh` is, for the default key and known_hosts (the environment's `HOME`).
    pub home: Option<PathBuf>,
}

/// Everything needed to open stores, resolved once by the command.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// object_store configuration keys (`aws_endpoint`, `aws_region`, `aws_allow_http`,
    /// `azure_storage_use_emulator`, ...), applied over the environment.
    pub pairs: Vec<(String, String)>,
    pub ssh: SshOptions,
    pub retry: Retry,
    /// Seconds without an answer after which a request counts as failed (and is retried).
    pub timeout: Option<Duration>,
}

/// What [`Store::read_range`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeRead {
    pub bytes: Vec<u8>,
    /// The whole file's size, and its ETag when the store has one (object stores, not SFTP).
    pub size: u64,
    pub e_tag: Option<String>,
}

/// A small file as it was read or written, which a conditional write must find unchanged
/// ([`Store::replace_bytes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The object store's ETag and version id (none on SFTP and in folders).
    pub e_tag: Option<String>,
    pub version: Option<String>,
    /// sha256 of its bytes: what SFTP and folders compare.
    pub sha256: String,
}

impl Version {
    /// The version of `bytes`, with the ETag and version id the store gave them, if any.
    pub fn new(e_tag: Option<String>, version: Option<String>, bytes: &[u8]) -> Version {
        Version {
            e_tag,
            version,
            sha256: sha256_hex(bytes),
        }
    }
}

/// A small file read whole ([`Store::get_versioned`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub bytes: Vec<u8>,
    pub version: Version,
    /// When it was last written, by the store's clock (a folder's: this machine's).
    pub modified: chrono::DateTime<chrono::Utc>,
}

/// How a store writes conditionally ([`Store::conditional`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conditional {
    /// Object stores (S3, Azure Blob, GCS): a creation and a replacement are each one request
    /// that the store refuses when its precondition does not hold (`If-None-Match: *`, an
    /// `If-Match` on the ETag read). Two writers can never both succeed.
    Atomic,
    /// SFTP and folders: a creation is exclusive (a rename that never replaces), a
    /// replacement is a read, a comparison and then a write (a rename over the file), with a
    /// short window between them in which another writer's replacement can be lost. Both are
    /// whole: a temporary file renamed, never a file written in place.
    CheckThenWrite,
}

/// sha256 of `bytes`, in hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Name relative to the store's root.
    pub name: String,
    pub size: u64,
    pub modified: chrono::DateTime<chrono::Utc>,
}

/// A listing: the regular files, and what else was found (and not listed as a file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub files: Vec<Entry>,
    pub others: Vec<Other>,
}

/// Something a listing found that is not a regular file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Other {
    /// Name relative to the store's root (as the server gave it: may be unsafe).
    pub name: String,
    pub kind: OtherKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtherKind {
    /// A symbolic link, and where it leads when links were resolved.
    Link(LinkTarget),
    /// A fifo, socket or device ("a fifo", ...): never read.
    Special(&'static str),
    /// A folder that could not be listed (permission denied): its files were not seen.
    Unreadable(String),
    /// A name that is not safe ([`safe_name`]): never read.
    Unsafe(String),
}

/// Where a symbolic link leads, as the server resolves it (SFTP `realpath`, `canonicalize`
/// on local folders).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkTarget {
    /// Not looked at (links were not to be followed).
    NotResolved,
    /// It cannot be resolved: it leads nowhere, or round in a loop.
    Broken(String),
    /// Out of the store's root (the absolute path it leads to).
    Outside(String),
    /// To a folder (its name relative to the root): never followed.
    Folder(String),
    /// To something that is not a regular file (its name, what it is).
    Special(String, &'static str),
    /// To a regular file: its name relative to the root, and its size and time (listed under
    /// the link's name).
    File { target: String, entry: Entry },
}

/// The type bits of a mode: what a file is.
pub(crate) const TYPE_BITS: u32 = 0o170000;

/// What the type bits of a mode say, in words, for a mode that is not a folder, a regular file
/// or a link.
pub(crate) fn special_kind(mode: u32) -> &'static str {
    match mode & TYPE_BITS {
        0o010000 => "a fifo",
        0o140000 => "a socket",
        0o020000 => "a character device",
        0o060000 => "a block device",
        0o040000 => "a folder",
        0o100000 => "a regular file",
        0o120000 => "a symbolic link",
        _ => "an entry of unknown type",
    }
}

/// What a finished transfer moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transferred {
    pub bytes: u64,
    pub sha256: String,
}

/// What a file to upload must hold (as the ledger that made it recorded), checked before the
/// upload becomes visible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedContent {
    pub content: Transferred,
    /// When its writer had finished it. A delivery that shares the file itself (a hard link in
    /// a local folder on the same filesystem) moves no bytes, so it reads them only to see
    /// whether the file changed since: when the file has the recorded size and was last
    /// modified no later than this moment, it has not been written since, and it is not read.
    pub written_by: Option<std::time::SystemTime>,
}

impl Transferred {
    /// Fails unless what was read from `local` is what was `expected` (when something is):
    /// the check an upload makes before its result becomes visible.
    pub(crate) fn check(
        &self,
        local: &FsPath,
        expected: Option<&Transferred>,
    ) -> Result<(), StorageError> {
        match expected {
            Some(e) if e != self => Err(StorageError::Changed {
                path: local.display().to_string(),
                reason: format!(
                    "{} bytes with sha256 {}, expected {} bytes with sha256 {}",
                    self.bytes, self.sha256, e.bytes, e.sha256
                ),
            }),
            _ => Ok(()),
        }
    }
}

enum Backend {
    Object(object::ObjectBackend),
    Sftp(sftp::SftpBackend),
}

/// A location opened for reading and writing.
pub struct Store {
    backend: Backend,
    /// The URL without credentials, for messages, ledgers and manifests.
    display: String,
    retry: Retry,
}

/// Checks a relative name: `/`-separated, no `..`, `.` or empty parts, not absolute, no NUL
/// or control characters, no backslashes (which some servers treat as separators).
pub fn safe_name(name: &str) -> Result<(), StorageError> {
    let bad = |reason| {
        Err(StorageError::UnsafeName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("the name is empty");
    }
    if name.starts_with('/') || name.as_bytes().get(1) == Some(&b':') {
        return bad("absolute paths are not allowed");
    }
    if name.chars().any(|c| c.is_control()) {
        return bad("NUL and control characters are not allowed");
    }
    if name.contains('\\') {
        return bad("backslashes are not allowed");
    }
    if name
        .split('/')
        .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return bad("`..`, `.` and empty path parts are not allowed");
    }
    Ok(())
}

/// The URL with any password, query string (where SAS tokens and signatures live) and
/// fragment removed, for logs, ledgers, manifests and errors.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if url.contains("://") && u.scheme().len() > 1 => {
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Joins a store's display URL and a name inside it.
pub fn join_url(base: &str, name: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), name)
}

impl Store {
    /// Opens a location URL or a plain local path (local folders are created when missing;
    /// remote ones are checked on first use).
    pub async fn open(location: &str, opts: &StoreOptions) -> Result<Store, StorageError> {
        let display = redact_url(location);
        let bad = |reason: String| StorageError::BadUrl {
            url: display.clone(),
            reason,
        };
        let backend = if !location.contains("://") {
            Backend::Object(object::ObjectBackend::local(
                FsPath::new(location),
                &display,
            )?)
        } else {
            let url = url::Url::parse(&location.replacen("azure://", "az://", 1))
                .map_err(|e| bad(e.to_string()))?;
            match url.scheme() {
                "file" => {
                    let path = url
                        .to_file_path()
                        .map_err(|()| bad("not a local path".into()))?;
                    Backend::Object(object::ObjectBackend::local(&path, &display)?)
                }
                "s3" | "az" | "gs" => {
                    Backend::Object(object::ObjectBackend::remote(&url, opts, &display)?)
                }
                "sftp" => Backend::Sftp(sftp::SftpBackend::new(&url, opts, &display)?),
                other => {
                    return Err(bad(format!(
                        "unknown scheme `{other}`; use a path, file://, s3://, az://, gs:// or sftp://"
                    )));
                }
            }
        };
        Ok(Store {
            backend,
            display,
            retry: opts.retry,
        })
    }

    /// The URL this store was opened from, without credentials.
    pub fn url(&self) -> &str {
        &self.display
    }

    /// The URL of a name inside this store, without credentials.
    pub fn url_of(&self, name: &str) -> String {
        join_url(&self.display, name)
    }

    /// One attempt at reading `name` into a fresh `sink`.
    async fn get_into(&self, name: &str, sink: &mut impl Sink) -> Result<(), StorageError> {
        match &self.backend {
            Backend::Object(o) => o.get_into(name, sink).await,
            Backend::Sftp(s) => s.get_into(name, sink).await,
        }
    }

    /// Runs `op` again on transient errors, with backoff, up to the retry limit.
    async fn retrying<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, StorageError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StorageError>>,
    {
        let mut n = 0;
        loop {
            match op().await {
                Err(e) if e.is_transient() && n < self.retry.attempts => {
                    let wait = self.retry.delay(n);
                    n += 1;
                    tracing::warn!(
                        store = %self.display,
                        attempt = n,
                        of = self.retry.attempts,
                        "{what} failed, retrying in {:.1}s: {e}",
                        wait.as_secs_f64()
                    );
                    if let Backend::Sftp(s) = &self.backend {
                        s.reset().await;
                    }
                    tokio::time::sleep(wait).await;
                }
                r => return r,
            }
        }
    }

    /// Every regular file below `prefix` ("" for all), names relative to the root, sorted by
    /// name. Links, special files and unreadable folders are left out (see [`Store::list_all`]).
    pub async fn list(&self, prefix: &str) -> Result<Vec<Entry>, StorageError> {
        Ok(self.list_all(prefix, false).await?.files)
    }

    /// The size of every file below `prefix` by its URL ([`Store::url_of`]), from one listing;
    /// none when there is no such folder.
    pub async fn sizes(
        &self,
        prefix: &str,
    ) -> Result<std::collections::HashMap<String, u64>, StorageError> {
        match self.list(prefix).await {
            Ok(v) => Ok(v
                .into_iter()
                .map(|e| (self.url_of(&e.name), e.size))
                .collect()),
            Err(StorageError::NotFound { .. }) => Ok(Default::default()),
            Err(e) => Err(e),
        }
    }

    /// Every regular file below `prefix`, and what else is there ([`Listing::others`]): with
    /// `resolve_links`, where each symbolic link leads. Links are never descended into.
    pub async fn list_all(
        &self,
        prefix: &str,
        resolve_links: bool,
    ) -> Result<Listing, StorageError> {
        if !prefix.is_empty() {
            safe_name(prefix.trim_end_matches('/'))?;
        }
        let mut out = self
            .retrying("listing", || async move {
                match &self.backend {
                    Backend::Object(o) => o.list(prefix, resolve_links).await,
                    Backend::Sftp(s) => s.list(prefix, resolve_links).await,
                }
            })
            .await?;
        out.files.sort_by(|a, b| a.name.cmp(&b.name));
        out.others.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Size and time of one file, or `None` when it is absent.
    pub async fn head(&self, name: &str) -> Result<Option<Entry>, StorageError> {
        safe_name(name)?;
        self.retrying("reading the size of a file", || async move {
            match &self.backend {
                Backend::Object(o) => o.head(name).await,
                Backend::Sftp(s) => s.head(name).await,
            }
        })
        .await
    }

    /// Uploads a local file atomically: on object stores one put or a completed multipart
    /// upload, on SFTP a temporary name in the target folder renamed once its size is
    /// verified; readers never see part of it. Without `overwrite`, an existing target is never
    /// replaced ([`StorageError::AlreadyExists`]).
    pub async fn put_file(
        &self,
        name: &str,
        local: &FsPath,
        overwrite: bool,
    ) -> Result<Transferred, StorageError> {
        self.put_file_checked(name, local, overwrite, None).await
    }

    /// [`Store::put_file`], reading `local` once: hashed as it is sent, and checked against
    /// `expected` (size and sha256) before the upload is completed or renamed into place. A
    /// file that is not what it should be is never delivered (`StorageError::Changed`).
    pub async fn put_file_checked(
        &self,
        name: &str,
        local: &FsPath,
        overwrite: bool,
        expected: Option<&ExpectedContent>,
    ) -> Result<Transferred, StorageError> {
        safe_name(name)?;
        self.retrying("upload", || async move {
            match &self.backend {
                Backend::Object(o) => o.put_file(name, local, overwrite, expected).await,
                Backend::Sftp(s) => s.put_file(name, local, overwrite, expected).await,
            }
        })
        .await
    }

    /// Downloads a file to a local path, streaming and hashing as it goes; written under a
    /// temporary name beside `local` and renamed when complete, so `local` is never partial.
    pub async fn get_file(&self, name: &str, local: &FsPath) -> Result<Transferred, StorageError> {
        self.get_file_capped(name, local, None).await
    }

    /// [`Store::get_file`] of at most `max` bytes: a source that sends more is refused
    /// ([`StorageError::Oversize`]) as soon as it does, and nothing of it is kept, so a server
    /// that never stops sending cannot fill the disk. Folders, links and special files are
    /// refused before anything is read ([`StorageError::NotAFile`]).
    pub async fn get_file_capped(
        &self,
        name: &str,
        local: &FsPath,
        max: Option<u64>,
    ) -> Result<Transferred, StorageError> {
        safe_name(name)?;
        if let Some(dir) = local.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| StorageError::local(dir, e))?;
        }
        let tmp = temp_sibling(local);
        let tmp_ref = tmp.as_path();
        crate::cancel::register_temporary(&tmp);
        let result = self
            .retrying("download", || async move {
                if let Backend::Object(o) = &self.backend
                    && let Some(from) = o.local_file(name)
                {
                    // A local folder: copied on a blocking thread, so that the checksums of
                    // several files are computed on several cores at once.
                    let to = tmp_ref.to_path_buf();
                    return self
                        .read_local(name, "download", from, move |from| {
                            object::copy_local_file(from, &to, max)
                        })
                        .await;
                }
                let mut sink = FileSink::create(tmp_ref, max).await?;
                self.get_into(name, &mut sink)
                    .await
                    .map_err(|e| self.named(name, e))?;
                sink.finish().await
            })
            .await;
        place(result, &tmp, local).await
    }

    /// Puts this store and `name` into the errors a sink or a local copy raises without them.
    fn named(&self, name: &str, e: StorageError) -> StorageError {
        match e {
            StorageError::Oversize { listed, .. } => StorageError::Oversize {
                store: self.display.clone(),
                name: name.to_string(),
                listed,
            },
            StorageError::NotAFile { what, .. } => StorageError::NotAFile {
                store: self.display.clone(),
                name: name.to_string(),
                what,
            },
            e => e,
        }
    }

    /// `read(file)` on a blocking thread: the `what` (a download, a checksum) of the file
    /// `file` that is `name` in a local folder, its errors said as of `name` in this store (a
    /// file not there is [`StorageError::NotFound`], as object_store says it).
    async fn read_local(
        &self,
        name: &str,
        what: &str,
        file: PathBuf,
        read: impl FnOnce(&FsPath) -> Result<Transferred, StorageError> + Send + 'static,
    ) -> Result<Transferred, StorageError> {
        tokio::task::spawn_blocking(move || read(&file))
            .await
            .map_err(|e| StorageError::Failed {
                store: self.display.clone(),
                message: format!("the {what} of `{name}` stopped: {e}"),
            })?
            .map_err(|e| match e {
                StorageError::Local { ref source, .. }
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    StorageError::NotFound {
                        store: self.display.clone(),
                        name: name.to_string(),
                    }
                }
                e => self.named(name, e),
            })
    }

    /// Size and sha256 of a file in the store, read and not kept: streamed from a server, read
    /// past the page cache from a local folder. With `max`, reading stops with
    /// [`StorageError::Oversize`] as soon as more than `max` bytes come (the size listed), so a
    /// server that never stops sending cannot hold the caller.
    pub async fn checksum(
        &self,
        name: &str,
        max: Option<u64>,
    ) -> Result<Transferred, StorageError> {
        safe_name(name)?;
        self.retrying("checksum", || async move {
            if let Backend::Object(o) = &self.backend
                && let Some(file) = o.local_file(name)
            {
                // A local folder: read past the page cache and hashed on a blocking thread, as
                // a download from one is (object_store reads a local file 8 KiB at a time, each
                // piece on a blocking thread of its own and copied out of the page cache). A
                // `run` of the synthetic day whose outbound folder already held every output
                // took 38.6 s that way, 13 % of its CPU time in those copies (`perf record -a`).
                // A link or special file under the name is read as object_store reads it.
                match self
                    .read_local(name, "checksum", file, move |file| {
                        object::hash_local(file, max)
                    })
                    .await
                {
                    Err(StorageError::NotAFile { .. }) => {}
                    done => return done,
                }
            }
            let mut sink = HashSink {
                max,
                ..HashSink::default()
            };
            self.get_into(name, &mut sink)
                .await
                .map_err(|e| self.named(name, e))?;
            Ok(sink.finish())
        })
        .await
    }

    /// One attempt at reading bytes `range` of `name` into `sink` (while it has the ETag
    /// `if_match`, when one is given); gives the file's size and ETag (none on SFTP).
    async fn get_range_into(
        &self,
        name: &str,
        range: std::ops::Range<u64>,
        if_match: Option<&str>,
        sink: &mut impl Sink,
    ) -> Result<(u64, Option<String>), StorageError> {
        match &self.backend {
            Backend::Object(o) => o.get_range_into(name, range, if_match, sink).await,
            Backend::Sftp(s) => s.get_range_into(name, range, sink).await,
        }
    }

    /// Bytes `range` of `name` (fewer when the file ends before `range.end`), the file's size
    /// and its ETag when the store has them: a small piece of a large file, read with one
    /// ranged request and nothing else of the file.
    pub async fn read_range(
        &self,
        name: &str,
        range: std::ops::Range<u64>,
    ) -> Result<RangeRead, StorageError> {
        safe_name(name)?;
        let range = &range;
        self.retrying("ranged read", || async move {
            let mut sink = VecSink::default();
            let (size, e_tag) = self
                .get_range_into(name, range.clone(), None, &mut sink)
                .await
                .map_err(|e| self.named(name, e))?;
            Ok(RangeRead {
                bytes: sink.0,
                size,
                e_tag,
            })
        })
        .await
    }

    /// Downloads the byte `ranges` of `name`, one after the other, into the one local file
    /// `local` (written under a temporary name and renamed when complete), hashing what it
    /// writes: a part of a split file without the rest of the file. Each range is one ranged
    /// request of at most its length, made with `if_match` only while the object has that ETag
    /// (object stores; SFTP has none). Gives what was written and the file's size as the
    /// store reported it (the largest seen), for the caller to check against what it planned.
    pub async fn get_ranges_file(
        &self,
        name: &str,
        ranges: &[std::ops::Range<u64>],
        if_match: Option<&str>,
        local: &FsPath,
    ) -> Result<(Transferred, u64), StorageError> {
        safe_name(name)?;
        if let Some(dir) = local.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| StorageError::local(dir, e))?;
        }
        let tmp = temp_sibling(local);
        let tmp_ref = tmp.as_path();
        crate::cancel::register_temporary(&tmp);
        let result = self
            .retrying("ranged download", || async move {
                let max = ranges.iter().map(|r| r.end.saturating_sub(r.start)).sum();
                let mut sink = FileSink::create(tmp_ref, Some(max)).await?;
                let mut size = 0;
                for r in ranges.iter().filter(|r| r.end > r.start) {
                    let before = sink.bytes;
                    // At most the range's bytes: a server that sends more is refused.
                    sink.max = Some(before + (r.end - r.start));
                    let (s, _) = self
                        .get_range_into(name, r.clone(), if_match, &mut sink)
                        .await
                        .map_err(|e| self.named(name, e))?;
                    size = size.max(s);
                }
                Ok((sink.finish().await?, size))
            })
            .await;
        place(result, &tmp, local).await
    }

    /// Reads a whole (small) file.
    pub async fn get_bytes(&self, name: &str) -> Result<Vec<u8>, StorageError> {
        safe_name(name)?;
        self.retrying("download", || async move {
            let mut sink = VecSink::default();
            self.get_into(name, &mut sink).await?;
            Ok(sink.0)
        })
        .await
    }

    /// Whether this store is a local folder (whose transfers run on threads of their own, to
    /// the end, even when the future that started them is dropped).
    pub fn is_local(&self) -> bool {
        matches!(&self.backend, Backend::Object(o) if o.is_local())
    }

    /// How this store writes conditionally: atomically, or checked then written.
    pub fn conditional(&self) -> Conditional {
        match &self.backend {
            Backend::Object(o) if !o.is_local() => Conditional::Atomic,
            _ => Conditional::CheckThenWrite,
        }
    }

    /// Creates the small file `name` holding `bytes`, only if there is none
    /// ([`StorageError::AlreadyExists`] otherwise): readers see the whole file or none (on SFTP
    /// and in folders, a temporary file moved to `name` by a rename that never replaces). A
    /// transient failure is retried, so `AlreadyExists` may be this very write's first
    /// attempt, which did reach the store: read the file to tell.
    pub async fn create_bytes(&self, name: &str, bytes: &[u8]) -> Result<Version, StorageError> {
        safe_name(name)?;
        self.retrying("conditional create", || async move {
            match &self.backend {
                Backend::Object(o) => o.create_bytes(name, bytes).await,
                Backend::Sftp(s) => s.create_bytes(name, bytes).await,
            }
        })
        .await
    }

    /// The small file `name` read whole, with its version and time; `None` when it is absent.
    pub async fn get_versioned(&self, name: &str) -> Result<Option<Versioned>, StorageError> {
        safe_name(name)?;
        self.retrying("download", || async move {
            match &self.backend {
                Backend::Object(o) => o.get_versioned(name).await,
                Backend::Sftp(s) => s.get_versioned(name).await,
            }
        })
        .await
    }

    /// Replaces the small file `name` by `bytes`, only while it is still the version
    /// `expected` ([`StorageError::Conflict`] otherwise, or when it is gone); see
    /// [`Store::conditional`] for how atomic that is. As with [`Store::create_bytes`], a
    /// `Conflict` after a retried transient failure may be this very write's first attempt.
    pub async fn replace_bytes(
        &self,
        name: &str,
        bytes: &[u8],
        expected: &Version,
    ) -> Result<Version, StorageError> {
        safe_name(name)?;
        self.retrying("conditional replace", || async move {
            match &self.backend {
                Backend::Object(o) => o.replace_bytes(name, bytes, expected).await,
                Backend::Sftp(s) => s.replace_bytes(name, bytes, expected).await,
            }
        })
        .await
    }

    /// Deletes a file (one that is already gone is fine).
    pub async fn delete(&self, name: &str) -> Result<(), StorageError> {
        safe_name(name)?;
        self.retrying("delete", || async move {
            match &self.backend {
                Backend::Object(o) => o.delete(name).await,
                Backend::Sftp(s) => s.delete(name).await,
            }
        })
        .await
    }

    /// Deletes the small file `name` only while it is the version `expected`
    /// ([`StorageError::Conflict`] otherwise, and also when it is gone on Azure, which answers
    /// a condition on a blob that is not there with 412; S3 answers 404, taken as deleted),
    /// where the store can delete conditionally: `Ok(true)` once deleted. S3 and Azure Blob
    /// can (`If-Match` on DeleteObject and Delete Blob); GCS, SFTP and folders cannot, nor can
    /// a store whose credentials cannot sign a URL or an S3 API server that refuses the
    /// condition: there it deletes nothing and gives `Ok(false)`.
    pub async fn delete_if(&self, name: &str, expected: &Version) -> Result<bool, StorageError> {
        safe_name(name)?;
        self.retrying("conditional delete", || async move {
            match &self.backend {
                Backend::Object(o) => o.delete_if(name, expected).await,
                Backend::Sftp(_) => Ok(false),
            }
        })
        .await
    }

    /// Renames `from` to `to`, refusing to replace an existing `to`.
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), StorageError> {
        safe_name(from)?;
        safe_name(to)?;
        self.retrying("rename", || async move {
            match &self.backend {
                Backend::Object(o) => o.rename(from, to).await,
                Backend::Sftp(s) => s.rename(from, to).await,
            }
        })
        .await
    }
}

/// A download written to `tmp` (registered as a temporary, see `crate::cancel`), renamed to
/// `local` when `result` says it is whole; removed otherwise. Either way it is no longer a
/// temporary.
async fn place<T>(
    result: Result<T, StorageError>,
    tmp: &FsPath,
    local: &FsPath,
) -> Result<T, StorageError> {
    let done = match result {
        Ok(t) => tokio::fs::rename(tmp, local)
            .await
            .map(|()| t)
            .map_err(|e| StorageError::local(local, e)),
        Err(e) => Err(e),
    };
    if done.is_err() {
        let _ = tokio::fs::remove_file(tmp).await;
    }
    crate::cancel::forget_temporary(tmp);
    done
}

/// `DIR/.NAME.batchwin-PID-RANDOM`: a hidden name in the same folder, so the final rename is
/// atomic and listings skip it.
pub fn temp_sibling(path: &FsPath) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(
        ".{name}.batchwin-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ))
}

/// Where downloaded bytes go: a local file, a hash only, or memory. Each attempt of a
/// download (retries included) gets a new one.
#[allow(async_fn_in_trait)]
pub(crate) trait Sink {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StorageError>;
}

struct FileSink {
    path: PathBuf,
    file: tokio::io::BufWriter<tokio::fs::File>,
    sha: Sha256,
    bytes: u64,
    /// Bytes beyond this are refused, and never written.
    max: Option<u64>,
}

impl FileSink {
    async fn create(path: &FsPath, max: Option<u64>) -> Result<FileSink, StorageError> {
        let file = crate::files::create_async(path)
            .await
            .map_err(|e| StorageError::local(path, e))?;
        Ok(FileSink {
            path: path.to_path_buf(),
            file: tokio::io::BufWriter::with_capacity(STREAM_BUF, file),
            sha: Sha256::new(),
            bytes: 0,
            max,
        })
    }
    async fn finish(mut self) -> Result<Transferred, StorageError> {
        use tokio::io::AsyncWriteExt;
        let err = |e| StorageError::local(&self.path, e);
        self.file.flush().await.map_err(err)?;
        self.file.get_ref().sync_all().await.map_err(err)?;
        Ok(Transferred {
            bytes: self.bytes,
            sha256: hex::encode(self.sha.finalize()),
        })
    }
}

impl Sink for FileSink {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StorageError> {
        use tokio::io::AsyncWriteExt;
        if let Some(max) = self.max
            && self.bytes + chunk.len() as u64 > max
        {
            return Err(oversize(max));
        }
        self.sha.update(chunk);
        self.bytes += chunk.len() as u64;
        self.file
            .write_all(chunk)
            .await
            .map_err(|e| StorageError::local(&self.path, e))
    }
}

/// [`StorageError::Oversize`] without its store and name, which [`Store::named`] fills in.
pub(crate) fn oversize(listed: u64) -> StorageError {
    StorageError::Oversize {
        store: String::new(),
        name: String::new(),
        listed,
    }
}

#[derive(Default)]
struct HashSink {
    sha: Sha256,
    bytes: u64,
    /// More bytes than this are refused.
    max: Option<u64>,
}

impl HashSink {
    fn finish(self) -> Transferred {
        Transferred {
            bytes: self.bytes,
            sha256: hex::encode(self.sha.finalize()),
        }
    }
}

impl Sink for HashSink {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StorageError> {
        self.bytes += chunk.len() as u64;
        if let Some(max) = self.max.filter(|&m| self.bytes > m) {
            return Err(oversize(max));
        }
        self.sha.update(chunk);
        Ok(())
    }
}

#[derive(Default)]
struct VecSink(Vec<u8>);

impl Sink for VecSink {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StorageError> {
        self.0.extend_from_slice(chunk);
        Ok(())
    }
}

/// Reads a local file in [`STREAM_BUF`] pieces, hashing what it hands out.
pub(crate) struct HashingReader {
    path: PathBuf,
    file: tokio::fs::File,
    pub sha: Sha256,
    pub bytes: u64,
}

impl HashingReader {
    pub async fn open(path: &FsPath) -> Result<(HashingReader, u64), StorageError> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| StorageError::local(path, e))?;
        let size = file
            .metadata()
            .await
            .map_err(|e| StorageError::local(path, e))?
            .len();
        Ok((
            HashingReader {
                path: path.to_path_buf(),
                file,
                sha: Sha256::new(),
                bytes: 0,
            },
            size,
        ))
    }
    /// The next piece, or `None` at the end.
    pub async fn next(&mut self, buf: &mut Vec<u8>) -> Result<bool, StorageError> {
        use tokio::io::AsyncReadExt;
        buf.resize(STREAM_BUF, 0);
        let mut filled = 0;
        while filled < buf.len() {
            let n = self
                .file
                .read(&mut buf[filled..])
                .await
                .map_err(|e| StorageError::local(&self.path, e))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        buf.truncate(filled);
        self.sha.update(&buf[..]);
        self.bytes += filled as u64;
        Ok(filled > 0)
    }
    pub fn finish(self) -> Transferred {
        Transferred {
            bytes: self.bytes,
            sha256: hex::encode(self.sha.finalize()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_escape_the_root_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "a/../../b",
            "..",
            "a//b",
            "./a",
            "a\0b",
            "a\nb",
            "C:\\x",
            "a\\..\\b",
            "x/\u{1b}[2J",
        ] {
            assert!(safe_name(bad).is_err(), "{bad:?}");
        }
        for good in [
            "a",
            "inbound/2026-11-29/ACME/f.csv",
            "a.b..c",
            "é/ü",
            "..a",
            "a..",
        ] {
            assert!(safe_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn file_types_come_from_the_type_bits() {
        // A link's type bits (0o120000) contain a regular file's (0o100000) and a character
        // device's: only the whole field tells them apart.
        assert_eq!(special_kind(0o120777), "a symbolic link");
        assert_eq!(special_kind(0o100644), "a regular file");
        assert_eq!(special_kind(0o140755), "a socket");
        assert_eq!(special_kind(0o010644), "a fifo");
        assert_eq!(special_kind(0o060600), "a block device");
        assert_eq!(special_kind(0o040755), "a folder");
        assert_ne!(0o120777 & TYPE_BITS, 0o100000);
    }

    #[test]
    fn credentials_never_show() {
        assert_eq!(
            redact_url("sftp://user:secret@host:22/x"),
            "sftp://user@host:22/x"
        );
        assert_eq!(redact_url("s3://bucket/p"), "s3://bucket/p");
        assert_eq!(redact_url("az://c/p?sv=2024&sig=SECRET"), "az://c/p");
        assert_eq!(redact_url("/local/path"), "/local/path");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let r = Retry {
            attempts: 10,
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        for n in 0..10 {
            let d = r.delay(n);
            let full = Duration::from_millis(100 * (1 << n)).min(Duration::from_secs(2));
            assert!(d >= full / 2 && d < full, "{n}: {d:?} vs {full:?}");
        }
    }
}
