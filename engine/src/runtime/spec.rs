//! RunSpec -> OCI runtime spec (pure).
//!
//! Mirrors what dockerd 20.10 hands runc for a non-privileged container: Docker's default
//! mounts, capability set, masked and read-only /proc paths, deny-all device cgroup (libcontainer
//! adds the default devices and their allow rules itself), Docker's default seccomp profile
//! ([`super::seccomp`]). No AppArmor (this kernel has none).
use super::user::ExecUser;
use super::{NetNs, RunSpec, RuntimeError};
use oci_spec::runtime::Spec;
use serde_json::{json, Value};

/// Docker's default capabilities for non-privileged containers.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

pub const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Docker's default PATH, added when the configured environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Open-files limit of the container process (what `ulimit -n` shows under a stock dockerd).
pub const NOFILE_LIMIT: u64 = 1_048_576;

/// [`NOFILE_LIMIT`], lowered to what this process may grant: without CAP_SYS_RESOURCE a larger
/// hard limit than ours makes the container's creation fail with EPERM.
pub fn nofile_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit to the pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 && lim.rlim_max < NOFILE_LIMIT {
        lim.rlim_max
    } else {
        NOFILE_LIMIT
    }
}

fn has_var(env: &[String], key: &str) -> bool {
    env.iter().any(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
}

/// The process environment: Docker's daemon defaults (PATH, HOSTNAME, TERM with a tty) under
/// the configured variables, plus HOME from passwd when unset (as runc does).
pub fn process_env(spec: &RunSpec, hostname: &str, user: &ExecUser) -> Vec<String> {
    let mut env = Vec::with_capacity(spec.env.len() + 4);
    if !has_var(&spec.env, "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !has_var(&spec.env, "HOSTNAME") {
        env.push(format!("HOSTNAME={hostname}"));
    }
    if spec.tty && !has_var(&spec.env, "TERM") {
        env.push("TERM=xterm".into());
    }
    env.extend(spec.env.iter().cloned());
    if !has_var(&spec.env, "HOME") {
        env.push(format!("HOME={}", user.home));
    }
    env
}

fn default_mounts() -> Vec<Value> {
    let m = |dest: &str, typ: &str, src: &str, opts: &[&str]| json!({"destination": dest, "type": typ, "source": src, "options": opts});
    vec![
        m("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        m("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
        m("/dev/pts", "devpts", "devpts", &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
        m("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
        m("/sys/fs/cgroup", "cgroup", "cgroup", &["ro", "nosuid", "noexec", "nodev"]),
        m("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        m("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]),
    ]
}

fn namespaces(netns: &NetNs) -> Vec<Value> {
    let mut ns = vec![json!({"type": "pid"}), json!({"type": "ipc"}), json!({"type": "uts"}), json!({"type": "mount"})];
    match netns {
        NetNs::Host => {}
        NetNs::New => ns.push(json!({"type": "network"})),
        NetNs::Path(p) => ns.push(json!({"type": "network", "path": p})),
    }
    ns.push(json!({"type": "cgroup"}));
    ns
}

/// The container's hostname: the configured one, else the short id (as Docker does).
pub fn hostname(spec: &RunSpec) -> String {
    if spec.hostname.is_empty() {
        spec.id.chars().take(12).collect()
    } else {
        spec.hostname.clone()
    }
}

/// A container's OCI spec and the seccomp program its init loads (none: it runs without one).
pub struct Built {
    pub spec: Spec,
    pub seccomp: Option<std::sync::Arc<super::seccomp::bpf::Program>>,
}

/// Builds the OCI spec for `spec` running as `user` (resolve it with [`super::user::UserFiles`]),
/// `group` being the container's /etc/group (for `--group-add` names), and its seccomp program,
/// which the spec does not carry (see [`super::seccomp::bpf`]).
pub fn build(spec: &RunSpec, user: &ExecUser, group: &str) -> Result<Built, RuntimeError> {
    let hostname = hostname(spec);
    let mut mounts = default_mounts();
    // User mounts (binds and tmpfs) parent-first: `/data` before `/data/tmp`.
    let depth = |d: &str| d.trim_end_matches('/').matches('/').count();
    let mut extra: Vec<(usize, Value)> = vec![];
    for b in &spec.mounts {
        let propagation = if b.propagation.is_empty() { "rprivate" } else { b.propagation.as_str() };
        let mut opts = vec!["rbind", propagation];
        if b.readonly {
            opts.push("ro");
        }
        extra.push((depth(&b.destination), json!({"destination": b.destination, "type": "bind", "source": b.source, "options": opts})));
    }
    for t in &spec.tmpfs {
        extra
            .push((depth(&t.destination), json!({"destination": t.destination, "type": "tmpfs", "source": "tmpfs", "options": t.options})));
    }
    extra.sort_by_key(|(d, _)| *d);
    mounts.extend(extra.into_iter().map(|(_, m)| m));
    let nofile = nofile_limit();
    let cwd = if spec.cwd.is_empty() { "/" } else { spec.cwd.as_str() };
    let mut sysctl = serde_json::Map::new();
    if !matches!(spec.netns, NetNs::Host) {
        sysctl.insert("net.ipv4.ip_unprivileged_port_start".into(), json!("0"));
        sysctl.insert("net.ipv4.ping_group_range".into(), json!("0 2147483647"));
    }
    let mut value = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": spec.tty,
            "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
            "args": spec.args,
            "env": process_env(spec, &hostname, user),
            "cwd": cwd,
            "capabilities": {"bounding": DEFAULT_CAPS, "effective": DEFAULT_CAPS, "permitted": DEFAULT_CAPS},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
            "noNewPrivileges": false,
            "oomScoreAdj": 0
        },
        "root": {"path": spec.rootfs, "readonly": spec.readonly_rootfs},
        "hostname": hostname,
        "mounts": mounts,
        "linux": {
            "cgroupsPath": spec.cgroup_path,
            "namespaces": namespaces(&spec.netns),
            "resources": resources(&spec.resources),
            "sysctl": sysctl,
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS
        }
    });
    if !spec.domainname.is_empty() {
        value["domainname"] = json!(spec.domainname);
    }
    super::spec_opts::apply(&mut value, &spec.options, group)?;
    // Last: the filter depends on the final capability set; --privileged runs without one.
    let seccomp = super::seccomp::program_for(&value, &spec.seccomp, spec.options.privileged)?;
    let mut oci: Spec = serde_json::from_value(value).map_err(|e| RuntimeError::Spec(format!("invalid runtime spec: {e}")))?;
    if seccomp.is_some() {
        super::seccomp::bpf::grant_loading(&mut oci);
    }
    Ok(Built { spec: oci, seccomp })
}

