#!/usr/bin/env python3
"""A server that answers the requests of `docker exec C true`, `docker run --rm IMAGE CMD`,
`docker run -d IMAGE CMD`, `docker stats --no-stream C` and `docker network connect N C` at once
with canned answers, so those commands against it measure what the docker CLI costs by itself (its
floor). The 28.x CLI's `stats --no-stream` waits for its first 500 ms display tick after the
answer, so its floor is above 0.5 s.
Usage: cli_floor.py SOCKET (serves until killed)."""
import asyncio, json, os, sys

PATH = sys.argv[1]
CID = "c" * 64
STATS = json.dumps({"read": "2026-12-03T00:00:00Z", "preread": "2026-12-03T00:00:00Z", "id": CID, "name": "/c",
                    "cpu_stats": {}, "precpu_stats": {}, "memory_stats": {}}).encode() + b"\n"
INSPECT = json.dumps({"Id": CID, "Name": "/c", "State": {"Status": "running", "Running": True, "Pid": 1},
                      "Config": {"Tty": False, "Cmd": ["sleep"]}, "HostConfig": {}}).encode()


def resp(status, body=b"", ctype="application/json"):
    head = f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nApi-Version: 1.41\r\nOstype: linux\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


UPGRADED = (b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
            b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")


async def handle(r, w):
    try:
        while True:
            head = await r.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            method, url, _ = lines[0].split(" ")
            length = next((int(l.split(":")[1]) for l in lines[1:] if l.lower().startswith("content-length:")), 0)
            if length:
                await r.readexactly(length)
            path = url.split("?")[0]
            if path.endswith("/_ping"):
                w.write(resp("200 OK", b"" if method == "HEAD" else b"OK", "text/plain"))
            elif path.endswith("/containers/create"):
                w.write(resp("201 Created", json.dumps({"Id": CID, "Warnings": []}).encode()))
            elif "/containers/" in path and path.endswith("/attach"):
                # run: the container's output ends at once (an empty stream).
                w.write(UPGRADED)
                await w.drain()
                w.close()
                return
            elif "/containers/" in path and path.endswith("/wait"):
                w.write(resp("200 OK", b'{"Error":null,"StatusCode":0}'))
            elif "/containers/" in path and path.endswith("/start"):
                w.write(resp("204 No Content"))
            elif "/containers/" in path and path.endswith("/stats"):
                w.write(resp("200 OK", STATS))
            elif "/networks/" in path and (path.endswith("/connect") or path.endswith("/disconnect")):
                w.write(resp("200 OK"))
            elif path.endswith("/version"):
                w.write(resp("200 OK", b'{"Os":"linux","ApiVersion":"1.41","Version":"floor"}'))
            elif "/containers/" in path and path.endswith("/json"):
                w.write(resp("200 OK", INSPECT))
            elif "/containers/" in path and path.endswith("/exec"):
                w.write(resp("201 Created", b'{"Id":"e1"}'))
            elif "/exec/e1/start" in path:
                w.write(UPGRADED)
                await w.drain()
                w.close()
                return
            elif "/exec/e1/json" in path:
                w.write(resp("200 OK", b'{"ID":"e1","Running":false,"ExitCode":0}'))
            else:
                w.write(resp("404 Not Found", b'{"message":"not served here"}'))
            await w.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        w.close()


async def main():
    if os.path.exists(PATH):
        os.unlink(PATH)
    server = await asyncio.start_unix_server(handle, PATH)
    async with server:
        await server.serve_forever()


asyncio.run(main())
