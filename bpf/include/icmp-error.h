/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ICMP errors about VIP flows: which flow, so that they follow it to its real. */
#ifndef XDPLB_ICMP_ERROR_H
#define XDPLB_ICMP_ERROR_H

#include "icmp.h"

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

#endif
