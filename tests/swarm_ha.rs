//! Replicated managers and rescheduling, end to end: real etcd, three agents and three `swarm
//! manage --replication` managers in network-namespace hosts, the docker CLI and docker-compose.
mod discovery_common;
mod ha_common;
use ha_common::*;
use std::time::{Duration, Instant};

/// `docker run`, `exec -it` (under a pty), `logs -f` and `docker-compose up` through a replica;
/// SIGKILL of the primary and failover within the lease; etcd restarted under the managers.
#[test]
fn replicas_forward_and_a_replica_takes_over() {
    require_root!();
    let mut c = HaCluster::start(3, 3);
    let p = c.wait_one_primary(Duration::from_secs(10));
    let r = (p + 1) % 3;
    // One primary and two replicas naming it; the primary's metrics say so.
    for m in 0..3 {
        let (role, primary) = c.role(m).expect("info");
        if m == p {
            assert_eq!((role.as_str(), primary), ("primary", None));
        } else {
            assert_eq!(role, "replica");
            assert_eq!(primary.as_deref(), Some(c.manager_addr(p).as_str()));
        }
    }
    let metrics = |m: usize| {
        let o = testground::cmd::run(
            std::process::Command::new("curl").args(["-s", &format!("http://{}/metrics", c.manager_addr(m))]),
            None,
            Duration::from_secs(10),
        );
        o.stdout
    };
    assert!(
        metrics(p).contains("swarm_manager_role{role=\"primary\"} 1") && metrics(p).contains("swarm_manager_elections_total 1"),
        "{}",
        metrics(p)
    );
    assert!(metrics(r).contains("swarm_manager_role{role=\"replica\"} 1"), "{}", metrics(r));

    // Everything through a replica.
    let archive = testground::busybox_image_archive();
    let o = c.docker_t(r, &["load", "-i", &archive.display().to_string()], Duration::from_secs(120));
    assert!(o.success() && o.stdout.contains("busybox:latest"), "{o}\n{}", c.logs());
    let out = c.docker_ok(r, &["run", "--rm", "busybox", "echo", "hello through a replica"]);
    assert!(out.contains("hello through a replica"), "{out}");
    c.docker_ok(r, &["run", "-d", "--name", "ha-web", "busybox", "sleep", "600"]);
    // `exec -it` needs a terminal: `script` gives the CLI one.
    let cmdline = format!("docker -H tcp://{} exec -it ha-web sh -c 'tty; echo it-works'", c.manager_addr(r));
    let o = testground::cmd::run(
        std::process::Command::new("script").args(["-qec", &cmdline, "/dev/null"]).env("DOCKER_CONFIG", c.net.host(0).dir()),
        None,
        Duration::from_secs(30),
    );
    assert!(o.success() && o.stdout.contains("it-works") && o.stdout.contains("/dev/pts/"), "{o}\n{}", c.logs());
    c.docker_ok(r, &["run", "-d", "--name", "ha-logger", "busybox", "sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.5; done"]);
    let logs = c.docker_ok(r, &["logs", "-f", "ha-logger"]);
    assert_eq!(logs.lines().collect::<Vec<_>>(), ["line1", "line2", "line3"], "{logs}");
    // docker-compose 1.29 through the replica.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("docker-compose.yml"), "version: '2'\nservices:\n  app:\n    image: busybox\n    command: sleep 600\n")
        .unwrap();
    let compose = |args: &[&str]| {
        let mut cmd = std::process::Command::new("docker-compose");
        cmd.current_dir(dir.path())
            .env("DOCKER_HOST", format!("tcp://{}", c.manager_addr(r)))
            .env("COMPOSE_PROJECT_NAME", "hacompose")
            .args(args);
        testground::cmd::run(&mut cmd, None, Duration::from_secs(120))
    };
    let o = compose(&["up", "-d"]);
    assert!(o.success(), "{o}\n{}", c.logs());
    let ps = c.docker_ok(p, &["ps", "--filter", "name=hacompose_app_1", "--format", "{{.Status}}"]);
    assert!(ps.starts_with("Up"), "{ps}");
    let o = compose(&["down", "-t", "1"]);
    assert!(o.success(), "{o}");

    // SIGKILL of the primary: a replica takes over within the lease TTL, and every survivor creates.
    let t0 = Instant::now();
    c.kill_manager(p);
    let np = c.wait_one_primary(Duration::from_secs(20));
    let took = t0.elapsed();
    assert_ne!(np, p);
    assert!(took <= 2 * REPLICATION_TTL, "failover took {took:?} (TTL {REPLICATION_TTL:?})");
    for m in (0..3).filter(|m| *m != p) {
        let out = c.docker_ok(m, &["run", "--rm", "busybox", "echo", &format!("after failover via {m}")]);
        assert!(out.contains("after failover"), "{out}");
    }
    // The old primary comes back as a replica of the new one.
    c.restart_manager(p);
    assert_eq!(c.wait_one_primary(Duration::from_secs(20)), np);

    // etcd restarted under running managers: they recover without a restart.
    c.etcd.kill();
    std::thread::sleep(REPLICATION_TTL + Duration::from_secs(1));
    c.etcd.start_again();
    c.wait_one_primary(Duration::from_secs(30));
    for m in 0..3 {
        let ok = wait_until(Duration::from_secs(30), || c.docker(m, &["run", "--rm", "busybox", "true"]).success());
        assert!(ok, "run through manager {m} after the etcd restart:\n{}", c.logs());
    }
    c.docker_ok(np, &["rm", "-f", "ha-web", "ha-logger"]);
}

