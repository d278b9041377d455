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
        (None, None) => {
            return Err(RuntimeError::Spec(format!(
                "unable to find user {user_arg}: no matching entries in passwd file"
            )))
        }
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
                (None, None) => {
                    return Err(RuntimeError::Spec(format!(
                        "unable to find group {g}: no matching entries in group file"
                    )))
                }
            };
        }
        None => {
            if let Some(name) = matched_name {
                out.additional_gids =
                    parse_group(group).filter(|e| e.members.contains(&name)).map(|e| e.gid).collect();
            }
        }
    }
    Ok(out)
}

/// Reads `<rootfs>/etc/passwd` and `<rootfs>/etc/group` (missing files count as empty) and
/// resolves `user`. The files are read without following symlinks out of the rootfs only in the
/// sense that absolute links are not resolved against the host root.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<ExecUser, RuntimeError> {
    let read = |name: &str| -> Result<String, RuntimeError> {
        let p = rootfs.join("etc").join(name);
        if p.symlink_metadata().map(|m| m.file_type().is_symlink()).unwrap_or(false) {
            // A symlinked passwd may point anywhere on the host: don't follow it.
            return Ok(String::new());
        }
        match std::fs::read(&p) {
            Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(RuntimeError::Io(e)),
        }
    };
    parse_user(user, &read("passwd")?, &read("group")?)
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
}
