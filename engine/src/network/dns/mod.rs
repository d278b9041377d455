//! The embedded resolver, as dockerd's: inside every container netns that is attached to a
//! user-defined network, a UDP socket and a TCP listener on `127.0.0.11:53` (created in that netns
//! by [`super::netns::resolver_sockets`]) served by a task of the engine. Names of containers on
//! the container's networks (name, aliases, short id, `name.network`) are answered from the
//! network service's live state, so answers follow connects, disconnects and restarts at once;
//! anything else is forwarded, from the host's netns, to the upstream servers (`--dns`, else the
//! host's resolv.conf, loopback servers included).
//!
//! A socket keeps its netns alive: a [`Resolver`] aborts its task (closing the sockets) when
//! dropped, and the service drops it before it removes the netns.
pub mod wire;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;

/// Where the resolver listens inside a container.
pub const ADDR: &str = "127.0.0.11:53";
/// TTL of answers about containers (dockerd uses 600).
const TTL: u32 = 600;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// Queries one resolver answers at a time; more get SERVFAIL at once (each forward holds a
/// socket and a 64 KiB buffer for up to [`UPSTREAM_TIMEOUT`]).
const MAX_IN_FLIGHT: usize = 128;

/// What the resolver asks the network service.
pub trait Names: Send + Sync + 'static {
    /// Addresses of `name` as container `cid` sees it; `None` when it is no container's name
    /// (then the query goes upstream).
    fn lookup(&self, cid: &str, name: &str) -> Option<Vec<Ipv4Addr>>;
    /// The name of the container with address `ip` on one of `cid`'s networks.
    fn reverse(&self, cid: &str, ip: Ipv4Addr) -> Option<String>;
    /// Upstream servers for `cid`.
    fn upstream(&self, cid: &str) -> Vec<SocketAddr>;
}

/// A running resolver; dropping it stops it and closes its sockets.
pub struct Resolver(tokio::task::AbortHandle);