/// The primary's netns is cut off from etcd: it steps down before its lease ends, and no create
/// is accepted by two primaries (a write check with raw API calls, each answer naming the
/// primary that served it).
#[test]
fn a_primary_cut_off_from_etcd_steps_down() {
    require_root!();
    let c = HaCluster::start(2, 3);
    let p = c.wait_one_primary(Duration::from_secs(10));
    let o = c.docker_t(p, &["load", "-i", &testground::busybox_image_archive().display().to_string()], Duration::from_secs(120));
    assert!(o.success(), "{o}");
    // One create: (status, the primary that served it).
    let create = |m: usize, name: &str| -> (u16, String) {
        let url = format!("http://{}/v1.41/containers/create?name={name}", c.manager_addr(m));
        let o = testground::cmd::run(
            std::process::Command::new("curl").args([
                "-s",
                "-o",
                "/dev/null",
                "-D",
                "-",
                "--max-time",
                "3",
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "-d",
                r#"{"Image":"busybox","Cmd":["true"]}"#,
                &url,
            ]),
            None,
            Duration::from_secs(10),
        );
        let status = o.stdout.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
        let by = o
            .stdout
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("x-swarm-primary:").map(|v| v.trim().to_string()))
            .unwrap_or_default();
        (status, by)
    };
    assert_eq!(create(p, "wc-before").0, 201);

    let gw = c.net.gateway();
    let port = c.etcd.endpoint().rsplit(':').next().unwrap().to_string();
    let cut = c.manager_host(p).run("iptables", &["-I", "OUTPUT", "-d", &gw, "-p", "tcp", "--dport", &port, "-j", "DROP"]);
    assert!(cut.success(), "{cut}");
    let t0 = Instant::now();
    let old = c.manager_addr(p);
    // Creates go on through every manager until another primary has accepted a few, while a
    // second thread watches the cut-off primary's own role.
    let mut accepted: Vec<(String, String)> = vec![]; // (name, primary)
    let done = std::sync::atomic::AtomicBool::new(false);
    let stepped_down = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                // When the poll that first sees "replica" was sent: its answer's own time on a
                // loaded host is not the manager's. That no two primaries overlap is checked
                // below, by the creates' times.
                let asked = t0.elapsed();
                if c.role(p).is_some_and(|(r, _)| r == "replica") {
                    return Some(asked);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            None
        });
        let mut n = 0;
        while t0.elapsed() < Duration::from_secs(25) && accepted.iter().filter(|(_, by)| *by != old).count() < 3 {
            for m in 0..3 {
                n += 1;
                let name = format!("wc-{n}");
                let (status, by) = create(m, &name);
                if status == 201 {
                    accepted.push((name, by));
                }
            }
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        watcher.join().unwrap()
    });
    let stepped_down = stepped_down.unwrap_or_else(|| panic!("the cut-off primary never stepped down\n{}", c.logs()));
    assert!(stepped_down < REPLICATION_TTL, "stepped down after {stepped_down:?}, its lease is {REPLICATION_TTL:?}");
    let np = (0..3).filter(|m| *m != p).find(|m| c.role(*m).is_some_and(|(r, _)| r == "primary")).expect("a new primary");
    let created_at = |name: &str| -> i64 {
        let t = c.docker_ok(np, &["inspect", "-f", "{{.Created}}", name]);
        chrono::DateTime::parse_from_rfc3339(t.trim()).unwrap_or_else(|e| panic!("{t}: {e}")).timestamp_nanos_opt().unwrap()
    };
    let by_old: Vec<i64> = accepted.iter().filter(|(_, by)| *by == old).map(|(n, _)| created_at(n)).collect();
    let by_new: Vec<i64> = accepted.iter().filter(|(_, by)| *by != old).map(|(n, _)| created_at(n)).collect();
    assert!(!by_new.is_empty(), "no create was accepted by a new primary: {accepted:?}\n{}", c.logs());
    let (last_old, first_new) = (by_old.iter().max().copied().unwrap_or(0), *by_new.iter().min().unwrap());
    assert!(
        last_old < first_new,
        "the old primary accepted a create {} ms after the new one's first: {accepted:?}",
        (last_old - first_new) / 1_000_000
    );
    // Healing the partition: the old primary follows the new one.
    let heal = c.manager_host(p).run("iptables", &["-D", "OUTPUT", "-d", &gw, "-p", "tcp", "--dport", &port, "-j", "DROP"]);
    assert!(heal.success(), "{heal}");
    assert_eq!(c.wait_one_primary(Duration::from_secs(30)), np);
}

