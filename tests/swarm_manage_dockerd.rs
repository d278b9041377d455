//! One manager over one of our engines and one real dockerd (Debian docker.io), each in its own
//! network-namespace host. dockerd's host-wide side effects stay inside its host: iptables
//! chains, FORWARD policy, docker0, routes and ip_forward are per network namespace; `/run`
//! (its plugins dir, containerd's shim sockets) and `/etc/docker` (its key.json) are private
//! tmpfs mounts of the host's mount namespace; data and exec roots, pidfile and socket live in
//! the host's temp dir and its containers under the host's cgroup parent. The manager reaches
//! both over the test bridge. Dropping the test net kills everything in the host (dockerd, its
//! containerd, the shims), the containers by cgroup, and removes the rest — also on failure.
mod discovery_common;
use discovery_common::manager::Manager;
use discovery_common::*;
use std::path::Path;
use std::time::Duration;

const DOCKERD: &str = "/usr/sbin/dockerd";

/// The value after `flag` in a host's engine flags.
fn flag_value(host: &Host, flag: &str) -> String {
    let a = host.engine_args();
    let i = a.iter().position(|x| x == flag).unwrap_or_else(|| panic!("{flag} not in {a:?}"));
    a[i + 1].clone()
}

/// dockerd in `host`, on tcp://<host ip>:2375 and a unix socket in the host's dir.
fn dockerd_in(host: &Host) -> HostProc {
    let d = host.dir();
    let script = format!(
        "set -e\n[ -d /etc/docker ] && mount -t tmpfs -o mode=755 etc-docker /etc/docker\n\
         exec {DOCKERD} --host=unix://{sock} --host=tcp://{ip}:2375 --data-root={d}/docker --exec-root={d}/x \
         --pidfile={d}/dockerd.pid --cgroup-parent={cg} --label=kind=dockerd --log-level=info",
        sock = host.socket().display(),
        ip = host.ip(),
        d = d.display(),
        cg = flag_value(host, "--cgroup-parent"),
    );
    host.spawn("dockerd", "sh", &["-c".to_string(), script])
}

/// Our engine in `host`, on tcp://<host ip>:2375.
fn engine_in(host: &Host) -> HostProc {
    let mut a: Vec<String> =
        ["engine", "-H", &format!("tcp://{}:2375", host.ip()), "--insecure-tcp", "--name", "flotilla-node", "--label", "kind=flotilla"]
            .map(String::from)
            .to_vec();
    a.extend(host.engine_args());
    host.spawn("engine", SWARM, &a)
}

/// Lines of `path` (e.g. /proc/mounts) mentioning `needle`.
fn mentions(path: &str, needle: &str) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter(|l| l.contains(needle)).map(String::from).collect()
}

/// Other processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = e.file_name().to_string_lossy().to_string();
        if pid == me || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmd = String::from_utf8_lossy(&std::fs::read(e.path().join("cmdline")).unwrap_or_default()).replace('\0', " ");
        if cmd.contains(needle) {
            out.push(format!("{pid}: {cmd}"));
        }
    }
    out
}

