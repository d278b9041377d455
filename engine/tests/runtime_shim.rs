//! The real runtime against the real kernel: shims run busybox containers from a rootfs dir.
//! Needs root and the shim example binary (built by `cargo test -p engine`, or explicitly with
//! `cargo test -p engine --example shim --test runtime_shim`).
use engine::runtime::gate::{self, Gate};
use engine::runtime::{AttachOpts, BindMount, ExecSpec, NetNs, RunSpec, Runtime, RuntimeError, ShimRuntime};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `target/<profile>/examples/shim`; `cargo test -p engine` builds it, a filtered run may not,
/// so build it once if missing (cargo's build lock is free while tests run).
/// `FLOTILLA_SHIM_BINARY=/path/to/swarm` runs the tests against the real `swarm shim`.
fn shim_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("FLOTILLA_SHIM_BINARY") {
        return bin.into();
    }
    static BUILD: std::sync::Once = std::sync::Once::new();
    let exe = std::env::current_exe().expect("test exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir").to_path_buf();
    let bin = profile_dir.join("examples/shim");
    BUILD.call_once(|| {
        if !bin.exists() {
            let status = std::process::Command::new(env!("CARGO"))
                .args(["build", "-p", "engine", "--example", "shim"])
                .env("CARGO_TARGET_DIR", profile_dir.parent().expect("target root"))
                .status()
                .expect("running cargo");
            assert!(status.success(), "building the shim example failed");
        }
    });
    assert!(bin.exists(), "{} missing: run `cargo build -p engine --example shim`", bin.display());
    bin
}

/// A busybox rootfs with relative applet links and root/nobody users.
fn make_rootfs(root: &Path) {
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    let list = std::process::Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
        }
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}

/// One test's world: rootfs, exec root and a private cgroup parent; everything is removed on
/// drop (container processes killed, shims told to delete, cgroups removed).
struct World {
    dir: tempfile::TempDir,
    runtime: ShimRuntime,
    cgroup_parent: String,
    ids: Vec<(String, PathBuf)>,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("flt-rt").tempdir_in("/tmp").unwrap();
        make_rootfs(&dir.path().join("rootfs"));
        let runtime = ShimRuntime::new(shim_binary(), dir.path().join("lc"));
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let cgroup_parent = format!("/flt-test-{}-{n}", std::process::id());
        World { dir, runtime, cgroup_parent, ids: vec![] }
    }

    fn spec(&mut self, args: &[&str]) -> RunSpec {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let id = format!("{:016x}{:016x}", std::process::id(), n);
        let state_dir = self.dir.path().join("s").join(&id[..16]).join(n.to_string());
        self.ids.push((id.clone(), state_dir.clone()));
        RunSpec {
            cgroup_path: format!("{}/{id}", self.cgroup_parent),
            log_path: self.dir.path().join("logs").join(format!("{id}-json.log")),
            id,
            rootfs: self.dir.path().join("rootfs"),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            user: String::new(),
            hostname: "box".into(),
            domainname: String::new(),
            tty: false,
            open_stdin: false,
            stdin_once: false,
            netns: NetNs::New,
            mounts: vec![],
            state_dir,
            readonly_rootfs: false,
            tmpfs: vec![],
            resources: Default::default(),
            console_size: None,
            seccomp: Default::default(),
            options: Default::default(),
            log: Default::default(),
        }
    }
}

fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    let rel = path.trim_start_matches('/');
    let mut v: Vec<PathBuf> =
        std::fs::read_dir("/sys/fs/cgroup").map(|rd| rd.flatten().map(|e| e.path().join(rel)).collect()).unwrap_or_default();
    v.push(Path::new("/sys/fs/cgroup").join(rel));
    v
}

