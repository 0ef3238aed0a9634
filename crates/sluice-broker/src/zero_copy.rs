//! Zero-copy Fetch responses: record bytes go from the segment files to the socket with
//! `sendfile(2)`, never through user space.
//!
//! The response is encoded by the protocol crate as usual, but each partition's `records` field
//! is a placeholder slice of a static zero region. The output buffer ([`GapBuf`]) recognises
//! those placeholders by address and, instead of copying them, records a gap of that length.
//! Writing the frame then alternates between the encoded bytes and `sendfile` of the file slices
//! that fill each gap, in encoding order. Works for every Fetch version without a hand-written
//! encoder. Partitions larger than the placeholder region fall back to copying.

#![allow(unsafe_code)]

use std::os::fd::AsRawFd;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseHeader};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Encodable, HeaderVersion};
use sluice_log::FileSlice;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// Largest records field sent zero-copy (bigger ones are copied).
pub const PLACEHOLDER_MAX: usize = 64 * 1024 * 1024;

/// The placeholder region: an anonymous read-only mapping, mapped once. Its pages are never
/// touched (placeholders are recognised by address and skipped), so it costs address space only,
/// no resident memory and nothing in the binary.
static ZEROS: std::sync::OnceLock<Option<&'static [u8]>> = std::sync::OnceLock::new();

fn zeros() -> Option<&'static [u8]> {
    *ZEROS.get_or_init(|| {
        // SAFETY: a fresh private anonymous read-only mapping; the pointer is checked for
        // MAP_FAILED, the length is the one mapped, and it is never unmapped, so the slice is
        // valid for 'static. Anonymous mappings read as zeros.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                PLACEHOLDER_MAX,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                None
            } else {
                Some(std::slice::from_raw_parts(p as *const u8, PLACEHOLDER_MAX))
            }
        }
    })
}

/// A placeholder `records` value of `len` bytes, to be filled from files when written. `None`
/// when the records must be copied instead (empty, too large, or no placeholder region).
pub fn placeholder(len: usize) -> Option<Bytes> {
    let zeros = zeros()?;
    (len > 0 && len <= PLACEHOLDER_MAX).then(|| Bytes::from_static(&zeros[..len]))
}

fn is_placeholder(src: &[u8]) -> bool {
    let Some(zeros) = zeros() else { return false };
    let start = zeros.as_ptr() as usize;
    let p = src.as_ptr() as usize;
    !src.is_empty() && p >= start && p + src.len() <= start + PLACEHOLDER_MAX
}

/// An encoding buffer that leaves gaps where placeholders are written.
#[derive(Debug, Default)]
pub struct GapBuf {
    /// Encoded bytes, without the gaps.
    buf: BytesMut,
    /// (position in `buf` where the gap starts, gap length), in encoding order.
    gaps: Vec<(usize, usize)>,
    /// Sum of gap lengths.
    gap_bytes: usize,
}

// SAFETY: every method delegates to `BytesMut`'s own `BufMut` implementation, which upholds the
// trait's contract; `put_slice` either delegates or writes nothing at all.
unsafe impl BufMut for GapBuf {
    fn remaining_mut(&self) -> usize {
        self.buf.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: forwarded unchanged; the caller's guarantee is about `chunk_mut`, which is
        // `self.buf`'s.
        unsafe { self.buf.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.buf.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if is_placeholder(src) {
            self.gaps.push((self.buf.len(), src.len()));
            self.gap_bytes += src.len();
        } else {
            self.buf.put_slice(src);
        }
    }
}

/// Offsets here are positions in the encoded bytes without gaps. The Fetch response encoder never
/// seeks back (only record-batch encoding does), so gaps cannot make them ambiguous.
impl ByteBufMut for GapBuf {
    fn offset(&self) -> usize {
        self.buf.len()
    }

    fn seek(&mut self, offset: usize) {
        ByteBufMut::seek(&mut self.buf, offset)
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        ByteBufMut::range(&mut self.buf, r)
    }
}

/// Encodes and writes a Fetch response frame, sending each placeholder's file slices (one
/// `Vec<FileSlice>` per placeholder, in encoding order) with `sendfile`.
pub async fn write_fetch(
    stream: &mut TcpStream,
    version: i16,
    correlation_id: i32,
    response: &FetchResponse,
    fills: &[Vec<FileSlice>],
    out: &mut GapBuf,
) -> std::io::Result<()> {
    out.buf.clear();
    out.gaps.clear();
    out.gap_bytes = 0;
    out.buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let encode_err =
        |e: anyhow::Error| std::io::Error::other(format!("encode Fetch v{version}: {e}"));
    header
        .encode(out, FetchResponse::header_version(version))
        .map_err(encode_err)?;
    response.encode(out, version).map_err(encode_err)?;
    debug_assert_eq!(
        ApiKey::Fetch.response_header_version(version),
        FetchResponse::header_version(version)
    );
    if out.gaps.len() != fills.len() {
        return Err(std::io::Error::other(format!(
            "fetch encoding produced {} gaps for {} partitions with data",
            out.gaps.len(),
            fills.len()
        )));
    }
    let len = (out.buf.len() - 4 + out.gap_bytes) as i32;
    out.buf[..4].copy_from_slice(&len.to_be_bytes());
    let mut written = 0usize;
    for ((at, gap_len), slices) in out.gaps.iter().zip(fills) {
        stream.write_all(&out.buf[written..*at]).await?;
        written = *at;
        let mut sent = 0usize;
        for s in slices {
            sendfile_all(stream, s).await?;
            sent += s.len;
        }
        if sent != *gap_len {
            return Err(std::io::Error::other(
                "file slices do not match their placeholder",
            ));
        }
    }
    stream.write_all(&out.buf[written..]).await?;
    Ok(())
}

/// Sends one file slice with `sendfile(2)`, waiting for the socket when its buffer is full.
async fn sendfile_all(stream: &TcpStream, slice: &FileSlice) -> std::io::Result<()> {
    let socket_fd = stream.as_raw_fd();
    let file_fd = slice.file.as_raw_fd();
    let mut offset = slice.position as libc::off_t;
    let end = slice.position as usize + slice.len;
    while (offset as usize) < end {
        stream.writable().await?;
        let remaining = end - offset as usize;
        let result = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the duration of the call (the socket is
            // borrowed, the file is kept alive by `slice.file`), and `offset` is a valid
            // `off_t` that the kernel updates in place.
            let n = unsafe { libc::sendfile(socket_fd, file_fd, &mut offset, remaining) };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match result {
            // The file shrank under us (truncation): the frame cannot be completed.
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "segment file shorter than the fetched slice",
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_gaps_and_other_bytes_are_copied() {
        let mut b = GapBuf::default();
        b.put_slice(b"abc");
        let p = placeholder(10).unwrap();
        b.put_slice(&p);
        b.put_slice(&[0u8; 4]);
        assert_eq!(&b.buf[..], b"abc\0\0\0\0");
        assert_eq!(b.gaps, vec![(3, 10)]);
        assert_eq!(b.gap_bytes, 10);
        assert!(placeholder(0).is_none());
        assert!(placeholder(PLACEHOLDER_MAX + 1).is_none());
    }
}
