#!/usr/bin/env bash
# A Docker engine for the kind e2e suite and the image builds, on a machine
# without systemd (and without one running). As root:
#   scripts/docker.sh up     install Debian's docker.io (+ iptables, nftables,
#                            debootstrap) if missing, save the firewall state,
#                            start dockerd with scripts/lib/dockerd.json
#   scripts/docker.sh down   stop the dockerd that `up` started, remove the
#                            bridges it made, restore the firewall and sysctls,
#                            and diff them against the saved copy
# If a dockerd is already running, `up` uses it and `down` leaves it alone.
# Docker's addresses stay inside 198.18.0.0/15: docker0 is 198.18.250.1/24 and
# networks come from 198.19.128.0/17; `up` checks every network after the start.
# Images live in the default data root /var/lib/docker (Docker's own state, not
# a cache of ours: the portable caches are the `docker save` archives under
# /var/cache/xdplb that the image scripts load).
# Containers run through scripts/lib/runc-bounded (why: see there).
# Every `docker build` here needs DOCKER_BUILDKIT=0: Debian's 20.10 engine has
# no BuildKit, and a newer client on PATH would try it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
config="$root/scripts/lib/dockerd.json"
state=/run/xdplb-docker   # what `down` needs (pid, saved firewall, links), and the runtime
log=/var/log/xdplb-dockerd.log
pidfile=/var/run/docker.pid                       # dockerd's default
packages=(docker.io iptables nftables debootstrap jq)
sysctls=(net.ipv4.ip_forward net.ipv6.conf.all.forwarding
  net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables net.bridge.bridge-nf-call-arptables)

say() { echo "docker.sh: $*" >&2; }
die() { say "$*"; exit 1; }
[[ $(id -u) == 0 ]] || die "must run as root"

# --- packages ---------------------------------------------------------------
install_packages() {
  local missing=() p
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  # docker.io's postinst runs `invoke-rc.d docker start`: with no policy-rc.d it
  # would start dockerd on the default 172.17.0.0/16. Keep one that denies every
  # start in place for the install, and put back whatever was there.
  prc=/usr/sbin/policy-rc.d prc_saved=""
  if [[ -e $prc ]]; then prc_saved=$(mktemp) && cp -p "$prc" "$prc_saved"; fi
  restore_prc() { if [[ -n $prc_saved ]]; then cp -p "$prc_saved" "$prc" && rm -f "$prc_saved"; else rm -f "$prc"; fi; }
  trap restore_prc EXIT
  printf '#!/bin/sh\nexit 101\n' >"$prc" && chmod 755 "$prc"
  say "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  restore_prc
  trap - EXIT
}

# --- firewall and sysctl snapshots ------------------------------------------
# Counters and the "# Generated ... on <date>" lines are dropped so that two
# snapshots of the same rules compare equal.
snapshot() {
  local dir=$1 s
  mkdir -p "$dir"
  iptables-save 2>/dev/null | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]/[0:0]/' >"$dir/iptables" || true
  ip6tables-save 2>/dev/null | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]/[0:0]/' >"$dir/ip6tables" || true
  iptables-legacy-save 2>/dev/null | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]/[0:0]/' >"$dir/iptables-legacy" || true
  ip6tables-legacy-save 2>/dev/null | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]/[0:0]/' >"$dir/ip6tables-legacy" || true
  nft list ruleset 2>/dev/null | sed -E 's/packets [0-9]+ bytes [0-9]+/packets 0 bytes 0/' >"$dir/nft" || true
  : >"$dir/sysctl"
  for s in "${sysctls[@]}"; do echo "$s=$(sysctl -n "$s" 2>/dev/null || echo absent)" >>"$dir/sysctl"; done
  ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort >"$dir/links"
}

# The raw rules for restoring (with their counters: iptables-restore wants them).
save_raw() {
  local dir=$1
  nft list ruleset >"$dir/nft.raw" 2>/dev/null || true
  iptables-save >"$dir/iptables.raw" 2>/dev/null || true
  ip6tables-save >"$dir/ip6tables.raw" 2>/dev/null || true
  iptables-legacy-save >"$dir/iptables-legacy.raw" 2>/dev/null || true
  ip6tables-legacy-save >"$dir/ip6tables-legacy.raw" 2>/dev/null || true
}

