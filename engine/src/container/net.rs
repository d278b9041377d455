//! The container service's view of the network: exactly what container code asks of
//! [`NetworkService`], behind [`ContainerNetwork`] so the service can be tested without root
//! (a netns, veths and iptables rules need CAP_NET_ADMIN). [`NetworkService`] implements it by
//! delegating to its public methods; `FakeNetwork` (tests) records the calls and can fail one.
use crate::network::{Attach, Endpoint, Network, NetworkError, NetworkService, PortMapping, Sandbox, SandboxReq};
use futures_util::future::BoxFuture;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// What a container's create, start, exit, connect and disconnect need from the network.
pub trait ContainerNetwork: Send + Sync + 'static {
    /// Id of the default network (`bridge`).
    fn default_network_id(&self) -> String;
    /// A network by id or name.
    fn network(&self, id_or_name: &str) -> Result<Network, NetworkError>;
    /// The default network's subnet and gateway.
    fn subnet(&self) -> (String, Ipv4Addr);
    /// Where the container's network namespace is (or would be) bind-mounted.
    fn netns_path(&self, container_id: &str) -> PathBuf;
    /// Sets up the sandbox of a start; its kernel side may go on in the background ([`Self::ready`]).
    fn setup_started<'a>(&'a self, req: &'a SandboxReq) -> BoxFuture<'a, Result<Sandbox, NetworkError>>;
    /// Waits for the background part of [`Self::setup_started`].
    fn ready<'a>(&'a self, container_id: &'a str) -> BoxFuture<'a, Result<(), NetworkError>>;
    /// Releases the whole sandbox (endpoints, ports, netns). Idempotent.
    fn release<'a>(&'a self, container_id: &'a str) -> BoxFuture<'a, Result<(), NetworkError>>;
    /// `docker network connect` of a running container.
    fn connect_endpoint<'a>(
        &'a self,
        container_id: &'a str,
        network: &'a str,
        attach: &'a Attach,
    ) -> BoxFuture<'a, Result<Endpoint, NetworkError>>;
    /// `docker network disconnect` of a running container.
    fn disconnect_endpoint<'a>(&'a self, container_id: &'a str, network: &'a str) -> BoxFuture<'a, Result<(), NetworkError>>;
    /// The endpoints of a container's sandbox (empty when it has none).
    fn sandbox_endpoints(&self, container_id: &str) -> Vec<Endpoint>;
    /// The published ports of a container's sandbox.
    fn ports(&self, container_id: &str) -> Vec<PortMapping>;
    /// A container of another node by name on one of `networks` (overlay `--link`).
    fn remote_container(&self, name: &str, networks: &[&str]) -> Option<String>;
}

impl ContainerNetwork for NetworkService {
    fn default_network_id(&self) -> String {
        self.network_id.clone()
    }
    fn network(&self, id_or_name: &str) -> Result<Network, NetworkError> {
        NetworkService::network(self, id_or_name)
    }
    fn subnet(&self) -> (String, Ipv4Addr) {
        NetworkService::subnet(self)
    }
    fn netns_path(&self, container_id: &str) -> PathBuf {
        NetworkService::netns_path(self, container_id)
    }
    fn setup_started<'a>(&'a self, req: &'a SandboxReq) -> BoxFuture<'a, Result<Sandbox, NetworkError>> {
        Box::pin(NetworkService::setup_started(self, req))
    }
    fn ready<'a>(&'a self, container_id: &'a str) -> BoxFuture<'a, Result<(), NetworkError>> {
        Box::pin(NetworkService::ready(self, container_id))
    }
    fn release<'a>(&'a self, container_id: &'a str) -> BoxFuture<'a, Result<(), NetworkError>> {
        Box::pin(NetworkService::disconnect(self, container_id))
    }
    fn connect_endpoint<'a>(
        &'a self,
        container_id: &'a str,
        network: &'a str,
        attach: &'a Attach,
    ) -> BoxFuture<'a, Result<Endpoint, NetworkError>> {
        Box::pin(NetworkService::connect_endpoint(self, container_id, network, attach))
    }
    fn disconnect_endpoint<'a>(&'a self, container_id: &'a str, network: &'a str) -> BoxFuture<'a, Result<(), NetworkError>> {
        Box::pin(NetworkService::disconnect_endpoint(self, container_id, network))
    }
    fn sandbox_endpoints(&self, container_id: &str) -> Vec<Endpoint> {
        NetworkService::sandbox_endpoints(self, container_id)
    }
    fn ports(&self, container_id: &str) -> Vec<PortMapping> {
        NetworkService::ports(self, container_id)
    }
    fn remote_container(&self, name: &str, networks: &[&str]) -> Option<String> {
        NetworkService::remote_container(self, name, networks)
    }
}

#[cfg(test)]
pub(crate) use fake::FakeNetwork;

