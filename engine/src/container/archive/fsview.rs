//! A container's filesystem seen through a root directory fd: paths are resolved one
//! component at a time with `O_PATH|O_NOFOLLOW`, symlinks are followed *inside* the root
//! (an absolute target restarts at the root, `..` never climbs above it), so no path, link or
//! rename race can reach a host file. Walking and reading go through fds as well.
use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode, SFlag};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const MAX_LINKS: usize = 40;

pub fn errno(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// `openat` returning an owned fd.
pub fn open_at(dir: RawFd, name: &std::ffi::OsStr, flags: OFlag, mode: Mode) -> io::Result<OwnedFd> {
    let fd = openat(Some(dir), name, flags | OFlag::O_CLOEXEC, mode).map_err(errno)?;
    // SAFETY: openat just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens a directory as the root of a view (`O_PATH`).
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    open_at(libc::AT_FDCWD, path.as_os_str(), OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty())
}

/// Reopens an `O_PATH` fd for real I/O (through its `/proc/self/fd` magic link).
pub fn reopen(fd: &OwnedFd, flags: OFlag) -> io::Result<OwnedFd> {
    let p = format!("/proc/self/fd/{}", fd.as_raw_fd());
    open_at(libc::AT_FDCWD, std::ffi::OsStr::new(&p), flags, Mode::empty())
}

pub fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// Whether directory `path` (not followed) is marked opaque by overlayfs in its upper dir.
pub fn is_opaque(path: &Path) -> bool {
    let (Ok(p), Ok(key)) = (std::ffi::CString::new(path.as_os_str().as_bytes()), std::ffi::CString::new("trusted.overlay.opaque")) else {
        return false;
    };
    let mut v = [0u8; 4];
    // SAFETY: valid C strings and a buffer of v.len() bytes.
    let n = unsafe { libc::lgetxattr(p.as_ptr(), key.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
    n == 1 && v[0] == b'y'
}

/// Whether the entry at `path` (not followed) has extended attributes other than overlayfs's own
/// (`trusted.overlay.*`); `None` when they cannot be listed.
pub fn has_own_xattrs(path: &Path) -> Option<bool> {
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: a valid C string and a buffer of buf.len() bytes.
    let n = unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let n = usize::try_from(n).ok()?;
    Some(buf[..n].split(|b| *b == 0).any(|name| !name.is_empty() && !name.starts_with(b"trusted.overlay.")))
}

pub fn is_dir(st: &FileStat) -> bool {
    file_type(st) == SFlag::S_IFDIR
}

/// A resolved path: an `O_PATH` fd, the directory holding it, and its canonical container path.
pub struct Resolved {
    pub fd: OwnedFd,
    pub stat: FileStat,
    /// Canonical absolute path inside the root (`/` for the root).
    pub path: String,
    /// The parent directory (`O_PATH`) and the entry's name; `None` for the root itself.
    pub parent: Option<(OwnedFd, OsString)>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved").field("path", &self.path).field("fd", &self.fd).finish()
    }
}

fn components(path: &[u8]) -> impl Iterator<Item = OsString> + '_ {
    path.split(|b| *b == b'/').map(|c| std::ffi::OsStr::from_bytes(c).to_os_string())
}

/// Resolves `path` under `root`. Symlinks in the middle are followed inside the root; the last
/// component is followed only with `follow_last` or a trailing `/` or `/.` (as `docker cp`).
pub fn resolve(root: &OwnedFd, path: &str, follow_last: bool) -> io::Result<Resolved> {
    let mut stack: Vec<(OwnedFd, OsString)> = vec![];
    let mut todo: VecDeque<OsString> = components(path.as_bytes()).collect();
    if todo.front().is_some_and(|c| c.is_empty()) {
        todo.pop_front();
    }
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        match c.as_bytes() {
            b"" | b"." => continue,
            b".." => {
                stack.pop();
                continue;
            }
            _ => {}
        }
        let parent = stack.last().map(|(f, _)| f.as_raw_fd()).unwrap_or(root.as_raw_fd());
        let fd = open_at(parent, &c, OFlag::O_PATH | OFlag::O_NOFOLLOW, Mode::empty())?;
        let st = fstat(fd.as_raw_fd()).map_err(errno)?;
        if file_type(&st) == SFlag::S_IFLNK && (!todo.is_empty() || follow_last) {
            links += 1;
            if links > MAX_LINKS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = readlinkat(Some(parent), c.as_os_str()).map_err(errno)?;
            let tb = target.as_bytes();
            if tb.starts_with(b"/") {
                stack.clear();
            }
            for t in components(tb).collect::<Vec<_>>().into_iter().rev() {
                todo.push_front(t);
            }
            continue;
        }
        if !todo.is_empty() && !is_dir(&st) {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        stack.push((fd, c));
    }
    let path = format!("/{}", stack.iter().map(|(_, n)| String::from_utf8_lossy(n.as_bytes()).into_owned()).collect::<Vec<_>>().join("/"));
    match stack.pop() {
        None => {
            let fd = root.try_clone()?;
            let stat = fstat(fd.as_raw_fd()).map_err(errno)?;
            Ok(Resolved { fd, stat, path, parent: None })
        }
        Some((fd, name)) => {
            let stat = fstat(fd.as_raw_fd()).map_err(errno)?;
            let parent_fd = match stack.pop() {
                Some((p, _)) => p,
                None => root.try_clone()?,
            };
            Ok(Resolved { fd, stat, path, parent: Some((parent_fd, name)) })
        }
    }
}

/// One entry met by [`walk`].
pub struct Item<'a> {
    /// Path relative to the walk's start (`a/b`).
    pub rel: &'a Path,
    pub stat: FileStat,
    /// The open directory holding the entry, and its name.
    pub dir: RawFd,
    pub name: &'a std::ffi::OsStr,
}

