//! Resource limits: validation and defaults at create (dockerd's words), the cgroup values
//! they become, `docker update`, and pause/unpause through the freezer.
use super::{ContainerError, ContainerService};
use crate::cgroups::{Cgroup, Resources, DEFAULT_CPU_PERIOD};
use crate::runtime::Runtime;
use bollard_stubs::models::{ContainerUpdateBody, HostConfig};

pub type UpdateRequest = ContainerUpdateBody;

/// dockerd's minimum for `--memory`.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

fn invalid(msg: impl Into<String>) -> ContainerError {
    ContainerError::InvalidParam(msg.into())
}

fn online_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Parses a cpuset list (`0-2,4`) into its members.
pub fn parse_cpuset(s: &str) -> Option<Vec<usize>> {
    let mut out = vec![];
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                if a > b {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

fn check_cpuset(s: &Option<String>, what: &str, available: usize) -> Result<(), ContainerError> {
    let Some(s) = s.as_ref().filter(|s| !s.is_empty()) else { return Ok(()) };
    let set = parse_cpuset(s).ok_or_else(|| invalid(format!("Invalid value {s} for {what}")))?;
    if let Some(bad) = set.iter().find(|c| **c >= available) {
        let avail = if available == 1 { "0".to_string() } else { format!("0-{}", available - 1) };
        return Err(invalid(format!("Requested {what} are not available - requested {bad}, available: {avail}")));
    }
    Ok(())
}

/// dockerd's checks of the limits in a create or update.
pub fn validate(hc: &HostConfig) -> Result<(), ContainerError> {
    let memory = hc.memory.unwrap_or(0);
    let swap = hc.memory_swap.unwrap_or(0);
    if memory != 0 && memory < MIN_MEMORY {
        return Err(invalid("Minimum memory limit allowed is 6MB"));
    }
    if swap > 0 && memory == 0 {
        return Err(invalid("You should always set the Memory limit when using Memoryswap limit, see usage"));
    }
    if memory > 0 && swap > 0 && swap < memory {
        return Err(invalid("Minimum memoryswap limit should be larger than memory limit, see usage"));
    }
    if memory > 0 && hc.memory_reservation.is_some_and(|r| r > memory) {
        return Err(invalid("Minimum memory limit can not be less than memory reservation limit, see usage"));
    }
    let nano = hc.nano_cpus.unwrap_or(0);
    if nano != 0 {
        if hc.cpu_period.unwrap_or(0) != 0 {
            return Err(invalid("Conflicting options: Nano CPUs and CPU Period cannot both be set"));
        }
        if hc.cpu_quota.unwrap_or(0) != 0 {
            return Err(invalid("Conflicting options: Nano CPUs and CPU Quota cannot both be set"));
        }
        let n = online_cpus();
        if nano < 0 || nano > (n as i64) * 1_000_000_000 {
            return Err(invalid(format!("Range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available")));
        }
    }
    if hc.cpu_period.is_some_and(|p| p != 0 && !(1000..=1_000_000).contains(&p)) {
        return Err(invalid("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"));
    }
    if hc.cpu_quota.is_some_and(|q| q > 0 && q < 1000) {
        return Err(invalid("CPU cfs quota can not be less than 1ms (i.e. 1000)"));
    }
    if hc.cpu_shares.is_some_and(|s| s < 0) {
        return Err(invalid("invalid CPU shares"));
    }
    check_cpuset(&hc.cpuset_cpus, "CPUs", online_cpus())?;
    let mems = std::fs::read_to_string("/sys/fs/cgroup/cpuset/cpuset.mems")
        .ok()
        .and_then(|s| parse_cpuset(s.trim()))
        .map(|v| v.iter().max().map_or(1, |m| m + 1))
        .unwrap_or(1);
    check_cpuset(&hc.cpuset_mems, "memory nodes", mems)?;
    Ok(())
}

/// dockerd's defaults stored with the container: `-m` alone allows as much swap again.
pub fn adapt(hc: &mut HostConfig) {
    let memory = hc.memory.unwrap_or(0);
    if memory > 0 && hc.memory_swap.unwrap_or(0) == 0 && crate::cgroups::swap_accounting() {
        hc.memory_swap = Some(memory * 2);
    }
}

/// The cgroup values of a (validated) HostConfig.
pub fn from_host_config(hc: &HostConfig) -> Resources {
    let pos = |v: Option<i64>| v.filter(|x| *x > 0);
    let nano = hc.nano_cpus.unwrap_or(0);
    let (cpu_quota, cpu_period) = if nano > 0 {
        (Some(nano * DEFAULT_CPU_PERIOD as i64 / 1_000_000_000), Some(DEFAULT_CPU_PERIOD))
    } else {
        (pos(hc.cpu_quota), pos(hc.cpu_period).map(|p| p as u64))
    };
    Resources {
        memory: pos(hc.memory),
        memory_swap: hc.memory_swap.filter(|s| *s != 0).filter(|_| hc.memory.unwrap_or(0) > 0),
        memory_reservation: pos(hc.memory_reservation),
        cpu_shares: pos(hc.cpu_shares).map(|s| s as u64),
        cpu_quota,
        cpu_period,
        cpuset_cpus: hc.cpuset_cpus.clone().filter(|s| !s.is_empty()),
        cpuset_mems: hc.cpuset_mems.clone().filter(|s| !s.is_empty()),
        pids_limit: pos(hc.pids_limit),
    }
}

/// The fields of an update this engine does not change on a container, refused by name when
/// they ask for anything (the docker CLI sends them all, zero or null when not given).
fn refuse_unapplied(u: &ContainerUpdateBody) -> Result<(), ContainerError> {
    let nonzero = |v: Option<i64>| v.is_some_and(|x| x != 0);
    let listed = |n: Option<usize>| n.is_some_and(|n| n > 0);
    let fields = [
        ("BlkioWeight (--blkio-weight)", u.blkio_weight.is_some_and(|w| w != 0)),
        ("BlkioWeightDevice", listed(u.blkio_weight_device.as_ref().map(Vec::len))),
        ("BlkioDeviceReadBps", listed(u.blkio_device_read_bps.as_ref().map(Vec::len))),
        ("BlkioDeviceWriteBps", listed(u.blkio_device_write_bps.as_ref().map(Vec::len))),
        ("BlkioDeviceReadIOps", listed(u.blkio_device_read_iops.as_ref().map(Vec::len))),
        ("BlkioDeviceWriteIOps", listed(u.blkio_device_write_iops.as_ref().map(Vec::len))),
        ("CpuRealtimePeriod (--cpu-rt-period)", nonzero(u.cpu_realtime_period)),
        ("CpuRealtimeRuntime (--cpu-rt-runtime)", nonzero(u.cpu_realtime_runtime)),
        ("Devices", listed(u.devices.as_ref().map(Vec::len))),
        ("DeviceCgroupRules", listed(u.device_cgroup_rules.as_ref().map(Vec::len))),
        ("DeviceRequests", listed(u.device_requests.as_ref().map(Vec::len))),
        ("MemorySwappiness", u.memory_swappiness.is_some_and(|v| v != -1)),
        ("OomKillDisable", u.oom_kill_disable.is_some()),
        ("Init", u.init.is_some()),
        ("Ulimits", listed(u.ulimits.as_ref().map(Vec::len))),
        ("CgroupParent", u.cgroup_parent.as_deref().is_some_and(|c| !c.is_empty())),
        ("CpuCount", nonzero(u.cpu_count)),
        ("CpuPercent", nonzero(u.cpu_percent)),
        ("IOMaximumIOps", nonzero(u.io_maximum_iops)),
        ("IOMaximumBandwidth", nonzero(u.io_maximum_bandwidth)),
    ];
    match fields.iter().find(|(_, asked)| *asked) {
        Some((name, _)) => Err(invalid(format!("updating {name} of a container is not supported by this engine"))),
        None => Ok(()),
    }
}

/// Applies an update's fields to the stored HostConfig (dockerd's `UpdateContainer`); returns
/// the cgroup values to write to a running container.
pub fn apply_update(hc: &mut HostConfig, u: &ContainerUpdateBody) -> Result<Resources, ContainerError> {
    refuse_unapplied(u)?;
    let set = |v: Option<i64>| v.filter(|x| *x != 0);
    let mut next = hc.clone();
    let mut cg = Resources::default();
    if let Some(m) = set(u.memory) {
        next.memory = Some(m);
        cg.memory = Some(m);
        match set(u.memory_swap) {
            Some(s) => {
                next.memory_swap = Some(s);
                cg.memory_swap = Some(s);
            }
            None => {
                let cur = hc.memory_swap.unwrap_or(0);
                if cur > 0 && m > cur {
                    return Err(invalid(
                        "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time",
                    ));
                }
                if cur == 0 && crate::cgroups::swap_accounting() {
                    // Created without a limit: swap stays unlimited (dockerd writes -1).
                    cg.memory_swap = Some(-1);
                }
            }
        }
    } else if let Some(s) = set(u.memory_swap) {
        if hc.memory.unwrap_or(0) == 0 {
            return Err(invalid("You should always set the Memory limit when using Memoryswap limit, see usage"));
        }
        next.memory_swap = Some(s);
        cg.memory_swap = Some(s);
    }
    if let Some(r) = set(u.memory_reservation) {
        next.memory_reservation = Some(r);
        cg.memory_reservation = Some(r);
    }
    if let Some(s) = set(u.cpu_shares) {
        next.cpu_shares = Some(s);
        cg.cpu_shares = Some(s as u64);
    }
    if let Some(n) = set(u.nano_cpus) {
        if hc.cpu_quota.unwrap_or(0) != 0 && set(u.cpu_quota).is_none() {
            return Err(invalid("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set"));
        }
        next.nano_cpus = Some(n);
        next.cpu_quota = Some(0);
        next.cpu_period = Some(0);
        cg.cpu_quota = Some(n * DEFAULT_CPU_PERIOD as i64 / 1_000_000_000);
        cg.cpu_period = Some(DEFAULT_CPU_PERIOD);
    } else {
        if (set(u.cpu_quota).is_some() || set(u.cpu_period).is_some()) && hc.nano_cpus.unwrap_or(0) != 0 {
            return Err(invalid("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set"));
        }
        if let Some(q) = set(u.cpu_quota) {
            next.cpu_quota = Some(q);
            cg.cpu_quota = Some(q);
        }
        if let Some(p) = set(u.cpu_period) {
            next.cpu_period = Some(p);
            cg.cpu_period = Some(p as u64);
        }
    }
    if let Some(c) = u.cpuset_cpus.clone().filter(|c| !c.is_empty()) {
        next.cpuset_cpus = Some(c.clone());
        cg.cpuset_cpus = Some(c);
    }
    if let Some(m) = u.cpuset_mems.clone().filter(|m| !m.is_empty()) {
        next.cpuset_mems = Some(m.clone());
        cg.cpuset_mems = Some(m);
    }
    if let Some(p) = u.pids_limit {
        let p = if p <= 0 { 0 } else { p };
        next.pids_limit = Some(p);
        cg.pids_limit = Some(if p == 0 { -1 } else { p });
    }
    validate(&next)?;
    *hc = next;
    Ok(cg)
}

impl<R: Runtime> ContainerService<R> {
    /// The container's cgroup path (cgroupfs layout) under the engine's cgroup parent.
    pub(super) fn cgroup_path(&self, id: &str) -> String {
        format!("{}/{}", self.cfg.cgroup_parent.trim_end_matches('/'), id)
    }

    pub(super) fn cgroup(&self, id: &str) -> Result<Cgroup, ContainerError> {
        Ok(Cgroup::host(&self.cgroup_path(id))?)
    }

    /// `POST /containers/{id}/update`: returns warnings.
    #[tracing::instrument(skip_all, fields(container = %key))]
    pub async fn update(&self, key: &str, u: UpdateRequest) -> Result<Vec<String>, ContainerError> {
        let ctr = self.get(key)?;
        let _op = ctr.op.lock().await;
        let mut rec = ctr.record();
        if let Some(rp) = &u.restart_policy {
            if rec.auto_remove() && rp.name.is_some_and(|n| !matches!(n.to_string().as_str(), "" | "no")) {
                return Err(invalid("Restart policy cannot be updated because AutoRemove is enabled for the container"));
            }
        }
        let cg = apply_update(&mut rec.host_config, &u)?;
        if let Some(rp) = u.restart_policy.clone() {
            rec.host_config.restart_policy = Some(rp);
            super::restart::validate(&rec.host_config)?;
        }
        if rec.running() && !cg.is_empty() {
            let cgroup = self.cgroup(&rec.id)?;
            tokio::task::spawn_blocking(move || cgroup.update(&cg))
                .await
                .map_err(ContainerError::task("updating the cgroup"))?
                .map_err(|e| ContainerError::Conflict(format!("Cannot update container {}: {e}", rec.id)))?;
        }
        let snapshot = {
            let mut r = ctr.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            r.host_config = rec.host_config.clone();
            r.clone()
        };
        self.save(&snapshot)?;
        self.publish("update", &snapshot, &[]);
        Ok(vec![])
    }

    /// `docker pause`: freezes every process of the container.
    pub async fn pause(&self, key: &str) -> Result<(), ContainerError> {
        self.set_paused(key, true).await
    }

    pub async fn unpause(&self, key: &str) -> Result<(), ContainerError> {
        self.set_paused(key, false).await
    }

    async fn set_paused(&self, key: &str, paused: bool) -> Result<(), ContainerError> {
        let ctr = self.get(key)?;
        let _op = ctr.op.lock().await;
        let rec = ctr.record();
        if !rec.running() {
            return Err(ContainerError::Conflict(format!("Container {} is not running", rec.id)));
        }
        if paused && rec.state.paused {
            return Err(ContainerError::Conflict(format!("Container {} is already paused", rec.id)));
        }
        if !paused && !rec.state.paused {
            return Err(ContainerError::Conflict(format!("Container {} is not paused", rec.id)));
        }
        let cgroup = self.cgroup(&rec.id)?;
        tokio::task::spawn_blocking(move || cgroup.freeze(paused)).await.map_err(ContainerError::task("freezing the cgroup"))??;
        let snapshot = {
            let mut r = ctr.rec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            r.state.paused = paused;
            r.clone()
        };
        self.save(&snapshot)?;
        self.publish(if paused { "pause" } else { "unpause" }, &snapshot, &[]);
        Ok(())
    }

    /// Thaws a paused container so a signal sent to it takes effect (stop, kill, rm -f).
    pub(super) async fn thaw_for_signal(&self, rec: &super::record::Record) {
        if !rec.state.paused {
            return;
        }
        if let Ok(cgroup) = self.cgroup(&rec.id) {
            let _ = tokio::task::spawn_blocking(move || cgroup.freeze(false)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_become_quota_and_period() {
        let hc = HostConfig { nano_cpus: Some(200_000_000), memory: Some(64 << 20), pids_limit: Some(-1), ..Default::default() };
        let r = from_host_config(&hc);
        assert_eq!((r.cpu_quota, r.cpu_period), (Some(20_000), Some(100_000)));
        assert_eq!(r.memory, Some(64 << 20));
        assert_eq!(r.pids_limit, None);
        assert!(from_host_config(&HostConfig::default()).is_empty());
    }

    #[test]
    fn dockerd_validation_words() {
        let e = |hc: HostConfig| validate(&hc).unwrap_err().to_string();
        assert_eq!(e(HostConfig { memory: Some(1 << 20), ..Default::default() }), "Minimum memory limit allowed is 6MB");
        assert!(e(HostConfig { memory: Some(64 << 20), memory_swap: Some(32 << 20), ..Default::default() }).contains("memoryswap"));
        assert!(e(HostConfig { nano_cpus: Some(1), cpu_quota: Some(5000), ..Default::default() }).contains("Conflicting"));
        assert!(e(HostConfig { cpuset_cpus: Some("99".into()), ..Default::default() }).contains("requested 99"));
        assert!(validate(&HostConfig { cpuset_cpus: Some("0".into()), memory: Some(64 << 20), ..Default::default() }).is_ok());
        assert_eq!(parse_cpuset("0-2,4"), Some(vec![0, 1, 2, 4]));
        assert_eq!(parse_cpuset("2-1"), None);
    }

    #[test]
    fn update_checks_swap_and_normalises_pids() {
        let mut hc = HostConfig { memory: Some(32 << 20), memory_swap: Some(64 << 20), ..Default::default() };
        let u = ContainerUpdateBody { memory: Some(128 << 20), ..Default::default() };
        assert!(apply_update(&mut hc, &u).unwrap_err().to_string().contains("memoryswap"));
        let u = ContainerUpdateBody { memory: Some(48 << 20), pids_limit: Some(-1), ..Default::default() };
        let cg = apply_update(&mut hc, &u).unwrap();
        assert_eq!((cg.memory, cg.pids_limit), (Some(48 << 20), Some(-1)));
        assert_eq!((hc.memory, hc.pids_limit), (Some(48 << 20), Some(0)));
    }
}
