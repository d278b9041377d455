//! Crash consistency with the docker CLI: an engine SIGKILLed in the middle of container starts
//! reclaims, at its next start, every half-made sandbox of the containers that are not running.
mod common;
use common::*;
use std::path::Path;
use std::time::Duration;

/// Names of the veths enslaved to `bridge`.
fn bridge_ports(bridge: &str) -> Vec<String> {
    std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// `-A` lines of the engine's DNAT chain (published ports) in the nat table.
fn dnat_rules(bridge: &str) -> Vec<String> {
    let save = testground::cmd::run_args("iptables-save", &["-t", "nat"]).stdout;
    let chain = format!("-A FLT-{bridge}-DNAT ");
    save.lines().filter(|l| l.starts_with(&chain)).map(String::from).collect()
}

/// Container cgroups left under the engine's cgroup parent (pids hierarchy).
fn cgroups_below(parent: &str) -> Vec<String> {
    std::fs::read_dir(Path::new("/sys/fs/cgroup/pids").join(parent.trim_start_matches('/')))
        .map(|rd| rd.flatten().filter(|e| e.path().is_dir()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn sigkill_during_parallel_starts_leaves_nothing_after_rm_and_stop() {
    require_root!();
    let mut e = engine_with_busybox();
    let names: Vec<String> = (0..20).map(|i| e.unique(&format!("crash{i}"))).collect();
    let pid = e.pid().expect("engine pid") as i32;
    std::thread::scope(|s| {
        for n in &names {
            let e = &e;
            s.spawn(move || e.docker(&["run", "-d", "--name", n, "-p", "80", "busybox", "sleep", "1000"]));
        }
        // Some creates and starts done, some half-way, some not begun.
        std::thread::sleep(Duration::from_millis(700));
        // SAFETY: kill(2) of the engine this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    e.restart();
    let ids = e.docker_ok(&["ps", "-aq"]);
    let ids = lines(&ids);
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids.iter().map(String::as_str));
        e.docker_ok(&args);
    }
    assert!(lines(&e.docker_ok(&["ps", "-aq"])).is_empty());
    let status = e.terminate(Duration::from_secs(15));
    assert!(status.is_some(), "the engine did not stop");
    let mounts = testground::cleanup::mounts_below(e.exec_root());
    assert!(mounts.is_empty(), "mounts left under the exec root: {mounts:?}");
    assert_eq!(bridge_ports(e.bridge()), Vec::<String>::new(), "veths left on the bridge");
    assert_eq!(dnat_rules(e.bridge()), Vec::<String>::new(), "published-port rules left");
    assert_eq!(cgroups_below(e.cgroup_parent()), Vec::<String>::new(), "container cgroups left");
}
