//! The gate with the real shim and libcontainer: a container's init that waits for the engine's
//! rootfs mount and network setup (`engine::runtime::gate`), and a create whose gate shuts.
//! Needs root and the shim example binary (see `shim_world::shim_binary`).
mod shim_world;
use shim_world::*;

/// The processes in the v1 memory cgroup of `spec`'s container.
fn cgroup_procs(spec: &RunSpec) -> Vec<i32> {
    let dir = Path::new("/sys/fs/cgroup/memory").join(spec.cgroup_path.trim_start_matches('/'));
    std::fs::read_to_string(dir.join("cgroup.procs")).map(|p| p.lines().filter_map(|l| l.parse().ok()).collect()).unwrap_or_default()
}

/// Hands `spec` to the runtime behind a gate that is not open yet, and waits for the container's
/// init to wait there: in its cgroups, still in the test's mount namespace (it enters its own
/// after the gate), and the create not done. Returns the create under way and the gate's part.
async fn create_at_the_gate(w: &World, spec: &RunSpec) -> (tokio::task::JoinHandle<Result<(), RuntimeError>>, gate::Part) {
    let (mut parts, gate) = gate::new(vec![spec.rootfs.clone()], 1);
    let part = parts.pop().unwrap();
    let (rt, owned) = (std::sync::Arc::new(ShimRuntime::new(shim_binary(), w.dir.path().join("lc"))), spec.clone());
    let create = tokio::spawn(async move { rt.create(&owned, gate).await });
    let deadline = Instant::now() + Duration::from_secs(20);
    let init = loop {
        if let Some(pid) = cgroup_procs(spec).first() {
            break *pid;
        }
        assert!(Instant::now() < deadline, "no init joined the container's cgroups");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!create.is_finished(), "the create ended before the gate opened");
    let own = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    assert_eq!(std::fs::read_link(format!("/proc/{init}/ns/mnt")).unwrap(), own, "the init made its mount namespace before the gate");
    (create, part)
}

#[tokio::test]
async fn the_init_waits_at_the_gate_until_it_opens() {
    if !is_root() {
        return eprintln!("skipped: needs root");
    }
    let mut w = World::new();
    let spec = w.spec(&["sh", "-c", "echo gated; id -u"]);
    let (create, part) = create_at_the_gate(&w, &spec).await;
    part.done(true);
    tokio::time::timeout(Duration::from_secs(20), create).await.expect("the create did not end").unwrap().unwrap();
    let rt = &w.runtime;
    let mut attach = rt.attach(&spec.id, &spec.state_dir, ALL).await.unwrap();
    rt.start(&spec.id, &spec.state_dir).await.unwrap();
    let out = demux(&read_all(&mut attach).await);
    assert_eq!(out, vec![(1, b"gated\n0\n".to_vec())]);
    assert_eq!(wait(rt, &spec).await.code, 0);
}

#[tokio::test]
async fn a_gate_that_shuts_fails_the_create_and_leaves_no_process() {
    if !is_root() {
        return eprintln!("skipped: needs root");
    }
    let mut w = World::new();
    let spec = w.spec(&["true"]);
    let (create, part) = create_at_the_gate(&w, &spec).await;
    // The engine's mount or network failed: the part ends without a word.
    drop(part);
    let e = tokio::time::timeout(Duration::from_secs(20), create).await.expect("the create did not end").unwrap().unwrap_err();
    assert!(e.to_string().contains(engine::shim::protocol::GATE_SHUT), "{e}");
    assert!(cgroup_procs(&spec).is_empty(), "the init is still there: {:?}", cgroup_procs(&spec));
    w.runtime.delete(&spec.id, &spec.state_dir).await.unwrap();
    assert!(cgroup_dirs(&spec.cgroup_path).iter().all(|d| !d.exists()), "cgroups left");
}
