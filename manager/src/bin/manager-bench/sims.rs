//! The simulated nodes: child processes of up to [`PER_CHILD`] nodes each; their addresses,
//! their counters (`/_sim/stats`) and their reset (`/_sim/reset`).
use anyhow::{bail, Context};
use manager::sim::{serve, SimNode, SimStats};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Nodes per simulator process (each node holds a listener and one or two connections; the
/// file-descriptor limit here is 20,000).
const PER_CHILD: usize = 3000;

/// The simulator child: serves `count` nodes, writes their addresses to `addrs`, runs until killed.
pub async fn child(first: usize, count: usize, prefill: usize, poll: bool, addrs: PathBuf) -> anyhow::Result<()> {
    let nodes: Vec<Arc<SimNode>> = (first..first + count)
        .map(|i| {
            let node = SimNode::new(&format!("sim-{i}"), 64, 256 << 30, &[]);
            node.no_events.store(poll, std::sync::atomic::Ordering::Relaxed);
            node.prefill(prefill);
            node
        })
        .collect();
    let token = manager::CancellationToken::new();
    let list = serve(nodes, token.clone()).await.context("bind simulated nodes")?;
    let tmp = addrs.with_extension("tmp");
    std::fs::write(&tmp, list.join("\n")).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, &addrs).with_context(|| format!("rename to {}", addrs.display()))?;
    std::future::pending::<()>().await;
    Ok(())
}

pub struct Sims {
    children: Vec<Child>,
    /// Every node's address, in order.
    pub addrs: Vec<String>,
    /// One address per child (its `/_sim/*` endpoint).
    heads: Vec<String>,
    dir: PathBuf,
}

impl Sims {
    pub async fn start(n: usize, prefill_per_node: usize, poll: bool, dir: PathBuf) -> anyhow::Result<Sims> {
        let exe = std::env::current_exe().context("own path")?;
        let mut sims = Sims { children: vec![], addrs: vec![], heads: vec![], dir };
        let mut files = vec![];
        for (k, first) in (0..n).step_by(PER_CHILD).enumerate() {
            let count = PER_CHILD.min(n - first);
            let file = sims.dir.join(format!("sim-{k}.addrs"));
            let mut cmd = Command::new(&exe);
            cmd.arg("sim").args(["--first", &first.to_string(), "--count", &count.to_string()]);
            cmd.args(["--prefill", &prefill_per_node.to_string(), "--addrs", &file.display().to_string()]);
            if poll {
                cmd.arg("--poll");
            }
            sims.children.push(cmd.spawn().context("spawn a simulator process")?);
            files.push(file);
        }
        let t = Instant::now();
        for (k, file) in files.iter().enumerate() {
            loop {
                if let Ok(s) = std::fs::read_to_string(file) {
                    let list: Vec<String> = s.lines().filter(|l| !l.is_empty()).map(String::from).collect();
                    sims.heads.push(list[0].clone());
                    sims.addrs.extend(list);
                    break;
                }
                if let Some(st) = sims.children[k].try_wait()? {
                    bail!("simulator process {k} exited ({st}) before serving its nodes");
                }
                if t.elapsed() > Duration::from_secs(300) {
                    bail!("simulator process {k} did not serve its nodes within 300 s");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(sims)
    }

    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// The counters of every node.
    pub async fn stats(&self, client: &reqwest::Client) -> anyhow::Result<SimStats> {
        let mut total = SimStats::default();
        for h in &self.heads {
            let s: SimStats = client.get(format!("http://{h}/_sim/stats")).send().await?.error_for_status()?.json().await?;
            total.nodes += s.nodes;
            total.containers += s.containers;
            total.connections += s.connections;
            total.event_streams += s.event_streams;
        }
        Ok(total)
    }

    /// Every node back to its prefilled containers; waits (up to `wait`) until no connection
    /// of an earlier manager is left.
    pub async fn reset(&self, client: &reqwest::Client, wait: Duration) -> anyhow::Result<()> {
        for h in &self.heads {
            client.post(format!("http://{h}/_sim/reset")).send().await?.error_for_status()?;
        }
        let t = Instant::now();
        loop {
            let s = self.stats(client).await?;
            // Our own client's keep-alive connections (one per child) do not count.
            if s.event_streams == 0 && s.connections <= self.heads.len() {
                return Ok(());
            }
            if t.elapsed() > wait {
                eprintln!("warning: {} connections and {} event streams still open on the nodes", s.connections, s.event_streams);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Sims {
    fn drop(&mut self) {
        for c in &mut self.children {
            // Already gone is fine.
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
