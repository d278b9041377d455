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

/// Takes a host port for `spec`: the given one, the first free one of a range, or any.
pub fn reserve(spec: &PortSpec) -> Result<(u16, Reservation), NetworkError> {
    if spec.proto != "tcp" && spec.proto != "udp" {
        return Err(NetworkError::Invalid(format!("publishing {} ports is not supported by this engine", spec.proto)));
    }
    let ip = spec.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let (lo, hi) = spec.host_ports;
    let taken = |port: u16, e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            NetworkError::PortInUse(format!("Bind for {ip}:{port} failed: port is already allocated"))
        } else {
            NetworkError::PortInUse(format!("Bind for {ip}:{port} failed: {e}"))
        }
    };
    if lo == 0 {
        return bind(&spec.proto, SocketAddrV4::new(ip, 0)).map_err(|e| taken(0, e));
    }
    if lo == hi {
        return bind(&spec.proto, SocketAddrV4::new(ip, lo)).map_err(|e| taken(lo, e));
    }
    for port in lo..=hi {
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
        let (p, r) = reserve(&spec("tcp", 0, 0)).unwrap();
        assert!(p > 0);
        // The port is held: asking for it again fails with Docker's words.
        let e = reserve(&spec("tcp", p, p)).unwrap_err().to_string();
        assert!(e.contains(&format!("Bind for 127.0.0.1:{p} failed: port is already allocated")), "{e}");
        // A range skips the taken port.
        let (q, _r2) = reserve(&spec("tcp", p, p.saturating_add(1000))).unwrap();
        assert!(q > p && q <= p.saturating_add(1000), "{q}");
        drop(r);
        let (again, _r3) = reserve(&spec("tcp", p, p)).unwrap();
        assert_eq!(again, p);
        let (u, _r4) = reserve(&spec("udp", 0, 0)).unwrap();
        assert!(u > 0);
        assert!(reserve(&spec("sctp", 0, 0)).is_err());
    }
}
