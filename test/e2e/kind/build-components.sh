#!/usr/bin/env bash
# Builds every binary a kind node image needs, from source through the Go
# module proxy (and pause with gcc), once, into a cache outside the repo;
# prints the cache directory on stdout (progress goes to stderr).
#
#   test/e2e/kind/build-components.sh        build what is missing, print the dir
#
# The cache, ${XDPLB_CACHE:-/var/cache/xdplb}/kind-components-<key>, is keyed
# by every version below (and RECIPE, bumped when the build flags change); its
# VERSIONS file lists them. Each binary is moved into it only once it has been
# built and has reported its version, so an interrupted or failed run keeps
# what it finished and the next run builds only the rest. A second run builds
# nothing. Builds run one at a time under nice -n 19 with GOMAXPROCS=2
# (scripts/lib/go-build.sh). A component that fails is reported and the rest
# are still built; the exit status is then 1.
#
# The versions are what kind v0.33.0's node image and kubeadm v1.34 expect
# (test/e2e/kind/offline-build-plan.md): kubeadm's etcd image is 3.6.5-0, its
# CoreDNS v1.12.1, its pause 3.10.1; containerd as in kind's base image;
# crictl and local-path-provisioner at the newest versions the proxy serves
# that pass the checksum database.
set -euo pipefail

K8S_VERSION=${XDPLB_K8S_VERSION:-v1.34.4}
ETCD_VERSION=v3.6.5
COREDNS_VERSION=v1.12.1
CONTAINERD_VERSION=v2.3.4
CRICTL_VERSION=v1.34.0
LPP_VERSION=v0.0.30
PAUSE_VERSION=3.10.1
RECIPE=2

versions="kubernetes $K8S_VERSION
etcd $ETCD_VERSION
coredns $COREDNS_VERSION
containerd $CONTAINERD_VERSION
crictl $CRICTL_VERSION
local-path-provisioner $LPP_VERSION
pause $PAUSE_VERSION
recipe $RECIPE"
key=$(sha256sum <<<"$versions" | cut -c1-12)
CACHE=${XDPLB_CACHE:-/var/cache/xdplb}/kind-components-$key

K8S_BINS=(kubelet kubeadm kube-proxy kube-scheduler kube-controller-manager kube-apiserver kubectl)
ETCD_BINS=(etcd etcdctl)
CONTAINERD_BINS=(containerd containerd-shim-runc-v2 ctr)
ALL_BINS=("${K8S_BINS[@]}" "${ETCD_BINS[@]}" coredns "${CONTAINERD_BINS[@]}" crictl local-path-provisioner pause)

missing() {
  local b
  for b in "$@"; do [[ -x $CACHE/$b ]] || return 0; done
  return 1
}

if ! missing "${ALL_BINS[@]}"; then
  echo "$CACHE"
  exit 0
fi

# shellcheck source=../../../scripts/lib/go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/lib/go-build.sh"
xdplb_go_setup
mkdir -p "$CACHE"
printf '%s\n' "$versions" >"$CACHE/VERSIONS"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()

# verify NAME EXPECTED ARGS...: NAME's version output must contain EXPECTED;
# otherwise the binary is set aside as NAME.bad.
verify() {
  local name=$1 expected=$2 out
  shift 2
  out=$("$CACHE/$name" "$@" 2>&1 | head -n 3) || true
  if [[ $out == *"$expected"* ]]; then
    echo "  $name: $(grep -m1 -F -- "$expected" <<<"$out")" >&2
    rm -f "$CACHE/$name.bad"
  else
    echo "  $name $*: expected '$expected', got: $out" >&2
    mv -f "$CACHE/$name" "$CACHE/$name.bad"
    return 1
  fi
}

# step NAME FUNCTION: runs FUNCTION (with errexit) for a missing NAME, timed;
# a failure is recorded and the script goes on.
step() {
  local name=$1 fn=$2 t0=$SECONDS rc
  missing "$name" || return 0
  echo "building $name" >&2
  set +e
  (set -e; "$fn" "$name")
  rc=$?
  set -e
  if ((rc == 0)); then
    echo "built $name in $((SECONDS - t0)) s" >&2
    printf '%s %s s\n' "$name" "$((SECONDS - t0))" >>"$CACHE/build-times"
  else
    echo "FAILED $name after $((SECONDS - t0)) s" >&2
    failed+=("$name")
  fi
}

# Kubernetes: one module for all seven commands; version-stamped (kubeadm
# compares versions, and kind writes the node's version from kubeadm's).
build_k8s() {
  if [[ ! -f $work/k8s/.ready ]]; then
    rm -rf "$work/k8s"
    xdplb_k8s_module "$work/k8s" "$K8S_VERSION" "${K8S_BINS[@]/#/k8s.io/kubernetes/cmd/}"
    xdplb_k8s_ldflags "$K8S_VERSION" >"$work/k8s/ldflags"
    touch "$work/k8s/.ready"
  fi
  xdplb_go_build "$work/k8s" "$CACHE/$1" "$(<"$work/k8s/ldflags")" "k8s.io/kubernetes/cmd/$1"
  case $1 in
    kubeadm) verify "$1" "$K8S_VERSION" version -o short ;;
    kubectl) verify "$1" "Client Version: $K8S_VERSION" version --client ;;
    *) verify "$1" "Kubernetes $K8S_VERSION" --version ;;
  esac
}

