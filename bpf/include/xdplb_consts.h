/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Build-time constants of the xdplb dataplane, each named once.
 * src/bpf/consts.ts mirrors them; test/bpf/layout.test.ts checks the
 * mirror against the compiled object's BTF and map definitions.
 */
#ifndef XDPLB_CONSTS_H
#define XDPLB_CONSTS_H

#include <linux/if_ether.h>
#include <linux/in.h>

/* Constants are enums, not macros, so they are in the object's BTF where the
 * layout test can compare them with the TypeScript mirror. */

/* Capacities (Katran-like defaults). */
enum xdplb_capacity {
	XDPLB_MAX_VIPS = 512,
	XDPLB_MAX_REALS = 4096,       /* real id 0 is reserved: "no real" */
	XDPLB_RING_SIZE = 65537,      /* Maglev ring slots per VIP; must be prime */
	XDPLB_CONNECTION_TABLE_SIZE = 1048576, /* conn_table entries (shared by all CPUs) */
	/* half_open holds this share of conn_table's entries: handshakes in
	 * flight (new connections a second x round-trip time), not connections. */
	XDPLB_HALF_OPEN_TABLE_DIVISOR = 8,
	XDPLB_MAX_DECAP_ADDRS = 64,   /* local addresses the decap program accepts */
	XDPLB_MAX_EXT_HDRS = 4,       /* IPv6 extension headers walked before L4 */
	XDPLB_MAX_ND_OPTS = 4,        /* options walked in a neighbor solicitation */
	/* Reads beyond the L4 header's start (an ICMP error's quote, a QUIC
	 * header) only where it starts this far into the IP packet at most: the
	 * verifier accepts a variable packet offset only with a bound. IPv4's is
	 * 60, IPv6's with XDPLB_MAX_EXT_HDRS usual extension headers far less. */
	XDPLB_MAX_L4_OFF = 1024,
	XDPLB_MAX_BACKEND_SERVICES = 16384, /* backend: (pod, VIP, port) entries on one node */
	/* backend: flows to the node's pods whose replies go back as from the
	 * VIP. Sized for the connections open through VIPs to one node's pods,
	 * idle ones included (an evicted idle flow's next reply from the pod
	 * leaves unrewritten: bpf/BACKEND.md): 110 pods (the kubelet's default
	 * maximum) with about 2400 each. 128 bytes an entry as the kernel
	 * accounts it (preallocated): 32 MiB. The agent can load another size
	 * (src/bpf/maps.ts BackendCapacities). */
	XDPLB_BACKEND_FLOW_TABLE_SIZE = 262144,
	/* backend, Node addressing: (node address, VIP, port) entries on one
	 * node, and the slots each spreads new flows over (a pod in as many as
	 * its weight gives it; more pods of one VIP port on one node than this
	 * get no share: bpf/BACKEND.md). */
	XDPLB_MAX_BACKEND_NODE_SERVICES = 4096,
	XDPLB_NODE_SVC_SLOTS = 64,
};

/* Address families as stored in map keys (not the host's AF_* values, which
 * differ between platforms). 0 means "unset". */
enum xdplb_family {
	XDPLB_FAMILY_V4 = 4,
	XDPLB_FAMILY_V6 = 6,
};

/* Per-VIP flags (struct vip_meta.flags). */
enum xdplb_vip_flag {
	XDPLB_VIP_F_HASH_NO_SRC_PORT = 1 << 0, /* client-IP stickiness */
	XDPLB_VIP_F_LRU_BYPASS = 1 << 1,       /* never use the connection table */
	XDPLB_VIP_F_NO_ICMP_ECHO = 1 << 2,     /* its address answers no echo requests (the agent folds it into vip_addrs) */
	XDPLB_VIP_F_QUIC = 1 << 3,             /* UDP: short-header QUIC packets go to the real their connection ID names (quic.h) */
};

/* vip_addrs values: what the program does for a VIP address beyond its VIPs' ports. */
enum xdplb_vip_addr_flag {
	XDPLB_VIP_ADDR_F_ICMP_ECHO = 1 << 0, /* answer ICMP/ICMPv6 echo requests to it */
};

/*
 * ICMP echo answered for VIP addresses (bpf/include/icmp.h): RFC 792's and
 * RFC 4443's type numbers, and the TTL / hop limit of an answer (the host's
 * default, so an answer looks like any other host's).
 */
