/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMP the balancer answers itself: echo requests to VIP addresses (Katran
 * does too). Answering in XDP, rather than passing to the host, matters
 * because no VIP is a node address: the host would forward the request back
 * toward the gateway, where it loops until its TTL runs out.
 */
#ifndef XDPLB_ICMP_H
#define XDPLB_ICMP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>

#include "csum.h"
#include "parse.h"
#include "xdplb_consts.h"
#include "xdplb_maps.h"

/* The header of every ICMP and ICMPv6 message (RFC 792, RFC 4443). */
struct xdplb_icmp_hdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 rest; /* echo: identifier and sequence number; errors: unused, or the next-hop MTU */
};

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

/* Whether an ICMP type of the family is an error, which carries the head of the packet it is about. */
static __always_inline int xdplb_is_icmp_error(__u8 family, __u8 type)
{
	if (family == XDPLB_FAMILY_V4)
		return type == XDPLB_ICMP_DEST_UNREACH || type == XDPLB_ICMP_TIME_EXCEEDED ||
		       type == XDPLB_ICMP_PARAMETERPROB;
	return type == XDPLB_ICMPV6_DEST_UNREACH || type == XDPLB_ICMPV6_PKT_TOOBIG ||
	       type == XDPLB_ICMPV6_TIME_EXCEED || type == XDPLB_ICMPV6_PARAMPROB;
}

/*
 * For an ICMP or ICMPv6 error to a VIP address about a TCP or UDP packet the
 * VIP sent (a real's reply, from the VIP, that a router on the way to the
 * client could not deliver): replaces p->flow with the flow that packet
 * belongs to, as the client's packets carry it (the inner tuple reversed), so
 * that the error can follow them to their real. Returns 0, p untouched, for
 * anything else. An inner IPv4 header's options are skipped (its IHL); an
 * inner IPv6 header's extension headers are not walked: it must be followed
 * directly by TCP or UDP. A later fragment quotes no ports: not followed.
 */
