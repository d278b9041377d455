//! A `swarm manage` process on a loopback port with a docker CLI (and docker-compose) pointed
//! at it; stopped on drop, its log tail printed when the test panics.
use super::{free_port, wait_until, SWARM};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use testground::cmd::{self, Output};

pub struct Manager {
    child: Option<Child>,
    pub addr: String,
    tmp: tempfile::TempDir,
}

/// Short refresh timings so state changes show quickly.
pub const FAST: [&str; 8] =
    ["--heartbeat", "1s", "--engine-refresh-min-interval", "1s", "--engine-refresh-max-interval", "2s", "--engine-failure-retry", "2"];

impl Manager {
    /// Starts `swarm manage -H tcp://127.0.0.1:<free> <FAST> <args>` and waits until `docker
    /// info` shows `healthy` healthy nodes.
    pub fn start(args: &[&str], healthy: usize) -> Manager {
        let tmp = tempfile::Builder::new().prefix("flotilla-manager-").tempdir().expect("tempdir");
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(tmp.path().join("manager.log")).expect("log");
        let child = Command::new(SWARM)
            .args(["manage", "-H", &format!("tcp://{addr}"), "-l", "debug"])
            .args(FAST)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("SWARM_DISCOVERY")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn swarm manage");
        std::fs::create_dir_all(tmp.path().join("docker-config")).expect("mkdir");
        let m = Manager { child: Some(child), addr, tmp };
        m.wait_healthy(healthy, Duration::from_secs(60));
        m
    }

    /// Waits until `docker info` shows exactly `n` healthy nodes.
    pub fn wait_healthy(&self, n: usize, timeout: Duration) {
        let ok = wait_until(timeout, || self.docker(&["info"]).stdout.matches("└ Status: Healthy").count() == n);
        assert!(ok, "the manager did not see {n} healthy nodes:\n{}\n--- manager log ---\n{}", self.docker(&["info"]), self.log());
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    pub fn log(&self) -> String {
        let s = std::fs::read_to_string(self.tmp.path().join("manager.log")).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }

    /// A command with DOCKER_HOST pointed at the manager and a private config dir.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        for v in ["DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION", "COMPOSE_PROJECT_NAME", "COMPOSE_FILE"] {
            c.env_remove(v);
        }
        c.env("DOCKER_HOST", format!("tcp://{}", self.addr)).env("DOCKER_CONFIG", self.tmp.path().join("docker-config"));
        c
    }

    pub fn docker_full(&self, args: &[&str], stdin: Option<&[u8]>, timeout: Duration) -> Output {
        let mut c = self.command(testground::engine::docker_cli());
        c.args(args);
        cmd::run(&mut c, stdin, timeout)
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_full(args, None, Duration::from_secs(60))
    }

    pub fn docker_ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(o.success(), "docker {args:?} failed:\n{o}\n--- manager log ---\n{}", self.log());
        o.stdout
    }

    /// The node a container landed on (from the manager's inspect).
    pub fn node_of(&self, container: &str) -> String {
        self.docker_ok(&["inspect", "-f", "{{.Node.Name}}", container]).trim().to_string()
    }

    /// Loads the test busybox image into every node through the manager.
    pub fn load_busybox(&self) {
        let o =
            self.docker_full(&["load", "-i", &testground::busybox_image_archive().display().to_string()], None, Duration::from_secs(120));
        assert!(o.success() && o.stdout.contains("busybox:latest"), "{o}\n{}", self.log());
    }

    /// SIGTERM, then SIGKILL after 5 s.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) of our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            if !wait_until(Duration::from_secs(5), || matches!(c.try_wait(), Ok(Some(_)))) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- manager log tail ({}) ---\n{}", self.addr, self.log());
        }
    }
}
