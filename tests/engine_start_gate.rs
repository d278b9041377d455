//! A start's runtime create goes on while the engine mounts the rootfs and sets up the network:
//! the bundle reads the container's users from the image's layers, and the container's init waits
//! at a gate before its namespaces and its rootfs. What a user sees must not change: `--user`
//! and `--group-add` resolve as the mounted rootfs shows /etc/passwd and /etc/group (a file in a
//! higher layer, a whiteout, an opaque /etc, a symlink), and a mount that fails fails the start
//! with its own error and leaves nothing behind.
mod common;
use common::*;
use std::path::PathBuf;
use std::time::Duration;

/// Runs `script` in a container of `from` and commits it as `to` (a new top layer).
fn commit_layer(e: &Engine, from: &str, to: &str, script: &str) {
    let name = e.unique("layer");
    e.docker_ok(&["run", "--name", &name, from, "sh", "-c", script]);
    e.docker_ok(&["commit", &name, to]);
    e.docker_ok(&["rm", &name]);
}

fn run_out(e: &Engine, args: &[&str]) -> String {
    let mut all = vec!["run", "--rm"];
    all.extend_from_slice(args);
    e.docker_ok(&all).trim().to_string()
}

#[test]
fn users_and_groups_resolve_as_the_mounted_layers_show_them() {
    let e = engine_with_busybox();
    // alice and her group only in the top layer; the base layer has root and nobody.
    let users = e.unique("users");
    commit_layer(
        &e,
        "busybox",
        &users,
        "echo 'alice:x:4321:4321::/home/alice:/bin/sh' >> /etc/passwd && printf 'root:x:0:\\nteam:x:777:alice\\n' > /etc/group",
    );
    assert_eq!(run_out(&e, &["--user", "alice", &users, "id", "-u"]), "4321");
    assert_eq!(run_out(&e, &["--user", "alice", &users, "id", "-G"]), "4321 777", "alice's groups from the top layer's /etc/group");
    assert_eq!(run_out(&e, &["--user", "alice", &users, "sh", "-c", "echo $HOME"]), "/home/alice");
    assert_eq!(run_out(&e, &["--group-add", "team", &users, "id", "-G"]), "0 777");
    assert_eq!(run_out(&e, &["--user", "nobody", &users, "id", "-u"]), "65534", "a user of the base layer");

    // A whiteout of /etc/group in a layer above it: no group names any more.
    let no_group = e.unique("nogroup");
    commit_layer(&e, &users, &no_group, "rm /etc/group");
    assert_eq!(run_out(&e, &["--user", "alice", &no_group, "id", "-G"]), "4321");
    let out = e.docker(&["run", "--rm", "--group-add", "team", &no_group, "true"]);
    assert!(!out.success(), "a group of a deleted /etc/group was found");
    assert!(out.stderr.contains("Unable to find group team"), "{}", out.stderr);

    // A new /etc hides the layers below it (an opaque directory: a layer made by `docker save`
    // elsewhere, where /etc was replaced).
    let base = testground::image::build_busybox_rootfs().unwrap();
    let mut top = testground::image::TarWriter::new();
    top.dir("etc", 0o755).unwrap();
    top.file("etc/.wh..wh..opq", 0o644, b"").unwrap();
    top.file("etc/passwd", 0o644, b"bob:x:5555:5555::/:/bin/sh\n").unwrap();
    let top = top.finish().unwrap();
    let new_etc = e.unique("newetc");
    let archive = testground::image::docker_archive(&[&base, &top], &format!("{new_etc}:latest"), &["sh"]).unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &archive.tar).unwrap();
    e.docker_ok(&["load", "-i", file.path().to_str().unwrap()]);
    assert_eq!(run_out(&e, &["--user", "bob", &new_etc, "id", "-u"]), "5555");
    let out = e.docker(&["run", "--rm", "--user", "nobody", &new_etc, "true"]);
    assert!(!out.success(), "nobody of a hidden /etc/passwd was found");
    assert!(out.stderr.contains("unable to find user nobody"), "{}", out.stderr);

    // A symlinked /etc/passwd is read through the mounted rootfs.
    let linked = e.unique("linked");
    commit_layer(&e, &users, &linked, "mv /etc/passwd /etc/passwd.real && ln -s /etc/passwd.real /etc/passwd");
    assert_eq!(run_out(&e, &["--user", "alice", &linked, "id", "-u"]), "4321");

    // A file copied into a created container before its start is in force.
    let name = e.unique("cp");
    e.docker_ok(&["create", "--name", &name, "--user", "carol", &users, "id", "-u"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("passwd"), "root:x:0:0::/root:/bin/sh\ncarol:x:6006:6006::/:/bin/sh\n").unwrap();
    e.docker_ok(&["cp", dir.path().join("passwd").to_str().unwrap(), &format!("{name}:/etc/passwd")]);
    assert_eq!(e.docker_ok(&["start", "-a", &name]).trim(), "6006");
    e.docker_ok(&["rm", &name]);
}

/// Processes whose cgroup (any v1 hierarchy) is under the engine's cgroup parent.
fn processes_under(e: &Engine) -> Vec<String> {
    let needle = format!("{}/", e.cgroup_parent());
    let mut out = vec![];
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = p.file_name().to_string_lossy().into_owned();
        if name.bytes().all(|b| b.is_ascii_digit()) && std::fs::read_to_string(p.path().join("cgroup")).is_ok_and(|c| c.contains(&needle)) {
            out.push(name);
        }
    }
    out
}

#[test]
fn a_mount_that_fails_fails_the_start_and_leaves_nothing() {
    let e = engine_with_busybox();
    let image = e.unique("broken");
    commit_layer(&e, "busybox", &image, "true");
    let top = PathBuf::from(inspect(&e, &image, "{{.GraphDriver.Data.UpperDir}}"));
    assert!(top.is_dir(), "no top layer at {}", top.display());
    let aside = top.with_extension("aside");
    std::fs::rename(&top, &aside).unwrap();
    let out = e.docker(&["run", "--rm", &image, "true"]);
    std::fs::rename(&aside, &top).unwrap();
    assert!(!out.success(), "a container without its layer ran");
    assert!(out.stderr.contains("mounting the rootfs"), "not the mount's own error: {}", out.stderr);
    // The shim's init stopped at the gate: no container process, cgroup, netns or shim is left.
    assert!(wait_until(Duration::from_secs(10), || processes_under(&e).is_empty()), "processes left: {:?}", processes_under(&e));
    let netns: Vec<_> =
        std::fs::read_dir(e.exec_root().join("netns")).map(|d| d.flatten().map(|x| x.file_name()).collect()).unwrap_or_default();
    assert!(netns.is_empty(), "netns left: {netns:?}");
    let cgroups: Vec<_> = std::fs::read_dir(format!("/sys/fs/cgroup/memory{}", e.cgroup_parent()))
        .map(|d| d.flatten().filter(|x| x.path().is_dir()).map(|x| x.file_name()).collect())
        .unwrap_or_default();
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
    assert_eq!(e.docker_ok(&["ps", "-aq"]).trim(), "", "the --rm container is left");
    // With its layer back, the image runs.
    assert_eq!(run_out(&e, &[&image, "echo", "ok"]), "ok");
}
