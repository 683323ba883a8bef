// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Load generator for the lab benchmark, run with BPF_PROG_TEST_RUN in
 * live-frames mode on a veth: XDP_TX sends each frame to the peer. Recycled
 * pages keep whatever the far side wrote into them, so every frame is stamped
 * whole from the template; the UDP source port cycles over PKTGEN_FLOWS flows.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define PKTGEN_LEN 64 /* Ethernet + IPv4 + UDP + payload, UDP checksum 0 */
#define PKTGEN_FLOWS 1024
#define PKTGEN_SPORT_OFF (sizeof(struct ethhdr) + sizeof(struct iphdr))

struct pktgen_template {
	__u8 bytes[PKTGEN_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pktgen_template);
} pktgen_tmpl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} pktgen_count SEC(".maps");

SEC("xdp")
int pktgen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct pktgen_template *t;
	__u32 zero = 0;
	__u64 *n;

	t = bpf_map_lookup_elem(&pktgen_tmpl, &zero);
	n = bpf_map_lookup_elem(&pktgen_count, &zero);
	if (!t || !n || data + PKTGEN_LEN > data_end)
		return XDP_DROP;
	__builtin_memcpy(data, t->bytes, PKTGEN_LEN);
	*(__be16 *)(data + PKTGEN_SPORT_OFF) = bpf_htons(10000 + (*n % PKTGEN_FLOWS));
	*n += 1;
	return XDP_TX;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
