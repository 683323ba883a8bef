/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * QUIC connection-ID routing. A QUIC connection outlives its 5-tuple (the
 * client migrates to another address or port, a NAT rebinds it), and the
 * connection table may not know it (another balancer node, a lost table).
 * Once the handshake is done, every packet from the client is a short-header
 * packet whose destination connection ID the real chose: with our layout
 * (xdplb_consts.h, enum xdplb_quic_const) it names the real's server id.
 */
#ifndef XDPLB_QUIC_H
#define XDPLB_QUIC_H

#include <linux/if_ether.h>
#include <linux/udp.h>

#include "parse.h"
#include "xdplb_consts.h"

/* The server id a UDP packet's destination connection ID carries; 0 for a
 * long header (the handshake: the client has no CID of the real's yet), a
 * packet too short, or a CID of another layout. */
static __always_inline __u32 xdplb_quic_server_id(const struct xdplb_packet *p, void *data, void *data_end)
{
	__u32 off = p->l4_off;
	__u8 *h;

	if (off > XDPLB_MAX_L4_OFF)
		return 0;
	off += sizeof(struct udphdr);
	h = data + sizeof(struct ethhdr) + off;
	if ((void *)(h + XDPLB_QUIC_SERVER_ID_BYTES) > data_end || off + XDPLB_QUIC_SERVER_ID_BYTES > p->l3_len)
		return 0;
	if ((h[0] & XDPLB_QUIC_LONG_HEADER) || !(h[0] & XDPLB_QUIC_FIXED_BIT))
		return 0;
	if ((h[1] >> XDPLB_QUIC_CID_LAYOUT_SHIFT) != XDPLB_QUIC_CID_LAYOUT_V1)
		return 0;
	return ((__u32)(h[1] & XDPLB_QUIC_SERVER_ID_HIGH_MASK) << 8) | h[2];
}

#endif
