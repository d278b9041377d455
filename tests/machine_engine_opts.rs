//! `machine create` engine options: `--engine-opt` is checked by the engine's own parser before
//! anything is provisioned (a bad option leaves the host and the store untouched), good ones
//! reach the engine.
mod machine_support;
use machine_support::*;
use std::process::Command;

/// Plain OpenSSH to a test host, bypassing machine.
fn raw_ssh(key: &std::path::Path, ip: &str, cmd: &str) -> String {
    let o = Command::new("ssh")
        .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=quiet", "-i"])
        .arg(key)
        .arg(format!("root@{ip}"))
        .arg(cmd)
        .output()
        .expect("ssh");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The running engine's command line on the host, one argument per line.
fn engine_cmdline(key: &std::path::Path, ip: &str) -> String {
    raw_ssh(key, ip, "tr '\\0' '\\n' < /proc/$(cat /run/flotilla/engine.pid)/cmdline")
}

#[test]
fn engine_options_checked_before_provisioning() {
    require_root!();
    let cli = Cli::new();
    let (key, pubk) = keypair(cli.dir.path(), "id_test");
    let net = Net::new();
    let h = net.host("eo", &pubk);
    let (ip, cg, k) = (h.ip(), h.cgroup_opt(), key.display().to_string());
    let base = ["create", "-d", "generic", "--generic-ip-address", &ip, "--generic-ssh-key", &k, "--engine-opt", &cg];
    fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        a.push("m1");
        a
    }

    // Refused by the engine's parser, naming the option; nothing created, nothing on the host.
    let cases: [(&[&str], &str); 3] = [
        (&["--engine-opt", "bogus=1"], "unexpected argument '--bogus' found"),
        (&["--engine-opt", "storage-driver=zfs"], "--storage-driver \"zfs\""),
        (&["--engine-opt", "log-driver=none", "--engine-opt", "default-ulimit=nofile=lots"], "--default-ulimit"),
    ];
    for (extra, want) in cases {
        let o = cli.machine(&with(&base, extra));
        assert_eq!(o.code(), 1, "{extra:?}:\n{o}");
        assert!(o.stderr.contains("Error creating machine: invalid engine option: ") && o.stderr.contains(want), "{extra:?}:\n{o}");
        assert!(!o.stdout.contains("Running pre-create checks"), "{extra:?} got as far as the pre-create check:\n{o}");
        assert!(!cli.store().join("machines/m1").exists(), "{extra:?} left a machine directory");
    }
    assert_eq!(raw_ssh(&key, &ip, "ls /etc/flotilla /usr/local/bin/swarm 2>/dev/null | wc -l").trim(), "0", "something was installed");
    assert_eq!(raw_ssh(&key, &ip, "hostname").trim(), "eo-base", "the host was renamed");

    // Accepted options reach the engine: no logs kept, and containers still run.
    let o = cli.machine(&with(&base, &["--engine-opt", "log-driver=none", "--engine-storage-driver", "overlay2"]));
    assert!(o.success(), "{o}\nhost log:\n{}", h.log());
    let cmdline = engine_cmdline(&key, &ip);
    assert!(cmdline.contains("\n--log-driver=none\n") && cmdline.contains("\n--storage-driver\noverlay2\n"), "{cmdline}");
    assert_eq!(cli.docker_ok(&["m1"], &["info", "--format", "{{.LoggingDriver}} {{.Driver}}"]).trim(), "none overlay2");
    cli.load_busybox("m1");
    assert_eq!(cli.docker_ok(&["m1"], &["run", "--rm", "busybox", "echo", "no logs kept"]).trim(), "no logs kept");
    let id = cli.docker_ok(&["m1"], &["run", "-d", "busybox", "true"]);
    assert_eq!(cli.docker_ok(&["m1"], &["inspect", "--format", "{{.HostConfig.LogConfig.Type}}", id.trim()]).trim(), "none");

    // An option edited into config.json later is refused by `provision` before it touches the host.
    let cfg_path = cli.store().join("machines/m1/config.json");
    let cfg = std::fs::read_to_string(&cfg_path).expect("config");
    std::fs::write(&cfg_path, cfg.replace("\"log-driver=none\"", "\"log-driver=none\", \"no-such-flag\"")).expect("write");
    let before = engine_cmdline(&key, &ip);
    let o = cli.machine(&["provision", "m1"]);
    assert!(!o.success() && o.stderr.contains("unexpected argument '--no-such-flag' found"), "{o}");
    assert_eq!(engine_cmdline(&key, &ip), before);
    std::fs::write(&cfg_path, cfg).expect("write");
    cli.ok(&["rm", "-y", "m1"]);
}
