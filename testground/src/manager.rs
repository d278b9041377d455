//! A `swarm manage` process for tests: on a free loopback port, its log in a temp dir, and a
//! docker CLI pointed at it (with a private config dir, and TLS client certificates when asked).
//! SIGTERM then SIGKILL after 5 s on [`ManagerProcess::stop`] or drop; the log's tail is printed
//! when the test panics.
use crate::cmd::{self, Output};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A free TCP port (see [`crate::port`]).
pub use crate::port::free_port;

pub struct ManagerProcess {
    child: Option<Child>,
    /// `127.0.0.1:<port>` the manager serves.
    pub addr: String,
    tmp: tempfile::TempDir,
    /// `DOCKER_CERT_PATH` of the docker CLI when the manager serves TLS.
    cert_path: Option<PathBuf>,
}

impl ManagerProcess {
    /// Starts `<swarm> manage -H tcp://127.0.0.1:<free port> <args>` and returns at once.
    pub fn spawn(swarm: impl AsRef<OsStr>, args: &[&str]) -> ManagerProcess {
        let tmp = tempfile::Builder::new().prefix("flotilla-manager-").tempdir().expect("tempdir");
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(tmp.path().join("manager.log")).expect("log");
        let child = Command::new(swarm)
            .args(["manage", "-H", &format!("tcp://{addr}")])
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
        ManagerProcess { child: Some(child), addr, tmp, cert_path: None }
    }

    /// The docker CLI talks TLS to it with the certificates in `dir` (`DOCKER_CERT_PATH`).
    pub fn with_client_certs(mut self, dir: Option<PathBuf>) -> ManagerProcess {
        self.cert_path = dir;
        self
    }

    /// The manager's temp dir (its log, the CLI's config).
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// The last `lines` lines of the manager's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let s = std::fs::read_to_string(self.tmp.path().join("manager.log")).unwrap_or_default();
        let all: Vec<&str> = s.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `program` with DOCKER_HOST pointed at the manager, a private config dir, the TLS
    /// variables when the manager serves TLS, and no other docker/compose settings inherited.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new(program);
        for v in ["DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION", "COMPOSE_PROJECT_NAME", "COMPOSE_FILE"] {
            c.env_remove(v);
        }
        c.env("DOCKER_HOST", format!("tcp://{}", self.addr)).env("DOCKER_CONFIG", self.tmp.path().join("docker-config"));
        if let Some(p) = &self.cert_path {
            c.env("DOCKER_TLS_VERIFY", "1").env("DOCKER_CERT_PATH", p);
        }
        c
    }

    /// `docker <args>` against the manager.
    pub fn docker(&self, args: &[&str], stdin: Option<&[u8]>, timeout: Duration) -> Output {
        let mut c = self.command(crate::engine::docker_cli());
        c.args(args);
        cmd::run(&mut c, stdin, timeout)
    }

    /// How many nodes `docker info` shows as healthy.
    pub fn healthy_nodes(&self) -> usize {
        self.docker(&["info"], None, Duration::from_secs(60)).stdout.matches("└ Status: Healthy").count()
    }

    /// Waits until `docker info` shows exactly `n` healthy nodes; panics with the info and the
    /// log's tail otherwise.
    pub fn wait_healthy(&self, n: usize, timeout: Duration) {
        let ok = crate::wait_until(timeout, || self.healthy_nodes() == n);
        assert!(
            ok,
            "the manager did not see {n} healthy nodes:\n{}\n--- manager log ---\n{}",
            self.docker(&["info"], None, Duration::from_secs(60)),
            self.log_tail(80)
        );
    }

    /// SIGTERM, then SIGKILL after 5 s. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) of our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            if !crate::wait_until(Duration::from_secs(5), || matches!(c.try_wait(), Ok(Some(_)))) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

impl Drop for ManagerProcess {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- manager log tail ({}) ---\n{}", self.addr, self.log_tail(80));
        }
    }
}
