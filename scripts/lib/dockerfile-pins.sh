# Sourced: reads and writes the pins in deploy/Dockerfile, the one place they
# live: the ARG defaults BUILD_IMAGE and RUNTIME_IMAGE (the base images,
# node:TAG@sha256:DIGEST once scripts/pin-base-images.sh has run where Docker
# Hub answers) and BUILD_PACKAGES and RUNTIME_PACKAGES (Debian packages as
# name=version, written by scripts/pin-debian-packages.sh).
XDPLB_DOCKERFILE=${XDPLB_DOCKERFILE:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/deploy/Dockerfile"}

# xdplb_dockerfile_arg NAME: the default of `ARG NAME=...` (quotes removed).
xdplb_dockerfile_arg() {
  local v
  v=$(sed -n "s/^ARG $1=//p" "$XDPLB_DOCKERFILE")
  [[ -n $v ]] || { echo "no ARG $1=... in $XDPLB_DOCKERFILE" >&2; return 1; }
  v=${v#\"}; echo "${v%\"}"
}

# xdplb_dockerfile_set_arg NAME VALUE: rewrite that default in place.
xdplb_dockerfile_set_arg() {
  local name=$1 value=$2 tmp
  [[ $value == *' '* ]] && value="\"$value\""
  tmp=$(mktemp)
  awk -v name="$name" -v value="$value" 'index($0, "ARG " name "=") == 1 { $0 = "ARG " name "=" value; n++ } { print } END { exit n != 1 }' \
    "$XDPLB_DOCKERFILE" >"$tmp" || { rm -f "$tmp"; echo "not one ARG $name=... in $XDPLB_DOCKERFILE" >&2; return 1; }
  cat "$tmp" >"$XDPLB_DOCKERFILE" && rm -f "$tmp"
}

# xdplb_image_tag REF: REF without its @sha256:... digest.
xdplb_image_tag() { echo "${1%@sha256:*}"; }
