//! Overlay networks over an engine's life: a network created on one node is listed on the
//! other within two seconds (the store is watched); `--link` and a shared `--network-alias`
//! across nodes; an engine restart keeps its containers' addresses and connectivity; a clean
//! stop and `network rm` leave no VXLAN or bridge behind; an engine whose cluster store is down
//! starts, says so, and gets its overlay networks once the store is back, without a restart.
mod discovery_common;
mod overlay_common;
use discovery_common::*;
use overlay_common::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use testground::etcd::Etcd;

/// Waits until `node` lists (or no longer lists) network `name`; how long that took.
fn listed_within(node: &Node, name: &str, present: bool) -> Option<Duration> {
    testground::seen_within(Instant::now(), Duration::from_secs(10), || {
        node.docker(&["network", "ls", "--format", "{{.Name}}"]).stdout.lines().any(|l| l == name) == present
    })
}

/// The first address `nslookup name` answers in container `c`.
fn first_answer(node: &Node, c: &str, name: &str) -> String {
    let o = node.ok(&["exec", c, "nslookup", name]);
    let after = o.split_once(&format!("Name:\t{name}")).map(|(_, a)| a).unwrap_or(&o);
    after
        .lines()
        .find_map(|l| l.strip_prefix("Address: "))
        .map(|a| a.trim().to_string())
        .unwrap_or_else(|| panic!("no answer for {name}: {o}"))
}

#[test]
fn overlay_across_restarts_links_and_cleanup() {
    require_root!();
    let net = TestNet::new(2);
    let etcd = Etcd::start_on(&[&net.gateway()], None);
    let (mut agents, n) = nodes(&net, &etcd, 2);
    let (h0, h1) = (net.host(0), net.host(1));

    // Created on node 1: listed on node 2 within two seconds; the first network gets VNI 256.
    n[0].ok(&["network", "create", "-d", "overlay", "--subnet", "10.234.0.0/24", "life"]);
    let took = listed_within(&n[1], "life", true).unwrap_or_else(|| panic!("node 2 never lists the network\n{}", agents[1].log()));
    eprintln!("network create on node 1 listed on node 2 after {took:?}");
    assert!(took < Duration::from_secs(2), "node 2 listed the network only after {took:?}");
    let idle = n[1].ok(&["network", "create", "-d", "overlay", "--subnet", "10.235.0.0/24", "idle"]);
    let took = listed_within(&n[0], "idle", true).expect("node 1 never lists idle");
    assert!(took < Duration::from_secs(2), "node 1 listed idle only after {took:?}");
    for h in [h0, h1] {
        assert!(wait_until(Duration::from_secs(5), || has_vni(h, 256) && has_vni(h, 257)), "{}", vxlans(h));
    }

    // A shared alias on both nodes, and a --link to a container of the other node.
    n[0].ok(&["run", "-d", "--name", "a1", "--network", "life", "--network-alias", "shared", "busybox", "sleep", "600"]);
    n[1].ok(&["run", "-d", "--name", "b1", "--network", "life", "--network-alias", "shared", "busybox", "sleep", "600"]);
    let (ipa, ipb) = (n[0].ip_of("a1"), n[1].ip_of("b1"));
    assert!(n[0].ping("a1", "b1"), "a1 -> b1\n{}", agents[0].log());
    assert!(n[1].ping("b1", "a1"), "b1 -> a1");
    n[0].ok(&["run", "-d", "--name", "l1", "--network", "life", "--link", "b1:buddy", "busybox", "sleep", "600"]);
    assert!(n[0].ping("l1", "buddy"), "l1 -> buddy (b1 on node 2)");
    assert_eq!(first_answer(&n[0], "l1", "buddy"), ipb);
    let e = n[0].err(&["run", "--rm", "--network", "life", "--link", "nosuch:x", "busybox", "true"]);
    assert!(e.contains("nosuch"), "{e}");
    // Round robin: both nodes' addresses, each first in turn.
    let o = n[0].ok(&["exec", "l1", "nslookup", "shared"]);
    assert!(o.contains(&ipa) && o.contains(&ipb), "{o}");
    let firsts: BTreeSet<String> = (0..4).map(|_| first_answer(&n[0], "l1", "shared")).collect();
    assert_eq!(firsts, BTreeSet::from([ipa.clone(), ipb.clone()]), "round robin over a shared alias");

    // Node 2's engine stops cleanly: the network without a container there (idle, VNI 257)
    // leaves no VXLAN or bridge; life keeps its devices and b1 stays reachable meanwhile.
    assert!(agents[1].terminate(Duration::from_secs(15)).is_some(), "{}", agents[1].log());
    assert!(!has_vni(h1, 257), "idle's VXLAN left after a clean stop:\n{}", vxlans(h1));
    assert!(!links(h1, "bridge").contains(&idle[..6]), "idle's bridge left after a clean stop:\n{}", links(h1, "bridge"));
    assert!(has_vni(h1, 256), "life's VXLAN went with containers on it:\n{}", vxlans(h1));
    assert!(n[0].ping("a1", &ipb), "a1 -> b1 while node 2's engine is stopped");

    // Started again: b1 keeps its address, names answer both ways, the link too.
    agents[1] = agent(&net, &etcd, 1);
    assert!(wait_until(T, || n[1].docker(&["version"]).success()), "{}", agents[1].log());
    assert_eq!(n[1].ip_of("b1"), ipb, "b1's address after its engine's restart");
    assert!(n[1].ping("b1", "a1"), "b1 -> a1 after the restart\n{}", agents[1].log());
    assert!(n[0].ping("a1", "b1"), "a1 -> b1 after the restart");
    assert!(n[0].ping("l1", "buddy"), "l1 -> buddy after the restart");
    assert!(wait_until(Duration::from_secs(5), || has_vni(h1, 257)), "idle set up again:\n{}", vxlans(h1));

    // network rm: nothing left on either host.
    n[0].ok(&["rm", "-f", "a1", "l1"]);
    n[1].ok(&["rm", "-f", "b1"]);
    assert!(wait_until(Duration::from_secs(10), || n[1].docker(&["network", "rm", "life", "idle"]).success()));
    let took = listed_within(&n[0], "life", false).expect("node 1 still lists life");
    assert!(took < Duration::from_secs(2), "node 1 dropped life only after {took:?}");
    for (i, h) in [h0, h1].into_iter().enumerate() {
        assert!(wait_until(Duration::from_secs(5), || vxlans(h).trim().is_empty()), "host {i} keeps a VXLAN:\n{}", vxlans(h));
    }

    // A clean stop with no container on an overlay network leaves no VXLAN either.
    n[0].ok(&["network", "create", "-d", "overlay", "last"]);
    assert!(wait_until(Duration::from_secs(5), || !vxlans(h1).trim().is_empty()));
    for (i, a) in agents.iter_mut().enumerate() {
        assert!(a.terminate(Duration::from_secs(15)).is_some(), "{}", a.log());
        let h = net.host(i);
        assert!(vxlans(h).trim().is_empty(), "host {i} keeps a VXLAN after a clean stop:\n{}", vxlans(h));
    }
}

