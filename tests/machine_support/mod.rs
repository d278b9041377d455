//! Helpers of the `machine` end-to-end tests: a test network (a bridge from a testground slot)
//! with SSH hosts in network namespaces (provision's `nshost`, the same machinery as the `local`
//! driver), and a `machine` CLI bound to a private store. Everything is removed on drop.
#![allow(dead_code)]
use provision::nshost::{self, NsHost};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use testground::hosts::TestBridge;
#[allow(unused_imports)]
pub use testground::{require_root, Output};

pub const MACHINE: &str = env!("CARGO_BIN_EXE_machine");
/// The `swarm` binary installed on hosts: `$FLOTILLA_SWARM_BIN` (e.g. a build with more
/// subcommands), else the one cargo built for this test.
pub fn swarm() -> String {
    std::env::var("FLOTILLA_SWARM_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_swarm").to_string())
}

/// A bridge with its own /24 (from a testground slot, so parallel tests never clash).
pub struct Net {
    pub bridge: TestBridge,
    next: AtomicU32,
}

impl Net {
    pub fn new() -> Net {
        Net { bridge: TestBridge::new(), next: AtomicU32::new(2) }
    }
    pub fn bridge(&self) -> &str {
        self.bridge.name()
    }
    pub fn gateway(&self) -> String {
        self.bridge.slot.gateway()
    }
    /// `10.16X.Y.0/24`
    pub fn subnet(&self) -> String {
        format!("{}0/24", self.bridge.slot.prefix())
    }
    /// A new SSH host on this network, with `authorized_keys` for root.
    pub fn host(&self, name: &str, authorized_keys: &str) -> TestHost {
        self.host_with(name, authorized_keys, true)
    }

    /// [`Net::host`] whose sshd has no SFTP subsystem (`sftp` and scp's SFTP mode fail there).
    pub fn host_without_sftp(&self, name: &str, authorized_keys: &str) -> TestHost {
        self.host_with(name, authorized_keys, false)
    }

    fn host_with(&self, name: &str, authorized_keys: &str, sftp: bool) -> TestHost {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let dir = tempfile::Builder::new().prefix("flm-host-").tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let ns = NsHost {
            id: nshost::short_id(&[&dir.path().display().to_string(), name]),
            hostname: format!("{name}-base"),
            dir: dir.path().to_path_buf(),
            bridge: self.bridge().to_string(),
            ip: self.bridge.ip(n),
            prefix: 24,
            gateway: self.bridge.gateway_ip(),
        };
        ns.prepare(authorized_keys).unwrap_or_else(|e| panic!("host {name}: {e}"));
        if !sftp {
            let cfg = ns.dir.join("ssh/sshd_config");
            let text = std::fs::read_to_string(&cfg).expect("sshd_config");
            std::fs::write(&cfg, text.lines().filter(|l| !l.starts_with("Subsystem sftp")).map(|l| format!("{l}\n")).collect::<String>())
                .expect("sshd_config");
        }
        ns.start().unwrap_or_else(|e| panic!("host {name}: {e}"));
        let h = TestHost { ns, _dir: dir };
        assert!(
            testground::wait_until(Duration::from_secs(10), || provision::driver::tcp_open(&h.ip(), 22, Duration::from_millis(300))),
            "sshd of {name} not listening; log:\n{}",
            h.log()
        );
        h
    }
}

pub struct TestHost {
    pub ns: NsHost,
    _dir: tempfile::TempDir,
}

impl TestHost {
    pub fn ip(&self) -> String {
        self.ns.ip.to_string()
    }
    /// `--engine-opt` keeping the engine's cgroups inside the host's own.
    pub fn cgroup_opt(&self) -> String {
        format!("cgroup-parent={}/engine", self.ns.cgroup())
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.ns.log_file()).unwrap_or_default()
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.ns.destroy();
    }
}

/// An ed25519 key pair (private key path, public key text).
pub fn keypair(dir: &Path, name: &str) -> (PathBuf, String) {
    let k = dir.join(name);
    let o = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&k).output().expect("ssh-keygen");
    assert!(o.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&o.stderr));
    let pubk = std::fs::read_to_string(k.with_extension("pub")).expect("pub key");
    (k, pubk)
}

/// The `machine` CLI on a private store, and a docker CLI config of its own.
pub struct Cli {
    pub dir: tempfile::TempDir,
}

