//! A host on this machine: a network namespace on a bridge, with its own hostname, private
//! `/etc`, `/run`, `/var/lib`, `/var/log` and `/usr/local/bin` (copy-on-write overlays of the
//! real ones, upper layers in the host's directory), its data root `/var/lib/flotilla` bound to
//! a plain directory (overlayfs cannot stack on overlayfs), cgroup hierarchies visible (`ip
//! netns exec` hides them) and its own sshd. Every process of the host lives in the cgroup
//! `/flm-<id>` (pids hierarchy), so stopping it reaches everything it started.
//! Used by the `local` driver and by the machine end-to-end tests as "remote" hosts; its
//! building blocks ([`ensure_bridge`], [`connect_netns`], [`enter`], [`setup_script`]) also
//! make testground's test hosts. Needs root.
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum NsHostError {
    #[error("{cmd}: {output}")]
    Cmd { cmd: String, output: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NsHostError + '_ {
    move |source| NsHostError::Io { path: path.to_path_buf(), source }
}

/// Runs a command, returning stdout; error with its stderr unless it succeeds.
pub fn sh(prog: &str, args: &[&str]) -> Result<String, NsHostError> {
    let cmd = format!("{prog} {}", args.join(" "));
    let o = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| NsHostError::Cmd { cmd: cmd.clone(), output: e.to_string() })?;
    if !o.status.success() {
        return Err(NsHostError::Cmd { cmd, output: String::from_utf8_lossy(&o.stderr).trim().to_string() });
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The directories that get a private copy-on-write view.
pub const PRIVATE_DIRS: &[&str] = &["/etc", "/var/lib", "/var/log", "/usr/local/bin"];

/// A short stable id (8 hex digits, FNV-1a) for `parts`.
pub fn short_id(parts: &[&str]) -> String {
    let mut h: u32 = 0x811c9dc5;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= b as u32;
            h = h.wrapping_mul(0x01000193);
        }
    }
    format!("{h:08x}")
}

#[derive(Debug, Clone)]
pub struct NsHost {
    pub id: String,
    pub hostname: String,
    /// State directory (ssh config and keys, overlay layers, data root, log, pid file).
    pub dir: PathBuf,
    pub bridge: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

impl NsHost {
    pub fn netns(&self) -> String {
        format!("flm-{}", self.id)
    }
    /// Host side of the veth pair (≤ 15 chars).
    pub fn veth(&self) -> String {
        format!("flm{}", self.id)
    }
    /// The cgroup every process of the host lives in.
    pub fn cgroup(&self) -> String {
        format!("/flm-{}", self.id)
    }
    fn ssh_dir(&self) -> PathBuf {
        self.dir.join("ssh")
    }
    fn pid_file(&self) -> PathBuf {
        self.dir.join("host.pid")
    }
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("host.log")
    }

