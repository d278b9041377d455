//! Isolation with the docker CLI: Docker's default seccomp profile in containers and their
//! exec'd processes, `--security-opt seccomp=unconfined|<file>`, refused AppArmor/SELinux
//! options, and what `docker info` says about them.
mod common;
use common::*;
use std::path::{Path, PathBuf};

/// A static program that tries add_key(2) and keyctl(2) and prints what each answered.
const KEYS_C: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
static void report(const char *what, long r) {
    printf("%s: %s\n", what, r < 0 ? strerror(errno) : "ok");
}
int main(void) {
    report("add_key", syscall(SYS_add_key, "user", "flotilla-test", "x", 1, -2));
    report("keyctl", syscall(SYS_keyctl, 0, -3, 1));
    return 0;
}
"#;

/// Builds the key probe (gcc, static) into `dir`; returns its path.
fn key_probe(dir: &Path) -> PathBuf {
    let src = dir.join("keys.c");
    let bin = dir.join("keys");
    std::fs::write(&src, KEYS_C).unwrap();
    let o = testground::cmd::run_args("gcc", &["-static", "-O1", "-o", bin.to_str().unwrap(), src.to_str().unwrap()]);
    assert!(o.success(), "gcc: {o}");
    bin
}

fn seccomp_mode(e: &Engine, args: &[&str]) -> String {
    let out = e.docker_ok(args);
    out.lines().find_map(|l| l.strip_prefix("Seccomp:")).unwrap_or_default().trim().to_string()
}

#[test]
fn default_seccomp_profile_blocks_namespaces_and_keyrings() {
    require_root!();
    let e = engine_with_busybox();
    let dir = tempfile::tempdir().unwrap();
    let probe = key_probe(dir.path());
    let bind = format!("{}:/keys:ro", probe.display());

    // A filter in the container's process and in what `docker exec` starts.
    assert_eq!(seccomp_mode(&e, &["run", "--rm", "busybox", "grep", "Seccomp", "/proc/self/status"]), "2");
    assert_eq!(seccomp_mode(&e, &["run", "--rm", "-u", "nobody", "busybox", "grep", "Seccomp", "/proc/self/status"]), "2");
    // Loading the filter leaves no capability behind: Docker's default set, no CAP_SYS_ADMIN.
    let status = e.docker_ok(&["run", "--rm", "busybox", "grep", "^Cap", "/proc/self/status"]);
    for set in ["CapPrm", "CapEff", "CapBnd"] {
        let mask = status.lines().find_map(|l| l.strip_prefix(&format!("{set}:"))).map(|m| u64::from_str_radix(m.trim(), 16).unwrap());
        assert_eq!(mask, Some(0xa80425fb), "{set} in {status}");
    }
    // The filter is loaded before the start, as runc loads it without no-new-privileges: with
    // --init, the init that Docker runs (pid 1) is under it too. With no-new-privileges it is
    // loaded just before the exec, and is there all the same, with the same capabilities.
    assert_eq!(seccomp_mode(&e, &["run", "--rm", "--init", "busybox", "grep", "Seccomp", "/proc/1/status"]), "2");
    let nnp = e.docker_ok(&[
        "run",
        "--rm",
        "--security-opt",
        "no-new-privileges",
        "busybox",
        "grep",
        "-E",
        "^(Seccomp|NoNewPrivs|CapEff):",
        "/proc/self/status",
    ]);
    let field = |k: &str| nnp.lines().find_map(|l| l.strip_prefix(k)).map(str::trim).unwrap_or_default().to_string();
    assert_eq!((field("Seccomp:"), field("NoNewPrivs:"), field("CapEff:")), ("2".into(), "1".into(), "00000000a80425fb".into()), "{nnp}");
    let c = e.unique("sc");
    e.docker_ok(&["run", "-d", "--name", &c, "busybox", "sleep", "1000"]);
    assert_eq!(seccomp_mode(&e, &["exec", &c, "grep", "Seccomp", "/proc/self/status"]), "2");
    assert_eq!(seccomp_mode(&e, &["exec", "--privileged", &c, "grep", "Seccomp", "/proc/self/status"]), "2");
    let o = e.docker(&["exec", &c, "unshare", "-U", "-r", "id"]);
    assert!(!o.success() && o.combined().contains("Operation not permitted"), "{o}");

    // New user namespaces and the kernel keyrings are refused with EPERM.
    let o = e.docker(&["run", "--rm", "busybox", "unshare", "-U", "-r", "id"]);
    assert!(!o.success() && o.combined().contains("Operation not permitted"), "{o}");
    let keys = e.docker_ok(&["run", "--rm", "-v", &bind, "busybox", "/keys"]);
    assert_eq!(lines(&keys), ["add_key: Operation not permitted", "keyctl: Operation not permitted"]);

    // seccomp=unconfined: no filter, and the same calls work.
    let unconfined = ["run", "--rm", "--security-opt", "seccomp=unconfined"];
    fn with<'a>(unconfined: &[&'a str], rest: &[&'a str]) -> Vec<&'a str> {
        unconfined.iter().chain(rest).copied().collect()
    }
    assert_eq!(seccomp_mode(&e, &with(&unconfined, &["busybox", "grep", "Seccomp", "/proc/self/status"])), "0");
    let id = e.docker_ok(&with(&unconfined, &["busybox", "unshare", "-U", "-r", "id", "-u"]));
    assert_eq!(id.trim(), "0");
    let keys = e.docker_ok(&with(&unconfined, &["-v", &bind, "busybox", "/keys"]));
    assert_eq!(lines(&keys), ["add_key: ok", "keyctl: ok"]);

    // `docker info` lists seccomp because it is applied.
    let sec = e.docker_ok(&["info", "--format", "{{json .SecurityOptions}}"]);
    assert!(sec.contains("name=seccomp,profile=default"), "{sec}");
}

