#!/usr/bin/env bash
# The kind suite: xdplb installed on a real kind cluster (kubelets, scheduler,
# readiness, port-forward, drain), then the operator scenarios
# (test/e2e/operator/operator.test.ts) and the cluster-only ones
# (test/e2e/kind/cluster.test.ts) with real packets.
#
#   test/e2e/kind/run.sh              with Docker, kind, kubectl and a registry
#   test/e2e/kind/run.sh --offline    no registry: everything built here (CI)
#
# --offline starts Docker if it is not running (scripts/docker.sh), builds the
# kind node image, kind and kubectl from source (build-images.sh, cached under
# /var/cache/xdplb) and local stand-ins for deploy/Dockerfile's base images
# (scripts/base-images.sh). Without it, kind's stock node image and the
# Dockerfile's real base images are pulled.
#
# Needs root (or sudo) for the host side: routes to the pod CIDRs, XDP on the
# balancer nodes' host-side veths. Docker's and kind's networks stay inside
# 198.18.0.0/15. Afterwards nothing is left: the cluster, the client container,
# the kind network (if created here), the routes, and Docker itself with the
# firewall restored (if started here). KEEP_CLUSTER=1 keeps the cluster (and
# Docker), and a later run with KEEP_CLUSTER=1 uses it again.
#
# What it does:
#   1. creates the kind cluster test/e2e/kind/cluster.yaml (two balancer workers)
#   2. builds deploy/Dockerfile (the image and its e2e target, by
#      scripts/build-image.sh: base images by digest), loads both
#   3. kubectl apply -k deploy/ with that image; the default balancer runs on
#      the balancer workers
#   4. a client container on the kind network routes the VIP to both balancer
#      workers (ECMP); the Docker host routes pod CIDRs to their nodes (a
#      balancer sends encapsulated packets to its gateway, the host); the
#      nodes accept what direct server return needs (see the sysctls below)
#   5. runs the scenarios with XDPLB_E2E_ENV=kind: the operator's, then
#      announcing the VIP by BGP to the client (test/e2e/kind/bgp.test.ts), L2
#      mode with a VIP on the kind network (test/e2e/kind/l2.test.ts), then
#      drain and uninstall (test/e2e/kind/cluster.test.ts)
set -euo pipefail
cd "$(dirname "$0")/../../.."
root=$(pwd)

offline=0
case ${1:-} in
  --offline) offline=1 ;;
  "") ;;
  *) echo "usage: $0 [--offline]" >&2; exit 2 ;;
esac

CLUSTER=xdplb-e2e
NETWORK=kind
NETWORK_SUBNET=198.19.128.0/24
IMAGE=xdplb:e2e-run
E2E_IMAGE=xdplb-e2e:e2e-run
CLIENT=xdplb-e2e-client
HOST_PINS=/sys/fs/bpf/xdplb-kind   # the host-side veths' XDP (see below)
VIP=${XDPLB_E2E_VIP:-198.19.0.10}
SUDO=$([[ $(id -u) == 0 ]] && echo || echo sudo)
export DOCKER_BUILDKIT=0   # Debian's Docker has no BuildKit; the Dockerfile needs none
say() { echo "run.sh: $*" >&2; }
t_start=$SECONDS
phase() { say "[$((SECONDS - t_start)) s] $*"; }

started_docker=0 created_network=0 routes=() work=$(mktemp -d)
cleanup() {
  local rc=$?
  set +e
  phase "cleaning up"
  docker rm -f "$CLIENT" >/dev/null 2>&1
  for x in "${host_xdp[@]}"; do
    $SUDO env PATH="$PATH" node dist/src/decap/main.js detach --nic "${x%%:*}" --pin-dir "$HOST_PINS/${x#*:}" >/dev/null
  done
  $SUDO rmdir "$HOST_PINS" 2>/dev/null
  for r in "${routes[@]}"; do $SUDO ip route del $r 2>/dev/null; done
  if [[ ${KEEP_CLUSTER:-} != 1 ]]; then
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1
    ((created_network)) && docker network rm "$NETWORK" >/dev/null
    ((started_docker)) && { $SUDO bash scripts/docker.sh down || rc=1; }
  fi
  rm -rf "$work"
  phase "done (exit $rc)"
  exit $rc
}
trap cleanup EXIT

