//! Containers: run (attached, --rm, -d, -i), exit codes, logs, ps filters, inspect, stop,
//! kill, wait, rm, names, persistence across an engine restart.
mod common;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn run_rm_echo_prints_hello_and_leaves_nothing() {
    require_root!();
    let e = engine_with_busybox();
    let o = e.docker(&["run", "--rm", "busybox", "echo", "hello"]);
    e.expect_ok(&o);
    assert_eq!(o.stdout, "hello\n");
    assert_eq!(o.stderr, "");
    assert_eq!(e.docker_ok(&["ps", "-aq"]).trim(), "");
    // Also when the command fails.
    let o = e.docker(&["run", "--rm", "busybox", "sh", "-c", "echo bye >&2; exit 2"]);
    assert_eq!((o.code(), o.stderr.as_str()), (2, "bye\n"), "{o}");
    assert_eq!(e.docker_ok(&["ps", "-aq"]).trim(), "");
}

#[test]
fn exit_codes_and_streams_propagate() {
    require_root!();
    let e = engine_with_busybox();
    let o = e.docker(&["run", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(o.code(), 3, "{o}");
    let o = e.docker(&["run", "--rm", "busybox", "false"]);
    assert_eq!(o.code(), 1, "{o}");
    let o = e.docker(&["run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; echo out2"]);
    assert_eq!((o.stdout.as_str(), o.stderr.as_str(), o.code()), ("out\nout2\n", "err\n", 0), "{o}");
    // A command that does not exist: 127 like Docker.
    let o = e.docker(&["run", "--rm", "busybox", "/no/such/binary"]);
    assert!(o.code() == 127 || o.code() == 126, "{o}");
    // The container's own exit code, as dockerd records it: 127 not found, 126 not executable.
    for (cmd, code) in [("/no/such/binary", "127"), ("no-such-command", "127"), ("/etc", "126")] {
        let name = e.unique("cannot-run");
        e.docker_ok(&["create", "--name", &name, "busybox", cmd]);
        let o = e.docker(&["start", &name]);
        assert_ne!(o.code(), 0, "{o}");
        assert_eq!(e.docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", &name]).trim(), code, "{cmd}");
        e.docker_ok(&["rm", &name]);
    }
    // Output from the very first byte arrives (attach happens before start).
    let o = e.docker(&["run", "--rm", "busybox", "sh", "-c", "printf first; sleep 0.2; printf ' last'"]);
    assert_eq!(o.stdout, "first last", "{o}");
    // The exited container of the first run is still there with its exit code.
    let exited = e.docker_ok(&["ps", "-a", "--filter", "exited=3", "--format", "{{.Status}}"]);
    assert!(exited.trim().starts_with("Exited (3)"), "{exited}");
}

#[test]
fn stdin_is_forwarded_and_closed() {
    require_root!();
    let e = engine_with_busybox();
    let o =
        e.docker_full(&["run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo done"], Some(b"line1\nline2\n"), Duration::from_secs(60));
    e.expect_ok(&o);
    assert_eq!(o.stdout, "line1\nline2\ndone\n");
}

#[test]
fn inside_the_container() {
    require_root!();
    let e = engine_with_busybox();
    // pid namespace, env/workdir/user/hostname from the command line, image PATH merged in.
    let script =
        r#"echo $$; echo $FOO; pwd; id -u; hostname; echo $PATH; test -e /dev/null && echo devnull; test -d /proc/self && echo proc"#;
    let out =
        e.docker_ok(&["run", "--rm", "-e", "FOO=bar", "-w", "/tmp", "-u", "nobody", "--hostname", "hn1", "busybox", "sh", "-c", script]);
    assert_eq!(
        lines(&out),
        ["1", "bar", "/tmp", "65534", "hn1", testground::image::DEFAULT_PATH.trim_start_matches("PATH="), "devnull", "proc"]
    );
    // Default hostname is the short ID; /etc/hosts and /etc/resolv.conf exist.
    let out =
        e.docker_ok(&["run", "--rm", "busybox", "sh", "-c", "hostname; test -f /etc/hosts && test -f /etc/resolv.conf && echo files"]);
    let l = lines(&out);
    assert!(l[0].len() == 12 && l[0].bytes().all(|b| b.is_ascii_hexdigit()), "{out}");
    assert_eq!(l[1], "files");
    // The rootfs is private: a write does not show up in the next container.
    e.docker_ok(&["run", "--rm", "busybox", "sh", "-c", "echo x > /etc/marker"]);
    let o = e.docker(&["run", "--rm", "busybox", "cat", "/etc/marker"]);
    assert!(!o.success(), "{o}");
}

#[test]
fn detached_container_lifecycle() {
    require_root!();
    let e = engine_with_busybox();
    let id = e.docker_ok(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"]).trim().to_string();
    assert!(is_hex64(&id), "{id}");
    let ps = e.docker_ok(&["ps", "--format", "{{.ID}} {{.Names}} {{.Image}} {{.Status}}"]);
    let l = lines(&ps);
    assert_eq!(l.len(), 1, "{ps}");
    assert!(l[0].starts_with(&format!("{} web busybox Up", &id[..12])), "{ps}");
    assert_eq!(inspect(&e, "web", "{{.State.Status}} {{.State.Running}} {{.Name}} {{.Id}}"), format!("running true /web {id}"));
    // The process runs on the host under the container's cgroup.
    let pid: u32 = inspect(&e, "web", "{{.State.Pid}}").parse().unwrap();
    assert!(pid > 0);
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let want = format!("{}/{id}", e.cgroup_parent());
    assert!(cg.lines().any(|l| l.contains(":memory:") && l.ends_with(&want)), "want {want} in:\n{cg}");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmdline, b"sleep\x001000\x00");

    // stop: sleep as PID 1 ignores SIGTERM, so it is killed after the timeout.
    let t = Instant::now();
    assert_eq!(e.docker_ok(&["stop", "-t", "1", "web"]).trim(), "web");
    assert!(t.elapsed() < Duration::from_secs(8), "stop took {:?}", t.elapsed());
    assert_eq!(inspect(&e, "web", "{{.State.Status}} {{.State.ExitCode}}"), "exited 137");
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default().is_empty()),
        "process {pid} still there"
    );
    assert_eq!(e.docker_ok(&["ps", "-q"]).trim(), "");
    let status = e.docker_ok(&["ps", "-a", "--format", "{{.Status}}"]);
    assert!(status.trim().starts_with("Exited (137)"), "{status}");
    // It can be started again, and removed with force while running.
    e.docker_ok(&["start", "web"]);
    assert!(wait_status(&e, "web", "running"));
    assert_eq!(e.docker_ok(&["rm", "-f", "web"]).trim(), "web");
    assert_eq!(e.docker_ok(&["ps", "-aq"]).trim(), "");
}

#[test]
fn stop_uses_sigterm_first() {
    require_root!();
    let e = engine_with_busybox();
    e.docker_ok(&[
        "run",
        "-d",
        "--name",
        "polite",
        "busybox",
        "sh",
        "-c",
        "trap 'echo term; exit 0' TERM; echo ready; while true; do sleep 0.1; done",
    ]);
    assert!(wait_logs(&e, "polite", "ready"));
    let t = Instant::now();
    e.docker_ok(&["stop", "-t", "10", "polite"]);
    assert!(t.elapsed() < Duration::from_secs(5), "stop took {:?}", t.elapsed());
    assert_eq!(inspect(&e, "polite", "{{.State.ExitCode}}"), "0");
    assert_eq!(e.docker_ok(&["logs", "polite"]), "ready\nterm\n");
}

#[test]
fn logs_stdout_stderr_tail_timestamps_follow() {
    require_root!();
    let e = engine_with_busybox();
    e.docker_ok(&["run", "-d", "--name", "talker", "busybox", "sh", "-c", "echo out1; echo err1 >&2; sleep 0.1; echo out2"]);
    assert_eq!(e.docker_ok(&["wait", "talker"]).trim(), "0");
    let o = e.docker(&["logs", "talker"]);
    e.expect_ok(&o);
    assert_eq!((o.stdout.as_str(), o.stderr.as_str()), ("out1\nout2\n", "err1\n"), "{o}");
    let o = e.docker(&["logs", "--tail", "1", "talker"]);
    assert_eq!((o.stdout.as_str(), o.stderr.as_str()), ("out2\n", ""), "{o}");
    let o = e.docker(&["logs", "--tail", "0", "talker"]);
    assert_eq!(o.combined(), "", "{o}");
    let o = e.docker(&["logs", "--timestamps", "talker"]);
    for line in lines(&o.combined()) {
        let (ts, rest) = line.split_once(' ').unwrap();
        let b = ts.as_bytes();
        assert!(b.len() >= 20 && b[4] == b'-' && b[10] == b'T' && ts.ends_with('Z'), "bad timestamp in {line:?}");
        assert!(["out1", "out2", "err1"].contains(&rest), "{line:?}");
    }
    // follow ends when the container exits.
    e.docker_ok(&["run", "-d", "--name", "slow", "busybox", "sh", "-c", "echo a; sleep 1; echo b"]);
    let o = e.docker_full(&["logs", "-f", "slow"], None, Duration::from_secs(30));
    assert_eq!(o.stdout, "a\nb\n", "{o}");
}

#[test]
fn names_conflicts_and_rm_rules() {
    require_root!();
    let e = engine_with_busybox();
    let id = e.docker_ok(&["create", "--name", "dup", "busybox", "true"]).trim().to_string();
    let o = e.docker(&["create", "--name", "dup", "busybox", "true"]);
    assert_eq!(o.code(), 1, "{o}");
    assert!(o.stderr.contains(r#"Conflict. The container name "/dup" is already in use"#) && o.stderr.contains(&id), "{o}");
    let o = e.docker(&["run", "--name", "dup", "busybox", "true"]);
    assert_eq!(o.code(), 125, "{o}");
    assert!(o.stderr.contains("Conflict."), "{o}");
    let o = e.docker(&["create", "--name", "bad name!", "busybox", "true"]);
    assert!(!o.success() && o.stderr.contains("Invalid container name"), "{o}");
    // By unique ID prefix too.
    assert_eq!(inspect(&e, &id[..8], "{{.Name}}"), "/dup");

    e.docker_ok(&["run", "-d", "--name", "busy", "busybox", "sleep", "1000"]);
    let o = e.docker(&["rm", "busy"]);
    assert!(!o.success(), "{o}");
    assert!(o.stderr.contains("cannot remove a running container"), "{o}");
    assert!(wait_status(&e, "busy", "running"));
    e.docker_ok(&["rm", "-f", "busy", "dup"]);
    assert_eq!(e.docker_ok(&["ps", "-aq"]).trim(), "");
    let o = e.docker(&["rm", "busy"]);
    assert!(!o.success() && o.stderr.contains("No such container"), "{o}");
    // The name is free again.
    e.docker_ok(&["create", "--name", "dup", "busybox", "true"]);
}

#[test]
fn kill_with_signal_and_wait() {
    require_root!();
    let e = engine_with_busybox();
    e.docker_ok(&[
        "run",
        "-d",
        "--name",
        "trapper",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got USR1; exit 7' USR1; echo ready; while true; do sleep 0.1; done",
    ]);
    assert!(wait_logs(&e, "trapper", "ready"));
    assert_eq!(e.docker_ok(&["kill", "-s", "USR1", "trapper"]).trim(), "trapper");
    assert_eq!(e.docker_ok(&["wait", "trapper"]).trim(), "7");
    assert!(e.docker_ok(&["logs", "trapper"]).contains("got USR1"));

    e.docker_ok(&["run", "-d", "--name", "victim", "busybox", "sleep", "1000"]);
    e.docker_ok(&["kill", "victim"]);
    assert_eq!(e.docker_ok(&["wait", "victim"]).trim(), "137");
    let o = e.docker(&["kill", "victim"]);
    assert!(!o.success() && o.stderr.contains("is not running"), "{o}");

    let id = e.docker_ok(&["run", "-d", "busybox", "sh", "-c", "sleep 0.5; exit 5"]).trim().to_string();
    assert_eq!(e.docker_ok(&["wait", &id]).trim(), "5");
}

#[test]
fn ps_filters_and_limit() {
    require_root!();
    let e = engine_with_busybox();
    let up = e.docker_ok(&["run", "-d", "--name", "f-up", "--label", "team=a", "busybox", "sleep", "1000"]).trim().to_string();
    e.docker_ok(&["run", "--name", "f-exited", "--label", "team=b", "busybox", "true"]);
    e.docker_ok(&["create", "--name", "f-created", "busybox", "true"]);
    let names = |args: &[&str]| {
        let mut a = vec!["ps", "--format", "{{.Names}}"];
        a.extend_from_slice(args);
        sorted_lines(&e.docker_ok(&a))
    };
    assert_eq!(names(&[]), ["f-up"]);
    assert_eq!(names(&["-a"]), ["f-created", "f-exited", "f-up"]);
    assert_eq!(names(&["-a", "--filter", "status=exited"]), ["f-exited"]);
    assert_eq!(names(&["-a", "--filter", "status=created"]), ["f-created"]);
    assert_eq!(names(&["-a", "--filter", "status=running"]), ["f-up"]);
    assert_eq!(names(&["-a", "--filter", "label=team=a"]), ["f-up"]);
    assert_eq!(names(&["-a", "--filter", "label=team"]), ["f-exited", "f-up"]);
    assert_eq!(names(&["-a", "--filter", "name=f-ex"]), ["f-exited"]);
    assert_eq!(names(&["-a", "--filter", "exited=0"]), ["f-exited"]);
    assert_eq!(names(&["-a", "--filter", "ancestor=busybox"]), ["f-created", "f-exited", "f-up"]);
    assert_eq!(names(&["-a", "--filter", &format!("id={}", &up[..10])]), ["f-up"]);
    assert_eq!(names(&["-a", "--filter", "status=exited", "--filter", "status=running"]), ["f-exited", "f-up"]);
    // Newest first; -n limits; -l is the latest.
    assert_eq!(lines(&e.docker_ok(&["ps", "-a", "--format", "{{.Names}}"])), ["f-created", "f-exited", "f-up"]);
    assert_eq!(names(&["-n", "1"]), ["f-created"]);
    assert_eq!(names(&["-l"]), ["f-created"]);
    let ids = e.docker_ok(&["ps", "-aq", "--no-trunc"]);
    assert!(lines(&ids).iter().all(|i| is_hex64(i)), "{ids}");
}

#[test]
fn inspect_fields() {
    require_root!();
    let e = engine_with_busybox();
    e.docker_ok(&[
        "create",
        "--name",
        "insp",
        "-e",
        "FOO=bar",
        "--label",
        "a=b",
        "-w",
        "/tmp",
        "--hostname",
        "hn",
        "-u",
        "nobody",
        "busybox",
        "sh",
        "-c",
        "echo hi",
    ]);
    let v: serde_json::Value = serde_json::from_str(&e.docker_ok(&["inspect", "insp"])).unwrap();
    let c = &v[0];
    assert!(is_hex64(c["Id"].as_str().unwrap()), "{c}");
    assert_eq!(c["Name"], "/insp");
    assert_eq!(c["Image"].as_str(), Some(testground::busybox_image_id().as_str()));
    assert_eq!(c["Path"], "sh");
    assert_eq!(c["Args"], serde_json::json!(["-c", "echo hi"]));
    assert_eq!(c["State"]["Status"], "created");
    assert_eq!(c["State"]["Running"], false);
    let cfg = &c["Config"];
    assert_eq!(cfg["Image"], "busybox");
    assert_eq!(cfg["Cmd"], serde_json::json!(["sh", "-c", "echo hi"]));
    let env: Vec<&str> = cfg["Env"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(env.contains(&"FOO=bar") && env.contains(&testground::image::DEFAULT_PATH), "{env:?}");
    assert_eq!(cfg["Labels"], serde_json::json!({"a": "b"}));
    assert_eq!((cfg["WorkingDir"].as_str(), cfg["Hostname"].as_str(), cfg["User"].as_str()), (Some("/tmp"), Some("hn"), Some("nobody")));
    assert!(c["Created"].as_str().is_some_and(|s| s.starts_with("20")), "{c}");
    assert_eq!(c["HostConfig"]["NetworkMode"], "default");
    assert_eq!(c["Driver"], "overlay2");

    let o = e.docker(&["start", "-a", "insp"]);
    e.expect_ok(&o);
    assert_eq!(o.stdout, "hi\n");
    assert_eq!(inspect(&e, "insp", "{{.State.Status}} {{.State.ExitCode}} {{.State.Running}}"), "exited 0 false");
    assert!(!inspect(&e, "insp", "{{.State.FinishedAt}}").starts_with("0001"));
    // An exited container starts attached again (docker start -a attaches before it starts).
    let o = e.docker(&["start", "-a", "insp"]);
    assert_eq!((o.stdout.as_str(), o.code()), ("hi\n", 0), "{o}");

    // Unknown fields in the create body are ignored (newer CLIs send them).
    let body = br#"{"Image":"busybox","Cmd":["true"],"NoSuchField":{"x":1},"HostConfig":{"AlsoUnknown":true}}"#;
    let r = e.api("POST", "/v1.41/containers/create?name=unk", Some(("application/json", &body[..]))).unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(is_hex64(r.json().unwrap()["Id"].as_str().unwrap_or_default()));
    // A create for a missing image is a 404 (the CLI then pulls).
    let body = br#"{"Image":"nosuchimage:1"}"#;
    let r = e.api("POST", "/v1.41/containers/create", Some(("application/json", &body[..]))).unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
}

#[test]
fn state_survives_an_engine_restart() {
    require_root!();
    let mut e = engine_with_busybox();
    e.docker_ok(&["tag", "busybox", "kept:v1"]);
    e.docker_ok(&["create", "--name", "keep", "--label", "k=v", "busybox", "echo", "after restart"]);
    assert_eq!(e.docker(&["run", "--name", "done", "busybox", "sh", "-c", "echo once; exit 4"]).code(), 4);
    e.restart();
    assert_eq!(sorted_lines(&e.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])), ["busybox:latest", "kept:v1"]);
    assert_eq!(sorted_lines(&e.docker_ok(&["ps", "-a", "--format", "{{.Names}} {{.Labels}}"])), ["done", "keep k=v"]);
    assert_eq!(inspect(&e, "done", "{{.State.ExitCode}}"), "4");
    assert_eq!(e.docker_ok(&["logs", "done"]), "once\n");
    let o = e.docker(&["start", "-a", "keep"]);
    e.expect_ok(&o);
    assert_eq!(o.stdout, "after restart\n");
}

#[test]
fn errors_are_json_messages_with_docker_status_codes() {
    require_root!();
    let e = engine();
    let r = e.api("GET", "/v1.41/containers/nosuchthing/json", None).unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    let msg = r.json().unwrap()["message"].as_str().unwrap_or_default().to_string();
    assert!(msg.contains("No such container: nosuchthing"), "{msg}");
    let o = e.docker(&["inspect", "nosuchthing"]);
    assert_eq!(o.code(), 1, "{o}");
    assert!(o.stderr.contains("No such object: nosuchthing"), "{o}");
    let o = e.docker(&["start", "nosuchthing"]);
    assert!(!o.success() && o.stderr.contains("No such container: nosuchthing"), "{o}");
}

#[test]
fn malformed_create_body_is_a_400_with_a_message() {
    require_root!();
    let e = engine();
    for body in [&b"{bad json"[..], b"[1,2", b"\"just a string\""] {
        let r = e.api("POST", "/v1.41/containers/create", Some(("application/json", body))).unwrap();
        // dockerd 20.10 answers 500 here; the issue asks for Docker's 400 (bad parameter).
        let want = if e.is_dockerd() { 500 } else { 400 };
        assert_eq!(r.status, want, "body {:?}: {} {}", String::from_utf8_lossy(body), r.status, r.text());
        let j = r.json().unwrap();
        assert!(j["message"].as_str().is_some_and(|m| !m.is_empty()), "{j}");
    }
    // No container was created by any of them.
    assert_eq!(e.docker_ok(&["ps", "-aq"]).trim(), "");
}

#[test]
fn info_counts_follow_images_and_containers() {
    require_root!();
    let e = engine_with_busybox();
    e.docker_ok(&["create", "busybox", "true"]);
    e.docker_ok(&["run", "-d", "busybox", "sleep", "1000"]);
    let info: serde_json::Value = serde_json::from_str(&e.docker_ok(&["info", "--format", "{{json .}}"])).unwrap();
    assert_eq!(info["Images"].as_i64(), Some(1), "{info}");
    assert_eq!(info["Containers"].as_i64(), Some(2));
    assert_eq!(info["ContainersStopped"].as_i64(), Some(1));
    assert_eq!(info["ContainersRunning"].as_i64(), Some(1));
}
