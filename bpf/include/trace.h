/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packet tracing: a record per matching packet in a ring buffer, with the
 * frame as received and, when it is sent back out (XDP_TX), as sent. Off
 * (trace_config.rule_count 0) it costs one inlined array load per packet.
 * Its maps (trace_ctl, trace_budget, trace_stats, trace_ring) are with the
 * others in xdplb_maps.h.
 */
#ifndef XDPLB_TRACE_H
#define XDPLB_TRACE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xdplb_consts.h"
#include "xdplb_structs.h"
#include "xdplb_maps.h"
#include "window.h"

#define XDPLB_ADDR_WORDS 4

/* A ring buffer map carries no value type: this puts struct trace_record in
 * the object's BTF, where the layout test and bpftool find it. */
struct trace_record *const volatile xdplb_trace_record_btf = 0;

/* What the balancer decided about a packet, for its trace record. */
struct xdplb_trace_point {
	__be16 sport;         /* as received: the flow's is zeroed for no-source-port VIPs */
	__u32 vip_num;
	__u32 real_id;
	const struct xdplb_addr *real;
	__u8 path;
};

static __always_inline void xdplb_trace_count(__u32 counter)
{
	__u64 *n = bpf_map_lookup_elem(&trace_stats, &counter);

	if (n)
		*n += 1;
}

static __always_inline int xdplb_trace_rule_matches(const struct trace_rule *r,
						    const struct flow_key *flow,
						    const struct xdplb_trace_point *t)
{
	if (r->vip_num != XDPLB_VIP_NUM_NONE && r->vip_num != t->vip_num)
		return 0;
	if (r->port && r->port != t->sport && r->port != flow->dport)
		return 0;
	if (!r->family)
		return 1;
	if (r->family != flow->family)
		return 0;
	for (int i = 0; i < XDPLB_ADDR_WORDS; i++)
		if ((flow->src[i] & r->mask[i]) != r->client[i])
			return 0;
	return 1;
}

/* Takes one record from a rule's window on this CPU when it has room. */
static __always_inline int xdplb_trace_take(__u32 rule, __u32 cpu_rate, __u64 now)
{
	struct trace_budget *b = bpf_map_lookup_elem(&trace_budget, &rule);

	return b && xdplb_window_take(&b->window_start_ns, &b->used, cpu_rate, now);
}

static __always_inline __u16 xdplb_trace_copy_frame(struct xdp_md *ctx, __u8 *dst)
{
	/* 64 bits: a 32-bit length is tested on a zero-extended copy, and the
	 * verifier must see the bound on the register passed to the helper. */
	__u64 len = ctx->data_end - ctx->data;

	if (len > XDPLB_TRACE_SNAPLEN)
		len = XDPLB_TRACE_SNAPLEN;
	if (len == 0 || bpf_xdp_load_bytes(ctx, 0, dst, len))
		return 0;
	return len;
}

/*
 * Whether a packet is to be recorded: the first matching rule with room in
 * its budget pays for it, so a packet that two sessions' rules match is
 * recorded while either has room (and every session whose filter it passes
 * gets it). A packet that matched but found no room is charged to each rule
 * it matched, in a second pass: a mask of the matched rules would make the
 * verifier walk every subset of them. Global and not inlined: the verifier
 * checks it once, not with every path of each call site. The
 * coarse clock (one tick) is plenty for one-second windows and costs a
 * fraction of bpf_ktime_get_ns().
 */
