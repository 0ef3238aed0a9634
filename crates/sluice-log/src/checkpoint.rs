//! Atomic small-file writes and Kafka's text checkpoint formats.
//!
//! Every checkpoint is written as temp file, fsync, rename, fsync of the directory, so a crash
//! leaves either the old or the new file, never a torn one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use crate::error::{LogError, Result};

/// Suffix of temp files; leftovers are removed on open.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// Replaces `path` with `contents` atomically and durably.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    write_atomic_with(path, contents, true)
}

/// Replaces `path` with `contents` atomically; with `durable` also fsyncs the file and its
/// directory. Without, the caller makes it durable later (for example with one
/// [`sync_filesystem`] after writing thousands of files at shutdown).
pub(crate) fn write_atomic_with(path: &Path, contents: &[u8], durable: bool) -> Result<()> {
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(TEMP_SUFFIX);
    let temp = Path::new(&temp_name);
    let write = || -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(temp)?;
        file.write_all(contents)?;
        if durable {
            file.sync_all()?;
        }
        fs::rename(temp, path)?;
        if durable {
            sync_dir(path.parent().unwrap_or(Path::new(".")))?;
        }
        Ok(())
    };
    write().map_err(LogError::io(path))
}

/// fsyncs a directory so that renames and creations in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Flushes every dirty page and inode of the file system holding `dir` with one `syncfs`
/// call: far cheaper at shutdown than an fsync per file of 10,000 partitions.
#[allow(unsafe_code)]
pub(crate) fn sync_filesystem(dir: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let handle = File::open(dir)?;
    // SAFETY: `handle` owns an open descriptor for the whole call, and syncfs only reads it.
    let rc = unsafe { libc::syncfs(handle.as_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Encodes Kafka's checkpoint layout: version line, count line, one line per entry.
pub(crate) fn encode_lines<I: IntoIterator<Item = String>>(version: u32, lines: I) -> Vec<u8> {
    let lines: Vec<String> = lines.into_iter().collect();
    let mut out = format!("{version}\n{}\n", lines.len());
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out.into_bytes()
}

/// Decodes Kafka's checkpoint layout, returning the entry lines. `None` if the file is malformed
/// (wrong version, count mismatch); a missing file is an empty list.
pub(crate) fn read_lines(path: &Path, version: u32) -> Result<Option<Vec<String>>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Some(Vec::new())),
        Err(err) => return Err(LogError::io(path)(err)),
    };
    let mut lines = text.lines();
    let parsed_version = lines.next().and_then(|l| l.trim().parse::<u32>().ok());
    let count = lines.next().and_then(|l| l.trim().parse::<usize>().ok());
    let (Some(parsed_version), Some(count)) = (parsed_version, count) else {
        return Ok(None);
    };
    let entries: Vec<String> = lines.map(str::to_owned).collect();
    if parsed_version != version || entries.len() != count {
        return Ok(None);
    }
    Ok(Some(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        assert_eq!(read_lines(&path, 0).unwrap(), Some(vec![]));
        write_atomic(
            &path,
            &encode_lines(0, ["a 1".to_string(), "b 2".to_string()]),
        )
        .unwrap();
        assert_eq!(read_lines(&path, 0).unwrap().unwrap(), vec!["a 1", "b 2"]);
        fs::write(&path, "0\n3\na 1\n").unwrap();
        assert_eq!(read_lines(&path, 0).unwrap(), None);
        assert!(!dir.path().join("cp.tmp").exists());
    }
}
