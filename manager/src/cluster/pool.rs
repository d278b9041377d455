//! The manager's HTTP/1.1 connections to its nodes: kept alive and reused per node, with one
//! bound on how many are open at once across all nodes (busy ones, idle ones, event streams).
//! When the bound is reached an idle connection of some node is closed to make room, so a
//! manager of N nodes needs N long-lived connections (the event streams) plus what is in
//! flight, whatever N is, and stays within its file-descriptor limit.
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Timeout of a TCP connect (and TLS handshake) to a node.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may wait for a free slot under the bound.
const SLOT_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per node (a node's event stream has its own connection; validation's
/// parallel inspects open more, closed once answered). Each open connection holds its buffers
/// (about 16 KiB), which counts at 10,000 nodes.
const IDLE_PER_NODE: usize = 2;
/// Idle connections older than this are not reused, and closed (of every node) when a
/// connection is put back after at least a quarter of this since the last sweep.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Every exchange with a node gets its answer's headers within this time, also the ones that
/// have no timeout of their own (relayed and streaming calls, whose bodies may then go on for
/// as long as they last: logs -f, events, pulls). A node that accepts a request and never
/// answers cannot hold a client and a connection forever. Long enough for a stop with a long
/// grace period or a large upload (load, import, build context) sent with the request.
pub const HEADERS_TIMEOUT: Duration = Duration::from_secs(600);

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("{0}")]
    Connect(String),
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("invalid request: {0}")]
    Request(String),
}

/// Something a connection can run over (TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct Idle {
    tx: SendRequest<reqwest::Body>,
    since: Instant,
}

pub struct Pool {
    tls: Option<Arc<rustls::ClientConfig>>,
    /// One permit per open connection.
    open: Arc<Semaphore>,
    max_open: usize,
    idle: Mutex<HashMap<String, Vec<Idle>>>,
    headers_timeout: Duration,
    idle_timeout: Duration,
    /// When expired idle connections were last closed.
    swept: Mutex<Instant>,
}

/// Open connections allowed by default: the soft file-descriptor limit less a reserve for the
/// manager's own clients and files (a sixteenth of the limit, at least 256), at least 64. With
/// the usual 1,024 that is 768; at 10,000 nodes under a limit of 20,000 it leaves 8,750
/// connections besides the event streams, so most nodes keep an idle connection for their next
/// create instead of each create opening (and another closing) one.
pub fn default_max_open() -> usize {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit(2) writes into a valid struct.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 { lim.rlim_cur as usize } else { 1024 };
    max_open_within(soft.min(1 << 20))
}

/// [`default_max_open`] for a soft limit of `soft` descriptors.
fn max_open_within(soft: usize) -> usize {
    soft.saturating_sub((soft / 16).max(256)).max(64)
}

impl Pool {
    pub fn new(tls: Option<Arc<rustls::ClientConfig>>, max_open: usize) -> Pool {
        Pool {
            tls,
            open: Arc::new(Semaphore::new(max_open)),
            max_open,
            idle: Mutex::new(HashMap::new()),
            headers_timeout: HEADERS_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            swept: Mutex::new(Instant::now()),
        }
    }

    /// The same pool with another idle timeout.
    pub fn with_idle_timeout(mut self, t: Duration) -> Pool {
        self.idle_timeout = t;
        self
    }

    /// The same pool with another bound on the time to an answer's headers.
    pub fn with_headers_timeout(mut self, t: Duration) -> Pool {
        self.headers_timeout = t;
        self
    }

    /// The bound on the time to an answer's headers.
    pub fn headers_timeout(&self) -> Duration {
        self.headers_timeout
    }

