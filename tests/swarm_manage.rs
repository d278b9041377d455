//! `swarm manage` end to end: several of our engines on loopback TCP ports as nodes (static
//! `nodes://` discovery), one manager, the standard docker CLI pointed at the manager.
mod common;

use common::{lines, require_root, wait_until, Engine};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use testground::cmd::{self, Output};

use testground::manager::{free_port, ManagerProcess};

/// A node: one of our engines with a TCP listener and a node name.
struct Node {
    engine: Engine,
    addr: String,
}

fn node(name: &str, labels: &[&str]) -> Node {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut o = common::opts().arg("-H").arg(&format!("tcp://{addr}")).arg("--insecure-tcp").arg("--name").arg(name);
    for l in labels {
        o = o.label(l);
    }
    Node { engine: Engine::start_with(o), addr }
}

/// A manager process with a docker CLI pointed at it.
struct Manager {
    proc: ManagerProcess,
}

impl Manager {
    fn start(nodes: &[&Node], args: &[&str]) -> Manager {
        Self::start_with(nodes, args, None)
    }

    fn start_with(nodes: &[&Node], args: &[&str], cert_path: Option<PathBuf>) -> Manager {
        let m = Self::spawn_with(nodes, args, cert_path);
        m.proc.wait_healthy(nodes.len(), Duration::from_secs(30));
        m
    }

    /// Starts the manager without waiting for its nodes.
    fn spawn_with(nodes: &[&Node], args: &[&str], cert_path: Option<PathBuf>) -> Manager {
        let discovery = format!("nodes://{}", nodes.iter().map(|n| n.addr.as_str()).collect::<Vec<_>>().join(","));
        let timings: &[&str] = if args.contains(&"--engine-refresh-min-interval") {
            &["--engine-failure-retry", "2"]
        } else {
            &["--engine-refresh-min-interval", "1s", "--engine-refresh-max-interval", "2s", "--engine-failure-retry", "2"]
        };
        let all: Vec<&str> = ["-l", "debug"].iter().chain(timings).chain(args).copied().chain([discovery.as_str()]).collect();
        Manager { proc: ManagerProcess::spawn(env!("CARGO_BIN_EXE_swarm"), &all).with_client_certs(cert_path) }
    }

    fn log(&self) -> String {
        self.proc.log_tail(60)
    }

    fn docker_full(&self, args: &[&str], timeout: Duration) -> Output {
        self.proc.docker(args, None, timeout)
    }

    fn docker_in(&self, args: &[&str], stdin: &[u8]) -> Output {
        self.proc.docker(args, Some(stdin), Duration::from_secs(30))
    }

    fn docker(&self, args: &[&str]) -> Output {
        self.docker_full(args, Duration::from_secs(60))
    }

    fn docker_ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(o.success(), "docker {args:?} failed:\n{o}\n--- manager log ---\n{}", self.log());
        o.stdout
    }

    /// The node a container landed on (from the manager's inspect).
    fn node_of(&self, container: &str) -> String {
        self.docker_ok(&["inspect", "-f", "{{.Node.Name}}", container]).trim().to_string()
    }
}