enum xdplb_icmp_const {
	XDPLB_IPPROTO_ICMP = IPPROTO_ICMP,
	XDPLB_ICMP_ECHO_REPLY = 0,
	XDPLB_ICMP_ECHO_REQUEST = 8,
	XDPLB_ICMP_DEST_UNREACH = 3,      /* errors carrying the packet they are about: */
	XDPLB_ICMP_TIME_EXCEEDED = 11,
	XDPLB_ICMP_PARAMETERPROB = 12,
	XDPLB_ICMPV6_DEST_UNREACH = 1,
	XDPLB_ICMPV6_PKT_TOOBIG = 2,
	XDPLB_ICMPV6_TIME_EXCEED = 3,
	XDPLB_ICMPV6_PARAMPROB = 4,
	XDPLB_ICMPV6_ECHO_REQUEST = 128,
	XDPLB_ICMPV6_ECHO_REPLY = 129,
	XDPLB_ICMP_REPLY_TTL = 64,
	XDPLB_ICMP_FRAG_NEEDED = 4,       /* code of XDPLB_ICMP_DEST_UNREACH */
	/* Bytes of a too-big packet its "fragmentation needed" / "packet too
	 * big" quotes, from its IP header: RFC 792 asks for the header and 8
	 * bytes, more lets the client match its TCP segment (Katran quotes
	 * about as much). Multiples of 4: the checksum helper sums words. */
	XDPLB_ICMP_TOO_BIG_QUOTE_V4 = 64,
	XDPLB_ICMP_TOO_BIG_QUOTE_V6 = 128,
	/* Too-big answers a CPU sends per second at most: a flood of large
	 * packets must not turn into a flood of ICMP. Beyond it the packets are
	 * dropped unanswered (XDPLB_DROP_TOO_BIG_ICMP_LIMITED), and the client
	 * learns from the next one answered. */
	XDPLB_ICMP_TOO_BIG_PER_CPU_RATE = 100,
};

/* Connection table entries. */
enum xdplb_flow_const {
	/* A UDP flow idle this long is new again: its next packet takes the
	 * ring (Katran's default). UDP has no end of connection to forget it by,
	 * and a flow that comes back after a ring change should follow the ring
	 * as TCP's next connection does. */
	XDPLB_UDP_IDLE_TIMEOUT_S = 30,
};

/*
 * QUIC connection-ID routing (quic.h). A real that takes part puts its server
 * id into every connection ID it issues, in this layout (ours, "version 1"):
 *   CID byte 0: bits 7-6 = 01 (the layout), bits 5-0 = server id bits 13-8
 *   CID byte 1: server id bits 7-0
 *   the rest: the server's own (at least 6 more bytes: RFC 9000 asks 8 in all)
 * Short-header packets carry the destination CID right after the first byte.
 */
enum xdplb_quic_const {
	XDPLB_QUIC_LONG_HEADER = 0x80,       /* first byte: long header form (Initial, Handshake, ...) */
	XDPLB_QUIC_FIXED_BIT = 0x40,         /* first byte: set in every QUIC v1 packet */
	XDPLB_QUIC_CID_LAYOUT_SHIFT = 6,     /* CID byte 0: the layout's bits */
	XDPLB_QUIC_CID_LAYOUT_V1 = 1,
	XDPLB_QUIC_SERVER_ID_HIGH_MASK = 0x3f, /* CID byte 0: the server id's high bits */
	XDPLB_QUIC_SERVER_ID_BYTES = 3,      /* first byte + the two CID bytes the id is in */
	XDPLB_QUIC_MAX_SERVER_IDS = 1 << 14, /* ids 1..16383; 0 is "none" */
	XDPLB_QUIC_SERVERS_PER_REAL = 2,     /* quic_servers entries (VIP, id) per real slot: a real in two QUIC VIPs */
};

/* l2_addrs values: what the node does for an address in L2 mode. */
enum xdplb_l2_flag {
	XDPLB_L2_F_ANSWER = 1 << 0, /* answer ARP requests / neighbor solicitations for it */
};

/*
 * The protocol numbers of L2 mode: the answers the balancer program gives
 * (bpf/include/l2.h) and the announcements the agent sends
 * (src/agent/announce/l2-frames.ts). The kernel's names where its UAPI
 * headers have them and BPF can include them (linux/if_arp.h pulls in libc's
 * sys/socket.h); ARP's are RFC 826's, NDP's RFC 4861's.
 */
