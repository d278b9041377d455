//! Options the engine used to accept and then drop: each is now honoured (`--domainname`, bind
//! propagation) or refused with an error that names it, and a refusal leaves nothing behind.
mod common;
use common::*;

/// Runs `docker args` and expects a failure whose stderr names `want`.
fn refused(e: &Engine, args: &[&str], want: &str) {
    let o = e.docker(args);
    assert!(!o.success() && o.stderr.contains(want), "docker {args:?} should fail naming {want:?}:\n{o}");
}

#[test]
fn network_create_refuses_what_it_would_not_apply() {
    require_root!();
    let e = engine_with_busybox();
    let n = e.unique("refnet");
    refused(&e, &["network", "create", "-o", "com.docker.network.bridge.host_binding_ipv4=127.0.0.1", &n], "host_binding_ipv4");
    refused(&e, &["network", "create", "-o", "com.docker.network.bridge.enable_icc=no", &n], "enable_icc");
    refused(&e, &["network", "create", "--ingress", &n], "ingress");
    refused(&e, &["network", "create", "--config-only", &n], "config-only");
    refused(&e, &["network", "create", "--scope", "swarm", &n], "scope");
    // None of them made a network; the options it acts on still work.
    assert_eq!(e.docker_ok(&["network", "ls", "-q", "--filter", &format!("name={n}")]).trim(), "");
    e.docker_ok(&["network", "create", "-o", "com.docker.network.bridge.enable_icc=false", &n]);
    assert_eq!(e.docker_ok(&["network", "inspect", "-f", "{{.Scope}}", &n]).trim(), "local");
    // Endpoint settings it has no use for.
    refused(&e, &["run", "--rm", "--network", &n, "--ip6", "fd00::5", "busybox", "true"], "--ip6");
    refused(&e, &["run", "--rm", "--network", &n, "--link-local-ip", "169.254.9.9", "busybox", "true"], "--link-local-ip");
    refused(&e, &["run", "--rm", "--network", "host", "--network-alias", "x", "busybox", "true"], "network-scoped alias");
    e.docker_ok(&["network", "rm", &n]);
}

#[test]
fn domainname_is_set_and_host_uts_names_are_refused() {
    require_root!();
    let e = engine_with_busybox();
    let out = e.docker_ok(&[
        "run",
        "--rm",
        "--domainname",
        "example.org",
        "-h",
        "web",
        "busybox",
        "cat",
        "/proc/sys/kernel/domainname",
        "/proc/sys/kernel/hostname",
    ]);
    assert_eq!(lines(&out), ["example.org", "web"]);
    refused(&e, &["run", "--rm", "--uts", "host", "-h", "x", "busybox", "true"], "conflicting options: hostname and the UTS mode");
    refused(&e, &["run", "--rm", "--uts", "host", "--domainname", "x.org", "busybox", "true"], "domainname and the UTS mode");
}

