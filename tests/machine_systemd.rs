//! The provisioner's systemd path on a real host with systemd as PID 1 (a Debian 12 guest
//! booted with systemd-nspawn, testground::nspawn): `machine create -d generic --swarm
//! --swarm-master` installs and enables the units and systemd runs the engine, the agent and
//! the manager; re-provisioning restarts nothing; `restart`, `regenerate-certs` and `upgrade`
//! go through systemctl; a reboot brings everything back. Also `machine scp --delta` (rsync on
//! both ends), against the systemd host and a network-namespace host.
mod machine_support;
use machine_support::*;
use std::process::Command;
use std::time::{Duration, Instant};

const UNITS: [&str; 3] = ["flotilla-engine", "flotilla-manager", "flotilla-agent"];

/// `machine ssh NAME CMD`'s stdout (must succeed).
fn ssh(cli: &Cli, name: &str, cmd: &str) -> String {
    cli.ok(&["ssh", name, cmd])
}

/// systemd's MainPID of each unit.
fn main_pids(cli: &Cli) -> Vec<String> {
    let out = ssh(cli, "sd1", &format!("systemctl show -p MainPID --value {}", UNITS.join(" ")));
    let pids: Vec<String> = out.lines().filter(|l| !l.is_empty()).map(String::from).collect();
    assert!(pids.len() == 3 && pids.iter().all(|p| p.parse::<u32>().is_ok_and(|n| n > 0)), "MainPIDs: {out:?}");
    pids
}

fn phase(t: &mut Instant, what: &str) {
    eprintln!("[{:>6.1?}] {what}", t.elapsed());
    *t = Instant::now();
}