impl Drop for World {
    fn drop(&mut self) {
        for (id, state_dir) in &self.ids {
            let cg = format!("{}/{id}", self.cgroup_parent);
            for d in cgroup_dirs(&cg) {
                if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
                    for pid in procs.lines().filter_map(|l| l.parse::<i32>().ok()) {
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
            if let Ok(mut c) = std::os::unix::net::UnixStream::connect(state_dir.join("shim.sock")) {
                let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = c.write_all(b"{\"op\":\"delete\"}\n");
                let _ = c.read(&mut [0u8; 64]);
            }
            for d in cgroup_dirs(&cg) {
                let _ = std::fs::remove_dir(d);
            }
        }
        for d in cgroup_dirs(&self.cgroup_parent) {
            let _ = std::fs::remove_dir(d);
        }
    }
}

const ALL: AttachOpts = AttachOpts { stdin: false, stdout: true, stderr: true };

async fn read_all(s: &mut tokio::net::UnixStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await.expect("attach stream EOF").unwrap();
    out
}

async fn wait(rt: &ShimRuntime, spec: &RunSpec) -> engine::runtime::Exit {
    tokio::time::timeout(Duration::from_secs(20), rt.wait(&spec.id, &spec.state_dir)).await.expect("wait timed out").unwrap()
}

/// Decodes stdcopy frames into (stream, bytes) with adjacent frames of a stream merged.
fn demux(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out: Vec<(u8, Vec<u8>)> = vec![];
    while b.len() >= 8 {
        let len = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
        let (stream, data) = (b[0], &b[8..8 + len]);
        match out.last_mut() {
            Some((s, v)) if *s == stream => v.extend_from_slice(data),
            _ => out.push((stream, data.to_vec())),
        }
        b = &b[8 + len..];
    }
    assert!(b.is_empty(), "trailing bytes {b:?}");
    out
}

#[tokio::test]
async fn echo_hello_attach_before_start() {
    if !is_root() {
        return eprintln!("skipped: needs root");
    }
    let mut w = World::new();
    let spec = w.spec(&["echo", "hello"]);
    let rt = &w.runtime;
    let t0 = Instant::now();
    rt.create(&spec, Gate::open()).await.unwrap();
    let t_create = t0.elapsed();
    let mut att = rt.attach(&spec.id, &spec.state_dir, ALL).await.unwrap();
    let pid = rt.start(&spec.id, &spec.state_dir).await.unwrap();
    assert!(pid > 1);
    let out = read_all(&mut att).await;
    let exit = wait(rt, &spec).await;
    let t_total = t0.elapsed();
    eprintln!("create {t_create:?}, create..exit {t_total:?}");
    assert_eq!(out, b"\x01\0\0\0\0\0\0\x06hello\n");
    assert_eq!(exit.code, 0);
    assert!(!exit.oom_killed);
    assert!(exit.finished_at.ends_with('Z'));
    let log = std::fs::read_to_string(&spec.log_path).unwrap();
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert_eq!(lines[0]["log"], "hello\n");
    assert_eq!(lines[0]["stream"], "stdout");
    let exit_file: engine::runtime::Exit = serde_json::from_slice(&std::fs::read(spec.state_dir.join("exit.json")).unwrap()).unwrap();
    assert_eq!(exit_file.code, 0);
    // A second wait is answered too (by the lingering shim).
    assert_eq!(wait(rt, &spec).await.code, 0);
    // The shim itself removes the cgroups (every hierarchy) and libcontainer's state once the
    // init is gone, before the engine asks.
    let deadline = Instant::now() + Duration::from_secs(3);
    let left = || cgroup_dirs(&spec.cgroup_path).into_iter().filter(|d| d.exists()).collect::<Vec<_>>();
    while (!left().is_empty() || w.dir.path().join("lc").join(&spec.id).exists()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(left(), Vec::<PathBuf>::new(), "cgroups left after the exit");
    assert!(!w.dir.path().join("lc").join(&spec.id).exists(), "libcontainer's state left after the exit");
    let t = Instant::now();
    rt.delete(&spec.id, &spec.state_dir).await.unwrap();
    eprintln!("delete {:?}", t.elapsed());
    assert!(!spec.state_dir.exists());
    assert!(!Path::new("/sys/fs/cgroup/memory").join(spec.cgroup_path.trim_start_matches('/')).exists());
    assert!(!w.dir.path().join("lc").join(&spec.id).exists());
}

#[tokio::test]
async fn exit_code_and_stderr() {
    if !is_root() {
        return eprintln!("skipped: needs root");
    }
    let mut w = World::new();
    let spec = w.spec(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
    let rt = &w.runtime;
    rt.create(&spec, Gate::open()).await.unwrap();
    let mut att = rt.attach(&spec.id, &spec.state_dir, AttachOpts { stdin: false, stdout: false, stderr: true }).await.unwrap();
    rt.start(&spec.id, &spec.state_dir).await.unwrap();
    assert_eq!(demux(&read_all(&mut att).await), vec![(2, b"err\n".to_vec())]);
    assert_eq!(wait(rt, &spec).await.code, 3);
    let log = std::fs::read_to_string(&spec.log_path).unwrap();
    assert!(log.contains(r#""log":"out\n","stream":"stdout""#), "{log}");
    assert!(log.contains(r#""log":"err\n","stream":"stderr""#), "{log}");
}

#[tokio::test]
async fn kill_while_running_and_cgroup_lifecycle() {
    if !is_root() {
        return eprintln!("skipped: needs root");
    }
    let mut w = World::new();
    let spec = w.spec(&["sleep", "1000"]);
    let rt = &w.runtime;
    rt.create(&spec, Gate::open()).await.unwrap();
    rt.start(&spec.id, &spec.state_dir).await.unwrap();
    let memcg = Path::new("/sys/fs/cgroup/memory").join(spec.cgroup_path.trim_start_matches('/'));
    assert!(memcg.exists(), "{} missing", memcg.display());
    // A restarted engine (a fresh client) finds the running container through its shim.
    let again = ShimRuntime::new(rt.shim_binary.clone(), rt.runtime_root.clone());
    let st = again.state(&spec.id, &spec.state_dir).await.unwrap().unwrap();
    assert_eq!(st.status, engine::runtime::Status::Running);
    assert!(st.pid > 1 && st.exit.is_none());
    // The init of a pid namespace ignores SIGTERM without a handler: SIGKILL it.
    rt.signal(&spec.id, &spec.state_dir, libc::SIGKILL).await.unwrap();
    assert_eq!(wait(rt, &spec).await.code, 137);
    // Signalling an exited container is refused.
    assert!(matches!(rt.signal(&spec.id, &spec.state_dir, libc::SIGKILL).await, Err(RuntimeError::NotRunning(_))));
    rt.delete(&spec.id, &spec.state_dir).await.unwrap();
    assert!(!memcg.exists());
}

#[tokio::test]
async fn sigterm_reaches_a_trap() {
    if !is_root() {
        return eprintln!("skipped: needs root");
    }
    let mut w = World::new();
    let spec = w.spec(&["sh", "-c", "trap 'echo got; exit 7' TERM; echo ready; while true; do sleep 0.05; done"]);
    let rt = &w.runtime;
    rt.create(&spec, Gate::open()).await.unwrap();
    let mut att = rt.attach(&spec.id, &spec.state_dir, ALL).await.unwrap();
    rt.start(&spec.id, &spec.state_dir).await.unwrap();
    let mut first = [0u8; 14];
    att.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"\x01\0\0\0\0\0\0\x06ready\n");
    rt.signal(&spec.id, &spec.state_dir, libc::SIGTERM).await.unwrap();
    assert_eq!(demux(&read_all(&mut att).await), vec![(1, b"got\n".to_vec())]);
    assert_eq!(wait(rt, &spec).await.code, 7);
}

#[tokio::test]
async fn stdin_is_fed_and_closed() {
    if !is_root() {
        return eprintln!("skipped: needs root");
    }
    let mut w = World::new();
    let mut spec = w.spec(&["cat"]);
    spec.open_stdin = true;
    spec.stdin_once = true;
    let rt = &w.runtime;
    rt.create(&spec, Gate::open()).await.unwrap();
    let att = rt.attach(&spec.id, &spec.state_dir, AttachOpts { stdin: true, stdout: true, stderr: true }).await.unwrap();
    rt.start(&spec.id, &spec.state_dir).await.unwrap();
    let (mut r, mut wr) = att.into_split();
    wr.write_all(b"abc").await.unwrap();
    wr.shutdown().await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), r.read_to_end(&mut out)).await.unwrap().unwrap();
    assert_eq!(out, b"\x01\0\0\0\0\0\0\x03abc");
    assert_eq!(wait(rt, &spec).await.code, 0);
}

#[tokio::test]
async fn namespaces_user_and_mounts() {
    if !is_root() {
        return eprintln!("skipped: needs root");
    }
    let mut w = World::new();
    let hosts = w.dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost box\n").unwrap();
    let script = "ls /sys/class/net; hostname; id -u; echo $$; cat /etc/hosts; \
                  touch /etc/hosts 2>/dev/null && echo rw || echo ro; echo $HOME; \
                  wc -c < /proc/timer_list; ls /dev/null /dev/shm /dev/pts/ptmx >/dev/null && echo devs; \
                  grep -E 'SigIgn|SigBlk' /proc/self/status; ulimit -n";
    let mut spec = w.spec(&["sh", "-c", script]);
    spec.user = "nobody".into();
    spec.mounts = vec![BindMount { source: hosts, destination: "/etc/hosts".into(), readonly: true, propagation: String::new() }];
    let rt = &w.runtime;
    rt.create(&spec, Gate::open()).await.unwrap();
    let mut att = rt.attach(&spec.id, &spec.state_dir, ALL).await.unwrap();
    rt.start(&spec.id, &spec.state_dir).await.unwrap();
    let out = demux(&read_all(&mut att).await);
    let stdout = String::from_utf8_lossy(&out.iter().find(|(s, _)| *s == 1).expect("stdout").1).into_owned();
    let nofile = engine::runtime::spec::nofile_limit();
    assert_eq!(
        stdout,
        format!("lo\nbox\n65534\n1\n127.0.0.1 localhost box\nro\n/home\n0\ndevs\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n{nofile}\n")
    );
    assert_eq!(wait(rt, &spec).await.code, 0);

    let bad = w.spec(&["true"]);
    let mut bad = bad;
    bad.user = "xyz".into();
    let e = w.runtime.create(&bad, Gate::open()).await.unwrap_err();
    assert_eq!(e.to_string(), "unable to find user xyz: no matching entries in passwd file");
}

#[tokio::test]
async fn tty_output_is_raw() {
    if !is_root() {
        return eprintln!("skipped: needs root");
    }
    let mut w = World::new();
    let mut spec = w.spec(&["sh", "-c", "tty; echo hi"]);
    spec.tty = true;
    let rt = &w.runtime;
    rt.create(&spec, Gate::open()).await.unwrap();
    let mut att = rt.attach(&spec.id, &spec.state_dir, ALL).await.unwrap();
    rt.start(&spec.id, &spec.state_dir).await.unwrap();
    let out = String::from_utf8_lossy(&read_all(&mut att).await).into_owned();
    assert_eq!(out, "/dev/pts/0\r\nhi\r\n");
    assert_eq!(wait(rt, &spec).await.code, 0);
}

#[tokio::test]
async fn bad_executable_fails_create() {
    if !is_root() {
        return eprintln!("skipped: needs root");
    }
    let mut w = World::new();
    let spec = w.spec(&["nonexistent-cmd"]);
    let e = w.runtime.create(&spec, Gate::open()).await.unwrap_err();
    eprintln!("create error: {e}");
    assert!(e.to_string().contains("exec: \"nonexistent-cmd\": executable file not found in $PATH"), "{e}");
    assert!(!w.dir.path().join("lc").join(&spec.id).exists());
}

#[tokio::test]
async fn wait_falls_back_to_exit_file_when_shim_is_gone() {
    if !is_root() {
        return eprintln!("skipped: needs root");
    }
    let mut w = World::new();
    let spec = w.spec(&["sleep", "1000"]);
    let rt = &w.runtime;
    rt.create(&spec, Gate::open()).await.unwrap();
    let pid = rt.start(&spec.id, &spec.state_dir).await.unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let shim_pid: i32 = stat.rsplit(')').next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    rt.signal(&spec.id, &spec.state_dir, libc::SIGKILL).await.unwrap();
    assert_eq!(wait(rt, &spec).await.code, 137);
    unsafe { libc::kill(shim_pid, libc::SIGKILL) };
    for _ in 0..100 {
        if std::fs::read_to_string(format!("/proc/{shim_pid}/stat")).map_or(true, |s| s.contains(") Z ")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(wait(rt, &spec).await.code, 137);
    let st = rt.state(&spec.id, &spec.state_dir).await.unwrap().unwrap();
    assert_eq!(st.exit.unwrap().code, 137);
}

#[tokio::test]
async fn delete_of_created_container_kills_it() {
    if !is_root() {
        return eprintln!("skipped: needs root");
    }
    let mut w = World::new();
    let spec = w.spec(&["sleep", "1000"]);
    let rt = &w.runtime;
    rt.create(&spec, Gate::open()).await.unwrap();
    let memcg = Path::new("/sys/fs/cgroup/memory").join(spec.cgroup_path.trim_start_matches('/'));
    assert!(memcg.exists());
    let t = Instant::now();
    rt.delete(&spec.id, &spec.state_dir).await.unwrap();
    eprintln!("delete of created container: {:?}", t.elapsed());
    assert!(!memcg.exists());
    assert!(!spec.state_dir.exists());
}

#[tokio::test]
async fn tty_stdin_and_resize() {
    if !is_root() {
        return eprintln!("skipped: needs root");
    }
    let mut w = World::new();
    let mut spec = w.spec(&["sh", "-c", "stty size; read line; echo got=$line"]);
    spec.tty = true;
    spec.open_stdin = true;
    let rt = &w.runtime;
    rt.create(&spec, Gate::open()).await.unwrap();
    rt.resize(&spec.id, &spec.state_dir, 30, 100).await.unwrap();
    let att = rt.attach(&spec.id, &spec.state_dir, AttachOpts { stdin: true, stdout: true, stderr: true }).await.unwrap();
    rt.start(&spec.id, &spec.state_dir).await.unwrap();
    let (mut r, mut wr) = att.into_split();
    wr.write_all(b"hi\n").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), r.read_to_end(&mut out)).await.unwrap().unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("30 100\r\n"), "{out:?}");
    assert!(out.contains("got=hi\r\n"), "{out:?}");
    assert_eq!(wait(rt, &spec).await.code, 0);
}

#[tokio::test]
async fn same_container_runs_again() {
    if !is_root() {
        return eprintln!("skipped: needs root");
    }
    let mut w = World::new();
    let spec = w.spec(&["sh", "-c", "echo run"]);
    let rt = &w.runtime;
    for round in 0..2 {
        // No delete in between: the lingering shim of round 0 must make way.
        rt.create(&spec, Gate::open()).await.unwrap_or_else(|e| panic!("round {round}: {e}"));
        rt.start(&spec.id, &spec.state_dir).await.unwrap();
        assert_eq!(wait(rt, &spec).await.code, 0);
    }
    let log = std::fs::read_to_string(&spec.log_path).unwrap();
    assert_eq!(log.lines().count(), 2, "{log}");
}

/// A named network namespace (`ip netns`), deleted on drop (with the veth pair inside it).
struct NetnsGuard(String);

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[tokio::test]
async fn joins_a_prepared_network_namespace() {
    if !is_root() {
        return eprintln!("skipped: needs root");
    }
    let name = format!("flt-rt-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst));
    let ip = |args: &[&str]| assert!(std::process::Command::new("ip").args(args).status().unwrap().success(), "ip {args:?}");
    ip(&["netns", "add", &name]);
    let _guard = NetnsGuard(name.clone());
    // No dummy driver on this kernel: a veth pair kept inside the namespace.
    ip(&["-n", &name, "link", "add", "fltv0", "type", "veth", "peer", "name", "fltv1"]);
    let mut w = World::new();
    let mut spec = w.spec(&["ls", "/sys/class/net"]);
    spec.netns = NetNs::Path(PathBuf::from("/run/netns").join(&name));
    let rt = &w.runtime;
    rt.create(&spec, Gate::open()).await.unwrap();
    let mut att = rt.attach(&spec.id, &spec.state_dir, ALL).await.unwrap();
    rt.start(&spec.id, &spec.state_dir).await.unwrap();
    assert_eq!(demux(&read_all(&mut att).await), vec![(1, b"fltv0\nfltv1\nlo\n".to_vec())]);
    assert_eq!(wait(rt, &spec).await.code, 0);
}

#[tokio::test]
async fn oom_kill_is_reported() {
    if !is_root() {
        return eprintln!("skipped: needs root");
    }
    let mut w = World::new();
    let spec = w.spec(&["sh", "-c", "head -c 200000000 /dev/zero | tail"]);
    let rt = &w.runtime;
    rt.create(&spec, Gate::open()).await.unwrap();
    // The cgroup exists once created: limit it before the process runs.
    let memcg = Path::new("/sys/fs/cgroup/memory").join(spec.cgroup_path.trim_start_matches('/'));
    std::fs::write(memcg.join("memory.limit_in_bytes"), "16777216").unwrap();
    rt.start(&spec.id, &spec.state_dir).await.unwrap();
    let exit = wait(rt, &spec).await;
    assert_eq!(exit.code, 137);
    assert!(exit.oom_killed);
}

/// `cargo test -p engine --test runtime_shim bench -- --ignored --nocapture`: the runtime's
/// share of `docker run --rm busybox true` (create, attach, start, wait, delete).
#[tokio::test]
#[ignore]
async fn bench_run_true() {
    let mut w = World::new();
    let mut times = vec![];
    for _ in 0..20 {
        let spec = w.spec(&["true"]);
        let rt = &w.runtime;
        let t = Instant::now();
        rt.create(&spec, Gate::open()).await.unwrap();
        let mut att = rt.attach(&spec.id, &spec.state_dir, ALL).await.unwrap();
        rt.start(&spec.id, &spec.state_dir).await.unwrap();
        read_all(&mut att).await;
        assert_eq!(wait(rt, &spec).await.code, 0);
        rt.delete(&spec.id, &spec.state_dir).await.unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    eprintln!("run --rm true: min {:?} median {:?} max {:?}", times[0], times[10], times[19]);
}

#[tokio::test]
async fn stdin_only_attach_ends_with_the_process() {
    if !is_root() {
        return eprintln!("skipped: needs root");
    }
    let mut w = World::new();
    let mut spec = w.spec(&["sh", "-c", "read x; echo $x"]);
    spec.open_stdin = true;
    let rt = &w.runtime;
    rt.create(&spec, Gate::open()).await.unwrap();
    let mut input = rt.attach(&spec.id, &spec.state_dir, AttachOpts { stdin: true, stdout: false, stderr: false }).await.unwrap();
    let mut output = rt.attach(&spec.id, &spec.state_dir, ALL).await.unwrap();
    rt.start(&spec.id, &spec.state_dir).await.unwrap();
    input.write_all(b"one\n").await.unwrap();
    assert_eq!(read_all(&mut output).await, b"\x01\0\0\0\0\0\0\x04one\n");
    // Without stdin_once the stdin-only client stays attached until the process is gone.
    assert!(read_all(&mut input).await.is_empty());
    assert_eq!(wait(rt, &spec).await.code, 0);
}

#[tokio::test]
async fn exec_joins_the_container_and_reports_exit() {
    if !is_root() {
        return eprintln!("skipped: needs root");
    }
    let mut w = World::new();
    let spec = w.spec(&["sleep", "100"]);
    let rt = &w.runtime;
    rt.create(&spec, Gate::open()).await.unwrap();
    rt.start(&spec.id, &spec.state_dir).await.unwrap();
    // stdin, stdout and stderr as pipes; the exit code; the container's hostname and cgroup.
    let es = ExecSpec {
        exec_id: "e1".into(),
        args: ["sh", "-c", "read x; echo got=$x $(hostname); echo err >&2; cat /proc/self/cgroup | grep memory; exit 3"]
            .map(String::from)
            .to_vec(),
        env: vec!["PATH=/bin".into()],
        cwd: "/".into(),
        stdin: true,
        ..Default::default()
    };
    let t = Instant::now();
    let mut p = rt.exec(&spec.id, &spec.state_dir, &es).await.unwrap();
    eprintln!("exec started in {:?}", t.elapsed());
    let mut stdin = p.stdin.take().unwrap();
    stdin.write_all(b"hi\n").await.unwrap();
    drop(stdin);
    let mut out = String::new();
    p.stdout.take().unwrap().read_to_string(&mut out).await.unwrap();
    let mut err = String::new();
    p.stderr.take().unwrap().read_to_string(&mut err).await.unwrap();
    assert_eq!(p.exit.await.unwrap(), 3);
    assert!(out.starts_with("got=hi box\n"), "{out}");
    assert!(out.contains(":memory:/"), "{out}");
    assert_eq!(err, "err\n");
    // A tty: the pty master carries the output and takes resizes.
    let es = ExecSpec {
        exec_id: "e2".into(),
        args: ["sh", "-c", "sleep 0.3; stty size"].map(String::from).to_vec(),
        tty: true,
        console_size: Some((10, 20)),
        ..Default::default()
    };
    let mut p = rt.exec(&spec.id, &spec.state_dir, &es).await.unwrap();
    let mut out = Vec::new();
    p.stdout.take().unwrap().read_to_end(&mut out).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out), "10 20\r\n");
    assert_eq!(p.exit.await.unwrap(), 0);
    // A command that cannot run.
    let es = ExecSpec { exec_id: "e3".into(), args: vec!["nope".into()], ..Default::default() };
    match rt.exec(&spec.id, &spec.state_dir, &es).await {
        Err(RuntimeError::Exec { code, message }) => {
            assert_eq!(code, 127);
            assert!(message.contains("executable file not found"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    rt.delete(&spec.id, &spec.state_dir).await.unwrap();
}

/// `shim --pooled <exec_root>` as the engine starts a spare, with piped stdio.
fn spawn_pooled(exec_root: &Path) -> std::process::Child {
    std::process::Command::new(shim_binary())
        .args(["--pooled", &exec_root.display().to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// A spare `shim --pooled` (spawner and its daemon, forked at once) that is never handed a
/// container: its stdin closing (the engine dropped it, or went away) ends both, quietly.
#[test]
fn a_pooled_shim_never_handed_a_container_leaves_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_pooled(dir.path());
    std::thread::sleep(Duration::from_millis(100));
    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the spare did not leave when its stdin closed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
}

/// A state dir without the shim's config: nothing is reported on stdout (the engine then reads
/// the exit status and stderr), and the daemon's error reaches the spawner's stderr.
#[test]
fn a_pooled_shim_handed_a_state_dir_without_config_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_pooled(dir.path());
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", dir.path().display()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("shim.json not found"), "{err}");
}

/// The processes in the v1 memory cgroup of `spec`'s container.
fn cgroup_procs(spec: &RunSpec) -> Vec<i32> {
    let dir = Path::new("/sys/fs/cgroup/memory").join(spec.cgroup_path.trim_start_matches('/'));
    std::fs::read_to_string(dir.join("cgroup.procs")).map(|p| p.lines().filter_map(|l| l.parse().ok()).collect()).unwrap_or_default()
}

/// Hands `spec` to the runtime behind a gate that is not open yet, and waits for the container's
/// init to wait there: in its cgroups, still in the test's mount namespace (it enters its own
/// after the gate), and the create not done. Returns the create under way and the gate's part.
async fn create_at_the_gate(w: &World, spec: &RunSpec) -> (tokio::task::JoinHandle<Result<(), RuntimeError>>, gate::Part) {
    let (mut parts, gate) = gate::new(vec![spec.rootfs.clone()], 1);
    let part = parts.pop().unwrap();
    let (rt, owned) = (std::sync::Arc::new(ShimRuntime::new(shim_binary(), w.dir.path().join("lc"))), spec.clone());
    let create = tokio::spawn(async move { rt.create(&owned, gate).await });
    let deadline = Instant::now() + Duration::from_secs(20);
    let init = loop {
        if let Some(pid) = cgroup_procs(spec).first() {
            break *pid;
        }
        assert!(Instant::now() < deadline, "no init joined the container's cgroups");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!create.is_finished(), "the create ended before the gate opened");
    let own = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    assert_eq!(std::fs::read_link(format!("/proc/{init}/ns/mnt")).unwrap(), own, "the init made its mount namespace before the gate");
    (create, part)
}

#[tokio::test]
async fn the_init_waits_at_the_gate_until_it_opens() {
    if !is_root() {
        return eprintln!("skipped: needs root");
    }
    let mut w = World::new();
    let spec = w.spec(&["sh", "-c", "echo gated; id -u"]);
    let (create, part) = create_at_the_gate(&w, &spec).await;
    part.done(true);
    tokio::time::timeout(Duration::from_secs(20), create).await.expect("the create did not end").unwrap().unwrap();
    let rt = &w.runtime;
    let mut attach = rt.attach(&spec.id, &spec.state_dir, ALL).await.unwrap();
    rt.start(&spec.id, &spec.state_dir).await.unwrap();
    let out = demux(&read_all(&mut attach).await);
    assert_eq!(out, vec![(1, b"gated\n0\n".to_vec())]);
    assert_eq!(wait(rt, &spec).await.code, 0);
}

#[tokio::test]
async fn a_gate_that_shuts_fails_the_create_and_leaves_no_process() {
    if !is_root() {
        return eprintln!("skipped: needs root");
    }
    let mut w = World::new();
    let spec = w.spec(&["true"]);
    let (create, part) = create_at_the_gate(&w, &spec).await;
    // The engine's mount or network failed: the part ends without a word.
    drop(part);
    let e = tokio::time::timeout(Duration::from_secs(20), create).await.expect("the create did not end").unwrap().unwrap_err();
    assert!(e.to_string().contains(engine::shim::protocol::GATE_SHUT), "{e}");
    assert!(cgroup_procs(&spec).is_empty(), "the init is still there: {:?}", cgroup_procs(&spec));
    w.runtime.delete(&spec.id, &spec.state_dir).await.unwrap();
    assert!(cgroup_dirs(&spec.cgroup_path).iter().all(|d| !d.exists()), "cgroups left");
}
