//! `docker cp` in and out of a running container reaches the container's own mount namespace
//! (its tmpfs included) through a handle on its process, also after a restart gave it a new pid.
mod common;
use common::*;

#[test]
fn cp_in_and_out_of_a_running_container() {
    require_root!();
    let e = engine_with_busybox();
    let host = tempfile::tempdir().unwrap();
    let src = host.path().join("in.txt");
    std::fs::write(&src, "into the tmpfs\n").unwrap();
    let name = e.unique("cprun");
    e.docker_ok(&["run", "-d", "--name", &name, "--tmpfs", "/scratch", "busybox", "sleep", "1000"]);
    for round in 0..2 {
        // /scratch is a tmpfs of the container's mount namespace only: the copy went through
        // the running process's root, not the rootfs on the host.
        e.docker_ok(&["cp", &src.display().to_string(), &format!("{name}:/scratch/in.txt")]);
        assert_eq!(e.docker_ok(&["exec", &name, "cat", "/scratch/in.txt"]), "into the tmpfs\n", "round {round}");
        e.docker_ok(&["exec", &name, "sh", "-c", "echo made inside > /scratch/out.txt"]);
        let out = host.path().join(format!("out{round}.txt"));
        e.docker_ok(&["cp", &format!("{name}:/scratch/out.txt"), &out.display().to_string()]);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "made inside\n");
        let pid = inspect(&e, &name, "{{.State.Pid}}");
        e.docker_ok(&["restart", "-t", "0", &name]);
        assert!(wait_status(&e, &name, "running"));
        assert_ne!(inspect(&e, &name, "{{.State.Pid}}"), pid, "a new process after restart");
    }
    e.docker_ok(&["rm", "-f", &name]);
    let o = e.docker(&["cp", &src.display().to_string(), &format!("{name}:/scratch/")]);
    assert!(!o.success(), "{o}");
}