# --- tools ----------------------------------------------------------------------
# The tests run on the project's pinned Node.js (installed from the npm registry when missing).
source scripts/lib/node.sh
xdplb_use_pinned_node
if ((offline)); then
  docker version >/dev/null 2>&1 || started_docker=1
  $SUDO bash scripts/docker.sh up
  phase "building the kind node image, kind and kubectl (cached)"
  $SUDO bash test/e2e/kind/build-images.sh >"$work/built"
  { read -r node_image; read -r tools; } <"$work/built"
  export PATH="$tools:$PATH"
  $SUDO bash scripts/base-images.sh node
  kind_image=(--image "$node_image")
else
  kind_image=()
fi
for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "the kind suite needs $tool on PATH (or --offline)" >&2; exit 1; }
done
say "$(kind version); kubectl $(kubectl version --client -o json | jq -r .clientVersion.gitVersion); $(docker version -f 'Docker {{.Server.Version}}')"

# --- the cluster ------------------------------------------------------------------
# kind's own network, created here inside 198.18.0.0/15 and IPv4 only (kind would
# take a random range and add an IPv6 one).
if ! docker network inspect "$NETWORK" >/dev/null 2>&1; then
  docker network create -d bridge --subnet "$NETWORK_SUBNET" --gateway "${NETWORK_SUBNET%.0/24}.1" \
    -o com.docker.network.bridge.enable_ip_masquerade=true "$NETWORK" >/dev/null
  created_network=1
