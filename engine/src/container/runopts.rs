//! The `docker run` options of a HostConfig beyond resources, mounts and networks: checked at
//! create (each refused with dockerd's words, or ours naming the option) and turned into the
//! runtime's [`RunOptions`] at start (logging: `logopts`; shared namespaces: `joins`).
use super::logopts::log_config;
use super::ContainerError;
use crate::runtime::exec::CAPABILITY_NAMES;
use crate::runtime::options::{Device, DeviceRule, Namespace, RunOptions, Ulimit, ULIMITS};
use bollard_stubs::models::HostConfig;

/// An option given in a form this engine does not read (dockerd's words).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunOptsError {
    /// `--ulimit`/`--default-ulimit` not `name=soft[:hard]` with numbers.
    #[error("invalid ulimit argument: {0}")]
    Ulimit(String),
    /// A `--cap-add`/`--cap-drop` name the kernel does not know.
    #[error("unknown capability: {0:?}")]
    UnknownCapability(String),
}

fn invalid(msg: impl Into<String>) -> ContainerError {
    ContainerError::InvalidParam(msg.into())
}

fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or(&[])
}

/// The daemon's defaults merged into a create's HostConfig as dockerd does: its log driver
/// when none is given (and, for that driver, the options the create leaves out), its
/// `--default-shm-size` (else 64 MiB), its `--default-ulimit`s the create does not set, and its
/// `--dns*` when the create has none.
pub fn apply_defaults(hc: &mut HostConfig, d: &crate::config::RunDefaults) {
    let default_driver = d.log_driver.clone().filter(|t| !t.is_empty()).unwrap_or_else(|| "json-file".into());
    let mut lc = hc.log_config.take().unwrap_or_default();
    if lc.typ.as_deref().is_none_or(str::is_empty) {
        lc.typ = Some(default_driver.clone());
    }
    let mut config = lc.config.take().unwrap_or_default();
    if lc.typ.as_deref() == Some(default_driver.as_str()) {
        for (k, v) in &d.log_opts {
            config.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    lc.config = Some(config);
    hc.log_config = Some(lc);
    if hc.shm_size.unwrap_or(0) == 0 {
        hc.shm_size = Some(d.shm_size.filter(|s| *s > 0).unwrap_or(64 << 20));
    }
    let unset = |v: &Option<Vec<String>>| v.as_ref().is_none_or(|v| v.is_empty());
    if unset(&hc.dns) && !d.dns.is_empty() {
        hc.dns = Some(d.dns.clone());
    }
    if unset(&hc.dns_search) && !d.dns_search.is_empty() {
        hc.dns_search = Some(d.dns_search.clone());
    }
    if unset(&hc.dns_options) && !d.dns_options.is_empty() {
        hc.dns_options = Some(d.dns_options.clone());
    }
    for u in &d.ulimits {
        if !hc.ulimits.iter().flatten().any(|x| x.name == u.name) {
            hc.ulimits.get_or_insert_with(Vec::new).push(u.clone());
        }
    }
}

/// `name=soft[:hard]` (dockerd's `--default-ulimit`, the CLI's `--ulimit`).
pub fn parse_ulimit(s: &str) -> Result<bollard_stubs::models::ResourcesUlimits, RunOptsError> {
    let bad = || RunOptsError::Ulimit(s.to_string());
    let (name, values) = s.split_once('=').ok_or_else(bad)?;
    let (soft, hard) = values.split_once(':').unwrap_or((values, values));
    let num = |v: &str| v.parse::<i64>().map_err(|_| bad());
    Ok(bollard_stubs::models::ResourcesUlimits { name: Some(name.to_string()), soft: Some(num(soft)?), hard: Some(num(hard)?) })
}

/// Every option of this module checked, as dockerd checks them at create.
pub fn validate(hc: &HostConfig) -> Result<(), ContainerError> {
    capabilities(list(&hc.cap_add)).map_err(|e| invalid(format!("invalid CapAdd: {e}")))?;
    capabilities(list(&hc.cap_drop)).map_err(|e| invalid(format!("invalid CapDrop: {e}")))?;
    security_opts(list(&hc.security_opt))?;
    ulimits(hc)?;
    if hc.shm_size.is_some_and(|s| s < 0) {
        return Err(invalid("SHM size can not be less than 0"));
    }
    for g in list(&hc.group_add) {
        if g.trim().is_empty() {
            return Err(invalid("invalid --group-add: an empty group name"));
        }
    }
    devices(hc)?;
    device_rules(hc)?;
    log_config(hc)?;
    namespace_modes(hc)?;
    if let Some(r) = hc.runtime.as_deref().filter(|r| !r.is_empty() && *r != "runc") {
        return Err(invalid(format!("unknown or invalid runtime name: {r}")));
    }
    if hc.storage_opt.as_ref().is_some_and(|o| !o.is_empty()) {
        return Err(invalid("--storage-opt is supported only for overlay over xfs with 'pquota' mount option"));
    }
    kernel_knobs(hc)?;
    unsupported(hc)
}

/// dockerd's namespaced sysctls (the only ones a container may set).
fn namespaced_sysctl(key: &str) -> bool {
    matches!(
        key,
        "kernel.msgmax"
            | "kernel.msgmnb"
            | "kernel.msgmni"
            | "kernel.sem"
            | "kernel.shmall"
            | "kernel.shmmax"
            | "kernel.shmmni"
            | "kernel.shm_rmid_forced"
    ) || key.starts_with("fs.mqueue.")
        || key.starts_with("net.")
}

/// `--sysctl`, `--oom-score-adj`, `--memory-swappiness`, `--cgroupns`.
fn kernel_knobs(hc: &HostConfig) -> Result<(), ContainerError> {
    let host_net = hc.network_mode.as_deref() == Some("host");
    for key in hc.sysctls.iter().flatten().map(|(k, _)| k) {
        if !namespaced_sysctl(key) {
            return Err(invalid(format!("sysctl '{key}' is not allowed: only namespaced sysctls (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.*) can be set")));
        }
        if key.starts_with("net.") && host_net {
            return Err(invalid(format!("sysctl '{key}' is not allowed with --network host: it would change the host's")));
        }
        if key.starts_with("kernel.") && hc.ipc_mode.as_deref() == Some("host") {
            return Err(invalid(format!("sysctl '{key}' is not allowed with --ipc host: it would change the host's")));
        }
    }
    if let Some(adj) = hc.oom_score_adj.filter(|a| !(-1000..=1000).contains(a)) {
        return Err(invalid(format!("Invalid value {adj}, range for oom score adj is [-1000, 1000]")));
    }
    if let Some(s) = hc.memory_swappiness.filter(|s| *s != -1 && !(0..=100).contains(s)) {
        return Err(invalid(format!("Invalid value: {s}, valid memory swappiness range is 0-100")));
    }
    Ok(())
}

/// Fields of the create this engine cannot honour: refused by name rather than dropped.
fn unsupported(hc: &HostConfig) -> Result<(), ContainerError> {
    let set = |v: Option<i64>| v.is_some_and(|v| v != 0);
    let listed = |v: &Option<Vec<bollard_stubs::models::ThrottleDevice>>| v.as_ref().is_some_and(|l| !l.is_empty());
    let refuse = |what: &str, why: &str| Err(invalid(format!("{what} is not supported by this engine: {why}")));
    if hc.blkio_weight.is_some_and(|w| w != 0) || hc.blkio_weight_device.as_ref().is_some_and(|l| !l.is_empty()) {
        return refuse("--blkio-weight", "this kernel's blkio controller has no weight");
    }
    if listed(&hc.blkio_device_read_bps)
        || listed(&hc.blkio_device_write_bps)
        || listed(&hc.blkio_device_read_iops)
        || listed(&hc.blkio_device_write_iops)
    {
        return refuse(
            "--device-read-bps/--device-write-bps/--device-read-iops/--device-write-iops",
            "block I/O throttling is not implemented",
        );
    }
    if set(hc.cpu_realtime_period) || set(hc.cpu_realtime_runtime) {
        return refuse("--cpu-rt-period/--cpu-rt-runtime", "real-time scheduling is not available");
    }
    if hc.device_requests.as_ref().is_some_and(|l| !l.is_empty()) {
        return refuse("--gpus (DeviceRequests)", "no device drivers (GPUs) are available");
    }
    if set(hc.cpu_count) || set(hc.cpu_percent) || set(hc.io_maximum_iops) || set(hc.io_maximum_bandwidth) {
        return refuse("CpuCount/CpuPercent/IOMaximumIOps/IOMaximumBandwidth", "they are Windows options");
    }
    if let Some(d) = hc.volume_driver.as_deref().filter(|d| !d.is_empty() && *d != "local") {
        return Err(invalid(format!("volume driver {d:?} is not supported by this engine (only local is)")));
    }
    if hc.cgroup.as_deref().is_some_and(|c| !c.is_empty()) {
        return refuse("--cgroup (HostConfig.Cgroup)", "containers always get their own cgroup");
    }
    if hc.cgroup_parent.as_deref().is_some_and(|c| !c.is_empty()) {
        return refuse("--cgroup-parent per container", "the engine's own --cgroup-parent holds every container");
    }
    if let Some(i) = hc.isolation.filter(|i| !matches!(i.to_string().as_str(), "" | "default")) {
        return Err(invalid(format!("invalid isolation: {i}: only the default is supported on Linux")));
    }
    Ok(())
}

/// `--cap-add`/`--cap-drop` entries as `CAP_X` (or `ALL`), as dockerd normalises them.
pub fn capabilities(caps: &[String]) -> Result<Vec<String>, RunOptsError> {
    caps.iter()
        .map(|c| {
            let up = c.trim().to_ascii_uppercase();
            if up == "ALL" {
                return Ok(up);
            }
            let name = if up.starts_with("CAP_") { up } else { format!("CAP_{up}") };
            if CAPABILITY_NAMES.contains(&name.as_str()) {
                Ok(name)
            } else {
                Err(RunOptsError::UnknownCapability(name))
            }
        })
        .collect()
}

/// What `--security-opt` asks for: no_new_privs, unconfined system paths.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SecurityOpts {
    pub no_new_privileges: bool,
    pub unconfined_paths: bool,
}

/// dockerd's `--security-opt` keys (`key=value`, or the old `key:value`). Honoured:
/// `no-new-privileges`, `label=disable` (there are no labels here), `systempaths=unconfined`;
/// `seccomp=…` is left to the seccomp module. Everything else is refused by name.
pub fn security_opts(opts: &[String]) -> Result<SecurityOpts, ContainerError> {
    let mut out = SecurityOpts::default();
    for opt in opts {
        if opt == "no-new-privileges" {
            out.no_new_privileges = true;
            continue;
        }
        let Some((key, value)) = opt.split_once('=').or_else(|| opt.split_once(':')) else {
            return Err(invalid(format!("invalid --security-opt 1: {opt:?}")));
        };
        match (key, value) {
            ("no-new-privileges", v) => {
                out.no_new_privileges = v
                    .parse::<bool>()
                    .map_err(|_| invalid(format!("invalid --security-opt 2: {opt:?}: no-new-privileges takes true or false")))?;
            }
            ("seccomp", _) => {}
            ("label", "disable") => {}
            ("label", _) => {
                return Err(invalid(format!("invalid --security-opt {opt:?}: SELinux is not enabled on this host (only label=disable is accepted)")))
            }
            ("apparmor", _) => {
                return Err(invalid(format!("invalid --security-opt {opt:?}: AppArmor is not enabled on this host")))
            }
            ("systempaths", "unconfined") => out.unconfined_paths = true,
            _ => {
                return Err(invalid(format!(
                    "invalid --security-opt 2: {opt:?} (this engine accepts no-new-privileges, seccomp=…, label=disable and systempaths=unconfined)"
                )))
            }
        }
    }
    Ok(out)
}

/// The kernel's ceiling for open files (`fs.nr_open`).
fn nr_open() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(1 << 20)
}

