//! `swarm create/join/list/token-service` without a cluster: help, the static backends
//! (nodes, file) with ranges, and every kind of bad input giving a clear error and a non-zero
//! exit.
mod discovery_common;
use discovery_common::*;

fn fails_with(args: &[&str], needle: &str) {
    let o = swarm(args);
    assert!(!o.success() && o.code() != 0, "expected a failure: {o}");
    assert!(o.stderr.contains(needle), "expected {needle:?} in stderr: {o}");
    assert!(!o.stderr.contains("panicked"), "{o}");
}

#[test]
fn help_works_for_every_command() {
    for (cmd, flags) in [
        (
            "join",
            &["--advertise", "--heartbeat", "--ttl", "--delay", "--discovery-opt", "--no-engine", "SWARM_ADVERTISE", "SWARM_DISCOVERY"][..],
        ),
        ("list", &["--timeout", "--discovery-opt", "SWARM_DISCOVERY"][..]),
        ("create", &["--discovery-url", "SWARM_DISCOVERY_URL", "--discovery-cacert", "SWARM_DISCOVERY_CACERT"][..]),
        ("token-service", &["--listen", "--data", "--tlscert", "--tlskey", "--insecure-http", "--max-entries", "--create-rate-limit"][..]),
    ] {
        let o = swarm(&[cmd, "--help"]);
        assert!(o.success(), "{o}");
        for f in flags {
            assert!(o.stdout.contains(f), "{cmd} --help lacks {f}: {o}");
        }
    }
    let o = swarm(&["--help"]);
    assert!(o.success() && ["create", "join", "list", "token-service"].iter().all(|c| o.stdout.contains(c)), "{o}");
    // Classic Swarm's aliases.
    assert!(swarm(&["l", "--help"]).success() && swarm(&["j", "--help"]).success() && swarm(&["c", "--help"]).success());
}

#[test]
fn nodes_backend_with_ranges() {
    let o = swarm(&["list", "nodes://10.0.0.[1:3]:2375,10.0.1.1:2375"]);
    assert!(o.success(), "{o}");
    assert_eq!(o.stdout, "10.0.0.1:2375\n10.0.0.2:2375\n10.0.0.3:2375\n10.0.1.1:2375\n");
    // A bare list is nodes://; a range may sit anywhere, even inside the port.
    let o = swarm(&["list", "192.168.1.2:[2:3]375"]);
    assert_eq!(o.stdout, "192.168.1.2:2375\n192.168.1.2:3375\n", "{o}");
    // $SWARM_DISCOVERY stands for the argument.
    let o = swarm_env(&["list"], &[("SWARM_DISCOVERY", "nodes://h:1")]);
    assert_eq!(o.stdout, "h:1\n", "{o}");
}

#[test]
fn file_backend_with_comments_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("cluster");
    std::fs::write(&f, "# our cluster\n10.0.0.[10:12]:2375   # rack 1\n\n10.0.2.1:2376\n").unwrap();
    let url = format!("file://{}", f.display());
    let o = swarm(&["list", &url]);
    assert!(o.success(), "{o}");
    assert_eq!(o.stdout, "10.0.0.10:2375\n10.0.0.11:2375\n10.0.0.12:2375\n10.0.2.1:2376\n");
    std::fs::write(&f, "10.0.0.1:2375\nnot-an-address\n").unwrap();
    fails_with(&["list", &url], "line 2");
    fails_with(&["list", &format!("file://{}/missing", dir.path().display())], "No such file");
}

#[test]
fn malformed_discovery_urls() {
    fails_with(&["list"], "discovery required to list a cluster");
    fails_with(&["list", "consul://10.0.0.1:8500/swarm"], "unsupported discovery scheme \"consul\"");
    fails_with(&["list", "etcd://"], "invalid discovery URL");
    fails_with(&["list", "etcd://10.0.0.1/swarm"], "expected host:port");
    fails_with(&["list", "etcd://10.0.0.1:99999/swarm"], "must be 1-65535");
    fails_with(&["list", "nodes://10.0.0.1"], "expected host:port");
    fails_with(&["list", "10.0.0.1:0"], "must be 1-65535");
    fails_with(&["list", "10.0.0.[5:1]:2375"], "start is above end");
    fails_with(&["list", "10.0.0.[a:b]:2375"], "invalid range");
    fails_with(&["list", "token://abc"], "--discovery-url");
    fails_with(&["list", "token://h:1/bad token"], "invalid discovery URL");
    fails_with(&["list", "token://h:70000/abc"], "invalid discovery URL");
    fails_with(&["list", "file://"], "no file path");
    fails_with(&["list", "--discovery-opt", "kv.path", "etcd://h:1/p"], "key=value");
    fails_with(&["list", "--discovery-opt", "kv.cacertfile=/x", "etcd://h:1/p"], "kv.certfile");
    fails_with(&["list", "--timeout", "0s", "nodes://h:1"], "--timeout should be a positive number");
    fails_with(&["list", "--timeout", "ten", "nodes://h:1"], "invalid --timeout: time: invalid duration");
}

