//! One manager under test: started from its command template as its own process, waited for
//! until it has validated every node, stopped at the end.
use anyhow::{bail, Context};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Managed {
    child: Child,
    pub pid: u32,
    /// `http://host:port`
    pub base: String,
    pub log: PathBuf,
}

/// What a manager's `/info` says of its nodes (classic Swarm's `SystemStatus`, or
/// `DriverStatus` for old API versions: `  └ Status` = `Healthy` per node).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NodeHealth {
    pub healthy: usize,
    pub other: usize,
    /// The first few `└ Error` values.
    pub errors: Vec<String>,
}

pub fn node_health(info: &Value) -> NodeHealth {
    let mut h = NodeHealth::default();
    let pairs = info["SystemStatus"].as_array().filter(|a| !a.is_empty()).or(info["DriverStatus"].as_array());
    for p in pairs.into_iter().flatten() {
        let (Some(k), Some(v)) = (p[0].as_str(), p[1].as_str()) else { continue };
        match k.trim() {
            "└ Status" if v == "Healthy" => h.healthy += 1,
            "└ Status" => h.other += 1,
            "└ Error" if !v.is_empty() && v != "(none)" && h.errors.len() < 3 => h.errors.push(v.to_string()),
            _ => {}
        }
    }
    h
}

fn free_addr() -> anyhow::Result<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(l.local_addr()?.to_string())
}

impl Managed {
    /// Starts `template` (checked already) with `nodes` as its discovery; `sh -c 'exec …'`.
    pub fn start(var: &str, template: &str, nodes: &str, log: PathBuf) -> anyhow::Result<Managed> {
        let addr = free_addr()?;
        let cmd = manager::sim::template::expand(var, template, nodes, &addr)?;
        let out = std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {cmd}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("start {var}: sh -c 'exec {}'", shorten(&cmd)))?;
        let pid = child.id();
        Ok(Managed { child, pid, base: format!("http://{addr}"), log })
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = s.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits until the manager's `/info` shows `n` Healthy nodes; fails if it exits or the
    /// timeout passes, with what it last reported and the end of its log.
    pub async fn wait_ready(&mut self, client: &reqwest::Client, n: usize, timeout: Duration) -> anyhow::Result<Duration> {
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait()? {
                bail!("the manager exited ({st}) before validating its nodes; the end of {}:\n{}", self.log.display(), self.log_tail(20));
            }
            let last = match client.get(format!("{}/info", self.base)).send().await {
                Ok(r) if r.status().is_success() => {
                    let info: Value = r.json().await.unwrap_or_default();
                    let h = node_health(&info);
                    if h.healthy >= n {
                        return Ok(t.elapsed());
                    }
                    format!("{} of {n} nodes Healthy, {} listed otherwise; errors: {:?}", h.healthy, h.other, h.errors)
                }
                Ok(r) => format!("GET /info answered {}", r.status()),
                Err(e) => format!("GET /info: {e}"),
            };
            if t.elapsed() > timeout {
                bail!(
                    "the manager did not validate all {n} nodes within {} s (last: {last}); raise READY_TIMEOUT if it is just slow; the end of {}:\n{}",
                    timeout.as_secs(),
                    self.log.display(),
                    self.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub async fn stop(&mut self) {
        // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!("warning: the manager (pid {}) ignored SIGTERM for 10 s; killing it", self.pid);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A command line for a message: the discovery list of thousands of nodes cut short.
fn shorten(s: &str) -> String {
    if s.len() <= 300 {
        s.to_string()
    } else {
        format!("{}…", &s[..s.char_indices().take_while(|(i, _)| *i < 300).last().map_or(0, |(i, _)| i)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_healthy_nodes_in_system_status_or_driver_status() {
        let info = json!({"SystemStatus": [["Role", "primary"], ["Nodes", "3"], [" a", "1.2.3.4:1"], ["  └ Status", "Healthy"],
            [" b", "1.2.3.4:2"], ["  └ Status", "Pending"], ["  └ Error", "connection refused"], [" c", "x"], ["  └ Status", "Healthy"]]});
        assert_eq!(node_health(&info), NodeHealth { healthy: 2, other: 1, errors: vec!["connection refused".into()] });
        let old = json!({"SystemStatus": null, "DriverStatus": [["\u{8}Nodes", "1"], [" a", "x"], ["  └ Status", "Healthy"], ["  └ Error", "(none)"]]});
        assert_eq!(node_health(&old), NodeHealth { healthy: 1, other: 0, errors: vec![] });
    }
}
