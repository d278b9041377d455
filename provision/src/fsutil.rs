//! Atomic file writes for the store (temp file, fsync, rename, fsync dir) and a file lock.
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `data` to `path` atomically and durably, created with `mode` (the shared helper).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    ::fsutil::write_atomic_mode(path, data, mode)
}

/// An exclusive flock(2) on a file, released on drop (or when the process dies).
pub struct FileLock {
    _file: fs::File,
}

impl FileLock {
    /// Blocks until the lock on `path` (created if missing) is ours.
    pub fn acquire(path: &Path) -> io::Result<FileLock> {
        if let Some(d) = path.parent() {
            fs::create_dir_all(d)?;
        }
        let file = fs::OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(path)?;
        loop {
            // SAFETY: flock(2) on an fd we own.
            let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if r == 0 {
                return Ok(FileLock { _file: file });
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_sets_mode_and_replaces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/config.json");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn lock_is_exclusive_between_threads() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l");
        let counter = std::sync::Arc::new(std::sync::Mutex::new((0, 0)));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let (p, c) = (p.clone(), counter.clone());
                std::thread::spawn(move || {
                    let _l = FileLock::acquire(&p).unwrap();
                    {
                        let mut g = c.lock().unwrap();
                        g.0 += 1;
                        g.1 = g.1.max(g.0);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    c.lock().unwrap().0 -= 1;
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(counter.lock().unwrap().1, 1);
    }
}
