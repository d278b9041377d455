use super::*;
use std::io::Write;
use std::os::unix::fs::FileTypeExt;

/// Appends an entry with a raw (unvalidated) name, as a hostile tarball would.
fn raw_entry(b: &mut tar::Builder<Vec<u8>>, name: &str, kind: tar::EntryType, link: Option<&str>, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    {
        let g = h.as_gnu_mut().unwrap();
        g.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            g.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
    }
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn tarball(entries: &[(&str, tar::EntryType, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (n, k, l, d) in entries {
        raw_entry(&mut b, n, *k, *l, d);
    }
    b.into_inner().unwrap()
}

/// A temp dir with `root/` to unpack into; the rest of it must stay empty.
struct Sandbox {
    outer: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let outer = tempfile::tempdir().unwrap();
        fs::create_dir(outer.path().join("root")).unwrap();
        Sandbox { outer }
    }
    fn root(&self) -> PathBuf {
        self.outer.path().join("root")
    }
    fn outside_is_clean(&self) {
        let names: Vec<_> = fs::read_dir(self.outer.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("root")], "something was written outside the root");
    }
}

use tar::EntryType as T;

#[test]
fn refuses_dotdot() {
    let s = Sandbox::new();
    let t = tarball(&[("../escaped", T::Regular, None, b"x")]);
    let e = unpack(&t[..], &s.root(), UnpackOptions::LAYER).unwrap_err();
    assert!(matches!(e, UnpackError::Refused { .. }), "{e}");
    let t = tarball(&[("a/../../escaped", T::Regular, None, b"x")]);
    assert!(unpack(&t[..], &s.root(), UnpackOptions::LAYER).is_err());
    s.outside_is_clean();
}

#[test]
fn refuses_whiteouts_of_parents() {
    let s = Sandbox::new();
    fs::write(s.outer.path().join("keep"), b"k").unwrap();
    for name in ["a/.wh...", "a/.wh..", "a/.wh."] {
        let t = tarball(&[("a/f", T::Regular, None, b"x"), (name, T::Regular, None, b"")]);
        assert!(unpack(&t[..], &s.root(), UnpackOptions::LAYER).is_err(), "{name}");
        assert!(s.root().join("a/f").exists(), "{name} removed its parent");
    }
    assert!(s.outer.path().join("keep").exists());
    fs::remove_file(s.outer.path().join("keep")).unwrap();
    s.outside_is_clean();
}

#[test]
fn refuses_symlink_escape() {
    for target in ["..", "../..", "/etc", "../../../../../../tmp"] {
        let s = Sandbox::new();
        let outer = s.outer.path().display().to_string();
        let t = tarball(&[("x", T::Symlink, Some(target), b""), ("x/pwned", T::Regular, None, b"x")]);
        let e = unpack(&t[..], &s.root(), UnpackOptions::LAYER).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        s.outside_is_clean();
        // absolute symlink to the sandbox itself, then a dir entry through it
        let s = Sandbox::new();
        let t = tarball(&[("y", T::Symlink, Some(outer.as_str()), b""), ("y/sub/f", T::Regular, None, b"x")]);
        assert!(unpack(&t[..], &s.root(), UnpackOptions::LAYER).is_err());
        s.outside_is_clean();
    }
    assert!(!Path::new("/etc/pwned").exists());
}

#[test]
fn refuses_hardlink_escape() {
    let s = Sandbox::new();
    fs::write(s.outer.path().join("secret"), b"s").unwrap();
    for link in ["../secret", "/../secret", "nonexistent", "/etc/passwd"] {
        let t = tarball(&[("h", T::Link, Some(link), b"")]);
        let e = unpack(&t[..], &s.root(), UnpackOptions::LAYER).unwrap_err();
        assert!(matches!(e, UnpackError::Refused { .. }), "{link}: {e}");
        assert!(!s.root().join("h").exists());
    }
    // through a symlinked directory
    let t = tarball(&[("d", T::Symlink, Some(".."), b""), ("h", T::Link, Some("d/secret"), b"")]);
    assert!(unpack(&t[..], &s.root(), UnpackOptions::LAYER).is_err());
    assert!(!s.root().join("h").exists());
    fs::remove_file(s.outer.path().join("secret")).unwrap();
    s.outside_is_clean();
}

#[test]
fn unpacks_layers_with_whiteouts_and_metadata() {
    let s = Sandbox::new();
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(&mut b, "./", T::Directory, None, b"");
    raw_entry(&mut b, "/abs/file", T::Regular, None, b"abs");
    raw_entry(&mut b, "bin/", T::Directory, None, b"");
    let mut h = tar::Header::new_gnu();
    h.set_path("bin/busybox").unwrap();
    h.set_size(5);
    h.set_mode(0o4755);
    h.set_uid(1000);
    h.set_gid(1001);
    h.set_mtime(1_234_567_890);
    h.set_cksum();
    b.append(&h, &b"hello"[..]).unwrap();
    raw_entry(&mut b, "bin/sh", T::Symlink, Some("busybox"), b"");
    raw_entry(&mut b, "bin/ls", T::Link, Some("bin/busybox"), b"");
    raw_entry(&mut b, "etc/.wh.gone", T::Regular, None, b"");
    raw_entry(&mut b, "opq/.wh..wh..opq", T::Regular, None, b"");
    raw_entry(&mut b, ".wh..wh.plnk", T::Directory, None, b"");
    let mut h = tar::Header::new_gnu();
    h.set_path("dev/null").unwrap();
    h.set_entry_type(T::Char);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    h.set_mode(0o666);
    h.set_size(0);
    h.set_cksum();
    b.append(&h, &b""[..]).unwrap();
    let data = b.into_inner().unwrap();
    // gzip it to check detection
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&data).unwrap();
    let gz = gz.finish().unwrap();

    let st = unpack(&gz[..], &s.root(), UnpackOptions::LAYER).unwrap();
    let r = s.root();
    assert_eq!(st.diff_id, format!("sha256:{}", hex::encode(Sha256::digest(&data))));
    assert_eq!(st.tar_size, data.len() as u64);
    assert_eq!(st.size, 8);
    assert_eq!(fs::read(r.join("abs/file")).unwrap(), b"abs");
    let m = fs::metadata(r.join("bin/busybox")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o4755);
    assert_eq!((m.uid(), m.gid()), (1000, 1001));
    assert_eq!(m.mtime(), 1_234_567_890);
    assert_eq!(fs::read_link(r.join("bin/sh")).unwrap(), Path::new("busybox"));
    assert_eq!(fs::metadata(r.join("bin/ls")).unwrap().ino(), m.ino());
    let wh = fs::symlink_metadata(r.join("etc/gone")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!r.join("etc/.wh.gone").exists());
    let mut buf = [0u8; 4];
    let c = CString::new(r.join("opq").as_os_str().as_bytes()).unwrap();
    let n = unsafe { libc::lgetxattr(c.as_ptr(), c"trusted.overlay.opaque".as_ptr(), buf.as_mut_ptr().cast(), 4) };
    assert_eq!(n, 1);
    assert_eq!(buf[0], b'y');
    assert!(!r.join(".wh..wh.plnk").exists());
    let dn = fs::symlink_metadata(r.join("dev/null")).unwrap();
    assert!(dn.file_type().is_char_device());
    assert_eq!(dn.rdev(), libc::makedev(1, 3));
    assert_eq!(fs::metadata(r.join("bin")).unwrap().mtime(), 1_600_000_000);
    s.outside_is_clean();
}

