//! A layer tar from an overlay upper dir (`docker commit`, build steps): overlayfs whiteouts
//! (0:0 character devices) become `.wh.<name>` entries, opaque directories get `.wh..wh..opq`,
//! and what dockerd keeps in its init layer (/etc/hosts, /dev, /proc...) is left out.
use super::changes::INIT_PATHS;
use super::fsview::{self, file_type, Item};
use super::tar_out::{append_item, TarState};
use nix::sys::stat::SFlag;
use std::ffi::CString;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Directories whose content never belongs to a layer (mount points of the runtime).
const SKIP_TREES: &[&str] = &["/dev", "/proc", "/sys"];

fn is_whiteout(it: &Item) -> bool {
    file_type(&it.stat) == SFlag::S_IFCHR && it.stat.st_rdev == 0
}

fn is_opaque(it: &Item) -> bool {
    let p = format!("/proc/self/fd/{}/{}", it.dir, it.name.to_string_lossy());
    let (Ok(path), Ok(key)) = (CString::new(p), CString::new("trusted.overlay.opaque")) else { return false };
    let mut v = [0u8; 4];
    // SAFETY: valid C strings and a buffer of v.len() bytes.
    let n = unsafe { libc::lgetxattr(path.as_ptr(), key.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
    n == 1 && v[0] == b'y'
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

/// Writes the tar of `upper`'s changes to `w`; returns `w`.
pub fn write_layer<W: Write>(w: W, upper: &Path) -> io::Result<W> {
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
                if SKIP_TREES.contains(&abs.as_str()) || INIT_PATHS.contains(&abs.as_str()) {
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
        let tar = write_layer(Vec::new(), up).unwrap();
        let names: Vec<String> =
            tar::Archive::new(&tar[..]).entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
        assert_eq!(names, ["app/", "app/cache/", "app/cache/.wh..wh..opq", "app/x", "etc/", "etc/.wh.gone", "etc/motd"]);
    }
}
