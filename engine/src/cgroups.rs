//! Container cgroups seen from the engine: resource limits (`docker update`), the freezer
//! (pause/unpause), the member pids (`top`) and usage counters (`stats`). The cgroup root is
//! an argument (`/sys/fs/cgroup` on a host), so tests run against a tempdir of fixture files.
//!
//! Layouts: cgroup v1 (one hierarchy per controller under the root, e.g. `memory/<path>`), or
//! the v2 unified hierarchy when the root itself has `cgroup.controllers`.
use crate::{Classify, ErrorKind};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const HOST_ROOT: &str = "/sys/fs/cgroup";
/// CFS period dockerd uses for `--cpus`.
pub const DEFAULT_CPU_PERIOD: u64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
}

impl Classify for CgroupError {
    fn kind(&self) -> ErrorKind {
        match self {
            CgroupError::Invalid(_) => ErrorKind::InvalidParameter,
            CgroupError::Io { .. } => ErrorKind::Internal,
        }
    }
}

/// Limits of one container (Docker's HostConfig resources after defaulting). `None` leaves a
/// limit as it is (unlimited at creation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Bytes.
    pub memory: Option<i64>,
    /// Memory plus swap in bytes; -1 = unlimited swap.
    pub memory_swap: Option<i64>,
    /// Soft limit in bytes.
    pub memory_reservation: Option<i64>,
    pub cpu_shares: Option<u64>,
    /// CFS quota in µs per period; -1 = unlimited.
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// Max number of tasks; -1 = unlimited.
    pub pids_limit: Option<i64>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        *self == Resources::default()
    }
}

/// One container's cgroup under a root.
#[derive(Debug, Clone)]
pub struct Cgroup {
    root: PathBuf,
    /// Relative to each hierarchy, without a leading `/`.
    rel: String,
    v2: bool,
}

fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::Io { path: path.to_path_buf(), source })
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError::Io { path: path.to_path_buf(), source })
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat) as a map.
pub fn parse_kv(text: &str) -> std::collections::BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

impl Cgroup {
    /// `path` as in the OCI spec (`/flotilla/<id>`); `root` is the cgroupfs mount root.
    pub fn new(root: impl Into<PathBuf>, path: &str) -> Result<Self, CgroupError> {
        let rel = path.trim_start_matches('/').to_string();
        if rel.is_empty() || rel.split('/').any(|c| c == "..") {
            return Err(CgroupError::Invalid(format!("invalid cgroup path {path:?}")));
        }
        let root = root.into();
        let v2 = root.join("cgroup.controllers").exists();
        Ok(Cgroup { root, rel, v2 })
    }

    /// The container's cgroup under `/sys/fs/cgroup`.
    pub fn host(path: &str) -> Result<Self, CgroupError> {
        Self::new(HOST_ROOT, path)
    }

    /// The directory of `controller` (ignored on v2).
    pub fn dir(&self, controller: &str) -> PathBuf {
        if self.v2 {
            self.root.join(&self.rel)
        } else {
            self.root.join(controller).join(&self.rel)
        }
    }

    fn file(&self, controller: &str, name: &str) -> PathBuf {
        self.dir(controller).join(name)
    }

    pub fn exists(&self) -> bool {
        self.dir(if self.v2 { "" } else { "pids" }).is_dir() || self.dir("memory").is_dir()
    }

    /// `--oom-kill-disable`: cgroup v1's `memory.oom_control` (libcontainer leaves it at 0;
    /// cgroup v2 has no such switch).
    pub fn disable_oom_killer(&self) -> Result<(), CgroupError> {
        if self.v2 {
            return Err(CgroupError::Invalid("--oom-kill-disable needs the cgroup v1 memory controller".into()));
        }
        write(&self.file("memory", "memory.oom_control"), "1")
    }

