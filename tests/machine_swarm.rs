//! `machine create --swarm [--swarm-master]`: local hosts joined through the token service,
//! then the docker CLI through the manager (`machine env --swarm`).
mod machine_support;
use machine_support::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn swarm_cluster_through_the_manager() {
    require_root!();
    let slot = testground::slot::Slot::acquire();
    let cli = Cli::new();
    let subnet = format!("{}0/24", slot.prefix());
    let local = ["-d", "local", "--local-bridge", slot.bridge.as_str(), "--local-subnet", subnet.as_str()];
    // The token service listens everywhere; hosts reach it at the bridge's address.
    let gw = slot.gateway();
    let (ts, disc) = token_service(cli.dir.path(), &gw);

    let mut a = vec!["create"];
    a.extend(local);
    a.extend(["--swarm", "--swarm-discovery", disc.as_str(), "--swarm-join-opt", "heartbeat=1s", "--swarm-join-opt", "ttl=5s"]);
    a.extend(["--swarm-master", "--swarm-strategy", "binpack", "--swarm-opt", "heartbeat=1s", "sm"]);
    let o = cli.machine(&a);
    assert!(o.success(), "{o}");
    let mut a = vec!["create"];
    a.extend(local);
    a.extend(["--swarm", "--swarm-discovery", disc.as_str(), "--swarm-join-opt", "heartbeat=1s", "--swarm-join-opt", "ttl=5s", "sn"]);
    cli.ok(&a);

    // Both engines registered in discovery.
    let (ip_m, ip_n) = (cli.ok(&["ip", "sm"]).trim().to_string(), cli.ok(&["ip", "sn"]).trim().to_string());
    let listed = || String::from_utf8_lossy(&Command::new(swarm()).args(["list", &disc]).output().expect("list").stdout).into_owned();
    assert!(
        testground::wait_until(Duration::from_secs(20), || {
            let l = listed();
            l.contains(&format!("{ip_m}:2376")) && l.contains(&format!("{ip_n}:2376"))
        }),
        "swarm list: {}",
        listed()
    );
    let ls = cli.ok(&["ls"]);
    assert_eq!(ls_row(&ls, "sm")[5..7], ["sm".to_string(), "(master)".into()], "{ls}");
    assert_eq!(ls_row(&ls, "sn")[5], "sm", "{ls}");
    let vars = cli.env_vars(&["--swarm", "sm"]);
    assert_eq!(vars[1].1, format!("tcp://{ip_m}:3376"));
    let o = cli.machine(&["env", "--swarm", "sn"]);
    assert!(o.stderr.contains("\"sn\" is not a swarm master."), "{o}");
    // docker info through the manager shows both nodes; docker run works through it.
    assert!(
        testground::wait_until(Duration::from_secs(60), || cli.docker(&["--swarm", "sm"], &["info"]).stdout.contains("Nodes: 2")),
        "{}",
        cli.docker(&["--swarm", "sm"], &["info"])
    );
    for m in ["sm", "sn"] {
        cli.load_busybox(m);
    }
    let out = cli.docker_ok(&["--swarm", "sm"], &["run", "--rm", "busybox", "echo", "via manager"]);
    assert_eq!(out.trim(), "via manager");
    drop(ts);
}

/// A token service served over HTTPS with a private CA: `machine create --swarm` with the
/// user's `SWARM_DISCOVERY_CACERT` copies that CA to the host, and the agent registers through it.
#[test]
fn swarm_join_through_an_https_token_service() {
    require_root!();
    let slot = testground::slot::Slot::acquire();
    let cli = Cli::new();
    let subnet = format!("{}0/24", slot.prefix());
    let gw = slot.gateway();
    let certs = testground::tls::Certs::generate_for(&[&gw]).expect("certs");
    let p = |n: &str| certs.path(n).display().to_string();
    let port = testground::port::free_port();
    let _ts = Proc(
        Command::new(swarm())
            .args([
                "token-service",
                "--listen",
                &format!("0.0.0.0:{port}"),
                "--tlscert",
                &p("server-cert.pem"),
                "--tlskey",
                &p("server-key.pem"),
            ])
            .arg("--data")
            .arg(cli.dir.path().join("token-data"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("token service"),
    );
    assert!(testground::wait_until(Duration::from_secs(10), || provision::driver::tcp_open("127.0.0.1", port, Duration::from_millis(200))));
    let ca = p("ca.pem");
    let o = Command::new(swarm())
        .args(["create", "--discovery-url", &format!("https://127.0.0.1:{port}/v1"), "--discovery-cacert", &ca])
        .output()
        .expect("swarm create");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let disc = format!("token://{gw}:{port}/{}", String::from_utf8_lossy(&o.stdout).trim());

    let args = [
        "create",
        "-d",
        "local",
        "--local-bridge",
        slot.bridge.as_str(),
        "--local-subnet",
        subnet.as_str(),
        "--swarm",
        "--swarm-discovery",
        disc.as_str(),
        "--swarm-join-opt",
        "heartbeat=1s",
        "hn",
    ];
    let o = cli.machine_with(&args, None, &[("SWARM_DISCOVERY_CACERT", ca.as_str())]);
    assert!(o.success(), "{o}");
    let ip = cli.ok(&["ip", "hn"]).trim().to_string();
    let listed = || {
        let o = Command::new(swarm()).args(["list", "--discovery-cacert", &ca, &disc]).output().expect("list");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(testground::wait_until(Duration::from_secs(20), || listed().contains(&format!("{ip}:2376"))), "swarm list: {}", listed());
}

/// A manager alone (`--swarm-master` without `--swarm`) over a static node list: the docker
/// CLI through `machine env --swarm` sees both engines and runs containers on them.
#[test]
fn swarm_master_over_static_nodes() {
    require_root!();
    let slot = testground::slot::Slot::acquire();
    let cli = Cli::new();
    let subnet = format!("{}0/24", slot.prefix());
    let local = ["-d", "local", "--local-bridge", slot.bridge.as_str(), "--local-subnet", subnet.as_str()];
    let mut a = vec!["create"];
    a.extend(local);
    a.extend(["--also", "n2", "n1"]);
    cli.ok(&a);
    let ips: Vec<String> = ["n1", "n2"].iter().map(|m| cli.ok(&["ip", m]).trim().to_string()).collect();
    let disc = format!("nodes://{}:2376,{}:2376", ips[0], ips[1]);
    let mut a = vec!["create"];
    a.extend(local);
    a.extend(["--swarm-master", "--swarm-discovery", disc.as_str(), "--swarm-opt", "heartbeat=1s", "sm"]);
    let o = cli.machine(&a);
    assert!(o.success(), "{o}");
    let ls = cli.ok(&["ls"]);
    assert_eq!(ls_row(&ls, "sm")[5..7], ["sm".to_string(), "(master)".into()], "{ls}");
    for m in ["n1", "n2"] {
        cli.load_busybox(m);
    }
    assert!(
        testground::wait_until(Duration::from_secs(60), || cli.docker(&["--swarm", "sm"], &["info"]).stdout.contains("Nodes: 2")),
        "{}",
        cli.docker(&["--swarm", "sm"], &["info"])
    );
    let out = cli.docker_ok(&["--swarm", "sm"], &["run", "--rm", "busybox", "echo", "via manager"]);
    assert_eq!(out.trim(), "via manager");
}
