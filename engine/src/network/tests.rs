//! The network service's logic through the recording fakes ([`super::fake`]): what it asks of
//! netlink and iptables for a start, a network create/remove, an endpoint's plumbing and a
//! restart's clean-up. These tests run without root: they create no kernel object (no netns,
//! link or rule), only temp dirs.
use super::fake::{FakeIptables, FakeNetlink};
use super::plumb::{plumb, Plumb};
use super::service::Seams;
use super::*;
use crate::events::EventBus;
use std::os::fd::OwnedFd;

struct Env {
    cfg: crate::EngineConfig,
    nl: FakeNetlink,
    ipt: FakeIptables,
    events: EventBus,
    _tmp: tempfile::TempDir,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cfg = crate::EngineConfig::with_defaults();
    cfg.bridge_name = "flt0".into();
    cfg.bridge_cidr = "172.31.0.1/16".into();
    cfg.data_root = tmp.path().join("data");
    cfg.exec_root = tmp.path().join("exec");
    cfg.net.ip_forward = false; // /proc needs root
    Env { cfg, nl: FakeNetlink::default(), ipt: FakeIptables::default(), events: EventBus::default(), _tmp: tmp }
}

impl Env {
    fn seams(&self) -> Seams {
        Seams { netlink: Arc::new(self.nl.clone()), iptables: Arc::new(self.ipt.clone()) }
    }

    async fn start(&self) -> Result<NetworkService, NetworkError> {
        NetworkService::start_with(&self.cfg, self.events.clone(), Tasks::new("test"), self.seams()).await
    }

    fn last_rules(&self) -> String {
        self.ipt.restores().last().cloned().expect("rules applied")
    }
}

fn create(name: &str) -> CreateNetwork {
    CreateNetwork { name: name.into(), ..Default::default() }
}

/// The iptables commands of one kind (`-I`, `-N`, ...).
fn commands(ipt: &FakeIptables, op: &str) -> Vec<String> {
    ipt.calls().into_iter().filter(|c| c.split(' ').nth(3) == Some(op)).collect()
}

#[tokio::test]
async fn start_makes_the_default_bridge_and_hooks_our_chains_before_filling_them() {
    let e = env();
    let svc = e.start().await.expect("start");
    assert_eq!(e.nl.calls(), ["host ensure_bridge flt0 172.31.0.1/16", "host route_localnet flt0"]);
    assert_eq!(commands(&e.ipt, "-N").len(), 4, "{:?}", e.ipt.calls());
    let inserts = commands(&e.ipt, "-I");
    assert_eq!(
        inserts,
        [
            "iptables -t filter -I FORWARD 1 -m comment --comment flotilla:flt0 -j FLT-flt0",
            "iptables -t filter -I INPUT 1 -m comment --comment flotilla:flt0 -j FLT-flt0-IN",
            "iptables -t nat -I POSTROUTING 1 -m comment --comment flotilla:flt0 -j FLT-flt0-NAT",
            "iptables -t nat -I PREROUTING 1 -m addrtype --dst-type LOCAL -m comment --comment flotilla:flt0 -j FLT-flt0-DNAT",
            "iptables -t nat -I OUTPUT 1 -m addrtype --dst-type LOCAL -m comment --comment flotilla:flt0 -j FLT-flt0-DNAT",
        ]
    );
    // The chains' contents come last, in one restore.
    assert_eq!(e.ipt.calls().last().map(String::as_str), Some("iptables-restore"));
    assert!(e.last_rules().contains("-A FLT-flt0-NAT -s 172.31.0.0/16 ! -o flt0 -m comment --comment flotilla:flt0 -j MASQUERADE\n"));
    assert_eq!(svc.subnet(), ("172.31.0.0/16".to_string(), "172.31.0.1".parse().unwrap()));
}

#[tokio::test]
async fn a_restart_checks_the_jumps_and_inserts_none_twice() {
    let e = env();
    e.start().await.expect("start");
    e.start().await.expect("restart");
    assert_eq!(commands(&e.ipt, "-I").len(), 5, "{:?}", e.ipt.calls());
    assert_eq!(commands(&e.ipt, "-C").len(), 10);
}

#[tokio::test]
async fn without_iptables_no_iptables_command_runs_and_ports_are_refused() {
    let mut e = env();
    e.cfg.net.iptables = false;
    let svc = e.start().await.expect("start");
    let net = svc.create_network(CreateNetwork { internal: true, ..create("n1") }).await.expect("create");
    svc.remove_network(&net.id).await.expect("remove");
    assert_eq!(e.ipt.calls(), Vec::<String>::new());
    let spec = PortSpec { proto: "tcp".into(), container_port: 80, host_ip: None, host_ports: (0, 0) };
    assert!(matches!(svc.publish("c1", &[spec]), Err(NetworkError::Invalid(_))));
}