#[test]
fn cluster_of_three_places_by_constraints_and_affinity() {
    require_root!();
    let n1 = node("node-1", &["zone=a"]);
    let n2 = node("node-2", &["zone=b"]);
    let n3 = node("node-3", &["zone=b", "storage=ssd"]);
    let m = Manager::start(&[&n1, &n2, &n3], &[]);

    let info = m.docker_ok(&["info"]);
    for want in [
        "Nodes: 3",
        "Strategy: spread",
        "Filters: health, port, containerslots, dependency, affinity, constraint, whitelist",
        " node-1: 127.0.0.1:",
        "└ Labels: ",
        "zone=a",
        "storage=ssd",
        "└ Reserved Memory: 0 B / ",
    ] {
        assert!(info.contains(want), "docker info lacks {want:?}:\n{info}");
    }

    // The image goes to every node through the manager.
    let load = m.docker_ok(&["load", "-i", &testground::busybox_image_archive().display().to_string()]);
    assert!(load.contains("busybox:latest"), "{load}");
    assert_eq!(lines(&m.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])), vec!["busybox:latest"]);

    m.docker_ok(&["run", "-d", "--name", "pinned", "-e", "constraint:node==node-2", "busybox", "sleep", "1000"]);
    assert_eq!(m.node_of("pinned"), "node-2");
    m.docker_ok(&["run", "-d", "--name", "fast", "-e", "constraint:storage==ssd", "busybox", "sleep", "1000"]);
    assert_eq!(m.node_of("fast"), "node-3");
    m.docker_ok(&["create", "--name", "west", "-l", "com.docker.swarm.constraints=[\"zone==a\"]", "busybox", "true"]);
    assert_eq!(m.node_of("west"), "node-1");
    m.docker_ok(&["run", "-d", "--name", "buddy", "-e", "affinity:container==pinned", "busybox", "sleep", "1000"]);
    assert_eq!(m.node_of("buddy"), "node-2");
    // The env entries became labels on the node's container.
    let labels = m.docker_ok(&["inspect", "-f", "{{json .Config.Labels}}", "buddy"]);
    assert!(labels.contains("com.docker.swarm.affinities") && labels.contains("com.docker.swarm.id"), "{labels}");
    let env = m.docker_ok(&["inspect", "-f", "{{json .Config.Env}}", "buddy"]);
    assert!(!env.contains("affinity:"), "{env}");

    // ps shows node/name; names are unique cluster-wide.
    let ps = m.docker_ok(&["ps", "--format", "{{.Names}}"]);
    let mut names = lines(&ps);
    names.sort();
    assert_eq!(names, vec!["node-2/buddy", "node-2/pinned", "node-3/fast"]);
    let all = m.docker_ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(all.contains("node-1/west Created"), "{all}");
    let filtered = m.docker_ok(&["ps", "--filter", "node=node-3", "--format", "{{.Names}}"]);
    assert_eq!(lines(&filtered), vec!["node-3/fast"]);
    let dup = m.docker(&["create", "--name", "pinned", "busybox", "true"]);
    assert!(!dup.success() && dup.stderr.contains("is already in use"), "{dup}");

    // Attach, wait and logs through the manager.
    let out = m.docker_ok(&["run", "--rm", "-e", "constraint:node==node-1", "busybox", "echo", "hello-through-the-manager"]);
    assert!(out.contains("hello-through-the-manager"), "{out}");
    m.docker_ok(&["run", "-d", "--name", "talker", "busybox", "sh", "-c", "echo line-one; sleep 1000"]);
    assert!(wait_until(Duration::from_secs(20), || m.docker(&["logs", "talker"]).stdout.contains("line-one")));
    let follow = m.docker_full(&["logs", "-f", "--tail", "all", "talker"], Duration::from_secs(8));
    assert!(follow.stdout.contains("line-one"), "logs -f streamed nothing: {follow}");
    // stdin in, output back, and the client's EOF reaches the container (half-close).
    let piped = m.docker_in(&["run", "--rm", "-i", "busybox", "cat"], b"piped-through-the-manager\n");
    assert!(piped.success() && piped.stdout.contains("piped-through-the-manager"), "{piped}");

    // docker attach follows the output until the container ends.
    m.docker_ok(&["run", "-d", "--name", "later", "busybox", "sh", "-c", "sleep 1; echo from-attach"]);
    let att = m.docker_full(&["attach", "later"], Duration::from_secs(30));
    assert!(att.success() && att.stdout.contains("from-attach"), "{att}");

    // Published ports: the same host port never twice on one node.
    let port = free_port().to_string();
    let mapping = format!("{port}:80");
    let mut nodes_used = vec![];
    for i in 0..3 {
        let name = format!("web{i}");
        m.docker_ok(&["create", "-p", &mapping, "--name", &name, "busybox", "true"]);
        nodes_used.push(m.node_of(&name));
    }
    nodes_used.sort();
    nodes_used.dedup();
    assert_eq!(nodes_used.len(), 3, "one per node: {nodes_used:?}");
    let full = m.docker(&["create", "-p", &mapping, "busybox", "true"]);
    assert!(!full.success() && full.stderr.contains(&format!("[port {port} (Bridge mode)]")), "{full}");
    assert!(full.stderr.contains("port: port") && full.stderr.contains("is already used by container web"), "{full}");

    // exec through the manager.
    let ex = m.docker(&["exec", "pinned", "echo", "exec-through-the-manager"]);
    assert!(ex.success() && ex.stdout.contains("exec-through-the-manager"), "{ex}");

    // Stop, rm through the manager update its records at once.
    m.docker_ok(&["rm", "-f", "talker"]);
    assert!(!m.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]).contains("talker"));

    // Impossible constraint: the conditions and why each node was turned down.
    let bad = m.docker(&["run", "-e", "constraint:zone==nowhere", "busybox", "true"]);
    assert!(!bad.success());
    for want in [
        "Unable to find a node that satisfies the following conditions",
        "[zone==nowhere]",
        "node-1: constraint: constraint zone==nowhere: label zone=a",
        "node-3: constraint",
    ] {
        assert!(bad.stderr.contains(want), "error lacks {want:?}:\n{}", bad.stderr);
    }
    let unknown = m.docker(&["inspect", "nope-not-here"]);
    assert!(!unknown.success() && unknown.stderr.contains("No such"), "{unknown}");
    let unsupported = m.docker(&["service", "ls"]);
    assert!(!unsupported.success(), "{unsupported}");
}

