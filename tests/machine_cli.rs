//! `machine` without hosts: the `none` driver, the store, messages and exit codes, formats,
//! and parallel creates sharing one CA (Docker Machine races there, its issue #3634).
mod machine_support;
use machine_support::*;
use std::process::Command;

#[test]
fn none_driver_store_and_messages() {
    let cli = Cli::new();
    let o = cli.machine(&["create", "-d", "none", "--url", "tcp://127.0.0.1:9", "--engine-label", "zone=eu", "n1"]);
    assert!(o.success(), "{o}");
    assert!(o.stdout.contains("Creating CA: ") && o.stdout.contains("Running pre-create checks..."), "{o}");
    // Same name twice: Docker Machine's message, exit 1.
    let o = cli.machine(&["create", "-d", "none", "--url", "tcp://127.0.0.1:9", "n1"]);
    assert_eq!((o.code(), o.stderr.trim()), (1, "Docker machine \"n1\" already exists"), "{o}");
    // config.json in Docker Machine's v3 names.
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(cli.store().join("machines/n1/config.json")).unwrap()).unwrap();
    assert_eq!(cfg["ConfigVersion"], 3);
    assert_eq!(cfg["DriverName"], "none");
    assert_eq!(cfg["Driver"]["URL"], "tcp://127.0.0.1:9");
    assert_eq!(cfg["HostOptions"]["EngineOptions"]["Labels"][0], "zone=eu");
    assert!(cfg["HostOptions"]["AuthOptions"]["CaCertPath"].as_str().unwrap().ends_with("/certs/ca.pem"));
    for f in ["ca.pem", "cert.pem", "key.pem"] {
        assert!(cli.store().join("machines/n1").join(f).is_file(), "{f} copy missing");
    }
    // inspect -f over the record.
    assert_eq!(
        cli.ok(&["inspect", "-f", "{{.Driver.IPAddress}} {{.DriverName}} {{json .HostOptions.EngineOptions.Labels}}", "n1"]).trim(),
        "127.0.0.1:9 none [\"zone=eu\"]"
    );
    assert_eq!(cli.ok(&["ip", "n1"]).trim(), "127.0.0.1:9");
    assert_eq!(cli.ok(&["url", "n1"]).trim(), "tcp://127.0.0.1:9");
    assert_eq!(cli.ok(&["status", "n1"]).trim(), "Running");
    // ls: header, row, -q, filters, formats.
    let ls = cli.ok(&["ls"]);
    assert!(ls.starts_with("NAME   ACTIVE   DRIVER   STATE     URL"), "{ls}");
    assert_eq!(ls_row(&ls, "n1")[..4], ["n1", "-", "none", "Running"]);
    assert_eq!(cli.ok(&["ls", "-q"]), "n1\n");
    assert_eq!(cli.ok(&["ls", "-q", "--filter", "driver=generic"]), "");
    assert_eq!(cli.ok(&["ls", "-q", "--filter", "label=zone=eu", "--filter", "name=^n"]), "n1\n");
    assert_eq!(cli.ok(&["ls", "--format", "{{.Name}}: {{.DriverName}}"]), "n1: none\n");
    assert_eq!(cli.ok(&["ls", "--format", "table {{.Name}}\\t{{.State}}"]), "NAME   STATE\nn1     Running\n");
    let o = cli.machine(&["ls", "--filter", "foo=bar"]);
    assert_eq!((o.code(), o.stderr.trim()), (1, "Unsupported filter key 'foo'"));
    // env demands a TLS handshake: nothing listens there.
    let o = cli.machine(&["env", "n1"]);
    assert_eq!(o.code(), 1);
    assert!(o.stdout.is_empty() && o.stderr.starts_with("Error checking TLS connection: "), "{o}");
    // none hosts cannot be stopped.
    let o = cli.machine(&["stop", "n1"]);
    assert!(o.stderr.contains("hosts without a driver cannot be stopped"), "{o}");
    // env -u needs no machine.
    let o = cli.ok(&["env", "-u"]);
    assert!(o.starts_with("unset DOCKER_TLS_VERIFY\nunset DOCKER_HOST\n"), "{o}");
    let o = cli.ok(&["env", "-u", "--shell", "fish"]);
    assert!(o.starts_with("set -e DOCKER_TLS_VERIFY;\n"), "{o}");
    // rm: prompt answered no keeps it; -y removes; removing again names it missing.
    let o = cli.machine_with(&["rm", "n1"], Some(b"n\n"), &[]);
    assert!(o.success() && o.stderr.contains("Are you sure? (y/n): "), "{o}");
    assert!(cli.store().join("machines/n1").is_dir());
    assert!(cli.ok(&["rm", "-y", "n1"]).contains("Successfully removed n1"));
    let o = cli.machine(&["rm", "-y", "n1"]);
    assert!(o.stderr.contains("Error removing host \"n1\": Docker machine \"n1\" does not exist."), "{o}");
}