#[test]
fn update_refuses_limits_it_does_not_change() {
    require_root!();
    let e = engine_with_busybox();
    let c = e.unique("upd");
    e.docker_ok(&["run", "-d", "--name", &c, "busybox", "sleep", "1000"]);
    refused(&e, &["update", "--blkio-weight", "300", &c], "BlkioWeight");
    refused(&e, &["update", "--cpu-rt-runtime", "1000", &c], "CpuRealtimeRuntime");
    let r = e.api("POST", &format!("/v1.41/containers/{c}/update"), Some(("application/json", br#"{"KernelMemory": 10485760}"#))).unwrap();
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("KernelMemory"));
    // What it does change still goes through.
    e.docker_ok(&["update", "--memory", "64m", "--memory-swap", "-1", &c]);
    assert_eq!(inspect(&e, &c, "{{.HostConfig.Memory}}"), "67108864");
    e.docker_ok(&["rm", "-f", &c]);
}

#[test]
fn ports_only_on_ipv6_are_refused_and_host_network_ports_warn() {
    require_root!();
    let e = engine_with_busybox();
    refused(&e, &["run", "--rm", "-p", "[::]:8080:80", "busybox", "true"], "IPv6");
    let o = e.docker(&["run", "--rm", "--network", "host", "-p", "8080:80", "busybox", "true"]);
    assert!(o.success() && o.stderr.contains("Published ports are discarded when using host network mode"), "{o}");
}

/// A host directory that is a shared mount of its own, unmounted when dropped.
struct SharedDir(tempfile::TempDir);

impl SharedDir {
    fn new() -> SharedDir {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().display().to_string();
        assert!(testground::cmd::run_args("mount", &["--bind", &p, &p]).success());
        assert!(testground::cmd::run_args("mount", &["--make-shared", &p]).success());
        SharedDir(d)
    }
    fn path(&self) -> String {
        self.0.path().display().to_string()
    }
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        testground::cmd::run_args("umount", &["-l", &self.path()]);
    }
}

#[test]
fn bind_propagation_is_applied_and_nonrecursive_binds_are_refused() {
    require_root!();
    let e = engine_with_busybox();
    let d = SharedDir::new();
    // The container's mountinfo line of /x: its optional fields say shared:N, master:N or none.
    let line = |mode: &str| {
        let v = if mode.is_empty() { format!("{}:/x", d.path()) } else { format!("{}:/x:{mode}", d.path()) };
        e.docker_ok(&["run", "--rm", "-v", &v, "busybox", "grep", " /x ", "/proc/self/mountinfo"])
    };
    let private = line("");
    assert!(!private.contains("shared:") && !private.contains("master:"), "{private}");
    let slave = line("rslave");
    assert!(slave.contains("master:") && !slave.contains("shared:"), "{slave}");
    let m = format!("type=bind,src={},dst=/x,bind-propagation=rslave", d.path());
    assert!(e.docker_ok(&["run", "--rm", "--mount", &m, "busybox", "grep", " /x ", "/proc/self/mountinfo"]).contains("master:"));
    // A mount made on the host under a slave bind reaches the container; under a private one not.
    let c = e.unique("prop");
    e.docker_ok(&[
        "run",
        "-d",
        "--name",
        &c,
        "-v",
        &format!("{}:/x:rslave", d.path()),
        "-v",
        &format!("{}:/y", d.path()),
        "busybox",
        "sleep",
        "1000",
    ]);
    let sub = format!("{}/sub", d.path());
    std::fs::create_dir_all(&sub).unwrap();
    assert!(testground::cmd::run_args("mount", &["-t", "tmpfs", "flt-prop", &sub]).success());
    let seen = e.docker_ok(&[
        "exec",
        &c,
        "sh",
        "-c",
        "grep -c flt-prop /proc/self/mountinfo; grep ' /x/sub ' /proc/self/mountinfo | wc -l; grep ' /y/sub ' /proc/self/mountinfo | wc -l",
    ]);
    testground::cmd::run_args("umount", &[&sub]);
    e.docker_ok(&["rm", "-f", &c]);
    assert_eq!(lines(&seen), ["1", "1", "0"], "only the rslave bind sees the host's new mount");
    // Shared propagation is refused, not applied half-way.
    refused(&e, &["run", "--rm", "-v", &format!("{}:/x:rshared", d.path()), "busybox", "true"], "bind propagation rshared");
    let m = format!("type=bind,src={},dst=/x,bind-nonrecursive=true", d.path());
    refused(&e, &["run", "--rm", "--mount", &m, "busybox", "true"], "bind-nonrecursive");
    let v = e.unique("vopt");
    refused(&e, &["run", "--rm", "--mount", &format!("type=volume,src={v},dst=/x,volume-opt=type=tmpfs"), "busybox", "true"], "volume-opt");
    assert_eq!(e.docker_ok(&["volume", "ls", "-q", "--filter", &format!("name={v}")]).trim(), "");
}