#[tokio::test]
async fn an_internal_network_is_cut_off_and_not_masqueraded() {
    let e = env();
    let svc = e.start().await.expect("start");
    let req = CreateNetwork { subnet: Some("10.9.0.0/24".into()), internal: true, ..create("int") };
    let net = svc.create_network(req).await.expect("create");
    let br = &net.bridge;
    assert!(e.nl.calls().contains(&format!("host ensure_bridge {br} 10.9.0.1/24")), "{:?}", e.nl.calls());
    let r = e.last_rules();
    assert!(r.contains(&format!("-A FLT-flt0 -i {br} ! -o {br} -m comment --comment flotilla:flt0 -j DROP\n")), "{r}");
    assert!(r.contains(&format!("-A FLT-flt0 -o {br} ! -i {br} -m comment --comment flotilla:flt0 -j DROP\n")), "{r}");
    assert!(!r.contains(&format!("-s 10.9.0.0/24 ! -o {br}")), "an internal network is masqueraded:\n{r}");
    // Isolated from the default bridge both ways.
    assert!(r.contains(&format!("-A FLT-flt0 -i flt0 -o {br} -m comment --comment flotilla:flt0 -j DROP\n")), "{r}");
    assert!(r.contains(&format!("-A FLT-flt0 -i {br} -o flt0 -m comment --comment flotilla:flt0 -j DROP\n")), "{r}");
}

#[tokio::test]
async fn icc_off_drops_traffic_between_containers_of_the_network() {
    let e = env();
    let svc = e.start().await.expect("start");
    let mut req = create("noicc");
    req.options.insert("com.docker.network.bridge.enable_icc".into(), "false".into());
    let net = svc.create_network(req).await.expect("create");
    let br = &net.bridge;
    let r = e.last_rules();
    assert!(r.contains(&format!("-A FLT-flt0 -i {br} -o {br} -m comment --comment flotilla:flt0 -j DROP\n")), "{r}");
    assert!(!r.contains("-A FLT-flt0 -i flt0 -o flt0 "), "icc of the default bridge is on:\n{r}");
}

#[tokio::test]
async fn a_failing_restore_is_a_typed_error_naming_the_command() {
    let e = env();
    let svc = e.start().await.expect("start");
    let net = svc.create_network(create("n1")).await.expect("create");
    let mut rx = e.events.subscribe();
    e.ipt.fail_restore("iptables-restore: line 7 failed");
    let err = svc.remove_network(&net.id).await.expect_err("the rules update fails");
    // The network is gone all the same, and its event says so.
    assert!(svc.network("n1").is_err(), "the network is still listed");
    let ev = rx.try_recv().expect("a destroy event");
    assert_eq!((ev.action.as_str(), ev.actor.id.as_str()), ("destroy", net.id.as_str()));
    match err {
        NetworkError::Iptables(NatError::Restore { command, stderr, rules }) => {
            assert_eq!(command, "iptables-restore");
            assert_eq!(stderr, "iptables-restore: line 7 failed");
            assert!(!rules.contains(&net.bridge), "the rules still name the removed network:\n{rules}");
        }
        e => panic!("not a restore error: {e:?}"),
    }
}

#[tokio::test]
async fn a_failing_jump_insert_stops_the_start_and_names_the_command() {
    let e = env();
    e.ipt.fail_run("-I FORWARD", "iptables: No chain/target/match by that name.");
    let err = e.start().await.err().expect("start fails");
    match err {
        NetworkError::Iptables(NatError::Failed { command, stderr }) => {
            assert_eq!(command, "iptables -t filter -I FORWARD 1 -m comment --comment flotilla:flt0 -j FLT-flt0");
            assert_eq!(stderr, "iptables: No chain/target/match by that name.");
        }
        e => panic!("not an iptables failure: {e:?}"),
    }
    assert!(e.ipt.restores().is_empty(), "rules were applied without their jumps");
}