#[test]
fn systemd_host_end_to_end() {
    require_root!();
    let mut t = Instant::now();
    let cli = Cli::new();
    let (key, pubk) = keypair(cli.dir.path(), "id_test");
    let k = key.display().to_string();
    let net = testground::nspawn::SystemdNet::new().unwrap_or_else(|e| panic!("{e:#}"));
    let host = net.host("sd1", &pubk).unwrap_or_else(|e| panic!("{e:#}"));
    let ip = host.ip().to_string();
    phase(&mut t, "systemd host booted");
    let (ts, disc) = token_service(cli.dir.path(), &net.gateway());

    // create: engine, swarm agent and manager, all as systemd units.
    let o = cli.machine(&[
        "create",
        "-d",
        "generic",
        "--generic-ip-address",
        &ip,
        "--generic-ssh-key",
        &k,
        "--swarm",
        "--swarm-master",
        "--swarm-discovery",
        &disc,
        "--swarm-join-opt",
        "heartbeat=1s",
        "--swarm-opt",
        "heartbeat=1s",
        "sd1",
    ]);
    assert!(o.success(), "{o}");
    assert!(o.stdout.contains("Provisioning with debian...") && o.stdout.contains("Docker is up and running!"), "{o}");
    phase(&mut t, "machine create");
    assert_eq!(ssh(&cli, "sd1", "hostname").trim(), "sd1");
    assert_eq!(ssh(&cli, "sd1", &format!("systemctl is-enabled {}", UNITS.join(" "))), "enabled\nenabled\nenabled\n");
    assert_eq!(ssh(&cli, "sd1", &format!("systemctl is-active {}", UNITS.join(" "))), "active\nactive\nactive\n");
    let pids = main_pids(&cli);
    let restarts = ssh(&cli, "sd1", &format!("systemctl show -p NRestarts --value {}", UNITS.join(" ")));
    assert_eq!(restarts.split_whitespace().collect::<Vec<_>>(), ["0", "0", "0"], "a unit crashed and was restarted by systemd");
    // The engine is systemd's process (its unit's cgroup), not our supervisor's.
    let cg =
        ssh(&cli, "sd1", &format!("cat /proc/{}/comm /proc/{}/cgroup; ls /run/flotilla/*.supervisor 2>/dev/null; true", pids[0], pids[0]));
    assert!(cg.starts_with("swarm\n") && cg.contains(":name=systemd:/system.slice/flotilla-engine.service"), "{cg}");
    assert!(!cg.contains(".supervisor"), "{cg}");
    let logs = ssh(&cli, "sd1", "journalctl -u flotilla-engine --no-pager -q | wc -l");
    assert!(logs.trim().parse::<u32>().is_ok_and(|n| n > 0), "no engine lines in the journal: {logs}");

    // The docker CLI through machine env: the engine, then the manager.
    cli.load_busybox("sd1");
    assert_eq!(cli.docker_ok(&["sd1"], &["run", "--rm", "busybox", "echo", "hello from systemd"]).trim(), "hello from systemd");
    assert!(
        testground::wait_until(Duration::from_secs(60), || cli.docker(&["--swarm", "sd1"], &["info"]).stdout.contains("Nodes: 1")),
        "{}",
        cli.docker(&["--swarm", "sd1"], &["info"])
    );
    assert_eq!(cli.docker_ok(&["--swarm", "sd1"], &["run", "--rm", "busybox", "echo", "via manager"]).trim(), "via manager");
    phase(&mut t, "docker through the engine and the manager");

    // Re-provisioning an unchanged machine uploads nothing and restarts nothing.
    let o = cli.ok(&["provision", "sd1"]);
    assert!(!o.contains("Uploading") && !o.contains("Generating server certificate"), "{o}");
    assert_eq!(main_pids(&cli), pids, "a unit was restarted by an idempotent provision");

    // restart (generic: the services, through systemctl).
    cli.ok(&["restart", "sd1"]);
    let after = main_pids(&cli);
    assert!(after.iter().zip(&pids).all(|(a, b)| a != b), "not every unit restarted: {pids:?} -> {after:?}");
    assert_eq!(ssh(&cli, "sd1", &format!("systemctl is-active {}", UNITS.join(" "))), "active\nactive\nactive\n");
    assert_eq!(cli.docker_ok(&["sd1"], &["run", "--rm", "busybox", "echo", "after restart"]).trim(), "after restart");
    phase(&mut t, "provision + restart");

    // regenerate-certs: a new server certificate, the engine restarted by systemd with it.
    let cert = || std::fs::read(cli.store().join("machines/sd1/server.pem")).expect("server.pem");
    let before = cert();
    let pids = main_pids(&cli);
    cli.ok(&["regenerate-certs", "-f", "sd1"]);
    assert_ne!(cert(), before);
    let after = main_pids(&cli);
    assert_ne!(after[0], pids[0], "engine not restarted after regenerate-certs");
    assert_eq!(ssh(&cli, "sd1", "cat /etc/flotilla/server.pem").as_bytes(), &cert()[..]);
    assert_eq!(cli.docker_ok(&["sd1"], &["run", "--rm", "busybox", "echo", "new certs"]).trim(), "new certs");

    // upgrade to another build of swarm: uploaded, and the units restarted by systemctl.
    let newer = cli.dir.path().join("swarm-newer");
    let mut bin = std::fs::read(swarm()).expect("swarm binary");
    bin.extend_from_slice(b"\0flotilla-upgrade-test\0");
    std::fs::write(&newer, &bin).expect("write");
    std::fs::set_permissions(&newer, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let pids = main_pids(&cli);
    let o = cli.machine_swarm_bin(&newer.display().to_string(), &["upgrade", "sd1"], None, &[]);
    assert!(o.success(), "{o}");
    let want = String::from_utf8_lossy(&Command::new("sha256sum").arg(&newer).output().expect("sha256sum").stdout)
        .split(' ')
        .next()
        .unwrap_or("")
        .to_string();
    assert!(ssh(&cli, "sd1", "sha256sum /usr/local/bin/swarm").starts_with(&want));
    let after = main_pids(&cli);
    assert!(after.iter().zip(&pids).all(|(a, b)| a != b), "upgrade did not restart every unit: {pids:?} -> {after:?}");
    assert_eq!(cli.docker_ok(&["sd1"], &["run", "--rm", "busybox", "echo", "upgraded"]).trim(), "upgraded");
    phase(&mut t, "regenerate-certs + upgrade");

    // A reboot of the host: systemd starts the enabled units again; images survive.
    let boot_id = || cli.machine(&["ssh", "sd1", "cat /proc/sys/kernel/random/boot_id"]).stdout.trim().to_string();
    let first = boot_id();
    assert!(!first.is_empty());
    let _ = cli.machine(&["ssh", "sd1", "reboot"]);
    assert!(
        testground::wait_until(Duration::from_secs(90), || !matches!(boot_id().as_str(), "" | "?") && boot_id() != first),
        "host did not reboot; console:\n{}",
        host.console()
    );
    assert_eq!(host.boots(), 2);
    assert!(
        testground::wait_until(Duration::from_secs(60), || cli.docker(&["sd1"], &["version"]).success()),
        "engine not back after the reboot: {}",
        cli.machine(&["ssh", "sd1", "systemctl status --no-pager flotilla-engine; journalctl -b -u flotilla-engine --no-pager -n 30"])
    );
    assert_eq!(ssh(&cli, "sd1", &format!("systemctl is-active {}", UNITS.join(" "))), "active\nactive\nactive\n");
    assert_eq!(cli.docker_ok(&["sd1"], &["run", "--rm", "busybox", "echo", "after reboot"]).trim(), "after reboot");
    let ls = cli.ok(&["ls"]);
    assert_eq!(ls_row(&ls, "sd1")[3], "Running", "{ls}");
    phase(&mut t, "reboot");

    scp_delta_checks(&cli, "sd1");
    // Without rsync on the host: a clear error instead of rsync's "connection unexpectedly closed".
    ssh(&cli, "sd1", "mv /usr/bin/rsync /usr/bin/rsync.off");
    let o = cli.machine(&["scp", "--delta", "/etc/hostname", "sd1:/tmp/x"]);
    assert_eq!(o.code(), 1, "{o}");
    assert!(o.stderr.contains("needs rsync on machine \"sd1\" too, which is not installed there"), "{o}");
    ssh(&cli, "sd1", "mv /usr/bin/rsync.off /usr/bin/rsync");
    phase(&mut t, "scp --delta");

    // rm: units stopped, disabled and removed.
    let engine = main_pids(&cli)[0].clone();
    cli.ok(&["rm", "-y", "sd1"]);
    let o = Command::new("ssh")
        .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=quiet", "-i", &k, &format!("root@{ip}")])
        .arg(format!(
            "systemctl list-unit-files {u} --no-legend | wc -l; systemctl show -p LoadState --value {u}; ls /etc/flotilla 2>/dev/null | wc -l; kill -0 {engine} 2>/dev/null && echo engine-alive; true",
            u = UNITS.join(" ")
        ))
        .output()
        .expect("ssh");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().filter(|l| !l.is_empty()).collect::<Vec<_>>(),
        ["0", "not-found", "not-found", "not-found", "0"],
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    drop(ts);
    drop(host);
    drop(net);
    phase(&mut t, "rm + teardown");
}

/// `machine scp --delta` both ways with `name` (a directory, then a changed file: only what
/// changed is written again), and its refusal between two machines.
fn scp_delta_checks(cli: &Cli, name: &str) {
    let src = cli.dir.path().join("tree");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    std::fs::write(src.join("a.txt"), "first\n").expect("write");
    std::fs::write(src.join("sub/b.txt"), "unchanged\n").expect("write");
    // Unique: a netns host shares this machine's /tmp.
    let dir = format!("/tmp/flm-delta-{}", std::process::id());
    let dst = format!("{name}:{dir}/");
    ssh(cli, name, &format!("rm -rf {dir}; mkdir -p {dir}"));
    cli.ok(&["scp", "-r", "--delta", "-q", &src.display().to_string(), &dst]);
    assert_eq!(ssh(cli, name, &format!("cat {dir}/tree/a.txt {dir}/tree/sub/b.txt")), "first\nunchanged\n");
    let inodes =
        || ssh(cli, name, &format!("stat -c %i {dir}/tree/a.txt {dir}/tree/sub/b.txt")).lines().map(String::from).collect::<Vec<_>>();
    let before = inodes();
    std::fs::write(src.join("a.txt"), "second, longer\n").expect("write");
    let o = cli.ok(&["scp", "-r", "--delta", &src.display().to_string(), &dst]);
    assert!(o.contains("a.txt") && !o.contains("b.txt"), "rsync sent unchanged files:\n{o}");
    let after = inodes();
    assert_eq!(ssh(cli, name, &format!("cat {dir}/tree/a.txt")).trim(), "second, longer");
    assert!(after[0] != before[0] && after[1] == before[1], "{before:?} -> {after:?}");
    // Back from the machine.
    let back = cli.dir.path().join("back.txt");
    cli.ok(&["scp", "--delta", &format!("{name}:{dir}/tree/a.txt"), &back.display().to_string()]);
    assert_eq!(std::fs::read_to_string(&back).expect("read"), "second, longer\n");
    let o = cli.machine(&["scp", "--delta", &format!("{name}:{dir}/tree/a.txt"), &format!("{name}:{dir}/c.txt")]);
    assert_eq!(o.code(), 1, "{o}");
    assert!(o.stderr.contains("rsync cannot copy between two remote hosts"), "{o}");
    ssh(cli, name, &format!("rm -rf {dir}"));
}

/// `scp --delta` with a network-namespace host (the hosts share this machine's /usr, so they
/// see its rsync).
#[test]
fn scp_delta_with_a_netns_host() {
    require_root!();
    let cli = Cli::new();
    let (key, pubk) = keypair(cli.dir.path(), "id_test");
    let net = Net::new();
    let h = net.host("h1", &pubk);
    let (ip, k, cg) = (h.ip(), key.display().to_string(), h.cgroup_opt());
    let o = cli.machine(&["create", "-d", "generic", "--generic-ip-address", &ip, "--generic-ssh-key", &k, "--engine-opt", &cg, "nd1"]);
    assert!(o.success(), "{o}\nhost log:\n{}", h.log());
    scp_delta_checks(&cli, "nd1");
    cli.ok(&["rm", "-y", "nd1"]);
}
