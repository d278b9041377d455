//! `docker run` options, checked from inside the container: entrypoints, ulimits, /dev/shm,
//! extra groups, no_new_privs, devices and device cgroup rules, --init, log rotation and the
//! none log driver; and bad input refused with nothing left behind.
mod common;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn empty_entrypoint_runs_the_command_and_string_entrypoints_are_lists() {
    require_root!();
    let e = engine_with_busybox();
    let o = e.docker(&["run", "--rm", "--entrypoint", "", "busybox", "echo", "hi"]);
    e.expect_ok(&o);
    assert_eq!(o.stdout, "hi\n");
    // `--entrypoint ""` without a command: nothing to run.
    let o = e.docker(&["run", "--rm", "--entrypoint", "", "busybox"]);
    assert!(!o.success() && o.stderr.to_lowercase().contains("no command specified"), "{o}");
    // The API's string form: one element, not split.
    let name = e.unique("strentry");
    let body = serde_json::json!({"Image": "busybox", "Entrypoint": "echo", "Cmd": "one two"});
    let r = e.api("POST", &format!("/containers/create?name={name}"), Some(("application/json", body.to_string().as_bytes()))).unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(inspect(&e, &name, "{{json .Config.Entrypoint}} {{json .Config.Cmd}}"), r#"["echo"] ["one two"]"#);
    e.docker_ok(&["start", "-a", &name]);
    assert_eq!(e.docker_ok(&["logs", &name]), "one two\n");
    e.docker_ok(&["rm", &name]);
}

#[test]
fn limits_groups_and_no_new_privileges_inside() {
    require_root!();
    let e = engine_with_busybox();
    let script =
        "ulimit -n; ulimit -Hn; ulimit -u; df -k /dev/shm | tail -n 1 | awk '{print $2}'; id -G; grep NoNewPrivs /proc/self/status";
    let out = e.docker_ok(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=1024:2048",
        "--ulimit",
        "nproc=300:400",
        "--shm-size",
        "128m",
        "--group-add",
        "1234",
        "--group-add",
        "nogroup",
        "--security-opt",
        "no-new-privileges",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let l = lines(&out);
    assert_eq!(l[..4], ["1024", "2048", "300", "131072"], "{out}");
    let mut groups: Vec<&str> = l[4].split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, ["0", "1234", "65534"], "{out}");
    assert_eq!(l[5].split_whitespace().collect::<Vec<_>>(), ["NoNewPrivs:", "1"]);
    // Defaults: 64 MiB of shm, no no_new_privs.
    let out = e.docker_ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "df -k /dev/shm | tail -n 1 | awk '{print $2}'; grep NoNewPrivs /proc/self/status; id -G",
    ]);
    assert_eq!(lines(&out)[..3], ["65536", "NoNewPrivs:\t0", "0"], "{out}");
    // An exec in the container has the same groups and no_new_privs.
    let name = e.unique("grp");
    e.docker_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--group-add",
        "1234",
        "--security-opt",
        "no-new-privileges=true",
        "busybox",
        "sleep",
        "100",
    ]);
    let out = e.docker_ok(&["exec", &name, "sh", "-c", "id -G; grep NoNewPrivs /proc/self/status"]);
    assert_eq!(lines(&out), ["0 1234", "NoNewPrivs:\t1"], "{out}");
    e.docker_ok(&["rm", "-f", &name]);
    // An unknown group name fails the start in dockerd's words.
    let o = e.docker(&["run", "--rm", "--group-add", "nosuchgroup", "busybox", "true"]);
    assert!(!o.success() && o.stderr.contains("Unable to find group nosuchgroup"), "{o}");
}

#[test]
fn devices_with_permissions_and_cgroup_rules() {
    require_root!();
    let e = engine_with_busybox();
    // The device is there under its new name, with the host's mode; read-only by its cgroup
    // permissions (/dev/loop-control: not one of the default devices, which are always allowed).
    let script = "ls -l /dev/xloop | awk '{print $1, $5, $6}'; (exec 3</dev/xloop) && echo read; (exec 3>/dev/xloop) 2>/dev/null && echo wrote || echo nowrite";
    let out = e.docker_ok(&["run", "--rm", "--device", "/dev/loop-control:/dev/xloop:r", "busybox", "sh", "-c", script]);
    assert_eq!(lines(&out), ["crw------- 10, 237", "read", "nowrite"], "{out}");
    // Without --device, a node of it is refused by the cgroup, unless a rule allows it.
    let script = "mknod /tmp/lc c 10 237 && (exec 3<>/tmp/lc) 2>/dev/null && echo opened || echo refused";
    let out = e.docker_ok(&["run", "--rm", "busybox", "sh", "-c", script]);
    assert_eq!(lines(&out), ["refused"], "{out}");
    let out = e.docker_ok(&["run", "--rm", "--device-cgroup-rule", "c 10:237 rwm", "busybox", "sh", "-c", script]);
    assert_eq!(lines(&out), ["opened"], "{out}");
    let out = e.docker_ok(&["run", "--rm", "--device", "/dev/net/tun", "busybox", "sh", "-c", "ls /dev/net"]);
    assert_eq!(lines(&out), ["tun"], "{out}");
}