/// `reschedule:on-node-failure`: a node's agent killed, its flagged container runs elsewhere
/// with the same name (the unflagged one stays); the primary and a node killed together, the
/// new primary reschedules; the failed nodes come back and their stale copies are removed.
#[test]
fn containers_are_rescheduled_across_failover() {
    require_root!();
    let mut c = HaCluster::start(3, 3);
    let p = c.wait_one_primary(Duration::from_secs(10));
    let r = (p + 1) % 3;
    c.docker_ok(r, &["load", "-i", &testground::busybox_image_archive().display().to_string()]);
    let (n1, n2) = (c.agent_name(1), c.agent_name(2));
    // Bad input first: classic's messages.
    let o = c.docker(r, &["run", "-d", "-e", "reschedule:off", "-e", "reschedule:on-node-failure", "busybox", "true"]);
    assert!(!o.success() && o.stderr.contains("too many reschedule policies"), "{o}");
    let o = c.docker(r, &["run", "-d", "--label", "com.docker.swarm.reschedule-policies=[\"false\"]", "busybox", "true"]);
    assert!(!o.success() && o.stderr.contains("invalid reschedule policy: false"), "{o}");

    let soft = |n: &str| format!("constraint:node==~{n}");
    c.docker_ok(r, &["run", "-d", "--name", "moved", "-e", "reschedule:on-node-failure", "-e", &soft(&n1), "busybox", "sleep", "600"]);
    c.docker_ok(r, &["run", "-d", "--name", "stays", "-e", &soft(&n1), "busybox", "sleep", "600"]);
    let old_id = c.docker_ok(r, &["inspect", "-f", "{{.Id}}", "moved"]).trim().to_string();
    // Its record is in etcd as soon as the create is acknowledged; the other one has none.
    let records = |c: &HaCluster| c.etcd.get_prefix("/flt/flotilla/reschedule/").unwrap();
    let rec = records(&c);
    assert_eq!(rec.len(), 1, "{rec:?}");
    assert!(rec[0].1.contains(&old_id) && rec[0].1.contains("\"name\":\"moved\""), "{rec:?}");
    assert_eq!(c.docker_ok(r, &["inspect", "-f", "{{.Node.Name}}", "moved"]).trim(), n1);
    // `docker events` through a replica (forwarded to the primary) shows the reschedule.
    let mut events = std::process::Command::new(testground::engine::docker_cli())
        .args(["-H", &format!("tcp://{}", c.manager_addr(r)), "events", "--filter", "event=reschedule", "--format", "{{json .}}"])
        .env("DOCKER_CONFIG", c.net.host(0).dir())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    let t0 = Instant::now();
    c.kill_agent(1);
    let moved = wait_until(Duration::from_secs(30), || {
        let o = c.docker(r, &["inspect", "-f", "{{.Id}} {{.Node.Name}} {{.State.Running}}", "moved"]);
        o.success() && !o.stdout.starts_with(&old_id) && o.stdout.trim().ends_with("true")
    });
    assert!(moved, "not rescheduled: {}\n{}", c.docker(r, &["ps", "-a"]), c.logs());
    eprintln!("rescheduled {:?} after the agent was killed", t0.elapsed());
    let now = c.docker_ok(r, &["inspect", "-f", "{{.Id}} {{.Node.Name}} {{.Name}}", "moved"]);
    let new_id = now.split_whitespace().next().unwrap().to_string();
    assert!(!now.contains(&n1) && now.trim().ends_with("/moved"), "{now}");
    // The container without the policy was not moved anywhere.
    let stays = c.docker_ok(r, &["ps", "-a", "--filter", "name=stays", "--format", "{{.Names}}"]);
    assert!(stays.lines().all(|l| l.contains(&n1)), "{stays}");
    let _ = events.kill();
    let out = events.wait_with_output().unwrap();
    let ev = String::from_utf8_lossy(&out.stdout);
    assert!(ev.contains(&old_id) && ev.contains(&new_id) && ev.contains(&n1), "events: {ev}");

    // The primary and node 2 killed together: the new primary reschedules node 2's container.
    c.docker_ok(r, &["run", "-d", "--name", "moved2", "-e", "reschedule:on-node-failure", "-e", &soft(&n2), "busybox", "sleep", "600"]);
    let old2b = c.docker_ok(r, &["inspect", "-f", "{{.Id}}", "moved2"]).trim().to_string();
    assert_eq!(c.docker_ok(r, &["inspect", "-f", "{{.Node.Name}}", "moved2"]).trim(), n2);
    c.kill_manager(p);
    c.kill_agent(2);
    let np = c.wait_one_primary(Duration::from_secs(20));
    let moved = wait_until(Duration::from_secs(30), || {
        let o = c.docker(np, &["inspect", "-f", "{{.Id}} {{.Node.Name}} {{.State.Running}}", "moved2"]);
        o.success() && !o.stdout.starts_with(&old2b) && o.stdout.trim().ends_with("true")
    });
    assert!(moved, "not rescheduled by the new primary: {}\n{}", c.docker(np, &["ps", "-a"]), c.logs());

    // The failed nodes come back: their stale copies are removed; each name shows once.
    c.restart_agent(1);
    c.restart_agent(2);
    for (a, name, stale) in [(1, "moved", &old_id), (2, "moved2", &old2b)] {
        let gone = wait_until(Duration::from_secs(40), || {
            let o = docker_at(&format!("tcp://{}", c.agent_addr(a)), &["ps", "-aq", "--no-trunc"], Duration::from_secs(10));
            o.success() && !o.stdout.contains(stale.as_str())
        });
        assert!(gone, "the stale copy of {name} is still on node {a}\n{}", c.logs());
        // It did come back with its node (live restore), and the primary removed it.
        let removed =
            c.managers.iter().flatten().any(|m| m.log().lines().any(|l| l.contains("removed a stale copy") && l.contains(stale.as_str())));
        assert!(removed, "no stale copy of {name} was removed\n{}", c.logs());
        let ps = c.docker_ok(np, &["ps", "-a", "--filter", &format!("name={name}"), "--format", "{{.Names}}"]);
        assert_eq!(ps.lines().filter(|l| l.ends_with(&format!("/{name}"))).count(), 1, "{ps}");
    }
    c.docker_ok(np, &["rm", "-f", "moved", "moved2", "stays"]);
    // Removed by the user: the records go too.
    assert!(wait_until(Duration::from_secs(15), || records(&c).is_empty()), "{:?}", records(&c));
}

