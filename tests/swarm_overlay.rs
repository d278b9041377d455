//! Overlay networks end to end: a real etcd, agents (`swarm join --cluster-store etcd://…`) in
//! network-namespace hosts, the docker CLI against each node. A network created on one node is
//! listed everywhere (scope global); containers on two nodes ping each other by address, name and
//! alias in both directions over VXLAN; bad input is refused with a clear error; `network rm`
//! leaves no device behind on any host.
mod discovery_common;
mod overlay_common;
use discovery_common::manager;
use discovery_common::*;
use overlay_common::*;
use std::time::Duration;
use testground::etcd::Etcd;

#[test]
fn containers_on_two_nodes_talk_over_an_overlay() {
    require_root!();
    let net = TestNet::new(2);
    let mut etcd = Etcd::start_on(&[&net.gateway()], None);
    let (mut agents, n) = nodes(&net, &etcd, 2);

    let id = n[0].ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.231.0.0/24",
        "--label",
        "app=x",
        "-o",
        "com.docker.network.driver.mtu=1400",
        "ovnet",
    ]);
    // Seen by the other node through the store, with the global scope.
    assert!(
        wait_until(Duration::from_secs(10), || n[1]
            .docker(&["network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"])
            .stdout
            .contains("ovnet overlay global")),
        "{}",
        n[1].docker(&["network", "ls"])
    );
    assert_eq!(
        n[1].ok(&["network", "inspect", "-f", "{{.Id}} {{index .Labels \"app\"}} {{range .IPAM.Config}}{{.Subnet}}{{end}}", "ovnet"]),
        format!("{id} x 10.231.0.0/24")
    );

    // Bad input, each refused with a clear error, nothing changed.
    let e = n[1].err(&["network", "create", "-d", "overlay", "ovnet"]);
    assert!(e.contains("already exists"), "{e}");
    let e = n[1].err(&["network", "create", "-d", "overlay", "--subnet", "10.231.0.128/25", "other"]);
    assert!(e.contains("overlaps"), "{e}");
    let e = n[1].err(&["network", "create", "-d", "overlay", "-o", "encrypted", "enc"]);
    assert!(e.contains("encrypted") && e.contains("not supported"), "{e}");
    let e = n[1].err(&["run", "--rm", "--network", "ovnet", "--ip", "10.232.0.9", "busybox", "true"]);
    assert!(e.contains("10.232.0.9"), "{e}");
    assert_eq!(n[0].ok(&["network", "ls", "-q", "--filter", "driver=overlay"]).lines().count(), 1);

    n[0].ok(&["run", "-d", "--name", "c1", "--network", "ovnet", "busybox", "sleep", "600"]);
    n[1].ok(&[
        "run",
        "-d",
        "--name",
        "c2",
        "--network",
        "ovnet",
        "--network-alias",
        "web",
        "--ip",
        "10.231.0.77",
        "busybox",
        "sleep",
        "600",
    ]);
    let ip_of = |node: &Node, c: &str| node.ip_of(c);
    let (ip1, ip2) = (ip_of(&n[0], "c1"), ip_of(&n[1], "c2"));
    assert_eq!(ip2, "10.231.0.77");
    assert!(ip1.starts_with("10.231.0.") && ip1 != ip2, "{ip1}");
    assert_eq!(n[0].ok(&["exec", "c1", "cat", "/sys/class/net/eth0/mtu"]), "1400");

    // By address, name and alias, both ways (the FDB arrives through the watch).
    let ping = |node: &Node, c: &str, to: &str| {
        wait_until(Duration::from_secs(15), || node.docker(&["exec", c, "ping", "-c", "1", "-W", "1", to]).success())
    };
    assert!(ping(&n[0], "c1", &ip2), "c1 -> {ip2}\n{}\n{}", agents[0].log(), agents[1].log());
    assert!(ping(&n[1], "c2", &ip1), "c2 -> {ip1}");
    assert!(ping(&n[0], "c1", "c2"), "c1 -> c2 by name");
    assert!(ping(&n[0], "c1", "web"), "c1 -> web by alias");
    assert!(ping(&n[1], "c2", "c1"), "c2 -> c1 by name");
    assert!(ping(&n[1], "c2", "c1.ovnet"), "c2 -> c1.ovnet");
    let o = n[0].ok(&["exec", "c1", "nslookup", "c2"]);
    assert!(o.contains("10.231.0.77"), "{o}");
    // An address is never given twice: taken on node 2, refused on node 1.
    let e = n[0].err(&["run", "--rm", "--network", "ovnet", "--ip", "10.231.0.77", "busybox", "true"]);
    assert!(e.contains("already in use"), "{e}");

    // A published port of an overlay container answers on its node's address.
    n[1].ok(&[
        "run",
        "-d",
        "--name",
        "w1",
        "--network",
        "ovnet",
        "-p",
        "8099:80",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /www && echo ov-port-ok > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    let get = || {
        testground::http::tcp(
            &format!("{}:8099", net.host(1).ip()),
            &testground::http::Request { method: "GET", path: "/", headers: &[], body: b"" },
        )
    };
    assert!(wait_until(Duration::from_secs(10), || get().is_ok_and(|r| r.text().contains("ov-port-ok"))), "{:?}", get());
    // And by name from the other node.
    let o = n[0].ok(&["exec", "c1", "wget", "-qO-", "http://w1/"]);
    assert!(o.contains("ov-port-ok"), "{o}");
    n[1].ok(&["rm", "-f", "w1"]);

    // Outside through NAT on the container's own node: the test bridge's gateway (the root netns).
    assert!(ping(&n[0], "c1", &net.gateway()), "c1 -> {} (NAT out)", net.gateway());

    // Concurrent starts on both nodes never get the same address.
    let ips: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|i| {
                let node = &n[i % 2];
                s.spawn(move || {
                    let c = format!("p{i}");
                    node.ok(&["run", "-d", "--name", &c, "--network", "ovnet", "busybox", "sleep", "600"]);
                    node.ok(&["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", &c])
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("run thread")).collect()
    });
    let mut uniq = ips.clone();
    uniq.extend([ip1.clone(), ip2.clone()]);
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 8, "an address was given twice: {ips:?} {ip1} {ip2}");
    for i in 0..6 {
        n[i % 2].ok(&["rm", "-f", &format!("p{i}")]);
    }

    // Node 2's agent dies (SIGKILL): its endpoints are gone from node 1 within the lease TTL.
    // It starts again: c2 (which ran on meanwhile) keeps its address, its endpoint is published
    // again, and the VXLAN and FDB come back: c1 and c2 reach each other by name both ways,
    // and so does a container started after the restart.
    agents[1].kill();
    let neigh = || net.host(0).run("ip", &["neigh", "show", "nud", "permanent"]).stdout;
    assert!(
        wait_until(Duration::from_secs(20), || !neigh().contains(&format!("{ip2} "))),
        "c2's entry stays on node 1 past the lease TTL:\n{}",
        neigh()
    );
    agents[1] = agent(&net, &etcd, 1);
    assert!(wait_until(T, || n[1].docker(&["version"]).success()), "{}", agents[1].log());
    assert_eq!(ip_of(&n[1], "c2"), ip2, "c2's address after node 2's restart");
    assert!(ping(&n[0], "c1", "c2"), "c1 -> c2 after node 2's restart\n{}", agents[1].log());
    assert!(ping(&n[1], "c2", "c1"), "c2 -> c1 after node 2's restart\n{}", agents[1].log());
    assert!(ping(&n[0], "c1", &ip2));
    n[1].ok(&["run", "-d", "--name", "c3", "--network", "ovnet", "busybox", "sleep", "600"]);
    let ip3 = ip_of(&n[1], "c3");
    assert!(ping(&n[0], "c1", "c3"), "c1 -> c3 after node 2's restart\n{}", agents[1].log());
    assert!(ping(&n[1], "c3", "c1"), "c3 -> c1 after node 2's restart");
    assert!(neigh().contains(&format!("{ip3} ")) && neigh().contains(&format!("{ip2} ")), "{}", neigh());
    n[1].ok(&["rm", "-f", "c2"]);
    assert!(wait_until(Duration::from_secs(10), || !neigh().contains(&format!("{ip2} "))), "c2 removed, entry stays:\n{}", neigh());

    // connect/disconnect of a running container (on the default bridge) with an alias.
    n[0].ok(&["run", "-d", "--name", "d1", "busybox", "sleep", "600"]);
    n[0].ok(&["network", "connect", "--alias", "dd", "ovnet", "d1"]);
    assert!(ping(&n[1], "c3", "dd"), "c3 -> dd after connect");
    n[0].ok(&["network", "disconnect", "ovnet", "d1"]);
    assert!(
        wait_until(Duration::from_secs(10), || !n[1].docker(&["exec", "c3", "ping", "-c", "1", "-W", "1", "dd"]).success()),
        "dd still answers"
    );
    n[0].ok(&["rm", "-f", "d1"]);

    // etcd down: traffic keeps flowing, network changes fail with a clear error.
    etcd.kill();
    assert!(ping(&n[0], "c1", "c3"), "c1 -> c3 with etcd down");
    let e = n[0].err(&["network", "create", "-d", "overlay", "down"]);
    assert!(e.contains("cluster store"), "{e}");
    etcd.start_again();

    // --internal: no way out, but the nodes still reach each other.
    n[0].ok(&["network", "create", "-d", "overlay", "--internal", "--subnet", "10.233.0.0/24", "inet"]);
    n[0].ok(&["run", "-d", "--name", "i1", "--network", "inet", "busybox", "sleep", "600"]);
    assert!(wait_until(Duration::from_secs(10), || n[1].docker(&["network", "inspect", "inet"]).success()));
    n[1].ok(&["run", "-d", "--name", "i2", "--network", "inet", "busybox", "sleep", "600"]);
    assert!(ping(&n[1], "i2", "i1"), "i2 -> i1 on the internal overlay");
    let o = n[0].docker(&["exec", "i1", "ping", "-c", "1", "-W", "1", &net.gateway()]);
    assert!(!o.success(), "an internal overlay reached the outside: {o}");
    n[0].ok(&["rm", "-f", "i1"]);
    n[1].ok(&["rm", "-f", "i2"]);
    assert!(wait_until(Duration::from_secs(10), || n[1].docker(&["network", "rm", "inet"]).success()));

    // In use on another node only: refused.
    n[0].ok(&["rm", "-f", "c1"]);
    let e = n[0].err(&["network", "rm", "ovnet"]);
    assert!(e.contains("active endpoints"), "{e}");
    n[1].ok(&["rm", "-f", "c3"]);
    // The other node's endpoints are gone from node 1 too.
    assert!(wait_until(Duration::from_secs(10), || !neigh().contains("10.231.0.")), "{}", neigh());
    assert!(
        wait_until(Duration::from_secs(10), || n[0].docker(&["network", "rm", "ovnet"]).success()),
        "{}",
        n[0].docker(&["network", "rm", "ovnet"])
    );
    for (i, h) in net.hosts().iter().enumerate() {
        assert!(
            wait_until(Duration::from_secs(10), || links(h, "vxlan").trim().is_empty() && !links(h, "bridge").contains(&id[..6])),
            "host {i} keeps devices:\n{}\n{}",
            links(h, "vxlan"),
            links(h, "bridge")
        );
        assert!(!n[i].ok(&["network", "ls"]).contains("ovnet"));
    }
    for a in &mut agents {
        assert!(a.terminate(Duration::from_secs(10)).is_some(), "{}", a.log());
    }
}

