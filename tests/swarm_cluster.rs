//! The manager's acceptance end to end: three agents (`swarm join` with the embedded engine)
//! in three network-namespace hosts with differing engine labels, one `swarm manage` finding
//! them through the token service, then through etcd; the standard docker CLI pointed at the
//! manager for placement (constraints, affinities, ports, memory reservations with spread and
//! binpack), streams (logs -f, exec -it on a real pty, attach), node failure and the
//! per-node reasons of an impossible placement.
mod discovery_common;
use discovery_common::manager::Manager;
use discovery_common::*;
use std::collections::BTreeMap;
use std::time::Duration;
use testground::etcd::Etcd;

/// Engine labels of node-1..3.
const LABELS: [&[&str]; 3] = [&["zone=a"], &["zone=b"], &["zone=b", "storage=ssd"]];

/// One agent per host, named node-1..3, with [`LABELS`].
fn agents(net: &TestNet, discovery: &str, ttl: &str) -> Vec<HostProc> {
    (0..3)
        .map(|i| {
            let name = format!("node-{}", i + 1);
            let mut extra = vec!["--name", name.as_str()];
            for l in LABELS[i] {
                extra.extend(["--label", l]);
            }
            join_ttl(net.host(i), discovery, ttl, &extra)
        })
        .collect()
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

/// `docker info`'s block of one node: from its `<name>: <addr>` line to the next node.
fn node_block(info: &str, name: &str) -> String {
    let start = format!("{name}: ");
    let mut out = vec![];
    let mut inside = false;
    for l in info.lines() {
        if l.trim_start().starts_with(&start) {
            inside = true;
        } else if inside && !l.contains('└') {
            break;
        }
        if inside {
            out.push(l);
        }
    }
    out.join("\n")
}

/// How many containers whose name starts with `prefix` each node holds (`docker ps -a`).
fn per_node(m: &Manager, prefix: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for n in lines(&m.docker_ok(&["ps", "-a", "--format", "{{.Names}}"])) {
        if let Some((node, name)) = n.split_once('/') {
            if name.starts_with(prefix) {
                *out.entry(node.to_string()).or_insert(0) += 1;
            }
        }
    }
    out
}

/// GET http://addr/ until it answers 200 (10 s); the body.
fn http_get(addr: &str) -> String {
    let mut last = String::new();
    let ok = wait_until(Duration::from_secs(10), || {
        match testground::http::tcp(addr, &testground::http::Request { method: "GET", path: "/", headers: &[], body: b"" }) {
            Ok(r) if r.status == 200 => {
                last = r.text();
                true
            }
            Ok(r) => {
                last = format!("status {}", r.status);
                false
            }
            Err(e) => {
                last = e.to_string();
                false
            }
        }
    });
    assert!(ok, "http://{addr}/ did not answer: {last}");
    last
}

/// Drives `argv` on a real pty: waits for the shell prompt, types a command, then `exit 3`.
const PTY_DRIVER: &str = r#"
import os, pty, select, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
buf = b''
def until(needle, t):
    global buf
    end = time.time() + t
    while needle not in buf and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                d = os.read(fd, 4096)
            except OSError:
                return
            if not d:
                return
            buf += d
until(b'# ', 20)
os.write(fd, b'echo marker-$((6*7)); tty\n')
until(b'/dev/pts', 20)
os.write(fd, b'exit 3\n')
until(b'\x00never', 20)
_, st = os.waitpid(pid, 0)
sys.stdout.write(buf.decode('utf-8', 'replace'))
sys.exit(os.waitstatus_to_exitcode(st))
"#;

#[test]
fn token_discovery_cluster_acceptance() {
    require_root!();
    let svc = TokenService::start();
    let (_token, net, disc) = svc.cluster(3);
    // A long TTL: a killed agent stays registered, so the manager shows it Unhealthy.
    let mut procs = agents(&net, &disc, "60s");
    let m = Manager::start(&[&disc], 3);

    // docker info: the cluster and each node with its labels.
    let info = m.docker_ok(&["info"]);
    assert!(info.contains("Nodes: 3") && info.contains("Role: primary"), "{info}");
    for (i, labels) in LABELS.iter().enumerate() {
        let block = node_block(&info, &format!("node-{}", i + 1));
        assert!(block.contains(&format!(": {}:2375", net.host(i).ip())), "{info}");
        for l in *labels {
            assert!(block.contains(l), "node-{} lacks {l}:\n{info}", i + 1);
        }
        assert!(block.contains("└ Status: Healthy") && block.contains("└ ServerVersion: "), "{block}");
    }
    m.load_busybox();

    // Constraints.
    m.docker_ok(&["run", "-d", "--name", "pinned", "-e", "constraint:node==node-2", "busybox", "sleep", "1000"]);
    assert_eq!(m.node_of("pinned"), "node-2");
    m.docker_ok(&["run", "-d", "--name", "fast", "-e", "constraint:storage==ssd", "busybox", "sleep", "1000"]);
    assert_eq!(m.node_of("fast"), "node-3");

    // Affinity: co-located with web, wherever web went.
    m.docker_ok(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"]);
    let web_node = m.node_of("web");
    for b in ["buddy-1", "buddy-2"] {
        m.docker_ok(&["run", "-d", "--name", b, "-e", "affinity:container==web", "busybox", "sleep", "1000"]);
        assert_eq!(m.node_of(b), web_node, "{b} must join web");
    }

    // -p 8080:80 twice: two nodes, each really serving on its own address.
    let mut http_nodes = vec![];
    for name in ["http-1", "http-2"] {
        let script = format!("mkdir -p /www && echo served-by-{name} > /www/index.html && exec httpd -f -p 80 -h /www");
        m.docker_ok(&["run", "-d", "-p", "8080:80", "--name", name, "busybox", "sh", "-c", &script]);
        http_nodes.push(m.node_of(name));
        let ip = m.docker_ok(&["inspect", "-f", "{{.Node.IP}}", name]).trim().to_string();
        let port = m.docker_ok(&["port", name, "80"]);
        assert!(port.contains(&format!("{ip}:8080")), "docker port shows the node's address: {port}");
        let body = http_get(&format!("{ip}:8080"));
        assert_eq!(body.trim(), format!("served-by-{name}"));
    }
    assert_ne!(http_nodes[0], http_nodes[1], "8080 published twice on one node");
    let http1_node = http_nodes[0].clone();
    m.docker_ok(&["create", "-p", "8080:80", "--name", "http-3", "busybox", "true"]);
    http_nodes.push(m.node_of("http-3"));
    http_nodes.sort();
    http_nodes.dedup();
    assert_eq!(http_nodes.len(), 3, "one 8080 per node: {http_nodes:?}");
    let full = m.docker(&["create", "-p", "8080:80", "busybox", "true"]);
    assert!(
        !full.success() && full.stderr.contains("[port 8080 (Bridge mode)]") && full.stderr.contains("is already used by container http-"),
        "{full}"
    );

    // docker ps: node/name.
    let ps = lines(&m.docker_ok(&["ps", "--format", "{{.Names}}"]));
    for want in ["node-2/pinned".to_string(), "node-3/fast".to_string(), format!("{web_node}/web"), format!("{http1_node}/http-1")] {
        assert!(ps.contains(&want), "docker ps lacks {want}: {ps:?}");
    }

    // logs -f follows: "late" is printed 3 s after the start.
    m.docker_ok(&["run", "-d", "--name", "talker", "busybox", "sh", "-c", "echo early; sleep 3; echo late; sleep 1000"]);
    let f = m.docker_full(&["logs", "-f", "talker"], None, Duration::from_secs(8));
    assert!(f.timed_out && f.stdout.contains("early") && f.stdout.contains("late"), "logs -f did not follow: {f}");

    // exec -it on a real pty: the shell evaluates what is typed, sees a tty, its exit code comes back.
    let mut c = m.command("python3");
    c.args(["-c", PTY_DRIVER]).arg(testground::engine::docker_cli()).args(["exec", "-it", "pinned", "sh"]);
    let ex = testground::cmd::run(&mut c, None, Duration::from_secs(60));
    assert_eq!(ex.code(), 3, "{ex}");
    assert!(ex.stdout.contains("marker-42") && ex.stdout.contains("/dev/pts/"), "{ex}");
    let ex = m.docker(&["exec", "fast", "cat", "/proc/1/cmdline"]);
    assert!(ex.success() && ex.stdout.contains("sleep"), "{ex}");

    // attach follows a running container's output to its end.
    m.docker_ok(&["run", "-d", "--name", "later", "busybox", "sh", "-c", "sleep 2; echo from-attach; exit 5"]);
    let att = m.docker_full(&["attach", "later"], None, Duration::from_secs(30));
    assert!(att.stdout.contains("from-attach") && att.code() == 5, "{att}");

    // Memory reservations (-m): spread evens the nodes out, binpack fills one first.
    let total: i64 = m.docker_ok(&["info", "--format", "{{.MemTotal}}"]).trim().parse().expect("MemTotal");
    let node_mem = total / 3;
    let eighth = (node_mem / 8).to_string();
    for i in 0..6 {
        m.docker_ok(&["create", "-m", &eighth, "--name", &format!("spread-{i}"), "busybox", "true"]);
    }
    assert_eq!(m.docker_ok(&["inspect", "-f", "{{.HostConfig.Memory}}", "spread-0"]).trim(), eighth);
    let spread = per_node(&m, "spread-");
    assert_eq!(spread.values().copied().collect::<Vec<_>>(), vec![2, 2, 2], "spread fills evenly: {spread:?}");
    let info = m.docker_ok(&["info"]);
    assert!(!info.contains("└ Reserved Memory: 0 B"), "{info}");
    {
        let bp = Manager::start(&["--strategy", "binpack", &disc], 3);
        assert!(bp.docker_ok(&["info"]).contains("Strategy: binpack"));
        // Each node holds 2/8; with 105 % capacity a node takes two more of 30 %, not three.
        let big = (node_mem * 3 / 10).to_string();
        let mut on = vec![];
        for i in 0..3 {
            let name = format!("binpack-{i}");
            bp.docker_ok(&["create", "-m", &big, "--name", &name, "busybox", "true"]);
            on.push(bp.node_of(&name));
        }
        assert!(on[0] == on[1] && on[2] != on[0], "binpack fills one node first: {on:?}");
    }

    // Local networks: `node/net` pins to that node; a container on a network goes where it lives.
    m.docker_ok(&["network", "create", "node-3/backend"]);
    m.docker_ok(&["run", "-d", "--name", "on-backend", "--net", "node-3/backend", "busybox", "sleep", "1000"]);
    assert_eq!(m.node_of("on-backend"), "node-3");
    m.docker_ok(&["network", "create", "frontnet"]);
    let front = lines(&m.docker_ok(&["network", "ls", "--filter", "name=frontnet", "--format", "{{.Name}}"]));
    let front_node = front.first().and_then(|n| n.split_once('/')).map(|(n, _)| n.to_string()).unwrap_or_else(|| panic!("{front:?}"));
    for i in 0..2 {
        let name = format!("on-front-{i}");
        m.docker_ok(&["run", "-d", "--name", &name, "--net", "frontnet", "busybox", "sleep", "1000"]);
        assert_eq!(m.node_of(&name), front_node);
    }
    let nets = m.docker_ok(&["inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", "on-front-1"]);
    assert_eq!(nets.trim(), "frontnet");

    // An impossible constraint: the conditions, then why each node was turned down.
    let bad = m.docker(&["run", "-e", "constraint:zone==nowhere", "busybox", "true"]);
    assert!(!bad.success());
    for want in [
        "Unable to find a node that satisfies the following conditions",
        "[zone==nowhere]",
        "node-1: constraint",
        "node-2: constraint",
        "node-3: constraint",
    ] {
        assert!(bad.stderr.contains(want), "error lacks {want:?}:\n{}", bad.stderr);
    }

    // A killed agent (SIGKILL) turns Unhealthy; new containers avoid it.
    procs[0].kill();
    let ok = wait_until(Duration::from_secs(30), || node_block(&m.docker(&["info"]).stdout, "node-1").contains("└ Status: Unhealthy"));
    assert!(ok, "{}\n{}", m.docker(&["info"]), m.log());
    let info = m.docker_ok(&["info"]);
    assert!(info.contains("Nodes: 3") && info.matches("└ Status: Healthy").count() == 2, "{info}");
    for i in 0..4 {
        let name = format!("after-{i}");
        m.docker_ok(&["create", "--name", &name, "busybox", "true"]);
        assert_ne!(m.node_of(&name), "node-1");
    }
    let e = m.docker(&["create", "-e", "constraint:node==node-1", "busybox", "true"]);
    assert!(!e.success() && e.stderr.contains("node-1: health: node is not healthy"), "{e}");
    // Its containers show as down in ps -a.
    let ps = m.docker_ok(&["ps", "-a", "--filter", "node=node-1", "--format", "{{.Names}} {{.Status}}"]);
    assert!(lines(&ps).iter().all(|l| l.ends_with("Host Down")), "{ps}");
    drop(m);
    drop(procs);
}

#[test]
fn etcd_discovery_cluster() {
    require_root!();
    let net = TestNet::new(3);
    let etcd = Etcd::start_on(&[&net.gateway()], None);
    let disc = format!("etcd://{}/flt-cluster", etcd.endpoint());
    let mut procs = agents(&net, &disc, TTL);
    let m = Manager::start(&[&disc], 3);
    let info = m.docker_ok(&["info"]);
    assert!(info.contains("Nodes: 3"), "{info}");
    for i in 0..3 {
        assert!(node_block(&info, &format!("node-{}", i + 1)).contains(&format!(": {}:2375", net.host(i).ip())), "{info}");
    }
    m.load_busybox();
    m.docker_ok(&["run", "-d", "--name", "west", "-e", "constraint:zone==a", "busybox", "sleep", "1000"]);
    assert_eq!(m.node_of("west"), "node-1");
    m.docker_ok(&["run", "-d", "--name", "east", "-e", "constraint:zone==b", "-e", "constraint:storage!=ssd", "busybox", "sleep", "1000"]);
    assert_eq!(m.node_of("east"), "node-2");
    let out = m.docker_ok(&["run", "--rm", "-e", "constraint:node==node-3", "busybox", "echo", "hello-over-etcd"]);
    assert!(out.contains("hello-over-etcd"), "{out}");

    // node-2 leaves (clean stop: deregistered at once): the manager drops it.
    let st = procs[1].terminate(Duration::from_secs(20));
    assert!(st.is_some_and(|s| s.success()), "{}", procs[1].log());
    let gone = wait_until(Duration::from_secs(20), || m.docker(&["info"]).stdout.contains("Nodes: 2"));
    assert!(gone, "{}\n{}", m.docker(&["info"]), m.log());
    let info = m.docker_ok(&["info"]);
    assert!(!info.contains(" node-2: "), "{info}");
    let ps = m.docker_ok(&["ps", "--format", "{{.Names}}"]);
    assert!(!ps.contains("east"), "{ps}");
    let e = m.docker(&["create", "-e", "constraint:zone==b", "-e", "constraint:storage!=ssd", "busybox", "true"]);
    assert!(!e.success() && e.stderr.contains("Unable to find a node"), "{e}");
    for i in 0..3 {
        let name = format!("after-{i}");
        m.docker_ok(&["create", "--name", &name, "busybox", "true"]);
        assert_ne!(m.node_of(&name), "node-2");
    }
    drop(m);
    drop(procs);
}
