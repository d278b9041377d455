//! Host facts for `/info` and `/version`, read from /proc and /etc.
use std::fs;

pub struct HostInfo {
    pub ncpu: usize,
    pub mem_total: u64,
    pub kernel_version: String,
    pub operating_system: String,
    pub os_version: String,
    pub hostname: String,
    pub cgroup_version: &'static str,
}

pub fn host_info() -> HostInfo {
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mem_total = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<u64>().ok()))
        })
        .unwrap_or(0)
        * 1024;
    let uts = nix::sys::utsname::uname().ok();
    let kernel_version = uts.as_ref().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
    let hostname = uts.as_ref().map(|u| u.nodename().to_string_lossy().into_owned()).unwrap_or_default();
    let osr = fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field =
        |k: &str| osr.lines().find_map(|l| l.strip_prefix(&format!("{k}=")).map(|v| v.trim_matches('"').to_string())).unwrap_or_default();
    let operating_system = field("PRETTY_NAME");
    let os_version = field("VERSION_ID");
    HostInfo { ncpu, mem_total, kernel_version, operating_system, os_version, hostname, cgroup_version: cgroup_version() }
}

/// "1" when the v1 memory controller is mounted (hybrid or legacy), "2" on a pure unified host.
pub fn cgroup_version() -> &'static str {
    if std::path::Path::new("/sys/fs/cgroup/memory").is_dir() {
        "1"
    } else if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    }
}

/// Why this host cannot run the engine, if it cannot (root, overlayfs, cgroups).
pub fn preflight() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("the engine must run as root (it creates namespaces, mounts and cgroups)".into());
    }
    let fss = fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !fss.lines().any(|l| l.split_whitespace().last() == Some("overlay")) {
        return Err("the kernel has no overlayfs (\"overlay\" is missing from /proc/filesystems)".into());
    }
    let cg = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if !cg.lines().any(|l| l.split_whitespace().nth(2).is_some_and(|t| t == "cgroup" || t == "cgroup2")) {
        return Err("no cgroup filesystem is mounted (need cgroup v1 controllers or cgroup2 at /sys/fs/cgroup)".into());
    }
    Ok(())
}
