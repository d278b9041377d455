//! exec and interactive containers with the docker CLI: exit codes, streams, -e/-w/-u,
//! --privileged, -d, stdin, namespaces and cgroups of exec'd processes; `run -it`/`exec -it`
//! with a real pty (resize, detach keys, attach to a running container, tty logs).
mod common;
use common::*;
use std::time::Duration;

/// A running `sleep` container named uniquely; returns its name.
fn sleeper(e: &Engine, what: &str) -> String {
    let name = e.unique(what);
    e.docker_ok(&["run", "-d", "--name", &name, "busybox", "sleep", "1000"]);
    name
}

#[test]
fn exec_exit_codes_streams_and_errors() {
    require_root!();
    let e = engine_with_busybox();
    let c = sleeper(&e, "ex");
    let o = e.docker(&["exec", &c, "sh", "-c", "exit 7"]);
    assert_eq!(o.code(), 7, "{o}");
    let o = e.docker(&["exec", &c, "sh", "-c", "echo out; echo err >&2; echo out2"]);
    assert_eq!((o.code(), o.stdout.as_str(), o.stderr.as_str()), (0, "out\nout2\n", "err\n"), "{o}");
    // A command that does not exist: 127 and runc's words, as with dockerd.
    let o = e.docker(&["exec", &c, "no-such-cmd"]);
    assert_eq!(o.code(), 127, "{o}");
    assert!(o.combined().contains("executable file not found in $PATH"), "{o}");
    // Exec into a stopped container is refused.
    let stopped = e.unique("exs");
    e.docker_ok(&["create", "--name", &stopped, "busybox", "true"]);
    let o = e.docker(&["exec", &stopped, "true"]);
    assert!(!o.success() && o.stderr.contains("is not running"), "{o}");
}

#[test]
fn exec_options_env_workdir_user_privileged() {
    require_root!();
    let e = engine_with_busybox();
    let c = sleeper(&e, "eo");
    let out =
        e.docker_ok(&["exec", "-e", "FOO=bar", "-w", "/tmp", "-u", "nobody", &c, "sh", "-c", "echo $FOO; pwd; id -u; echo $HOSTNAME"]);
    let short = inspect(&e, &c, "{{.Id}}")[..12].to_string();
    assert_eq!(lines(&out), ["bar", "/tmp", "65534", short.as_str()]);
    // Default capabilities, and every capability with --privileged.
    let caps = |extra: &[&str]| -> u64 {
        let mut args = vec!["exec"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&c, "sh", "-c", "grep CapEff /proc/self/status"]);
        let out = e.docker_ok(&args);
        u64::from_str_radix(out.split_whitespace().last().unwrap(), 16).unwrap()
    };
    let plain = caps(&[]);
    let sys_admin = 1u64 << 21;
    assert_eq!(plain & sys_admin, 0, "CapEff {plain:x}");
    let privileged = caps(&["--privileged"]);
    assert_ne!(privileged & sys_admin, 0, "CapEff {privileged:x}");
}

#[test]
fn exec_joins_namespaces_and_cgroup() {
    require_root!();
    let e = engine_with_busybox();
    let c = sleeper(&e, "ens");
    // Same pid namespace: the container's init is pid 1 and visible.
    let ps = e.docker_ok(&["exec", &c, "ps", "-o", "pid,args"]);
    assert!(ps.lines().any(|l| l.trim() == "1 sleep 1000"), "{ps}");
    let host = e.docker_ok(&["exec", &c, "hostname"]);
    assert_eq!(host.trim(), &inspect(&e, &c, "{{.Id}}")[..12]);
    // The exec'd process sits in the container's cgroup.
    let id = inspect(&e, &c, "{{.Id}}");
    e.docker_ok(&["exec", "-d", &c, "sleep", "321"]);
    let procs = format!("/sys/fs/cgroup/pids{}/{id}/cgroup.procs", e.cgroup_parent());
    assert!(
        wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(&procs)
                .unwrap_or_default()
                .lines()
                .any(|p| std::fs::read_to_string(format!("/proc/{}/cmdline", p.trim())).unwrap_or_default().starts_with("sleep\x00321"))
        }),
        "no sleep 321 in {procs}"
    );
    // The container's shim started it (no helper process): its parent is the init's parent.
    let ppid = |pid: &str| -> String {
        let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        st.lines().find_map(|l| l.strip_prefix("PPid:")).unwrap_or_default().trim().to_string()
    };
    let sleeper = std::fs::read_to_string(&procs)
        .unwrap()
        .lines()
        .map(|p| p.trim().to_string())
        .find(|p| std::fs::read_to_string(format!("/proc/{p}/cmdline")).unwrap_or_default().starts_with("sleep\x00321"))
        .expect("sleep 321 running");
    let init = inspect(&e, &c, "{{.State.Pid}}");
    assert_eq!(ppid(&sleeper), ppid(&init));
    let shim = std::fs::read_to_string(format!("/proc/{}/cmdline", ppid(&init))).unwrap();
    assert!(shim.contains("\0shim\0"), "{shim:?}");
    // The shim itself stays in the host's pid namespace, for its children too.
    let ns = |what: &str| std::fs::read_link(format!("/proc/{}/ns/{what}", ppid(&init))).unwrap();
    assert_eq!(ns("pid_for_children"), ns("pid"));
    assert_eq!(ns("pid"), std::fs::read_link("/proc/self/ns/pid").unwrap());
}

