//! Manager benchmark: N simulated nodes (a child process, one loopback port each), one manager
//! (in this process), placements through its HTTP API.
//!
//! `manager-bench [--nodes N] [--creates K] [--concurrency C] [--containers T] [--poll]`
//! (`--poll`: the nodes have no event stream, so the manager holds one connection less per
//! node and keeps them current by refreshing and by inspecting after each create.)
//! prints: placements/s sequential and C-way concurrent, p50/p99 create latency, `docker info`
//! and `docker ps -a` latency once T containers exist, and the manager's memory.
//! (`manager-bench sim FIRST N poll|events FILE` is a simulator child.)
use manager::sim::{serve, SimNode};
use manager::{Cluster, ClusterOpts};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.windows(2).find(|w| w[0] == name).and_then(|w| w[1].parse().ok()).unwrap_or(default)
}

fn raise_fd_limit() {
    let want = 1 << 20;
    // SAFETY: setrlimit(2) with a valid struct.
    unsafe {
        let lim = libc::rlimit { rlim_cur: want, rlim_max: want };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            let mut cur = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur);
            cur.rlim_cur = cur.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &cur);
        }
    }
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| s.split_whitespace().next().map(String::from)).unwrap_or_default()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// CPU seconds (user + system) used so far by process `pid`.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    // SAFETY: sysconf(3) has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / hz.max(1.0)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn sim_child(first: usize, n: usize, poll: bool, file: &str) {
    let nodes: Vec<Arc<SimNode>> = (first..first + n)
        .map(|i| {
            let node = SimNode::new(&format!("sim-{i}"), 64, 256 << 30, &[]);
            node.no_events.store(poll, std::sync::atomic::Ordering::Relaxed);
            node
        })
        .collect();
    let token = manager::CancellationToken::new();
    let addrs = serve(nodes, token.clone()).await.expect("bind simulated nodes");
    std::fs::write(file, addrs.join("\n")).expect("write addresses");
    std::future::pending::<()>().await;
}

/// Nodes per simulator process (each node holds a listener and one or two connections; the
/// file-descriptor limit here is 20,000).
const PER_CHILD: usize = 3000;

static FAILED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One create through the manager; failures are counted (and the first few printed).
async fn create(client: &reqwest::Client, base: &str) -> Duration {
    let t = Instant::now();
    let r = client
        .post(format!("{base}/v1.41/containers/create"))
        .header("Content-Type", "application/json")
        .body(r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"Memory":1048576}}"#)
        .send()
        .await;
    let ok = match r {
        Ok(r) if r.status().as_u16() == 201 => {
            let _ = r.bytes().await;
            true
        }
        Ok(r) => {
            let msg = r.text().await.unwrap_or_default();
            if FAILED.load(std::sync::atomic::Ordering::Relaxed) < 3 {
                eprintln!("create failed: {msg}");
            }
            false
        }
        Err(e) => {
            eprintln!("create failed: {e}");
            false
        }
    };
    if !ok {
        FAILED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    t.elapsed()
}

async fn timed_get(client: &reqwest::Client, url: &str) -> (Duration, usize) {
    let t = Instant::now();
    let b = client.get(url).send().await.expect("get").bytes().await.expect("body");
    (t.elapsed(), b.len())
}