enum xdplb_l2_const {
	XDPLB_ETH_P_IP = ETH_P_IP,
	XDPLB_ETH_P_ARP = ETH_P_ARP,
	XDPLB_ETH_P_IPV6 = ETH_P_IPV6,
	XDPLB_ARPHRD_ETHER = 1,                      /* ARP hardware type: Ethernet */
	XDPLB_ARPOP_REQUEST = 1,
	XDPLB_ARPOP_REPLY = 2,
	XDPLB_IPPROTO_ICMPV6 = IPPROTO_ICMPV6,
	XDPLB_NDISC_NEIGHBOUR_SOLICITATION = 135,    /* ICMPv6 type */
	XDPLB_NDISC_NEIGHBOUR_ADVERTISEMENT = 136,   /* ICMPv6 type */
	XDPLB_ND_OPT_TARGET_LL_ADDR = 2,             /* option type */
	XDPLB_ND_OPT_UNIT = 8,                       /* option lengths count 8-byte units */
	/* Flag bits of a neighbor advertisement's first byte after the checksum. */
	XDPLB_NA_F_SOLICITED = 0x40,
	XDPLB_NA_F_OVERRIDE = 0x20,
	XDPLB_NDP_HOP_LIMIT = 255,                   /* sent with, and required of, every NDP message */
};

/* Packet tracing (bpf/include/trace.h). */
enum xdplb_trace_const {
	XDPLB_TRACE_MAX_RULES = 8,        /* match rules evaluated per packet while tracing */
	XDPLB_TRACE_SNAPLEN = 256,        /* frame bytes kept before and after encapsulation */
	XDPLB_TRACE_RING_BYTES = 1 << 22, /* ring buffer: ~6800 records of a full snaplen */
};

/* How the balancer chose the real for a traced packet. */
enum xdplb_trace_path {
	XDPLB_PATH_NONE = 0,         /* no real was chosen: not a VIP packet, or dropped before */
	XDPLB_PATH_LRU_HIT,          /* the connection table knew the flow */
	XDPLB_PATH_RING_NEW_FLOW,    /* not in the connection table: Maglev ring */
	XDPLB_PATH_RING_SYN,         /* a SYN re-hashes even a known 5-tuple */
	XDPLB_PATH_RING_STALE,       /* the table's real has been removed: ring again */
	XDPLB_PATH_RING_LRU_BYPASS,  /* the VIP never uses the connection table */
	XDPLB_PATH_HALF_OPEN_HIT,    /* not in the connection table: the real its SYN went to (half_open); now in the table */
	XDPLB_PATH_RING_UDP_IDLE,    /* a UDP flow idle over XDPLB_UDP_IDLE_TIMEOUT_S: ring again */
	XDPLB_PATH_QUIC_SERVER_ID,   /* a QUIC short header whose connection ID names a known real's server id */
};

/* trace_stats counters: every traced packet lands in exactly one. */
enum xdplb_trace_counter {
	XDPLB_TRACE_EMITTED = 0,     /* record written to the ring buffer */
	XDPLB_TRACE_RATE_LIMITED,    /* matched, every matching rule over its per-CPU records/s budget */
	XDPLB_TRACE_RING_FULL,       /* matched, no room in the ring: the reader is behind */
	XDPLB_TRACE_COUNTER_MAX,
};

/* vip_num of a trace record for a packet that matched no VIP; in a trace
 * rule, "any VIP or none". */
#define XDPLB_VIP_NUM_NONE 0xffffffffU

#define XDPLB_NS_PER_SEC 1000000000ULL

/* Seed of the flow hash. Every balancer node must use the same one so that a
 * flow moved between nodes by ECMP picks the same ring slot. */
#define XDPLB_FLOW_HASH_SEED 0x7864706cU /* "xdpl" */

/* Seed of the hash a backend node picks one of its pods by (Node
 * addressing): another than the balancers', so that which pod a flow gets on
 * a node does not follow from which node the balancer chose. */
#define XDPLB_NODE_HASH_SEED 0x6e6f6465U /* "node" */

/*
 * Why the balancer did what it did with a packet. Every packet increments
 * exactly one counter. Ranges decide the XDP action: TX, then PASS, then DROP.
 */
