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

/// True when `path` is a mount point.
pub use fsutil::is_mount_point as is_mounted;

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
    if let Err(e) = prepare_etc_targets(&p.upper, layer_dirs) {
        // The runtime makes them through the overlay then, as it does without this.
        tracing::debug!(upper = %p.upper.display(), error = %e, "making the /etc mount targets ahead failed");
        let _ = std::fs::remove_dir_all(p.upper.join("etc"));
    }
    let lower: Vec<String> = layer_dirs.iter().rev().map(|d| d.to_string_lossy().into_owned()).collect();
    let opts = format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), p.upper.display(), p.work.display());
    // A volatile mount leaves `work/work/incompat/volatile` behind and overlayfs refuses to
    // mount that work dir again while it is there (the upper dir may have missed writes in a
    // crash). Only `--rm` containers are mounted volatile, and their upper dir is thrown away:
    // one started again (its removal failed), or mounted for `docker cp`/`export` after a mount
    // made ahead of a start that never came, keeps using it.
    let _ = std::fs::remove_dir_all(p.work.join("work").join("incompat"));
    let res = if volatile {
        mount(Some("overlay"), &p.merged, Some("overlay"), MsFlags::empty(), Some(format!("{opts},volatile").as_str()))
            // Kernels before 5.10 do not know the option.
            .or_else(|_| mount(Some("overlay"), &p.merged, Some("overlay"), MsFlags::empty(), Some(opts.as_str())))
    } else {
        mount(Some("overlay"), &p.merged, Some("overlay"), MsFlags::empty(), Some(opts.as_str()))
    };
    res.map_err(|e| io::Error::other(format!("mounting the container's overlay rootfs: {e}")))?;
    Ok(p.merged)
}

/// The files the engine bind-mounts over in every container (made by `etcfiles`).
const ETC_MOUNT_TARGETS: [&str; 3] = ["hostname", "hosts", "resolv.conf"];

/// Makes the mount targets of the engine's /etc files in a new upper dir, where dockerd's init
/// layer has them, so the runtime finds them instead of making them through the overlay (a
/// copy-up of /etc and three creates: ~0.4 ms of every first start, on its path; this runs
/// beside the network's setup). Only what the image leaves free: its /etc must be a directory
/// (the new one takes its mode, owner and times, as a copy-up does), and a file is made only
/// where no layer has anything of its name (a file, a link, a whiteout). Nothing is written
/// outside the new `upper/etc`, and an upper dir that has `etc` (an earlier start) is left alone.
fn prepare_etc_targets(upper: &Path, layer_dirs: &[PathBuf]) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let etc = upper.join("etc");
    if std::fs::symlink_metadata(&etc).is_ok() {
        return Ok(());
    }
    // The layers whose /etc the container sees: from the top, each one with an `etc` directory,
    // down to one whose `etc` is something else (it hides the layers below).
    let mut etcs = vec![];
    for l in layer_dirs.iter().rev() {
        let path = l.join("etc");
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => etcs.push((path, m)),
            Ok(_) => break,
            Err(_) => {}
        }
    }
    // The top-most one is what the image has at /etc. With extended attributes (an ACL, a
    // label) it is left to a copy-up, which keeps them.
    let Some((top, image_etc)) = etcs.first() else { return Ok(()) };
    if has_xattrs(top)? {
        return Ok(());
    }
    // A name is free when no layer the container sees has anything of it.
    let free: Vec<&str> =
        ETC_MOUNT_TARGETS.into_iter().filter(|n| etcs.iter().all(|(etc, _)| std::fs::symlink_metadata(etc.join(n)).is_err())).collect();
    if free.is_empty() {
        return Ok(());
    }
    std::fs::create_dir(&etc)?;
    for name in free {
        let path = etc.join(name);
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    }
    std::os::unix::fs::lchown(&etc, Some(image_etc.uid()), Some(image_etc.gid()))?;
    std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(image_etc.mode() & 0o7777))?;
    let time = |s: i64, ns: i64| nix::sys::time::TimeSpec::new(s, ns);
    nix::sys::stat::utimensat(
        None,
        &etc,
        &time(image_etc.atime(), image_etc.atime_nsec()),
        &time(image_etc.mtime(), image_etc.mtime_nsec()),
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )?;
    Ok(())
}

