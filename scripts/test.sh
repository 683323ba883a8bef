#!/usr/bin/env bash
# npm test: installs what the build and the kernel tests need (as root), builds,
# and runs every test file (or those whose path contains an argument).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -eq 0 ]]; then
  bash scripts/install-deps.sh
else
  echo "npm test: not root: skipping system packages and bpffs; kernel tests skip outside CI" >&2
fi
node --version
npm run --silent build
exec node test/run.mjs "$@"