fi
config=$work/cluster.yaml
cp test/e2e/kind/cluster.yaml "$config"
# Where root lacks CAP_SYS_RESOURCE (in its bounding set: this machine and some
# sandboxes), nothing may lower oom_score_adj: containerd must not try for pods.
if (( ! ((16#$(awk '$1 == "CapBnd:" { print $2 }' /proc/self/status) >> 24) & 1) )); then
  cat >>"$config" <<'YAML'
containerdConfigPatches:
  - |
    [plugins."io.containerd.grpc.v1.cri"]
      restrict_oom_score_adj = true
YAML
fi
if [[ ${KEEP_CLUSTER:-} == 1 ]] && kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  phase "using the kept cluster $CLUSTER"
else
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    phase "deleting the cluster $CLUSTER an earlier run left"
    kind delete cluster --name "$CLUSTER"
  fi
  phase "kind create cluster"
  kind create cluster --name "$CLUSTER" --config "$config" "${kind_image[@]}" --wait 180s
fi
export KUBECONFIG=$work/kubeconfig
kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG"

node_ip() { docker inspect -f "{{(index .NetworkSettings.Networks \"$NETWORK\").IPAddress}}" "$1"; }
for node in $(kind get nodes --name "$CLUSTER"); do
  # Backends answer from the VIP (direct server return): their node forwards
  # replies whose source it has no route back to through the pod's veth. Strict
  # reverse-path filtering (kind's default) would drop them; loose keeps the
  # anti-spoofing check for sources with no route at all.
  docker exec "$node" sysctl -qw net.ipv4.conf.all.rp_filter=2
  # A balancer sends a packet for a backend on its own node out to its gateway,
  # which routes it back: it comes in with the node's own address as source.
  docker exec "$node" sysctl -qw net.ipv4.conf.eth0.accept_local=1
done
# A veth takes a peer's XDP_TX frames only when it runs XDP itself: the host-side
# veth of each balancer node (its gateway's port) gets xdplb's decap program with
# no addresses, which passes everything, as the lab's router does.
npm run --silent build
host_xdp=()
# The balancer workers (cluster.yaml labels them).
read -ra balancer_nodes <<<"$(kubectl get nodes -l xdplb.dev/balancer-node=true -o jsonpath='{.items[*].metadata.name}')"
for node in "${balancer_nodes[@]}"; do
  ifindex=$(docker exec "$node" cat /sys/class/net/eth0/iflink)
  veth=$(ip -o link | awk -F': ' -v i="$ifindex" '$1 == i { sub(/@.*/, "", $2); print $2 }')
  [[ -n $veth ]] || { say "no host veth for $node (ifindex $ifindex)"; exit 1; }
  $SUDO env PATH="$PATH" node dist/src/decap/main.js attach --nic "$veth" --pin-dir "$HOST_PINS/$node" >/dev/null
  host_xdp+=("$veth:$node")
done

# --- the images ---------------------------------------------------------------------
phase "docker build deploy/Dockerfile"
# Its base images by digest: the stand-ins through a registry on 127.0.0.1 (--offline), else as pinned.
$SUDO bash scripts/build-image.sh "$IMAGE" "$E2E_IMAGE"
kind load docker-image "$IMAGE" "$E2E_IMAGE" --name "$CLUSTER"

# --- install, as a user would, with this build's image ---------------------------
phase "kubectl apply -k deploy/"
overlay=$work/overlay
mkdir "$overlay"
# Docker before 23 (Debian 12's docker.io is 20.10) does not know CAP_BPF and CAP_PERFMON, so kind's
# node containers lack them in their bounding set and runc cannot give them to the backend DaemonSet
# ("unable to apply caps"). The kernel accepts CAP_SYS_ADMIN in their place (bpf_capable(),
# perfmon_capable()): only on such nodes does the overlay swap them, and the balancer agents, which the
# controller renders, get the same through the XdpBalancer's spec.bpfCapability.
CAP_BPF_BIT=39
backend_caps_patch=
bpf_capability=BPF
node_caps=$(docker exec "$CLUSTER-control-plane" awk '/^CapBnd/ {print $2}' /proc/1/status)
if (( (16#$node_caps >> CAP_BPF_BIT & 1) == 0 )); then
  echo "run.sh: kind's nodes have no CAP_BPF (CapBnd $node_caps, Docker too old to know it): xdplb-backend and the balancer agents get CAP_SYS_ADMIN instead of CAP_BPF + CAP_PERFMON"
  backend_caps_patch='  - target: {kind: DaemonSet, name: xdplb-backend}
    patch: '"'"'[{"op": "replace", "path": "/spec/template/spec/containers/0/securityContext/capabilities/add", "value": ["SYS_ADMIN", "NET_ADMIN"]}]'"'"''
  bpf_capability=SYS_ADMIN
fi
cat >"$overlay/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [$(realpath --relative-to="$overlay" "$root/deploy")]
images: [{name: xdplb, newName: ${IMAGE%:*}, newTag: ${IMAGE#*:}}]
patches:
  - target: {kind: Deployment, name: xdplb-controller}
    patch: '[{"op": "add", "path": "/spec/template/spec/containers/0/imagePullPolicy", "value": "Never"}]'
$backend_caps_patch
YAML
kubectl apply -k "$overlay"
kubectl -n xdplb-system rollout status deploy/xdplb-controller --timeout=180s
kubectl wait --for=create xdpbalancer/default --timeout=60s
kubectl patch xdpbalancer default --type=merge -p '{"spec":{"nodeSelector":{"xdplb.dev/balancer-node":"true"},"nic":"eth0","bpfCapability":"'"$bpf_capability"'"}}'

# --- the client and the host's routes ------------------------------------------------
while read -r node cidr; do
  ip=$(node_ip "$node")
  $SUDO ip route replace "$cidr" via "$ip"
  routes+=("$cidr via $ip")
done < <(kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.spec.podCIDR}{"\n"}{end}')
hops=()
for node in "${balancer_nodes[@]}"; do
  hops+=(nexthop via "$(node_ip "$node")")
done
docker run -d --name "$CLIENT" --network "$NETWORK" --cap-add NET_ADMIN --entrypoint sleep "$E2E_IMAGE" infinity >/dev/null
docker exec "$CLIENT" ip route add "$VIP/32" "${hops[@]}"
# The client computes its checksums, as a host across a wire does: a veth hands
# XDP frames with checksums still to fill in, which the balancer forwards as they are.
$SUDO nsenter -t "$(docker inspect -f '{{.State.Pid}}' "$CLIENT")" -n ethtool -K eth0 tx off >/dev/null

# --- the scenarios ------------------------------------------------------------------------
phase "scenarios"
export XDPLB_E2E_ENV=kind XDPLB_E2E_IMAGE="$E2E_IMAGE" XDPLB_E2E_CLIENT="$CLIENT" XDPLB_E2E_VIP="$VIP" \
  XDPLB_KIND_CLUSTER="$CLUSTER" XDPLB_KIND_OVERLAY="$overlay"
# In this order, one file at a time: e2e/kind/bgp puts the balancer back as it
# found it; e2e/kind/cluster is last (it drains a node and uninstalls xdplb).
# A file that fails does not stop the next ones (each sets up what it needs);
# the run fails at the end. SCENARIOS picks some of them while iterating on a
# kept cluster (KEEP_CLUSTER=1 SCENARIOS=e2e/kind/bgp).
failed=()
for scenario in ${SCENARIOS-e2e/operator/operator e2e/kind/backend e2e/kind/bgp e2e/kind/l2 e2e/kind/cluster}; do
  node test/run.mjs "$scenario" || failed+=("$scenario")
done
if ((${#failed[@]})); then
  say "failed: ${failed[*]}"
  exit 1
fi
