//! SSH host keys of machines: trusted on first use and recorded in the machine's store; a
//! replaced key stops every command that would log in (ssh, scp, provision, regenerate-certs)
//! with both fingerprints; `regenerate-certs --reset-host-key` trusts the new key. Keys and
//! certificates in the store are 0600.
mod machine_support;
use machine_support::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `SHA256:…` of a public key file, as `ssh-keygen -l` prints it.
fn fingerprint(pubkey: &Path) -> String {
    let o = Command::new("ssh-keygen").arg("-lf").arg(pubkey).output().expect("ssh-keygen");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).split_whitespace().nth(1).expect("fingerprint").to_string()
}

/// The key `ip` presents (`ssh-keyscan`), as `TYPE BASE64`.
fn scanned_key(ip: &str) -> String {
    let o = Command::new("ssh-keyscan").args(["-T", "3", "-t", "ed25519", ip]).output().expect("ssh-keyscan");
    String::from_utf8_lossy(&o.stdout).lines().find_map(|l| l.split_once(' ').map(|(_, k)| k.trim().to_string())).unwrap_or_default()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

#[test]
fn host_key_trusted_on_first_use_then_pinned() {
    require_root!();
    let cli = Cli::new();
    let (key, pubk) = keypair(cli.dir.path(), "id_test");
    let net = Net::new();
    let h = net.host("hk", &pubk);
    let (ip, cg, k) = (h.ip(), h.cgroup_opt(), key.display().to_string());
    let host_key = h.ns.dir.join("ssh/host_ed25519");
    let host_pub = h.ns.dir.join("ssh/host_ed25519.pub");
    let old_fp = fingerprint(&host_pub);

    let o = cli.machine(&["create", "-d", "generic", "--generic-ip-address", &ip, "--generic-ssh-key", &k, "--engine-opt", &cg, "m1"]);
    assert!(o.success(), "{o}\nhost log:\n{}", h.log());
    assert!(o.stdout.contains(&format!("Trusting the SSH host key of \"m1\" on first use: ED25519 key {old_fp}")), "{o}");
    let dir = cli.store().join("machines/m1");
    let kh = dir.join("known_hosts");
    let pub_text = std::fs::read_to_string(&host_pub).expect("host pub");
    let host_pub_key: String = pub_text.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    assert_eq!(std::fs::read_to_string(&kh).expect("known_hosts"), format!("{ip} {host_pub_key}\n"));

    // Keys, certificates and the record are the owner's only.
    for f in ["known_hosts", "config.json", "ca.pem", "cert.pem", "key.pem", "server.pem", "server-key.pem", "id_test"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "machines/m1/{f}");
    }
    for f in ["ca.pem", "ca-key.pem", "cert.pem", "key.pem"] {
        assert_eq!(mode(&cli.store().join("certs").join(f)), 0o600, "certs/{f}");
    }
    assert_eq!(cli.ok(&["ssh", "m1", "echo", "ok"]), "ok\n");
    let payload = cli.dir.path().join("payload.txt");
    std::fs::write(&payload, "x\n").expect("write");
    cli.ok(&["scp", &payload.display().to_string(), "m1:/tmp/payload.txt"]);

    // The host gets a new key (reinstalled, or someone else answers at its address).
    std::fs::remove_file(&host_key).expect("rm key");
    std::fs::remove_file(&host_pub).expect("rm pub");
    let g = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&host_key).output().expect("ssh-keygen");
    assert!(g.status.success());
    let new_fp = fingerprint(&host_pub);
    assert_ne!(new_fp, old_fp);
    let sshd = h.ns.pid().expect("sshd pid");
    // SAFETY: signalling the test host's sshd (it re-executes itself and loads the new key).
    assert_eq!(unsafe { libc::kill(sshd, libc::SIGHUP) }, 0);
    let new_pub: String = std::fs::read_to_string(&host_pub).expect("pub").split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    assert!(testground::wait_until(Duration::from_secs(10), || scanned_key(&ip) == new_pub), "sshd did not pick up the new key");

    // Every command that logs in stops, naming both fingerprints.
    let remote = "m1:/tmp/payload2.txt".to_string();
    let cmds: Vec<Vec<&str>> = vec![
        vec!["ssh", "m1", "true"],
        vec!["--native-ssh", "ssh", "m1", "true"],
        vec!["scp", payload.to_str().expect("utf8"), &remote],
        vec!["provision", "m1"],
        vec!["regenerate-certs", "-f", "m1"],
    ];
    for c in &cmds {
        let o = cli.machine(c);
        assert!(!o.success(), "{c:?} worked with a changed host key:\n{o}");
        assert!(o.stderr.contains(&format!("presented ED25519 key {new_fp}, but ED25519 key {old_fp} was recorded")), "{c:?}:\n{o}");
        assert!(o.stderr.contains("regenerate-certs --reset-host-key m1"), "{c:?}:\n{o}");
    }
    assert_eq!(std::fs::read_to_string(&kh).expect("known_hosts"), format!("{ip} {host_pub_key}\n"), "the record changed");

    // The user trusts the new key.
    let o = cli.machine(&["regenerate-certs", "-f", "--reset-host-key", "m1"]);
    assert!(o.success(), "{o}");
    assert!(o.stdout.contains(&format!("Forgetting the recorded SSH host key of \"m1\": ED25519 key {old_fp}")), "{o}");
    assert!(o.stderr.contains(&format!("Trusting the SSH host key of \"m1\" on first use: ED25519 key {new_fp}")), "{o}");
    assert_eq!(std::fs::read_to_string(&kh).expect("known_hosts"), format!("{ip} {new_pub}\n"));
    assert_eq!(mode(&kh), 0o600);
    assert_eq!(cli.ok(&["ssh", "m1", "echo", "again"]), "again\n");
    cli.ok(&["scp", &payload.display().to_string(), &remote]);
    assert!(cli.docker(&["m1"], &["version"]).success());
    for f in ["server.pem", "server-key.pem"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "machines/m1/{f} after regenerate-certs");
    }

    // rm forgets the machine and its record.
    cli.ok(&["rm", "-y", "m1"]);
    assert!(!kh.exists());
}
