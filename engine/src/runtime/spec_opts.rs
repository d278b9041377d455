//! [`RunOptions`] applied to the OCI spec [`super::spec::build`] made for Docker's defaults:
//! capabilities, rlimits, /dev/shm, extra groups, no_new_privs, devices and their cgroup
//! rules, `--privileged`, shared namespaces, `--init`. Each option in its own function over the
//! spec's JSON. (`--oom-kill-disable` is written to the cgroup by the container service:
//! libcontainer ignores the spec's switch.)
use super::options::{Device, DeviceRule, Namespace, RunOptions, GROUPS_ANNOTATION, INIT_ANNOTATION, ULIMITS};
use super::spec::DEFAULT_CAPS;
use super::RuntimeError;
use serde_json::{json, Value};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

fn spec_err(msg: String) -> RuntimeError {
    RuntimeError::Spec(msg)
}

/// Applies every option; `group` is the container's /etc/group (for `--group-add` names).
pub fn apply(spec: &mut Value, opts: &RunOptions, group: &str) -> Result<(), RuntimeError> {
    let caps = capabilities(opts);
    spec["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    apply_rlimits(spec, opts);
    apply_shm(spec, opts);
    apply_group_add(spec, opts, group)?;
    if opts.no_new_privileges {
        spec["process"]["noNewPrivileges"] = json!(true);
    }
    apply_devices(spec, opts)?;
    if let Some(p) = &opts.masked_paths {
        spec["linux"]["maskedPaths"] = json!(p);
    }
    if let Some(p) = &opts.readonly_paths {
        spec["linux"]["readonlyPaths"] = json!(p);
    }
    if opts.privileged {
        apply_privileged(spec)?;
    }
    apply_namespaces(spec, opts);
    if opts.init {
        annotate(spec, INIT_ANNOTATION, "true");
    }
    apply_kernel_knobs(spec, opts);
    for (k, v) in &opts.annotations {
        annotate(spec, k, v);
    }
    Ok(())
}

fn annotate(spec: &mut Value, key: &str, value: &str) {
    if !spec["annotations"].is_object() {
        spec["annotations"] = json!({});
    }
    spec["annotations"][key] = json!(value);
}

/// Docker's rule (`oci.TweakCapabilities`): privileged gets them all; `--cap-add ALL` all but the
/// dropped; `--cap-drop ALL` only the added; else the defaults minus the dropped plus the added.
pub fn capabilities(opts: &RunOptions) -> Vec<String> {
    let all = || super::exec::all_capabilities();
    if opts.privileged {
        return all();
    }
    let is_all = |v: &[String]| v.iter().any(|c| c == "ALL");
    let mut caps: Vec<String> = if is_all(&opts.cap_add) {
        all().into_iter().filter(|c| !opts.cap_drop.contains(c)).collect()
    } else if is_all(&opts.cap_drop) {
        opts.cap_add.clone()
    } else {
        let mut v: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).filter(|c| !opts.cap_drop.contains(c)).collect();
        v.extend(opts.cap_add.iter().cloned());
        v
    };
    let mut seen = std::collections::HashSet::new();
    caps.retain(|c| c != "ALL" && seen.insert(c.clone()));
    caps
}

/// `--ulimit`s replace the engine's default open-files limit and add the others.
fn apply_rlimits(spec: &mut Value, opts: &RunOptions) {
    if opts.ulimits.is_empty() {
        return;
    }
    let mut out: Vec<Value> = spec["process"]["rlimits"].as_array().cloned().unwrap_or_default();
    for u in &opts.ulimits {
        let Some((_, typ)) = ULIMITS.iter().find(|(n, _)| *n == u.name) else { continue };
        out.retain(|r| r["type"] != *typ);
        out.push(json!({"type": typ, "soft": u.soft, "hard": u.hard}));
    }
    spec["process"]["rlimits"] = Value::Array(out);
}

fn mounts_mut(spec: &mut Value) -> &mut Vec<Value> {
    if !spec["mounts"].is_array() {
        spec["mounts"] = json!([]);
    }
    spec["mounts"].as_array_mut().expect("mounts is an array")
}

/// `/dev/shm`: the host's (`--ipc host`), a shared directory (`--ipc shareable|container:X`),
/// or the private tmpfs of `--shm-size` bytes.
fn apply_shm(spec: &mut Value, opts: &RunOptions) {
    let bind = match (&opts.ipc, &opts.shm_dir) {
        (Namespace::Host, _) => Some("/dev/shm".to_string()),
        (_, Some(dir)) => Some(dir.to_string_lossy().into_owned()),
        _ => None,
    };
    for m in mounts_mut(spec).iter_mut().filter(|m| m["destination"] == "/dev/shm") {
        if let Some(src) = &bind {
            *m = json!({"destination": "/dev/shm", "type": "bind", "source": src, "options": ["rbind", "nosuid", "noexec", "nodev"]});
        } else if let Some(size) = opts.shm_size {
            *m = json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={size}")]});
        }
    }
}

