//! Shared helpers of the end-to-end tests: every test starts its own engine (unique socket,
//! data root, bridge, subnet, cgroup parent) and drives it with the standard docker CLI only.
#![allow(dead_code, unused_imports)]
use std::time::Duration;
pub use testground::{require_root, wait_until, Engine, EngineOpts, Hostile, Registry};

/// Options with our `swarm` binary (built by cargo for this test).
pub fn opts() -> EngineOpts {
    EngineOpts::default().bin(env!("CARGO_BIN_EXE_swarm"))
}

pub fn engine() -> Engine {
    Engine::start_with(opts())
}

/// An engine with `busybox:latest` loaded.
pub fn engine_with_busybox() -> Engine {
    let e = engine();
    e.load_busybox();
    e
}

/// Non-empty trimmed lines of a command's output.
pub fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

/// Sorted lines, for order-insensitive comparisons.
pub fn sorted_lines(s: &str) -> Vec<String> {
    let mut v = lines(s);
    v.sort();
    v
}

pub fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// `docker inspect -f FORMAT target`, trimmed.
pub fn inspect(e: &Engine, target: &str, format: &str) -> String {
    e.docker_ok(&["inspect", "-f", format, target]).trim().to_string()
}

/// Polls `docker inspect` until the container's status is `status`.
pub fn wait_status(e: &Engine, target: &str, status: &str) -> bool {
    wait_until(Duration::from_secs(20), || e.docker(&["inspect", "-f", "{{.State.Status}}", target]).stdout.trim() == status)
}

/// Polls `docker logs` until it contains `needle`.
pub fn wait_logs(e: &Engine, target: &str, needle: &str) -> bool {
    wait_until(Duration::from_secs(20), || e.docker(&["logs", target]).combined().contains(needle))
}

/// A path outside every root that a test checks is never created (removed on drop).
pub struct Canary(pub std::path::PathBuf);

impl Canary {
    pub fn new(tag: &str) -> Canary {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        Canary(std::path::PathBuf::from(format!("/tmp/flotilla-canary-{tag}-{}-{}", std::process::id(), nanos % 1_000_000_000)))
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
