/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map of the balancer, each defined once (Katran's balancer_maps.h).
 * src/bpf/maps.ts is the TypeScript schema of the same maps (codecs, per-CPU,
 * which capacity each scales with); test/bpf/layout.test.ts compares the two
 * through the object's BTF. Map names are cut at 15 characters by the kernel.
 * The decap program's two maps are in decap.bpf.c: this header is the
 * balancer's and would put its maps into any object that includes it.
 */
#ifndef XDPLB_MAPS_H
#define XDPLB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xdplb_consts.h"
#include "xdplb_structs.h"

/* ---- Balancing ---- */

/* VIP (address, port, protocol) -> its flags and vip_num. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XDPLB_MAX_VIPS);
	__type(key, struct vip_key);
	__type(value, struct vip_meta);
} vip_map SEC(".maps");

/* Addresses that carry at least one VIP, with how many: decides whether a
 * fragment or a broken packet was meant for us (drop) or for the host (pass). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XDPLB_MAX_VIPS);
	__type(key, struct xdplb_addr);
	__type(value, __u32);
} vip_addrs SEC(".maps");

/* L2 mode: addresses this node answers ARP and neighbor solicitations for
 * (value: XDPLB_L2_F_*), while it is the one elected to announce them. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XDPLB_MAX_VIPS);
	__type(key, struct xdplb_addr);
	__type(value, __u32);
} l2_addrs SEC(".maps");

/* Real id -> the real's address; id 0 is reserved ("no real"), family 0 an unused slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XDPLB_MAX_REALS);
	__type(key, __u32);
	__type(value, struct xdplb_addr);
} reals SEC(".maps");

/* Maglev rings, one slice of XDPLB_RING_SIZE real ids per vip_num. Mappable:
 * the agent writes slots through mmap instead of a syscall per batch. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XDPLB_MAX_VIPS * XDPLB_RING_SIZE);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u32);
} ring SEC(".maps");

/* The connection table, flow -> real id. One table, per-CPU LRU lists
 * (BPF_F_NO_COMMON_LRU): no cross-CPU lock on the hot path, and a flow that
 * RSS moves to another CPU still finds its real. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XDPLB_CONNECTION_TABLE_SIZE);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct flow_key);
	__type(value, struct flow_value);
} conn_table SEC(".maps");

/* Flows whose SYN was balanced and whose client has sent nothing else yet,
 * flow -> the SYN's real. A SYN goes here, not into conn_table, so that a
 * flood of spoofed SYNs (which never send a second packet) churns only this
 * table and pushes no established flow out of conn_table. The first non-SYN
 * packet moves the flow into conn_table with the SYN's real, so a handshake
 * survives a ring change between SYN and ACK. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XDPLB_CONNECTION_TABLE_SIZE / XDPLB_HALF_OPEN_TABLE_DIVISOR);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct flow_key);
	__type(value, struct flow_value);
} half_open SEC(".maps");

/* (vip_num, QUIC server id) -> real id, for VIPs with XDPLB_VIP_F_QUIC (quic.h).
 * Per VIP: a connection ID can only name one of its own VIP's reals. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XDPLB_MAX_REALS * XDPLB_QUIC_SERVERS_PER_REAL);
	__type(key, struct quic_server_key);
	__type(value, __u32);
} quic_servers SEC(".maps");

/* ctl[0]: next hop and outer source addresses for encapsulation. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ctl_config);
} ctl SEC(".maps");

/* ---- Counters ---- */

/* Per vip_num: packets, bytes, connection table misses. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPLB_MAX_VIPS);
	__type(key, __u32);
	__type(value, struct vip_stats);
} vip_stats SEC(".maps");

/* Per real id: packets and bytes sent to the real. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPLB_MAX_REALS);
	__type(key, __u32);
	__type(value, struct real_stats);
} real_stats SEC(".maps");

/* Per enum xdplb_reason: packets; every packet counts in exactly one. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPLB_REASON_MAX);
	__type(key, __u32);
	__type(value, __u64);
} reason_stats SEC(".maps");

/* ---- ICMP answers (icmp-too-big.h) ---- */

/* Too-big answers: each CPU's budget (one second's window). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct icmp_budget);
} icmp_budget SEC(".maps");

/* ---- Packet tracing (trace.h) ---- */

/* trace_ctl[0]: the match rules and their per-CPU rates; rule_count 0 is off. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct trace_config);
} trace_ctl SEC(".maps");

/* trace_budget[rule index], per CPU: each rule's rate window. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPLB_TRACE_MAX_RULES);
	__type(key, __u32);
	__type(value, struct trace_budget);
} trace_budget SEC(".maps");

/* Per enum xdplb_trace_counter: what became of each traced packet. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPLB_TRACE_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} trace_stats SEC(".maps");

/* Trace records (struct trace_record) for the agent to read. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, XDPLB_TRACE_RING_BYTES);
} trace_ring SEC(".maps");

#endif
