//! A small async Kafka protocol client: one connection, version negotiation through ApiVersions,
//! typed request/response calls. Used by the CLI and, later, by brokers talking to each other.
//! It speaks plain Kafka, so it works against any Kafka cluster too.

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response frame accepted (bounds memory on a misbehaving server).
const RESPONSE_MAX_BYTES: usize = 256 * 1024 * 1024;

/// A client-side failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect or the connection broke.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server does not support the API at a version this client can speak.
    #[error("the server does not support {api:?} at a version this client speaks")]
    Unsupported {
        /// The API.
        api: ApiKey,
    },
    /// A message could not be encoded or decoded.
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// One connection to a Kafka-protocol server.
#[derive(Debug)]
pub struct Client {
    /// The socket.
    stream: TcpStream,
    /// Next correlation id.
    correlation_id: i32,
    /// The server's advertised (min, max) per API key.
    versions: HashMap<i16, (i16, i16)>,
    /// Address connected to, for messages.
    addr: String,
    /// The `client.id` sent with every request.
    client_id: StrBytes,
}

impl Client {
    /// Connects to `addr` (`host:port`) and negotiates API versions.
    pub async fn connect(addr: &str) -> Result<Client, ClientError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot connect to {addr}: {e}")))?;
        stream.set_nodelay(true)?;
        let mut client = Client {
            stream,
            correlation_id: 0,
            versions: HashMap::new(),
            addr: addr.to_string(),
            client_id: StrBytes::from_static_str("sluice-cli"),
        };
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("sluice-cli"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let response = client.call(&request, 3).await?;
        if response.error_code != 0 {
            return Err(ClientError::Protocol(format!(
                "ApiVersions failed with error {}",
                response.error_code
            )));
        }
        for k in response.api_keys {
            client
                .versions
                .insert(k.api_key, (k.min_version, k.max_version));
        }
        Ok(client)
    }

    /// Sends `client_id` as the `client.id` of the requests that follow.
    pub fn set_client_id(&mut self, client_id: &'static str) {
        self.client_id = StrBytes::from_static_str(client_id);
    }

    /// The address this client is connected to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The highest version of `R` both sides speak, capped at `cap`.
    pub fn version<R: Request>(&self, cap: i16) -> Result<i16, ClientError> {
        let api = ApiKey::try_from(R::KEY).map_err(|_| ClientError::Protocol("bad key".into()))?;
        let (min, max) = self
            .versions
            .get(&R::KEY)
            .copied()
            .ok_or(ClientError::Unsupported { api })?;
        let version = max.min(R::VERSIONS.max).min(cap);
        if version < min.max(R::VERSIONS.min) {
            return Err(ClientError::Unsupported { api });
        }
        Ok(version)
    }

    /// Sends `request` at the highest common version (at most `cap`) and returns the response.
    pub async fn send<R: Request>(
        &mut self,
        request: &R,
        cap: i16,
    ) -> Result<R::Response, ClientError> {
        let version = self.version::<R>(cap)?;
        self.call(request, version).await
    }

    /// Sends `request` at exactly `version`.
    pub async fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        let api = ApiKey::try_from(R::KEY).map_err(|_| ClientError::Protocol("bad key".into()))?;
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        let proto = |e: anyhow::Error| ClientError::Protocol(e.to_string());
        header
            .encode(&mut buf, api.request_header_version(version))
            .map_err(proto)?;
        request.encode(&mut buf, version).map_err(proto)?;
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&buf).await?;
        let mut frame = self.read_frame().await?;
        let response_header =
            ResponseHeader::decode(&mut frame, R::Response::header_version(version))
                .map_err(proto)?;
        if response_header.correlation_id != self.correlation_id {
            return Err(ClientError::Protocol(format!(
                "correlation id mismatch: sent {}, got {}",
                self.correlation_id, response_header.correlation_id
            )));
        }
        R::Response::decode(&mut frame, version).map_err(proto)
    }

    async fn read_frame(&mut self) -> Result<Bytes, ClientError> {
        let len = self.stream.read_i32().await?;
        if len < 0 || len as usize > RESPONSE_MAX_BYTES {
            return Err(ClientError::Protocol(format!("response of {len} bytes")));
        }
        let mut buf = BytesMut::zeroed(len as usize);
        self.stream.read_exact(&mut buf).await?;
        let mut bytes = buf.freeze();
        if bytes.remaining() < 4 {
            return Err(ClientError::Protocol("short response".into()));
        }
        bytes = bytes.slice(..);
        Ok(bytes)
    }
}