#[cfg(test)]
mod fake {
    use super::*;
    use std::collections::{BTreeSet, HashMap};
    use std::sync::{Mutex, MutexGuard};

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A recording network with the default `bridge` only: no netns, no veth, no rule.
    /// Calls are recorded as `setup <id>`, `ready <id>`, `release <id>`, `connect <id> <net>`,
    /// `disconnect <id> <net>`; [`FakeNetwork::fail_next`] makes the next call of an op fail.
    pub(crate) struct FakeNetwork {
        netns_dir: PathBuf,
        calls: Mutex<Vec<String>>,
        fail: Mutex<HashMap<&'static str, NetworkError>>,
        /// Containers with a sandbox now.
        live: Mutex<BTreeSet<String>>,
    }

    pub(crate) const FAKE_NET_ID: &str = "fakebridge0000000000000000000000000000000000000000000000000000000";

    impl FakeNetwork {
        /// `netns_dir`: where `netns_path` points (nothing is made there).
        pub(crate) fn new(netns_dir: PathBuf) -> Self {
            FakeNetwork { netns_dir, calls: Default::default(), fail: Default::default(), live: Default::default() }
        }
        fn record(&self, op: &'static str, what: String) -> Result<(), NetworkError> {
            lock(&self.calls).push(what);
            lock(&self.fail).remove(op).map_or(Ok(()), Err)
        }
        /// Everything called so far, in order.
        pub(crate) fn calls(&self) -> Vec<String> {
            lock(&self.calls).clone()
        }
        /// The next call of `op` ("setup", "ready", "release", "connect", "disconnect") fails.
        pub(crate) fn fail_next(&self, op: &'static str, err: NetworkError) {
            lock(&self.fail).insert(op, err);
        }
        /// True while `id` has a sandbox (set up and not released).
        pub(crate) fn has_sandbox(&self, id: &str) -> bool {
            lock(&self.live).contains(id)
        }
        fn bridge() -> Network {
            Network {
                id: FAKE_NET_ID.into(),
                name: crate::network::DEFAULT_NETWORK.into(),
                driver: "bridge".into(),
                subnet: "10.99.0.0/16".into(),
                gateway: Ipv4Addr::new(10, 99, 0, 1),
                bridge: "fake0".into(),
                created: "2026-01-01T00:00:00Z".into(),
                ip_range: None,
                internal: false,
                labels: Default::default(),
                options: Default::default(),
                user_subnet: false,
                attachable: false,
            }
        }
    }

    impl ContainerNetwork for FakeNetwork {
        fn default_network_id(&self) -> String {
            FAKE_NET_ID.into()
        }
        fn network(&self, id_or_name: &str) -> Result<Network, NetworkError> {
            let n = Self::bridge();
            if id_or_name == n.id || id_or_name == n.name {
                Ok(n)
            } else {
                Err(NetworkError::NotFound(id_or_name.to_string()))
            }
        }
        fn subnet(&self) -> (String, Ipv4Addr) {
            let n = Self::bridge();
            (n.subnet, n.gateway)
        }
        fn netns_path(&self, container_id: &str) -> PathBuf {
            self.netns_dir.join(container_id)
        }
        fn setup_started<'a>(&'a self, req: &'a SandboxReq) -> BoxFuture<'a, Result<Sandbox, NetworkError>> {
            Box::pin(async move {
                self.record("setup", format!("setup {}", req.container_id))?;
                lock(&self.live).insert(req.container_id.clone());
                Ok(Sandbox { netns: self.netns_path(&req.container_id), endpoints: vec![], ports: vec![], resolver: false })
            })
        }
        fn ready<'a>(&'a self, container_id: &'a str) -> BoxFuture<'a, Result<(), NetworkError>> {
            Box::pin(async move { self.record("ready", format!("ready {container_id}")) })
        }
        fn release<'a>(&'a self, container_id: &'a str) -> BoxFuture<'a, Result<(), NetworkError>> {
            Box::pin(async move {
                self.record("release", format!("release {container_id}"))?;
                lock(&self.live).remove(container_id);
                Ok(())
            })
        }
        fn connect_endpoint<'a>(
            &'a self,
            container_id: &'a str,
            network: &'a str,
            _attach: &'a Attach,
        ) -> BoxFuture<'a, Result<Endpoint, NetworkError>> {
            Box::pin(async move {
                self.record("connect", format!("connect {container_id} {network}"))?;
                Err(NetworkError::Invalid("the fake network has one network only".into()))
            })
        }
        fn disconnect_endpoint<'a>(&'a self, container_id: &'a str, network: &'a str) -> BoxFuture<'a, Result<(), NetworkError>> {
            Box::pin(async move { self.record("disconnect", format!("disconnect {container_id} {network}")) })
        }
        fn sandbox_endpoints(&self, _container_id: &str) -> Vec<Endpoint> {
            vec![]
        }
        fn ports(&self, _container_id: &str) -> Vec<PortMapping> {
            vec![]
        }
        fn remote_container(&self, _name: &str, _networks: &[&str]) -> Option<String> {
            None
        }
    }
}
