//! A new container's start made ahead of its `start` request (between a `create`'s answer and the
//! start, while the docker CLI attaches and sends its wait): the container is created in every
//! view until the start, a change made in between is in force, and what the start made is
//! released when no start comes, at `rm`, and after an engine killed meanwhile.
mod common;
use common::*;
use std::path::PathBuf;
use std::time::Duration;
use testground::Output;

/// The socket of container `id`'s shim: there once the runtime's container is created.
fn shim_socket(e: &Engine, id: &str) -> PathBuf {
    e.exec_root().join(&id[..16]).join("shim.sock")
}

fn netns(e: &Engine, id: &str) -> PathBuf {
    e.exec_root().join("netns").join(id)
}

/// Creates `args` and waits until its start was made ahead; returns the id.
fn create_made_ahead(e: &Engine, args: &[&str]) -> String {
    let mut all = vec!["create"];
    all.extend_from_slice(args);
    let id = e.docker_ok(&all).trim().to_string();
    assert!(wait_until(Duration::from_secs(10), || shim_socket(e, &id).exists()), "no start made ahead of {id}:\n{}", e.log_tail(40));
    id
}

/// The containers `docker network inspect` lists on the default bridge.
fn on_bridge(e: &Engine) -> String {
    e.docker_ok(&["network", "inspect", "-f", "{{range $k, $v := .Containers}}{{$k}} {{end}}", "bridge"])
}

/// Processes whose cgroup (any v1 hierarchy) is the container's.
fn processes_of(e: &Engine, id: &str) -> Vec<String> {
    let needle = format!("{}/{id}", e.cgroup_parent());
    let mut out = vec![];
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = p.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if std::fs::read_to_string(p.path().join("cgroup")).is_ok_and(|c| c.contains(&needle)) {
            out.push(name);
        }
    }
    out
}

/// Nothing of a start is left: no shim, netns or process.
fn assert_nothing_started(e: &Engine, id: &str, when: &str) {
    assert!(
        wait_until(Duration::from_secs(10), || !shim_socket(e, id).exists() && !netns(e, id).exists() && processes_of(e, id).is_empty()),
        "{when}: what the start made ahead is still there (shim {}, netns {}, processes {:?})",
        shim_socket(e, id).exists(),
        netns(e, id).exists(),
        processes_of(e, id)
    );
}

#[test]
fn a_start_made_ahead_shows_nowhere_until_the_start() {
    require_root!();
    let e = engine_with_busybox();
    let c = e.unique("ahead");
    let t0 = chrono_now(&e);
    let id = create_made_ahead(&e, &["--name", &c, "busybox", "sleep", "1000"]);
    // The container's init waits in its namespaces, and yet the container is created: no pid,
    // no address, not on the network, and `top` refuses it as dockerd does.
    assert_eq!(inspect(&e, &c, "{{.State.Status}} {{.State.Pid}} [{{.NetworkSettings.IPAddress}}]"), "created 0 []");
    assert!(!on_bridge(&e).contains(&id));
    assert!(!e.docker(&["top", &c]).success());
    e.docker_ok(&["start", &c]);
    let ip = inspect(&e, &c, "{{.NetworkSettings.IPAddress}}");
    assert!(ip.starts_with(&e.subnet_prefix()), "address {ip:?} not in {}", e.subnet());
    assert!(on_bridge(&e).contains(&id));
    let t1 = chrono_now(&e);
    assert_eq!(e.docker_ok(&["exec", &c, "hostname"]).trim(), &id[..12]);
    // The events of a start, in dockerd's order, once each.
    let events = e.docker_ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &t1,
        "--filter",
        &format!("container={id}"),
        "--format",
        "{{.Type}} {{.Action}}",
    ]);
    assert_eq!(lines(&events), ["container create", "network connect", "container start"], "events:\n{events}");
    e.docker_ok(&["rm", "-f", &c]);
    assert_nothing_started(&e, &id, "after rm -f");
}

