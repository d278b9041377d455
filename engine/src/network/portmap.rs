//! Host ports of published container ports. The engine holds a socket bound to every host port
//! it publishes (a TCP listener that never accepts: traffic is DNAT'd before it could reach it;
//! a bound UDP socket): a port someone else uses is refused at start with Docker's message, two
//! engines (or dockerd's proxy) can never publish the same port, and random ports come from the
//! kernel's ephemeral range without clashing with anything bound.
use super::NetworkError;
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddrV4};

/// A port to publish, as asked for (`-p`, `-P`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// `tcp` or `udp`.
    pub proto: String,
    pub container_port: u16,
    /// `None`: every address of the host.
    pub host_ip: Option<Ipv4Addr>,
    /// Inclusive range to pick from; `(0, 0)`: any free port.
    pub host_ports: (u16, u16),
}

/// Keeps a host port taken for as long as it lives.
#[derive(Debug)]
pub enum Reservation {
    Tcp(#[allow(dead_code)] std::net::TcpListener),
    Udp(#[allow(dead_code)] std::net::UdpSocket),
}

fn bind(proto: &str, addr: SocketAddrV4) -> std::io::Result<(u16, Reservation)> {
    match proto {
        "udp" => {
            let s = std::net::UdpSocket::bind(addr)?;
            Ok((s.local_addr()?.port(), Reservation::Udp(s)))
        }
        _ => {
            let s = std::net::TcpListener::bind(addr)?;
            Ok((s.local_addr()?.port(), Reservation::Tcp(s)))
        }
    }
}

/// Host ports recorded for other containers' mappings (protocol, address, port). After a restart,
/// a mapping whose port someone else held has no socket of the engine's until it is taken again
/// (the port is someone else's, or free until the next try), and its DNAT rule still sends the
/// port's traffic to that container.
#[derive(Debug, Default)]
pub struct Claimed(Vec<(String, Ipv4Addr, u16)>);

impl Claimed {
    pub fn new(mappings: impl IntoIterator<Item = (String, Ipv4Addr, u16)>) -> Self {
        Claimed(mappings.into_iter().collect())
    }

    /// Would `ip:port` of `proto` overlap one of them (the unspecified address overlaps every
    /// address, as the kernel's bind does)?
    fn overlaps(&self, proto: &str, ip: Ipv4Addr, port: u16) -> bool {
        self.0.iter().any(|(p, i, n)| p == proto && *n == port && (*i == ip || i.is_unspecified() || ip.is_unspecified()))
    }
}

/// How many ports the kernel hands out that another mapping claims before a random pick gives up.
const RANDOM_TRIES: usize = 16;

/// Takes a host port for `spec`: the given one, the first free one of a range, or any; never
/// one that `claimed` records for another container.
pub fn reserve(spec: &PortSpec, claimed: &Claimed) -> Result<(u16, Reservation), NetworkError> {
    reserve_with(spec, claimed, bind)
}

/// [`reserve`] with the bind call given (a test picks the ports the kernel would).
fn reserve_with(
    spec: &PortSpec,
    claimed: &Claimed,
    bind: impl Fn(&str, SocketAddrV4) -> std::io::Result<(u16, Reservation)>,
) -> Result<(u16, Reservation), NetworkError> {
    if spec.proto != "tcp" && spec.proto != "udp" {
        return Err(NetworkError::Invalid(format!("publishing {} ports is not supported by this engine", spec.proto)));
    }
    let ip = spec.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let (lo, hi) = spec.host_ports;
    let allocated = |port: u16| NetworkError::PortInUse(format!("Bind for {ip}:{port} failed: port is already allocated"));
    let taken = |port: u16, e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            allocated(port)
        } else {
            NetworkError::PortInUse(format!("Bind for {ip}:{port} failed: {e}"))
        }
    };
    let is_claimed = |port: u16| claimed.overlaps(&spec.proto, ip, port);
    if lo == 0 {
        // A claimed port handed out is held until the pick ends, so the kernel gives another.
        let mut passed = Vec::new();
        for _ in 0..RANDOM_TRIES {
            let (port, r) = bind(&spec.proto, SocketAddrV4::new(ip, 0)).map_err(|e| taken(0, e))?;
            if !is_claimed(port) {
                return Ok((port, r));
            }
            passed.push(r);
        }
        return Err(allocated(0));
    }
    if lo == hi {
        if is_claimed(lo) {
            return Err(allocated(lo));
        }
        return bind(&spec.proto, SocketAddrV4::new(ip, lo)).map_err(|e| taken(lo, e));
    }
    for port in (lo..=hi).filter(|p| !is_claimed(*p)) {
        if let Ok(r) = bind(&spec.proto, SocketAddrV4::new(ip, port)) {
            return Ok(r);
        }
    }
    Err(NetworkError::PortInUse(format!("Bind for {ip}:{lo}-{hi} failed: port is already allocated")))
}

