//! A `swarm manage` process on a loopback port with a docker CLI (and docker-compose) pointed
//! at it; stopped on drop, its log tail printed when the test panics.
use super::SWARM;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use testground::cmd::Output;
use testground::manager::ManagerProcess;

pub struct Manager {
    proc: ManagerProcess,
    pub addr: String,
}

/// Short refresh timings so state changes show quickly.
pub const FAST: [&str; 8] =
    ["--heartbeat", "1s", "--engine-refresh-min-interval", "1s", "--engine-refresh-max-interval", "2s", "--engine-failure-retry", "2"];

impl Manager {
    /// Starts `swarm manage -H tcp://127.0.0.1:<free> <FAST> <args>` and waits until `docker
    /// info` shows `healthy` healthy nodes.
    pub fn start(args: &[&str], healthy: usize) -> Manager {
        let all: Vec<&str> = ["-l", "debug"].into_iter().chain(FAST).chain(args.iter().copied()).collect();
        let proc = ManagerProcess::spawn(SWARM, &all);
        let m = Manager { addr: proc.addr.clone(), proc };
        m.wait_healthy(healthy, Duration::from_secs(60));
        m
    }

    /// Waits until `docker info` shows exactly `n` healthy nodes.
    pub fn wait_healthy(&self, n: usize, timeout: Duration) {
        self.proc.wait_healthy(n, timeout)
    }

    pub fn dir(&self) -> &Path {
        self.proc.dir()
    }

    pub fn log(&self) -> String {
        self.proc.log_tail(80)
    }

    /// A command with DOCKER_HOST pointed at the manager and a private config dir.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.proc.command(program)
    }

    pub fn docker_full(&self, args: &[&str], stdin: Option<&[u8]>, timeout: Duration) -> Output {
        self.proc.docker(args, stdin, timeout)
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
        self.proc.stop()
    }
}
