//! `docker top` (host `ps` filtered to the container's processes, as dockerd does) and
//! `docker stats` (cgroup counters and the container's network devices; the previous CPU sample
//! comes from [`super::stats_collector`]).
use super::record::{NetMode, Record};
use super::stats_collector::CpuSample;
use super::{ContainerError, ContainerService};
use crate::cgroups::{Cgroup, CgroupStats};
use crate::runtime::Runtime;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::Instrument;

/// Interval between two frames of a stats stream (and dockerd's collection period).
const STREAM_INTERVAL: Duration = Duration::from_secs(1);
/// With `stream=0` and no sample kept for the container, the CPU delta is measured over this window.
const ONE_FRAME_WINDOW: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, Default)]
pub struct StatsOptions {
    pub stream: bool,
    /// `one-shot=1`: one sample, no CPU delta.
    pub one_shot: bool,
}

/// `docker top`'s table: titles and the rows of `ps` whose PID is one of `pids`.
pub fn parse_ps(output: &str, pids: &[u32]) -> Result<(Vec<String>, Vec<Vec<String>>), ContainerError> {
    let mut lines = output.lines().filter(|l| !l.trim().is_empty());
    let titles: Vec<String> = lines.next().unwrap_or_default().split_whitespace().map(String::from).collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| ContainerError::InvalidParam("Couldn't find PID field in ps output".into()))?;
    let mut rows = vec![];
    for l in lines {
        let mut fields: Vec<String> = l.split_whitespace().map(String::from).collect();
        let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<u32>().ok()) else { continue };
        if !pids.contains(&pid) {
            continue;
        }
        if fields.len() > titles.len() && !titles.is_empty() {
            let tail = fields.split_off(titles.len() - 1).join(" ");
            fields.push(tail);
        }
        rows.push(fields);
    }
    Ok((titles, rows))
}

/// Interfaces of `/proc/<pid>/net/dev` except `lo`, as dockerd's `networks`.
pub fn parse_net_dev(text: &str) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for l in text.lines().skip(2) {
        let Some((name, rest)) = l.split_once(':') else { continue };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let v: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if v.len() < 12 {
            continue;
        }
        out.insert(
            name.to_string(),
            json!({
                "rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11],
            }),
        );
    }
    out
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// One frame's sample: every counter, with its CPU side kept apart for the collector.
struct Sample {
    cg: CgroupStats,
    cpu: Arc<CpuSample>,
}

fn sample(cg: Option<&Cgroup>) -> Sample {
    let at = std::time::Instant::now();
    let read = super::stats_collector::now_rfc3339();
    let stats = cg.map(|c| c.stats()).unwrap_or_default();
    let system_ns = crate::cgroups::system_cpu_ns(&std::fs::read_to_string("/proc/stat").unwrap_or_default());
    let cpu = Arc::new(CpuSample { at, read, cpu: stats.cpu.clone(), system_ns });
    Sample { cg: stats, cpu }
}

async fn sample_off_runtime(cg: Option<Cgroup>) -> Option<Sample> {
    tokio::task::spawn_blocking(move || sample(cg.as_ref())).await.ok()
}

fn cpu_json(s: Option<&CpuSample>, online: usize) -> Value {
    let Some(s) = s else {
        return json!({"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0}, "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}});
    };
    let c = &s.cpu;
    json!({
        "cpu_usage": {
            "total_usage": c.total_ns,
            "percpu_usage": c.percpu_ns,
            "usage_in_kernelmode": c.system_ns,
            "usage_in_usermode": c.user_ns,
        },
        "system_cpu_usage": s.system_ns,
        "online_cpus": online,
        "throttling_data": {"periods": c.periods, "throttled_periods": c.throttled_periods, "throttled_time": c.throttled_ns},
    })
}