/// Takes the host port of a mapping again (after an engine restart).
pub fn rebind(proto: &str, ip: Ipv4Addr, port: u16) -> std::io::Result<Reservation> {
    bind(proto, SocketAddrV4::new(ip, port)).map(|(_, r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(proto: &str, lo: u16, hi: u16) -> PortSpec {
        PortSpec { proto: proto.into(), container_port: 80, host_ip: Some(Ipv4Addr::LOCALHOST), host_ports: (lo, hi) }
    }

    #[test]
    fn random_fixed_taken_and_ranges() {
        let none = Claimed::default();
        let (p, r) = reserve(&spec("tcp", 0, 0), &none).unwrap();
        assert!(p > 0);
        // The port is held: asking for it again fails with Docker's words.
        let e = reserve(&spec("tcp", p, p), &none).unwrap_err().to_string();
        assert!(e.contains(&format!("Bind for 127.0.0.1:{p} failed: port is already allocated")), "{e}");
        // A range skips the taken port.
        let (q, _r2) = reserve(&spec("tcp", p, p.saturating_add(1000)), &none).unwrap();
        assert!(q > p && q <= p.saturating_add(1000), "{q}");
        drop(r);
        let (again, _r3) = reserve(&spec("tcp", p, p), &none).unwrap();
        assert_eq!(again, p);
        let (u, _r4) = reserve(&spec("udp", 0, 0), &none).unwrap();
        assert!(u > 0);
        assert!(reserve(&spec("sctp", 0, 0), &none).is_err());
    }

    #[test]
    fn ports_claimed_by_other_mappings_are_never_handed_out() {
        // A fixed port free on the host, but recorded for another container: refused.
        let (p, r) = reserve(&spec("tcp", 0, 0), &Claimed::default()).unwrap();
        drop(r);
        let claimed = Claimed::new([("tcp".to_string(), Ipv4Addr::UNSPECIFIED, p)]);
        let e = reserve(&spec("tcp", p, p), &claimed).unwrap_err().to_string();
        assert!(e.contains(&format!("Bind for 127.0.0.1:{p} failed: port is already allocated")), "{e}");
        // Another protocol, or another specific address, does not overlap.
        reserve(&spec("udp", p, p), &claimed).unwrap();
        let other = Claimed::new([("tcp".to_string(), Ipv4Addr::new(127, 0, 0, 2), p)]);
        reserve(&spec("tcp", p, p), &other).unwrap();
        // A range skips it.
        let (q, _rq) = reserve(&spec("tcp", p, p.saturating_add(1000)), &claimed).unwrap();
        assert_ne!(q, p);
        // A random pick that the kernel ends on a claimed port holds it and asks again: here the
        // "kernel" hands out the claimed port p first, then any.
        let calls = std::cell::Cell::new(0);
        let kernel = |proto: &str, addr: SocketAddrV4| {
            calls.set(calls.get() + 1);
            let port = if calls.get() == 1 { p } else { addr.port() };
            bind(proto, SocketAddrV4::new(*addr.ip(), port))
        };
        let (q, _rq) = reserve_with(&spec("tcp", 0, 0), &claimed, kernel).unwrap();
        assert_ne!(q, p);
        assert_eq!(calls.get(), 2);
        // One whose kernel only ever hands out claimed ports gives up, with Docker's words.
        let only_p = |proto: &str, addr: SocketAddrV4| bind(proto, addr).map(|(_, r)| (p, r));
        let e = reserve_with(&spec("tcp", 0, 0), &claimed, only_p).unwrap_err().to_string();
        assert!(e.contains("port is already allocated"), "{e}");
    }
}
