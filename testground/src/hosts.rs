//! Network-namespace "hosts" on a test bridge, each with its own address, for multi-host tests
//! on one machine (see reference/environment.md §8), made with the `local` machine driver's
//! building blocks (`provision::nshost`):
//! - a [`TestBridge`] in the root namespace holding the subnet's `.1` (a testground [`Slot`]
//!   gives the unique bridge name and subnet), with a `FORWARD` accept rule so hosts reach each
//!   other;
//! - per host: a netns `<bridge>-h<N>` with `eth0` = `.N+1`, default route via the bridge, and
//!   its own slot for an engine inside (cgroup parent, engine bridge and subnet, data roots);
//! - commands run through `ip netns exec <ns> unshare --mount --uts`, which re-mounts the cgroup
//!   hierarchies (`ip netns exec` remounts /sys and hides them), mounts a private /run and sets
//!   the hostname.
//!
//! Everything (processes in the netns and in the hosts' cgroups, namespaces, veths, bridge,
//! iptables rule, temp dirs) is removed on drop, even when the test panics.
use crate::cleanup::{self, Resources};
use crate::cmd::{self, run_args, Output};
use crate::slot::Slot;
use provision::nshost;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A bridge from a testground [`Slot`] with the slot's gateway `/24` and a `FORWARD` accept
/// rule; removed (with its rule, links and the slot's leftovers) on drop.
pub struct TestBridge {
    pub slot: Slot,
}

impl TestBridge {
    /// A bridge on a new slot.
    pub fn new() -> TestBridge {
        TestBridge::on(Slot::acquire())
    }
    /// A bridge on `slot`. Panics on failure (after removing what was made).
    pub fn on(slot: Slot) -> TestBridge {
        let b = TestBridge { slot };
        nshost::ensure_bridge(&b.slot.bridge, b.gateway_ip(), 24).unwrap_or_else(|e| panic!("testground bridge: {e}"));
        b
    }
    pub fn name(&self) -> &str {
        &self.slot.bridge
    }
    /// The bridge's own address (`.1`).
    pub fn gateway_ip(&self) -> Ipv4Addr {
        self.slot.gateway().parse().expect("a slot's gateway is an IPv4 address")
    }
    /// The subnet's `n`th address (1 = the gateway).
    pub fn ip(&self, n: u32) -> Ipv4Addr {
        nshost::nth(self.gateway_ip(), n - 1)
    }
}

