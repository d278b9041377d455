#!/usr/bin/env bash
# Installs (idempotently) the Debian packages the demo, the tests and the benchmark need.
# Runs `apt-get update` only when an install fails (e.g. stale or missing package lists).
set -euo pipefail
PKGS=(protobuf-compiler busybox-static iptables iproute2 docker-registry etcd-server
      openssh-server curl jq hyperfine docker.io openssl libseccomp-dev
      debootstrap systemd-container rsync make)
# debootstrap + systemd-container: real systemd test hosts (testground::nspawn);
# rsync: `machine scp --delta` (the nspawn hosts' rootfs gets it too).
# make: builds jemalloc, the `swarm` binary's allocator (tikv-jemalloc-sys).
# libseccomp-dev: the engine links libseccomp (Docker's default seccomp profile for containers).
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
else
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q "${missing[@]}"; then
    apt-get update -q
    apt-get install -y -q "${missing[@]}"
  fi
fi
# docker-py, a client the tests drive the engine with (as users do).
python3 -c 'import docker' 2>/dev/null || python3 -m pip install -q docker
# docker-compose 1.29 (PyPI), a client the manager's tests drive: in its own venv (it needs
# docker-py 6, the tests' docker-py is 7), on PATH as /usr/local/bin/docker-compose. As-is it
# does not build on Python 3.11 (PyYAML 5.4.1 needs Cython < 3 and no build isolation).
COMPOSE_VENV=/opt/docker-compose-venv
if ! "$COMPOSE_VENV/bin/docker-compose" version --short 2>/dev/null | grep -qx '1.29.2'; then
  echo "install-deps: installing docker-compose 1.29.2 in $COMPOSE_VENV"
  python3 -m venv "$COMPOSE_VENV" || { apt-get install -y -q python3-venv && python3 -m venv "$COMPOSE_VENV"; }
  "$COMPOSE_VENV/bin/pip" install -q "cython<3" wheel
  "$COMPOSE_VENV/bin/pip" install -q --no-build-isolation "pyyaml==5.4.1"
  "$COMPOSE_VENV/bin/pip" install -q "docker-compose==1.29.2" "docker==6.1.3" "requests<2.32"
fi
ln -sfn "$COMPOSE_VENV/bin/docker-compose" /usr/local/bin/docker-compose
# Packaged services do not start here (no systemd); nothing else to do.
