//! Turns a host reachable over SSH into a TLS-secured Flotilla engine, optionally a swarm
//! agent and manager: detect the OS, set the hostname, upload our `swarm` binary, certs and
//! service files under `/etc/flotilla`, run the services under systemd (when it is PID 1) or
//! our supervisor, and wait until the engine answers over TLS. Idempotent: files are compared
//! by hash first, and a service restarts only when something it uses changed.
pub mod arch;
pub mod detect;
pub mod engine_check;
pub mod files;

use crate::certs::{self, CaPaths, CertError};
use crate::driver::Driver;
use crate::host::Host;
use crate::ssh::{quote, read, run, Ssh, SshError};
use detect::Family;
use files::Svc;
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error("{0}")]
    Failed(String),
    #[error("Unable to verify the Docker daemon is listening: {detail}\n--- last lines of the engine's log on the host ---\n{logs}")]
    EngineDown { detail: ProbeError, logs: String },
    #[error("the swarm {svc} did not come up: {detail}\n--- last lines of its log on the host ---\n{logs}")]
    SwarmDown { svc: &'static str, detail: ProbeError, logs: String },
    #[error("the swarm binary {binary} is built for {built_for}, but the host is {host} (uname -m): pass --swarm-binary (or MACHINE_SWARM_BINARY) with a build for {host}")]
    ArchMismatch { binary: PathBuf, built_for: String, host: String },
    #[error("the swarm binary {0} is not a Linux executable (no ELF header): pass --swarm-binary with a build of swarm")]
    NotElf(PathBuf),
    #[error("{path}: {source}")]
    Local { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Driver(#[from] crate::driver::DriverError),
    #[error(transparent)]
    EngineFlags(#[from] engine_check::EngineCheckError),
}

/// Why a service did not answer over TLS (the last attempt of [`poll`]).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Tls(#[from] crate::tlsclient::TlsCheckError),
    #[error("GET {path}: {status} {body}")]
    Status { path: &'static str, status: u16, body: String },
}

/// How to provision.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `swarm` binary to install on the host.
    pub swarm_binary: PathBuf,
    /// Re-issue the server certificate even if it is still valid (`regenerate-certs`).
    pub force_certs: bool,
    /// How long to wait for the engine (and manager) over TLS; zero skips the wait.
    pub engine_wait: Duration,
}

/// What a run changed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    pub os: Option<Family>,
    pub uploaded: Vec<String>,
    pub restarted: Vec<Svc>,
    pub started: Vec<Svc>,
    pub stopped: Vec<Svc>,
    pub regenerated_cert: bool,
}

pub struct Provisioner<'a> {
    pub host: &'a Host,
    pub driver: &'a dyn Driver,
    pub ssh: &'a dyn Ssh,
    /// Prints a progress line.
    pub log: &'a dyn Fn(&str),
}

fn local_io(path: &Path) -> impl FnOnce(std::io::Error) -> ProvisionError + '_ {
    move |source| ProvisionError::Local { path: path.to_path_buf(), source }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

fn file_sha256(p: &Path) -> Result<String, ProvisionError> {
    let mut f = std::fs::File::open(p).map_err(local_io(p))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf).map_err(local_io(p))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// The services a machine runs, in start order.
pub fn wanted_services(h: &Host) -> Vec<Svc> {
    let s = &h.host_options.swarm_options;
    let mut v = vec![Svc::Engine];
    if s.master {
        v.push(Svc::Manager);
    }
    if s.agent {
        v.push(Svc::Agent);
    }
    v
}

/// The local CA and client certificate paths recorded for the machine.
pub fn ca_paths(h: &Host) -> CaPaths {
    let a = &h.host_options.auth_options;
    CaPaths {
        ca_cert: a.ca_cert_path.clone().into(),
        ca_key: a.ca_private_key_path.clone().into(),
        client_cert: a.client_cert_path.clone().into(),
        client_key: a.client_key_path.clone().into(),
    }
}

