# Sourced by the scripts that build binaries from the Go module proxy
# (test/e2e/control-plane/build.sh, test/e2e/kind/build-components.sh).
# Each build happens in a throwaway module whose tools.go imports the wanted
# main packages; GOCACHE and GOMODCACHE stay at Go's defaults, so the scripts
# share compiled packages. Every go command runs under `nice -n 19` with
# GOMAXPROCS=2 (XDPLB_BUILD_NICE, XDPLB_BUILD_PROCS override): the builds
# share the machine with benchmarks and CI.

xdplb_go_setup() {
  export PATH=$PATH:/usr/local/go/bin
  export GOFLAGS=-mod=mod
  command -v go >/dev/null || { echo "building from the Go module proxy needs Go (/usr/local/go or on PATH)" >&2; return 1; }
}

xdplb_go() {
  nice -n "${XDPLB_BUILD_NICE:-19}" env GOMAXPROCS="${XDPLB_BUILD_PROCS:-2}" go "$@"
}

# xdplb_go_quiet ARGS...: a go command whose output is shown only if it fails.
xdplb_go_quiet() {
  local out
  if ! out=$(xdplb_go "$@" 2>&1); then
    printf '%s\n' "$out" >&2
    return 1
  fi
}

# xdplb_go_module DIR NAME [PKG...]: a module named NAME in DIR (created) whose
# tools.go imports each PKG (no tools.go without one: the caller writes its own
# main package). Add requirements with xdplb_go_require.
xdplb_go_module() {
  local dir=$1 name=$2
  shift 2
  mkdir -p "$dir"
  (cd "$dir" && xdplb_go_quiet mod init "$name") || return 1
  (($#)) || return 0
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    printf '\t_ "%s"\n' "$@"
    printf ')\n'
  } >"$dir/tools.go"
}

# xdplb_go_require DIR MODULE@VERSION...: require those versions, then tidy.
xdplb_go_require() {
  local dir=$1
  shift
  (cd "$dir" && xdplb_go_quiet get "$@" && xdplb_go_quiet mod tidy)
}

# xdplb_k8s_module DIR K8S_VERSION PKG...: a module for k8s.io/kubernetes
# main packages. k8s.io/kubernetes replaces its staging modules with local
# paths; pin each to the matching published v0.x instead.
xdplb_k8s_module() {
  local dir=$1 version=$2 gomod m
  shift 2
  xdplb_go_module "$dir" xdplb.dev/k8s "$@" || return 1
  gomod=$(xdplb_go mod download -json "k8s.io/kubernetes@${version}" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  [[ -n $gomod ]] || { echo "k8s.io/kubernetes@${version}: not served by the module proxy" >&2; return 1; }
  for m in $(grep -oE '^[[:space:]]*k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk '{print $1}'); do
    (cd "$dir" && go mod edit -replace="${m}=${m}@v0.${version#v1.}")
  done
  xdplb_go_require "$dir" "k8s.io/kubernetes@${version}"
}

# xdplb_k8s_ldflags VERSION: -X flags so the binaries report VERSION (as
# Kubernetes' hack/lib/version.sh sets them) instead of v0.0.0-master; kubeadm
# and the node status read them. The build date is the release's commit time.
xdplb_k8s_ldflags() {
  local version=$1 major minor date pkg flags=""
  major=${version#v}; major=${major%%.*}
  minor=${version#v*.}; minor=${minor%%.*}
  date=$(xdplb_go list -m -json "k8s.io/kubernetes@${version}" | sed -n 's/.*"Time": "\(.*\)",*/\1/p')
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=${date:-1970-01-01T00:00:00Z}"
  done
  printf '%s' "${flags# }"
}

# xdplb_go_build DIR OUT LDFLAGS [GO BUILD ARGS...] PKG: a static, stripped
# build of PKG from module DIR. It is written to OUT.partial and renamed to OUT
# only once the build succeeded, so an interrupted build leaves no OUT.
xdplb_go_build() {
  local dir=$1 out=$2 ldflags=$3
  shift 3
  rm -f "$out.partial"
  (cd "$dir" && export CGO_ENABLED=0 && xdplb_go build -trimpath -ldflags "-s -w $ldflags" -o "$out.partial" "$@") &&
    mv "$out.partial" "$out"
}
