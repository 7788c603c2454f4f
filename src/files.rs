//! Local files without world access: every file batchwin creates (outputs, rejects, staging
//! copies, ledgers, manifests, plans, reports, run state) is created through [`create`] (or
//! [`create_async`]) with mode [`FILE_MODE`], because they hold vendor data, personal data
//! included, that other accounts of the machine have no business reading. The process umask
//! still applies and may only take more away.
//!
//! Files that a library creates itself (DuckDB's write-ahead log) cannot be given a mode: for
//! them [`restrict_umask`], called once when the program starts, takes world access out of the
//! umask. This module owns no policy beyond that; it opens no remote stores.

use std::fs::File;
use std::io;
use std::path::Path;

/// The mode files are created with: the owner reads and writes, the group reads, others
/// nothing.
pub const FILE_MODE: u32 = 0o640;

/// Creates `path` (truncating a file already there) for writing, with [`FILE_MODE`]. A file
/// that was already there keeps at most [`FILE_MODE`]'s bits: it may have been left by an older
/// version or another tool with world access.
pub fn create(path: &Path) -> io::Result<File> {
    open_with(
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true),
        path,
        FILE_MODE,
    )
}

/// Opens `path` for appending (a log such as the fetch manifest), creating it with
/// [`FILE_MODE`] when it is not there yet.
pub fn append(path: &Path) -> io::Result<File> {
    open_with(
        std::fs::OpenOptions::new().create(true).append(true),
        path,
        FILE_MODE,
    )
}

/// [`create`], readable too: a scratch file written and then read back (the PDF row spool).
pub fn create_scratch(path: &Path) -> io::Result<File> {
    open_with(
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true),
        path,
        FILE_MODE,
    )
}

/// Opens `path` with `o`, creating it with `mode`, and takes from a file already there
/// whatever `mode` does not allow.
fn open_with(o: &mut std::fs::OpenOptions, path: &Path, mode: u32) -> io::Result<File> {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(o, mode);
    let file = o.open(path)?;
    narrow(&file, mode)?;
    Ok(file)
}

/// [`create`] for async code (downloads to staging).
#[cfg(feature = "cli")]
pub async fn create_async(path: &Path) -> io::Result<tokio::fs::File> {
    let mut o = tokio::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    o.mode(FILE_MODE);
    let file = o.open(path).await?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().await?.permissions().mode() & 0o7777;
        if mode & !FILE_MODE != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(mode & FILE_MODE))
                .await?;
        }
    }
    Ok(file)
}

/// Writes `contents` to a new file at `path` with [`FILE_MODE`] (as `std::fs::write` does with
/// the default mode).
pub fn write(path: &Path, contents: impl AsRef<[u8]>) -> io::Result<()> {
    use std::io::Write;
    create(path)?.write_all(contents.as_ref())
}

/// The mode of a secret (a masking key): the owner only. A group member who could read the
/// key could hash guesses and so undo `mask = "hash"`.
pub const SECRET_MODE: u32 = 0o600;

/// Writes a secret to a new file at `path` with [`SECRET_MODE`], narrowing a file already there.
pub fn write_secret(path: &Path, contents: impl AsRef<[u8]>) -> io::Result<()> {
    use std::io::Write;
    open_with(
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true),
        path,
        SECRET_MODE,
    )?
    .write_all(contents.as_ref())
}

/// Takes from an existing file's mode whatever [`FILE_MODE`] does not allow (a file created
/// by a library, or there before).
pub fn restrict(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o7777;
        if mode & !FILE_MODE != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & FILE_MODE))?;
        }
    }
    Ok(())
}

fn narrow(file: &File, allowed: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode() & 0o7777;
        if mode & !allowed != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(mode & allowed))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (file, allowed);
    Ok(())
}

/// Adds world access to the process umask (`umask | 0o007`), so that what libraries create
/// (DuckDB's `.wal` beside a ledger) and the folders batchwin makes have no world access
/// either. Called once, first thing, by the binary: the umask is the whole process's.
#[cfg(feature = "cli")]
pub fn restrict_umask() {
    // SAFETY: umask only sets the process's file mode creation mask and cannot fail.
    #[cfg(unix)]
    unsafe {
        let old = libc::umask(0o077);
        libc::umask(old | 0o007);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_and_existing_files_lose_world_access() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new");
        write(&new, b"x").unwrap();
        assert_eq!(mode(&new) & !FILE_MODE, 0, "{:o}", mode(&new));
        let old = dir.path().join("old");
        std::fs::write(&old, b"x").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o666)).unwrap();
        write(&old, b"y").unwrap();
        assert_eq!(mode(&old), 0o640);
        let lib = dir.path().join("lib");
        std::fs::write(&lib, b"x").unwrap();
        std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o604)).unwrap();
        restrict(&lib).unwrap();
        assert_eq!(mode(&lib), 0o600);
    }
}
