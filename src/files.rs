//! Local files without world access: every file batchwin creates (outputs, rejects, staging
//! copies, ledgers, manifests, plans, reports, run state) is created through [`create`] (or
//! [`create_async`], or [`DirectFile::create`] for outputs) with mode [`FILE_MODE`], because
//! they hold vendor data, personal data included, that other accounts of the machine have no
//! business reading. The process umask still applies and may only take more away.
//!
//! Files that a library creates itself (DuckDB's write-ahead log) cannot be given a mode: for
//! them [`restrict_umask`], called once when the program starts, takes world access out of the
//! umask. Outputs, written once and not read back by the process that writes them, bypass
//! the page cache ([`DirectFile`]), and so do reads of files in a local folder that are read
//! once (the fetch's copies, a local run location's downloads, the checks of uploads to a
//! local folder: [`DirectReader`]; a slice's whole inputs in a local run folder:
//! [`read_whole`]). Their aligned buffers are kept in one pool for the life of the process
//! ([`DIRECT_BUFFERS`]). This module owns no policy beyond that; it opens no remote stores.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// The mode files are created with: the owner reads and writes, the group reads, others
/// nothing.
pub const FILE_MODE: u32 = 0o640;

/// Creates `path` (truncating a file already there) for writing, with [`FILE_MODE`]. A file
/// that was already there keeps at most [`FILE_MODE`]'s bits: it may have been left by an older
/// version or another tool with world access.
pub fn create(path: &Path) -> io::Result<File> {
    create_with_flags(path, 0)
}

/// [`create`], with `flags` added to the open flags (`O_DIRECT` for [`DirectFile`]).
fn create_with_flags(path: &Path, flags: i32) -> io::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut o, flags);
    #[cfg(not(unix))]
    let _ = flags;
    open_with(&mut o, path, FILE_MODE)
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

/// Bytes gathered before one write that bypasses the page cache ([`DirectFile`]), and little
/// memory per open output: `dd oflag=direct` of 4 GB wrote 0.8-2.2 GB/s in 4 MiB writes on this
/// project's machine, 1.4 GB/s in 1 MiB writes.
const DIRECT_BUF: usize = 4 << 20;
/// What the offsets, lengths and memory of writes that bypass the page cache are aligned to:
/// a multiple of every logical block size in use (512 and 4,096 bytes).
const DIRECT_ALIGN: usize = 4096;

/// The buffer a [`DirectFile`] starts with: most reject files, and the outputs of small
/// inputs, never need more. With a 4 MiB buffer for each of them, `process --input` of one
/// small file took 25.8-26.6 ms of CPU; with this one first, 18.9-22.3 ms, the difference in
/// kernel time (3 rounds of 100 runs each, alternating).
const DIRECT_FIRST: usize = 64 << 10;

/// Buffers of reads and writes that bypass the page cache, given back for the next ones, by
/// size ([`BufferSize`]); never freed before the process ends. A day opens thousands of
/// outputs, reject files and inputs, and a new buffer for each would take memory new to the
/// process each time: on this project's machine, memory new to the process costs kernel time
/// to fill, as pages new to the page cache do (see [`DirectReader`]).
static DIRECT_BUFFERS: [std::sync::Mutex<Vec<Memory>>; 3] = [
    std::sync::Mutex::new(Vec::new()),
    std::sync::Mutex::new(Vec::new()),
    std::sync::Mutex::new(Vec::new()),
];

/// The memory of a [`DirectBuffer`]: pages mapped from the kernel, aligned to a page (a
/// multiple of [`DIRECT_ALIGN`]) and zero until first touched, so that a buffer costs only the
/// pages its bytes reach. An allocation zeroed all of it first: `process --input` of one small
/// file (a 177 KB CSV, whose output outgrows [`DIRECT_FIRST`] and takes a 4 MiB buffer) took
/// 19.3-25.3 ms a run with buffers allocated zeroed, 16.1-21.4 ms with mapped ones, faster in
/// each of 6 rounds of 100 runs (alternating) by 1.2 to 3.6 ms.
pub type Memory = memmap2::MmapMut;

/// The sizes of [`DirectBuffer`]s, one pool each in [`DIRECT_BUFFERS`].
#[derive(Clone, Copy)]
enum BufferSize {
    /// [`DIRECT_FIRST`]: a new output's first bytes.
    First,
    /// [`DIRECT_BUF`]: the pieces of larger outputs, and of files read once.
    Piece,
    /// [`WHOLE_MAX`]: an input read whole.
    Whole,
}

