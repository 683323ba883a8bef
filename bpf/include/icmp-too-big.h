/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Packets too big to encapsulate, answered as a router answers them; rate-limited per CPU. */
#ifndef XDPLB_ICMP_TOO_BIG_H
#define XDPLB_ICMP_TOO_BIG_H

#include "icmp.h"
#include "window.h"
#include "xdplb_maps.h"

/* Whether this CPU may send another too-big answer this second; counts it if so. */
static __always_inline int xdplb_icmp_too_big_allowed(void)
{
	__u32 zero = 0;
	struct icmp_budget *b = bpf_map_lookup_elem(&icmp_budget, &zero);

	return b && xdplb_window_take(&b->window_start_ns, &b->sent, XDPLB_ICMP_TOO_BIG_PER_CPU_RATE, bpf_ktime_get_ns());
}

/*
 * Makes the frame of an answer that quotes the packet: cut to the Ethernet
 * header and the packet's first `quote` bytes, room for an `l3_hlen`-byte IP
 * header and the ICMP header put between them, the Ethernet header addressed
 * back to the sender (macs: theirs, then ours). Returns the new IP header, the
 * ICMP header and the quote following it; NULL if the packet is shorter than
 * the quote or the driver refused. Called with constants, so that the verifier
 * sees fixed offsets.
 */
static __always_inline void *xdplb_quoting_frame(struct xdp_md *ctx, const struct xdplb_packet *p,
						 const __u8 *macs, __u16 proto, __u32 l3_hlen, __u32 quote)
{
	__u32 head = l3_hlen + sizeof(struct xdplb_icmp_hdr);
	void *data, *data_end;

	if (p->l3_len < quote)
		return NULL;
	if (bpf_xdp_adjust_tail(ctx, (int)(sizeof(struct ethhdr) + quote) - (int)(ctx->data_end - ctx->data)) ||
	    bpf_xdp_adjust_head(ctx, -(int)head))
		return NULL;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + sizeof(struct ethhdr) + head + quote > data_end)
		return NULL;
	xdplb_answer_eth(data, macs, proto);
	return data + sizeof(struct ethhdr);
}

/*
 * Turns a packet too big to encapsulate into the ICMP error that tells its
 * sender so, in place, and returns the reason to count: the frame is cut to
 * its head (the quote), and an IP and an ICMP header from the VIP to the
 * client go in front, carrying the MTU that fits (max_pkt_size less the outer
 * header the real's family needs). IPv4 without DF cannot be answered: the
 * sender allowed fragmentation, which the balancer does not do.
 */
static __always_inline int xdplb_icmp_too_big(struct xdp_md *ctx, const struct xdplb_packet *p,
					      const struct xdplb_addr *real, const struct ctl_config *cfg)
{
	__u32 outer = real->family == XDPLB_FAMILY_V6 ? XDPLB_IPV6_HLEN : XDPLB_IPV4_HLEN;
	__u32 mtu = cfg->max_pkt_size > outer ? cfg->max_pkt_size - outer : 0;
	__u8 macs[2 * ETH_ALEN];
	struct xdplb_icmp_hdr *ih;
	struct ethhdr *eth;
	void *data, *data_end;

	if (p->flow.family == XDPLB_FAMILY_V4 && !p->df)
		return XDPLB_DROP_TOO_BIG;
	if (!xdplb_icmp_too_big_allowed())
		return XDPLB_DROP_TOO_BIG_ICMP_LIMITED;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDPLB_DROP_TOO_BIG;
	/* The answer goes back where the packet came from. */
	__builtin_memcpy(macs, eth->h_source, ETH_ALEN);
	__builtin_memcpy(macs + ETH_ALEN, eth->h_dest, ETH_ALEN);

	if (p->flow.family == XDPLB_FAMILY_V4) {
		__u32 quote = XDPLB_ICMP_TOO_BIG_QUOTE_V4;
		struct iphdr *iph = xdplb_quoting_frame(ctx, p, macs, ETH_P_IP, sizeof(*iph), quote);

		if (!iph)
			return XDPLB_DROP_TOO_BIG;
		ih = (void *)(iph + 1);
		iph->version = 4;
		iph->ihl = XDPLB_IPV4_MIN_IHL;
		iph->tos = 0;
		iph->tot_len = bpf_htons(sizeof(*iph) + sizeof(*ih) + quote);
		iph->id = 0;
		iph->frag_off = 0;
		iph->ttl = XDPLB_ICMP_REPLY_TTL;
		iph->protocol = XDPLB_IPPROTO_ICMP;
		iph->check = 0;
		iph->saddr = p->flow.dst[0];
		iph->daddr = p->flow.src[0];
		iph->check = xdplb_ipv4_csum(iph);
		ih->type = XDPLB_ICMP_DEST_UNREACH;
		ih->code = XDPLB_ICMP_FRAG_NEEDED;
		ih->checksum = 0;
		ih->rest = bpf_htonl(mtu & 0xffff); /* unused (16 bits), next-hop MTU (16 bits) */
		ih->checksum = xdplb_csum_fold64(bpf_csum_diff(NULL, 0, (void *)ih, sizeof(*ih) + quote, 0));
	} else {
		__u32 quote = XDPLB_ICMP_TOO_BIG_QUOTE_V6;
		struct ipv6hdr *ip6h = xdplb_quoting_frame(ctx, p, macs, ETH_P_IPV6, sizeof(*ip6h), quote);
		__u64 sum;

		if (!ip6h)
			return XDPLB_DROP_TOO_BIG;
		ih = (void *)(ip6h + 1);
		*(__be32 *)ip6h = bpf_htonl(6U << 28); /* version; traffic class and flow label 0 */
		ip6h->payload_len = bpf_htons(sizeof(*ih) + quote);
		ip6h->nexthdr = XDPLB_IPPROTO_ICMPV6;
		ip6h->hop_limit = XDPLB_ICMP_REPLY_TTL;
		__builtin_memcpy(&ip6h->saddr, p->flow.dst, sizeof(ip6h->saddr));
		__builtin_memcpy(&ip6h->daddr, p->flow.src, sizeof(ip6h->daddr));
		ih->type = XDPLB_ICMPV6_PKT_TOOBIG;
		ih->code = 0;
		ih->checksum = 0;
		ih->rest = bpf_htonl(mtu);
		/* RFC 4443: the sum covers a pseudo-header of the addresses, the length and the next header. */
		sum = bpf_csum_diff(NULL, 0, (void *)&ip6h->saddr, 2 * sizeof(ip6h->saddr), 0);
		sum += bpf_htonl(sizeof(*ih) + quote) + bpf_htonl(XDPLB_IPPROTO_ICMPV6);
		sum += bpf_csum_diff(NULL, 0, (void *)ih, sizeof(*ih) + quote, 0) & 0xffffffff;
		ih->checksum = xdplb_csum_fold64(sum);
	}
	return XDPLB_TX_ICMP_TOO_BIG;
}

#endif
