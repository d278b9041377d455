//! `machine create -d local`: hosts on this box (network namespaces on a machine-owned bridge,
//! private /etc, /run, /var/lib, their own sshd) created three at once, each a working engine
//! over TLS; stop/start/kill/restart/rm, with everything gone afterwards.
mod machine_support;
use machine_support::*;
use std::path::Path;

#[test]
fn local_cluster_lifecycle() {
    require_root!();
    let slot = testground::slot::Slot::acquire();
    let cli = Cli::new();
    let subnet = format!("{}0/24", slot.prefix());
    let common = ["-d", "local", "--local-bridge", &slot.bridge, "--local-subnet", &subnet];
    let mut args = vec!["create"];
    args.extend(common);
    args.extend(["--engine-label", "cluster=test", "--also", "l2", "--also", "l3", "l1"]);
    let o = cli.machine(&args);
    assert!(o.success(), "{o}");
    assert_eq!(o.stdout.matches("Docker is up and running!").count(), 3, "{o}");
    assert_eq!(o.stdout.matches("Creating CA: ").count(), 1, "{o}");
    // One CA for all three.
    let ca = |m: &str| std::fs::read(cli.store().join(format!("machines/{m}/ca.pem"))).expect("ca");
    assert!(ca("l1") == ca("l2") && ca("l2") == ca("l3"));

    let ls = cli.ok(&["ls"]);
    let ips: Vec<String> = ["l1", "l2", "l3"].iter().map(|m| cli.ok(&["ip", m]).trim().to_string()).collect();
    for (m, ip) in ["l1", "l2", "l3"].iter().zip(&ips) {
        let r = ls_row(&ls, m);
        assert_eq!(r[..5], [m.to_string(), "-".into(), "local".into(), "Running".into(), format!("tcp://{ip}:2376")], "{ls}");
        assert!(ip.starts_with(&slot.prefix()), "{ip}");
        assert_eq!(cli.ok(&["ssh", m, "hostname"]).trim(), *m);
    }
    let mut sorted = ips.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 3, "distinct addresses: {ips:?}");

    // Each host is private: a file written in one /etc is not seen by the others or by us.
    cli.ok(&["ssh", "l1", "echo l1 > /etc/flotilla/marker"]);
    assert_eq!(cli.machine(&["ssh", "l2", "cat /etc/flotilla/marker"]).code(), 1);
    assert!(!Path::new("/etc/flotilla/marker").exists());

    // Docker over TLS on every host; hosts reach each other.
    for m in ["l1", "l2", "l3"] {
        cli.load_busybox(m);
        assert_eq!(cli.docker_ok(&[m], &["run", "--rm", "busybox", "hostname"]).len(), 13, "container hostname is its short ID");
        let info = cli.docker_ok(&[m], &["info", "--format", "{{.Name}} {{.Labels}}"]);
        assert!(info.starts_with(&format!("{m} [")) && info.contains("cluster=test"), "{info}");
    }
    let probe = format!("timeout 5 bash -c '</dev/tcp/{}/2376' && echo open || echo closed", ips[1]);
    assert_eq!(cli.ok(&["ssh", "l1", &probe]).trim(), "open", "l1 cannot reach l2's engine port");

    // stop / start: the engine comes back with its images; already-stopped is reported.
    let o = cli.ok(&["stop", "l2"]);
    assert!(o.contains("Machine \"l2\" was stopped."), "{o}");
    assert_eq!(cli.ok(&["status", "l2"]).trim(), "Stopped");
    assert_eq!(ls_row(&cli.ok(&["ls"]), "l2")[3], "Stopped");
    let o = cli.machine(&["stop", "l2"]);
    assert_eq!((o.code(), o.stderr.trim()), (1, "Machine \"l2\" is already stopped."));
    let o = cli.machine(&["url", "l2"]);
    assert_eq!(o.stderr.trim(), "Host is not running");
    let o = cli.machine(&["ssh", "l2", "true"]);
    assert_eq!(o.stderr.trim(), "Error: Cannot run SSH command: Host \"l2\" is not running");
    let o = cli.ok(&["start", "l2"]);
    assert!(o.contains("Machine \"l2\" was started.") && o.contains("may have new IP addresses"), "{o}");
    assert_eq!(cli.docker_ok(&["l2"], &["run", "--rm", "busybox", "echo", "back"]).trim(), "back");
    let o = cli.machine(&["start", "l2"]);
    assert_eq!(o.stderr.trim(), "Machine \"l2\" is already running.");

    // kill, then restart from stopped.
    let o = cli.ok(&["kill", "l3"]);
    assert!(o.contains("Machine \"l3\" was killed."), "{o}");
    assert_eq!(cli.ok(&["status", "l3"]).trim(), "Stopped");
    cli.ok(&["restart", "l3"]);
    assert_eq!(cli.docker_ok(&["l3"], &["run", "--rm", "busybox", "echo", "l3 back"]).trim(), "l3 back");

    // rm: namespace, veth, cgroups, bridge and processes all go.
    let ids: Vec<String> =
        ["l1", "l2", "l3"].iter().map(|m| cli.ok(&["inspect", "-f", "{{.Driver.HostID}}", m]).trim().to_string()).collect();
    cli.ok(&["rm", "-y", "l1", "l2", "l3"]);
    for id in &ids {
        assert!(!Path::new(&format!("/run/netns/flm-{id}")).exists(), "netns flm-{id} left");
        assert!(!Path::new(&format!("/sys/fs/cgroup/pids/flm-{id}")).exists(), "cgroup flm-{id} left");
        assert!(!Path::new(&format!("/sys/class/net/flm{id}")).exists(), "veth flm{id} left");
    }
    assert!(!Path::new(&format!("/sys/class/net/{}", slot.bridge)).exists(), "bridge left");
    assert_eq!(cli.ok(&["ls", "-q"]), "");
}