#[tokio::test]
async fn network_create_and_remove_publish_their_events_and_remove_the_bridge() {
    let e = env();
    let svc = e.start().await.expect("start");
    let mut rx = e.events.subscribe();
    let net = svc.create_network(create("evnet")).await.expect("create");
    svc.remove_network("evnet").await.expect("remove by name");
    assert!(e.nl.calls().contains(&format!("host delete_link {}", net.bridge)));
    assert!(!e.nl.links().contains(&net.bridge));
    for action in ["create", "destroy"] {
        let ev = rx.try_recv().expect("event");
        assert_eq!((ev.typ.as_str(), ev.action.as_str(), ev.actor.id.as_str()), ("network", action, net.id.as_str()));
        assert_eq!(ev.actor.attributes.get("name").map(String::as_str), Some("evnet"));
        assert_eq!(ev.actor.attributes.get("type").map(String::as_str), Some("bridge"));
    }
    // A refused removal publishes nothing.
    assert!(svc.remove_network("bridge").await.is_err());
    assert!(rx.try_recv().is_err());
    // A prune publishes a destroy per network it removes, as dockerd does.
    let a = svc.create_network(create("prune-a")).await.expect("create");
    let _ = rx.try_recv();
    let gone = svc.prune_networks(&Default::default()).await.expect("prune");
    assert_eq!(gone, ["prune-a"]);
    let ev = rx.try_recv().expect("a destroy event from prune");
    assert_eq!((ev.action.as_str(), ev.actor.id.as_str()), ("destroy", a.id.as_str()));
}

#[tokio::test]
async fn a_restart_removes_our_stray_bridges_and_veths_and_keeps_the_rest() {
    let e = env();
    e.nl.add_link("flt0", None);
    e.nl.add_link("flt0-0123456789", None); // ours, of a network that no longer exists
    e.nl.add_link("eth0", None); // not ours
    e.nl.add_link("vethdead000", Some("flt0")); // a stray port of our bridge
    e.nl.add_link("vxflt0000100", Some("flt0")); // our VXLAN: kept
    e.start().await.expect("start");
    assert_eq!(e.nl.links(), ["eth0", "flt0", "vxflt0000100"]);
    let calls = e.nl.calls();
    assert!(calls.contains(&"host delete_link flt0-0123456789".to_string()), "{calls:?}");
    assert!(calls.contains(&"host delete_link vethdead000".to_string()), "{calls:?}");
}

#[tokio::test]
async fn a_restart_releases_a_sandbox_whose_netns_is_gone() {
    let e = env();
    let svc = e.start().await.expect("start");
    let net = svc.network_id.clone();
    {
        let mut st = svc.shared.state.lock().unwrap();
        let s = st.networks.get_mut(&net).unwrap();
        s.ipam.allocate("c9").unwrap();
        store::save_ipam(&svc.run_dir, &net, &s.ipam).unwrap();
    }
    let rec = SandboxRec {
        container_id: "c9".into(),
        name: "gone".into(),
        netns: svc.netns_path("c9"),
        endpoints: vec![store::EndpointRec {
            network_id: net.clone(),
            ifname: "eth0".into(),
            aliases: vec![],
            mac: "02:42:ac:1f:00:02".into(),
            default_route: true,
        }],
        ports: vec![],
        dns: Default::default(),
        links: Default::default(),
        netns_ino: 0,
    };
    store::save_sandbox(&svc.run_dir, &rec).unwrap();
    drop(svc);
    let svc = e.start().await.expect("restart");
    let veth = veth_name(&endpoint_id(&net, "c9"));
    assert!(e.nl.calls().contains(&format!("host delete_link {veth}")), "{:?}", e.nl.calls());
    assert_eq!(svc.endpoint("c9"), None);
    assert!(store::load_sandboxes(&svc.run_dir).unwrap().is_empty(), "the record is left");
    // Its address is released, in memory and on disk.
    assert_eq!(svc.shared.state.lock().unwrap().networks[&net].ipam.get("c9"), None);
    let on_disk = store::load_all(&svc.data_dir, &svc.run_dir).unwrap();
    assert_eq!(on_disk.iter().find(|s| s.net.id == net).map(|s| s.ipam.get("c9")), Some(None));
}

fn endpoint(veth: &str) -> Endpoint {
    Endpoint {
        netns: "/run/test/netns/c1".into(),
        ip: "10.5.0.2".parse().unwrap(),
        prefix_len: 24,
        gateway: "10.5.0.1".parse().unwrap(),
        mac: "02:42:0a:05:00:02".into(),
        veth: veth.into(),
        network_id: "n1".into(),
        endpoint_id: "e1".into(),
        network_name: "net1".into(),
        ifname: "eth0".into(),
        aliases: vec![],
    }
}

