//! `machine create -d generic` against real SSH hosts (network namespaces with their own sshd):
//! provisioning, TLS, the docker CLI through `machine env`, ssh/scp, regenerate-certs,
//! idempotent re-provisioning, and the failure paths users hit.
mod machine_support;
use machine_support::*;
use std::process::Command;

fn create_args<'a>(h: &'a TestHost, ip: &'a str, key: &'a str, cg: &'a str, name: &'a str) -> Vec<&'a str> {
    let _ = h;
    vec!["create", "-d", "generic", "--generic-ip-address", ip, "--generic-ssh-key", key, "--engine-opt", cg, name]
}

#[test]
fn generic_hosts_end_to_end() {
    require_root!();
    let cli = Cli::new();
    let (key, pubk) = keypair(cli.dir.path(), "id_test");
    let (badkey, _) = keypair(cli.dir.path(), "id_bad");
    let net = Net::new();
    let h1 = net.host("h1", &pubk);
    let h2 = net.host("h2", &pubk);
    let (ip1, ip2) = (h1.ip(), h2.ip());
    let (cg1, cg2) = (h1.cgroup_opt(), h2.cgroup_opt());
    let k = key.display().to_string();

    // A key the host does not accept: pre-create check, exit code 3, nothing stored.
    let bk = badkey.display().to_string();
    let o = cli.machine(&create_args(&h1, &ip1, &bk, &cg1, "m1"));
    assert_eq!(o.code(), 3, "{o}");
    assert!(o.stderr.starts_with("Error with pre-create check: \"cannot log in to root@"), "{o}");
    assert!(!cli.store().join("machines/m1").exists());

    // Both hosts at once (two processes).
    let mut a1 = create_args(&h1, &ip1, &k, &cg1, "m1");
    a1.splice(1..1, ["--tls-san", "foo.example", "--engine-label", "role=a"]);
    let a2 = create_args(&h2, &ip2, &k, &cg2, "m2");
    let (o1, o2) = std::thread::scope(|s| {
        let t1 = s.spawn(|| cli.machine(&a1));
        let t2 = s.spawn(|| cli.machine(&a2));
        (t1.join().expect("join"), t2.join().expect("join"))
    });
    assert!(o1.success(), "m1:\n{o1}\nhost log:\n{}", h1.log());
    assert!(o2.success(), "m2:\n{o2}\nhost log:\n{}", h2.log());
    for l in ["Provisioning with debian...", "Checking connection to Docker...", "Docker is up and running!"] {
        assert!(o1.stdout.contains(l), "{l:?} missing:\n{o1}");
    }
    // Same CA for both machines.
    let ca = |m: &str| std::fs::read(cli.store().join(format!("machines/{m}/ca.pem"))).expect("ca copy");
    assert_eq!(ca("m1"), ca("m2"));

    // ls: both Running with the engine's version.
    let ls = cli.ok(&["ls"]);
    let r1 = ls_row(&ls, "m1");
    assert_eq!(r1[..5], ["m1".to_string(), "-".into(), "generic".into(), "Running".into(), format!("tcp://{ip1}:2376")], "{ls}");
    assert!(r1[5].starts_with('v'), "{ls}");
    assert_eq!(ls_row(&ls, "m2")[3], "Running");
    assert_eq!(cli.ok(&["ls", "-q", "--filter", "state=Running", "--filter", "label=role=a"]), "m1\n");

    // The docker CLI over TLS with machine env's variables.
    let vars = cli.env_vars(&["m1"]);
    assert_eq!(vars[0], ("DOCKER_TLS_VERIFY".to_string(), "1".to_string()));
    assert_eq!(vars[1], ("DOCKER_HOST".to_string(), format!("tcp://{ip1}:2376")));
    let info = cli.docker_ok(&["m1"], &["info", "--format", "{{.Name}} {{.Labels}}"]);
    assert!(info.starts_with("m1 [") && info.contains("role=a") && info.contains("provider=generic"), "{info}");
    cli.load_busybox("m1");
    assert_eq!(cli.docker_ok(&["m1"], &["run", "--rm", "busybox", "echo", "hello from m1"]).trim(), "hello from m1");
    // `docker $(machine config m1) version` style.
    let cfg = cli.ok(&["config", "m1"]);
    assert!(cfg.starts_with("--tlsverify\n--tlscacert=\"") && cfg.trim_end().ends_with(&format!("-H=tcp://{ip1}:2376")), "{cfg}");

    // ssh and scp both ways, and machine to machine.
    assert_eq!(cli.ok(&["ssh", "m1", "hostname"]).trim(), "m1");
    let o = cli.machine(&["ssh", "m1", "exit 7"]);
    assert_eq!(o.code(), 7, "{o}");
    let local = cli.dir.path().join("hello.txt");
    std::fs::write(&local, "scp payload\n").expect("write");
    cli.ok(&["scp", &local.display().to_string(), "m1:/tmp/hello.txt"]);
    assert_eq!(cli.ok(&["ssh", "m1", "cat", "/tmp/hello.txt"]), "scp payload\n");
    cli.ok(&["scp", "m1:/tmp/hello.txt", "m2:/tmp/from-m1.txt"]);
    let back = cli.dir.path().join("back.txt");
    cli.ok(&["scp", "m2:/tmp/from-m1.txt", &back.display().to_string()]);
    assert_eq!(std::fs::read_to_string(&back).expect("read"), "scp payload\n");

    // Re-provisioning an unchanged machine uploads nothing and restarts nothing.
    let pid = |ip: &str| raw_ssh(&key, ip, "cat /run/flotilla/engine.pid").trim().to_string();
    let pid_before = pid(&ip1);
    assert!(!pid_before.is_empty());
    let o = cli.ok(&["provision", "m1"]);
    assert!(!o.contains("Uploading") && !o.contains("Generating server certificate"), "{o}");
    assert_eq!(pid(&ip1), pid_before, "engine restarted by an idempotent provision");

    // regenerate-certs -f: new server cert (still with the extra SAN), docker keeps working.
    let cert = || std::fs::read(cli.store().join("machines/m1/server.pem")).expect("server.pem");
    let before = cert();
    let o = cli.machine(&["regenerate-certs", "-f", "m1"]);
    assert!(o.success(), "{o}");
    assert_ne!(cert(), before);
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(cli.store().join("machines/m1/server.pem"))
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("DNS:foo.example") && text.contains(&format!("IP Address:{ip1}")) && text.contains("DNS:localhost"), "{text}");
    assert_eq!(cli.docker_ok(&["m1"], &["run", "--rm", "busybox", "echo", "still here"]).trim(), "still here");

    // The host's IP changes (here: a second address, and the record points at it): `env`
    // notices the certificate no longer names the host, re-issues it, and docker works.
    let ip1b = format!("{}{}", net.bridge.slot.prefix(), 200);
    let o = Command::new("ip").args(["-n", &h1.ns.netns(), "addr", "add", &format!("{ip1b}/24"), "dev", "eth0"]).output().expect("ip");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cfg_path = cli.store().join("machines/m1/config.json");
    let cfg = std::fs::read_to_string(&cfg_path).expect("config");
    std::fs::write(&cfg_path, cfg.replace(&format!("\"{ip1}\""), &format!("\"{ip1b}\""))).expect("write config");
    let o = cli.machine(&["env", "m1"]);
    assert!(o.success(), "{o}");
    assert!(o.stderr.contains("does not name its address") && o.stdout.contains(&format!("DOCKER_HOST=\"tcp://{ip1b}:2376\"")), "{o}");
    assert_eq!(cli.docker_ok(&["m1"], &["run", "--rm", "busybox", "echo", "new ip"]).trim(), "new ip");
    let cfg = std::fs::read_to_string(&cfg_path).expect("config");
    std::fs::write(&cfg_path, cfg.replace(&format!("\"{ip1b}\""), &format!("\"{ip1}\""))).expect("write config");
    cli.ok(&["regenerate-certs", "-f", "m1"]);

    // `none` registers an engine that already serves TLS (here m1's, same CA).
    let url1 = format!("tcp://{ip1}:2376");
    cli.ok(&["create", "-d", "none", "--url", &url1, "n1"]);
    assert_eq!(cli.docker_ok(&["n1"], &["info", "--format", "{{.Name}}"]).trim(), "m1");
    cli.ok(&["rm", "-y", "n1"]);

    // The same name again.
    let o = cli.machine(&create_args(&h1, &ip1, &k, &cg1, "m1"));
    assert_eq!((o.code(), o.stderr.trim()), (1, "Docker machine \"m1\" already exists"));

    // generic cannot stop; restart restarts the services (the host is not rebooted).
    let o = cli.machine(&["stop", "m2"]);
    assert!(o.stderr.contains("generic driver does not support stop"), "{o}");
    let p2 = pid(&ip2);
    cli.ok(&["restart", "m2"]);
    assert_ne!(pid(&ip2), p2);
    assert!(cli.docker(&["m2"], &["version"]).success());

    // rm takes Flotilla off the host and forgets the machine.
    let engine2 = pid(&ip2);
    cli.ok(&["rm", "-y", "m2"]);
    assert!(!cli.store().join("machines/m2").exists());
    assert_eq!(raw_ssh(&key, &ip2, "ls /etc/flotilla /usr/local/bin/swarm 2>/dev/null | wc -l").trim(), "0");
    assert!(
        testground::wait_until(std::time::Duration::from_secs(10), || !std::path::Path::new(&format!("/proc/{engine2}")).exists()),
        "engine {engine2} still runs"
    );
    cli.ok(&["rm", "-y", "m1"]);
    drop(h1);
    drop(h2);
}

