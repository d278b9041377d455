//! The etcd backend against a real etcd (Debian etcd-server 3.4) started per test.
use discovery::{Discovery, DiscoveryOpts, Entry, EtcdDiscovery, WatchEvent};
use std::time::{Duration, Instant};
use testground::etcd::{Etcd, TlsCerts};
use tokio::sync::mpsc::Receiver;
use tokio_util::sync::CancellationToken;

fn e(s: &str) -> Entry {
    Entry::parse(s).unwrap()
}

fn backend(etcd: &Etcd, prefix: &str) -> EtcdDiscovery {
    EtcdDiscovery::parse(&format!("{}/{prefix}", etcd.endpoint()), &DiscoveryOpts::default()).unwrap()
}

/// Next set from the watch that satisfies `f`, skipping errors; panics after `timeout`.
async fn wait_set(rx: &mut Receiver<WatchEvent>, timeout: Duration, f: impl Fn(&[Entry]) -> bool) -> Vec<Entry> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(Ok(set))) if f(&set) => return set,
            Ok(Some(_)) => {}
            Ok(None) => panic!("watch ended"),
            Err(_) => panic!("no matching set within {timeout:?}"),
        }
    }
}

#[tokio::test]
async fn register_watch_expire_and_deregister() {
    let etcd = Etcd::start();
    let d = backend(&etcd, "swarm");
    let stop = CancellationToken::new();
    let mut rx = d.watch(Duration::from_secs(1), stop.clone());
    assert_eq!(wait_set(&mut rx, Duration::from_secs(10), |_| true).await, vec![]);

    let (a, b) = (e("10.0.0.5:2375"), e("10.0.0.6:2375"));
    d.register(&a, Duration::from_secs(30)).await.unwrap();
    let t0 = Instant::now();
    wait_set(&mut rx, Duration::from_secs(5), |s| s == [a.clone()]).await;
    assert!(t0.elapsed() < Duration::from_secs(1), "watch-driven, not polled: {:?}", t0.elapsed());
    // Classic Swarm's key layout, value = the address.
    let kvs = etcd.get_prefix("/swarm/").unwrap();
    assert_eq!(kvs, vec![("/swarm/docker/swarm/nodes/10.0.0.5:2375".to_string(), "10.0.0.5:2375".to_string())]);
    // Heartbeats keep the same lease; a key removed behind our back is put back.
    d.register(&a, Duration::from_secs(30)).await.unwrap();
    let mut c = d.client().await.unwrap();
    c.delete(d.key(&a), None).await.unwrap();
    wait_set(&mut rx, Duration::from_secs(5), |s| s.is_empty()).await;
    d.register(&a, Duration::from_secs(30)).await.unwrap();
    wait_set(&mut rx, Duration::from_secs(5), |s| s == [a.clone()]).await;

    // A node that stops heartbeating disappears after its TTL.
    let other = backend(&etcd, "swarm");
    other.register(&b, Duration::from_secs(2)).await.unwrap();
    wait_set(&mut rx, Duration::from_secs(5), |s| s.len() == 2).await;
    let t0 = Instant::now();
    wait_set(&mut rx, Duration::from_secs(10), |s| s == [a.clone()]).await;
    assert!(t0.elapsed() >= Duration::from_millis(1000), "expired too early: {:?}", t0.elapsed());
    assert_eq!(d.list().await.unwrap(), vec![a.clone()]);

    // Clean shutdown removes the entry at once.
    d.deregister(&a).await.unwrap();
    wait_set(&mut rx, Duration::from_secs(5), |s| s.is_empty()).await;
    // Another prefix / kv.path is another cluster.
    let o = DiscoveryOpts { kv_path: "docker/nodes".into(), ..Default::default() };
    let d2 = EtcdDiscovery::parse(&format!("{}/swarm", etcd.endpoint()), &o).unwrap();
    d2.register(&b, Duration::from_secs(30)).await.unwrap();
    assert!(d.list().await.unwrap().is_empty());
    assert_eq!(etcd.get_prefix("/swarm/docker/nodes/").unwrap().len(), 1);
    stop.cancel();
}

#[tokio::test]
async fn survives_an_etcd_restart() {
    let mut etcd = Etcd::start();
    let d = backend(&etcd, "restart");
    let (a, b) = (e("10.0.1.5:2375"), e("10.0.1.6:2375"));
    d.register(&a, Duration::from_secs(5)).await.unwrap();
    let stop = CancellationToken::new();
    let mut rx = d.watch(Duration::from_secs(1), stop.clone());
    wait_set(&mut rx, Duration::from_secs(5), |s| s == [a.clone()]).await;

    etcd.kill();
    assert!(d.register(&a, Duration::from_secs(5)).await.is_err(), "etcd is down");
    // The watch reports the broken stream.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(Err(_))) => break,
            Ok(Some(Ok(_))) if Instant::now() < deadline => {}
            other => panic!("expected a watch error, got {other:?}"),
        }
    }
    etcd.start_again();
    // The same client registers again (same lease: etcd keeps leases across restarts).
    let t0 = Instant::now();
    loop {
        match d.register(&a, Duration::from_secs(5)).await {
            Ok(()) => break,
            Err(e) if t0.elapsed() < Duration::from_secs(15) => eprintln!("retrying: {e}"),
            Err(e) => panic!("no registration after the restart: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The watch resumed: it sees a node added after the restart.
    d.register(&b, Duration::from_secs(5)).await.unwrap();
    wait_set(&mut rx, Duration::from_secs(10), |s| s == [a.clone(), b.clone()]).await;
    assert_eq!(d.list().await.unwrap(), vec![a, b]);
    stop.cancel();
}

#[tokio::test]
async fn tls_with_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TlsCerts::generate(dir.path(), &["127.0.0.1"]).unwrap();
    let etcd = Etcd::start_on(&["127.0.0.1"], Some(certs.clone()));
    let opts = |c: &TlsCerts| {
        DiscoveryOpts::parse(
            &[
                format!("kv.cacertfile={}", c.ca.display()),
                format!("kv.certfile={}", c.client_cert.display()),
                format!("kv.keyfile={}", c.client_key.display()),
            ],
            None,
        )
        .unwrap()
    };
    let d = EtcdDiscovery::parse(&format!("{}/tls", etcd.endpoint()), &opts(&certs)).unwrap();
    let a = e("10.0.2.5:2375");
    d.register(&a, Duration::from_secs(10)).await.unwrap();
    assert_eq!(d.list().await.unwrap(), vec![a.clone()]);
    // Without TLS options the plain-text client gets nowhere.
    let plain = backend(&etcd, "tls");
    assert!(plain.list().await.is_err());
    // A client certificate from another CA is refused.
    let other = TlsCerts::generate(&dir.path().join("other"), &["127.0.0.1"]).unwrap();
    let wrong = TlsCerts { ca: certs.ca.clone(), ..other };
    let d3 = EtcdDiscovery::parse(&format!("{}/tls", etcd.endpoint()), &opts(&wrong)).unwrap();
    assert!(d3.list().await.is_err());
}
