//! IPv4 address management for one network: a pure allocator over a subnet, keyed by container id.
//!
//! Never hands out the network address, the gateway or the broadcast address. Allocation is
//! round-robin (it continues after the last address handed out) so a released address is not
//! reused right away, which keeps stale ARP entries of a removed container from hitting the next
//! one. The whole state is serializable; the service persists it after every change.
use ipnetwork::Ipv4Network;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("no free address in {0}")]
    Exhausted(String),
    #[error("invalid subnet {0}: {1}")]
    InvalidSubnet(String, String),
    /// A requested address is taken (Docker's wording).
    #[error("Address already in use")]
    InUse(Ipv4Addr),
    #[error("no configured subnet or ip-range contain the IP address {0}")]
    OutOfRange(Ipv4Addr),
}

/// Allocations of one subnet. `Serialize`d as-is into `<exec-root>/network/<id>/ipam.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ipam {
    subnet: Ipv4Network,
    gateway: Ipv4Addr,
    /// container id -> address.
    allocations: BTreeMap<String, Ipv4Addr>,
    /// Last address handed out; the next search starts after it.
    #[serde(default)]
    last: Option<Ipv4Addr>,
    /// `--ip-range`: dynamic allocations come from this part of the subnet only.
    #[serde(default)]
    range: Option<Ipv4Network>,
    #[serde(skip)]
    used: BTreeSet<u32>,
}

impl Ipam {
    /// A new empty allocator. `subnet` may carry host bits (`10.1.2.1/24` means `10.1.2.0/24`);
    /// it needs room for at least one address besides the gateway (prefix <= 30).
    pub fn new(subnet: Ipv4Network, gateway: Ipv4Addr) -> Result<Self, IpamError> {
        let subnet =
            Ipv4Network::new(subnet.network(), subnet.prefix()).map_err(|e| IpamError::InvalidSubnet(subnet.to_string(), e.to_string()))?;
        if subnet.prefix() > 30 {
            return Err(IpamError::InvalidSubnet(subnet.to_string(), "prefix must be at most /30".into()));
        }
        if !subnet.contains(gateway) || gateway == subnet.network() || gateway == subnet.broadcast() {
            return Err(IpamError::InvalidSubnet(subnet.to_string(), format!("gateway {gateway} is not a host address")));
        }
        Ok(Ipam { subnet, gateway, allocations: BTreeMap::new(), last: None, range: None, used: BTreeSet::new() })
    }

    /// Restricts dynamic allocation to `range` (`--ip-range`), which must lie inside the subnet.
    pub fn with_range(mut self, range: Ipv4Network) -> Result<Self, IpamError> {
        let range =
            Ipv4Network::new(range.network(), range.prefix()).map_err(|e| IpamError::InvalidSubnet(range.to_string(), e.to_string()))?;
        if !self.subnet.contains(range.network()) || !self.subnet.contains(range.broadcast()) {
            return Err(IpamError::InvalidSubnet(range.to_string(), format!("ip-range is not inside subnet {}", self.subnet)));
        }
        self.range = Some(range);
        Ok(self)
    }

    pub fn range(&self) -> Option<Ipv4Network> {
        self.range
    }

    /// Gives `key` exactly `ip` (`--ip`); idempotent for the same key.
    pub fn allocate_static(&mut self, key: &str, ip: Ipv4Addr) -> Result<Ipv4Addr, IpamError> {
        if self.get(key) == Some(ip) {
            return Ok(ip);
        }
        if !self.subnet.contains(ip) || ip == self.subnet.network() || ip == self.subnet.broadcast() {
            return Err(IpamError::OutOfRange(ip));
        }
        if ip == self.gateway || self.used.contains(&u32::from(ip)) {
            return Err(IpamError::InUse(ip));
        }
        self.release(key);
        self.used.insert(u32::from(ip));
        self.allocations.insert(key.to_string(), ip);
        Ok(ip)
    }

    /// Rebuilds the derived index after deserializing; drops allocations outside the subnet.
    pub fn reindex(&mut self) {
        let (subnet, gateway) = (self.subnet, self.gateway);
        self.allocations.retain(|_, ip| subnet.contains(*ip) && *ip != gateway);
        self.used = self.allocations.values().map(|ip| u32::from(*ip)).collect();
    }

    pub fn subnet(&self) -> Ipv4Network {
        self.subnet
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// The address of `key`, if it has one.
    pub fn get(&self, key: &str) -> Option<Ipv4Addr> {
        self.allocations.get(key).copied()
    }

    /// All allocations (container id -> address).
    pub fn allocations(&self) -> &BTreeMap<String, Ipv4Addr> {
        &self.allocations
    }

    /// Allocates an address for `key`; returns the existing one when `key` already has one.
    pub fn allocate(&mut self, key: &str) -> Result<Ipv4Addr, IpamError> {
        if let Some(ip) = self.get(key) {
            return Ok(ip);
        }
        let pool = self.range.unwrap_or(self.subnet);
        let first = u32::from(pool.network()).max(u32::from(self.subnet.network()) + 1);
        let last = u32::from(pool.broadcast()).min(u32::from(self.subnet.broadcast()) - 1);
        let gateway = u32::from(self.gateway);
        let start = match self.last.map(u32::from) {
            Some(l) if (first..last).contains(&l) => l + 1,
            _ => first,
        };
        let free = (start..=last)
            .chain(first..start)
            .find(|n| *n != gateway && !self.used.contains(n))
            .ok_or_else(|| IpamError::Exhausted(pool.to_string()))?;
        let ip = Ipv4Addr::from(free);
        self.used.insert(free);
        self.allocations.insert(key.to_string(), ip);
        self.last = Some(ip);
        Ok(ip)
    }

    /// Releases the address of `key`; returns it, or `None` when `key` had none.
    pub fn release(&mut self, key: &str) -> Option<Ipv4Addr> {
        let ip = self.allocations.remove(key)?;
        self.used.remove(&u32::from(ip));
        Some(ip)
    }
}

/// Docker's MAC for an address: `02:42:` followed by the four address bytes.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// `02:42:ac:11:00:02` form of a MAC.
pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipam(cidr: &str, gw: &str) -> Ipam {
        Ipam::new(cidr.parse().unwrap(), gw.parse().unwrap()).unwrap()
    }

