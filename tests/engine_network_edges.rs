//! Network API edges clients trip on: names with spaces, IPAM configs dockerd accepts (overlap
//! checked against this engine's own networks only), and `--mac-address`.
mod common;
use common::*;

#[test]
fn network_names_may_contain_spaces() {
    require_root!();
    let e = engine_with_busybox();
    let name = format!("my net {}", e.unique("sp"));
    e.docker_ok(&["network", "create", &name]);
    assert_eq!(e.docker_ok(&["network", "inspect", "-f", "{{.Name}}", &name]).trim(), name);
    assert!(e.docker_ok(&["network", "ls", "--format", "{{.Name}}"]).lines().any(|l| l == name));
    let out = e.docker_ok(&["run", "--rm", "--network", &name, "busybox", "sh", "-c", "ip -o -4 addr show eth0 | wc -l"]);
    assert_eq!(out.trim(), "1");
    e.docker_ok(&["network", "rm", &name]);
    let o = e.docker(&["network", "create", "   "]);
    assert!(!o.success(), "{o}");
}

#[test]
fn ipam_configs_dockerd_accepts() {
    require_root!();
    let a = engine();
    let b = engine_with_busybox();
    // Another engine's bridge subnet is not ours: dockerd checks its own networks only.
    let theirs = a.subnet();
    let n1 = b.unique("ipam1");
    b.docker_ok(&["network", "create", "--ipam-driver", "default", "--subnet", &theirs, &n1]);
    assert_eq!(b.docker_ok(&["network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", &n1]).trim(), theirs);
    // Subnet, range and gateway together; the container gets an address of the range.
    let n2 = b.unique("ipam2");
    let (subnet, range, gw) = ("10.231.0.0/16", "10.231.5.0/24", "10.231.0.254");
    b.docker_ok(&["network", "create", "--subnet", subnet, "--ip-range", range, "--gateway", gw, &n2]);
    let ip = b.docker_ok(&["run", "--rm", "--network", &n2, "busybox", "sh", "-c", "ip -o -4 addr show eth0 | awk '{print $4}'"]);
    assert!(ip.trim().starts_with("10.231.5."), "{ip}");
    assert_eq!(b.docker_ok(&["network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", &n2]).trim(), gw);
    // Overlap with one of this engine's own networks is refused, as dockerd does.
    let o = b.docker(&["network", "create", "--subnet", "10.231.7.0/24", &b.unique("ipam3")]);
    assert!(!o.success() && o.stderr.contains("overlaps"), "{o}");
    // What the default IPAM driver cannot do is refused by name, and leaves nothing behind.
    let o = b.docker(&["network", "create", "--ipam-driver", "dhcp", &b.unique("ipam4")]);
    assert!(!o.success() && o.stderr.contains("dhcp"), "{o}");
    let o = b.docker(&["network", "create", "--subnet", "10.232.0.0/24", "--aux-address", "r=10.232.0.9", &b.unique("ipam5")]);
    assert!(!o.success() && o.stderr.contains("aux"), "{o}");
    let o = b.docker(&["network", "create", "--ipam-opt", "k=v", &b.unique("ipam6")]);
    assert!(!o.success() && o.stderr.contains("\"k\""), "{o}");
    let left: Vec<String> = lines(&b.docker_ok(&["network", "ls", "--format", "{{.Name}}"]));
    assert!(!left.iter().any(|n| n.contains("ipam4") || n.contains("ipam5") || n.contains("ipam6")), "{left:?}");
    b.docker_ok(&["network", "rm", &n1, &n2]);
}

/// The docker 20.10 CLI (Debian's docker.io): docker 28 refuses `--mac-address` against an
/// API 1.41 daemon on its own side ("requires API version 1.44"), whatever the daemon does.
fn docker_2010(e: &Engine, args: &[&str]) -> testground::Output {
    let mut c = std::process::Command::new("/usr/bin/docker");
    c.envs(e.docker_env()).args(args);
    testground::cmd::run(&mut c, None, std::time::Duration::from_secs(60))
}

#[test]
fn mac_address_is_applied() {
    require_root!();
    if !std::path::Path::new("/usr/bin/docker").exists() {
        eprintln!("skipped: no docker 20.10 CLI at /usr/bin/docker");
        return;
    }
    let e = engine_with_busybox();
    let mac = "02:42:ac:1f:00:99";
    let o = docker_2010(&e, &["run", "--rm", "--mac-address", mac, "busybox", "cat", "/sys/class/net/eth0/address"]);
    assert!(o.success() && o.stdout.trim() == mac, "{o}");
    let net = e.unique("macnet");
    e.docker_ok(&["network", "create", &net]);
    let name = e.unique("mac");
    let mac2 = "02:42:0a:00:00:42";
    let o = docker_2010(&e, &["run", "-d", "--name", &name, "--network", &net, "--mac-address", mac2, "busybox", "sleep", "60"]);
    assert!(o.success(), "{o}");
    assert_eq!(e.docker_ok(&["exec", &name, "cat", "/sys/class/net/eth0/address"]).trim(), mac2);
    let shown = inspect(&e, &name, &format!("{{{{(index .NetworkSettings.Networks \"{net}\").MacAddress}}}}"));
    assert_eq!(shown, mac2);
    e.docker_ok(&["rm", "-f", &name]);
    e.docker_ok(&["network", "rm", &net]);
    let o = docker_2010(&e, &["run", "--rm", "--mac-address", "not-a-mac", "busybox", "true"]);
    assert!(!o.success(), "{o}");
}
