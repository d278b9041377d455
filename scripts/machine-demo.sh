#!/usr/bin/env bash
# The local-cluster demo: a token service, three `local` machines (hosts on this box in
# network namespaces with their own sshd; one is the swarm master), `docker info` through the
# manager and containers spread across the nodes. Everything is removed on exit.
# Run as root on Debian 12; needs a `swarm` build with token-service, join and manage.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
[ "$(id -u)" = 0 ] || { echo "machine-demo.sh: run as root (namespaces, mounts, cgroups)" >&2; exit 1; }

./scripts/install-deps.sh
echo "== cargo build --bin swarm --bin machine"
cargo build --bin swarm --bin machine
BIN=${CARGO_TARGET_DIR:-$PWD/target}/debug
DEMO=$(mktemp -d /tmp/flotilla-machine-demo.XXXXXX)
BRIDGE=flmdemo0 SUBNET=10.212.0.0/24 GW=10.212.0.1 PORT=8501
m() { "$BIN/machine" -s "$DEMO/store" --swarm-binary "$BIN/swarm" "$@"; }
TS_PID=
cleanup() {
  set +e
  m rm -f -y flotilla-1 flotilla-2 flotilla-3 >/dev/null 2>&1
  [ -n "$TS_PID" ] && flt_stop_pid "$TS_PID" 5
  rm -rf "$DEMO"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
LOCAL=(-d local --local-bridge "$BRIDGE" --local-subnet "$SUBNET")

echo "== token service on :$PORT (the hosts reach it at $GW, the bridge's address)"
"$BIN/swarm" token-service --insecure-http --listen "0.0.0.0:$PORT" --data "$DEMO/tokens" >"$DEMO/token-service.log" 2>&1 &
TS_PID=$!
sleep 1
TOKEN=$("$BIN/swarm" create --discovery-url "http://127.0.0.1:$PORT/v1")
DISC="token://$GW:$PORT/$TOKEN"
echo "   discovery: $DISC"
echo "== machine create flotilla-1 (swarm master and agent)"
m create "${LOCAL[@]}" --swarm --swarm-master --swarm-discovery "$DISC" --engine-label node=1 flotilla-1
echo "== machine create --also flotilla-3 flotilla-2 (agents, created in parallel)"
m create "${LOCAL[@]}" --swarm --swarm-discovery "$DISC" --engine-label role=worker --also flotilla-3 flotilla-2
echo "== machine ls"
m ls
eval "$(m env --swarm flotilla-1)"
export DOCKER_CONFIG=$DEMO/docker-config
busybox=$DEMO/busybox.tar
flt_busybox_tar "$DEMO/rootfs.tar"
for n in 1 2 3; do
  (eval "$(m env flotilla-$n)"; docker import -c 'CMD ["sh"]' "$DEMO/rootfs.tar" busybox:latest >/dev/null)
done
echo "== docker info (through the manager at $DOCKER_HOST)"
for _ in $(seq 1 60); do docker info 2>/dev/null | grep -q 'Nodes: 3' && break; sleep 1; done
docker info | sed -n '/Nodes:/,/^[^ ]/p'
echo "== six containers, spread"
for i in 1 2 3 4 5 6; do docker run -d --name demo-$i busybox sleep 600 >/dev/null; done
docker ps --format '{{.Names}}'
