// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Floors for the backend benchmark (bench/backend.ts): tc programs that do
 * the least the backend programs (bpf/backend.bpf.c) must do, on maps of the
 * same key types, sizes and kinds. The bench inserts the zero key into each
 * map so every lookup hits.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in6.h>
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

char LICENSE[] SEC("license") = "Dual BSD/GPL";
