/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Echo requests to VIP addresses, answered in place. */
#ifndef XDPLB_ICMP_ECHO_H
#define XDPLB_ICMP_ECHO_H

#include "icmp.h"

/* Whether a packet parsed as neither TCP nor UDP (l4_off set) is an ICMP or ICMPv6 echo request. */
static __always_inline int xdplb_is_echo_request(const struct xdplb_packet *p, void *data, void *data_end)
{
	struct xdplb_icmp_hdr *ih = data + sizeof(struct ethhdr) + p->l4_off;
	__u8 want;

	if (p->flow.family == XDPLB_FAMILY_V4 && p->flow.proto == XDPLB_IPPROTO_ICMP)
		want = XDPLB_ICMP_ECHO_REQUEST;
	else if (p->flow.family == XDPLB_FAMILY_V6 && p->flow.proto == XDPLB_IPPROTO_ICMPV6)
		want = XDPLB_ICMPV6_ECHO_REQUEST;
	else
		return 0;
	if ((void *)(ih + 1) > data_end || p->l4_off + sizeof(*ih) > p->l3_len)
		return 0;
	return ih->type == want && ih->code == 0;
}


static __always_inline void xdplb_swap_macs(struct ethhdr *eth)
{
	__u8 mac[ETH_ALEN];

	__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
}

/*
 * Turns an echo request (xdplb_is_echo_request) into its reply in place, to
 * be sent back where it came from: addresses swapped, a fresh TTL, type
 * changed, checksums updated for what changed (swapping the addresses changes
 * no sum). Returns the reason to count.
 */
static __always_inline int xdplb_icmp_echo_reply(struct xdp_md *ctx, const struct xdplb_packet *p)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct xdplb_icmp_hdr *ih;
	__u16 old;

	if ((void *)(eth + 1) > data_end)
		return XDPLB_DROP_MALFORMED;
	ih = data + sizeof(*eth) + p->l4_off;
	if ((void *)(ih + 1) > data_end)
		return XDPLB_DROP_MALFORMED;
	if (p->flow.family == XDPLB_FAMILY_V4) {
		struct iphdr *iph = (void *)(eth + 1);
		__be32 addr;

		if ((void *)(iph + 1) > data_end)
			return XDPLB_DROP_MALFORMED;
		addr = iph->saddr;
		iph->saddr = iph->daddr;
		iph->daddr = addr;
		old = *(__u16 *)&iph->ttl; /* TTL and protocol: one word of the header sum */
		iph->ttl = XDPLB_ICMP_REPLY_TTL;
		xdplb_csum_replace2(&iph->check, old, *(__u16 *)&iph->ttl);
		old = *(__u16 *)ih;
		ih->type = XDPLB_ICMP_ECHO_REPLY;
	} else {
		struct ipv6hdr *ip6h = (void *)(eth + 1);
		struct in6_addr addr;

		if ((void *)(ip6h + 1) > data_end)
			return XDPLB_DROP_MALFORMED;
		addr = ip6h->saddr;
		ip6h->saddr = ip6h->daddr;
		ip6h->daddr = addr;
		ip6h->hop_limit = XDPLB_ICMP_REPLY_TTL; /* not in any checksum */
		old = *(__u16 *)ih;
		ih->type = XDPLB_ICMPV6_ECHO_REPLY;
	}
	xdplb_csum_replace2(&ih->checksum, old, *(__u16 *)ih);
	xdplb_swap_macs(eth);
	return XDPLB_TX_ICMP_ECHO_REPLY;
}

#endif