#[test]
fn init_is_pid_one_reaps_and_forwards_signals() {
    require_root!();
    let e = engine_with_busybox();
    let name = e.unique("init");
    e.docker_ok(&["run", "-d", "--init", "--name", &name, "busybox", "sleep", "1000"]);
    assert!(wait_status(&e, &name, "running"));
    let out = e.docker_ok(&["exec", &name, "sh", "-c", "cat /proc/1/comm; tr '\\0' ' ' < /proc/1/cmdline; echo; cat /proc/2/comm"]);
    assert_eq!(lines(&out), ["docker-init", "/sbin/docker-init -- sleep 1000", "sleep"], "{out}");
    // An orphan that ends is reaped by the init: no zombie stays.
    e.docker_ok(&["exec", &name, "sh", "-c", "sleep 0.2 &"]);
    std::thread::sleep(Duration::from_millis(800));
    let ps = e.docker_ok(&["exec", &name, "ps", "-o", "stat,comm"]);
    assert!(!ps.lines().any(|l| l.trim_start().starts_with('Z')), "{ps}");
    assert_eq!(inspect(&e, &name, "{{.HostConfig.Init}}"), "true");
    // SIGTERM reaches `sleep` (not PID 1 here), so stop is quick and the code is sleep's.
    let t = Instant::now();
    e.docker_ok(&["stop", "-t", "20", &name]);
    assert!(t.elapsed() < Duration::from_secs(10), "stop took {:?}", t.elapsed());
    assert_eq!(inspect(&e, &name, "{{.State.ExitCode}}"), "143");
    e.docker_ok(&["rm", &name]);
    // Attached, with the command's exit code and output.
    let o = e.docker(&["run", "--rm", "--init", "busybox", "sh", "-c", "echo out; exit 3"]);
    assert_eq!((o.code(), o.stdout.as_str()), (3, "out\n"), "{o}");
}

#[test]
fn json_file_rotates_and_logs_reads_across_files() {
    require_root!();
    let e = engine_with_busybox();
    let name = e.unique("rot");
    let script = "i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done";
    e.docker_ok(&["run", "--name", &name, "--log-opt", "max-size=1k", "--log-opt", "max-file=2", "busybox", "sh", "-c", script]);
    let id = inspect(&e, &name, "{{.Id}}");
    let dir = e.data_root().join("containers").join(&id);
    let log = dir.join(format!("{id}-json.log"));
    let sizes: Vec<u64> = [log.clone(), dir.join(format!("{id}-json.log.1"))]
        .iter()
        .map(|p| std::fs::metadata(p).unwrap_or_else(|err| panic!("{}: {err}", p.display())).len())
        .collect();
    assert!(sizes.iter().all(|s| *s <= 1024) && sizes[1] > 512, "{sizes:?}");
    assert!(!dir.join(format!("{id}-json.log.2")).exists());
    assert_eq!(inspect(&e, &name, "{{.HostConfig.LogConfig.Type}} {{index .HostConfig.LogConfig.Config \"max-size\"}}"), "json-file 1k");
    // docker logs: the rotated file, then the current one, consecutive, ending at the last line.
    let out = e.docker_ok(&["logs", &name]);
    let l = lines(&out);
    assert_eq!(l.last().map(String::as_str), Some("line 1999"));
    let first: usize = l[0].strip_prefix("line ").unwrap().parse().unwrap();
    let want: Vec<String> = (first..2000).map(|i| format!("line {i}")).collect();
    assert_eq!(l, want);
    // Two files of at most 1 KiB: about a dozen lines each.
    assert!(l.len() >= 20, "{} lines", l.len());
    assert_eq!(lines(&e.docker_ok(&["logs", "--tail", "2", &name])), ["line 1998", "line 1999"]);
    e.docker_ok(&["rm", &name]);
}

