//! The one place state reaches the disk, shared by every crate: atomic writes (temp file in
//! the same directory, fsync, rename, fsync the directory), so readers see the old or the new
//! content, never a mix, and a crash leaves no partial file.
pub mod mountinfo;
pub use mountinfo::{cgroup_mounts, is_mount_point, own_cgroup_mounts, unescape_mount, CgroupMount};

use serde::{de::DeserializeOwned, Serialize};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{}.{}.tmp", std::process::id(), rand::random::<u32>()));
    path.with_file_name(name)
}

/// Writes `data` to `path` atomically and durably (mode 0644).
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic_with(path, data, 0o644, true)
}

/// As [`write_atomic`], with the file created with `mode` (keys, certificates).
pub fn write_atomic_mode(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    write_atomic_with(path, data, mode, true)
}

/// Runtime state (like /run, gone after a reboot): atomic rename, but no fsync, which costs
/// 10-20 ms on ext4 and would double the time of `docker run`.
pub fn write_runtime_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let data = serde_json::to_vec(value).map_err(io::Error::other)?;
    write_atomic_with(path, &data, 0o644, false)
}

/// Runtime files that are rebuilt before every use (a container's seccomp program): atomic
/// rename, no fsync (see [`write_runtime_json`]).
pub fn write_runtime(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic_with(path, data, 0o644, false)
}

/// Makes an empty file at `path` with `mode`, never through a symlink; whatever is already
/// there (a file, a link) is left as it is.
pub fn create_empty(path: &Path, mode: u32) -> io::Result<()> {
    match fs::OpenOptions::new().write(true).create_new(true).mode(mode).custom_flags(libc::O_NOFOLLOW).open(path) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

fn write_atomic_with(path: &Path, data: &[u8], mode: u32, durable: bool) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other("path has no parent"))?;
    fs::create_dir_all(dir)?;
    let tmp = tmp_path(path);
    let res = (|| {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if durable {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// Serializes `value` as JSON and writes it atomically and durably.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let data = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    write_atomic(path, &data)
}

/// As [`write_json`] (or, not `durable`, as [`write_runtime_json`]), readable by its owner
/// only (0600): records that hold secrets, such as a container's environment.
pub fn write_private_json<T: Serialize>(path: &Path, value: &T, durable: bool) -> io::Result<()> {
    let data = if durable { serde_json::to_vec_pretty(value) } else { serde_json::to_vec(value) };
    write_atomic_with(path, &data.map_err(io::Error::other)?, 0o600, durable)
}

/// Reads a JSON file; `Ok(None)` when it does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match fs::read(path) {
        Ok(data) => serde_json::from_slice(&data)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes `path` and syncs its directory; a missing file is not an error.
pub fn remove_durable(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Removes leftover `*.tmp` files of interrupted atomic writes in `dir` (one level).
pub fn remove_stale_tmp(dir: &Path) -> io::Result<()> {
    let Ok(rd) = fs::read_dir(dir) else { return Ok(()) };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "tmp") && p.is_file() {
            let _ = fs::remove_file(&p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn atomic_roundtrip_modes_and_cleanup() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/x.json");
        write_json(&p, &serde_json::json!({"a": 1})).unwrap();
        write_runtime_json(&p, &serde_json::json!({"a": 2})).unwrap();
        let v: serde_json::Value = read_json(&p).unwrap().unwrap();
        assert_eq!(v["a"], 2);
        assert_eq!(fs::read_dir(d.path().join("sub")).unwrap().count(), 1);
        assert!(read_json::<serde_json::Value>(&d.path().join("nope")).unwrap().is_none());
        let k = d.path().join("sub/key.pem");
        write_atomic_mode(&k, b"k", 0o600).unwrap();
        assert_eq!(fs::metadata(&k).unwrap().permissions().mode() & 0o777, 0o600);
        fs::write(d.path().join("sub/y.1.tmp"), b"").unwrap();
        remove_stale_tmp(&d.path().join("sub")).unwrap();
        assert_eq!(fs::read_dir(d.path().join("sub")).unwrap().count(), 2);
        remove_durable(&k).unwrap();
        remove_durable(&k).unwrap();
        assert!(!k.exists());
    }
}