#[test]
fn seccomp_profile_files_and_refused_security_options() {
    require_root!();
    let e = engine_with_busybox();
    let dir = tempfile::tempdir().unwrap();
    // A profile of the user's: everything but mkdir (the CLI sends the file's JSON).
    let profile = dir.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let o = e.docker(&["run", "--rm", "--security-opt", &opt, "busybox", "mkdir", "/made"]);
    assert!(!o.success() && o.combined().contains("Operation not permitted"), "{o}");
    // That profile allows what the default one refuses.
    let id = e.docker_ok(&["run", "--rm", "--security-opt", &opt, "busybox", "unshare", "-U", "-r", "id", "-u"]);
    assert_eq!(id.trim(), "0");

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"defaultAction": "SCMP_ACT_SOMETIMES"}"#).unwrap();
    let o = e.docker(&["create", "--security-opt", &format!("seccomp={}", bad.display()), "busybox", "true"]);
    assert!(!o.success() && o.stderr.contains("Decoding seccomp profile failed"), "{o}");

    // No AppArmor, no SELinux here: their options are refused, not ignored.
    let o = e.docker(&["create", "--security-opt", "apparmor=docker-default", "busybox", "true"]);
    assert!(!o.success() && o.stderr.contains("AppArmor"), "{o}");
    let o = e.docker(&["create", "--security-opt", "label=level:s0:c100,c200", "busybox", "true"]);
    assert!(!o.success() && o.stderr.contains("SELinux"), "{o}");
    let o = e.docker(&["create", "--security-opt", "bogus=1", "busybox", "true"]);
    assert!(!o.success() && o.stderr.contains(r#"invalid --security-opt 2: "bogus=1""#), "{o}");
    let warnings = e.docker_ok(&["info", "--format", "{{json .Warnings}}"]);
    assert!(warnings.contains("AppArmor"), "{warnings}");
}

/// Runs a command as user nobody (uid/gid 65534, no groups), as a local user would.
fn as_nobody(args: &[&str]) -> testground::cmd::Output {
    let mut a = vec!["--reuid=65534", "--regid=65534", "--clear-groups", "--"];
    a.extend_from_slice(args);
    testground::cmd::run_args("setpriv", &a)
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o7777
}

fn set_mode(p: &Path, m: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
}

#[test]
fn data_root_is_private_to_root() {
    require_root!();
    let mut e = engine_with_busybox();
    let c = e.unique("dr");
    e.docker_ok(&["run", "-d", "--name", &c, "-e", "SECRET_TOKEN=hunter2", "busybox", "sh", "-c", "echo logged-secret; sleep 1000"]);
    assert!(wait_logs(&e, &c, "logged-secret"));
    let id = inspect(&e, &c, "{{.Id}}");
    // The test's temporary parents are private themselves: open them, so only the engine's
    // own modes stand between a local user and its roots.
    let (data, exec) = (e.data_root().to_path_buf(), e.exec_root().to_path_buf());
    for root in [&data, &exec] {
        set_mode(root.parent().unwrap(), 0o755);
    }
    let ctr = data.join("containers").join(&id);
    let (record, log) = (ctr.join("config.v2.json"), ctr.join(format!("{id}-json.log")));
    let check = |e: &Engine| {
        let o = as_nobody(&["ls", data.to_str().unwrap()]);
        assert!(!o.success(), "a local user lists the data root: {o}");
        for f in [&record, &log] {
            let o = as_nobody(&["cat", f.to_str().unwrap()]);
            assert!(!o.success() && !o.stdout.contains("hunter2") && !o.stdout.contains("logged-secret"), "{o}");
        }
        let o = as_nobody(&["grep", "-r", "hunter2", exec.to_str().unwrap()]);
        assert!(!o.stdout.contains("hunter2"), "the environment is readable under the exec root: {o}");
        assert_eq!((mode(&data), mode(&exec)), (0o710, 0o700));
        for dir in ["containers", "image", "volumes"] {
            assert_eq!(mode(&data.join(dir)), 0o700, "{dir}");
        }
        assert_eq!((mode(&record), mode(&log)), (0o600, 0o600));
        // The container still runs and logs as before.
        assert!(e.docker_ok(&["logs", &c]).contains("logged-secret"));
    };
    check(&e);
    // A root left with loose modes (by an older engine) is fixed at start.
    for (p, m) in [(&data, 0o755), (&data.join("containers"), 0o755), (&record, 0o644), (&log, 0o644), (&exec, 0o755)] {
        set_mode(p, m);
    }
    e.restart();
    check(&e);
}

/// Sends TCP SYNs to `DST:PORT` as raw Ethernet frames from eth0 (source: its address, next
/// hop: the given MAC) and prints whether a SYN-ACK came back. What a container with
/// CAP_NET_RAW (Docker's default) can do.
const SYN_PROBE: &str = r#"
import os, socket, struct, sys, time
src, dst, mac, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind(("eth0", 0))
def csum(b):
    b += b"\0" * (len(b) % 2)
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff)
    return ~(t + (t >> 16)) & 0xffff