    /// Connections open now (busy and idle).
    pub fn open_connections(&self) -> usize {
        self.max_open - self.open.available_permits()
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Idle>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A TCP (and TLS) connection to `addr`, not counted against the bound (hijacked streams).
    pub async fn dial(&self, addr: &str) -> Result<Box<dyn Io>, PoolError> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| PoolError::Connect("connection timed out".into()))?
            .map_err(|e| PoolError::Connect(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        Ok(match &self.tls {
            Some(cfg) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).trim_matches(['[', ']']);
                let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| PoolError::Connect(e.to_string()))?;
                let tls = tokio::time::timeout(CONNECT_TIMEOUT, tokio_rustls::TlsConnector::from(cfg.clone()).connect(name, tcp))
                    .await
                    .map_err(|_| PoolError::Connect("TLS handshake timed out".into()))?
                    .map_err(|e| PoolError::Connect(e.to_string()))?;
                Box::new(tls)
            }
            None => Box::new(tcp),
        })
    }

    /// Closes one idle connection (of any node); false when there is none.
    fn evict_one(&self) -> bool {
        let victim = {
            let mut idle = self.idle();
            let key = idle.iter().find(|(_, v)| !v.is_empty()).map(|(k, _)| k.clone());
            key.and_then(|k| {
                let v = idle.get_mut(&k)?;
                let c = v.pop();
                if v.is_empty() {
                    idle.remove(&k);
                }
                c
            })
        };
        // Dropping the last sender ends the idle connection's task, which frees its permit.
        victim.is_some()
    }

    /// A slot for one more connection; while none is free, closes idle ones (of any node) to
    /// make room, so that waiters do not starve each other.
    pub(crate) async fn slot(&self) -> Result<OwnedSemaphorePermit, PoolError> {
        let deadline = tokio::time::Instant::now() + SLOT_TIMEOUT;
        loop {
            if let Ok(p) = self.open.clone().try_acquire_owned() {
                return Ok(p);
            }
            let wait = if self.evict_one() { Duration::from_millis(20) } else { Duration::from_millis(200) };
            match tokio::time::timeout(wait, self.open.clone().acquire_owned()).await {
                Ok(p) => return p.map_err(|e| PoolError::Connect(e.to_string())),
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(PoolError::Connect(format!("all {} node connections are busy", self.max_open)))
                }
                Err(_) => {}
            }
        }
    }

    async fn connect(&self, addr: &str) -> Result<SendRequest<reqwest::Body>, PoolError> {
        let permit = self.slot().await?;
        let io = self.dial(addr).await?;
        let (tx, conn) = http1::handshake(TokioIo::new(io)).await?;
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "node connection ended");
            }
        });
        Ok(tx)
    }

    /// A reused idle connection to `addr`, ready for a request.
    async fn reuse(&self, addr: &str) -> Option<SendRequest<reqwest::Body>> {
        loop {
            let mut c = {
                let mut idle = self.idle();
                let v = idle.get_mut(addr)?;
                let c = v.pop();
                if v.is_empty() {
                    idle.remove(addr);
                }
                c?
            };
            if c.tx.is_closed() || c.since.elapsed() > self.idle_timeout {
                continue;
            }
            if c.tx.is_ready() {
                return Some(c.tx);
            }
            // The previous answer has been read but the connection may not have noticed yet.
            if let Ok(Ok(())) = tokio::time::timeout(Duration::from_millis(100), c.tx.ready()).await {
                return Some(c.tx);
            }
        }
    }

    fn put_back(&self, addr: String, tx: SendRequest<reqwest::Body>) {
        if tx.is_closed() {
            return;
        }
        let mut idle = self.idle();
        self.sweep(&mut idle);
        // Near the bound a second idle connection per node would only push another node's out.
        let keep = if self.open_connections() * 8 < self.max_open * 7 { IDLE_PER_NODE } else { 1 };
        let v = idle.entry(addr).or_default();
        if v.len() < keep {
            v.push(Idle { tx, since: Instant::now() });
        }
    }

    /// Closes the idle connections (of every node) past the idle timeout, at most once per
    /// quarter of it: a node called once keeps no connection open for good.
    fn sweep(&self, idle: &mut HashMap<String, Vec<Idle>>) {
        {
            let mut swept = self.swept.lock().unwrap_or_else(|p| p.into_inner());
            if swept.elapsed() < self.idle_timeout / 4 {
                return;
            }
            *swept = Instant::now();
        }
        // Dropping the last sender ends an idle connection's task, which frees its permit.
        idle.retain(|_, v| {
            v.retain(|c| !c.tx.is_closed() && c.since.elapsed() <= self.idle_timeout);
            !v.is_empty()
        });
    }

    /// Sends `req` (origin-form URI) to `addr` on a pooled connection. `timeout` bounds the whole
    /// exchange, reading the answer included; without one, the answer's headers still have to
    /// come within the pool's headers timeout.
    pub async fn send(
        self: &Arc<Self>,
        addr: &str,
        mut req: hyper::Request<reqwest::Body>,
        timeout: Option<Duration>,
    ) -> Result<hyper::Response<PooledBody>, PoolError> {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        if !req.headers().contains_key(hyper::header::HOST) {
            let host = hyper::header::HeaderValue::from_str(addr).map_err(|e| PoolError::Request(e.to_string()))?;
            req.headers_mut().insert(hyper::header::HOST, host);
        }
        let exchange = async {
            if let Some(mut tx) = self.reuse(addr).await {
                match tx.try_send_request(req).await {
                    Ok(resp) => return Ok((tx, resp)),
                    // Never sent (the node closed the idle connection): once more, on a new one.
                    Err(mut e) => match e.take_message() {
                        Some(again) => req = again,
                        None => return Err(PoolError::Http(e.into_error())),
                    },
                }
            }
            let mut tx = self.connect(addr).await?;
            let resp = tx.send_request(req).await?;
            Ok((tx, resp))
        };
        let headers_by = tokio::time::Instant::now() + self.headers_timeout;
        let (tx, resp) = tokio::time::timeout_at(deadline.map_or(headers_by, |d| d.min(headers_by)), exchange)
            .await
            .map_err(|_| PoolError::Timeout)??;
        let (parts, body) = resp.into_parts();
        let back = Some((self.clone(), addr.to_string(), tx));
        let deadline = deadline.map(|d| Box::pin(tokio::time::sleep_until(d)));
        Ok(hyper::Response::from_parts(parts, PooledBody { inner: body, back, deadline }))
    }
}

