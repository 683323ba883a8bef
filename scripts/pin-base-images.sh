#!/usr/bin/env bash
# Pins deploy/Dockerfile's base images by digest: resolves the tag of each of
# BUILD_IMAGE and RUNTIME_IMAGE (node:<.node-version>-bookworm, -bookworm-slim)
# to the digest its registry serves now (`crane digest`: the multi-platform
# index, as `docker pull` resolves it) and writes NAME:TAG@sha256:DIGEST as the
# ARG's default, the one place the pin lives. Run it where Docker Hub answers,
# after changing .node-version or to take Docker Hub's rebuild of a tag (Debian
# security updates), and commit the Dockerfile; then scripts/pin-debian-packages.sh.
#   scripts/pin-base-images.sh                 resolve on Docker Hub, write the Dockerfile
#   scripts/pin-base-images.sh --dry-run       print the pins, write nothing
#   scripts/pin-base-images.sh --registry HOST resolve HOST/library/NAME:TAG instead
#                                              (a mirror; 127.0.0.1:PORT is plain HTTP)
# The tags follow .node-version: a new release there is written here too.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { echo "pin-base-images.sh: $*" >&2; }
die() { say "$*"; exit 1; }
dry=0 registry=""
while (($#)); do
  case $1 in
    --dry-run) dry=1 ;;
    --registry) registry=${2:?--registry HOST}; shift ;;
    *) echo "usage: $0 [--dry-run] [--registry HOST]" >&2; exit 2 ;;
  esac
  shift
done
# shellcheck source=lib/dockerfile-pins.sh
source "$root/scripts/lib/dockerfile-pins.sh"
# shellcheck source=lib/crane.sh
source "$root/scripts/lib/crane.sh"
crane=$(xdplb_crane_bin)
node_version="$(tr -d ' \n' <"$root/.node-version")"
insecure=()
[[ $registry == 127.* || $registry == localhost:* ]] && insecure=(--insecure)

for arg in BUILD_IMAGE RUNTIME_IMAGE; do
  tag=$(xdplb_image_tag "$(xdplb_dockerfile_arg "$arg")")
  # node:OLD-bookworm -> node:<.node-version>-bookworm
  tag=$(sed -E "s/^(node:)[0-9]+\.[0-9]+\.[0-9]+-/\1$node_version-/" <<<"$tag")
  where=${registry:+$registry/library/}$tag
  digest=$("$crane" digest "${insecure[@]}" "$where" 2>&1) || die "crane digest $where: $digest"
  [[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || die "crane digest $where printed $digest"
  say "$arg=$tag@$digest"
  ((dry)) || xdplb_dockerfile_set_arg "$arg" "$tag@$digest"
done
((dry)) || say "wrote ${XDPLB_DOCKERFILE#"$root"/}"