build_etcd() {
  if [[ ! -f $work/etcd/.ready ]]; then
    rm -rf "$work/etcd"
    xdplb_go_module "$work/etcd" xdplb.dev/etcd go.etcd.io/etcd/server/v3 go.etcd.io/etcd/etcdctl/v3
    xdplb_go_require "$work/etcd" "go.etcd.io/etcd/server/v3@$ETCD_VERSION" "go.etcd.io/etcd/etcdctl/v3@$ETCD_VERSION"
    touch "$work/etcd/.ready"
  fi
  case $1 in
    etcd)
      xdplb_go_build "$work/etcd" "$CACHE/etcd" "" go.etcd.io/etcd/server/v3
      verify etcd "etcd Version: ${ETCD_VERSION#v}" --version ;;
    etcdctl)
      xdplb_go_build "$work/etcd" "$CACHE/etcdctl" "" go.etcd.io/etcd/etcdctl/v3
      verify etcdctl "etcdctl version: ${ETCD_VERSION#v}" version ;;
  esac
}

# CoreDNS, trimmed: upstream's main imports all ~55 plugins (with the AWS,
# Azure and GCP SDKs); kubeadm's Corefile uses only these (plus log, hosts,
# rewrite and template, which people add). The plugin chain's order comes from
# core/dnsserver's directive list, not from the imports.
build_coredns() {
  rm -rf "$work/coredns"
  xdplb_go_module "$work/coredns" xdplb.dev/coredns
  {
    printf 'package main\n\nimport (\n\t"github.com/coredns/coredns/coremain"\n\n'
    printf '\t_ "github.com/coredns/coredns/plugin/%s"\n' \
      errors health ready kubernetes metrics forward cache loop reload loadbalance log hosts rewrite template
    printf ')\n\nfunc main() { coremain.Run() }\n'
  } >"$work/coredns/main.go"
  xdplb_go_require "$work/coredns" "github.com/coredns/coredns@$COREDNS_VERSION"
  xdplb_go_build "$work/coredns" "$CACHE/coredns" \
    "-X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" .
  verify coredns "CoreDNS-${COREDNS_VERSION#v}" -version
}

# containerd as kind's base image builds it, without cgo (btrfs needs it and
# drops out; kind's node uses overlayfs).
build_containerd() {
  local m=github.com/containerd/containerd/v2
  if [[ ! -f $work/containerd/.ready ]]; then
    rm -rf "$work/containerd"
    xdplb_go_module "$work/containerd" xdplb.dev/containerd "${CONTAINERD_BINS[@]/#/$m/cmd/}"
    xdplb_go_require "$work/containerd" "$m@$CONTAINERD_VERSION"
    touch "$work/containerd/.ready"
  fi
  xdplb_go_build "$work/containerd" "$CACHE/$1" \
    "-X $m/version.Version=$CONTAINERD_VERSION -X $m/version.Package=$m" \
    -tags "no_btrfs no_devmapper no_zfs no_aufs urfave_cli_no_docs" "$m/cmd/$1"
  case $1 in
    containerd-shim-runc-v2) verify "$1" "$CONTAINERD_VERSION" -v ;;
    *) verify "$1" "$CONTAINERD_VERSION" --version ;;
  esac
}

build_crictl() {
  local m=sigs.k8s.io/cri-tools
  rm -rf "$work/crictl"
  xdplb_go_module "$work/crictl" xdplb.dev/crictl "$m/cmd/crictl"
  xdplb_go_require "$work/crictl" "$m@$CRICTL_VERSION"
  xdplb_go_build "$work/crictl" "$CACHE/crictl" "-X $m/pkg/version.Version=$CRICTL_VERSION" "$m/cmd/crictl"
  verify crictl "$CRICTL_VERSION" --version
}

build_local_path_provisioner() {
  local m=github.com/rancher/local-path-provisioner
  rm -rf "$work/lpp"
  xdplb_go_module "$work/lpp" xdplb.dev/lpp "$m"
  xdplb_go_require "$work/lpp" "$m@$LPP_VERSION"
  xdplb_go_build "$work/lpp" "$CACHE/local-path-provisioner" "-X main.VERSION=$LPP_VERSION" "$m"
  verify local-path-provisioner "$LPP_VERSION" --version
}

# pause: the C source ships in the k8s.io/kubernetes module.
build_pause() {
  local dir
  dir=$(xdplb_go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
  nice -n "${XDPLB_BUILD_NICE:-19}" gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION" \
    -o "$CACHE/pause.partial" "$dir/build/pause/linux/pause.c"
  strip "$CACHE/pause.partial"
  mv "$CACHE/pause.partial" "$CACHE/pause"
  verify pause "v$PAUSE_VERSION" -v
}

step pause build_pause
for b in "${K8S_BINS[@]}"; do step "$b" build_k8s; done
for b in "${ETCD_BINS[@]}"; do step "$b" build_etcd; done
step coredns build_coredns
for b in "${CONTAINERD_BINS[@]}"; do step "$b" build_containerd; done
step crictl build_crictl
step local-path-provisioner build_local_path_provisioner

if ((${#failed[@]})); then
  echo "not built: ${failed[*]} (see above); built ones are kept in $CACHE" >&2
  exit 1
fi
echo "$CACHE"