    #[test]
    fn skips_network_gateway_broadcast_and_exhausts() {
        let mut a = ipam("10.9.0.1/29", "10.9.0.1");
        let got: Vec<_> = (0..5).map(|i| a.allocate(&format!("c{i}")).unwrap().to_string()).collect();
        assert_eq!(got, ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"]);
        assert_eq!(a.allocate("c5"), Err(IpamError::Exhausted("10.9.0.0/29".into())));
        assert_eq!(a.subnet().to_string(), "10.9.0.0/29");
    }

    #[test]
    fn gateway_in_the_middle_is_skipped() {
        let mut a = ipam("10.9.0.0/30", "10.9.0.2");
        assert_eq!(a.allocate("x").unwrap().to_string(), "10.9.0.1");
        assert!(a.allocate("y").is_err());
    }

    #[test]
    fn idempotent_per_key_and_release() {
        let mut a = ipam("10.9.0.1/24", "10.9.0.1");
        let ip = a.allocate("c1").unwrap();
        assert_eq!(a.allocate("c1").unwrap(), ip);
        assert_eq!(a.allocations().len(), 1);
        assert_eq!(a.release("c1"), Some(ip));
        assert_eq!(a.release("c1"), None);
        assert_eq!(a.get("c1"), None);
    }

    #[test]
    fn round_robin_does_not_reuse_released_at_once_and_wraps() {
        let mut a = ipam("10.9.0.1/29", "10.9.0.1");
        let first = a.allocate("a").unwrap();
        a.release("a");
        let second = a.allocate("b").unwrap();
        assert_ne!(first, second);
        for i in 0..3 {
            a.allocate(&format!("f{i}")).unwrap();
        }
        // .2 was released, everything else is taken: the search wraps around to it.
        assert_eq!(a.allocate("wrap").unwrap(), first);
    }

    #[test]
    fn survives_serialization_without_double_allocation() {
        let mut a = ipam("172.31.0.1/16", "172.31.0.1");
        let ips: Vec<_> = (0..3).map(|i| a.allocate(&format!("c{i}")).unwrap()).collect();
        a.release("c1");
        let json = serde_json::to_string(&a).unwrap();
        let mut b: Ipam = serde_json::from_str(&json).unwrap();
        b.reindex();
        assert_eq!(b.get("c0"), Some(ips[0]));
        assert_eq!(b.get("c2"), Some(ips[2]));
        let n = b.allocate("new").unwrap();
        assert!(!ips.contains(&n), "{n} reused");
        assert_eq!(b.allocate("c0").unwrap(), ips[0]);
    }

    #[test]
    fn rejects_bad_subnets() {
        assert!(Ipam::new("10.0.0.1/31".parse().unwrap(), "10.0.0.1".parse().unwrap()).is_err());
        assert!(Ipam::new("10.0.0.1/24".parse().unwrap(), "10.0.1.1".parse().unwrap()).is_err());
        assert!(Ipam::new("10.0.0.1/24".parse().unwrap(), "10.0.0.255".parse().unwrap()).is_err());
    }

    #[test]
    fn static_addresses_and_ranges() {
        let mut a = ipam("10.9.0.1/24", "10.9.0.1");
        assert_eq!(a.allocate_static("s", "10.9.0.50".parse().unwrap()).unwrap().to_string(), "10.9.0.50");
        assert_eq!(a.allocate_static("s", "10.9.0.50".parse().unwrap()).unwrap().to_string(), "10.9.0.50");
        assert_eq!(a.allocate_static("t", "10.9.0.50".parse().unwrap()), Err(IpamError::InUse("10.9.0.50".parse().unwrap())));
        assert!(matches!(a.allocate_static("t", "10.9.0.1".parse().unwrap()), Err(IpamError::InUse(_))));
        assert!(matches!(a.allocate_static("t", "10.9.1.5".parse().unwrap()), Err(IpamError::OutOfRange(_))));
        let mut r = ipam("10.9.0.1/24", "10.9.0.1").with_range("10.9.0.128/30".parse().unwrap()).unwrap();
        let got: Vec<_> = (0..4).map(|i| r.allocate(&format!("c{i}")).unwrap().to_string()).collect();
        assert_eq!(got, ["10.9.0.128", "10.9.0.129", "10.9.0.130", "10.9.0.131"]);
        assert!(r.allocate("c5").is_err());
        // A static address outside the range but inside the subnet is fine.
        assert!(r.allocate_static("s", "10.9.0.7".parse().unwrap()).is_ok());
        assert!(ipam("10.9.0.1/24", "10.9.0.1").with_range("10.9.1.0/28".parse().unwrap()).is_err());
    }

    #[test]
    fn mac_like_docker() {
        let mac = mac_for("172.17.0.2".parse().unwrap());
        assert_eq!(mac_string(&mac), "02:42:ac:11:00:02");
    }
}