impl Cli {
    pub fn new() -> Cli {
        Cli { dir: tempfile::Builder::new().prefix("flm-store-").tempdir().unwrap_or_else(|e| panic!("tempdir: {e}")) }
    }
    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }
    pub fn machine_with(&self, args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Output {
        self.machine_swarm_bin(&swarm(), args, stdin, env)
    }
    /// `machine` installing `swarm_bin` on hosts (e.g. for `upgrade` to a newer build).
    pub fn machine_swarm_bin(&self, swarm_bin: &str, args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(MACHINE);
        c.arg("-s").arg(self.store()).arg("--swarm-binary").arg(swarm_bin).args(args);
        c.env_remove("DOCKER_HOST").env("SHELL", "/bin/bash").env("HOME", self.dir.path());
        for (k, v) in env {
            c.env(k, v);
        }
        testground::cmd::run(&mut c, stdin, Duration::from_secs(300))
    }
    pub fn machine(&self, args: &[&str]) -> Output {
        self.machine_with(args, None, &[])
    }
    /// Runs `machine`, panicking with its output unless it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.machine(args);
        assert!(o.success(), "machine failed:\n{o}");
        o.stdout
    }
    /// The variables `machine env NAME [flags]` exports.
    pub fn env_vars(&self, args: &[&str]) -> Vec<(String, String)> {
        let mut a = vec!["env"];
        a.extend_from_slice(args);
        let out = self.ok(&a);
        out.lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect()
    }
    /// The docker CLI with `machine env` of `name` applied.
    pub fn docker(&self, env_args: &[&str], args: &[&str]) -> Output {
        let vars = self.env_vars(env_args);
        let mut c = Command::new(testground::engine::docker_cli());
        c.args(args).env("DOCKER_CONFIG", self.dir.path().join("docker-config"));
        for v in ["DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT"] {
            c.env_remove(v);
        }
        for (k, v) in vars {
            c.env(k, v);
        }
        testground::cmd::run(&mut c, None, Duration::from_secs(120))
    }
    pub fn docker_ok(&self, env_args: &[&str], args: &[&str]) -> String {
        let o = self.docker(env_args, args);
        assert!(o.success(), "docker failed:\n{o}");
        o.stdout
    }
    pub fn load_busybox(&self, name: &str) {
        let p = testground::busybox_image_archive();
        self.docker_ok(&[name], &["load", "-i", &p.display().to_string()]);
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        // Take down whatever the test left (local hosts, bridges), even after a failure.
        let o = self.machine(&["ls", "-q"]);
        let names: Vec<&str> = o.stdout.lines().filter(|l| !l.is_empty()).collect();
        if !names.is_empty() {
            let mut a = vec!["rm", "-f", "-y"];
            a.extend(names);
            let _ = self.machine(&a);
        }
    }
}

/// The ls row of `name` split on whitespace.
pub fn ls_row(ls: &str, name: &str) -> Vec<String> {
    ls.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .map(|l| l.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

/// A child process killed (and reaped) on drop.
pub struct Proc(pub std::process::Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A token service on a free port of every address, and a new token; returns the discovery URL
/// as hosts on the bridge see it.
pub fn token_service(dir: &Path, gateway: &str) -> (Proc, String) {
    let port = testground::port::free_port();
    let ts = Proc(
        Command::new(swarm())
            .args(["token-service", "--insecure-http", "--listen", &format!("0.0.0.0:{port}"), "--data"])
            .arg(dir.join("token-data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("token service"),
    );
    assert!(testground::wait_until(Duration::from_secs(10), || provision::driver::tcp_open("127.0.0.1", port, Duration::from_millis(200))));
    let o =
        Command::new(swarm()).args(["create", "--discovery-url", &format!("http://127.0.0.1:{port}/v1")]).output().expect("swarm create");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let token = String::from_utf8_lossy(&o.stdout).trim().to_string();
    (ts, format!("token://{gateway}:{port}/{token}"))
}

/// Plain OpenSSH to a test host, bypassing machine.
pub fn raw_ssh(key: &Path, ip: &str, cmd: &str) -> String {
    let o = Command::new("ssh")
        .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=quiet", "-i"])
        .arg(key)
        .arg(format!("root@{ip}"))
        .arg(cmd)
        .output()
        .expect("ssh");
    String::from_utf8_lossy(&o.stdout).into_owned()
}
