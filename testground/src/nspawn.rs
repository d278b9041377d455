//! Real Debian 12 hosts with systemd as PID 1, booted with `systemd-nspawn`
//! (reference/systemd-hosts.md), for what needs a real init system (unit files, `systemctl`,
//! journald, reboots):
//! - [`base_rootfs`]: a debootstrap'ed bookworm root filesystem with sshd, built once (about
//!   80 s) under a lock and cached in [`CACHE_DIR`];
//! - [`SystemdNet`]: a bridge in the root namespace with a /24 of a testground [`Slot`] (the
//!   `machine` CLI and the docker CLI reach the hosts directly, as they would real servers);
//! - [`SystemdHost`]: an overlay of the base rootfs (12 MB per host) booted with nspawn in a
//!   cgroup of its own in every hierarchy, a static address on the bridge, root's
//!   `authorized_keys`, and an ext4 directory bound at `/var/lib/flotilla` (an engine's data
//!   root cannot sit on the overlay). A guest reboot (`shutdown -r now`, nspawn's exit code
//!   133) boots it again, like `systemd-nspawn@.service` does.
//!
//! Drop stops the guest cleanly (SIGTERM to nspawn, SIGKILL after a grace), kills whatever is
//! left in its cgroups, unmounts the overlay, removes the cgroups, the per-host directory, the
//! bridge, its veths and the FORWARD rule. A killed run's leftovers are removed when its slot
//! is taken again.
use crate::cleanup::{self, Resources};
use crate::cmd::{self, run_args, Output};
use crate::slot::Slot;
use anyhow::{bail, Context, Result};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the base rootfs and the hosts' overlays live (ext4, outside /tmp).
pub const CACHE_DIR: &str = "/var/cache/flotilla-test";
mod rootfs;
pub use rootfs::base_rootfs;

/// Runs `c`, failing with its output unless it succeeds.
fn run_ok(c: &mut Command, timeout: Duration) -> Result<Output> {
    let o = cmd::run(c, None, timeout);
    if !o.success() {
        bail!("{o}");
    }
    Ok(o)
}

/// Mount points of the cgroup hierarchies (v1 and v2) here.
fn hierarchies() -> Vec<PathBuf> {
    fsutil::own_cgroup_mounts().into_iter().map(|m| PathBuf::from(m.mount_point)).collect()
}

/// Creates `rel` (e.g. `fltt0042/h1`) in every hierarchy (cpuset gets its parent's cpus and
/// mems, level by level); returns the `cgroup.procs` files to move a process into.
fn make_cgroups(rel: &str) -> Result<Vec<PathBuf>> {
    let mut procs = vec![];
    for h in hierarchies() {
        let mut cur = h.clone();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            let parent = cur.clone();
            cur = cur.join(part);
            if !cur.exists() {
                std::fs::create_dir(&cur).with_context(|| format!("mkdir {}", cur.display()))?;
            }
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(v) = std::fs::read_to_string(parent.join(f)) {
                    if std::fs::read_to_string(cur.join(f)).is_ok_and(|c| c.trim().is_empty()) {
                        std::fs::write(cur.join(f), v.trim()).with_context(|| format!("{}/{f}", cur.display()))?;
                    }
                }
            }
        }
        procs.push(cur.join("cgroup.procs"));
    }
    Ok(procs)
}

/// A bridge for systemd hosts.
pub struct SystemdNet {
    slot: Slot,
    next: AtomicU32,
    forward_rule: bool,
}

