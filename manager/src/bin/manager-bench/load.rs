//! The load driver: the same creates, `info` and `ps -a` against whichever manager runs, with
//! the manager's RSS and CPU read from /proc by its pid. One row per manager.
use crate::managed::Managed;
use crate::sims::Sims;
use crate::{DiscoveryForm, RunOpts};
use anyhow::Context;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Past this many nodes, `{nodes}` is a `file://` path (a command line has limits).
const NODES_URL_MAX: usize = 64;

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

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
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

/// CPU seconds used so far by every thread of process `pid`, to the nanosecond (each task's
/// `schedstat`; `stat` counts in clock ticks, too coarse for one call).
fn cpu_secs_fine(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0.0 };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next().and_then(|x| x.parse::<u64>().ok()))
        .sum();
    ns as f64 / 1e9
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

pub fn print_header(conc: usize) {
    println!("| manager | nodes | seq placements/s | seq p50/p99 ms | {conc}-way placements/s | {conc}-way p50/p99 ms | containers (fill rate) | info p50 ms | ps -a p50 ms (size) | manager RSS MiB (holding / after ps) | nodes validated in | event streams | node conns / manager fds | failed creates | load (start / end) | CPU µs per concurrent create (manager / simulator / client) | manager CPU ms per info / ps -a, median, less idle (idle CPU) | ps -a read whole p50 ms / first byte p50 ms / driver CPU ms |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
}

/// Creates through one manager; failures are counted (and the first few printed).
#[derive(Clone)]
struct Driver {
    client: reqwest::Client,
    base: String,
    failed: Arc<AtomicUsize>,
}

impl Driver {
    async fn create(&self) -> Duration {
        let t = Instant::now();
        let r = self
            .client
            .post(format!("{}/v1.41/containers/create", self.base))
            .header("Content-Type", "application/json")
            .body(manager::sim::BENCH_CREATE)
            .send()
            .await;
        let failure = match r {
            Ok(r) if r.status().as_u16() == 201 => match r.bytes().await {
                Ok(_) => None,
                Err(e) => Some(e.to_string()),
            },
            Ok(r) => Some(format!("{}: {}", r.status(), r.text().await.unwrap_or_default())),
            Err(e) => Some(e.to_string()),
        };
        if let Some(msg) = failure {
            if self.failed.fetch_add(1, Ordering::Relaxed) < 3 {
                eprintln!("create failed: {msg}");
            }
        }
        t.elapsed()
    }

    /// `count` creates, `conc` at a time; their latencies.
    async fn creates(&self, count: usize, conc: usize) -> Vec<Duration> {
        let per = count.div_ceil(conc);
        let tasks: Vec<_> = (0..conc)
            .map(|_| {
                let d = self.clone();
                tokio::spawn(async move {
                    let mut v = Vec::with_capacity(per);
                    for _ in 0..per {
                        v.push(d.create().await);
                    }
                    v
                })
            })
            .collect();
        let mut all = Vec::with_capacity(per * conc);
        for t in tasks {
            all.extend(t.await.expect("a create task does not panic"));
        }
        all
    }

    async fn timed_get(&self, path: &str) -> anyhow::Result<(Duration, bytes::Bytes)> {
        let t = Instant::now();
        let b = self.client.get(format!("{}{path}", self.base)).send().await?.error_for_status()?.bytes().await?;
        Ok((t.elapsed(), b))
    }

    /// The answer read as it arrives and dropped (as `curl -o /dev/null`): (time to its first
    /// body bytes, time to its end, its size).
    async fn timed_read(&self, path: &str) -> anyhow::Result<(Duration, Duration, usize)> {
        let t = Instant::now();
        let mut r = self.client.get(format!("{}{path}", self.base)).send().await?.error_for_status()?;
        let (mut first, mut size) = (None, 0);
        while let Some(chunk) = r.chunk().await? {
            first.get_or_insert_with(|| t.elapsed());
            size += chunk.len();
        }
        Ok((first.unwrap_or_else(|| t.elapsed()), t.elapsed(), size))
    }
}

pub async fn run(o: RunOpts) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("manager-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let prefill = if o.prefill { o.containers.div_ceil(o.nodes) } else { 0 };
    let sims = Sims::start(o.nodes, prefill, o.poll, dir.clone()).await?;
    let nodes_arg = match o.discovery {
        DiscoveryForm::Nodes => format!("nodes://{}", sims.addrs.join(",")),
        DiscoveryForm::Auto if o.nodes <= NODES_URL_MAX => format!("nodes://{}", sims.addrs.join(",")),
        DiscoveryForm::Auto | DiscoveryForm::File => {
            let file = dir.join("nodes");
            std::fs::write(&file, sims.addrs.join("\n") + "\n").with_context(|| format!("write {}", file.display()))?;
            format!("file://{}", file.display())
        }
    };
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(manager::tls::plain_client_config())
        .pool_max_idle_per_host(o.concurrency * 2)
        .timeout(Duration::from_secs(600))
        .build()?;
    for (i, (name, template)) in o.managers.iter().enumerate() {
        if i > 0 {
            sims.reset(&client, Duration::from_secs(30)).await?;
        }
        let var = if i == 0 { "MANAGER_CMD".to_string() } else { format!("MANAGER{}_CMD", i + 1) };
        let sim_cpu0: f64 = sims.pids().iter().map(|p| cpu_secs(*p)).sum();
        let mut m = Managed::start(&var, template, &nodes_arg, dir.join(format!("manager-{i}.log")))?;
        let row = measure(&o, name, &mut m, &sims, &client, sim_cpu0).await;
        if !o.hold.is_zero() {
            eprintln!("{name}: held for {} s at {} (pid {})", o.hold.as_secs(), m.base, m.pid);
            tokio::time::sleep(o.hold).await;
        }
        m.stop().await;
        let row = row.with_context(|| format!("{name} ({var}); its log: {}", m.log.display()))?;
        println!("{row}");
        std::io::stdout().flush()?;
    }
    drop(sims);
    // Kept when a manager failed: its log is in there.
    std::fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
    Ok(())
}

/// `sim_cpu0`: the simulators' CPU seconds when the manager started.
async fn measure(o: &RunOpts, name: &str, m: &mut Managed, sims: &Sims, client: &reqwest::Client, sim_cpu0: f64) -> anyhow::Result<String> {
    let n = o.nodes;
    let join = m.wait_ready(client, n, o.ready_timeout).await?;
    let sim_cpu: f64 = sims.pids().iter().map(|p| cpu_secs(*p)).sum();
    eprintln!(
        "{name}: {n} nodes validated in {:.1} s (CPU meanwhile: manager {:.1} s, simulators {:.1} s; load {})",
        join.as_secs_f64(),
        cpu_secs(m.pid),
        sim_cpu - sim_cpu0,
        loadavg()
    );
    // Every node's event stream is open before the creates start (as far as the manager opens them).
    let t = Instant::now();
    let mut streams = sims.stats(client).await?.event_streams;
    while !o.poll && streams < n && t.elapsed() < Duration::from_secs(60 + n as u64 / 100) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        streams = sims.stats(client).await?.event_streams;
    }
    let load_before = loadavg();
    let d = Driver { client: client.clone(), base: m.base.clone(), failed: Arc::new(AtomicUsize::new(0)) };
    let sim_pids = sims.pids();
    let sim_cpu = || sim_pids.iter().map(|p| cpu_secs(*p)).sum::<f64>();

    let t = Instant::now();
    let mut seq = d.creates(o.creates, 1).await;
    let seq_rate = seq.len() as f64 / t.elapsed().as_secs_f64();
    seq.sort();

    let me = std::process::id();
    let cpu0 = (cpu_secs(m.pid), sim_cpu(), cpu_secs(me));
    let t = Instant::now();
    let mut con = d.creates(o.creates, o.concurrency).await;
    let con_rate = con.len() as f64 / t.elapsed().as_secs_f64();
    let per = |now: f64, then: f64| (now - then) * 1e6 / con.len().max(1) as f64;
    let cpu = (per(cpu_secs(m.pid), cpu0.0), per(sim_cpu(), cpu0.1), per(cpu_secs(me), cpu0.2));
    con.sort();

    let made = seq.len() + con.len();
    let mut have = made + if o.prefill { o.containers.div_ceil(n) * n } else { 0 };
    let t = Instant::now();
    while have < o.containers {
        let batch = (o.containers - have).min(o.concurrency * 100);
        have += d.creates(batch, o.concurrency).await.len();
    }
    let fill = t.elapsed();
    let filled = have - made;
    let rss_held = rss_mib(m.pid);
    let (mut info, mut ps, mut ps_bytes, mut held) = (vec![], vec![], 0, 0);
    // The manager's CPU seconds spent on each call (other processes share the cores: the wall
    // time moves with the load, this much less), less what it spends meanwhile when idle (the
    // nodes' refreshes and event streams), measured over a second before the calls.
    let (mut info_cpu, mut ps_cpu) = (vec![], vec![]);
    let (t0, c0) = (Instant::now(), cpu_secs_fine(m.pid));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = (cpu_secs_fine(m.pid) - c0) / t0.elapsed().as_secs_f64();
    // `ps -a` is read as it arrives and dropped (what the manager takes to send it), and read
    // whole into one buffer (as before, and as a client that keeps it); the driver's own CPU
    // for the latter is the client's share.
    let (mut ps_first, mut ps_whole, mut ps_driver) = (vec![], vec![], vec![]);
    for round in 0..5 {
        let c0 = cpu_secs_fine(m.pid);
        let (dt, body) = d.timed_get("/v1.41/info").await?;
        info_cpu.push(cpu_secs_fine(m.pid) - c0 - idle * dt.as_secs_f64());
        info.push(dt);
        eprintln!("{name}: info {round}: {:.1} ms wall, {:.1} ms manager CPU", dt.as_secs_f64() * 1e3, info_cpu[round] * 1e3);
        let v: serde_json::Value = serde_json::from_slice(&body).context("the manager's /info is not JSON")?;
        held = v["Containers"].as_u64().unwrap_or(0);
        let c0 = cpu_secs_fine(m.pid);
        let (first, dt, size) = d.timed_read("/v1.41/containers/json?all=1").await?;
        ps_cpu.push(cpu_secs_fine(m.pid) - c0 - idle * dt.as_secs_f64());
        ps.push(dt);
        ps_first.push(first);
        ps_bytes = size;
        let me0 = cpu_secs_fine(me);
        let (whole, _) = d.timed_get("/v1.41/containers/json?all=1").await?;
        ps_driver.push(cpu_secs_fine(me) - me0);
        ps_whole.push(whole);
        eprintln!(
            "{name}: ps -a {round}: {:.1} ms read and dropped (first byte {:.1} ms, manager CPU {:.1} ms), {:.1} ms read whole (driver CPU {:.1} ms); load {}",
            dt.as_secs_f64() * 1e3,
            first.as_secs_f64() * 1e3,
            ps_cpu[round] * 1e3,
            whole.as_secs_f64() * 1e3,
            ps_driver[round] * 1e3,
            loadavg()
        );
    }
    ps_first.sort();
    ps_whole.sort();
    info.sort();
    ps.sort();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2] * 1e3
    };
    let (info_cpu, ps_cpu, ps_driver) = (median(&mut info_cpu), median(&mut ps_cpu), median(&mut ps_driver));
    let rss = rss_mib(m.pid);
    let stats = sims.stats(client).await?;
    let fill_rate = if o.prefill { "prefilled".to_string() } else { format!("{:.0}/s", filled as f64 / fill.as_secs_f64().max(0.001)) };
    Ok(format!(
        "| {name} | {n} | {seq_rate:.0} | {:.2} / {:.2} | {con_rate:.0} | {:.2} / {:.2} | {held} ({fill_rate}) | {:.1} | {:.1} ({:.1} MiB) | {rss_held:.0} / {rss:.0} | {:.1}s | {streams} | {} / {} | {} | {load_before} / {} | {:.0} / {:.0} / {:.0} | {info_cpu:.1} / {ps_cpu:.0} (idle {:.0}%) | {:.1} / {:.1} / {ps_driver:.0} |",
        pct(&seq, 0.5),
        pct(&seq, 0.99),
        pct(&con, 0.5),
        pct(&con, 0.99),
        pct(&info, 0.5),
        pct(&ps, 0.5),
        ps_bytes as f64 / (1 << 20) as f64,
        join.as_secs_f64(),
        stats.connections.saturating_sub(sims.pids().len()),
        open_fds(m.pid),
        d.failed.load(Ordering::Relaxed),
        loadavg(),
        cpu.0,
        cpu.1,
        cpu.2,
        idle * 100.0,
        pct(&ps_whole, 0.5),
        pct(&ps_first, 0.5),
    ))
}
