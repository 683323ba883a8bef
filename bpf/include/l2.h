/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * L2 mode: the node elected for an address answers ARP requests and IPv6
 * neighbor solicitations for it, in place, with XDP_TX (MetalLB's and Cilium's
 * L2 announcements do this in user space or in tc). Addresses are answered
 * while l2_addrs holds them with XDPLB_L2_F_ANSWER. The gratuitous ARP and
 * unsolicited advertisement of a takeover are the agent's
 * (src/agent/announce/l2-frames.ts), from the same layouts.
 *
 * A question is answered only when it is valid (RFC 826 for Ethernet/IPv4,
 * RFC 4861 7.1.1) and for us (broadcast, multicast or our MAC): anything else
 * goes on through the balancer as if L2 mode did not exist.
 */
#ifndef XDPLB_L2_H
#define XDPLB_L2_H

#include "encap.h"
#include "xdplb_maps.h"

/* An ARP packet for Ethernet and IPv4 (RFC 826); the kernel's struct
 * arphdr stops before the addresses. */
struct xdplb_arp {
	__be16 hrd; /* XDPLB_ARPHRD_ETHER */
	__be16 pro; /* XDPLB_ETH_P_IP */
	__u8 hln;   /* ETH_ALEN */
	__u8 pln;   /* sizeof(__be32) */
	__be16 op;
	__u8 sha[ETH_ALEN];
	__u8 spa[4];
	__u8 tha[ETH_ALEN];
	__u8 tpa[4];
};

/* A neighbor solicitation or advertisement before its options (RFC 4861 4.3, 4.4). */
struct xdplb_nd_msg {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__u8 flags;       /* advertisement: XDPLB_NA_F_*; solicitation: reserved */
	__u8 reserved[3];
	__be32 target[4];
};

/* A source or target link-layer address option for Ethernet (RFC 4861 4.6.1). */
struct xdplb_nd_opt_lla {
	__u8 type;
	__u8 len; /* in XDPLB_ND_OPT_UNIT bytes */
	__u8 addr[ETH_ALEN];
};

/* The answer we build: an advertisement with our link-layer address. */
struct xdplb_na {
	struct xdplb_nd_msg msg;
	struct xdplb_nd_opt_lla tlla;
};
#define XDPLB_NA_FRAME_LEN (sizeof(struct ethhdr) + XDPLB_IPV6_HLEN + sizeof(struct xdplb_na))

/* Only inlined code uses the wire structs: this puts them in the object's
 * BTF, where test/bpf/layout.test.ts compares them with src/bpf/l2-structs.ts. */
struct xdplb_l2_btf {
	struct xdplb_arp arp;
	struct xdplb_na na;
};
struct xdplb_l2_btf *const volatile xdplb_l2_btf = 0;

/* xdplb_l2_question's answer when the frame is not a question for us. */
#define XDPLB_L2_NOT_OURS (-1)

#define XDPLB_ETH_GROUP_BIT 0x01        /* in the first octet of a broadcast or multicast MAC */
#define XDPLB_IPV6_MULTICAST_OCTET 0xff /* first octet of ff00::/8 (RFC 4291 2.7) */

/* BPF has no memcmp: byte by byte, unrolled. */
static __always_inline int xdplb_bytes_differ(const __u8 *a, const __u8 *b, __u32 len)
{
	__u8 diff = 0;

#pragma unroll
	for (__u32 i = 0; i < len; i++)
		diff |= a[i] ^ b[i];
	return diff;
}

/* Our MAC when addr (family, 4 or 16 bytes at a) is ours to answer, else NULL. */
static __always_inline const __u8 *xdplb_l2_mac_for(__u8 family, const void *a, __u32 len,
						    const struct ethhdr *eth)
{
	struct xdplb_addr key = { .family = family };
	struct ctl_config *cfg;
	__u32 zero = 0, *flags;

	__builtin_memcpy(key.addr, a, len);
	flags = bpf_map_lookup_elem(&l2_addrs, &key);
	if (!flags || !(*flags & XDPLB_L2_F_ANSWER))
		return NULL;
	cfg = bpf_map_lookup_elem(&ctl, &zero);
	if (!cfg || xdplb_mac_is_zero(cfg->src_mac))
		return NULL;
	/* Another host's unicast frame, seen in promiscuous mode: not ours. */
	if (!(eth->h_dest[0] & XDPLB_ETH_GROUP_BIT) &&
	    xdplb_bytes_differ(eth->h_dest, cfg->src_mac, ETH_ALEN))
		return NULL;
	return cfg->src_mac;
}