/// The exec'd process is the container's own kind: every cgroup and namespace of the init,
/// Docker's default capabilities (none left for another user), the init's limits, only its
/// stdio open, and runc's words when its working directory is missing.
#[test]
fn exec_process_is_set_up_like_the_containers_own() {
    require_root!();
    let e = engine_with_busybox();
    // The engine (and so each shim) gets an OOM score of its own; the container's processes
    // keep the spec's 0, exec'd ones included.
    std::fs::write(format!("/proc/{}/oom_score_adj", e.pid().unwrap()), "100").unwrap();
    let c = sleeper(&e, "eset");
    let init = inspect(&e, &c, "{{.State.Pid}}");
    e.docker_ok(&["exec", "-d", &c, "sleep", "654"]);
    let mut pid = String::new();
    assert!(wait_until(Duration::from_secs(10), || {
        pid = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|d| d.ok()?.file_name().into_string().ok())
            .find(|p| std::fs::read_to_string(format!("/proc/{p}/cmdline")).unwrap_or_default() == "sleep\x00654\x00")
            .unwrap_or_default();
        !pid.is_empty()
    }));
    let read = |what: &str, p: &str| std::fs::read_to_string(format!("/proc/{p}/{what}")).unwrap();
    assert_eq!(read("cgroup", &pid), read("cgroup", &init));
    for ns in ["pid", "mnt", "net", "ipc", "uts", "cgroup"] {
        let link = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/{ns}")).unwrap();
        assert_eq!(link(&pid), link(&init), "{ns} namespace");
    }
    // dockerd's default capability set, bounding set included.
    let status = e.docker_ok(&["exec", &c, "cat", "/proc/self/status"]);
    let field = |s: &str, f: &str| s.lines().find_map(|l| l.strip_prefix(f)).unwrap_or_default().trim().to_string();
    assert_eq!(field(&status, "CapEff:"), "00000000a80425fb", "{status}");
    assert_eq!(field(&status, "CapBnd:"), "00000000a80425fb", "{status}");
    let status = e.docker_ok(&["exec", "-u", "nobody", &c, "cat", "/proc/self/status"]);
    assert_eq!(field(&status, "CapEff:"), "0000000000000000", "{status}");
    assert_eq!(field(&status, "Uid:").split_whitespace().collect::<Vec<_>>(), ["65534"; 4]);
    // Same open-files limit as the init; only stdio open.
    let nofile = |p: &str| read("limits", p).lines().find(|l| l.starts_with("Max open files")).unwrap().to_string();
    assert_eq!(nofile(&pid), nofile(&init));
    let fds = e.docker_ok(&["exec", &c, "ls", "/proc/self/fd"]);
    assert_eq!(sorted_lines(&fds), ["0", "1", "2", "3"], "{fds}");
    assert_eq!(e.docker_ok(&["exec", &c, "cat", "/proc/self/oom_score_adj"]).trim(), "0");
    // Another user may reopen its own stdio (runc's fixStdioPermissions).
    let o = e.docker(&["exec", "-u", "nobody", &c, "sh", "-c", "echo out >/dev/stdout; echo err >/dev/stderr"]);
    assert_eq!((o.code(), o.stdout.as_str(), o.stderr.as_str()), (0, "out\n", "err\n"), "{o}");
    // The shim's own binary (the host's file, /proc/self/exe before the exec) is not run.
    let o = e.docker(&["exec", &c, "/proc/self/exe", "version"]);
    assert_eq!(o.code(), 126, "{o}");
    assert!(o.combined().contains("permission denied"), "{o}");
    // A missing working directory: 126 and runc's words.
    let o = e.docker(&["exec", "-w", "/nope", &c, "true"]);
    assert_eq!(o.code(), 126, "{o}");
    assert!(o.combined().contains("chdir to cwd (\"/nope\") set in config.json failed: no such file or directory"), "{o}");
    // A command given by a path that is not there: 127.
    let o = e.docker(&["exec", &c, "/bin/nope"]);
    assert_eq!(o.code(), 127, "{o}");
    assert!(o.combined().contains("stat /bin/nope: no such file or directory"), "{o}");
    // Inspect lists only execs that have not exited (the detached sleep), as dockerd does.
    assert_eq!(inspect(&e, &c, "{{len .ExecIDs}}"), "1");
}

