//! Provisioner tests against a simulated host (no network): files land in memory, `mv` and
//! `sha256sum` behave, every command is recorded.
use super::*;
use crate::driver::{generic::Generic, DriverFlags};
use crate::host::{AuthOptions, BaseDriver, HostOptions};
use crate::ssh::{ExecOutput, FakeSsh};
use std::sync::Mutex;

/// FakeSsh plus a tiny file system that understands the provisioner's `mv` and `sha256sum`.
struct SimHost {
    fake: FakeSsh,
    fs: Mutex<BTreeMap<String, Vec<u8>>>,
    os_release: String,
    hostname: Mutex<String>,
    arch: &'static str,
    /// What the login shell prints on stderr before every command (rc files complaining).
    login_noise: &'static str,
}

impl SimHost {
    fn new(os_release: &str) -> SimHost {
        SimHost {
            fake: FakeSsh::new(),
            fs: Mutex::new(BTreeMap::new()),
            os_release: os_release.into(),
            hostname: Mutex::new("box".into()),
            arch: "x86_64",
            login_noise: "",
        }
    }
    fn execs(&self) -> Vec<String> {
        self.fake.calls().into_iter().filter(|c| c.starts_with("exec ")).collect()
    }
}

impl Ssh for SimHost {
    fn exec(&self, cmd: &str) -> Result<ExecOutput, SshError> {
        let mut o = self.exec_stdout(cmd)?;
        o.output.insert_str(0, self.login_noise);
        Ok(o)
    }
    fn exec_stdout(&self, cmd: &str) -> Result<ExecOutput, SshError> {
        let _ = self.fake.exec(cmd);
        let ok = |output: String| Ok(ExecOutput { status: 0, output });
        if cmd.starts_with("cat /etc/os-release") {
            return ok(self.os_release.clone());
        }
        if cmd == "uname -m" {
            return ok(format!("{}\n", self.arch));
        }
        if cmd == "hostname" {
            return ok(format!("{}\n", self.hostname.lock().unwrap()));
        }
        if let Some(rest) = cmd.strip_prefix("hostname ") {
            *self.hostname.lock().unwrap() = rest.split_whitespace().next().unwrap_or("").into();
            return ok(String::new());
        }
        if cmd.starts_with("[ -d /run/systemd/system ]") {
            return Ok(ExecOutput { status: 1, output: String::new() });
        }
        if let Some(rest) = cmd.strip_prefix("sha256sum ") {
            let fs = self.fs.lock().unwrap();
            let mut out = String::new();
            for p in rest.split_whitespace().take_while(|w| !w.starts_with("2>")) {
                if let Some(d) = fs.get(p) {
                    out += &format!("{}  {p}\n", sha256_hex(d));
                }
            }
            return ok(out);
        }
        if cmd.starts_with("chmod ") {
            if let Some((_, mv)) = cmd.split_once("mv -f ") {
                let mut it = mv.split_whitespace();
                let (a, b) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
                let mut fs = self.fs.lock().unwrap();
                if let Some(d) = fs.remove(a) {
                    fs.insert(b.into(), d);
                }
            }
            return ok(String::new());
        }
        ok(String::new())
    }
    fn upload(&self, data: &[u8], path: &str, mode: i32) -> Result<(), SshError> {
        self.fake.upload(data, path, mode)?;
        self.fs.lock().unwrap().insert(path.into(), data.to_vec());
        Ok(())
    }
    fn upload_file(&self, local: &Path, path: &str, mode: i32) -> Result<(), SshError> {
        let d = std::fs::read(local).map_err(|source| SshError::Local { path: local.into(), source })?;
        self.upload(&d, path, mode)
    }
    fn download(&self, path: &str) -> Result<Vec<u8>, SshError> {
        self.fs.lock().unwrap().get(path).cloned().ok_or_else(|| SshError::Session("no such file".into()))
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    host: Host,
    driver: Generic,
    opts: Options,
}

fn fixture(master: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::Store::new(dir.path());
    let mdir = store.reserve("m1").unwrap();
    let bin = dir.path().join("swarm");
    // An x86_64 ELF header is all the provisioner reads of it.
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    (elf[4], elf[5], elf[18]) = (2, 1, 62);
    std::fs::write(&bin, elf).unwrap();
    let mut ho =
        HostOptions { auth_options: AuthOptions::for_machine(&store.certs_dir(), &mdir, vec!["foo.example".into()]), ..Default::default() };
    ho.swarm_options.is_swarm = master;
    ho.swarm_options.master = master;
    ho.swarm_options.agent = master;
    ho.swarm_options.discovery = "token://abc".into();
    let f = DriverFlags { generic_ip_address: Some("10.0.0.5".into()), ..Default::default() };
    let base = BaseDriver { machine_name: "m1".into(), store_path: dir.path().display().to_string(), ..Default::default() };
    let driver = Generic::from_flags(base, &f).unwrap();
    let host = Host { config_version: 3, driver: driver.to_json(), driver_name: "generic".into(), host_options: ho, name: "m1".into() };
    Fixture { _dir: dir, host, driver, opts: Options { swarm_binary: bin, force_certs: false, engine_wait: Duration::ZERO } }
}

const DEBIAN: &str = "ID=debian\nVERSION_ID=\"12\"\n";

#[test]
fn first_run_installs_everything_and_second_changes_nothing() {
    let fx = fixture(false);
    let sim = SimHost::new(DEBIAN);
    let p = Provisioner { host: &fx.host, driver: &fx.driver, ssh: &sim, log: &|_| {} };
    let r1 = p.provision(&fx.opts).unwrap();
    assert_eq!(r1.os, Some(Family::Debian));
    assert!(r1.regenerated_cert);
    for f in
        [files::REMOTE_BIN, files::CA, files::SERVER_CERT, files::SERVER_KEY, files::CTL, files::SUPERVISOR, "/etc/flotilla/engine.cmd"]
    {
        assert!(r1.uploaded.iter().any(|u| u == f), "{f} not uploaded: {:?}", r1.uploaded);
        assert!(sim.fs.lock().unwrap().contains_key(f), "{f} not on host");
    }
    assert_eq!(r1.restarted, vec![Svc::Engine]);
    assert_eq!(*sim.hostname.lock().unwrap(), "m1");
    let cmd = String::from_utf8(sim.fs.lock().unwrap()["/etc/flotilla/engine.cmd"].clone()).unwrap();
    assert!(cmd.contains("--label provider=generic"), "{cmd}");
    // The server cert names the IP, localhost and the --tls-san.
    let info = certs::cert_info(Path::new(&fx.host.host_options.auth_options.server_cert_path)).unwrap();
    assert!(info.covers("10.0.0.5") && info.covers("localhost") && info.covers("foo.example"));
    // Copies for DOCKER_CERT_PATH.
    for f in ["ca.pem", "cert.pem", "key.pem"] {
        assert!(Path::new(&fx.host.host_options.auth_options.store_path).join(f).is_file());
    }

    let before = sim.execs().len();
    let r2 = p.provision(&fx.opts).unwrap();
    assert!(r2.uploaded.is_empty(), "{:?}", r2.uploaded);
    assert!(r2.restarted.is_empty() && !r2.regenerated_cert);
    assert_eq!(r2.started, vec![Svc::Engine]);
    let new: Vec<String> = sim.execs()[before..].to_vec();
    assert!(!new.iter().any(|c| c.contains("restart") || c.contains("hostname m1")), "{new:?}");
}

#[test]
fn a_login_shell_that_complains_on_stderr_does_not_confuse_the_answers() {
    // Seen on a host whose ~/.bashrc runs `pyenv init -`: every command's stderr began with
    // `pyenv: cannot rehash`, and `uname -m` read as that text.
    let fx = fixture(false);
    let mut sim = SimHost::new(DEBIAN);
    sim.login_noise = "rm: cannot remove '/root/.pyenv/shims/tmp.q3HgXJVTEX': No such file or directory\npyenv: cannot rehash: /root/.pyenv/shims isn't writable\n";
    let p = Provisioner { host: &fx.host, driver: &fx.driver, ssh: &sim, log: &|_| {} };
    let r = p.provision(&fx.opts).unwrap();
    assert_eq!(r.os, Some(Family::Debian));
    assert_eq!(*sim.hostname.lock().unwrap(), "m1");
    // Checksums read from stdout only: a second run uploads nothing.
    let r2 = p.provision(&fx.opts).unwrap();
    assert!(r2.uploaded.is_empty(), "{:?}", r2.uploaded);
}

#[test]
fn regenerate_certs_restarts_the_engine_only_for_certs() {
    let fx = fixture(false);
    let sim = SimHost::new(DEBIAN);
    let p = Provisioner { host: &fx.host, driver: &fx.driver, ssh: &sim, log: &|_| {} };
    p.provision(&fx.opts).unwrap();
    let old = std::fs::read(&fx.host.host_options.auth_options.server_cert_path).unwrap();
    let r = p.provision(&Options { force_certs: true, ..fx.opts.clone() }).unwrap();
    assert!(r.regenerated_cert);
    assert_ne!(std::fs::read(&fx.host.host_options.auth_options.server_cert_path).unwrap(), old);
    let mut up = r.uploaded.clone();
    up.sort();
    assert_eq!(up, vec![files::SERVER_KEY.to_string(), files::SERVER_CERT.to_string()]);
    assert_eq!(r.restarted, vec![Svc::Engine]);
}

#[test]
fn ip_change_reissues_server_cert() {
    let mut fx = fixture(false);
    let sim = SimHost::new(DEBIAN);
    {
        let p = Provisioner { host: &fx.host, driver: &fx.driver, ssh: &sim, log: &|_| {} };
        p.provision(&fx.opts).unwrap();
    }
    fx.driver.base.ip_address = "10.0.0.77".into();
    let p = Provisioner { host: &fx.host, driver: &fx.driver, ssh: &sim, log: &|_| {} };
    assert!(p.ensure_local_certs(false).unwrap());
    let info = certs::cert_info(Path::new(&fx.host.host_options.auth_options.server_cert_path)).unwrap();
    assert!(info.covers("10.0.0.77") && !info.covers("10.0.0.5"));
}

#[test]
fn swarm_master_runs_manager_then_agent_and_dropping_swarm_stops_them() {
    let mut fx = fixture(true);
    let sim = SimHost::new("ID=alpine\n");
    {
        let p = Provisioner { host: &fx.host, driver: &fx.driver, ssh: &sim, log: &|_| {} };
        let r = p.provision(&fx.opts).unwrap();
        assert_eq!(r.os, Some(Family::Generic));
        assert_eq!(r.restarted, vec![Svc::Engine, Svc::Manager, Svc::Agent]);
    }
    let fs = sim.fs.lock().unwrap().clone();
    let agent = String::from_utf8(fs["/etc/flotilla/agent.cmd"].clone()).unwrap();
    assert_eq!(agent, "exec /usr/local/bin/swarm join --no-engine --advertise 10.0.0.5:2376 token://abc\n");
    assert!(String::from_utf8(fs["/etc/flotilla/manager.cmd"].clone()).unwrap().contains("--advertise 10.0.0.5:3376 token://abc"));
    assert!(sim.execs().iter().any(|c| c.contains("manage --help")));
    fx.host.host_options.swarm_options = Default::default();
    let p = Provisioner { host: &fx.host, driver: &fx.driver, ssh: &sim, log: &|_| {} };
    let r = p.provision(&fx.opts).unwrap();
    assert_eq!(r.stopped, vec![Svc::Agent, Svc::Manager]);
    assert!(r.restarted.is_empty());
}

#[test]
fn non_root_users_go_through_sudo() {
    let mut fx = fixture(false);
    fx.driver.base.ssh_user = "ubuntu".into();
    let sim = SimHost::new("ID=ubuntu\n");
    let p = Provisioner { host: &fx.host, driver: &fx.driver, ssh: &sim, log: &|_| {} };
    p.provision(&fx.opts).unwrap();
    let execs = sim.execs();
    assert!(
        execs
            .iter()
            .any(|c| c.starts_with("exec sudo sh -c 'install -m 755 /tmp/.flotilla-upload-_usr_local_bin_swarm /usr/local/bin/swarm")),
        "{execs:?}"
    );
    assert!(execs.iter().any(|c| c.starts_with("exec sudo sh -c 'sh /etc/flotilla/ctl.sh restart engine'")), "{execs:?}");
}

#[test]
fn deprovision_stops_everything_and_reloads_systemd() {
    let fx = fixture(true);
    let sim = SimHost::new(DEBIAN);
    let p = Provisioner { host: &fx.host, driver: &fx.driver, ssh: &sim, log: &|_| {} };
    p.deprovision().unwrap();
    let e = sim.execs().join("\n");
    for svc in ["manager", "agent", "engine"] {
        assert!(e.contains(&format!("sh /etc/flotilla/ctl.sh stop {svc}; rm -f /etc/systemd/system/flotilla-{svc}.service")), "{e}");
    }
    // A systemd host forgets the removed units (LoadState not-found) only after a reload.
    assert!(e.contains("rm -rf /etc/flotilla /usr/local/bin/swarm; [ -d /run/systemd/system ] && systemctl daemon-reload"), "{e}");
}

#[test]
fn a_binary_for_another_architecture_is_never_uploaded() {
    let fx = fixture(false);
    let mut sim = SimHost::new(DEBIAN);
    sim.arch = "aarch64";
    let p = Provisioner { host: &fx.host, driver: &fx.driver, ssh: &sim, log: &|_| {} };
    let e = p.provision(&fx.opts).unwrap_err();
    assert!(matches!(&e, ProvisionError::ArchMismatch { built_for, host, .. } if built_for == "x86_64" && host == "aarch64"), "{e}");
    assert!(e.to_string().contains("is built for x86_64, but the host is aarch64 (uname -m)"), "{e}");
    assert!(sim.fs.lock().unwrap().is_empty(), "nothing may be uploaded");
    // Not an executable at all.
    std::fs::write(&fx.opts.swarm_binary, "#!/bin/sh\n").unwrap();
    let sim = SimHost::new(DEBIAN);
    let p = Provisioner { host: &fx.host, driver: &fx.driver, ssh: &sim, log: &|_| {} };
    assert!(matches!(p.provision(&fx.opts), Err(ProvisionError::NotElf(_))));
}