#[test]
fn spread_and_binpack_with_memory_reservations() {
    require_root!();
    let n1 = node("mem-1", &[]);
    let n2 = node("mem-2", &[]);
    let spread = Manager::start(&[&n1, &n2], &[]);
    let binpack = Manager::start(&[&n1, &n2], &["--strategy", "binpack"]);
    spread.docker_ok(&["load", "-i", &testground::busybox_image_archive().display().to_string()]);
    let info = spread.docker_ok(&["info", "--format", "{{.MemTotal}}"]);
    let total: i64 = info.trim().parse().expect("MemTotal");
    // A quarter of one node (each node has total/2, plus 5 % overcommit).
    let quarter = (total / 2 / 4).to_string();
    let mem: Vec<&str> = vec!["-m", &quarter];
    for i in 0..4 {
        let name = format!("s{i}");
        let mut args = vec!["create"];
        args.extend(&mem);
        args.extend(["--name", &name, "busybox", "true"]);
        spread.docker_ok(&args);
    }
    // The limit reached the node's container.
    let limit = spread.docker_ok(&["inspect", "-f", "{{.HostConfig.Memory}}", "s0"]);
    assert_eq!(limit.trim(), quarter, "{limit}");
    let on = |m: &Manager, prefix: &str| -> Vec<String> {
        let mut v: Vec<String> = lines(&m.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]))
            .into_iter()
            .filter(|n| n.split('/').nth(1).is_some_and(|x| x.starts_with(prefix)))
            .map(|n| n.split('/').next().unwrap_or("").to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(on(&spread, "s"), vec!["mem-1", "mem-1", "mem-2", "mem-2"], "spread fills evenly");
    let reserved = spread.docker_ok(&["info"]);
    assert!(reserved.matches("└ Reserved Memory: 0 B").count() == 0, "{reserved}");

    // binpack (its own manager, same nodes): fills the fuller node first.
    assert!(wait_until(Duration::from_secs(10), || on(&binpack, "s").len() == 4), "the second manager sees the first's containers");
    for i in 0..2 {
        let name = format!("b{i}");
        let mut args = vec!["create"];
        args.extend(&mem);
        args.extend(["--name", &name, "busybox", "true"]);
        binpack.docker_ok(&args);
    }
    let b = on(&binpack, "b");
    assert_eq!(b[0], b[1], "binpack puts both on one node: {b:?}");

    // Too big for any node: no resources, with each node's shortfall.
    let huge = (total * 2).to_string();
    let e = spread.docker(&["create", "-m", &huge, "busybox", "true"]);
    assert!(!e.success() && e.stderr.contains("no resources available to schedule container"), "{e}");
    assert!(e.stderr.contains("mem-1: resources: needs"), "{e}");
}

