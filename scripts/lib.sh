# Shell helpers shared by scripts/demo.sh and bench/engine (source it; bash only).

# flt_busybox_tar OUT: a busybox rootfs tarball from Debian's busybox-static, with relative
# applet links (they resolve inside a container), like the tests' testground crate builds.
flt_busybox_tar() {
  local out=$1 r
  r=$(mktemp -d /tmp/flotilla-rootfs.XXXXXX)
  mkdir -p "$r"/{bin,dev,etc,proc,root,sys,tmp,var/www}
  chmod 1777 "$r/tmp"; chmod 700 "$r/root"
  cp /bin/busybox "$r/bin/busybox"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$r/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
  echo '<h1>hello from busybox httpd</h1>' >"$r/var/www/index.html"
  tar --numeric-owner --owner=0 --group=0 -C "$r" -cf "$out" .
  rm -rf "$r"
}

# flt_wait_docker HOST [SECONDS]: waits until `docker -H HOST version` answers.
flt_wait_docker() {
  local host=$1 n=$((${2:-30} * 10))
  for _ in $(seq 1 "$n"); do
    docker -H "$host" version >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

# flt_stop_pid PID [GRACE]: SIGTERM, then SIGKILL after GRACE seconds (default 10).
flt_stop_pid() {
  local pid=$1 n=$((${2:-10} * 10))
  kill -0 "$pid" 2>/dev/null || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 "$n"); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

# flt_cleanup BRIDGE CGROUP_PARENT ROOT...: removes what an engine may leave: processes in the
# cgroup parent or mentioning a root, mounts below the roots, the cgroups, the bridge and its
# links, iptables rules and chains naming the bridge.
flt_cleanup() {
  local br=$1 cg=$2 root pid f h t l c cmd victims
  shift 2
  for _ in 1 2 3; do
    victims=()
    for f in /proc/[0-9]*; do
      pid=${f#/proc/}
      [ "$pid" = "$$" ] && continue
      if [ -n "$cg" ] && grep -qE ":$cg(/|\$)" "$f/cgroup" 2>/dev/null; then victims+=("$pid"); continue; fi
      cmd=$( { tr '\0' ' ' <"$f/cmdline"; } 2>/dev/null) || continue
      for root in "$@"; do
        if [[ $cmd == *"$root"* ]]; then victims+=("$pid"); fi
      done
    done
    if [ ${#victims[@]} -eq 0 ]; then break; fi
    kill -9 "${victims[@]}" 2>/dev/null || true
    sleep 0.2
  done
  for root in "$@"; do
    awk '{print $5}' /proc/self/mountinfo | grep -E "^$root(/|\$)" | sort -r | while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
  done
  if [ -n "$cg" ]; then
    for h in /sys/fs/cgroup/*; do
      [ -d "$h$cg" ] && find "$h$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
  fi
  if [ -n "$br" ]; then
    for l in $(ip -o link show master "$br" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
      ip link del "$l" 2>/dev/null || true
    done
    ip link del "$br" 2>/dev/null || true
    for t in filter nat; do
      iptables-save -t "$t" | grep -E "^-A .*[^A-Za-z0-9_]$br([^A-Za-z0-9_]|\$)" | sed 's/^-A/-D/' |
        while read -r rule; do eval iptables -w -t "$t" "$rule" || true; done
      for c in $(iptables-save -t "$t" | grep -oE "^:[^ ]*$br[^ ]*" | cut -c2-); do
        iptables -w -t "$t" -F "$c" 2>/dev/null || true
        iptables -w -t "$t" -X "$c" 2>/dev/null || true
      done
    done
  fi
}

# flt_dockerd_leftovers: what a dockerd leaves in the root netns (docker0, DOCKER chains,
# FORWARD policy DROP, /run/docker), removed only when no dockerd that manages iptables runs.
flt_dockerd_leftovers() {
  # a dockerd started with --iptables=false does not own these
  if pgrep -a -x dockerd | grep -qv -- '--iptables=false'; then return 0; fi
  if ! pgrep -x dockerd >/dev/null; then ip link del docker0 2>/dev/null || true; fi
  local t c
  for t in filter nat; do
    iptables-save -t "$t" | grep -E '^-A (FORWARD|OUTPUT|PREROUTING|POSTROUTING) .*(DOCKER|docker0)' | sed 's/^-A/-D/' |
      while read -r rule; do eval iptables -w -t "$t" "$rule" || true; done
    for c in DOCKER DOCKER-USER DOCKER-ISOLATION-STAGE-1 DOCKER-ISOLATION-STAGE-2; do
      iptables -w -t "$t" -F "$c" 2>/dev/null && iptables -w -t "$t" -X "$c" 2>/dev/null || true
    done
  done
  iptables -w -P FORWARD ACCEPT
  if pgrep -x dockerd >/dev/null; then return 0; fi
  rmdir /run/docker/plugins /run/docker 2>/dev/null || true
  for c in /sys/fs/cgroup/*/docker; do [ -d "$c" ] && rmdir "$c" 2>/dev/null || true; done
}
