#!/bin/bash
# A stand-in for kind's kindnetd, for machines that cannot fetch its image (its
# source is in no module the Go proxy serves). It does what kindnetd does for
# a kind cluster, and no more: every few seconds it reads the nodes from the
# API server, writes this node's CNI config (ptp + host-local on its podCIDR,
# kindnet's template), routes the other nodes' podCIDRs via their addresses,
# and masquerades pod traffic leaving the pod network.
#
# One difference on purpose: it masquerades only packets *sourced* from the pod
# subnet. kindnetd masquerades everything leaving for outside it, which would
# rewrite a backend's direct-server-return reply (source = the VIP).
#
# Environment (kind's kindnet DaemonSet): HOST_IP, POD_SUBNET.
set -uo pipefail
: "${HOST_IP:?}" "${POD_SUBNET:?}"
SA=/var/run/secrets/kubernetes.io/serviceaccount
API="https://${KUBERNETES_SERVICE_HOST}:${KUBERNETES_SERVICE_PORT}"
CNI_CONF=/etc/cni/net.d/10-kindnet.conflist
INTERVAL=5

log() { echo "$(date -u +%FT%TZ) kindnetd-standin: $*"; }

nodes() {
  curl -fsS --max-time 10 --cacert "$SA/ca.crt" -H "Authorization: Bearer $(cat "$SA/token")" "$API/api/v1/nodes" |
    jq -r '.items[] | [(.status.addresses[] | select(.type == "InternalIP") | .address), (.spec.podCIDR // "")] | @tsv'
}

write_cni() {
  local cidr=$1 mtu tmp
  mtu=$(cat /sys/class/net/eth0/mtu 2>/dev/null || echo 1500)
  tmp=$(mktemp "$CNI_CONF.XXXX")
  cat >"$tmp" <<JSON
{
  "cniVersion": "0.3.1",
  "name": "kindnet",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "/run/cni-ipam-state",
        "routes": [{ "dst": "0.0.0.0/0" }],
        "ranges": [[{ "subnet": "$cidr" }]]
      },
      "mtu": $mtu
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
JSON
  if cmp -s "$tmp" "$CNI_CONF"; then rm -f "$tmp"; else mv -f "$tmp" "$CNI_CONF" && log "wrote $CNI_CONF for $cidr"; fi
}

masquerade() {
  local rule=(-s "$POD_SUBNET" ! -d "$POD_SUBNET" -m addrtype ! --dst-type LOCAL -m comment --comment "kindnetd-standin: pod egress" -j MASQUERADE)
  iptables -t nat -C POSTROUTING "${rule[@]}" 2>/dev/null || iptables -t nat -A POSTROUTING "${rule[@]}"
}

log "node $HOST_IP, pod subnet $POD_SUBNET"
while :; do
  if list=$(nodes); then
    while IFS=$'\t' read -r ip cidr; do
      [[ -n $cidr ]] || continue
      if [[ $ip == "$HOST_IP" ]]; then
        write_cni "$cidr"
      else
        ip route replace "$cidr" via "$ip" 2>/dev/null || log "cannot route $cidr via $ip"
      fi
    done <<<"$list"
    masquerade || log "cannot add the masquerade rule"
  else
    log "cannot list nodes from $API; retrying"
  fi
  sleep "$INTERVAL"
done
