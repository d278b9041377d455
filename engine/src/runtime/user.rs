//! `--user` resolution against the container's /etc/passwd and /etc/group, with runc's rules
//! (and its error texts, which Docker shows as they are).
use super::RuntimeError;
use std::path::Path;

/// The identity the container process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn parse_passwd(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        Some(PasswdEntry {
            name: f.first()?,
            uid: f.get(2)?.parse().ok()?,
            gid: f.get(3)?.parse().ok()?,
            home: f.get(5).copied().unwrap_or(""),
        })
    })
}

fn parse_group(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        Some(GroupEntry {
            name: f.first()?,
            gid: f.get(2)?.parse().ok()?,
            members: f.get(3).map(|m| m.split(',').filter(|s| !s.is_empty()).collect()).unwrap_or_default(),
        })
    })
}

/// Resolves `user` (`""`, `name`, `uid`, `name:group`, `uid:gid`, ...) given the contents of the
/// container's passwd and group files (empty when missing). Pure.
pub fn parse_user(user: &str, passwd: &str, group: &str) -> Result<ExecUser, RuntimeError> {
    let (user_arg, group_arg) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let mut out = ExecUser { uid: 0, gid: 0, additional_gids: vec![], home: "/".into() };
    let user_arg = if user_arg.is_empty() { "0" } else { user_arg };
    let numeric_uid = user_arg.parse::<u32>().ok();
    let entry = parse_passwd(passwd).find(|e| match numeric_uid {
        Some(uid) => e.uid == uid,
        None => e.name == user_arg,
    });
    let matched_name = match (&entry, numeric_uid) {
        (Some(e), _) => {
            out.uid = e.uid;
            out.gid = e.gid;
            if !e.home.is_empty() {
                out.home = e.home.to_string();
            }
            Some(e.name)
        }
        (None, Some(uid)) => {
            out.uid = uid;
            None
        }
        (None, None) => return Err(RuntimeError::Spec(format!("unable to find user {user_arg}: no matching entries in passwd file"))),
    };
    match group_arg.filter(|g| !g.is_empty()) {
        Some(g) => {
            let numeric_gid = g.parse::<u32>().ok();
            let found = parse_group(group).find(|e| match numeric_gid {
                Some(gid) => e.gid == gid,
                None => e.name == g,
            });
            out.gid = match (found, numeric_gid) {
                (Some(e), _) => e.gid,
                (None, Some(gid)) => gid,
                (None, None) => return Err(RuntimeError::Spec(format!("unable to find group {g}: no matching entries in group file"))),
            };
        }
        None => {
            if let Some(name) = matched_name {
                out.additional_gids = parse_group(group).filter(|e| e.members.contains(&name)).map(|e| e.gid).collect();
            }
        }
    }
    Ok(out)
}

/// The most of a container's /etc/passwd or /etc/group the engine reads.
pub const MAX_USER_FILE: u64 = 4 << 20;

/// Why a file of the container could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RootFileError {
    #[error("not a regular file")]
    NotRegular,
    #[error("larger than {0} bytes")]
    TooLarge(u64),
    /// `op` (`open`, `stat`, `read`) of `path` (inside the root, or the root itself) failed.
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: String, source: std::io::Error },
}