#[test]
fn unreachable_services_fail_fast() {
    let port = free_port(); // nothing listens there
    fails_with(&["create", "--discovery-url", &format!("http://127.0.0.1:{port}/v1")], "cannot reach the token service");
    fails_with(&["create"], "SWARM_DISCOVERY_URL");
    fails_with(&["list", &format!("token://127.0.0.1:{port}/abc")], "cannot reach the token service");
    let o = swarm(&["list", "--timeout", "3s", &format!("etcd://127.0.0.1:{port}/swarm")]);
    assert!(!o.success() && o.stderr.contains("etcd at 127.0.0.1"), "{o}");
    assert!(o.elapsed < std::time::Duration::from_secs(10), "{o}");
    fails_with(&["create", "extra"], "unexpected argument");
}

#[test]
fn join_validates_like_classic_swarm() {
    let d = "token://127.0.0.1:1/abc";
    fails_with(&["join", "--advertise", "10.0.0.1:2375"], "discovery required to join a cluster");
    fails_with(&["join", d], "missing mandatory --advertise flag");
    fails_with(&["join", "--advertise", "10.0.0.1", d], "--advertise should be of the form ip:port or hostname:port");
    fails_with(&["join", "--advertise", "10.0.0.1:70000", d], "must be 1-65535");
    fails_with(&["join", "--advertise", "10.0.0.1:2375", "--heartbeat", "500ms", d], "--heartbeat should be at least one second");
    fails_with(
        &["join", "--advertise", "10.0.0.1:2375", "--heartbeat", "2s", "--ttl", "2s", d],
        "--ttl must be strictly superior to the heartbeat value",
    );
    fails_with(&["join", "--advertise", "10.0.0.1:2375", "--heartbeat", "5s", "--ttl", "3s", d], "--ttl must be strictly superior");
    fails_with(&["join", "--advertise", "10.0.0.1:2375", "--delay", "-1s", d], "--delay should not be a negative number");
    fails_with(&["join", "--advertise", "10.0.0.1:2375", "--ttl", "3", d], "invalid --ttl: time: missing unit");
    fails_with(&["join", "--advertise", "10.0.0.1:2375", "--insecure-tcp", "nodes://10.0.0.1:2375"], "static list");
    fails_with(&["join", "--advertise", "10.0.0.1:2375", "--no-engine", "file:///etc/hosts"], "static list");
    // The advertised engine listener is plain TCP until TLS lands: it must be asked for.
    fails_with(&["join", "--advertise", "10.0.0.1:2375", d], "--insecure-tcp");
    // An advertised address that is not this host's fails before anything starts, with a hint.
    fails_with(&["join", "--advertise", "192.0.2.1:2375", "--insecure-tcp", d], "not an address of this host");
    let o = swarm_env(&["join", d], &[("SWARM_ADVERTISE", "10.0.0.1:99999")]);
    assert!(!o.success() && o.stderr.contains("1-65535"), "{o}");
}

/// A long-running `swarm` (manage, join) with its output in a file; killed on drop.
struct Bg {
    child: std::process::Child,
    log: tempfile::NamedTempFile,
}

impl Bg {
    fn start(args: &[&str]) -> Bg {
        let log = tempfile::NamedTempFile::new().expect("log file");
        let f = log.reopen().expect("log file");
        let child = std::process::Command::new(SWARM)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("DEBUG")
            .env_remove("SWARM_DISCOVERY")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(f.try_clone().expect("log file"))
            .stderr(f)
            .spawn()
            .expect("spawn swarm");
        Bg { child, log }
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- swarm log ---\n{}", self.log());
        }
    }
}

/// `docker -H tcp://addr ARGS`, once the manager answers.
fn docker_ready(addr: &str, args: &[&str]) -> String {
    let h = format!("tcp://{addr}");
    let mut last = None;
    let ok = wait_until(std::time::Duration::from_secs(20), || {
        let o = docker_at(&h, args, std::time::Duration::from_secs(10));
        let ok = o.success();
        last = Some(o);
        ok
    });
    let o = last.expect("docker ran");
    assert!(ok, "docker {args:?}: {o}");
    o.stdout
}