static __always_inline int xdplb_icmp_error_flow(struct xdplb_packet *p, void *data, void *data_end)
{
	struct xdplb_icmp_hdr *ih = data + sizeof(struct ethhdr) + p->l4_off;
	__u32 inner_off = p->l4_off + sizeof(*ih); /* the erroneous packet, from the IP header */
	void *l3 = data + sizeof(struct ethhdr);
	struct flow_key f = { .family = p->flow.family };
	__be16 *ports; /* source, destination */

	if (p->flow.proto != (p->flow.family == XDPLB_FAMILY_V4 ? XDPLB_IPPROTO_ICMP : XDPLB_IPPROTO_ICMPV6))
		return 0;
	if ((void *)(ih + 1) > data_end || !xdplb_is_icmp_error(p->flow.family, ih->type))
		return 0;
	if (p->flow.family == XDPLB_FAMILY_V4) {
		struct iphdr *in = l3 + inner_off;

		if ((void *)(in + 1) > data_end || in->version != 4 || in->ihl < XDPLB_IPV4_MIN_IHL ||
		    (in->frag_off & bpf_htons(IP_OFFSET)))
			return 0;
		if (in->saddr != p->flow.dst[0])
			return 0; /* not about a packet this address sent */
		f.proto = in->protocol;
		f.src[0] = in->daddr;
		f.dst[0] = in->saddr;
		ports = (void *)in + in->ihl * 4U;
	} else {
		struct ipv6hdr *in = l3 + inner_off;

		if ((void *)(in + 1) > data_end || in->version != 6)
			return 0;
		if (in->saddr.in6_u.u6_addr32[0] != p->flow.dst[0] || in->saddr.in6_u.u6_addr32[1] != p->flow.dst[1] ||
		    in->saddr.in6_u.u6_addr32[2] != p->flow.dst[2] || in->saddr.in6_u.u6_addr32[3] != p->flow.dst[3])
			return 0; /* not about a packet this address sent */
		f.proto = in->nexthdr;
		__builtin_memcpy(f.src, &in->daddr, sizeof(f.src));
		__builtin_memcpy(f.dst, &in->saddr, sizeof(f.dst));
		ports = (void *)(in + 1);
	}
	if (f.proto != IPPROTO_TCP && f.proto != IPPROTO_UDP)
		return 0;
	if ((void *)(ports + 2) > data_end || (void *)(ports + 2) - l3 > p->l3_len)
		return 0;
	f.sport = ports[1];
	f.dport = ports[0];
	p->flow = f;
	return 1;
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

/* Whether this CPU may send another too-big answer this second; counts it if so. */
static __always_inline int xdplb_icmp_too_big_allowed(void)
{
	__u32 zero = 0;
	struct icmp_budget *b = bpf_map_lookup_elem(&icmp_budget, &zero);
	__u64 now = bpf_ktime_get_ns();

	if (!b)
		return 0;
	if (now - b->window_start_ns >= XDPLB_NS_PER_SEC) {
		b->window_start_ns = now;
		b->sent = 0;
	}
	if (b->sent >= XDPLB_ICMP_TOO_BIG_PER_CPU_RATE)
		return 0;
	b->sent++;
	return 1;
}

/* A ones' complement sum of 64-bit partial sums folded to the checksum field's value. */
static __always_inline __u16 xdplb_csum_fold64(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	return xdplb_csum_fold((__u32)sum);
}

/*
 * Cuts the frame to its Ethernet header and `quote` bytes of its packet, then
 * makes room for `head` bytes of headers between the two; the Ethernet header
 * is left to be rewritten. Returns 0, or non-zero if the driver refused.
 */
static __always_inline int xdplb_frame_for_quote(struct xdp_md *ctx, __u32 quote, int head)
{
	if (bpf_xdp_adjust_tail(ctx, (int)(sizeof(struct ethhdr) + quote) - (int)(ctx->data_end - ctx->data)))
		return -1;
	return bpf_xdp_adjust_head(ctx, -head);
}

/* The Ethernet header of an answer: to the sender's MAC (macs), from ours (macs + ETH_ALEN). */
static __always_inline void xdplb_answer_eth(struct ethhdr *eth, const __u8 *macs, __u16 proto)
{
	__builtin_memcpy(eth->h_dest, macs, ETH_ALEN);
	__builtin_memcpy(eth->h_source, macs + ETH_ALEN, ETH_ALEN);
	eth->h_proto = bpf_htons(proto);
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
	int head;

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
		struct iphdr *iph;

		if (p->l3_len < quote)
			return XDPLB_DROP_TOO_BIG;
		head = sizeof(*iph) + sizeof(*ih);
		if (xdplb_frame_for_quote(ctx, quote, head))
			return XDPLB_DROP_TOO_BIG;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		eth = data;
		iph = (void *)(eth + 1);
		ih = (void *)(iph + 1);
		if ((void *)(ih + 1) + quote > data_end)
			return XDPLB_DROP_TOO_BIG;
		xdplb_answer_eth(eth, macs, ETH_P_IP);
		iph->version = 4;
		iph->ihl = XDPLB_IPV4_MIN_IHL;
		iph->tos = 0;
		iph->tot_len = bpf_htons(head + quote);
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
		struct ipv6hdr *ip6h;
		__u64 sum;

		if (p->l3_len < quote)
			return XDPLB_DROP_TOO_BIG;
		head = sizeof(*ip6h) + sizeof(*ih);
		if (xdplb_frame_for_quote(ctx, quote, head))
			return XDPLB_DROP_TOO_BIG;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		eth = data;
		ip6h = (void *)(eth + 1);
		ih = (void *)(ip6h + 1);
		if ((void *)(ih + 1) + quote > data_end)
			return XDPLB_DROP_TOO_BIG;
		xdplb_answer_eth(eth, macs, ETH_P_IPV6);
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
