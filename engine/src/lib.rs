#![recursion_limit = "256"]
//! Flotilla's single-host Docker engine: the Docker Engine API over unix sockets and TCP,
//! an image store stacked with overlayfs, containers run by youki's libcontainer under a
//! per-container shim, bridge networks (the default one and user-defined ones) and, with a
//! cluster store, overlay networks across engines; the classic builder and commit.
//!
//! Crate map (see ../shared/DESIGN.md):
//! - `api`       HTTP front: routes, `/vX.Y` prefixes, Docker error bodies, hijack.
//! - `image`     content-addressed blobs, layers, references, registry pull, load/save/import.
//! - `container` the container service (records, names, lifecycle) the API calls.
//! - `runtime`   the `Runtime` seam: OCI spec building and the shim client.
//! - `shim`      the re-executed `swarm shim` process (no tokio) that owns one container.
//! - `network`   bridge and overlay networks: IPAM, bridge/veth/VXLAN over netlink, NAT
//!   with iptables, the embedded DNS.
//! - `build`     `POST /build` (the classic builder: Dockerfile, cache, context).
//! - `volume`    volumes (local driver) and the parsing of a container's mounts.
//! - `tasks`     the owner of each service's background tasks (spawned, cancelled, awaited).

pub mod api;
pub mod build;
pub mod cgroups;
pub mod config;
pub mod container;
pub mod dataroot;
pub mod events;
pub mod fsutil;
pub mod ids;
pub mod image;
pub mod network;
pub mod runtime;
pub mod server;
pub mod shim;
pub mod sysinfo;
pub mod tasks;
pub mod tls;
pub mod volume;

pub use config::EngineConfig;
pub use server::{run, EngineError};
pub use tokio_util::sync::CancellationToken;

pub use apiserve::{API_VERSION, MIN_API_VERSION};
/// Our engine version as shown by `docker version`.
pub const ENGINE_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "-flotilla");

/// Microseconds since `t`, for the debug timings (`us = …`) of the start, exit and network paths.
pub(crate) fn micros_since(t: std::time::Instant) -> u64 {
    u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// What kind of failure an error is, independent of HTTP: the API maps it to Docker's status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Conflict,
    InvalidParameter,
    NotModified,
    Forbidden,
    Unavailable,
    /// A feature this configuration does not offer (dockerd's 501, e.g. reading logs of
    /// `--log-driver none`).
    NotImplemented,
    Internal,
}

/// Implemented by every module's error enum so the API can answer with the right status.
pub trait Classify {
    fn kind(&self) -> ErrorKind;
}