impl Default for TestBridge {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestBridge {
    fn drop(&mut self) {
        nshost::remove_bridge(&self.slot.bridge);
        let notes = cleanup::cleanup(&Resources { bridge: Some(self.slot.bridge.clone()), cgroup_parent: None, roots: vec![] });
        if !notes.is_empty() {
            eprintln!("testground: bridge {} cleanup incomplete:\n  {}", self.slot.bridge, notes.join("\n  "));
        }
    }
}

/// A test bridge with `n` hosts.
pub struct TestNet {
    hosts: Vec<Host>,
    bridge: TestBridge,
}

/// One netns host: its address, an engine's unique names and roots.
pub struct Host {
    pub ns: String,
    pub hostname: String,
    ip: String,
    slot: Slot,
    tmp: Option<tempfile::TempDir>,
    exec_tmp: Option<tempfile::TempDir>,
}

/// A process started in a host; killed (SIGKILL) on drop, its log printed if the test panics.
pub struct HostProc {
    child: Option<Child>,
    name: String,
    log: PathBuf,
}

/// Kills every process in netns `ns` until none is left.
fn kill_netns_pids(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids: Vec<i32> = run_args("ip", &["netns", "pids", ns]).stdout.split_whitespace().filter_map(|p| p.parse().ok()).collect();
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        for p in pids {
            // SAFETY: kill(2) of a process inside our own test namespace.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl TestNet {
    /// Creates the bridge and `n` hosts (h1 = `.2`, h2 = `.3`, …). Panics on failure (after
    /// cleaning up what was made).
    pub fn new(n: usize) -> TestNet {
        assert!((1..=200).contains(&n), "1..=200 hosts");
        let slot = Slot::acquire();
        // A previous holder of this slot may have been killed before its drop ran.
        for l in run_args("ip", &["netns", "list"]).stdout.lines() {
            let name = l.split_whitespace().next().unwrap_or("");
            if name.starts_with(&format!("{}-h", slot.bridge)) {
                kill_netns_pids(name);
                run_args("ip", &["netns", "del", name]);
            }
        }
        let mut net = TestNet { hosts: vec![], bridge: TestBridge::on(slot) };
        for i in 1..=n {
            let h = net.add_host(i);
            net.hosts.push(h);
        }
        net
    }

    fn add_host(&self, i: usize) -> Host {
        let br = self.bridge.name();
        let ns = format!("{br}-h{i}");
        let ip = self.bridge.ip(i as u32 + 1);
        let host = Host {
            ns: ns.clone(),
            hostname: format!("h{i}-{br}"),
            ip: ip.to_string(),
            slot: Slot::acquire(),
            tmp: Some(tempfile::Builder::new().prefix("flotilla-host-").tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))),
            exec_tmp: Some(tempfile::Builder::new().prefix("flth").tempdir_in("/tmp").unwrap_or_else(|e| panic!("tempdir: {e}"))),
        };
        if let Err(e) = nshost::connect_netns(&ns, &format!("{br}v{i}"), br, (ip, 24), self.bridge.gateway_ip()) {
            host.teardown();
            panic!("testground hosts: {e}");
        }
        host
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }
    /// Host `i` (0-based).
    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i]
    }
    /// The bridge's own address in the test subnet (the root namespace as seen by the hosts).
    pub fn gateway(&self) -> String {
        self.bridge.slot.gateway()
    }
    pub fn bridge(&self) -> &str {
        self.bridge.name()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let notes: Vec<String> = self.hosts.drain(..).flat_map(Host::teardown).collect();
        if !notes.is_empty() {
            eprintln!("testground: test net {} cleanup incomplete:\n  {}", self.bridge.name(), notes.join("\n  "));
        }
    }
}

impl Host {
    /// The host's address on the test bridge.
    pub fn ip(&self) -> &str {
        &self.ip
    }
    /// A per-host directory (data roots, logs, sockets), removed on drop.
    pub fn dir(&self) -> &Path {
        self.tmp.as_ref().map(|t| t.path()).unwrap_or(Path::new("/nonexistent"))
    }
    /// The unix socket [`Host::engine_args`] makes the engine serve besides TCP.
    pub fn socket(&self) -> PathBuf {
        self.dir().join("docker.sock")
    }
    /// Flags giving an engine in this host unique roots and names: `-H unix://…`,
    /// `--data-root`, `--exec-root`, `--bridge`, `--bip`, `--cgroup-parent`.
    pub fn engine_args(&self) -> Vec<String> {
        let exec = self.exec_tmp.as_ref().map(|t| t.path().join("x")).unwrap_or_default();
        vec![
            "-H".into(),
            format!("unix://{}", self.socket().display()),
            "--data-root".into(),
            self.dir().join("data").display().to_string(),
            "--exec-root".into(),
            exec.display().to_string(),
            "--bridge".into(),
            self.slot.bridge.clone(),
            "--bip".into(),
            self.slot.bip(),
            "--cgroup-parent".into(),
            self.slot.cgroup_parent.clone(),
        ]
    }

