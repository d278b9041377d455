//! A replicated cluster for the HA tests and the failover benchmark's checks: real etcd on the
//! test bridge, agents (`swarm join`, with engines) in network-namespace hosts, and `swarm manage
//! --replication` managers in hosts of their own (so one can be cut off from etcd with iptables).
#![allow(dead_code)]
pub use super::discovery_common::*;
use std::time::{Duration, Instant};
use testground::cmd::Output;
use testground::etcd::Etcd;

pub const MANAGER_PORT: u16 = 3376;
/// `--replication-ttl` of the tests.
pub const REPLICATION_TTL: Duration = Duration::from_secs(3);
/// The agents' discovery `--ttl`: failures are found through the nodes' event streams within a
/// heartbeat or two, so the registration may live longer than the default tests' 3 s, which a
/// loaded machine (a late keep-alive, a slow etcd fsync) could let expire under a live agent.
const AGENT_TTL: &str = "10s";

pub struct HaCluster {
    pub net: TestNet,
    pub etcd: Etcd,
    pub disc: String,
    pub n_agents: usize,
    pub agents: Vec<Option<HostProc>>,
    pub managers: Vec<Option<HostProc>>,
}

impl HaCluster {
    /// `agents` agents on hosts 0.., then `managers` managers on the next hosts; waits until one
    /// manager is primary and every manager sees every agent healthy.
    pub fn start(agents: usize, managers: usize) -> HaCluster {
        let net = TestNet::new(agents + managers);
        let gw = net.gateway();
        let etcd = Etcd::start_on(&[&gw, "127.0.0.1"], None);
        let disc = format!("etcd://{}/flt", etcd.endpoint());
        let mut c = HaCluster { net, etcd, disc, n_agents: agents, agents: vec![], managers: vec![] };
        for i in 0..agents {
            let a = join_ttl(c.net.host(i), &c.disc, AGENT_TTL, &[]);
            c.agents.push(Some(a));
        }
        for i in 0..managers {
            let m = c.spawn_manager(i);
            c.managers.push(Some(m));
        }
        c.wait_one_primary(Duration::from_secs(30));
        for m in 0..managers {
            c.wait_healthy(m, agents, Duration::from_secs(60));
        }
        c
    }

    pub fn manager_host(&self, m: usize) -> &Host {
        self.net.host(self.n_agents + m)
    }
    pub fn manager_addr(&self, m: usize) -> String {
        format!("{}:{MANAGER_PORT}", self.manager_host(m).ip())
    }
    pub fn agent_addr(&self, a: usize) -> String {
        advertise(self.net.host(a))
    }

    fn spawn_manager(&self, m: usize) -> HostProc {
        let ttl = format!("{}s", REPLICATION_TTL.as_secs());
        let args: Vec<String> = [
            "manage",
            "-H",
            &format!("tcp://0.0.0.0:{MANAGER_PORT}"),
            "--insecure-tcp",
            "--replication",
            "--advertise",
            &self.manager_addr(m),
            "--replication-ttl",
            &ttl,
            "--heartbeat",
            "1s",
            "--engine-refresh-min-interval",
            "1s",
            "--engine-refresh-max-interval",
            "2s",
            "--engine-failure-retry",
            "2",
            "-l",
            "debug",
            &self.disc,
        ]
        .map(String::from)
        .to_vec();
        self.manager_host(m).spawn("manage", SWARM, &args)
    }

    /// Starts manager `m` again (after a kill).
    pub fn restart_manager(&mut self, m: usize) {
        self.managers[m] = None;
        self.managers[m] = Some(self.spawn_manager(m));
    }

    pub fn kill_manager(&mut self, m: usize) {
        if let Some(mut p) = self.managers[m].take() {
            p.kill();
        }
    }

    pub fn kill_agent(&mut self, a: usize) {
        if let Some(mut p) = self.agents[a].take() {
            p.kill();
        }
    }

