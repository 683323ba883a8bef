#!/usr/bin/env bash
# Builds deploy/Dockerfile from its base images pinned by digest. Docker must be
# up (scripts/docker.sh up).
#   scripts/build-image.sh IMAGE [E2E_IMAGE]
# IMAGE is the default target (what deploy/ runs), E2E_IMAGE the e2e target
# (test/e2e/kind). The build's output goes to stderr only if it fails.
#
# Where the Dockerfile's base images (the tags of BUILD_IMAGE and RUNTIME_IMAGE)
# are local stand-ins (scripts/base-images.sh: this machine, CI), they have no
# Docker Hub digest: a registry on 127.0.0.1 serves them for the length of the
# build (scripts/lib/local-registry.sh) and the build takes them from there by
# their own digests, --build-arg BUILD_IMAGE=127.0.0.1:PORT/library/node:TAG@sha256:...
# Elsewhere it builds with the Dockerfile's defaults: the official images by the
# digests scripts/pin-base-images.sh wrote.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DOCKER_BUILDKIT=0
say() { echo "build-image.sh: $*" >&2; }
die() { say "$*"; exit 1; }
(($# == 1 || $# == 2)) || { echo "usage: $0 IMAGE [E2E_IMAGE]" >&2; exit 2; }
docker version >/dev/null 2>&1 || die "no Docker engine: run scripts/docker.sh up"
# shellcheck source=lib/dockerfile-pins.sh
source "$root/scripts/lib/dockerfile-pins.sh"
# shellcheck source=lib/local-registry.sh
source "$root/scripts/lib/local-registry.sh"

args=() standins=0
for arg in BUILD_IMAGE RUNTIME_IMAGE; do
  ref=$(xdplb_dockerfile_arg "$arg")
  tag=$(xdplb_image_tag "$ref")
  if [[ -n $(docker image inspect -f '{{index .Config.Labels "dev.xdplb.standin"}}' "$tag" 2>/dev/null) ]]; then
    if ((!standins)); then
      standins=1
      xdplb_registry_start
      trap xdplb_registry_stop EXIT
    fi
    xdplb_registry_pin "$tag" || die "could not serve the stand-in $tag from $XDPLB_REGISTRY"
    ref=$XDPLB_REGISTRY_REF
    say "$arg: the local stand-in $tag, by its digest: $ref"
    args+=(--build-arg "$arg=$ref")
  elif [[ $ref == *@sha256:* ]]; then
    say "$arg: $ref"
  else
    die "$arg=$ref is not pinned by digest: run scripts/pin-base-images.sh (or scripts/base-images.sh for the stand-ins)"
  fi
done

log=$(mktemp)
build() {
  docker build --force-rm "${args[@]}" -f "$root/deploy/Dockerfile" "$@" "$root" >"$log" 2>&1 \
    || { tail -60 "$log" >&2; rm -f "$log"; die "docker build $* failed"; }
}
build -t "$1"
say "built $1"
if (($# == 2)); then
  build --target e2e -t "$2"
  say "built $2 (target e2e)"
fi
rm -f "$log"
