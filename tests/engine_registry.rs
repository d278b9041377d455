//! `docker push` to a real registry, then pulling the pushed image into another engine.
use testground::{require_root, Engine, EngineOpts, Registry};

#[test]
fn push_then_pull_round_trips_the_image() {
    require_root!();
    let reg = Registry::start();
    let a = Engine::start_with(EngineOpts::default());
    let id = a.load_busybox();
    let name = format!("{}/team/busybox:v1", reg.addr());
    a.docker_ok(&["tag", "busybox:latest", &name]);
    let out = a.docker_ok(&["push", &name]);
    assert!(out.contains("v1: digest: sha256:"), "push reports the digest: {out}");
    // Pushing again finds every layer there already.
    let again = a.docker(&["push", &name]);
    assert!(again.success() && again.stdout.contains("Layer already exists"), "{again}");
    // A second engine pulls it: same image id, and it runs.
    let b = Engine::start_with(EngineOpts::default());
    b.docker_ok(&["pull", &name]);
    let pulled = b.docker_ok(&["image", "inspect", "-f", "{{.Id}}", &name]);
    assert_eq!(pulled.trim(), id.trim(), "the pulled image is the pushed one");
    assert_eq!(b.docker_ok(&["run", "--rm", &name, "echo", "pushed"]), "pushed\n");
    // Pushing an image that does not exist is a clear error.
    let o = a.docker(&["push", &format!("{}/nope:latest", reg.addr())]);
    assert!(!o.success() && o.stderr.contains("nope"), "{o}");
}
