#!/usr/bin/env bash
# Builds, without any container registry, the kind node image the kind suite
# runs on, kind itself and kubectl. Prints two lines on stdout: the node image's
# name, and the directories holding kind and kubectl (PATH syntax); progress goes
# to stderr. Docker must be up (scripts/docker.sh up); run as root.
#
#   test/e2e/kind/build-images.sh
#
# What it makes (test/e2e/kind/offline-build-plan.md has the research):
#   - kind, from the Go module proxy: $CACHE/kind-<version>/kind
#   - the Kubernetes binaries and the images' programs (build-components.sh)
#   - xdplb-local/kind-base:<key>: kind's base image (images/base/Dockerfile,
#     on the Debian minbase from scripts/base-images.sh)
#   - the images kubeadm and kind's manifests name, under those names:
#     registry.k8s.io/{kube-apiserver,kube-controller-manager,kube-scheduler,
#     kube-proxy,etcd,coredns/coredns,pause}, and kind's kindnetd (a stand-in:
#     images/kindnetd) and local-path-provisioner/helper
#   - xdplb-local/kind-node:<k8s version>-<key>, by `kind build node-image
#     --type file` from a server tarball whose kube-proxy archive carries every
#     other image too, listed under full names, so that kind finds them all
#     "built" and fetches nothing.
# The node image is kept in Docker and saved under $CACHE/images, keyed by every
# version and by the recipe's files: a second run builds nothing, a fresh
# machine with the cache only loads it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
CACHE=${XDPLB_CACHE:-/var/cache/xdplb}
KIND_VERSION=v0.33.0
MINBASE=xdplb-local/debian:bookworm-minbase
export DOCKER_BUILDKIT=0

say() { echo "build-images.sh: $*" >&2; }
die() { say "$*"; exit 1; }
[[ $(id -u) == 0 ]] || die "must run as root"
docker version >/dev/null 2>&1 || die "no Docker engine: run scripts/docker.sh up"

# --- kind ---------------------------------------------------------------------
kind_bin=$CACHE/kind-$KIND_VERSION/kind
# shellcheck source=../../../scripts/lib/go-build.sh
source "$root/scripts/lib/go-build.sh"
xdplb_go_setup
if [[ ! -x $kind_bin ]]; then
  say "go install sigs.k8s.io/kind@$KIND_VERSION"
  mkdir -p "${kind_bin%/*}"
  GOBIN="${kind_bin%/*}.partial" CGO_ENABLED=0 xdplb_go_quiet install "sigs.k8s.io/kind@$KIND_VERSION"
  mv "${kind_bin%/*}.partial/kind" "$kind_bin" && rmdir "${kind_bin%/*}.partial"
fi
"$kind_bin" version | grep -q "kind $KIND_VERSION" || die "$kind_bin is not kind $KIND_VERSION"

# --- the binaries, and the key ------------------------------------------------
components=$("$here/build-components.sh")
k8s_version=$(awk '$1 == "kubernetes" { print $2 }' "$components/VERSIONS")
key=$( { cat "$components/VERSIONS"; echo "kind $KIND_VERSION"; (cd "$here/images" && find . -type f | sort | xargs sha256sum); sha256sum <"${BASH_SOURCE[0]}"; } | sha256sum | cut -c1-12)
node_image=xdplb-local/kind-node:$k8s_version-$key
base_image=xdplb-local/kind-base:$key
node_tar=$CACHE/images/kind-node-$k8s_version-$key.docker.tar

result() { printf '%s\n%s:%s\n' "$node_image" "${kind_bin%/*}" "$components"; }
if docker image inspect "$node_image" >/dev/null 2>&1; then
  say "$node_image: present"
  result; exit 0
fi
if [[ -s $node_tar ]]; then
  docker load -i "$node_tar" >/dev/null
  say "$node_image: loaded from $node_tar"
  result; exit 0
fi

t0=$SECONDS
bash "$root/scripts/base-images.sh" minbase
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# build TAG CONTEXT [docker build args...], quiet unless it fails.
build() {
  local tag=$1 ctx=$2
  shift 2
  docker build --force-rm -q --build-arg "MINBASE=$MINBASE" "$@" -t "$tag" "$ctx" >"$work/build.log" 2>&1 \
    || { tail -40 "$work/build.log" >&2; die "docker build of $tag failed"; }
}

# --- the base image -------------------------------------------------------------
kind_dir=$(cd "$work" && xdplb_go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | jq -r .Dir)
[[ -d $kind_dir/images/base/files ]] || die "no images/base/files in $kind_dir"
ctx=$work/base
mkdir -p "$ctx/bin"
cp -r "$kind_dir/images/base/files" "$ctx/files"
chmod -R u+w "$ctx/files"
# kind's fuse-overlayfs unit is for rootless nodes, and its snapshotter is not built.
rm -f "$ctx/files/etc/systemd/system/containerd-fuse-overlayfs.service"
cp "$here/images/base/Dockerfile" "$ctx/"
for b in containerd containerd-shim-runc-v2 ctr crictl; do cp "$components/$b" "$ctx/bin/"; done
say "building $base_image"
build "$base_image" "$ctx"

