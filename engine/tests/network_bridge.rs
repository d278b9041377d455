//! The default bridge on the real kernel (needs root): bridge + NAT chains, two fake containers
//! (just netns) that reach the gateway and each other, disconnect, restart, purge.
use engine::network::{nat, NetworkService};
use engine::EngineConfig;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Owns a unique bridge name/subnet and temp dirs; removes everything on drop, even on failure.
struct Env {
    cfg: EngineConfig,
    _tmp: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut cfg = EngineConfig::with_defaults();
        cfg.bridge_name = format!("fltt{}{n}", pid % 1_000_000);
        // 10.2xx.yyy.0/24: unlikely to clash with anything else on the host.
        cfg.bridge_cidr = format!("10.{}.{}.1/24", 200 + (pid % 50) as u8, ((pid / 50 + n * 37) % 256) as u8);
        cfg.data_root = tmp.path().join("data");
        cfg.exec_root = tmp.path().join("exec");
        Env { cfg, _tmp: tmp }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let cfg = self.cfg.clone();
        // Drop may run inside a runtime: purge on a thread with its own runtime.
        let purged = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread().enable_all().build().map(|rt| rt.block_on(NetworkService::purge(&cfg)))
        })
        .join();
        if !matches!(purged, Ok(Ok(Ok(())))) {
            eprintln!("purge failed ({purged:?}); removing by hand");
        }
        // Belt and braces, all idempotent.
        if let Ok(rd) = std::fs::read_dir(self.cfg.exec_root.join("netns")) {
            for e in rd.flatten() {
                let _ = nix::mount::umount2(&e.path(), nix::mount::MntFlags::MNT_DETACH);
            }
        }
        let _ = Command::new("ip").args(["link", "del", &self.cfg.bridge_name]).output();
        let b = &self.cfg.bridge_name;
        for (t, parent, chain) in [("filter", "FORWARD", nat::filter_chain(b)), ("nat", "POSTROUTING", nat::nat_chain(b))] {
            let c = nat::comment(b);
            let _ = Command::new("iptables").args(["-w", "-t", t, "-D", parent, "-m", "comment", "--comment", &c, "-j", &chain]).output();
            let _ = Command::new("iptables").args(["-w", "-t", t, "-F", &chain]).output();
            let _ = Command::new("iptables").args(["-w", "-t", t, "-X", &chain]).output();
        }
    }
}

/// A netns "outside" the host, linked to it by a veth with a /30 and no route back to any
/// bridge subnet: a container reaches it only when its traffic is masqueraded.
struct Outside {
    ns: String,
    veth: String,
    far_ip: String,
}

