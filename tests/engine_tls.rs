//! TCP listeners: TLS with client certificates exactly as dockerd's `--tlsverify`, and plain
//! TCP only with an explicit `--insecure-tcp`.
use std::process::Command;
use std::time::Duration;
use testground::port::free_port;
use testground::{cmd, require_root, Engine, EngineOpts};

fn docker_tcp(args: &[&str], envs: &[(&str, &str)]) -> testground::Output {
    let mut c = Command::new(testground::engine::docker_cli());
    c.args(args).env_remove("DOCKER_HOST").env_remove("DOCKER_CONTEXT");
    let cfg = tempfile::tempdir().unwrap();
    c.env("DOCKER_CONFIG", cfg.path());
    for (k, v) in envs {
        c.env(k, v);
    }
    cmd::run(&mut c, None, Duration::from_secs(60))
}

fn curl(args: &[&str]) -> testground::Output {
    cmd::run(Command::new("curl").args(["-sS", "--max-time", "10"]).args(args), None, Duration::from_secs(20))
}

#[test]
fn tlsverify_requires_a_client_certificate_signed_by_the_ca() {
    require_root!();
    let certs = testground::tls::Certs::generate().expect("certs");
    let port = free_port();
    let addr = format!("tcp://127.0.0.1:{port}");
    let p = |n: &str| certs.path(n).display().to_string();
    let e = Engine::start_with(
        EngineOpts::default()
            .arg("-H")
            .arg(&addr)
            .arg("--tlsverify")
            .arg("--tlscacert")
            .arg(&p("ca.pem"))
            .arg("--tlscert")
            .arg(&p("server-cert.pem"))
            .arg("--tlskey")
            .arg(&p("server-key.pem")),
    );
    let cert_path = certs.dir.path().display().to_string();
    // The docker CLI with DOCKER_CERT_PATH, exactly as against dockerd.
    let o = docker_tcp(&["--tlsverify", "-H", &addr, "version", "--format", "{{.Server.Version}}"], &[("DOCKER_CERT_PATH", &cert_path)]);
    assert!(o.success() && o.stdout.contains("flotilla"), "{o}");
    let o = docker_tcp(
        &["version", "--format", "{{.Server.APIVersion}}"],
        &[("DOCKER_HOST", &addr), ("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", &cert_path)],
    );
    assert_eq!(o.stdout.trim(), "1.41", "{o}");
    // Containers run through the TLS listener too (attach is a hijacked connection).
    e.load_busybox();
    let o = docker_tcp(&["--tlsverify", "-H", &addr, "run", "--rm", "busybox", "echo", "over-tls"], &[("DOCKER_CERT_PATH", &cert_path)]);
    assert_eq!(o.stdout, "over-tls\n", "{o}");
    // Plain HTTP is refused.
    let o = curl(&[&format!("http://127.0.0.1:{port}/_ping")]);
    assert!(!o.success() || !o.stdout.contains("OK"), "plain HTTP must not be served: {o}");
    // TLS without a client certificate is refused.
    let o = curl(&["--cacert", &p("ca.pem"), &format!("https://127.0.0.1:{port}/_ping")]);
    assert!(!o.success(), "no client cert must be refused: {o}");
    // A client certificate from another CA is refused.
    let o = curl(&[
        "--cacert",
        &p("ca.pem"),
        "--cert",
        &p("rogue-cert.pem"),
        "--key",
        &p("rogue-key.pem"),
        &format!("https://127.0.0.1:{port}/_ping"),
    ]);
    assert!(!o.success(), "a certificate of an unknown CA must be refused: {o}");
    // The right one works.
    let o = curl(&["--cacert", &p("ca.pem"), "--cert", &p("cert.pem"), "--key", &p("key.pem"), &format!("https://127.0.0.1:{port}/_ping")]);
    assert_eq!(o.stdout, "OK", "{o}");
}

#[test]
fn plain_tcp_needs_an_explicit_flag() {
    require_root!();
    let d = tempfile::tempdir().unwrap();
    let port = free_port();
    let o = cmd::run(
        Command::new(testground::engine::swarm_bin()).args([
            "engine",
            "-H",
            &format!("tcp://127.0.0.1:{port}"),
            "--data-root",
            &d.path().join("data").display().to_string(),
            "--exec-root",
            &d.path().join("exec").display().to_string(),
        ]),
        None,
        Duration::from_secs(30),
    );
    assert!(!o.success(), "{o}");
    assert!(o.stderr.contains("--insecure-tcp"), "the error names the flag: {o}");
    // TLS flags that do not fit together are refused before anything starts.
    let o = cmd::run(
        Command::new(testground::engine::swarm_bin()).args(["engine", "--tlsverify", "--tlscert", "/x"]),
        None,
        Duration::from_secs(30),
    );
    assert!(!o.success() && o.stderr.contains("--tlskey"), "{o}");
}

#[test]
fn insecure_tcp_serves_plain_http_with_a_warning() {
    require_root!();
    let port = free_port();
    let addr = format!("tcp://127.0.0.1:{port}");
    let e = Engine::start_with(EngineOpts::default().arg("-H").arg(&addr).arg("--insecure-tcp"));
    let o = docker_tcp(&["-H", &addr, "info", "--format", "{{.Driver}}"], &[]);
    assert_eq!(o.stdout.trim(), "overlay2", "{o}");
    assert!(e.log().contains("without TLS"), "a warning is logged");
}

#[test]
fn refuses_to_start_without_root() {
    require_root!();
    let d = tempfile::tempdir().unwrap();
    let o = cmd::run(
        Command::new("setpriv").args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(testground::engine::swarm_bin()).args([
            "engine",
            "-H",
            &format!("unix://{}/d.sock", d.path().display()),
            "--data-root",
            "/tmp/flotilla-nonroot-data-never-created",
            "--exec-root",
            "/tmp/flotilla-nonroot-exec-never-created",
        ]),
        None,
        Duration::from_secs(30),
    );
    assert!(!o.success(), "{o}");
    assert!(o.stderr.contains("must run as root"), "{o}");
    assert!(!std::path::Path::new("/tmp/flotilla-nonroot-data-never-created").exists());
}
