//! `PUT /containers/{id}/archive`: a tar stream extracted into a directory of the container.
//! Every parent is resolved inside the container's root (symlinks followed there, as dockerd's
//! chrooted extraction does) and every entry is created relative to its parent's fd, so an
//! archive can neither name nor link its way out of the container.
use super::fsview::{errno, is_dir, open_at, resolve, Resolved};
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};
use std::ffi::{CString, OsStr};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractOptions {
    /// Refuse to replace a directory with a non-directory or the reverse.
    pub no_overwrite_dir_non_dir: bool,
    /// Owner for every entry (`copyUIDGID`: the container's user); else the archive's.
    pub chown: Option<(u32, u32)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("{0}")]
    Refused(String),
    /// `op` failed on `path` (a path in the container).
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: String, source: io::Error },
}

fn refused(s: impl Into<String>) -> ExtractError {
    ExtractError::Refused(s.into())
}

/// An io error of `op` on the container path `path` (for `map_err`).
fn io_err(op: &'static str, path: impl Into<String>) -> impl FnOnce(io::Error) -> ExtractError {
    let path = path.into();
    move |source| ExtractError::Io { op, path, source }
}

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
}

/// Splits an entry name: leading `/` and `.` dropped, `..` refused.
fn components(raw: &[u8]) -> Result<Vec<&[u8]>, ExtractError> {
    let mut out = vec![];
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(refused(format!("invalid tar entry {:?}: path contains '..'", String::from_utf8_lossy(raw)))),
            c => out.push(c),
        }
    }
    Ok(out)
}

struct Extractor<'a> {
    root: &'a OwnedFd,
    /// Canonical container path of the extraction directory.
    dest: String,
    opts: ExtractOptions,
    dir_times: Vec<(String, i64)>,
}