/// `--group-add` names and numbers join the process's supplementary groups; they are also
/// recorded for `docker exec` (dockerd gives exec processes the same groups).
fn apply_group_add(spec: &mut Value, opts: &RunOptions, group: &str) -> Result<(), RuntimeError> {
    if opts.group_add.is_empty() {
        return Ok(());
    }
    let gids = resolve_groups(&opts.group_add, group)?;
    let mut all: Vec<u64> =
        spec["process"]["user"]["additionalGids"].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default();
    for g in &gids {
        if !all.contains(&(*g as u64)) {
            all.push(*g as u64);
        }
    }
    spec["process"]["user"]["additionalGids"] = json!(all);
    let list: Vec<String> = gids.iter().map(u32::to_string).collect();
    annotate(spec, GROUPS_ANNOTATION, &list.join(","));
    Ok(())
}

/// Numbers as they are; names from the container's /etc/group, `text` (dockerd's words when
/// missing).
pub fn resolve_groups(groups: &[String], text: &str) -> Result<Vec<u32>, RuntimeError> {
    groups
        .iter()
        .map(|g| {
            if let Ok(n) = g.parse::<u32>() {
                return Ok(n);
            }
            text.lines()
                .filter_map(|l| {
                    let mut f = l.split(':');
                    let name = f.next()?;
                    let gid = f.nth(1)?.parse::<u32>().ok()?;
                    Some((name, gid))
                })
                .find(|(name, _)| name == g)
                .map(|(_, gid)| gid)
                .ok_or_else(|| spec_err(format!("Unable to find group {g}: no matching entries in group file")))
        })
        .collect()
}

/// The OCI device of a host device node, created at `container` in the container.
fn linux_device(host: &Path, container: &str) -> Result<Option<Value>, RuntimeError> {
    let md = std::fs::metadata(host).map_err(|e| {
        spec_err(format!("error gathering device information while adding custom device {:?}: {e}", host.display().to_string()))
    })?;
    let ft = md.file_type();
    let typ = if ft.is_char_device() {
        "c"
    } else if ft.is_block_device() {
        "b"
    } else {
        return Ok(None);
    };
    let rdev = md.rdev();
    Ok(Some(json!({
        "path": container, "type": typ,
        "major": libc::major(rdev), "minor": libc::minor(rdev),
        "fileMode": md.mode() & 0o7777, "uid": md.uid(), "gid": md.gid()
    })))
}

/// Device nodes under `dir` (recursively), as (host path, path below `dir`).
fn device_nodes(dir: &Path, out: &mut Vec<(std::path::PathBuf, String)>, rel: &str) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        let name = e.file_name().to_string_lossy().into_owned();
        let sub = format!("{rel}/{name}");
        if ft.is_dir() {
            // Docker skips these when it gives a privileged container every device.
            if !matches!(name.as_str(), "pts" | "shm" | "fd" | "mqueue" | ".lxc" | ".lxd-mounts" | ".udev") {
                device_nodes(&e.path(), out, &sub);
            }
        } else if ft.is_char_device() || ft.is_block_device() {
            out.push((e.path(), sub));
        }
    }
}

fn device_rule(typ: &str, major: Option<i64>, minor: Option<i64>, access: &str) -> Value {
    let mut r = json!({"allow": true, "type": typ, "access": access});
    if let Some(m) = major {
        r["major"] = json!(m);
    }
    if let Some(m) = minor {
        r["minor"] = json!(m);
    }
    r
}

fn push_device_rule(spec: &mut Value, rule: Value) {
    if !spec["linux"]["resources"]["devices"].is_array() {
        spec["linux"]["resources"]["devices"] = json!([]);
    }
    spec["linux"]["resources"]["devices"].as_array_mut().expect("devices is an array").push(rule);
}

fn push_device(spec: &mut Value, dev: Value) {
    if !spec["linux"]["devices"].is_array() {
        spec["linux"]["devices"] = json!([]);
    }
    let list = spec["linux"]["devices"].as_array_mut().expect("devices is an array");
    list.retain(|d| d["path"] != dev["path"]);
    list.push(dev);
}