#[test]
fn dead_node_turns_unhealthy_and_is_avoided() {
    require_root!();
    let n1 = node("live-1", &[]);
    let mut n2 = node("dies-2", &[]);
    let m = Manager::start(&[&n1, &n2], &[]);
    m.docker_ok(&["load", "-i", &testground::busybox_image_archive().display().to_string()]);
    n2.engine.terminate(Duration::from_secs(10));
    let unhealthy = wait_until(Duration::from_secs(30), || m.docker(&["info"]).stdout.contains("└ Status: Unhealthy"));
    assert!(unhealthy, "{}", m.docker(&["info"]));
    let info = m.docker_ok(&["info"]);
    assert!(info.contains("└ Error: Cannot connect to the Docker daemon"), "{info}");
    for i in 0..3 {
        m.docker_ok(&["create", "--name", &format!("after{i}"), "busybox", "true"]);
        assert_eq!(m.node_of(&format!("after{i}")), "live-1");
    }
    let e = m.docker(&["create", "-e", "constraint:node==dies-2", "busybox", "true"]);
    assert!(!e.success() && e.stderr.contains("dies-2: health: node is not healthy"), "{e}");
    let metrics =
        testground::http::tcp(&m.proc.addr, &testground::http::Request { method: "GET", path: "/metrics", headers: &[], body: b"" })
            .expect("metrics");
    let text = metrics.text();
    assert!(text.contains("swarm_nodes{state=\"unhealthy\"} 1") && text.contains("swarm_scheduling_seconds_bucket"), "{text}");
    let _ = PathBuf::new();
}

/// An engine serving TLS with the test CA's server certificate, requiring client certificates.
fn tls_node(certs: &testground::tls::Certs, name: &str) -> Node {
    let p = |n: &str| certs.path(n).display().to_string();
    let port = free_port();
    let o = common::opts()
        .arg("-H")
        .arg(&format!("tcp://127.0.0.1:{port}"))
        .arg("--tlsverify")
        .arg("--tlscacert")
        .arg(&p("ca.pem"))
        .arg("--tlscert")
        .arg(&p("server-cert.pem"))
        .arg("--tlskey")
        .arg(&p("server-key.pem"))
        .arg("--name")
        .arg(name);
    Node { engine: Engine::start_with(o), addr: format!("127.0.0.1:{port}") }
}

#[test]
fn tls_both_ways() {
    require_root!();
    let certs = testground::tls::Certs::generate().expect("certs");
    certs.add_manager().expect("manager certificate");
    let p = |n: &str| certs.path(n).display().to_string();
    let n = tls_node(&certs, "tls-node");
    let args = ["--tlsverify", "--tlscacert", &p("ca.pem"), "--tlscert", &p("manager-cert.pem"), "--tlskey", &p("manager-key.pem")];
    // No periodic refresh: what the node does reaches the manager only through its event stream.
    let slow = ["--engine-refresh-min-interval", "1h", "--engine-refresh-max-interval", "1h"];
    let m = Manager::start_with(&[&n], &[&args[..], &slow[..]].concat(), Some(certs.dir.path().to_path_buf()));
    m.docker_ok(&["load", "-i", &testground::busybox_image_archive().display().to_string()]);
    let out = m.docker_ok(&["run", "--rm", "busybox", "echo", "over-tls-both-ways"]);
    assert!(out.contains("over-tls-both-ways"), "{out}");
    // The node's event stream runs over TLS too: a volume made on the node shows within seconds.
    let vol = n.engine.unique("tlsvol");
    n.engine.docker_ok(&["volume", "create", &vol]);
    let vols = || m.docker_ok(&["volume", "ls", "--format", "{{.Name}}"]);
    assert!(wait_until(Duration::from_secs(10), || vols().contains(&vol)), "{:?}\n{}", vols(), m.log());
    // A client without a certificate is turned away.
    let mut c = Command::new(testground::engine::docker_cli());
    c.env("DOCKER_HOST", format!("tcp://{}", m.proc.addr)).env("DOCKER_CONFIG", m.proc.dir()).args(["--tls", "info"]);
    let plain = cmd::run(&mut c, None, Duration::from_secs(20));
    assert!(!plain.success(), "{plain}");
}