sip, dip = socket.inet_aton(src), socket.inet_aton(dst)
sport = 20000 + os.getpid() % 40000
tcp = struct.pack("!HHIIBBHHH", sport, port, 1, 0, 5 << 4, 0x02, 64240, 0, 0)
tcp = tcp[:16] + struct.pack("!H", csum(sip + dip + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)) + tcp[18:]
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, sip, dip)
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
frame = bytes.fromhex(mac.replace(":", "")) + s.getsockname()[4] + b"\x08\x00" + ip + tcp
s.settimeout(0.1)
for _ in range(6):
    s.send(frame)
    end = time.time() + 0.5
    while time.time() < end:
        try:
            pkt = s.recv(4096)
        except socket.timeout:
            continue
        h = pkt[14:]
        if pkt[12:14] != b"\x08\x00" or h[9] != 6 or h[12:16] != dip:
            continue
        t = h[(h[0] & 15) * 4:]
        if struct.unpack("!HH", t[:4]) == (port, sport) and t[13] & 0x12 == 0x12:
            print("answered")
            sys.exit(0)
print("no answer")
"#;

#[test]
fn host_loopback_is_unreachable_from_containers() {
    require_root!();
    let e = engine_with_busybox();
    let c = e.unique("lo");
    e.docker_ok(&["run", "-d", "--name", &c, "busybox", "sleep", "1000"]);
    let pid = inspect(&e, &c, "{{.State.Pid}}");
    let ip = inspect(&e, &c, "{{.NetworkSettings.IPAddress}}");
    let gateway = inspect(&e, &c, "{{.NetworkSettings.Gateway}}");
    let mac = std::fs::read_to_string(format!("/sys/class/net/{}/address", e.bridge())).unwrap();
    // A service of the host on loopback only, and one on the bridge's address (the control:
    // the probe works and the host answers on an address containers may reach).
    let lo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let br = std::net::TcpListener::bind(format!("{gateway}:0")).unwrap();
    let probe = |dst: &str, port: u16| {
        let port = port.to_string();
        let o = testground::cmd::run_args("nsenter", &["-t", &pid, "-n", "python3", "-c", SYN_PROBE, &ip, dst, mac.trim(), &port]);
        assert!(o.success(), "{o}");
        o.stdout.trim().to_string()
    };
    assert_eq!(probe(&gateway, br.local_addr().unwrap().port()), "answered");
    assert_eq!(probe("127.0.0.1", lo.local_addr().unwrap().port()), "no answer", "a container reaches the host's 127.0.0.1");
    // Published ports still answer on the host's 127.0.0.1 (DNAT through the bridge).
    let web = e.unique("lo-web");
    e.docker_ok(&["run", "-d", "--name", &web, "-p", "127.0.0.1::80", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    let port = e.docker_ok(&["port", &web, "80/tcp"]);
    let addr = port.lines().next().unwrap().trim().to_string();
    let ok = wait_until(std::time::Duration::from_secs(10), || {
        testground::cmd::run_args("curl", &["-sf", "--max-time", "2", &format!("http://{addr}/hostname")]).success()
    });
    assert!(ok, "published port {addr} does not answer");
}

#[test]
fn hostile_user_files_fail_fast_and_the_engine_keeps_answering() {
    require_root!();
    let e = engine_with_busybox();
    let c = e.unique("pw");
    e.docker_ok(&["run", "-d", "--name", &c, "busybox", "sleep", "1000"]);
    let quick = std::time::Duration::from_secs(15);
    // A FIFO at /etc/passwd: reading it would block for ever.
    e.docker_ok(&["exec", &c, "sh", "-c", "rm /etc/passwd && mkfifo /etc/passwd"]);
    let t = std::time::Instant::now();
    let o = e.docker_full(&["exec", "-u", "nobody", &c, "id"], None, quick);
    assert!(!o.success() && o.combined().contains("/etc/passwd: not a regular file"), "{o}");
    assert!(t.elapsed() < std::time::Duration::from_secs(10), "took {:?}", t.elapsed());
    // A device at /etc/group (here /dev/zero's numbers: endless) is refused unopened.
    e.docker_ok(&[
        "exec",
        &c,
        "sh",
        "-c",
        "rm -f /etc/passwd /etc/group && echo 'nobody:x:65534:65534::/:/bin/sh' > /etc/passwd && mknod /etc/group c 1 5",
    ]);
    let o = e.docker_full(&["exec", "-u", "nobody", &c, "id"], None, quick);
    assert!(!o.success() && o.combined().contains("/etc/group: not a regular file"), "{o}");
    // A link to the host's files resolves inside the container's root.
    e.docker_ok(&["exec", &c, "sh", "-c", "rm /etc/group && ln -s /../../../../../../etc/shadow /etc/group"]);
    let o = e.docker_full(&["exec", "-u", "nobody", &c, "id", "-G"], None, quick);
    assert_eq!((o.code(), o.stdout.trim()), (0, "65534"), "{o}");
    // A start as a named user reads the same files.
    let c2 = e.unique("pw2");
    e.docker_ok(&["run", "-d", "--name", &c2, "-u", "nobody", "busybox", "sleep", "1000"]);
    e.docker_ok(&["exec", "-u", "0", &c2, "sh", "-c", "rm /etc/passwd && mkfifo /etc/passwd"]);
    let t = std::time::Instant::now();
    let o = e.docker_full(&["restart", "-t", "0", &c2], None, quick);
    assert!(!o.success() && o.combined().contains("/etc/passwd: not a regular file"), "{o}");
    assert!(t.elapsed() < std::time::Duration::from_secs(10), "took {:?}", t.elapsed());
    // The engine still answers.
    assert_eq!(e.docker_ok(&["exec", &c, "echo", "alive"]).trim(), "alive");
    e.docker_ok(&["rm", "-f", &c, &c2]);
}

/// A hostile registry on 127.0.0.1: `/v2/evil` serves a manifest whose config digest is a
/// path, `/v2/endless` a manifest body that never ends. Serves until the test ends.
fn hostile_registry() -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut first = String::new();
                if r.read_line(&mut first).is_err() || !first.starts_with("GET ") {
                    return; // a TLS hello: not spoken here
                }
                let mut line = String::new();
                while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut w = conn;
                let head = |ct: &str| {
                    format!(
                        "HTTP/1.1 200 OK\r\nDocker-Distribution-Api-Version: registry/2.0\r\nContent-Type: {ct}\r\nConnection: close\r\n"
                    )
                };
                if path == "/v2/" {
                    let _ = w.write_all(format!("{}Content-Length: 2\r\n\r\n{{}}", head("application/json")).as_bytes());
                } else if path.starts_with("/v2/evil/manifests/") {
                    let m = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:../../../../../../tmp/flotilla-evil","size":2},"layers":[]}"#;
                    let ct = "application/vnd.docker.distribution.manifest.v2+json";
                    let _ = w.write_all(format!("{}Content-Length: {}\r\n\r\n{m}", head(ct), m.len()).as_bytes());
                } else if path.starts_with("/v2/endless/manifests/") {
                    let _ = w.write_all(format!("{}\r\n", head("application/vnd.docker.distribution.manifest.v2+json")).as_bytes());
                    let chunk = vec![b' '; 64 << 10];
                    while w.write_all(&chunk).is_ok() {}
                } else {
                    let _ = w.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                }
            });
        }
    });
    port
}