/// Reads `rel` inside the container's root `rootfs` as the container would see it there: every
/// symlink resolved inside the root (openat2 `RESOLVE_IN_ROOT`), regular files only (a FIFO or
/// a device is never opened), at most `cap` bytes. `Ok(None)` when it does not exist.
pub fn read_in_root(rootfs: &Path, rel: &str, cap: u64) -> Result<Option<Vec<u8>>, RootFileError> {
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    let open = |dir: libc::c_int, path: &[u8], flags: libc::c_int, resolve: u64| -> std::io::Result<OwnedFd> {
        let c = std::ffi::CString::new(path).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: open_how is plain integers; all zero is its default.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        // openat2 refuses O_PATH with other flags than O_DIRECTORY, O_NOFOLLOW and O_CLOEXEC.
        let extra = if flags & libc::O_PATH != 0 { 0 } else { libc::O_NOCTTY };
        how.flags = (flags | libc::O_CLOEXEC | extra) as u64;
        how.resolve = resolve;
        // SAFETY: openat2 reads the C path and our open_how; a returned fd is ours alone.
        let fd = unsafe { libc::syscall(libc::SYS_openat2, dir, c.as_ptr(), &how, std::mem::size_of::<libc::open_how>()) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this fd.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
    };
    let io = |op: &'static str, path: &dyn std::fmt::Display| {
        let path = path.to_string();
        move |source| RootFileError::Io { op, path, source }
    };
    let root =
        open(libc::AT_FDCWD, rootfs.as_os_str().as_bytes(), libc::O_PATH | libc::O_DIRECTORY, 0).map_err(io("open", &rootfs.display()))?;
    let path = match open(root.as_raw_fd(), rel.as_bytes(), libc::O_PATH, libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS) {
        Ok(fd) => fd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("open", &rel)(e)),
    };
    let st = nix::sys::stat::fstat(path.as_raw_fd()).map_err(|e| io("stat", &rel)(e.into()))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(RootFileError::NotRegular);
    }
    // The same inode, now for reading (never blocking).
    let magic = format!("/proc/self/fd/{}", path.as_raw_fd());
    let file = std::fs::File::from(open(libc::AT_FDCWD, magic.as_bytes(), libc::O_RDONLY | libc::O_NONBLOCK, 0).map_err(io("open", &rel))?);
    let mut data = Vec::new();
    file.take(cap + 1).read_to_end(&mut data).map_err(io("read", &rel))?;
    if data.len() as u64 > cap {
        return Err(RootFileError::TooLarge(cap));
    }
    Ok(Some(data))
}

/// The container's `/etc/passwd` and `/etc/group` as read for its bundle: through its mounted
/// rootfs ([`read_in_root`]) or from its overlay's layers while it is being mounted.
pub struct UserFiles {
    passwd: Result<Option<Vec<u8>>, RootFileError>,
    group: Result<Option<Vec<u8>>, RootFileError>,
}

impl UserFiles {
    /// Read through the mounted rootfs at `rootfs`.
    pub fn in_root(rootfs: &Path) -> Self {
        let read = |name: &str| read_in_root(rootfs, &format!("etc/{name}"), MAX_USER_FILE);
        UserFiles { passwd: read("passwd"), group: read("group") }
    }

    /// Read from the overlay's `layers` (top first) as the mount will show them; none when the
    /// layers do not say it plainly (`super::layers::InLayers::Unsure`): read them through the
    /// mount then.
    pub fn in_layers(layers: &[std::path::PathBuf]) -> Option<Self> {
        use super::layers::InLayers;
        let read = |name: &str| match super::layers::read_in_layers(layers, &format!("etc/{name}"), MAX_USER_FILE) {
            InLayers::File(data) => Some(Ok(Some(data))),
            InLayers::TooLarge => Some(Err(RootFileError::TooLarge(MAX_USER_FILE))),
            InLayers::Missing => Some(Ok(None)),
            InLayers::Unsure => None,
        };
        Some(UserFiles { passwd: read("passwd")?, group: read("group")? })
    }

    /// Resolves `user` with runc's rules. Missing files count as empty. A FIFO, a device or a
    /// huge file there is an error when a name must be looked up in it (not a hang); for a
    /// numeric user it counts as missing.
    pub fn resolve_user(&self, user: &str) -> Result<ExecUser, RuntimeError> {
        let named = |s: &str| !s.is_empty() && s.parse::<u32>().is_err();
        let needs_names = user.split(':').any(named);
        let text = |name: &str, file: &Result<Option<Vec<u8>>, RootFileError>| -> Result<String, RuntimeError> {
            match file {
                Ok(b) => Ok(String::from_utf8_lossy(b.as_deref().unwrap_or_default()).into_owned()),
                Err(_) if !needs_names => Ok(String::new()),
                Err(e) => Err(RuntimeError::Spec(format!("unable to read the container's /etc/{name}: {e}"))),
            }
        };
        parse_user(user, &text("passwd", &self.passwd)?, &text("group", &self.group)?)
    }