#[test]
fn log_driver_none_keeps_nothing() {
    require_root!();
    let e = engine_with_busybox();
    let name = e.unique("nolog");
    let o = e.docker(&["run", "--name", &name, "--log-driver", "none", "busybox", "echo", "hi"]);
    e.expect_ok(&o);
    assert_eq!(o.stdout, "hi\n");
    let id = inspect(&e, &name, "{{.Id}}");
    assert!(!e.data_root().join("containers").join(&id).join(format!("{id}-json.log")).exists());
    let o = e.docker(&["logs", &name]);
    assert!(!o.success() && o.stderr.contains("configured logging driver does not support reading"), "{o}");
    e.docker_ok(&["rm", &name]);
}

#[test]
fn bad_options_are_refused_and_leave_nothing() {
    require_root!();
    let e = engine_with_busybox();
    let cases: &[(&[&str], &str)] = &[
        (&["--cap-add", "BOGUS"], "unknown capability: \"CAP_BOGUS\""),
        (&["--log-driver", "bogus"], "no log driver named 'bogus'"),
        (&["--log-driver", "syslog"], "\"syslog\" is not supported"),
        (&["--log-opt", "max-file=3"], "max-file cannot be set when max-size is not set"),
        (
            &["--device", "/dev/no-such-device"],
            "error gathering device information while adding custom device \"/dev/no-such-device\": no such file or directory",
        ),
        (&["--device-cgroup-rule", "c 1:3"], "invalid device cgroup format 'c 1:3'"),
        (&["--security-opt", "apparmor=unconfined"], "AppArmor"),
        (&["--security-opt", "bogus=1"], "bogus=1"),
        (&["--ulimit", "nofile=4096:1024"], "soft limit must be less than or equal to hard limit"),
        (&["--runtime", "kata"], "unknown or invalid runtime name: kata"),
        (&["--storage-opt", "size=1G"], "--storage-opt is supported only for overlay over xfs"),
    ];
    for (opts, want) in cases {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["busybox", "true"]);
        let o = e.docker(&args);
        assert!(!o.success() && o.stderr.contains(want), "{opts:?}: want {want:?} in {o}");
    }
    // The CLI checks --ulimit's syntax itself; the API refuses what it lets through.
    let body = serde_json::json!({"Image": "busybox", "HostConfig": {"Ulimits": [{"Name": "nofiles", "Soft": 1, "Hard": 2}]}});
    let r = e.api("POST", "/containers/create", Some(("application/json", body.to_string().as_bytes()))).unwrap();
    assert_eq!((r.status, String::from_utf8_lossy(&r.body).contains("invalid ulimit type: nofiles")), (400, true));
    assert_eq!(e.docker_ok(&["ps", "-aq"]).trim(), "");
    let vols = e.docker_ok(&["volume", "ls", "-q"]);
    assert_eq!(vols.trim(), "");
}

#[test]
fn daemon_defaults_for_logs_ulimits_and_shm() {
    require_root!();
    let e = Engine::start_with(
        opts()
            .arg("--log-opt")
            .arg("max-size=1k")
            .arg("--log-opt")
            .arg("max-file=2")
            .arg("--default-ulimit")
            .arg("nofile=512:1024")
            .arg("--default-shm-size")
            .arg("32m")
            .arg("--storage-driver")
            .arg("overlay2")
            .arg("--dns")
            .arg("192.0.2.53")
            .arg("--dns-search")
            .arg("corp.example"),
    );
    e.load_busybox();
    let script = "ulimit -n; ulimit -Hn; df -k /dev/shm | tail -n 1 | awk '{print $2}'";
    assert_eq!(lines(&e.docker_ok(&["run", "--rm", "busybox", "sh", "-c", script])), ["512", "1024", "32768"]);
    let out = e.docker_ok(&["run", "--rm", "busybox", "cat", "/etc/resolv.conf"]);
    assert!(out.contains("nameserver 192.0.2.53") && out.contains("search corp.example"), "{out}");
    let out = e.docker_ok(&["run", "--rm", "--dns", "192.0.2.54", "busybox", "cat", "/etc/resolv.conf"]);
    assert!(out.contains("nameserver 192.0.2.54") && !out.contains("192.0.2.53"), "{out}");
    // The container's own options win.
    let out = e.docker_ok(&["run", "--rm", "--ulimit", "nofile=100:200", "--shm-size", "8m", "busybox", "sh", "-c", script]);
    assert_eq!(lines(&out), ["100", "200", "8192"]);
    let name = e.unique("dflt");
    e.docker_ok(&["create", "--name", &name, "busybox", "true"]);
    assert_eq!(inspect(&e, &name, "{{.HostConfig.LogConfig.Type}} {{index .HostConfig.LogConfig.Config \"max-size\"}} {{index .HostConfig.LogConfig.Config \"max-file\"}}"), "json-file 1k 2");
    e.docker_ok(&["rm", &name]);
    drop(e);
    let e = Engine::start_with(opts().arg("--log-driver").arg("none"));
    e.load_busybox();
    assert_eq!(e.docker_ok(&["info", "-f", "{{.LoggingDriver}}"]).trim(), "none");
    let name = e.unique("dfltnone");
    e.docker_ok(&["run", "--name", &name, "busybox", "echo", "hi"]);
    let o = e.docker(&["logs", &name]);
    assert!(!o.success() && o.stderr.contains("configured logging driver does not support reading"), "{o}");
    e.docker_ok(&["rm", &name]);
}