#[test]
fn names_flags_and_exit_codes() {
    let cli = Cli::new();
    let o = cli.machine(&["create", "-d", "none", "--url", "tcp://127.0.0.1:9", "bad_name"]);
    assert_eq!(
        (o.code(), o.stderr.trim()),
        (1, "Error creating machine: Invalid hostname specified. Allowed hostname chars are: 0-9a-zA-Z . -")
    );
    let o = cli.machine(&["create", "-d", "none", "n2"]);
    assert_eq!((o.code(), o.stderr.trim()), (1, "--url option is required when no driver is selected"));
    let o = cli.machine(&["create", "-d", "generic", "g1"]);
    assert_eq!(o.stderr.trim(), "generic driver requires the --generic-ip-address option");
    // Pre-create check failures exit with 3 and leave nothing behind.
    let o = cli.machine(&["create", "-d", "generic", "--generic-ip-address", "127.0.0.1", "--generic-ssh-key", "/nonexistent/key", "g1"]);
    assert_eq!((o.code(), o.stderr.trim()), (3, "Error with pre-create check: \"SSH key does not exist: \"/nonexistent/key\"\""), "{o}");
    let o = cli.machine(&["create", "-d", "generic", "--generic-ip-address", "127.0.0.1", "--generic-ssh-port", "1", "g1"]);
    assert_eq!(o.code(), 3, "{o}");
    assert!(!cli.store().join("machines/g1").exists());
    let o = cli.machine(&["create", "-d", "virtualbox", "v1"]);
    assert!(o.stderr.contains("Driver \"virtualbox\" not found."), "{o}");
    let o = cli.machine(&["frobnicate"]);
    assert_eq!((o.code(), o.stderr.trim()), (1, "machine: 'frobnicate' is not a machine command. See 'machine --help'."));
    let o = cli.machine(&["inspect", "nope"]);
    assert_eq!(
        o.stderr.trim(),
        "Docker machine \"nope\" does not exist. Use \"machine ls\" to list machines. Use \"machine create\" to add a new one."
    );
    let o = cli.machine(&["url"]);
    assert_eq!(o.stderr.trim(), "Error: No machine name(s) specified and no \"default\" machine exists");
    let o = cli.machine(&["env", "-u", "m1"]);
    assert_eq!(o.stderr.trim(), "Error: Expected no machine name when the -u flag is present");
    assert!(cli.ok(&["version"]).starts_with("machine version ") || cli.ok(&["version"]).contains(" version "));
    // A create that died half-way shows as an Error with the reason, not as a working machine.
    cli.ok(&["create", "-d", "none", "--url", "tcp://127.0.0.1:9", "half"]);
    std::fs::write(cli.store().join("machines/half/.creating"), "999999999").unwrap();
    let r = ls_row(&cli.ok(&["ls"]), "half");
    assert_eq!(r[..4], ["half", "-", "none", "Error"], "{r:?}");
    assert!(r.join(" ").contains("machine creation was interrupted"), "{r:?}");
    cli.ok(&["rm", "-f", "-y", "half"]);
    // `default` is used when no name is given.
    cli.ok(&["create", "-d", "none", "--url", "tcp://127.0.0.1:9", "default"]);
    assert_eq!(cli.ok(&["url"]).trim(), "tcp://127.0.0.1:9");
}