impl BufferSize {
    fn bytes(self) -> usize {
        match self {
            BufferSize::First => DIRECT_FIRST,
            BufferSize::Piece => DIRECT_BUF,
            BufferSize::Whole => WHOLE_MAX as usize,
        }
    }
}

/// A buffer of aligned bytes from [`DIRECT_BUFFERS`], given back when dropped.
struct DirectBuffer {
    /// None only while lent out ([`DirectReader::lend`]).
    bytes: Option<Memory>,
    size: BufferSize,
}

impl DirectBuffer {
    fn take(size: BufferSize) -> io::Result<DirectBuffer> {
        let reused = DIRECT_BUFFERS[size as usize]
            .lock()
            .ok()
            .and_then(|mut p| p.pop());
        let bytes = match reused {
            Some(b) => b,
            None => memmap2::MmapOptions::new().len(size.bytes()).map_anon()?,
        };
        debug_assert_eq!(bytes.as_ptr() as usize % DIRECT_ALIGN, 0);
        Ok(DirectBuffer {
            bytes: Some(bytes),
            size,
        })
    }

    fn size(&self) -> usize {
        self.size.bytes()
    }

    /// The buffer's bytes; empty while lent out.
    fn bytes(&self) -> &[u8] {
        self.bytes.as_deref().unwrap_or_default()
    }

    /// The buffer's bytes, to be written into; empty while lent out.
    fn area(&mut self) -> &mut [u8] {
        self.bytes.as_deref_mut().unwrap_or_default()
    }
}

impl Drop for DirectBuffer {
    fn drop(&mut self) {
        // None while lent out (a `DirectReader`'s buffer hashed by a `Pairing`): a panic then
        // drops nothing worth keeping.
        if let Some(bytes) = self.bytes.take()
            && let Ok(mut p) = DIRECT_BUFFERS[self.size as usize].lock()
        {
            p.push(bytes);
        }
    }
}

/// A new file written in large aligned blocks that bypass the page cache (`O_DIRECT`, on
/// Linux), for outputs that batchwin writes once and does not read back. Measured on this
/// project's machine, a virtual machine whose free memory is handed back to its host: `dd` of
/// 4 GB through the page cache cost 1.8 to 5.3 s of kernel time (more into pages freed a while
/// before), bypassing it 0.28 to 1.74 s. In `perf record` of the whole synthetic day, `process`
/// copying outputs into the page cache took 12 % of all CPU time; bypassing it, the day's
/// kernel time fell from 24-32 s to 9-16 s and the day from 46-59 s to 36-46 s (`run`, 5 runs
/// before and 10 after, alternating).
///
/// The last partial block is written through the page cache; a filesystem that refuses
/// `O_DIRECT` (older tmpfs, some network filesystems) is written through the page cache from the
/// start. Either way the bytes on disk are the same. [`DirectFile::finish`] must be called
/// before the file is synced: bytes are held until the buffer is full, and a full buffer is
/// written by a thread of its own while the next one fills, so a file holds at most two
/// buffers of [`DIRECT_BUF`]. A file dropped without `finish` waits for that write; the bytes
/// it still holds are not written.
pub struct DirectFile {
    file: Arc<File>,
    buffer: Option<DirectBuffer>,
    used: usize,
    direct: bool,
    /// Where the bytes held go in the file: those before it are written or being written.
    offset: u64,
    /// A full buffer being written by a thread of its own while this one fills the next.
    writing: Option<std::thread::JoinHandle<io::Result<Written>>>,
    /// Why a write of this file failed, once one has: every later write and [`finish`]
    /// (`DirectFile::finish`) fails the same way (the bytes handed over are lost, so what
    /// follows them must not make a whole-looking file).
    failed: Option<Failed>,
}

/// A failed write, kept to be reported again (an `io::Error` cannot be cloned).
struct Failed(io::ErrorKind, Option<i32>, String);

impl Failed {
    fn of(e: &io::Error) -> Failed {
        Failed(e.kind(), e.raw_os_error(), e.to_string())
    }

    fn error(&self) -> io::Error {
        match self.1 {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(self.0, self.2.clone()),
        }
    }
}

/// What the thread writing a full buffer gives back: the buffer, for the next bytes, and
/// whether the file still bypasses the page cache.
struct Written {
    buffer: DirectBuffer,
    direct: bool,
}