/// `--tls` with `--tlscacert` (no `--tlsverify`): node certificates are verified against the CA
/// (classic Swarm skipped that): a node signed by another CA never joins.
#[test]
fn tls_with_a_ca_verifies_node_certificates() {
    require_root!();
    let certs = testground::tls::Certs::generate().expect("certs");
    certs.add_manager().expect("manager certificate");
    let p = |n: &str| certs.path(n).display().to_string();
    let n = tls_node(&certs, "tls-ca-node");
    let tls = |ca: &str| {
        [
            "--tls".to_string(),
            "--tlscacert".into(),
            p(ca),
            "--tlscert".into(),
            p("manager-cert.pem"),
            "--tlskey".into(),
            p("manager-key.pem"),
        ]
    };
    let good = tls("ca.pem");
    let good: Vec<&str> = good.iter().map(String::as_str).collect();
    let m = Manager::start_with(&[&n], &good, Some(certs.dir.path().to_path_buf()));
    drop(m);
    let rogue = tls("rogueca.pem");
    let rogue: Vec<&str> = rogue.iter().map(String::as_str).collect();
    let m = Manager::spawn_with(&[&n], &rogue, Some(certs.dir.path().to_path_buf()));
    let refused = wait_until(Duration::from_secs(20), || {
        let info = m.docker(&["info"]).stdout;
        info.contains("└ Status: Pending") && info.to_ascii_lowercase().contains("certificate")
    });
    assert!(refused, "{}\n{}", m.docker(&["info"]), m.log());
    assert!(!m.docker(&["info"]).stdout.contains("└ Status: Healthy"));
}