/// `linux.resources`: Docker's deny-all device rule plus the container's limits.
fn resources(r: &crate::cgroups::Resources) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("devices".into(), json!([{"allow": false, "access": "rwm"}]));
    let mut mem = serde_json::Map::new();
    if let Some(m) = r.memory.filter(|m| *m > 0) {
        mem.insert("limit".into(), json!(m));
        // Without swap accounting libcontainer cannot set a swap limit: leave it out.
        if crate::cgroups::swap_accounting() {
            if let Some(s) = r.memory_swap.filter(|s| *s != 0) {
                mem.insert("swap".into(), json!(s));
            }
        }
    }
    if let Some(res) = r.memory_reservation.filter(|m| *m > 0) {
        mem.insert("reservation".into(), json!(res));
    }
    if !mem.is_empty() {
        out.insert("memory".into(), Value::Object(mem));
    }
    let mut cpu = serde_json::Map::new();
    if let Some(s) = r.cpu_shares.filter(|s| *s > 0) {
        cpu.insert("shares".into(), json!(s));
    }
    if let Some(q) = r.cpu_quota.filter(|q| *q > 0) {
        cpu.insert("quota".into(), json!(q));
    }
    if let Some(p) = r.cpu_period.filter(|p| *p > 0) {
        cpu.insert("period".into(), json!(p));
    }
    if let Some(c) = r.cpuset_cpus.as_ref().filter(|c| !c.is_empty()) {
        cpu.insert("cpus".into(), json!(c));
    }
    if let Some(m) = r.cpuset_mems.as_ref().filter(|m| !m.is_empty()) {
        cpu.insert("mems".into(), json!(m));
    }
    if !cpu.is_empty() {
        out.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(p) = r.pids_limit.filter(|p| *p != 0) {
        out.insert("pids".into(), json!({"limit": if p > 0 { p } else { -1 }}));
    }
    Value::Object(out)
}