async fn bench(n: usize, creates: usize, conc: usize, total: usize, poll: bool) {
    let mut children = vec![];
    let mut files = vec![];
    for (k, first) in (0..n).step_by(PER_CHILD).enumerate() {
        let count = PER_CHILD.min(n - first);
        let file = std::env::temp_dir().join(format!("manager-bench-{}-{k}.addrs", std::process::id()));
        let _ = std::fs::remove_file(&file);
        let child = std::process::Command::new(std::env::current_exe().expect("own path"))
            .args(["sim", &first.to_string(), &count.to_string(), if poll { "poll" } else { "events" }, &file.display().to_string()])
            .spawn()
            .expect("spawn simulator");
        children.push(child);
        files.push((file, count));
    }
    let mut addrs = String::new();
    for (file, count) in &files {
        loop {
            if let Ok(s) = std::fs::read_to_string(file) {
                if s.lines().count() == *count {
                    addrs.push_str(&s);
                    addrs.push('\n');
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let entries: Vec<discovery::Entry> =
        addrs.lines().filter(|l| !l.is_empty()).map(|a| discovery::Entry::parse(a).expect("address")).collect();
    let token = manager::CancellationToken::new();
    let cluster = Cluster::new(ClusterOpts::default(), None, token.clone()).expect("cluster");
    let t = Instant::now();
    cluster.sync(&entries);
    while cluster.views().len() < n {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let join = t.elapsed();
    // Every node's event stream is open before the creates start.
    let t_ev = Instant::now();
    while !poll && cluster.engines().iter().any(|e| !e.events_live()) && t_ev.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let live = cluster.engines().iter().filter(|e| e.events_live()).count();
    let load_before = loadavg();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", l.local_addr().expect("addr"));
    let app = manager::api::router(cluster.clone());
    let t2 = token.clone();
    tokio::spawn(async move { axum::serve(l, app).with_graceful_shutdown(t2.cancelled_owned()).await });
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(manager::tls::plain_client_config())
        .pool_max_idle_per_host(conc * 2)
        .build()
        .expect("client");

    let mut seq = Vec::with_capacity(creates);
    let t = Instant::now();
    for _ in 0..creates {
        seq.push(create(&client, &base).await);
    }
    let seq_rate = creates as f64 / t.elapsed().as_secs_f64();
    seq.sort();

    let cpu0 = (cpu_secs(std::process::id()), children.iter().map(|c| cpu_secs(c.id())).sum::<f64>());
    let t = Instant::now();
    let per = creates.div_ceil(conc);
    let tasks: Vec<_> = (0..conc)
        .map(|_| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                let mut v = Vec::with_capacity(per);
                for _ in 0..per {
                    v.push(create(&client, &base).await);
                }
                v
            })
        })
        .collect();
    let mut con = vec![];
    for t in tasks {
        con.extend(t.await.expect("task"));
    }
    let con_rate = con.len() as f64 / t.elapsed().as_secs_f64();
    let cpu_us = |now: f64, then: f64| (now - then) * 1e6 / con.len().max(1) as f64;
    let cpu = (cpu_us(cpu_secs(std::process::id()), cpu0.0), cpu_us(children.iter().map(|c| cpu_secs(c.id())).sum::<f64>(), cpu0.1));
    con.sort();

    let mut have = seq.len() + con.len();
    let t = Instant::now();
    while have < total {
        let batch = (total - have).min(conc * 100);
        let per = batch.div_ceil(conc);
        let tasks: Vec<_> = (0..conc)
            .map(|_| {
                let (client, base) = (client.clone(), base.clone());
                tokio::spawn(async move {
                    for _ in 0..per {
                        create(&client, &base).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        have += per * conc;
    }
    let fill = t.elapsed();
    let rss_held = rss_mib(std::process::id());
    let mut info = vec![];
    let mut ps = vec![];
    let mut ps_bytes = 0;
    for _ in 0..5 {
        info.push(timed_get(&client, &format!("{base}/v1.41/info")).await.0);
        let (d, b) = timed_get(&client, &format!("{base}/v1.41/containers/json?all=1")).await;
        ps.push(d);
        ps_bytes = b;
    }
    info.sort();
    ps.sort();
    let rss = rss_mib(std::process::id());
    let held: usize = cluster.engines().iter().map(|e| e.container_count()).sum();
    println!(
        "| {n} | {seq_rate:.0} | {:.2} / {:.2} | {con_rate:.0} | {:.2} / {:.2} | {held} ({:.0}/s) | {:.1} | {:.1} ({:.1} MiB) | {rss_held:.0} / {rss:.0} | {:.1}s | {live} | {} / {} | {} | {load_before} / {} | {:.0} / {:.0} |",
        pct(&seq, 0.5),
        pct(&seq, 0.99),
        pct(&con, 0.5),
        pct(&con, 0.99),
        (have - seq.len() - con.len()) as f64 / fill.as_secs_f64().max(0.001),
        pct(&info, 0.5),
        pct(&ps, 0.5),
        ps_bytes as f64 / (1 << 20) as f64,
        join.as_secs_f64(),
        cluster.node_connections(),
        open_fds(),
        FAILED.load(std::sync::atomic::Ordering::Relaxed),
        loadavg(),
        cpu.0,
        cpu.1,
    );
    token.cancel();
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    for (f, _) in files {
        let _ = std::fs::remove_file(f);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let _ = rustls::crypto::ring::default_provider().install_default();
    raise_fd_limit();
    if args.get(1).map(String::as_str) == Some("sim") {
        // One thread per simulator process: fewer cross-thread wake-ups on a small machine.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let num = |i: usize| -> usize { args.get(i).and_then(|a| a.parse().ok()).expect("sim FIRST N poll|events FILE") };
        let poll = args.get(4).is_some_and(|a| a == "poll");
        rt.block_on(sim_child(num(2), num(3), poll, args.get(5).expect("sim FIRST N poll|events FILE")));
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let nodes = arg(&args, "--nodes", 100);
    let creates = arg(&args, "--creates", 5000);
    let conc = arg(&args, "--concurrency", 32);
    let total = arg(&args, "--containers", 100_000);
    println!("| nodes | seq placements/s | seq p50/p99 ms | {conc}-way placements/s | {conc}-way p50/p99 ms | containers (fill rate) | info p50 ms | ps -a p50 ms (size) | manager RSS MiB (holding / after ps) | nodes validated in | event streams | node conns / fds | failed creates | load (start / end) | CPU µs per concurrent create (manager+client / simulator) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let poll = args.iter().any(|a| a == "--poll");
    rt.block_on(bench(nodes, creates, conc, total, poll));
}
