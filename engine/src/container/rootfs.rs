//! A container's root filesystem (overlayfs over the image layers); the files the engine
//! bind-mounts into it (/etc/hosts, /etc/hostname, /etc/resolv.conf) are made by `etcfiles`.
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::io;
use std::path::{Path, PathBuf};

pub struct RootfsPaths {
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
}

pub fn paths(container_dir: &Path) -> RootfsPaths {
    RootfsPaths { upper: container_dir.join("upper"), work: container_dir.join("work"), merged: container_dir.join("rootfs") }
}

/// True when `path` is a mount point (listed in /proc/self/mountinfo).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let p = path.to_string_lossy();
    info.lines().any(|l| l.split_whitespace().nth(4) == Some(p.as_ref()))
}

/// Mounts the overlay: `layer_dirs` bottom first (overlayfs wants the top-most first).
pub fn mount_rootfs(container_dir: &Path, layer_dirs: &[PathBuf]) -> io::Result<PathBuf> {
    mount_rootfs_with(container_dir, layer_dirs, false)
}

/// As [`mount_rootfs`]; `volatile` (for `--rm` containers, whose upper layer is thrown away at
/// exit, as podman does for them) mounts overlayfs with `volatile`: no sync of the upper file
/// system on unmount. Without it the unmount at exit runs a syncfs of the whole file system the
/// data root lives on, which costs tens of milliseconds when other processes write to it.
/// (A process inside that calls fsync does not reach the disk either: its writes die with the
/// container anyway; volumes are not on the overlay.)
pub fn mount_rootfs_with(container_dir: &Path, layer_dirs: &[PathBuf], volatile: bool) -> io::Result<PathBuf> {
    let p = paths(container_dir);
    for d in [&p.upper, &p.work, &p.merged] {
        std::fs::create_dir_all(d)?;
    }
    if is_mounted(&p.merged) {
        return Ok(p.merged);
    }
    if layer_dirs.is_empty() {
        return Err(io::Error::other("image has no layers"));
    }
    let lower: Vec<String> = layer_dirs.iter().rev().map(|d| d.to_string_lossy().into_owned()).collect();
    let opts = format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), p.upper.display(), p.work.display());
    let res = if volatile {
        // A volatile mount leaves `work/work/incompat/volatile` behind and overlayfs refuses to
        // mount that work dir again while it is there (the upper dir may have missed writes in
        // a crash). A `--rm` container started again (its removal failed) keeps its upper dir.
        let _ = std::fs::remove_dir_all(p.work.join("work").join("incompat"));
        mount(Some("overlay"), &p.merged, Some("overlay"), MsFlags::empty(), Some(format!("{opts},volatile").as_str()))
            // Kernels before 5.10 do not know the option.
            .or_else(|_| mount(Some("overlay"), &p.merged, Some("overlay"), MsFlags::empty(), Some(opts.as_str())))
    } else {
        mount(Some("overlay"), &p.merged, Some("overlay"), MsFlags::empty(), Some(opts.as_str()))
    };
    res.map_err(|e| io::Error::other(format!("mounting the container's overlay rootfs: {e}")))?;
    Ok(p.merged)
}

/// Unmounts the overlay if mounted (lazily, so a busy mount never blocks removal).
pub fn unmount_rootfs(container_dir: &Path) -> io::Result<()> {
    let merged = paths(container_dir).merged;
    if is_mounted(&merged) {
        umount2(&merged, MntFlags::MNT_DETACH).map_err(|e| io::Error::other(format!("unmounting {}: {e}", merged.display())))?;
    }
    Ok(())
}

/// The overlay mount of a start and its unmount, behind a seam: mounting needs CAP_SYS_ADMIN, so
/// the service's tests use `FakeRootfs` (which only makes the directories and records the calls).
pub trait Rootfs: Send + Sync + 'static {
    /// Mounts the rootfs of the container in `container_dir` (see [`mount_rootfs_with`]).
    fn mount(&self, container_dir: &Path, layer_dirs: &[PathBuf], volatile: bool) -> io::Result<PathBuf>;
    /// Unmounts it if mounted (see [`unmount_rootfs`]).
    fn unmount(&self, container_dir: &Path) -> io::Result<()>;
    /// True while the rootfs of `container_dir` is mounted.
    fn is_mounted(&self, container_dir: &Path) -> bool;
}