/// Flag validation as classic Swarm: `--replication` needs KV discovery and `--advertise`.
#[test]
fn replication_flags_are_checked() {
    let o = swarm(&["manage", "--replication", "--advertise", "127.0.0.1:3376", "nodes://127.0.0.1:2375"]);
    assert!(!o.success() && o.stderr.contains("Leader election is only supported with consul, etcd and zookeeper discovery"), "{o}");
    let o = swarm(&["manage", "--replication", "--advertise", "127.0.0.1:3376", "--discovery-url", "http://127.0.0.1:1/v1", "token://abc"]);
    assert!(!o.success() && o.stderr.contains("Leader election is only supported"), "{o}");
    let o = swarm(&["manage", "--replication", "etcd://127.0.0.1:2379/x"]);
    assert!(!o.success() && o.stderr.contains("--advertise address must be provided when using --replication"), "{o}");
    let o = swarm(&["manage", "--replication", "--advertise", "127.0.0.1:3376", "--replication-ttl", "0s", "etcd://127.0.0.1:2379/x"]);
    assert!(!o.success() && o.stderr.contains("--replication-ttl should be a positive number"), "{o}");
}

/// Replicas forward to the primary with the manager's own TLS (`--tlsverify` both ways): three
/// managers on loopback with client-certificate auth, and a docker CLI with its certificate.
#[test]
fn replicas_forward_over_tls() {
    let certs = testground::tls::Certs::generate().expect("certs");
    let d = certs.dir.path();
    // The managers' certificate serves clients and authenticates the replicas to the primary.
    certs.add_manager().expect("manager certificate");
    let p = |n: &str| d.join(n).display().to_string();
    let etcd = testground::etcd::Etcd::start();
    let disc = format!("etcd://{}/tlsha", etcd.endpoint());
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut procs = vec![];
    for port in &ports {
        let log = std::fs::File::create(d.join(format!("manage-{port}.log"))).unwrap();
        let child = std::process::Command::new(SWARM)
            .args([
                "manage",
                "-H",
                &format!("tcp://127.0.0.1:{port}"),
                "--replication",
                "--advertise",
                &format!("127.0.0.1:{port}"),
                "--replication-ttl",
                "3s",
            ])
            .args([
                "--tlsverify",
                "--tlscacert",
                &p("ca.pem"),
                "--tlscert",
                &p("manager-cert.pem"),
                "--tlskey",
                &p("manager-key.pem"),
                "-l",
                "debug",
                &disc,
            ])
            .env_remove("RUST_LOG")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        procs.push(Kill(child));
    }
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let logs = || {
        ports
            .iter()
            .map(|p| std::fs::read_to_string(d.join(format!("manage-{p}.log"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n----\n")
    };
    let docker = |port: u16, args: &[&str]| {
        let mut c = std::process::Command::new(testground::engine::docker_cli());
        c.env("DOCKER_HOST", format!("tcp://127.0.0.1:{port}"))
            .env("DOCKER_CERT_PATH", d)
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CONFIG", d)
            .args(args);
        testground::cmd::run(&mut c, None, Duration::from_secs(30))
    };
    let role = |port: u16| {
        let o = docker(port, &["info", "--format", "{{json .SystemStatus}}"]);
        serde_json::from_str::<Vec<(String, String)>>(o.stdout.trim())
            .ok()
            .and_then(|s| s.into_iter().find(|(k, _)| k == "Role").map(|(_, v)| v))
    };
    let mut primary = None;
    assert!(
        wait_until(Duration::from_secs(30), || {
            let roles: Vec<Option<String>> = ports.iter().map(|p| role(*p)).collect();
            primary = ports.iter().zip(&roles).find(|(_, r)| r.as_deref() == Some("primary")).map(|(p, _)| *p);
            roles.iter().filter(|r| r.as_deref() == Some("replica")).count() == 2 && primary.is_some()
        }),
        "{}",
        logs()
    );
    let primary = primary.unwrap();
    let replica = *ports.iter().find(|p| **p != primary).unwrap();
    // `docker version` is not served by a replica itself: it comes from the primary over TLS.
    let o = docker(replica, &["version", "--format", "{{.Server.Version}}"]);
    assert!(o.success() && o.stdout.contains("swarm/"), "{o}\n{}", logs());
    let log = std::fs::read_to_string(d.join(format!("manage-{primary}.log"))).unwrap();
    assert!(log.lines().any(|l| l.contains("/version") && l.contains("request")), "the primary served no /version:\n{log}");
    // Without a client certificate, the replica refuses the client before forwarding anything.
    let empty = tempfile::tempdir().unwrap();
    let mut c = std::process::Command::new(testground::engine::docker_cli());
    c.env("DOCKER_HOST", format!("tcp://127.0.0.1:{replica}"))
        .env("DOCKER_CONFIG", empty.path())
        .env_remove("DOCKER_CERT_PATH")
        .args(["--tls", "version"]);
    let o = testground::cmd::run(&mut c, None, Duration::from_secs(20));
    assert!(!o.success(), "{o}");
}