impl DirectFile {
    /// Creates `path` as [`create`] does, bypassing the page cache where the filesystem allows.
    pub fn create(path: &Path) -> io::Result<DirectFile> {
        let direct_file = |file, direct| DirectFile {
            file: Arc::new(file),
            buffer: None,
            used: 0,
            direct,
            offset: 0,
            writing: None,
            failed: None,
        };
        #[cfg(target_os = "linux")]
        {
            match create_with_flags(path, rustix::fs::OFlags::DIRECT.bits() as i32) {
                Ok(file) => return Ok(direct_file(file, true)),
                // Refused by the filesystem: through the page cache.
                Err(e) if refused(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(direct_file(create(path)?, false))
    }

    /// Writes the bytes held and returns the file, ready to be synced.
    pub fn finish(mut self) -> io::Result<File> {
        self.wait()?;
        if let Some(mut buffer) = self.buffer.take() {
            let whole = self.used - self.used % DIRECT_ALIGN;
            let (file, at) = (&*self.file, self.offset);
            write_at(file, &buffer.area()[..whole], at, &mut self.direct)?;
            if self.used > whole {
                through_cache(file, &mut self.direct)?;
                let rest = &buffer.area()[whole..self.used];
                write_at(file, rest, at + whole as u64, &mut self.direct)?;
            }
        }
        // The thread that wrote last has ended, and with it its handle on the file: once this
        // one is dropped, `file` is the only handle left.
        let file = Arc::clone(&self.file);
        drop(self);
        Arc::try_unwrap(file).or_else(|file| file.try_clone())
    }

    /// Writes the piece that `reader` read last (`piece`, as [`DirectReader::read`] gave it)
    /// without copying it when this file holds no bytes not yet handed to be written (at its
    /// start, and after each full buffer, which a copy that reads whole buffers always
    /// reaches): the reader's buffer becomes this file's, and the reader reads on into
    /// another. Otherwise its bytes are copied, as `write_all` does. Copying each piece from
    /// the buffer it was read into to the one it was written from was 13 % of the fetch's CPU
    /// time in `perf record` of the whole synthetic day. Fetching that day (2,500 files, 6.06
    /// GB) from a local folder in the page cache took 2.80-2.96 s of user CPU and 8.8 s this
    /// way (copying 0.39 % of its samples), 3.56-3.77 s and 10.3-10.6 s copying (two runs each,
    /// alternating; docs/benchmarks.md).
    pub fn write_read(
        &mut self,
        reader: &mut DirectReader,
        piece: std::ops::Range<usize>,
    ) -> io::Result<()> {
        if self.used == DIRECT_BUF || self.failed.is_some() {
            self.hand_over()?;
        }
        // A reader's buffer is always of `DIRECT_BUF` bytes, its pieces read from its start; a
        // piece given from anywhere else is copied.
        if self.used > 0 || piece.start != 0 || piece.is_empty() {
            return io::Write::write_all(self, &reader.buffer.bytes()[piece]);
        }
        // The buffer this file would have filled goes to the reader when it is of the reader's
        // size; a first, smaller one goes back to the pool.
        let spare = match self.buffer.take() {
            Some(b) if b.size() == DIRECT_BUF => b,
            _ => DirectBuffer::take(BufferSize::Piece)?,
        };
        self.buffer = Some(std::mem::replace(&mut reader.buffer, spare));
        self.used = piece.len();
        Ok(())
    }

    /// Waits for the full buffer being written, if any, and takes it back.
    fn wait(&mut self) -> io::Result<Option<DirectBuffer>> {
        if let Some(failed) = &self.failed {
            return Err(failed.error());
        }
        let Some(writing) = self.writing.take() else {
            return Ok(None);
        };
        let written = writing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            .inspect_err(|e| self.failed = Some(Failed::of(e)))?;
        // The file may have gone through the page cache meanwhile, on either side.
        self.direct &= written.direct;
        Ok(Some(written.buffer))
    }

    /// Hands the full buffer to a thread that writes it, and goes on with the buffer the
    /// write before it is done with. A write of 4 MiB past the page cache waits for the disk
    /// (4.3 ms on this project's machine, 0.61 s in all for the wide CSV of `scripts/bench`,
    /// on the thread that also frames the file and writes its outputs): with the writes in a
    /// thread of their own, that file took 2.30-2.37 s against 2.42-2.63 s (docs/benchmarks.md).
    fn hand_over(&mut self) -> io::Result<()> {
        let next = match self.wait()? {
            Some(b) => b,
            None => DirectBuffer::take(BufferSize::Piece)?,
        };
        let Some(mut full) = self.buffer.replace(next) else {
            return Ok(());
        };
        let (file, at, mut direct) = (Arc::clone(&self.file), self.offset, self.direct);
        self.offset += self.used as u64;
        let len = std::mem::take(&mut self.used);
        let (tx, rx) = std::sync::mpsc::sync_channel::<DirectBuffer>(1);
        let write = move || {
            let Ok(mut full) = rx.recv() else {
                return Err(io::Error::other("the buffer to write never came"));
            };
            write_at(&file, &full.area()[..len], at, &mut direct)?;
            Ok(Written {
                buffer: full,
                direct,
            })
        };
        match std::thread::Builder::new().spawn(write) {
            Ok(thread) => {
                let _ = tx.send(full);
                self.writing = Some(thread);
                Ok(())
            }
            // No thread to be had (a process limit): the buffer is written here.
            Err(_) => {
                let (file, direct) = (&*self.file, &mut self.direct);
                write_at(file, &full.area()[..len], at, direct)
                    .inspect_err(|e| self.failed = Some(Failed::of(e)))?;
                self.buffer = Some(full);
                // The buffer taken for the next bytes goes back to the pool.
                Ok(())
            }
        }
    }
}

impl Drop for DirectFile {
    /// A file dropped without [`DirectFile::finish`] (an error on the way, a panic) waits for
    /// the write in flight, which would otherwise go on into a file that its owner may be
    /// removing or creating again.
    fn drop(&mut self) {
        if let Some(writing) = self.writing.take() {
            let _ = writing.join();
        }
    }
}

/// Writes all of `bytes` at `at`; the rest goes through the page cache when the filesystem
/// refuses a write that bypasses it (or a short write left the rest unaligned).
fn write_at(file: &File, bytes: &[u8], at: u64, direct: &mut bool) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut done = 0;
    while done < bytes.len() {
        match file.write_at(&bytes[done..], at + done as u64) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(k) => done += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if *direct && refused(&e) => through_cache(file, direct)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads into `buf` from `at` once (again when interrupted); the rest of the file goes through
/// the page cache when the filesystem refuses a read that bypasses it (an offset that is not
/// aligned, after a short read other than the last). `Ok(0)` at the end of the file.
fn read_at(file: &File, buf: &mut [u8], at: u64, direct: &mut bool) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    loop {
        match file.read_at(buf, at) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if *direct && refused(&e) => through_cache(file, direct)?,
            Err(e) => return Err(e),
        }
    }
}

/// Whether `e` is the filesystem refusing a read or write that bypasses the page cache
/// (`EINVAL`).
fn refused(e: &io::Error) -> bool {
    #[cfg(target_os = "linux")]
    return e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error());
    #[cfg(not(target_os = "linux"))]
    {
        let _ = e;
        false
    }
}

/// Goes on with `file` through the page cache (the rest of its writes, or reads).
fn through_cache(file: &File, direct: &mut bool) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if *direct {
        let flags = rustix::fs::fcntl_getfl(file)?;
        rustix::fs::fcntl_setfl(file, flags - rustix::fs::OFlags::DIRECT)?;
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
    *direct = false;
    Ok(())
}

impl io::Write for DirectFile {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        // A full buffer is handed over before more is taken. A write that fails in its thread
        // fails the next hand-over (or `finish`) and every call after it: the file is then
        // incomplete and is thrown away.
        if self.used == DIRECT_BUF || self.failed.is_some() {
            self.hand_over()?;
        }
        let buffer = match &mut self.buffer {
            Some(b) => b,
            None => self.buffer.insert(DirectBuffer::take(BufferSize::First)?),
        };
        if self.used == buffer.size() && self.used < DIRECT_BUF {
            // The first buffer is full: the file goes on in large writes.
            let mut larger = DirectBuffer::take(BufferSize::Piece)?;
            larger.area()[..self.used].copy_from_slice(&buffer.area()[..self.used]);
            *buffer = larger;
        }
        let take = (buffer.size() - self.used).min(b.len());
        buffer.area()[self.used..self.used + take].copy_from_slice(&b[..take]);
        self.used += take;
        Ok(take)
    }