/// The real rootfs: overlayfs over the image layers.
pub struct OverlayRootfs;

impl Rootfs for OverlayRootfs {
    fn mount(&self, container_dir: &Path, layer_dirs: &[PathBuf], volatile: bool) -> io::Result<PathBuf> {
        mount_rootfs_with(container_dir, layer_dirs, volatile)
    }
    fn unmount(&self, container_dir: &Path) -> io::Result<()> {
        unmount_rootfs(container_dir)
    }
    fn is_mounted(&self, container_dir: &Path) -> bool {
        is_mounted(&paths(container_dir).merged)
    }
}

#[cfg(test)]
pub(crate) use fake::FakeRootfs;

#[cfg(test)]
mod fake {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::{Mutex, MutexGuard};

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `mount <id>` / `unmount <id>` (the container directory's name), keeps which are
    /// mounted, and makes the directories the real one makes; `fail_next_mount` fails one mount,
    /// `fail_unmounts` the next unmounts.
    #[derive(Default)]
    pub(crate) struct FakeRootfs {
        calls: Mutex<Vec<String>>,
        mounted: Mutex<BTreeSet<PathBuf>>,
        fail_mount: Mutex<bool>,
        fail_unmounts: Mutex<usize>,
    }

    fn name(dir: &Path) -> String {
        dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    impl FakeRootfs {
        pub(crate) fn calls(&self) -> Vec<String> {
            lock(&self.calls).clone()
        }
        pub(crate) fn fail_next_mount(&self) {
            *lock(&self.fail_mount) = true;
        }
        /// The next `n` unmounts fail (the rootfs stays mounted).
        pub(crate) fn fail_unmounts(&self, n: usize) {
            *lock(&self.fail_unmounts) = n;
        }
        /// True while the rootfs of the container `id` is mounted.
        pub(crate) fn mounted(&self, id: &str) -> bool {
            lock(&self.mounted).iter().any(|d| name(d) == id)
        }
    }

    impl Rootfs for FakeRootfs {
        fn mount(&self, container_dir: &Path, _layers: &[PathBuf], _volatile: bool) -> io::Result<PathBuf> {
            lock(&self.calls).push(format!("mount {}", name(container_dir)));
            if std::mem::take(&mut *lock(&self.fail_mount)) {
                return Err(io::Error::other("scripted mount failure"));
            }
            let p = paths(container_dir);
            for d in [&p.upper, &p.work, &p.merged] {
                std::fs::create_dir_all(d)?;
            }
            lock(&self.mounted).insert(container_dir.to_path_buf());
            Ok(p.merged)
        }
        fn unmount(&self, container_dir: &Path) -> io::Result<()> {
            lock(&self.calls).push(format!("unmount {}", name(container_dir)));
            let mut failing = lock(&self.fail_unmounts);
            if *failing > 0 {
                *failing -= 1;
                return Err(io::Error::other("scripted unmount failure"));
            }
            lock(&self.mounted).remove(container_dir);
            Ok(())
        }
        fn is_mounted(&self, container_dir: &Path) -> bool {
            lock(&self.mounted).contains(container_dir)
        }
    }
}

/// The host's resolv.conf without loopback nameservers (unreachable from a container's
/// namespace); Google's public DNS when nothing is left, as dockerd does.
pub fn container_resolv_conf(host: &str) -> String {
    let mut out = String::new();
    let mut has_ns = false;
    for line in host.lines() {
        let mut it = line.split_whitespace();
        if it.next() == Some("nameserver") {
            let addr = it.next().unwrap_or("");
            if addr.starts_with("127.") || addr == "::1" {
                continue;
            }
            has_ns = true;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !has_ns {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn resolv_conf_drops_loopback() {
        let r = container_resolv_conf("search x\nnameserver 127.0.0.53\nnameserver 10.0.0.1\n");
        assert_eq!(r, "search x\nnameserver 10.0.0.1\n");
        let r = container_resolv_conf("nameserver 127.0.0.1\n");
        assert!(r.contains("8.8.8.8"));
    }
}