impl Extractor<'_> {
    fn path_of(&self, comps: &[&[u8]]) -> String {
        let mut p = self.dest.trim_end_matches('/').to_string();
        for c in comps {
            p.push('/');
            p.push_str(&String::from_utf8_lossy(c));
        }
        p
    }

    /// The directory `comps` below the destination, created (0755) where missing.
    fn dir(&self, comps: &[&[u8]]) -> Result<OwnedFd, ExtractError> {
        let path = self.path_of(comps);
        match resolve(self.root, &path, true) {
            Ok(r) if is_dir(&r.stat) => return Ok(r.fd),
            Ok(r) => return Err(refused(format!("cannot extract below {}: not a directory", r.path))),
            Err(e) if e.kind() == io::ErrorKind::NotFound && !comps.is_empty() => {}
            Err(e) => return Err(io_err("resolving", path)(e)),
        }
        let parent = self.dir(&comps[..comps.len() - 1])?;
        let name = OsStr::from_bytes(comps[comps.len() - 1]);
        match nix::sys::stat::mkdirat(Some(parent.as_raw_fd()), name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(io_err("creating the directory", path)(errno(e))),
        }
        open_at(parent.as_raw_fd(), name, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW, Mode::empty())
            .map_err(io_err("opening", path))
    }

    fn entry<R: Read>(&mut self, mut e: tar::Entry<'_, R>) -> Result<(), ExtractError> {
        let raw = e.path_bytes().into_owned();
        let comps = components(&raw)?;
        let Some((name, parents)) = comps.split_last() else { return Ok(()) };
        let name = OsStr::from_bytes(name);
        let parent = self.dir(parents)?;
        let pfd = parent.as_raw_fd();
        let h = e.header().clone();
        let kind = h.entry_type();
        let existing = fstatat(Some(pfd), name, AtFlags::AT_SYMLINK_NOFOLLOW).ok();
        let full = self.path_of(&comps);
        if let Some(st) = existing {
            if self.opts.no_overwrite_dir_non_dir {
                if is_dir(&st) && !kind.is_dir() {
                    return Err(refused(format!("cannot overwrite directory {full:?} with non-directory {full:?}")));
                }
                if !is_dir(&st) && kind.is_dir() {
                    return Err(refused(format!("cannot overwrite non-directory {full:?} with directory {full:?}")));
                }
            }
            if !(is_dir(&st) && kind.is_dir()) {
                remove_tree(pfd, name).map_err(io_err("removing", &full))?;
            }
        }
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        match kind {
            tar::EntryType::Directory => {
                if !existing.is_some_and(|s| is_dir(&s)) {
                    nix::sys::stat::mkdirat(Some(pfd), name, Mode::from_bits_truncate(0o700))
                        .map_err(errno)
                        .map_err(io_err("creating the directory", &full))?;
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let fd = open_at(
                    pfd,
                    name,
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(io_err("creating", &full))?;
                let mut f = std::fs::File::from(fd);
                io::copy(&mut e, &mut f).map_err(io_err("writing", &full))?;
            }
            tar::EntryType::Symlink => {
                let target = e.link_name_bytes().ok_or_else(|| refused("symlink without target"))?;
                let t = cstr(OsStr::from_bytes(&target)).map_err(io_err("linking", &full))?;
                let n = cstr(name).map_err(io_err("linking", &full))?;
                // SAFETY: valid C strings; symlinkat creates the link relative to pfd.
                if unsafe { libc::symlinkat(t.as_ptr(), pfd, n.as_ptr()) } != 0 {
                    return Err(io_err("linking", full)(io::Error::last_os_error()));
                }
            }
            tar::EntryType::Link => {
                let target = e.link_name_bytes().ok_or_else(|| refused("hard link without target"))?;
                let tcomps = components(&target)?;
                let tpath = self.path_of(&tcomps);
                let src = resolve(self.root, &tpath, false).map_err(io_err("resolving", tpath))?;
                if is_dir(&src.stat) {
                    return Err(refused("hard link to a directory"));
                }
                let (sp, sn) = src.parent.as_ref().ok_or_else(|| refused("hard link to the root"))?;
                nix::unistd::linkat(Some(sp.as_raw_fd()), sn.as_os_str(), Some(pfd), name, AtFlags::empty())
                    .map_err(errno)
                    .map_err(io_err("linking", &full))?;
                return Ok(());
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let t = match kind {
                    tar::EntryType::Char => SFlag::S_IFCHR,
                    tar::EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let dev = libc::makedev(h.device_major().ok().flatten().unwrap_or(0), h.device_minor().ok().flatten().unwrap_or(0));
                nix::sys::stat::mknodat(Some(pfd), name, t, Mode::from_bits_truncate(0o600), dev)
                    .map_err(errno)
                    .map_err(io_err("creating the node", &full))?;
            }
            _ => return Ok(()), // pax/GNU metadata are consumed by the tar crate
        }
        let (uid, gid) = self.opts.chown.unwrap_or((h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32));
        // Owner and mode through an O_PATH fd of the entry itself: never through a link.
        let fd = open_at(pfd, name, OFlag::O_PATH | OFlag::O_NOFOLLOW, Mode::empty()).map_err(io_err("opening", &full))?;
        chown_empty_path(fd.as_raw_fd(), uid, gid).map_err(io_err("changing the owner of", &full))?;
        if !kind.is_symlink() {
            let p = format!("/proc/self/fd/{}", fd.as_raw_fd());
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .map_err(io_err("changing the mode of", &full))?;
        }
        let mtime = h.mtime().unwrap_or(0) as i64;
        if kind.is_dir() {
            self.dir_times.push((self.path_of(&comps), mtime));
        } else {
            set_times(pfd, name, mtime).map_err(io_err("setting the times of", &full))?;
        }
        Ok(())
    }
}

fn chown_empty_path(fd: RawFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: AT_EMPTY_PATH with an empty C string acts on fd itself.
    let r = unsafe { libc::fchownat(fd, c"".as_ptr(), uid, gid, libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn set_times(dir: RawFd, name: &OsStr, mtime: i64) -> io::Result<()> {
    let n = cstr(name)?;
    let ts = libc::timespec { tv_sec: mtime as libc::time_t, tv_nsec: 0 };
    let times = [ts, ts];
    // SAFETY: valid dirfd, C string and a two-element timespec array; never follows a link.
    let r = unsafe { libc::utimensat(dir, n.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Removes `name` in `dir` (a whole tree for a directory), through fds only.
pub fn remove_tree(dir: RawFd, name: &OsStr) -> io::Result<()> {
    match nix::unistd::unlinkat(Some(dir), name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
        Ok(()) => return Ok(()),
        Err(nix::Error::EISDIR) => {}
        Err(nix::Error::ENOENT) => return Ok(()),
        Err(e) => return Err(errno(e)),
    }
    let sub = open_at(dir, name, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW, Mode::empty())?;
    let names: Vec<_> =
        std::fs::read_dir(format!("/proc/self/fd/{}", sub.as_raw_fd()))?.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    for n in names {
        remove_tree(sub.as_raw_fd(), &n)?;
    }
    nix::unistd::unlinkat(Some(dir), name, nix::unistd::UnlinkatFlags::RemoveDir).map_err(errno)
}

/// Extracts `reader` (plain or gzip tar) into the directory `dest` of the view `root`.
pub fn extract<R: Read>(root: &OwnedFd, dest: &Resolved, reader: R, opts: ExtractOptions) -> Result<(), ExtractError> {
    let r = crate::image::unpack::decompressed(reader).map_err(|e| refused(e.to_string()))?;
    let mut ar = tar::Archive::new(r);
    let mut x = Extractor { root, dest: dest.path.clone(), opts, dir_times: vec![] };
    for entry in ar.entries().map_err(io_err("reading the archive for", &dest.path))? {
        x.entry(entry.map_err(io_err("reading the archive for", &dest.path))?)?;
    }
    for (p, mtime) in x.dir_times.iter().rev() {
        if let Ok(r) = resolve(root, p, false) {
            if let Some((pfd, name)) = &r.parent {
                let _ = set_times(pfd.as_raw_fd(), name, *mtime);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fsview;
    use super::*;
    fn tar_of(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, t, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*t);
            h.set_mode(if t.is_dir() { 0o755 } else { 0o640 });
            h.set_size(data.len() as u64);
            h.set_uid(1234);
            h.set_gid(4321);
            h.set_mtime(1_000_000);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            let name_bytes = name.as_bytes();
            h.as_old_mut().name[..name_bytes.len()].copy_from_slice(name_bytes);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }
    #[test]
    fn extracts_inside_and_follows_links_only_inside() {
        if unsafe { libc::geteuid() } != 0 {
            return; // chown needs root
        }
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("root");
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc", r.join("lnk")).unwrap();
        let root = fsview::open_root(&r).unwrap();
        let dest = resolve(&root, "/", true).unwrap();
        let t = tar_of(&[
            ("dir/", tar::EntryType::Directory, b"", None),
            ("dir/f", tar::EntryType::Regular, b"data", None),
            ("dir/hl", tar::EntryType::Link, b"", Some("dir/f")),
            ("esc", tar::EntryType::Symlink, b"", Some("/etc")),
            ("esc/passwd", tar::EntryType::Regular, b"x", None),
            ("lnk/group", tar::EntryType::Regular, b"g", None),
        ]);
        extract(&root, &dest, t.as_slice(), ExtractOptions::default()).unwrap();
        assert_eq!(std::fs::read(r.join("dir/f")).unwrap(), b"data");
        assert_eq!(std::fs::read(r.join("etc/passwd")).unwrap(), b"x");
        assert_eq!(std::fs::read(r.join("etc/group")).unwrap(), b"g");
        assert!(!d.path().join("etc/passwd").exists() && !d.path().join("etc/group").exists());
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(r.join("dir/f")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777, m.nlink()), (1234, 4321, 0o640, 2));
        // `..` is refused; a directory is not replaced by a file with noOverwriteDirNonDir.
        let bad = tar_of(&[("../x", tar::EntryType::Regular, b"x", None)]);
        assert!(extract(&root, &dest, bad.as_slice(), ExtractOptions::default()).is_err());
        let clash = tar_of(&[("dir", tar::EntryType::Regular, b"x", None)]);
        let e =
            extract(&root, &dest, clash.as_slice(), ExtractOptions { no_overwrite_dir_non_dir: true, chown: Some((0, 0)) }).unwrap_err();
        assert!(e.to_string().contains("cannot overwrite directory"), "{e}");
        extract(&root, &dest, clash.as_slice(), ExtractOptions { no_overwrite_dir_non_dir: false, chown: Some((0, 0)) }).unwrap();
        assert_eq!(std::fs::read(r.join("dir")).unwrap(), b"x");
    }
}
