//! API edges clients trip on: swarm-mode routes answer like a dockerd outside swarm mode, and
//! `POST /exec/{id}/start` frames its stream by the start request's `Tty`.
mod common;
use common::*;
use std::time::Duration;

#[test]
fn swarm_mode_routes_say_not_a_swarm_manager() {
    require_root!();
    let e = engine();
    for path in [
        "/v1.41/swarm",
        "/v1.41/nodes",
        "/v1.41/services",
        "/v1.41/tasks",
        "/v1.41/secrets",
        "/v1.41/configs",
        "/v1.41/nodes/abc",
        "/services/xyz",
    ] {
        let r = e.api("GET", path, None).unwrap();
        assert_eq!(r.status, 503, "{path}: {}", r.text());
        assert_eq!(r.json().unwrap()["message"], "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.", "{path}");
    }
    let r = e.api("POST", "/v1.41/services/create", Some(("application/json", b"{}"))).unwrap();
    assert_eq!(r.status, 503);
    let r = e.api("POST", "/v1.41/swarm/leave", None).unwrap();
    assert_eq!((r.status, r.json().unwrap()["message"].as_str().map(String::from)), (503, Some("This node is not part of a swarm".into())));
    let r = e.api("POST", "/v1.41/swarm/init", Some(("application/json", b"{}"))).unwrap();
    assert_eq!(r.status, 501, "{}", r.text());
    // As the CLI shows it.
    let o = e.docker(&["node", "ls"]);
    assert!(!o.success() && o.stderr.contains("This node is not a swarm manager"), "{o}");
}

/// docker-py reads an exec's stream as the start request says: multiplexed with `tty=False`
/// even when the exec has a tty, raw with `tty=True` even when it has none.
#[test]
fn exec_start_frames_by_the_start_requests_tty() {
    require_root!();
    let e = engine_with_busybox();
    let name = e.unique("frames");
    e.docker_ok(&["run", "-d", "--name", &name, "busybox", "sleep", "100"]);
    let script = format!(
        r#"
import docker
api = docker.from_env().api
x = api.exec_create("{name}", ["echo", "hello-frames"], tty=True)
print("tty-exec framed", api.exec_start(x["Id"], tty=False))
x = api.exec_create("{name}", ["sh", "-c", "echo raw-out"], tty=False)
print("pipe-exec raw", api.exec_start(x["Id"], tty=True))
x = api.exec_create("{name}", ["sh", "-c", "echo out; echo err >&2"])
print("demux", api.exec_start(x["Id"], demux=True))
"#
    );
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", &script]);
    for (k, v) in e.docker_env() {
        cmd.env(k, v);
    }
    let o = testground::cmd::run(&mut cmd, None, Duration::from_secs(120));
    e.expect_ok(&o);
    assert_eq!(
        lines(&o.stdout),
        ["tty-exec framed b'hello-frames\\r\\n'", "pipe-exec raw b'raw-out\\n'", "demux (b'out\\n', b'err\\n')"],
        "{o}"
    );
    e.docker_ok(&["rm", "-f", &name]);
}

/// Output never rides in the same read as the 101: the engine waits until the client has read
/// the headers before it sends any (docker-py parses the headers through a buffered reader and
/// then reads the raw socket, so bytes that came with the headers were lost).
#[test]
fn exec_output_waits_until_the_client_has_read_the_101() {
    require_root!();
    let e = engine_with_busybox();
    let name = e.unique("hdr");
    e.docker_ok(&["run", "-d", "--name", &name, "busybox", "sleep", "100"]);
    let create = r#"{"Cmd":["echo","after-headers"],"AttachStdout":true,"AttachStderr":true}"#;
    let r = e.api("POST", &format!("/v1.41/containers/{name}/exec"), Some(("application/json", create.as_bytes()))).unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json().unwrap()["Id"].as_str().unwrap().to_string();
    // A client that is slow to read: 300 ms pass between the request and its first read.
    let script = format!(
        r#"
import socket, time
s = socket.socket(socket.AF_UNIX)
s.connect("{sock}")
body = b'{{"Detach":false,"Tty":false}}'
s.sendall(b"POST /v1.41/exec/{id}/start HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
time.sleep(0.3)
first = s.recv(65536)
print("first-ends-with-headers", first.endswith(b"\r\n\r\n"), first.startswith(b"HTTP/1.1 101"))
rest = b""
while True:
    c = s.recv(65536)
    if not c:
        break
    rest += c
print("rest-has-output", b"after-headers" in rest)
"#,
        sock = e.socket().display()
    );
    let o = testground::cmd::run(std::process::Command::new("python3").args(["-c", &script]), None, Duration::from_secs(60));
    e.expect_ok(&o);
    assert_eq!(lines(&o.stdout), ["first-ends-with-headers True True", "rest-has-output True"], "{o}");
    e.docker_ok(&["rm", "-f", &name]);
}
