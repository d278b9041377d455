//! Talking to one node over the Docker API: pooled keep-alive connections (one bounded pool
//! shared by every node, [`super::pool`]) for plain calls and streams, answered as reqwest
//! responses; a dedicated hyper connection with upgrades for hijacked attach/exec.
use super::pool::{BoxError, Pool, PoolError, PooledBody};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderMap, HeaderValue, CONNECTION, HOST, UPGRADE};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Timeout of the manager's own calls (validation, refresh, inspect).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, thiserror::Error)]
pub enum NodeError {
    /// The node could not be reached or the connection broke: counts against its health.
    #[error("Cannot connect to the Docker daemon at {addr}. Is the docker daemon running? ({detail})")]
    Connect { addr: String, detail: String },
    /// The node answered with an error status.
    #[error("{message}")]
    Status { status: u16, message: String },
    #[error("invalid answer from {addr}: {detail}")]
    Decode { addr: String, detail: String },
}

impl NodeError {
    pub fn is_connection(&self) -> bool {
        matches!(self, NodeError::Connect { .. })
    }
    pub fn status(&self) -> Option<u16> {
        match self {
            NodeError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What every node connection shares: the bounded connection pool and the TLS client
/// configuration.
pub struct Transport {
    pool: Arc<Pool>,
}

impl Transport {
    /// At most `max_open` connections to nodes at once (see [`super::pool`]).
    pub fn new(tls: Option<rustls::ClientConfig>, max_open: usize) -> Result<Self, NodeError> {
        Ok(Transport { pool: Arc::new(Pool::new(tls.map(Arc::new), max_open)) })
    }

    pub fn client(self: &Arc<Self>, addr: &str) -> NodeClient {
        NodeClient { t: self.clone(), addr: addr.to_string() }
    }

    /// Connections to nodes open now.
    pub fn open_connections(&self) -> usize {
        self.pool.open_connections()
    }
}

/// A handle on one node's API.
#[derive(Clone)]
pub struct NodeClient {
    t: Arc<Transport>,
    pub addr: String,
}

pub use super::pool::Io;

/// The node's answer to a hijack request.
pub enum Hijacked {
    /// 101: a raw stream to the node, with the node's response headers.
    Upgraded(TokioIo<hyper::upgrade::Upgraded>, HeaderMap),
    /// Any other answer, to be relayed as it is.
    Response(hyper::Response<hyper::body::Incoming>),
}

impl NodeClient {
    fn connect_err(&self, e: impl std::fmt::Display) -> NodeError {
        NodeError::Connect { addr: format!("tcp://{}", self.addr), detail: e.to_string() }
    }

    /// The answer could not be read as JSON.
    pub fn decode_err(&self, e: impl std::fmt::Display) -> NodeError {
        NodeError::Decode { addr: self.addr.clone(), detail: e.to_string() }
    }

    fn map_reqwest(&self, e: reqwest::Error) -> NodeError {
        if e.is_connect() || e.is_timeout() || e.is_request() {
            self.connect_err(e)
        } else {
            NodeError::Decode { addr: self.addr.clone(), detail: e.to_string() }
        }
    }

    fn map_body(&self, e: BoxError) -> NodeError {
        match e.downcast_ref::<PoolError>() {
            Some(PoolError::Timeout) => self.connect_err(e),
            _ => NodeError::Decode { addr: self.addr.clone(), detail: e.to_string() },
        }
    }

    /// Sends a request on a pooled connection; the answer's body is read by the caller.
    async fn exchange(
        &self,
        method: Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: reqwest::Body,
        timeout: Option<Duration>,
    ) -> Result<hyper::Response<PooledBody>, NodeError> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path_and_query)
            .body(body)
            .map_err(|e| NodeError::Decode { addr: self.addr.clone(), detail: e.to_string() })?;
        *req.headers_mut() = headers;
        self.t.pool.send(&self.addr, req, timeout).await.map_err(|e| match e {
            PoolError::Request(d) => NodeError::Decode { addr: self.addr.clone(), detail: d },
            e => self.connect_err(e),
        })
    }

    /// A small request whose whole answer is read (status checked) within the call timeout.
    async fn call(&self, method: Method, path: &str, headers: HeaderMap, body: reqwest::Body) -> Result<Bytes, NodeError> {
        let resp = self.exchange(method, path, headers, body, Some(CALL_TIMEOUT)).await?;
        let status = resp.status();
        let body = resp.into_body().bytes().await.map_err(|e| self.map_body(e))?;
        if !status.is_success() {
            return Err(NodeError::Status { status: status.as_u16(), message: error_message(&body) });
        }
        Ok(body)
    }

    /// Any request; the response is returned whatever its status (for proxying).
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: reqwest::Body,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, NodeError> {
        let resp = self.exchange(method, path_and_query, headers, body, timeout).await?;
        let (parts, body) = resp.into_parts();
        Ok(reqwest::Response::from(hyper::Response::from_parts(parts, reqwest::Body::wrap(body))))
    }

    /// `GET path` answered with a lasting stream (`/events`), on a connection of its own with
    /// small buffers (see [`super::stream`]).
    pub async fn stream(&self, path: &str) -> Result<super::stream::StreamBody, NodeError> {
        use super::stream::StreamError;
        super::stream::get(&self.t.pool, &self.addr, path).await.map_err(|e| match e {
            StreamError::Status { status, message } => NodeError::Status { status, message },
            e => self.connect_err(e),
        })
    }

    /// Turns a non-2xx response into [`NodeError::Status`] with the node's message.
    pub async fn check(&self, resp: reqwest::Response) -> Result<reqwest::Response, NodeError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.bytes().await.map_err(|e| self.map_reqwest(e))?;
        Err(NodeError::Status { status: status.as_u16(), message: error_message(&body) })
    }

