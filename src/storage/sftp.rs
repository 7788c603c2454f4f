//! SFTP servers through `russh` and `russh-sftp`: public-key authentication only, the server's
//! host key checked against a known_hosts file, uploads under a temporary name renamed once
//! complete: with the plain SFTP rename where nothing may be replaced (it never replaces), with
//! OpenSSH's `posix-rename@openssh.com` over the old file where the server offers it (else the
//! old file is removed first). Small files written conditionally (the run-location lock) are
//! written the same way, never in place. A write makes the folders it needs, the location's own
//! included, but not the folders above the location (a mistyped target is refused, not made).
//! One SSH connection is shared by concurrent transfers and opened again after a failure.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use russh::client;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey};
use russh_sftp::client::{RawSftpSession, SftpSession};
use russh_sftp::protocol::{OpenFlags, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    Entry, ExpectedContent, HashingReader, LinkTarget, Listing, Other, OtherKind, STREAM_BUF, Sink,
    SshOptions, StorageError, StoreOptions, TYPE_BITS, Transferred, VecSink, Version, Versioned,
    safe_name, special_kind,
};

pub(super) struct SftpBackend {
    host: String,
    port: u16,
    user: String,
    /// Absolute folder on the server that names are relative to.
    root: String,
    ssh: SshOptions,
    timeout: std::time::Duration,
    display: String,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
}

struct Conn {
    sftp: SftpSession,
    /// The SSH connection, which lives as long as the SFTP session on it.
    handle: client::Handle<HostCheck>,
    /// A second SFTP session on the same connection for what [`SftpSession`] cannot send
    /// (`posix-rename@openssh.com`), opened on first use; `None` when the server does not
    /// offer that extension.
    raw: tokio::sync::OnceCell<Option<RawSftpSession>>,
}

/// OpenSSH's extension that renames over an existing file (`rename(2)`), atomically.
const POSIX_RENAME: &str = "posix-rename@openssh.com";

/// What the server's host key check found, to explain a refused connection.
#[derive(Debug, thiserror::Error)]
enum SshError {
    #[error(transparent)]
    Ssh(#[from] russh::Error),
    #[error("{0}")]
    HostKey(String),
}

struct HostCheck {
    host: String,
    port: u16,
    known_hosts: PathBuf,
    accept_new: bool,
}

impl client::Handler for HostCheck {
    type Error = SshError;

    async fn check_server_key(&mut self, key: &PublicKey) -> Result<bool, SshError> {
        let shown = format!(
            "{} {}",
            key.algorithm().as_str(),
            key.fingerprint(HashAlg::Sha256)
        );
        let hostport = if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        };
        let file = self.known_hosts.display();
        match russh::keys::check_known_hosts_path(&self.host, self.port, key, &self.known_hosts) {
            Ok(true) => Ok(true),
            Err(russh::keys::Error::KeyChanged { line }) => Err(SshError::HostKey(format!(
                "REFUSED: the host key of {hostport} ({shown}) differs from the one recorded on line \
                 {line} of {file}. Someone may be intercepting the connection. If the server's key \
                 really changed, confirm the new fingerprint with its administrator, then replace \
                 that line."
            ))),
            Ok(false) | Err(_)
                if self.accept_new && !has_key_for(&self.known_hosts, &self.host, self.port) =>
            {
                russh::keys::known_hosts::learn_known_hosts_path(
                    &self.host,
                    self.port,
                    key,
                    &self.known_hosts,
                )
                .map_err(|e| {
                    SshError::HostKey(format!("cannot add the host key to {file}: {e}"))
                })?;
                tracing::warn!(
                    "ACCEPTED A NEW HOST KEY for {hostport} ({shown}) and added it to {file} because \
                     --insecure-accept-new-host-key was given; check this fingerprint with the server's administrator"
                );
                Ok(true)
            }
            Ok(false) => Err(SshError::HostKey(format!(
                "the host key of {hostport} ({shown}) is not in {file}. Check the fingerprint with the \
                 server's administrator, then add it, for example with \
                 `ssh-keyscan -p {} {} >> {file}` (or run once with --insecure-accept-new-host-key)",
                self.port, self.host
            ))),
            Err(e) => Err(SshError::HostKey(format!(
                "cannot read known_hosts file {file}: {e}"
            ))),
        }
    }
}

/// Whether known_hosts holds any key for the host (of another algorithm, say): then a new key
/// is a change, not a first contact, and is never accepted on its own.
fn has_key_for(path: &FsPath, host: &str, port: u16) -> bool {
    russh::keys::known_hosts::known_host_keys_path(host, port, path).is_ok_and(|k| !k.is_empty())
}