/// Networks and volumes made, changed and removed directly on a node (behind the manager's
/// back) reach `docker network ls`/`volume ls`/`network inspect` through the manager from the
/// node's event stream: the safety-net refresh is an hour away here.
#[test]
fn networks_and_volumes_follow_node_events() {
    require_root!();
    let n1 = node("node-1", &[]);
    let n2 = node("node-2", &[]);
    let m = Manager::start(&[&n1, &n2], &["--engine-refresh-min-interval", "1h", "--engine-refresh-max-interval", "1h"]);
    let (net, vol, ctr) = (n1.engine.unique("evnet"), n2.engine.unique("evvol"), n1.engine.unique("evctr"));
    // Each check is a docker CLI run (up to ~1 s on a loaded host); the refresh is an hour away.
    let soon = Duration::from_secs(10);
    let nets = |filter: &[&str]| lines(&m.docker_ok(&[&["network", "ls", "--format", "{{.Name}}"][..], filter].concat()));
    let vols = |filter: &[&str]| lines(&m.docker_ok(&[&["volume", "ls", "--format", "{{.Name}}"][..], filter].concat()));
    let (net_on_1, vol_on_2) = (format!("node-1/{net}"), format!("node-2/{vol}"));

    n1.engine.docker_ok(&["network", "create", &net]);
    n2.engine.docker_ok(&["volume", "create", &vol]);
    assert!(wait_until(soon, || nets(&[]).contains(&net_on_1)), "{:?}\n{}", nets(&[]), m.log());
    assert!(wait_until(soon, || vols(&[]).contains(&vol_on_2)), "{:?}\n{}", vols(&[]), m.log());
    // Filters apply to what the manager holds.
    assert!(!nets(&["--filter", "node=node-2"]).contains(&net_on_1));
    assert_eq!(nets(&["--filter", &format!("name={net}")]), vec![net_on_1.clone()]);
    assert_eq!(nets(&["--filter", "node=node-1", "--filter", "type=custom"]), vec![net_on_1.clone()]);
    assert_eq!(vols(&["--filter", "dangling=true", "--filter", &format!("name={vol}")]), vec![vol_on_2.clone()]);
    assert!(m.docker_ok(&["volume", "inspect", "-f", "{{.Driver}}", &vol_on_2]).trim() == "local");

    // A container connected on the node shows in the network's inspect through the manager.
    n1.engine.docker_ok(&["load", "-i", &testground::busybox_image_archive().display().to_string()]);
    n1.engine.docker_ok(&["run", "-d", "--name", &ctr, "busybox", "sleep", "1000"]);
    n1.engine.docker_ok(&["network", "connect", &net, &ctr]);
    let members = |target: &str| m.docker(&["network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{end}}", target]).stdout;
    assert!(wait_until(soon, || members(&net).trim() == ctr), "{:?}\n{}", members(&net), m.log());
    assert_eq!(members(&net_on_1).trim(), ctr);
    // The manager's container view follows the connect too (`ps --filter network=`).
    let on_net = || m.docker_ok(&["ps", "--filter", &format!("network={net}"), "--format", "{{.Names}}"]).trim().to_string();
    let want = format!("node-1/{ctr}");
    assert!(wait_until(soon, || on_net() == want), "{:?}\n{}", on_net(), m.log());
    assert!(nets(&["--filter", "dangling=true"]).is_empty(), "{:?}", nets(&["--filter", "dangling=true"]));
    n1.engine.docker_ok(&["network", "disconnect", &net, &ctr]);
    assert!(wait_until(soon, || members(&net).trim().is_empty()), "{:?}\n{}", members(&net), m.log());
    assert!(wait_until(soon, || on_net().is_empty()), "{:?}\n{}", on_net(), m.log());

    // Removed on the node: gone from the manager too.
    n1.engine.docker_ok(&["network", "rm", &net]);
    n2.engine.docker_ok(&["volume", "rm", &vol]);
    assert!(wait_until(soon, || !nets(&[]).contains(&net_on_1)), "{:?}\n{}", nets(&[]), m.log());
    assert!(wait_until(soon, || !vols(&[]).contains(&vol_on_2)), "{:?}\n{}", vols(&[]), m.log());
    let gone = m.docker(&["network", "inspect", &net]);
    assert!(!gone.success() && gone.stderr.contains("No such network"), "{gone}");

    // Through the manager: listed as soon as created, gone as soon as removed.
    let (net2, vol2) = (n2.engine.unique("mgrnet"), n1.engine.unique("mgrvol"));
    m.docker_ok(&["network", "create", &format!("node-2/{net2}")]);
    assert!(nets(&[]).contains(&format!("node-2/{net2}")), "{:?}", nets(&[]));
    m.docker_ok(&["volume", "create", &format!("node-1/{vol2}")]);
    assert!(vols(&[]).contains(&format!("node-1/{vol2}")), "{:?}", vols(&[]));
    // A container on that network is placed where the manager knows the network lives.
    m.docker_ok(&["load", "-i", &testground::busybox_image_archive().display().to_string()]);
    let placed = n2.engine.unique("placed");
    m.docker_ok(&["create", "--name", &placed, "--net", &net2, "busybox", "true"]);
    assert_eq!(m.node_of(&placed), "node-2");
    m.docker_ok(&["rm", &placed]);
    m.docker_ok(&["network", "rm", &net2]);
    assert!(!nets(&[]).contains(&format!("node-2/{net2}")), "{:?}", nets(&[]));
    m.docker_ok(&["volume", "rm", &format!("node-1/{vol2}")]);
    assert!(!vols(&[]).contains(&format!("node-1/{vol2}")), "{:?}", vols(&[]));
}

