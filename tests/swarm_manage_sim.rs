//! `swarm manage` (the real binary) against simulated nodes (manager::sim, no root, no
//! containers): it validates every node, and `docker info` / `docker ps -a` through it show the
//! simulated containers. This is what `bench/manager` relies on: the simulator answers
//! everything a classic Swarm manager asks of an engine. Both discovery forms the benchmark
//! passes (`nodes://` and `file://`) are used.
use manager::sim::{serve, SimNode};
use manager::CancellationToken;
use std::sync::Arc;
use std::time::Duration;
use testground::cmd::Output;
use testground::http;
use testground::manager::ManagerProcess;
use testground::wait_until;

/// Simulated nodes served by a runtime of their own, stopped on drop.
struct SimCluster {
    nodes: Vec<Arc<SimNode>>,
    addrs: Vec<String>,
    stop: CancellationToken,
    _rt: tokio::runtime::Runtime,
}

impl SimCluster {
    fn start(n: usize, prefill: usize) -> SimCluster {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let nodes: Vec<Arc<SimNode>> = (0..n)
            .map(|i| {
                let zone = format!("zone={}", if i % 2 == 0 { "a" } else { "b" });
                let node = SimNode::new(&format!("simnode-{i}"), 4, 8 << 30, &[zone.as_str()]);
                node.prefill(prefill);
                node
            })
            .collect();
        let stop = CancellationToken::new();
        let addrs = rt.block_on(serve(nodes.clone(), stop.clone())).expect("serve simulated nodes");
        SimCluster { nodes, addrs, stop, _rt: rt }
    }

    fn containers(&self) -> usize {
        self.nodes.iter().map(|n| n.container_count()).sum()
    }
}

impl Drop for SimCluster {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A `swarm manage` process, stopped on drop.
struct Manager {
    proc: ManagerProcess,
}

impl Manager {
    fn start(discovery: &str) -> Manager {
        let args = ["--engine-refresh-min-interval", "1s", "--engine-refresh-max-interval", "2s", discovery];
        Manager { proc: ManagerProcess::spawn(env!("CARGO_BIN_EXE_swarm"), &args) }
    }

    fn log(&self) -> String {
        self.proc.log_tail(usize::MAX)
    }

    fn get(&self, path: &str) -> Option<serde_json::Value> {
        let r = http::tcp(&self.proc.addr, &http::Request { method: "GET", path, headers: &[], body: b"" }).ok()?;
        (r.status == 200).then(|| r.json().ok()).flatten()
    }

    fn healthy(&self) -> usize {
        let Some(info) = self.get("/v1.41/info") else { return 0 };
        let pairs = info["SystemStatus"].as_array().cloned().unwrap_or_default();
        pairs.iter().filter(|p| p[0].as_str().map(str::trim) == Some("└ Status") && p[1] == "Healthy").count()
    }

    fn wait_healthy(&self, n: usize) {
        let ok = wait_until(Duration::from_secs(30), || self.healthy() == n);
        assert!(ok, "the manager did not validate {n} simulated nodes: {:?}\n--- manager log ---\n{}", self.get("/info"), self.log());
    }

    fn docker(&self, args: &[&str]) -> Output {
        self.proc.docker(args, None, Duration::from_secs(30))
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("flotilla-msim-").tempdir().expect("tempdir")
}

#[test]
fn swarm_manage_validates_simulated_nodes_and_lists_their_containers() {
    let sims = SimCluster::start(3, 4);
    let m = Manager::start(&format!("nodes://{}", sims.addrs.join(",")));
    m.wait_healthy(3);
    let info = m.get("/v1.41/info").expect("info");
    assert_eq!(info["Containers"], 12, "{info}");
    assert_eq!((info["ContainersRunning"].as_u64(), info["ContainersStopped"].as_u64()), (Some(6), Some(6)), "{info}");
    assert_eq!(info["NCPU"], 12);

    // The docker CLI through the manager.
    let out = m.docker(&["info"]);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("Nodes: 3"), "{out}");
    assert_eq!(out.stdout.matches("Status: Healthy").count(), 3, "{out}");
    assert!(out.stdout.contains("zone=a") && out.stdout.contains("zone=b"), "{out}");
    let out = m.docker(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(out.success(), "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 12, "{out}");
    for i in 0..3 {
        for k in 0..4 {
            let name = format!("simnode-{i}/pre_simnode-{i}_{k} ");
            assert!(lines.iter().any(|l| l.starts_with(&name)), "{name} in {out}");
        }
    }
    assert_eq!(lines.iter().filter(|l| l.contains(" Up ")).count(), 6, "{out}");

    // A create placed on a node, started, inspected and removed through the manager.
    let out = m.docker(&["create", "--name", "web", "-e", "constraint:zone==b", "busybox", "sleep", "60"]);
    assert!(out.success(), "{out}");
    assert_eq!(sims.containers(), 13);
    assert!(m.docker(&["start", "web"]).success());
    let out = m.docker(&["inspect", "-f", "{{.State.Status}} {{.Node.Name}}", "web"]);
    assert_eq!(out.stdout.trim(), "running simnode-1", "{out}");
    let ok = wait_until(Duration::from_secs(10), || m.docker(&["ps", "-q"]).stdout.lines().count() == 7);
    assert!(ok, "{}", m.docker(&["ps"]));
    let out = m.docker(&["rm", "-f", "web"]);
    assert!(out.success(), "{out}");
    assert_eq!(sims.containers(), 12);
    let ok = wait_until(Duration::from_secs(10), || m.get("/v1.41/info").is_some_and(|i| i["Containers"] == 12));
    assert!(ok, "{:?}", m.get("/info"));
}

/// `bench/manager` passes thousands of nodes as a `file://` list, one address a line.
#[test]
fn swarm_manage_reads_simulated_nodes_from_a_file() {
    let sims = SimCluster::start(5, 2);
    let dir = tmp();
    let list = dir.path().join("nodes");
    std::fs::write(&list, sims.addrs.join("\n") + "\n").expect("write node list");
    let m = Manager::start(&format!("file://{}", list.display()));
    m.wait_healthy(5);
    assert_eq!(m.get("/v1.41/containers/json?all=1").expect("ps").as_array().map(Vec::len), Some(10));
}
