#!/usr/bin/env bash
# The operator e2e scenarios (test/e2e/operator/operator.test.ts) on a kind
# cluster, for machines with Docker. It cannot run on the development machine
# (no Docker engine there); the same scenarios run there against a real
# kube-apiserver and the network-namespace lab.
#
# Needs: docker, kind (>= 0.20), kubectl, the Node.js of .node-version (scripts/lib/node.sh installs it) and npm, root or sudo for
# the host routes below, and a kernel with XDP on veth (Linux >= 5.9).
# What it does:
#   1. creates the kind cluster test/e2e/kind/cluster.yaml (two balancer workers)
#   2. builds the image (deploy/Dockerfile) and its e2e target, loads both
#   3. kubectl apply -k deploy/ with the image, and makes the default balancer
#      run on the balancer workers
#   4. starts a client container on the kind network whose VIP route points at
#      both balancer workers (ECMP), and routes pod CIDRs on the Docker host to
#      their nodes (encapsulated packets leave a balancer through its gateway)
#   5. runs the scenarios with XDPLB_E2E_ENV=kind
# KEEP_CLUSTER=1 keeps the cluster afterwards.
set -euo pipefail
cd "$(dirname "$0")/../../.."

CLUSTER=xdplb-e2e
IMAGE=xdplb:e2e-run
E2E_IMAGE=xdplb-e2e:e2e-run
CLIENT=xdplb-e2e-client
VIP=${XDPLB_E2E_VIP:-198.19.0.10}
SUDO=$([[ $(id -u) == 0 ]] && echo || echo sudo)

for tool in docker kind kubectl npm; do
  command -v "$tool" >/dev/null || { echo "kind e2e needs $tool on PATH" >&2; exit 1; }
done
# The tests run on the project's pinned Node.js (installed from the npm registry when missing).
source scripts/lib/node.sh
xdplb_use_pinned_node

routes=()
cleanup() {
  docker rm -f "$CLIENT" >/dev/null 2>&1 || true
  for r in "${routes[@]}"; do $SUDO ip route del $r 2>/dev/null || true; done
  [[ ${KEEP_CLUSTER:-} == 1 ]] || kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
}
trap cleanup EXIT

kind create cluster --config test/e2e/kind/cluster.yaml --wait 120s
export KUBECONFIG
KUBECONFIG=$(mktemp)
kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG"

docker build -f deploy/Dockerfile -t "$IMAGE" .
docker build -f deploy/Dockerfile --target e2e -t "$E2E_IMAGE" .
kind load docker-image "$IMAGE" "$E2E_IMAGE" --name "$CLUSTER"

# Install as a user would, with this build's image.
overlay=$(mktemp -d)
cat >"$overlay/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [$(pwd)/deploy]
images: [{name: xdplb, newName: ${IMAGE%:*}, newTag: ${IMAGE#*:}}]
patches:
  - target: {kind: Deployment, name: xdplb-controller}
    patch: '[{"op": "add", "path": "/spec/template/spec/containers/0/imagePullPolicy", "value": "Never"}]'
YAML
kubectl apply -k "$overlay"
kubectl -n xdplb-system rollout status deploy/xdplb-controller --timeout=180s
kubectl wait --for=create xdpbalancer/default --timeout=60s
kubectl patch xdpbalancer default --type=merge -p '{"spec":{"nodeSelector":{"xdplb.dev/balancer-node":"true"},"nic":"eth0"}}'

# Pod CIDRs via their nodes on the Docker host: a balancer sends encapsulated packets to its gateway.
network=kind
while read -r node cidr; do
  ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$network\").IPAddress}}" "$node")
  $SUDO ip route replace "$cidr" via "$ip"
  routes+=("$cidr via $ip")
done < <(kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.spec.podCIDR}{"\n"}{end}')

# The client: on the kind network, the VIP routed to both balancer workers.
hops=()
for node in $(kubectl get nodes -l xdplb.dev/balancer-node=true -o jsonpath='{.items[*].metadata.name}'); do
  hops+=(nexthop via "$(docker inspect -f "{{(index .NetworkSettings.Networks \"$network\").IPAddress}}" "$node")")
done
docker run -d --name "$CLIENT" --network "$network" --cap-add NET_ADMIN --entrypoint sleep "$E2E_IMAGE" infinity >/dev/null
docker exec "$CLIENT" ip route add "$VIP/32" "${hops[@]}"

npm ci --no-audit --no-fund
npm run build
XDPLB_E2E_ENV=kind XDPLB_E2E_IMAGE="$E2E_IMAGE" XDPLB_E2E_CLIENT="$CLIENT" XDPLB_E2E_VIP="$VIP" \
  node test/run.mjs e2e/operator/operator
