#!/usr/bin/env bash
# Runs a command with the project's pinned Node.js (.node-version) first on
# PATH, installing it from the npm registry when the machine's node is another
# version, and `npm ci` when node_modules is missing or older than the lock
# file. Every npm script of package.json goes through here, so each works by
# itself on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/node.sh
xdplb_use_pinned_node
# npm writes node_modules/.package-lock.json on install: older than the lock means stale.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --ignore-scripts --no-audit --no-fund
fi
exec "$@"
