//! The failover benchmark (`bench/failover` runs it; ignored in the test suite, as timings on a
//! shared machine are not assertions): real etcd, three agents and three replicated managers
//! in netns hosts (`--heartbeat 1s --replication-ttl 3s`), then TRIALS of
//! - failover: SIGKILL of the primary → the first successful create through a surviving manager;
//! - reschedule: SIGKILL of the agent holding a `reschedule:on-node-failure` container → the
//!   container running on another node;
//!
//! next to their anchors in the same run: the TTL itself (classic Swarm's failover time), and a
//! create + start done directly on a healthy node (the floor of any reschedule).
mod discovery_common;
mod ha_common;
use ha_common::*;
use std::time::{Duration, Instant};

fn curl(args: &[&str]) -> (u16, String) {
    let mut a = vec!["-s", "--max-time", "2", "-w", "\n%{http_code}"];
    a.extend_from_slice(args);
    let o = testground::cmd::run(std::process::Command::new("curl").args(&a), None, Duration::from_secs(5));
    let (body, code) = o.stdout.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn create(addr: &str, name: &str, body: &str) -> (u16, String) {
    curl(&["-X", "POST", "-H", "Content-Type: application/json", "-d", body, &format!("http://{addr}/v1.41/containers/create?name={name}")])
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

#[test]
#[ignore = "benchmark: run by bench/failover"]
fn failover_and_reschedule() {
    require_root!();
    let trials: usize = std::env::var("TRIALS").ok().and_then(|t| t.parse().ok()).unwrap_or(10);
    let mut c = HaCluster::start(3, 3);
    let p = c.wait_one_primary(Duration::from_secs(10));
    c.docker_ok(p, &["load", "-i", &testground::busybox_image_archive().display().to_string()]);
    let names: Vec<String> = (0..3).map(|a| c.agent_name(a)).collect();

    // The floor: create + start done directly on one engine.
    let mut direct = vec![];
    for t in 0..trials {
        let addr = c.agent_addr(0);
        let t0 = Instant::now();
        let (code, body) = create(&addr, &format!("floor-{t}"), r#"{"Image":"busybox","Cmd":["sleep","600"]}"#);
        assert_eq!(code, 201, "{body}");
        let (code, _) = curl(&["-X", "POST", &format!("http://{addr}/v1.41/containers/floor-{t}/start")]);
        assert_eq!(code, 204);
        direct.push(t0.elapsed().as_secs_f64());
        curl(&["-X", "DELETE", &format!("http://{addr}/v1.41/containers/floor-{t}?force=1")]);
    }

    let mut failover = vec![];
    for t in 0..trials {
        let p = c.wait_one_primary(Duration::from_secs(30));
        let survivors: Vec<String> = (0..3).filter(|m| *m != p).map(|m| c.manager_addr(m)).collect();
        let t0 = Instant::now();
        c.kill_manager(p);
        let mut n = 0;
        let took = loop {
            n += 1;
            let addr = &survivors[n % survivors.len()];
            if create(addr, &format!("fo-{t}-{n}"), r#"{"Image":"busybox","Cmd":["true"]}"#).0 == 201 {
                break t0.elapsed();
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "no create after 60 s\n{}", c.logs());
        };
        failover.push(took.as_secs_f64());
        eprintln!("failover trial {t}: {took:?}");
        c.restart_manager(p);
        c.wait_one_primary(Duration::from_secs(30));
        c.wait_healthy(p, 3, Duration::from_secs(30));
    }

    let mut reschedule = vec![];
    for t in 0..trials {
        let p = c.wait_one_primary(Duration::from_secs(30));
        let victim = 1 + t % 2;
        let name = format!("rs-{t}");
        let addr = c.manager_addr(p);
        let body = format!(
            r#"{{"Image":"busybox","Cmd":["sleep","600"],"Env":["reschedule:on-node-failure","constraint:node==~{}"]}}"#,
            names[victim]
        );
        let (code, out) = create(&addr, &name, &body);
        assert_eq!(code, 201, "{out}");
        let old: String = serde_json::from_str::<serde_json::Value>(&out).unwrap()["Id"].as_str().unwrap().to_string();
        assert_eq!(curl(&["-X", "POST", &format!("http://{addr}/v1.41/containers/{name}/start")]).0, 204);
        let t0 = Instant::now();
        c.kill_agent(victim);
        let took = loop {
            let (code, body) = curl(&[&format!("http://{addr}/v1.41/containers/{name}/json")]);
            if code == 200 {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                if v["Id"].as_str().is_some_and(|id| id != old) && v["State"]["Running"] == true {
                    break t0.elapsed();
                }
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "not rescheduled after 60 s\n{}", c.logs());
            std::thread::sleep(Duration::from_millis(50));
        };
        reschedule.push(took.as_secs_f64());
        eprintln!("reschedule trial {t}: {took:?}");
        c.restart_agent(victim);
        for m in 0..3 {
            c.wait_healthy(m, 3, Duration::from_secs(60));
        }
        let _ = curl(&["-X", "DELETE", &format!("http://{addr}/v1.41/containers/{name}?force=1")]);
    }

    let ttl = REPLICATION_TTL.as_secs_f64();
    let row = |what: &str, v: &mut Vec<f64>, anchor: &str, goal: &str| {
        println!("| {what} | {:.2} s | {:.2} s | {anchor} | {goal} |", pct(v, 0.5), pct(v, 0.99));
    };
    println!("\n{trials} trials, --heartbeat 1s --replication-ttl {ttl}s --engine-failure-retry 2, 3 agents, 3 managers");
    println!("| metric | p50 | p99 | anchor | goal |\n|---|---|---|---|---|");
    row(
        "failover: SIGKILL of the primary → first create through a replica",
        &mut failover,
        &format!("TTL {ttl:.0} s (classic Swarm: about the TTL, 20 s by default)"),
        &format!("p99 ≤ {:.0} s", 2.0 * ttl),
    );
    row(
        "reschedule: SIGKILL of an agent → the container running elsewhere",
        &mut reschedule,
        &format!("create + start directly on a node: p50 {:.3} s (classic Swarm: about 3 min, #2152)", pct(&mut direct, 0.5)),
        "p99 ≤ 5 s",
    );
}