    /// `/etc/group` as text, for `--group-add` names (empty when missing or unreadable).
    pub fn group(&self) -> String {
        match &self.group {
            Ok(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        }
    }
}

/// Reads the container's `/etc/passwd` and `/etc/group` through its mounted rootfs and resolves
/// `user` ([`UserFiles::resolve_user`]).
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<ExecUser, RuntimeError> {
    UserFiles::in_root(rootfs).resolve_user(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\nwww:x:33:33::/var/www:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:www,other\nnogroup:x:65534:\nstaff:x:50:www\n";

    #[test]
    fn empty_is_root_with_home() {
        let u = parse_user("", PASSWD, GROUP).unwrap();
        assert_eq!(u, ExecUser { uid: 0, gid: 0, additional_gids: vec![], home: "/root".into() });
    }

    #[test]
    fn name_gets_primary_and_supplementary_groups() {
        let u = parse_user("www", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (33, 33, "/var/www"));
        assert_eq!(u.additional_gids, vec![10, 50]);
    }

    #[test]
    fn explicit_group_by_name_or_number() {
        let u = parse_user("nobody:wheel", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (65534, 10));
        assert!(u.additional_gids.is_empty());
        let u = parse_user("1000:1000", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 1000, "/"));
    }

    #[test]
    fn numeric_uid_in_passwd_uses_its_gid() {
        let u = parse_user("65534", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (65534, 65534));
        let u = parse_user("4242", "", "").unwrap();
        assert_eq!((u.uid, u.gid), (4242, 0));
    }

    #[test]
    fn unknown_names_have_runc_errors() {
        let e = parse_user("xyz", PASSWD, GROUP).unwrap_err();
        assert_eq!(e.to_string(), "unable to find user xyz: no matching entries in passwd file");
        let e = parse_user("root:nogrp", PASSWD, GROUP).unwrap_err();
        assert_eq!(e.to_string(), "unable to find group nogrp: no matching entries in group file");
    }

    #[test]
    fn resolve_reads_rootfs_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(d.path().join("etc/passwd"), PASSWD).unwrap();
        assert_eq!(resolve_user(d.path(), "nobody").unwrap().uid, 65534);
        let none = tempfile::tempdir().unwrap();
        assert_eq!(resolve_user(none.path(), "").unwrap().uid, 0);
        assert!(resolve_user(none.path(), "nobody").is_err());
    }

    #[test]
    fn files_are_read_inside_the_root_and_only_when_regular() {
        let d = tempfile::tempdir().unwrap();
        let etc = d.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(d.path().join("real")).unwrap();
        std::fs::write(d.path().join("real/passwd"), PASSWD).unwrap();
        // An absolute link resolves inside the root, not on the host.
        std::os::unix::fs::symlink("/real/passwd", etc.join("passwd")).unwrap();
        assert_eq!(resolve_user(d.path(), "www").unwrap().uid, 33);
        std::os::unix::fs::symlink("/../../../../etc/hostname", etc.join("group")).unwrap();
        assert!(read_in_root(d.path(), "etc/group", 10).unwrap().is_none(), "climbed out of the root");
        std::fs::remove_file(etc.join("group")).unwrap();
        nix::unistd::mkfifo(&etc.join("group"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let t = std::time::Instant::now();
        assert!(matches!(read_in_root(d.path(), "etc/group", 10), Err(RootFileError::NotRegular)));
        let e = resolve_user(d.path(), "www").unwrap_err().to_string();
        assert_eq!(e, "unable to read the container's /etc/group: not a regular file");
        assert_eq!(resolve_user(d.path(), "33:5").unwrap().gid, 5, "numeric users need no names");
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        assert!(matches!(read_in_root(d.path(), "real/passwd", 10), Err(RootFileError::TooLarge(10))));
    }

    #[test]
    fn io_errors_name_the_op_and_path() {
        let e = read_in_root(Path::new("/nonexistent-flotilla-root"), "etc/passwd", 10).unwrap_err();
        assert!(e.to_string().starts_with("open /nonexistent-flotilla-root: "), "{e}");
    }
}
