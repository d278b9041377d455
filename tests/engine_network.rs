//! Networking of the default bridge, `--network host|none`, and that an engine's teardown
//! leaves nothing behind on the host. (Ports: engine_network_ports.rs; user networks:
//! engine_network_user.rs.)
mod common;
use common::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// Serves one HTTP response on 0.0.0.0:<port> (the host side) and returns the port.
fn one_shot_http(body: &'static str) -> (u16, std::thread::JoinHandle<bool>) {
    let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    let t = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match l.accept() {
                Ok((mut c, _)) => {
                    c.set_nonblocking(false).unwrap();
                    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut buf = [0u8; 1024];
                    let _ = c.read(&mut buf);
                    let _ = write!(c, "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                    return true;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        false
    });
    (port, t)
}

#[test]
fn bridge_container_reaches_the_host_side() {
    require_root!();
    let e = engine_with_busybox();
    let gw = e.gateway();
    let out = e.docker_ok(&["run", "--rm", "busybox", "ping", "-c", "1", "-W", "2", &gw]);
    assert!(out.contains("1 packets received"), "{out}");
    let (port, server) = one_shot_http("from the host");
    let out = e.docker_ok(&["run", "--rm", "busybox", "timeout", "10", "wget", "-q", "-O", "-", &format!("http://{gw}:{port}/")]);
    assert_eq!(out, "from the host");
    assert!(server.join().unwrap());
}

#[test]
fn bridge_addressing_and_inspect() {
    require_root!();
    let e = engine_with_busybox();
    let prefix = e.subnet_prefix();
    let gw = e.gateway();
    let out = e.docker_ok(&["run", "--rm", "busybox", "sh", "-c", "ip -4 -o addr show eth0; ip route"]);
    assert!(out.contains(&format!("inet {prefix}")) && out.contains("/24"), "{out}");
    assert!(out.contains(&format!("default via {gw}")), "{out}");
    // The host side: the bridge carries the gateway address.
    let br = testground::cmd::run_args("ip", &["-4", "-o", "addr", "show", "dev", e.bridge()]);
    assert!(br.stdout.contains(&format!("inet {gw}/24")), "{br}");

    let a = e.docker_ok(&["run", "-d", "--name", "na", "busybox", "sleep", "1000"]);
    let ip_a = inspect(&e, "na", "{{.NetworkSettings.IPAddress}}");
    assert!(ip_a.starts_with(&prefix) && ip_a != gw, "{ip_a}");
    assert_eq!(inspect(&e, "na", "{{.NetworkSettings.Gateway}}"), gw);
    assert_eq!(inspect(&e, "na", "{{.NetworkSettings.Networks.bridge.IPAddress}}"), ip_a);
    assert_eq!(inspect(&e, "na", "{{.NetworkSettings.Networks.bridge.Gateway}}"), gw);
    assert_eq!(inspect(&e, "na", "{{.NetworkSettings.IPPrefixLen}}"), "24");
    assert!(!a.is_empty());
    // Two containers on the bridge get different addresses and reach each other.
    e.docker_ok(&["run", "-d", "--name", "nb", "busybox", "sleep", "1000"]);
    let ip_b = inspect(&e, "nb", "{{.NetworkSettings.IPAddress}}");
    assert_ne!(ip_a, ip_b);
    let out = e.docker_ok(&["run", "--rm", "busybox", "ping", "-c", "1", "-W", "2", &ip_a]);
    assert!(out.contains("1 packets received"), "{out}");
    // The host reaches the container.
    let ping = testground::cmd::run_args("busybox", &["ping", "-c", "1", "-W", "2", &ip_b]);
    assert!(ping.success(), "{ping}");
    // Outgoing traffic is masqueraded.
    let nat = testground::cmd::run_args("iptables-save", &["-t", "nat"]).stdout;
    assert!(nat.lines().any(|l| l.contains(&format!("{prefix}0/24")) && l.contains("MASQUERADE")), "{nat}");
    // Addresses are released: after removing a, a new container can be started (and gets an address).
    e.docker_ok(&["rm", "-f", "na", "nb"]);
    let again = inspect(&e, e.docker_ok(&["run", "-d", "busybox", "sleep", "1000"]).trim(), "{{.NetworkSettings.IPAddress}}");
    assert!(again.starts_with(&prefix), "{again}");
}

#[test]
fn network_host_and_none() {
    require_root!();
    let e = engine_with_busybox();
    // The container sees the host's interfaces, e.g. the one of the default route.
    let route = testground::cmd::run_args("ip", &["route", "show", "default"]).stdout;
    let dev = route.split_whitespace().skip_while(|w| *w != "dev").nth(1).unwrap_or("lo").to_string();
    let out = e.docker_ok(&["run", "--rm", "--network", "host", "busybox", "ip", "-o", "link"]);
    assert!(out.contains(&format!(": {dev}:")), "host netns should show {dev}:\n{out}");
    assert_eq!(inspect(&e, e.docker_ok(&["create", "--network", "host", "busybox", "true"]).trim(), "{{.HostConfig.NetworkMode}}"), "host");

    let out = e.docker_ok(&["run", "--rm", "--network", "none", "busybox", "ip", "-o", "link"]);
    let links = lines(&out);
    assert_eq!(links.len(), 1, "{out}");
    assert!(links[0].contains(": lo:"), "{out}");
    let id = e.docker_ok(&["run", "-d", "--network", "none", "busybox", "sleep", "1000"]).trim().to_string();
    assert_eq!(inspect(&e, &id, "{{.NetworkSettings.IPAddress}}"), "");
    let o = e.docker(&["run", "--rm", "--network", "none", "busybox", "ping", "-c", "1", "-W", "1", &e.gateway()]);
    assert!(!o.success(), "{o}");
}

#[test]
fn teardown_leaves_nothing_behind() {
    require_root!();
    let mut e = engine_with_busybox();
    let id = e.docker_ok(&["run", "-d", "busybox", "sleep", "1000"]).trim().to_string();
    let pid = inspect(&e, &id, "{{.State.Pid}}");
    let (bridge, cg) = (e.bridge().to_string(), e.cgroup_parent().to_string());
    let roots = [e.data_root().parent().unwrap().to_path_buf(), e.exec_root().parent().unwrap().to_path_buf()];
    let notes = e.teardown();
    assert!(notes.is_empty(), "{notes:?}");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default().is_empty()
    );
    assert!(!testground::cmd::run_args("ip", &["link", "show", &bridge]).success());
    for t in ["filter", "nat"] {
        let s = testground::cmd::run_args("iptables-save", &["-t", t]).stdout;
        assert!(!testground::cleanup::mentions(&s, &bridge), "{t}:\n{s}");
    }
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        assert!(!h.path().join(cg.trim_start_matches('/')).exists(), "{}", h.path().display());
    }
    for r in roots {
        assert!(testground::cleanup::mounts_below(&r).is_empty());
        assert!(!r.exists(), "{}", r.display());
    }
}

