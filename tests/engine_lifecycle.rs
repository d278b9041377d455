//! Resources (limits in the cgroup files, OOM, `docker update`, --cpus), pause/unpause,
//! rename, top, stats, restart policies, `docker restart`, and live restore across engine
//! restarts (SIGKILL included, and with the shims gone).
mod common;
use common::*;
use std::time::{Duration, Instant};

fn cgroup_file(e: &Engine, id: &str, ctrl: &str, file: &str) -> String {
    let p = format!("/sys/fs/cgroup/{ctrl}{}/{id}/{file}", e.cgroup_parent());
    std::fs::read_to_string(&p).unwrap_or_else(|err| panic!("{p}: {err}")).trim().to_string()
}

fn id_of(e: &Engine, name: &str) -> String {
    inspect(e, name, "{{.Id}}")
}

#[test]
fn limits_land_in_the_cgroup() {
    require_root!();
    let e = engine_with_busybox();
    let n = e.unique("lim");
    e.docker_ok(&[
        "run",
        "-d",
        "--name",
        &n,
        "-m",
        "64m",
        "--memory-swap",
        "128m",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--cpuset-cpus",
        "0",
        "--pids-limit",
        "50",
        "busybox",
        "sleep",
        "1000",
    ]);
    let id = id_of(&e, &n);
    assert_eq!(cgroup_file(&e, &id, "memory", "memory.limit_in_bytes"), (64u64 << 20).to_string());
    if std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() {
        assert_eq!(cgroup_file(&e, &id, "memory", "memory.memsw.limit_in_bytes"), (128u64 << 20).to_string());
    }
    assert_eq!(cgroup_file(&e, &id, "cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(cgroup_file(&e, &id, "cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(cgroup_file(&e, &id, "cpu", "cpu.shares"), "512");
    assert_eq!(cgroup_file(&e, &id, "cpuset", "cpuset.cpus"), "0");
    assert!(!cgroup_file(&e, &id, "cpuset", "cpuset.mems").is_empty());
    assert_eq!(cgroup_file(&e, &id, "pids", "pids.max"), "50");
    // What the container itself sees, and what inspect reports.
    assert_eq!(e.docker_ok(&["exec", &n, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]).trim(), (64u64 << 20).to_string());
    assert_eq!(
        inspect(&e, &n, "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.CpuShares}} {{.HostConfig.PidsLimit}} {{.HostConfig.CpusetCpus}}"),
        format!("{} 500000000 512 50 0", 64u64 << 20)
    );
    // The pids limit holds.
    let o =
        e.docker(&["exec", &n, "sh", "-c", "for i in $(seq 80); do sleep 5 & done 2>/dev/null; sleep 0.2; ls /proc | grep -c '^[0-9]'"]);
    let count: u32 = o.stdout.trim().parse().unwrap_or(0);
    assert!(count <= 52, "{o}");
    // dockerd's refusals.
    let o = e.docker(&["run", "--rm", "-m", "1m", "busybox", "true"]);
    assert!(!o.success() && o.stderr.contains("Minimum memory limit allowed is 6MB"), "{o}");
    let o = e.docker(&["run", "--rm", "--cpuset-cpus", "64", "busybox", "true"]);
    assert!(!o.success() && o.stderr.contains("not available"), "{o}");
}

#[test]
fn oom_kill_is_reported() {
    require_root!();
    let e = engine_with_busybox();
    let n = e.unique("oom");
    let o = e.docker(&[
        "run",
        "--name",
        &n,
        "-m",
        "32m",
        "busybox",
        "sh",
        "-c",
        "x=$(head -c 150000000 /dev/zero | tr '\\0' a); echo survived",
    ]);
    assert_eq!(o.code(), 137, "{o}");
    assert!(!o.stdout.contains("survived"), "{o}");
    assert_eq!(inspect(&e, &n, "{{.State.OOMKilled}} {{.State.ExitCode}}"), "true 137");
}

#[test]
fn cpus_cap_a_busy_loop() {
    require_root!();
    let e = engine_with_busybox();
    let n = e.unique("cpu");
    e.docker_ok(&["run", "-d", "--name", &n, "--cpus", "0.2", "busybox", "sh", "-c", "while :; do :; done"]);
    let id = id_of(&e, &n);
    let usage = || cgroup_file(&e, &id, "cpuacct", "cpuacct.usage").parse::<u64>().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (u0, t0) = (usage(), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let share = (usage() - u0) as f64 / t0.elapsed().as_nanos() as f64;
    assert!(share < 0.3 && share > 0.05, "busy loop used {share:.2} of a CPU under --cpus 0.2");
}

#[test]
fn update_running_and_stopped_containers() {
    require_root!();
    let e = engine_with_busybox();
    let n = e.unique("upd");
    e.docker_ok(&["run", "-d", "--name", &n, "-m", "32m", "busybox", "sleep", "1000"]);
    let id = id_of(&e, &n);
    e.docker_ok(&["update", "-m", "48m", "--cpus", "0.3", "--pids-limit", "30", "--cpu-shares", "256", &n]);
    assert_eq!(cgroup_file(&e, &id, "memory", "memory.limit_in_bytes"), (48u64 << 20).to_string());
    assert_eq!(cgroup_file(&e, &id, "cpu", "cpu.cfs_quota_us"), "30000");
    assert_eq!(cgroup_file(&e, &id, "cpu", "cpu.shares"), "256");
    assert_eq!(cgroup_file(&e, &id, "pids", "pids.max"), "30");
    assert_eq!(
        inspect(&e, &n, "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}"),
        format!("{} 300000000 30", 48u64 << 20)
    );
    // Raising memory past the memory+swap limit needs both (dockerd's words).
    let o = e.docker(&["update", "-m", "256m", &n]);
    assert!(!o.success() && o.stderr.contains("memoryswap"), "{o}");
    e.docker_ok(&["update", "-m", "256m", "--memory-swap", "512m", &n]);
    assert_eq!(cgroup_file(&e, &id, "memory", "memory.limit_in_bytes"), (256u64 << 20).to_string());
    // A stopped container keeps the update for its next start; restart policy too.
    e.docker_ok(&["stop", "-t", "0", &n]);
    e.docker_ok(&["update", "--pids-limit", "40", "--restart", "on-failure:3", &n]);
    assert_eq!(inspect(&e, &n, "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}"), "on-failure 3");
    e.docker_ok(&["start", &n]);
    assert_eq!(cgroup_file(&e, &id, "pids", "pids.max"), "40");
}

#[test]
fn pause_unpause_rename_top_stats() {
    require_root!();
    let e = engine_with_busybox();
    let n = e.unique("pz");
    e.docker_ok(&["run", "-d", "--name", &n, "-m", "64m", "busybox", "sh", "-c", "while :; do echo tick; sleep 0.1; done"]);
    let id = id_of(&e, &n);
    e.docker_ok(&["pause", &n]);
    assert_eq!(inspect(&e, &n, "{{.State.Status}} {{.State.Paused}} {{.State.Running}}"), "paused true true");
    assert_eq!(cgroup_file(&e, &id, "freezer", "freezer.state"), "FROZEN");
    let ps = e.docker_ok(&["ps", "--filter", &format!("name={n}"), "--format", "{{.Status}}"]);
    assert!(ps.contains("(Paused)"), "{ps}");
    let o = e.docker(&["exec", &n, "true"]);
    assert!(!o.success() && o.stderr.contains("is paused"), "{o}");
    let o = e.docker(&["pause", &n]);
    assert!(!o.success() && o.stderr.contains("already paused"), "{o}");
    e.docker_ok(&["unpause", &n]);
    assert_eq!(inspect(&e, &n, "{{.State.Status}} {{.State.Paused}}"), "running false");
    assert_eq!(cgroup_file(&e, &id, "freezer", "freezer.state"), "THAWED");
    // rename: the new name works, the old one is free, conflicts are refused.
    let renamed = e.unique("pz2");
    e.docker_ok(&["rename", &n, &renamed]);
    assert_eq!(inspect(&e, &renamed, "{{.Name}}"), format!("/{renamed}"));
    assert!(!e.docker(&["inspect", &n]).success());
    let other = e.unique("pz3");
    e.docker_ok(&["create", "--name", &other, "busybox", "true"]);
    let o = e.docker(&["rename", &renamed, &other]);
    assert!(!o.success() && o.stderr.contains("is already in use"), "{o}");
    // top: ps of the container's processes, with ps_args.
    let top = e.docker_ok(&["top", &renamed]);
    assert!(top.lines().next().unwrap().contains("PID") && top.contains("while :"), "{top}");
    let top = e.docker_ok(&["top", &renamed, "-o", "pid,comm"]);
    assert_eq!(top.lines().next().unwrap().split_whitespace().collect::<Vec<_>>(), ["PID", "COMMAND"], "{top}");
    // stats: one frame, memory against the limit, pids, the container's network.
    let s = e.docker_ok(&["stats", "--no-stream", "--format", "{{.Name}}|{{.MemUsage}}|{{.PIDs}}", &renamed]);
    let f: Vec<&str> = s.trim().split('|').collect();
    assert_eq!(f[0], renamed);
    assert!(f[1].ends_with("/ 64MiB"), "{s}");
    assert!(f[2].parse::<u32>().unwrap() >= 1, "{s}");
    let r = e.api("GET", &format!("/v1.41/containers/{renamed}/stats?stream=0"), None).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(v["cpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap() > 0, "{v}");
    assert!(v["precpu_stats"]["system_cpu_usage"].as_u64().unwrap() > 0, "{v}");
    assert!(v["networks"]["eth0"]["rx_bytes"].is_u64(), "{v}");
    assert_eq!(v["memory_stats"]["limit"], 64u64 << 20);
    // Stopping a paused container works.
    e.docker_ok(&["pause", &renamed]);
    e.docker_ok(&["stop", "-t", "1", &renamed]);
    assert_eq!(inspect(&e, &renamed, "{{.State.Status}} {{.State.Paused}}"), "exited false");
}

/// A percentage as the CLI prints it (`12.34%`).
fn percent(s: &str) -> f64 {
    s.trim_end_matches('%').parse().unwrap_or_else(|_| panic!("not a percentage: {s}"))
}

/// `docker stats --no-stream` answers at once (the previous CPU sample is one the engine kept),
/// and its numbers are real: a busy loop shows what its cgroup used over about the last second,
/// an idle container about 0, memory above 0. `one-shot=1` has no previous sample.
#[test]
fn stats_no_stream_at_once_with_real_cpu() {
    require_root!();
    let e = engine_with_busybox();
    let busy = e.unique("busy");
    let idle = e.unique("idle");
    e.docker_ok(&["run", "-d", "--name", &busy, "busybox", "sh", "-c", "while :; do :; done"]);
    e.docker_ok(&["run", "-d", "--name", &idle, "busybox", "sleep", "1000"]);
    let id = id_of(&e, &busy);
    let usage = || cgroup_file(&e, &id, "cpuacct", "cpuacct.usage").parse::<u64>().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // What the loop used, from its cgroup, over a window around the CLI's (percent of one CPU,
    // the CLI's unit). On a loaded machine it gets less than a whole CPU.
    let (u0, t0) = (usage(), Instant::now());
    std::thread::sleep(Duration::from_millis(1000));
    let asked = Instant::now();
    let out = e.docker_ok(&["stats", "--no-stream", "--format", "{{.Name}} {{.CPUPerc}} {{.MemUsage}}", &busy, &idle]);
    let took = asked.elapsed();
    let used = (usage() - u0) as f64 / t0.elapsed().as_nanos() as f64 * 100.0;
    let rows: std::collections::HashMap<String, Vec<String>> = lines(&out)
        .into_iter()
        .map(|l| (l.split_whitespace().next().unwrap().to_string(), l.split_whitespace().map(String::from).collect()))
        .collect();
    let (b, i) = (percent(&rows[&busy][1]), percent(&rows[&idle][1]));
    assert!(used > 20.0, "the loop hardly ran ({used:.1}%): {out}");
    if used > 60.0 {
        assert!(b > 50.0, "busy loop at {b}% while its cgroup says {used:.1}%: {out}");
    }
    assert!(b > used * 0.5 - 5.0 && b < used * 1.5 + 10.0, "busy loop at {b}% while its cgroup says {used:.1}%: {out}");
    assert!(i < 5.0, "idle container at {i}%: {out}");
    for name in [&busy, &idle] {
        assert!(!rows[name][2].starts_with("0B"), "no memory use: {out}");
    }
    // dockerd takes 1-2 s here (it waits for two samples a second apart); the CLI adds 0.5 s.
    assert!(took < Duration::from_millis(1500), "stats --no-stream took {took:?}");
    // The API answers at once, with a previous sample from before the request.
    let t = Instant::now();
    let r = e.api("GET", &format!("/v1.41/containers/{busy}/stats?stream=0"), None).unwrap();
    let took = t.elapsed();
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    // A second sample would take 1 s: well under that means the answer did not wait for one.
    assert!(took < Duration::from_millis(900), "stream=0 took {took:?}");
    let (read, pre) = (v["read"].as_str().unwrap(), v["preread"].as_str().unwrap());
    assert!(!pre.starts_with("0001") && pre < read, "{v}");
    let cpu = |k: &str| v[k]["cpu_usage"]["total_usage"].as_u64().unwrap();
    let sys = |k: &str| v[k]["system_cpu_usage"].as_u64().unwrap();
    assert!(cpu("cpu_stats") > cpu("precpu_stats") && sys("cpu_stats") > sys("precpu_stats"), "{v}");
    assert!(v["memory_stats"]["usage"].as_u64().unwrap() > 0, "{v}");
    // one-shot: a single sample, no previous one (as dockerd).
    let r = e.api("GET", &format!("/v1.41/containers/{busy}/stats?stream=0&one-shot=1"), None).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(v["preread"].as_str().unwrap().starts_with("0001-01-01"), "{v}");
    assert_eq!(v["precpu_stats"]["cpu_usage"]["total_usage"], 0, "{v}");
    assert!(v["cpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap() > 0, "{v}");
    let r = e.api("GET", &format!("/v1.41/containers/{busy}/stats?stream=1&one-shot=1"), None).unwrap();
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    // The idle container has one too (its start's).
    let r = e.api("GET", &format!("/v1.41/containers/{idle}/stats?stream=0"), None).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(!v["preread"].as_str().unwrap().starts_with("0001"), "{v}");
    e.docker_ok(&["rm", "-f", &busy, &idle]);
}

#[test]
fn restart_policies() {
    require_root!();
    let e = engine_with_busybox();
    // on-failure:2 — the first run and two restarts, then it stays down.
    let of = e.unique("of");
    e.docker_ok(&["run", "-d", "--name", &of, "--restart", "on-failure:2", "busybox", "sh", "-c", "echo run; exit 3"]);
    assert!(wait_until(Duration::from_secs(20), || inspect(&e, &of, "{{.State.Status}} {{.RestartCount}}") == "exited 2"));
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(inspect(&e, &of, "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}"), "exited 2 3");
    assert_eq!(e.docker_ok(&["logs", &of]).matches("run").count(), 3);
    // on-failure does not restart a success.
    let ok = e.unique("ok");
    e.docker_ok(&["run", "-d", "--name", &ok, "--restart", "on-failure", "busybox", "true"]);
    assert!(wait_status(&e, &ok, "exited"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(inspect(&e, &ok, "{{.RestartCount}}"), "0");
    // always: a killed process comes back; `docker stop` keeps it down.
    let al = e.unique("al");
    e.docker_ok(&["run", "-d", "--name", &al, "--restart", "always", "busybox", "sleep", "1000"]);
    let pid: i32 = inspect(&e, &al, "{{.State.Pid}}").parse().unwrap();
    // SAFETY: kill(2) of the container's process.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(wait_until(Duration::from_secs(20), || inspect(&e, &al, "{{.State.Status}} {{.RestartCount}}") == "running 1"));
    assert_ne!(inspect(&e, &al, "{{.State.Pid}}"), pid.to_string());
    e.docker_ok(&["stop", "-t", "1", &al]);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(inspect(&e, &al, "{{.State.Status}}"), "exited");
    // An explicit start resets the count.
    e.docker_ok(&["start", &al]);
    assert_eq!(inspect(&e, &al, "{{.State.Status}} {{.RestartCount}}"), "running 0");
    // rm -f ends it for good: no restart, nothing left behind.
    let id = id_of(&e, &al);
    e.docker_ok(&["rm", "-f", &al]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!e.docker(&["inspect", &al]).success());
    assert!(!e.data_root().join("containers").join(&id).exists());
    // Refusals as dockerd words them.
    let o = e.docker(&["run", "--rm", "--restart", "always", "busybox", "true"]);
    assert!(!o.success(), "{o}");
    let o = e.docker(&["create", "--restart", "bogus", "busybox", "true"]);
    assert!(!o.success(), "{o}");
}

#[test]
fn docker_restart_gives_a_new_process() {
    require_root!();
    let e = engine_with_busybox();
    let n = e.unique("rs");
    e.docker_ok(&["run", "-d", "--name", &n, "busybox", "sh", "-c", "trap 'exit 0' TERM; echo up; while :; do sleep 0.1; done"]);
    let (pid, started) = (inspect(&e, &n, "{{.State.Pid}}"), inspect(&e, &n, "{{.State.StartedAt}}"));
    e.docker_ok(&["restart", "-t", "5", &n]);
    assert_eq!(inspect(&e, &n, "{{.State.Status}}"), "running");
    assert_ne!(inspect(&e, &n, "{{.State.Pid}}"), pid);
    assert_ne!(inspect(&e, &n, "{{.State.StartedAt}}"), started);
    assert!(wait_logs(&e, &n, "up\nup"));
    // A stopped container is simply started.
    e.docker_ok(&["stop", "-t", "1", &n]);
    e.docker_ok(&["restart", &n]);
    assert_eq!(inspect(&e, &n, "{{.State.Status}}"), "running");
}

/// Pids of the processes whose command line starts with `prefix` (NUL-separated args).
fn pids_with_cmdline(prefix: &[u8]) -> Vec<i32> {
    let mut out = vec![];
    for ent in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = ent.file_name().to_string_lossy().parse::<i32>() else { continue };
        let cmd = std::fs::read(ent.path().join("cmdline")).unwrap_or_default();
        if cmd.windows(prefix.len()).any(|w| w == prefix) {
            out.push(pid);
        }
    }
    out
}

fn kill_engine(e: &Engine) {
    let pid = e.pid().expect("engine running") as i32;
    // SAFETY: kill(2) of the engine we started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

#[test]
fn live_restore_after_sigkill() {
    require_root!();
    let mut e = engine_with_busybox();
    let sleeper = e.unique("lr1");
    let ticker = e.unique("lr2");
    let dies = e.unique("lr3");
    e.docker_ok(&["run", "-d", "--name", &sleeper, "busybox", "sleep", "1000"]);
    e.docker_ok(&["run", "-d", "--name", &ticker, "busybox", "sh", "-c", "i=0; while :; do i=$((i+1)); echo n=$i; sleep 0.1; done"]);
    e.docker_ok(&["run", "-d", "--name", &dies, "busybox", "sh", "-c", "sleep 1.5; exit 5"]);
    let pid = inspect(&e, &sleeper, "{{.State.Pid}}");
    assert!(wait_logs(&e, &ticker, "n=3"));
    kill_engine(&e);
    // Meanwhile: one container ends, the others go on.
    std::thread::sleep(Duration::from_millis(2500));
    e.restart();
    let running = e.docker_ok(&["ps", "--format", "{{.Names}}"]);
    assert_eq!(sorted_lines(&running), {
        let mut v = vec![sleeper.clone(), ticker.clone()];
        v.sort();
        v
    });
    assert_eq!(inspect(&e, &sleeper, "{{.State.Pid}}"), pid);
    assert!(wait_status(&e, &dies, "exited"));
    assert_eq!(inspect(&e, &dies, "{{.State.ExitCode}}"), "5");
    // Logs keep growing, and logs -f follows them.
    let last = e.docker_ok(&["logs", "--tail", "1", &ticker]);
    let n: u32 = last.trim().trim_start_matches("n=").parse().unwrap();
    let o = e.sh(&format!("timeout 5 docker logs -f --tail 0 {ticker}; true"));
    assert!(o.stdout.lines().any(|l| l.trim_start_matches("n=").parse::<u32>().is_ok_and(|k| k > n)), "{o}");
    // The reattached containers are fully usable: exec, wait, stop.
    assert_eq!(e.docker_ok(&["exec", &sleeper, "echo", "hi"]), "hi\n");
    e.docker_ok(&["stop", "-t", "1", &sleeper]);
    assert_eq!(inspect(&e, &sleeper, "{{.State.Status}}"), "exited");
}

#[test]
fn restart_always_comes_back_without_shims() {
    require_root!();
    let mut e = engine_with_busybox();
    let always = e.unique("ra");
    let plain = e.unique("rp");
    e.docker_ok(&["run", "-d", "--name", &always, "--restart", "always", "busybox", "sleep", "1000"]);
    e.docker_ok(&["run", "-d", "--name", &plain, "busybox", "sleep", "1000"]);
    let (ida, idp) = (id_of(&e, &always), id_of(&e, &plain));
    let old_pid = inspect(&e, &always, "{{.State.Pid}}");
    // A host reboot, as far as the engine can tell: engine, shims and containers are gone.
    e.terminate(Duration::from_secs(10));
    for id in [&ida, &idp] {
        let state_dir = e.exec_root().join(&id[..16]);
        let mut marker = b"shim\0".to_vec();
        marker.extend_from_slice(state_dir.to_string_lossy().as_bytes());
        for p in pids_with_cmdline(&marker) {
            // SAFETY: kill(2) of the container's shim.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        let procs = format!("/sys/fs/cgroup/pids{}/{id}/cgroup.procs", e.cgroup_parent());
        for p in std::fs::read_to_string(&procs).unwrap_or_default().lines() {
            // SAFETY: kill(2) of the container's processes.
            unsafe { libc::kill(p.trim().parse().unwrap_or(0), libc::SIGKILL) };
        }
        assert!(wait_until(Duration::from_secs(10), || std::fs::read_to_string(&procs).unwrap_or_default().trim().is_empty()));
    }
    e.restart();
    assert!(wait_until(Duration::from_secs(20), || {
        let s = inspect(&e, &always, "{{.State.Status}} {{.State.Pid}}");
        s.starts_with("running ") && s != format!("running {old_pid}")
    }));
    assert_eq!(e.docker_ok(&["exec", &always, "echo", "back"]), "back\n");
    assert!(wait_status(&e, &plain, "exited"));
}

#[test]
fn restarting_container_refuses_rm_exec_and_bad_policies() {
    require_root!();
    let e = engine_with_busybox();
    // Exits at once: after a few restarts the back-off (100 ms, doubling) keeps it mostly
    // waiting to restart. Each try runs `rm` while inspect says it is restarting; the
    // container may start again in between, so a few tries are allowed.
    let c = e.unique("rs");
    e.docker_ok(&["run", "-d", "--name", &c, "--restart", "always", "busybox", "false"]);
    let id = inspect(&e, &c, "{{.Id}}");
    assert!(wait_until(Duration::from_secs(30), || inspect(&e, &c, "{{.RestartCount}}").parse::<u32>().unwrap_or(0) >= 4));
    let refused = |args: &[&str], words: &str| {
        (0..10).any(|_| {
            assert!(wait_until(Duration::from_secs(20), || inspect(&e, &c, "{{.State.Restarting}}") == "true"));
            let o = e.docker(args);
            assert!(!o.success(), "{o}");
            o.stderr.contains(words)
        })
    };
    assert!(refused(
        &["rm", &c],
        &format!("You cannot remove a restarting container {id}. Stop the container before attempting removal or force remove")
    ));
    assert!(refused(&["exec", &c, "true"], &format!("Container {id} is restarting, wait until the container is running")));
    assert_eq!(inspect(&e, &c, "{{.Id}}"), id);
    e.docker_ok(&["rm", "-f", &c]);
    assert!(!e.docker(&["inspect", &c]).success());
    // An unknown policy name: the CLI refuses it, and so does the API with dockerd's words.
    let o = e.docker(&["run", "-d", "--restart", "bogus", "busybox", "true"]);
    assert!(!o.success(), "{o}");
    let o = e.sh(&format!(
        "curl -s -w ' %{{http_code}}' --unix-socket {} -H 'Content-Type: application/json' \
         -d '{{\"Image\":\"busybox\",\"Cmd\":[\"true\"],\"HostConfig\":{{\"RestartPolicy\":{{\"Name\":\"bogus\"}}}}}}' \
         http://localhost/v1.41/containers/create",
        e.socket().display()
    ));
    assert_eq!(o.stdout.trim(), r#"{"message":"invalid restart policy 'bogus'"} 400"#, "{o}");
}

/// The niceness in a /proc/PID/stat line (field 19).
fn nice_in(stat: &str) -> i64 {
    // After the command's `(...)`: state is field 3, nice field 19.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    rest.split_whitespace().nth(16).expect("nice field").parse().expect("nice")
}

#[test]
fn containers_run_at_the_engines_priority() {
    require_root!();
    let e = engine_with_busybox();
    let pid = e.pid().expect("engine pid");
    let want = nice_in(&std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("engine stat"));
    // The spare shim waits at the lowest priority; the containers started through spares (every
    // start after the first) get the engine's back, their execs too.
    for _ in 0..3 {
        assert_eq!(nice_in(&e.docker_ok(&["run", "--rm", "busybox", "cat", "/proc/self/stat"])), want);
    }
    let n = e.unique("nice");
    e.docker_ok(&["run", "-d", "--name", &n, "busybox", "sleep", "1000"]);
    assert_eq!(nice_in(&e.docker_ok(&["exec", &n, "cat", "/proc/self/stat"])), want);
    e.docker_ok(&["rm", "-f", &n]);
}

/// True when `path` is a mount point of the host (its line in /proc/self/mountinfo).
fn is_mount_point(path: &std::path::Path) -> bool {
    let want = path.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().any(|l| l.split(' ').nth(4) == Some(&want))
}

/// The rootfs of a created container is mounted ahead of its start (in the time the CLI takes
/// between `create` and `start`); the start uses it, the exit unmounts it as always, a removal of
/// a container never started unmounts it, and an engine restart reclaims it.
#[test]
fn a_created_containers_rootfs_is_mounted_ahead_and_released() {
    require_root!();
    let mut e = engine_with_busybox();
    let rootfs = |e: &Engine, id: &str| e.data_root().join("containers").join(id).join("rootfs");
    let name = e.unique("ahead");
    let id = e.docker_ok(&["create", "--name", &name, "busybox", "cat", "/etc/hostname"]).trim().to_string();
    assert!(wait_until(Duration::from_secs(5), || is_mount_point(&rootfs(&e, &id))), "not mounted ahead");
    assert_eq!(inspect(&e, &name, "{{.State.Status}}"), "created");
    // Its /etc files are made ahead, and the start keeps them in place.
    let hosts = e.data_root().join("containers").join(&id).join("hosts");
    let inode = |p: &std::path::Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    assert!(wait_until(Duration::from_secs(5), || hosts.exists()), "no hosts file made ahead");
    let made = inode(&hosts);
    assert_eq!(e.docker_ok(&["start", "-a", &name]).trim(), &id[..12]);
    assert_eq!(inode(&hosts), made);
    let ip = inspect(&e, &name, "{{.NetworkSettings.IPAddress}}");
    assert!(std::fs::read_to_string(&hosts).unwrap().contains(&format!("\t{}\n", &id[..12])), "{ip}");
    assert!(wait_until(Duration::from_secs(5), || !is_mount_point(&rootfs(&e, &id))), "still mounted after the exit");
    // Never started: the removal unmounts it and the directory goes.
    let never = e.docker_ok(&["create", "busybox", "true"]).trim().to_string();
    assert!(wait_until(Duration::from_secs(5), || is_mount_point(&rootfs(&e, &never))), "not mounted ahead");
    assert_eq!(e.docker_ok(&["logs", &never]), "");
    e.docker_ok(&["rm", &never]);
    assert!(!is_mount_point(&rootfs(&e, &never)) && !rootfs(&e, &never).exists());
    // An engine restart does not keep it, and the container starts after it.
    let kept = e.unique("ahead-kept");
    let kept_id = e.docker_ok(&["create", "--name", &kept, "busybox", "echo", "after"]).trim().to_string();
    assert!(wait_until(Duration::from_secs(5), || is_mount_point(&rootfs(&e, &kept_id))), "not mounted ahead");
    // A `--rm` one is mounted volatile ahead: after the restart `docker export` mounts it again.
    let rm_id = e.docker_ok(&["create", "--rm", "busybox", "true"]).trim().to_string();
    assert!(wait_until(Duration::from_secs(5), || is_mount_point(&rootfs(&e, &rm_id))), "not mounted ahead");
    e.restart();
    assert!(!is_mount_point(&rootfs(&e, &kept_id)), "the restart kept the mount made ahead");
    assert_eq!(e.docker_ok(&["start", "-a", &kept]).trim(), "after");
    let tar = e.data_root().with_extension("export.tar");
    e.docker_ok(&["export", "-o", &tar.to_string_lossy(), &rm_id]);
    assert!(std::fs::metadata(&tar).unwrap().len() > 0);
    let _ = std::fs::remove_file(&tar);
    e.docker_ok(&["rm", &rm_id]);
    // `docker run --rm` leaves nothing mounted.
    assert_eq!(e.docker_ok(&["run", "--rm", "busybox", "echo", "rm"]).trim(), "rm");
    let containers = e.data_root().join("containers").to_string_lossy().into_owned();
    let none_held = || !std::fs::read_to_string("/proc/self/mountinfo").unwrap().contains(&containers);
    assert!(wait_until(Duration::from_secs(5), none_held), "a container's rootfs is still mounted");
}
