// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Load generator for the lab benchmark, run with BPF_PROG_TEST_RUN in
 * live-frames mode on a veth: XDP_TX sends each frame to the peer. Recycled
 * pages keep whatever the far side wrote into them, so every frame is stamped
 * whole from the template; the UDP source port cycles over PKTGEN_FLOWS flows.
 * pktgen: UDP to a VIP, as a client sends it to a balancer. pktgen_ipip: the
 * same UDP inside an outer IPv4 header, as a balancer sends it to a backend.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define PKTGEN_LEN 64 /* Ethernet + IPv4 + UDP + payload, UDP checksum 0 */
#define PKTGEN_IPIP_LEN (PKTGEN_LEN + sizeof(struct iphdr)) /* the same behind an outer IPv4 header */
#define PKTGEN_FLOWS 1024
#define PKTGEN_FIRST_SPORT 10000
#define PKTGEN_SPORT_OFF (sizeof(struct ethhdr) + sizeof(struct iphdr))
#define PKTGEN_IPIP_SPORT_OFF (PKTGEN_SPORT_OFF + sizeof(struct iphdr))

struct pktgen_template {
	__u8 bytes[PKTGEN_LEN];
};

struct pktgen_ipip_template {
	__u8 bytes[PKTGEN_IPIP_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pktgen_template);
} pktgen_tmpl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pktgen_ipip_template);
} pktgen_ipip_tmpl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} pktgen_count SEC(".maps");

/* Stamps the template and the frame's source port; XDP_TX sends it. */
#define PKTGEN_STAMP(ctx, tmpl_map, len, sport_off)						\
	({											\
		void *data = (void *)(long)(ctx)->data;					\
		void *data_end = (void *)(long)(ctx)->data_end;				\
		__u32 zero = 0;									\
		void *t = bpf_map_lookup_elem(&(tmpl_map), &zero);				\
		__u64 *n = bpf_map_lookup_elem(&pktgen_count, &zero);				\
		int verdict = XDP_DROP;								\
		if (t && n && data + (len) <= data_end) {					\
			__builtin_memcpy(data, t, (len));					\
			*(__be16 *)(data + (sport_off)) = bpf_htons(PKTGEN_FIRST_SPORT + (*n % PKTGEN_FLOWS)); \
			*n += 1;								\
			verdict = XDP_TX;							\
		}										\
		verdict;									\
	})

SEC("xdp")
int pktgen(struct xdp_md *ctx)
{
	return PKTGEN_STAMP(ctx, pktgen_tmpl, PKTGEN_LEN, PKTGEN_SPORT_OFF);
}

SEC("xdp")
int pktgen_ipip(struct xdp_md *ctx)
{
	return PKTGEN_STAMP(ctx, pktgen_ipip_tmpl, PKTGEN_IPIP_LEN, PKTGEN_IPIP_SPORT_OFF);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
