//! Images made by the engine: `docker commit` of a container's changes and `docker build`
//! with the classic builder (stages, cache, bad input), driven by the docker CLI.
mod common;
use common::*;

#[test]
fn commit_with_changes_and_pause_makes_a_runnable_image() {
    require_root!();
    let e = engine_with_busybox();
    let name = e.unique("src");
    e.docker_ok(&["run", "-d", "--name", &name, "busybox", "sh", "-c",
        "echo made > /made.txt; rm /bin/vi; mkdir -p /data && echo d > /data/f; touch /ready; sleep 300"]);
    assert!(wait_until(std::time::Duration::from_secs(20), || e.docker(&["exec", &name, "test", "-e", "/ready"]).success()));
    let repo = e.unique("committed");
    let out = e.docker_ok(&[
        "commit", "--pause", "-a", "Flo Tilla", "-m", "a message",
        "--change", r#"CMD ["cat","/made.txt"]"#,
        "--change", "ENV GREETING=hi THERE=now",
        "--change", "LABEL team=build",
        "--change", "EXPOSE 8080",
        "--change", "WORKDIR /data",
        &name, &format!("{repo}:v1"),
    ]);
    let id = out.trim();
    assert!(id.starts_with("sha256:") && is_hex64(&id[7..]), "{out}");
    // The container kept running (it was only frozen while its changes were read).
    assert_eq!(inspect(&e, &name, "{{.State.Status}}"), "running");
    let image = format!("{repo}:v1");
    assert_eq!(e.docker_ok(&["run", "--rm", &image]), "made\n");
    let env = e.docker_ok(&["run", "--rm", &image, "sh", "-c", "echo $GREETING $THERE; pwd; cat f; test -e /bin/vi || echo vi-gone"]);
    assert_eq!(env, "hi now\n/data\nd\nvi-gone\n");
    assert_eq!(inspect(&e, &image, "{{.Config.Labels.team}}"), "build");
    assert_eq!(inspect(&e, &image, "{{json .Config.ExposedPorts}}"), r#"{"8080/tcp":{}}"#);
    assert_eq!(inspect(&e, &image, "{{.Author}} / {{.Comment}}"), "Flo Tilla / a message");
    assert_eq!(inspect(&e, &image, "{{.Parent}}"), testground::image::busybox_image_id());
    assert_eq!(inspect(&e, &image, "{{len .RootFS.Layers}}"), "2");
    // The runtime's files (/etc/hosts, /proc...) are not part of the image's layer.
    let hist = e.docker_ok(&["history", "--no-trunc", "--format", "{{.Comment}}", &image]);
    assert_eq!(lines(&hist)[0], "a message");
    // An unknown change is refused with its name.
    let o = e.docker(&["commit", "--change", "RUN echo no", &name]);
    assert!(!o.success() && o.stderr.contains("RUN"), "{o}");
    // Without --pause on a stopped container, and with no name: a dangling image.
    e.docker_ok(&["rm", "-f", &name]);
    let stopped = e.unique("stopped");
    e.docker_ok(&["run", "--name", &stopped, "busybox", "sh", "-c", "echo second > /second"]);
    let id2 = e.docker_ok(&["commit", "--pause=false", &stopped]);
    let id2 = id2.trim();
    assert_eq!(e.docker_ok(&["run", "--rm", id2, "cat", "/second"]), "second\n");
    let o = e.docker(&["run", "--rm", id2, "cat", "/made.txt"]);
    assert!(!o.success(), "the first commit's files must not leak: {o}");
    e.docker_ok(&["rm", &stopped]);
    e.docker_ok(&["rmi", &image, id2]);
}