/// What an exec takes from the container's spec, read without the rest of it.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ExecBase {
    #[serde(default)]
    root: Option<ExecBaseRoot>,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    process: Option<ExecBaseProcess>,
    #[serde(default)]
    annotations: std::collections::HashMap<String, String>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct ExecBaseRoot {
    path: std::path::PathBuf,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecBaseProcess {
    #[serde(default)]
    rlimits: Option<Value>,
    /// The container's capabilities (`--cap-add`, `--privileged`): an exec gets the same.
    #[serde(default)]
    capabilities: Option<Value>,
    #[serde(default)]
    no_new_privileges: bool,
}

impl ExecBase {
    /// The container's root file system (where its users are looked up).
    pub fn rootfs(&self) -> std::path::PathBuf {
        self.root.as_ref().map(|r| r.path.clone()).unwrap_or_default()
    }
}

/// The OCI `process` of a `docker exec`: the container's identity rules (PATH, HOSTNAME, HOME,
/// TERM with a tty), capabilities and rlimits of the container's own process.
pub fn exec_process(base: &ExecBase, es: &super::ExecSpec, user: &ExecUser) -> Value {
    let hostname = base.hostname.clone().unwrap_or_default();
    let mut env = Vec::with_capacity(es.env.len() + 4);
    if !has_var(&es.env, "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !has_var(&es.env, "HOSTNAME") {
        env.push(format!("HOSTNAME={hostname}"));
    }
    if es.tty && !has_var(&es.env, "TERM") {
        env.push("TERM=xterm".into());
    }
    env.extend(es.env.iter().cloned());
    if !has_var(&es.env, "HOME") {
        env.push(format!("HOME={}", user.home));
    }
    let container_caps = base.process.as_ref().and_then(|p| p.capabilities.as_ref()).and_then(|c| c.get("bounding")).cloned();
    let caps: Vec<String> = if es.privileged {
        super::exec::all_capabilities()
    } else if let Some(Ok(caps)) = container_caps.map(serde_json::from_value::<Vec<String>>) {
        caps
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
    };
    // `--group-add` groups go to exec processes too (as dockerd does).
    let mut gids = user.additional_gids.clone();
    for g in base.annotations.get(super::options::GROUPS_ANNOTATION).map(String::as_str).unwrap_or("").split(',') {
        if let Ok(g) = g.parse::<u32>() {
            if !gids.contains(&g) {
                gids.push(g);
            }
        }
    }
    let no_new_privileges = base.process.as_ref().is_some_and(|p| p.no_new_privileges);
    let nofile = nofile_limit();
    let rlimits = base
        .process
        .as_ref()
        .and_then(|p| p.rlimits.clone())
        .unwrap_or_else(|| json!([{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}]));
    json!({
        "terminal": es.tty,
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": gids},
        "args": es.args,
        "env": env,
        "cwd": if es.cwd.is_empty() { "/" } else { es.cwd.as_str() },
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "rlimits": rlimits,
        "noNewPrivileges": no_new_privileges
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::BindMount;
    use oci_spec::runtime::{Capability, LinuxNamespaceType};
    use std::path::PathBuf;

    fn run_spec() -> RunSpec {
        RunSpec {
            id: "0123456789abcdef0123".into(),
            rootfs: "/var/lib/x/rootfs".into(),
            args: vec!["echo".into(), "hello".into()],
            env: vec!["FOO=bar".into()],
            cwd: String::new(),
            user: String::new(),
            hostname: String::new(),
            domainname: String::new(),
            tty: false,
            open_stdin: false,
            stdin_once: false,
            netns: NetNs::New,
            mounts: vec![BindMount {
                source: "/h/hosts".into(),
                destination: "/etc/hosts".into(),
                readonly: true,
                propagation: String::new(),
            }],
            cgroup_path: "/flotilla/abc".into(),
            log_path: "/tmp/log.json".into(),
            state_dir: "/run/x".into(),
            readonly_rootfs: false,
            tmpfs: vec![],
            resources: Default::default(),
            console_size: None,
            seccomp: Default::default(),
            options: Default::default(),
            log: Default::default(),
        }
    }

    fn root() -> ExecUser {
        ExecUser { uid: 0, gid: 0, additional_gids: vec![], home: "/root".into() }
    }

    #[test]
    fn process_fields() {
        let mut rs = run_spec();
        rs.tty = true;
        let user = ExecUser { uid: 33, gid: 33, additional_gids: vec![10], home: "/var/www".into() };
        let built = build(&rs, &user, "").unwrap();
        let s = built.spec;
        let p = s.process().as_ref().unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &vec!["echo".to_string(), "hello".to_string()]);
        assert_eq!(p.cwd(), &PathBuf::from("/"));
        assert_eq!(p.terminal(), Some(true));
        assert_eq!((p.user().uid(), p.user().gid()), (33, 33));
        assert_eq!(p.user().additional_gids().as_ref().unwrap(), &vec![10]);
        let env = p.env().as_ref().unwrap();
        assert_eq!(
            env,
            &vec![
                format!("PATH={DEFAULT_PATH}"),
                "HOSTNAME=0123456789ab".to_string(),
                "TERM=xterm".to_string(),
                "FOO=bar".to_string(),
                "HOME=/var/www".to_string()
            ]
        );
        let caps = p.capabilities().as_ref().unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
        assert!(caps.effective().as_ref().unwrap().contains(&Capability::NetBindService));
        assert!(!caps.bounding().as_ref().unwrap().contains(&Capability::SysAdmin));
        // The init loads its seccomp program with CAP_SYS_ADMIN (in its permitted set only then).
        assert_eq!(caps.permitted().as_ref().unwrap().contains(&Capability::SysAdmin), built.seccomp.is_some());
        let rl = &p.rlimits().as_ref().unwrap()[0];
        assert_eq!((rl.hard(), rl.soft()), (nofile_limit(), nofile_limit()));
        assert!(nofile_limit() <= NOFILE_LIMIT);
    }

    #[test]
    fn configured_env_wins() {
        let mut rs = run_spec();
        rs.env = vec!["PATH=/bin".into(), "HOME=/h".into(), "HOSTNAME=x".into()];
        rs.hostname = "web".into();
        let s = build(&rs, &root(), "").unwrap().spec;
        assert_eq!(s.hostname().as_deref(), Some("web"));
        assert_eq!(s.process().as_ref().unwrap().env().as_ref().unwrap(), &rs.env);
    }

    #[test]
    fn root_mounts_and_paths() {
        let mut rs = run_spec();
        let s = build(&rs, &root(), "").unwrap().spec;
        let r = s.root().as_ref().unwrap();
        assert_eq!(r.path(), &PathBuf::from("/var/lib/x/rootfs"));
        assert_eq!(r.readonly(), Some(false));
        let mounts = s.mounts().as_ref().unwrap();
        let dests: Vec<_> = mounts.iter().map(|m| m.destination().to_string_lossy().into_owned()).collect();
        assert_eq!(dests, ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm", "/etc/hosts"]);
        let shm = &mounts[6];
        assert!(shm.options().as_ref().unwrap().contains(&"size=67108864".to_string()));
        let hosts = &mounts[7];
        assert_eq!(hosts.typ().as_deref(), Some("bind"));
        assert_eq!(hosts.options().as_ref().unwrap(), &vec!["rbind".to_string(), "rprivate".into(), "ro".into()]);
        let linux = s.linux().as_ref().unwrap();
        assert_eq!(linux.cgroups_path().as_ref().unwrap(), &PathBuf::from("/flotilla/abc"));
        assert_eq!(linux.masked_paths().as_ref().unwrap().len(), MASKED_PATHS.len());
        assert!(linux.readonly_paths().as_ref().unwrap().contains(&"/proc/sysrq-trigger".to_string()));
        let devs = linux.resources().as_ref().unwrap().devices().as_ref().unwrap();
        assert!(!devs[0].allow());
        rs.readonly_rootfs = true;
        assert_eq!(build(&rs, &root(), "").unwrap().spec.root().as_ref().unwrap().readonly(), Some(true));
    }

    #[test]
    fn network_namespace_modes() {
        let types = |netns: NetNs| {
            let mut rs = run_spec();
            rs.netns = netns;
            let s = build(&rs, &root(), "").unwrap().spec;
            let ns = s.linux().as_ref().unwrap().namespaces().clone().unwrap();
            let net = ns.iter().find(|n| n.typ() == LinuxNamespaceType::Network).map(|n| n.path().clone());
            (ns.len(), net, s.linux().as_ref().unwrap().sysctl().clone().unwrap_or_default().len())
        };
        assert_eq!(types(NetNs::Host), (5, None, 0));
        assert_eq!(types(NetNs::New), (6, Some(None), 2));
        assert_eq!(types(NetNs::Path("/run/netns/x".into())), (6, Some(Some("/run/netns/x".into())), 2));
    }

    #[test]
    fn resources_become_linux_resources() {
        let mut rs = run_spec();
        rs.resources = crate::cgroups::Resources {
            memory: Some(64 << 20),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            cpu_shares: Some(512),
            cpuset_cpus: Some("0".into()),
            pids_limit: Some(20),
            ..Default::default()
        };
        let s = build(&rs, &root(), "").unwrap().spec;
        let r = s.linux().as_ref().unwrap().resources().as_ref().unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(64 << 20));
        let cpu = r.cpu().as_ref().unwrap();
        assert_eq!((cpu.quota(), cpu.period(), cpu.shares()), (Some(50_000), Some(100_000), Some(512)));
        assert_eq!(cpu.cpus().as_deref(), Some("0"));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 20);
        assert!(!r.devices().as_ref().unwrap()[0].allow());
        let none = build(&run_spec(), &root(), "").unwrap().spec;
        let r = none.linux().as_ref().unwrap().resources().as_ref().unwrap();
        assert!(r.memory().is_none() && r.cpu().is_none() && r.pids().is_none());
    }

    #[test]
    fn exec_process_fields() {
        let spec = build(&run_spec(), &root(), "").unwrap().spec;
        let base: ExecBase = serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
        assert_eq!(base.rootfs(), PathBuf::from("/var/lib/x/rootfs"));
        let es = crate::runtime::ExecSpec {
            args: vec!["sh".into()],
            env: vec!["A=1".into()],
            cwd: "/tmp".into(),
            tty: true,
            privileged: true,
            ..Default::default()
        };
        let u = ExecUser { uid: 5, gid: 6, additional_gids: vec![], home: "/h".into() };
        let p: oci_spec::runtime::Process = serde_json::from_value(exec_process(&base, &es, &u)).unwrap();
        assert_eq!(p.terminal(), Some(true));
        assert_eq!(p.cwd(), &PathBuf::from("/tmp"));
        assert_eq!((p.user().uid(), p.user().gid()), (5, 6));
        let env = p.env().as_ref().unwrap();
        assert!(env.contains(&"HOSTNAME=0123456789ab".to_string()) && env.contains(&"TERM=xterm".to_string()));
        assert!(env.contains(&"A=1".to_string()) && env.contains(&"HOME=/h".to_string()));
        let caps = p.capabilities().as_ref().unwrap().bounding().as_ref().unwrap();
        assert!(caps.contains(&Capability::SysAdmin));
        assert_eq!(p.rlimits().as_ref().unwrap().len(), 1);
    }
}