    /// Writes the given limits (what `docker update` changes on a running container).
    pub fn update(&self, r: &Resources) -> Result<(), CgroupError> {
        if self.v2 {
            return self.update_v2(r);
        }
        self.update_memory_v1(r)?;
        if let Some(s) = r.cpu_shares {
            write(&self.file("cpu", "cpu.shares"), &s.to_string())?;
        }
        if let Some(p) = r.cpu_period {
            write(&self.file("cpu", "cpu.cfs_period_us"), &p.to_string())?;
        }
        if let Some(q) = r.cpu_quota {
            write(&self.file("cpu", "cpu.cfs_quota_us"), &q.to_string())?;
        }
        if let Some(m) = &r.cpuset_mems {
            write(&self.file("cpuset", "cpuset.mems"), m)?;
        }
        if let Some(c) = &r.cpuset_cpus {
            write(&self.file("cpuset", "cpuset.cpus"), c)?;
        }
        if let Some(p) = r.pids_limit {
            write(&self.file("pids", "pids.max"), &if p > 0 { p.to_string() } else { "max".into() })?;
        }
        Ok(())
    }

    /// runc's order: the kernel refuses memory > memory+swap, so whichever grows goes second.
    fn update_memory_v1(&self, r: &Resources) -> Result<(), CgroupError> {
        let mem_file = self.file("memory", "memory.limit_in_bytes");
        let swap_file = self.file("memory", "memory.memsw.limit_in_bytes");
        let has_swap = swap_file.exists();
        if let Some(res) = r.memory_reservation {
            write(&self.file("memory", "memory.soft_limit_in_bytes"), &res.to_string())?;
        }
        match (r.memory, r.memory_swap.filter(|_| has_swap)) {
            (Some(m), Some(s)) => {
                let cur = read_u64(&mem_file).unwrap_or(u64::MAX);
                if s == -1 || (s > 0 && cur < s as u64) {
                    write(&swap_file, &s.to_string())?;
                    write(&mem_file, &m.to_string())?;
                } else {
                    write(&mem_file, &m.to_string())?;
                    write(&swap_file, &s.to_string())?;
                }
            }
            (Some(m), None) => write(&mem_file, &m.to_string())?,
            (None, Some(s)) => write(&swap_file, &s.to_string())?,
            (None, None) => {}
        }
        Ok(())
    }

    fn update_v2(&self, r: &Resources) -> Result<(), CgroupError> {
        let max = |v: i64| if v > 0 { v.to_string() } else { "max".into() };
        if let Some(m) = r.memory {
            write(&self.file("", "memory.max"), &max(m))?;
            if let Some(s) = r.memory_swap {
                write(&self.file("", "memory.swap.max"), &if s > 0 { (s - m).max(0).to_string() } else { "max".into() })?;
            }
        }
        if let Some(res) = r.memory_reservation {
            write(&self.file("", "memory.low"), &res.to_string())?;
        }
        if let Some(s) = r.cpu_shares {
            // runc's conversion of shares [2, 262144] to weight [1, 10000].
            let w = 1 + ((s.clamp(2, 262_144) - 2) * 9999) / 262_142;
            write(&self.file("", "cpu.weight"), &w.to_string())?;
        }
        if r.cpu_quota.is_some() || r.cpu_period.is_some() {
            let q = r.cpu_quota.filter(|q| *q > 0).map(|q| q.to_string()).unwrap_or_else(|| "max".into());
            let p = r.cpu_period.unwrap_or(DEFAULT_CPU_PERIOD);
            write(&self.file("", "cpu.max"), &format!("{q} {p}"))?;
        }
        if let Some(m) = &r.cpuset_mems {
            write(&self.file("", "cpuset.mems"), m)?;
        }
        if let Some(c) = &r.cpuset_cpus {
            write(&self.file("", "cpuset.cpus"), c)?;
        }
        if let Some(p) = r.pids_limit {
            write(&self.file("", "pids.max"), &max(p))?;
        }
        Ok(())
    }

