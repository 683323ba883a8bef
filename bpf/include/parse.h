/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packet parsing for the balancer. Every read is bounds-checked against
 * data_end, and lengths are checked against the IP header's own length so
 * trailing Ethernet padding is never taken for payload.
 */
#ifndef XDPLB_PARSE_H
#define XDPLB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "xdplb_consts.h"
#include "xdplb_structs.h"

#ifndef IP_MF
#define IP_MF 0x2000
#endif
#ifndef IP_DF
#define IP_DF 0x4000
#endif
#ifndef IP_OFFSET
#define IP_OFFSET 0x1fff
#endif

#define XDPLB_IPV4_HLEN ((__u32)sizeof(struct iphdr))
#define XDPLB_IPV6_HLEN ((__u32)sizeof(struct ipv6hdr))
#define XDPLB_IPV4_MIN_IHL 5
#define XDPLB_TCP_MIN_DOFF 5
#define XDPLB_IPV6_EXT_UNIT 8 /* extension header lengths count 8-byte units */

enum xdplb_parse {
	XDPLB_PARSED,            /* TCP or UDP, ports read */
	XDPLB_PARSE_NOT_IP,      /* neither IPv4 nor IPv6 */
	XDPLB_PARSE_NO_DST,      /* truncated before the destination address */
	XDPLB_PARSE_MALFORMED,   /* destination known, header broken */
	XDPLB_PARSE_FRAGMENT,    /* destination known, a fragment */
	XDPLB_PARSE_OTHER_L4,    /* destination known, neither TCP nor UDP */
};

/* What a TCP segment is to the balancer. One byte beside the others: a field
 * more in struct xdplb_packet costs the verifier half as many states again. */
enum xdplb_tcp_kind {
	XDPLB_TCP_OTHER = 0,
	XDPLB_TCP_SYN,  /* SYN without ACK: the first packet of a connection */
	XDPLB_TCP_RST,  /* RST: the end of a connection, or a host refusing one it never opened */
};

struct xdplb_packet {
	struct flow_key flow;
	__u32 l3_len; /* IP header + payload, as the IP header says */
	__u8 tos;     /* IPv4 TOS / IPv6 traffic class */
	__u8 ttl;     /* IPv4 TTL / IPv6 hop limit */
	__u8 df;      /* IPv4 don't-fragment bit */
	__u8 tcp_kind; /* enum xdplb_tcp_kind */
	__u16 l4_off; /* L4 header (TCP, UDP, ICMP...), from the IP header (once parsed) */
};

static __always_inline int xdplb_parse_l4(struct xdplb_packet *p, void *l3, __u32 off,
					  void *data_end)
{
	p->l4_off = off;
	if (p->flow.proto == IPPROTO_TCP) {
		struct tcphdr *th = l3 + off;

		if ((void *)(th + 1) > data_end || off + sizeof(*th) > p->l3_len)
			return XDPLB_PARSE_MALFORMED;
		if (th->doff < XDPLB_TCP_MIN_DOFF || off + th->doff * 4U > p->l3_len)
			return XDPLB_PARSE_MALFORMED;
		p->flow.sport = th->source;
		p->flow.dport = th->dest;
		p->tcp_kind = th->rst ? XDPLB_TCP_RST : th->syn && !th->ack ? XDPLB_TCP_SYN : XDPLB_TCP_OTHER;
		return XDPLB_PARSED;
	}
	if (p->flow.proto == IPPROTO_UDP) {
		struct udphdr *uh = l3 + off;

		if ((void *)(uh + 1) > data_end || off + sizeof(*uh) > p->l3_len)
			return XDPLB_PARSE_MALFORMED;
		p->flow.sport = uh->source;
		p->flow.dport = uh->dest;
		return XDPLB_PARSED;
	}
	return XDPLB_PARSE_OTHER_L4;
}

static __always_inline int xdplb_parse_ipv4(struct xdplb_packet *p, void *data, void *data_end)
{
	struct iphdr *iph = data + sizeof(struct ethhdr);
	__u32 hdr_len;

	if ((void *)(iph + 1) > data_end)
		return XDPLB_PARSE_NO_DST;
	p->flow.family = XDPLB_FAMILY_V4;
	p->flow.src[0] = iph->saddr;
	p->flow.dst[0] = iph->daddr;
	p->flow.proto = iph->protocol;
	if (iph->version != 4 || iph->ihl < XDPLB_IPV4_MIN_IHL)
		return XDPLB_PARSE_MALFORMED;
	hdr_len = iph->ihl * 4U;
	p->l3_len = bpf_ntohs(iph->tot_len);
	if (p->l3_len < hdr_len || (void *)iph + p->l3_len > data_end)
		return XDPLB_PARSE_MALFORMED;
	p->tos = iph->tos;
	p->ttl = iph->ttl;
	p->df = !!(iph->frag_off & bpf_htons(IP_DF));
	if (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return XDPLB_PARSE_FRAGMENT;
	return xdplb_parse_l4(p, iph, hdr_len, data_end);
}

static __always_inline int xdplb_is_ipv6_ext(__u8 nexthdr)
{
	return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	       nexthdr == IPPROTO_DSTOPTS;
}

static __always_inline int xdplb_parse_ipv6(struct xdplb_packet *p, void *data, void *data_end)
{
	struct ipv6hdr *ip6h = data + sizeof(struct ethhdr);
	__u32 off = XDPLB_IPV6_HLEN;
	__u8 nexthdr;

	if ((void *)(ip6h + 1) > data_end)
		return XDPLB_PARSE_NO_DST;
	p->flow.family = XDPLB_FAMILY_V6;
	__builtin_memcpy(p->flow.src, &ip6h->saddr, sizeof(p->flow.src));
	__builtin_memcpy(p->flow.dst, &ip6h->daddr, sizeof(p->flow.dst));
	nexthdr = ip6h->nexthdr;
	p->flow.proto = nexthdr;
	if (ip6h->version != 6)
		return XDPLB_PARSE_MALFORMED;
	p->l3_len = XDPLB_IPV6_HLEN + bpf_ntohs(ip6h->payload_len);
	if ((void *)ip6h + p->l3_len > data_end)
		return XDPLB_PARSE_MALFORMED;
	p->tos = (ip6h->priority << 4) | (ip6h->flow_lbl[0] >> 4);
	p->ttl = ip6h->hop_limit;

#pragma unroll
	for (int i = 0; i < XDPLB_MAX_EXT_HDRS; i++) {
		struct ipv6_opt_hdr *eh;

		if (!xdplb_is_ipv6_ext(nexthdr))
			break;
		eh = (void *)ip6h + off;
		if ((void *)(eh + 1) > data_end)
			return XDPLB_PARSE_MALFORMED;
		nexthdr = eh->nexthdr;
		off += (eh->hdrlen + 1) * XDPLB_IPV6_EXT_UNIT;
		if (off > p->l3_len)
			return XDPLB_PARSE_MALFORMED;
	}
	p->flow.proto = nexthdr;
	if (nexthdr == IPPROTO_FRAGMENT)
		return XDPLB_PARSE_FRAGMENT;
	if (xdplb_is_ipv6_ext(nexthdr))
		return XDPLB_PARSE_MALFORMED; /* more extension headers than we walk */
	return xdplb_parse_l4(p, ip6h, off, data_end);
}

static __always_inline int xdplb_parse(struct xdplb_packet *p, void *data, void *data_end)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDPLB_PARSE_NO_DST;
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return xdplb_parse_ipv4(p, data, data_end);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return xdplb_parse_ipv6(p, data, data_end);
	return XDPLB_PARSE_NOT_IP;
}

#endif
