//! Token discovery end to end: a real `swarm token-service`, `swarm create`, two agents
//! (`swarm join` with the embedded engine) in two network-namespace hosts, `swarm list`,
//! containers run through each advertised address, TTL expiry of a crashed agent, immediate
//! deregistration of a stopped one, and a token service restart that loses nothing.
mod discovery_common;
use discovery_common::*;
use std::time::Duration;

#[test]
fn token_service_agents_in_two_hosts() {
    require_root!();
    let mut svc = TokenService::start();
    let o = swarm_env(&["create"], &[("SWARM_DISCOVERY_URL", &svc.url())]);
    assert!(o.success(), "{o}");
    let token = o.stdout.trim().to_string();
    assert!(token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()), "{o}");
    let url_flag = svc.url();
    let list_args = ["--discovery-url", url_flag.as_str(), &format!("token://{token}")].map(String::from);
    let list_args: Vec<&str> = list_args.iter().map(String::as_str).collect();
    assert!(list(&list_args).is_empty());

    let net = TestNet::new(2);
    let (h1, h2) = (net.host(0), net.host(1));
    // Both URL forms: an explicit host, and --discovery-url with the bare token.
    let svc_on_bridge = svc.addr_on(&net.gateway());
    let mut a1 = join(h1, &format!("token://{svc_on_bridge}/v1/{token}"), &[]);
    let mut a2 = join(h2, &format!("token://{token}"), &["--discovery-url", &format!("http://{svc_on_bridge}/v1")]);
    let both = vec![advertise(h1), advertise(h2)];
    wait_list(&list_args, &both, Duration::from_secs(60));
    a1.wait_log("registered", Duration::from_secs(5));

    // Each advertised address is a working Docker engine.
    run_container_at(&advertise(h1));
    run_container_at(&advertise(h2));

    // A manager watching the same token sees both agents as one cluster.
    struct Proc(std::process::Child);
    impl Drop for Proc {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let maddr = format!("127.0.0.1:{}", free_port());
    let _mgr = Proc(
        std::process::Command::new(testground::engine::swarm_bin())
            .args(["manage", "-H", &format!("tcp://{maddr}"), "--heartbeat", "1s"])
            .args(["--discovery-url", &format!("http://{svc_on_bridge}/v1"), &format!("token://{token}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start swarm manage"),
    );
    let info = || {
        let mut c = std::process::Command::new(testground::engine::docker_cli());
        c.args(["-H", &format!("tcp://{maddr}"), "info"]).env("DOCKER_CONFIG", svc.data());
        testground::cmd::run(&mut c, None, Duration::from_secs(20))
    };
    let seen = testground::wait_until(Duration::from_secs(30), || info().stdout.contains("Nodes: 2"));
    assert!(seen, "the manager must find both agents through token discovery: {}", info());

    // The token service restarts (crash) under running agents: the cluster and its entries survive.
    svc.kill();
    svc.start_again();
    let o = swarm(&{
        let mut a = vec!["list", "--timeout", "5s"];
        a.extend_from_slice(&list_args);
        a
    });
    assert!(o.success(), "the cluster must survive a restart: {o}");
    wait_list(&list_args, &both, Duration::from_secs(5));
    // The entries listed may be the ones restored from the service's file, whose TTL runs from
    // before the crash: one more heartbeat (every second) lets a1 register with the new service.
    std::thread::sleep(Duration::from_millis(1500));

    // A crashed agent (SIGKILL, no deregistration) disappears after its TTL (3 s).
    a1.kill();
    let t = wait_list(&list_args, &[advertise(h2)], Duration::from_secs(10));
    assert!(t > Duration::from_millis(500), "gone too early for a TTL expiry: {t:?}");
    // A clean shutdown deregisters at once, well before the TTL.
    let st = a2.terminate(Duration::from_secs(20));
    assert!(st.is_some_and(|s| s.success()), "join did not exit cleanly: {st:?}\n{}", a2.log());
    let t = wait_list(&list_args, &[], Duration::from_secs(2));
    assert!(t < Duration::from_secs(2), "{t:?}");
    assert!(a2.log().contains("deregistered"), "{}", a2.log());
}

#[test]
fn no_engine_registers_another_engines_address() {
    require_root!();
    let svc = TokenService::start();
    let (token, net, d) = svc.cluster(1);
    let h = net.host(0);
    let addr = format!("{}:2376", h.ip());
    let args: Vec<String> = ["join", "--advertise", &addr, "--no-engine", "--heartbeat", "1s", "--ttl", "3s", "--delay", "500ms", &d]
        .map(String::from)
        .to_vec();
    let mut agent = h.spawn("join-no-engine", SWARM, &args);
    let l = ["--discovery-url".to_string(), svc.url(), format!("token://{token}")];
    let l: Vec<&str> = l.iter().map(String::as_str).collect();
    wait_list(&l, std::slice::from_ref(&addr), Duration::from_secs(20));
    // Nothing serves there: join did not start an engine.
    assert!(std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(1)).is_err());
    assert!(agent.terminate(Duration::from_secs(10)).is_some_and(|s| s.success()), "{}", agent.log());
    wait_list(&l, &[], Duration::from_secs(2));
}

/// With our token service, a manager at the default `--heartbeat` (60 s) sees a join (and a
/// clean leave) within 2 s: its watch is a blocking query, not a poll.
#[test]
fn manager_sees_joins_at_once_with_the_default_heartbeat() {
    let svc = TokenService::start();
    let o = swarm(&["create", "--discovery-url", &svc.url()]);
    assert!(o.success(), "{o}");
    let disc = format!("token://127.0.0.1:{}/v1/{}", svc.port, o.stdout.trim());
    struct Proc(std::process::Child);
    impl Drop for Proc {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let spawn = |args: &[&str]| {
        Proc(
            std::process::Command::new(SWARM)
                .args(args)
                .env_remove("SWARM_DISCOVERY_URL")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn swarm"),
        )
    };
    let maddr = format!("127.0.0.1:{}", free_port());
    let _mgr = spawn(&["manage", "-H", &format!("tcp://{maddr}"), &disc]);
    let nodes = || {
        let o = docker_at(&format!("tcp://{maddr}"), &["info", "--format", "{{json .SystemStatus}}"], Duration::from_secs(10));
        o.stdout.split("[\"Nodes\",\"").nth(1).and_then(|r| r.split('"').next()).and_then(|n| n.parse::<usize>().ok())
    };
    assert!(wait_until(Duration::from_secs(20), || nodes() == Some(0)), "manager not up: {:?}", nodes());
    // Agents registering addresses nothing serves: they show as Pending nodes.
    let (a1, a2) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let t0 = std::time::Instant::now();
    let _j1 = spawn(&["join", "--advertise", &a1, "--no-engine", &disc]);
    let took = testground::seen_within(t0, Duration::from_secs(10), || nodes() == Some(1)).unwrap_or_else(|| panic!("{:?}", nodes()));
    assert!(took < Duration::from_secs(2), "the join took {took:?} to show");
    let t0 = std::time::Instant::now();
    let mut j2 = spawn(&["join", "--advertise", &a2, "--no-engine", &disc]);
    let took = testground::seen_within(t0, Duration::from_secs(10), || nodes() == Some(2)).unwrap_or_else(|| panic!("{:?}", nodes()));
    assert!(took < Duration::from_secs(2), "the second join took {took:?} to show");
    // A clean leave (SIGTERM deregisters) shows as fast.
    let t0 = std::time::Instant::now();
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(j2.0.id() as i32, libc::SIGTERM) };
    let _ = j2.0.wait();
    let took = testground::seen_within(t0, Duration::from_secs(10), || nodes() == Some(1)).unwrap_or_else(|| panic!("{:?}", nodes()));
    assert!(took < Duration::from_secs(2), "the leave took {took:?} to show");
}

/// The acceptance of the blocking watch with a real node: an engine registered by `swarm join`
/// is Healthy in a manager at the default `--heartbeat` within 2 s of the join.
#[test]
fn joined_engine_is_healthy_within_two_seconds() {
    require_root!();
    let svc = TokenService::start();
    let o = swarm(&["create", "--discovery-url", &svc.url()]);
    assert!(o.success(), "{o}");
    let disc = format!("token://127.0.0.1:{}/v1/{}", svc.port, o.stdout.trim());
    let eaddr = format!("127.0.0.1:{}", free_port());
    let opts = testground::engine::EngineOpts::default().bin(SWARM).arg("-H").arg(&format!("tcp://{eaddr}")).arg("--insecure-tcp");
    let _engine = testground::engine::Engine::start_with(opts);
    let maddr = format!("127.0.0.1:{}", free_port());
    let mut mgr = std::process::Command::new(SWARM)
        .args(["manage", "-H", &format!("tcp://{maddr}"), &disc])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn swarm manage");
    let info = || docker_at(&format!("tcp://{maddr}"), &["info"], Duration::from_secs(10)).stdout;
    let up = wait_until(Duration::from_secs(20), || info().contains("Nodes: 0"));
    let t0 = std::time::Instant::now();
    let mut join = std::process::Command::new(SWARM)
        .args(["join", "--advertise", &eaddr, "--no-engine", &disc])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn swarm join");
    let took = testground::seen_within(t0, Duration::from_secs(10), || info().contains("└ Status: Healthy"));
    let last = info();
    for c in [&mut join, &mut mgr] {
        let _ = c.kill();
        let _ = c.wait();
    }
    assert!(up, "{last}");
    let took = took.unwrap_or_else(|| panic!("never Healthy:\n{last}"));
    assert!(took < Duration::from_secs(2), "the joined engine took {took:?} to be Healthy:\n{last}");
}