#[test]
fn bad_daemon_defaults_stop_the_engine_before_it_starts() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    for (flags, want) in [
        (&["--storage-driver", "btrfs"][..], "--storage-driver"),
        (&["--log-driver", "bogus"][..], "no log driver named 'bogus'"),
        (&["--default-ulimit", "nofile"][..], "--default-ulimit"),
        (&["--log-opt", "max-file=2"][..], "max-file cannot be set when max-size is not set"),
        (&["--dns", "not-an-ip"][..], "--dns not-an-ip: not an IP address"),
    ] {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_swarm"));
        c.args(["engine", "-H", &format!("unix://{}/s.sock", dir.path().display()), "--data-root"]).arg(dir.path().join("data"));
        c.arg("--exec-root").arg(dir.path().join("exec")).args(flags);
        let o = testground::cmd::run(&mut c, None, std::time::Duration::from_secs(30));
        assert!(!o.success() && o.stderr.contains(want), "{flags:?}: {o}");
        assert!(!dir.path().join("data").exists(), "{flags:?} created the data root");
    }
}

#[test]
fn logs_follow_reads_on_across_rotations() {
    require_root!();
    let e = engine_with_busybox();
    let name = e.unique("follow");
    let script = "sleep 1; i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); sleep 0.005; done";
    e.docker_ok(&["run", "-d", "--name", &name, "--log-opt", "max-size=2k", "--log-opt", "max-file=3", "busybox", "sh", "-c", script]);
    // Everything the container wrote, though most of it was rotated away meanwhile.
    let o = e.docker_full(&["logs", "-f", &name], None, Duration::from_secs(60));
    e.expect_ok(&o);
    let want: Vec<String> = (0..300).map(|i| format!("line {i}")).collect();
    assert_eq!(lines(&o.stdout), want);
    assert_eq!(lines(&e.docker_ok(&["logs", "--tail", "2", &name])), ["line 298", "line 299"]);
    // What is left on disk: three files at most.
    let kept = lines(&e.docker_ok(&["logs", &name]));
    assert!(kept.len() < 300 && kept.last().map(String::as_str) == Some("line 299"), "{} lines", kept.len());
    e.docker_ok(&["rm", &name]);
}

#[test]
fn json_file_compress_gzips_rotated_files_and_logs_reads_them() {
    require_root!();
    let e = engine_with_busybox();
    let name = e.unique("gz");
    let script = "i=0; while [ $i -lt 500 ]; do echo line $i; i=$((i+1)); done";
    e.docker_ok(&[
        "run",
        "--name",
        &name,
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=3",
        "--log-opt",
        "compress=true",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let id = inspect(&e, &name, "{{.Id}}");
    let dir = e.data_root().join("containers").join(&id);
    for n in [1, 2] {
        let gz = std::fs::read(dir.join(format!("{id}-json.log.{n}.gz"))).unwrap();
        assert_eq!(gz[..2], [0x1f, 0x8b], "{n}.gz is not gzip");
        assert!(!dir.join(format!("{id}-json.log.{n}")).exists());
    }
    let l = lines(&e.docker_ok(&["logs", &name]));
    let first: usize = l[0].strip_prefix("line ").unwrap().parse().unwrap();
    assert_eq!(l, (first..500).map(|i| format!("line {i}")).collect::<Vec<_>>());
    assert!(l.len() >= 30, "{} lines", l.len());
    let t = lines(&e.docker_ok(&["logs", "--tail", "30", &name]));
    assert_eq!(t, (470..500).map(|i| format!("line {i}")).collect::<Vec<_>>());
    e.docker_ok(&["rm", &name]);
}