/// The shim runs every exec of its container: many at once each get their own output and exit
/// code, and a long-running one does not hold up the others.
#[test]
fn parallel_execs_keep_their_own_output_and_code() {
    require_root!();
    let e = engine_with_busybox();
    let c = sleeper(&e, "epar");
    e.docker_ok(&["exec", "-d", &c, "sleep", "30"]);
    let outs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let (e, c) = (&e, &c);
                s.spawn(move || e.docker(&["exec", c, "sh", "-c", &format!("echo out-{i}; echo err-{i} >&2; exit {}", i % 5)]))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, o) in outs.iter().enumerate() {
        assert_eq!(
            (o.code(), o.stdout.as_str(), o.stderr.as_str()),
            ((i % 5) as i32, format!("out-{i}\n").as_str(), format!("err-{i}\n").as_str()),
            "{o}"
        );
    }
}

#[test]
fn exec_detached_stdin_and_inspect() {
    require_root!();
    let e = engine_with_busybox();
    let c = sleeper(&e, "ed");
    // -d returns at once; the process keeps running in the container.
    let o = e.docker(&["exec", "-d", &c, "sh", "-c", "sleep 0.3; echo late > /tmp/marker"]);
    assert!(o.success() && o.stdout.is_empty(), "{o}");
    assert!(wait_until(Duration::from_secs(10), || e.docker(&["exec", &c, "cat", "/tmp/marker"]).stdout == "late\n"));
    // stdin is streamed and the client's half-close is the process's EOF.
    let o = e.docker_full(&["exec", "-i", &c, "sh", "-c", "cat; echo done"], Some(b"a\nb\n"), Duration::from_secs(60));
    assert_eq!((o.code(), o.stdout.as_str()), (0, "a\nb\ndone\n"), "{o}");
    // The exec instance through the API: ExitCode, Running, ProcessConfig.
    let body = br#"{"AttachStdout":true,"Cmd":["sh","-c","exit 4"],"User":"nobody"}"#;
    let r = e.api("POST", &format!("/v1.41/containers/{c}/exec"), Some(("application/json", body))).unwrap();
    assert_eq!(r.status, 201);
    let id = serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["Id"].as_str().unwrap().to_string();
    let r = e.api("POST", &format!("/v1.41/exec/{id}/start"), Some(("application/json", br#"{"Detach":true}"#))).unwrap();
    assert_eq!(r.status, 200);
    let mut info = serde_json::Value::Null;
    assert!(wait_until(Duration::from_secs(10), || {
        info = serde_json::from_slice(&e.api("GET", &format!("/v1.41/exec/{id}/json"), None).unwrap().body).unwrap();
        info["Running"] == false && info["ExitCode"] == 4
    }));
    assert_eq!(info["ProcessConfig"]["entrypoint"], "sh");
    assert_eq!(info["ProcessConfig"]["user"], "nobody");
    assert_eq!(info["ContainerID"], inspect(&e, &c, "{{.Id}}"));
    let r = e.api("POST", &format!("/v1.41/exec/{id}/start"), Some(("application/json", br#"{"Detach":true}"#))).unwrap();
    assert_eq!(r.status, 409);
    assert_eq!(e.api("GET", "/v1.41/exec/nope/json", None).unwrap().status, 404);
}

#[test]
fn run_it_and_exec_it_with_a_pty() {
    require_root!();
    let e = engine_with_busybox();
    let name = e.unique("tty");
    // run -it: a real terminal of the client's size, TERM=xterm, typed input, exit code.
    let (out, code) =
        pty::run(&e, &["run", "-it", "--name", &name, "busybox", "sh"], &[("# ", b"tty; stty size; echo $TERM\r"), ("xterm", b"exit 4\r")]);
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("33 97"), "{out}");
    // The log of a tty container is the terminal's output, CRLF included.
    let logs = e.docker_ok(&["logs", &name]);
    assert!(logs.contains("33 97\r\n"), "{logs:?}");
    // exec -it into a running container.
    let c = sleeper(&e, "etty");
    let (out, code) = pty::run(&e, &["exec", "-it", &c, "sh", "-c", "tty; stty size; exit 3"], &[]);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("/dev/pts/") && out.contains("33 97"), "{out}");
}

#[test]
fn detach_keys_and_attach_to_a_running_container() {
    require_root!();
    let e = engine_with_busybox();
    let name = e.unique("det");
    // ctrl-p ctrl-q leaves the container running.
    let (out, code) = pty::run(&e, &["run", "-it", "--name", &name, "busybox", "sh"], &[("# ", b"echo one\r"), ("one", b"\x10\x11")]);
    assert_eq!(code, Some(0), "{out}");
    assert!(wait_status(&e, &name, "running"));
    // docker attach, type, exit: the container's exit code.
    let (out, code) = pty::run(&e, &["attach", &name], &[("", b"echo two\r"), ("two", b"exit 6\r")]);
    assert_eq!(code, Some(6), "{out}");
    assert!(wait_status(&e, &name, "exited"));
    assert_eq!(inspect(&e, &name, "{{.State.ExitCode}}"), "6");
    // Custom detach keys.
    let n2 = e.unique("det2");
    let (out, code) = pty::run(&e, &["run", "-it", "--detach-keys", "ctrl-a,x", "--name", &n2, "busybox", "sh"], &[("# ", b"\x01x")]);
    assert_eq!(code, Some(0), "{out}");
    assert!(wait_status(&e, &n2, "running"));
}

#[test]
fn container_resize_and_stdin_once() {
    require_root!();
    let e = engine_with_busybox();
    // The API resize of a tty container shows inside.
    let name = e.unique("rsz");
    e.docker_ok(&["run", "-dit", "--name", &name, "busybox", "sh"]);
    let r = e.api("POST", &format!("/v1.41/containers/{name}/resize?h=21&w=77"), None).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(e.docker_ok(&["exec", &name, "sh", "-c", "stty size < /proc/1/fd/0"]).trim(), "21 77");
    // StdinOnce: after the first attach's stdin ends, the process gets EOF and exits.
    let once = e.unique("once");
    let body = br#"{"Image":"busybox","Cmd":["sh","-c","cat; echo eof"],"OpenStdin":true,"StdinOnce":true,"AttachStdin":true,"AttachStdout":true,"AttachStderr":true}"#;
    let r = e.api("POST", &format!("/v1.41/containers/create?name={once}"), Some(("application/json", body))).unwrap();
    assert_eq!(r.status, 201);
    let o = e.docker_full(&["start", "-ai", &once], Some(b"in\n"), Duration::from_secs(60));
    assert_eq!((o.code(), o.stdout.as_str()), (0, "in\neof\n"), "{o}");
}

/// Runs the docker CLI on a pseudo-terminal of 33x97, typing each step's input once its
/// `wait_for` text has appeared (empty = at once); returns the output and exit code.
mod pty {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    pub fn run(e: &Engine, args: &[&str], steps: &[(&str, &[u8])]) -> (String, Option<i32>) {
        let (mut master, mut slave) = (0, 0);
        let ws = libc::winsize { ws_row: 33, ws_col: 97, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: openpty writes two fds; the name and termios pointers may be null.
        let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &ws) };
        assert_eq!(rc, 0, "openpty");
        // SAFETY: openpty just returned these fds; each is owned once.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let mut cmd = Command::new(testground::engine::docker_cli());
        cmd.args(args);
        for v in ["DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION"] {
            cmd.env_remove(v);
        }
        for (k, v) in e.docker_env() {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::from(slave.try_clone().unwrap())).stdout(Stdio::from(slave.try_clone().unwrap())).stderr(Stdio::from(slave));
        // SAFETY: setsid and ioctl are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY as _, 0);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawning docker");
        drop(cmd);
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut reader = std::fs::File::from(master.try_clone().unwrap());
        let sink = out.clone();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let mut writer = std::fs::File::from(master);
        let text = |out: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
        let mut seen = 0;
        for (wait_for, input) in steps {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !wait_for.is_empty() && !text(&out)[seen..].contains(wait_for) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            seen = text(&out).len();
            std::thread::sleep(Duration::from_millis(200));
            writer.write_all(input).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let code = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        drop(writer);
        let _ = t.join();
        (text(&out), code)
    }
}

/// docker-py (PyPI `docker`) as a client: run, logs, exec_run (plain, demux, tty), top, stats,
/// pause, update, rename.
#[test]
fn docker_py_client() {
    require_root!();
    let e = engine_with_busybox();
    let name = e.unique("py");
    let script = format!(
        r#"
import docker
c = docker.from_env()
print("run", c.containers.run("busybox", ["sh", "-c", "echo hello-py"], remove=True))
ct = c.containers.run("busybox", ["sh", "-c", "echo started; sleep 100"], detach=True, name="{name}")
r = ct.exec_run(["sh", "-c", "echo out; echo err >&2; exit 3"])
print("exec", r.exit_code, sorted(r.output.split()))
r = ct.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
print("demux", r.exit_code, r.output)
r = ct.exec_run("env", environment={{"A": "b"}}, workdir="/tmp", user="nobody")
print("env", b"A=b" in r.output)
print("tty", ct.exec_run("tty", tty=True).output)
import time
time.sleep(0.3)
print("logs", ct.logs())
print("top", ct.top()["Titles"][1])
print("stats", ct.stats(stream=False)["memory_stats"]["usage"] > 0)
ct.pause(); ct.reload(); print("status", ct.status); ct.unpause()
ct.update(mem_limit="64m", memswap_limit="128m"); ct.reload(); print("mem", ct.attrs["HostConfig"]["Memory"])
ct.remove(force=True)
"#
    );
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", &script]);
    for (k, v) in e.docker_env() {
        cmd.env(k, v);
    }
    let o = testground::cmd::run(&mut cmd, None, Duration::from_secs(120));
    e.expect_ok(&o);
    assert_eq!(
        lines(&o.stdout),
        [
            "run b'hello-py\\n'",
            // Two pipes: stdout and stderr may interleave either way (as with dockerd).
            "exec 3 [b'err', b'out']",
            "demux 0 (b'out\\n', b'err\\n')",
            "env True",
            "tty b'/dev/pts/0\\r\\n'",
            "logs b'started\\n'",
            "top PID",
            "stats True",
            "status paused",
            "mem 67108864",
        ],
        "{o}"
    );
}

/// Hand-rolled hijacked attach on the engine socket: sends each input 300 ms apart, returns
/// what came back (after the 101 headers) until the engine closes the stream or `within` passes.
fn raw_attach(e: &Engine, target: &str, query: &str, inputs: &[&[u8]], within: Duration) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(e.socket()).unwrap();
    write!(s, "POST /v1.41/containers/{target}/attach?{query} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "connection closed in headers: {head:?}");
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    // Each input but the last is echoed (one frame) before the next is sent: a detach key must
    // not overtake what came before it, however slow the host.
    let mut out = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        s.write_all(input).unwrap();
        if i + 1 < inputs.len() {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut head = [0u8; 8];
            s.read_exact(&mut head).expect("a frame before the next input");
            let mut body = vec![0u8; u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize];
            s.read_exact(&mut body).expect("the frame's payload");
            out.extend_from_slice(&head);
            out.extend_from_slice(&body);
        }
    }
    s.set_read_timeout(Some(within)).unwrap();
    let _ = s.read_to_end(&mut out);
    out
}

#[test]
fn server_side_detach_keeps_stdin_open() {
    require_root!();
    let e = engine_with_busybox();
    let n = e.unique("sdet");
    let body = br#"{"Image":"busybox","Cmd":["cat"],"OpenStdin":true,"StdinOnce":true}"#;
    let r = e.api("POST", &format!("/v1.41/containers/create?name={n}"), Some(("application/json", body))).unwrap();
    assert_eq!(r.status, 201);
    e.docker_ok(&["start", &n]);
    // The detach keys end this attach (the engine closes it) but not the container's stdin.
    let out = raw_attach(&e, &n, "stream=1&stdin=1&stdout=1&detachKeys=ctrl-x", &[b"one\n", b"\x18"], Duration::from_secs(10));
    assert_eq!(out, b"\x01\0\0\0\0\0\0\x04one\n", "{out:?}");
    assert_eq!(inspect(&e, &n, "{{.State.Status}}"), "running");
    let out = raw_attach(&e, &n, "stream=1&stdin=1&stdout=1", &[b"two\n"], Duration::from_secs(3));
    assert_eq!(out, b"\x01\0\0\0\0\0\0\x04two\n", "{out:?}");
}
