//! The overlay benchmark (`bench/overlay` runs it; ignored in the test suite, as timings on a
//! shared machine are not assertions): real etcd, two agents in netns hosts joined with
//! `--cluster-store`, and in one run, between a container on each node,
//! - RTT: `ping` p50/p99 (COUNT pings, 10 ms apart);
//! - throughput: a 1 GiB busybox `nc` stream (SIZE_MB);
//!
//! over the overlay network, and over the hosts' direct link (the same busybox, `--network host`).
mod discovery_common;
use discovery_common::*;
use std::time::{Duration, Instant};
use testground::etcd::Etcd;

const T: Duration = Duration::from_secs(600);

fn ok(url: &str, args: &[&str]) -> String {
    let o = docker_at(url, args, T);
    assert!(o.success(), "{o}");
    o.stdout.trim().to_string()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(((v.len() as f64 - 1.0) * p).round() as usize).min(v.len() - 1)]
}

/// (p50, p99) of `count` pings from container `c` to `to`, in ms.
fn rtt(url: &str, c: &str, to: &str, count: usize) -> (f64, f64) {
    let out = ok(url, &["exec", c, "ping", "-c", &count.to_string(), "-i", "0.01", to]);
    let mut ms: Vec<f64> = out.lines().filter_map(|l| l.split("time=").nth(1)?.split_whitespace().next()?.parse().ok()).collect();
    assert!(ms.len() * 10 >= count * 9, "lost pings:\n{out}");
    (pct(&mut ms, 0.5), pct(&mut ms, 0.99))
}

/// MB/s of `mb` MiB sent from container `cli` (on `cli_url`) to `srv` listening on port 5000.
/// The receiver counts the bytes and writes the count when it has them all (busybox `nc` waits
/// for the other side to close, so both are stopped after); the time runs until then.
fn stream(srv_url: &str, srv: &str, cli_url: &str, cli: &str, to: &str, mb: usize) -> f64 {
    let bytes = mb * 1048576;
    ok(srv_url, &["exec", srv, "rm", "-f", "/tmp/got"]);
    ok(srv_url, &["exec", "-d", srv, "sh", "-c", &format!("(sleep 3600 | nc -l -p 5000) | head -c {bytes} | wc -c > /tmp/got")]);
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    ok(cli_url, &["exec", "-d", cli, "sh", "-c", &format!("dd if=/dev/zero bs=1048576 count={mb} 2>/dev/null | nc {to} 5000")]);
    let got = || docker_at(srv_url, &["exec", srv, "cat", "/tmp/got"], T).stdout.trim().to_string();
    let done = wait_until(Duration::from_secs(120), || !got().is_empty());
    let secs = t0.elapsed().as_secs_f64();
    let _ = docker_at(cli_url, &["exec", cli, "killall", "nc"], T);
    let _ = docker_at(srv_url, &["exec", srv, "killall", "nc", "sleep"], T);
    assert!(done, "the stream did not arrive within 120 s");
    assert_eq!(got(), bytes.to_string(), "bytes received");
    mb as f64 * 1.048576 / secs
}

#[test]
#[ignore = "benchmark: run by bench/overlay"]
fn overlay_against_the_direct_link() {
    require_root!();
    let count: usize = std::env::var("COUNT").ok().and_then(|c| c.parse().ok()).unwrap_or(500);
    let mb: usize = std::env::var("SIZE_MB").ok().and_then(|c| c.parse().ok()).unwrap_or(1024);
    let net = TestNet::new(2);
    let etcd = Etcd::start_on(&[&net.gateway()], None);
    let disc = format!("etcd://{}/flt", etcd.endpoint());
    let store = format!("etcd://{}/fltnet", etcd.endpoint());
    let _agents: Vec<HostProc> = (0..2).map(|i| join(net.host(i), &disc, &["--cluster-store", &store])).collect();
    let urls: Vec<String> = (0..2).map(|i| format!("tcp://{}", advertise(net.host(i)))).collect();
    let archive = testground::busybox_image_archive();
    for u in &urls {
        assert!(wait_until(Duration::from_secs(60), || docker_at(u, &["version"], T).success()));
        ok(u, &["load", "-i", &archive.display().to_string()]);
    }
    ok(&urls[0], &["network", "create", "-d", "overlay", "bench"]);
    assert!(wait_until(Duration::from_secs(10), || docker_at(&urls[1], &["network", "inspect", "bench"], T).success()));
    for (i, u) in urls.iter().enumerate() {
        ok(u, &["run", "-d", "--name", &format!("o{i}"), "--network", "bench", "busybox", "sleep", "3600"]);
        ok(u, &["run", "-d", "--name", &format!("h{i}"), "--network", "host", "busybox", "sleep", "3600"]);
    }
    let o1 = ok(&urls[1], &["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "o1"]);
    let h1 = net.host(1).ip().to_string();
    assert!(wait_until(Duration::from_secs(15), || docker_at(&urls[0], &["exec", "o0", "ping", "-c", "1", "-W", "1", &o1], T).success()));

    let (d50, d99) = rtt(&urls[0], "h0", &h1, count);
    let (o50, o99) = rtt(&urls[0], "o0", &o1, count);
    let dmb = stream(&urls[1], "h1", &urls[0], "h0", &h1, mb);
    let omb = stream(&urls[1], "o1", &urls[0], "o0", &o1, mb);
    println!("rtt ms        p50      p99     ({count} pings)");
    println!("direct link   {d50:.3}    {d99:.3}");
    println!("overlay       {o50:.3}    {o99:.3}    (+{:.3} ms at p50)", o50 - d50);
    println!("nc stream of {mb} MiB");
    println!("direct link   {dmb:.0} MB/s");
    println!("overlay       {omb:.0} MB/s   ({:.0}% of the direct link)", 100.0 * omb / dmb);
}
