//! dockerd's daemon flags, checked as a user would: `--mtu`, `--ip-masq`, `--iptables`,
//! `--ip-forward`, `--userland-proxy`, `--registry-mirror` and `--max-concurrent-downloads`.
mod common;
use common::*;
use std::time::Duration;
use testground::cmd::run_args;
use testground::hosts::{docker_at, TestNet};
use testground::image::{image_config, TarWriter};

/// Rules of our engine (`flotilla:<tag>` comments) in `iptables-save`.
fn our_rules(tag: &str) -> Vec<String> {
    // iptables-save quotes comments: `--comment "flotilla:<tag>"`.
    let needle = format!("\"flotilla:{tag}\"");
    let mut out = vec![];
    for table in ["filter", "nat"] {
        out.extend(run_args("iptables-save", &["-t", table]).stdout.lines().filter(|l| l.contains(&needle)).map(String::from));
    }
    out
}

#[test]
fn mtu_sets_the_default_bridge_and_its_containers() {
    require_root!();
    let e = Engine::start_with(opts().arg("--mtu").arg("1400"));
    e.load_busybox();
    assert_eq!(e.docker_ok(&["run", "--rm", "busybox", "cat", "/sys/class/net/eth0/mtu"]).trim(), "1400");
    let o = e.docker_ok(&["network", "inspect", "bridge", "-f", "{{index .Options \"com.docker.network.driver.mtu\"}}"]);
    assert_eq!(o.trim(), "1400");
    // A user-defined bridge network's own MTU option is honoured too, and a bad one refused.
    let net = e.unique("mtunet");
    e.docker_ok(&["network", "create", "-o", "com.docker.network.driver.mtu=1300", &net]);
    assert_eq!(e.docker_ok(&["run", "--rm", "--network", &net, "busybox", "cat", "/sys/class/net/eth0/mtu"]).trim(), "1300");
    e.docker_ok(&["network", "rm", &net]);
    let o = e.docker(&["network", "create", "-o", "com.docker.network.driver.mtu=tiny", &e.unique("badmtu")]);
    assert!(!o.success() && o.stderr.contains("com.docker.network.driver.mtu"), "{o}");
    // A bad daemon value stops the engine with the flag named.
    let o = run_args(env!("CARGO_BIN_EXE_swarm"), &["engine", "--mtu", "10", "-H", "unix:///nonexistent/x.sock"]);
    assert!(!o.success() && o.stderr.contains("--mtu"), "{o}");
}

#[test]
fn ip_masq_false_leaves_the_bridge_unmasqueraded() {
    require_root!();
    let e = Engine::start_with(opts().arg("--ip-masq=false"));
    let subnet = e.subnet();
    let masq = format!("-s {subnet} ! -o {} ", e.bridge());
    let rules = our_rules(e.bridge());
    assert!(!rules.is_empty(), "the engine's other rules are there");
    assert!(!rules.iter().any(|r| r.contains(&masq) && r.contains("MASQUERADE")), "no MASQUERADE for {subnet}: {rules:#?}");
    let o = e.docker_ok(&["network", "inspect", "bridge", "-f", "{{index .Options \"com.docker.network.bridge.enable_ip_masquerade\"}}"]);
    assert_eq!(o.trim(), "false");
    drop(e);
    // The default does masquerade, so the check above means something.
    let e = Engine::start_with(opts());
    let masq = format!("-s {} ! -o {} ", e.subnet(), e.bridge());
    assert!(our_rules(e.bridge()).iter().any(|r| r.contains(&masq) && r.contains("MASQUERADE")));
}

#[test]
fn iptables_false_adds_no_rules_and_refuses_published_ports() {
    require_root!();
    let e = Engine::start_with(opts().arg("--iptables=false").arg("--userland-proxy=false"));
    e.load_busybox();
    assert_eq!(e.docker_ok(&["run", "--rm", "busybox", "echo", "ok"]), "ok\n");
    let net = e.unique("noipt");
    e.docker_ok(&["network", "create", &net]);
    assert_eq!(e.docker_ok(&["run", "--rm", "--network", &net, "busybox", "echo", "ok"]), "ok\n");
    assert_eq!(our_rules(e.bridge()), Vec::<String>::new());
    for table in ["filter", "nat"] {
        let o = run_args("iptables", &["-t", table, "-S"]);
        assert!(!o.stdout.contains(&format!("FLT-{} ", e.bridge())), "no chain of ours in {table}: {o}");
    }
    let o = e.docker(&["run", "--rm", "-p", "80", "busybox", "true"]);
    assert!(!o.success() && o.stderr.contains("--iptables=false"), "{o}");
    e.docker_ok(&["network", "rm", &net]);
    drop(e);
    // The same checks find the rules of an engine with iptables on.
    let on = Engine::start_with(opts());
    assert!(!our_rules(on.bridge()).is_empty());
    drop(on);
    // No userland proxy can stand in for NAT here: that combination is refused at start.
    let o =
        run_args(env!("CARGO_BIN_EXE_swarm"), &["engine", "--iptables=false", "--userland-proxy=true", "-H", "unix:///nonexistent/x.sock"]);
    assert!(!o.success() && o.stderr.contains("--userland-proxy"), "{o}");
    let o = run_args(
        env!("CARGO_BIN_EXE_swarm"),
        &["engine", "--userland-proxy-path", "/usr/bin/docker-proxy", "-H", "unix:///nonexistent/x.sock"],
    );
    assert!(!o.success() && o.stderr.contains("--userland-proxy-path"), "{o}");
}