# --- the images the node preloads -----------------------------------------------
# component NAME... : one image per tag, from a binary of the components.
component() {
  local tag=$1 bin=$2 dest=$3 entry=${4:-} packages=${5:-} c
  ctx=$work/c-$bin
  mkdir -p "$ctx" && cp "$components/$bin" "$ctx/" && cp "$here/images/component/Dockerfile" "$ctx/"
  build "$tag" "$ctx" --build-arg "BIN=$bin" --build-arg "DEST=$dest" --build-arg "PACKAGES=$packages"
  if [[ -n $entry ]]; then
    c=$(docker create "$tag")
    docker commit --change "ENTRYPOINT [\"$entry\"]" "$c" "$tag" >/dev/null
    docker rm "$c" >/dev/null
  fi
}
reg=registry.k8s.io
say "building the component images"
component "$reg/kube-apiserver:$k8s_version" kube-apiserver /usr/local/bin/
component "$reg/kube-controller-manager:$k8s_version" kube-controller-manager /usr/local/bin/
component "$reg/kube-scheduler:$k8s_version" kube-scheduler /usr/local/bin/
component "$reg/kube-proxy:$k8s_version" kube-proxy /usr/local/bin/ "" "iptables conntrack"
# Tags kubeadm v1.34 asks for (`kubeadm config images list`); pause:3.10 is kind's sandbox image.
etcd_tag=$(awk '$1 == "etcd" { sub(/^v/, "", $2); print $2 "-0" }' "$components/VERSIONS")
coredns_tag=$(awk '$1 == "coredns" { print $2 }' "$components/VERSIONS")
component "$reg/etcd:$etcd_tag" etcd /usr/local/bin/
component "$reg/coredns/coredns:$coredns_tag" coredns / /coredns
component "$reg/pause:3.10.1" pause / /pause
docker tag "$reg/pause:3.10.1" "$reg/pause:3.10"
# kind v0.33.0's manifests (pkg/build/nodeimage/const_*.go) name these.
component docker.io/kindest/local-path-provisioner:v20260820-69b56db7 local-path-provisioner /usr/local/bin/
docker tag "$MINBASE" docker.io/kindest/local-path-helper:v20260131-7181c60a
build docker.io/kindest/kindnetd:v20260820-69b56db7 "$here/images/kindnetd"

preload=("$reg/etcd:$etcd_tag" "$reg/coredns/coredns:$coredns_tag" "$reg/pause:3.10" "$reg/pause:3.10.1"
  docker.io/kindest/kindnetd:v20260820-69b56db7 docker.io/kindest/local-path-provisioner:v20260820-69b56db7
  docker.io/kindest/local-path-helper:v20260131-7181c60a)

# --- the server tarball for `kind build node-image --type file` ------------------
tree=$work/tarball/kubernetes
mkdir -p "$tree/server/bin"
echo "$k8s_version" >"$tree/version"
for b in kubeadm kubelet kubectl; do cp "$components/$b" "$tree/server/bin/"; done
for b in kube-apiserver kube-controller-manager kube-scheduler; do
  docker save "$reg/$b:$k8s_version" -o "$tree/server/bin/$b.tar"
done
# kube-proxy.tar carries the other images too. kind reads the tags of an archive
# from the first of manifest.json or repositories it meets, and compares full
# names; so a `repositories` listing every image by full name goes first.
bundle=$work/bundle
mkdir "$bundle"
docker save "$reg/kube-proxy:$k8s_version" "${preload[@]}" | tar -x -C "$bundle"
for ref in "$reg/kube-proxy:$k8s_version" "${preload[@]}"; do
  printf '%s %s %s\n' "${ref%:*}" "${ref##*:}" "$(docker image inspect -f '{{.Id}}' "$ref" | sed 's/^sha256://')"
done | jq -R -s 'split("\n") | map(select(. != "") | split(" ")) | reduce .[] as [$repo, $tag, $id] ({}; .[$repo][$tag] = $id)' \
  >"$bundle/repositories"
(cd "$bundle" && tar -cf "$tree/server/bin/kube-proxy.tar" repositories manifest.json $(ls | grep -vx -e repositories -e manifest.json))
tar -C "$work/tarball" -czf "$work/kubernetes-server.tar.gz" kubernetes
rm -rf "$work/tarball" "$bundle"

# --- the node image ----------------------------------------------------------------
say "kind build node-image $node_image"
"$kind_bin" build node-image --type file "$work/kubernetes-server.tar.gz" --base-image "$base_image" --image "$node_image" >"$work/kind.log" 2>&1 \
  || { tail -40 "$work/kind.log" >&2; die "kind build node-image failed"; }
if grep -qi 'fetch\|pulling' "$work/kind.log"; then grep -i 'fetch\|pulling' "$work/kind.log" >&2; fi
mkdir -p "$CACHE/images"
docker save "$node_image" -o "$node_tar.partial" && mv "$node_tar.partial" "$node_tar"
say "$node_image: built in $((SECONDS - t0)) s, saved to $node_tar"
result
