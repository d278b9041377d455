//! Seccomp: Docker's default profile and `--security-opt seccomp=unconfined|<profile>`, turned
//! into the OCI `linux.seccomp` of a container ([`bpf`] compiles it once and the
//! shim loads it into the container's init and each `docker exec` process).
//!
//! A profile is in Docker's format (what the docker CLI sends for `seccomp=<file>`: the file's
//! JSON): `defaultAction`, `architectures` or `archMap`, and `syscalls` whose `includes` and
//! `excludes` (capabilities, architectures, a minimum kernel) are resolved here against the
//! container's capability bounding set, as dockerd does. `--privileged` runs without seccomp.
use oci_spec::runtime::LinuxSeccomp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;

pub mod bpf;
mod default;
use default::default_profile;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// A custom profile that does not parse or names what seccomp does not know.
    #[error("Decoding seccomp profile failed: {0}")]
    InvalidProfile(String),
    #[error("seccomp is not enabled in your kernel, cannot run a custom seccomp profile")]
    NotEnabled,
}

/// A container's seccomp choice (`HostConfig.SecurityOpt`'s `seccomp=` entry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeccompProfile {
    /// Docker's default profile (no option, or `seccomp=builtin`).
    #[default]
    Default,
    /// `seccomp=unconfined`: no filter.
    Unconfined,
    /// A profile in Docker's JSON format (the CLI sends the file's contents).
    Custom(String),
}

impl SeccompProfile {
    /// The value of a `seccomp=` security option; a custom profile is checked here, so a bad one
    /// is refused at create.
    pub fn parse(value: &str) -> Result<SeccompProfile, SeccompError> {
        match value {
            "unconfined" => Ok(SeccompProfile::Unconfined),
            "builtin" | "" => Ok(SeccompProfile::Default),
            json => {
                let profile = DockerProfile::from_json(json)?;
                translate(&profile, crate::runtime::spec::DEFAULT_CAPS)?;
                Ok(SeccompProfile::Custom(json.to_string()))
            }
        }
    }
}

/// Whether this kernel can filter system calls (as dockerd asks it: `PR_GET_SECCOMP` works and
/// `SECCOMP_MODE_FILTER` is known).
pub fn kernel_supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        // SAFETY: prctl with integer arguments; the second one reads a NULL filter, which the
        // kernel refuses with EFAULT when filter mode exists (and EINVAL when it does not).
        unsafe {
            if libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) < 0 {
                return false;
            }
            libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, 0, 0, 0) < 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
        }
    })
}

