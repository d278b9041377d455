//! `docker diff`: changes of a container's overlay upper dir against the image layers.
//! Whiteouts (0:0 character devices) are deletions, entries the layers have are changes,
//! the rest additions. The files dockerd keeps in its init layer (mountpoints of /etc/hosts,
//! /proc, ...) are not reported, nor directories listed only because of them.
use super::super::record::Record;
use super::super::{rootfs, ContainerError, ContainerService};
use super::fsview::{self, file_type, open_at};
use crate::runtime::Runtime;
use nix::fcntl::OFlag;
use nix::sys::stat::{fstat, Mode, SFlag};
use std::collections::BTreeMap;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub const MODIFIED: u8 = 0;
pub const ADDED: u8 = 1;
pub const DELETED: u8 = 2;

/// What dockerd's init layer holds: never a user's change.
pub(crate) const INIT_PATHS: &[&str] = &[
    "/.dockerenv",
    "/dev",
    "/dev/console",
    "/dev/pts",
    "/dev/shm",
    "/dev/mqueue",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/mtab",
    "/etc/resolv.conf",
    "/proc",
    "/sys",
    "/sys/fs/cgroup",
];

/// The files dockerd's init layer holds in /etc (the engine bind-mounts the first three).
const INIT_ETC_FILES: &[&str] = &["hostname", "hosts", "resolv.conf", "mtab"];

/// Whether the upper dir's `etc` is only there for the runtime's mount targets, i.e. what dockerd
/// keeps in its init layer and never a change: a directory that holds init files and nothing else
/// (no whiteout, not opaque), with the mode and owner /etc has in the image, or root's 0755 where
/// the image has none (what the init layer makes), and no extended attribute of its own (an ACL,
/// a label) on either. A container that changed /etc's mode, owner or attributes, or added or
/// removed anything in it, keeps its `etc`. A change of its times alone cannot be told from the
/// copy-up the mount targets cause, and is not kept (dockerd's init layer takes it too).
pub(crate) fn etc_only_init(upper: &Path, lowers: &[PathBuf]) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let etc = upper.join("etc");
    let Ok(meta) = std::fs::symlink_metadata(&etc) else { return false };
    if !meta.is_dir() || fsview::is_opaque(&etc) || fsview::has_own_xattrs(&etc) != Some(false) {
        return false;
    }
    let Ok(entries) = std::fs::read_dir(&etc) else { return false };
    let mut init_files = 0;
    for entry in entries {
        let Ok(entry) = entry else { return false };
        let whiteout = entry.file_type().is_ok_and(|t| t.is_char_device());
        if whiteout || !INIT_ETC_FILES.iter().any(|n| entry.file_name() == *n) {
            return false;
        }
        init_files += 1;
    }
    if init_files == 0 {
        return false;
    }
    // /etc as the image has it: the top-most layer that knows the path decides.
    let image = lowers.iter().rev().find_map(|l| match in_layer(l, Path::new("etc")) {
        Some(true) => Some(std::fs::symlink_metadata(l.join("etc")).ok().filter(|m| m.is_dir()).map(|m| (m, l.join("etc")))),
        Some(false) => Some(None),
        None => None,
    });
    let want = match image.flatten() {
        Some((m, path)) => {
            if fsview::has_own_xattrs(&path) != Some(false) {
                return false;
            }
            (m.mode() & 0o7777, m.uid(), m.gid())
        }
        None => (0o755, 0, 0),
    };
    (meta.mode() & 0o7777, meta.uid(), meta.gid()) == want
}

/// Whether `rel` exists in one layer: `Some(true)` present, `Some(false)` whited out, `None` absent.
/// Components are opened without following links, as overlayfs looks them up.
fn in_layer(layer: &Path, rel: &Path) -> Option<bool> {
    let root = fsview::open_root(layer).ok()?;
    let mut cur = root;
    let comps: Vec<_> = rel.components().collect();
    for (i, c) in comps.iter().enumerate() {
        let fd = open_at(cur.as_raw_fd(), c.as_os_str(), OFlag::O_PATH | OFlag::O_NOFOLLOW, Mode::empty()).ok()?;
        let st = fstat(fd.as_raw_fd()).ok()?;
        if file_type(&st) == SFlag::S_IFCHR && st.st_rdev == 0 {
            return Some(false);
        }
        if i + 1 < comps.len() && !fsview::is_dir(&st) {
            return None;
        }
        cur = fd;
    }
    Some(true)
}

fn in_lower(lowers: &[PathBuf], rel: &Path) -> bool {
    // Top-most layer first: the first one that knows the path decides.
    lowers.iter().rev().find_map(|l| in_layer(l, rel)).unwrap_or(false)
}

