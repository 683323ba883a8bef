// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Floors for the dataplane benchmark: what any balancer pays at least. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "csum.h"

SEC("xdp")
int floor_tx(struct xdp_md *ctx)
{
	return XDP_TX;
}

/* Frames a counted floor handled (the balancer counts every frame too). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} floor_seen SEC(".maps");

static __always_inline void floor_count(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&floor_seen, &zero);

	if (n)
		*n += 1;
}

SEC("xdp")
int floor_tx_counted(struct xdp_md *ctx)
{
	floor_count();
	return XDP_TX;
}

SEC("xdp")
int floor_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

/* A sink that counts what reached it (the lab's backend bench: frames a pod received). */
SEC("xdp")
int floor_drop_counted(struct xdp_md *ctx)
{
	floor_count();
	return XDP_DROP;
}

SEC("xdp")
int floor_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

/* Adds an IPv4 outer header with fixed addresses and a new Ethernet header. */
static __always_inline int encap(struct xdp_md *ctx)
{
	void *data, *data_end;
	struct ethhdr *eth;
	struct iphdr *iph;
	__u16 inner_len;

	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct iphdr)))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > data_end)
		return XDP_DROP;
	inner_len = data_end - data - sizeof(*eth) - sizeof(*iph);
	__builtin_memset(eth->h_dest, 0x02, ETH_ALEN);
	__builtin_memset(eth->h_source, 0x04, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);
	iph->version = 4;
	iph->ihl = 5;
	iph->tos = 0;
	iph->tot_len = bpf_htons(inner_len + sizeof(*iph));
	iph->id = 0;
	iph->frag_off = 0;
	iph->ttl = 64;
	iph->protocol = IPPROTO_IPIP;
	iph->check = 0;
	iph->saddr = bpf_htonl(0xc6120001); /* 198.18.0.1 */
	iph->daddr = bpf_htonl(0xc6120101); /* 198.18.1.1 */
	iph->check = xdplb_ipv4_csum(iph);
	return XDP_TX;
}

SEC("xdp")
int floor_encap(struct xdp_md *ctx)
{
	return encap(ctx);
}

/* Keys as large as the balancer's VIP key and flow key; the bench inserts the
 * zero key into each so both lookups hit. */
struct vip_sized_key { __u32 w[5]; };
struct flow_sized_key { __u32 w[10]; };

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 512);
	__type(key, struct vip_sized_key);
	__type(value, __u64);
} floor_vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1048576);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct flow_sized_key);
	__type(value, __u32);
} floor_flows SEC(".maps");

/* The least a Katran-style design pays: a VIP lookup, a connection table hit,
 * and the encapsulation. */
SEC("xdp")
int floor_lookups_encap(struct xdp_md *ctx)
{
	struct vip_sized_key vk = {};
	struct flow_sized_key fk = {};

	if (!bpf_map_lookup_elem(&floor_vips, &vk) || !bpf_map_lookup_elem(&floor_flows, &fk))
		return XDP_DROP;
	return encap(ctx);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