fn plumbing(veth: &str, mtu: Option<u32>) -> Plumb {
    Plumb { ep: endpoint(veth), bridge: "br1".into(), subnet: "10.5.0.0/24".into(), route: true, mac: [2, 0x42, 10, 5, 0, 2], mtu }
}

fn a_fd() -> OwnedFd {
    OwnedFd::from(std::fs::File::open("/dev/null").expect("/dev/null"))
}

#[tokio::test]
async fn plumbing_an_endpoint_creates_the_veth_then_sets_mtus_then_configures_inside() {
    let nl = FakeNetlink::default();
    let br = nl.add_link("br1", None);
    let inner = nl.in_netns(a_fd());
    plumb(&nl, plumbing("vethaaa0001", Some(1450)), &a_fd(), &*inner).await.expect("plumb");
    assert_eq!(
        nl.calls(),
        [
            format!("host add_veth vethaaa0001 master={br} peer=eth0 mac=02:42:0a:05:00:02"),
            "host set_mtu vethaaa0001 1450".into(),
            "netns set_mtu eth0 1450".into(),
            "netns configure_inside eth0 10.5.0.2/24 via 10.5.0.1".into(),
        ]
    );
}

#[tokio::test]
async fn plumbing_replaces_a_leftover_veth_of_the_same_name() {
    let nl = FakeNetlink::default();
    nl.add_link("br1", None);
    nl.add_link("vethaaa0002", None);
    let inner = nl.in_netns(a_fd());
    let mut p = plumbing("vethaaa0002", None);
    p.route = false;
    plumb(&nl, p, &a_fd(), &*inner).await.expect("plumb");
    let calls: Vec<String> = nl.calls().into_iter().map(|c| c.split(" master").next().unwrap_or_default().to_string()).collect();
    assert_eq!(
        calls,
        [
            "host add_veth vethaaa0002",
            "host delete_link vethaaa0002",
            "host add_veth vethaaa0002",
            "netns configure_inside eth0 10.5.0.2/24"
        ]
    );
}

#[tokio::test]
async fn plumbing_recreates_a_vanished_bridge_first() {
    let nl = FakeNetlink::default();
    let inner = nl.in_netns(a_fd());
    plumb(&nl, plumbing("vethaaa0003", None), &a_fd(), &*inner).await.expect("plumb");
    let calls = nl.calls();
    assert_eq!(calls[..2], ["host ensure_bridge br1 10.5.0.1/24", "host route_localnet br1"]);
    assert!(calls[2].starts_with("host add_veth vethaaa0003 "), "{calls:?}");
}

#[tokio::test]
async fn a_failing_netlink_step_is_an_error_naming_it_with_its_errno() {
    let nl = FakeNetlink::default();
    nl.add_link("br1", None);
    nl.fail_next("configure_inside", libc::ENODEV);
    let inner = nl.in_netns(a_fd());
    let err = plumb(&nl, plumbing("vethaaa0004", None), &a_fd(), &*inner).await.expect_err("fails");
    match err {
        NetworkError::Netlink { op, source } => {
            assert_eq!(op, "configure eth0 in /run/test/netns/c1");
            assert_eq!(bridge::errno(&source), Some(libc::ENODEV));
        }
        e => panic!("not a netlink error: {e:?}"),
    }
}

#[tokio::test]
async fn a_published_port_becomes_a_dnat_rule_applied_before_shutdown_returns() {
    let e = env();
    let svc = e.start().await.expect("start");
    let applied = e.ipt.restores().len();
    {
        let mut st = svc.shared.state.lock().unwrap();
        st.sandboxes.insert(
            "c1".into(),
            SandboxRec {
                container_id: "c1".into(),
                name: "web".into(),
                netns: "/nonexistent".into(),
                endpoints: vec![],
                ports: vec![PortMapping {
                    proto: "tcp".into(),
                    container_port: 80,
                    host_ip: std::net::Ipv4Addr::UNSPECIFIED,
                    host_port: 8080,
                    container_ip: "172.31.0.2".parse().unwrap(),
                }],
                dns: Default::default(),
                links: Default::default(),
                netns_ino: 0,
            },
        );
    }
    svc.schedule_firewall();
    svc.shutdown().await;
    assert_eq!(e.ipt.restores().len(), applied + 1, "shutdown returned before the scheduled update");
    assert!(e.last_rules().contains(
        "-A FLT-flt0-DNAT -p tcp -m tcp --dport 8080 -m comment --comment flotilla:flt0 -j DNAT --to-destination 172.31.0.2:80\n"
    ));
    assert!(svc.shared.tasks.is_empty());
}
