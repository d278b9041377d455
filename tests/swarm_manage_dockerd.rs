//! One manager over one of our engines and one real dockerd (Debian docker.io). dockerd shares
//! host-wide state (iptables chains), so this runs only when FLOTILLA_TEST_MANAGE_DOCKERD=1 and
//! alone (`--test-threads 1`).
mod common;

use common::{require_root, wait_until, Engine};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use testground::cmd;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn manages_a_real_dockerd_next_to_our_engine() {
    require_root!();
    if std::env::var_os("FLOTILLA_TEST_MANAGE_DOCKERD").is_none() || !std::path::Path::new("/usr/sbin/dockerd").exists() {
        eprintln!("skipping: set FLOTILLA_TEST_MANAGE_DOCKERD=1 (needs /usr/sbin/dockerd; run alone)");
        return;
    }
    let (p1, p2, pm) = (free_port(), free_port(), free_port());
    let ours = Engine::start_with(common::opts().arg("-H").arg(&format!("tcp://127.0.0.1:{p1}")).arg("--insecure-tcp").arg("--name").arg("flotilla-node").label("kind=flotilla"));
    let mut o = common::opts().arg(&format!("--host=tcp://127.0.0.1:{p2}")).label("kind=dockerd");
    o.dockerd = true;
    o.ready_timeout = Duration::from_secs(60);
    let real = Engine::start_with(o);
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = std::fs::File::create(tmp.path().join("manager.log")).expect("log");
    let _m = Kill(
        Command::new(env!("CARGO_BIN_EXE_swarm"))
            .args(["manage", "-H", &format!("tcp://127.0.0.1:{pm}"), "--engine-refresh-min-interval", "1s", "--engine-refresh-max-interval", "2s"])
            .arg(format!("nodes://127.0.0.1:{p1},127.0.0.1:{p2}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn manager"),
    );
    let docker = |args: &[&str]| {
        let mut c = Command::new(testground::engine::docker_cli());
        c.env("DOCKER_HOST", format!("tcp://127.0.0.1:{pm}")).env("DOCKER_CONFIG", tmp.path()).args(args);
        cmd::run(&mut c, None, Duration::from_secs(120))
    };
    let log_tail = || std::fs::read_to_string(tmp.path().join("manager.log")).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(60), || docker(&["info"]).stdout.matches("└ Status: Healthy").count() == 2),
        "{}\n{}",
        docker(&["info"]),
        log_tail()
    );
    let o = docker(&["load", "-i", &testground::busybox_image_archive().display().to_string()]);
    assert!(o.success(), "{o}");
    let o = docker(&["run", "--rm", "-e", "constraint:kind==dockerd", "busybox", "echo", "hello-from-dockerd"]);
    assert!(o.success() && o.stdout.contains("hello-from-dockerd"), "{o}\n{}", log_tail());
    let o = docker(&["run", "-d", "--name", "on-real", "-e", "constraint:kind==dockerd", "busybox", "sleep", "100"]);
    assert!(o.success(), "{o}");
    let o = docker(&["run", "-d", "--name", "on-ours", "-e", "constraint:kind==flotilla", "busybox", "sleep", "100"]);
    assert!(o.success(), "{o}");
    let ps = docker(&["ps", "--format", "{{.Names}}"]).stdout;
    assert!(ps.contains("flotilla-node/on-ours") && ps.contains("/on-real"), "{ps}");
    // dockerd has an event stream: the manager sees a container created behind its back.
    let direct = real.docker(&["run", "-d", "--name", "behind-the-back", "busybox", "sleep", "100"]);
    assert!(direct.success(), "{direct}");
    assert!(wait_until(Duration::from_secs(10), || docker(&["ps", "--format", "{{.Names}}"]).stdout.contains("behind-the-back")));
    let o = docker(&["exec", "on-real", "echo", "exec-on-dockerd"]);
    assert!(o.success() && o.stdout.contains("exec-on-dockerd"), "{o}");
    for c in ["on-real", "on-ours", "behind-the-back"] {
        let _ = docker(&["rm", "-f", c]);
    }
    drop(ours);
}
