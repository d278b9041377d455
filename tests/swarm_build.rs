//! `docker build` and `docker-compose up --build` through `swarm manage` (issue 13): two of our
//! engines on loopback TCP ports as nodes (static `nodes://` discovery), the standard docker CLI
//! and docker-compose 1.29 pointed at the manager. A build lands on the node that a
//! `constraint:` build arg names (as classic Swarm passed them), only there, and the image then
//! runs through the manager.
mod common;
mod discovery_common;

use common::{lines, require_root, Engine};
use discovery_common::manager::Manager;
use std::time::Duration;

/// A node: one of our engines with a TCP listener and a node name.
struct Node {
    engine: Engine,
    addr: String,
}

fn node(name: &str) -> Node {
    let addr = format!("127.0.0.1:{}", discovery_common::free_port());
    let o = common::opts().arg("-H").arg(&format!("tcp://{addr}")).arg("--insecure-tcp").arg("--name").arg(name);
    Node { engine: Engine::start_with(o), addr }
}

fn manager(nodes: &[&Node]) -> Manager {
    let discovery = format!("nodes://{}", nodes.iter().map(|n| n.addr.as_str()).collect::<Vec<_>>().join(","));
    let m = Manager::start(&[&discovery], nodes.len());
    m.load_busybox();
    m
}

/// `repo:tag` lines of a node's `docker images`.
fn images(n: &Node) -> Vec<String> {
    lines(&n.engine.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]))
}

/// A build context in a temp dir (removed on drop).
fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("flotilla-swarm-build-").tempdir().expect("tempdir");
    for (p, data) in files {
        let path = dir.path().join(p);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, data).expect("write");
    }
    dir
}

const DOCKERFILE: &str = "FROM busybox\nARG MSG=unset\nRUN echo \"built-$MSG\" > /msg\nCMD [\"cat\", \"/msg\"]\n";

#[test]
fn a_build_lands_on_the_constrained_node_and_runs_through_the_manager() {
    require_root!();
    let n1 = node("bnode-1");
    let n2 = node("bnode-2");
    let m = manager(&[&n1, &n2]);
    let ctx = context(&[("Dockerfile", DOCKERFILE)]);
    let dir = ctx.path().display().to_string();

    for (target, other) in [(&n1, &n2), (&n2, &n1)] {
        let name = target.engine.unique("built");
        let image = format!("{name}:latest");
        let node_name = target.engine.docker_ok(&["info", "--format", "{{.Name}}"]).trim().to_string();
        let o = m.docker_full(
            &[
                "build",
                "--build-arg",
                &format!("constraint:node=={node_name}"),
                "--build-arg",
                &format!("MSG={node_name}"),
                "-t",
                &name,
                &dir,
            ],
            None,
            Duration::from_secs(180),
        );
        assert!(o.success() && o.stdout.contains(&format!("Successfully tagged {image}")), "{o}\n--- manager log ---\n{}", m.log());
        // On the named node only.
        assert!(images(target).contains(&image), "{image} not on {node_name}: {:?}", images(target));
        assert!(!images(other).contains(&image), "{image} also on the other node: {:?}", images(other));
        // The manager knows where it is as soon as the build has answered (no waiting for the
        // node's events), and runs it there (no registry has it).
        m.docker_ok(&["image", "inspect", "-f", "{{.Id}}", &image]);
        let out = m.docker_ok(&["run", "--rm", &image]);
        assert_eq!(out, format!("built-{node_name}\n"));
        let c = target.engine.unique("runs");
        m.docker_ok(&["run", "-d", "--name", &c, &image, "sleep", "60"]);
        assert_eq!(m.node_of(&c), node_name);
        m.docker_ok(&["rm", "-f", &c]);
        m.docker_ok(&["rmi", &image]);
        assert!(!images(target).contains(&image), "{:?}", images(target));
    }

    // A constraint that no node meets: a clear error, and nothing built anywhere.
    let name = n1.engine.unique("nowhere");
    let o = m.docker(&["build", "--build-arg", "constraint:node==no-such-node", "-t", &name, &dir]);
    assert!(!o.success(), "{o}");
    assert!(o.stderr.contains("constraint") || o.stderr.contains("no-such-node"), "{o}");
    for n in [&n1, &n2] {
        assert!(!images(n).iter().any(|i| i.starts_with(&name)), "{:?}", images(n));
        assert_eq!(n.engine.docker_ok(&["ps", "-aq"]).trim(), "", "a build container was left behind");
    }
}

/// `docker-compose up --build` through the manager: `app` (the project's default network, no
/// placement rules) is built on the node that holds the network and runs there; `pinned` (the
/// default bridge) names its node in a `constraint:` build arg, is built there only, and its
/// container follows the image to that node.
#[test]
fn compose_up_build_through_the_manager() {
    require_root!();
    let n1 = node("cbnode-1");
    let n2 = node("cbnode-2");
    let m = manager(&[&n1, &n2]);
    let app = n1.engine.unique("composed");
    let pinned = n1.engine.unique("pinned");
    let ctx = context(&[
        ("app/Dockerfile", DOCKERFILE),
        (
            "docker-compose.yml",
            &format!(
                "version: \"2.4\"\nservices:\n  app:\n    build:\n      context: ./app\n      args:\n        - MSG=by-compose\n    image: {app}:latest\n  \
                 pinned:\n    build:\n      context: ./app\n      args:\n        - MSG=pinned\n        - constraint:node==cbnode-2\n    \
                 image: {pinned}:latest\n    network_mode: bridge\n"
            ),
        ),
    ]);
    let project = n1.engine.unique("proj").replace('-', "");
    let compose = |args: &[&str]| {
        let mut c = m.command("/usr/local/bin/docker-compose");
        c.current_dir(ctx.path()).args(["--ansi", "never", "-p", &project]).args(args);
        testground::cmd::run(&mut c, None, Duration::from_secs(180))
    };
    let o = compose(&["up", "--build"]);
    assert!(o.success(), "{o}\n--- manager log ---\n{}", m.log());
    assert!(o.combined().contains("built-by-compose") && o.combined().contains("built-pinned"), "{o}");
    // Each image on one node only, and each service's container on its image's node.
    let on = |image: &str| [&n1, &n2].iter().filter(|n| images(n).contains(&format!("{image}:latest"))).count();
    assert_eq!(on(&app), 1, "{app}");
    assert!(images(&n2).contains(&format!("{pinned}:latest")) && !images(&n1).contains(&format!("{pinned}:latest")));
    let app_node = m.node_of(&format!("{project}_app_1"));
    let app_engine = if app_node == "cbnode-1" { &n1 } else { &n2 };
    assert!(images(app_engine).contains(&format!("{app}:latest")), "{app} is not on {app_node}");
    let nets = m.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(nets.lines().any(|l| l == format!("{app_node}/{project}_default")), "{nets}");
    assert_eq!(m.node_of(&format!("{project}_pinned_1")), "cbnode-2");
    assert_eq!(m.docker_ok(&["run", "--rm", &pinned]), "built-pinned\n");

    let o = compose(&["down", "--rmi", "all"]);
    assert!(o.success(), "{o}\n--- manager log ---\n{}", m.log());
    for n in [&n1, &n2] {
        assert_eq!(n.engine.docker_ok(&["ps", "-aq"]).trim(), "");
        let left: Vec<String> = images(n).into_iter().filter(|i| i.starts_with(&app) || i.starts_with(&pinned)).collect();
        assert!(left.is_empty(), "{left:?}");
    }
    let nets = m.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.contains(&project), "{nets}");
}