#[test]
fn overlay_needs_a_cluster_store() {
    require_root!();
    let net = TestNet::new(1);
    let etcd = Etcd::start_on(&[&net.gateway()], None);
    let disc = format!("etcd://{}/flt", etcd.endpoint());
    let _a = join(net.host(0), &disc, &[]);
    let node = Node { url: format!("tcp://{}", advertise(net.host(0))) };
    assert!(wait_until(T, || node.docker(&["version"]).success()));
    let e = node.err(&["network", "create", "-d", "overlay", "ov"]);
    assert!(e.contains("cluster store") && e.contains("--cluster-store"), "{e}");
    // And the flags are checked before anything starts.
    let o = discovery_common::swarm(&["engine", "--cluster-store", "etcd://127.0.0.1:1/x"]);
    assert!(!o.success() && o.stderr.contains("--cluster-advertise"), "{o}");
    let o = discovery_common::swarm(&["engine", "--cluster-store", "consul://127.0.0.1:1/x", "--cluster-advertise", "eth0:2375"]);
    assert!(!o.success() && o.stderr.contains("only etcd://"), "{o}");
}

#[test]
fn overlay_through_the_manager() {
    require_root!();
    let net = TestNet::new(3);
    let etcd = Etcd::start_on(&[&net.gateway()], None);
    let (_agents, n) = nodes(&net, &etcd, 3);
    let m = manager::Manager::start(&[&format!("etcd://{}/flt", etcd.endpoint())], 3);
    m.docker_ok(&["network", "create", "-d", "overlay", "--subnet", "10.232.0.0/24", "mnet"]);
    // Listed once, without a node prefix.
    let ls = |m: &manager::Manager| m.docker_ok(&["network", "ls", "--filter", "driver=overlay", "--format", "{{.Name}} {{.Scope}}"]);
    assert!(wait_until(Duration::from_secs(10), || ls(&m).trim() == "mnet global"), "{}", ls(&m));
    let names: Vec<String> = n.iter().map(|node| node.ok(&["info", "--format", "{{.Name}}"])).collect();
    for (i, c) in ["m1", "m2"].iter().enumerate() {
        m.docker_ok(&[
            "run",
            "-d",
            "--name",
            c,
            "--network",
            "mnet",
            "-e",
            &format!("constraint:node=={}", names[i]),
            "busybox",
            "sleep",
            "600",
        ]);
    }
    assert_eq!(m.node_of("m1"), names[0]);
    assert_eq!(m.node_of("m2"), names[1]);
    let ping =
        |c: &str, to: &str| wait_until(Duration::from_secs(15), || m.docker(&["exec", c, "ping", "-c", "1", "-W", "1", to]).success());
    assert!(ping("m1", "m2"), "m1 -> m2\n{}", m.log());
    assert!(ping("m2", "m1"), "m2 -> m1");
    // A busybox httpd on node-3, reached from node-1 by its network alias.
    m.docker_ok(&[
        "run",
        "-d",
        "--name",
        "m3",
        "--network",
        "mnet",
        "--network-alias",
        "webalias",
        "-e",
        &format!("constraint:node=={}", names[2]),
        "busybox",
        "sh",
        "-c",
        "mkdir -p /www && echo node3-web-ok > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    assert_eq!(m.node_of("m3"), names[2]);
    let fetched = wait_until(Duration::from_secs(15), || {
        m.docker(&["exec", "m1", "wget", "-qO-", "http://webalias/"]).stdout.contains("node3-web-ok")
    });
    assert!(fetched, "m1 (node-1) could not fetch from webalias on node-3\n{}", m.log());
    m.docker_ok(&["rm", "-f", "m1", "m2", "m3"]);
    m.docker_ok(&["network", "rm", "mnet"]);
    assert!(wait_until(Duration::from_secs(10), || ls(&m).trim().is_empty()), "{}", ls(&m));
    for node in &n {
        assert!(!node.ok(&["network", "ls"]).contains("mnet"));
    }

    // docker-compose 1.29: a web and a client service pinned to different nodes on an overlay.
    let dir = tempfile::Builder::new().prefix("flotilla-compose-").tempdir().expect("tempdir");
    let file = format!(
        r#"version: "2.4"
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo overlay-web-ok > /www/index.html && exec httpd -f -p 80 -h /www"]
    environment: ["constraint:node=={}"]
  client:
    image: busybox
    depends_on: [web]
    environment: ["constraint:node=={}"]
    command: ["sh", "-c", "while true; do wget -qO- http://web/; sleep 1; done"]
networks:
  default:
    driver: overlay
"#,
        names[0], names[1]
    );
    std::fs::write(dir.path().join("docker-compose.yml"), file).expect("compose file");
    let project = format!("ov{}", std::process::id());
    let compose = |args: &[&str]| {
        let mut c = m.command("/usr/local/bin/docker-compose");
        c.current_dir(dir.path()).args(["--ansi", "never", "-p", &project]).args(args);
        testground::cmd::run(&mut c, None, Duration::from_secs(120))
    };
    let up = compose(&["up", "-d"]);
    assert!(up.success(), "{up}\n{}", m.log());
    let fetched = wait_until(Duration::from_secs(30), || compose(&["logs", "client"]).stdout.contains("overlay-web-ok"));
    let down = || compose(&["down", "-t", "1"]);
    if !fetched {
        let logs = compose(&["logs"]);
        down();
        panic!("client did not reach web across nodes:\n{logs}");
    }
    assert_eq!(m.node_of(&format!("{project}_web_1")), names[0]);
    assert_eq!(m.node_of(&format!("{project}_client_1")), names[1]);
    let d = down();
    assert!(d.success(), "{d}");
    assert!(!m.docker_ok(&["network", "ls"]).contains(&project));
}