enum xdplb_reason {
	XDPLB_TX_ENCAP = 0,           /* VIP packet encapsulated to a real and sent */
	XDPLB_TX_ARP_REPLY,           /* ARP request for an L2 address answered */
	XDPLB_TX_NDP_ADVERT,          /* neighbor solicitation for an L2 address answered */
	XDPLB_TX_ICMP_ECHO_REPLY,     /* ICMP/ICMPv6 echo request to a VIP address answered */
	XDPLB_TX_ICMP_ERROR,          /* ICMP/ICMPv6 error about a VIP flow encapsulated to the flow's real */
	XDPLB_TX_ICMP_TOO_BIG,        /* too big to encapsulate: "fragmentation needed" / "packet too big" sent to the client */
	XDPLB_PASS_NOT_IP,            /* not IPv4/IPv6 (ARP, LLDP, VLAN-tagged, ...) */
	XDPLB_PASS_NOT_VIP,           /* IP packet not addressed to a VIP */
	XDPLB_PASS_MALFORMED,         /* truncated/invalid header, not to a VIP address */
	XDPLB_PASS_VIP_NOT_TCP_UDP,   /* to a VIP address, neither TCP nor UDP nor an echo request nor an error about a VIP flow (NDP...) */
	XDPLB_PASS_NDP_NO_ROOM,       /* option-less solicitation for an L2 address, no room to answer */
	XDPLB_DROP_MALFORMED,         /* truncated/invalid header to a VIP address */
	XDPLB_DROP_FRAGMENT,          /* IP fragment to a VIP address */
	XDPLB_DROP_NO_REAL,           /* the VIP's ring has no real */
	XDPLB_DROP_TOO_BIG,           /* encapsulated packet exceeds max_pkt_size; IPv4 without DF: no ICMP to send */
	XDPLB_DROP_UNSUPPORTED_ENCAP, /* IPv6 packet for an IPv4 real */
	XDPLB_DROP_NOT_CONFIGURED,    /* next hop MAC or outer source address unset */
	XDPLB_DROP_ENCAP_FAILED,      /* no headroom for the outer header */
	XDPLB_DROP_VIP_NO_PORT,       /* TCP/UDP to a VIP address on a port and protocol no VIP of it has */
	XDPLB_DROP_ICMP_ECHO_OFF,     /* echo request to a VIP address whose VIPs turn echo answers off */
	XDPLB_DROP_TOO_BIG_ICMP_LIMITED, /* too big; the CPU's too-big answers are over XDPLB_ICMP_TOO_BIG_PER_CPU_RATE */
	XDPLB_REASON_MAX,
};
#define XDPLB_FIRST_PASS_REASON XDPLB_PASS_NOT_IP
#define XDPLB_FIRST_DROP_REASON XDPLB_DROP_MALFORMED

/* What the decap program did with a packet; one counter each. */
enum xdplb_decap_reason {
	XDPLB_DECAP_V4_IN_V4 = 0,  /* IPv4 inner stripped of an IPv4 outer header */
	XDPLB_DECAP_V4_IN_V6,      /* IPv4 inner stripped of an IPv6 outer header */
	XDPLB_DECAP_V6_IN_V6,      /* IPv6 inner stripped of an IPv6 outer header */
	XDPLB_DECAP_PASS_NOT_ENCAP,/* not an IPIP packet for a local address */
	XDPLB_DECAP_DROP_MALFORMED,/* IPIP for us, but the inner header is broken */
	XDPLB_DECAP_REASON_MAX,
};

/*
 * What the backend program (bpf/backend.bpf.c) did with a packet, toward a
 * local pod or from it; one counter each. Ranges decide the verdict: the
 * rewrites and passes let the packet go on, the drops end it.
 */