    /// Freezes or thaws every process of the cgroup; waits (up to 5 s) until the kernel agrees.
    pub fn freeze(&self, frozen: bool) -> Result<(), CgroupError> {
        let (file, value, want) = if self.v2 {
            (self.file("", "cgroup.freeze"), if frozen { "1" } else { "0" }, if frozen { "frozen 1" } else { "frozen 0" })
        } else {
            (self.file("freezer", "freezer.state"), if frozen { "FROZEN" } else { "THAWED" }, if frozen { "FROZEN" } else { "THAWED" })
        };
        write(&file, value)?;
        let state_file = if self.v2 { self.file("", "cgroup.events") } else { file.clone() };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let s = read(&state_file)?;
            if s.lines().any(|l| l.trim() == want) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(CgroupError::Invalid(format!("cgroup did not become {value}: {}", s.trim())));
            }
            // FREEZING: ask again (v1 re-tries the tasks that were busy).
            if !self.v2 && frozen {
                let _ = write(&file, value);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Whether the cgroup is frozen (false when it does not exist).
    pub fn is_frozen(&self) -> bool {
        if self.v2 {
            read(&self.file("", "cgroup.events")).is_ok_and(|s| s.lines().any(|l| l.trim() == "frozen 1"))
        } else {
            read(&self.file("freezer", "freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
        }
    }

    /// Pids of every process in the cgroup (host pid namespace).
    pub fn pids(&self) -> Result<Vec<u32>, CgroupError> {
        let s = read(&self.file("pids", "cgroup.procs"))?;
        Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// CPU counters alone (what `precpu_stats` needs): 4 small reads on v1, one on v2.
    pub fn cpu_usage(&self) -> CpuUsage {
        if self.v2 {
            return cpu_usage_v2(&parse_kv(&read(&self.file("", "cpu.stat")).unwrap_or_default()));
        }
        let percpu = read(&self.file("cpuacct", "cpuacct.usage_percpu"))
            .map(|s| s.split_whitespace().filter_map(|v| v.parse().ok()).collect())
            .unwrap_or_default();
        let cpuacct = parse_kv(&read(&self.file("cpuacct", "cpuacct.stat")).unwrap_or_default());
        // cpuacct.stat is in USER_HZ ticks.
        let tick_ns = 1_000_000_000 / clock_ticks();
        let cpu = parse_kv(&read(&self.file("cpu", "cpu.stat")).unwrap_or_default());
        CpuUsage {
            total_ns: read_u64(&self.file("cpuacct", "cpuacct.usage")).unwrap_or(0),
            user_ns: cpuacct.get("user").map(|t| t * tick_ns).unwrap_or(0),
            system_ns: cpuacct.get("system").map(|t| t * tick_ns).unwrap_or(0),
            percpu_ns: percpu,
            throttled_periods: cpu.get("nr_throttled").copied().unwrap_or(0),
            periods: cpu.get("nr_periods").copied().unwrap_or(0),
            throttled_ns: cpu.get("throttled_time").copied().unwrap_or(0),
        }
    }

    /// Usage counters for `docker stats`.
    pub fn stats(&self) -> CgroupStats {
        if self.v2 {
            let cpu = parse_kv(&read(&self.file("", "cpu.stat")).unwrap_or_default());
            let mem_stat = parse_kv(&read(&self.file("", "memory.stat")).unwrap_or_default());
            return CgroupStats {
                cpu: cpu_usage_v2(&cpu),
                mem_usage: read_u64(&self.file("", "memory.current")).unwrap_or(0),
                mem_max_usage: 0,
                mem_limit: read(&self.file("", "memory.max")).ok().and_then(|s| s.trim().parse().ok()),
                mem_failcnt: 0,
                mem_stat,
                pids_current: read_u64(&self.file("", "pids.current")).unwrap_or(0),
                pids_limit: read(&self.file("", "pids.max")).ok().and_then(|s| s.trim().parse().ok()),
                blkio: vec![],
            };
        }
        let mem_limit = read_u64(&self.file("memory", "memory.limit_in_bytes"));
        CgroupStats {
            cpu: self.cpu_usage(),
            mem_usage: read_u64(&self.file("memory", "memory.usage_in_bytes")).unwrap_or(0),
            mem_max_usage: read_u64(&self.file("memory", "memory.max_usage_in_bytes")).unwrap_or(0),
            // The kernel's "unlimited" is a page-rounded i64::MAX.
            mem_limit: mem_limit.filter(|l| *l < (i64::MAX as u64) / 2),
            mem_failcnt: read_u64(&self.file("memory", "memory.failcnt")).unwrap_or(0),
            mem_stat: parse_kv(&read(&self.file("memory", "memory.stat")).unwrap_or_default()),
            pids_current: read_u64(&self.file("pids", "pids.current")).unwrap_or(0),
            pids_limit: read(&self.file("pids", "pids.max")).ok().and_then(|s| s.trim().parse().ok()),
            blkio: parse_blkio(&read(&self.file("blkio", "blkio.throttle.io_service_bytes")).unwrap_or_default()),
        }
    }
}

/// Whether the host's memory controller can limit swap (v1 `memsw` files, or v2).
pub fn swap_accounting() -> bool {
    let root = Path::new(HOST_ROOT);
    root.join("memory/memory.memsw.limit_in_bytes").exists() || root.join("cgroup.controllers").exists()
}

/// `major:minor Op value` lines (the `Total` line is skipped).
pub fn parse_blkio(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let dev = it.next()?;
            let op = it.next()?;
            let value = it.next()?.parse().ok()?;
            let (major, minor) = dev.split_once(':')?;
            Some(BlkioEntry { major: major.parse().ok()?, minor: minor.parse().ok()?, op: op.to_string(), value })
        })
        .collect()
}

pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no side effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

/// CPU time used by a cgroup, and its throttling by a CPU quota.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuUsage {
    pub total_ns: u64,
    pub user_ns: u64,
    pub system_ns: u64,
    pub percpu_ns: Vec<u64>,
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_ns: u64,
}

fn cpu_usage_v2(cpu: &std::collections::BTreeMap<String, u64>) -> CpuUsage {
    CpuUsage {
        total_ns: cpu.get("usage_usec").map(|u| u * 1000).unwrap_or(0),
        user_ns: cpu.get("user_usec").map(|u| u * 1000).unwrap_or(0),
        system_ns: cpu.get("system_usec").map(|u| u * 1000).unwrap_or(0),
        percpu_ns: vec![],
        throttled_periods: cpu.get("nr_throttled").copied().unwrap_or(0),
        periods: cpu.get("nr_periods").copied().unwrap_or(0),
        throttled_ns: cpu.get("throttled_usec").map(|u| u * 1000).unwrap_or(0),
    }
}

#[derive(Debug, Clone, Default)]
pub struct CgroupStats {
    pub cpu: CpuUsage,
    pub mem_usage: u64,
    pub mem_max_usage: u64,
    /// None = unlimited.
    pub mem_limit: Option<u64>,
    pub mem_failcnt: u64,
    pub mem_stat: std::collections::BTreeMap<String, u64>,
    pub pids_current: u64,
    pub pids_limit: Option<u64>,
    pub blkio: Vec<BlkioEntry>,
}

/// Host CPU time in ns from the `cpu` line of /proc/stat (dockerd's `system_cpu_usage`).
pub fn system_cpu_ns(proc_stat: &str) -> u64 {
    let Some(line) = proc_stat.lines().find(|l| l.starts_with("cpu ")) else { return 0 };
    let ticks: u64 = line.split_whitespace().skip(1).take(7).filter_map(|v| v.parse::<u64>().ok()).sum();
    ticks * (1_000_000_000 / clock_ticks())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1_fixture() -> (tempfile::TempDir, Cgroup) {
        let d = tempfile::tempdir().unwrap();
        for (ctrl, files) in [
            ("memory", &["memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.soft_limit_in_bytes"][..]),
            ("cpu", &["cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us"][..]),
            ("cpuset", &["cpuset.cpus", "cpuset.mems"][..]),
            ("pids", &["pids.max", "cgroup.procs"][..]),
            ("freezer", &["freezer.state"][..]),
        ] {
            let dir = d.path().join(ctrl).join("flt/abc");
            std::fs::create_dir_all(&dir).unwrap();
            for f in files {
                std::fs::write(dir.join(f), "").unwrap();
            }
        }
        std::fs::write(d.path().join("memory/flt/abc/memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        let cg = Cgroup::new(d.path(), "/flt/abc").unwrap();
        (d, cg)
    }

    fn get(d: &tempfile::TempDir, f: &str) -> String {
        std::fs::read_to_string(d.path().join(f)).unwrap()
    }

    #[test]
    fn v1_update_writes_every_limit() {
        let (d, cg) = v1_fixture();
        let r = Resources {
            memory: Some(32 << 20),
            memory_swap: Some(64 << 20),
            memory_reservation: Some(16 << 20),
            cpu_shares: Some(512),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            cpuset_cpus: Some("0".into()),
            cpuset_mems: Some("0".into()),
            pids_limit: Some(10),
        };
        cg.update(&r).unwrap();
        assert_eq!(get(&d, "memory/flt/abc/memory.limit_in_bytes"), (32u64 << 20).to_string());
        assert_eq!(get(&d, "memory/flt/abc/memory.memsw.limit_in_bytes"), (64u64 << 20).to_string());
        assert_eq!(get(&d, "memory/flt/abc/memory.soft_limit_in_bytes"), (16u64 << 20).to_string());
        assert_eq!(get(&d, "cpu/flt/abc/cpu.shares"), "512");
        assert_eq!(get(&d, "cpu/flt/abc/cpu.cfs_quota_us"), "50000");
        assert_eq!(get(&d, "cpuset/flt/abc/cpuset.cpus"), "0");
        assert_eq!(get(&d, "pids/flt/abc/pids.max"), "10");
        cg.update(&Resources { pids_limit: Some(-1), ..Default::default() }).unwrap();
        assert_eq!(get(&d, "pids/flt/abc/pids.max"), "max");
    }

    #[test]
    fn freezer_and_pids() {
        let (d, cg) = v1_fixture();
        assert!(!cg.is_frozen());
        cg.freeze(true).unwrap();
        assert_eq!(get(&d, "freezer/flt/abc/freezer.state"), "FROZEN");
        assert!(cg.is_frozen());
        cg.freeze(false).unwrap();
        assert!(!cg.is_frozen());
        std::fs::write(d.path().join("pids/flt/abc/cgroup.procs"), "12\n34\n").unwrap();
        assert_eq!(cg.pids().unwrap(), vec![12, 34]);
    }

    #[test]
    fn stats_parse() {
        let (d, cg) = v1_fixture();
        std::fs::create_dir_all(d.path().join("cpuacct/flt/abc")).unwrap();
        std::fs::write(d.path().join("cpuacct/flt/abc/cpuacct.usage"), "123456\n").unwrap();
        std::fs::write(d.path().join("cpuacct/flt/abc/cpuacct.usage_percpu"), "100000 23456 \n").unwrap();
        std::fs::write(d.path().join("memory/flt/abc/memory.usage_in_bytes"), "4096\n").unwrap();
        std::fs::write(d.path().join("memory/flt/abc/memory.stat"), "cache 10\ntotal_inactive_file 5\n").unwrap();
        std::fs::write(d.path().join("pids/flt/abc/pids.current"), "3\n").unwrap();
        std::fs::write(d.path().join("pids/flt/abc/pids.max"), "max\n").unwrap();
        let s = cg.stats();
        assert_eq!(s.cpu.total_ns, 123456);
        assert_eq!(s.cpu.percpu_ns, vec![100000, 23456]);
        assert_eq!(cg.cpu_usage(), s.cpu);
        assert_eq!(s.mem_usage, 4096);
        assert_eq!(s.mem_limit, None);
        assert_eq!(s.mem_stat["total_inactive_file"], 5);
        assert_eq!((s.pids_current, s.pids_limit), (3, None));
        assert_eq!(parse_blkio("8:0 Read 10\n8:0 Write 20\nTotal 30\n").len(), 2);
        assert!(system_cpu_ns("cpu  1 2 3 4 5 6 7 8 9\ncpu0 1\n") > 0);
    }

    #[test]
    fn v2_layout() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("cgroup.controllers"), "cpu memory pids").unwrap();
        std::fs::create_dir_all(d.path().join("flt/abc")).unwrap();
        let cg = Cgroup::new(d.path(), "flt/abc").unwrap();
        cg.update(&Resources { memory: Some(1 << 20), memory_swap: Some(2 << 20), cpu_quota: Some(20_000), ..Default::default() }).unwrap();
        assert_eq!(get(&d, "flt/abc/memory.max"), (1u64 << 20).to_string());
        assert_eq!(get(&d, "flt/abc/memory.swap.max"), (1u64 << 20).to_string());
        assert_eq!(get(&d, "flt/abc/cpu.max"), "20000 100000");
        assert!(Cgroup::new(d.path(), "/a/../b").is_err());
    }
}
