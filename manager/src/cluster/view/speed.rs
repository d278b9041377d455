//! How large the records are and how fast `docker ps` rows are made of them (ignored tests, run
//! by hand with `--ignored --nocapture`).
use super::*;
use serde_json::json;

fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 4096
}

/// An inspect shaped as the simulator's for its prefilled containers (busybox, `true`,
/// every other one running, on the bridge network).
fn sim_inspect(i: usize) -> Value {
    let up = i.is_multiple_of(2);
    let s = |v: String| if up { v } else { String::new() };
    json!({
        "Id": format!("{:064x}", i * 7919 + 1), "Created": "2026-12-04T10:00:00.123456789Z", "Path": "true", "Args": [],
        "State": {"Status": if up { "running" } else { "exited" }, "Running": up, "ExitCode": 0,
                  "StartedAt": "2026-12-04T10:00:00.123456789Z",
                  "FinishedAt": if up { "0001-01-01T00:00:00Z" } else { "2026-12-04T10:00:01.123456789Z" }},
        "Image": "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741", "Name": format!("/pre_sim-{}_{i}", i % 1000),
        "Mounts": [], "Config": {"Image": "busybox", "Cmd": ["true"], "Labels": {}},
        "HostConfig": {"Memory": 1_048_576, "NetworkMode": "default", "PortBindings": {}},
        "NetworkSettings": {"Ports": {}, "Networks": {"bridge": {"IPAMConfig": null, "Links": null, "Aliases": null,
            "NetworkID": format!("{:064x}", i % 1000), "EndpointID": s(format!("{:064x}", i * 31 + 7)), "Gateway": s("172.17.0.1".into()),
            "IPAddress": s(format!("172.17.{}.{}", (i / 250) % 250, i % 250 + 2)), "IPPrefixLen": if up { 16 } else { 0 },
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "MacAddress": s(format!("02:42:ac:11:{:02x}:{:02x}", (i / 250) % 250, i % 250 + 2)), "DriverOpts": null}}}
    })
}

use crate::cluster::status::speed::thread_cpu;

/// Bytes per record held by nodes, learnt from inspects shaped as the simulator's
/// (`PREFILL` containers: busybox, `true`, every other one running), or with `CREATED=1`
/// made by creates through the manager (the create body and its swarm ID label):
/// `ROWS=200000 cargo test --release -p manager --lib record_size -- --ignored --nocapture`
#[tokio::test]
#[ignore]
async fn record_size() {
    let n: usize = std::env::var("ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let c = crate::cluster::Cluster::new(Default::default(), None, tokio_util::sync::CancellationToken::new()).unwrap();
    let engines: Vec<_> = (0..1000)
        .map(|i| {
            let addr = format!("10.0.{}.{}:2375", i / 250, i % 250);
            crate::cluster::Engine::new(&addr, c.transport.client(&addr), c.dirty.clone())
        })
        .collect();
    let created = std::env::var("CREATED").is_ok_and(|v| v == "1");
    let before = rss();
    for i in 0..n {
        let c = if created {
            let mut body = json!({"Image":"busybox","Cmd":["true"],"HostConfig":{"Memory":1048576},
                "Labels": {"com.docker.swarm.id": format!("{:064x}", i)}});
            let req = Request::from_config(Some(&format!("name_{i}")), &mut body).unwrap();
            Container::from_create(&format!("{:064x}", i * 7919 + 1), &req, &body, 0)
        } else {
            Container::from_inspect(&sim_inspect(i), 4)
        };
        engines[i % engines.len()].upsert(c);
    }
    let after = rss();
    eprintln!("{n} records: {} MiB, {} bytes each", (after - before) >> 20, (after - before) / n);
}
/// `docker ps` rows, wall and CPU time; `INSPECTED=1`: records learnt from inspects
/// (networks held), else made by creates through the manager:
/// `ROWS=1000000 cargo test --release -p manager --lib ps_speed -- --ignored --nocapture`
#[tokio::test]
#[ignore]
async fn ps_speed() {
    use futures_util::StreamExt;
    let n: usize = std::env::var("ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let infos: Vec<_> = (0..10_000)
        .map(|i| Arc::new(crate::cluster::NodeInfo { name: format!("node-{i}"), ip: "127.0.0.1".into(), ..Default::default() }))
        .collect();
    let t = std::time::Instant::now();
    let inspected = std::env::var("INSPECTED").is_ok_and(|v| v == "1");
    let mut records: Vec<_> = (0..n)
        .map(|i| {
            let c = if inspected {
                Container::from_inspect(&sim_inspect(i), 4)
            } else {
                let mut body = json!({"Image":"busybox","Cmd":["true"],"HostConfig":{"Memory":1048576},
                    "Labels": {"com.docker.swarm.id": format!("{:064x}", i)}});
                let req = Request::from_config(Some(&format!("name_{i}")), &mut body).unwrap();
                Container::from_create(&format!("{:064x}", i * 7919), &req, &body, 0)
            };
            crate::cluster::ps::PsRecord::new(Arc::new(c), infos[i % infos.len()].clone(), true)
        })
        .collect();
    eprintln!("build {:?}", t.elapsed());
    let (t, cpu) = (std::time::Instant::now(), thread_cpu());
    records.sort_by_key(|r| std::cmp::Reverse(r.created));
    eprintln!("sort {:?} wall, {:?} CPU", t.elapsed(), thread_cpu() - cpu);
    let (t, cpu) = (std::time::Instant::now(), thread_cpu());
    let now = chrono::Utc::now();
    let mut buf = Vec::with_capacity(1 << 20);
    let mut bytes = 0;
    for r in &records {
        serde_json::to_writer(&mut buf, &r.c.ps_row(&r.node.name, &r.node.ip, now)).unwrap();
        if buf.len() > 1 << 19 {
            bytes += buf.len();
            buf.clear();
        }
    }
    eprintln!("serde rows (the reference) {:?} wall, {:?} CPU, {} MiB", t.elapsed(), thread_cpu() - cpu, bytes >> 20);
    let loops: usize = std::env::var("LOOPS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let records = Arc::new(records);
    for _ in 0..loops {
        let (t, cpu) = (std::time::Instant::now(), thread_cpu());
        let records = Arc::try_unwrap(records.clone())
            .unwrap_or_else(|r| r.iter().map(|r| crate::cluster::ps::PsRecord::new(r.c.clone(), r.node.clone(), r.healthy)).collect());
        let mut s = std::pin::pin!(crate::cluster::ps::ps_stream(records, chrono::Utc::now()));
        let mut bytes = 0;
        while let Some(c) = s.next().await {
            bytes += c.unwrap().len();
        }
        eprintln!("stream {:?} wall, {:?} CPU, {} MiB", t.elapsed(), thread_cpu() - cpu, bytes >> 20);
    }
}