#[test]
fn version_help_and_global_flags_like_classic_swarm() {
    let want = format!("swarm version {} (flotilla)\n", env!("CARGO_PKG_VERSION"));
    for args in [&["version"][..], &["--version"], &["-v"]] {
        let o = swarm(args);
        assert!(o.success() && o.stdout == want, "{args:?}: {o}");
    }
    // No command: the help, and success.
    let o = swarm(&[]);
    assert!(o.success() && o.stdout.contains("Usage: swarm") && o.stdout.contains("manage"), "{o}");
    let o = swarm(&["--help"]);
    assert!(["--debug", "--log-level", "--experimental", "--version"].iter().all(|f| o.stdout.contains(f)), "{o}");
    // Global log level before the subcommand, checked like the subcommands' own.
    fails_with(&["-l", "bogus", "list", "nodes://h:1"], "invalid --log-level \"bogus\"");
    let o = swarm(&["--debug", "list", "nodes://h:1"]);
    assert!(o.success() && o.stdout == "h:1\n", "{o}");

    // The test suite's own command line of classic Swarm: `-l debug -experimental manage …`,
    // with single-dash long flags and a bare node list as discovery.
    let (p1, p2) = (free_port(), free_port());
    let addr = format!("127.0.0.1:{}", free_port());
    let nodes = format!("127.0.0.1:{p1},127.0.0.1:{p2}");
    let m = Bg::start(&[
        "-l",
        "debug",
        "-experimental",
        "manage",
        "-H",
        &addr,
        "-heartbeat=1s",
        "-cluster-opt",
        "swarm.overcommit=0.5",
        &nodes,
    ]);
    let info = docker_ready(&addr, &["info", "--format", "{{.ExperimentalBuild}} {{json .SystemStatus}}"]);
    assert!(info.starts_with("true ") && info.contains("[\"Nodes\",\"2\"]"), "{info}");
    assert!(info.contains(&format!("127.0.0.1:{p1}")) && info.contains(&format!("127.0.0.1:{p2}")), "{info}");
    let v = docker_ready(&addr, &["version", "--format", "{{.Server.Experimental}}"]);
    assert_eq!(v.trim(), "true");
    assert!(m.log().contains("DEBUG"), "-l debug before manage gave no debug lines:\n{}", m.log());
    drop(m);
    // Without the global flags: not experimental, no debug lines.
    let addr = format!("127.0.0.1:{}", free_port());
    let m = Bg::start(&["manage", "-H", &addr, &format!("127.0.0.1:{p1}")]);
    let info = docker_ready(&addr, &["info", "--format", "{{.ExperimentalBuild}}"]);
    assert_eq!(info.trim(), "false");
    assert!(!m.log().contains("DEBUG"), "{}", m.log());
    // A subcommand's own --log-level wins over the global one.
    let addr = format!("127.0.0.1:{}", free_port());
    let m = Bg::start(&["--debug", "manage", "-l", "warn", "-H", &addr, &format!("127.0.0.1:{p1}")]);
    docker_ready(&addr, &["info"]);
    assert!(!m.log().contains("DEBUG") && !m.log().contains("INFO"), "{}", m.log());
}

#[test]
fn join_takes_global_flags_before_the_subcommand() {
    let ts = TokenService::start();
    let o = swarm(&["create", "--discovery-url", &ts.url()]);
    assert!(o.success(), "{o}");
    let disc = format!("token://127.0.0.1:{}/v1/{}", ts.port, o.stdout.trim());
    let adv = format!("127.0.0.1:{}", free_port());
    let j = Bg::start(&["--debug", "-experimental", "join", "-advertise", &adv, "--no-engine", "-heartbeat", "1s", "-ttl=3s", &disc]);
    wait_list(&[&disc], std::slice::from_ref(&adv), std::time::Duration::from_secs(10));
    assert!(j.log().contains("DEBUG"), "--debug before join gave no debug lines:\n{}", j.log());
}

#[test]
fn manage_validates_like_classic_swarm() {
    // Classic's first checks come before anything else: the rest of these command lines is
    // wrong too (bad log level, heartbeat, no discovery).
    let rest = ["-l", "bogus", "--heartbeat", "0s"];
    let check = |args: &[&str], needle: &str| {
        let mut a = vec!["manage"];
        a.extend_from_slice(args);
        a.extend_from_slice(&rest);
        fails_with(&a, needle);
    };
    check(&["--engine-refresh-min-interval", "0s"], "min refresh interval should be a positive number");
    check(&["-engine-refresh-min-interval", "-10s"], "min refresh interval should be a positive number");
    check(&["--engine-refresh-max-interval", "0s"], "max refresh interval cannot be less than min refresh interval");
    check(
        &["--engine-refresh-min-interval", "30s", "-engine-refresh-max-interval", "20s"],
        "max refresh interval cannot be less than min refresh interval",
    );
    check(&["--engine-refresh-retry", "1"], "--engine-refresh-retry is deprecated. Use --engine-failure-retry");
    check(&["--engine-failure-retry", "-1"], "invalid failure retry count");
    check(&["-cluster-opt", "swarm.overcommit=-2"], "swarm.overcommit should be larger than -1, -2.000000 is invalid");
    check(&["--cluster-opt", "swarm.createretry=-1"], "swarm.createretry can not be negative, -1 is invalid");
    // With those right, the next problem is named.
    fails_with(&["manage", "-l", "bogus", "nodes://h:1"], "invalid --log-level \"bogus\"");
}