impl SystemdNet {
    /// Takes a slot (cleaning what a killed previous holder left), creates the bridge.
    pub fn new() -> Result<SystemdNet> {
        let slot = Slot::acquire();
        let mut net = SystemdNet { slot, next: AtomicU32::new(2), forward_rule: false };
        let dir = net.dir();
        let mut notes = vec![];
        cleanup::kill_processes(&Resources { bridge: None, cgroup_parent: None, roots: vec![dir.clone()] }, &mut notes);
        cleanup::unmount_below(&dir, &mut notes);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("stale {}: {notes:?}", dir.display()))?;
        }
        let (br, gw) = (net.slot.bridge.clone(), net.slot.gateway());
        run_ok(Command::new("ip").args(["link", "add", &br, "type", "bridge"]), Duration::from_secs(10))?;
        run_ok(Command::new("ip").args(["addr", "add", &format!("{gw}/24"), "dev", &br]), Duration::from_secs(10))?;
        run_ok(Command::new("ip").args(["link", "set", &br, "up"]), Duration::from_secs(10))?;
        // Once a dockerd has run here, FORWARD drops bridged traffic between the hosts.
        run_ok(Command::new("iptables").args(["-I", "FORWARD", "-i", &br, "-o", &br, "-j", "ACCEPT"]), Duration::from_secs(10))?;
        net.forward_rule = true;
        Ok(net)
    }

    pub fn bridge(&self) -> &str {
        &self.slot.bridge
    }
    /// The bridge's address: the root namespace as the hosts see it.
    pub fn gateway(&self) -> String {
        self.slot.gateway()
    }
    fn dir(&self) -> PathBuf {
        Path::new(CACHE_DIR).join("hosts").join(&self.slot.bridge)
    }

    /// Boots a host named `name` (also its hostname) with `authorized_keys` for root, and
    /// waits until its sshd accepts connections.
    pub fn host(&self, name: &str, authorized_keys: &str) -> Result<SystemdHost> {
        let rootfs = base_rootfs()?;
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let ip = format!("{}{n}", self.slot.prefix());
        let dir = self.dir().join(name);
        for d in ["upper", "work", "merged", "data"] {
            std::fs::create_dir_all(dir.join(d)).with_context(|| format!("mkdir {}/{d}", dir.display()))?;
        }
        let mut h = SystemdHost {
            name: name.to_string(),
            machine: format!("{}-{n}", self.slot.bridge),
            ip,
            dir: dir.clone(),
            cgroup: format!("{}/{name}", self.slot.cgroup_parent),
            pid: Arc::new(AtomicI32::new(0)),
            stopping: Arc::new(AtomicBool::new(false)),
            done: Arc::new(AtomicBool::new(false)),
            boots: Arc::new(AtomicU32::new(0)),
            thread: None,
        };
        let lower = rootfs.display().to_string();
        let opts = format!("lowerdir={lower},upperdir={}/upper,workdir={}/work", dir.display(), dir.display());
        run_ok(Command::new("mount").args(["-t", "overlay", "overlay", "-o", &opts]).arg(dir.join("merged")), Duration::from_secs(30))?;
        h.write_identity(authorized_keys, &self.gateway())?;
        let procs = make_cgroups(&h.cgroup)?;
        h.boot(&self.slot.bridge, procs)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !tcp_open(&h.ip, 22) {
            if Instant::now() > deadline || h.done.load(Ordering::SeqCst) {
                bail!("host {name} ({}): sshd not reachable; console:\n{}", h.ip, crate::registry::tail(&h.console(), 60));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(h)
    }
}

impl Drop for SystemdNet {
    fn drop(&mut self) {
        let br = self.slot.bridge.clone();
        if self.forward_rule {
            run_args("iptables", &["-D", "FORWARD", "-i", &br, "-o", &br, "-j", "ACCEPT"]);
        }
        let mut notes =
            cleanup::cleanup(&Resources { bridge: Some(br.clone()), cgroup_parent: Some(self.slot.cgroup_parent.clone()), roots: vec![] });
        let dir = self.dir();
        cleanup::unmount_below(&dir, &mut notes);
        if dir.exists() && cleanup::mounts_below(&dir).is_empty() {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                notes.push(format!("rm -rf {}: {e}", dir.display()));
            }
        }
        if !notes.is_empty() {
            eprintln!("testground: systemd net {br} cleanup incomplete:\n  {}", notes.join("\n  "));
        }
    }
}

