//! A container's files read from its overlay's layers, as the mounted overlay will show them,
//! while the engine is still mounting it (`super::gate`).
use std::path::{Path, PathBuf};

/// The overlayfs extended attribute of an opaque directory (it hides the layers below).
const OPAQUE: &std::ffi::CStr = c"trusted.overlay.opaque";
/// The prefix of overlayfs's own extended attributes.
const OVERLAY_XATTR: &[u8] = b"trusted.overlay.";

/// What the layers say of a path without the overlay mounted.
#[derive(Debug, PartialEq)]
pub enum InLayers {
    /// A regular file: its contents.
    File(Vec<u8>),
    /// A regular file larger than the cap asked for.
    TooLarge,
    /// Nothing is there (no layer has it, a whiteout or an opaque directory hides it).
    Missing,
    /// Only the mount can tell: a symbolic link on the way, something that is neither a file nor
    /// a directory, an overlayfs attribute other than opaque (a redirect, a metacopy), or an
    /// error. The caller reads it through the mounted rootfs.
    Unsure,
}

/// Reads `rel` (relative, e.g. `etc/passwd`) as the overlay of `layers` (top first) would show it,
/// with overlayfs's rules for whiteouts (a character device 0:0) and opaque directories, reading
/// at most `cap` bytes. Anything beyond those rules is [`InLayers::Unsure`].
pub fn read_in_layers(layers: &[PathBuf], rel: &str, cap: u64) -> InLayers {
    use std::os::unix::fs::FileTypeExt;
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() || parts.iter().any(|p| *p == "." || *p == "..") {
        return InLayers::Unsure;
    }
    for layer in layers {
        let mut path = layer.clone();
        let mut opaque = false;
        for (i, part) in parts.iter().enumerate() {
            path.push(part);
            let last = i + 1 == parts.len();
            let md = match std::fs::symlink_metadata(&path) {
                Ok(md) => md,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(_) => return InLayers::Unsure,
            };
            let ft = md.file_type();
            if ft.is_char_device() && md_rdev(&md) == 0 {
                return InLayers::Missing;
            }
            match overlay_xattrs(&path) {
                Some(names) if names.is_empty() => {}
                // `y`: opaque. Other values (a directory that may hold data-only whiteouts) are
                // left to the mount.
                Some(names) if !last && names.iter().all(|n| n == OPAQUE.to_bytes()) && is_opaque(&path) => opaque = true,
                _ => return InLayers::Unsure,
            }
            if last {
                if !ft.is_file() {
                    return InLayers::Unsure;
                }
                // Read as a mounted root's files are: the layer as the root (no link on the way, as
                // checked), a regular file, never blocking, at most `cap` bytes.
                return match super::user::read_in_root(layer, rel, cap) {
                    Ok(Some(data)) => InLayers::File(data),
                    Err(super::user::RootFileError::TooLarge(_)) => InLayers::TooLarge,
                    Ok(None) | Err(_) => InLayers::Unsure,
                };
            }
            if !ft.is_dir() {
                return InLayers::Unsure;
            }
        }
        // An opaque directory on the way hides what the layers below have under it.
        if opaque {
            return InLayers::Missing;
        }
    }
    InLayers::Missing
}

fn md_rdev(md: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::rdev(md)
}

/// The overlayfs attributes of `path` (not followed); none when they cannot be listed.
fn overlay_xattrs(path: &Path) -> Option<Vec<Vec<u8>>> {
    let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str())).ok()?;
    let mut buf = vec![0u8; 1024];
    // SAFETY: llistxattr writes at most buf.len() bytes of names into buf.
    let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf.split(|b| *b == 0).filter(|n| n.starts_with(OVERLAY_XATTR)).map(<[u8]>::to_vec).collect())
}

/// Whether the directory at `path` (not followed) is marked opaque (`y`).
fn is_opaque(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str())) else { return false };
    let mut v = [0u8; 2];
    // SAFETY: lgetxattr writes at most v.len() bytes into v.
    let n = unsafe { libc::lgetxattr(c.as_ptr(), OPAQUE.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
    n == 1 && v[0] == b'y'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, data: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    fn whiteout(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        nix::sys::stat::mknod(p, nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), 0).unwrap();
    }

    fn set_opaque(p: &Path, value: &[u8]) {
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: sets one attribute of our own directory.
        assert_eq!(unsafe { libc::lsetxattr(c.as_ptr(), c"trusted.overlay.opaque".as_ptr(), value.as_ptr().cast(), value.len(), 0) }, 0);
    }

    #[test]
    fn the_top_most_layer_that_has_the_file_wins() {
        let t = tempfile::tempdir().unwrap();
        let (upper, top, base) = (t.path().join("upper"), t.path().join("top"), t.path().join("base"));
        for d in [&upper, &top, &base] {
            std::fs::create_dir_all(d.join("etc")).unwrap();
        }
        write(&base.join("etc/passwd"), "base");
        write(&base.join("etc/group"), "base group");
        write(&top.join("etc/passwd"), "top");
        let layers = vec![upper.clone(), top.clone(), base.clone()];
        assert_eq!(read_in_layers(&layers, "etc/passwd", 100), InLayers::File(b"top".to_vec()));
        assert_eq!(read_in_layers(&layers, "etc/group", 100), InLayers::File(b"base group".to_vec()));
        assert_eq!(read_in_layers(&layers, "etc/shadow", 100), InLayers::Missing);
        assert_eq!(read_in_layers(&layers, "etc/group", 3), InLayers::TooLarge, "past the cap");
        // A whiteout in a higher layer hides the file below.
        whiteout(&top.join("etc/group"));
        assert_eq!(read_in_layers(&layers, "etc/group", 100), InLayers::Missing);
        // An opaque /etc hides every layer below it; another value of the attribute is the
        // mount's to read.
        write(&upper.join("etc/hosts"), "");
        set_opaque(&upper.join("etc"), b"x");
        assert_eq!(read_in_layers(&layers, "etc/passwd", 100), InLayers::Unsure);
        set_opaque(&upper.join("etc"), b"y");
        assert_eq!(read_in_layers(&layers, "etc/passwd", 100), InLayers::Missing);
    }

    #[test]
    fn links_and_odd_files_are_left_to_the_mount() {
        let t = tempfile::tempdir().unwrap();
        let (top, base) = (t.path().join("top"), t.path().join("base"));
        write(&base.join("real/passwd"), "x");
        std::fs::create_dir_all(&top).unwrap();
        std::os::unix::fs::symlink("/real", top.join("etc")).unwrap();
        let layers = vec![top.clone(), base.clone()];
        assert_eq!(read_in_layers(&layers, "etc/passwd", 100), InLayers::Unsure, "a linked /etc");
        std::fs::remove_file(top.join("etc")).unwrap();
        std::fs::create_dir_all(top.join("etc")).unwrap();
        std::os::unix::fs::symlink("/real/passwd", top.join("etc/passwd")).unwrap();
        assert_eq!(read_in_layers(&layers, "etc/passwd", 100), InLayers::Unsure, "a linked file");
        std::fs::remove_file(top.join("etc/passwd")).unwrap();
        nix::unistd::mkfifo(&top.join("etc/passwd"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        assert_eq!(read_in_layers(&layers, "etc/passwd", 100), InLayers::Unsure, "a FIFO");
        assert_eq!(read_in_layers(&layers, "../etc/passwd", 100), InLayers::Unsure);
    }
}
