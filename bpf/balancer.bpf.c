// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xdplb balancer: Katran-style L4 load balancing in XDP.
 *
 * VIP lookup -> backend choice (SYN: ring; else connection table, then the
 * real of the flow's SYN (half_open), then ring)
 * -> IPIP encapsulation -> XDP_TX to the next hop. The real answers the client
 * directly (DSR). For a VIP address the program also answers echo requests
 * (icmp-echo.h), sends ICMP errors about VIP flows to the flow's real
 * (icmp-error.h), answers packets too big to encapsulate (icmp-too-big.h) and
 * drops TCP/UDP to a port no VIP has: no VIP is a node address, so the host
 * would route any of them back out. Packets not for a VIP
 * address go to the kernel untouched. In L2 mode,
 * ARP requests and neighbor solicitations for the node's addresses are
 * answered first (l2.h).
 */
#include "include/counters.h"
#include "include/encap.h"
#include "include/icmp-echo.h"
#include "include/icmp-error.h"
#include "include/icmp-too-big.h"
#include "include/jhash.h"
#include "include/l2.h"
#include "include/parse.h"
#include "include/quic.h"
#include "include/trace.h"
#include "include/xdplb_maps.h"

XDPLB_BTF_ANCHOR;

static __always_inline int verdict(enum xdplb_reason reason)
{
	xdplb_count(&reason_stats, reason);
	if (reason >= XDPLB_FIRST_DROP_REASON)
		return XDP_DROP;
	if (reason >= XDPLB_FIRST_PASS_REASON)
		return XDP_PASS;
	return XDP_TX;
}

/* The destination's vip_addrs flags (XDPLB_VIP_ADDR_F_*), NULL when it is no VIP address. */
static __always_inline __u32 *vip_addr_flags(const struct flow_key *flow)
{
	struct xdplb_addr key = { .family = flow->family };

	__builtin_memcpy(key.addr, flow->dst, sizeof(key.addr));
	return bpf_map_lookup_elem(&vip_addrs, &key);
}

static __always_inline int is_vip_addr(const struct flow_key *flow)
{
	return vip_addr_flags(flow) != NULL;
}

/* Neither TCP nor UDP: an echo request to a VIP address is answered (or
 * dropped, where its VIPs say so); an error about a VIP flow goes on to be
 * balanced as that flow (p->flow becomes it); the rest goes to the host. */
static __always_inline int other_l4(struct xdplb_packet *p, void *data, void *data_end)
{
	__u32 *flags = vip_addr_flags(&p->flow);

	if (!flags)
		return XDPLB_PASS_NOT_VIP;
	if (xdplb_is_echo_request(p, data, data_end))
		return *flags & XDPLB_VIP_ADDR_F_ICMP_ECHO ? XDPLB_TX_ICMP_ECHO_REPLY : XDPLB_DROP_ICMP_ECHO_OFF;
	if (xdplb_icmp_error_flow(p, data, data_end))
		return XDPLB_TX_ICMP_ERROR;
	return XDPLB_PASS_VIP_NOT_TCP_UDP;
}

/*
 * The VIP of (address, port, protocol), else of (address, all ports); NULL if
 * neither. *vip_addr says whether the address is a VIP address at all. It is
 * looked up before the all-ports VIP, so that a packet for no VIP address
 * costs two lookups, as before there was a verdict for a VIP address's other
 * ports; an all-ports VIP pays the third.
 */
static __always_inline struct vip_meta *find_vip(const struct flow_key *flow, int *vip_addr)
{
	struct vip_key key = { .port = flow->dport, .proto = flow->proto, .family = flow->family };
	struct vip_meta *vip;

	__builtin_memcpy(key.addr, flow->dst, sizeof(key.addr));
	vip = bpf_map_lookup_elem(&vip_map, &key);
	*vip_addr = 1;
	if (vip)
		return vip;
	*vip_addr = is_vip_addr(flow);
	if (!*vip_addr)
		return NULL;
	key.port = 0;
	return bpf_map_lookup_elem(&vip_map, &key);
}

static __always_inline __u32 flow_hash(const struct flow_key *flow)
{
	__u32 src = flow->family == XDPLB_FAMILY_V6 ?
			    xdplb_jhash_4words(flow->src, XDPLB_FLOW_HASH_SEED) :
			    flow->src[0];
	__u32 ports = ((__u32)flow->sport << 16) | flow->dport;

	return xdplb_jhash_2words(src, ports, XDPLB_FLOW_HASH_SEED);
}

static __always_inline struct xdplb_addr *real_by_id(__u32 id)
{
	struct xdplb_addr *real;

	if (!id)
		return NULL;
	real = bpf_map_lookup_elem(&reals, &id);
	return real && real->family ? real : NULL;
}

/*
 * Decides what to do with a packet without touching it: returns the reason
 * to count, XDPLB_TX_ENCAP when *real is to receive it.
 */
static __always_inline int balance(struct xdp_md *ctx, struct xdplb_packet *p,
				   struct xdplb_trace_point *t, __u32 *hash)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 frame_len = data_end - data;
	struct xdplb_addr *real = NULL;
	struct flow_value *conn = NULL;
	struct vip_stats *vs;
	struct vip_meta *vip;
	__u32 real_id = 0, slot, *ring_id, now_s = 0;
	int rc, icmp_error = 0, vip_addr;

	rc = xdplb_parse(p, data, data_end);
	t->sport = p->flow.sport;
	switch (rc) {
	case XDPLB_PARSED:
		break;
	case XDPLB_PARSE_NOT_IP:
		return XDPLB_PASS_NOT_IP;
	case XDPLB_PARSE_NO_DST:
		return XDPLB_PASS_MALFORMED;
	case XDPLB_PARSE_MALFORMED:
		return is_vip_addr(&p->flow) ? XDPLB_DROP_MALFORMED : XDPLB_PASS_MALFORMED;
	case XDPLB_PARSE_FRAGMENT:
		return is_vip_addr(&p->flow) ? XDPLB_DROP_FRAGMENT : XDPLB_PASS_NOT_VIP;
	default: /* XDPLB_PARSE_OTHER_L4 */
		rc = other_l4(p, data, data_end);
		if (rc != XDPLB_TX_ICMP_ERROR)
			return rc;
		/* p->flow is the flow the error is about: it goes where that flow's
		 * packets go, and changes nothing in the connection table. */
		icmp_error = 1;
	}

	vip = find_vip(&p->flow, &vip_addr);
	if (!vip) {
		if (icmp_error)
			return XDPLB_PASS_VIP_NOT_TCP_UDP; /* about no VIP's port: the host's, as before */
		return vip_addr ? XDPLB_DROP_VIP_NO_PORT : XDPLB_PASS_NOT_VIP;
	}
	t->vip_num = vip->vip_num;
	vs = bpf_map_lookup_elem(&vip_stats, &vip->vip_num);
	if (vs) {
		vs->packets += 1;
		vs->bytes += frame_len;
	}
	if (vip->flags & XDPLB_VIP_F_HASH_NO_SRC_PORT)
		p->flow.sport = 0;

	if ((vip->flags & XDPLB_VIP_F_QUIC) && p->flow.proto == IPPROTO_UDP && !icmp_error) {
		/* Before the table: the connection ID outlives the 5-tuple. An id
		 * no real here has goes on as any UDP packet. */
		struct quic_server_key qk = { .vip_num = vip->vip_num, .server_id = xdplb_quic_server_id(p, data, data_end) };
		__u32 *id = qk.server_id ? bpf_map_lookup_elem(&quic_servers, &qk) : NULL;

		if (id && (real = real_by_id(*id))) {
			real_id = *id;
			t->path = XDPLB_PATH_QUIC_SERVER_ID;
			*hash = flow_hash(&p->flow);
			goto chosen;
		}
	}

	if (vip->flags & XDPLB_VIP_F_LRU_BYPASS) {
		t->path = XDPLB_PATH_RING_LRU_BYPASS;
	} else {
		conn = bpf_map_lookup_elem(&conn_table, &p->flow);
		/* A SYN starts a new connection: it re-hashes even when the 5-tuple
		 * is known. An entry whose real has since been removed is a miss. */
		if (!conn)
			t->path = XDPLB_PATH_RING_NEW_FLOW;
		else if (p->tcp_kind == XDPLB_TCP_SYN)
			t->path = XDPLB_PATH_RING_SYN;
		else if ((real = real_by_id(conn->real_id)))
			real_id = conn->real_id;
		else
			t->path = XDPLB_PATH_RING_STALE;
		if (p->flow.proto == IPPROTO_UDP && !icmp_error) {
			/* Coarse: a second's resolution is all it needs, and it is cheaper. */
			now_s = bpf_ktime_get_coarse_ns() / XDPLB_NS_PER_SEC;
			/* A known flow: idle too long, it takes the ring (signed: another
			 * CPU may have stamped it a second ahead of this clock read). */
			if (conn && real) {
				if ((__s32)(now_s - conn->atime_s) > XDPLB_UDP_IDLE_TIMEOUT_S) {
					real = NULL;
					real_id = 0;
					t->path = XDPLB_PATH_RING_UDP_IDLE;
				} else if (conn->atime_s != now_s) {
					conn->atime_s = now_s; /* one write a second at most per flow */
				}
			}
		}
	}
	*hash = flow_hash(&p->flow);
	if (real) {
		t->path = XDPLB_PATH_LRU_HIT;
		goto chosen;
	}
	if (!conn && t->path == XDPLB_PATH_RING_NEW_FLOW && p->flow.proto == IPPROTO_TCP && p->tcp_kind != XDPLB_TCP_SYN) {
		/* The first packet after a SYN: the SYN's real, not today's ring. */
		struct flow_value *half = bpf_map_lookup_elem(&half_open, &p->flow);

		if (half && (real = real_by_id(half->real_id))) {
			real_id = half->real_id;
			t->path = XDPLB_PATH_HALF_OPEN_HIT;
		}
	}
	if (!real) {
		slot = vip->vip_num * XDPLB_RING_SIZE + *hash % XDPLB_RING_SIZE;
		ring_id = bpf_map_lookup_elem(&ring, &slot);
		real_id = ring_id ? *ring_id : 0;
		real = real_by_id(real_id);
		if (!real)
			return XDPLB_DROP_NO_REAL;
		if (vs && !icmp_error)
			vs->lru_misses += 1; /* the ring chose the real: a new flow */
	}
	if (icmp_error)
		goto chosen;
	if (conn) {
		/* Overwriting in place costs a fraction of an update, which
		 * allocates a new element and frees the old one; and it evicts
		 * nothing, so a SYN of a known flow may do it. */
		conn->real_id = real_id;
		conn->atime_s = now_s;
	} else if (!(vip->flags & XDPLB_VIP_F_LRU_BYPASS)) {
		struct flow_value fv = { .real_id = real_id, .atime_s = now_s };

		/* A new SYN enters only half_open: see its definition. A RST is
		 * routed, never remembered: it ends a flow, and a live host whose
		 * address a SYN flood spoofed answers the real's SYN-ACK with one. */
		if (p->tcp_kind == XDPLB_TCP_SYN)
			bpf_map_update_elem(&half_open, &p->flow, &fv, BPF_ANY);
		else if (p->tcp_kind != XDPLB_TCP_RST)
			bpf_map_update_elem(&conn_table, &p->flow, &fv, BPF_ANY);
	}
chosen:
	t->real_id = real_id;
	t->real = real;
	return icmp_error ? XDPLB_TX_ICMP_ERROR : XDPLB_TX_ENCAP;
}