/// What scripts written for classic Swarm check through the manager: `ps -l`/`-n` over the
/// whole cluster, cluster-wide names on rename, ambiguous local network names, classic's
/// conditions in a scheduling failure, `save` of images no single node holds, and a volume's
/// inspect as its node answers it.
#[test]
fn classic_swarm_answers_through_the_manager() {
    require_root!();
    let n0 = node("node-0", &[]);
    let n1 = node("node-1", &[]);
    let m = Manager::start(&[&n0, &n1], &[]);
    m.docker_ok(&["load", "-i", &testground::busybox_image_archive().display().to_string()]);

    // ps -l / -n N: the newest of the cluster, stopped ones included (creation times are seconds).
    m.docker_ok(&["create", "--name", "oldest", "-e", "constraint:node==node-0", "busybox", "true"]);
    std::thread::sleep(Duration::from_millis(1100));
    m.docker_ok(&["run", "-d", "--name", "middle", "-e", "constraint:node==node-1", "busybox", "sleep", "1000"]);
    std::thread::sleep(Duration::from_millis(1100));
    m.docker_ok(&["create", "--name", "newest", "-e", "constraint:node==node-0", "busybox", "true"]);
    assert_eq!(lines(&m.docker_ok(&["ps", "-l", "--format", "{{.Names}}"])), vec!["node-0/newest"]);
    assert_eq!(lines(&m.docker_ok(&["ps", "-n", "2", "--format", "{{.Names}}"])), vec!["node-0/newest", "node-1/middle"]);
    assert_eq!(lines(&m.docker_ok(&["ps", "-n", "5", "-q"])).len(), 3);
    assert_eq!(lines(&m.docker_ok(&["ps", "--format", "{{.Names}}"])), vec!["node-1/middle"]);

    // rename: names are unique in the whole cluster.
    let o = m.docker(&["rename", "oldest", "middle"]);
    assert!(!o.success() && o.stderr.contains("Conflict") && o.stderr.contains("\"/middle\" is already in use"), "{o}");
    m.docker_ok(&["rename", "oldest", "renamed"]);
    assert_eq!(m.node_of("renamed"), "node-0");
    assert!(!m.docker(&["inspect", "oldest"]).success());

    // Every node has a `bridge`: the bare name is ambiguous, `node/bridge` is one of them.
    let o = m.docker(&["network", "inspect", "bridge"]);
    assert!(!o.success() && o.stderr.contains("network bridge is ambiguous (2 matches found based on name)"), "{o}");
    assert!(o.stderr.contains("node-0/bridge") && o.stderr.contains("node-1/bridge"), "{o}");
    assert_eq!(m.docker_ok(&["network", "inspect", "-f", "{{.Name}} {{.Driver}}", "node-0/bridge"]).trim(), "node-0/bridge bridge");
    let id1 = n1.engine.docker_ok(&["network", "inspect", "-f", "{{.Id}}", "bridge"]);
    assert_eq!(m.docker_ok(&["network", "inspect", "-f", "{{.Id}}", "node-1/bridge"]), id1);

    // A link co-places; a failure lists classic's conditions first, then why each node was out.
    m.docker_ok(&["run", "-d", "--name", "b1", "-e", "constraint:node==node-1", "busybox", "sleep", "500"]);
    m.docker_ok(&["create", "--name", "b2", "--link=/b1:foo", "busybox", "true"]);
    assert_eq!(m.node_of("b2"), "node-1");
    assert_eq!(m.docker_ok(&["inspect", "-f", "{{ .HostConfig.Links }}", "b2"]).trim(), "[/b1:/b2/foo]");
    let o = m.docker(&["create", "--link=/b1:foo", "-e", "constraint:node==node-0", "busybox", "true"]);
    assert!(!o.success(), "{o}");
    let want = "Unable to find a node that satisfies the following conditions \n[available container slots]\n[--link=/b1:foo]\n[node==node-0]\nwhy each node was rejected:";
    assert!(o.stderr.contains(want), "want {want:?} in:\n{}", o.stderr);
    assert!(o.stderr.contains("node-0: dependency: does not hold container b1") && o.stderr.contains("node-1: constraint"), "{o}");
    // Host networking: a port exposed once per node.
    for _ in 0..2 {
        m.docker_ok(&["create", "--expose=80", "--net=host", "busybox", "sh"]);
    }
    let o = m.docker(&["create", "--expose=80", "--net=host", "busybox", "sh"]);
    assert!(!o.success() && o.stderr.contains("conditions \n[port 80/tcp (Host mode)]\nwhy each node was rejected:"), "{o}");

    // save of images that no single node holds.
    n0.engine.docker_ok(&["tag", "busybox", "only-on-0:v1"]);
    n1.engine.docker_ok(&["tag", "busybox", "only-on-1:v1"]);
    let images = || lines(&m.docker_ok(&["images", "--format", "{{.Repository}}"]));
    assert!(
        wait_until(Duration::from_secs(10), || images().contains(&"only-on-0".to_string()) && images().contains(&"only-on-1".to_string())),
        "{:?}",
        images()
    );
    let out = m.proc.dir().join("save.tar").display().to_string();
    let o = m.docker(&["save", "-o", &out, "only-on-0:v1", "only-on-1:v1"]);
    assert!(!o.success() && o.stderr.contains("Unable to find a healthy engine containing all images"), "{o}");
    m.docker_ok(&["save", "-o", &out, "only-on-0:v1", "busybox"]);
    assert!(std::fs::metadata(&out).is_ok_and(|md| md.len() > 0));

    // volume inspect node/name: the node's own answer.
    let vol = n1.engine.unique("vol");
    n1.engine.docker_ok(&["volume", "create", "--label", "team=a", &vol]);
    let pinned = format!("node-1/{vol}");
    assert!(wait_until(Duration::from_secs(10), || m.docker(&["volume", "inspect", &pinned]).success()), "{}", m.log());
    let from_node: serde_json::Value = serde_json::from_str(&n1.engine.docker_ok(&["volume", "inspect", &vol])).expect("json");
    let through: serde_json::Value = serde_json::from_str(&m.docker_ok(&["volume", "inspect", &pinned])).expect("json");
    assert_eq!(through, from_node);
    assert_eq!(through[0]["Name"], vol.as_str());
}

