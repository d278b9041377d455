//! A temporary `swarm engine` on a private socket, data root, exec root, bridge, subnet and
//! cgroup parent, with a `docker` CLI pointed at it. Everything is torn down on drop.
use crate::cleanup::{self, Resources};
use crate::cmd::{self, Output};
use crate::http::{self, Request, Response};
use crate::image;
use crate::slot::Slot;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The docker CLI the tests drive (28.x, negotiates API 1.41).
pub const DOCKER_CLI: &str = "/usr/local/bin/docker";

/// `$FLOTILLA_DOCKER_CLI`, else [`DOCKER_CLI`] when present, else `docker` from PATH.
pub fn docker_cli() -> PathBuf {
    if let Some(p) = std::env::var_os("FLOTILLA_DOCKER_CLI") {
        return PathBuf::from(p);
    }
    if Path::new(DOCKER_CLI).is_file() {
        return PathBuf::from(DOCKER_CLI);
    }
    PathBuf::from("docker")
}
/// Default timeout of one docker command.
pub const DOCKER_TIMEOUT: Duration = Duration::from_secs(120);

/// Options for [`Engine::start_with`].
#[derive(Debug, Clone)]
pub struct EngineOpts {
    /// The `swarm` binary; see [`swarm_bin`] for the default.
    pub bin: Option<PathBuf>,
    /// `--label k=v` flags.
    pub labels: Vec<String>,
    /// `--insecure-registry` flags.
    pub insecure_registries: Vec<String>,
    /// `--log-level` (default `debug`: the log is only printed when a test fails).
    pub log_level: String,
    /// Any further arguments to `swarm engine`.
    pub extra_args: Vec<String>,
    /// How long to wait for `/_ping`.
    pub ready_timeout: Duration,
    /// Run the real dockerd (Debian docker.io) instead of `swarm engine`, to check what the tests
    /// expect against Docker itself. Default: `$FLOTILLA_TEST_DOCKERD` is set. Run such tests
    /// one at a time (`--test-threads 1`): dockerd's own chains are shared.
    pub dockerd: bool,
}

impl Default for EngineOpts {
    fn default() -> Self {
        EngineOpts {
            bin: None,
            labels: Vec::new(),
            insecure_registries: Vec::new(),
            log_level: "debug".into(),
            extra_args: Vec::new(),
            ready_timeout: Duration::from_secs(30),
            dockerd: std::env::var_os("FLOTILLA_TEST_DOCKERD").is_some(),
        }
    }
}

impl EngineOpts {
    pub fn bin(mut self, p: impl Into<PathBuf>) -> Self {
        self.bin = Some(p.into());
        self
    }
    pub fn label(mut self, kv: &str) -> Self {
        self.labels.push(kv.into());
        self
    }
    pub fn insecure_registry(mut self, r: &str) -> Self {
        self.insecure_registries.push(r.into());
        self
    }
    pub fn arg(mut self, a: &str) -> Self {
        self.extra_args.push(a.into());
        self
    }
}

