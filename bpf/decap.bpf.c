// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xdplb decap, for reals: strips the outer header of IPIP packets addressed
 * to one of this host's tunnel addresses and hands the inner packet (whose
 * destination, the VIP, is on the real's loopback) to the kernel. Kernels with
 * ipip/ip6tnl devices can use those instead; this works without them.
 */
#include "include/counters.h"
#include "include/parse.h"

/* The decap program's maps (the balancer's are in include/xdplb_maps.h;
 * src/bpf/maps.ts is the schema of both). */

/* Local tunnel addresses whose IPIP packets are decapsulated (value unused). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XDPLB_MAX_DECAP_ADDRS);
	__type(key, struct xdplb_addr);
	__type(value, __u32);
} decap_addrs SEC(".maps");

/* Per enum xdplb_decap_reason: packets. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPLB_DECAP_REASON_MAX);
	__type(key, __u32);
	__type(value, __u64);
} decap_stats SEC(".maps");

XDPLB_BTF_ANCHOR;

static __always_inline int count(enum xdplb_decap_reason reason)
{
	xdplb_count(&decap_stats, reason);
	return reason == XDPLB_DECAP_DROP_MALFORMED ? XDP_DROP : XDP_PASS;
}

static __always_inline int is_local(__u8 family, const void *addr)
{
	struct xdplb_addr key = { .family = family };

	__builtin_memcpy(key.addr, addr, family == XDPLB_FAMILY_V6 ? 16 : 4);
	return bpf_map_lookup_elem(&decap_addrs, &key) != NULL;
}

/* Moves the Ethernet header forward over the outer IP header and drops the
 * outer header; the inner packet is left as it arrived. */
static __always_inline int strip(struct xdp_md *ctx, __u32 outer_len, __u16 inner_proto,
				 __u32 inner_min, enum xdplb_decap_reason ok)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr eth_copy, *eth = data;
	__u8 *inner_ver;

	if ((void *)(eth + 1) > data_end)
		return count(XDPLB_DECAP_DROP_MALFORMED);
	inner_ver = data + sizeof(struct ethhdr) + outer_len;
	if ((void *)inner_ver + inner_min > data_end)
		return count(XDPLB_DECAP_DROP_MALFORMED);
	if ((*inner_ver >> 4) != (inner_proto == ETH_P_IP ? 4 : 6))
		return count(XDPLB_DECAP_DROP_MALFORMED);
	__builtin_memcpy(&eth_copy, eth, sizeof(eth_copy));
	eth_copy.h_proto = bpf_htons(inner_proto);
	if (bpf_xdp_adjust_head(ctx, (int)outer_len))
		return count(XDPLB_DECAP_DROP_MALFORMED);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return count(XDPLB_DECAP_DROP_MALFORMED);
	__builtin_memcpy(eth, &eth_copy, sizeof(*eth));
	return count(ok);
}

SEC("xdp")
int xdplb_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return count(XDPLB_DECAP_PASS_NOT_ENCAP);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = (void *)(eth + 1);

		if ((void *)(iph + 1) > data_end || iph->protocol != IPPROTO_IPIP ||
		    iph->ihl < XDPLB_IPV4_MIN_IHL || !is_local(XDPLB_FAMILY_V4, &iph->daddr))
			return count(XDPLB_DECAP_PASS_NOT_ENCAP);
		/* A fragmented outer packet needs reassembly: the kernel's job. */
		if (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET))
			return count(XDPLB_DECAP_PASS_NOT_ENCAP);
		return strip(ctx, iph->ihl * 4U, ETH_P_IP, sizeof(struct iphdr),
			     XDPLB_DECAP_V4_IN_V4);
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6h = (void *)(eth + 1);

		if ((void *)(ip6h + 1) > data_end || !is_local(XDPLB_FAMILY_V6, &ip6h->daddr))
			return count(XDPLB_DECAP_PASS_NOT_ENCAP);
		if (ip6h->nexthdr == IPPROTO_IPIP)
			return strip(ctx, XDPLB_IPV6_HLEN, ETH_P_IP, sizeof(struct iphdr),
				     XDPLB_DECAP_V4_IN_V6);
		if (ip6h->nexthdr == IPPROTO_IPV6)
			return strip(ctx, XDPLB_IPV6_HLEN, ETH_P_IPV6, sizeof(struct ipv6hdr),
				     XDPLB_DECAP_V6_IN_V6);
	}
	return count(XDPLB_DECAP_PASS_NOT_ENCAP);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
