//! Privileges and shared namespaces of `docker run`, checked from inside the container:
//! --cap-add/--cap-drop (with ALL), --privileged, --pid, --ipc, --uts, --userns host,
//! --oom-kill-disable, --runtime (--mac-address: engine_network_user.rs).
mod common;
use common::*;

/// `CapEff` of the status text, as a bit mask.
fn cap_eff(status: &str) -> u64 {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap_or_else(|| panic!("no CapEff in {status}"));
    u64::from_str_radix(hex.trim(), 16).unwrap()
}

const CHOWN: u64 = 1 << 0;
const KILL: u64 = 1 << 5;
const NET_ADMIN: u64 = 1 << 12;
const SYS_ADMIN: u64 = 1 << 21;

#[test]
fn cap_add_and_drop_with_all() {
    require_root!();
    let e = engine_with_busybox();
    let caps = |opts: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["busybox", "cat", "/proc/self/status"]);
        cap_eff(&e.docker_ok(&args))
    };
    let default = caps(&[]);
    assert_eq!(default & (NET_ADMIN | SYS_ADMIN), 0, "{default:x}");
    assert_ne!(default & CHOWN, 0);
    let c = caps(&["--cap-add", "NET_ADMIN", "--cap-drop", "chown"]);
    assert_eq!(c, (default | NET_ADMIN) & !CHOWN, "{c:x}");
    assert_eq!(caps(&["--cap-drop", "ALL", "--cap-add", "KILL"]), KILL);
    let all = caps(&["--cap-add", "ALL", "--cap-drop", "KILL"]);
    assert_eq!(all & (SYS_ADMIN | KILL), SYS_ADMIN, "{all:x}");
    // What the capabilities allow, and what they no longer do.
    let script = "ip link set lo mtu 1400 2>/dev/null && echo mtu || echo nomtu; touch /tmp/f; chown 65534 /tmp/f 2>/dev/null && echo chown || echo nochown";
    let out = e.docker_ok(&["run", "--rm", "--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN", "busybox", "sh", "-c", script]);
    assert_eq!(lines(&out), ["mtu", "nochown"]);
    let out = e.docker_ok(&["run", "--rm", "busybox", "sh", "-c", script]);
    assert_eq!(lines(&out), ["nomtu", "chown"]);
    // An exec gets the container's capabilities.
    let name = e.unique("caps");
    e.docker_ok(&["run", "-d", "--name", &name, "--cap-drop", "ALL", "--cap-add", "KILL", "busybox", "sleep", "100"]);
    assert_eq!(cap_eff(&e.docker_ok(&["exec", &name, "cat", "/proc/self/status"])), KILL);
    assert_eq!(inspect(&e, &name, "{{.HostConfig.CapAdd}} {{.HostConfig.CapDrop}}"), "[CAP_KILL] [ALL]");
    e.docker_ok(&["rm", "-f", &name]);
}

