//! The base root filesystem of the systemd test hosts: Debian bookworm from debootstrap
//! (the mirror apt uses here) with sshd, systemd-networkd and a unit making the cgroup
//! controllers writable; built once per machine under a lock, cached in [`super::CACHE_DIR`].
use super::{run_ok, CACHE_DIR};
use crate::cleanup;
use anyhow::{bail, Context, Result};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Bump when the rootfs recipe changes: a new directory is built next to the old one.
const ROOTFS_NAME: &str = "rootfs-bookworm-v2";
/// Packages on top of debootstrap's minbase: systemd as init, sshd, and what the provisioner
/// and `machine scp --delta` use on a host (iptables, rsync).
const INCLUDE: &str = "systemd,systemd-sysv,dbus,openssh-server,sudo,ca-certificates,iproute2,netbase,procps,iptables,rsync";

/// nspawn mounts the v1 controllers read-only; an engine inside needs them writable.
const CGROUP_RW_UNIT: &str = "[Unit]\nDescription=Writable cgroup controllers (test host)\nDefaultDependencies=no\n\
Before=sysinit.target\nConditionVirtualization=container\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\n\
ExecStart=/bin/sh -c 'for d in /sys/fs/cgroup/*/; do mount -o remount,bind,rw \"$d\" || true; done'\n\n\
[Install]\nWantedBy=sysinit.target\n";

/// The mirror apt already uses here (first non-security `URIs:` / `deb` line).
fn apt_mirror() -> String {
    let mut texts = vec![];
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "sources")).collect();
        files.sort();
        texts.extend(files.iter().filter_map(|p| std::fs::read_to_string(p).ok()));
    }
    let uris = texts.iter().flat_map(|t| t.lines()).filter_map(|l| l.trim().strip_prefix("URIs:")).flat_map(|u| u.split_whitespace());
    let debs = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    let debs: Vec<String> = debs
        .lines()
        .filter_map(|l| l.trim().strip_prefix("deb "))
        .filter_map(|r| r.split_whitespace().find(|w| w.contains("://")))
        .map(String::from)
        .collect();
    uris.map(String::from).chain(debs).find(|u| !u.contains("security")).unwrap_or_else(|| "http://deb.debian.org/debian".into())
}

/// An exclusive flock(2) on `path`, held until the file is dropped.
fn lock(path: &Path) -> Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    // SAFETY: flock(2) on an fd we own; blocks until the lock is ours.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        bail!("flock {}: {}", path.display(), std::io::Error::last_os_error());
    }
    Ok(f)
}

/// The base root filesystem, built on first use (once per machine, under a lock, so
/// parallel tests wait for one build instead of racing).
pub fn base_rootfs() -> Result<PathBuf> {
    let cache = Path::new(CACHE_DIR);
    let dir = cache.join(ROOTFS_NAME);
    let ready = dir.join(".flotilla-ready");
    if ready.is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(cache).with_context(|| format!("mkdir {CACHE_DIR}"))?;
    let _l = lock(&cache.join(format!("{ROOTFS_NAME}.lock")))?;
    if ready.is_file() {
        return Ok(dir);
    }
    let tmp = cache.join(format!("{ROOTFS_NAME}.build"));
    let mut notes = vec![];
    cleanup::unmount_below(&tmp, &mut notes);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("rm -rf {}", tmp.display()))?;
    }
    let started = Instant::now();
    let mirror = apt_mirror();
    eprintln!("testground: building the systemd test hosts' rootfs in {} from {mirror} (once, ~80 s)", dir.display());
    run_ok(
        Command::new("debootstrap").args(["--variant=minbase", &format!("--include={INCLUDE}"), "bookworm"]).arg(&tmp).arg(&mirror),
        Duration::from_secs(900),
    )
    .context("debootstrap (apt-get install debootstrap systemd-container, or run scripts/install-deps.sh)")?;
    configure_rootfs(&tmp)?;
    std::fs::write(tmp.join(".flotilla-ready"), format!("built in {:.1?}\n", started.elapsed()))?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("rm -rf {}", dir.display()))?;
    }
    std::fs::rename(&tmp, &dir).with_context(|| format!("rename to {}", dir.display()))?;
    eprintln!("testground: rootfs built in {:.1?}", started.elapsed());
    Ok(dir)
}

fn configure_rootfs(r: &Path) -> Result<()> {
    // A fresh machine id per boot (each host is an overlay of this one).
    std::fs::write(r.join("etc/machine-id"), "")?;
    let _ = std::fs::remove_file(r.join("var/lib/dbus/machine-id"));
    std::fs::create_dir_all(r.join("etc/ssh/sshd_config.d"))?;
    std::fs::write(
        r.join("etc/ssh/sshd_config.d/flotilla-test.conf"),
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n",
    )?;
    // No audit capability in the container: pam_loginuid would refuse every login.
    let pam = r.join("etc/pam.d/sshd");
    let text = std::fs::read_to_string(&pam)?;
    std::fs::write(&pam, text.replace("required     pam_loginuid.so", "optional     pam_loginuid.so"))?;
    std::fs::write(r.join("etc/systemd/system/testhost-cgroup-rw.service"), CGROUP_RW_UNIT)?;
    run_ok(
        Command::new("systemctl").arg(format!("--root={}", r.display())).args([
            "enable",
            "testhost-cgroup-rw.service",
            "systemd-networkd.service",
            "ssh.service",
        ]),
        Duration::from_secs(60),
    )?;
    // Nothing to wait for on a static address; and no consoles to log in on.
    run_ok(
        Command::new("systemctl").arg(format!("--root={}", r.display())).args([
            "mask",
            "systemd-networkd-wait-online.service",
            "console-getty.service",
            "getty@.service",
        ]),
        Duration::from_secs(60),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_is_an_url() {
        assert!(apt_mirror().contains("://"));
    }
}