    /// Nothing: bytes are held until the buffer is full, and [`DirectFile::finish`] writes the
    /// rest.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A file read once from start to end, in large aligned pieces that bypass the page cache
/// (`O_DIRECT`, on Linux): files in a local folder that batchwin reads once and hashes, as
/// the fetch copies them to staging (and downloads from, and uploads to, a local folder). On
/// this project's machine, a virtual machine whose free memory is handed back to its host,
/// each page that the page cache takes for a file not yet in it costs kernel time: `dd` of a
/// 2 GB file not in the cache took 4.5 s of kernel time through it, 0.15 s past it (874 MB/s).
/// Fetching the synthetic day (2,500 files, 5.7 GB) from a local folder not in the page cache
/// took 21.5-24.4 s of kernel time reading and writing through it, 11.0-11.8 s reading past
/// it, 2.1-3.4 s also writing the staged copies past it ([`DirectFile`]; their slices read
/// them with [`read_whole`]); two or three runs each, alternating. A file that is in the page
/// cache is read from the disk all the same, which costs time on the disk rather than the CPU.
///
/// The pieces go into the start of the reader's buffer ([`DirectReader::bytes`],
/// [`DIRECT_BUF`] bytes, reused from file to file, or traded for another with the file a
/// piece is written to: [`DirectFile::write_read`]). Where the filesystem refuses `O_DIRECT`
/// (older tmpfs, some network filesystems) the file is opened through the page cache, and a
/// read that the filesystem refuses past it (an offset that is not aligned, after a short read
/// other than the last) goes on through the page cache: the bytes read are the same. The
/// reader reads at its own offset (`pread`): the position of [`DirectReader::file`] stays at
/// the start.
pub struct DirectReader {
    file: File,
    direct: bool,
    buffer: DirectBuffer,
    /// Where the next piece starts in the file.
    offset: u64,
    /// The file's length as last seen (see [`DirectReader::read`]).
    len: u64,
}

impl DirectReader {
    /// Opens `path` for reading with the open `flags` given, bypassing the page cache where
    /// the filesystem allows.
    pub fn open(path: &Path, flags: i32) -> io::Result<DirectReader> {
        let o = &mut std::fs::OpenOptions::new();
        o.read(true);
        let reader = |file: File, direct| {
            let len = file.metadata().map_or(u64::MAX, |m| m.len());
            Ok(DirectReader {
                file,
                direct,
                buffer: DirectBuffer::take(BufferSize::Piece)?,
                offset: 0,
                len,
            })
        };
        #[cfg(target_os = "linux")]
        {
            let direct = flags | rustix::fs::OFlags::DIRECT.bits() as i32;
            match std::os::unix::fs::OpenOptionsExt::custom_flags(o, direct).open(path) {
                Ok(file) => return reader(file, true),
                Err(e) if refused(&e) => {}
                Err(e) => return Err(e),
            }
        }
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::custom_flags(o, flags);
        #[cfg(not(unix))]
        let _ = flags;
        reader(o.open(path)?, false)
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Reads the next piece of the file into the buffer: where it is in
    /// [`DirectReader::bytes`], empty at the end of the file.
    ///
    /// Only the whole blocks that hold the rest of the file are asked for, not the whole
    /// buffer: past the end of a file, a read that bypasses the page cache has the kernel fill
    /// the rest of the buffer with zeros first. A 4 MiB read of a 639 KiB file took 93-109 µs
    /// of kernel time, 37-51 µs asked for its 160 blocks (300 reads each); the fetch reads most
    /// files of a day in one piece. A file that has grown since it was last looked at is read
    /// on: a piece that fills what was asked for up to the end looks at its length again.
    pub fn read(&mut self) -> io::Result<std::ops::Range<usize>> {
        let (file, at) = (&self.file, self.offset);
        let area = self.buffer.area();
        let rest = usize::try_from(self.len.saturating_sub(at)).unwrap_or(usize::MAX);
        let asked = rest
            .checked_next_multiple_of(DIRECT_ALIGN)
            .unwrap_or(usize::MAX)
            .clamp(DIRECT_ALIGN, area.len());
        let n = read_at(file, &mut area[..asked], at, &mut self.direct)?;
        self.offset += n as u64;
        if n == asked && self.offset >= self.len {
            self.len = file.metadata().map_or(u64::MAX, |m| m.len());
        }
        Ok(0..n)
    }

    /// The whole buffer that [`DirectReader::read`] reads into.
    pub fn bytes(&self) -> &[u8] {
        self.buffer.bytes()
    }

    /// Hands the buffer that [`DirectReader::read`] reads into to `f` (which hashes a piece of
    /// it through a [`crate::checksum::Pairing`]), to be given back with its bytes where they
    /// were. Should `f` panic, the buffer is gone: the panic goes on, and the reader is not to
    /// be used again.
    pub fn lend(&mut self, f: impl FnOnce(Memory) -> Memory) {
        let bytes = self
            .buffer
            .bytes
            .take()
            .expect("a reader used after a lend that panicked");
        self.buffer.bytes = Some(f(bytes));
    }
}

/// The largest input read whole into memory past the page cache ([`read_whole`]); larger ones
/// are mapped. 98 % of the synthetic day's bytes are in files of at most 32 MiB, and each file
/// worker of a slice holds one such buffer at most.
pub const WHOLE_MAX: u64 = 32 << 20;

/// A whole file read into memory past the page cache ([`read_whole`]), in a buffer of
/// [`WHOLE_MAX`] bytes that goes back to [`DIRECT_BUFFERS`] when dropped.
pub struct Whole {
    buffer: DirectBuffer,
    at: std::ops::Range<usize>,
}

impl std::ops::Deref for Whole {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buffer.bytes()[self.at.clone()]
    }
}

/// Reads the first `len` bytes of `file` (at most [`WHOLE_MAX`]) into memory past the page
/// cache: the inputs of a plan's slices in a local folder, staging copies that the fetch of a
/// local folder wrote past the page cache too and that nothing reads again. The synthetic day
/// through `run --executor local`, its source not in the page cache (six runs each,
/// alternating): 35.1-38.4 s, 16.7-21.6 s of it kernel time, with the staged copies written
/// and read through the page cache; 32.1-33.2 s and 8.9-9.7 s past it. A file whose
/// filesystem refuses `O_DIRECT` gives none (to be mapped instead); a read refused midway goes
/// on through the page cache. A file shorter than `len` gives its bytes.
pub fn read_whole(file: &File, len: u64) -> io::Result<Option<Whole>> {
    #[cfg(target_os = "linux")]
    {
        let len = len.min(WHOLE_MAX) as usize;
        let mut buffer = DirectBuffer::take(BufferSize::Whole)?;
        let flags = rustix::fs::fcntl_getfl(file)?;
        match rustix::fs::fcntl_setfl(file, flags | rustix::fs::OFlags::DIRECT) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::INVAL => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let mut direct = true;
        // Whole blocks are asked for: the last one ends past the file's end.
        let asked = len.next_multiple_of(DIRECT_ALIGN);
        let area = &mut buffer.area()[..asked];
        let mut done = 0;
        let result = loop {
            if done >= len {
                break Ok(());
            }
            match read_at(file, &mut area[done..], done as u64, &mut direct) {
                Ok(0) => break Ok(()),
                Ok(n) => done += n,
                Err(e) => break Err(e),
            }
        };
        // The file goes back to the page cache for whatever else reads it through `file`.
        if direct {
            let _ = rustix::fs::fcntl_setfl(file, flags);
        }
        result?;
        Ok(Some(Whole {
            buffer,
            at: 0..done.min(len),
        }))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, len);
        Ok(None)
    }
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

