//! Helpers of the discovery/agent end-to-end tests: running `swarm` subcommands, a real
//! `swarm token-service` on a free port, agents (`swarm join`) inside netns hosts.
#![allow(dead_code, unused_imports)]
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testground::cmd::{self, Output};
pub use testground::hosts::{docker_at, Host, HostProc, TestNet};
pub use testground::{require_root, wait_until};

pub mod manager;

pub const SWARM: &str = env!("CARGO_BIN_EXE_swarm");
/// Short timings so the tests stay quick.
pub const HEARTBEAT: &str = "1s";
pub const TTL: &str = "3s";

/// Runs `swarm args` (30 s timeout) with no SWARM_* variables from the environment.
pub fn swarm(args: &[&str]) -> Output {
    swarm_env(args, &[])
}

pub fn swarm_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(SWARM);
    for v in ["SWARM_DISCOVERY", "SWARM_ADVERTISE", "SWARM_DISCOVERY_URL", "SWARM_HOST", "RUST_LOG"] {
        c.env_remove(v);
    }
    c.env("NO_COLOR", "1").args(args).envs(env.iter().copied());
    cmd::run(&mut c, None, Duration::from_secs(30))
}

/// `swarm list` lines, sorted; empty when the command fails.
pub fn list(args: &[&str]) -> Vec<String> {
    let mut a = vec!["list", "--timeout", "5s"];
    a.extend_from_slice(args);
    let o = swarm(&a);
    if !o.success() {
        eprintln!("swarm list failed: {o}");
        return vec![];
    }
    let mut v: Vec<String> = o.stdout.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    v.sort();
    v
}

/// Polls `swarm list` until it gives exactly `want` (sorted); returns how long it took.
pub fn wait_list(args: &[&str], want: &[String], timeout: Duration) -> Duration {
    let mut want = want.to_vec();
    want.sort();
    let t0 = Instant::now();
    let mut last = vec![];
    while t0.elapsed() < timeout {
        last = list(args);
        if last == want {
            return t0.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("swarm list {args:?} gave {last:?}, want {want:?} (waited {timeout:?})");
}

pub use testground::manager::free_port;

/// `swarm token-service` listening on 0.0.0.0:<free port> (so both loopback and netns hosts
/// reach it), its store in a temp dir. Killed on drop.
pub struct TokenService {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    /// Flags after `--listen`/`--data`/`-l`.
    args: Vec<String>,
    https: bool,
}

impl TokenService {
    /// Plain HTTP on every address (`--insecure-http`).
    pub fn start() -> TokenService {
        Self::start_with(&["--insecure-http"])
    }

    /// With these flags (`--tlscert`/`--tlskey` make it https, see [`TokenService::url`]).
    pub fn start_with(args: &[&str]) -> TokenService {
        let dir = tempfile::Builder::new().prefix("flotilla-tokensvc-").tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let https = args.iter().any(|a| a == "--tlscert");
        let mut s = TokenService { child: None, port: free_port(), dir, args, https };
        s.spawn();
        s
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("token-service.log")
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn spawn(&mut self) {
        let f = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap_or_else(|e| panic!("log: {e}"));
        let f2 = f.try_clone().unwrap_or_else(|e| panic!("log: {e}"));
        let child = Command::new(SWARM)
            .args([
                "token-service",
                "--listen",
                &format!("0.0.0.0:{}", self.port),
                "--data",
                &self.data().display().to_string(),
                "-l",
                "debug",
            ])
            .args(&self.args)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(f)
            .stderr(f2)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning the token service: {e}"));
        self.child = Some(child);
        let ok = wait_until(Duration::from_secs(20), || std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok());
        assert!(ok, "token service did not listen; log:\n{}", self.log());
    }

    /// Base URL on loopback, as given to `--discovery-url` (https:// with `--tlscert`).
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}/v1", if self.https { "https" } else { "http" }, self.port)
    }
    /// `host:port` on another address of this machine (e.g. a test bridge's gateway).
    pub fn addr_on(&self, ip: &str) -> String {
        format!("{ip}:{}", self.port)
    }

    /// A new cluster (`swarm create`) and `n` network-namespace hosts; returns the token, the
    /// hosts and the discovery URL the hosts reach the service by (`token://GATEWAY:PORT/v1/TOKEN`).
    pub fn cluster(&self, n: usize) -> (String, TestNet, String) {
        let o = swarm(&["create", "--discovery-url", &self.url()]);
        assert!(o.success(), "{o}");
        let token = o.stdout.trim().to_string();
        let net = TestNet::new(n);
        let disc = format!("token://{}/v1/{token}", self.addr_on(&net.gateway()));
        (token, net, disc)
    }

    /// SIGTERM (the store is flushed) and wait.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        c.wait().ok()
    }

    /// SIGKILL (a crash).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn start_again(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for TokenService {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- token service log ---\n{}", self.log());
        }
        self.kill();
    }
}

/// Starts `swarm join --advertise <host ip>:2375 --heartbeat 1s --ttl 3s --insecure-tcp
/// <host engine flags> <extra> <discovery>` in `host`.
pub fn join(host: &Host, discovery: &str, extra: &[&str]) -> HostProc {
    join_ttl(host, discovery, TTL, extra)
}

/// [`join`] with another `--ttl` (e.g. long, so a killed agent stays listed and turns
/// `Unhealthy` in a manager instead of vanishing).
pub fn join_ttl(host: &Host, discovery: &str, ttl: &str, extra: &[&str]) -> HostProc {
    let mut a: Vec<String> =
        vec!["join".into(), "--advertise".into(), advertise(host), "--heartbeat".into(), HEARTBEAT.into(), "--ttl".into(), ttl.into()];
    a.extend(["--insecure-tcp".into(), "-l".into(), "debug".into()]);
    a.extend(host.engine_args());
    a.extend(extra.iter().map(|s| s.to_string()));
    a.push(discovery.into());
    host.spawn("join", SWARM, &a)
}

/// `<host ip>:2375`
pub fn advertise(host: &Host) -> String {
    format!("{}:2375", host.ip())
}

/// Loads busybox into the engine at `tcp://addr` and runs a container printing `hello from <addr>`.
pub fn run_container_at(addr: &str) {
    let h = format!("tcp://{addr}");
    let archive = testground::busybox_image_archive();
    let o = docker_at(&h, &["load", "-i", &archive.display().to_string()], Duration::from_secs(120));
    assert!(o.success(), "{o}");
    let o = docker_at(&h, &["run", "--rm", "busybox", "echo", &format!("hello from {addr}")], Duration::from_secs(120));
    assert!(o.success() && o.stdout.contains(&format!("hello from {addr}")), "{o}");
    let o = docker_at(&h, &["info", "--format", "{{.Name}}"], Duration::from_secs(30));
    assert!(o.success(), "{o}");
}