/// A create on a node that lacks the image pulls it there first (the node's 404 is checked
/// against its image list, not by its wording); an image that only one node holds and no
/// registry has moves the create to that node.
#[test]
fn creates_pull_missing_images_or_follow_the_image() {
    require_root!();
    let reg = testground::registry::Registry::start();
    reg.push_busybox("pulled/busybox", "1");
    let image = format!("{}/pulled/busybox:1", reg.addr());
    let n1 = node("node-1", &[]);
    let n2 = node("node-2", &[]);
    let m = Manager::start(&[&n1, &n2], &[]);
    let out = m.docker_ok(&["run", "--rm", "-e", "constraint:node==node-2", &image, "echo", "pulled-on-create"]);
    assert!(out.contains("pulled-on-create"), "{out}");
    assert!(n2.engine.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]).contains("pulled/busybox:1"));

    // `onlyhere:1` exists on node-1 alone; spread prefers the emptier node-2, whose pull fails.
    n1.engine.docker_ok(&["load", "-i", &testground::busybox_image_archive().display().to_string()]);
    n1.engine.docker_ok(&["tag", "busybox", "onlyhere:1"]);
    m.docker_ok(&["create", "--name", "filler", "-e", "constraint:node==node-1", "onlyhere:1", "true"]);
    m.docker_ok(&["run", "-d", "--name", "follows", "onlyhere:1", "sleep", "60"]);
    assert_eq!(m.node_of("follows"), "node-1");
    m.docker_ok(&["rm", "-f", "filler", "follows"]);
}