    /// Writes `len` bytes of a pattern to a [`DirectFile`] in pieces of the sizes `pieces`
    /// cycles through; `switch_at`: where the rest goes through the page cache.
    fn direct_round_trip(len: usize, pieces: &[usize], switch_at: Option<usize>) {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
        let mut f = DirectFile::create(&path).unwrap();
        let (mut at, mut k) = (0, 0);
        while at < len {
            if switch_at.is_some_and(|s| s <= at) && f.direct {
                through_cache(&f.file, &mut f.direct).unwrap();
            }
            let n = pieces[k % pieces.len()].min(len - at);
            f.write_all(&data[at..at + n]).unwrap();
            (at, k) = (at + n, k + 1);
        }
        f.finish().unwrap().sync_all().unwrap();
        let back = std::fs::read(&path).unwrap();
        assert_eq!(back.len(), len, "{len} bytes in pieces of {pieces:?}");
        assert!(
            back == data,
            "{len} bytes in pieces of {pieces:?}: other bytes"
        );
        assert_eq!(mode(&path) & !FILE_MODE, 0);
    }

    #[test]
    fn a_direct_file_holds_the_bytes_written_whatever_their_sizes() {
        for len in [
            0,
            1,
            DIRECT_ALIGN - 1,
            DIRECT_ALIGN,
            DIRECT_ALIGN + 1,
            DIRECT_FIRST - 1,
            DIRECT_FIRST,
            DIRECT_FIRST + 1,
            DIRECT_BUF - 1,
            DIRECT_BUF,
            DIRECT_BUF + 1,
            3 * DIRECT_BUF + 17,
        ] {
            direct_round_trip(len, &[len.max(1)], None);
            direct_round_trip(len, &[1, 4095, 100_000, 7, DIRECT_BUF + 3], None);
        }
    }