/// Finds the `swarm` binary: `$FLOTILLA_SWARM_BIN`, `$CARGO_BIN_EXE_swarm` (set at run time by
/// nextest), `<target>/<profile>/swarm` next to the running test executable
/// (`<target>/<profile>/deps/<test>`), then `<workspace>/target/debug/swarm`.
pub fn swarm_bin() -> PathBuf {
    for var in ["FLOTILLA_SWARM_BIN", "CARGO_BIN_EXE_swarm"] {
        if let Some(p) = std::env::var_os(var) {
            return PathBuf::from(p);
        }
    }
    if let Ok(exe) = std::env::current_exe() {
        for anc in exe.ancestors().skip(1).take(3) {
            let c = anc.join("swarm");
            if c.is_file() {
                return c;
            }
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/swarm")
}

/// `$FLOTILLA_SWARM_BIN` (overrides everything), else the test's `opts.bin`, else [`swarm_bin`].
fn resolve_bin(opts: &EngineOpts) -> PathBuf {
    std::env::var_os("FLOTILLA_SWARM_BIN").map(PathBuf::from).or_else(|| opts.bin.clone()).unwrap_or_else(swarm_bin)
}

pub struct Engine {
    child: Option<Child>,
    slot: Slot,
    tmp: Option<tempfile::TempDir>,
    exec_tmp: Option<tempfile::TempDir>,
    socket: PathBuf,
    data_root: PathBuf,
    exec_root: PathBuf,
    docker_config: PathBuf,
    log: PathBuf,
    opts: EngineOpts,
}

impl Engine {
    /// Starts an engine with default options. Panics (with the engine log) on failure.
    pub fn start() -> Engine {
        Self::start_with(EngineOpts::default())
    }

    pub fn start_with(opts: EngineOpts) -> Engine {
        let bin = resolve_bin(&opts);
        assert!(bin.is_file(), "swarm binary not found at {} (build it: cargo build --bin swarm)", bin.display());
        let slot = Slot::acquire();
        let tmp = tempfile::Builder::new().prefix("flotilla-engine-").tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        // Short: unix socket paths (shim sockets) must stay below 108 bytes.
        let exec_tmp =
            tempfile::Builder::new().prefix(&format!("fltx{}-", slot.index)).tempdir_in("/tmp").unwrap_or_else(|e| panic!("tempdir: {e}"));
        let socket = tmp.path().join("docker.sock");
        let data_root = tmp.path().join("data");
        let exec_root = exec_tmp.path().join("exec");
        let docker_config = tmp.path().join("docker-config");
        let log = tmp.path().join("engine.log");
        std::fs::create_dir_all(&docker_config).unwrap_or_else(|e| panic!("mkdir: {e}"));
        let mut engine =
            Engine { child: None, slot, tmp: Some(tmp), exec_tmp: Some(exec_tmp), socket, data_root, exec_root, docker_config, log, opts };
        engine.spawn(&bin);
        engine
    }

    fn args(&self) -> Vec<String> {
        if self.opts.dockerd {
            return self.dockerd_args();
        }
        let mut a: Vec<String> = vec![
            "engine".into(),
            "-H".into(),
            format!("unix://{}", self.socket.display()),
            "--data-root".into(),
            self.data_root.display().to_string(),
            "--exec-root".into(),
            self.exec_root.display().to_string(),
            "--bridge".into(),
            self.slot.bridge.clone(),
            "--bip".into(),
            self.slot.bip(),
            "--cgroup-parent".into(),
            self.slot.cgroup_parent.clone(),
            "--log-level".into(),
            self.opts.log_level.clone(),
        ];
        for l in &self.opts.labels {
            a.extend(["--label".into(), l.clone()]);
        }
        for r in &self.opts.insecure_registries {
            a.extend(["--insecure-registry".into(), r.clone()]);
        }
        a.extend(self.opts.extra_args.iter().cloned());
        a
    }

    fn dockerd_args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            format!("--host=unix://{}", self.socket.display()),
            format!("--data-root={}", self.data_root.display()),
            format!("--exec-root={}", self.exec_root.display()),
            format!("--pidfile={}", self.exec_root.with_file_name("dockerd.pid").display()),
            format!("--bridge={}", self.slot.bridge),
            format!("--cgroup-parent={}", self.slot.cgroup_parent),
            format!("--log-level={}", if self.opts.log_level == "trace" { "debug" } else { &self.opts.log_level }),
        ];
        a.extend(self.opts.labels.iter().map(|l| format!("--label={l}")));
        a.extend(self.opts.insecure_registries.iter().map(|r| format!("--insecure-registry={r}")));
        a.extend(self.opts.extra_args.iter().cloned());
        a
    }

    /// True when this is the real dockerd (see [`EngineOpts::dockerd`]): tests skip the checks
    /// that are specific to our engine.
    pub fn is_dockerd(&self) -> bool {
        self.opts.dockerd
    }

    fn spawn(&mut self, bin: &Path) {
        let bin = if self.opts.dockerd {
            // dockerd uses an existing bridge as is (it creates only docker0 itself).
            let br = &self.slot.bridge;
            if !cmd::run_args("ip", &["link", "show", br]).success() {
                cmd::run_args("ip", &["link", "add", br, "type", "bridge"]);
                cmd::run_args("ip", &["addr", "add", &self.slot.bip(), "dev", br]);
                cmd::run_args("ip", &["link", "set", br, "up"]);
            }
            Path::new("/usr/sbin/dockerd")
        } else {
            bin
        };
        let logf = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap_or_else(|e| panic!("log: {e}"));
        let errf = logf.try_clone().unwrap_or_else(|e| panic!("log: {e}"));
        let child = Command::new(bin)
            .args(self.args())
            .env("RUST_BACKTRACE", "1")
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(logf)
            .stderr(errf)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
        self.child = Some(child);
        let deadline = Instant::now() + self.opts.ready_timeout;
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("swarm engine exited early ({st}); log:\n{}", self.log());
                }
            }
            if self.ping() {
                return;
            }
            if Instant::now() > deadline {
                panic!("swarm engine did not answer /_ping within {:?}; log:\n{}", self.opts.ready_timeout, self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ping(&self) -> bool {
        self.socket.exists() && self.api("GET", "/_ping", None).is_ok_and(|r| r.status == 200)
    }

    /// Stops the engine (SIGTERM, SIGKILL after `grace`) and starts it again with the same
    /// roots and names: for persistence tests.
    pub fn restart(&mut self) {
        self.terminate(Duration::from_secs(15));
        let bin = resolve_bin(&self.opts);
        self.spawn(&bin);
    }

    /// SIGTERM, then SIGKILL after `grace`. Returns the exit status if it exited in time.
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let c = self.child.take()?;
        cmd::terminate(c, grace)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
    /// `unix:///…/docker.sock`
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
    pub fn socket(&self) -> &Path {
        &self.socket
    }
    pub fn data_root(&self) -> &Path {
        &self.data_root
    }
    pub fn exec_root(&self) -> &Path {
        &self.exec_root
    }
    pub fn bridge(&self) -> &str {
        &self.slot.bridge
    }
    /// The bridge's own address (the containers' gateway), e.g. `10.160.7.1`.
    pub fn gateway(&self) -> String {
        self.slot.gateway()
    }
    /// The bridge subnet prefix, e.g. `10.160.7.` (containers get addresses in it).
    pub fn subnet_prefix(&self) -> String {
        self.slot.prefix()
    }
    pub fn subnet(&self) -> String {
        format!("{}0/24", self.slot.prefix())
    }
    pub fn cgroup_parent(&self) -> &str {
        &self.slot.cgroup_parent
    }
    /// A unique name for this engine's objects (for container names, tags, canaries…).
    pub fn unique(&self, what: &str) -> String {
        format!("{what}-{}", self.slot.bridge)
    }

    /// The engine log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    pub fn log_tail(&self, n: usize) -> String {
        crate::registry::tail(&self.log(), n)
    }

    /// The environment a docker client needs: `DOCKER_HOST`, a private `DOCKER_CONFIG`.
    pub fn docker_env(&self) -> Vec<(&'static str, String)> {
        vec![("DOCKER_HOST", self.host()), ("DOCKER_CONFIG", self.docker_config.display().to_string())]
    }

    fn prepare(&self, c: &mut Command) {
        for v in ["DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION", "DOCKER_DEFAULT_PLATFORM"] {
            c.env_remove(v);
        }
        for (k, v) in self.docker_env() {
            c.env(k, v);
        }
    }

    /// Runs the docker CLI against this engine.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_full(args, None, DOCKER_TIMEOUT)
    }

    /// Runs the docker CLI with stdin and a timeout.
    pub fn docker_full(&self, args: &[&str], stdin: Option<&[u8]>, timeout: Duration) -> Output {
        let mut c = Command::new(docker_cli());
        c.args(args);
        self.prepare(&mut c);
        cmd::run(&mut c, stdin, timeout)
    }

    /// Runs the docker CLI, panics (with output and engine log) unless it succeeds; returns stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        self.expect_ok(&o);
        o.stdout
    }

    /// Panics with the output and the engine log tail unless `o` succeeded.
    pub fn expect_ok(&self, o: &Output) {
        assert!(o.success(), "command failed:\n{o}\n--- engine log tail ---\n{}", self.log_tail(40));
    }

    /// Runs a bash script with the docker environment set (for pipes such as `docker save | docker load`);
    /// `docker` in it is the CLI of [`docker_cli`].
    pub fn sh(&self, script: &str) -> Output {
        let mut c = Command::new("bash");
        c.args(["-o", "pipefail", "-c", &format!("docker() {{ '{}' \"$@\"; }}\n{script}", docker_cli().display())]);
        self.prepare(&mut c);
        cmd::run(&mut c, None, DOCKER_TIMEOUT)
    }

    /// `docker load -i` of the busybox archive: `busybox:latest` with ID [`image::busybox_image_id`].
    pub fn load_busybox(&self) -> String {
        let p = image::busybox_image_archive();
        let o = self.docker(&["load", "-i", &p.display().to_string()]);
        self.expect_ok(&o);
        image::busybox_image_id()
    }

    /// `docker import -c 'CMD ["sh"]' <rootfs> busybox:latest`; returns the new image ID.
    pub fn import_busybox(&self, reference: &str) -> String {
        let p = image::busybox_rootfs_tar();
        let out = self.docker_ok(&["import", "-c", r#"CMD ["sh"]"#, &p.display().to_string(), reference]);
        out.trim().to_string()
    }

    /// One raw HTTP request to the engine's socket (`path` as sent, e.g. `/v1.41/containers/json`).
    pub fn api(&self, method: &str, path: &str, body: Option<(&str, &[u8])>) -> anyhow::Result<Response> {
        let mut headers = vec![];
        if let Some((ct, _)) = body {
            headers.push(("Content-Type", ct));
        }
        http::unix(&self.socket, &Request { method, path, headers: &headers, body: body.map(|b| b.1).unwrap_or_default() })
    }

    /// Cleans everything up now and returns notes about what could not be removed.
    pub fn teardown(&mut self) -> Vec<String> {
        self.terminate(Duration::from_secs(10));
        let mut notes = Vec::new();
        let res =
            Resources { bridge: Some(self.slot.bridge.clone()), cgroup_parent: Some(self.slot.cgroup_parent.clone()), roots: self.roots() };
        notes.extend(cleanup::cleanup(&res));
        if self.opts.dockerd {
            cleanup::dockerd_leftovers();
        }
        let mounts_left = res.roots.iter().any(|r| !cleanup::mounts_below(r).is_empty());
        if mounts_left {
            // Never delete through a mount that is still there (it could be a host bind mount).
            notes.push("temp dirs kept because mounts remain".into());
            if let Some(t) = self.tmp.take() {
                let _ = t.keep();
            }
            if let Some(t) = self.exec_tmp.take() {
                let _ = t.keep();
            }
        } else {
            for t in [self.tmp.take(), self.exec_tmp.take()].into_iter().flatten() {
                let p = t.path().to_path_buf();
                if let Err(e) = t.close() {
                    notes.push(format!("removing {}: {e}", p.display()));
                }
            }
        }
        notes
    }

    fn roots(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        if let Some(t) = &self.tmp {
            v.push(t.path().to_path_buf());
        }
        if let Some(t) = &self.exec_tmp {
            v.push(t.path().to_path_buf());
        }
        v
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        if self.tmp.is_none() {
            return;
        }
        if panicking {
            self.terminate(Duration::from_secs(10));
            let keep = image::cache_dir().join("failed-logs").join(format!("{}-{}.log", self.slot.bridge, std::process::id()));
            let _ = std::fs::create_dir_all(keep.parent().unwrap_or(Path::new("/tmp")));
            if std::fs::copy(&self.log, &keep).is_ok() {
                eprintln!("--- full engine log kept at {} ---", keep.display());
            }
        }
        let log_tail = self.log_tail(60);
        let notes = self.teardown();
        if panicking {
            eprintln!("--- swarm engine log tail ({}) ---\n{log_tail}", self.slot.bridge);
        }
        if !notes.is_empty() {
            eprintln!("testground: engine {} cleanup incomplete:\n  {}", self.slot.bridge, notes.join("\n  "));
        }
    }
}
