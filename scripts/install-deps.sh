#!/usr/bin/env bash
# Installs what building and running xdplb needs on Debian, as root, when it is
# missing; mounts bpffs. Used by .ci/run and npm run demo.
set -euo pipefail

# tcpdump: the trace tests open the pcap files `xdplb trace --pcap` writes.
packages=(clang llvm libbpf-dev libbpf1 bpftool iproute2 ethtool util-linux curl linux-libc-dev make gcc tcpdump)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if ((node_major < 20)); then
  echo "xdplb needs Node.js >= 20 (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# Pinning needs bpffs.
grep -q ' /sys/fs/bpf bpf ' /proc/mounts || mount -t bpf bpf /sys/fs/bpf