impl SftpBackend {
    pub fn new(
        url: &url::Url,
        opts: &StoreOptions,
        display: &str,
    ) -> Result<SftpBackend, StorageError> {
        let bad = |reason: &str| StorageError::BadUrl {
            url: display.to_string(),
            reason: reason.to_string(),
        };
        if url.password().is_some() {
            return Err(bad(
                "passwords are not accepted; give an SSH key with --ssh-key or [transfer] ssh_key",
            ));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?;
        let user = if url.username().is_empty() {
            opts.ssh
                .user
                .clone()
                .ok_or_else(|| bad("no user: write sftp://USER@HOST/PATH"))?
        } else {
            url.username().to_string()
        };
        let root = percent_encoding::percent_decode_str(url.path())
            .decode_utf8()
            .map_err(|_| bad("the path is not UTF-8"))?;
        let root = root.trim_end_matches('/').to_string();
        if root.split('/').any(|p| p == ".." || p == ".") || root.chars().any(char::is_control) {
            return Err(bad(
                "the path may not contain `..`, `.` or control characters",
            ));
        }
        Ok(SftpBackend {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port: url.port().unwrap_or(22),
            user,
            root,
            ssh: opts.ssh.clone(),
            timeout: opts.timeout.unwrap_or(std::time::Duration::from_secs(30)),
            display: display.to_string(),
            conn: tokio::sync::Mutex::new(None),
        })
    }

    fn failed(&self, message: impl Into<String>) -> StorageError {
        StorageError::Failed {
            store: self.display.clone(),
            message: message.into(),
        }
    }

    fn transient(&self, message: impl Into<String>) -> StorageError {
        StorageError::Transient {
            store: self.display.clone(),
            message: message.into(),
        }
    }

    /// Runs `fut`, failing it as transient when the server does not answer within the
    /// timeout: a session whose server went away does not always say so.
    async fn timed<T>(
        &self,
        name: &str,
        fut: impl std::future::Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(self.transient(format!(
                "`{name}`: no answer from the server within {:?}",
                self.timeout
            ))),
        }
    }

    /// Forgets the connection after a failure; the next operation opens a new one.
    pub async fn reset(&self) {
        *self.conn.lock().await = None;
    }

