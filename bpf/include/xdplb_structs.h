/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one definition of every map key and value. The TypeScript codecs in
 * src/agent/bpf/codecs.ts mirror these; test/bpf/layout.test.ts compares
 * sizes and offsets with the object's BTF. Addresses and ports are in network
 * byte order; an IPv4 address occupies addr[0] and the rest is zero.
 */
#ifndef XDPLB_STRUCTS_H
#define XDPLB_STRUCTS_H

#include <linux/types.h>

/* An address with its family: key of vip_addrs and decap_addrs, value of
 * reals. family 0 marks an unused reals slot. */
struct xdplb_addr {
	__be32 addr[4];
	__u8 family;
	__u8 pad[3];
};

/* vip_map key. port 0 is an all-ports VIP. */
struct vip_key {
	__be32 addr[4];
	__be16 port;
	__u8 proto;
	__u8 family;
};

struct vip_meta {
	__u32 flags;   /* XDPLB_VIP_F_* */
	__u32 vip_num; /* index of the VIP's ring and stats slot */
};

/* conn_table key: the flow as the balancer saw it (sport 0 for VIPs that
 * hash without the source port). */
struct flow_key {
	__be32 src[4];
	__be32 dst[4];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

struct flow_value {
	__u32 real_id;
};

/* ctl[0]: what the balancer needs to build the outer headers. */
struct ctl_config {
	__u8 next_hop_mac[6];
	__u8 src_mac[6];
	__be32 src_v4;       /* outer source for IPv4 outer headers */
	__be32 src_v6[4];    /* outer source for IPv6 outer headers */
	__u32 max_pkt_size;  /* largest outer L3 packet the NIC may send; 0: unchecked */
};

struct vip_stats {
	__u64 packets;
	__u64 bytes;      /* frame bytes as received */
	__u64 lru_misses; /* packets whose real came from the ring: new flows */
};

struct real_stats {
	__u64 packets;
	__u64 bytes; /* frame bytes as received, before encapsulation */
};

#endif