#[test]
fn privileged_gets_every_capability_device_and_unmasked_paths() {
    require_root!();
    let e = engine_with_busybox();
    let ours = cap_eff(&std::fs::read_to_string("/proc/self/status").unwrap());
    let script = "cat /proc/self/status; ls /dev; grep -c ' /proc/keys ' /proc/self/mountinfo; grep ' /sys ' /proc/self/mountinfo | grep -c ' rw,'; true";
    let out = e.docker_ok(&["run", "--rm", "--privileged", "busybox", "sh", "-c", script]);
    assert_eq!(cap_eff(&out), ours);
    let l = lines(&out);
    assert!(l.iter().any(|x| x == "loop-control"), "{out}");
    assert_eq!(l[l.len() - 2..], ["0", "1"], "{out}");
    // Without it: masked /proc/keys, read-only /sys, no host devices.
    let o = e.docker(&["run", "--rm", "busybox", "sh", "-c", script]);
    let l = lines(&o.stdout);
    assert!(!l.iter().any(|x| x == "loop-control"), "{o}");
    assert_eq!(l[l.len() - 2..], ["1", "0"], "{o}");
    // systempaths=unconfined unmasks /proc only; label=disable is accepted (no SELinux here).
    let out = e.docker_ok(&[
        "run",
        "--rm",
        "--security-opt",
        "systempaths=unconfined",
        "--security-opt",
        "label=disable",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let l = lines(&out);
    assert_eq!(l[l.len() - 2..], ["0", "0"], "{out}");
    // The privileged container can use a host device (the device cgroup allows everything).
    let out = e.docker_ok(&["run", "--rm", "--privileged", "busybox", "sh", "-c", "(exec 3<>/dev/loop-control) && echo opened"]);
    assert_eq!(lines(&out), ["opened"]);
}

#[test]
fn pid_namespace_host_and_container() {
    require_root!();
    let e = engine_with_busybox();
    let me = std::process::id();
    let out = e.docker_ok(&["run", "--rm", "--pid", "host", "busybox", "sh", "-c", &format!("test -d /proc/{me} && echo seen; echo $$")]);
    let l = lines(&out);
    assert_eq!(l[0], "seen");
    assert_ne!(l[1], "1");
    let name = e.unique("pidsrc");
    e.docker_ok(&["run", "-d", "--name", &name, "busybox", "sleep", "1000"]);
    let out = e.docker_ok(&["run", "--rm", "--pid", &format!("container:{name}"), "busybox", "cat", "/proc/1/cmdline"]);
    assert_eq!(out, "sleep\u{0}1000\u{0}");
    // Pid namespaces that need libcontainer's intermediate process (joined by path) and those
    // that do not (host, new) give their init the same rlimits and cgroup limits.
    let script = "ulimit -n; ulimit -Hn; cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max";
    let joined = format!("container:{name}");
    for pid in [&["--pid", joined.as_str()][..], &["--pid", "host"], &[]] {
        let limits = ["--ulimit", "nofile=1024:2048", "-m", "64m", "--pids-limit", "50"];
        let args = [&["run", "--rm"][..], pid, &limits, &["busybox", "sh", "-c", script]].concat();
        assert_eq!(lines(&e.docker_ok(&args)), ["1024", "2048", "67108864", "50"], "{pid:?}");
    }
    e.docker_ok(&["stop", "-t", "0", &name]);
    let o = e.docker(&["run", "--rm", "--pid", &format!("container:{name}"), "busybox", "true"]);
    assert!(!o.success() && o.stderr.contains(&format!("cannot join PID of a non running container: {name}")), "{o}");
    e.docker_ok(&["rm", &name]);
    assert_eq!(e.docker_ok(&["ps", "-aq"]).trim(), "");
}

#[test]
fn ipc_host_shareable_and_container() {
    require_root!();
    let e = engine_with_busybox();
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap().to_string_lossy().into_owned();
    let out = e.docker_ok(&["run", "--rm", "--ipc", "host", "busybox", "readlink", "/proc/self/ns/ipc"]);
    assert_eq!(out.trim(), host_ipc);
    let out = e.docker_ok(&["run", "--rm", "busybox", "readlink", "/proc/self/ns/ipc"]);
    assert_ne!(out.trim(), host_ipc);
    // A shareable container's /dev/shm and IPC namespace are seen by one that joins it.
    let donor = e.unique("ipcsrc");
    e.docker_ok(&[
        "run",
        "-d",
        "--name",
        &donor,
        "--ipc",
        "shareable",
        "--shm-size",
        "8m",
        "busybox",
        "sh",
        "-c",
        "echo hi > /dev/shm/marker; sleep 1000",
    ]);
    assert!(wait_until(std::time::Duration::from_secs(10), || e.docker(&["exec", &donor, "test", "-f", "/dev/shm/marker"]).success()));
    let donor_ns = e.docker_ok(&["exec", &donor, "readlink", "/proc/self/ns/ipc"]);
    let script = "readlink /proc/self/ns/ipc; cat /dev/shm/marker; df -k /dev/shm | tail -n 1 | awk '{print $2}'";
    let out = e.docker_ok(&["run", "--rm", "--ipc", &format!("container:{donor}"), "busybox", "sh", "-c", script]);
    assert_eq!(lines(&out), [donor_ns.trim(), "hi", "8192"]);
    // A private one cannot be joined.
    let private = e.unique("ipcpriv");
    e.docker_ok(&["run", "-d", "--name", &private, "busybox", "sleep", "1000"]);
    let o = e.docker(&["run", "--rm", "--ipc", &format!("container:{private}"), "busybox", "true"]);
    assert!(!o.success() && o.stderr.contains("non-shareable IPC"), "{o}");
    // The donor's /dev/shm goes when it stops.
    let id = inspect(&e, &donor, "{{.Id}}");
    e.docker_ok(&["rm", "-f", &donor, &private]);
    let shm = e.data_root().join("containers").join(id).join("shm");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&shm.to_string_lossy().into_owned()), "{} still mounted", shm.display());
}