/// A node's answer; once read to the end its connection goes back to the pool.
pub struct PooledBody {
    inner: Incoming,
    back: Option<(Arc<Pool>, String, SendRequest<reqwest::Body>)>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((pool, addr, tx)) = self.back.take() {
            pool.put_back(addr, tx);
        }
    }

    /// The whole body.
    pub async fn bytes(self) -> Result<Bytes, BoxError> {
        Ok(self.collect().await?.to_bytes())
    }
}

impl hyper::body::Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(d) = &mut this.deadline {
            if d.as_mut().poll(cx).is_ready() {
                this.back = None;
                return Poll::Ready(Some(Err(Box::new(PoolError::Timeout))));
            }
        }
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.release(),
            Poll::Ready(Some(Err(_))) => this.back = None,
            _ => {}
        }
        r.map_err(|e| Box::new(e) as BoxError)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // An answer with nothing left to read (204, or fully read) keeps its connection.
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn server(n: usize) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let acc = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (s, _) = l.accept().await.unwrap();
                acc.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |_req| async move {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(Bytes::from(vec![b'x'; n]))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(s), svc).await;
                });
            }
        });
        (addr, accepted)
    }

    fn get() -> hyper::Request<reqwest::Body> {
        hyper::Request::get("/x").body(reqwest::Body::from("")).unwrap()
    }

    #[test]
    fn the_bound_leaves_a_reserve_of_descriptors() {
        assert_eq!(max_open_within(1024), 768);
        assert_eq!(max_open_within(20_000), 18_750);
        assert_eq!(max_open_within(100), 64);
    }

    #[tokio::test]
    async fn reuses_a_connection_once_the_answer_is_read() {
        let (addr, accepted) = server(10).await;
        let pool = Arc::new(Pool::new(None, 16));
        for _ in 0..5 {
            let r = pool.send(&addr, get(), Some(Duration::from_secs(5))).await.unwrap();
            assert_eq!(r.into_body().bytes().await.unwrap().len(), 10);
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(pool.open_connections(), 1);
    }

    #[tokio::test]
    async fn a_node_that_never_answers_times_out_even_without_a_call_timeout() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        // Accepts and reads, never answers.
        let hold = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(s);
        });
        let pool = Arc::new(Pool::new(None, 4).with_headers_timeout(Duration::from_millis(300)));
        let t0 = Instant::now();
        let r = pool.send(&addr, get(), None).await;
        assert!(matches!(r, Err(PoolError::Timeout)), "{:?}", r.map(|_| ()));
        assert!(t0.elapsed() < Duration::from_secs(5));
        hold.abort();
    }

    /// Two answers to one node read at the same time, then both connections put back: how many
    /// stay open.
    async fn kept_after_two_at_once(max_open: usize) -> usize {
        let (addr, accepted) = server(3).await;
        let pool = Arc::new(Pool::new(None, max_open));
        let a = pool.send(&addr, get(), Some(Duration::from_secs(5))).await.unwrap();
        let b = pool.send(&addr, get(), Some(Duration::from_secs(5))).await.unwrap();
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
        a.into_body().bytes().await.unwrap();
        b.into_body().bytes().await.unwrap();
        for _ in 0..100 {
            if pool.open_connections() <= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        pool.open_connections()
    }

    #[tokio::test]
    async fn a_node_keeps_two_idle_connections_unless_near_the_bound() {
        assert_eq!(kept_after_two_at_once(16).await, 2, "far from the bound both are kept");
        assert_eq!(kept_after_two_at_once(2).await, 1, "at the bound the second is closed");
    }

    #[tokio::test]
    async fn idle_connections_past_the_timeout_are_closed() {
        let (a, _) = server(3).await;
        let (b, _) = server(3).await;
        let pool = Arc::new(Pool::new(None, 16).with_idle_timeout(Duration::from_millis(200)));
        pool.send(&a, get(), Some(Duration::from_secs(5))).await.unwrap().into_body().bytes().await.unwrap();
        assert_eq!(pool.open_connections(), 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Putting back b's connection sweeps a's, which nothing reused.
        pool.send(&b, get(), Some(Duration::from_secs(5))).await.unwrap().into_body().bytes().await.unwrap();
        for _ in 0..100 {
            if pool.open_connections() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(pool.open_connections(), 1, "only b's connection is left open");
    }

    #[tokio::test]
    async fn stays_within_the_bound_across_nodes() {
        let pool = Arc::new(Pool::new(None, 2));
        let mut servers = vec![];
        for _ in 0..5 {
            servers.push(server(3).await);
        }
        for (addr, _) in &servers {
            let r = pool.send(addr, get(), Some(Duration::from_secs(5))).await.unwrap();
            r.into_body().bytes().await.unwrap();
            assert!(pool.open_connections() <= 2);
        }
        // Two unread answers hold both slots; a third request waits for one to be released.
        let a = pool.send(&servers[0].0, get(), None).await.unwrap();
        let b = pool.send(&servers[1].0, get(), None).await.unwrap();
        let p = pool.clone();
        let addr = servers[2].0.clone();
        let third = tokio::spawn(async move { p.send(&addr, get(), None).await.unwrap().into_body().bytes().await.unwrap() });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!third.is_finished());
        drop(a);
        assert_eq!(third.await.unwrap().len(), 3);
        drop(b);
    }
}