    /// Starts agent `a` again with the same data root (its containers come back with it).
    pub fn restart_agent(&mut self, a: usize) {
        self.agents[a] = None;
        self.agents[a] = Some(join_ttl(self.net.host(a), &self.disc, AGENT_TTL, &[]));
    }

    pub fn docker_t(&self, m: usize, args: &[&str], timeout: Duration) -> Output {
        docker_at(&format!("tcp://{}", self.manager_addr(m)), args, timeout)
    }

    pub fn docker(&self, m: usize, args: &[&str]) -> Output {
        self.docker_t(m, args, Duration::from_secs(60))
    }

    pub fn docker_ok(&self, m: usize, args: &[&str]) -> String {
        let o = self.docker(m, args);
        assert!(o.success(), "docker {args:?} through manager {m} failed:\n{o}\n{}", self.logs());
        o.stdout
    }

    /// The `SystemStatus` pairs of manager `m`'s `docker info` (`None` if it does not answer).
    pub fn status(&self, m: usize) -> Option<Vec<(String, String)>> {
        let o = self.docker_t(m, &["info", "--format", "{{json .SystemStatus}}"], Duration::from_secs(10));
        if !o.success() {
            return None;
        }
        let v: Vec<(String, String)> = serde_json::from_str(o.stdout.trim()).ok()?;
        Some(v)
    }

    /// `(role, primary)` as manager `m` reports them.
    pub fn role(&self, m: usize) -> Option<(String, Option<String>)> {
        let s = self.status(m)?;
        let get = |k: &str| s.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
        Some((get("Role")?, get("Primary")))
    }

    /// Index of the manager that says it is primary, when exactly one of the running ones does
    /// and every running replica names it.
    pub fn primary(&self) -> Option<usize> {
        let running: Vec<usize> = (0..self.managers.len()).filter(|m| self.managers[*m].is_some()).collect();
        let roles: Vec<(usize, (String, Option<String>))> = running.iter().filter_map(|m| Some((*m, self.role(*m)?))).collect();
        if roles.len() != running.len() {
            return None;
        }
        let primaries: Vec<usize> = roles.iter().filter(|(_, (r, _))| r == "primary").map(|(m, _)| *m).collect();
        let [p] = primaries[..] else { return None };
        let addr = self.manager_addr(p);
        roles.iter().all(|(m, (r, prim))| *m == p || (r == "replica" && prim.as_deref() == Some(addr.as_str()))).then_some(p)
    }

    pub fn wait_one_primary(&self, timeout: Duration) -> usize {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if let Some(p) = self.primary() {
                return p;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "no single primary after {timeout:?}: {:?}\n{}",
            (0..self.managers.len()).map(|m| self.role(m)).collect::<Vec<_>>(),
            self.logs()
        );
    }

    /// Waits until manager `m` shows `n` healthy nodes.
    pub fn wait_healthy(&self, m: usize, n: usize, timeout: Duration) {
        let ok = wait_until(timeout, || {
            self.status(m).is_some_and(|s| s.iter().filter(|(k, v)| k.contains("Status") && v == "Healthy").count() == n)
        });
        assert!(ok, "manager {m} does not see {n} healthy nodes: {:?}\n{}", self.status(m), self.logs());
    }

    /// The tails of every manager's log.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (m, p) in self.managers.iter().enumerate() {
            if let Some(p) = p {
                let log = p.log();
                let lines: Vec<&str> = log.lines().collect();
                out.push_str(&format!(
                    "--- manager {m} ({}) ---\n{}\n",
                    self.manager_addr(m),
                    lines[lines.len().saturating_sub(40)..].join("\n")
                ));
            }
        }
        out
    }

    /// The node name of agent `a` (its engine's `docker info` name).
    pub fn agent_name(&self, a: usize) -> String {
        let o = docker_at(&format!("tcp://{}", self.agent_addr(a)), &["info", "--format", "{{.Name}}"], Duration::from_secs(20));
        assert!(o.success(), "{o}");
        o.stdout.trim().to_string()
    }
}
