//! A layer tar from an overlay upper dir (`docker commit`, build steps): overlayfs whiteouts
//! (0:0 character devices) become `.wh.<name>` entries, opaque directories get `.wh..wh..opq`,
//! and what dockerd keeps in its init layer (/etc/hosts, /dev, /proc...) is left out.
use super::changes::{etc_only_init, INIT_PATHS};
use super::fsview::{self, file_type, Item};
use super::tar_out::{append_item, TarState};
use nix::sys::stat::SFlag;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Directories whose content never belongs to a layer (mount points of the runtime).
const SKIP_TREES: &[&str] = &["/dev", "/proc", "/sys"];

fn is_whiteout(it: &Item) -> bool {
    file_type(&it.stat) == SFlag::S_IFCHR && it.stat.st_rdev == 0
}

fn is_opaque(it: &Item) -> bool {
    fsview::is_opaque(Path::new(&format!("/proc/self/fd/{}/{}", it.dir, it.name.to_string_lossy())))
}

fn marker(name: Vec<u8>) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(0);
    h.set_mode(0o600);
    h.set_mtime(0);
    let _ = h.set_path(std::ffi::OsStr::from_bytes(&name));
    h.set_cksum();
    h
}

/// Writes the tar of `upper`'s changes to `w`; returns `w`. `lowers` are the image's layer
/// dirs, bottom first: an `etc` that is only the init layer's (see [`etc_only_init`]) is left out.
pub fn write_layer<W: Write>(w: W, upper: &Path, lowers: &[PathBuf]) -> io::Result<W> {
    let mut b = tar::Builder::new(w);
    if upper.is_dir() {
        let root = fsview::open_root(upper)?;
        let mut ts = TarState::default();
        fsview::walk(
            &root,
            Path::new(""),
            &mut |it| {
                let rel = it.rel.as_os_str().as_bytes().to_vec();
                let abs = format!("/{}", String::from_utf8_lossy(&rel));
                if is_whiteout(it) {
                    let mut name = match it.rel.parent() {
                        Some(p) if !p.as_os_str().is_empty() => {
                            let mut v = p.as_os_str().as_bytes().to_vec();
                            v.push(b'/');
                            v
                        }
                        _ => vec![],
                    };
                    name.extend_from_slice(b".wh.");
                    name.extend_from_slice(it.name.as_bytes());
                    b.append(&marker(name), io::empty())?;
                    return Ok(false);
                }
                if SKIP_TREES.contains(&abs.as_str())
                    || INIT_PATHS.contains(&abs.as_str())
                    || (abs == "/etc" && etc_only_init(upper, lowers))
                {
                    return Ok(false);
                }
                append_item(&mut b, &mut ts, it, rel.clone())?;
                if fsview::is_dir(&it.stat) && is_opaque(it) {
                    let mut name = rel;
                    name.extend_from_slice(b"/.wh..wh..opq");
                    b.append(&marker(name), io::empty())?;
                }
                Ok(true)
            },
            &mut |_, _| Ok(()),
        )?;
    }
    b.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    #[test]
    fn whiteouts_opaque_dirs_and_init_files() {
        if unsafe { libc::geteuid() } != 0 {
            return; // whiteouts are device nodes, opaque markers trusted xattrs
        }
        let d = tempfile::tempdir().unwrap();
        let up = d.path();
        std::fs::create_dir_all(up.join("etc")).unwrap();
        std::fs::create_dir_all(up.join("app/cache")).unwrap();
        std::fs::create_dir_all(up.join("proc")).unwrap();
        std::fs::write(up.join("etc/hosts"), b"").unwrap();
        std::fs::write(up.join("etc/motd"), b"hi").unwrap();
        std::fs::write(up.join("app/x"), b"x").unwrap();
        let wh = CString::new(up.join("etc/gone").as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mknod(wh.as_ptr(), libc::S_IFCHR | 0o600, 0) }, 0);
        crate::image::unpack::set_xattr(&up.join("app/cache"), "trusted.overlay.opaque", b"y").unwrap();
        let tar = write_layer(Vec::new(), up, &[]).unwrap();
        let names: Vec<String> =
            tar::Archive::new(&tar[..]).entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
        assert_eq!(names, ["app/", "app/cache/", "app/cache/.wh..wh..opq", "app/x", "etc/", "etc/.wh.gone", "etc/motd"]);
    }

    fn names(upper: &Path, lowers: &[PathBuf]) -> Vec<String> {
        let tar = write_layer(Vec::new(), upper, lowers).unwrap();
        tar::Archive::new(&tar[..]).entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect()
    }

    /// An `etc` made only for the runtime's mount targets is the init layer's, not a change;
    /// one whose mode or owner differs from the image's /etc is a change.
    #[test]
    fn an_etc_of_mount_targets_only_is_left_out() {
        use std::os::unix::fs::PermissionsExt;
        if unsafe { libc::geteuid() } != 0 {
            return; // the image's /etc and the init layer's are root's
        }
        let d = tempfile::tempdir().unwrap();
        let (lower, up) = (d.path().join("lower"), d.path().join("upper"));
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::set_permissions(lower.join("etc"), std::fs::Permissions::from_mode(0o751)).unwrap();
        std::fs::create_dir_all(up.join("etc")).unwrap();
        std::fs::create_dir_all(up.join("app")).unwrap();
        for f in ["hosts", "hostname", "resolv.conf"] {
            std::fs::write(up.join("etc").join(f), b"").unwrap();
        }
        let lowers = [lower.clone()];
        // Another mode than the image's: a change (only the directory, never the targets).
        std::fs::set_permissions(up.join("etc"), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(names(&up, &lowers), ["app/", "etc/"]);
        // The image's mode: the init layer's.
        std::fs::set_permissions(up.join("etc"), std::fs::Permissions::from_mode(0o751)).unwrap();
        assert_eq!(names(&up, &lowers), ["app/"]);
        // A file of its own in it: a change.
        std::fs::write(up.join("etc/motd"), b"hi").unwrap();
        assert_eq!(names(&up, &lowers), ["app/", "etc/", "etc/motd"]);
        std::fs::remove_file(up.join("etc/motd")).unwrap();
        // An image without /etc: root's 0755 is what the init layer makes.
        std::fs::set_permissions(up.join("etc"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(names(&up, &[]), ["app/"]);
        assert_eq!(names(&up, &lowers), ["app/", "etc/"]);
        // An attribute of its own (an ACL, a label): a change.
        crate::image::unpack::set_xattr(&up.join("etc"), "user.note", b"x").unwrap();
        assert_eq!(names(&up, &[]), ["app/", "etc/"]);
        // An `etc` left empty (a file made and removed again): a change.
        let bare = d.path().join("bare");
        std::fs::create_dir_all(bare.join("etc")).unwrap();
        assert_eq!(names(&bare, &[]), ["etc/"]);
    }
}
