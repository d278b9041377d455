//! What a `docker exec` process joins, resolved once per shim from /proc: the namespaces the
//! container's init does not share with the shim, and the files that move a process into the
//! init's cgroups.
//!
//! Joining a cgroup v1 hierarchy by writing `0` to its `tasks` file moves only the writing
//! thread, and the kernel then skips the global threadgroup lock whose write side waits for an
//! RCU grace period (10–20 ms here, per exec, with `cgroup.procs`). An exec'd process is one
//! thread when it joins, so that moves the whole process. cgroup v2 has no per-thread file
//! outside threaded subtrees: there the process writes `0` to `cgroup.procs`.
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;

/// The namespaces an exec joins, as `setns` flags, and the pid namespace apart: a process only
/// enters that one at its birth.
#[derive(Debug, Default)]
pub(super) struct Target {
    /// `CLONE_NEW*` flags for `setns(init_pidfd, flags)`, pid namespace excluded.
    pub ns_flags: libc::c_int,
    /// The init lives in another pid namespace: the shim's own, to come back to after each
    /// fork (a process enters a pid namespace only at its birth, so the shim sets its
    /// children's to the init's around the fork).
    pub own_pid_ns: Option<OwnedFd>,
    /// Files to write `0` to, in order, opened once (close-on-exec), with their paths.
    pub cgroup_files: Vec<(OwnedFd, String)>,
    /// The highest capability the kernel knows.
    pub last_cap: u64,
    /// Device and inode of the shim's own binary, which an exec may not run.
    pub shim_exe: (u64, u64),
    /// The init's OOM score adjustment, given to exec'd processes too.
    pub oom_score_adj: Option<String>,
}

const NAMESPACES: &[(&str, libc::c_int)] = &[
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("mnt", libc::CLONE_NEWNS),
];

fn ns_id(pid: &str, name: &str) -> Option<(u64, u64)> {
    std::fs::metadata(format!("/proc/{pid}/ns/{name}")).ok().map(|m| (m.dev(), m.ino()))
}

/// Why the target of an exec cannot be resolved (the texts reach `docker exec` after
/// `OCI runtime exec failed: exec failed: `).
#[derive(Debug, thiserror::Error)]
pub(super) enum EnterError {
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("namespaces of the container's init ({0}) are not readable")]
    Namespaces(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("cap_last_cap: {0}")]
    LastCap(std::num::ParseIntError),
    #[error("no mount of the {hierarchy} cgroup hierarchy holds {path}")]
    NoCgroupMount { hierarchy: String, path: String },
}

fn io_at(path: &str) -> impl FnOnce(std::io::Error) -> EnterError + '_ {
    move |source| EnterError::Io { path: path.to_string(), source }
}

fn read(path: &str) -> Result<String, EnterError> {
    std::fs::read_to_string(path).map_err(io_at(path))
}

impl Target {
    /// Resolves the target of `init` (a pid the shim may read /proc of).
    pub fn resolve(init: i32) -> Result<Target, EnterError> {
        let pid = init.to_string();
        let differs = |name: &str| match (ns_id(&pid, name), ns_id("self", name)) {
            (Some(theirs), Some(ours)) => Ok(theirs != ours),
            _ => Err(EnterError::Namespaces(pid.clone())),
        };
        let last_cap = read("/proc/sys/kernel/cap_last_cap")?.trim().parse().map_err(EnterError::LastCap)?;
        let exe = std::fs::metadata("/proc/self/exe").map_err(io_at("/proc/self/exe"))?;
        let oom_score_adj = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).ok().map(|s| s.trim().to_string());
        let mut t = Target { last_cap, shim_exe: (exe.dev(), exe.ino()), oom_score_adj, ..Default::default() };
        if differs("pid")? {
            let own = std::fs::File::open("/proc/self/ns/pid").map_err(io_at("/proc/self/ns/pid"))?;
            t.own_pid_ns = Some(own.into());
        }
        for (name, flag) in NAMESPACES {
            if differs(name)? {
                t.ns_flags |= flag;
            }
        }
        let files = cgroup_files(&read(&format!("/proc/{pid}/cgroup"))?, &read("/proc/self/cgroup")?, &read("/proc/self/mountinfo")?)?;
        for f in files {
            let file = std::fs::OpenOptions::new().write(true).open(&f).map_err(io_at(&f))?;
            t.cgroup_files.push((file.into(), f));
        }
        Ok(t)
    }
}

