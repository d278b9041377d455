#!/usr/bin/env python3
"""`GET /containers/C/stats?stream=0` without the docker CLI (what `docker stats --no-stream C`
asks), one connection per request. Checks that every answer has a previous CPU sample
(`precpu_stats`), and prints min and median in ms as JSON.
Usage: stats_api.py SOCKET CONTAINER RUNS"""
import http.client, json, socket, statistics, sys, time

sock_path, container, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("api.moby.localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path)


times = []
for _ in range(runs):
    t0 = time.perf_counter()
    c = UnixConnection(sock_path)
    c.request("GET", f"/v1.41/containers/{container}/stats?stream=0")
    r = c.getresponse()
    body = r.read()
    times.append((time.perf_counter() - t0) * 1000)
    c.close()
    v = json.loads(body)
    if r.status != 200 or not v.get("precpu_stats", {}).get("system_cpu_usage"):
        sys.exit(f"stats_api.py: no previous sample in {body[:300]!r}")
print(json.dumps({"min": round(min(times), 2), "median": round(statistics.median(times), 2)}))