enum xdplb_backend_reason {
	XDPLB_BACKEND_TO_POD_V4_IN_V4 = 0, /* decapsulated, VIP:port rewritten to pod:target port, flow recorded */
	XDPLB_BACKEND_TO_POD_V4_IN_V6,
	XDPLB_BACKEND_TO_POD_V6_IN_V6,
	/* Node addressing, on the node's NIC: a tunnel packet to a node address
	 * for a VIP port of local pods: a pod picked (the flow's, or by hash),
	 * decapsulated, VIP:port rewritten to pod:target port, flow recorded, and
	 * sent to the pod's veth by the program (bpf_redirect_neigh), past the
	 * node's netfilter. */
	XDPLB_BACKEND_NODE_TO_POD_V4_IN_V4,
	XDPLB_BACKEND_NODE_TO_POD_V4_IN_V6,
	XDPLB_BACKEND_NODE_TO_POD_V6_IN_V6,
	XDPLB_BACKEND_REPLY_REWRITTEN,     /* from a pod: a recorded flow's reply, source rewritten to VIP:port, routed by the
					    * program and sent from its egress device (bpf_redirect_neigh), past the node's netfilter */
	/* A recorded flow's reply, rewritten, that the node's route lookup would not
	 * simply forward: left to the node's stack (netfilter included), which does
	 * what it always does with it. */
	XDPLB_BACKEND_REPLY_TO_STACK_NO_ROUTE,      /* a blackhole, unreachable or prohibit route: the stack drops it (with its ICMP) */
	XDPLB_BACKEND_REPLY_TO_STACK_NOT_FORWARDED, /* not forwarded: a local destination, forwarding off on the veth, no route, a route with encapsulation */
	XDPLB_BACKEND_REPLY_TO_STACK_FRAG_NEEDED,   /* larger than the egress device's MTU (and no GSO skb that segments to fit it) */
	XDPLB_BACKEND_REPLY_TO_STACK_TTL_EXPIRED,   /* TTL or hop limit 1 or less: the stack answers time exceeded */
	/* Node addressing: translated toward a pod, but the node's route lookup
	 * would not simply forward it to the pod: left to the node's stack. */
	XDPLB_BACKEND_NODE_TO_STACK_NO_ROUTE,      /* a blackhole, unreachable or prohibit route to the pod */
	XDPLB_BACKEND_NODE_TO_STACK_NOT_FORWARDED, /* forwarding off on the NIC, no route, a local or encapsulating route */
	XDPLB_BACKEND_NODE_TO_STACK_FRAG_NEEDED,   /* larger than the pod veth's MTU */
	XDPLB_BACKEND_PASS_NOT_ENCAP,      /* toward a pod: not IPIP / IPv6 tunnel traffic */
	XDPLB_BACKEND_PASS_NO_SERVICE,     /* tunnel packet, but no (pod, VIP, port, protocol) entry: in-pod decap's */
	XDPLB_BACKEND_PASS_FRAGMENT,       /* tunnel packet whose outer or inner header is a fragment */
	XDPLB_BACKEND_PASS_NOT_REPLY,      /* from a pod: not TCP or UDP (nothing a VIP flow can be) */
	XDPLB_BACKEND_PASS_NO_FLOW,        /* from a pod: TCP/UDP of no flow that came through the tunnel (probes, own connections) */
	XDPLB_BACKEND_PASS_OWN_SYN,        /* from a pod: a bare SYN on a recorded flow's tuple: the pod opening a connection */
	XDPLB_BACKEND_NODE_PASS_NOT_ENCAP,  /* on the NIC: not IPIP / IPv6 tunnel traffic (the node's own traffic) */
	XDPLB_BACKEND_NODE_PASS_NO_SERVICE, /* on the NIC: tunnel packet with no (node address, VIP, port, protocol) entry */
	XDPLB_BACKEND_NODE_PASS_FRAGMENT,   /* on the NIC: tunnel packet whose outer or inner header is a fragment */
	XDPLB_BACKEND_DROP_HAIRPIN,        /* a pod's own connection to a VIP, balanced back to itself */
	XDPLB_BACKEND_DROP_DECAP_FAILED,   /* bpf_skb_adjust_room refused to remove the outer header (on the veth or the NIC) */
	XDPLB_BACKEND_DROP_REWRITE_FAILED, /* storing an address, port or checksum failed (on the veth or the NIC) */
	XDPLB_BACKEND_NODE_DROP_NO_POD,    /* Node addressing: a new flow for an entry whose pods all drain (no slot) */
	XDPLB_BACKEND_NODE_DROP_HAIRPIN,   /* Node addressing: a pod's own connection to a VIP whose only pod here is itself */
	XDPLB_BACKEND_NODE_DROP_NOT_LOCAL, /* Node addressing: the route to the picked pod leads back out of the NIC (the pod left) */
	XDPLB_BACKEND_REASON_MAX,
};
#define XDPLB_BACKEND_FIRST_PASS_REASON XDPLB_BACKEND_PASS_NOT_ENCAP
#define XDPLB_BACKEND_FIRST_DROP_REASON XDPLB_BACKEND_DROP_HAIRPIN

/* Referenced by each program so that every enum above is in its BTF. */
struct xdplb_btf_anchor {
	enum xdplb_capacity capacity;
	enum xdplb_family family;
	enum xdplb_vip_flag vip_flag;
	enum xdplb_vip_addr_flag vip_addr_flag;
	enum xdplb_flow_const flow_const;
	enum xdplb_icmp_const icmp_const;
	enum xdplb_quic_const quic_const;
	enum xdplb_l2_flag l2_flag;
	enum xdplb_l2_const l2_const;
	enum xdplb_reason reason;
	enum xdplb_decap_reason decap_reason;
	enum xdplb_backend_reason backend_reason;
	enum xdplb_trace_const trace_const;
	enum xdplb_trace_path trace_path;
	enum xdplb_trace_counter trace_counter;
};
#define XDPLB_BTF_ANCHOR const volatile struct xdplb_btf_anchor xdplb_btf_anchor = {}

#endif