/// Every container started gets a network namespace of its own, fresh: the engine makes the
/// next one ahead of time, and none is handed out twice, nor kept by a container once removed.
#[test]
fn each_start_gets_a_new_network_namespace_of_its_own() {
    require_root!();
    let e = engine_with_busybox();
    // The kernel recycles a freed namespace's inode number, so each namespace seen is held
    // open: while it is, its number names it alone, and a repeat is the same namespace.
    let hold = |path: String| (std::fs::read_link(&path).expect("netns link"), std::fs::File::open(&path).expect("netns"));
    let mut seen = vec![hold("/proc/self/ns/net".into())];
    for i in 0..4 {
        let id = e.docker_ok(&["run", "-d", "busybox", "sleep", "1000"]).trim().to_string();
        let pid = inspect(&e, &id, "{{.State.Pid}}");
        let (ns, file) = hold(format!("/proc/{pid}/ns/net"));
        let names: Vec<_> = seen.iter().map(|(n, _)| n).collect();
        assert!(!names.contains(&&ns), "start {i} got a network namespace seen before: {ns:?} in {names:?}");
        seen.push((ns, file));
        // Only what a new namespace has, plus the container's own endpoint, both up.
        let links = e.docker_ok(&["exec", &id, "ip", "-o", "link"]);
        let names: Vec<&str> =
            links.lines().filter_map(|l| l.split(':').nth(1)).map(|n| n.trim().split('@').next().unwrap_or("")).collect();
        assert_eq!(names, ["lo", "eth0"], "{links}");
        assert!(links.lines().all(|l| l.contains("UP")), "{links}");
        if i % 2 == 1 {
            e.docker_ok(&["rm", "-f", &id]);
        }
    }
    // A `--rm` run after removals still gets a working network of its own.
    let out = e.docker_ok(&["run", "--rm", "busybox", "ping", "-c", "1", "-W", "2", &e.gateway()]);
    assert!(out.contains("1 packets received"), "{out}");
}