fn frame(rec: &Record, cur: &Sample, pre: Option<&CpuSample>, networks: Option<serde_json::Map<String, Value>>) -> Value {
    let online = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let c = &cur.cg;
    let mut v = json!({
        "read": cur.cpu.read,
        "preread": pre.map(|p| p.read.clone()).unwrap_or_else(|| super::record::ZERO_TIME.to_string()),
        "pids_stats": {"current": c.pids_current},
        "blkio_stats": {
            "io_service_bytes_recursive": c.blkio,
            "io_serviced_recursive": null, "io_queue_recursive": null, "io_service_time_recursive": null,
            "io_wait_time_recursive": null, "io_merged_recursive": null, "io_time_recursive": null, "sectors_recursive": null,
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_json(Some(&cur.cpu), online),
        "precpu_stats": cpu_json(pre, online),
        "memory_stats": {
            "usage": c.mem_usage,
            "max_usage": c.mem_max_usage,
            "stats": c.mem_stat,
            "failcnt": c.mem_failcnt,
            "limit": c.mem_limit.unwrap_or_else(host_memory),
        },
        "name": format!("/{}", rec.name),
        "id": rec.id,
    });
    if let Some(l) = c.pids_limit {
        v["pids_stats"]["limit"] = json!(l);
    }
    if let Some(n) = networks {
        v["networks"] = Value::Object(n);
    }
    v
}

impl<R: Runtime> ContainerService<R> {
    /// `GET /containers/{id}/top`: `(Titles, Processes)`.
    pub async fn top(&self, key: &str, ps_args: &str) -> Result<(Vec<String>, Vec<Vec<String>>), ContainerError> {
        let rec = self.get(key)?.record();
        if !rec.running() {
            return Err(ContainerError::Conflict(format!("Container {} is not running", rec.id)));
        }
        if rec.state.restarting {
            return Err(ContainerError::Conflict(format!("Container {} is restarting, wait until the container is running", rec.id)));
        }
        let args: Vec<String> =
            if ps_args.trim().is_empty() { vec!["-ef".into()] } else { ps_args.split_whitespace().map(String::from).collect() };
        let pids = self.cgroup(&rec.id)?.pids()?;
        let list = pids.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",");
        let run = |extra: Vec<String>| {
            let mut c = tokio::process::Command::new("ps");
            c.args(&args).args(extra).stdin(std::process::Stdio::null()).kill_on_drop(true);
            c
        };
        let mut out = run(vec!["-q".into(), list]).output().await.map_err(ContainerError::io("running", "ps"))?;
        if !out.status.success() {
            out = run(vec![]).output().await.map_err(ContainerError::io("running", "ps"))?;
        }
        if !out.status.success() {
            return Err(ContainerError::InvalidParam(format!("Error running ps: {}", String::from_utf8_lossy(&out.stderr).trim())));
        }
        parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
    }

    /// `GET /containers/{id}/stats`: one frame, or one per second until the receiver is
    /// dropped or the container stops. The first frame compares with a sample the collector
    /// kept (see [`super::stats_collector`]), so `stream=0` answers at once; `one-shot=1` sends
    /// one sample with no `precpu_stats`, as dockerd does.
    pub fn stats(self: &Arc<Self>, key: &str, opts: StatsOptions) -> Result<mpsc::Receiver<Value>, ContainerError> {
        if opts.stream && opts.one_shot {
            return Err(ContainerError::InvalidParam("cannot have stream=true and one-shot=true".into()));
        }
        let ctr = self.get(key)?;
        let id = ctr.id();
        let cgroup = self.cgroup(&id)?;
        let (tx, rx) = mpsc::channel(4);
        let svc = self.clone();
        let span = tracing::debug_span!("stats", container = %id, stream = opts.stream, one_shot = opts.one_shot);
        // Serves one request: it ends when the client goes (the receiver is dropped).
        tokio::spawn(
            async move {
                let mut prev: Option<Arc<CpuSample>> = None;
                let mut first = true;
                loop {
                    let rec = ctr.record();
                    let running = rec.running();
                    let Some(mut cur) = sample_off_runtime(running.then(|| cgroup.clone())).await else { return };
                    if first && running && !opts.one_shot {
                        prev = svc.stats.previous(&id, &cur.cpu);
                        if prev.is_none() && !opts.stream {
                            // Nothing kept (the collector missed the start): measure over a short window.
                            tracing::debug!("no earlier sample; measuring over a short window");
                            prev = Some(cur.cpu.clone());
                            tokio::time::sleep(ONE_FRAME_WINDOW).await;
                            let Some(again) = sample_off_runtime(Some(cgroup.clone())).await else { return };
                            cur = again;
                        }
                    }
                    if running {
                        svc.stats.record(&id, cur.cpu.clone());
                    }
                    first = false;
                    let networks = (running && rec.net_mode != NetMode::Host && rec.state.pid > 0)
                        .then(|| std::fs::read_to_string(format!("/proc/{}/net/dev", rec.state.pid)).ok())
                        .flatten()
                        .map(|t| parse_net_dev(&t));
                    tracing::debug!(preread = prev.as_ref().map(|p| p.read.as_str()), "stats frame");
                    if tx.send(frame(&rec, &cur, prev.as_deref(), networks)).await.is_err() || !opts.stream || !running {
                        return;
                    }
                    prev = Some(cur.cpu);
                    tokio::time::sleep(STREAM_INTERVAL).await;
                }
            }
            .instrument(span),
        );
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_rows_of_the_container_only() {
        let out = "UID          PID    PPID  C STIME TTY          TIME CMD\nroot           1       0  0 10:00 ?        00:00:01 /sbin/init\nroot        4242    4200  0 10:01 ?        00:00:00 sleep 100 extra\n";
        let (titles, rows) = parse_ps(out, &[4242]).unwrap();
        assert_eq!(titles.len(), 8);
        assert_eq!(rows, vec![vec!["root", "4242", "4200", "0", "10:01", "?", "00:00:00", "sleep 100 extra"]]);
        assert!(parse_ps("A B\n1 2\n", &[1]).is_err());
    }

    #[test]
    fn net_dev_without_lo() {
        let t = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n  eth0:    1296      16    0    0    0     0          0         0      726       9    0    0    0     0       0          0\n";
        let n = parse_net_dev(t);
        assert_eq!(n.len(), 1);
        assert_eq!(n["eth0"]["rx_bytes"], 1296);
        assert_eq!(n["eth0"]["tx_packets"], 9);
    }
}