fn tcp_open(ip: &str, port: u16) -> bool {
    let Ok(addr) = format!("{ip}:{port}").parse::<std::net::SocketAddr>() else { return false };
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

/// One booted systemd host.
pub struct SystemdHost {
    pub name: String,
    /// nspawn's machine name (unique: the veth on the bridge is `vb-<machine>`).
    pub machine: String,
    ip: String,
    dir: PathBuf,
    /// Relative cgroup path (`/fltt0042/h1`) in every hierarchy.
    cgroup: String,
    pid: Arc<AtomicI32>,
    stopping: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    boots: Arc<AtomicU32>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SystemdHost {
    pub fn ip(&self) -> &str {
        &self.ip
    }
    /// How many times the guest booted (1 + reboots).
    pub fn boots(&self) -> u32 {
        self.boots.load(Ordering::SeqCst)
    }
    /// The guest's console output (boot messages) so far.
    pub fn console(&self) -> String {
        std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default()
    }

    fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }

    fn write_identity(&self, authorized_keys: &str, gateway: &str) -> Result<()> {
        let m = self.merged();
        std::fs::write(m.join("etc/hostname"), format!("{}\n", self.name))?;
        std::fs::write(
            m.join("etc/hosts"),
            format!("127.0.0.1 localhost\n127.0.1.1 {}\n::1 localhost ip6-localhost ip6-loopback\n", self.name),
        )?;
        let ssh = m.join("root/.ssh");
        std::fs::create_dir_all(&ssh)?;
        std::fs::set_permissions(&ssh, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        std::fs::write(ssh.join("authorized_keys"), authorized_keys)?;
        std::fs::set_permissions(ssh.join("authorized_keys"), std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        std::fs::create_dir_all(m.join("etc/systemd/network"))?;
        std::fs::write(
            m.join("etc/systemd/network/10-host0.network"),
            format!(
                "[Match]\nName=host0\n\n[Network]\nAddress={}/24\nGateway={gateway}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n",
                self.ip
            ),
        )?;
        Ok(())
    }

    /// Starts the thread that runs nspawn, and runs it again after a guest reboot.
    fn boot(&mut self, bridge: &str, procs: Vec<PathBuf>) -> Result<()> {
        let log = self.dir.join("console.log");
        let procs: Vec<String> = procs.iter().map(|p| p.display().to_string()).collect();
        let args: Vec<String> = vec![
            "-b".into(),
            "--register=no".into(),
            "--keep-unit".into(),
            format!("--network-bridge={bridge}"),
            "--capability=all".into(),
            "--system-call-filter=@keyring bpf".into(),
            "--console=read-only".into(),
            "--link-journal=no".into(),
            "--setenv=SYSTEMD_COLORS=0".into(),
            "-M".into(),
            self.machine.clone(),
            "-D".into(),
            self.merged().display().to_string(),
            format!("--bind={}:/var/lib/flotilla", self.dir.join("data").display()),
        ];
        let (pid, stopping, done, boots, name) =
            (self.pid.clone(), self.stopping.clone(), self.done.clone(), self.boots.clone(), self.name.clone());
        // Moves itself into the host's cgroups first: two guests' systemds must not share one.
        let script = "set -e; for p in $FLOTILLA_CGROUP_PROCS; do echo $$ > \"$p\"; done; exec systemd-nspawn \"$@\"";
        let spawn = move || -> std::io::Result<std::process::Child> {
            let f = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
            let f2 = f.try_clone()?;
            Command::new("sh")
                .args(["-c", script, "sh"])
                .args(&args)
                .env("FLOTILLA_CGROUP_PROCS", procs.join(" "))
                .env("SYSTEMD_LOG_COLOR", "0")
                .stdin(Stdio::null())
                .stdout(f)
                .stderr(f2)
                .process_group(0)
                .spawn()
        };
        let first = spawn().context("spawning systemd-nspawn")?;
        pid.store(first.id() as i32, Ordering::SeqCst);
        boots.store(1, Ordering::SeqCst);
        self.thread = Some(std::thread::spawn(move || {
            let mut child = first;
            loop {
                let st = child.wait();
                let code = st.as_ref().ok().and_then(|s| s.code());
                // 133: the guest asked for a reboot.
                if code != Some(133) || stopping.load(Ordering::SeqCst) {
                    if !stopping.load(Ordering::SeqCst) {
                        eprintln!("testground: systemd host {name} exited: {st:?}");
                    }
                    break;
                }
                match spawn() {
                    Ok(c) => {
                        pid.store(c.id() as i32, Ordering::SeqCst);
                        boots.fetch_add(1, Ordering::SeqCst);
                        child = c;
                    }
                    Err(e) => {
                        eprintln!("testground: rebooting systemd host {name}: {e}");
                        break;
                    }
                }
            }
            pid.store(0, Ordering::SeqCst);
            done.store(true, Ordering::SeqCst);
        }));
        Ok(())
    }

    /// Stops the guest: SIGTERM to nspawn (a clean shutdown), SIGKILL after `grace`.
    fn stop(&mut self, grace: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + grace;
        let mut killed = false;
        let mut termed = 0;
        while !self.done.load(Ordering::SeqCst) {
            let p = self.pid.load(Ordering::SeqCst);
            if p > 0 && termed != p {
                // SAFETY: kill(2) of the nspawn process we spawned (still our unreaped child).
                unsafe { libc::kill(p, libc::SIGTERM) };
                termed = p;
            }
            if Instant::now() > deadline && !killed {
                if p > 0 {
                    // SAFETY: as above; its process group is nspawn's own.
                    unsafe { libc::kill(-p, libc::SIGKILL) };
                }
                killed = true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SystemdHost {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- console of systemd host {} ---\n{}", self.name, crate::registry::tail(&self.console(), 80));
        }
        self.stop(Duration::from_secs(15));
        let mut notes =
            cleanup::cleanup(&Resources { bridge: None, cgroup_parent: Some(self.cgroup.clone()), roots: vec![self.dir.clone()] });
        if cleanup::mounts_below(&self.dir).is_empty() {
            if let Err(e) = std::fs::remove_dir_all(&self.dir) {
                notes.push(format!("rm -rf {}: {e}", self.dir.display()));
            }
        }
        if !notes.is_empty() {
            eprintln!("testground: systemd host {} cleanup incomplete:\n  {}", self.name, notes.join("\n  "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh(key: &Path, h: &SystemdHost, cmd: &str) -> Output {
        let mut c = Command::new("ssh");
        c.args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=quiet",
            "-o",
            "ConnectTimeout=5",
            "-i",
        ]);
        c.arg(key).arg(format!("root@{}", h.ip())).arg(cmd);
        cmd::run(&mut c, None, Duration::from_secs(60))
    }

    #[test]
    fn boots_reboots_and_cleans_up() {
        crate::require_root!();
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("id");
        let o = run_args("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-f", &key.display().to_string()]);
        assert!(o.success(), "{o}");
        let pubk = std::fs::read_to_string(key.with_extension("pub")).expect("pub");
        let net = SystemdNet::new().expect("net");
        let started = Instant::now();
        let h = net.host("sdt1", &pubk).expect("host");
        eprintln!("ssh up {:.1?} after boot", started.elapsed());
        let o = ssh(&key, &h, "hostname; cat /proc/1/comm; systemctl is-system-running --wait; mkdir /sys/fs/cgroup/memory/x && rmdir /sys/fs/cgroup/memory/x && echo cg-rw; stat -f -c %T /var/lib/flotilla; cat /proc/sys/kernel/random/boot_id");
        assert!(o.success(), "{o}");
        let l: Vec<&str> = o.stdout.lines().collect();
        assert_eq!(l[..5], ["sdt1", "systemd", "running", "cg-rw", "ext2/ext3"], "{o}");
        let boot1 = l[5].to_string();
        let t = Instant::now();
        ssh(&key, &h, "shutdown -r now");
        let rebooted = crate::wait_until(Duration::from_secs(60), || {
            let o = ssh(&key, &h, "cat /proc/sys/kernel/random/boot_id");
            o.success() && o.stdout.trim() != boot1 && !o.stdout.trim().is_empty()
        });
        assert!(rebooted, "no reboot; console:\n{}", h.console());
        eprintln!("rebooted in {:.1?}", t.elapsed());
        assert_eq!(h.boots(), 2);
        let (cg, merged) = (h.cgroup.clone(), h.merged());
        drop(h);
        assert!(cleanup::mounts_below(&merged).is_empty());
        assert!(!Path::new("/sys/fs/cgroup/memory").join(cg.trim_start_matches('/')).exists());
        let br = net.bridge().to_string();
        drop(net);
        assert!(!run_args("ip", &["link", "show", &br]).success());
    }
}
