//! What a `docker exec` process is to be: the OCI process the engine sends, checked and turned
//! into C strings, capability masks and rlimits before the shim forks.
use crate::runtime::exec::CAPABILITY_NAMES;
use serde::Deserialize;
use std::ffi::CString;

/// The OCI process the engine sends (`runtime::spec::exec_process`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Process {
    args: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    cwd: String,
    #[serde(default)]
    user: User,
    #[serde(default)]
    capabilities: Capabilities,
    #[serde(default)]
    rlimits: Vec<Rlimit>,
    #[serde(default)]
    no_new_privileges: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct User {
    uid: u32,
    gid: u32,
    #[serde(default)]
    additional_gids: Vec<u32>,
}

#[derive(Deserialize, Default)]
struct Capabilities {
    #[serde(default)]
    bounding: Vec<String>,
    #[serde(default)]
    effective: Vec<String>,
    #[serde(default)]
    permitted: Vec<String>,
    #[serde(default)]
    inheritable: Vec<String>,
}

#[derive(Deserialize)]
struct Rlimit {
    #[serde(rename = "type")]
    kind: String,
    soft: u64,
    hard: u64,
}

/// Everything the child needs, prepared before the fork.
pub(super) struct Plan {
    pub arg0: String,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    /// `PATH` of the process's environment (Docker looks the command up in it).
    pub path: String,
    pub cwd: CString,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub groups: Vec<libc::gid_t>,
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub rlimits: Vec<(libc::c_int, libc::rlimit)>,
    pub no_new_privileges: bool,
    /// The container's seccomp filter, loaded before the capabilities are dropped.
    pub seccomp: Option<crate::runtime::seccomp::bpf::Program>,
}

/// Why the OCI process the engine sent cannot be run (the texts reach `docker exec` after
/// `OCI runtime exec failed: exec failed: `).
#[derive(Debug, thiserror::Error)]
pub(super) enum PlanError {
    #[error("invalid exec process: {0}")]
    Invalid(serde_json::Error),
    #[error("no exec command specified")]
    NoCommand,
    #[error("{0:?} contains a NUL byte")]
    Nul(String),
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    #[error("unknown rlimit type {0:?}")]
    UnknownRlimit(String),
}

fn cstring(s: &str) -> Result<CString, PlanError> {
    CString::new(s).map_err(|_| PlanError::Nul(s.to_string()))
}

fn cap_mask(names: &[String]) -> Result<u64, PlanError> {
    names.iter().try_fold(0u64, |m, n| match CAPABILITY_NAMES.iter().position(|c| c == n) {
        Some(i) => Ok(m | 1 << i),
        None => Err(PlanError::UnknownCapability(n.clone())),
    })
}

fn rlimit_resource(kind: &str) -> Option<libc::c_int> {
    Some(match kind {
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        _ => return None,
    } as libc::c_int)
}

impl Plan {
    /// Reads the OCI process the engine sent; `seccomp` is the container's filter.
    pub fn from_json(v: &serde_json::Value, seccomp: Option<crate::runtime::seccomp::bpf::Program>) -> Result<Plan, PlanError> {
        let p = Process::deserialize(v).map_err(PlanError::Invalid)?;
        let arg0 = p.args.first().cloned().filter(|a| !a.is_empty()).ok_or(PlanError::NoCommand)?;
        let cwd = if p.cwd.is_empty() { "/".to_string() } else { p.cwd };
        let rlimits = p
            .rlimits
            .iter()
            .map(|r| match rlimit_resource(&r.kind) {
                Some(res) => Ok((res, libc::rlimit { rlim_cur: r.soft, rlim_max: r.hard })),
                None => Err(PlanError::UnknownRlimit(r.kind.clone())),
            })
            .collect::<Result<_, _>>()?;
        let path = p.env.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or_default().to_string();
        Ok(Plan {
            argv: p.args.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?,
            envp: p.env.iter().map(|e| cstring(e)).collect::<Result<_, _>>()?,
            arg0,
            path,
            cwd: cstring(&cwd)?,
            uid: p.user.uid,
            gid: p.user.gid,
            groups: p.user.additional_gids,
            bounding: cap_mask(&p.capabilities.bounding)?,
            effective: cap_mask(&p.capabilities.effective)?,
            permitted: cap_mask(&p.capabilities.permitted)?,
            inheritable: cap_mask(&p.capabilities.inheritable)?,
            rlimits,
            no_new_privileges: p.no_new_privileges,
            seccomp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plan_from_the_engines_process() {
        let p = json!({
            "terminal": false,
            "user": {"uid": 65534, "gid": 65534, "additionalGids": [1, 2]},
            "args": ["sh", "-c", "true"],
            "env": ["PATH=/usr/bin:/bin", "A=1"],
            "cwd": "",
            "capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512}],
            "noNewPrivileges": false
        });
        let plan = Plan::from_json(&p, None).unwrap();
        assert_eq!((plan.arg0.as_str(), plan.path.as_str(), plan.cwd.to_str().unwrap()), ("sh", "/usr/bin:/bin", "/"));
        assert_eq!((plan.uid, plan.gid, plan.groups.clone()), (65534, 65534, vec![1, 2]));
        assert_eq!((plan.bounding, plan.effective, plan.inheritable), (1 | 1 << 5, 1 << 5, 0));
        assert_eq!(plan.rlimits[0].0, libc::RLIMIT_NOFILE as libc::c_int);
        assert_eq!((plan.rlimits[0].1.rlim_cur, plan.rlimits[0].1.rlim_max), (512, 1024));
        assert!(plan.seccomp.is_none());
        assert_eq!(Plan::from_json(&json!({"args": []}), None).err().unwrap().to_string(), "no exec command specified");
        let nope = Plan::from_json(&json!({"args": ["x"], "capabilities": {"bounding": ["CAP_NOPE"]}}), None);
        assert_eq!(nope.err().unwrap().to_string(), "unknown capability \"CAP_NOPE\"");
        assert!(Plan::from_json(&json!({"args": ["x"], "rlimits": [{"type": "RLIMIT_X", "hard": 1, "soft": 1}]}), None).is_err());
        let filter = crate::runtime::seccomp::bpf::Program { flags: 0, code: vec![0; 8] };
        assert!(Plan::from_json(&json!({"args": ["x"]}), Some(filter)).unwrap().seccomp.is_some());
    }
}