/// The engine's clock, for `docker events --since/--until` (Unix seconds with a fraction).
fn chrono_now(_e: &Engine) -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

#[test]
fn a_change_between_create_and_start_is_in_force() {
    require_root!();
    let e = engine_with_busybox();
    let c = e.unique("chg");
    create_made_ahead(&e, &["--name", &c, "-m", "32m", "busybox", "sleep", "1000"]);
    e.docker_ok(&["update", "-m", "64m", "--memory-swap", "128m", &c]);
    let renamed = e.unique("chg2");
    e.docker_ok(&["rename", &c, &renamed]);
    e.docker_ok(&["start", &renamed]);
    let limit = e.docker_ok(&["exec", &renamed, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]);
    assert_eq!(limit.trim(), (64u64 << 20).to_string());
    assert_eq!(inspect(&e, &renamed, "{{.Name}} {{.State.Status}}"), format!("/{renamed} running"));
    e.docker_ok(&["rm", "-f", &renamed]);
}

#[test]
fn a_start_made_ahead_is_released_when_no_start_comes() {
    require_root!();
    let e = engine_with_busybox();
    let c = e.unique("late");
    let id = create_made_ahead(&e, &["--name", &c, "busybox", "echo", "started late"]);
    assert!(!processes_of(&e, &id).is_empty(), "the init made ahead is not in the container's cgroup");
    // Undone a couple of seconds later: a created container holds no process, address or netns.
    assert_nothing_started(&e, &id, "with no start");
    assert_eq!(inspect(&e, &c, "{{.State.Status}}"), "created");
    // The start, when it comes, makes its own.
    assert_eq!(e.docker_ok(&["start", "-a", &c]).trim(), "started late");
    assert_eq!(inspect(&e, &c, "{{.State.Status}} {{.State.ExitCode}}"), "exited 0");
    e.docker_ok(&["rm", &c]);
    assert_nothing_started(&e, &id, "after rm");
}

#[test]
fn rm_and_a_killed_engine_release_a_start_made_ahead() {
    require_root!();
    let mut e = engine_with_busybox();
    let c = e.unique("rmahead");
    let id = create_made_ahead(&e, &["--name", &c, "busybox", "true"]);
    e.docker_ok(&["rm", &c]);
    assert_nothing_started(&e, &id, "after rm");
    assert!(e.docker(&["inspect", &c]).stderr.contains("No such"));

    // An engine killed while it holds a start made ahead reclaims it at its next start.
    let k = e.unique("killed");
    let id = create_made_ahead(&e, &["--name", &k, "busybox", "echo", "after the kill"]);
    let pid = e.pid().expect("engine pid") as i32;
    // SAFETY: kill with the engine's pid.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    e.restart();
    assert_nothing_started(&e, &id, "after the engine's restart");
    assert_eq!(inspect(&e, &k, "{{.State.Status}}"), "created");
    assert_eq!(e.docker_ok(&["start", "-a", &k]).trim(), "after the kill");
    e.docker_ok(&["rm", &k]);
}

#[test]
fn docker_run_attaches_while_the_start_is_made_ahead() {
    require_root!();
    let e = engine_with_busybox();
    // stdin, stdout and stderr of a run, attached before its start; the exit code from its wait.
    let o = e.docker_full(
        &["run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo err >&2; exit 3"],
        Some(b"from stdin\n"),
        Duration::from_secs(60),
    );
    assert_eq!(o.code(), 3, "{o}");
    assert_eq!(o.stdout, "from stdin\n");
    assert_eq!(o.stderr.trim(), "err");
    // Several at once (each create's start is made ahead while the others run).
    let runs: Vec<(usize, Output)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let e = &e;
                s.spawn(move || (i, e.docker_full(&["run", "--rm", "busybox", "echo", &format!("run {i}")], None, Duration::from_secs(60))))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, o) in runs {
        assert_eq!(o.stdout.trim(), format!("run {i}"), "{o}");
    }
}