    /// A command running `program args` inside this host (netns, private mounts, hostname).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>, args: &[String]) -> Command {
        let script = format!("set -e\n{}exec \"$@\"\n", nshost::setup_script(&self.hostname, &self.ns));
        let mut c = nshost::enter(&self.ns);
        c.args(["--", "sh", "-c", &script, "sh"]);
        c.arg(program);
        c.args(args);
        c
    }

    /// Runs a command in the host to completion (60 s timeout).
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        cmd::run(&mut self.command(program, &args), None, Duration::from_secs(60))
    }

    /// Starts a long-running process in the host; its output goes to `<dir>/<name>.log`.
    pub fn spawn(&self, name: &str, program: impl AsRef<std::ffi::OsStr>, args: &[String]) -> HostProc {
        let log = self.dir().join(format!("{name}.log"));
        let f = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap_or_else(|e| panic!("log: {e}"));
        let f2 = f.try_clone().unwrap_or_else(|e| panic!("log: {e}"));
        let child = self
            .command(program, args)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(f)
            .stderr(f2)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning in {}: {e}", self.ns));
        HostProc { child: Some(child), name: format!("{name}@{}", self.hostname), log }
    }

    fn teardown(mut self) -> Vec<String> {
        kill_netns_pids(&self.ns);
        let mut roots = vec![];
        roots.extend(self.tmp.as_ref().map(|t| t.path().to_path_buf()));
        roots.extend(self.exec_tmp.as_ref().map(|t| t.path().to_path_buf()));
        let mut notes =
            cleanup::cleanup(&Resources { bridge: None, cgroup_parent: Some(self.slot.cgroup_parent.clone()), roots: roots.clone() });
        let o = run_args("ip", &["netns", "del", &self.ns]);
        if !o.success() {
            notes.push(format!("ip netns del {}: {}", self.ns, o.stderr.trim()));
        }
        if roots.iter().any(|r| !cleanup::mounts_below(r).is_empty()) {
            notes.push("host temp dirs kept because mounts remain".into());
            for t in [self.tmp.take(), self.exec_tmp.take()].into_iter().flatten() {
                let _ = t.keep();
            }
        }
        notes
    }
}

impl HostProc {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
    /// SIGKILL (a crash: nothing is deregistered).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    /// SIGTERM, SIGKILL after `grace`; the exit status if it exited in time.
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let c = self.child.take()?;
        cmd::terminate(c, grace)
    }
    /// Waits until the log contains `needle`, the process exits, or `timeout`; panics with the
    /// log unless found.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return;
            }
            let running = self.running();
            if !running || Instant::now() > deadline {
                let why = if running { "timed out" } else { "exited" };
                panic!("{}: {needle:?} not in the log ({why}); log:\n{}", self.name, self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for HostProc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- log of {} ---\n{}", self.name, crate::registry::tail(&self.log(), 60));
        }
        self.kill();
    }
}

/// Runs the docker CLI against `host` (e.g. `tcp://10.160.3.2:2375`) with a private config dir.
pub fn docker_at(host: &str, args: &[&str], timeout: Duration) -> Output {
    let cfg = tempfile::Builder::new().prefix("flotilla-dockercfg-").tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mut c = Command::new(crate::engine::docker_cli());
    for v in ["DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION"] {
        c.env_remove(v);
    }
    c.env("DOCKER_HOST", host).env("DOCKER_CONFIG", cfg.path()).args(args);
    cmd::run(&mut c, None, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_reach_each_other_and_see_cgroups() {
        crate::require_root!();
        let net = TestNet::new(2);
        let (a, b) = (net.host(0), net.host(1));
        let o = a.run("busybox", &["ping", "-c", "1", "-W", "2", b.ip()]);
        assert!(o.success(), "{o}");
        let o =
            a.run("sh", &["-c", "hostname; grep -c cgroup /proc/self/mounts; grep ' /run ' /proc/self/mounts; ip -4 -o addr show eth0"]);
        assert!(o.success(), "{o}");
        assert!(o.stdout.starts_with(&a.hostname), "{o}");
        assert!(o.stdout.contains("tmpfs") && o.stdout.contains(a.ip()), "{o}");
        assert!(o.stdout.lines().nth(1).and_then(|n| n.parse::<u32>().ok()).is_some_and(|n| n >= 2), "{o}");
        let ns = a.ns.clone();
        drop(net);
        assert!(!run_args("ip", &["netns", "list"]).stdout.contains(&ns));
    }
}