/// A host whose sshd has no SFTP subsystem still gets its `swarm` (over a plain exec channel,
/// as Docker Machine never needed SFTP); a `swarm` built for another architecture than the
/// host's `uname -m` is refused before anything is uploaded.
#[test]
fn no_sftp_and_foreign_architecture() {
    require_root!();
    let cli = Cli::new();
    let (key, pubk) = keypair(cli.dir.path(), "id_test");
    let net = Net::new();
    let h = net.host_without_sftp("nosftp", &pubk);
    let (ip, cg, k) = (h.ip(), h.cgroup_opt(), key.display().to_string());
    // The host really has no SFTP.
    let o = Command::new("sftp")
        .args(["-b", "-", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=quiet", "-i", &k])
        .arg(format!("root@{ip}"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("sftp");
    assert!(!o.status.success(), "sftp worked against the test host");

    // An aarch64 build: refused with both architectures named, nothing installed or stored.
    let foreign = cli.dir.path().join("swarm-aarch64");
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    (elf[4], elf[5], elf[6], elf[18]) = (2, 1, 1, 183);
    std::fs::write(&foreign, elf).expect("write");
    let o = cli.machine_swarm_bin(&foreign.display().to_string(), &create_args(&h, &ip, &k, &cg, "m1"), None, &[]);
    assert_eq!(o.code(), 1, "{o}");
    assert!(
        o.stderr.contains(&format!("the swarm binary {} is built for aarch64, but the host is x86_64 (uname -m)", foreign.display())),
        "{o}"
    );
    assert!(!cli.store().join("machines/m1").exists());
    assert_eq!(raw_ssh(&key, &ip, "ls /usr/local/bin/swarm 2>/dev/null | wc -l").trim(), "0");

    // The real build goes over an exec channel; the engine runs and answers over TLS.
    let o = cli.machine(&create_args(&h, &ip, &k, &cg, "m1"));
    assert!(o.success(), "{o}\nhost log:\n{}", h.log());
    assert!(!o.stderr.contains("SFTP"), "{o}");
    let sum = |s: &str| s.split_whitespace().next().unwrap_or("").to_string();
    let local = Command::new("sha256sum").arg(swarm()).output().expect("sha256sum");
    assert_eq!(sum(&raw_ssh(&key, &ip, "sha256sum /usr/local/bin/swarm")), sum(&String::from_utf8_lossy(&local.stdout)));
    assert_eq!(cli.docker_ok(&["m1"], &["info", "--format", "{{.Name}}"]).trim(), "m1");
    // Re-provisioning (certs re-uploaded) works the same way.
    cli.ok(&["regenerate-certs", "-f", "m1"]);
    assert!(cli.docker(&["m1"], &["version"]).success());
    cli.ok(&["rm", "-y", "m1"]);
}
