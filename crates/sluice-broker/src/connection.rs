//! One client connection's bytes: reading length-prefixed frames and writing responses.
//!
//! Handlers never see the socket; they get a decoded request and return a response value.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a connection is closed by the broker.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The peer sent a length prefix outside `0..=socket.request.max.bytes`.
    #[error("request of {size} bytes is larger than socket.request.max.bytes ({max})")]
    FrameTooLarge {
        /// Size the peer announced.
        size: i64,
        /// The configured limit.
        max: usize,
    },
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a request")]
    TruncatedFrame,
    /// Socket error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Initial read-buffer capacity; grows up to the largest frame seen, bounded by
/// `socket.request.max.bytes`.
const READ_BUFFER_INITIAL: usize = 64 * 1024;

/// A client connection.
#[derive(Debug)]
pub struct Connection {
    /// The socket, written to directly: each response is one `write_all`.
    stream: TcpStream,
    /// Bytes read but not yet cut into frames.
    buffer: BytesMut,
    /// Largest frame accepted (`socket.request.max.bytes`).
    frame_max: usize,
}

impl Connection {
    /// Wraps an accepted socket.
    pub fn new(stream: TcpStream, frame_max: usize) -> Connection {
        let _ = stream.set_nodelay(true);
        Connection {
            stream,
            buffer: BytesMut::with_capacity(READ_BUFFER_INITIAL),
            frame_max,
        }
    }

    /// The underlying socket, for zero-copy writes.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Reads the next whole request frame (without its length prefix). `Ok(None)` means the peer
    /// closed the connection cleanly between requests.
    pub async fn read_frame(&mut self) -> Result<Option<Bytes>, ConnectionError> {
        loop {
            if let Some(frame) = self.parse_frame()? {
                return Ok(Some(frame));
            }
            if self.stream.read_buf(&mut self.buffer).await? == 0 {
                return if self.buffer.is_empty() {
                    Ok(None)
                } else {
                    Err(ConnectionError::TruncatedFrame)
                };
            }
        }
    }

    /// Cuts one frame off the buffer if it is all there; checks the length before reserving room
    /// for it, so an absurd prefix never allocates.
    fn parse_frame(&mut self) -> Result<Option<Bytes>, ConnectionError> {
        if self.buffer.len() < 4 {
            return Ok(None);
        }
        let size = i32::from_be_bytes([
            self.buffer[0],
            self.buffer[1],
            self.buffer[2],
            self.buffer[3],
        ]);
        if size < 0 || size as usize > self.frame_max {
            return Err(ConnectionError::FrameTooLarge {
                size: i64::from(size),
                max: self.frame_max,
            });
        }
        let size = size as usize;
        if self.buffer.len() < 4 + size {
            self.buffer.reserve(4 + size - self.buffer.len());
            return Ok(None);
        }
        self.buffer.advance(4);
        Ok(Some(self.buffer.split_to(size).freeze()))
    }

    /// Writes a complete response frame.
    pub async fn write_all(&mut self, bytes: &[u8]) -> Result<(), ConnectionError> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }
}