    async fn conn(&self) -> Result<Arc<Conn>, StorageError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = Arc::new(self.timed("connection", self.connect()).await?);
        *guard = Some(c.clone());
        Ok(c)
    }

    async fn connect(&self) -> Result<Conn, StorageError> {
        let key_path = match &self.ssh.key {
            Some(k) => k.clone(),
            None => default_key(self.ssh.home.as_deref()).ok_or_else(|| {
                self.failed(
                    "no SSH key: give one with --ssh-key, BATCHWIN_SSH_KEY or [transfer] ssh_key",
                )
            })?,
        };
        let known_hosts = match &self.ssh.known_hosts {
            Some(p) => p.clone(),
            None => (self.ssh.home.as_ref())
                .map(|h| h.join(".ssh/known_hosts"))
                .ok_or_else(|| {
                    self.failed(
                    "no known_hosts file: give one with --known-hosts or [transfer] known_hosts",
                )
                })?,
        };
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(self.timeout * 4),
            keepalive_interval: Some(self.timeout / 2),
            keepalive_max: 3,
            nodelay: true,
            ..Default::default()
        });
        let check = HostCheck {
            host: self.host.clone(),
            port: self.port,
            known_hosts,
            accept_new: self.ssh.accept_new_host_key,
        };
        let addr = (self.host.as_str(), self.port);
        let connecting = tokio::time::timeout(self.timeout, client::connect(config, addr, check));
        let mut handle = match connecting.await {
            Err(_) => {
                return Err(self.transient(format!(
                    "no answer from {}:{} within {:?}",
                    self.host, self.port, self.timeout
                )));
            }
            Ok(Err(SshError::HostKey(m))) => {
                return Err(StorageError::HostKey {
                    store: self.display.clone(),
                    message: m,
                });
            }
            Ok(Err(SshError::Ssh(e))) => return Err(self.transient(format!("cannot connect: {e}"))),
            Ok(Ok(h)) => h,
        };
        let key = russh::keys::load_secret_key(&key_path, None)
            .map_err(|e| self.failed(format!("cannot load SSH key {}: {e}", key_path.display())))?;
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .map_err(|e| self.transient(e.to_string()))?
            .flatten();
        let auth = handle
            .authenticate_publickey(&self.user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await
            .map_err(|e| self.transient(format!("authentication did not finish: {e}")))?;
        if !auth.success() {
            return Err(self.failed(format!(
                "the server refused the key {} for user `{}`",
                key_path.display(),
                self.user
            )));
        }
        let sftp = SftpSession::new(self.sftp_channel(&handle).await?)
            .await
            .map_err(|e| self.transient(e.to_string()))?;
        sftp.set_timeout(self.timeout.as_secs().max(1));
        Ok(Conn {
            sftp,
            handle,
            raw: tokio::sync::OnceCell::new(),
        })
    }

    /// A new channel of the connection `handle`, running the SFTP subsystem.
    async fn sftp_channel(
        &self,
        handle: &client::Handle<HostCheck>,
    ) -> Result<russh::ChannelStream<client::Msg>, StorageError> {
        let channel = handle
            .channel_open_session()
            .await
            .map_err(|e| self.transient(e.to_string()))?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| self.transient(e.to_string()))?;
        Ok(channel.into_stream())
    }

    fn remote(&self, name: &str) -> String {
        if name.is_empty() {
            self.root.clone()
        } else {
            format!("{}/{}", self.root, name)
        }
    }

    fn sftp_err(&self, name: &str, e: russh_sftp::client::error::Error) -> StorageError {
        use russh_sftp::client::error::Error as E;
        match &e {
            E::Status(s) if s.status_code == StatusCode::NoSuchFile => StorageError::NotFound {
                store: self.display.clone(),
                name: name.to_string(),
            },
            E::Status(s)
                if matches!(
                    s.status_code,
                    StatusCode::NoConnection | StatusCode::ConnectionLost
                ) =>
            {
                self.transient(format!("`{name}`: {e}"))
            }
            E::Status(_) | E::Limited(_) | E::UnexpectedPacket => {
                self.failed(format!("`{name}`: {e}"))
            }
            E::IO(_) | E::Timeout | E::UnexpectedBehavior(_) => {
                self.transient(format!("`{name}`: {e}"))
            }
        }
    }

    fn io_err(&self, name: &str, e: std::io::Error) -> StorageError {
        // Reads and writes on an open handle fail this way when the session drops.
        self.transient(format!("`{name}`: {e}"))
    }

    pub async fn list(&self, prefix: &str, resolve_links: bool) -> Result<Listing, StorageError> {
        self.timed(prefix, self.list_untimed(prefix, resolve_links))
            .await
    }

    /// Walks the folders below `prefix`. Each entry's type comes from the type bits of its
    /// mode ([`TYPE_BITS`]); links are never walked into, and resolved with `realpath` when
    /// `resolve_links`. A folder below `prefix` that the server refuses to list is named in
    /// `others`, and the rest is listed; `prefix` itself refused is an error.
    async fn list_untimed(
        &self,
        prefix: &str,
        resolve_links: bool,
    ) -> Result<Listing, StorageError> {
        let conn = self.conn().await?;
        let mut out = Listing::default();
        let top = prefix.trim_end_matches('/').to_string();
        // A link on the way to `prefix` (a day folder that leads elsewhere) is named and not
        // walked: the listing below only ever checks the last part of each name.
        let mut on_the_way = String::new();
        for part in top.split('/').filter(|p| !p.is_empty()) {
            on_the_way = if on_the_way.is_empty() {
                part.to_string()
            } else {
                format!("{on_the_way}/{part}")
            };
            match conn.sftp.symlink_metadata(self.remote(&on_the_way)).await {
                Ok(m) if m.permissions.unwrap_or(0) & TYPE_BITS == 0o120000 => {
                    out.others.push(Other {
                        name: on_the_way,
                        kind: OtherKind::Link(LinkTarget::NotResolved),
                    });
                    return Ok(out);
                }
                Ok(_) => {}
                // Missing: the walk below lists it as empty; refused: it says so.
                Err(_) => break,
            }
        }
        let mut root_real: Option<String> = None;
        let mut stack = vec![top.clone()];
        while let Some(rel) = stack.pop() {
            let dir = match conn.sftp.read_dir(self.remote(&rel)).await {
                Ok(d) => d,
                // A folder that does not exist lists as empty, as on object stores.
                Err(russh_sftp::client::error::Error::Status(s))
                    if s.status_code == StatusCode::NoSuchFile =>
                {
                    continue;
                }
                Err(russh_sftp::client::error::Error::Status(s))
                    if s.status_code == StatusCode::PermissionDenied && rel != top =>
                {
                    out.others.push(Other {
                        name: rel,
                        kind: OtherKind::Unreadable(format!(
                            "permission denied: {}",
                            s.error_message
                        )),
                    });
                    continue;
                }
                Err(e) => return Err(self.sftp_err(&rel, e)),
            };
            for entry in dir {
                let file = entry.file_name();
                if file == "." || file == ".." {
                    continue;
                }
                let name = if rel.is_empty() {
                    file.clone()
                } else {
                    format!("{rel}/{file}")
                };
                // One entry of a folder is one name: a server that sends a `/` in it (or `..`,
                // or control characters) is not believed.
                let checked = if file.contains('/') {
                    Err("a folder entry with a `/` in its name".to_string())
                } else {
                    safe_name(&name).map_err(|e| e.to_string())
                };
                if let Err(reason) = checked {
                    out.others.push(Other {
                        name,
                        kind: OtherKind::Unsafe(reason),
                    });
                    continue;
                }
                let meta = entry.metadata();
                let Some(mode) = meta.permissions else {
                    out.others.push(Other {
                        name,
                        kind: OtherKind::Special("an entry the server gave no type for"),
                    });
                    continue;
                };
                match mode & TYPE_BITS {
                    0o040000 => stack.push(name),
                    0o100000 => out.files.push(Entry {
                        name,
                        size: meta.size.unwrap_or(0),
                        modified: mtime(&meta),
                    }),
                    0o120000 => {
                        let target = if resolve_links {
                            if root_real.is_none() {
                                root_real = Some(self.realpath(&conn, &self.root_path()).await?);
                            }
                            let root = root_real.as_deref().unwrap_or("/");
                            self.resolve(&conn, root, &name).await?
                        } else {
                            LinkTarget::NotResolved
                        };
                        out.others.push(Other {
                            name,
                            kind: OtherKind::Link(target),
                        });
                    }
                    _ => out.others.push(Other {
                        name,
                        kind: OtherKind::Special(special_kind(mode)),
                    }),
                }
            }
        }
        Ok(out)
    }

    /// The root folder as a path the server understands (`/` for an empty root).
    fn root_path(&self) -> String {
        if self.root.is_empty() {
            "/".to_string()
        } else {
            self.root.clone()
        }
    }

    /// The server's `realpath` of an absolute path.
    async fn realpath(&self, conn: &Conn, path: &str) -> Result<String, StorageError> {
        conn.sftp
            .canonicalize(path.to_string())
            .await
            .map_err(|e| self.sftp_err(path, e))
    }

    /// Where the link `name` leads: the server resolves it (`realpath`, every link of the
    /// chain), then the target is looked at (`stat`) when it is inside `root_real` (the root's
    /// own real path). A link the server cannot resolve (it leads nowhere, or in a loop) is
    /// `Broken`; only a lost session is an error.
    async fn resolve(
        &self,
        conn: &Conn,
        root_real: &str,
        name: &str,
    ) -> Result<LinkTarget, StorageError> {
        use russh_sftp::client::error::Error as E;
        let real = match conn.sftp.canonicalize(self.remote(name)).await {
            Ok(r) => r,
            Err(E::Status(s)) => return Ok(LinkTarget::Broken(s.error_message.to_string())),
            Err(e) => return Err(self.sftp_err(name, e)),
        };
        let inside = if root_real == "/" {
            real.strip_prefix('/')
        } else {
            real.strip_prefix(root_real)
                .and_then(|r| r.strip_prefix('/'))
        };
        let Some(rel) = inside.filter(|r| safe_name(r).is_ok()) else {
            return Ok(LinkTarget::Outside(real));
        };
        let rel = rel.to_string();
        match conn.sftp.symlink_metadata(self.remote(&rel)).await {
            Ok(m) => {
                let mode = m.permissions.unwrap_or(0);
                Ok(match mode & TYPE_BITS {
                    0o040000 => LinkTarget::Folder(rel),
                    0o100000 => LinkTarget::File {
                        target: rel,
                        entry: Entry {
                            name: name.to_string(),
                            size: m.size.unwrap_or(0),
                            modified: mtime(&m),
                        },
                    },
                    _ => LinkTarget::Special(rel, special_kind(mode)),
                })
            }
            Err(E::Status(s)) => Ok(LinkTarget::Broken(s.error_message.to_string())),
            Err(e) => Err(self.sftp_err(name, e)),
        }
    }

    pub async fn head(&self, name: &str) -> Result<Option<Entry>, StorageError> {
        self.timed(name, self.head_untimed(name)).await
    }

    async fn head_untimed(&self, name: &str) -> Result<Option<Entry>, StorageError> {
        let conn = self.conn().await?;
        match conn.sftp.metadata(self.remote(name)).await {
            Ok(m) if is_folder(&m) => Ok(None),
            Ok(m) => Ok(Some(Entry {
                name: name.to_string(),
                size: m.size.unwrap_or(0),
                modified: mtime(&m),
            })),
            Err(russh_sftp::client::error::Error::Status(s))
                if s.status_code == StatusCode::NoSuchFile =>
            {
                Ok(None)
            }
            Err(e) => Err(self.sftp_err(name, e)),
        }
    }

    /// Creates the folders above `name` that are missing, the location's own folder included
    /// (a run location's day folder does not exist before its first file), but not the folders
    /// above it: a location whose parent folder is not on the server (a mistyped delivery
    /// target, an unmounted share) is refused, not made. One `stat` when the parent is there,
    /// as it is for all but a folder's first file.
    async fn make_parents(&self, conn: &Conn, name: &str) -> Result<(), StorageError> {
        let full = self.remote(name);
        let Some((parent, _)) = full.rsplit_once('/') else {
            return Ok(());
        };
        // The folders from the parent up to the first one that is there.
        let mut missing = Vec::new();
        let mut dir = parent;
        while !dir.is_empty() {
            match conn.sftp.metadata(dir.to_string()).await {
                Ok(m) if is_folder(&m) => break,
                Ok(_) => return Err(self.failed(format!("`{dir}` exists and is not a folder"))),
                Err(russh_sftp::client::error::Error::Status(s))
                    if s.status_code == StatusCode::NoSuchFile =>
                {
                    if dir.len() < self.root.len() {
                        return Err(self.failed(format!(
                            "`{dir}` is not on the server: batchwin makes the location's own \
                             folder `{}` and those below it, not the folders above it",
                            self.root
                        )));
                    }
                    missing.push(dir);
                    dir = dir.rsplit_once('/').map_or("", |(up, _)| up);
                }
                Err(e) => return Err(self.sftp_err(dir, e)),
            }
        }
        for dir in missing.into_iter().rev() {
            if let Err(e) = conn.sftp.create_dir(dir.to_string()).await {
                // Another transfer may have made it meanwhile.
                if !conn
                    .sftp
                    .metadata(dir.to_string())
                    .await
                    .is_ok_and(|m| is_folder(&m))
                {
                    return Err(self.sftp_err(dir, e));
                }
            }
        }
        Ok(())
    }

    pub async fn put_file(
        &self,
        name: &str,
        local: &FsPath,
        overwrite: bool,
        expected: Option<&ExpectedContent>,
    ) -> Result<Transferred, StorageError> {
        let expected = expected.map(|e| &e.content);
        let conn = self.conn().await?;
        self.timed(name, self.make_parents(&conn, name)).await?;
        let target = self.remote(name);
        if !overwrite && self.head(name).await?.is_some() {
            return Err(StorageError::AlreadyExists {
                store: self.display.clone(),
                name: name.to_string(),
            });
        }
        // A hidden name in the target folder: never picked up by a reader that skips dot files,
        // and renamed into place only once complete. The name is fixed, so a retry after a
        // dropped session writes over what the failed attempt left instead of beside it.
        let (dir, file) = target.rsplit_once('/').unwrap_or(("", &target));
        let tmp = format!("{dir}/.{file}.batchwin-tmp");
        let sftp = |e| self.sftp_err(name, e);
        let upload = async {
            let (mut reader, _) = HashingReader::open(local).await?;
            let flags = OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE;
            let mut f = self
                .timed(name, async {
                    conn.sftp
                        .open_with_flags(tmp.clone(), flags)
                        .await
                        .map_err(sftp)
                })
                .await?;
            let mut buf = Vec::with_capacity(STREAM_BUF);
            while reader.next(&mut buf).await? {
                let piece = async { f.write_all(&buf).await.map_err(|e| self.io_err(name, e)) };
                self.timed(name, piece).await?;
            }
            self.timed(name, async {
                f.shutdown().await.map_err(|e| self.io_err(name, e))
            })
            .await?;
            let done = reader.finish();
            // Renamed into place only if right; the temporary is removed below.
            done.check(local, expected)?;
            let size = self
                .timed(name, async {
                    conn.sftp.metadata(tmp.clone()).await.map_err(sftp)
                })
                .await?
                .size;
            if size != Some(done.bytes) {
                return Err(self.transient(format!(
                    "`{name}`: the server holds {size:?} bytes of {} after the upload",
                    done.bytes
                )));
            }
            self.move_into_place(&conn, name, &tmp, &target, overwrite)
                .await?;
            Ok(done)
        }
        .await;
        if upload.is_err() {
            // A leftover hidden temporary is harmless: never renamed into place, and the retry
            // writes over it.
            self.remove_temp(&conn, &tmp).await;
        }
        upload
    }

    /// Moves the complete temporary `tmp` to `name` (at `target`). With `overwrite`, over the
    /// file there: by `posix-rename@openssh.com` where the server offers it (readers see the
    /// old file or the new one), else by removing the old file first. Without, by the plain
    /// SFTP rename (`SSH_FXP_RENAME`), which never replaces a file (OpenSSH's server makes it
    /// a `link(2)` and an `unlink(2)`). A rename refused while `name` exists is
    /// [`StorageError::AlreadyExists`] (servers say "failure" rather than "file exists"); one
    /// refused with "failure" while `name` is not there (it was made and deleted meanwhile) is
    /// tried again, three times in all.
    async fn move_into_place(
        &self,
        conn: &Conn,
        name: &str,
        tmp: &str,
        target: &str,
        overwrite: bool,
    ) -> Result<(), StorageError> {
        if overwrite {
            if self.posix_rename(conn, name, tmp, target).await? {
                return Ok(());
            }
            self.timed(name, async {
                match conn.sftp.remove_file(target.to_string()).await {
                    Ok(()) => Ok(()),
                    Err(russh_sftp::client::error::Error::Status(s))
                        if s.status_code == StatusCode::NoSuchFile =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(self.sftp_err(name, e)),
                }
            })
            .await?;
        }
        self.timed(name, async {
            // A refusal because `name` exists is a plain "failure"; when `name` is gone by the
            // time it is looked at (another writer made it and deleted it meanwhile, as the
            // claim of a lock's takeover is), the rename is tried again.
            let mut tries = 0;
            loop {
                tries += 1;
                match conn.sftp.rename(tmp.to_string(), target.to_string()).await {
                    Ok(()) => return Ok(()),
                    Err(_) if conn.sftp.metadata(target.to_string()).await.is_ok() => {
                        return Err(StorageError::AlreadyExists {
                            store: self.display.clone(),
                            name: name.to_string(),
                        });
                    }
                    Err(russh_sftp::client::error::Error::Status(s))
                        if s.status_code == StatusCode::Failure && tries < 3 =>
                    {
                        // Apart from another writer doing the same, by a few milliseconds.
                        let wait = 5 + u64::from(rand::random::<u8>() % 20);
                        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                    }
                    Err(e) => return Err(self.sftp_err(name, e)),
                }
            }
        })
        .await
    }

    /// Opens `name` for reading, once the server said (`lstat`) that it is a regular file: a
    /// folder, a link or a fifo is refused as such, a permanent error, instead of failing in
    /// the middle of a read in a way that looks like a dropped session. Gives its size as the
    /// server reports it.
    async fn open_regular(
        &self,
        name: &str,
    ) -> Result<(russh_sftp::client::fs::File, u64), StorageError> {
        let conn = self.conn().await?;
        let meta = self
            .timed(name, async {
                conn.sftp
                    .symlink_metadata(self.remote(name))
                    .await
                    .map_err(|e| self.sftp_err(name, e))
            })
            .await?;
        if let Some(mode) = meta.permissions
            && mode & TYPE_BITS != 0o100000
        {
            return Err(StorageError::NotAFile {
                store: self.display.clone(),
                name: name.to_string(),
                what: special_kind(mode).to_string(),
            });
        }
        let f = self
            .timed(name, async {
                conn.sftp
                    .open(self.remote(name))
                    .await
                    .map_err(|e| self.sftp_err(name, e))
            })
            .await?;
        Ok((f, meta.size.unwrap_or(0)))
    }

    /// Reads up to `limit` bytes (all, with `None`) of the open file `f` into `sink`, then
    /// closes it.
    async fn read_to(
        &self,
        name: &str,
        mut f: russh_sftp::client::fs::File,
        limit: Option<u64>,
        sink: &mut impl Sink,
    ) -> Result<(), StorageError> {
        let mut left = limit.unwrap_or(u64::MAX);
        let mut buf = vec![0u8; STREAM_BUF];
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = self
                .timed(name, async {
                    f.read(&mut buf[..want])
                        .await
                        .map_err(|e| self.io_err(name, e))
                })
                .await?;
            if n == 0 {
                break;
            }
            left -= n as u64;
            sink.write(&buf[..n]).await?;
        }
        let _ = tokio::time::timeout(self.timeout, f.shutdown()).await;
        Ok(())
    }

    /// Reads `name`, a regular file (see [`Self::open_regular`]), into `sink`.
    pub async fn get_into(&self, name: &str, sink: &mut impl Sink) -> Result<(), StorageError> {
        let (f, _) = self.open_regular(name).await?;
        self.read_to(name, f, None, sink).await
    }

    /// Reads bytes `range` of `name` into `sink` (to the end of the file when it ends first),
    /// seeking to its start; gives the file's size as the server reports it (SFTP has no
    /// ETag).
    pub async fn get_range_into(
        &self,
        name: &str,
        range: std::ops::Range<u64>,
        sink: &mut impl Sink,
    ) -> Result<(u64, Option<String>), StorageError> {
        use tokio::io::AsyncSeekExt;
        let (mut f, size) = self.open_regular(name).await?;
        self.timed(name, async {
            f.seek(std::io::SeekFrom::Start(range.start))
                .await
                .map_err(|e| self.io_err(name, e))
        })
        .await?;
        let len = range.end.saturating_sub(range.start);
        self.read_to(name, f, Some(len), sink).await?;
        Ok((size, None))
    }

    /// See [`super::Store::create_bytes`]: the bytes written whole to a temporary name of
    /// their own beside `name`, then moved to `name` by a rename that never replaces
    /// ([`Self::move_into_place`]): refused when `name` exists. A reader finds the whole file
    /// or none, whenever the connection drops.
    pub async fn create_bytes(&self, name: &str, bytes: &[u8]) -> Result<Version, StorageError> {
        let conn = self.conn().await?;
        self.timed(name, self.make_parents(&conn, name)).await?;
        let target = self.remote(name);
        let tmp = self.write_temp(&conn, name, bytes).await?;
        let moved = self
            .move_into_place(&conn, name, &tmp, &target, false)
            .await;
        if moved.is_err() {
            self.remove_temp(&conn, &tmp).await;
        }
        moved.map(|()| Version::new(None, None, bytes))
    }

    /// `bytes` written to a new hidden file of their own beside `name` (`.NAME.batchwin-PID-R`,
    /// created exclusively), closed, and its size checked; gives its remote path.
    async fn write_temp(
        &self,
        conn: &Conn,
        name: &str,
        bytes: &[u8],
    ) -> Result<String, StorageError> {
        let target = self.remote(name);
        let (dir, file) = target.rsplit_once('/').unwrap_or(("", &target));
        let tmp = format!(
            "{dir}/.{file}.batchwin-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let flags = OpenFlags::CREATE | OpenFlags::EXCLUDE | OpenFlags::WRITE;
        let written = async {
            let f = self
                .timed(name, async {
                    conn.sftp
                        .open_with_flags(tmp.clone(), flags)
                        .await
                        .map_err(|e| self.sftp_err(name, e))
                })
                .await?;
            self.write_all_to(name, f, bytes).await?;
            let size = self
                .timed(name, async {
                    conn.sftp
                        .metadata(tmp.clone())
                        .await
                        .map_err(|e| self.sftp_err(name, e))
                })
                .await?
                .size;
            if size != Some(bytes.len() as u64) {
                return Err(self.transient(format!(
                    "`{name}`: the server holds {size:?} bytes of {} after the write",
                    bytes.len()
                )));
            }
            Ok(())
        }
        .await;
        match written {
            Ok(()) => Ok(tmp),
            Err(e) => {
                self.remove_temp(conn, &tmp).await;
                Err(e)
            }
        }
    }

    /// Removes a temporary file, if it is still there (best effort: the session may be gone,
    /// and a leftover hidden temporary is never renamed into place).
    async fn remove_temp(&self, conn: &Conn, tmp: &str) {
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            conn.sftp.remove_file(tmp.to_string()),
        )
        .await;
    }

    /// The session that sends `posix-rename@openssh.com`, opened on first use; `None` when
    /// the server does not offer it.
    async fn posix_session<'c>(
        &self,
        conn: &'c Conn,
    ) -> Result<Option<&'c RawSftpSession>, StorageError> {
        let open = || async {
            let raw = RawSftpSession::new(self.sftp_channel(&conn.handle).await?);
            raw.set_timeout(self.timeout.as_secs().max(1));
            let version = raw
                .init()
                .await
                .map_err(|e| self.transient(e.to_string()))?;
            Ok::<_, StorageError>(
                (version.extensions.get(POSIX_RENAME).map(String::as_str) == Some("1"))
                    .then_some(raw),
            )
        };
        let raw = self
            .timed("connection", conn.raw.get_or_try_init(open))
            .await?;
        Ok(raw.as_ref())
    }

    /// Moves `from` over `to` with `posix-rename@openssh.com` (`rename(2)`: `to` is replaced
    /// at once, readers see the old file or the new one); `Ok(false)` when the server does not
    /// offer it.
    async fn posix_rename(
        &self,
        conn: &Conn,
        name: &str,
        from: &str,
        to: &str,
    ) -> Result<bool, StorageError> {
        let Some(raw) = self.posix_session(conn).await? else {
            return Ok(false);
        };
        let mut data = Vec::with_capacity(8 + from.len() + to.len());
        for path in [from, to] {
            let len = u32::try_from(path.len())
                .map_err(|_| self.failed(format!("`{name}`: a path too long")))?;
            data.extend_from_slice(&len.to_be_bytes());
            data.extend_from_slice(path.as_bytes());
        }
        let answer = self
            .timed(name, async {
                raw.extended(POSIX_RENAME, data)
                    .await
                    .map_err(|e| self.sftp_err(name, e))
            })
            .await?;
        match answer {
            russh_sftp::protocol::Packet::Status(s) if s.status_code == StatusCode::Ok => Ok(true),
            russh_sftp::protocol::Packet::Status(s) => {
                Err(self.sftp_err(name, russh_sftp::client::error::Error::Status(s)))
            }
            _ => Err(self.sftp_err(name, russh_sftp::client::error::Error::UnexpectedPacket)),
        }
    }

    /// Writes `bytes` to the open file `f` and closes it.
    async fn write_all_to(
        &self,
        name: &str,
        mut f: russh_sftp::client::fs::File,
        bytes: &[u8],
    ) -> Result<(), StorageError> {
        self.timed(name, async {
            f.write_all(bytes).await.map_err(|e| self.io_err(name, e))?;
            f.shutdown().await.map_err(|e| self.io_err(name, e))
        })
        .await
    }

    /// See [`super::Store::get_versioned`].
    pub async fn get_versioned(&self, name: &str) -> Result<Option<Versioned>, StorageError> {
        let Some(entry) = self.head(name).await? else {
            return Ok(None);
        };
        let mut sink = VecSink::default();
        match self.get_into(name, &mut sink).await {
            Ok(()) => {}
            Err(StorageError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        Ok(Some(Versioned {
            version: Version::new(None, None, &sink.0),
            modified: entry.modified,
            bytes: sink.0,
        }))
    }

    /// See [`super::Store::replace_bytes`]: SFTP has no conditional write, so the file is read
    /// and compared with `expected`; then the bytes are written whole to a temporary name and
    /// moved over it with `posix-rename@openssh.com`, so a reader finds the old file or the
    /// new one, whenever the connection drops. On a server without that extension the old
    /// file is removed and the temporary moved to its name with the plain rename, which never
    /// replaces: for that moment the file is absent, and a creation by another writer that
    /// slips in wins (this write then fails as [`StorageError::Conflict`]).
    pub async fn replace_bytes(
        &self,
        name: &str,
        bytes: &[u8],
        expected: &Version,
    ) -> Result<Version, StorageError> {
        let conflict = || StorageError::Conflict {
            store: self.display.clone(),
            name: name.to_string(),
        };
        match self.get_versioned(name).await? {
            Some(now) if now.version.sha256 == expected.sha256 => {}
            _ => return Err(conflict()),
        }
        let conn = self.conn().await?;
        let target = self.remote(name);
        let tmp = self.write_temp(&conn, name, bytes).await?;
        let moved = self.move_into_place(&conn, name, &tmp, &target, true).await;
        if moved.is_err() {
            self.remove_temp(&conn, &tmp).await;
        }
        match moved {
            Ok(()) => Ok(Version::new(None, None, bytes)),
            // Another writer's file slipped in between the removal and the rename.
            Err(StorageError::AlreadyExists { .. }) => Err(conflict()),
            Err(e) => Err(e),
        }
    }

    pub async fn delete(&self, name: &str) -> Result<(), StorageError> {
        self.timed(name, self.delete_untimed(name)).await
    }

    async fn delete_untimed(&self, name: &str) -> Result<(), StorageError> {
        let conn = self.conn().await?;
        match conn.sftp.remove_file(self.remote(name)).await {
            Ok(()) => Ok(()),
            Err(russh_sftp::client::error::Error::Status(s))
                if s.status_code == StatusCode::NoSuchFile =>
            {
                Ok(())
            }
            Err(e) => Err(self.sftp_err(name, e)),
        }
    }

    pub async fn rename(&self, from: &str, to: &str) -> Result<(), StorageError> {
        self.timed(from, self.rename_untimed(from, to)).await
    }

    async fn rename_untimed(&self, from: &str, to: &str) -> Result<(), StorageError> {
        let conn = self.conn().await?;
        if self.head(to).await?.is_some() {
            return Err(StorageError::AlreadyExists {
                store: self.display.clone(),
                name: to.to_string(),
            });
        }
        self.make_parents(&conn, to).await?;
        conn.sftp
            .rename(self.remote(from), self.remote(to))
            .await
            .map_err(|e| self.sftp_err(from, e))
    }
}

/// Whether the type bits say folder (russh-sftp's `is_dir` tests single bits, which a socket's
/// mode also has).
fn is_folder(m: &russh_sftp::client::fs::Metadata) -> bool {
    m.permissions.is_some_and(|p| p & TYPE_BITS == 0o040000)
}

fn mtime(m: &russh_sftp::client::fs::Metadata) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(m.mtime.unwrap_or(0) as i64, 0).unwrap_or_default()
}

/// `~/.ssh/id_ed25519`, then `~/.ssh/id_ecdsa`, then `~/.ssh/id_rsa`, as OpenSSH tries them.
fn default_key(home: Option<&FsPath>) -> Option<PathBuf> {
    let ssh = home?.join(".ssh");
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|k| ssh.join(k))
        .find(|p| p.is_file())
}