    /// `GET path`'s body as it came, with the call timeout (for callers that decode it into
    /// typed records themselves).
    pub async fn get_bytes(&self, path: &str) -> Result<Bytes, NodeError> {
        self.call(Method::GET, path, HeaderMap::new(), reqwest::Body::from("")).await
    }

    /// `GET path` decoded as JSON, with the call timeout.
    pub async fn get_json(&self, path: &str) -> Result<Value, NodeError> {
        let body = self.get_bytes(path).await?;
        serde_json::from_slice(&body).map_err(|e| NodeError::Decode { addr: self.addr.clone(), detail: e.to_string() })
    }

    /// `POST path` with a JSON body; returns the decoded JSON answer (`null` when empty).
    pub async fn post_json(&self, path: &str, body: &Value, headers: HeaderMap) -> Result<Value, NodeError> {
        let mut h = headers;
        h.insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let data = serde_json::to_vec(body).unwrap_or_default();
        let body = self.call(Method::POST, path, h, reqwest::Body::from(data)).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|e| NodeError::Decode { addr: self.addr.clone(), detail: e.to_string() })
    }

    /// Opens a dedicated connection and sends a request asking to upgrade to a raw stream.
    pub async fn hijack(&self, method: Method, path_and_query: &str, mut headers: HeaderMap, body: Bytes) -> Result<Hijacked, NodeError> {
        let io = self.t.pool.dial(&self.addr).await.map_err(|e| self.connect_err(e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| self.connect_err(e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "hijacked node connection ended");
            }
        });
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(UPGRADE, HeaderValue::from_static("tcp"));
        if let Ok(h) = HeaderValue::from_str(&self.addr) {
            headers.insert(HOST, h);
        }
        let mut req = hyper::Request::builder().method(method).uri(path_and_query);
        if let Some(h) = req.headers_mut() {
            *h = headers;
        }
        let req = req.body(Full::new(body)).map_err(|e| NodeError::Decode { addr: self.addr.clone(), detail: e.to_string() })?;
        let resp = sender.send_request(req).await.map_err(|e| self.connect_err(e))?;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let headers = resp.headers().clone();
            let up = hyper::upgrade::on(resp).await.map_err(|e| self.connect_err(e))?;
            return Ok(Hijacked::Upgraded(TokioIo::new(up), headers));
        }
        Ok(Hijacked::Response(resp))
    }
}

/// `k=v&…` with form encoding: the one query encoder of the manager's calls to nodes.
pub fn encode_query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Docker's `{"message": …}`, or the body as text.
pub fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .filter(serde_json::Value::is_object)
        .and_then(|v| serde_json::from_value::<super::model::ErrorBody>(v).ok())
        .and_then(|e| e.message)
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn messages() {
        assert_eq!(error_message(br#"{"message":"No such container: x"}"#), "No such container: x");
        assert_eq!(error_message(b"404 page not found\n"), "404 page not found");
    }
}
