//! The narrow seam between the log and the file system for writes, in the spirit of redb's
//! `StorageBackend`: the log calls it once per append (never per record), and tests replace it to
//! make writes fail or tear. Reads go straight to the files with positional I/O, because the
//! network layer hands the same files to sendfile.

use std::fmt;
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// Most buffers one `pwritev` call takes (Linux's `IOV_MAX`).
const IOV_MAX: usize = 1024;

/// Write-side file operations of a log.
pub trait LogIo: Send + Sync + fmt::Debug + 'static {
    /// Writes all of `buf` at `position`.
    fn write_at(&self, file: &File, buf: &[u8], position: u64) -> io::Result<()>;
    /// Writes all of `bufs`, one after the other, at `position` (gathered, normally with one
    /// `pwritev`). `bufs` is consumed: on return its slices are advanced past what was written.
    fn write_vectored_at(
        &self,
        file: &File,
        bufs: &mut [IoSlice<'_>],
        position: u64,
    ) -> io::Result<()>;
    /// Reserves disk blocks for `len` bytes at `position` without changing the file's length
    /// (`fallocate` with `FALLOC_FL_KEEP_SIZE`), so later writes there skip block reservation.
    /// Only an optimisation: callers ignore its failure.
    fn preallocate(&self, file: &File, position: u64, len: u64) -> io::Result<()>;
    /// Truncates or extends the file.
    fn set_len(&self, file: &File, len: u64) -> io::Result<()>;
    /// Makes written data durable (fdatasync).
    fn sync_data(&self, file: &File) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsIo;

impl LogIo for OsIo {
    fn write_at(&self, file: &File, buf: &[u8], position: u64) -> io::Result<()> {
        file.write_all_at(buf, position)
    }

    fn write_vectored_at(
        &self,
        file: &File,
        bufs: &mut [IoSlice<'_>],
        position: u64,
    ) -> io::Result<()> {
        pwritev_all(file, bufs, position)
    }

    fn preallocate(&self, file: &File, position: u64, len: u64) -> io::Result<()> {
        fallocate_keep_size(file, position, len)
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        file.set_len(len)
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }
}

/// `pwritev` until every byte of `bufs` is written: a short write (a signal, a full pipe of
/// dirty pages) continues where it stopped, so the caller sees all or an error.
#[allow(unsafe_code)]
fn pwritev_all(file: &File, mut bufs: &mut [IoSlice<'_>], mut position: u64) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let count = bufs.len().min(IOV_MAX);
        let offset = libc::off_t::try_from(position).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "write position overflows off_t",
            )
        })?;
        // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix (a std guarantee); the
        // pointer and `count` describe slices borrowed for the whole call, which the kernel
        // only reads, and `file` keeps its descriptor open meanwhile.
        let written = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                bufs.as_ptr().cast::<libc::iovec>(),
                count as libc::c_int,
                offset,
            )
        };
        if written < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        position += written as u64;
        IoSlice::advance_slices(&mut bufs, written as usize);
    }
    Ok(())
}

/// `fallocate(FALLOC_FL_KEEP_SIZE)`: blocks reserved past the end stay invisible to readers
/// and to recovery, which go by the file's length.
#[allow(unsafe_code)]
fn fallocate_keep_size(file: &File, position: u64, len: u64) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(position), libc::off_t::try_from(len))
    else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "range overflows off_t",
        ));
    };
    // SAFETY: plain system call on a descriptor `file` keeps open; no memory is passed.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, offset, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A fault-injecting [`LogIo`] for tests: after `writes_before_failure` successful writes every
/// write fails; with `tear` set the failing write first lands a prefix of its bytes (as a crash
/// or a full disk mid-write would). A gathered write counts as one write and tears across its
/// buffers. `set_len`, `sync_data` and `preallocate` fail too once armed, if `fail_all`.
#[derive(Debug)]
pub struct FaultyIo {
    writes_before_failure: AtomicI64,
    tear: AtomicBool,
    fail_all: AtomicBool,
}

impl FaultyIo {
    /// Healthy until armed.
    pub fn new() -> FaultyIo {
        FaultyIo {
            writes_before_failure: AtomicI64::new(i64::MAX),
            tear: AtomicBool::new(false),
            fail_all: AtomicBool::new(false),
        }
    }

    /// Fails writes after `count` more succeed; `tear` writes half of the failing write first.
    pub fn fail_after(&self, count: i64, tear: bool) {
        self.tear.store(tear, Ordering::SeqCst);
        self.writes_before_failure.store(count, Ordering::SeqCst);
    }

    /// Also fail `set_len` and `sync_data` (a dead disk).
    pub fn fail_everything(&self, fail: bool) {
        self.fail_all.store(fail, Ordering::SeqCst);
    }

    /// Back to healthy.
    pub fn heal(&self) {
        self.writes_before_failure.store(i64::MAX, Ordering::SeqCst);
        self.fail_all.store(false, Ordering::SeqCst);
    }

    fn injected() -> io::Error {
        io::Error::other("injected fault")
    }
}

impl Default for FaultyIo {
    fn default() -> Self {
        FaultyIo::new()
    }
}

impl FaultyIo {
    /// Whether the next write may go through; once armed and run down, the failing write
    /// tears if asked to.
    fn next_write_succeeds(&self) -> bool {
        if self.writes_before_failure.fetch_sub(1, Ordering::SeqCst) > 0 {
            return true;
        }
        self.writes_before_failure.store(0, Ordering::SeqCst);
        false
    }
}

impl LogIo for FaultyIo {
    fn write_at(&self, file: &File, buf: &[u8], position: u64) -> io::Result<()> {
        if self.next_write_succeeds() {
            return file.write_all_at(buf, position);
        }
        if self.tear.load(Ordering::SeqCst) {
            file.write_all_at(&buf[..buf.len() / 2], position)?;
        }
        Err(FaultyIo::injected())
    }

    fn write_vectored_at(
        &self,
        file: &File,
        bufs: &mut [IoSlice<'_>],
        position: u64,
    ) -> io::Result<()> {
        if self.next_write_succeeds() {
            return pwritev_all(file, bufs, position);
        }
        if self.tear.load(Ordering::SeqCst) {
            // Half of the gathered bytes land, cut wherever that falls.
            let total: usize = bufs.iter().map(|b| b.len()).sum();
            let mut left = total / 2;
            let mut at = position;
            for buf in bufs.iter() {
                let part = &buf[..buf.len().min(left)];
                file.write_all_at(part, at)?;
                at += part.len() as u64;
                left -= part.len();
            }
        }
        Err(FaultyIo::injected())
    }

    fn preallocate(&self, file: &File, position: u64, len: u64) -> io::Result<()> {
        if self.fail_all.load(Ordering::SeqCst) {
            return Err(FaultyIo::injected());
        }
        fallocate_keep_size(file, position, len)
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        if self.fail_all.load(Ordering::SeqCst) {
            return Err(FaultyIo::injected());
        }
        file.set_len(len)
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        if self.fail_all.load(Ordering::SeqCst) {
            return Err(FaultyIo::injected());
        }
        file.sync_data()
    }
}
