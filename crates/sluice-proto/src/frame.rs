//! Request and response framing around the `kafka-protocol` messages.
//!
//! A Kafka frame is a 4-byte big-endian length followed by that many bytes. The connection layer
//! cuts frames; this module turns a frame into a header plus an undecoded body and encodes
//! responses with the right header version for the request that caused them.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

/// Why a frame could not be turned into a request. Each ends the connection, as in Kafka.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than a request header needs.
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    /// An API key this broker does not know.
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    /// The header or the body does not parse at the version it claims.
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        /// The request's API.
        api: ApiKey,
        /// The version the request claims.
        version: i16,
        /// What the decoder said.
        reason: String,
    },
    /// A response could not be encoded (a broker bug, reported rather than panicking).
    #[error("cannot encode {api:?} v{version} response: {reason}")]
    Encode {
        /// The response's API.
        api: ApiKey,
        /// The version being encoded.
        version: i16,
        /// What the encoder said.
        reason: String,
    },
}

/// The fixed prefix every request header shares, readable before knowing the header version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPrefix {
    /// Raw API key as sent.
    pub api_key: i16,
    /// API version as sent.
    pub api_version: i16,
    /// Correlation id to echo in the response.
    pub correlation_id: i32,
}

impl RequestPrefix {
    /// Reads the first 8 bytes of a request frame.
    pub fn peek(frame: &[u8]) -> Result<RequestPrefix, FrameError> {
        if frame.len() < 8 {
            return Err(FrameError::TooShort(frame.len()));
        }
        let mut b = &frame[..8];
        Ok(RequestPrefix {
            api_key: b.get_i16(),
            api_version: b.get_i16(),
            correlation_id: b.get_i32(),
        })
    }
}

/// Decodes the request header of a frame whose API key and version are known to be served, and
/// leaves `frame` positioned at the body.
pub fn decode_header(
    api: ApiKey,
    version: i16,
    frame: &mut Bytes,
) -> Result<RequestHeader, FrameError> {
    let header_version = api.request_header_version(version);
    RequestHeader::decode(frame, header_version).map_err(|e| FrameError::Malformed {
        api,
        version,
        reason: e.to_string(),
    })
}

/// Decodes a request body. Record sets stay as `Bytes` slices of `body`, never copied.
pub fn decode_body(api: ApiKey, version: i16, body: &mut Bytes) -> Result<RequestKind, FrameError> {
    RequestKind::decode(api, body, version).map_err(|e| FrameError::Malformed {
        api,
        version,
        reason: e.to_string(),
    })
}

/// Encodes a complete response frame (length prefix, header, body) into `out`.
pub fn encode_response(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
    out: &mut BytesMut,
) -> Result<(), FrameError> {
    let err = |e: kafka_protocol_error::Error| FrameError::Encode {
        api,
        version,
        reason: e.to_string(),
    };
    let start = out.len();
    out.put_i32(0);
    let header_version = api.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header.encode(out, header_version).map_err(err)?;
    response.encode(out, version).map_err(err)?;
    let len = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// `kafka-protocol` reports errors as `anyhow::Error`; naming it here keeps that type out of our
/// own signatures.
mod kafka_protocol_error {
    pub(crate) type Error = anyhow::Error;
}
