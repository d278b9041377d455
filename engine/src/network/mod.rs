//! Default bridge network: IPAM, bridge and veth over netlink, NAT with iptables.
//! OWNER: network helper.
use crate::{Classify, ErrorKind};
use std::net::Ipv4Addr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("{0}")]
    Setup(String),
    #[error("no free address in {0}")]
    Exhausted(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Classify for NetworkError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

/// A container's place on the default bridge.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    /// Bind-mounted network namespace to give the runtime (`NetNs::Path`).
    pub netns: PathBuf,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    /// Host side of the veth pair.
    pub veth: String,
    pub network_id: String,
    pub endpoint_id: String,
}

pub struct NetworkService {
    pub bridge_name: String,
    pub network_id: String,
}

impl NetworkService {
    /// Ensures the bridge, its address, NAT and forwarding rules exist; loads IPAM state
    /// from `<data_root>/network/`.
    pub async fn start(cfg: &crate::EngineConfig) -> Result<Self, NetworkError> {
        Ok(NetworkService { bridge_name: cfg.bridge_name.clone(), network_id: String::new() })
    }

    /// Allocates an address and creates the container's netns (bind-mounted under
    /// `<exec_root>/netns/<id>`) with `eth0` (veth peer on the bridge), `lo` up, default route.
    pub async fn connect(&self, container_id: &str) -> Result<Endpoint, NetworkError> {
        Err(NetworkError::Setup(format!("network not built yet for {container_id}")))
    }

    /// Removes the veth, the netns and releases the address. Idempotent.
    pub async fn disconnect(&self, _container_id: &str) -> Result<(), NetworkError> {
        Ok(())
    }

    /// Subnet (CIDR) and gateway of the default bridge, for `docker network inspect bridge`/info.
    pub fn subnet(&self) -> (String, Ipv4Addr) {
        (String::new(), Ipv4Addr::UNSPECIFIED)
    }
}