#[test]
fn hostile_registries_get_clear_pull_errors() {
    require_root!();
    let e = engine();
    let port = hostile_registry();
    let quick = std::time::Duration::from_secs(60);
    let o = e.docker_full(&["pull", &format!("127.0.0.1:{port}/evil:latest")], None, quick);
    assert!(!o.success() && o.combined().contains("is not sha256: followed by 64 hex characters"), "{o}");
    assert!(!std::path::Path::new("/tmp/flotilla-evil").exists());
    let o = e.docker_full(&["pull", &format!("127.0.0.1:{port}/endless:latest")], None, quick);
    assert!(!o.success() && o.combined().contains("is larger than 4194304 bytes"), "{o}");
    // The engine still answers.
    e.docker_ok(&["version"]);
}

/// An upstream DNS server on `127.99.x.y:53` that answers every A query with 10.11.12.13.
fn fake_upstream_dns() -> String {
    let ip = format!("127.99.{}.{}", std::process::id() % 250, 1 + std::process::id() / 250 % 250);
    let sock = std::net::UdpSocket::bind(format!("{ip}:53")).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let q = &buf[..n];
            let mut i = 12;
            while i < n && q[i] != 0 {
                i += q[i] as usize + 1;
            }
            if i + 5 > n {
                continue;
            }
            let is_a = q[i + 1..i + 3] == [0, 1];
            let mut r = q[..i + 5].to_vec();
            r[2..4].copy_from_slice(&[0x81, 0x80]);
            r[6..8].copy_from_slice(&[0, is_a as u8]);
            r[8..12].fill(0);
            if is_a {
                r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 11, 12, 13]);
            }
            let _ = sock.send_to(&r, peer);
        }
    });
    ip
}

