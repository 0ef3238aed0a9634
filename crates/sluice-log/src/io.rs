//! The narrow seam between the log and the file system for writes, in the spirit of redb's
//! `StorageBackend`: the log calls it once per append (never per record), and tests replace it to
//! make writes fail or tear. Reads go straight to the files with positional I/O, because the
//! network layer hands the same files to sendfile.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// Write-side file operations of a log.
pub trait LogIo: Send + Sync + fmt::Debug + 'static {
    /// Writes all of `buf` at `position`.
    fn write_at(&self, file: &File, buf: &[u8], position: u64) -> io::Result<()>;
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

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        file.set_len(len)
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }
}

/// A fault-injecting [`LogIo`] for tests: after `writes_before_failure` successful writes every
/// write fails; with `tear` set the failing write first lands a prefix of its bytes (as a crash
/// or a full disk mid-write would). `set_len` and `sync_data` fail too once armed, if `fail_all`.
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

impl LogIo for FaultyIo {
    fn write_at(&self, file: &File, buf: &[u8], position: u64) -> io::Result<()> {
        if self.writes_before_failure.fetch_sub(1, Ordering::SeqCst) > 0 {
            return file.write_all_at(buf, position);
        }
        self.writes_before_failure.store(0, Ordering::SeqCst);
        if self.tear.load(Ordering::SeqCst) {
            file.write_all_at(&buf[..buf.len() / 2], position)?;
        }
        Err(FaultyIo::injected())
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
