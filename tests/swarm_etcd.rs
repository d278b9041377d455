//! etcd discovery end to end: a real etcd (Debian etcd-server) on free ports, agents joined
//! from two network-namespace hosts (one with the embedded engine, one `--no-engine`), keys in
//! classic Swarm's layout, etcd killed and restarted under the running agents, TTL expiry.
mod discovery_common;
use discovery_common::*;
use std::time::Duration;
use testground::etcd::Etcd;

#[test]
fn agents_survive_an_etcd_restart() {
    require_root!();
    let net = TestNet::new(2);
    let gw = net.gateway();
    let mut etcd = Etcd::start_on(&[&gw, "127.0.0.1"], None);
    let (h1, h2) = (net.host(0), net.host(1));
    let disc = format!("etcd://{}/flt", etcd.endpoint());
    let mut a1 = join(h1, &disc, &[]);
    let a2_addr = format!("{}:2376", h2.ip());
    let args: Vec<String> =
        ["join", "--advertise", &a2_addr, "--no-engine", "--heartbeat", "1s", "--ttl", "3s", &disc].map(String::from).to_vec();
    let mut a2 = h2.spawn("join", SWARM, &args);
    let both = vec![advertise(h1), a2_addr.clone()];
    wait_list(&[&disc], &both, Duration::from_secs(60));
    // Classic Swarm's key layout, also readable with any etcd client.
    let keys: Vec<String> = etcd.get_prefix("/flt/").unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![format!("/flt/docker/swarm/nodes/{}", advertise(h1)), format!("/flt/docker/swarm/nodes/{a2_addr}")]);
    // Listing through the other endpoint (loopback) works the same.
    wait_list(&[&format!("etcd://127.0.0.1:{}/flt", etcd.endpoint().rsplit(':').next().unwrap_or(""))], &both, Duration::from_secs(5));
    run_container_at(&advertise(h1));

    // etcd crashes and comes back: the agents keep running and stay registered.
    etcd.kill();
    std::thread::sleep(Duration::from_secs(2));
    assert!(a1.running() && a2.running(), "an agent died with etcd:\n{}\n{}", a1.log(), a2.log());
    etcd.start_again();
    wait_list(&[&disc], &both, Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(4)); // more than a TTL: heartbeats go on after the restart
    assert_eq!(list(&[&disc]), {
        let mut b = both.clone();
        b.sort();
        b
    });

    // A crashed agent vanishes after its TTL; a stopped one at once.
    a1.kill();
    wait_list(&[&disc], std::slice::from_ref(&a2_addr), Duration::from_secs(10));
    assert!(a2.terminate(Duration::from_secs(10)).is_some_and(|s| s.success()), "{}", a2.log());
    wait_list(&[&disc], &[], Duration::from_secs(2));
}

#[test]
fn kv_path_and_tls_options() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let certs = testground::etcd::TlsCerts::generate(dir.path(), &["127.0.0.1"]).unwrap();
    let etcd = Etcd::start_on(&["127.0.0.1"], Some(certs.clone()));
    let disc = format!("etcd://{}/tls", etcd.endpoint());
    let opts = [
        format!("kv.cacertfile={}", certs.ca.display()),
        format!("kv.certfile={}", certs.client_cert.display()),
        format!("kv.keyfile={}", certs.client_key.display()),
        "kv.path=docker/nodes".to_string(),
    ];
    let mut args: Vec<String> =
        ["join", "--advertise", "127.0.0.1:2399", "--no-engine", "--heartbeat", "1s", "--ttl", "3s"].map(String::from).to_vec();
    for o in &opts {
        args.extend(["--discovery-opt".to_string(), o.clone()]);
    }
    args.push(disc.clone());
    let log = dir.path().join("join.log");
    let f = std::fs::File::create(&log).unwrap();
    let mut child = std::process::Command::new(SWARM).args(&args).stdout(f.try_clone().unwrap()).stderr(f).spawn().unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _guard = Kill(&mut child);
    let mut l: Vec<String> = vec![];
    for o in &opts {
        l.extend(["--discovery-opt".to_string(), o.clone()]);
    }
    l.push(disc.clone());
    let l: Vec<&str> = l.iter().map(String::as_str).collect();
    wait_list(&l, &["127.0.0.1:2399".to_string()], Duration::from_secs(20));
    // Without the TLS options the same etcd refuses us; with the default kv.path it is another cluster.
    let o = swarm(&["list", "--timeout", "3s", &disc]);
    assert!(!o.success(), "{o}");
}