impl Outside {
    fn new(tag: &str) -> Outside {
        let pid = std::process::id();
        let base = (pid % 16384) * 4; // 198.18.0.0/16, benchmark range
        let (near, far) = (format!("198.18.{}.{}", base >> 8, (base & 255) + 1), format!("198.18.{}.{}", base >> 8, (base & 255) + 2));
        let o = Outside { ns: format!("fltx{pid}{tag}"), veth: format!("fltx{pid}{tag}"), far_ip: far.clone() };
        for args in [
            vec!["netns", "add", &o.ns],
            vec!["link", "add", &o.veth, "type", "veth", "peer", "name", "up0", "netns", &o.ns],
            vec!["addr", "add", &format!("{near}/30"), "dev", &o.veth],
            vec!["link", "set", &o.veth, "up"],
            vec!["-n", &o.ns, "addr", "add", &format!("{far}/30"), "dev", "up0"],
            vec!["-n", &o.ns, "link", "set", "up0", "up"],
        ] {
            let (ok, out) = sh("ip", &args);
            assert!(ok, "ip {args:?}: {out}");
        }
        o
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.veth]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

fn sh(cmd: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let mut s = String::from_utf8_lossy(&out.stdout).to_string();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}

fn in_ns(ns: &Path, args: &[&str]) -> (bool, String) {
    let net = format!("--net={}", ns.display());
    let mut all = vec![net.as_str()];
    all.extend_from_slice(args);
    sh("nsenter", &all)
}

fn ping(ns: &Path, ip: &str) -> bool {
    in_ns(ns, &["busybox", "ping", "-c1", "-W2", ip]).0
}

/// Waits up to 5 s for a link to disappear (veths die with their netns, a moment later).
fn link_gone(name: &str) -> bool {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while link_exists(name) {
        if std::time::Instant::now() > until {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    true
}

fn link_exists(name: &str) -> bool {
    sh("ip", &["link", "show", name]).0
}

/// Lines of `iptables-save` (filter and nat) that mention `word`.
fn rules_with(word: &str) -> Vec<String> {
    let mut lines = vec![];
    for t in ["filter", "nat"] {
        let (_, out) = sh("iptables-save", &["-t", t]);
        lines.extend(out.lines().filter(|l| l.contains(word)).map(str::to_string));
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_connect_ping_disconnect_purge() {
    let env = Env::new();
    let cfg = &env.cfg;
    let br = cfg.bridge_name.clone();
    let svc = NetworkService::start(cfg, engine::events::EventBus::default()).await.expect("start");
    let (subnet, gw) = svc.subnet();
    assert_eq!(format!("{gw}/24"), cfg.bridge_cidr);
    assert!(subnet.ends_with(".0/24"), "{subnet}");
    assert_eq!(svc.default_network().name, "bridge");

    // Bridge, forwarding and our chains are there.
    let (ok, out) = sh("ip", &["-4", "addr", "show", &br]);
    assert!(ok && out.contains(&format!("inet {}", cfg.bridge_cidr)), "{out}");
    assert!(out.contains("UP"), "{out}");
    assert_eq!(std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap().trim(), "1");
    let rules = rules_with(&br);
    assert!(rules.iter().any(|l| l.contains("MASQUERADE") && l.contains(&subnet)), "{rules:#?}");
    assert!(rules.iter().any(|l| l.starts_with("-A FORWARD") && l.contains(&nat::filter_chain(&br))), "{rules:#?}");

    // Starting again (engine restart) adds no duplicate rule.
    let before = rules.len();
    let svc = {
        drop(svc);
        NetworkService::start(cfg, engine::events::EventBus::default()).await.expect("restart")
    };
    assert_eq!(rules_with(&br).len(), before, "rules duplicated on restart");

    // Two containers, connected concurrently.
    let t = Instant::now();
    let (a, b) = tokio::join!(svc.connect("c-aaaa"), svc.connect("c-bbbb"));
    let (a, b) = (a.expect("connect a"), b.expect("connect b"));
    eprintln!("two concurrent connects: {:?}", t.elapsed());
    assert_ne!(a.ip, b.ip);
    assert_ne!(a.veth, b.veth);
    assert_eq!(a.gateway, gw);
    assert_eq!(a.prefix_len, 24);
    let o = a.ip.octets();
    assert_eq!(a.mac, format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3]));
    assert_eq!(a.network_id, svc.network_id);
    assert_eq!(svc.endpoint("c-aaaa"), Some(a.clone()));

    // Connecting again rebuilds the container's setup in the same netns, with a working address.
    let t = Instant::now();
    let a2 = svc.connect("c-aaaa").await.expect("reconnect a");
    eprintln!("one connect: {:?}", t.elapsed());
    assert_eq!((&a2.netns, &a2.veth, a2.gateway), (&a.netns, &a.veth, a.gateway));
    assert_ne!(a2.ip, b.ip, "never the address of another live container");
    let a = a2;

    let (ok, out) = in_ns(&a.netns, &["ip", "-4", "addr", "show", "eth0"]);
    assert!(ok && out.contains(&format!("inet {}/24", a.ip)), "{out}");
    assert!(out.contains(&a.mac) || in_ns(&a.netns, &["ip", "link", "show", "eth0"]).1.contains(&a.mac));
    let (_, routes) = in_ns(&a.netns, &["ip", "route"]);
    assert!(routes.contains(&format!("default via {gw} dev eth0")), "{routes}");
    let (_, lo) = in_ns(&a.netns, &["ip", "link", "show", "lo"]);
    assert!(lo.contains("UP"), "{lo}");
    let (_, master) = sh("ip", &["link", "show", &a.veth]);
    assert!(master.contains(&format!("master {br}")), "{master}");

    assert!(ping(&a.netns, &gw.to_string()), "a -> gateway");
    assert!(ping(&b.netns, &gw.to_string()), "b -> gateway");
    assert!(ping(&a.netns, &b.ip.to_string()), "a -> b");
    assert!(ping(&b.netns, &a.ip.to_string()), "b -> a");
    assert!(ping(&a.netns, &a.ip.to_string()), "a -> itself");
    let outside = Outside::new("a");
    assert!(ping(&a.netns, &outside.far_ip), "a -> outside (masqueraded)");
    drop(outside);

    // Disconnect removes veth, netns and address; twice is fine.
    svc.disconnect("c-aaaa").await.expect("disconnect");
    svc.disconnect("c-aaaa").await.expect("disconnect again");
    // The veth goes with the namespace, asynchronously (the kernel deletes it).
    assert!(link_gone(&a.veth), "veth {} still there", a.veth);
    assert!(!a.netns.exists());
    assert!(svc.endpoint("c-aaaa").is_none());
    assert!(link_exists(&b.veth));

    // Purge removes everything with the bridge's name.
    NetworkService::purge(cfg).await.expect("purge");
    assert!(!link_exists(&br));
    assert!(!link_exists(&b.veth));
    assert!(!b.netns.exists());
    assert_eq!(rules_with(&br), Vec::<String>::new());
    assert_eq!(rules_with(&format!("flotilla:{br}")), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_live_allocations_and_releases_dead_ones() {
    let env = Env::new();
    let cfg = &env.cfg;
    let svc = NetworkService::start(cfg, engine::events::EventBus::default()).await.expect("start");
    let live = svc.connect("live").await.expect("connect live");
    let dead = svc.connect("dead").await.expect("connect dead");
    let net_id = svc.network_id.clone();
    drop(svc);

    // "dead"'s netns vanished while the engine was down (e.g. reboot of the exec root).
    nix::mount::umount2(&dead.netns, nix::mount::MntFlags::MNT_DETACH).expect("umount");
    std::fs::remove_file(&dead.netns).expect("rm netns");

    let svc = NetworkService::start(cfg, engine::events::EventBus::default()).await.expect("restart");
    assert_eq!(svc.network_id, net_id, "network id is stable");
    assert_eq!(svc.endpoint("live"), Some(live.clone()));
    assert!(svc.endpoint("dead").is_none());
    assert!(!link_exists(&dead.veth));
    assert!(ping(&live.netns, &live.gateway.to_string()), "live container still reaches the gateway");

    // A new container never gets the live one's address.
    let other = svc.connect("other").await.expect("connect other");
    assert_ne!(other.ip, live.ip);
    assert!(ping(&other.netns, &live.ip.to_string()), "other -> live");
    assert_eq!(svc.endpoints().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_connects_and_a_vanished_bridge() {
    let env = Env::new();
    let svc = std::sync::Arc::new(NetworkService::start(&env.cfg, engine::events::EventBus::default()).await.expect("start"));
    let ids: Vec<String> = (0..8).map(|i| format!("many-{i}")).collect();
    let t = Instant::now();
    let eps = futures_util::future::join_all(ids.iter().map(|id| svc.connect(id))).await;
    eprintln!("8 concurrent connects: {:?}", t.elapsed());
    let eps: Vec<_> = eps.into_iter().map(|r| r.expect("connect")).collect();
    let mut ips: Vec<_> = eps.iter().map(|e| e.ip).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 8);
    assert!(ping(&eps[7].netns, &eps[0].ip.to_string()));
    let res = futures_util::future::join_all(ids.iter().map(|id| svc.disconnect(id))).await;
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
    assert!(svc.endpoints().is_empty());
    assert!(eps.iter().all(|e| !e.netns.exists() && link_gone(&e.veth)));

    // Someone deleted the bridge under us: the next connect recreates it.
    assert!(sh("ip", &["link", "del", &env.cfg.bridge_name]).0);
    let ep = svc.connect("after").await.expect("connect after bridge loss");
    assert!(ping(&ep.netns, &ep.gateway.to_string()));
}