static __always_inline int xdplb_arp_question(void *data, void *data_end, struct flow_key *flow,
					      const __u8 **mac)
{
	struct ethhdr *eth = data;
	struct xdplb_arp *arp = (void *)(eth + 1);

	if ((void *)(arp + 1) > data_end)
		return XDPLB_L2_NOT_OURS;
	if (arp->hrd != bpf_htons(XDPLB_ARPHRD_ETHER) || arp->pro != bpf_htons(XDPLB_ETH_P_IP) ||
	    arp->hln != ETH_ALEN || arp->pln != sizeof(arp->tpa) ||
	    arp->op != bpf_htons(XDPLB_ARPOP_REQUEST))
		return XDPLB_L2_NOT_OURS;
	/* A gratuitous request announces the sender's own address: nothing to answer. */
	if (!xdplb_bytes_differ(arp->spa, arp->tpa, sizeof(arp->tpa)))
		return XDPLB_L2_NOT_OURS;
	*mac = xdplb_l2_mac_for(XDPLB_FAMILY_V4, arp->tpa, sizeof(arp->tpa), eth);
	if (!*mac)
		return XDPLB_L2_NOT_OURS;
	flow->family = XDPLB_FAMILY_V4;
	__builtin_memcpy(flow->src, arp->spa, sizeof(arp->spa));
	__builtin_memcpy(flow->dst, arp->tpa, sizeof(arp->tpa));
	return XDPLB_TX_ARP_REPLY;
}

/* Options are whole, non-empty units up to the end of the message (7.1.1). */
static __always_inline int xdplb_nd_options_valid(void *msg, __u32 len, void *data_end)
{
	__u32 off = sizeof(struct xdplb_nd_msg);

#pragma unroll
	for (int i = 0; i < XDPLB_MAX_ND_OPTS; i++) {
		struct xdplb_nd_opt_lla *opt = msg + off;

		if (off >= len)
			break;
		if ((void *)(opt + 1) > data_end || !opt->len)
			return 0;
		off += opt->len * XDPLB_ND_OPT_UNIT;
	}
	return off == len;
}

static __always_inline int xdplb_ns_question(void *data, void *data_end, struct flow_key *flow,
					     const __u8 **mac)
{
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6h = (void *)(eth + 1);
	struct xdplb_nd_msg *ns = (void *)(ip6h + 1);
	__u32 len;

	if ((void *)(ns + 1) > data_end)
		return XDPLB_L2_NOT_OURS;
	len = bpf_ntohs(ip6h->payload_len);
	if (ip6h->version != 6 || ip6h->nexthdr != XDPLB_IPPROTO_ICMPV6 ||
	    ip6h->hop_limit != XDPLB_NDP_HOP_LIMIT ||
	    ns->type != XDPLB_NDISC_NEIGHBOUR_SOLICITATION || ns->code ||
	    len < sizeof(*ns) || (void *)ns + len > data_end)
		return XDPLB_L2_NOT_OURS;
	/* A multicast target is invalid; an unspecified source is duplicate
	 * address detection, which the node that configures the address answers. */
	if (((__u8 *)ns->target)[0] == XDPLB_IPV6_MULTICAST_OCTET ||
	    xdplb_v6_is_zero((__be32 *)&ip6h->saddr))
		return XDPLB_L2_NOT_OURS;
	if (!xdplb_nd_options_valid(ns, len, data_end))
		return XDPLB_L2_NOT_OURS;
	*mac = xdplb_l2_mac_for(XDPLB_FAMILY_V6, ns->target, sizeof(ns->target), eth);
	if (!*mac)
		return XDPLB_L2_NOT_OURS;
	flow->family = XDPLB_FAMILY_V6;
	flow->proto = XDPLB_IPPROTO_ICMPV6;
	__builtin_memcpy(flow->src, &ip6h->saddr, sizeof(flow->src));
	__builtin_memcpy(flow->dst, &ip6h->daddr, sizeof(flow->dst));
	return XDPLB_TX_NDP_ADVERT;
}

/*
 * Whether the frame is an ARP request or neighbor solicitation to answer:
 * XDPLB_TX_ARP_REPLY or XDPLB_TX_NDP_ADVERT with *mac (ours) and the flow (for
 * the trace) set, else XDPLB_L2_NOT_OURS. The frame is not touched.
 */