impl Item<'_> {
    /// Opens a regular file for reading (never through a symlink). What was swapped for a FIFO
    /// or a device since the walk saw it is refused, not read (and never blocks).
    pub fn open(&self) -> io::Result<std::fs::File> {
        let fd = open_at(self.dir, self.name, OFlag::O_PATH | OFlag::O_NOFOLLOW, Mode::empty())?;
        if file_type(&fstat(fd.as_raw_fd()).map_err(errno)?) != SFlag::S_IFREG {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{}: not a regular file", self.rel.display())));
        }
        Ok(std::fs::File::from(reopen(&fd, OFlag::O_RDONLY | OFlag::O_NONBLOCK)?))
    }
    pub fn link_target(&self) -> io::Result<OsString> {
        readlinkat(Some(self.dir), self.name).map_err(errno)
    }
}

/// Pseudo filesystems a walk does not enter (a running container's /proc, /sys...).
fn pseudo_fs(fd: &OwnedFd) -> bool {
    use nix::sys::statfs::{fstatfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC, DEVPTS_SUPER_MAGIC, PROC_SUPER_MAGIC, SYSFS_MAGIC};
    match fstatfs(fd) {
        Ok(s) => {
            let t = s.filesystem_type();
            [PROC_SUPER_MAGIC, SYSFS_MAGIC, CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, DEVPTS_SUPER_MAGIC].contains(&t) || t.0 == 0x19800202
            // mqueue
        }
        Err(_) => false,
    }
}

/// Visits every entry below the directory `dir` (sorted by name, parents before children).
/// `visit` returns whether to descend into a directory; `leave` runs after a directory's children.
pub fn walk(
    dir: &OwnedFd,
    rel: &Path,
    visit: &mut dyn FnMut(&Item) -> io::Result<bool>,
    leave: &mut dyn FnMut(&Path, &FileStat) -> io::Result<()>,
) -> io::Result<()> {
    // Listing through the fd's magic link reads exactly this directory.
    let mut names: Vec<OsString> =
        std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))?.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    names.sort();
    for name in names {
        let st = match fstatat(Some(dir.as_raw_fd()), name.as_os_str(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(s) => s,
            Err(nix::Error::ENOENT) => continue, // removed meanwhile
            Err(e) => return Err(errno(e)),
        };
        let child_rel = rel.join(&name);
        let item = Item { rel: &child_rel, stat: st, dir: dir.as_raw_fd(), name: &name };
        let descend = visit(&item)?;
        if descend && is_dir(&st) {
            let sub = open_at(dir.as_raw_fd(), &name, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW, Mode::empty())?;
            if !pseudo_fs(&sub) {
                walk(&sub, &child_rel, visit, leave)?;
            }
            leave(&child_rel, &st)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    #[test]
    fn resolves_inside_the_root_only() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("root");
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::create_dir_all(r.join("data/sub")).unwrap();
        std::fs::write(r.join("etc/passwd"), b"inside").unwrap();
        std::fs::write(d.path().join("secret"), b"host").unwrap();
        symlink("/etc", r.join("abs")).unwrap();
        symlink("../../../../..", r.join("up")).unwrap();
        symlink("../secret", r.join("data/esc")).unwrap();
        symlink("loop2", r.join("loop1")).unwrap();
        symlink("loop1", r.join("loop2")).unwrap();
        let root = open_root(&r).unwrap();
        let x = resolve(&root, "/abs/passwd", false).unwrap();
        assert_eq!(x.path, "/etc/passwd");
        let x = resolve(&root, "/../../up/etc/passwd", false).unwrap();
        assert_eq!(x.path, "/etc/passwd");
        // `../secret` from /data is /secret inside the root, which does not exist.
        assert_eq!(resolve(&root, "/data/esc", true).unwrap_err().kind(), io::ErrorKind::NotFound);
        // The last symlink is kept unless asked (or a trailing slash) to follow it.
        let x = resolve(&root, "/abs", false).unwrap();
        assert_eq!((x.path.as_str(), file_type(&x.stat)), ("/abs", SFlag::S_IFLNK));
        assert_eq!(resolve(&root, "/abs/", false).unwrap().path, "/etc");
        assert_eq!(resolve(&root, "/", false).unwrap().path, "/");
        assert_eq!(resolve(&root, "/loop1/x", false).unwrap_err().raw_os_error(), Some(libc::ELOOP));
        assert_eq!(resolve(&root, "/etc/passwd/", false).unwrap_err().raw_os_error(), Some(libc::ENOTDIR));
        let (pfd, name) = resolve(&root, "/etc/passwd", false).unwrap().parent.unwrap();
        assert_eq!(name, "passwd");
        assert!(is_dir(&fstat(pfd.as_raw_fd()).unwrap()));
    }
    #[test]
    fn walks_sorted_without_following_links() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("b/c")).unwrap();
        std::fs::write(d.path().join("a"), b"1").unwrap();
        std::fs::write(d.path().join("b/c/f"), b"22").unwrap();
        symlink("/", d.path().join("b/l")).unwrap();
        let root = open_root(d.path()).unwrap();
        let mut seen = vec![];
        let mut left = vec![];
        walk(
            &root,
            Path::new(""),
            &mut |i| {
                seen.push(i.rel.display().to_string());
                if i.rel == Path::new("b/c/f") {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut i.open()?, &mut s)?;
                    assert_eq!(s, "22");
                }
                Ok(true)
            },
            &mut |p, _| {
                left.push(p.display().to_string());
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, ["a", "b", "b/c", "b/c/f", "b/l"]);
        assert_eq!(left, ["b/c", "b"]);
    }
}
