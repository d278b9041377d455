#!/usr/bin/env bash
# Installs (idempotently) the Debian packages the demo, the tests and the benchmark need.
# Runs `apt-get update` only when an install fails (e.g. stale or missing package lists).
set -euo pipefail
PKGS=(protobuf-compiler busybox-static iptables iproute2 docker-registry etcd-server
      openssh-server curl jq hyperfine docker.io openssl
      debootstrap systemd-container rsync)
# debootstrap + systemd-container: real systemd test hosts (testground::nspawn);
# rsync: `machine scp --delta` (the nspawn hosts' rootfs gets it too).
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
# Packaged services do not start here (no systemd); nothing else to do.