/// Whether the entry at `path` (not followed) has extended attributes.
fn has_xattrs(path: &Path) -> io::Result<bool> {
    let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str())).map_err(io::Error::other)?;
    // SAFETY: llistxattr with a NULL buffer of size 0 only returns the size of the list.
    let n = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n > 0)
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
    /// Whether a new container's rootfs is mounted ahead of its start (see `container::ahead`).
    fn mounts_ahead(&self) -> bool {
        true
    }
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
    /// `fail_unmounts` the next unmounts. It mounts nothing ahead of a start unless
    /// `mount_ahead` says so (the other tests count its calls).
    #[derive(Default)]
    pub(crate) struct FakeRootfs {
        calls: Mutex<Vec<String>>,
        mounted: Mutex<BTreeSet<PathBuf>>,
        fail_mount: Mutex<bool>,
        fail_unmounts: Mutex<usize>,
        ahead: Mutex<bool>,
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
        /// How many rootfs are mounted.
        pub(crate) fn mounted_count(&self) -> usize {
            lock(&self.mounted).len()
        }
        /// New containers get their rootfs mounted ahead of their start, as with the real one.
        pub(crate) fn mount_ahead(&self) {
            *lock(&self.ahead) = true;
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
        fn mounts_ahead(&self) -> bool {
            *lock(&self.ahead)
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

#[cfg(test)]
mod etc_target_tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn layer(root: &Path, name: &str) -> PathBuf {
        let l = root.join(name);
        std::fs::create_dir_all(&l).unwrap();
        l
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        n.sort();
        n
    }

    #[test]
    fn etc_targets_take_the_image_etc_attributes_and_leave_its_files_alone() {
        let t = tempfile::tempdir().unwrap();
        let (base, top, upper) = (layer(t.path(), "base"), layer(t.path(), "top"), layer(t.path(), "upper"));
        std::fs::create_dir(base.join("etc")).unwrap();
        std::fs::write(base.join("etc/hosts"), "image's").unwrap();
        std::fs::create_dir(top.join("etc")).unwrap();
        std::fs::set_permissions(top.join("etc"), std::fs::Permissions::from_mode(0o751)).unwrap();
        let image_etc = std::fs::metadata(top.join("etc")).unwrap();
        prepare_etc_targets(&upper, &[base.clone(), top.clone()]).unwrap();
        let etc = std::fs::symlink_metadata(upper.join("etc")).unwrap();
        assert!(etc.is_dir());
        assert_eq!(etc.mode() & 0o7777, 0o751);
        assert_eq!((etc.uid(), etc.gid()), (image_etc.uid(), image_etc.gid()));
        assert_eq!((etc.mtime(), etc.mtime_nsec()), (image_etc.mtime(), image_etc.mtime_nsec()));
        assert_eq!(names(&upper.join("etc")), ["hostname", "resolv.conf"], "the image has hosts");
        let f = std::fs::symlink_metadata(upper.join("etc/hostname")).unwrap();
        assert!(f.is_file() && f.len() == 0 && f.mode() & 0o7777 == 0o644);
        // Started again: what the upper dir has is left as it is.
        std::fs::remove_file(upper.join("etc/hostname")).unwrap();
        prepare_etc_targets(&upper, &[base, top]).unwrap();
        assert_eq!(names(&upper.join("etc")), ["resolv.conf"]);
    }

    #[test]
    fn etc_targets_are_not_made_where_the_image_has_no_etc_directory() {
        let t = tempfile::tempdir().unwrap();
        let (base, upper) = (layer(t.path(), "base"), layer(t.path(), "upper"));
        prepare_etc_targets(&upper, std::slice::from_ref(&base)).unwrap();
        assert!(names(&upper).is_empty(), "no /etc in the image");
        std::os::unix::fs::symlink("/etc", base.join("etc")).unwrap();
        prepare_etc_targets(&upper, std::slice::from_ref(&base)).unwrap();
        assert!(names(&upper).is_empty(), "a link is not followed");
        let (full, upper2) = (layer(t.path(), "full"), layer(t.path(), "upper2"));
        std::fs::create_dir(full.join("etc")).unwrap();
        for n in ETC_MOUNT_TARGETS {
            std::fs::write(full.join("etc").join(n), "").unwrap();
        }
        prepare_etc_targets(&upper2, &[full]).unwrap();
        assert!(names(&upper2).is_empty(), "the image has all three");
    }

    #[test]
    fn etc_with_extended_attributes_is_left_to_a_copy_up() {
        let t = tempfile::tempdir().unwrap();
        let (base, upper) = (layer(t.path(), "base"), layer(t.path(), "upper"));
        std::fs::create_dir(base.join("etc")).unwrap();
        let path = std::ffi::CString::new(base.join("etc").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: lsetxattr with C strings and a one-byte value of ours.
        if unsafe { libc::lsetxattr(path.as_ptr(), c"user.flotilla".as_ptr(), b"1".as_ptr().cast(), 1, 0) } != 0 {
            return eprintln!("skipped: no user xattrs on this file system");
        }
        prepare_etc_targets(&upper, std::slice::from_ref(&base)).unwrap();
        assert!(names(&upper).is_empty(), "an /etc with xattrs is copied up by overlayfs, xattrs and all");
    }

    #[test]
    fn a_layer_whose_etc_is_no_directory_hides_the_layers_below() {
        let t = tempfile::tempdir().unwrap();
        let (base, mid, top, upper) = (layer(t.path(), "base"), layer(t.path(), "mid"), layer(t.path(), "top"), layer(t.path(), "upper"));
        std::fs::create_dir(base.join("etc")).unwrap();
        std::fs::write(base.join("etc/hosts"), "hidden").unwrap();
        std::fs::write(mid.join("etc"), "a file hides the base's /etc").unwrap();
        std::fs::create_dir(top.join("etc")).unwrap();
        prepare_etc_targets(&upper, &[base, mid, top]).unwrap();
        assert_eq!(names(&upper.join("etc")), ["hostname", "hosts", "resolv.conf"]);
    }
}
