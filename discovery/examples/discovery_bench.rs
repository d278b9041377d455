//! The measuring half of `bench/discovery` (which starts the services): against one discovery
//! URL, N simulated nodes register (first registration, then one renewal each, C at a time),
//! then a watcher measures the time from a new node's registration to the set that shows it.
//!
//!   discovery_bench <url> [--discovery-url BASE] [--n 1000] [--concurrency 50] [--samples 100]
//!                   [--heartbeat 1s] [--label NAME]
use discovery::{duration, Backend, Discovery, DiscoveryOpts, Entry};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

struct Args {
    url: String,
    token_url: Option<String>,
    n: usize,
    conc: usize,
    samples: usize,
    heartbeat: Duration,
    label: String,
}

/// Why the command line is refused (printed as is).
#[derive(Debug, thiserror::Error)]
enum ArgsError {
    #[error("{0} needs a value")]
    Missing(String),
    #[error("{flag}: {source}")]
    Number { flag: String, source: std::num::ParseIntError },
    #[error(transparent)]
    Duration(#[from] duration::DurationError),
    #[error("unexpected argument {0:?}")]
    Unexpected(String),
    #[error("usage: discovery_bench <discovery url> [--discovery-url BASE] [--n N] [--concurrency C] [--samples S] [--heartbeat D]")]
    Usage,
}

fn args() -> Result<Args, ArgsError> {
    let mut a = Args {
        url: String::new(),
        token_url: None,
        n: 1000,
        conc: 50,
        samples: 100,
        heartbeat: Duration::from_secs(1),
        label: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut val = || it.next().ok_or_else(|| ArgsError::Missing(x.clone()));
        let number = |v: String| v.parse().map_err(|source| ArgsError::Number { flag: x.clone(), source });
        match x.as_str() {
            "--discovery-url" => a.token_url = Some(val()?),
            "--n" => a.n = number(val()?)?,
            "--concurrency" => a.conc = number(val()?)?,
            "--samples" => a.samples = number(val()?)?,
            "--heartbeat" => a.heartbeat = duration::parse(&val()?)?.abs,
            "--label" => a.label = val()?,
            _ if a.url.is_empty() && !x.starts_with('-') => a.url = x,
            _ => return Err(ArgsError::Unexpected(x)),
        }
    }
    if a.url.is_empty() {
        return Err(ArgsError::Usage);
    }
    if a.label.is_empty() {
        a.label = a.url.split("://").next().unwrap_or("?").to_string();
    }
    Ok(a)
}

/// The i-th simulated node: 10.x.y.z:2375.
fn node(i: usize) -> Entry {
    let i = i + 1;
    Entry { host: format!("10.{}.{}.{}", 100 + (i >> 16) % 100, (i >> 8) & 255, i & 255), port: 2375 }
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Registers nodes `range` with `conc` in flight; returns (wall time, per-call latencies, errors).
async fn register_all(d: &Arc<Backend>, range: std::ops::Range<usize>, conc: usize, ttl: Duration) -> (Duration, Vec<Duration>, usize) {
    let sem = Arc::new(tokio::sync::Semaphore::new(conc));
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in range {
        let (d, sem) = (d.clone(), sem.clone());
        let permit = sem.acquire_owned().await.expect("semaphore is never closed");
        tasks.spawn(async move {
            let s = Instant::now();
            let r = d.register(&node(i), ttl).await;
            drop(permit);
            (s.elapsed(), r.is_ok())
        });
    }
    let (mut lat, mut errors) = (vec![], 0);
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok((l, true)) => lat.push(l),
            _ => errors += 1,
        }
    }
    (t0.elapsed(), lat, errors)
}

#[tokio::main]
async fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let opts = DiscoveryOpts { token_url: a.token_url.clone(), ..Default::default() };
    let d = Arc::new(Backend::from_url(&a.url, &opts).unwrap_or_else(|e| panic!("{e}")));
    let ttl = Duration::from_secs(600);

    let (wall1, mut lat1, err1) = register_all(&d, 0..a.n, a.conc, ttl).await;
    let (wall2, mut lat2, err2) = register_all(&d, 0..a.n, a.conc, ttl).await;
    let listed = d.list().await.map(|v| v.len()).unwrap_or(0);

    // Watch latency: register a new node every 20 ms while one watcher looks for them.
    let stop = CancellationToken::new();
    let mut rx = d.watch(a.heartbeat, stop.clone());
    match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
        Ok(Some(Ok(_))) => {}
        other => panic!("no initial watch set: {other:?}"),
    }
    let pending: Arc<std::sync::Mutex<HashMap<Entry, Instant>>> = Default::default();
    let reg = {
        let (d, pending, n, samples) = (d.clone(), pending.clone(), a.n, a.samples);
        tokio::spawn(async move {
            for s in 0..samples {
                let e = node(n + s);
                pending.lock().expect("not poisoned").insert(e.clone(), Instant::now());
                if let Err(err) = d.register(&e, ttl).await {
                    eprintln!("sample registration failed: {err}");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut seen = vec![];
    let deadline = Instant::now() + Duration::from_secs(60) + a.heartbeat * 3;
    while seen.len() < a.samples && Instant::now() < deadline {
        let Ok(Some(ev)) = tokio::time::timeout(deadline - Instant::now(), rx.recv()).await else { break };
        let Ok(set) = ev else { continue };
        let now = Instant::now();
        let mut p = pending.lock().expect("not poisoned");
        for e in &set {
            if let Some(t0) = p.remove(e) {
                seen.push(now - t0);
            }
        }
    }
    stop.cancel();
    let _ = reg.await;

    // Clean up what we registered.
    match &*d {
        Backend::Token(t) => {
            let _ = t.delete_cluster().await;
        }
        Backend::Etcd(e) => {
            if let Ok(mut c) = e.client().await {
                let _ = c.delete(format!("{}/", e.dir()), Some(etcd_client::DeleteOptions::new().with_prefix())).await;
            }
        }
        _ => {}
    }

    let rate = |n: usize, w: Duration| n as f64 / w.as_secs_f64();
    println!("== {} ({})", a.label, a.url);
    println!(
        "  first registration : {} nodes in {:.2} s = {:>8.0} reg/s  (p50 {}, p99 {}, {} errors, concurrency {})",
        a.n,
        wall1.as_secs_f64(),
        rate(lat1.len(), wall1),
        ms(pct(&mut lat1, 0.5)),
        ms(pct(&mut lat1, 0.99)),
        err1,
        a.conc
    );
    println!(
        "  renewal (heartbeat): {} nodes in {:.2} s = {:>8.0} reg/s  (p50 {}, p99 {}, {} errors)",
        a.n,
        wall2.as_secs_f64(),
        rate(lat2.len(), wall2),
        ms(pct(&mut lat2, 0.5)),
        ms(pct(&mut lat2, 0.99)),
        err2
    );
    println!("  listed after registration: {listed}");
    println!(
        "  watcher sees a new node: p50 {}, p99 {}, max {} ({} of {} samples seen, heartbeat {})",
        ms(pct(&mut seen, 0.5)),
        ms(pct(&mut seen, 0.99)),
        ms(pct(&mut seen, 1.0)),
        seen.len(),
        a.samples,
        duration::format(a.heartbeat)
    );
}
