//! Relaying a request to one node: bodies and answers stream through (logs -f, export, stats),
//! and attach/exec start are hijacked: after the node's `101 UPGRADED` the manager answers the
//! client with its own 101 and splices the two raw streams, honouring half-close.
use super::ApiError;
use crate::cluster::client::Hijacked;
use crate::cluster::{Cluster, Engine, NodeClient, NodeError};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Request bodies up to this size are buffered (sent with a length); larger ones stream.
const BUFFER_LIMIT: u64 = 8 << 20;

fn hop_by_hop(h: &HeaderName) -> bool {
    matches!(
        h.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade" | "te" | "trailer" | "host" | "content-length"
    )
}

/// The client's headers minus hop-by-hop ones.
pub fn forward_headers(h: &HeaderMap) -> HeaderMap {
    h.iter().filter(|(k, _)| !hop_by_hop(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The node's response headers we pass back.
fn back_headers(h: &HeaderMap) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
    h.iter().filter(|(k, _)| !hop_by_hop(k) || k.as_str() == "content-length")
}

/// Reads a whole (small) body.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| ApiError::bad_request(format!("reading request body: {e}")))
}

/// Chunks of a fanned-out body waiting for the slowest node, per node.
const FAN_OUT_DEPTH: usize = 8;

/// One client body sent to `n` nodes at once (`load`, `import` on every node) without holding
/// it: each chunk goes to every node still reading, and the client is read only as fast as the
/// slowest of them takes it, so the manager holds at most a few chunks per node, whatever the
/// size of the upload. A node that fails drops out; the others go on.
pub fn fan_out(body: Body, n: usize) -> Vec<reqwest::Body> {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(FAN_OUT_DEPTH)).unzip();
    if n > 0 {
        tokio::spawn(async move {
            let mut txs = txs;
            let mut s = body.into_data_stream();
            while let Some(chunk) = s.next().await {
                let item = chunk.map_err(|e| e.to_string());
                let mut alive = Vec::with_capacity(txs.len());
                for tx in txs {
                    let sent = tx.send(item.clone().map_err(std::io::Error::other)).await;
                    if sent.is_ok() {
                        alive.push(tx);
                    }
                }
                txs = alive;
                if txs.is_empty() || item.is_err() {
                    break;
                }
            }
        });
    }
    rxs.into_iter()
        .map(|rx| {
            let s = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
            reqwest::Body::wrap_stream(s)
        })
        .collect()
}

/// Sends the request to `engine` at `path_and_query` and streams the answer back.
pub async fn forward(cl: &Cluster, engine: &Engine, req: Request, path_and_query: &str) -> Result<Response, ApiError> {
    relay(&engine.client, req, path_and_query, |r| engine.note(cl, r)).await
}

/// Sends the request through `client` and streams the answer back; `note` sees the outcome.
async fn relay(
    client: &NodeClient,
    req: Request,
    path_and_query: &str,
    note: impl FnOnce(&Result<reqwest::Response, NodeError>),
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let headers = forward_headers(&parts.headers);
    let len = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let body = match len {
        Some(n) if n <= BUFFER_LIMIT => reqwest::Body::from(read_body(body, n as usize + 1).await?),
        _ => reqwest::Body::wrap_stream(body.into_data_stream()),
    };
    let r = client.send(parts.method, path_and_query, headers, body, None).await;
    note(&r);
    let resp = r?;
    let mut out = Response::builder().status(resp.status().as_u16());
    if let Some(h) = out.headers_mut() {
        for (k, v) in back_headers(resp.headers()) {
            h.append(k.clone(), v.clone());
        }
    }
    let stream = resp.bytes_stream().map(|r| r.map_err(std::io::Error::other));
    out.body(Body::from_stream(stream)).map_err(|e| ApiError::internal(e.to_string()))
}

/// Like [`forward`] but reads the whole answer (small JSON answers the manager post-processes).
pub async fn forward_buffered(
    cl: &Cluster,
    engine: &Engine,
    req: Request,
    path_and_query: &str,
) -> Result<(StatusCode, HeaderMap, Bytes), ApiError> {
    let resp = forward(cl, engine, req, path_and_query).await?;
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20).await.map_err(|e| ApiError::internal(format!("reading node answer: {e}")))?;
    Ok((parts.status, parts.headers, bytes))
}

/// Rebuilds a response from buffered parts.
pub fn respond(status: StatusCode, headers: &HeaderMap, body: Bytes) -> Response {
    let mut r = Response::new(Body::from(body.clone()));
    *r.status_mut() = status;
    for (k, v) in headers.iter().filter(|(k, _)| k.as_str() != "content-length") {
        r.headers_mut().append(k.clone(), v.clone());
    }
    r
}

fn wants_upgrade(req: &Request) -> bool {
    req.headers().get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("tcp"))
}