#[test]
fn internal_networks_get_no_upstream_dns() {
    require_root!();
    let e = engine_with_busybox();
    let dns = fake_upstream_dns();
    let (open, internal) = (e.unique("dnsopen"), e.unique("dnsint"));
    e.docker_ok(&["network", "create", &open]);
    e.docker_ok(&["network", "create", "--internal", &internal]);
    let lookup =
        |net: &str| e.docker(&["run", "--rm", "--network", net, "--dns", &dns, "busybox", "nslookup", "-type=a", "outside.example"]);
    // On a network with a way out, unknown names go upstream.
    let o = lookup(&open);
    assert!(o.success() && o.stdout.contains("10.11.12.13"), "{o}");
    // Only on an internal network: nothing leaves, not even a query.
    let o = lookup(&internal);
    assert!(!o.stdout.contains("10.11.12.13"), "an internal network's container resolved an outside name: {o}");
    // Names of containers on the internal network still resolve.
    let peer = e.unique("dnspeer");
    e.docker_ok(&["run", "-d", "--name", &peer, "--network", &internal, "busybox", "sleep", "1000"]);
    let o = e.docker(&["run", "--rm", "--network", &internal, "busybox", "nslookup", &peer]);
    assert!(o.success(), "{o}");
    e.docker_ok(&["rm", "-f", &peer]);
    e.docker_ok(&["network", "rm", &open, &internal]);
}
