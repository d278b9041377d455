//! `machine create` engine options: `--engine-opt` is checked by the engine's own parser before
//! anything is provisioned (a bad option leaves the host and the store untouched), good ones
//! reach the engine; `--swarm` with an etcd discovery (or `--engine-cluster-store`) gives every
//! engine a cluster store for overlay networks.
mod machine_support;
use machine_support::*;
use testground::etcd::Etcd;

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

#[test]
fn swarm_nodes_get_a_cluster_store() {
    require_root!();
    let cli = Cli::new();
    let (key, pubk) = keypair(cli.dir.path(), "id_test");
    let net = Net::new();
    let etcd = Etcd::start_on(&[&net.gateway()], None);
    let store = format!("etcd://{}/flt", etcd.endpoint());
    let (h1, h2) = (net.host("cs1", &pubk), net.host("cs2", &pubk));
    let (ip1, ip2, cg1, cg2, k) = (h1.ip(), h2.ip(), h1.cgroup_opt(), h2.cgroup_opt(), key.display().to_string());

    // m1: a swarm agent whose discovery is etcd; m2: no swarm, an explicit cluster store.
    let a1 = ["create", "-d", "generic", "--generic-ip-address", &ip1, "--generic-ssh-key", &k, "--engine-opt", &cg1];
    let mut a1 = a1.to_vec();
    a1.extend(["--swarm", "--swarm-discovery", &store, "--swarm-join-opt", "heartbeat=1s", "m1"]);
    let mut a2 = vec!["create", "-d", "generic", "--generic-ip-address", &ip2, "--generic-ssh-key", &k, "--engine-opt", &cg2];
    a2.extend(["--engine-cluster-store", &store, "m2"]);
    let (o1, o2) = std::thread::scope(|s| {
        let t1 = s.spawn(|| cli.machine(&a1));
        let t2 = s.spawn(|| cli.machine(&a2));
        (t1.join().expect("join"), t2.join().expect("join"))
    });
    assert!(o1.success(), "m1:\n{o1}\nhost log:\n{}", h1.log());
    assert!(o2.success(), "m2:\n{o2}\nhost log:\n{}", h2.log());
    for (ip, name) in [(&ip1, "m1"), (&ip2, "m2")] {
        let c = engine_cmdline(&key, ip);
        assert!(c.contains(&format!("\n--cluster-store={store}\n")), "{name}: {c}");
        assert!(c.contains(&format!("\n--cluster-advertise={ip}:2376\n")), "{name}: {c}");
    }
    assert_eq!(
        cli.ok(&["inspect", "--format", "{{.HostOptions.EngineOptions.ClusterStore}}", "m2"]).trim(),
        store,
        "--engine-cluster-store not recorded"
    );

    // The store is shared: an overlay network made on m1 is seen by m2's engine.
    cli.docker_ok(&["m1"], &["network", "create", "-d", "overlay", "--subnet", "10.231.0.0/24", "shared-ov"]);
    let ls = cli.docker_ok(&["m2"], &["network", "ls", "--filter", "name=shared-ov", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"]);
    assert_eq!(ls.trim(), "shared-ov overlay global", "m2's networks: {ls}");
    cli.docker_ok(&["m1"], &["network", "rm", "shared-ov"]);

    // A store the engine cannot use is refused before anything happens.
    let o = cli.machine(&[
        "create",
        "-d",
        "generic",
        "--generic-ip-address",
        &ip1,
        "--generic-ssh-key",
        &k,
        "--engine-cluster-store",
        "consul://10.0.0.1:8500",
        "m3",
    ]);
    assert!(!o.success() && o.stderr.contains("only etcd:// stores are supported"), "{o}");
    assert!(!cli.store().join("machines/m3").exists());
    cli.ok(&["rm", "-y", "m1", "m2"]);
}
