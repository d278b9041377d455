//! Reading /proc/*/mountinfo, shared by the engine, the `local` machine driver and the test
//! support.
use std::path::Path;

/// Undoes mountinfo's octal escapes (`\040` for a space, `\134` for a backslash).
pub fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether something is mounted exactly at `path` in this process's mount namespace.
///
/// statx's `STATX_ATTR_MOUNT_ROOT` (Linux 5.8) answers for the path alone. mountinfo is read
/// only where the kernel does not report that attribute: the kernel writes it out whole, a line
/// per mount with every overlay's layer list, so each read grows with the containers running
/// (~1.5 ms with 100 of them, on the path of every start).
pub fn is_mount_point(path: &Path) -> bool {
    match mount_root_attribute(path) {
        Some(answer) => answer,
        None => listed_in_mountinfo(path),
    }
}

/// statx's answer: `None` when the kernel does not report `STATX_ATTR_MOUNT_ROOT`.
fn mount_root_attribute(path: &Path) -> Option<bool> {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return Some(false) };
    let mut stx = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `c` is a NUL-terminated path and `stx` a buffer of the size statx(2) fills.
    let rc = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT, 0, stx.as_mut_ptr()) };
    if rc != 0 {
        // Nothing there is mounted on nothing; other errors are left to mountinfo.
        let errno = std::io::Error::last_os_error().raw_os_error();
        return matches!(errno, Some(libc::ENOENT | libc::ENOTDIR)).then_some(false);
    }
    // SAFETY: statx succeeded and filled the buffer (it was zeroed before, too).
    let stx = unsafe { stx.assume_init() };
    let bit = libc::STATX_ATTR_MOUNT_ROOT as u64;
    (stx.stx_attributes_mask & bit != 0).then_some(stx.stx_attributes & bit != 0)
}

/// The mount point is listed in /proc/self/mountinfo (field 5, octal-escaped).
fn listed_in_mountinfo(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let want = path.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4).is_some_and(|m| unescape_mount(m) == want))
}

/// A cgroup hierarchy (v1 or v2) mounted below `/sys/fs/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    pub mount_point: String,
    /// `cgroup` (v1) or `cgroup2`.
    pub fstype: String,
    /// Super options without `rw`/`ro`, comma-separated: the v1 controllers and `name=…`.
    pub options: String,
}

impl CgroupMount {
    /// A v1 hierarchy with `controller` (e.g. `pids`).
    pub fn has_controller(&self, controller: &str) -> bool {
        self.fstype == "cgroup" && self.options.split(',').any(|o| o == controller)
    }
}

/// The cgroup hierarchies below `/sys/fs/cgroup` listed in `mountinfo` (the text of
/// `/proc/<pid>/mountinfo`), in mount order.
pub fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    let mut v = vec![];
    for l in mountinfo.lines() {
        let Some((pre, post)) = l.split_once(" - ") else { continue };
        let mp = pre.split_whitespace().nth(4).unwrap_or("");
        let mut post = post.split_whitespace();
        let (fstype, _src, opts) = (post.next().unwrap_or(""), post.next(), post.next().unwrap_or(""));
        if (fstype == "cgroup" || fstype == "cgroup2") && mp.starts_with("/sys/fs/cgroup") {
            let o: Vec<&str> = opts.split(',').filter(|o| !["rw", "ro"].contains(o)).collect();
            v.push(CgroupMount { mount_point: mp.to_string(), fstype: fstype.to_string(), options: o.join(",") });
        }
    }
    v
}

/// [`cgroup_mounts`] of this process (none when /proc cannot be read).
pub fn own_cgroup_mounts() -> Vec<CgroupMount> {
    cgroup_mounts(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_told_from_plain_dirs() {
        let dir = tempfile::tempdir().unwrap();
        assert!(is_mount_point(Path::new("/")));
        assert!(is_mount_point(Path::new("/proc")));
        assert!(!is_mount_point(dir.path()));
        assert!(!is_mount_point(&dir.path().join("missing")));
        assert!(!is_mount_point(Path::new("/proc/self/nonexistent/x")));
        // The fallback gives the same answers.
        assert!(listed_in_mountinfo(Path::new("/proc")));
        assert!(!listed_in_mountinfo(dir.path()));
    }

    #[test]
    fn octal_escapes() {
        assert_eq!(unescape_mount(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_mount(r"/x\\"), r"/x\\");
        assert_eq!(unescape_mount(r"/a\134b"), r"/a\b");
    }

    #[test]
    fn cgroup_hierarchies() {
        let info = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                    39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n\
                    40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n\
                    41 23 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate\n\
                    42 23 0:39 / /mnt/cg rw - cgroup cgroup rw,cpu\n";
        let m = cgroup_mounts(info);
        let got: Vec<(&str, &str, &str)> = m.iter().map(|c| (&*c.mount_point, &*c.fstype, &*c.options)).collect();
        assert_eq!(
            got,
            [
                ("/sys/fs/cgroup/pids", "cgroup", "pids"),
                ("/sys/fs/cgroup/systemd", "cgroup", "name=systemd"),
                ("/sys/fs/cgroup/unified", "cgroup2", "nsdelegate")
            ]
        );
        assert!(m[0].has_controller("pids") && !m[1].has_controller("pids") && !m[2].has_controller("nsdelegate"));
    }
}
