#!/usr/bin/env bash
# Local stand-ins for the base images that deploy/Dockerfile names, for machines
# that reach no container registry (this one and CI): Docker must be up
# (scripts/docker.sh up). As root:
#   scripts/base-images.sh            both of the below
#   scripts/base-images.sh minbase    xdplb-local/debian:bookworm-minbase, from
#                                     `debootstrap --variant=minbase bookworm` and
#                                     the host's Debian mirror (plain HTTP)
#   scripts/base-images.sh node       node:<.node-version>-bookworm-slim and
#                                     node:<.node-version>-bookworm: minbase plus
#                                     the pinned Node binary (scripts/lib/node.sh),
#                                     npm from the npm registry and the host's CA
#                                     bundle (scripts/images/node-standin.Dockerfile)
# Everything is cached under ${XDPLB_CACHE:-/var/cache/xdplb}/images, keyed by
# versions: the rootfs tarball and a `docker save` of the stand-ins. A second
# run loads from there and builds nothing; with the images already in Docker it
# does nothing. A node:* image that is not one of ours (an official one pulled
# from a registry) is never replaced.
# The non-slim stand-in is the slim one under the other name: the official
# bookworm image adds buildpack-deps (compilers, python3, git), and the build
# stage uses none of it (it installs clang, llvm, make itself; koffi, the only
# package with an install script, takes its prebuilt binary).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache=${XDPLB_CACHE:-/var/cache/xdplb}
images=$cache/images
recipe=r2   # bump when this script or node-standin.Dockerfile changes what it builds
minbase_tag=xdplb-local/debian:bookworm-minbase
node_version="$(tr -d ' \n' <"$root/.node-version")"
export DOCKER_BUILDKIT=0

say() { echo "base-images.sh: $*" >&2; }
die() { say "$*"; exit 1; }
[[ $(id -u) == 0 ]] || die "must run as root (debootstrap)"
docker version >/dev/null 2>&1 || die "no Docker engine: run scripts/docker.sh up"
mkdir -p "$images"