#[test]
fn an_engine_starts_while_its_cluster_store_is_down() {
    require_root!();
    let net = TestNet::new(1);
    let disc = Etcd::start_on(&[&net.gateway()], None);
    let mut store = Etcd::start_on(&[&net.gateway()], None);
    let url = format!("etcd://{}/fltnet", store.endpoint());
    store.kill();
    let a = join(net.host(0), &disc_of(&disc), &["--cluster-store", &url]);
    let node = Node { url: format!("tcp://{}", advertise(net.host(0))) };
    assert!(wait_until(T, || node.docker(&["version"]).success()), "{}", a.log());

    // It says so, in its log and in docker info.
    let warnings = || node.ok(&["info", "--format", "{{json .Warnings}}"]);
    assert!(warnings().contains("cluster store unreachable"), "{}", warnings());
    assert!(a.log().contains("cluster store unreachable"), "{}", a.log());

    // Local networks work; overlay operations fail naming the store.
    node.ok(&["load", "-i", &testground::busybox_image_archive().display().to_string()]);
    node.ok(&["network", "create", "loc"]);
    node.ok(&["run", "--rm", "--network", "loc", "busybox", "true"]);
    let e = node.err(&["network", "create", "-d", "overlay", "ov"]);
    assert!(e.contains("cluster store") && e.contains("unreachable") && e.contains(&url), "{e}");

    // The store comes back: overlay networks work, without a restart.
    store.start_again();
    assert!(wait_until(Duration::from_secs(30), || node.docker(&["network", "create", "-d", "overlay", "ov"]).success()), "{}", a.log());
    assert!(!warnings().contains("cluster store unreachable"), "{}", warnings());
    node.ok(&["run", "--rm", "--network", "ov", "busybox", "true"]);
    node.ok(&["network", "rm", "ov", "loc"]);
}
