#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd from source through the Go module
# proxy, once, into a cache outside the repo; prints the cache directory.
# XDPLB_K8S_VERSION, XDPLB_ETCD_VERSION and XDPLB_CACHE override the defaults.
# The kind node's binaries come from test/e2e/kind/build-components.sh, the
# same way (scripts/lib/go-build.sh).
set -euo pipefail

K8S_VERSION=${XDPLB_K8S_VERSION:-v1.34.4}
ETCD_VERSION=${XDPLB_ETCD_VERSION:-v3.6.8}
CACHE=${XDPLB_CACHE:-/var/cache/xdplb}/control-plane-${K8S_VERSION}-etcd-${ETCD_VERSION}
# shellcheck source=../../../scripts/lib/go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/lib/go-build.sh"

if [[ -x $CACHE/kube-apiserver && -x $CACHE/kubectl && -x $CACHE/etcd ]]; then
  echo "$CACHE"
  exit 0
fi
xdplb_go_setup
mkdir -p "$CACHE"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

xdplb_k8s_module "$work/k8s" "$K8S_VERSION" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
ldflags=$(xdplb_k8s_ldflags "$K8S_VERSION")
for cmd in kube-apiserver kubectl; do
  [[ -x $CACHE/$cmd ]] || xdplb_go_build "$work/k8s" "$CACHE/$cmd" "$ldflags" "k8s.io/kubernetes/cmd/$cmd"
done

# etcd: its server module is a main package.
if [[ ! -x $CACHE/etcd ]]; then
  xdplb_go_module "$work/etcd" xdplb.dev/etcd go.etcd.io/etcd/server/v3
  xdplb_go_require "$work/etcd" "go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
  xdplb_go_build "$work/etcd" "$CACHE/etcd" "" go.etcd.io/etcd/server/v3
fi

echo "$CACHE"
