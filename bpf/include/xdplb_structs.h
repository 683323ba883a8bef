/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one definition of every map key and value. The TypeScript codecs in
 * src/bpf/structs.ts mirror these; test/bpf/layout.test.ts compares
 * sizes and offsets with the object's BTF. Addresses and ports are in network
 * byte order; an IPv4 address occupies addr[0] and the rest is zero.
 */
#ifndef XDPLB_STRUCTS_H
#define XDPLB_STRUCTS_H

#include <linux/types.h>

#include "xdplb_consts.h"

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

/* A flow's five-tuple. conn_table key: the flow as the balancer saw it (sport
 * 0 for VIPs that hash without the source port). backend_flows key: the flow
 * as the pod sees it (src the client, dst the pod and its target port). */
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
	/* UDP: when the flow last sent a packet, in seconds of CLOCK_MONOTONIC
	 * (coarse). Not read for TCP (the program writes 0, an upgrade's copy
	 * the time of the copy). It fills what the kernel pads the value to anyway. */
	__u32 atime_s;
};

/* quic_servers key: a QUIC server id within one VIP. */
struct quic_server_key {
	__u32 vip_num;
	__u32 server_id;
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

/* An address, port and protocol: the backend program's values (a pod's
 * address and target port in backend_svcs; the VIP and port a flow's client
 * addressed in backend_flows). Same layout as struct vip_key. */
struct xdplb_endpoint {
	__be32 addr[4];
	__be16 port;
	__u8 proto;
	__u8 family;
};

/* backend_svcs key: a tunnel packet toward a local pod, by its outer
 * destination (the pod address the balancer encapsulated to) and its inner
 * destination (the VIP, its port and protocol). The families differ for
 * IPv4 in IPv6. */
struct backend_svc_key {
	__be32 tunnel_dst[4];
	__be32 vip[4];
	__be16 vip_port;
	__u8 proto;
	__u8 vip_family;
	__u8 tunnel_family;
	__u8 pad[3];
};

/* backend_node_svcs value (Node addressing; key: struct backend_svc_key
 * whose tunnel_dst is the node's address): the local pods a VIP port spreads
 * new flows over. Each slot holds a pod's address of the VIP's family; a pod
 * has as many slots as its weight gives it. slots 0: every pod drains. */
struct backend_node_svc {
	__u32 slots;   /* slots in use, 0..XDPLB_NODE_SVC_SLOTS */
	__u32 flags;   /* XDPLB_VIP_F_HASH_NO_SRC_PORT: pick by client address only */
	__u8 family;   /* the pods' addresses' (the VIP's) */
	__u8 pad[3];
	__be32 pods[XDPLB_NODE_SVC_SLOTS][4];
};

/* One trace match rule: every set field must match. A packet is traced when
 * any of trace_config's first rule_count rules match. */
struct icmp_budget {
	__u64 window_start_ns; /* the current second of too-big answers */
	__u64 sent;            /* answers sent in it */
};

struct trace_rule {
	__be32 client[4];   /* client (source) address, masked by mask */
	__be32 mask[4];     /* prefix mask; all zero with family 0 */
	__u8 family;        /* 0: any client */
	__u8 pad;
	__be16 port;        /* 0: any; else the source or the destination port */
	__u32 vip_num;      /* XDPLB_VIP_NUM_NONE: any VIP, or none */
	__u32 cpu_rate;     /* this rule's records per second per CPU (trace_budget[its index]) */
};

/* trace_ctl[0]. rule_count 0 turns tracing off: one load per packet. */
struct trace_config {
	__u32 rule_count;
	struct trace_rule rules[XDPLB_TRACE_MAX_RULES];
};

/* trace_budget[i], per CPU: rule i's one-second rate window. Each rule has
 * its own, so one session's busy VIP cannot use up another's records. */
struct trace_budget {
	__u64 window_start_ns;
	__u64 used;
	__u64 limited;      /* packets this rule matched that went unrecorded: no matching rule had room */
};

/* One traced packet, as written to the trace_ring ring buffer. */
struct trace_record {
	__u64 timestamp_ns;   /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	struct flow_key flow; /* as received (source port kept for no-src-port VIPs) */
	__u32 cpu;
	__u32 vip_num;        /* XDPLB_VIP_NUM_NONE: not a VIP packet */
	__u32 real_id;        /* 0: none chosen */
	struct xdplb_addr real; /* the real's address when it was chosen */
	__u32 frame_len;      /* bytes received */
	__u32 out_len;        /* bytes transmitted (XDP_TX), else 0 */
	__u16 in_cap;         /* bytes of pkt_in that hold the frame as received */
	__u16 out_cap;        /* bytes of pkt_out that hold the frame as sent */
	__u8 reason;          /* enum xdplb_reason */
	__u8 path;            /* enum xdplb_trace_path */
	__u8 pad[2];
	__u8 pkt_in[XDPLB_TRACE_SNAPLEN];
	__u8 pkt_out[XDPLB_TRACE_SNAPLEN];
};

#endif