#[test]
fn plain_mode_keeps_whiteout_names_and_replaces_files() {
    let s = Sandbox::new();
    let t = tarball(&[
        ("a", T::Regular, None, b"one"),
        ("a", T::Symlink, Some("/etc/passwd"), b""),
        ("a", T::Regular, None, b"two"),
        (".wh.x", T::Regular, None, b""),
    ]);
    unpack(&t[..], &s.root(), UnpackOptions::PLAIN).unwrap();
    assert_eq!(fs::read(s.root().join("a")).unwrap(), b"two");
    assert!(s.root().join(".wh.x").exists());
}

#[test]
fn refuses_unsupported_compression() {
    let s = Sandbox::new();
    let e = unpack(&[0x28u8, 0xb5, 0x2f, 0xfd, 0, 0][..], &s.root(), UnpackOptions::LAYER).unwrap_err();
    assert!(matches!(e, UnpackError::Compression("zstd")));
}

#[test]
fn a_truncated_gzip_stream_says_what_was_being_read() {
    let s = Sandbox::new();
    let e = unpack(&[0x1fu8, 0x8b, 8, 0][..], &s.root(), UnpackOptions::LAYER).unwrap_err();
    assert!(matches!(e, UnpackError::Read { .. }), "{e:?}");
    assert!(e.to_string().starts_with("reading layer: reading "), "{e}");
}

#[test]
fn file_errors_name_the_path() {
    let e = io_err(Path::new("/l/etc/passwd"), io::Error::from(io::ErrorKind::PermissionDenied));
    assert_eq!(e.to_string(), "/l/etc/passwd: permission denied");
}
