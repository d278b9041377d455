//! The `local` log driver: `docker logs` reads it, it rotates (dockerd's defaults 20m x 5,
//! compressed, or the container's `--log-opt`), and `docker info`/`inspect` show it.
mod common;
use common::*;
use std::path::PathBuf;

fn local_logs(e: &Engine, name: &str) -> (PathBuf, Vec<String>) {
    let id = inspect(e, name, "{{.Id}}");
    let dir = e.data_root().join("containers").join(&id).join("local-logs");
    let mut files: Vec<String> =
        std::fs::read_dir(&dir).map(|d| d.flatten().map(|f| f.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
    files.sort();
    (dir, files)
}

#[test]
fn local_driver_logs_rotate_and_show() {
    require_root!();
    let e = engine_with_busybox();
    let name = e.unique("loc");
    e.docker_ok(&["run", "--name", &name, "--log-driver", "local", "busybox", "sh", "-c", "echo one; echo two >&2"]);
    let o = e.docker(&["logs", &name]);
    assert!(o.success() && o.stdout == "one\n" && o.stderr == "two\n", "{o}");
    assert_eq!(inspect(&e, &name, "{{.HostConfig.LogConfig.Type}}"), "local");
    let (dir, files) = local_logs(&e, &name);
    assert_eq!(files, ["container.log"], "in {}", dir.display());
    assert!(inspect(&e, &name, "{{.LogPath}}").ends_with("/local-logs/container.log"));
    e.docker_ok(&["rm", &name]);

    // Rotation with the container's options: at most max-file files, the rotated ones gzipped.
    let rot = e.unique("locrot");
    let script = "i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); done";
    e.docker_ok(&[
        "run",
        "--name",
        &rot,
        "--log-driver",
        "local",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=2",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let (dir, files) = local_logs(&e, &rot);
    assert_eq!(files, ["container.log", "container.log.1.gz"], "in {}", dir.display());
    let total: u64 = files.iter().map(|f| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0)).sum();
    assert!(total < 8 * 1024, "rotated: {total} bytes");
    assert_eq!(e.docker_ok(&["logs", "--tail", "1", &rot]), "line-399\n");
    let o = e.docker(&["run", "--rm", "--log-driver", "local", "--log-opt", "labels=x", "busybox", "true"]);
    assert!(!o.success() && o.stderr.contains("labels"), "{o}");
    e.docker_ok(&["rm", &rot]);
}

#[test]
fn local_as_the_daemon_default() {
    require_root!();
    let e = Engine::start_with(opts().arg("--log-driver").arg("local"));
    e.load_busybox();
    assert_eq!(e.docker_ok(&["info", "-f", "{{.LoggingDriver}}"]).trim(), "local");
    let name = e.unique("dloc");
    e.docker_ok(&["run", "--name", &name, "busybox", "echo", "by default"]);
    assert_eq!(inspect(&e, &name, "{{.HostConfig.LogConfig.Type}}"), "local");
    assert_eq!(e.docker_ok(&["logs", &name]), "by default\n");
    assert_eq!(local_logs(&e, &name).1, ["container.log"]);
    e.docker_ok(&["rm", &name]);
}