impl Drop for Resolver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts serving on the given (non-blocking) sockets, as a task of `tasks` (it ends when the
/// [`Resolver`] is dropped or the service shuts down).
pub fn spawn<N: Names>(
    tasks: &crate::tasks::Tasks,
    names: Arc<N>,
    cid: String,
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
) -> std::io::Result<Resolver> {
    let udp = Arc::new(UdpSocket::from_std(udp)?);
    let tcp = TcpListener::from_std(tcp)?;
    let task = tasks.spawn_until_shutdown(async move {
        // Children (forwards, TCP connections) die with this task: the JoinSet is owned by it and
        // aborts them when dropped, i.e. when the resolver is aborted or the service shuts down.
        let mut tasks = JoinSet::new();
        let mut buf = vec![0u8; 4096];
        loop {
            tokio::select! {
                r = udp.recv_from(&mut buf) => {
                    let Ok((n, peer)) = r else { continue };
                    let req = buf[..n].to_vec();
                    if tasks.len() >= MAX_IN_FLIGHT {
                        if let Some(q) = wire::parse_query(&req) {
                            let _ = udp.try_send_to(&wire::error(&req, &q, wire::RCODE_SERVFAIL), peer);
                        }
                        continue;
                    }
                    let (names, cid, udp) = (names.clone(), cid.clone(), udp.clone());
                    tasks.spawn(async move {
                        if let Some(resp) = answer(&*names, &cid, &req, false).await {
                            let _ = udp.send_to(&resp, peer).await;
                        }
                    });
                }
                r = tcp.accept() => {
                    // A connection over the cap is closed at once.
                    if let (Ok((stream, _)), true) = (r, tasks.len() < MAX_IN_FLIGHT) {
                        let (names, cid) = (names.clone(), cid.clone());
                        tasks.spawn(async move { serve_tcp(&*names, &cid, stream).await });
                    }
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
    });
    Ok(Resolver(task.abort_handle()))
}

async fn serve_tcp<N: Names>(names: &N, cid: &str, mut s: TcpStream) {
    loop {
        let work = async {
            let len = s.read_u16().await.ok()? as usize;
            let mut req = vec![0u8; len];
            s.read_exact(&mut req).await.ok()?;
            let resp = answer(names, cid, &req, true).await?;
            s.write_u16(resp.len() as u16).await.ok()?;
            s.write_all(&resp).await.ok()
        };
        match tokio::time::timeout(Duration::from_secs(10), work).await {
            Ok(Some(())) => {}
            _ => return,
        }
    }
}

/// The response to one request: from the containers' names, else from upstream.
async fn answer<N: Names>(names: &N, cid: &str, req: &[u8], tcp: bool) -> Option<Vec<u8>> {
    let q = wire::parse_query(req)?;
    if q.qclass == wire::CLASS_IN {
        match q.qtype {
            wire::TYPE_A | wire::TYPE_AAAA => {
                if let Some(mut ips) = names.lookup(cid, &q.name) {
                    if q.qtype == wire::TYPE_A {
                        round_robin(&mut ips);
                    } else {
                        ips.clear();
                    }
                    return Some(wire::a_answer(req, &q, &ips, TTL));
                }
            }
            wire::TYPE_PTR => {
                if let Some(target) = wire::ptr_address(&q.name).and_then(|ip| names.reverse(cid, ip)) {
                    return Some(wire::ptr_answer(req, &q, &target, TTL));
                }
            }
            _ => {}
        }
    }
    for server in names.upstream(cid) {
        let r = if tcp { forward_tcp(server, req).await } else { forward_udp(server, req).await };
        match r {
            Ok(resp) => return Some(resp),
            Err(e) => tracing::debug!(%server, name = %q.name, error = %e, "upstream DNS server failed"),
        }
    }
    Some(wire::error(req, &q, wire::RCODE_SERVFAIL))
}

/// Several addresses for one name (a shared alias, here and on other nodes): each answer starts
/// one further, so clients that take the first spread over all (dockerd shuffles them).
fn round_robin(ips: &mut [Ipv4Addr]) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    if ips.len() > 1 {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ips.rotate_left(n % ips.len());
    }
}

async fn forward_udp(server: SocketAddr, req: &[u8]) -> std::io::Result<Vec<u8>> {
    let bind: SocketAddr = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().map_err(std::io::Error::other)?;
    let s = UdpSocket::bind(bind).await?;
    s.connect(server).await?;
    s.send(req).await?;
    let mut buf = vec![0u8; 65535];
    let id = &req[..2];
    loop {
        let n = tokio::time::timeout(UPSTREAM_TIMEOUT, s.recv(&mut buf)).await.map_err(|_| std::io::ErrorKind::TimedOut)??;
        if n >= 12 && &buf[..2] == id {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn forward_tcp(server: SocketAddr, req: &[u8]) -> std::io::Result<Vec<u8>> {
    let work = async {
        let mut s = TcpStream::connect(server).await?;
        s.write_u16(req.len() as u16).await?;
        s.write_all(req).await?;
        let len = s.read_u16().await? as usize;
        let mut buf = vec![0u8; len];
        s.read_exact(&mut buf).await?;
        Ok(buf)
    };
    tokio::time::timeout(UPSTREAM_TIMEOUT, work).await.map_err(|_| std::io::ErrorKind::TimedOut)?
}

/// Nameservers of a resolv.conf text.
pub fn nameservers(resolv_conf: &str) -> Vec<std::net::IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some("nameserver")).then(|| it.next()).flatten()?.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl Names for Fixed {
        fn lookup(&self, _: &str, name: &str) -> Option<Vec<Ipv4Addr>> {
            (name == "web").then(|| vec!["10.5.0.2".parse().unwrap()])
        }
        fn reverse(&self, _: &str, ip: Ipv4Addr) -> Option<String> {
            (ip.to_string() == "10.5.0.2").then(|| "web.appnet".into())
        }
        fn upstream(&self, _: &str) -> Vec<SocketAddr> {
            vec![]
        }
    }

    #[test]
    fn round_robin_puts_each_address_first_in_turn() {
        let all: Vec<Ipv4Addr> = ["10.0.0.2", "10.0.0.3", "10.0.0.4"].iter().map(|s| s.parse().unwrap()).collect();
        let firsts: std::collections::BTreeSet<Ipv4Addr> = (0..3)
            .map(|_| {
                let mut v = all.clone();
                round_robin(&mut v);
                let mut sorted = v.clone();
                sorted.sort();
                assert_eq!(sorted, all, "same addresses, rotated");
                v[0]
            })
            .collect();
        assert_eq!(firsts.len(), 3);
    }

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut b = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            b.push(l.len() as u8);
            b.extend_from_slice(l.as_bytes());
        }
        b.extend_from_slice(&[0, 0, qtype as u8, 0, 1]);
        b
    }

    #[tokio::test]
    async fn answers_known_names_and_fails_unknown_without_upstream() {
        let r = answer(&Fixed, "c", &query("web", wire::TYPE_A), false).await.unwrap();
        assert_eq!(&r[r.len() - 4..], &[10, 5, 0, 2]);
        let r = answer(&Fixed, "c", &query("web", wire::TYPE_AAAA), false).await.unwrap();
        assert_eq!((r[3] & 0xf, r[7]), (0, 0), "known name, no IPv6: empty NOERROR");
        let r = answer(&Fixed, "c", &query("nope", wire::TYPE_A), false).await.unwrap();
        assert_eq!(r[3] & 0xf, wire::RCODE_SERVFAIL as u8);
        let r = answer(&Fixed, "c", &query("2.0.5.10.in-addr.arpa", wire::TYPE_PTR), false).await.unwrap();
        assert_eq!(r[7], 1);
    }

    #[tokio::test]
    async fn serves_udp_and_tcp() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        udp.set_nonblocking(true).unwrap();
        tcp.set_nonblocking(true).unwrap();
        let (ua, ta) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
        let r = spawn(&crate::tasks::Tasks::new("test"), Arc::new(Fixed), "c".into(), udp, tcp).unwrap();
        let resp = forward_udp(ua, &query("web", wire::TYPE_A)).await.unwrap();
        assert_eq!(&resp[resp.len() - 4..], &[10, 5, 0, 2]);
        let resp = forward_tcp(ta, &query("web", wire::TYPE_A)).await.unwrap();
        assert_eq!(&resp[resp.len() - 4..], &[10, 5, 0, 2]);
        drop(r);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(forward_tcp(ta, &query("web", wire::TYPE_A)).await.is_err(), "stopped resolver still answers");
    }

    #[test]
    fn reads_nameservers() {
        let ns = nameservers("search x\nnameserver 10.0.0.1\nnameserver ::1\n# c\n");
        assert_eq!(ns.len(), 2);
    }
}