__attribute__((noinline)) int xdplb_trace_pay(const struct flow_key *flow, __u32 sport, __u32 vip_num)
{
	struct xdplb_trace_point t = { .sport = sport, .vip_num = vip_num };
	__u32 zero = 0;
	struct trace_config *cfg;
	int matched = 0;
	__u64 now = 0;

	if (!flow)
		return 0;
	cfg = bpf_map_lookup_elem(&trace_ctl, &zero);
	if (!cfg || !cfg->rule_count)
		return 0;
	for (__u32 i = 0; i < XDPLB_TRACE_MAX_RULES; i++) {
		if (i >= cfg->rule_count)
			break;
		if (!xdplb_trace_rule_matches(&cfg->rules[i], flow, &t))
			continue;
		/* The clock only for a matched packet: most packets match no rule. */
		if (!matched)
			now = bpf_ktime_get_coarse_ns();
		matched = 1;
		if (xdplb_trace_take(i, cfg->rules[i].cpu_rate, now))
			return 1;
	}
	if (!matched)
		return 0;
	for (__u32 i = 0; i < XDPLB_TRACE_MAX_RULES; i++) {
		__u32 key = i; /* the counter stays in a register, where the verifier bounds it */
		struct trace_budget *b;

		if (i >= cfg->rule_count)
			break;
		if (!xdplb_trace_rule_matches(&cfg->rules[i], flow, &t))
			continue;
		b = bpf_map_lookup_elem(&trace_budget, &key);
		if (b)
			b->limited += 1;
	}
	xdplb_trace_count(XDPLB_TRACE_RATE_LIMITED);
	return 0;
}

/*
 * Returns a reserved record holding the frame as received when the packet
 * is to be traced, else NULL. The caller must xdplb_trace_submit() it.
 */
static __always_inline struct trace_record *xdplb_trace_begin(struct xdp_md *ctx,
							     const struct flow_key *flow,
							     const struct xdplb_trace_point *t)
{
	__u32 zero = 0;
	struct trace_config *cfg;
	struct trace_record *rec;

#ifdef XDPLB_BENCH_NO_TRACE
	/* bench/bpf builds the program without tracing, to measure what "off" costs. */
	return NULL;
#endif
	cfg = bpf_map_lookup_elem(&trace_ctl, &zero);
	if (!cfg || !cfg->rule_count)
		return NULL;
	/* Most packets match no rule: find that out inline, stopping at the first
	 * match, and call the budget's loop only for a matched packet. */
	for (int i = 0; i < XDPLB_TRACE_MAX_RULES; i++) {
		if (i >= cfg->rule_count)
			return NULL;
		if (xdplb_trace_rule_matches(&cfg->rules[i], flow, t))
			break;
		if (i == XDPLB_TRACE_MAX_RULES - 1)
			return NULL;
	}
	if (!xdplb_trace_pay(flow, t->sport, t->vip_num))
		return NULL;
	rec = bpf_ringbuf_reserve(&trace_ring, sizeof(*rec), 0);
	if (!rec) {
		xdplb_trace_count(XDPLB_TRACE_RING_FULL);
		return NULL;
	}
	rec->timestamp_ns = bpf_ktime_get_ns();
	rec->flow = *flow;
	rec->flow.sport = t->sport;
	rec->cpu = bpf_get_smp_processor_id();
	rec->vip_num = t->vip_num;
	rec->real_id = t->real_id;
	if (t->real)
		rec->real = *t->real;
	else
		__builtin_memset(&rec->real, 0, sizeof(rec->real));
	rec->frame_len = ctx->data_end - ctx->data;
	rec->out_len = 0;
	rec->out_cap = 0;
	rec->path = t->path;
	rec->pad[0] = rec->pad[1] = 0;
	rec->in_cap = xdplb_trace_copy_frame(ctx, rec->pkt_in);
	return rec;
}

static __always_inline void xdplb_trace_submit(struct xdp_md *ctx, struct trace_record *rec,
					       int reason)
{
	rec->reason = reason;
	if (reason < XDPLB_FIRST_PASS_REASON) {
		rec->out_len = ctx->data_end - ctx->data;
		rec->out_cap = xdplb_trace_copy_frame(ctx, rec->pkt_out);
	}
	bpf_ringbuf_submit(rec, 0);
	xdplb_trace_count(XDPLB_TRACE_EMITTED);
}

#endif