SEC("xdp")
int xdplb_balancer(struct xdp_md *ctx)
{
	__u64 frame_len = ctx->data_end - ctx->data;
	struct xdplb_trace_point t = { .vip_num = XDPLB_VIP_NUM_NONE };
	struct xdplb_packet p = {};
	struct trace_record *rec;
	struct real_stats *rs;
	struct ctl_config *cfg;
	const __u8 *l2_mac = NULL;
	__u32 zero = 0, hash = 0;
	int reason;

	reason = xdplb_l2_question(ctx, &p.flow, &l2_mac);
	if (reason == XDPLB_L2_NOT_OURS)
		reason = balance(ctx, &p, &t, &hash);
	rec = xdplb_trace_begin(ctx, &p.flow, &t);
	if (l2_mac) {
		reason = xdplb_l2_answer(ctx, reason, l2_mac);
	} else if (reason == XDPLB_TX_ICMP_ECHO_REPLY) {
		reason = xdplb_icmp_echo_reply(ctx, &p);
	} else if (reason == XDPLB_TX_ENCAP || reason == XDPLB_TX_ICMP_ERROR) {
		int to_real = reason;

		cfg = bpf_map_lookup_elem(&ctl, &zero);
		reason = cfg ? xdplb_encap(ctx, &p, t.real, cfg, hash & XDPLB_IPV6_FLOW_LABEL_MASK) :
			       XDPLB_DROP_NOT_CONFIGURED;
		/* Too big: tell the client, unless what is too big is itself an
		 * ICMP error (RFC 1122: none is sent about one). */
		if (reason == XDPLB_DROP_TOO_BIG && to_real == XDPLB_TX_ENCAP && cfg)
			reason = xdplb_icmp_too_big(ctx, &p, t.real, cfg);
		if (reason == XDPLB_TX_ENCAP) {
			reason = to_real;
			rs = bpf_map_lookup_elem(&real_stats, &t.real_id);
			if (rs) {
				rs->packets += 1;
				rs->bytes += frame_len;
			}
		}
	}
	if (rec)
		xdplb_trace_submit(ctx, rec, reason);
	return verdict(reason);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
