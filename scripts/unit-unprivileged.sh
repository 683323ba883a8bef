#!/usr/bin/env bash
# Runs the unit suite as an unprivileged user (nobody), to show that it needs
# neither root nor a BPF kernel: the dataplane's diffing, ordering and
# validation run on in-memory maps. Runs from a copy of the built tree that
# nobody can read, since a clone may sit under a private directory. Needs root
# (to switch users) and `npm run build` first.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -d dist/test/unit ]] || { echo "no dist/test/unit: run npm run build first" >&2; exit 1; }
tmp=$(mktemp -d /tmp/xdplb-unit-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
tar --exclude=./.git -cf - . | tar -xf - -C "$tmp"
chmod -R a+rX "$tmp"
echo "unit tests as uid 65534 (nobody), from $tmp"
setpriv --reuid=65534 --regid=65534 --clear-groups env -i PATH="$PATH" HOME="$tmp" \
  sh -c 'cd "$1" && test "$(id -u)" = 65534 && exec node test/run.mjs unit' sh "$tmp"
