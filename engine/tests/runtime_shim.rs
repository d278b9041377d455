//! The real runtime against the real kernel: shims run busybox containers from a rootfs dir.
//! Needs root and the shim example binary (built by `cargo test -p engine`, or explicitly with
//! `cargo test -p engine --example shim --test runtime_shim`).
mod shim_world;
use shim_world::*;

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
