//! Published ports (`-p` forms, `-P`, ranges): reachable from the host (loopback and its own
//! address) and from other network namespaces, shown by `docker port`, inspect and `docker ps`;
//! a taken port is a clear error that leaves nothing behind; mappings survive an engine SIGKILL.
mod common;
use common::*;
use std::time::Duration;

/// `curl -s` of `url` (5 s timeout).
fn curl(url: &str) -> testground::cmd::Output {
    testground::cmd::run_args("curl", &["-s", "-m", "5", url])
}

/// The host's address on its default route, if it has one.
fn host_ip() -> Option<String> {
    let o = testground::cmd::run_args("ip", &["-4", "-o", "route", "get", "1.1.1.1"]).stdout;
    o.split_whitespace().skip_while(|w| *w != "src").nth(1).map(String::from)
}

/// The host port `docker port` shows for `spec` (e.g. `80/tcp`).
fn host_port(e: &Engine, name: &str, spec: &str) -> String {
    let out = e.docker_ok(&["port", name, spec]);
    let first = out.lines().next().unwrap_or_default();
    first.rsplit(':').next().unwrap_or_default().trim().to_string()
}

/// A busybox web server answering `/hostname` with the container's hostname.
fn httpd(e: &Engine, args: &[&str]) -> String {
    let mut a = vec!["run", "-d"];
    a.extend_from_slice(args);
    a.extend(["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    e.docker_ok(&a).trim().to_string()
}

fn dnat_rules(e: &Engine) -> Vec<String> {
    let nat = testground::cmd::run_args("iptables-save", &["-t", "nat"]).stdout;
    nat.lines().filter(|l| l.contains("--to-destination") && l.contains(&format!("flotilla:{}", e.bridge()))).map(String::from).collect()
}

#[test]
fn published_port_answers_from_the_host_and_other_namespaces() {
    require_root!();
    let e = engine_with_busybox();
    let id = httpd(&e, &["--name", "web", "-p", "0:80"]);
    let hostname = id[..12].to_string();
    let port = host_port(&e, "web", "80/tcp");
    assert!(port.parse::<u16>().is_ok_and(|p| p > 0), "{port}");
    let url = |ip: &str| format!("http://{ip}:{port}/hostname");
    // From the host: loopback (the engine is not in the data path) and its own address.
    assert!(wait_until(Duration::from_secs(10), || curl(&url("127.0.0.1")).stdout.trim() == hostname));
    if let Some(ip) = host_ip() {
        assert_eq!(curl(&url(&ip)).stdout.trim(), hostname);
    }
    // From other network namespaces: a container on the same bridge (hairpin through the
    // gateway) and one on a user-defined network.
    let out = e.docker_ok(&["run", "--rm", "busybox", "wget", "-q", "-O", "-", &url(&e.gateway())]);
    assert_eq!(out.trim(), hostname);
    if let Some(ip) = host_ip() {
        let net = e.unique("pn");
        e.docker_ok(&["network", "create", "--subnet", &user_subnet(&e, 0), &net]);
        let out = e.docker_ok(&["run", "--rm", "--network", &net, "busybox", "wget", "-q", "-O", "-", &url(&ip)]);
        assert_eq!(out.trim(), hostname);
        e.docker_ok(&["network", "rm", &net]);
    }
    // docker port, inspect, ps.
    assert_eq!(e.docker_ok(&["port", "web"]).trim(), format!("80/tcp -> 0.0.0.0:{port}"));
    assert_eq!(
        inspect(&e, "web", "{{json .NetworkSettings.Ports}}"),
        format!(r#"{{"80/tcp":[{{"HostIp":"0.0.0.0","HostPort":"{port}"}}]}}"#)
    );
    let ps = e.docker_ok(&["ps", "--filter", "name=web", "--format", "{{.Ports}}"]);
    assert_eq!(ps.trim(), format!("0.0.0.0:{port}->80/tcp"));
    let ps = e.docker_ok(&["ps", "-q", "--filter", &format!("publish={port}")]);
    assert_eq!(ps.trim(), &id[..12]);
    // Stopping the container takes the mapping away.
    e.docker_ok(&["rm", "-f", "web"]);
    assert!(wait_until(Duration::from_secs(5), || dnat_rules(&e).is_empty()), "{:?}", dnat_rules(&e));
    assert!(!curl(&url("127.0.0.1")).success());
}

#[test]
fn publish_forms_ranges_and_publish_all() {
    require_root!();
    let e = engine_with_busybox();
    // A fixed port bound to loopback only, a range, UDP and -P for the EXPOSEd port.
    // Below the kernel's ephemeral range: no outgoing connection takes it meanwhile.
    let fixed = testground::port::free_port();
    let range_lo = {
        let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let range = format!("{range_lo}-{}", range_lo + 20);
    httpd(
        &e,
        &[
            "--name",
            "forms",
            "-p",
            &format!("127.0.0.1:{fixed}:80"),
            "-p",
            &format!("{range}:81"),
            "-p",
            "5353/udp",
            "--expose",
            "8080",
            "-P",
        ],
    );
    assert_eq!(host_port(&e, "forms", "80/tcp"), fixed.to_string());
    let ports = e.docker_ok(&["port", "forms"]);
    assert!(ports.contains(&format!("80/tcp -> 127.0.0.1:{fixed}")), "{ports}");
    let r: u16 = host_port(&e, "forms", "81/tcp").parse().unwrap();
    assert!((range_lo..=range_lo + 20).contains(&r), "{r} not in {range}");
    assert!(host_port(&e, "forms", "5353/udp").parse::<u16>().is_ok(), "{ports}");
    assert!(host_port(&e, "forms", "8080/tcp").parse::<u16>().is_ok(), "-P publishes exposed ports:\n{ports}");
    let hostname = inspect(&e, "forms", "{{.Config.Hostname}}");
    assert!(wait_until(Duration::from_secs(10), || curl(&format!("http://127.0.0.1:{fixed}/hostname")).stdout.trim() == hostname));
    // Bound to 127.0.0.1 only: not on the host's other addresses.
    if let Some(ip) = host_ip() {
        assert!(!curl(&format!("http://{ip}:{fixed}/hostname")).success());
    }
    let ps = e.docker_ok(&["ps", "--format", "{{.Ports}}"]);
    assert!(ps.contains(&format!("127.0.0.1:{fixed}->80/tcp")) && ps.contains("->5353/udp"), "{ps}");
    // A container that only EXPOSEs shows the port without a binding.
    e.docker_ok(&["run", "-d", "--name", "exp", "--expose", "9000", "busybox", "sleep", "1000"]);
    assert_eq!(inspect(&e, "exp", "{{json .NetworkSettings.Ports}}"), r#"{"9000/tcp":null}"#);
    assert_eq!(e.docker_ok(&["ps", "--filter", "name=exp", "--format", "{{.Ports}}"]).trim(), "9000/tcp");
}

#[test]
fn a_taken_port_is_a_clear_error_and_leaves_nothing_behind() {
    require_root!();
    let e = engine_with_busybox();
    let busy = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let o = e.docker(&["run", "-d", "--name", "clash", "-p", &format!("{port}:80"), "busybox", "sleep", "1000"]);
    assert!(!o.success(), "{o}");
    assert!(o.stderr.contains(&format!("Bind for 0.0.0.0:{port} failed: port is already allocated")), "{o}");
    assert_eq!(inspect(&e, "clash", "{{.State.Status}}"), "created");
    // Nothing half-configured: no rule, no veth, no address, no netns.
    assert!(dnat_rules(&e).is_empty(), "{:?}", dnat_rules(&e));
    // (A veth goes with its netns, within milliseconds, in the background.)
    let veths = || testground::cmd::run_args("ip", &["-o", "link", "show", "master", e.bridge()]).stdout;
    assert!(wait_until(Duration::from_secs(5), || veths().trim().is_empty()), "{}", veths());
    assert_no_allocations(&e);
    // Our own published ports are taken too: a second container cannot have one.
    drop(busy);
    httpd(&e, &["--name", "first", "-p", &format!("{port}:80")]);
    let o = e.docker(&["run", "--rm", "-p", &format!("{port}:80"), "busybox", "true"]);
    assert!(!o.success() && o.stderr.contains("port is already allocated"), "{o}");
    assert_eq!(dnat_rules(&e).len(), 1, "{:?}", dnat_rules(&e));
    // The failed container can start once the port is free again.
    e.docker_ok(&["rm", "-f", "first"]);
    e.docker_ok(&["start", "clash"]);
    assert_eq!(host_port(&e, "clash", "80/tcp"), port);
}

#[test]
fn addresses_and_port_mappings_survive_an_engine_sigkill() {
    require_root!();
    let mut e = engine_with_busybox();
    let net = e.unique("kn");
    e.docker_ok(&["network", "create", "--subnet", &user_subnet(&e, 0), &net]);
    let id = httpd(&e, &["--name", "kweb", "--network", &net, "--network-alias", "kw", "-p", "0:80"]);
    e.docker_ok(&["run", "-d", "--name", "kcli", "--network", &net, "busybox", "sleep", "1000"]);
    let port = host_port(&e, "kweb", "80/tcp");
    let ip = inspect(&e, "kweb", &net_ip(&net));
    let url = format!("http://127.0.0.1:{port}/hostname");
    assert!(wait_until(Duration::from_secs(10), || curl(&url).stdout.trim() == &id[..12]));

    // SIGKILL: the engine cannot clean anything up. The mapping keeps working meanwhile.
    unsafe { libc::kill(e.pid().unwrap() as i32, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(curl(&url).stdout.trim(), &id[..12]);
    // Meanwhile someone takes the free port (as an outgoing connection can, from the ephemeral
    // range): the restarted engine cannot bind it, and takes it again once it is let go.
    // (On one address: a listener there keeps the engine from binding every address.)
    let squatter = std::net::TcpListener::bind(format!("127.0.0.1:{port}")).expect("the dead engine's port is free");
    e.restart();

    assert_eq!(inspect(&e, "kweb", &net_ip(&net)), ip);
    assert_eq!(host_port(&e, "kweb", "80/tcp"), port);
    assert_eq!(curl(&url).stdout.trim(), &id[..12]);
    // The port is free on the host's other addresses, but its DNAT rule is kweb's: no other
    // container may publish it there meanwhile.
    let gw = e.docker_ok(&["network", "inspect", "bridge", "-f", "{{(index .IPAM.Config 0).Gateway}}"]).trim().to_string();
    let rules = dnat_rules(&e);
    let o = e.docker(&["run", "--rm", "-p", &format!("{gw}:{port}:80"), "busybox", "true"]);
    assert!(!o.success() && o.stderr.contains(&format!("Bind for {gw}:{port} failed: port is already allocated")), "{o}");
    assert_eq!(dnat_rules(&e), rules);
    drop(squatter);
    assert!(
        wait_until(Duration::from_secs(5), || std::net::TcpListener::bind(format!("0.0.0.0:{port}")).is_err()),
        "the engine did not take port {port} again"
    );
    // Names still resolve (the resolvers were restarted) and new containers get new addresses.
    let out = e.docker_ok(&["run", "--rm", "--network", &net, "busybox", "wget", "-q", "-O", "-", "http://kw/hostname"]);
    assert_eq!(out.trim(), &id[..12]);
    let other = e.docker_ok(&["run", "--rm", "--network", &net, "busybox", "sh", "-c", "ip -4 -o addr show eth0"]);
    assert!(!other.contains(&format!("inet {ip}/")), "address {ip} handed out twice:\n{other}");
    // The port is still ours: nobody else can take it.
    assert!(std::net::TcpListener::bind(format!("0.0.0.0:{port}")).is_err());
    e.docker_ok(&["rm", "-f", "kweb", "kcli"]);
    e.docker_ok(&["network", "rm", &net]);
    assert!(wait_until(Duration::from_secs(5), || dnat_rules(&e).is_empty()), "{:?}", dnat_rules(&e));
}

/// A /24 for user network `n` (0..) of this engine, unique among parallel engines: the engine's
/// own subnet `10.16X.Y.0/24` moved to `10.(16X + 8(n+1)).Y.0/24`.
fn user_subnet(e: &Engine, n: u32) -> String {
    let p = e.subnet_prefix();
    let mut it = p.split('.');
    let (_, b, c) = (it.next(), it.next().unwrap_or("160").parse::<u32>().unwrap_or(160), it.next().unwrap_or("0"));
    format!("10.{}.{c}.0/24", b + 8 * (n + 1))
}

/// Every IPAM state file of the engine holds no allocation.
fn assert_no_allocations(e: &Engine) {
    let dir = e.exec_root().join("network");
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let f = entry.path().join("ipam.json");
        if let Ok(s) = std::fs::read_to_string(&f) {
            let v: serde_json::Value = serde_json::from_str(&s).unwrap();
            assert_eq!(v["allocations"], serde_json::json!({}), "{}: {s}", f.display());
        }
    }
    let sandboxes = e.exec_root().join("network").join("sandboxes");
    let left: Vec<_> = std::fs::read_dir(&sandboxes).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    let netns: Vec<_> = std::fs::read_dir(e.exec_root().join("netns")).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(netns.is_empty(), "{netns:?}");
}

/// Inspect template for a container's address on network `net` (names with `-` need `index`).
fn net_ip(net: &str) -> String {
    format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}")
}

/// A UDP echo server in a container: the host's python3 (busybox has no UDP server), with the
/// host's /usr bound read-only into the busybox image.
const UDP_ECHO: &str = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',5353))\nwhile True:\n    d,a=s.recvfrom(2048)\n    s.sendto(b'echo:'+d,a)\n";

/// Sends `msg` to `addr` over UDP and returns the answer (retries: the first datagram may
/// race the server's bind).
fn udp_ask(addr: &str, msg: &str) -> Option<String> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    let mut buf = [0u8; 2048];
    for _ in 0..20 {
        let _ = s.send_to(msg.as_bytes(), addr);
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    None
}

#[test]
fn published_udp_port_answers_from_the_host() {
    require_root!();
    let e = engine_with_busybox();
    e.docker_ok(&[
        "run",
        "-d",
        "--name",
        "udpecho",
        "-p",
        "0:5353/udp",
        "-v",
        "/usr:/usr:ro",
        "-v",
        "/usr/lib:/lib:ro",
        "-v",
        "/usr/lib64:/lib64:ro",
        "busybox",
        "/usr/bin/python3",
        "-c",
        UDP_ECHO,
    ]);
    let port = host_port(&e, "udpecho", "5353/udp");
    assert!(port.parse::<u16>().is_ok_and(|p| p > 0), "{port}");
    // Host loopback (DNAT in OUTPUT + route_localnet) and the host's own address.
    let got = udp_ask(&format!("127.0.0.1:{port}"), "over-loopback");
    assert_eq!(got.as_deref(), Some("echo:over-loopback"), "logs: {}", e.docker(&["logs", "udpecho"]));
    if let Some(ip) = host_ip() {
        assert_eq!(udp_ask(&format!("{ip}:{port}"), "over-host-ip").as_deref(), Some("echo:over-host-ip"));
    }
    // Removing the container removes the mapping: nothing answers any more.
    e.docker_ok(&["rm", "-f", "udpecho"]);
    assert!(wait_until(Duration::from_secs(5), || dnat_rules(&e).is_empty()), "{:?}", dnat_rules(&e));
    let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let _ = s.send_to(b"anyone", format!("127.0.0.1:{port}"));
    assert!(s.recv_from(&mut [0u8; 64]).is_err());
}
