//! File helpers of the Raft layer: CRC-framed records (`[u32 length][u32 crc32c][payload]`,
//! big-endian, as the metadata log frames its batches), reading a framed file back with a torn
//! tail cut and damage in the middle refused, and replacing a small file atomically (temp file,
//! fsync, rename, directory fsync).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Largest frame written or read back; bounds memory when a length field is corrupt.
pub(crate) const FILE_FRAME_BYTES_MAX: usize = 256 << 20;

/// `payload` framed with its length and CRC.
pub(crate) fn encode(payload: &[u8]) -> io::Result<Vec<u8>> {
    if payload.is_empty() || payload.len() > FILE_FRAME_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame of {} bytes", payload.len()),
        ));
    }
    let mut frame = Vec::with_capacity(8 + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    frame.extend_from_slice(payload);
    Ok(frame)
}

/// What reading a framed file found.
#[derive(Debug)]
pub(crate) struct Frames<'a> {
    /// Every intact frame's payload, in order.
    pub(crate) payloads: Vec<&'a [u8]>,
    /// Length of the intact prefix; anything after it is a torn tail to cut.
    pub(crate) good_bytes: usize,
}

/// Splits `bytes` into frames. A bad frame that reaches the end of the data, or is followed by
/// zeros only, is a torn tail (a crash before the fsync answered): it and what follows are left
/// out. A bad frame followed by more data is damage to acknowledged writes: an error.
pub(crate) fn decode_all(bytes: &[u8]) -> io::Result<Frames<'_>> {
    let mut payloads = Vec::new();
    let mut at = 0usize;
    while bytes.len() - at >= 8 {
        let rest = &bytes[at..];
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let end = 8usize.saturating_add(len);
        if len > 0
            && len <= FILE_FRAME_BYTES_MAX
            && rest.len() >= end
            && crc32c::crc32c(&rest[8..end]) == crc
        {
            payloads.push(&rest[8..end]);
            at += end;
            continue;
        }
        let after = rest.get(end..).unwrap_or(&[]);
        if len == 0 || after.iter().all(|b| *b == 0) {
            break;
        }
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a damaged frame ({len} bytes) at byte {at} is followed by more data"),
        ));
    }
    Ok(Frames {
        payloads,
        good_bytes: at,
    })
}

/// Replaces `path` with one frame holding `payload`, durably: a temp file is written and
/// fsynced, renamed over `path`, and the directory fsynced.
pub(crate) fn replace_file(path: &Path, payload: &[u8]) -> io::Result<()> {
    let frame = encode(payload)?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    {
        let mut f = File::create(tmp)?;
        f.write_all(&frame)?;
        f.sync_all()?;
    }
    fs::rename(tmp, path)?;
    sync_parent(path)
}

/// Reads the one-frame file written by [`replace_file`]; `None` when it does not exist.
pub(crate) fn read_file(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let frames = decode_all(&bytes)?;
    match frames.payloads.first() {
        Some(p) => Ok(Some(p.to_vec())),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: no intact frame", path.display()),
        )),
    }
}

/// Fsyncs the directory holding `path`, so a rename or a new file in it is durable.
pub(crate) fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_tail_is_cut_and_middle_damage_refused() {
        let mut bytes = encode(b"one").unwrap();
        bytes.extend(encode(b"two").unwrap());
        let whole = bytes.len();
        bytes.extend(&encode(b"three").unwrap()[..6]);
        let frames = decode_all(&bytes).unwrap();
        assert_eq!(frames.payloads, vec![&b"one"[..], &b"two"[..]]);
        assert_eq!(frames.good_bytes, whole);

        let mut damaged = encode(b"one").unwrap();
        damaged[9] ^= 0xff;
        damaged.extend(encode(b"two").unwrap());
        assert!(decode_all(&damaged).is_err());
    }
}