fn ulimits(hc: &HostConfig) -> Result<Vec<Ulimit>, ContainerError> {
    let mut out = vec![];
    for u in hc.ulimits.iter().flatten() {
        let name = u.name.clone().unwrap_or_default();
        if !ULIMITS.iter().any(|(n, _)| *n == name) {
            return Err(invalid(format!("invalid ulimit type: {name}")));
        }
        let value = |v: Option<i64>, what: &str| match v.unwrap_or(0) {
            -1 => Ok(u64::MAX),
            v if v < 0 => Err(invalid(format!("invalid ulimit {name}: {what} limit {v} must not be negative"))),
            v => Ok(v as u64),
        };
        let (soft, hard) = (value(u.soft, "soft")?, value(u.hard, "hard")?);
        if soft > hard {
            return Err(invalid(format!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")));
        }
        if name == "nofile" && hard > nr_open() {
            return Err(invalid(format!(
                "invalid ulimit nofile: hard limit {hard} exceeds the kernel's maximum (fs.nr_open = {})",
                nr_open()
            )));
        }
        out.push(Ulimit { name, soft, hard });
    }
    Ok(out)
}

fn devices(hc: &HostConfig) -> Result<Vec<Device>, ContainerError> {
    let mut out = vec![];
    for d in hc.devices.iter().flatten() {
        let host = d.path_on_host.clone().unwrap_or_default();
        if host.is_empty() {
            return Err(invalid("invalid device mapping: PathOnHost is empty"));
        }
        let container = d.path_in_container.clone().filter(|c| !c.is_empty()).unwrap_or_else(|| host.clone());
        if !container.starts_with('/') {
            return Err(invalid(format!("invalid device mapping {host}:{container}: the path in the container must be absolute")));
        }
        let permissions = d.cgroup_permissions.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "rwm".into());
        if !permissions.chars().all(|c| "rwm".contains(c)) {
            return Err(invalid(format!("invalid device mapping {host}: permissions {permissions:?} are not a combination of r, w and m")));
        }
        std::fs::metadata(&host).map_err(|e| {
            let text = e.raw_os_error().map(|n| std::io::Error::from_raw_os_error(n).to_string()).unwrap_or_else(|| e.to_string());
            let text = text.split(" (os error").next().unwrap_or_default().to_lowercase();
            invalid(format!("error gathering device information while adding custom device {host:?}: {text}"))
        })?;
        out.push(Device { host: host.into(), container, permissions });
    }
    Ok(out)
}

/// `'c 1:3 rwm'`, `'a *:* rwm'` (dockerd's format).
pub fn parse_device_rule(rule: &str) -> Option<DeviceRule> {
    let mut parts = rule.split_whitespace();
    let (kind, numbers, access) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let kind = match kind {
        "a" | "b" | "c" => kind.chars().next()?,
        _ => return None,
    };
    let (major, minor) = numbers.split_once(':')?;
    let num = |s: &str| -> Option<Option<i64>> {
        if s == "*" {
            Some(None)
        } else {
            s.parse::<i64>().ok().filter(|n| *n >= 0).map(Some)
        }
    };
    if access.is_empty() || access.len() > 3 || !access.chars().all(|c| "rwm".contains(c)) {
        return None;
    }
    Some(DeviceRule { kind, major: num(major)?, minor: num(minor)?, access: access.into() })
}

fn device_rules(hc: &HostConfig) -> Result<Vec<DeviceRule>, ContainerError> {
    list(&hc.device_cgroup_rules)
        .iter()
        .map(|r| parse_device_rule(r).ok_or_else(|| invalid(format!("invalid device cgroup format '{r}'"))))
        .collect()
}

/// A `--pid`/`--ipc` mode naming another container (`container:X`).
pub fn joined_container(mode: Option<&str>) -> Option<&str> {
    mode.and_then(|m| m.strip_prefix("container:")).filter(|x| !x.is_empty())
}

fn namespace_modes(hc: &HostConfig) -> Result<(), ContainerError> {
    let pid = hc.pid_mode.as_deref().unwrap_or("");
    if !(pid.is_empty() || pid == "host" || joined_container(Some(pid)).is_some()) {
        return Err(invalid(format!("invalid --pid: {pid:?} (use host or container:<name|id>)")));
    }
    let ipc = hc.ipc_mode.as_deref().unwrap_or("");
    if !(matches!(ipc, "" | "private" | "shareable" | "host") || joined_container(Some(ipc)).is_some()) {
        return Err(invalid(format!("invalid --ipc: {ipc:?} (use private, shareable, host or container:<name|id>)")));
    }
    let uts = hc.uts_mode.as_deref().unwrap_or("");
    if !matches!(uts, "" | "host") {
        return Err(invalid(format!("invalid --uts: {uts:?} (use host)")));
    }
    // This engine never puts a container in a user namespace: `host` is what it always does.
    let userns = hc.userns_mode.as_deref().unwrap_or("");
    if !matches!(userns, "" | "host") {
        return Err(invalid(format!("invalid --userns: {userns:?}: user namespaces are not supported by this engine (use host)")));
    }
    Ok(())
}

/// The options of a validated HostConfig. Namespaces of other containers (`container:X`)
/// and the shared /dev/shm are left for the caller to fill in.
pub fn run_options(hc: &HostConfig) -> Result<RunOptions, ContainerError> {
    let sec = security_opts(list(&hc.security_opt))?;
    let mode = |m: &Option<String>| match m.as_deref() {
        Some("host") => Namespace::Host,
        _ => Namespace::Private,
    };
    Ok(RunOptions {
        privileged: hc.privileged == Some(true),
        cap_add: capabilities(list(&hc.cap_add)).map_err(|e| invalid(e.to_string()))?,
        cap_drop: capabilities(list(&hc.cap_drop)).map_err(|e| invalid(e.to_string()))?,
        no_new_privileges: sec.no_new_privileges,
        masked_paths: if sec.unconfined_paths { Some(vec![]) } else { hc.masked_paths.clone() },
        readonly_paths: if sec.unconfined_paths { Some(vec![]) } else { hc.readonly_paths.clone() },
        ulimits: ulimits(hc)?,
        shm_size: hc.shm_size.filter(|s| *s > 0).map(|s| s as u64),
        group_add: list(&hc.group_add).to_vec(),
        devices: devices(hc)?,
        device_rules: device_rules(hc)?,
        init: hc.init == Some(true),
        pid: mode(&hc.pid_mode),
        ipc: mode(&hc.ipc_mode),
        uts_host: hc.uts_mode.as_deref() == Some("host"),
        shm_dir: None,
        oom_kill_disable: hc.oom_kill_disable == Some(true),
        sysctls: hc.sysctls.iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect(),
        oom_score_adj: hc.oom_score_adj.filter(|a| *a != 0),
        memory_swappiness: hc.memory_swappiness.filter(|s| *s >= 0).map(|s| s as u64),
        annotations: hc.annotations.iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect(),
        cgroupns_host: hc.cgroupns_mode.is_some_and(|m| m.to_string() == "host"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard_stubs::models::{DeviceMapping, HostConfigLogConfig, ResourcesUlimits};

    fn err(hc: HostConfig) -> String {
        validate(&hc).unwrap_err().to_string()
    }

    #[test]
    fn capabilities_are_normalised_and_checked() {
        assert_eq!(
            capabilities(&["net_admin".into(), "CAP_SYS_TIME".into(), "all".into()]).unwrap(),
            ["CAP_NET_ADMIN", "CAP_SYS_TIME", "ALL"]
        );
        let e = err(HostConfig { cap_add: Some(vec!["FOO".into()]), ..Default::default() });
        assert_eq!(e, "invalid CapAdd: unknown capability: \"CAP_FOO\"");
    }

    #[test]
    fn security_opts_known_or_refused() {
        let s = security_opts(&["no-new-privileges".into(), "label=disable".into(), "seccomp=unconfined".into()]).unwrap();
        assert!(s.no_new_privileges);
        assert!(!security_opts(&["no-new-privileges:false".into()]).unwrap().no_new_privileges);
        assert!(err(HostConfig { security_opt: Some(vec!["apparmor=unconfined".into()]), ..Default::default() }).contains("AppArmor"));
        assert!(err(HostConfig { security_opt: Some(vec!["bogus=1".into()]), ..Default::default() }).contains("\"bogus=1\""));
        assert!(err(HostConfig { security_opt: Some(vec!["label=user:x".into()]), ..Default::default() }).contains("SELinux"));
    }

    #[test]
    fn ulimits_checked() {
        let u = |name: &str, soft, hard| HostConfig {
            ulimits: Some(vec![ResourcesUlimits { name: Some(name.into()), soft: Some(soft), hard: Some(hard) }]),
            ..Default::default()
        };
        assert_eq!(err(u("nofiles", 1, 2)), "invalid ulimit type: nofiles");
        assert_eq!(err(u("nofile", 4, 2)), "ulimit soft limit must be less than or equal to hard limit: 4 > 2");
        assert!(err(u("nofile", 1, i64::MAX)).contains("nr_open"));
        let o = run_options(&u("nofile", 1024, 2048)).unwrap();
        assert_eq!(o.ulimits, [Ulimit { name: "nofile".into(), soft: 1024, hard: 2048 }]);
    }

    #[test]
    fn devices_and_rules_checked() {
        let d = |host: &str, perms: &str| HostConfig {
            devices: Some(vec![DeviceMapping {
                path_on_host: Some(host.into()),
                path_in_container: Some("/dev/x".into()),
                cgroup_permissions: Some(perms.into()),
            }]),
            ..Default::default()
        };
        assert_eq!(
            err(d("/dev/nope-nope", "rwm")),
            "error gathering device information while adding custom device \"/dev/nope-nope\": no such file or directory"
        );
        assert!(err(d("/dev/null", "rwx")).contains("permissions"));
        assert_eq!(run_options(&d("/dev/null", "r")).unwrap().devices[0].permissions, "r");
        assert_eq!(parse_device_rule("c 1:3 rwm"), Some(DeviceRule { kind: 'c', major: Some(1), minor: Some(3), access: "rwm".into() }));
        assert_eq!(parse_device_rule("a *:* r").unwrap().major, None);
        assert!(parse_device_rule("x 1:3 rwm").is_none() && parse_device_rule("c 1 rwm").is_none());
        assert_eq!(
            err(HostConfig { device_cgroup_rules: Some(vec!["c 1:3".into()]), ..Default::default() }),
            "invalid device cgroup format 'c 1:3'"
        );
    }

    #[test]
    fn daemon_defaults_merge_under_the_create() {
        let d = crate::config::RunDefaults {
            log_driver: Some("json-file".into()),
            log_opts: [("max-size".to_string(), "10m".to_string()), ("max-file".to_string(), "3".to_string())].into(),
            ulimits: vec![parse_ulimit("nofile=100:200").unwrap(), parse_ulimit("nproc=50").unwrap()],
            shm_size: Some(1 << 20),
            dns: vec!["192.0.2.1".into()],
            ..Default::default()
        };
        let mut hc = HostConfig {
            log_config: Some(HostConfigLogConfig {
                typ: Some(String::new()),
                config: Some([("max-size".to_string(), "1k".to_string())].into()),
            }),
            ulimits: Some(vec![parse_ulimit("nofile=5:6").unwrap()]),
            ..Default::default()
        };
        apply_defaults(&mut hc, &d);
        let c = log_config(&hc).unwrap();
        assert_eq!((c.max_size, c.max_file), (Some(1024), 3));
        assert_eq!(hc.shm_size, Some(1 << 20));
        let names: Vec<_> = hc.ulimits.iter().flatten().map(|u| (u.name.clone().unwrap(), u.soft.unwrap())).collect();
        assert_eq!(names, [("nofile".to_string(), 5), ("nproc".to_string(), 50)]);
        let mut none =
            HostConfig { log_config: Some(HostConfigLogConfig { typ: Some("none".into()), config: None }), ..Default::default() };
        apply_defaults(&mut none, &d);
        assert!(none.log_config.unwrap().config.unwrap().is_empty());
        assert_eq!(hc.dns, Some(vec!["192.0.2.1".to_string()]));
        assert_eq!(parse_ulimit("nofile").unwrap_err(), RunOptsError::Ulimit("nofile".into()));
        assert_eq!(parse_ulimit("nofile=x:1").unwrap_err(), RunOptsError::Ulimit("nofile=x:1".into()));
        assert_eq!(capabilities(&["foo".into()]).unwrap_err(), RunOptsError::UnknownCapability("CAP_FOO".into()));
    }

    #[test]
    fn kernel_knobs_and_unsupported_fields() {
        let sys = |k: &str, net: &str| HostConfig {
            sysctls: Some([(k.to_string(), "1".to_string())].into()),
            network_mode: Some(net.into()),
            ..Default::default()
        };
        assert!(validate(&sys("net.ipv4.ip_forward", "bridge")).is_ok());
        assert!(err(sys("net.ipv4.ip_forward", "host")).contains("--network host"));
        assert!(err(sys("kernel.domainname", "bridge")).contains("'kernel.domainname' is not allowed"));
        assert!(err(HostConfig { oom_score_adj: Some(2000), ..Default::default() }).contains("oom score adj"));
        assert!(err(HostConfig { memory_swappiness: Some(101), ..Default::default() }).contains("swappiness"));
        assert!(err(HostConfig { blkio_weight: Some(300), ..Default::default() }).contains("--blkio-weight"));
        assert!(err(HostConfig { cgroup_parent: Some("/x".into()), ..Default::default() }).contains("--cgroup-parent"));
        assert!(err(HostConfig { volume_driver: Some("nfs".into()), ..Default::default() }).contains("\"nfs\""));
        let o = run_options(&HostConfig { oom_score_adj: Some(-5), memory_swappiness: Some(-1), ..Default::default() }).unwrap();
        assert_eq!((o.oom_score_adj, o.memory_swappiness), (Some(-5), None));
    }

    #[test]
    fn modes_runtime_and_storage() {
        assert!(err(HostConfig { pid_mode: Some("bogus".into()), ..Default::default() }).contains("--pid"));
        assert!(err(HostConfig { userns_mode: Some("remap".into()), ..Default::default() }).contains("--userns"));
        assert_eq!(err(HostConfig { runtime: Some("kata".into()), ..Default::default() }), "unknown or invalid runtime name: kata");
        assert!(err(HostConfig { storage_opt: Some([("size".to_string(), "1G".to_string())].into()), ..Default::default() })
            .contains("storage-opt"));
        let o = run_options(&HostConfig { pid_mode: Some("host".into()), uts_mode: Some("host".into()), ..Default::default() }).unwrap();
        assert_eq!((o.pid, o.uts_host), (Namespace::Host, true));
        assert_eq!(joined_container(Some("container:web")), Some("web"));
    }
}
