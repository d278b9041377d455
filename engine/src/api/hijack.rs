//! Docker's connection hijack: `101 UPGRADED` with `Upgrade: tcp`, then a raw bidirectional
//! stream. The handler gets the upgraded connection in a task and pumps bytes.
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

pub type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

/// The socket of a connection on a unix listener (the engine's `ConnectInfo` there).
#[derive(Clone, Copy, Debug)]
pub struct UnixConn(pub RawFd);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::UnixListener>> for UnixConn {
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::UnixListener>) -> Self {
        UnixConn(stream.io().as_raw_fd())
    }
}

/// How long a hijacked stream waits for the client to read the 101 before output goes out.
const HEADERS_READ_WAIT: Duration = Duration::from_millis(500);

/// Waits (up to [`HEADERS_READ_WAIT`]) until the client has read everything sent on `fd` so
/// far: the 101. Clients that parse the headers through a buffered reader and then read the raw
/// socket (docker-py) would otherwise lose output that arrived together with the headers.
/// `SIOCOUTQ` on a unix socket counts what the peer has not read yet.
async fn headers_read_by_client(fd: RawFd) {
    let until = tokio::time::Instant::now() + HEADERS_READ_WAIT;
    loop {
        let mut unread: libc::c_int = 0;
        // SAFETY: SIOCOUTQ writes one int; `fd` is the connection's socket, kept open by the
        // upgraded stream this runs before.
        let r = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut unread) };
        if r != 0 || unread == 0 || tokio::time::Instant::now() >= until {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// True when the client asked to upgrade (the docker CLI always does for attach/exec start).
pub fn wants_upgrade(req: &Request) -> bool {
    req.headers().get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("tcp"))
}

/// Answers 101 and runs `f` with the upgraded stream once hyper hands it over.
pub fn upgrade<F, Fut>(req: Request, f: F) -> Response
where
    F: FnOnce(Upgraded) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let unix = req.extensions().get::<axum::extract::ConnectInfo<UnixConn>>().map(|c| c.0 .0);
    let on = hyper::upgrade::on(req);
    // Owned by its hijacked stream: it serves the upgraded connection and ends with it.
    tokio::spawn(async move {
        match on.await {
            Ok(up) => {
                if let Some(fd) = unix {
                    headers_read_by_client(fd).await;
                }
                f(TokioIo::new(up)).await
            }
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    });
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/vnd.docker.raw-stream"));
    r
}
