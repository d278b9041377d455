//! What the overlay tests share: agents with `--cluster-store` in netns hosts, the docker CLI
//! against each node, and what a user looks at on a host (`ip -d link`, `ip neigh`).
#![allow(dead_code)]
use crate::discovery_common::*;
use std::time::Duration;
use testground::cmd::Output;
use testground::etcd::Etcd;

pub const T: Duration = Duration::from_secs(60);

pub struct Node {
    pub url: String,
}

impl Node {
    pub fn docker(&self, args: &[&str]) -> Output {
        docker_at(&self.url, args, T)
    }
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(o.success(), "{o}");
        o.stdout.trim().to_string()
    }
    /// The error of a command that must fail.
    pub fn err(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(!o.success(), "should have failed: {o}");
        o.stderr
    }
    /// The container's address (on its only network).
    pub fn ip_of(&self, c: &str) -> String {
        self.ok(&["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", c])
    }
    /// `ping` from container `c` to `to` answers within 15 s.
    pub fn ping(&self, c: &str, to: &str) -> bool {
        wait_until(Duration::from_secs(15), || self.docker(&["exec", c, "ping", "-c", "1", "-W", "1", to]).success())
    }
}

pub fn disc_of(etcd: &Etcd) -> String {
    format!("etcd://{}/flt", etcd.endpoint())
}

pub fn store_of(etcd: &Etcd) -> String {
    format!("etcd://{}/fltnet", etcd.endpoint())
}

/// `swarm join --cluster-store` in host `i`.
pub fn agent(net: &TestNet, etcd: &Etcd, i: usize) -> HostProc {
    join(net.host(i), &disc_of(etcd), &["--cluster-store", &store_of(etcd)])
}

/// Agents in the first `n` hosts, registered and serving, with busybox loaded.
pub fn nodes(net: &TestNet, etcd: &Etcd, n: usize) -> (Vec<HostProc>, Vec<Node>) {
    let disc = disc_of(etcd);
    let agents: Vec<HostProc> = (0..n).map(|i| agent(net, etcd, i)).collect();
    let want: Vec<String> = (0..n).map(|i| advertise(net.host(i))).collect();
    wait_list(&[&disc], &want, T);
    let nodes: Vec<Node> = (0..n).map(|i| Node { url: format!("tcp://{}", advertise(net.host(i))) }).collect();
    let archive = testground::busybox_image_archive();
    for node in &nodes {
        assert!(wait_until(T, || node.docker(&["version"]).success()), "engine at {} not up", node.url);
        node.ok(&["load", "-i", &archive.display().to_string()]);
    }
    (agents, nodes)
}

/// Every link of `kind` (vxlan, bridge) in the host.
pub fn links(h: &Host, kind: &str) -> String {
    let o = h.run("ip", &["-o", "link", "show", "type", kind]);
    assert!(o.success(), "{o}");
    o.stdout
}

/// `ip -d link show type vxlan`: the VXLAN devices with their VNI.
pub fn vxlans(h: &Host) -> String {
    let o = h.run("ip", &["-d", "-o", "link", "show", "type", "vxlan"]);
    assert!(o.success(), "{o}");
    o.stdout
}

/// The host has a VXLAN device for `vni`.
pub fn has_vni(h: &Host, vni: u32) -> bool {
    vxlans(h).contains(&format!("vxlan id {vni} "))
}