#[test]
fn userland_proxy_true_still_publishes_through_nat() {
    require_root!();
    let e = Engine::start_with(opts().arg("--userland-proxy=true"));
    e.load_busybox();
    let name = e.unique("ulp");
    e.docker_ok(&["run", "-d", "--name", &name, "-p", "127.0.0.1::80", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    let port = e.docker_ok(&["port", &name, "80"]);
    let addr = port.lines().next().unwrap_or("").trim().to_string();
    let ok = wait_until(Duration::from_secs(10), || run_args("curl", &["-sf", "-m", "2", &format!("http://{addr}/hostname")]).success());
    assert!(ok, "published port {addr} answers on 127.0.0.1");
    e.docker_ok(&["rm", "-f", &name]);
}

#[test]
fn ip_forward_false_leaves_the_sysctl_alone() {
    require_root!();
    let net = TestNet::new(1);
    let h = net.host(0);
    let sysctl = || h.run("cat", &["/proc/sys/net/ipv4/ip_forward"]).stdout.trim().to_string();
    assert!(h.run("sh", &["-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"]).success());
    let sock = format!("unix://{}", h.socket().display());
    for (flag, want) in [("--ip-forward=false", "0"), ("--ip-forward=true", "1")] {
        let mut a: Vec<String> = vec!["engine".into(), flag.into()];
        a.extend(h.engine_args());
        let mut p = h.spawn("engine", env!("CARGO_BIN_EXE_swarm"), &a);
        assert!(wait_until(Duration::from_secs(30), || docker_at(&sock, &["version"], Duration::from_secs(5)).success()), "{}", p.log());
        assert_eq!(sysctl(), want, "{flag}");
        let info = docker_at(&sock, &["info", "-f", "{{.IPv4Forwarding}}"], Duration::from_secs(10));
        assert_eq!(info.stdout.trim(), if want == "1" { "true" } else { "false" }, "{info}");
        p.terminate(Duration::from_secs(15));
    }
}

/// Three small layers: a pull of them shows how many download at once.
fn three_layers() -> Vec<Vec<u8>> {
    (0..3)
        .map(|i| {
            let mut t = TarWriter::new();
            t.file(&format!("layer{i}.txt"), 0o644, format!("layer {i}\n").repeat(1000).as_bytes()).expect("tar");
            t.finish().expect("tar")
        })
        .collect()
}

#[test]
fn max_concurrent_downloads_limits_a_pull() {
    require_root!();
    let reg = Registry::start();
    let layers = three_layers();
    let refs: Vec<&[u8]> = layers.iter().map(|l| l.as_slice()).collect();
    reg.push_image("three", "v1", &refs, &image_config(&refs, &["sh"])).expect("push");
    let image = format!("{}/three:v1", reg.addr());
    let one = Engine::start_with(opts().arg("--max-concurrent-downloads").arg("1"));
    let out = one.docker_ok(&["pull", &image]);
    assert_eq!(out.matches(": Waiting").count(), 2, "one download at a time, two wait:\n{out}");
    let three = Engine::start_with(opts());
    let out = three.docker_ok(&["pull", &image]);
    assert_eq!(out.matches(": Waiting").count(), 0, "three at once by default:\n{out}");
    let o = run_args(env!("CARGO_BIN_EXE_swarm"), &["engine", "--max-concurrent-downloads", "0", "-H", "unix:///nonexistent/x.sock"]);
    assert!(!o.success() && o.stderr.contains("--max-concurrent-downloads"), "{o}");
}

#[test]
fn registry_mirror_serves_docker_hub_images() {
    require_root!();
    let reg = Registry::start();
    reg.push_busybox("library/busybox", "latest");
    let mirror = format!("http://{}", reg.addr());
    // An unreachable mirror first: skipped, the next one serves.
    let e = Engine::start_with(opts().arg("--registry-mirror").arg("http://127.0.0.1:1").arg("--registry-mirror").arg(&mirror));
    let out = e.docker_ok(&["pull", "busybox"]);
    assert!(out.contains("Downloaded newer image for busybox:latest"), "{out}");
    assert_eq!(e.docker_ok(&["run", "--rm", "busybox", "echo", "mirrored"]), "mirrored\n");
    let mirrors = e.docker_ok(&["info", "-f", "{{json .RegistryConfig.Mirrors}}"]);
    assert!(mirrors.contains(&format!("{mirror}/")), "{mirrors}");
    let o = run_args(env!("CARGO_BIN_EXE_swarm"), &["engine", "--registry-mirror", "mirror.example", "-H", "unix:///nonexistent/x.sock"]);
    assert!(!o.success() && o.stderr.contains("--registry-mirror"), "{o}");
}
