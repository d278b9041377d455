//! The token service as a credential store (issue 15): HTTPS with `--tlscert/--tlskey` (plain
//! HTTP off loopback only with `--insecure-http`), `swarm create/join/list/manage` over https
//! with `--discovery-cacert`, tokens never logged whole, and its limits: entries per cluster,
//! clusters, TTL, body size, creates per client per minute, and a 0700 store.
mod discovery_common;
use discovery_common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A `swarm` process killed on drop, its stderr in a file.
struct Proc {
    child: std::process::Child,
    log: tempfile::NamedTempFile,
}

impl Proc {
    fn spawn(args: &[&str]) -> Proc {
        let log = tempfile::NamedTempFile::new().expect("log file");
        let child = Command::new(SWARM)
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("SWARM_DISCOVERY_URL")
            .env_remove("SWARM_DISCOVERY_CACERT")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("log"))
            .spawn()
            .expect("spawn swarm");
        Proc { child, log }
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn curl(args: &[&str]) -> testground::Output {
    testground::cmd::run(Command::new("curl").args(["-sS", "--max-time", "10"]).args(args), None, Duration::from_secs(20))
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

#[test]
fn plain_http_off_loopback_needs_insecure_http() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let data = dir.path().join("data").display().to_string();
    let t0 = std::time::Instant::now();
    let o = swarm(&["token-service", "--listen", &format!("0.0.0.0:{port}"), "--data", &data]);
    assert!(!o.success() && t0.elapsed() < Duration::from_secs(10), "{o}");
    assert!(o.stderr.contains("--insecure-http") && o.stderr.contains("--tlscert") && o.stderr.contains("plain HTTP"), "{o}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "nothing may listen");
    // A certificate without its key, and both TLS and --insecure-http, are refused too.
    let o = swarm(&["token-service", "--listen", &format!("0.0.0.0:{port}"), "--data", &data, "--tlscert", "/nonexistent.pem"]);
    assert!(!o.success() && o.stderr.contains("--tlskey"), "{o}");
    let o = swarm(&["token-service", "--insecure-http", "--tlscert", "/c.pem", "--tlskey", "/k.pem", "--data", &data]);
    assert!(!o.success() && o.stderr.contains("--insecure-http"), "{o}");
    // A certificate that cannot be read is named before anything listens.
    let o = swarm(&[
        "token-service",
        "--listen",
        &format!("0.0.0.0:{port}"),
        "--data",
        &data,
        "--tlscert",
        "/nonexistent.pem",
        "--tlskey",
        "/k",
    ]);
    assert!(!o.success() && o.stderr.contains("/nonexistent.pem"), "{o}");
    // An explicit --insecure-http is served (loopback needs none: see the last test).
    let svc = TokenService::start();
    let o = swarm(&["create", "--discovery-url", &svc.url()]);
    assert!(o.success(), "{o}");
}

#[test]
fn https_with_a_ca_for_create_join_list_and_manage() {
    let certs = testground::tls::Certs::generate().expect("certs");
    let p = |n: &str| certs.path(n).display().to_string();
    let svc = TokenService::start_with(&["--tlscert", &p("server-cert.pem"), "--tlskey", &p("server-key.pem")]);
    let url = svc.url();
    assert!(url.starts_with("https://"), "{url}");
    // HTTPS only: a plain HTTP request gets no answer.
    let o = curl(&[&format!("http://127.0.0.1:{}/_ping", svc.port)]);
    assert!(!o.success() || !o.stdout.contains("OK"), "plain HTTP must not be served: {o}");
    let o = curl(&["--cacert", &p("ca.pem"), &format!("https://127.0.0.1:{}/_ping", svc.port)]);
    assert_eq!(o.stdout, "OK", "{o}");

    // Without the CA, the service's certificate is not trusted; another CA neither.
    let o = swarm(&["create", "--discovery-url", &url]);
    assert!(!o.success() && o.stderr.contains("cannot reach the token service"), "{o}");
    let o = swarm(&["create", "--discovery-url", &url, "--discovery-cacert", &p("rogueca.pem")]);
    assert!(!o.success() && o.stderr.to_lowercase().contains("certificate"), "{o}");
    // A CA with a plain http URL is a mistake, named as such.
    let o = swarm(&["create", "--discovery-url", &url.replace("https://", "http://"), "--discovery-cacert", &p("ca.pem")]);
    assert!(!o.success() && o.stderr.contains("--discovery-cacert") && o.stderr.contains("https://"), "{o}");
    let o = swarm(&["list", "--discovery-cacert", &p("ca.pem"), "nodes://10.0.0.1:2375"]);
    assert!(!o.success() && o.stderr.contains("--discovery-cacert"), "{o}");

    // With the CA: flags or environment.
    let o = swarm(&["create", "--discovery-url", &url, "--discovery-cacert", &p("ca.pem")]);
    assert!(o.success(), "{o}");
    let token = o.stdout.trim().to_string();
    assert!(token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()), "{o}");
    let o = swarm_env(&["create"], &[("SWARM_DISCOVERY_URL", &url), ("SWARM_DISCOVERY_CACERT", &p("ca.pem"))]);
    assert!(o.success() && o.stdout.trim().len() == 32, "{o}");

    // Two agents: the bare token with the https --discovery-url, and the explicit host form
    // (https because a CA is given). Nothing serves their addresses: they are only registered.
    let (a1, a2) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let bare = format!("token://{token}");
    let explicit = format!("token://127.0.0.1:{}/v1/{token}", svc.port);
    let ca = p("ca.pem");
    let _j1 = Proc::spawn(&[
        "join",
        "--advertise",
        &a1,
        "--no-engine",
        "--heartbeat",
        "1s",
        "--ttl",
        "3s",
        "--discovery-url",
        &url,
        "--discovery-cacert",
        &ca,
        &bare,
    ]);
    let j2 =
        Proc::spawn(&["join", "--advertise", &a2, "--no-engine", "--heartbeat", "1s", "--ttl", "3s", "--discovery-cacert", &ca, &explicit]);
    let list_args = ["--discovery-url", url.as_str(), "--discovery-cacert", ca.as_str(), bare.as_str()];
    wait_list(&list_args, &[a1.clone(), a2.clone()], Duration::from_secs(20));
    // The service may list the entry before the agent has read its answer and logged it.
    assert!(testground::wait_until(Duration::from_secs(10), || j2.log().contains("registered")), "{}", j2.log());
    // The agent's log names the cluster by a prefix of its token only.
    assert!(!j2.log().contains(&token) && j2.log().contains(&token[..6]), "{}", j2.log());

    // A manager watching the cluster over https sees both nodes.
    let maddr = format!("127.0.0.1:{}", free_port());
    let mgr = Proc::spawn(&["manage", "-H", &format!("tcp://{maddr}"), "--discovery-url", &url, "--discovery-cacert", &ca, &bare]);
    let nodes = || {
        let o = docker_at(&format!("tcp://{maddr}"), &["info", "--format", "{{json .SystemStatus}}"], Duration::from_secs(10));
        o.stdout.split("[\"Nodes\",\"").nth(1).and_then(|r| r.split('"').next()).and_then(|n| n.parse::<usize>().ok())
    };
    assert!(wait_until(Duration::from_secs(20), || nodes() == Some(2)), "{:?}\n{}", nodes(), mgr.log());
    assert!(!mgr.log().contains(&token), "the manager logged the token whole:\n{}", mgr.log());

    // The service logged the creates and registrations (debug) by prefix only.
    let log = svc.log();
    assert!(log.contains("cluster created") && log.contains(&token[..6]), "{log}");
    assert!(!log.contains(&token), "the token service logged a token whole:\n{log}");
}

#[test]
fn limits_are_refused_with_errors_naming_them() {
    let svc = TokenService::start_with(&["--max-entries", "2", "--max-ttl", "1h", "--create-rate-limit", "3", "--insecure-http"]);
    let data = svc.data();
    assert_eq!(mode(&data), 0o700, "store directory");
    assert_eq!(mode(&data.join("clusters")), 0o700, "clusters directory");

    // Three creates in a burst pass, the fourth is refused by the per-client rate limit.
    let url = svc.url();
    let mut tokens = vec![];
    for _ in 0..3 {
        let o = swarm(&["create", "--discovery-url", &url]);
        assert!(o.success(), "{o}");
        tokens.push(o.stdout.trim().to_string());
    }
    let o = swarm(&["create", "--discovery-url", &url]);
    assert!(!o.success(), "{o}");
    assert!(o.stderr.contains("429") && o.stderr.contains("3 per minute") && o.stderr.contains("--create-rate-limit"), "{o}");
    for t in &tokens {
        assert_eq!(mode(&data.join(format!("clusters/{t}.json"))), 0o600, "cluster file");
    }

    // Two entries fit; a third agent is refused, with the limit in its log.
    let token = &tokens[0];
    let disc = format!("token://127.0.0.1:{}/v1/{token}", svc.port);
    let (a1, a2, a3) = ("10.9.0.1:2375".to_string(), "10.9.0.2:2375".to_string(), "10.9.0.3:2375".to_string());
    let reg = |a: &str| Proc::spawn(&["join", "--advertise", a, "--no-engine", "--heartbeat", "1s", "--ttl", "30s", &disc]);
    let (_j1, _j2) = (reg(&a1), reg(&a2));
    wait_list(&[disc.as_str()], &[a1.clone(), a2.clone()], Duration::from_secs(20));
    let j3 = reg(&a3);
    let refused = wait_until(Duration::from_secs(10), || j3.log().contains("registration failed"));
    let log = j3.log();
    assert!(refused && log.contains("403") && log.contains("maximum of 2 entries") && log.contains("--max-entries"), "{log}");
    assert_eq!(list(&[disc.as_str()]), vec![a1.clone(), a2.clone()]);
    // A heartbeat of a listed entry is not a new entry: it still passes at the cap.
    let o = curl(&["-X", "POST", "--data", &a1, "-w", " %{http_code}", &format!("{url}/clusters/{token}?ttl=30")]);
    assert!(o.stdout.ends_with(" 200"), "{o}");

    // A TTL above --max-ttl, and a body above 1 KiB, are refused with their limits.
    let other = &tokens[1];
    let o = curl(&["-X", "POST", "--data", "10.9.0.9:1", "-w", " %{http_code}", &format!("{url}/clusters/{other}?ttl=7200")]);
    assert!(o.stdout.ends_with(" 400") && o.stdout.contains("limit of 3600s") && o.stdout.contains("--max-ttl"), "{o}");
    let big = "x".repeat(4096);
    let o = curl(&["-X", "POST", "--data", &big, "-w", " %{http_code}", &format!("{url}/clusters/{other}?ttl=30")]);
    assert!(o.stdout.ends_with(" 413") && o.stdout.contains("1024 bytes"), "{o}");

    // --max-clusters: a service of one cluster refuses the second.
    let one = TokenService::start_with(&["--max-clusters", "1", "--insecure-http"]);
    assert!(swarm(&["create", "--discovery-url", &one.url()]).success());
    let o = swarm(&["create", "--discovery-url", &one.url()]);
    assert!(!o.success() && o.stderr.contains("maximum of 1 clusters") && o.stderr.contains("--max-clusters"), "{o}");
}

#[test]
fn an_existing_store_directory_is_made_private() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    std::fs::create_dir_all(data.join("clusters")).unwrap();
    std::fs::write(data.join("clusters/0123456789abcdef0123456789abcdef.json"), br#"{"created":1,"nodes":{}}"#).unwrap();
    for (p, m) in
        [(data.clone(), 0o755), (data.join("clusters"), 0o755), (data.join("clusters/0123456789abcdef0123456789abcdef.json"), 0o644)]
    {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    let port = free_port();
    let svc = Proc::spawn(&["token-service", "--listen", &format!("127.0.0.1:{port}"), "--data", &data.display().to_string()]);
    assert!(wait_until(Duration::from_secs(20), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()), "{}", svc.log());
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("clusters")), 0o700);
    assert_eq!(mode(&data.join("clusters/0123456789abcdef0123456789abcdef.json")), 0o600);
    // The cluster it held is served.
    assert!(list(&[&format!("token://127.0.0.1:{port}/v1/0123456789abcdef0123456789abcdef")]).is_empty());
    let o = swarm(&["list", &format!("token://127.0.0.1:{port}/v1/0123456789abcdef0123456789abcdef")]);
    assert!(o.success(), "{o}");
}