/// The compiled filter of a container whose OCI spec is `spec` (a JSON value whose
/// capabilities are final), for `profile`; none for a `privileged` container (as under dockerd),
/// for `seccomp=unconfined`, and for the default profile on a kernel without seccomp. The one
/// call the spec builder makes: the spec itself gets no `linux.seccomp` (see [`bpf`]).
///
/// Made once per distinct profile and capability set: every container with the default profile
/// and capabilities gets the same program, and translating the profile (~400 rules, checked
/// through the OCI types) and finding its program by the result was half of a start's bundle.
pub fn program_for(spec: &Value, profile: &SeccompProfile, privileged: bool) -> Result<Option<Arc<bpf::Program>>, SeccompError> {
    match profile {
        _ if privileged => return Ok(None),
        SeccompProfile::Unconfined => return Ok(None),
        SeccompProfile::Default if !kernel_supported() => return Ok(None),
        SeccompProfile::Custom(_) if !kernel_supported() => return Err(SeccompError::NotEnabled),
        SeccompProfile::Default | SeccompProfile::Custom(_) => {}
    }
    let caps: Vec<String> = spec["process"]["capabilities"]["bounding"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    // By profile (empty: the default one) and capabilities.
    static CACHE: Recent<(String, Vec<String>), Arc<bpf::Program>> = Recent::new(PROGRAMS_MAX);
    let key = (if let SeccompProfile::Custom(json) = profile { json.clone() } else { String::new() }, caps);
    CACHE.get_or_make(&key, || bpf::program(&filter(profile, &key.1)?)).map(Some)
}

/// `profile` as the OCI `linux.seccomp` of a process whose bounding set is `caps`.
fn filter(profile: &SeccompProfile, caps: &[String]) -> Result<LinuxSeccomp, SeccompError> {
    let docker = match profile {
        SeccompProfile::Custom(json) => DockerProfile::from_json(json)?,
        _ => default_profile(),
    };
    serde_json::from_value(translate(&docker, caps)?).map_err(|e| SeccompError::InvalidProfile(e.to_string()))
}

/// A few values kept by key and found by comparing keys (profiles and capability sets: few, and
/// cheaper to compare than to serialize), emptied when full.
pub(crate) struct Recent<K, V> {
    max: usize,
    entries: std::sync::Mutex<Vec<(K, V)>>,
}

impl<K: PartialEq + Clone, V: Clone> Recent<K, V> {
    pub(crate) const fn new(max: usize) -> Self {
        Recent { max, entries: std::sync::Mutex::new(Vec::new()) }
    }

    /// The value kept for `key`, else the one `make` makes, then kept.
    pub(crate) fn get_or_make<E>(&self, key: &K, make: impl FnOnce() -> Result<V, E>) -> Result<V, E> {
        if let Some((_, v)) = self.lock().iter().find(|(k, _)| k == key) {
            return Ok(v.clone());
        }
        let v = make()?;
        let mut entries = self.lock();
        if entries.len() >= self.max {
            entries.clear();
        }
        entries.push((key.clone(), v.clone()));
        Ok(v)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(K, V)>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Distinct (profile, capabilities) pairs kept compiled.
const PROGRAMS_MAX: usize = 16;

/// `docker info`'s SecurityOptions entry, when containers really get a filter.
pub fn info_entry() -> Option<&'static str> {
    kernel_supported().then_some("name=seccomp,profile=default")
}

/// A profile in Docker's format.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DockerProfile {
    #[serde(default)]
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Option<Vec<String>>,
    #[serde(default)]
    arch_map: Option<Vec<ArchMap>>,
    #[serde(default)]
    syscalls: Option<Vec<Syscall>>,
    #[serde(default)]
    flags: Option<Vec<String>>,
    /// Seccomp notify (an agent answering calls): refused, there is no agent.
    #[serde(default)]
    listener_path: Option<String>,
    #[serde(default)]
    listener_metadata: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Syscall {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    names: Option<Vec<String>>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<Arg>>,
    /// Free text for the profile's readers.
    #[serde(default)]
    #[allow(dead_code)]
    comment: Option<String>,
    #[serde(default)]
    includes: Option<Filter>,
    #[serde(default)]
    excludes: Option<Filter>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Arg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Filter {
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<String>,
}

impl DockerProfile {
    fn from_json(json: &str) -> Result<DockerProfile, SeccompError> {
        serde_json::from_str(json).map_err(|e| SeccompError::InvalidProfile(e.to_string()))
    }
}

/// This machine's architecture in seccomp's words and in Go's (`includes.arches` uses Go's).
fn native_arch() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "x86" => ("SCMP_ARCH_X86", "386"),
        "aarch64" => ("SCMP_ARCH_AARCH64", "arm64"),
        "arm" => ("SCMP_ARCH_ARM", "arm"),
        "s390x" => ("SCMP_ARCH_S390X", "s390x"),
        "powerpc64" => ("SCMP_ARCH_PPC64LE", "ppc64le"),
        "riscv64" => ("SCMP_ARCH_RISCV64", "riscv64"),
        _ => ("SCMP_ARCH_X86_64", "amd64"),
    }
}

/// `major.minor` of a kernel release (`6.18.44-fc` -> (6, 18)).
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn running_kernel() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    kernel_version(release.trim()).unwrap_or((0, 0))
}

