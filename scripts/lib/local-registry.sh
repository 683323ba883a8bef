# Sourced: a registry on 127.0.0.1 (`crane registry serve`, scripts/lib/crane.sh)
# that serves the base-image stand-ins of scripts/base-images.sh, so that a build
# on a machine without a container registry still takes its base images by
# digest: Docker pulls 127.0.0.1:PORT/library/node:TAG@sha256:DIGEST from it and
# checks what it gets against DIGEST, as it would from Docker Hub. Docker treats
# 127.0.0.0/8 registries as insecure (plain HTTP) by default, so the engine needs
# no configuration, and a wrong digest fails there instead of falling back to
# Docker Hub (as a mirror would). The registry keeps everything in memory and
# lives as long as the caller: xdplb_registry_start, then xdplb_registry_stop
# (trap it).
#   xdplb_registry_start           sets XDPLB_REGISTRY (127.0.0.1:PORT) and XDPLB_REGISTRY_PID
#   xdplb_registry_pin REF         pushes the local image REF (node:TAG, a Docker
#                                  Hub official name) and sets XDPLB_REGISTRY_REF to its
#                                  name there: 127.0.0.1:PORT/library/node:TAG@sha256:...
#   xdplb_registry_stop            stops it and drops the pulled names from Docker

# shellcheck source=crane.sh
source "$(dirname "${BASH_SOURCE[0]}")/crane.sh"

xdplb_registry_start() {
  local i log
  XDPLB_CRANE=$(xdplb_crane_bin) || return 1
  XDPLB_REGISTRY_DIR=$(mktemp -d)
  log=$XDPLB_REGISTRY_DIR/registry.log
  "$XDPLB_CRANE" registry serve --address 127.0.0.1:0 >"$log" 2>&1 &
  XDPLB_REGISTRY_PID=$!
  XDPLB_REGISTRY_PUSHED=()
  for ((i = 0; i < 50; i++)); do
    XDPLB_REGISTRY=$(sed -n 's/.*serving on port \([0-9][0-9]*\).*/127.0.0.1:\1/p' "$log")
    [[ -n $XDPLB_REGISTRY ]] && return 0
    kill -0 "$XDPLB_REGISTRY_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$log" >&2
  echo "local-registry.sh: crane registry serve did not start" >&2
  return 1
}

xdplb_registry_pin() {
  local ref=$1 name tag id pushed="" r digest
  XDPLB_REGISTRY_REF=""
  [[ $ref == *:* && $ref != */* && $ref != *@* ]] || { echo "local-registry.sh: $ref is not an official Docker Hub name:tag" >&2; return 1; }
  name=${ref%%:*} tag=${ref#*:}
  id=$(docker image inspect -f '{{.Id}}' "$ref") || return 1
  # An image already pushed under another tag is tagged in the registry, not pushed again.
  for r in "${XDPLB_REGISTRY_PUSHED[@]:-}"; do [[ ${r%% *} == "$id" ]] && pushed=${r#* }; done
  if [[ -n $pushed ]]; then
    "$XDPLB_CRANE" tag --insecure "$pushed" "$tag" 2>/dev/null || return 1
  else
    docker save "$ref" -o "$XDPLB_REGISTRY_DIR/image.tar" || return 1
    "$XDPLB_CRANE" push --insecure "$XDPLB_REGISTRY_DIR/image.tar" "$XDPLB_REGISTRY/library/$name:$tag" >/dev/null 2>&1 || return 1
    rm -f "$XDPLB_REGISTRY_DIR/image.tar"
    XDPLB_REGISTRY_PUSHED+=("$id $XDPLB_REGISTRY/library/$name:$tag")
  fi
  digest=$("$XDPLB_CRANE" digest --insecure "$XDPLB_REGISTRY/library/$name:$tag") || return 1
  XDPLB_REGISTRY_REF=$XDPLB_REGISTRY/library/$name:$tag@$digest
}

xdplb_registry_stop() {
  local r
  [[ -n ${XDPLB_REGISTRY_PID:-} ]] || return 0
  kill "$XDPLB_REGISTRY_PID" 2>/dev/null || true
  wait "$XDPLB_REGISTRY_PID" 2>/dev/null || true
  # Pulling by digest gave the stand-ins names in this registry: drop them (the images stay).
  for r in $(docker images --digests --format '{{.Repository}}@{{.Digest}}' | grep -F "$XDPLB_REGISTRY/"); do
    docker rmi "$r" >/dev/null 2>&1 || true
  done
  rm -rf "$XDPLB_REGISTRY_DIR"
  XDPLB_REGISTRY_PID="" XDPLB_REGISTRY="" XDPLB_REGISTRY_PUSHED=()
  return 0
}