label() { docker image inspect -f "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }

# The host's apt sources, in deb822 form (what debootstrap and the images use).
host_sources() {
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    cat /etc/apt/sources.list.d/debian.sources
  else
    awk '$1 == "deb" && $2 !~ /^\[/ { print "Types: deb\nURIs: " $2 "\nSuites: " $3 "\nComponents: " $4 "\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n" }' /etc/apt/sources.list
  fi
}
host_mirror() { host_sources | awk '$1 == "URIs:" && $2 ~ /\/debian\/?$/ { print $2; exit }'; }

# --- xdplb-local/debian:bookworm-minbase --------------------------------------
# What the official debian:bookworm-slim image (the official node slim image's
# base) adds to a debootstrap: the host's apt sources, a policy-rc.d that starts
# no service, apt keeping no caches (docker-clean: else each apt layer carries
# ~80 MB of /var/cache/apt/*.bin), no translations, and dpkg skipping docs,
# man pages and locales.
slim_like_official() {
  local dir=$1
  rm -f "$dir/etc/apt/sources.list"
  host_sources >"$dir/etc/apt/sources.list.d/debian.sources"
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d" && chmod 755 "$dir/usr/sbin/policy-rc.d"
  local clean='"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"'
  cat >"$dir/etc/apt/apt.conf.d/docker-clean" <<APT
DPkg::Post-Invoke { $clean; };
APT::Update::Post-Invoke { $clean; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
  echo 'Acquire::Languages "none";' >"$dir/etc/apt/apt.conf.d/docker-no-languages"
  echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$dir/etc/apt/apt.conf.d/docker-autoremove-suggests"
  cat >"$dir/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
DPKG
  find "$dir/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$dir/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$dir"/usr/share/{man,groff,info,lintian,linda}/*
  find "$dir/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/*.bin "$dir"/var/lib/apt/lists/*
}

minbase() {
  local key="debian-bookworm-minbase-$recipe" tar="$images/debian-bookworm-minbase-$recipe.tar" dir mirror t0
  if [[ $(label "$minbase_tag" dev.xdplb.standin) == "$key" ]]; then say "$minbase_tag: present"; return; fi
  if [[ ! -s $tar ]]; then
    command -v debootstrap >/dev/null || die "debootstrap missing: scripts/docker.sh up installs it"
    mirror=$(host_mirror)
    [[ -n $mirror ]] || die "no Debian mirror in the host's apt sources"
    say "debootstrap --variant=minbase bookworm from $mirror"
    t0=$SECONDS
    dir=$(mktemp -d "$images/rootfs.XXXXXX")
    debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$dir.log" 2>&1 || { tail -20 "$dir.log" >&2; rm -rf "$dir"; die "debootstrap failed"; }
    rm -f "$dir.log"
    slim_like_official "$dir"
    tar -C "$dir" --numeric-owner -cf "$tar.partial" .
    rm -rf "$dir"
    mv "$tar.partial" "$tar"
    say "rootfs $tar ($(du -m "$tar" | cut -f1) MB) in $((SECONDS - t0)) s"
  fi
  docker import --change "LABEL dev.xdplb.standin=$key" --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$tar" "$minbase_tag" >/dev/null
  say "$minbase_tag: imported from $tar"
}

# --- node:<version>-bookworm(-slim) -------------------------------------------
# npm: the release that this Node bundles (its changelog's latest "upgrade npm to"),
# as the official image carries; NPM_VERSION overrides.
npm_version() {
  local changelog="$cache/node/v$node_version/CHANGELOG.md" v=${NPM_VERSION:-}
  [[ -n $v ]] || v=$(grep -o -m1 'upgrade npm to [0-9][0-9.]*[0-9]' "$changelog" 2>/dev/null | awk '{print $4}') || true
  [[ -n $v ]] || die "cannot tell which npm Node $node_version bundles (no $changelog): set NPM_VERSION"
  echo "$v"
}

node_standins() {
  local slim="node:$node_version-bookworm-slim" full="node:$node_version-bookworm"
  local npmv cahash key tar ctx t tag t0
  # The pinned Node binary, installed into the cache if missing.
  # shellcheck source=lib/node.sh
  source "$root/scripts/lib/node.sh"
  xdplb_use_pinned_node 2>/dev/null
  npmv=$(npm_version)
  cahash=$(sha256sum /etc/ssl/certs/ca-certificates.crt | cut -c1-8)
  key="node-$node_version-npm-$npmv-ca-$cahash-$recipe"
  tar="$images/$key.docker.tar"
  for t in "$slim" "$full"; do
    if docker image inspect "$t" >/dev/null 2>&1 && [[ -z $(label "$t" dev.xdplb.standin) ]]; then
      die "$t exists and is not a stand-in (an official image?): leaving it; remove it to build the stand-in"
    fi
  done
  if [[ $(label "$slim" dev.xdplb.standin) == "$key" && $(label "$full" dev.xdplb.standin) == "$key" ]]; then
    say "$slim, $full: present ($key)"; return
  fi
  if [[ -s $tar ]]; then
    docker load -i "$tar" >/dev/null
    say "$slim, $full: loaded from $tar"; return
  fi
  minbase
  t0=$SECONDS
  ctx=$(mktemp -d)
  cp "$XDPLB_NODE" "$ctx/node"
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/host-ca.crt"
  if [[ ! -s $cache/npm/npm-$npmv.tgz ]]; then
    mkdir -p "$cache/npm"
    (cd "$cache/npm" && npm pack --silent "npm@$npmv" >/dev/null) || die "npm pack npm@$npmv failed"
  fi
  mkdir "$ctx/npm" && tar -xzf "$cache/npm/npm-$npmv.tgz" -C "$ctx/npm" --strip-components=1
  cp "$root/scripts/images/node-standin.Dockerfile" "$ctx/Dockerfile"
  say "building $slim (Node $node_version, npm $npmv)"
  docker build --build-arg "NODE_VERSION=$node_version" --build-arg "STANDIN_KEY=$key" -t "$slim" "$ctx" >"$ctx.log" 2>&1 \
    || { tail -30 "$ctx.log" >&2; die "docker build of $slim failed (log $ctx.log)"; }
  rm -f "$ctx.log"
  docker tag "$slim" "$full"
  rm -rf "$ctx"
  docker save "$slim" "$full" -o "$tar.partial" && mv "$tar.partial" "$tar"
  say "$slim, $full: built in $((SECONDS - t0)) s, saved to $tar"
}

case ${1:-all} in
  minbase) minbase ;;
  node) node_standins ;;
  all) minbase; node_standins ;;
  *) echo "usage: $0 [minbase|node|all]" >&2; exit 2 ;;
esac
