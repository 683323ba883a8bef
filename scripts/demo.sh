#!/usr/bin/env bash
# npm run demo: from a fresh clone, as root: install, build, run the lab demo.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
  echo "the demo creates network namespaces and loads XDP programs: run it as root" >&2
  exit 1
fi
bash scripts/install-deps.sh
source scripts/lib/node.sh
xdplb_use_pinned_node
[[ -f node_modules/.package-lock.json && ! package-lock.json -nt node_modules/.package-lock.json ]] || npm ci --ignore-scripts --no-audit --no-fund
npm run --silent build >/dev/null
exec node dist/test/lab/demo.js