static __always_inline int xdplb_l2_question(struct xdp_md *ctx, struct flow_key *flow,
					     const __u8 **mac)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDPLB_L2_NOT_OURS;
	if (eth->h_proto == bpf_htons(XDPLB_ETH_P_ARP))
		return xdplb_arp_question(data, data_end, flow, mac);
	if (eth->h_proto == bpf_htons(XDPLB_ETH_P_IPV6))
		return xdplb_ns_question(data, data_end, flow, mac);
	return XDPLB_L2_NOT_OURS;
}

static __always_inline int xdplb_arp_reply(struct xdp_md *ctx, const __u8 *mac)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct xdplb_arp *arp = (void *)(eth + 1);
	__u8 requester[sizeof(arp->spa)];

	if ((void *)(arp + 1) > data_end)
		return XDPLB_PASS_NOT_IP; /* xdplb_arp_question checked it: never */
	__builtin_memcpy(eth->h_dest, arp->sha, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	arp->op = bpf_htons(XDPLB_ARPOP_REPLY);
	__builtin_memcpy(arp->tha, arp->sha, ETH_ALEN);
	__builtin_memcpy(arp->sha, mac, ETH_ALEN);
	__builtin_memcpy(requester, arp->spa, sizeof(requester));
	__builtin_memcpy(arp->spa, arp->tpa, sizeof(arp->spa));
	__builtin_memcpy(arp->tpa, requester, sizeof(arp->tpa));
	return XDPLB_TX_ARP_REPLY;
}

static __always_inline int xdplb_ndp_advert(struct xdp_md *ctx, const __u8 *mac)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ipv6hdr *ip6h;
	struct xdplb_na *na;
	struct ethhdr *eth;
	int grow = (int)XDPLB_NA_FRAME_LEN - (int)(data_end - data);
	struct in6_addr requester;
	__u8 requester_mac[ETH_ALEN];
	__u32 sum;

	/* The answer is the message and our address option, nothing else: an
	 * option-less solicitation grows by the option, a longer one shrinks. */
	if (grow && bpf_xdp_adjust_tail(ctx, grow))
		return XDPLB_PASS_NDP_NO_ROOM;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	ip6h = (void *)(eth + 1);
	na = (void *)(ip6h + 1);
	if ((void *)(na + 1) > data_end)
		return XDPLB_PASS_NDP_NO_ROOM; /* the kernel gave less than asked: never */

	__builtin_memcpy(requester_mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, requester_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);

	requester = ip6h->saddr;
	ip6h->priority = 0;
	__builtin_memset(ip6h->flow_lbl, 0, sizeof(ip6h->flow_lbl));
	ip6h->payload_len = bpf_htons(sizeof(*na));
	ip6h->hop_limit = XDPLB_NDP_HOP_LIMIT;
	__builtin_memcpy(&ip6h->saddr, na->msg.target, sizeof(ip6h->saddr));
	ip6h->daddr = requester;

	na->msg.type = XDPLB_NDISC_NEIGHBOUR_ADVERTISEMENT;
	na->msg.code = 0;
	na->msg.checksum = 0;
	na->msg.flags = XDPLB_NA_F_SOLICITED | XDPLB_NA_F_OVERRIDE;
	__builtin_memset(na->msg.reserved, 0, sizeof(na->msg.reserved));
	na->tlla.type = XDPLB_ND_OPT_TARGET_LL_ADDR;
	na->tlla.len = sizeof(na->tlla) / XDPLB_ND_OPT_UNIT;
	__builtin_memcpy(na->tlla.addr, mac, ETH_ALEN);

	/* RFC 8200 8.1: source, destination, upper-layer length, next header. */
	sum = xdplb_csum_add(&ip6h->saddr, 2 * sizeof(struct in6_addr), 0);
	sum += bpf_htons(sizeof(*na)) + bpf_htons(XDPLB_IPPROTO_ICMPV6);
	sum = xdplb_csum_add(na, sizeof(*na), sum);
	na->msg.checksum = xdplb_csum_fold(sum);
	return XDPLB_TX_NDP_ADVERT;
}

/* Turns the question xdplb_l2_question found into its answer; returns the reason to count. */
static __always_inline int xdplb_l2_answer(struct xdp_md *ctx, int reason, const __u8 *mac)
{
	return reason == XDPLB_TX_ARP_REPLY ? xdplb_arp_reply(ctx, mac) : xdplb_ndp_advert(ctx, mac);
}

#endif