#[test]
fn uts_userns_oom_and_runtime() {
    require_root!();
    let e = engine_with_busybox();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let out = e.docker_ok(&["run", "--rm", "--uts", "host", "--userns", "host", "busybox", "hostname"]);
    assert_eq!(out.trim(), host.trim());
    let name = e.unique("oom");
    e.docker_ok(&["run", "-d", "--name", &name, "-m", "32m", "--oom-kill-disable", "--runtime", "runc", "busybox", "sleep", "100"]);
    let id = inspect(&e, &name, "{{.Id}}");
    let oom =
        std::fs::read_to_string(format!("/sys/fs/cgroup/memory/{}/{id}/memory.oom_control", e.cgroup_parent().trim_start_matches('/')))
            .unwrap();
    assert!(oom.lines().any(|l| l == "oom_kill_disable 1"), "{oom}");
    assert_eq!(inspect(&e, &name, "{{.HostConfig.Runtime}} {{.HostConfig.OomKillDisable}}"), "runc true");
    e.docker_ok(&["rm", "-f", &name]);
    // The default runtime shows too.
    let name = e.unique("rt");
    e.docker_ok(&["create", "--name", &name, "busybox", "true"]);
    assert_eq!(inspect(&e, &name, "{{.HostConfig.Runtime}}"), "runc");
    e.docker_ok(&["rm", &name]);
    assert_eq!(e.docker_ok(&["info", "-f", "{{.DefaultRuntime}} {{range $k, $v := .Runtimes}}{{$k}}{{end}}"]).trim(), "runc runc");
}

#[test]
fn sysctls_oom_score_swappiness_cgroupns_and_refused_fields() {
    require_root!();
    let e = engine_with_busybox();
    let script = "cat /proc/sys/kernel/msgmax /proc/self/oom_score_adj; readlink /proc/self/ns/cgroup";
    let out = e.docker_ok(&[
        "run",
        "--rm",
        "--sysctl",
        "kernel.msgmax=4096",
        "--oom-score-adj",
        "300",
        "--cgroupns",
        "host",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let host_cgns = std::fs::read_link("/proc/self/ns/cgroup").unwrap().to_string_lossy().into_owned();
    assert_eq!(lines(&out), ["4096", "300", host_cgns.as_str()]);
    let out = e.docker_ok(&["run", "--rm", "busybox", "readlink", "/proc/self/ns/cgroup"]);
    assert_ne!(out.trim(), host_cgns);
    let name = e.unique("swap");
    e.docker_ok(&["run", "-d", "--name", &name, "--memory-swappiness", "7", "busybox", "sleep", "100"]);
    let id = inspect(&e, &name, "{{.Id}}");
    let sw = std::fs::read_to_string(format!("/sys/fs/cgroup/memory/{}/{id}/memory.swappiness", e.cgroup_parent().trim_start_matches('/')))
        .unwrap();
    assert_eq!(sw.trim(), "7");
    e.docker_ok(&["rm", "-f", &name]);
    // NetworkDisabled: only lo.
    let body = br#"{"Image":"busybox","Cmd":["ls","/sys/class/net"],"NetworkDisabled":true}"#;
    let name = e.unique("nonet");
    let r = e.api("POST", &format!("/v1.41/containers/create?name={name}"), Some(("application/json", body))).unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    e.docker_ok(&["start", "-a", &name]);
    assert_eq!(lines(&e.docker_ok(&["logs", &name])), ["lo"]);
    e.docker_ok(&["rm", &name]);
    for (opts, want) in [
        (&["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"][..], "--network host"),
        (&["--blkio-weight", "300"][..], "--blkio-weight is not supported"),
        (&["--device-read-bps", "/dev/null:1mb"][..], "block I/O throttling"),
        (&["--gpus", "all"][..], "--gpus"),
        (&["--cgroup-parent", "/elsewhere"][..], "--cgroup-parent per container"),
        (&["--oom-score-adj", "5000"][..], "range for oom score adj"),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["busybox", "true"]);
        let o = e.docker(&args);
        assert!(!o.success() && o.stderr.contains(want), "{opts:?}: want {want:?} in {o}");
    }
    // What the CLI checks itself, the engine checks too.
    for (body, want) in [
        (&br#"{"Image":"busybox","HostConfig":{"KernelMemory":67108864}}"#[..], "KernelMemory"),
        (&br#"{"Image":"busybox","HostConfig":{"Sysctls":{"kernel.domainname":"x"}}}"#[..], "'kernel.domainname' is not allowed"),
    ] {
        let r = e.api("POST", "/v1.41/containers/create", Some(("application/json", body))).unwrap();
        assert!(r.status == 400 && r.text().contains(want), "{}", r.text());
    }
    assert_eq!(e.docker_ok(&["ps", "-aq"]).trim(), "");
}
