//! Test ground for Flotilla's end-to-end tests (dev-only):
//! - [`image`]: the busybox image from Debian's busybox-static, as a rootfs tarball
//!   (`docker import`) and a docker-archive (`docker load`); hostile layer tarballs;
//! - [`registry::Registry`]: a real `docker-registry` on a free 127.0.0.1 port;
//! - [`engine::Engine`]: a temporary `swarm engine` with a docker CLI pointed at it;
//! - [`hosts::TestNet`]: network-namespace hosts on a test bridge, each with its own address;
//! - [`nspawn::SystemdNet`]: real Debian hosts with systemd as PID 1 (systemd-nspawn, a cached
//!   debootstrap rootfs, an overlay per host) for the provisioner's systemd path;
//! - [`etcd::Etcd`]: a real etcd on free ports (restartable, optionally with TLS);
//! - [`cleanup`]: removal of processes, mounts, cgroups, bridges and iptables rules.
//!
//! Everything uses unique names and cleans up on drop, even when the test panics.
pub mod cleanup;
pub mod cmd;
pub mod engine;
pub mod etcd;
pub mod hosts;
pub mod http;
pub mod image;
pub mod manager;
pub mod nspawn;
pub mod port;
pub mod registry;
pub mod slot;
pub mod tls;

pub use cmd::Output;
pub use engine::{Engine, EngineOpts};
pub use image::{busybox_image_archive, busybox_image_id, busybox_rootfs_tar, Hostile};
pub use registry::Registry;

/// Skips (returns from) the calling test with a message when not running as root, which the
/// engine, mounts and iptables need.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::is_root() {
            eprintln!("skipping: needs root");
            return;
        }
    };
}

/// True when running as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Polls `f` as [`wait_until`] does; when it holds, how long after `since` the check that
/// found it began. A check is a client's round trip (a docker CLI run takes 0.2-1 s on a loaded
/// host): when it began, what it found was at the latest already true as it answered, and the
/// time a propagation took is not charged with the poll's own.
pub fn seen_within(since: std::time::Instant, timeout: std::time::Duration, mut f: impl FnMut() -> bool) -> Option<std::time::Duration> {
    let mut began = since.elapsed();
    wait_until(timeout, || {
        began = since.elapsed();
        f()
    })
    .then_some(began)
}

/// Polls `f` every 50 ms until it returns true or `timeout` passes; returns the last result.
pub fn wait_until(timeout: std::time::Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