#[test]
fn parallel_creates_share_one_ca() {
    // Three processes at once (GitLab-runner autoscaling style).
    let cli2 = Cli::new();
    let store = cli2.store();
    let outs: Vec<std::process::Output> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|i| {
                let store = store.clone();
                s.spawn(move || {
                    Command::new(MACHINE)
                        .arg("-s")
                        .arg(&store)
                        .args(["create", "-d", "none", "--url", &format!("tcp://127.0.0.1:{}", 9000 + i), &format!("p{i}")])
                        .output()
                        .expect("spawn")
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("join")).collect()
    });
    for o in &outs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let created = outs.iter().filter(|o| String::from_utf8_lossy(&o.stdout).contains("Creating CA:")).count();
    assert_eq!(created, 1, "exactly one process creates the CA");
    let v = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(store.join("certs/ca.pem"))
        .arg(store.join("certs/cert.pem"))
        .output()
        .expect("openssl");
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    // One command creates several machines in parallel with --also.
    let o = cli2.machine(&["create", "-d", "none", "--url", "tcp://127.0.0.1:9100", "--also", "q2", "--also", "q3", "q1"]);
    assert!(o.success(), "{o}");
    assert!(o.stdout.contains("[q2] Running pre-create checks..."), "{o}");
    assert_eq!(cli2.ok(&["ls", "-q"]), "p0\np1\np2\nq1\nq2\nq3\n");
}

#[test]
fn command_line_like_docker_machine() {
    let cli = Cli::new();
    // No arguments: the help, exit 0.
    let o = cli.machine(&[]);
    assert!(o.success() && o.stdout.contains("Usage: machine") && o.stdout.contains("create"), "{o}");
    let want = format!("machine version {}, build flotilla\n", env!("CARGO_PKG_VERSION"));
    for v in ["-v", "--version"] {
        let o = cli.machine(&[v]);
        assert!(o.success() && o.stdout == want, "{v}: {o}");
    }
    // create without a name: create's help, then the error.
    for args in [&["create"][..], &["create", "-d", "none"]] {
        let o = cli.machine(args);
        assert_eq!((o.code(), o.stderr.trim()), (1, "Error: No machine name specified"), "{args:?}: {o}");
        assert!(o.stdout.contains("--driver"), "{o}");
    }
    // A second name is an error, not a second machine.
    let o = cli.machine(&["create", "-d", "none", "--url", "tcp://127.0.0.1:9", "a", "b"]);
    assert_eq!((o.code(), o.stderr.trim()), (1, "Invalid command line. Found extra arguments [b]"), "{o}");
    let o = cli.machine(&["create", "-d", "none", "--url", "tcp://127.0.0.1:9", "a", "b", "c"]);
    assert_eq!(o.stderr.trim(), "Invalid command line. Found extra arguments [b c]", "{o}");
    assert_eq!(cli.ok(&["ls", "-q"]), "");
    let o = cli.machine(&["create", "-d", "none", "--url", "tcp://127.0.0.1:9", "--also", "b"]);
    assert_eq!(o.stderr.trim(), "Error: No machine name specified", "{o}");

    // Run as docker-machine, it names itself so.
    let dm = cli.dir.path().join("docker-machine");
    std::os::unix::fs::symlink(MACHINE, &dm).unwrap();
    let run = |args: &[&str]| {
        let o = Command::new(&dm).arg("-s").arg(cli.store()).args(args).output().expect("docker-machine");
        (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).trim().to_string())
    };
    let (code, _, err) = run(&["create", "-d", "bogus", "x"]);
    assert_eq!(
        (code, err.as_str()),
        (Some(1), "Driver \"bogus\" not found. Do you have the plugin binary \"docker-machine-driver-bogus\" accessible in your PATH?")
    );
    let (_, out, _) = run(&["-v"]);
    assert!(out.starts_with("docker-machine version "), "{out}");
    let (_, _, err) = run(&["frob"]);
    assert_eq!(err, "docker-machine: 'frob' is not a docker-machine command. See 'docker-machine --help'.");
    let o = cli.machine(&["create", "-d", "bogus", "x"]);
    assert!(o.stderr.contains("\"machine-driver-bogus\""), "{o}");
}