impl Provisioner<'_> {
    fn user(&self) -> String {
        self.driver.ssh_target().map(|t| t.user).unwrap_or_else(|| "root".into())
    }

    /// Runs `cmd` as root (through `sudo sh -c` for other users).
    fn root(&self, cmd: &str) -> Result<String, ProvisionError> {
        let c = if self.user() == "root" { cmd.to_string() } else { format!("sudo sh -c {}", quote(cmd)) };
        Ok(run(self.ssh, &c)?)
    }

    /// Like [`Self::root`], stdout only, for answers that are parsed.
    fn root_read(&self, cmd: &str) -> Result<String, ProvisionError> {
        let c = if self.user() == "root" { cmd.to_string() } else { format!("sudo sh -c {}", quote(cmd)) };
        Ok(read(self.ssh, &c)?)
    }

    fn ip(&self) -> Result<String, ProvisionError> {
        Ok(self.driver.ip()?)
    }

    /// Detects the OS from `/etc/os-release` (generic fallback).
    pub fn detect(&self) -> Result<Family, ProvisionError> {
        let text = read(self.ssh, "cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null || true")?;
        let os = detect::parse_os_release(&text);
        let f = Family::detect(&os);
        if f == Family::Generic {
            tracing::info!("OS {:?} ({}) not recognised: using the generic provisioner", os.id, os.pretty_name);
        }
        Ok(f)
    }

    /// Writes `data` to `path` on the host (atomically: temp file, then rename).
    fn put(&self, path: &str, data: Option<&[u8]>, local: Option<&Path>, mode: i32) -> Result<(), ProvisionError> {
        let user = self.user();
        let tmp = if user == "root" { format!("{path}.flotilla-new") } else { format!("/tmp/.flotilla-upload-{}", path.replace('/', "_")) };
        match (data, local) {
            (Some(d), _) => self.ssh.upload(d, &tmp, mode)?,
            (None, Some(l)) => self.ssh.upload_file(l, &tmp, mode)?,
            (None, None) => return Err(ProvisionError::Failed(format!("nothing to upload to {path}"))),
        }
        if user == "root" {
            self.root(&format!("chmod {mode:o} {t} && mv -f {t} {p}", t = quote(&tmp), p = quote(path)))?;
        } else {
            self.root(&format!("install -m {mode:o} {t} {p} && rm -f {t}", t = quote(&tmp), p = quote(path)))?;
        }
        Ok(())
    }

    /// sha256 of remote files (absent ones are missing from the map).
    fn remote_hashes(&self, paths: &[String]) -> Result<BTreeMap<String, String>, ProvisionError> {
        let args: Vec<String> = paths.iter().map(|p| quote(p)).collect();
        let out = self.root_read(&format!("sha256sum {} 2>/dev/null; true", args.join(" ")))?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once("  ").or_else(|| l.split_once(" *")))
            .map(|(h, p)| (p.trim().to_string(), h.trim().to_string()))
            .collect())
    }

    fn set_hostname(&self) -> Result<(), ProvisionError> {
        let name = &self.host.name;
        let cur = read(self.ssh, "hostname")?;
        if cur.trim() == name {
            return Ok(());
        }
        (self.log)(&format!("Setting hostname to {name}..."));
        let n = quote(name);
        self.root(&format!(
            "hostname {n} && echo {n} > /etc/hostname && if grep -q '^127.0.1.1' /etc/hosts; then sed -i 's/^127.0.1.1.*/127.0.1.1 {name}/' /etc/hosts; else echo '127.0.1.1 {name}' >> /etc/hosts; fi"
        ))?;
        Ok(())
    }

    fn ensure_tools(&self, f: Family) -> Result<(), ProvisionError> {
        let have = self.ssh.exec("command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || [ -x /sbin/iptables ]")?;
        if have.status == 0 {
            return Ok(());
        }
        let Some(cmd) = f.install_cmd("iptables") else {
            return Err(ProvisionError::Failed("iptables is missing on the host and its OS is not one whose packages we know: install iptables, then run `machine provision`".into()));
        };
        (self.log)("Installing iptables...");
        self.root(&cmd)?;
        Ok(())
    }

    /// Makes sure the local server certificate is valid for the host's IP, `localhost` and
    /// the `--tls-san` values (re-issuing it when `force`, missing, expiring, or when the IP
    /// changed), and that the machine directory holds copies of the CA and client cert.
    /// Returns true when the server certificate was (re)issued.
    pub fn ensure_local_certs(&self, force: bool) -> Result<bool, ProvisionError> {
        let a = &self.host.host_options.auth_options;
        let ca = ca_paths(self.host);
        certs::bootstrap(&ca, false)?;
        let ip = self.ip()?;
        let ip_host = ip
            .rsplit_once(':')
            .filter(|_| !ip.contains('[') && ip.matches(':').count() == 1)
            .map(|(h, _)| h.to_string())
            .unwrap_or(ip.clone());
        let (sc, sk) = (PathBuf::from(&a.server_cert_path), PathBuf::from(&a.server_key_path));
        let ca_subject = certs::cert_info(&ca.ca_cert)?.subject;
        let ok = !force
            && sk.is_file()
            && certs::cert_info(&sc).is_ok_and(|i| {
                i.valid_for_days(certs::RENEW_BEFORE_DAYS)
                    && i.covers(&ip_host)
                    && i.covers("localhost")
                    && a.server_cert_sans.iter().all(|s| i.covers(s))
                    && i.issuer == ca_subject
            });
        if !ok {
            (self.log)("Generating server certificate...");
            let master = self.host.host_options.swarm_options.master;
            certs::write_server_cert(&ca, &self.host.name, &ip_host, &a.server_cert_sans, master, &sc, &sk)?;
        }
        let dir = PathBuf::from(&a.store_path);
        for (src, name) in [(&ca.ca_cert, "ca.pem"), (&ca.client_cert, "cert.pem"), (&ca.client_key, "key.pem")] {
            let data = std::fs::read(src).map_err(local_io(src))?;
            let dst = dir.join(name);
            if std::fs::read(&dst).ok().as_deref() != Some(&data[..]) {
                crate::fsutil::write_atomic(&dst, &data, 0o600).map_err(local_io(&dst))?;
            }
        }
        // Stores made before certificates were 0600 too.
        for f in [sc.clone(), sk.clone(), dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem")] {
            use std::os::unix::fs::PermissionsExt;
            if std::fs::metadata(&f).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
                std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).map_err(local_io(&f))?;
            }
        }
        Ok(!ok)
    }

    /// Fails unless the host's architecture (`uname -m`) runs `binary`.
    pub fn check_arch(&self, binary: &Path) -> Result<(), ProvisionError> {
        let local = arch::elf_arch(binary).map_err(|source| ProvisionError::Local { path: binary.into(), source })?;
        let local = local.ok_or_else(|| ProvisionError::NotElf(binary.into()))?;
        let host = read(self.ssh, "uname -m")?.trim().to_string();
        if !local.runs_on.contains(&host.as_str()) {
            return Err(ProvisionError::ArchMismatch { binary: binary.into(), built_for: local.name, host });
        }
        Ok(())
    }

    /// The full run.
    pub fn provision(&self, opts: &Options) -> Result<Report, ProvisionError> {
        let mut rep = Report::default();
        let family = self.detect()?;
        self.check_arch(&opts.swarm_binary)?;
        rep.os = Some(family);
        (self.log)(&format!("Provisioning with {}...", family.name()));
        self.set_hostname()?;
        self.ensure_tools(family)?;
        rep.regenerated_cert = self.ensure_local_certs(opts.force_certs)?;
        let a = &self.host.host_options.auth_options;
        let ip = self.ip()?;
        let port = self.driver.engine_port();
        let systemd = self.ssh.exec("[ -d /run/systemd/system ]")?.status == 0;
        let wanted = wanted_services(self.host);
        let read = |p: &str| std::fs::read(p).map_err(local_io(Path::new(p)));

        // Desired files: (remote path, content, mode).
        let mut want: Vec<(String, Vec<u8>, i32)> = vec![
            (files::CA.into(), read(&a.ca_cert_path)?, 0o644),
            (files::SERVER_CERT.into(), read(&a.server_cert_path)?, 0o644),
            (files::SERVER_KEY.into(), read(&a.server_key_path)?, 0o600),
            (files::CTL.into(), files::ctl_script().into_bytes(), 0o755),
            (files::SUPERVISOR.into(), files::supervisor_script().into_bytes(), 0o755),
        ];
        let mut env = self.host.host_options.engine_options.env.clone();
        let (disc_env, disc_ca) = files::discovery_env(
            std::env::var("SWARM_DISCOVERY_URL").ok(),
            std::env::var("SWARM_DISCOVERY_CACERT").ok().filter(|p| !p.is_empty()),
        );
        env.extend(disc_env);
        if let Some(ca) = disc_ca {
            want.push((files::DISCOVERY_CA.into(), read(&ca)?, 0o644));
        }
        for svc in &wanted {
            let cmd = match svc {
                Svc::Engine => files::engine_cmd(self.host, &ip, port, &self.driver.engine_flags()),
                Svc::Agent => files::agent_cmd(self.host, &ip, port),
                Svc::Manager => files::manager_cmd(self.host, &ip),
            };
            want.push((svc.cmd_path(), cmd.into_bytes(), 0o644));
            want.push((svc.env_path(), files::env_file(&env).into_bytes(), 0o600));
            if systemd {
                want.push((svc.unit_path(), files::systemd_unit(*svc).into_bytes(), 0o644));
            }
        }
        let mut paths: Vec<String> = want.iter().map(|w| w.0.clone()).collect();
        paths.push(files::REMOTE_BIN.into());
        for svc in Svc::ALL.iter().filter(|s| !wanted.contains(s)) {
            paths.push(svc.cmd_path());
        }
        self.root(&format!("mkdir -p {} /var/log/flotilla", files::REMOTE_DIR))?;
        let remote = self.remote_hashes(&paths)?;

        (self.log)("Copying certs to the remote machine...");
        let mut changed: Vec<String> = vec![];
        let bin_hash = file_sha256(&opts.swarm_binary)?;
        if remote.get(files::REMOTE_BIN) != Some(&bin_hash) {
            (self.log)(&format!("Uploading {} to the host...", opts.swarm_binary.display()));
            self.put(files::REMOTE_BIN, None, Some(&opts.swarm_binary), 0o755)?;
            changed.push(files::REMOTE_BIN.into());
        }
        if !engine_check::runs_here(&opts.swarm_binary) {
            // Not checked before (the binary does not run here): the host checks, before any
            // configuration is written.
            self.check_engine_remote(&ip, port)?;
        }
        (self.log)("Setting Flotilla configuration on the remote daemon...");
        for (path, data, mode) in &want {
            if remote.get(path) != Some(&sha256_hex(data)) {
                self.put(path, Some(data), None, *mode)?;
                changed.push(path.clone());
            }
        }
        rep.uploaded = changed.clone();
        let touched = |svc: Svc| -> bool {
            let mut deps = vec![files::REMOTE_BIN.to_string(), svc.cmd_path(), svc.env_path(), svc.unit_path()];
            if svc != Svc::Agent {
                deps.extend([files::CA.into(), files::SERVER_CERT.into(), files::SERVER_KEY.into()]);
            }
            deps.iter().any(|d| changed.contains(d))
        };
        // Services no longer wanted go away first.
        for svc in Svc::ALL.iter().filter(|s| !wanted.contains(s)) {
            if remote.contains_key(&svc.cmd_path()) {
                (self.log)(&format!("Stopping the swarm {}...", svc.name()));
                self.root(&format!(
                    "sh {ctl} stop {n}; rm -f {c} {e} {u}",
                    ctl = files::CTL,
                    n = svc.name(),
                    c = svc.cmd_path(),
                    e = svc.env_path(),
                    u = svc.unit_path()
                ))?;
                rep.stopped.push(*svc);
            }
        }
        for svc in &wanted {
            if *svc != Svc::Engine {
                self.check_subcommand(*svc)?;
            }
            let act = if touched(*svc) { "restart" } else { "start" };
            self.root(&format!("sh {} {act} {}", files::CTL, svc.name()))?;
            if act == "restart" {
                rep.restarted.push(*svc);
            } else {
                rep.started.push(*svc);
            }
            if *svc == Svc::Engine && !opts.engine_wait.is_zero() {
                self.wait_engine(opts.engine_wait)?;
            }
            if *svc == Svc::Manager && !opts.engine_wait.is_zero() {
                self.wait_manager(opts.engine_wait)?;
            }
        }
        Ok(rep)
    }

    /// `swarm check-engine` with the engine's flags, run by the binary on the host.
    fn check_engine_remote(&self, ip: &str, port: u16) -> Result<(), ProvisionError> {
        let args = files::engine_args(self.host, ip, port, &self.driver.engine_flags());
        let quoted: Vec<String> = args.iter().map(|a| quote(a)).collect();
        let o = self.ssh.exec(&format!("{} {} {}", files::REMOTE_BIN, engine_check::CHECK_CMD, quoted.join(" ")))?;
        if o.status != 0 {
            return Err(engine_check::EngineCheckError::Refused { reason: engine_check::reason(&o.output) }.into());
        }
        Ok(())
    }

    fn check_subcommand(&self, svc: Svc) -> Result<(), ProvisionError> {
        let sub = if svc == Svc::Agent { "join" } else { "manage" };
        let o = self.ssh.exec(&format!("{} {sub} --help >/dev/null 2>&1", files::REMOTE_BIN))?;
        if o.status != 0 {
            return Err(ProvisionError::Failed(format!(
                "the swarm binary on the host has no `{sub}` command: upload a build that has it with --swarm-binary"
            )));
        }
        Ok(())
    }

    /// Starts the machine's services if they are not running (after a host start).
    pub fn start_services(&self, wait: Duration) -> Result<(), ProvisionError> {
        for svc in wanted_services(self.host) {
            self.root(&format!("sh {} start {}", files::CTL, svc.name()))?;
            if svc == Svc::Engine && !wait.is_zero() {
                self.wait_engine(wait)?;
            }
        }
        Ok(())
    }

    /// Restarts the machine's services (generic `restart`: hosts are not rebooted).
    pub fn restart_services(&self, wait: Duration) -> Result<(), ProvisionError> {
        for svc in wanted_services(self.host) {
            self.root(&format!("sh {} restart {}", files::CTL, svc.name()))?;
            if svc == Svc::Engine && !wait.is_zero() {
                self.wait_engine(wait)?;
            }
        }
        Ok(())
    }

    /// Stops every Flotilla service and removes what provisioning installed (data stays).
    pub fn deprovision(&self) -> Result<(), ProvisionError> {
        let mut cmd = String::new();
        for svc in Svc::ALL.iter().rev() {
            cmd += &format!("[ -f {ctl} ] && sh {ctl} stop {n}; rm -f {u}; ", ctl = files::CTL, n = svc.name(), u = svc.unit_path());
        }
        // systemd forgets the removed units only on a reload.
        cmd += &format!("rm -rf {} {}; [ -d /run/systemd/system ] && systemctl daemon-reload; true", files::REMOTE_DIR, files::REMOTE_BIN);
        self.root(&cmd)?;
        Ok(())
    }

    fn logs(&self, svc: Svc) -> String {
        self.ssh.exec(&format!("sh {} logs {}", files::CTL, svc.name())).map(|o| o.output).unwrap_or_default()
    }

    /// Polls `GET /_ping` over TLS with the client certificate until it answers 200.
    pub fn wait_engine(&self, wait: Duration) -> Result<(), ProvisionError> {
        let ip = self.ip()?;
        let res = poll(wait, || {
            let ca = ca_paths(self.host);
            let cfg = crate::tlsclient::client_config(&ca.ca_cert, &ca.client_cert, &ca.client_key)?;
            match crate::tlsclient::get(&cfg, &ip, self.driver.engine_port(), "/_ping", Duration::from_secs(5))? {
                (200, _) => Ok(()),
                (status, b) => Err(ProbeError::Status { path: "/_ping", status, body: b.trim().to_string() }),
            }
        });
        res.map_err(|detail| ProvisionError::EngineDown { detail, logs: self.logs(Svc::Engine) })
    }

    fn wait_manager(&self, wait: Duration) -> Result<(), ProvisionError> {
        let ip = self.ip()?;
        let port = self.host.host_options.swarm_options.manager_port();
        let res = poll(wait, || {
            let ca = ca_paths(self.host);
            let cfg = crate::tlsclient::client_config(&ca.ca_cert, &ca.client_cert, &ca.client_key)?;
            Ok(crate::tlsclient::handshake(&cfg, &ip, port, Duration::from_secs(5))?)
        });
        res.map_err(|detail| ProvisionError::SwarmDown { svc: "manager", detail, logs: self.logs(Svc::Manager) })
    }
}

/// Calls `f` every 500 ms until it succeeds or `wait` passes; returns the last error.
fn poll<E>(wait: Duration, mut f: impl FnMut() -> Result<(), E>) -> Result<(), E> {
    let deadline = Instant::now() + wait;
    loop {
        match f() {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

#[cfg(test)]
mod tests;
