/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMP the balancer handles itself for VIP addresses (as Katran does):
 * icmp-echo.h answers echo requests, icmp-error.h follows errors about VIP
 * flows to their real, icmp-too-big.h answers packets too big to encapsulate.
 * Handling them in XDP, rather than passing them to the host, matters because
 * no VIP is a node address: the host would forward them back toward the
 * gateway, where they loop until their TTL runs out.
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

/* The header of every ICMP and ICMPv6 message (RFC 792, RFC 4443). */
struct xdplb_icmp_hdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 rest; /* echo: identifier and sequence number; errors: unused, or the next-hop MTU */
};


/* The Ethernet header of an answer: to the sender's MAC (macs), from ours (macs + ETH_ALEN). */
static __always_inline void xdplb_answer_eth(struct ethhdr *eth, const __u8 *macs, __u16 proto)
{
	__builtin_memcpy(eth->h_dest, macs, ETH_ALEN);
	__builtin_memcpy(eth->h_source, macs + ETH_ALEN, ETH_ALEN);
	eth->h_proto = bpf_htons(proto);
}

#endif