/// `--device` (a node, or a directory of nodes) with its permissions, and `--device-cgroup-rule`.
fn apply_devices(spec: &mut Value, opts: &RunOptions) -> Result<(), RuntimeError> {
    for Device { host, container, permissions } in &opts.devices {
        let mut nodes = vec![];
        if host.is_dir() {
            device_nodes(host, &mut nodes, container.trim_end_matches('/'));
        } else {
            nodes.push((host.clone(), container.clone()));
        }
        for (h, c) in nodes {
            let Some(dev) = linux_device(&h, &c)? else {
                return Err(spec_err(format!(
                    "error gathering device information while adding custom device {:?}: not a device node",
                    h.display().to_string()
                )));
            };
            let rule = device_rule(dev["type"].as_str().unwrap_or("c"), dev["major"].as_i64(), dev["minor"].as_i64(), permissions);
            push_device(spec, dev);
            push_device_rule(spec, rule);
        }
    }
    for DeviceRule { kind, major, minor, access } in &opts.device_rules {
        push_device_rule(spec, device_rule(&kind.to_string(), *major, *minor, access));
    }
    Ok(())
}

/// `--privileged`: every host device, a cgroup that allows every device, no masked or
/// read-only paths, /sys and the cgroup mount writable.
fn apply_privileged(spec: &mut Value) -> Result<(), RuntimeError> {
    let mut nodes = vec![];
    device_nodes(Path::new("/dev"), &mut nodes, "/dev");
    for (h, c) in nodes {
        // A node that vanished meanwhile is skipped, as dockerd does.
        if let Ok(Some(dev)) = linux_device(&h, &c) {
            push_device(spec, dev);
        }
    }
    spec["linux"]["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
    spec["linux"]["maskedPaths"] = json!([]);
    spec["linux"]["readonlyPaths"] = json!([]);
    for m in mounts_mut(spec).iter_mut() {
        if m["destination"] == "/sys" || m["destination"] == "/sys/fs/cgroup" {
            if let Some(o) = m["options"].as_array_mut() {
                o.retain(|x| x != "ro");
                o.push(json!("rw"));
            }
        }
    }
    Ok(())
}

/// `--sysctl`, `--oom-score-adj`, `--memory-swappiness`, `--cgroupns host`.
fn apply_kernel_knobs(spec: &mut Value, opts: &RunOptions) {
    if !opts.sysctls.is_empty() {
        if !spec["linux"]["sysctl"].is_object() {
            spec["linux"]["sysctl"] = json!({});
        }
        for (k, v) in &opts.sysctls {
            spec["linux"]["sysctl"][k] = json!(v);
        }
    }
    if let Some(adj) = opts.oom_score_adj {
        spec["process"]["oomScoreAdj"] = json!(adj);
    }
    if let Some(s) = opts.memory_swappiness {
        spec["linux"]["resources"]["memory"]["swappiness"] = json!(s);
    }
    if opts.cgroupns_host {
        if let Some(list) = spec["linux"]["namespaces"].as_array_mut() {
            list.retain(|n| n["type"] != "cgroup");
        }
    }
}

/// `--pid`, `--ipc`, `--uts`: drop the namespace (host) or join one at a path.
fn apply_namespaces(spec: &mut Value, opts: &RunOptions) {
    let Some(list) = spec["linux"]["namespaces"].as_array_mut() else { return };
    for (kind, mode) in [("pid", &opts.pid), ("ipc", &opts.ipc)] {
        match mode {
            Namespace::Private => {}
            Namespace::Host => list.retain(|n| n["type"] != kind),
            Namespace::Join(p) => {
                for n in list.iter_mut().filter(|n| n["type"] == kind) {
                    n["path"] = json!(p);
                }
            }
        }
    }
    if opts.uts_host {
        list.retain(|n| n["type"] != "uts");
        if let Some(o) = spec.as_object_mut() {
            o.remove("hostname");
            o.remove("domainname");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::options::Ulimit;

    fn base() -> Value {
        json!({
            "process": {"user": {"uid": 0, "gid": 0, "additionalGids": [10]},
                        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 100, "soft": 100}]},
            "hostname": "h",
            "mounts": [{"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["size=67108864"]},
                       {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "ro"]}],
            "linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
                      "resources": {"devices": [{"allow": false, "access": "rwm"}]},
                      "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"]}
        })
    }

    #[test]
    fn capability_rules_follow_docker() {
        let caps = |add: &[&str], drop: &[&str]| {
            let o = RunOptions {
                cap_add: add.iter().map(|s| s.to_string()).collect(),
                cap_drop: drop.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            };
            capabilities(&o)
        };
        let d = caps(&[], &[]);
        assert_eq!(d.len(), DEFAULT_CAPS.len());
        let c = caps(&["CAP_SYS_ADMIN"], &["CAP_CHOWN"]);
        assert!(c.contains(&"CAP_SYS_ADMIN".to_string()) && !c.contains(&"CAP_CHOWN".to_string()));
        assert_eq!(caps(&["CAP_KILL"], &["ALL"]), ["CAP_KILL"]);
        let all = caps(&["ALL"], &["CAP_KILL"]);
        assert!(!all.contains(&"CAP_KILL".to_string()) && all.len() > DEFAULT_CAPS.len());
    }

    #[test]
    fn limits_shm_groups_and_nnp() {
        let mut s = base();
        let group = "root:x:0:\naudio:x:29:\n";
        let o = RunOptions {
            ulimits: vec![Ulimit { name: "nofile".into(), soft: 1024, hard: 2048 }, Ulimit { name: "nproc".into(), soft: 5, hard: 6 }],
            shm_size: Some(128 << 20),
            group_add: vec!["audio".into(), "1234".into()],
            no_new_privileges: true,
            init: true,
            ..Default::default()
        };
        apply(&mut s, &o, group).unwrap();
        let rl = s["process"]["rlimits"].as_array().unwrap();
        assert_eq!(rl.len(), 2);
        assert!(rl.contains(&json!({"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048})));
        assert!(s["mounts"][0]["options"].as_array().unwrap().contains(&json!("size=134217728")));
        assert_eq!(s["process"]["user"]["additionalGids"], json!([10, 29, 1234]));
        assert_eq!(s["annotations"][GROUPS_ANNOTATION], "29,1234");
        assert_eq!(s["annotations"][INIT_ANNOTATION], "true");
        assert_eq!(s["process"]["noNewPrivileges"], true);
        let e = apply(&mut base(), &RunOptions { group_add: vec!["nogroup".into()], ..Default::default() }, group);
        assert_eq!(e.unwrap_err().to_string(), "Unable to find group nogroup: no matching entries in group file");
    }

    #[test]
    fn devices_and_rules() {
        let mut s = base();
        let o = RunOptions {
            devices: vec![Device { host: "/dev/null".into(), container: "/dev/xnull".into(), permissions: "r".into() }],
            device_rules: vec![DeviceRule { kind: 'c', major: Some(1), minor: None, access: "rwm".into() }],
            ..Default::default()
        };
        apply(&mut s, &o, "").unwrap();
        let dev = &s["linux"]["devices"][0];
        assert_eq!(
            (dev["path"].as_str(), dev["type"].as_str(), dev["major"].as_u64(), dev["minor"].as_u64()),
            (Some("/dev/xnull"), Some("c"), Some(1), Some(3))
        );
        let rules = s["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(rules[1], json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"}));
        assert_eq!(rules[2], json!({"allow": true, "type": "c", "major": 1, "access": "rwm"}));
        let missing = RunOptions {
            devices: vec![Device { host: "/dev/nope-x".into(), container: "/dev/nope-x".into(), permissions: "rwm".into() }],
            ..Default::default()
        };
        assert!(apply(&mut base(), &missing, "").unwrap_err().to_string().contains("/dev/nope-x"));
    }

    #[test]
    fn privileged_and_namespaces() {
        let mut s = base();
        let o = RunOptions {
            privileged: true,
            pid: Namespace::Host,
            ipc: Namespace::Join("/proc/7/ns/ipc".into()),
            uts_host: true,
            ..Default::default()
        };
        apply(&mut s, &o, "").unwrap();
        assert_eq!(s["linux"]["resources"]["devices"], json!([{"allow": true, "access": "rwm"}]));
        assert_eq!(s["linux"]["maskedPaths"], json!([]));
        assert!(s["mounts"][1]["options"].as_array().unwrap().contains(&json!("rw")));
        assert!(s["linux"]["devices"].as_array().unwrap().iter().any(|d| d["path"] == "/dev/null"));
        assert_eq!(s["linux"]["namespaces"], json!([{"type": "ipc", "path": "/proc/7/ns/ipc"}, {"type": "mount"}]));
        assert!(s.get("hostname").is_none());
    }

    #[test]
    fn kernel_knobs_and_annotations() {
        let mut s = base();
        s["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "cgroup"}));
        let o = RunOptions {
            sysctls: [("kernel.msgmax".to_string(), "4096".to_string())].into(),
            oom_score_adj: Some(500),
            memory_swappiness: Some(10),
            annotations: [("a.b".to_string(), "c".to_string())].into(),
            cgroupns_host: true,
            ..Default::default()
        };
        apply(&mut s, &o, "").unwrap();
        assert_eq!(s["linux"]["sysctl"]["kernel.msgmax"], "4096");
        assert_eq!(s["process"]["oomScoreAdj"], 500);
        assert_eq!(s["linux"]["resources"]["memory"]["swappiness"], 10);
        assert_eq!(s["annotations"]["a.b"], "c");
        assert!(!s["linux"]["namespaces"].as_array().unwrap().iter().any(|n| n["type"] == "cgroup"));
    }
}
