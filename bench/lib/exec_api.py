#!/usr/bin/env python3
"""`docker exec C true` without the docker CLI: the five requests the CLI makes (ping, container
inspect, exec create, hijacked exec start until EOF, exec inspect), on one keep-alive
connection plus the hijacked one, as the CLI does. Prints min and median in ms as JSON.
Usage: exec_api.py SOCKET CONTAINER RUNS"""
import json, socket, statistics, sys, time

sock_path, container, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])


def connect():
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    return s


def read_response(s, head_only=False):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip()
    status = head.split(b"\r\n")[0]
    if head_only:
        return status, b""
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        while not body.endswith(b"0\r\n\r\n"):
            body += s.recv(65536)
        out, rest = b"", body
        while True:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                return status, out
            out, rest = out + rest[:n], rest[n + 2:]
    length = int(headers.get(b"content-length", b"0"))
    while len(body) < length:
        body += s.recv(65536)
    return status, body


def request(s, method, url, body=None, upgrade=False):
    b = json.dumps(body).encode() if body is not None else b""
    h = f"{method} {url} HTTP/1.1\r\nHost: api.moby.localhost\r\nUser-Agent: Docker-Client\r\n"
    if body is not None:
        h += f"Content-Type: application/json\r\nContent-Length: {len(b)}\r\n"
    if upgrade:
        h += "Connection: Upgrade\r\nUpgrade: tcp\r\n"
    s.sendall(h.encode() + b"\r\n" + b)


def once():
    s = connect()
    request(s, "HEAD", "/_ping")
    read_response(s, head_only=True)
    request(s, "GET", f"/v1.41/containers/{container}/json")
    status, _ = read_response(s)
    assert b" 200 " in status, status
    request(s, "POST", f"/v1.41/containers/{container}/exec", {
        "User": "", "Privileged": False, "Tty": False, "AttachStdin": False, "AttachStderr": True,
        "AttachStdout": True, "Detach": False, "DetachKeys": "", "Env": None, "WorkingDir": "", "Cmd": ["true"]})
    status, body = read_response(s)
    assert b" 201 " in status, (status, body)
    exec_id = json.loads(body)["Id"]
    h = connect()
    request(h, "POST", f"/v1.41/exec/{exec_id}/start", {"Detach": False, "Tty": False}, upgrade=True)
    data = b""
    while b"\r\n\r\n" not in data:
        data += h.recv(65536)
    assert b" 101 " in data.split(b"\r\n")[0], data
    h.shutdown(socket.SHUT_WR)
    while h.recv(65536):
        pass
    h.close()
    request(s, "GET", f"/v1.41/exec/{exec_id}/json")
    status, body = read_response(s)
    assert json.loads(body)["ExitCode"] == 0, body
    s.close()


for _ in range(3):
    once()
times = []
for _ in range(runs):
    t0 = time.perf_counter()
    once()
    times.append((time.perf_counter() - t0) * 1000)
print(json.dumps({"min": round(min(times), 2), "median": round(statistics.median(times), 2)}))
