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
        ("join", &["--advertise", "--heartbeat", "--ttl", "--delay", "--discovery-opt", "--no-engine", "SWARM_ADVERTISE", "SWARM_DISCOVERY"][..]),
        ("list", &["--timeout", "--discovery-opt", "SWARM_DISCOVERY"][..]),
        ("create", &["--discovery-url", "SWARM_DISCOVERY_URL"][..]),
        ("token-service", &["--listen", "--data"][..]),
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
    fails_with(&["join", "--advertise", "10.0.0.1:2375", "--heartbeat", "2s", "--ttl", "2s", d], "--ttl must be strictly superior to the heartbeat value");
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
