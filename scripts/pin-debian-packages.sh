#!/usr/bin/env bash
# Pins the Debian packages deploy/Dockerfile installs: for each stage, the
# version apt would install now (`apt-cache policy`'s candidate, after
# `apt-get update` in that stage's base image) of each package named in its ARG
# (BUILD_PACKAGES, RUNTIME_PACKAGES), written back as name=version, which the
# Dockerfile installs as such. To add a package, add its name to the ARG and run
# this. Run it after scripts/pin-base-images.sh, and when a build fails because
# Debian replaced a pinned version (a security or point-release update: the
# mirror keeps only the newest of a suite). Docker must be up; the base image is
# the local one under the ARG's tag if there is one (a stand-in here), else the
# pinned reference.
#   scripts/pin-debian-packages.sh            write the Dockerfile
#   scripts/pin-debian-packages.sh --dry-run  print the pins, write nothing
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { echo "pin-debian-packages.sh: $*" >&2; }
die() { say "$*"; exit 1; }
dry=0
case ${1:-} in
  --dry-run) dry=1 ;;
  "") ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac
docker version >/dev/null 2>&1 || die "no Docker engine: run scripts/docker.sh up"
# shellcheck source=lib/dockerfile-pins.sh
source "$root/scripts/lib/dockerfile-pins.sh"

for stage in BUILD RUNTIME; do
  ref=$(xdplb_dockerfile_arg "${stage}_IMAGE")
  tag=$(xdplb_image_tag "$ref")
  docker image inspect "$tag" >/dev/null 2>&1 && image=$tag || image=$ref
  read -ra names <<<"$(xdplb_dockerfile_arg "${stage}_PACKAGES" | sed -E 's/=[^ ]*//g')"
  policy=$(docker run --rm --user 0 "$image" sh -c 'apt-get update -qq >/dev/null && apt-cache policy "$@"' sh "${names[@]}") \
    || die "apt-cache policy in $image failed"
  pins=$(awk '/^[^ ].*:$/ { sub(/:$/, ""); p = $0 } $1 == "Candidate:" { print p "=" $2 }' <<<"$policy")
  for n in "${names[@]}"; do
    grep -q "^$n=" <<<"$pins" && ! grep -q "^$n=(none)$" <<<"$pins" || die "$n: no candidate in $image"
  done
  pins=$(printf '%s\n' "${names[@]}" | while read -r n; do grep "^$n=" <<<"$pins"; done | paste -sd' ')
  say "${stage}_PACKAGES ($image): $pins"
  ((dry)) || xdplb_dockerfile_set_arg "${stage}_PACKAGES" "$pins"
done
((dry)) || say "wrote ${XDPLB_DOCKERFILE#"$root"/}"
