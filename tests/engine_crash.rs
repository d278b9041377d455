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
    // The id is read as it is printed, so the kill below comes while starts are in flight (counted
    // only once each CLI had exited, a loaded host could finish every run before the kill).
    let outcomes: Vec<(Option<(String, String)>, bool)> = std::thread::scope(|s| {
        let handles: Vec<_> = names
            .iter()
            .map(|n| {
                let (e, acked) = (&e, &acked);
                s.spawn(move || {
                    use std::io::BufRead;
                    let mut child = std::process::Command::new(testground::engine::docker_cli())
                        .args(["run", "-d", "--name", n, "busybox", "sleep", "1000"])
                        .envs(e.docker_env())
                        .env_remove("DOCKER_CONTEXT")
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::null())
                        .spawn()
                        .expect("docker CLI");
                    let mut line = String::new();
                    let _ = std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
                    let id = line.trim().to_string();
                    let ack = is_hex64(&id).then(|| {
                        acked.fetch_add(1, Ordering::SeqCst);
                        (n.clone(), id)
                    });
                    (ack, child.wait().is_ok_and(|s| s.success()))
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

/// Container cgroups left under the engine's cgroup parent, in every hierarchy (v1 and v2).
fn cgroups_in_any_hierarchy(parent: &str) -> Vec<String> {
    let rel = parent.trim_start_matches('/');
    let root = Path::new("/sys/fs/cgroup");
    let hierarchies = std::fs::read_dir(root).map(|rd| rd.flatten().map(|e| e.path()).collect::<Vec<_>>()).unwrap_or_default();
    let mut left = vec![];
    for base in std::iter::once(root.to_path_buf()).chain(hierarchies) {
        if let Ok(rd) = std::fs::read_dir(base.join(rel)) {
            left.extend(rd.flatten().filter(|e| e.path().is_dir()).map(|e| e.path().display().to_string()));
        }
    }
    left
}

/// What the runtime keeps of containers under the exec root: their state dirs (16 hex digits)
/// and libcontainer's state (`runtime/<id>`).
fn runtime_state(exec_root: &Path) -> Vec<String> {
    let names = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir).map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
    };
    let mut left: Vec<String> =
        names(exec_root).into_iter().filter(|n| n.len() == 16 && n.bytes().all(|b| b.is_ascii_hexdigit())).collect();
    left.extend(names(&exec_root.join("runtime")).into_iter().map(|n| format!("runtime/{n}")));
    left
}

/// Asserts that nothing of any container is left: state dirs, libcontainer state, cgroups, mounts.
fn assert_no_runtime_leftovers(e: &Engine, when: &str) {
    assert_eq!(runtime_state(e.exec_root()), Vec::<String>::new(), "{when}: runtime state left under the exec root");
    assert_eq!(cgroups_in_any_hierarchy(e.cgroup_parent()), Vec::<String>::new(), "{when}: container cgroups left");
    for root in [e.exec_root(), e.data_root()] {
        let mounts = testground::cleanup::mounts_below(root);
        assert!(mounts.is_empty(), "{when}: mounts left under {}: {mounts:?}", root.display());
    }
}

#[test]
fn rm_cleans_up_after_its_answer_and_a_killed_engine_finishes_it_at_its_start() {
    require_root!();
    let mut e = engine_with_busybox();
    // `run --rm` (removed by the engine), `rm -f` of running ones, `rm` of stopped ones.
    for _ in 0..3 {
        e.docker_ok(&["run", "--rm", "busybox", "true"]);
    }
    let running: Vec<String> = (0..3).map(|i| e.unique(&format!("rmrun{i}"))).collect();
    let stopped: Vec<String> = (0..2).map(|i| e.unique(&format!("rmstop{i}"))).collect();
    for n in &running {
        e.docker_ok(&["run", "-d", "--name", n, "busybox", "sleep", "1000"]);
    }
    for n in &stopped {
        e.docker_ok(&["run", "--name", n, "busybox", "true"]);
    }
    let mut args = vec!["rm", "-f"];
    args.extend(running.iter().chain(&stopped).map(String::as_str));
    e.docker_ok(&args);
    assert!(lines(&e.docker_ok(&["ps", "-aq"])).is_empty());
    // A normal stop finishes the cleanups still running.
    assert!(e.terminate(Duration::from_secs(15)).is_some(), "the engine did not stop");
    assert_no_runtime_leftovers(&e, "after a normal stop");

    // Killed right after an `rm` answer: the next start finishes the cleanup.
    e.restart();
    // `--rm` ones: their exit leaves the runtime's side to the removal, so the runtime cleanup
    // of each comes only after its `rm` answer.
    let names: Vec<String> = (0..4).map(|i| e.unique(&format!("rmkill{i}"))).collect();
    for n in &names {
        e.docker_ok(&["run", "-d", "--rm", "--name", n, "busybox", "sleep", "1000"]);
    }
    let pid = e.pid().expect("engine pid") as i32;
    for n in &names {
        let r = e.api("DELETE", &format!("/containers/{n}?force=1"), None).expect("rm -f");
        assert_eq!(r.status, 204, "rm -f {n}");
    }
    // SAFETY: kill(2) of the engine this test started, right after the last answer.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    eprintln!("left at the kill: {:?}", runtime_state(e.exec_root()));
    e.restart();
    assert!(lines(&e.docker_ok(&["ps", "-aq"])).is_empty());
    assert_no_runtime_leftovers(&e, "after the restart");
    // And the engine still runs containers under those names.
    e.docker_ok(&["run", "--rm", "--name", &names[0], "busybox", "true"]);
    assert!(e.terminate(Duration::from_secs(15)).is_some(), "the engine did not stop");
    assert_no_runtime_leftovers(&e, "at the end");
}

/// A new container's start is made ahead while its record is written and synced: an engine
/// killed after the first began and before the second was durable leaves a container directory
/// without a record, with a rootfs mounted in it, a sandbox and a shim whose init waits. The next
/// start reclaims them all (the record of the last create is removed by hand after the kill,
/// which is what such a kill leaves) and lists no such container.
#[test]
fn a_create_killed_before_its_record_was_durable_leaves_nothing() {
    require_root!();
    let mut e = engine_with_busybox();
    let id = e.docker_ok(&["create", "busybox", "sleep", "1000"]).trim().to_string();
    assert!(is_hex64(&id), "create printed {id:?}");
    // The start made ahead: its shim's state dir, the netns and the rootfs mount.
    let made = wait_until(Duration::from_secs(10), || {
        runtime_state(e.exec_root()).contains(&id[..16].to_string())
            && e.exec_root().join("netns").join(&id).exists()
            && !testground::cleanup::mounts_below(e.data_root()).is_empty()
    });
    assert!(made, "no start made ahead: {:?}", runtime_state(e.exec_root()));
    let pid = e.pid().expect("engine pid") as i32;
    // SAFETY: kill(2) of the engine this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let dir = e.data_root().join("containers").join(&id);
    std::fs::remove_file(dir.join("config.v2.json")).expect("removing the record");
    e.restart();
    assert!(lines(&e.docker_ok(&["ps", "-aq"])).is_empty());
    assert!(!dir.exists(), "the directory of the unfinished create is left");
    assert_no_runtime_leftovers(&e, "after the restart");
    assert_eq!(bridge_ports(e.bridge()), Vec::<String>::new(), "veths left on the bridge");
    let netns: Vec<String> = std::fs::read_dir(e.exec_root().join("netns"))
        .map(|rd| rd.flatten().map(|x| x.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert_eq!(netns, Vec::<String>::new(), "netns files left");
    assert_eq!(e.docker_ok(&["run", "--rm", "busybox", "echo", "ok"]).trim(), "ok");
    assert!(e.terminate(Duration::from_secs(15)).is_some(), "the engine did not stop");
    assert_no_runtime_leftovers(&e, "at the end");
}

/// Pids of the engine's spare shims: its shim zygote, the spare spawners (forked by the zygote,
/// or exec'd by the engine) and their daemons (their command lines name the exec root).
fn spare_shims(exec_root: &Path) -> Vec<String> {
    let wants: Vec<String> = ["--pooled", "--zygote"].iter().map(|f| format!("shim\0{f}\0{}\0", exec_root.display())).collect();
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    std::fs::read(e.path().join("cmdline"))
                        .is_ok_and(|c| wants.iter().any(|want| c.windows(want.len()).any(|w| w == want.as_bytes())))
                })
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits up to 10 s for a spare shim to be there (the engine makes it after the start's answer).
fn spare_shims_made(exec_root: &Path) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = spare_shims(exec_root);
        if !found.is_empty() || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The spare's spawner (forked by the engine's shim zygote, a child of `engine`, or exec'd by
/// the engine) and its daemon (the spawner's child), waiting up to 10 s for both: the spawner
/// forks its daemon a moment after it is made.
fn spare_pair(exec_root: &Path, engine: u32) -> Option<(i32, i32)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spare = spare_shims(exec_root);
        let parent_of = |p: &String| ppid(p).map(|pp| pp.to_string());
        let spawner_parent = zygote_of(&spare, engine).map_or(engine, |z| z as u32).to_string();
        let spawner = spare.iter().find(|p| parent_of(p).as_ref() == Some(&spawner_parent));
        let daemon = spawner.and_then(|s| spare.iter().find(|p| parent_of(p).as_ref() == Some(s)));
        if let (Some(s), Some(d)) = (spawner, daemon) {
            return Some((s.parse().ok()?, d.parse().ok()?));
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` has `arg` among its arguments.
fn has_arg(pid: &str, arg: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == arg.as_bytes()))
}

/// The engine's shim zygote among `spare` (its child named `shim --zygote`; the spawners it
/// forks carry the same command line, with the zygote as their parent).
fn zygote_of(spare: &[String], engine: u32) -> Option<i32> {
    spare.iter().find(|p| ppid(p) == Some(engine) && has_arg(p, "--zygote")).and_then(|p| p.parse().ok())
}

/// Waits up to 10 s for the engine's shim zygote to be there.
fn zygote_made(exec_root: &Path, engine: u32) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(z) = zygote_of(&spare_shims(exec_root), engine) {
            return Some(z);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits up to 10 s for the spare shims to leave.
fn spare_shims_gone(exec_root: &Path) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = spare_shims(exec_root);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_spare_shim_leaves_with_the_engine_stopped_or_killed() {
    require_root!();
    let mut e = engine_with_busybox();
    let exec_root = e.exec_root().to_path_buf();
    // A start takes the spare made ahead of time and makes the next one, which stays idle.
    e.docker_ok(&["run", "--rm", "busybox", "true"]);
    assert!(!spare_shims_made(&exec_root).is_empty(), "no spare shim after a start");
    assert!(e.terminate(Duration::from_secs(15)).is_some(), "the engine did not stop");
    assert_eq!(spare_shims_gone(&exec_root), Vec::<String>::new(), "spare shims left after the engine stopped");

    e.restart();
    e.docker_ok(&["run", "--rm", "busybox", "true"]);
    assert!(!spare_shims_made(&exec_root).is_empty(), "no spare shim after a start");
    let pid = e.pid().expect("engine pid") as i32;
    // SAFETY: kill(2) of the engine this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(spare_shims_gone(&exec_root), Vec::<String>::new(), "spare shims left after the engine was killed");
    // The next start makes its own spare; a container it runs is unaffected.
    e.restart();
    assert_eq!(e.docker_ok(&["run", "--rm", "busybox", "echo", "ok"]).trim(), "ok");
}

/// The parent pid of `pid` (from /proc/PID/stat).
fn ppid(pid: &str) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_start_goes_through_when_the_spare_shims_daemon_was_killed() {
    require_root!();
    let e = engine_with_busybox();
    e.docker_ok(&["run", "--rm", "busybox", "true"]);
    let engine = e.pid().expect("engine pid");
    let (spawner, daemon) = spare_pair(e.exec_root(), engine).expect("the spare's spawner and its daemon");
    // The spawner is frozen so that a start takes it before it can see its daemon go.
    // SAFETY: kill(2) of processes of the engine this test started.
    unsafe {
        libc::kill(spawner, libc::SIGSTOP);
        libc::kill(daemon, libc::SIGKILL);
    }
    std::thread::scope(|s| {
        let run = s.spawn(|| e.docker(&["run", "--rm", "busybox", "echo", "ok"]));
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY: as above.
        unsafe { libc::kill(spawner, libc::SIGCONT) };
        let o = run.join().unwrap();
        assert!(o.success() && o.stdout.trim() == "ok", "{o}");
    });
    assert!(e.log().contains("the spare shim was lost"), "the start went through a new spawner");

    // The other order: the spawner sees its daemon go before any start takes it. It stays until
    // one does (or the engine drops it), and that start goes through a new spawner too.
    let (_, daemon) = spare_pair(e.exec_root(), engine).expect("the new spare's spawner and its daemon");
    // SAFETY: kill(2) of a process of the engine this test started.
    unsafe { libc::kill(daemon, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(e.docker_ok(&["run", "--rm", "busybox", "echo", "ok"]).trim(), "ok");
    assert_eq!(e.log().matches("the spare shim was lost").count(), 2, "{}", e.log());
}

/// Spares are forked by the engine's shim zygote rather than exec'd; a zygote killed is replaced
/// by the next spare, and starts go on meanwhile.
#[test]
fn spares_are_forked_by_the_shim_zygote_and_a_killed_one_is_replaced() {
    require_root!();
    let e = engine_with_busybox();
    e.docker_ok(&["run", "--rm", "busybox", "true"]);
    let engine = e.pid().expect("engine pid");
    let zygote = zygote_made(e.exec_root(), engine).expect("a shim zygote after a start");
    let (spawner, _) = spare_pair(e.exec_root(), engine).expect("the spare's spawner and its daemon");
    assert_eq!(ppid(&spawner.to_string()), Some(zygote as u32), "the spare was not forked by the zygote");
    // The spare it forked runs the next container.
    assert_eq!(e.docker_ok(&["run", "--rm", "busybox", "echo", "ok"]).trim(), "ok");
    // SAFETY: kill(2) of a process of the engine this test started.
    unsafe { libc::kill(zygote, libc::SIGKILL) };
    for _ in 0..3 {
        assert_eq!(e.docker_ok(&["run", "--rm", "busybox", "echo", "ok"]).trim(), "ok");
    }
    let next = zygote_made(e.exec_root(), engine).expect("a new shim zygote");
    assert_ne!(next, zygote);
    let (spawner, _) = spare_pair(e.exec_root(), engine).expect("the spare's spawner and its daemon");
    assert_eq!(ppid(&spawner.to_string()), Some(next as u32));

    // A zygote that does not answer (stopped) is given up after 2 s: the spare is exec'd by the
    // engine meanwhile, and the one after it comes from a new zygote.
    // SAFETY: kill(2) of a process of the engine this test started.
    unsafe { libc::kill(next, libc::SIGSTOP) };
    assert_eq!(e.docker_ok(&["run", "--rm", "busybox", "echo", "ok"]).trim(), "ok");
    let deadline = Instant::now() + Duration::from_secs(10);
    let exec_d = loop {
        let spare = spare_shims(e.exec_root());
        let pooled = spare.iter().find(|p| ppid(p) == Some(engine) && has_arg(p, "--pooled"));
        if let Some(p) = pooled {
            break p.clone();
        }
        assert!(Instant::now() < deadline, "no exec'd spare after the zygote stopped answering: {spare:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        !std::path::Path::new(&format!("/proc/{next}")).exists() || ppid(&next.to_string()) != Some(engine),
        "the stopped zygote was not given up"
    );
    assert_eq!(e.docker_ok(&["run", "--rm", "busybox", "echo", "ok"]).trim(), "ok");
    let third = zygote_made(e.exec_root(), engine).expect("a zygote after the exec'd spare");
    assert!(third != next && third != zygote);
    // The exec'd spare was taken by that run: its spawner ends (a zombie until reaped).
    let gone = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |st| st.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gone(&exec_d) {
        assert!(Instant::now() < deadline, "the exec'd spare was not taken");
        std::thread::sleep(Duration::from_millis(50));
    }
}
