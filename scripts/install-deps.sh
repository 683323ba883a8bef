#!/usr/bin/env bash
# Installs what building and running xdplb needs on Debian, as root, when it is
# missing; mounts bpffs. Used by .ci/run and npm run demo.
set -euo pipefail

# tcpdump: the trace tests open the pcap files `xdplb trace --pcap` writes.
# bird2: the lab's router and balancer nodes speak BGP through BIRD 2 (npm test, npm run demo).
# iputils-ping: the lab pings VIPs (the balancer answers echo requests itself).
# hping3: the lab floods a balancer with spoofed SYNs.
# iptables: the backend tests put kube-proxy's FORWARD rules in a namespace (the replies must pass them by).
packages=(clang llvm libbpf-dev libbpf1 bpftool iproute2 ethtool util-linux curl linux-libc-dev make gcc tcpdump bird2 iptables iputils-ping hping3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The pinned Node.js is installed by scripts/lib/node.sh through npm; any npm will do.
command -v npm >/dev/null || { echo "xdplb installs its Node.js release with npm: install npm (Debian: apt-get install npm)" >&2; exit 1; }

# Pinning needs bpffs.
grep -q ' /sys/fs/bpf bpf ' /proc/mounts || mount -t bpf bpf /sys/fs/bpf
