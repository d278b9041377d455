//! Layer unpacking: a tar stream (plain or gzip, detected by magic) into a directory, with
//! whiteouts turned into overlayfs form. Entries that would reach outside the root are refused:
//! `..` components, paths whose parent passes through a symlink, hard links to targets outside
//! the layer or not (yet) in it. Absolute entry paths are taken relative to the root.
use sha2::{Digest, Sha256};
use std::ffi::CString;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("invalid tar entry {path:?}: {why}")]
    Refused { path: String, why: &'static str },
    #[error("unsupported layer compression: {0}")]
    Compression(&'static str),
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    /// The layer stream itself failed (truncated, corrupt gzip, bad tar header).
    #[error("reading layer: {op}: {source}")]
    Read { op: &'static str, source: io::Error },
}

/// What the unpacker should do besides writing files.
#[derive(Debug, Clone, Copy)]
pub struct UnpackOptions {
    /// Convert `.wh.` whiteouts and opaque markers to overlayfs form (layers) or keep them as files.
    pub whiteouts: bool,
    /// Apply uid/gid, device nodes and xattrs (layers) or only plain files/dirs/symlinks (archives).
    pub privileged: bool,
}

impl UnpackOptions {
    pub const LAYER: UnpackOptions = UnpackOptions { whiteouts: true, privileged: true };
    pub const PLAIN: UnpackOptions = UnpackOptions { whiteouts: false, privileged: false };
}

#[derive(Debug, Default, Clone)]
pub struct UnpackStats {
    /// Bytes of regular file content written.
    pub size: u64,
    /// `sha256:<hex>` of the uncompressed tar stream (the layer's diff id).
    pub diff_id: String,
    /// Length of the uncompressed tar stream.
    pub tar_size: u64,
}

/// Compression detected from the first bytes of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
}

/// Looks at the magic bytes; refuses formats we cannot read.
pub fn detect<R: BufRead>(r: &mut R) -> Result<Compression, UnpackError> {
    let head = r.fill_buf().map_err(read_err("detecting the compression"))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Compression::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Err(UnpackError::Compression("zstd"))
    } else if head.starts_with(b"BZh") {
        Err(UnpackError::Compression("bzip2"))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Err(UnpackError::Compression("xz"))
    } else {
        Ok(Compression::None)
    }
}

/// A reader that hashes and counts everything read through it.
pub struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Hashing<R> {
    pub fn new(inner: R) -> Self {
        Hashing { inner, hasher: Sha256::new(), count: 0 }
    }
    /// Reads to the end, then returns (`sha256:<hex>`, length).
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((format!("sha256:{}", hex::encode(self.hasher.finalize())), self.count))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Wraps a possibly-compressed stream into a plain tar reader.
pub fn decompressed<'a, R: Read + 'a>(r: R) -> Result<Box<dyn Read + 'a>, UnpackError> {
    let mut br = BufReader::with_capacity(64 * 1024, r);
    Ok(match detect(&mut br)? {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(br)),
        Compression::None => Box::new(br),
    })
}

/// Unpacks `reader` into `dest` (an existing, empty directory) and returns what was unpacked.
pub fn unpack<R: Read>(reader: R, dest: &Path, opts: UnpackOptions) -> Result<UnpackStats, UnpackError> {
    let hashing = Hashing::new(decompressed(reader)?);
    let mut ar = tar::Archive::new(hashing);
    let mut u = Unpacker { dest, opts, dirs: Vec::new(), size: 0 };
    for entry in ar.entries().map_err(read_err("reading the tar stream"))? {
        u.entry(entry.map_err(read_err("reading a tar entry"))?)?;
    }
    // Directory times last: adding children changes them.
    for (p, mtime) in u.dirs.iter().rev() {
        set_times(p, *mtime).map_err(|e| io_err(p, e))?;
    }
    let (diff_id, tar_size) = ar.into_inner().finish().map_err(read_err("reading the end of the stream"))?;
    Ok(UnpackStats { size: u.size, diff_id, tar_size })
}

fn io_err(p: &Path, source: io::Error) -> UnpackError {
    UnpackError::Io { path: p.display().to_string(), source }
}

fn read_err(op: &'static str) -> impl FnOnce(io::Error) -> UnpackError {
    move |source| UnpackError::Read { op, source }
}