/// One line of /proc/PID/cgroup: hierarchy id, controllers (`cpu,cpuacct`, `name=systemd`, empty
/// for v2), path.
fn cgroup_lines(s: &str) -> impl Iterator<Item = (&str, &str, &str)> {
    s.lines().filter_map(|l| {
        let mut it = l.splitn(3, ':');
        Some((it.next()?, it.next()?, it.next()?))
    })
}

/// A cgroup mount from mountinfo: its root within the hierarchy, mount point, v2 or not, and
/// super options.
struct CgroupMount {
    root: String,
    point: String,
    v2: bool,
    options: Vec<String>,
}

fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let mut post = post.split(' ');
            let fstype = post.next()?;
            let options = post.nth(1).unwrap_or_default();
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            Some(CgroupMount {
                root: fsutil::unescape_mount(pre.get(3)?),
                point: fsutil::unescape_mount(pre.get(4)?),
                v2: fstype == "cgroup2",
                options: options.split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}

/// The files that move a process from the shim's cgroups (`ours`) into the init's (`theirs`):
/// `tasks` of every v1 hierarchy where they differ, `cgroup.procs` for v2.
fn cgroup_files(theirs: &str, ours: &str, mountinfo: &str) -> Result<Vec<String>, EnterError> {
    let mounts = cgroup_mounts(mountinfo);
    let mut files = vec![];
    for (id, controllers, path) in cgroup_lines(theirs) {
        if cgroup_lines(ours).any(|(i, c, p)| i == id && c == controllers && p == path) {
            continue;
        }
        let v2 = id == "0" && controllers.is_empty();
        let wanted: Vec<&str> = controllers.split(',').filter(|c| !c.is_empty()).collect();
        let found = mounts.iter().find(|m| {
            m.v2 == v2
                && wanted.iter().all(|c| m.options.iter().any(|o| o == c))
                && (m.root == "/" || path == m.root || path.starts_with(&format!("{}/", m.root)))
        });
        let Some(m) = found else {
            let hierarchy = if v2 { "cgroup2".to_string() } else { controllers.to_string() };
            return Err(EnterError::NoCgroupMount { hierarchy, path: path.to_string() });
        };
        let rel = if m.root == "/" { path } else { &path[m.root.len()..] };
        let file = if v2 { "cgroup.procs" } else { "tasks" };
        files.push(format!("{}/{}/{file}", m.point.trim_end_matches('/'), rel.trim_matches('/')).replace("//", "/"));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
27 25 0:25 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
28 27 0:26 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
29 27 0:27 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
33 27 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
34 27 0:32 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
35 27 0:33 /inner /mnt/my\\040cg rw - cgroup cgroup rw,memory
";

    #[test]
    fn joins_each_hierarchy_that_differs() {
        let theirs = "4:memory:/inner/f/c1\n3:pids:/f/c1\n2:cpu,cpuacct:/f/c1\n1:name=systemd:/\n0::/\n";
        let ours = "4:memory:/inner\n3:pids:/\n2:cpu,cpuacct:/\n1:name=systemd:/\n0::/\n";
        let files = cgroup_files(theirs, ours, MOUNTINFO).unwrap();
        assert_eq!(files, ["/mnt/my cg/f/c1/tasks", "/sys/fs/cgroup/pids/f/c1/tasks", "/sys/fs/cgroup/cpu,cpuacct/f/c1/tasks"]);
    }

    #[test]
    fn v2_uses_cgroup_procs_and_unreachable_paths_are_errors() {
        let files = cgroup_files("0::/system.slice/c1\n", "0::/user.slice\n", MOUNTINFO).unwrap();
        assert_eq!(files, ["/sys/fs/cgroup/unified/system.slice/c1/cgroup.procs"]);
        let err = cgroup_files("4:memory:/elsewhere/c1\n", "4:memory:/\n", MOUNTINFO).unwrap_err().to_string();
        assert_eq!(err, "no mount of the memory cgroup hierarchy holds /elsewhere/c1");
        assert!(cgroup_files("9:blkio:/c1\n", "9:blkio:/\n", MOUNTINFO).is_err());
    }

    #[test]
    fn own_process_target_joins_nothing() {
        let t = Target::resolve(std::process::id() as i32).unwrap();
        assert_eq!((t.ns_flags, t.own_pid_ns.is_none(), t.cgroup_files.len()), (0, true, 0));
        assert!(t.last_cap >= 40, "{}", t.last_cap);
    }
}
