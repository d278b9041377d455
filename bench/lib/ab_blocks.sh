#!/usr/bin/env bash
# Two engine binaries side by side, back to back: blocks of BLOCK (default 20) back-to-back
# `docker run --rm busybox true` on one engine, then on the other, alternating which goes first,
# 0.3 s between pairs. Prints one JSON object: each side's median block mean (ms per run) and the
# median of the per-pair differences B - A. Back-to-back runs are bound by CPU (bench/engine.md,
# stop 32): background work of one run (spares, cleanups) falls in the next, as in the bench.
# Usage: bench/lib/ab_blocks.sh SWARM_A SWARM_B [PAIRS]   (root; release binaries)
# AB_DATA=DIR puts the two data roots in a new directory under DIR (say /var/tmp, on the disk as
# in bench/engine, where the record's fsyncs cost what they cost there); default: with the rest
# under /dev/shm.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
[ "$(id -u)" = 0 ] || { echo "ab_blocks.sh: run as root" >&2; exit 1; }
A=$1 B=$2 PAIRS=${3:-20}
D=$(command -v /usr/local/bin/docker || command -v docker)
R=$(mktemp -d /dev/shm/flt-ab.XXXXXX)
DATA=$R
[ -z "${AB_DATA:-}" ] || DATA=$(mktemp -d "$AB_DATA/flt-ab.XXXXXX")
export DOCKER_CONFIG=$R/cfg
PIDS=()
cleanup() {
  set +e
  for i in 1 2; do
    ids=$("$D" -H "unix://$R/s$i.sock" ps -aq 2>/dev/null); [ -z "$ids" ] || "$D" -H "unix://$R/s$i.sock" rm -f $ids >/dev/null 2>&1
  done
  for p in "${PIDS[@]}"; do flt_stop_pid "$p" 10; done
  for i in 1 2; do flt_cleanup "fltab$i" "/flt-ab$i" "$DATA/d$i" "$R/e$i"; done
  rm -rf "$R" "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
i=0
for bin in "$A" "$B"; do
  i=$((i + 1))
  mkdir -p "$DATA/d$i" "$R/e$i"
  NO_COLOR=1 "$bin" engine -H "unix://$R/s$i.sock" --data-root "$DATA/d$i" --exec-root "$R/e$i" --bridge "fltab$i" \
    --bip "10.159.$i.1/24" --cgroup-parent "/flt-ab$i" --log-level warn >"$R/log$i" 2>&1 &
  PIDS+=($!)
  flt_wait_docker "unix://$R/s$i.sock" 60 || { tail -20 "$R/log$i"; exit 1; }
done
flt_busybox_tar "$R/busybox.tar"
for i in 1 2; do "$D" -H "unix://$R/s$i.sock" import -c 'CMD ["sh"]' "$R/busybox.tar" busybox:latest >/dev/null; done
echo "load before: $(cat /proc/loadavg)" >&2
python3 - "$PAIRS" "$R" "$D" "${BLOCK:-20}" <<'PY'
import json, statistics, subprocess, sys, time
pairs, root, docker, block = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
def run(i):
    p = subprocess.run([docker, "-H", f"unix://{root}/s{i}.sock", "run", "--rm", "busybox", "true"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if p.returncode != 0:
        sys.exit(p.stderr.decode())
def mean_ms(i):
    t = time.perf_counter()
    for _ in range(block):
        run(i)
    return (time.perf_counter() - t) * 1000 / block
mean_ms(1), mean_ms(2)
a, b = [], []
for k in range(pairs):
    if k % 2 == 0:
        x = mean_ms(1); y = mean_ms(2)
    else:
        y = mean_ms(2); x = mean_ms(1)
    a.append(x); b.append(y)
    time.sleep(0.3)
m = statistics.median
print(json.dumps({"pairs": pairs, "block": block, "a_median": round(m(a), 2), "b_median": round(m(b), 2),
                  "b_minus_a_median": round(m(y - x for x, y in zip(a, b)), 2)}))
PY
echo "load after: $(cat /proc/loadavg)" >&2
