# Sourced: xdplb_crane_bin prints the path of crane (go-containerregistry's
# registry client and toy registry) at CRANE_VERSION, building it from the Go
# module proxy into ${XDPLB_CACHE:-/var/cache/xdplb}/tools/crane-<version>/
# the first time. Used by scripts/pin-base-images.sh (resolving digests) and
# scripts/lib/local-registry.sh (serving the base-image stand-ins).
CRANE_VERSION=v0.22.1

xdplb_crane_bin() {
  local bin="${XDPLB_CACHE:-/var/cache/xdplb}/tools/crane-$CRANE_VERSION/crane" here
  if [[ ! -x $bin ]]; then
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    # shellcheck source=go-build.sh
    source "$here/go-build.sh"
    xdplb_go_setup || return 1
    echo "crane.sh: go install github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION" >&2
    mkdir -p "${bin%/*}.partial"
    GOBIN="${bin%/*}.partial" CGO_ENABLED=0 xdplb_go_quiet install \
      "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION" || return 1
    mkdir -p "${bin%/*}" && mv "${bin%/*}.partial/crane" "$bin" && rmdir "${bin%/*}.partial"
  fi
  "$bin" version 2>/dev/null | grep -qxF "$CRANE_VERSION" || { echo "crane.sh: $bin is not crane $CRANE_VERSION" >&2; return 1; }
  echo "$bin"
}