fn refused(path: &[u8], why: &'static str) -> UnpackError {
    UnpackError::Refused { path: String::from_utf8_lossy(path).into_owned(), why }
}

/// Splits an entry path into clean components: leading `/` and `.` dropped, `..` refused.
pub fn clean_components(raw: &[u8]) -> Result<Vec<&[u8]>, UnpackError> {
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(refused(raw, "path contains '..'")),
            c => out.push(c),
        }
    }
    Ok(out)
}

struct Unpacker<'a> {
    dest: &'a Path,
    opts: UnpackOptions,
    dirs: Vec<(PathBuf, i64)>,
    size: u64,
}

impl Unpacker<'_> {
    /// Makes sure every parent of `comps` is a real directory inside the root (creating missing
    /// ones) and never a symlink; returns the parent path.
    fn parent(&self, raw: &[u8], comps: &[&[u8]]) -> Result<PathBuf, UnpackError> {
        let mut p = self.dest.to_path_buf();
        for c in &comps[..comps.len().saturating_sub(1)] {
            p.push(std::ffi::OsStr::from_bytes(c));
            match fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => return Err(refused(raw, "parent path is a symlink")),
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(refused(raw, "parent path is not a directory")),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&p).map_err(|e| io_err(&p, e))?;
                    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).map_err(|e| io_err(&p, e))?;
                }
                Err(e) => return Err(io_err(&p, e)),
            }
        }
        Ok(p)
    }

    fn entry<R: Read>(&mut self, mut e: tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = e.path_bytes().into_owned();
        let comps = clean_components(&raw)?;
        let Some(name) = comps.last().copied() else { return Ok(()) }; // the root itself
        let parent = self.parent(&raw, &comps)?;
        let target = parent.join(std::ffi::OsStr::from_bytes(name));
        let h = e.header().clone();
        let kind = h.entry_type();

        if self.opts.whiteouts {
            if name == b".wh..wh..opq" {
                return set_xattr(&parent, "trusted.overlay.opaque", b"y").map_err(|er| io_err(&parent, er));
            }
            if name.starts_with(b".wh..wh.") {
                return Ok(()); // aufs metadata (hard link dirs): not used by overlay
            }
            if let Some(hidden) = name.strip_prefix(b".wh.") {
                if matches!(hidden, b"" | b"." | b"..") {
                    return Err(refused(&raw, "invalid whiteout name"));
                }
                let wh = parent.join(std::ffi::OsStr::from_bytes(hidden));
                remove_existing(&wh)?;
                mknod(&wh, libc::S_IFCHR, 0, 0).map_err(|er| io_err(&wh, er))?;
                lchown(&wh, h.uid().unwrap_or(0), h.gid().unwrap_or(0)).map_err(|er| io_err(&wh, er))?;
                return Ok(());
            }
        }

        // Replace whatever is there unless both are directories.
        match fs::symlink_metadata(&target) {
            Ok(m) if m.is_dir() && kind.is_dir() => {}
            Ok(_) => remove_existing(&target)?,
            Err(_) => {}
        }
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        let mtime = h.mtime().unwrap_or(0) as i64;
        let (uid, gid) = (h.uid().unwrap_or(0), h.gid().unwrap_or(0));
        match kind {
            tar::EntryType::Directory => {
                if !target.is_dir() {
                    fs::create_dir(&target).map_err(|er| io_err(&target, er))?;
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .mode(0o600)
                    .open(&target)
                    .map_err(|er| io_err(&target, er))?;
                self.size += io::copy(&mut e, &mut f).map_err(|er| io_err(&target, er))?;
            }
            tar::EntryType::Symlink => {
                let link = e.link_name_bytes().ok_or_else(|| refused(&raw, "symlink without target"))?;
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&link), &target).map_err(|er| io_err(&target, er))?;
            }
            tar::EntryType::Link => {
                let link = e.link_name_bytes().ok_or_else(|| refused(&raw, "hard link without target"))?;
                let lcomps = clean_components(&link).map_err(|_| refused(&raw, "hard link target outside the layer"))?;
                if lcomps.is_empty() {
                    return Err(refused(&raw, "hard link to the layer root"));
                }
                let lparent = self.existing_parent(&raw, &lcomps)?;
                let src = lparent.join(std::ffi::OsStr::from_bytes(lcomps[lcomps.len() - 1]));
                match fs::symlink_metadata(&src) {
                    Ok(m) if m.is_dir() => return Err(refused(&raw, "hard link to a directory")),
                    Ok(_) => {}
                    Err(_) => return Err(refused(&raw, "hard link target does not exist in the layer")),
                }
                fs::hard_link(&src, &target).map_err(|er| io_err(&target, er))?;
                return Ok(()); // shares the target's inode and metadata
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo if self.opts.privileged => {
                let t = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let (maj, min) = (h.device_major().ok().flatten().unwrap_or(0), h.device_minor().ok().flatten().unwrap_or(0));
                mknod(&target, t, maj, min).map_err(|er| io_err(&target, er))?;
            }
            _ => return Ok(()), // pax/GNU metadata are consumed by the tar crate; others skipped
        }
        if self.opts.privileged {
            lchown(&target, uid, gid).map_err(|er| io_err(&target, er))?;
            if let Ok(Some(exts)) = e.pax_extensions() {
                for ext in exts.flatten() {
                    if let Some(k) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                        match set_xattr(&target, k, ext.value_bytes()) {
                            Ok(()) => {}
                            Err(er) if matches!(er.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::EPERM)) => {
                                tracing::debug!(path = %target.display(), xattr = k, "xattr not supported, skipped")
                            }
                            Err(er) => return Err(io_err(&target, er)),
                        }
                    }
                }
            }
        }
        if !kind.is_symlink() {
            // After chown: chown clears setuid bits.
            fs::set_permissions(&target, fs::Permissions::from_mode(mode)).map_err(|er| io_err(&target, er))?;
        }
        if kind.is_dir() {
            self.dirs.push((target, mtime));
        } else {
            set_times(&target, mtime).map_err(|er| io_err(&target, er))?;
        }
        Ok(())
    }

    /// Like `parent` but creates nothing: every parent must already be a real directory.
    fn existing_parent(&self, raw: &[u8], comps: &[&[u8]]) -> Result<PathBuf, UnpackError> {
        let mut p = self.dest.to_path_buf();
        for c in &comps[..comps.len() - 1] {
            p.push(std::ffi::OsStr::from_bytes(c));
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() && !m.file_type().is_symlink() => {}
                Ok(_) => return Err(refused(raw, "hard link target passes through a symlink")),
                Err(_) => return Err(refused(raw, "hard link target does not exist in the layer")),
            }
        }
        Ok(p)
    }
}