/// Attach and exec start: a raw stream between the client and the node.
pub async fn hijack(cl: &Cluster, engine: &Engine, req: Request, path_and_query: &str) -> Result<Response, ApiError> {
    hijack_via(&engine.client, req, path_and_query, |r| engine.note(cl, r)).await
}

/// Header set on a request a replica forwards, naming the replica: a manager that receives one
/// while it is not primary answers 503 instead of forwarding it again (no loops between
/// managers with different views of the election).
pub const FORWARDED_BY: &str = "x-swarm-forwarded-by";

/// A replica's forward of any request to the primary manager at `addr`, with the manager's own
/// TLS: upgrades (attach, exec) are hijacked, everything else streams both ways.
pub async fn to_primary(cl: &Cluster, addr: &str, mut req: Request, me: &str) -> Result<Response, ApiError> {
    let client = cl.manager_client(addr);
    let pq = req.uri().path_and_query().map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
    if let Ok(v) = HeaderValue::from_str(me) {
        req.headers_mut().insert(FORWARDED_BY, v);
    }
    fn unreachable<T>(addr: &str, r: &Result<T, NodeError>) {
        if let Err(e) = r {
            tracing::warn!(primary = %addr, error = %e, "cannot reach the primary manager");
        }
    }
    if wants_upgrade(&req) {
        hijack_via(&client, req, &pq, |r| unreachable(addr, r)).await
    } else {
        relay(&client, req, &pq, |r| unreachable(addr, r)).await
    }
}

async fn hijack_via(
    client: &NodeClient,
    mut req: Request,
    path_and_query: &str,
    note: impl FnOnce(&Result<Hijacked, NodeError>),
) -> Result<Response, ApiError> {
    let wants = wants_upgrade(&req);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (parts, body) = req.into_parts();
    let body = read_body(body, 1 << 20).await?;
    let r = client.hijack(parts.method, path_and_query, forward_headers(&parts.headers), body).await;
    note(&r);
    match r? {
        Hijacked::Upgraded(node_io, headers) if wants => {
            tokio::spawn(async move {
                match on_upgrade.await {
                    Ok(client) => splice(hyper_util::rt::TokioIo::new(client), node_io).await,
                    Err(e) => tracing::debug!(error = %e, "client upgrade failed"),
                }
            });
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let h = r.headers_mut();
            h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
            let ct = headers.get(header::CONTENT_TYPE).cloned().unwrap_or(HeaderValue::from_static("application/vnd.docker.raw-stream"));
            h.insert(header::CONTENT_TYPE, ct);
            Ok(r)
        }
        Hijacked::Upgraded(node_io, headers) => {
            // The client did not ask for an upgrade: relay the node's output as a body.
            let mut r = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(node_io)));
            if let Some(ct) = headers.get(header::CONTENT_TYPE) {
                r.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
            }
            Ok(r)
        }
        Hijacked::Response(resp) => {
            let (p, b) = resp.into_parts();
            let mut r = Response::new(Body::new(b));
            *r.status_mut() = p.status;
            for (k, v) in back_headers(&p.headers) {
                r.headers_mut().append(k.clone(), v.clone());
            }
            Ok(r)
        }
    }
}

/// Pumps both ways. Client EOF half-closes the node side (stdin done, output continues); the
/// session ends when the node's side ends.
pub async fn splice<C, N>(client: C, node: N)
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
    N: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut nr, mut nw) = tokio::io::split(node);
    let up = async {
        let _ = tokio::io::copy(&mut cr, &mut nw).await;
        let _ = nw.shutdown().await;
        std::future::pending::<()>().await
    };
    let down = async {
        let _ = tokio::io::copy(&mut nr, &mut cw).await;
        let _ = cw.shutdown().await;
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn splice_half_closes_and_ends_with_the_node() {
        let (client_outer, client_inner) = tokio::io::duplex(1024);
        let (node_inner, node_outer) = tokio::io::duplex(1024);
        let task = tokio::spawn(splice(client_inner, node_inner));
        let (mut c_r, mut c_w) = tokio::io::split(client_outer);
        let (mut n_r, mut n_w) = tokio::io::split(node_outer);
        c_w.write_all(b"stdin").await.unwrap();
        c_w.shutdown().await.unwrap();
        let mut got = vec![];
        n_r.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"stdin", "the node sees the client's EOF");
        n_w.write_all(b"output after stdin closed").await.unwrap();
        n_w.shutdown().await.unwrap();
        let mut out = vec![];
        c_r.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"output after stdin closed");
        task.await.unwrap();
    }

    #[test]
    fn drops_hop_by_hop_headers() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("Upgrade"));
        h.insert("x-registry-auth", HeaderValue::from_static("abc"));
        h.insert("content-length", HeaderValue::from_static("3"));
        let f = forward_headers(&h);
        assert_eq!(f.len(), 1);
        assert!(f.contains_key("x-registry-auth"));
    }
}
