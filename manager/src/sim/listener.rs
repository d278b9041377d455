//! A TCP listener that counts the open connections of its node (what a manager holds open to
//! it), for `/_sim/stats`.
use super::SimNode;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

pub struct Counted {
    inner: TcpListener,
    node: Arc<SimNode>,
}

impl Counted {
    pub fn new(inner: TcpListener, node: Arc<SimNode>) -> Counted {
        Counted { inner, node }
    }
}

impl axum::serve::Listener for Counted {
    type Io = CountedIo;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (CountedIo, std::net::SocketAddr) {
        // TcpListener's own accept retries after errors (and sleeps on EMFILE).
        let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        // Nagle would hold small answers back for the peer's delayed ACK.
        if let Err(e) = io.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY on a simulated node's connection");
        }
        self.node.connections.fetch_add(1, Ordering::Relaxed);
        (CountedIo { io, node: self.node.clone() }, addr)
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.inner.local_addr()
    }
}

/// A connection; dropping it counts it closed.
pub struct CountedIo {
    io: TcpStream,
    node: Arc<SimNode>,
}

impl Drop for CountedIo {
    fn drop(&mut self) {
        self.node.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for CountedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