    /// Writes the host's files: sshd host key, config, `authorized_keys`, init script.
    pub fn prepare(&self, authorized_keys: &str) -> Result<(), NsHostError> {
        let sd = self.ssh_dir();
        std::fs::create_dir_all(&sd).map_err(io(&sd))?;
        let hk = sd.join("host_ed25519");
        if !hk.is_file() {
            sh("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-C", &self.hostname, "-f", &hk.display().to_string()])?;
        }
        let ak = sd.join("authorized_keys");
        std::fs::write(&ak, authorized_keys).map_err(io(&ak))?;
        let cfg = sd.join("sshd_config");
        let text = format!(
            "ListenAddress 0.0.0.0:22\nHostKey {hk}\nPidFile none\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nAuthorizedKeysFile {ak}\nStrictModes no\nUsePAM no\nSubsystem sftp internal-sftp\n\
             AcceptEnv LANG LC_*\nMaxStartups 100\nMaxSessions 100\n",
            hk = hk.display(),
            ak = ak.display()
        );
        std::fs::write(&cfg, text).map_err(io(&cfg))?;
        let init = self.dir.join("host-init.sh");
        std::fs::write(&init, self.init_script()).map_err(io(&init))?;
        Ok(())
    }

    fn init_script(&self) -> String {
        let d = self.dir.display();
        let mut s = String::from("#!/bin/sh\n# Runs in the host's own mount and UTS namespaces, then becomes its sshd.\nset -e\n");
        s += &setup_script(&self.hostname, &self.id);
        s += &format!("mkdir -p {t}{cg}\necho $$ > {t}{cg}/cgroup.procs\n", t = tracking_root().display(), cg = self.cgroup());
        s += "mkdir -p /run/sshd\n";
        for p in PRIVATE_DIRS {
            s += &format!("mkdir -p {d}/root/upper{p} {d}/root/work{p}\nmount -t overlay ovl -o lowerdir={p},upperdir={d}/root/upper{p},workdir={d}/root/work{p} {p}\n");
        }
        s += &format!("mkdir -p {d}/data /var/lib/flotilla\nmount --bind {d}/data /var/lib/flotilla\n");
        s += &format!("echo {} > /etc/hostname\n", self.hostname);
        s += &format!("exec /usr/sbin/sshd -D -e -f {d}/ssh/sshd_config\n");
        s
    }

    /// Creates the namespace and its veth on the bridge with the host's address (idempotent).
    pub fn ensure_network(&self) -> Result<(), NsHostError> {
        connect_netns(&self.netns(), &self.veth(), &self.bridge, (self.ip, self.prefix), self.gateway)
    }

    /// The sshd's pid when the host runs.
    pub fn pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.pid_file()).ok()?.trim().parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let state = stat.rsplit_once(") ").map(|(_, r)| r.chars().next().unwrap_or('Z')).unwrap_or('Z');
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        (state != 'Z' && comm.trim() == "sshd").then_some(pid)
    }

    pub fn running(&self) -> bool {
        self.pid().is_some()
    }

    /// Boots the host (network, mounts, sshd) unless it runs. Returns once sshd's process is
    /// up; the caller waits for the port.
    pub fn start(&self) -> Result<(), NsHostError> {
        if self.running() {
            return Ok(());
        }
        self.ensure_network()?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_file()).map_err(io(&self.log_file()))?;
        let log2 = log.try_clone().map_err(io(&self.log_file()))?;
        let init = self.dir.join("host-init.sh");
        let mut cmd = enter(&self.netns());
        cmd.arg("sh").arg(&init).stdin(Stdio::null()).stdout(log).stderr(log2);
        // SAFETY: setsid(2) in the child between fork and exec is async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::setsid();
                Ok(())
            });
        }
        let mut child =
            cmd.spawn().map_err(|e| NsHostError::Cmd { cmd: "ip netns exec … host-init.sh".into(), output: e.to_string() })?;
        let pid = child.id();
        std::fs::write(self.pid_file(), pid.to_string()).map_err(io(&self.pid_file()))?;
        // Reap it whenever it ends (it outlives a short-lived `machine` process, which is fine).
        std::thread::spawn(move || child.wait());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.running() {
                return Ok(());
            }
            if std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z")) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        Err(NsHostError::Cmd { cmd: format!("starting host {}", self.hostname), output: tail(&log, 10) })
    }

    /// Stops every process of the host (SIGTERM, SIGKILL after `grace`) and removes its
    /// cgroups. The namespace (and address) stays for the next start.
    pub fn stop(&self, grace: Duration) {
        let root = tracking_root().join(self.cgroup().trim_start_matches('/'));
        if !grace.is_zero() {
            signal_all(&root, libc::SIGTERM);
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline && !procs(&root).is_empty() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !procs(&root).is_empty() && Instant::now() < deadline {
            signal_all(&root, libc::SIGKILL);
            std::thread::sleep(Duration::from_millis(50));
        }
        remove_cgroups(&self.cgroup());
        let _ = std::fs::remove_file(self.pid_file());
    }

    /// Stops the host and deletes its namespace (the veth goes with it).
    pub fn destroy(&self) {
        self.stop(Duration::ZERO);
        let _ = sh("ip", &["netns", "del", &self.netns()]);
        let _ = sh("ip", &["link", "del", &self.veth()]);
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Shell lines that re-mount this machine's cgroup hierarchies (hidden by `ip netns exec`).
fn cgroup_mounts() -> String {
    let list = ::fsutil::own_cgroup_mounts();
    let mut s = String::new();
    if !list.iter().any(|m| m.mount_point == "/sys/fs/cgroup") {
        s += "mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup\n";
    }
    for m in list {
        let o = if m.options.is_empty() { String::new() } else { format!(" -o {}", m.options) };
        s += &format!("mkdir -p {mp}\nmount -t {fs}{o} {fs} {mp}\n", mp = m.mount_point, fs = m.fstype);
    }
    s
}

/// The hierarchy used to track a host's processes: pids (v1) or the cgroup2 root.
pub fn tracking_root() -> PathBuf {
    let list = ::fsutil::own_cgroup_mounts();
    if let Some(m) = list.iter().find(|m| m.has_controller("pids")) {
        return PathBuf::from(&m.mount_point);
    }
    list.iter().find(|m| m.fstype == "cgroup2").map(|m| PathBuf::from(&m.mount_point)).unwrap_or_else(|| "/sys/fs/cgroup".into())
}

/// A command entering a host: `ip netns exec <netns>`, then new mount and UTS namespaces
/// (`unshare --mount --uts --propagation private`); the caller adds the program.
pub fn enter(netns: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", netns, "unshare", "--mount", "--uts", "--propagation", "private"]);
    c
}

/// The first shell lines run by [`enter`]: the hostname, this machine's cgroup hierarchies
/// (`ip netns exec` remounts /sys and hides them) and a private tmpfs `/run` (`run-<tag>`).
pub fn setup_script(hostname: &str, tag: &str) -> String {
    format!("hostname {hostname}\n{}mount -t tmpfs -o mode=755 run-{tag} /run\n", cgroup_mounts())
}

/// Creates network namespace `netns` (unless it exists) with `eth0` (`ip/prefix`, default
/// route via `gateway`) and its host-side peer `veth` on `bridge`; idempotent.
pub fn connect_netns(netns: &str, veth: &str, bridge: &str, (ip, prefix): (Ipv4Addr, u8), gateway: Ipv4Addr) -> Result<(), NsHostError> {
    let ns = netns;
    if !Path::new("/run/netns").join(ns).exists() {
        sh("ip", &["netns", "add", ns])?;
    }
    if sh("ip", &["link", "show", veth]).is_err() {
        sh("ip", &["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])?;
    }
    sh("ip", &["link", "set", veth, "master", bridge, "up"])?;
    let cidr = format!("{ip}/{prefix}");
    let have = sh("ip", &["-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"]).unwrap_or_default();
    if !have.contains(&format!(" {cidr} ")) {
        sh("ip", &["-n", ns, "addr", "add", &cidr, "dev", "eth0"])?;
    }
    sh("ip", &["-n", ns, "link", "set", "lo", "up"])?;
    sh("ip", &["-n", ns, "link", "set", "eth0", "up"])?;
    let routes = sh("ip", &["-n", ns, "route", "show", "default"]).unwrap_or_default();
    if routes.trim().is_empty() {
        sh("ip", &["-n", ns, "route", "add", "default", "via", &gateway.to_string()])?;
    }
    Ok(())
}

fn procs(dir: &Path) -> Vec<i32> {
    let mut v: Vec<i32> =
        std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                v.extend(procs(&e.path()));
            }
        }
    }
    v
}

fn signal_all(dir: &Path, sig: i32) {
    for p in procs(dir) {
        // SAFETY: kill(2) of a process in the host's own cgroup.
        unsafe { libc::kill(p, sig) };
    }
}

fn rmdir_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Removes `cg` (and below) from every hierarchy.
pub fn remove_cgroups(cg: &str) {
    for m in ::fsutil::own_cgroup_mounts() {
        rmdir_tree(&Path::new(&m.mount_point).join(cg.trim_start_matches('/')));
    }
}

/// Creates `bridge` with `gateway/prefix` (idempotent) and lets bridged hosts talk to each
/// other even when a Docker daemon set the FORWARD policy to DROP.
pub fn ensure_bridge(bridge: &str, gateway: Ipv4Addr, prefix: u8) -> Result<(), NsHostError> {
    if sh("ip", &["link", "show", bridge]).is_err() {
        if let Err(e) = sh("ip", &["link", "add", bridge, "type", "bridge"]) {
            if sh("ip", &["link", "show", bridge]).is_err() {
                return Err(e);
            }
        }
    }
    let cidr = format!("{gateway}/{prefix}");
    let have = sh("ip", &["-4", "-o", "addr", "show", "dev", bridge]).unwrap_or_default();
    if !have.contains(&format!(" {cidr} ")) {
        if let Err(e) = sh("ip", &["addr", "add", &cidr, "dev", bridge]) {
            let have = sh("ip", &["-4", "-o", "addr", "show", "dev", bridge]).unwrap_or_default();
            if !have.contains(&format!(" {cidr} ")) {
                return Err(e);
            }
        }
    }
    sh("ip", &["link", "set", bridge, "up"])?;
    let rule = ["FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"];
    let mut check = vec!["-w", "-C"];
    check.extend(rule);
    if sh("iptables", &check).is_err() {
        let mut ins = vec!["-w", "-I"];
        ins.extend(rule);
        let _ = sh("iptables", &ins);
    }
    Ok(())
}

/// Deletes a bridge made by [`ensure_bridge`] and its FORWARD rule.
pub fn remove_bridge(bridge: &str) {
    let _ = sh("iptables", &["-w", "-D", "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"]);
    let _ = sh("ip", &["link", "del", bridge]);
}

/// Parses `a.b.c.d/n` into (network address, prefix).
pub fn parse_subnet(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, p) = s.split_once('/')?;
    let a: Ipv4Addr = a.parse().ok()?;
    let p: u8 = p.parse().ok()?;
    if !(8..=30).contains(&p) {
        return None;
    }
    let mask = u32::MAX << (32 - p);
    Some((Ipv4Addr::from(u32::from(a) & mask), p))
}