/// The changes, sorted by path: `(path, kind)` with kind 0 = C, 1 = A, 2 = D.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> io::Result<Vec<(String, u8)>> {
    let mut out: BTreeMap<String, u8> = BTreeMap::new();
    if !upper.is_dir() {
        return Ok(vec![]);
    }
    let root = fsview::open_root(upper)?;
    fsview::walk(
        &root,
        Path::new(""),
        &mut |it| {
            let path = format!("/{}", String::from_utf8_lossy(it.rel.as_os_str().as_bytes()));
            let kind = if file_type(&it.stat) == SFlag::S_IFCHR && it.stat.st_rdev == 0 {
                DELETED
            } else if in_lower(lowers, it.rel) {
                MODIFIED
            } else {
                ADDED
            };
            out.insert(path, kind);
            Ok(kind != DELETED)
        },
        &mut |_, _| Ok(()),
    )?;
    let mut dropped = vec![];
    for p in INIT_PATHS {
        if out.get(*p).is_some_and(|k| *k != DELETED) {
            out.remove(*p);
            dropped.push(*p);
        }
    }
    // Read once, however many of its init files were dropped.
    let mut etc_init = None;
    for p in dropped {
        let mut a = Path::new(p).parent();
        while let Some(dir) = a.filter(|d| *d != Path::new("/")) {
            let ds = dir.to_string_lossy().into_owned();
            let prefix = format!("{ds}/");
            let has_child = out.range(prefix.clone()..).next().is_some_and(|(k, _)| k.starts_with(&prefix));
            // /etc is a change only when it is more than the init layer's (its mode, owner).
            let init_only =
                if ds == "/etc" { *etc_init.get_or_insert_with(|| etc_only_init(upper, lowers)) } else { out.get(&ds) == Some(&MODIFIED) };
            if init_only && !has_child {
                out.remove(&ds);
            }
            a = dir.parent();
        }
    }
    Ok(out.into_iter().collect())
}

impl<R: Runtime> ContainerService<R> {
    /// `GET /containers/{id}/changes`: `(path, kind)` with kind 0 = C, 1 = A, 2 = D.
    pub async fn changes(&self, key: &str) -> Result<Vec<(String, u8)>, ContainerError> {
        let rec = self.get(key)?.record();
        let upper = rootfs::paths(&Record::dir(&self.cfg.data_root, &rec.id)).upper;
        let layers = rec.layer_dirs.clone();
        let dir = upper.clone();
        tokio::task::spawn_blocking(move || changes(&upper, &layers))
            .await
            .map_err(ContainerError::task("listing the changes"))?
            .map_err(ContainerError::io("comparing with the image", dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn added_changed_deleted() {
        if unsafe { libc::geteuid() } != 0 {
            return; // whiteouts are device nodes
        }
        let d = tempfile::tempdir().unwrap();
        let (lower, upper) = (d.path().join("lower"), d.path().join("upper"));
        for p in ["etc", "bin"] {
            std::fs::create_dir_all(lower.join(p)).unwrap();
        }
        std::fs::write(lower.join("etc/passwd"), b"root").unwrap();
        std::fs::write(lower.join("etc/group"), b"root").unwrap();
        std::os::unix::fs::symlink("/etc", lower.join("lnk")).unwrap();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::create_dir_all(upper.join("newdir")).unwrap();
        std::fs::create_dir_all(upper.join("lnk")).unwrap();
        std::fs::create_dir_all(upper.join("proc")).unwrap();
        std::fs::write(upper.join("etc/passwd"), b"root\nm").unwrap();
        std::fs::write(upper.join("etc/hosts"), b"").unwrap();
        std::fs::write(upper.join("newdir/x"), b"a").unwrap();
        std::fs::write(upper.join("lnk/passwd"), b"a").unwrap();
        let wh = std::ffi::CString::new(upper.join("etc/group").as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mknod(wh.as_ptr(), libc::S_IFCHR | 0o600, 0) }, 0);
        let got = changes(&upper, std::slice::from_ref(&lower)).unwrap();
        let want: Vec<(String, u8)> = [
            ("/etc", MODIFIED),
            ("/etc/group", DELETED),
            ("/etc/passwd", MODIFIED),
            ("/lnk", MODIFIED),
            ("/lnk/passwd", ADDED),
            ("/newdir", ADDED),
            ("/newdir/x", ADDED),
        ]
        .iter()
        .map(|(p, k)| (p.to_string(), *k))
        .collect();
        assert_eq!(got, want);
        // Only init-layer files below /etc: nothing to report.
        std::fs::remove_file(upper.join("etc/passwd")).unwrap();
        std::fs::remove_file(upper.join("etc/group")).unwrap();
        let got = changes(&upper, &[lower]).unwrap();
        assert!(!got.iter().any(|(p, _)| p.starts_with("/etc")), "{got:?}");
    }
}