#[test]
fn manages_a_real_dockerd_next_to_our_engine() {
    require_root!();
    assert!(Path::new(DOCKERD).is_file(), "{DOCKERD} missing: run scripts/install-deps.sh (docker.io)");
    let docker0_before = testground::cmd::run_args("ip", &["link", "show", "docker0"]).success();
    let net = TestNet::new(2);
    let (h1, h2) = (net.host(0), net.host(1));
    let cgroup = flag_value(h2, "--cgroup-parent");
    let host_dir = h2.dir().to_path_buf();
    let mut container_pids = vec![];
    {
        let _ours = engine_in(h1);
        let mut real = dockerd_in(h2);
        let m = Manager::start(&[&format!("nodes://{},{}", advertise(h1), advertise(h2))], 2);
        let info = m.docker_ok(&["info"]);
        assert!(info.contains("kind=dockerd") && info.contains("kind=flotilla") && info.contains("└ ServerVersion: 20.10"), "{info}");
        m.load_busybox();
        let o = m.docker(&["run", "--rm", "-e", "constraint:kind==dockerd", "busybox", "echo", "hello-from-dockerd"]);
        assert!(o.success() && o.stdout.contains("hello-from-dockerd"), "{o}\n{}", m.log());
        m.docker_ok(&[
            "run",
            "-d",
            "--name",
            "on-real",
            "-e",
            "constraint:kind==dockerd",
            "-p",
            "8080:80",
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/etc",
        ]);
        m.docker_ok(&["run", "-d", "--name", "on-ours", "-e", "constraint:kind==flotilla", "busybox", "sleep", "100"]);
        let ps = m.docker_ok(&["ps", "--format", "{{.Names}}"]);
        assert!(ps.contains("flotilla-node/on-ours") && ps.contains("/on-real"), "{ps}");
        assert_eq!(m.docker_ok(&["inspect", "-f", "{{.Node.IP}}", "on-real"]).trim(), h2.ip());
        // dockerd's published port, through its own iptables in its host.
        let r = wait_until(Duration::from_secs(10), || {
            testground::http::tcp(
                &format!("{}:8080", h2.ip()),
                &testground::http::Request { method: "GET", path: "/hostname", headers: &[], body: b"" },
            )
            .is_ok_and(|r| r.status == 200)
        });
        assert!(r, "dockerd's published port does not answer");
        // dockerd has an event stream: the manager sees a container created behind its back.
        let direct = docker_at(
            &format!("unix://{}", h2.socket().display()),
            &["run", "-d", "--name", "behind-the-back", "busybox", "sleep", "100"],
            Duration::from_secs(60),
        );
        assert!(direct.success(), "{direct}");
        assert!(wait_until(Duration::from_secs(10), || m.docker(&["ps", "--format", "{{.Names}}"]).stdout.contains("behind-the-back")));
        // Networks and volumes made on dockerd behind the manager's back come from its events too.
        let real_host = format!("unix://{}", h2.socket().display());
        let on_real = |args: &[&str]| {
            let o = docker_at(&real_host, args, Duration::from_secs(60));
            assert!(o.success(), "{o}");
        };
        on_real(&["network", "create", "dockerd-net"]);
        on_real(&["volume", "create", "dockerd-vol"]);
        on_real(&["network", "connect", "dockerd-net", "behind-the-back"]);
        let listed = |what: &str, name: &str| {
            m.docker(&[what, "ls", "--format", "{{.Name}}"]).stdout.lines().any(|l| l.ends_with(&format!("/{name}")))
        };
        assert!(wait_until(Duration::from_secs(10), || listed("network", "dockerd-net") && listed("volume", "dockerd-vol")), "{}", m.log());
        let members = || m.docker(&["network", "inspect", "-f", "{{range .Containers}}{{.Name}}{{end}}", "dockerd-net"]).stdout;
        assert!(wait_until(Duration::from_secs(10), || members().trim() == "behind-the-back"), "{:?}\n{}", members(), m.log());
        on_real(&["network", "disconnect", "dockerd-net", "behind-the-back"]);
        on_real(&["network", "rm", "dockerd-net"]);
        on_real(&["volume", "rm", "dockerd-vol"]);
        assert!(
            wait_until(Duration::from_secs(10), || !listed("network", "dockerd-net") && !listed("volume", "dockerd-vol")),
            "{}",
            m.log()
        );
        let o = m.docker(&["exec", "on-real", "echo", "exec-on-dockerd"]);
        assert!(o.success() && o.stdout.contains("exec-on-dockerd"), "{o}");
        // Nothing of dockerd's is visible outside its host.
        let in_host = testground::cmd::run_args("ip", &["netns", "exec", &h2.ns, "sh", "-c", "ip link show docker0 && iptables -S DOCKER"]);
        assert!(in_host.success(), "dockerd's bridge and chain are in its host: {in_host}");
        let docker0_now = testground::cmd::run_args("ip", &["link", "show", "docker0"]).success();
        assert!(docker0_before || !docker0_now, "docker0 leaked into the root netns");
        assert!(mentions("/proc/self/mounts", &host_dir.display().to_string()).is_empty(), "dockerd's mounts leaked");
        // Its containers live under the host's cgroup parent, so they go with the host.
        let pid: i32 = m.docker_ok(&["inspect", "-f", "{{.State.Pid}}", "on-real"]).trim().parse().expect("pid");
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        assert!(testground::cleanup::in_cgroup(&cg, &cgroup), "on-real is not under {cgroup}:\n{cg}");
        container_pids.push(pid);
        // Containers still running when dockerd dies (a crash) are cleaned up with the host.
        real.kill();
        drop(m);
    }
    drop(net);
    // Nothing left: processes, cgroups, mounts.
    let procs = processes_mentioning(&host_dir.display().to_string());
    assert!(procs.is_empty(), "processes left: {procs:?}");
    for pid in container_pids {
        // Killed with the host; it may take a moment to be reaped (zombies hold nothing).
        let gone = wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .map_or(true, |s| s.lines().any(|l| l.starts_with("State:") && l.contains('Z')))
        });
        assert!(gone, "container process {pid} left");
    }
    for ctrl in ["memory", "pids", "cpu", "freezer"] {
        let p = Path::new("/sys/fs/cgroup").join(ctrl).join(cgroup.trim_start_matches('/'));
        assert!(!p.exists(), "cgroup left: {}", p.display());
    }
    assert!(!host_dir.exists(), "host dir left: {}", host_dir.display());
}