/// Docker's profile -> OCI `linux.seccomp`, for a process whose bounding set is `caps`.
fn translate(p: &DockerProfile, caps: &[impl AsRef<str>]) -> Result<Value, SeccompError> {
    let bad = |m: String| SeccompError::InvalidProfile(m);
    if p.listener_path.is_some() || p.listener_metadata.is_some() {
        return Err(bad("seccomp notify (listenerPath) is not supported by this engine".into()));
    }
    let archs = p.architectures.clone().unwrap_or_default();
    if !archs.is_empty() && p.arch_map.as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(bad(
            "both 'architectures' and 'archMap' are specified in the seccomp profile, use either 'architectures' or 'archMap'".into(),
        ));
    }
    let (arch, go_arch) = native_arch();
    let mut architectures = archs;
    for m in p.arch_map.iter().flatten().filter(|m| m.architecture == arch) {
        architectures.push(m.architecture.clone());
        architectures.extend(m.sub_architectures.iter().flatten().cloned());
    }
    let has_cap = |c: &String| caps.iter().any(|x| x.as_ref() == c);
    let kernel = running_kernel();
    let at_least = |v: &String| -> Result<bool, SeccompError> {
        let want = kernel_version(v).ok_or_else(|| bad(format!("invalid minKernel {v:?}")))?;
        Ok(kernel >= want)
    };
    let mut syscalls = vec![];
    'calls: for call in p.syscalls.iter().flatten() {
        let mut names = call.names.clone().unwrap_or_default();
        if let Some(n) = &call.name {
            if !names.is_empty() {
                return Err(bad("use either 'name' or 'names'".into()));
            }
            names.push(n.clone());
        }
        if let Some(ex) = &call.excludes {
            if ex.arches.iter().flatten().any(|a| a == go_arch)
                || ex.caps.iter().flatten().any(has_cap)
                || ex.min_kernel.as_ref().map(at_least).transpose()? == Some(true)
            {
                continue 'calls;
            }
        }
        if let Some(inc) = &call.includes {
            let arches = inc.arches.as_deref().unwrap_or_default();
            if (!arches.is_empty() && !arches.iter().any(|a| a == go_arch))
                || !inc.caps.iter().flatten().all(has_cap)
                || inc.min_kernel.as_ref().map(at_least).transpose()? == Some(false)
            {
                continue 'calls;
            }
        }
        let mut out = json!({"names": names, "action": call.action});
        if let Some(e) = call.errno_ret {
            out["errnoRet"] = json!(e);
        }
        if let Some(args) = call.args.as_ref().filter(|a| !a.is_empty()) {
            let args: Vec<Value> =
                args.iter().map(|a| json!({"index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op})).collect();
            out["args"] = json!(args);
        }
        syscalls.push(out);
    }
    let mut out = json!({"defaultAction": p.default_action, "syscalls": syscalls});
    if let Some(e) = p.default_errno_ret {
        out["defaultErrnoRet"] = json!(e);
    }
    if !architectures.is_empty() {
        out["architectures"] = json!(architectures);
    }
    if let Some(f) = p.flags.as_ref().filter(|f| !f.is_empty()) {
        out["flags"] = json!(f);
    }
    // The OCI types know every action, operator, architecture and flag seccomp has.
    let checked: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(out.clone()).map_err(|e| bad(e.to_string()))?;
    let notify = oci_spec::runtime::LinuxSeccompAction::ScmpActNotify;
    if checked.default_action() == notify || checked.syscalls().iter().flatten().any(|s| s.action() == notify) {
        return Err(bad("SCMP_ACT_NOTIFY is not supported by this engine".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::spec::DEFAULT_CAPS;
    use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction};

    fn names_allowed(s: &LinuxSeccomp, name: &str) -> Vec<Option<usize>> {
        s.syscalls()
            .iter()
            .flatten()
            .filter(|c| c.action() == LinuxSeccompAction::ScmpActAllow && c.names().iter().any(|n| n == name))
            .map(|c| c.args().as_ref().map(|a| a.len()))
            .collect()
    }

    fn oci(v: Value) -> LinuxSeccomp {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn programs_are_kept_per_profile_and_capabilities() {
        if !kernel_supported() {
            return;
        }
        let spec = |caps: &[String]| json!({"process": {"capabilities": {"bounding": caps}}, "linux": {}});
        let caps: Vec<String> = DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
        let mut admin = caps.clone();
        admin.push("CAP_SYS_ADMIN".into());
        let custom = SeccompProfile::Custom(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}"#.into(),
        );
        let get = |caps: &[String], profile: &SeccompProfile| program_for(&spec(caps), profile, false).unwrap().unwrap();
        let plain = get(&caps, &SeccompProfile::Default);
        assert!(Arc::ptr_eq(&plain, &get(&caps, &SeccompProfile::Default)), "made again");
        assert_eq!(*plain, *bpf::program(&oci(translate(&default_profile(), &caps).unwrap())).unwrap());
        let more = get(&admin, &SeccompProfile::Default);
        assert_eq!(*more, *bpf::program(&oci(translate(&default_profile(), &admin).unwrap())).unwrap());
        assert_ne!(*plain, *more, "CAP_SYS_ADMIN allows more calls");
        let own = get(&caps, &custom);
        assert_eq!(*own, *bpf::program(&filter(&custom, &caps).unwrap()).unwrap());
        assert_ne!(*own, *plain);
    }

    #[test]
    fn default_profile_for_default_caps() {
        let s = oci(translate(&default_profile(), DEFAULT_CAPS).unwrap());
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(s.default_errno_ret(), Some(1));
        if std::env::consts::ARCH == "x86_64" {
            let arches: Vec<String> = s.architectures().iter().flatten().map(|a| format!("{a:?}")).collect();
            assert_eq!(arches, ["ScmpArchX86_64", "ScmpArchX86", "ScmpArchX32"]);
            assert_eq!(names_allowed(&s, "arch_prctl"), [None]);
            assert!(names_allowed(&s, "riscv_flush_icache").is_empty());
        }
        // Namespaces, keyrings, mounts: none without CAP_SYS_ADMIN.
        for blocked in ["unshare", "setns", "mount", "keyctl", "add_key", "request_key", "bpf", "reboot", "ptrace"] {
            let allowed = names_allowed(&s, blocked);
            assert!(allowed.is_empty() || blocked == "ptrace", "{blocked}: {allowed:?}");
        }
        // clone only without namespace flags; clone3 answers ENOSYS.
        assert_eq!(names_allowed(&s, "clone"), [Some(1)]);
        let clone3 = s.syscalls().iter().flatten().find(|c| c.names().contains(&"clone3".to_string())).unwrap();
        assert_eq!((clone3.action(), clone3.errno_ret()), (LinuxSeccompAction::ScmpActErrno, Some(38)));
        assert_eq!(names_allowed(&s, "chroot"), [None]);
        assert_eq!(names_allowed(&s, "socket"), [Some(1)]);
        assert_eq!(names_allowed(&s, "personality").len(), 5);
    }

    #[test]
    fn capabilities_open_their_calls() {
        let mut caps: Vec<&str> = DEFAULT_CAPS.to_vec();
        caps.push("CAP_SYS_ADMIN");
        caps.retain(|c| *c != "CAP_SYS_CHROOT");
        let s = oci(translate(&default_profile(), &caps).unwrap());
        assert_eq!(names_allowed(&s, "unshare"), [None]);
        assert_eq!(names_allowed(&s, "clone"), [None]);
        assert!(s.syscalls().iter().flatten().all(|c| c.action() == LinuxSeccompAction::ScmpActAllow), "no clone3 ENOSYS");
        assert!(names_allowed(&s, "chroot").is_empty());
    }

    #[test]
    fn a_filter_unless_unconfined_or_privileged() {
        if !kernel_supported() {
            return;
        }
        let spec = json!({"process": {"capabilities": {"bounding": DEFAULT_CAPS}}, "linux": {}});
        assert!(program_for(&spec, &SeccompProfile::Default, false).unwrap().is_some());
        assert!(program_for(&spec, &SeccompProfile::Unconfined, false).unwrap().is_none());
        assert!(program_for(&spec, &SeccompProfile::Default, true).unwrap().is_none());
        let custom =
            SeccompProfile::parse(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"mkdir","action":"SCMP_ACT_ERRNO"}]}"#).unwrap();
        let caps: Vec<String> = DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
        let f = filter(&custom, &caps).unwrap();
        assert_eq!(f.default_action(), LinuxSeccompAction::ScmpActAllow);
        assert_eq!(f.syscalls().as_ref().unwrap()[0].names(), &["mkdir".to_string()]);
        assert!(program_for(&spec, &custom, false).unwrap().is_some());
        assert!(info_entry().is_some());
    }

    #[test]
    fn options_and_bad_profiles() {
        assert_eq!(SeccompProfile::parse("unconfined").unwrap(), SeccompProfile::Unconfined);
        assert_eq!(SeccompProfile::parse("builtin").unwrap(), SeccompProfile::Default);
        for bad in [
            "{not json",
            r#"{"defaultAction":"SCMP_ACT_NOPE"}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["x"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_SOME"}]}]}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ALLOW"}]}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","listenerPath":"/x"}"#,
            r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","sycalls":[]}"#,
        ] {
            assert!(matches!(SeccompProfile::parse(bad), Err(SeccompError::InvalidProfile(_))), "{bad}");
        }
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_version("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(kernel_version("4.8"), Some((4, 8)));
        assert_eq!(kernel_version("x"), None);
    }
}
