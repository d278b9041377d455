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

/// Why this host cannot run the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreflightError {
    #[error("the engine must run as root (it creates namespaces, mounts and cgroups)")]
    NotRoot { euid: u32 },
    #[error("the kernel has no overlayfs (\"overlay\" is missing from {})", path.display())]
    NoOverlay { path: std::path::PathBuf },
    #[error("no cgroup filesystem is mounted (need cgroup v1 controllers or cgroup2 at /sys/fs/cgroup)")]
    NoCgroup { mounts: std::path::PathBuf },
}

const FILESYSTEMS: &str = "/proc/filesystems";
const MOUNTS: &str = "/proc/self/mounts";

/// Why this host cannot run the engine, if it cannot (root, overlayfs, cgroups).
pub fn preflight() -> Result<(), PreflightError> {
    let euid = nix::unistd::geteuid();
    if !euid.is_root() {
        return Err(PreflightError::NotRoot { euid: euid.as_raw() });
    }
    let fss = fs::read_to_string(FILESYSTEMS).unwrap_or_default();
    if !fss.lines().any(|l| l.split_whitespace().last() == Some("overlay")) {
        return Err(PreflightError::NoOverlay { path: FILESYSTEMS.into() });
    }
    let cg = fs::read_to_string(MOUNTS).unwrap_or_default();
    if !cg.lines().any(|l| l.split_whitespace().nth(2).is_some_and(|t| t == "cgroup" || t == "cgroup2")) {
        return Err(PreflightError::NoCgroup { mounts: MOUNTS.into() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preflight_texts_name_what_was_read() {
        let e = PreflightError::NoOverlay { path: FILESYSTEMS.into() };
        assert_eq!(e.to_string(), "the kernel has no overlayfs (\"overlay\" is missing from /proc/filesystems)");
        assert_eq!(
            PreflightError::NotRoot { euid: 1000 }.to_string(),
            "the engine must run as root (it creates namespaces, mounts and cgroups)"
        );
    }
}