/// The `n`th address of a subnet (1 = the gateway).
pub fn nth(net: Ipv4Addr, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net) + n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names() {
        let a = short_id(&["/store", "m1"]);
        assert_eq!(a.len(), 8);
        assert_ne!(a, short_id(&["/store", "m2"]));
        assert_ne!(short_id(&["/a", "bc"]), short_id(&["/ab", "c"]));
        let h = NsHost {
            id: a.clone(),
            hostname: "m1".into(),
            dir: "/s/m1".into(),
            bridge: "br".into(),
            ip: "10.9.0.2".parse().unwrap(),
            prefix: 24,
            gateway: "10.9.0.1".parse().unwrap(),
        };
        assert!(h.veth().len() <= 15);
        assert_eq!(h.cgroup(), format!("/flm-{a}"));
        let s = h.init_script();
        assert!(s.contains("hostname m1\n"));
        assert!(s.contains("mount --bind /s/m1/data /var/lib/flotilla"));
        assert!(s.contains("upperdir=/s/m1/root/upper/etc"));
        assert!(s.ends_with("exec /usr/sbin/sshd -D -e -f /s/m1/ssh/sshd_config\n"));
    }

    #[test]
    fn subnets() {
        assert_eq!(parse_subnet("10.211.5.7/24"), Some(("10.211.5.0".parse().unwrap(), 24)));
        assert_eq!(parse_subnet("10.211.0.0/33"), None);
        assert_eq!(parse_subnet("nope"), None);
        assert_eq!(nth("10.1.2.0".parse().unwrap(), 1).to_string(), "10.1.2.1");
    }
}
