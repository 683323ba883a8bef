/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPIP encapsulation: IPv4-in-IPv4, IPv4-in-IPv6 and IPv6-in-IPv6. The inner
 * packet is not touched; a new Ethernet header and the outer IP header are
 * written in the headroom in front of it.
 */
#ifndef XDPLB_ENCAP_H
#define XDPLB_ENCAP_H

#include "csum.h"
#include "parse.h"

#define XDPLB_IPV6_FLOW_LABEL_MASK 0xfffffU

static __always_inline int xdplb_mac_is_zero(const __u8 *mac)
{
	return !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]);
}

static __always_inline int xdplb_v6_is_zero(const __be32 *a)
{
	return !(a[0] | a[1] | a[2] | a[3]);
}

static __always_inline int xdplb_write_eth(void *data, void *data_end,
					   const struct ctl_config *cfg, __u16 proto)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return -1;
	__builtin_memcpy(eth->h_dest, cfg->next_hop_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, cfg->src_mac, ETH_ALEN);
	eth->h_proto = bpf_htons(proto);
	return 0;
}

/*
 * Returns the reason to count: XDPLB_TX_ENCAP when the frame is ready to be
 * transmitted. flow_hash feeds the IPv6 flow label so that routers on the way
 * to the real spread tunnelled flows as they would spread the inner ones.
 */
static __always_inline int xdplb_encap(struct xdp_md *ctx, const struct xdplb_packet *p,
				       const struct xdplb_addr *real,
				       const struct ctl_config *cfg, __u32 flow_hash)
{
	int outer_v6 = real->family == XDPLB_FAMILY_V6;
	__u32 hdr_len = outer_v6 ? XDPLB_IPV6_HLEN : XDPLB_IPV4_HLEN;
	void *data, *data_end;

	if (p->flow.family == XDPLB_FAMILY_V6 && !outer_v6)
		return XDPLB_DROP_UNSUPPORTED_ENCAP;
	if (xdplb_mac_is_zero(cfg->next_hop_mac) ||
	    (outer_v6 ? xdplb_v6_is_zero(cfg->src_v6) : !cfg->src_v4))
		return XDPLB_DROP_NOT_CONFIGURED;
	if (cfg->max_pkt_size && p->l3_len + hdr_len > cfg->max_pkt_size)
		return XDPLB_DROP_TOO_BIG;
	if (bpf_xdp_adjust_head(ctx, -(int)hdr_len))
		return XDPLB_DROP_ENCAP_FAILED;

	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (outer_v6) {
		struct ipv6hdr *ip6h = data + sizeof(struct ethhdr);

		if ((void *)(ip6h + 1) > data_end ||
		    xdplb_write_eth(data, data_end, cfg, ETH_P_IPV6))
			return XDPLB_DROP_ENCAP_FAILED;
		ip6h->version = 6;
		ip6h->priority = p->tos >> 4;
		ip6h->flow_lbl[0] = ((p->tos & 0xf) << 4) | ((flow_hash >> 16) & 0xf);
		ip6h->flow_lbl[1] = (flow_hash >> 8) & 0xff;
		ip6h->flow_lbl[2] = flow_hash & 0xff;
		ip6h->payload_len = bpf_htons(p->l3_len);
		ip6h->nexthdr = p->flow.family == XDPLB_FAMILY_V6 ? IPPROTO_IPV6 : IPPROTO_IPIP;
		ip6h->hop_limit = p->ttl;
		__builtin_memcpy(&ip6h->saddr, cfg->src_v6, sizeof(ip6h->saddr));
		__builtin_memcpy(&ip6h->daddr, real->addr, sizeof(ip6h->daddr));
	} else {
		struct iphdr *iph = data + sizeof(struct ethhdr);

		if ((void *)(iph + 1) > data_end ||
		    xdplb_write_eth(data, data_end, cfg, ETH_P_IP))
			return XDPLB_DROP_ENCAP_FAILED;
		iph->version = 4;
		iph->ihl = XDPLB_IPV4_MIN_IHL;
		iph->tos = p->tos;
		iph->tot_len = bpf_htons(p->l3_len + XDPLB_IPV4_HLEN);
		iph->id = 0;
		/* RFC 2003 3.1: the outer DF follows the inner one. */
		iph->frag_off = p->df ? bpf_htons(IP_DF) : 0;
		iph->ttl = p->ttl;
		iph->protocol = IPPROTO_IPIP;
		iph->check = 0;
		iph->saddr = cfg->src_v4;
		iph->daddr = real->addr[0];
		iph->check = xdplb_ipv4_csum(iph);
	}
	return XDPLB_TX_ENCAP;
}

#endif
