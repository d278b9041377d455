#!/usr/bin/env bash
# The main job: install what is needed, build, start a Flotilla engine on a private socket and
# data root, import the busybox image, and drive it with the standard docker CLI (`docker
# version`, `docker run --rm busybox echo hello`); then the local cluster demo
# (scripts/machine-demo.sh: token service, three `local` machines, a swarm manager).
# Everything is stopped and removed on exit. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (the engine creates namespaces, mounts, cgroups)" >&2; exit 1; }

./scripts/install-deps.sh
echo "== cargo build --bin swarm"
cargo build --bin swarm
SWARM=${CARGO_TARGET_DIR:-$PWD/target}/debug/swarm

DEMO=$(mktemp -d /tmp/flotilla-demo.XXXXXX)
BRIDGE=fltdemo0 BIP=10.159.0.1/24 CGROUP=/flotilla-demo
HOST=unix://$DEMO/docker.sock
export DOCKER_HOST=$HOST DOCKER_CONFIG=$DEMO/docker-config
ENGINE_PID=
cleanup() {
  set +e
  if [ -n "$ENGINE_PID" ]; then flt_stop_pid "$ENGINE_PID" 10; fi
  flt_cleanup "$BRIDGE" "$CGROUP" "$DEMO"
  rm -rf "$DEMO"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== starting: swarm engine -H $HOST --data-root $DEMO/data --exec-root $DEMO/exec --bridge $BRIDGE --bip $BIP"
NO_COLOR=1 "$SWARM" engine -H "$HOST" --data-root "$DEMO/data" --exec-root "$DEMO/exec" \
  --bridge "$BRIDGE" --bip "$BIP" --cgroup-parent "$CGROUP" --label demo=flotilla >"$DEMO/engine.log" 2>&1 &
ENGINE_PID=$!
if ! flt_wait_docker "$HOST" 30; then
  echo "demo.sh: the engine did not come up; its log:" >&2; cat "$DEMO/engine.log" >&2; exit 1
fi

fail() { echo "demo.sh: $1 failed; engine log tail:" >&2; tail -n 30 "$DEMO/engine.log" >&2; exit 1; }
echo "== docker version"
docker version || fail "docker version"
echo "== docker import (busybox rootfs from Debian's busybox-static)"
flt_busybox_tar "$DEMO/busybox.tar"
docker import -c 'CMD ["sh"]' "$DEMO/busybox.tar" busybox:latest || fail "docker import"
docker images
echo "== docker run --rm busybox echo hello"
docker run --rm busybox echo hello || fail "docker run"
echo "== done; stopping the engine and cleaning up"
cleanup
trap - EXIT
# Then the cluster: a token service, three `local` machines (one the swarm master) and
# containers spread across them through the manager.
echo "== the local cluster demo"
exec ./scripts/machine-demo.sh