fn remove_existing(p: &Path) -> Result<(), UnpackError> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).map_err(|e| io_err(p, e)),
        Ok(_) => fs::remove_file(p).map_err(|e| io_err(p, e)),
        Err(_) => Ok(()),
    }
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

fn mknod(p: &Path, kind: libc::mode_t, major: u32, minor: u32) -> io::Result<()> {
    let c = cpath(p)?;
    // SAFETY: c is a valid NUL-terminated path; mknod has no memory effects on our side.
    let r = unsafe { libc::mknod(c.as_ptr(), kind | 0o600, libc::makedev(major, minor)) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn lchown(p: &Path, uid: u64, gid: u64) -> io::Result<()> {
    std::os::unix::fs::lchown(p, Some(uid as u32), Some(gid as u32))
}

pub fn set_xattr(p: &Path, key: &str, value: &[u8]) -> io::Result<()> {
    let c = cpath(p)?;
    let k = CString::new(key).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr key contains NUL"))?;
    // SAFETY: valid C strings and a valid buffer of value.len() bytes.
    let r = unsafe { libc::lsetxattr(c.as_ptr(), k.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn set_times(p: &Path, mtime: i64) -> io::Result<()> {
    let c = cpath(p)?;
    let ts = libc::timespec { tv_sec: mtime as libc::time_t, tv_nsec: 0 };
    let times = [ts, ts];
    // SAFETY: valid path and a two-element timespec array as utimensat expects.
    let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Size in bytes of regular files below `dir` (for layers unpacked before sizes were recorded).
pub fn du(dir: &Path) -> u64 {
    let mut total = 0;
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    for e in rd.flatten() {
        if let Ok(m) = e.path().symlink_metadata() {
            if m.is_dir() {
                total += du(&e.path());
            } else if m.is_file() {
                total += m.size();
            }
        }
    }
    total
}

#[cfg(test)]
#[path = "unpack_tests.rs"]
mod tests;