    #[test]
    fn a_direct_file_that_goes_through_the_cache_midway_holds_the_same_bytes() {
        // As when the filesystem refuses a write that bypasses the cache.
        direct_round_trip(2 * DIRECT_BUF + 5000, &[333_333], Some(DIRECT_BUF + 1));
        direct_round_trip(10_000, &[3000], Some(0));
    }

    /// Reads `r` to its end, through the page cache from piece `switch_at` on (as after a read
    /// the filesystem refused), handing each piece to `each`.
    fn read_pieces(
        r: &mut DirectReader,
        switch_at: Option<usize>,
        mut each: impl FnMut(&mut DirectReader, std::ops::Range<usize>),
    ) {
        for piece in 0.. {
            if switch_at == Some(piece) && r.direct {
                through_cache(&r.file, &mut r.direct).unwrap();
            }
            let at = r.read().unwrap();
            if at.is_empty() {
                break;
            }
            each(r, at);
        }
    }

    /// A [`DirectReader`] hands out every byte of the file once, in order, past the page cache
    /// or, from `switch_at` on (as after a read the filesystem refused), through it.
    #[test]
    fn a_direct_reader_reads_every_byte_whatever_the_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in");
        for len in [
            0,
            1,
            DIRECT_ALIGN - 1,
            DIRECT_ALIGN + 1,
            DIRECT_BUF,
            2 * DIRECT_BUF + 17,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 13 + i / 4096) as u8).collect();
            std::fs::write(&path, &data).unwrap();
            for switch_at in [None, Some(0), Some(1)] {
                let mut r = DirectReader::open(&path, 0).unwrap();
                let mut back = Vec::new();
                read_pieces(&mut r, switch_at, |r, at| {
                    assert_eq!((r.bytes().as_ptr() as usize + at.start) % DIRECT_ALIGN, 0);
                    back.extend_from_slice(&r.bytes()[at]);
                });
                assert!(
                    back == data,
                    "{len} bytes, through the cache from {switch_at:?}"
                );
            }
        }
        // A file that grows after it was opened is read to its new end, whether the read that
        // reaches its first end fills what was asked for or not.
        for (first, more) in [(DIRECT_ALIGN, 10_000), (5000, 100), (5000, DIRECT_BUF)] {
            let data: Vec<u8> = (0..first + more).map(|i| (i * 7) as u8).collect();
            std::fs::write(&path, &data[..first]).unwrap();
            let mut r = DirectReader::open(&path, 0).unwrap();
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            std::io::Write::write_all(&mut f, &data[first..]).unwrap();
            let mut back = Vec::new();
            loop {
                let at = r.read().unwrap();
                if at.is_empty() {
                    break;
                }
                back.extend_from_slice(&r.bytes()[at]);
            }
            assert!(back == data, "{first} bytes, then {more}");
        }
        // The caller's flags hold: a symbolic link is not followed.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let refused = DirectReader::open(&link, rustix::fs::OFlags::NOFOLLOW.bits() as i32);
        assert_eq!(
            refused.err().and_then(|e| e.raw_os_error()),
            Some(rustix::io::Errno::LOOP.raw_os_error())
        );
    }

    /// A copy made with [`DirectFile::write_read`] (each piece written from the buffer it was
    /// read into) holds the same bytes as its source, whatever its length; also after bytes
    /// written before the first piece, after a piece shorter than the buffer in the middle (a
    /// file that grew while it was read), and through the cache from some piece on.
    #[test]
    fn a_copy_written_from_the_readers_buffers_holds_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("in"), dir.path().join("out"));
        // The copy's bytes, and whether a piece was written from the reader's own buffer.
        let copy = |head: &[u8], switch_at: Option<usize>, grow: &[u8]| {
            let mut handed = false;
            let mut r = DirectReader::open(&from, 0).unwrap();
            if !grow.is_empty() {
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&from)
                    .unwrap();
                std::io::Write::write_all(&mut f, grow).unwrap();
            }
            let mut w = DirectFile::create(&to).unwrap();
            std::io::Write::write_all(&mut w, head).unwrap();
            read_pieces(&mut r, switch_at, |r, at| {
                let before = r.bytes().as_ptr();
                w.write_read(r, at).unwrap();
                handed |= r.bytes().as_ptr() != before;
            });
            w.finish().unwrap().sync_all().unwrap();
            (std::fs::read(&to).unwrap(), handed)
        };
        for len in [
            0,
            1,
            DIRECT_ALIGN - 1,
            DIRECT_ALIGN + 1,
            DIRECT_BUF - 1,
            DIRECT_BUF,
            DIRECT_BUF + 1,
            3 * DIRECT_BUF + 17,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 13 + i / 4096) as u8).collect();
            for head in [&b""[..], b"id,name\n"] {
                for switch_at in [None, Some(1)] {
                    std::fs::write(&from, &data).unwrap();
                    let (back, handed) = copy(head, switch_at, b"");
                    assert!(
                        back[..head.len()] == *head && back[head.len()..] == data,
                        "{len} bytes after {} written first, through the cache from {switch_at:?}",
                        head.len()
                    );
                    // With nothing written before it, the first piece is not copied.
                    assert_eq!(handed, head.is_empty() && len > 0, "{len} bytes");
                }
            }
        }
        for (first, more) in [(5000, DIRECT_BUF), (DIRECT_BUF + 5000, DIRECT_BUF + 3)] {
            let data: Vec<u8> = (0..first + more).map(|i| (i * 7) as u8).collect();
            std::fs::write(&from, &data[..first]).unwrap();
            assert!(
                copy(b"", None, &data[first..]).0 == data,
                "{first} bytes, then {more}"
            );
        }
    }

    /// [`read_whole`] gives the file's first `len` bytes (all of them when it is shorter),
    /// whatever the length; the file is left as it was opened (through the page cache), and
    /// two files read at once get buffers of their own.
    #[test]
    fn a_whole_file_read_past_the_cache_holds_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in");
        let max = WHOLE_MAX as usize;
        for len in [
            1,
            DIRECT_ALIGN - 1,
            DIRECT_ALIGN,
            DIRECT_ALIGN + 1,
            (1 << 20) + 3,
            max,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 11 + i / 4096) as u8).collect();
            std::fs::write(&path, &data).unwrap();
            let file = File::open(&path).unwrap();
            let before = rustix::fs::fcntl_getfl(&file).unwrap();
            let Some(whole) = read_whole(&file, len as u64).unwrap() else {
                // A filesystem without `O_DIRECT`: the caller maps the file instead.
                return;
            };
            assert!(*whole == data[..], "{len} bytes");
            assert_eq!(rustix::fs::fcntl_getfl(&file).unwrap(), before);
            let shorter = read_whole(&file, len as u64 / 2).unwrap().unwrap();
            assert!(
                *shorter == data[..len / 2],
                "the first {} of {len} bytes",
                len / 2
            );
            drop(shorter);
            let asked_more = read_whole(&file, len as u64 + 5000).unwrap().unwrap();
            assert!(*asked_more == data[..], "{len} bytes, asked for more");
            assert!(*whole == data[..], "{len} bytes, read again beside it");
        }
    }

    /// A full buffer is written by a thread of its own: a write that fails there fails the
    /// next write and `finish`, though the handle would take them (the lost bytes must not
    /// leave a hole in a file that looks whole).
    #[test]
    fn a_write_that_fails_in_its_thread_fails_the_file() {
        use std::io::Write;
        let ebadf = |e: io::Error| assert_eq!(e.raw_os_error(), Some(9), "{e}");
        for later_write in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("out");
            let mut f = DirectFile::create(&path).unwrap();
            // The full buffer is handed over with a handle it cannot be written through.
            let writable = std::mem::replace(&mut f.file, Arc::new(File::open(&path).unwrap()));
            f.write_all(&vec![b'x'; DIRECT_BUF + 1]).unwrap();
            assert!(f.writing.is_some(), "the full buffer is being written");
            f.file = writable;
            if later_write {
                // The next hand-over finds the failure, and so does every call after it.
                ebadf(f.write_all(&vec![b'y'; DIRECT_BUF]).expect_err("reported"));
                ebadf(f.write_all(b"z").expect_err("reported again"));
            }
            ebadf(f.finish().expect_err("the failed write is reported"));
        }
    }

    /// A file dropped unfinished has written what it handed over by the time the drop returns:
    /// no write goes on into a file its owner removes or creates again.
    #[test]
    fn a_direct_file_dropped_unfinished_waits_for_its_write() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut f = DirectFile::create(&path).unwrap();
        f.write_all(&vec![b'x'; 2 * DIRECT_BUF + 1]).unwrap();
        assert!(f.writing.is_some(), "a full buffer is being written");
        drop(f);
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(len, 2 * DIRECT_BUF as u64, "both full buffers written");
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
