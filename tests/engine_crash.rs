//! Crash consistency with the docker CLI: an engine SIGKILLed in the middle of container starts
//! reclaims, at its next start, every half-made sandbox of the containers that are not running,
//! and keeps every container whose create it acknowledged, whole.
mod common;
use common::*;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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

/// Container directories under the data root (not the ones being deleted, `.removing-*`).
fn record_dirs(data_root: &Path) -> Vec<String> {
    std::fs::read_dir(data_root.join("containers"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn sigkill_during_parallel_runs_keeps_every_acknowledged_container() {
    require_root!();
    let mut e = engine_with_busybox();
    let names: Vec<String> = (0..20).map(|i| e.unique(&format!("ack{i}"))).collect();
    let pid = e.pid().expect("engine pid") as i32;
    let acked = AtomicUsize::new(0);
    // (name, id) of every `run -d` whose create was acknowledged: the CLI prints the id as soon
    // as the create is answered, before it asks for the start (which the kill may interrupt).
    let outcomes: Vec<(Option<(String, String)>, bool)> = std::thread::scope(|s| {
        let handles: Vec<_> = names
            .iter()
            .map(|n| {
                let (e, acked) = (&e, &acked);
                s.spawn(move || {
                    let o = e.docker(&["run", "-d", "--name", n, "busybox", "sleep", "1000"]);
                    let id = o.stdout.trim().to_string();
                    let ack = is_hex64(&id).then(|| {
                        acked.fetch_add(1, Ordering::SeqCst);
                        (n.clone(), id)
                    });
                    (ack, o.success())
                })
            })
            .collect();
        // Kill it in the middle: some runs acknowledged, the others in flight.
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked.load(Ordering::SeqCst) < 8 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        // SAFETY: kill(2) of the engine this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        handles.into_iter().map(|h| h.join().expect("docker thread")).collect()
    });
    let finished = outcomes.iter().filter(|(_, ok)| *ok).count();
    let acked: Vec<(String, String)> = outcomes.into_iter().filter_map(|(a, _)| a).collect();
    eprintln!("killed with {} creates acknowledged, {finished} runs finished, of {}", acked.len(), names.len());
    assert!(!acked.is_empty(), "no create was acknowledged before the kill");
    assert!(finished < names.len(), "every run finished before the kill: nothing was in flight");
    e.restart();

    // Every acknowledged container is there under its name, and whole.
    let all = lines(&e.docker_ok(&["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}"]));
    for (name, id) in &acked {
        assert!(all.contains(&format!("{id} {name}")), "acknowledged container {name} ({id}) is missing after the restart: {all:?}");
        let st = inspect(&e, id, "{{.State.Status}} {{.Name}} {{.Config.Image}} {{json .Config.Cmd}}");
        assert!(
            st.ends_with(&format!(" /{name} busybox [\"sleep\",\"1000\"]")) && !st.starts_with("dead") && !st.starts_with("removing"),
            "{name}: inspect after the restart: {st}"
        );
        if !st.starts_with("running") {
            e.docker_ok(&["start", id]);
        }
        assert!(wait_status(&e, id, "running"), "{name} does not run after the restart");
        assert_eq!(inspect(&e, id, "{{.State.Running}}"), "true");
    }
    // No half-records: every record on disk is a container the engine lists, and every one of
    // them (acknowledged or not) inspects and can be removed.
    let ids: Vec<String> = all.iter().filter_map(|l| l.split(' ').next().map(String::from)).collect();
    let mut on_disk = record_dirs(e.data_root());
    on_disk.sort();
    let mut listed = ids.clone();
    listed.sort();
    assert_eq!(on_disk, listed, "container records on disk that the engine does not list (or the reverse)");
    for id in &ids {
        inspect(&e, id, "{{.State.Status}}");
    }
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids.iter().map(String::as_str));
        e.docker_ok(&args);
    }
    assert!(lines(&e.docker_ok(&["ps", "-aq"])).is_empty());
    assert!(
        wait_until(Duration::from_secs(10), || record_dirs(e.data_root()).is_empty()),
        "records left: {:?}",
        record_dirs(e.data_root())
    );
    // Nothing of theirs is left once removed: mounts (rootfs, netns), veths, cgroups, shims.
    let status = e.terminate(Duration::from_secs(15));
    assert!(status.is_some(), "the engine did not stop");
    for root in [e.exec_root(), e.data_root()] {
        let mounts = testground::cleanup::mounts_below(root);
        assert!(mounts.is_empty(), "mounts left under {}: {mounts:?}", root.display());
    }
    assert_eq!(bridge_ports(e.bridge()), Vec::<String>::new(), "veths left on the bridge");
    assert_eq!(cgroups_below(e.cgroup_parent()), Vec::<String>::new(), "container cgroups left");
    let netns: Vec<String> = std::fs::read_dir(e.exec_root().join("netns"))
        .map(|rd| rd.flatten().map(|x| x.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert_eq!(netns, Vec::<String>::new(), "netns files left");
}
