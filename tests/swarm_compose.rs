//! docker-compose 1.29 (PyPI, installed by scripts/install-deps.sh) through the manager: a
//! two-service project (a busybox httpd and a client that depends on it and fetches from it
//! by service name) over three agents in network-namespace hosts: `up -d`, `ps`, `logs`, the
//! published port, `down` removing containers and the project network.
mod discovery_common;
use discovery_common::manager::Manager;
use discovery_common::*;
use std::path::PathBuf;
use std::time::Duration;

/// `/usr/local/bin/docker-compose` (scripts/install-deps.sh links it there).
fn compose_bin() -> PathBuf {
    for p in ["/usr/local/bin/docker-compose", "/opt/docker-compose-venv/bin/docker-compose"] {
        if std::path::Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    panic!("docker-compose 1.29 is not installed: run scripts/install-deps.sh");
}

const COMPOSE_FILE: &str = r#"version: "2.4"
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo compose-web-ok > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports:
      - "8081:80"
    labels:
      role: server
  client:
    image: busybox
    depends_on:
      - web
    command: ["sh", "-c", "while true; do wget -qO- http://web/ && echo fetched-by-name; sleep 1; done"]
"#;

struct Compose<'a> {
    m: &'a Manager,
    dir: tempfile::TempDir,
    project: String,
}

impl Compose<'_> {
    fn run(&self, args: &[&str]) -> testground::cmd::Output {
        let mut c = self.m.command(compose_bin());
        c.current_dir(self.dir.path()).args(["--ansi", "never", "-p", &self.project]).args(args);
        testground::cmd::run(&mut c, None, Duration::from_secs(120))
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.success(), "docker-compose {args:?} failed:\n{o}\n--- manager log ---\n{}", self.m.log());
        o.stdout + &o.stderr
    }
}

impl Drop for Compose<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.run(&["down", "-t", "1"]);
        }
    }
}

#[test]
fn compose_up_ps_logs_down_through_the_manager() {
    require_root!();
    let svc = TokenService::start();
    let (_token, net, disc) = svc.cluster(3);
    let procs: Vec<HostProc> = (0..3).map(|i| join(net.host(i), &disc, &["--name", &format!("cnode-{}", i + 1)])).collect();
    let m = Manager::start(&[&disc], 3);
    m.load_busybox();

    let dir = tempfile::Builder::new().prefix("flotilla-compose-").tempdir().expect("tempdir");
    std::fs::write(dir.path().join("docker-compose.yml"), COMPOSE_FILE).expect("compose file");
    let project = format!("flt{}", std::process::id());
    let c = Compose { m: &m, dir, project: project.clone() };

    let up = c.ok(&["up", "-d"]);
    assert!(up.contains(&format!("{project}_web_1")) && up.contains(&format!("{project}_client_1")), "{up}");

    // ps: both services up.
    let ps = c.ok(&["ps"]);
    for s in ["web", "client"] {
        let row = ps.lines().find(|l| l.starts_with(&format!("{project}_{s}_1"))).unwrap_or_else(|| panic!("no {s} in ps:\n{ps}"));
        assert!(row.contains(" Up"), "{ps}");
    }
    // The project's containers in docker ps, with compose's labels.
    let names = m.docker_ok(&["ps", "--filter", &format!("label=com.docker.compose.project={project}"), "--format", "{{.Names}}"]);
    assert_eq!(names.lines().count(), 2, "{names}");
    let web_node = m.node_of(&format!("{project}_web_1"));
    // Both on the node of the project's network, which docker network ls shows as node/name.
    assert_eq!(m.node_of(&format!("{project}_client_1")), web_node);
    let nets = m.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(nets.lines().any(|l| l == format!("{web_node}/{project}_default")), "{nets}");

    // The client reaches web by its service name; its output comes back through logs.
    let fetched = wait_until(Duration::from_secs(30), || c.run(&["logs", "client"]).stdout.contains("compose-web-ok"));
    assert!(fetched, "{}\n{}", c.run(&["logs"]), m.log());
    // The published port answers on web's node.
    let ip = m.docker_ok(&["inspect", "-f", "{{.Node.IP}}", &format!("{project}_web_1")]).trim().to_string();
    let r = testground::http::tcp(&format!("{ip}:8081"), &testground::http::Request { method: "GET", path: "/", headers: &[], body: b"" });
    assert!(r.as_ref().is_ok_and(|r| r.text().contains("compose-web-ok")), "{r:?} from {web_node}");

    // A second up finds the project through the manager's label filters and changes nothing.
    let again = c.ok(&["up", "-d"]);
    assert!(
        again.contains(&format!("{project}_web_1 is up-to-date")) && again.contains(&format!("{project}_client_1 is up-to-date")),
        "{again}"
    );

    // down: containers and the project network are gone.
    c.ok(&["down", "-t", "1"]);
    let all = m.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!all.contains(&project), "{all}");
    let nets = m.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.contains(&format!("{project}_default")), "{nets}");
    drop(c);
    drop(m);
    drop(procs);
}
