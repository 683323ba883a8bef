#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd from source through the Go module
# proxy, once, into a cache outside the repo; prints the cache directory.
# XDPLB_K8S_VERSION, XDPLB_ETCD_VERSION and XDPLB_CACHE_DIR override the defaults.
set -euo pipefail

K8S_VERSION=${XDPLB_K8S_VERSION:-v1.34.4}
ETCD_VERSION=${XDPLB_ETCD_VERSION:-v3.6.8}
CACHE=${XDPLB_CACHE_DIR:-/var/cache/xdplb}/control-plane-${K8S_VERSION}-etcd-${ETCD_VERSION}
export PATH=$PATH:/usr/local/go/bin
export GOFLAGS=-mod=mod

if [[ -x $CACHE/kube-apiserver && -x $CACHE/kubectl && -x $CACHE/etcd ]]; then
  echo "$CACHE"
  exit 0
fi
command -v go >/dev/null || { echo "building the control plane needs Go (/usr/local/go)" >&2; exit 1; }
mkdir -p "$CACHE"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Kubernetes: k8s.io/kubernetes replaces its staging modules with local paths;
# pin each to the matching published v0.x instead.
staging_version="v0.${K8S_VERSION#v1.}"
mkdir "$work/k8s" && cd "$work/k8s"
go mod init xdplb.dev/control-plane >/dev/null 2>&1
gomod=$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
for m in $(grep -oE '^[[:space:]]*k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk '{print $1}'); do
  go mod edit -replace="${m}=${m}@${staging_version}"
done
cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
go get "k8s.io/kubernetes@${K8S_VERSION}" >/dev/null 2>&1
go mod tidy >/dev/null 2>&1
CGO_ENABLED=0 go build -trimpath -o "$CACHE/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
CGO_ENABLED=0 go build -trimpath -o "$CACHE/kubectl" k8s.io/kubernetes/cmd/kubectl

# etcd: its server module is a main package.
mkdir "$work/etcd" && cd "$work/etcd"
go mod init xdplb.dev/etcd >/dev/null 2>&1
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >/dev/null 2>&1
go mod tidy >/dev/null 2>&1
CGO_ENABLED=0 go build -trimpath -o "$CACHE/etcd" go.etcd.io/etcd/server/v3

echo "$CACHE"
