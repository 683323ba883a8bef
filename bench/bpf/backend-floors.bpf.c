// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Floors for the backend benchmark (bench/backend.ts): tc programs that do
 * the least the backend programs (bpf/backend.bpf.c) must do, on maps of the
 * same key types, sizes and kinds. The bench inserts the zero key into each
 * map so every lookup hits.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "xdplb_structs.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XDPLB_MAX_BACKEND_SERVICES);
	__type(key, struct backend_svc_key);
	__type(value, struct xdplb_endpoint);
} floor_svcs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XDPLB_BACKEND_FLOW_TABLE_SIZE);
	__type(key, struct flow_key);
	__type(value, struct xdplb_endpoint);
} floor_flows SEC(".maps");

/* Node addressing (xdplb_backend_from_nic): the node's services and the flows it gave a pod. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XDPLB_MAX_BACKEND_NODE_SERVICES);
	__type(key, struct backend_svc_key);
	__type(value, struct backend_node_svc);
} floor_node_svcs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XDPLB_BACKEND_FLOW_TABLE_SIZE);
	__type(key, struct flow_key);
	__type(value, struct xdplb_addr);
} floor_node_flows SEC(".maps");

/* What any tc program costs: the verdict that lets the packet go on. */
SEC("tc")
int floor_tc_next(struct __sk_buff *skb)
{
	return TC_ACT_UNSPEC;
}

/* The from-pod path's map work: one flow table lookup. */
SEC("tc")
int floor_tc_flow(struct __sk_buff *skb)
{
	struct flow_key fk = {};

	return bpf_map_lookup_elem(&floor_flows, &fk) ? TC_ACT_UNSPEC : TC_ACT_SHOT;
}

/* The to-pod path's map work (a service lookup, a flow table hit) and the
 * outer header's removal, by the frame's family. */
SEC("tc")
int floor_tc_lookups_decap(struct __sk_buff *skb)
{
	struct backend_svc_key sk = {};
	struct flow_key fk = {};
	__s32 outer = skb->protocol == bpf_htons(ETH_P_IP) ? -20 : -40;

	if (!bpf_map_lookup_elem(&floor_svcs, &sk) || !bpf_map_lookup_elem(&floor_flows, &fk))
		return TC_ACT_SHOT;
	if (bpf_skb_adjust_room(skb, outer, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_FIXED_GSO))
		return TC_ACT_SHOT;
	return TC_ACT_UNSPEC;
}

/* As bpf/backend.bpf.c names them (older uapi headers lack them). */
#define FLOOR_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#define FLOOR_AF_INET 2
#define FLOOR_AF_INET6 10

/*
 * Node addressing's map work for a flow the node knows (its service, the
 * flow's pod, that pod's service entry, the reply flow record_flow looks up)
 * and the outer header's removal, by the outer header's kind (IPv4 in IPv6:
 * the L3 decap flag and the EtherType rewritten). With route, also what
 * deliver_to_pod adds: the pod's route from the NIC (bpf_fib_lookup) and
 * bpf_redirect_neigh. The bench writes the entries each lookup hits; the pod
 * (floor_svcs, by the VIP's family) is the one the real program's run gets.
 */
static __always_inline int node_floor(struct __sk_buff *skb, int route)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct backend_svc_key sk = {};
	struct flow_key fk = {};
	struct xdplb_endpoint pod, *found;
	struct bpf_fib_lookup fib = {};
	struct bpf_redir_neigh nh = {};
	__u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO;
	__s32 outer = -20;
	int v4_in_v6 = 0;

	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6h = data + sizeof(struct ethhdr);

		if ((void *)(ip6h + 1) > data_end)
			return TC_ACT_SHOT;
		outer = -40;
		v4_in_v6 = ip6h->nexthdr == IPPROTO_IPIP;
		if (v4_in_v6)
			flags |= FLOOR_ADJ_ROOM_DECAP_L3_IPV4;
	}
	sk.vip_family = skb->protocol == bpf_htons(ETH_P_IPV6) && !v4_in_v6 ? XDPLB_FAMILY_V6 : XDPLB_FAMILY_V4;
	if (!bpf_map_lookup_elem(&floor_node_svcs, &sk) || !bpf_map_lookup_elem(&floor_node_flows, &fk))
		return TC_ACT_SHOT;
	found = bpf_map_lookup_elem(&floor_svcs, &sk);
	if (!found || !bpf_map_lookup_elem(&floor_flows, &fk))
		return TC_ACT_SHOT;
	__builtin_memcpy(&pod, found, sizeof(pod));
	if (bpf_skb_adjust_room(skb, outer, BPF_ADJ_ROOM_MAC, flags))
		return TC_ACT_SHOT;
	if (v4_in_v6) {
		__be16 proto = bpf_htons(ETH_P_IP);

		if (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_proto), &proto, sizeof(proto), 0))
			return TC_ACT_SHOT;
	}
	if (!route)
		return TC_ACT_UNSPEC;
	fib.ifindex = skb->ifindex;
	fib.l4_protocol = IPPROTO_TCP;
	if (pod.family == XDPLB_FAMILY_V4) {
		fib.family = FLOOR_AF_INET;
		fib.ipv4_dst = pod.addr[0];
	} else {
		fib.family = FLOOR_AF_INET6;
		__builtin_memcpy(fib.ipv6_dst, pod.addr, sizeof(fib.ipv6_dst));
	}
	if (bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_SKIP_NEIGH) != BPF_FIB_LKUP_RET_SUCCESS)
		return TC_ACT_SHOT;
	nh.nh_family = fib.family;
	__builtin_memcpy(nh.ipv6_nh, fib.ipv6_dst, sizeof(nh.ipv6_nh));
	return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
}

SEC("tc")
int floor_tc_node_decap(struct __sk_buff *skb)
{
	return node_floor(skb, 0);
}

SEC("tc")
int floor_tc_node_decap_route(struct __sk_buff *skb)
{
	return node_floor(skb, 1);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