restore_firewall() {
  local dir=$1 now line k v
  now=$(mktemp -d)
  # dockerd writes through iptables-nft, i.e. nf_tables: flush it all and load
  # what was there. A ruleset that nft cannot read back (iptables-nft rules with
  # xt matches) is loaded with iptables-restore instead.
  nft flush ruleset
  if [[ -s $dir/nft.raw ]] && ! nft -f "$dir/nft.raw" 2>/dev/null; then
    nft flush ruleset
    [[ -s $dir/iptables.raw ]] && iptables-restore <"$dir/iptables.raw"
    [[ -s $dir/ip6tables.raw ]] && ip6tables-restore <"$dir/ip6tables.raw"
  fi
  # dockerd does not use the legacy tables here, but put them back if they moved.
  snapshot "$now"
  if ! cmp -s "$dir/before/iptables-legacy" "$now/iptables-legacy" && [[ -s $dir/iptables-legacy.raw ]]; then
    iptables-legacy-restore <"$dir/iptables-legacy.raw"
  fi
  if ! cmp -s "$dir/before/ip6tables-legacy" "$now/ip6tables-legacy" && [[ -s $dir/ip6tables-legacy.raw ]]; then
    ip6tables-legacy-restore <"$dir/ip6tables-legacy.raw"
  fi
  while IFS= read -r line; do
    k=${line%%=*} v=${line#*=}
    [[ $v == absent ]] || [[ $(sysctl -n "$k") == "$v" ]] || sysctl -qw "$k=$v"
  done <"$dir/before/sysctl"
  rm -rf "$now"
}

# --- dockerd ----------------------------------------------------------------
engine_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# The pid of the dockerd that `up` started, if it is still that process.
our_pid() {
  local pid
  [[ -f $state/pid ]] || return 1
  pid=$(cat "$state/pid")
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' </proc/"$pid"/cmdline | grep -q '^dockerd --config-file [^ ]*/scripts/lib/dockerd\.json '   || return 1
  echo "$pid"
}

# Every subnet and gateway of every network must be inside 198.18.0.0/15.
check_addresses() {
  local bad=0 net addr a b
  for net in $(docker network ls -q); do
    for addr in $(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}} {{end}}' "$net"); do
      IFS=./ read -r a b _ <<<"$addr"
      if [[ $a != 198 || ($b != 18 && $b != 19) ]]; then
        say "network $(docker network inspect -f '{{.Name}}' "$net") uses $addr, outside 198.18.0.0/15"; bad=1
      fi
    done
  done
  return $bad
}

up() {
  install_packages
  if pid=$(our_pid); then say "dockerd $pid (started by docker.sh) is running"; return 0; fi
  if engine_up; then say "using the running Docker engine (not started here; down leaves it)"; return 0; fi
  [[ -z $(pgrep -x dockerd) ]] || die "a dockerd is running but does not answer on the default socket"
  rm -rf "$state" && mkdir -p "$state"
  snapshot "$state/before"
  save_raw "$state"
  # The default runtime (dockerd.json): runc with capabilities cut to the bounding set.
  install -m 755 "$root/scripts/lib/runc-bounded" "$state/runc-bounded"
  say "starting dockerd ($config), log $log"
  # Its own session: it outlives this shell and its job's process group.
  PATH=/usr/sbin:/usr/bin:/sbin:/bin setsid dockerd --config-file "$config" </dev/null >>"$log" 2>&1 &
  local i
  for ((i = 0; i < 60; i++)); do
    engine_up && [[ -s $pidfile ]] && break
    kill -0 $! 2>/dev/null || { tail -20 "$log" >&2; die "dockerd exited"; }
    sleep 0.5
  done
  engine_up || { tail -20 "$log" >&2; die "dockerd did not answer within 30 s"; }
  cp "$pidfile" "$state/pid"
  our_pid >/dev/null || die "$pidfile does not name the dockerd started here"
  docker network inspect -f 'bridge network: {{range .IPAM.Config}}{{.Subnet}} gateway {{.Gateway}}{{end}}' bridge >&2
  check_addresses || { down; die "Docker took addresses outside 198.18.0.0/15: stopped it"; }
  say "dockerd $(cat "$state/pid") up: $(docker version --format 'engine {{.Server.Version}}, API {{.Server.APIVersion}}')"
}

down() {
  local pid i link rc=0 f
  if ! pid=$(our_pid); then
    if [[ -d $state/before && -s $state/pid ]] && ! [[ -d /proc/$(cat "$state/pid") ]]; then
      say "the dockerd started here is gone; restoring the firewall anyway"
    else
      say "no dockerd started by docker.sh is running: nothing to do"; return 0
    fi
  else
    local running
    running=$(docker ps -q 2>/dev/null | wc -l)
    ((running == 0)) || say "stopping $running running container(s) with dockerd"
    say "stopping dockerd $pid"
    kill -TERM "$pid"
    for ((i = 0; i < 120; i++)); do [[ -d /proc/$pid ]] || break; sleep 0.5; done
    [[ ! -d /proc/$pid ]] || { say "dockerd $pid still running after 60 s: killing it"; kill -KILL "$pid"; sleep 1; }
  fi
  # Its containerd stops with it; a leftover one would keep the netns and mounts.
  if [[ -s /var/run/docker/containerd/containerd.pid ]]; then
    pid=$(cat /var/run/docker/containerd/containerd.pid)
    if tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | grep -q 'containerd --config /var/run/docker/containerd/containerd.toml'; then
      say "stopping dockerd's containerd $pid"; kill -TERM "$pid"
      for ((i = 0; i < 20; i++)); do [[ -d /proc/$pid ]] || break; sleep 0.5; done
    fi
  fi
  for link in $(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//'); do
    [[ $link == docker0 || $link == br-* || $link == veth* ]] || continue
    grep -qx "$link" "$state/before/links" || ip link del "$link" 2>/dev/null || true
  done
  restore_firewall "$state"
  mkdir -p "$state/after" && snapshot "$state/after"
  for f in iptables ip6tables iptables-legacy ip6tables-legacy nft sysctl links; do
    if ! diff -u "$state/before/$f" "$state/after/$f" >"$state/$f.diff"; then
      say "$f differs from before dockerd started:"; cat "$state/$f.diff" >&2; rc=1
    fi
  done
  ((rc)) && die "state not fully restored (saved copies in $state)"
  say "dockerd stopped; firewall, sysctls and links are as before"
  rm -rf "$state"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
