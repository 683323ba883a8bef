// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xdplb backend, for nodes that host backend pods (pod-address mode): two tc
 * programs for tcx on the host side of a pod's veth, so that the pod needs no
 * VIP, no privilege and no BPF.
 *
 * xdplb_backend_to_pod (host-side egress: toward the pod): an IPIP or IPv6
 * tunnel packet whose outer destination is the pod loses its outer header, and
 * its inner destination VIP:port becomes the pod's address and target port.
 *
 * The flow, as the pod sees it, is recorded with the VIP:port its client
 * addressed.
 *
 * xdplb_backend_from_pod (host-side ingress: from the pod): a TCP or UDP
 * packet of a recorded flow (the reversed tuple is in backend_flows) gets its
 * source rewritten back to that VIP:port, and the program routes it itself
 * (bpf_fib_lookup, TTL decremented, bpf_redirect_neigh) out of the node's
 * egress device (direct server return): the node's netfilter never sees it,
 * so conntrack cannot call its SYN-ACK INVALID (it saw only the tunnel
 * packet). A reply the node would not simply forward goes to its stack.
 * Everything else the pod sends (answers to kubelet probes and ClusterIP
 * clients, its own connections) passes untouched.
 *
 * xdplb_backend_from_nic (tcx ingress of the node's NIC, Node addressing):
 * an IPIP or IPv6 tunnel packet whose outer destination is the node's own
 * address, for a VIP port some local pods serve (backend_node_svcs), goes to
 * one of those pods: the one its flow went to (backend_node_flows, keyed by
 * the client's tuple), or else one picked by a hash of the flow over the
 * entry's slots. It is decapsulated and translated as toward a pod, its flow
 * recorded in backend_flows (so the from-pod program rewrites the replies),
 * and the program sends it to the pod's veth itself (bpf_fib_lookup,
 * bpf_redirect_neigh), past the node's netfilter. Everything else passes.
 *
 * backend_svcs and backend_node_svcs are the agent's, filled from the VIPs the
 * node's pods back; backend_flows and backend_node_flows are the programs'
 * own. bpf/BACKEND.md has the corner cases.
 */
#include <stddef.h>
#include <linux/pkt_cls.h>

#include "include/counters.h"
#include "include/jhash.h"
#include "include/parse.h"

/*
 * bpf_skb_adjust_room flags of Linux 6.3, newer than the UAPI headers the
 * build uses: the inner header's family when it differs from the outer's
 * (sets skb->protocol). Own names, as newer headers declare the kernel's in
 * an enum.
 */
#define XDPLB_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#define XDPLB_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)

/* tcx verdicts (enum tcx_action_base, Linux 6.6) are the tc actions: NEXT lets
 * the programs after ours (a CNI's) and then the stack have the packet. */
#define XDPLB_TCX_NEXT TC_ACT_UNSPEC
#define XDPLB_TCX_DROP TC_ACT_SHOT

/* struct bpf_fib_lookup and struct bpf_redir_neigh take the host's address
 * families (Linux's AF_INET and AF_INET6), not enum xdplb_family. */
#define XDPLB_AF_INET 2
#define XDPLB_AF_INET6 10

/* A packet that arrives with this TTL or hop limit, or less, must not be
 * forwarded: the stack drops it and answers ICMP time exceeded. */
#define XDPLB_LAST_HOP_TTL 1

/* The first word of an IPv6 header less the version: traffic class and flow
 * label, which policy routing may match. */
#define XDPLB_IPV6_FLOWINFO_MASK 0x0fffffff

/* Bytes of headers read directly: Ethernet, outer IPv6, inner IPv6 and the
 * start of TCP/UDP. Pulled into the linear area when they are not there. */
#define XDPLB_BACKEND_PULL_LEN (sizeof(struct ethhdr) + 2 * sizeof(struct ipv6hdr) + sizeof(struct tcphdr))

/* The backend program's maps (src/bpf/maps.ts BACKEND_MAPS is their schema). */

/* (pod address as tunnelled to, VIP, VIP port, protocol) -> the pod's address
 * of the VIP's family, its target port and the protocol. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XDPLB_MAX_BACKEND_SERVICES);
	__type(key, struct backend_svc_key);
	__type(value, struct xdplb_endpoint);
} backend_svcs SEC(".maps");

/*
 * The flows translated toward a pod, as the pod sees them (src: the client
 * and its port; dst: the pod and its target port) -> the VIP, port and
 * protocol the client addressed. Written toward the pod, read under the
 * reversed tuple from it. One LRU for all CPUs (not BPF_F_NO_COMMON_LRU): a
 * flow is recorded on the CPU that receives the tunnel packets, often one per
 * balancer (NICs hash IPIP by its outer addresses), so per-CPU lists would
 * give those flows a CPU's share of the table; only new flows write to it.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XDPLB_BACKEND_FLOW_TABLE_SIZE);
	__type(key, struct flow_key);
	__type(value, struct xdplb_endpoint);
} backend_flows SEC(".maps");

/*
 * Node addressing: (node address as tunnelled to, VIP, VIP port, protocol) ->
 * the local pods that serve it, as slots. The pods' own backend_svcs entries
 * (tunnel_dst: the pod's address of the VIP's family) give their target port,
 * and say whether a pod still serves (or drains).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XDPLB_MAX_BACKEND_NODE_SERVICES);
	__type(key, struct backend_svc_key);
	__type(value, struct backend_node_svc);
} backend_node_svcs SEC(".maps");

/*
 * Node addressing: the flows a node has given a pod, by the client's tuple
 * (the inner packet as the balancer sent it: client to VIP:port) -> that
 * pod's address. A flow keeps its pod while the pod's backend_svcs entry
 * lives (draining included), whatever pods come or go. One LRU for all CPUs,
 * as backend_flows, and of its size: each of its flows has an entry there.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XDPLB_BACKEND_FLOW_TABLE_SIZE);
	__type(key, struct flow_key);
	__type(value, struct xdplb_addr);
} backend_node_flows SEC(".maps");

/* Per enum xdplb_backend_reason: packets; every packet counts in exactly one. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPLB_BACKEND_REASON_MAX);
	__type(key, __u32);
	__type(value, __u64);
} backend_stats SEC(".maps");

XDPLB_BTF_ANCHOR;

static __always_inline int verdict(enum xdplb_backend_reason reason)
{
	xdplb_count(&backend_stats, reason);
	return reason >= XDPLB_BACKEND_FIRST_DROP_REASON ? XDPLB_TCX_DROP : XDPLB_TCX_NEXT;
}

/* Makes the headers readable directly when the skb holds them in fragments. */
static __always_inline void pull_headers(struct __sk_buff *skb)
{
	__u32 want = skb->len < XDPLB_BACKEND_PULL_LEN ? skb->len : XDPLB_BACKEND_PULL_LEN;

	if ((void *)(long)skb->data + want > (void *)(long)skb->data_end)
		bpf_skb_pull_data(skb, want); /* on failure the bounds checks below pass the packet */
}

enum rewrite_field { REWRITE_SRC, REWRITE_DST };

/*
 * Rewrites the source or the destination address and port of the parsed
 * packet whose IP header is at l3_off, fixing the IPv4 header checksum and
 * the TCP/UDP checksum (pseudo-header included). An IPv4 UDP checksum of zero
 * (none) stays zero. Through helpers only: any of them may move the data.
 */
static __always_inline int rewrite(struct __sk_buff *skb, const struct xdplb_packet *p, __u32 l3_off,
				   enum rewrite_field field, const struct xdplb_endpoint *to)
{
	const int dst = field == REWRITE_DST;
	const int udp = p->flow.proto == IPPROTO_UDP;
	__u32 l4_off = l3_off + p->l4_off;
	__u32 csum_off = l4_off + (udp ? offsetof(struct udphdr, check) : offsetof(struct tcphdr, check));
	__u32 port_off = l4_off + (dst ? offsetof(struct udphdr, dest) : offsetof(struct udphdr, source));
	__be16 old_port = dst ? p->flow.dport : p->flow.sport;
	const __be32 *old_addr = dst ? p->flow.dst : p->flow.src;
	__u64 mangled_0 = udp ? BPF_F_MARK_MANGLED_0 : 0;
	int l4_csum = 1;

	if (p->flow.family == XDPLB_FAMILY_V4) {
		__u32 addr_off = l3_off + (dst ? offsetof(struct iphdr, daddr) : offsetof(struct iphdr, saddr));

		if (udp) {
			__u16 check;

			if (bpf_skb_load_bytes(skb, csum_off, &check, sizeof(check)))
				return -1;
			l4_csum = check != 0;
		}
		if (l4_csum && bpf_l4_csum_replace(skb, csum_off, old_addr[0], to->addr[0],
						   BPF_F_PSEUDO_HDR | mangled_0 | sizeof(__be32)))
			return -1;
		if (bpf_l3_csum_replace(skb, l3_off + offsetof(struct iphdr, check), old_addr[0],
					to->addr[0], sizeof(__be32)))
			return -1;
		if (bpf_skb_store_bytes(skb, addr_off, &to->addr[0], sizeof(__be32), 0))
			return -1;
	} else {
		__u32 addr_off = l3_off + (dst ? offsetof(struct ipv6hdr, daddr) : offsetof(struct ipv6hdr, saddr));
		__s64 diff = bpf_csum_diff((__be32 *)old_addr, sizeof(p->flow.dst), (__be32 *)to->addr,
					   sizeof(to->addr), 0);

		/* size 0: from and to are a checksum difference, not header bytes */
		if (bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_PSEUDO_HDR | mangled_0))
			return -1;
		if (bpf_skb_store_bytes(skb, addr_off, to->addr, sizeof(to->addr), 0))
			return -1;
	}
	if (old_port == to->port)
		return 0;
	if (l4_csum && bpf_l4_csum_replace(skb, csum_off, old_port, to->port, mangled_0 | sizeof(__be16)))
		return -1;
	return bpf_skb_store_bytes(skb, port_off, &to->port, sizeof(to->port), 0) ? -1 : 0;
}

static __always_inline int same_addr(const __be32 *a, const __be32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

static __always_inline int same_endpoint(const struct xdplb_endpoint *a, const struct xdplb_endpoint *b)
{
	return same_addr(a->addr, b->addr) && a->port == b->port && a->proto == b->proto && a->family == b->family;
}

/*
 * Records a translated flow for its replies: (client, client port, pod, target
 * port) -> the VIP and port the client addressed. Written only when absent or
 * different (a new flow, one evicted, or the same client port now reaching the
 * pod through another VIP); a hit only marks the entry recently used. If the
 * update fails the packet still goes to the pod and its next one tries again.
 */
static __always_inline void record_flow(const struct xdplb_packet *p, const struct xdplb_endpoint *pod)
{
	struct flow_key flow = p->flow;
	struct xdplb_endpoint vip = {}, *known;

	__builtin_memcpy(flow.dst, pod->addr, sizeof(flow.dst));
	flow.dport = pod->port;
	__builtin_memcpy(vip.addr, p->flow.dst, sizeof(vip.addr));
	vip.port = p->flow.dport;
	vip.proto = p->flow.proto;
	vip.family = p->flow.family;
	known = bpf_map_lookup_elem(&backend_flows, &flow);
	if (!known || !same_endpoint(known, &vip))
		bpf_map_update_elem(&backend_flows, &flow, &vip, BPF_ANY);
}

/*
 * Takes the outer header (outer_len bytes after Ethernet) off the parsed
 * inner packet p, rewrites its destination VIP:port to the pod's address and
 * target port, and records the flow. 0, or the drop reason.
 */
static __always_inline enum xdplb_backend_reason decap_translate(struct __sk_buff *skb, const struct xdplb_packet *p,
								  const struct backend_svc_key *key, __u32 outer_len,
								  int inner_v6, const struct xdplb_endpoint *pod)
{
	__u64 decap_flags = BPF_F_ADJ_ROOM_FIXED_GSO; /* the segments' payload is what it was */

	if (key->tunnel_family != key->vip_family)
		decap_flags |= inner_v6 ? XDPLB_ADJ_ROOM_DECAP_L3_IPV6 : XDPLB_ADJ_ROOM_DECAP_L3_IPV4;
	if (bpf_skb_adjust_room(skb, -(__s32)outer_len, BPF_ADJ_ROOM_MAC, decap_flags))
		return XDPLB_BACKEND_DROP_DECAP_FAILED;
	if (key->tunnel_family != key->vip_family) {
		__be16 proto = bpf_htons(inner_v6 ? ETH_P_IPV6 : ETH_P_IP);

		if (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_proto), &proto, sizeof(proto), 0))
			return XDPLB_BACKEND_DROP_REWRITE_FAILED;
	}
	if (rewrite(skb, p, sizeof(struct ethhdr), REWRITE_DST, pod))
		return XDPLB_BACKEND_DROP_REWRITE_FAILED;
	record_flow(p, pod);
	return 0;
}

/* The inner packet of a tunnel packet, parsed as if the frame began
 * outer_len bytes later (the inner IP header is then where a frame's IP
 * header would be). Its destination goes into the key. */
static __always_inline int parse_inner(struct __sk_buff *skb, struct xdplb_packet *p, struct backend_svc_key *key,
				       __u32 outer_len, int inner_v6)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	int r = inner_v6 ? xdplb_parse_ipv6(p, data + outer_len, data_end) : xdplb_parse_ipv4(p, data + outer_len, data_end);

	__builtin_memcpy(key->vip, p->flow.dst, sizeof(key->vip));
	key->vip_port = p->flow.dport;
	key->proto = p->flow.proto;
	key->vip_family = p->flow.family;
	return r;
}

/* A tunnel packet toward the pod (outer destination: the pod): decapsulated, translated. */
static __always_inline int to_pod(struct __sk_buff *skb, struct backend_svc_key *key, __u32 outer_len,
				  int inner_v6, enum xdplb_backend_reason done)
{
	struct xdplb_packet p = {};
	struct xdplb_endpoint pod, *found;
	enum xdplb_backend_reason failed;
	int r;

	r = parse_inner(skb, &p, key, outer_len, inner_v6);
	if (r == XDPLB_PARSE_FRAGMENT)
		return verdict(XDPLB_BACKEND_PASS_FRAGMENT);
	if (r != XDPLB_PARSED)
		return verdict(XDPLB_BACKEND_PASS_NO_SERVICE);
	found = bpf_map_lookup_elem(&backend_svcs, key);
	if (!found)
		return verdict(XDPLB_BACKEND_PASS_NO_SERVICE);
	__builtin_memcpy(&pod, found, sizeof(pod));
	if (pod.family != p.flow.family)
		return verdict(XDPLB_BACKEND_DROP_REWRITE_FAILED); /* an entry the agent got wrong */
	/* The pod's own connection to a VIP it backs, balanced to itself: it
	 * would get a packet from its own address (a martian) and answer it
	 * locally, never as the VIP. */
	if (same_addr(p.flow.src, pod.addr))
		return verdict(XDPLB_BACKEND_DROP_HAIRPIN);
	failed = decap_translate(skb, &p, key, outer_len, inner_v6, &pod);
	return verdict(failed ? failed : done);
}

/* What a tunnel packet's outer header is. */
enum outer_kind { OUTER_NOT_ENCAP, OUTER_FRAGMENT, OUTER_V4_IN_V4, OUTER_V4_IN_V6, OUTER_V6_IN_V6 };

/* Reads the outer header of the frame: its kind, and its destination into the key. */
static __always_inline enum outer_kind parse_outer(struct __sk_buff *skb, struct backend_svc_key *key)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return OUTER_NOT_ENCAP;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = (void *)(eth + 1);

		/* The balancer sends no IPv4 options: an outer header with them is not ours. */
		if ((void *)(iph + 1) > data_end || iph->version != 4 || iph->ihl != XDPLB_IPV4_MIN_IHL ||
		    iph->protocol != IPPROTO_IPIP)
			return OUTER_NOT_ENCAP;
		if (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET))
			return OUTER_FRAGMENT;
		key->tunnel_family = XDPLB_FAMILY_V4;
		key->tunnel_dst[0] = iph->daddr;
		return OUTER_V4_IN_V4;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6h = (void *)(eth + 1);

		if ((void *)(ip6h + 1) > data_end || ip6h->version != 6)
			return OUTER_NOT_ENCAP;
		key->tunnel_family = XDPLB_FAMILY_V6;
		__builtin_memcpy(key->tunnel_dst, &ip6h->daddr, sizeof(key->tunnel_dst));
		if (ip6h->nexthdr == IPPROTO_IPIP)
			return OUTER_V4_IN_V6;
		if (ip6h->nexthdr == IPPROTO_IPV6)
			return OUTER_V6_IN_V6;
		if (ip6h->nexthdr == IPPROTO_FRAGMENT)
			return OUTER_FRAGMENT;
	}
	return OUTER_NOT_ENCAP;
}

static __always_inline __u32 outer_len_of(enum outer_kind kind)
{
	return kind == OUTER_V4_IN_V4 ? XDPLB_IPV4_HLEN : XDPLB_IPV6_HLEN;
}

SEC("tc")
int xdplb_backend_to_pod(struct __sk_buff *skb)
{
	struct backend_svc_key key = {};
	enum outer_kind kind;

	pull_headers(skb);
	kind = parse_outer(skb, &key);
	switch (kind) {
	case OUTER_V4_IN_V4:
		return to_pod(skb, &key, outer_len_of(kind), 0, XDPLB_BACKEND_TO_POD_V4_IN_V4);
	case OUTER_V4_IN_V6:
		return to_pod(skb, &key, outer_len_of(kind), 0, XDPLB_BACKEND_TO_POD_V4_IN_V6);
	case OUTER_V6_IN_V6:
		return to_pod(skb, &key, outer_len_of(kind), 1, XDPLB_BACKEND_TO_POD_V6_IN_V6);
	case OUTER_FRAGMENT:
		return verdict(XDPLB_BACKEND_PASS_FRAGMENT);
	default:
		return verdict(XDPLB_BACKEND_PASS_NOT_ENCAP);
	}
}

/* Why the node's route lookup would not simply forward a packet: one of
 * three reasons, given in this order (the reply's or the node path's). */
static __always_inline enum xdplb_backend_reason to_stack_reason(int fib_rc, enum xdplb_backend_reason no_route,
								  enum xdplb_backend_reason not_forwarded,
								  enum xdplb_backend_reason frag_needed)
{
	switch (fib_rc) {
	case BPF_FIB_LKUP_RET_BLACKHOLE:
	case BPF_FIB_LKUP_RET_UNREACHABLE:
	case BPF_FIB_LKUP_RET_PROHIBIT:
		return no_route;
	case BPF_FIB_LKUP_RET_FRAG_NEEDED:
		return frag_needed;
	default: /* not forwarded, forwarding disabled, encapsulation, an error */
		return not_forwarded;
	}
}

/* The IPv4 header's TTL and protocol: the 16-bit word the header checksum sums them in. */
union ttl_word {
	struct {
		__u8 ttl;
		__u8 protocol;
	};
	__be16 word;
};

/*
 * Sends a rewritten reply (its IP header at ETH_HLEN, the family of p) out of
 * the device the node's routes give its destination, as the node would
 * forward it: the lookup is made as for a packet received on the pod's veth
 * (its forwarding setting and the policy rules that match it apply), the TTL
 * or hop limit goes down by one (the IPv4 checksum with it), and
 * bpf_redirect_neigh fills in the next hop's MAC (resolving it when needed).
 * The reply never enters the node's IP stack: no netfilter (FORWARD,
 * POSTROUTING), no rp_filter. The egress device's tc programs still run.
 *
 * The MTU checked is the egress device's (GSO skbs by their segments), not a
 * route's own mtu. Where the node would not simply forward the reply (a
 * TO_STACK reason) it goes to the stack, as before this existed.
 */
static __always_inline int send_reply(struct __sk_buff *skb, const struct xdplb_packet *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	const __u32 l3_off = sizeof(struct ethhdr);
	struct bpf_fib_lookup fib = {};
	struct bpf_redir_neigh nh = {};
	int rc;

	fib.l4_protocol = p->flow.proto;
	fib.ifindex = skb->ifindex; /* the pod's host-side veth, where the reply came in */
	if (p->flow.family == XDPLB_FAMILY_V4) {
		struct iphdr *iph = data + l3_off;

		if ((void *)(iph + 1) > data_end)
			return verdict(XDPLB_BACKEND_REPLY_TO_STACK_NOT_FORWARDED);
		if (iph->ttl <= XDPLB_LAST_HOP_TTL)
			return verdict(XDPLB_BACKEND_REPLY_TO_STACK_TTL_EXPIRED);
		fib.family = XDPLB_AF_INET;
		fib.tos = iph->tos;
		fib.ipv4_src = iph->saddr;
		fib.ipv4_dst = iph->daddr;
	} else {
		struct ipv6hdr *ip6h = data + l3_off;

		if ((void *)(ip6h + 1) > data_end)
			return verdict(XDPLB_BACKEND_REPLY_TO_STACK_NOT_FORWARDED);
		if (ip6h->hop_limit <= XDPLB_LAST_HOP_TTL)
			return verdict(XDPLB_BACKEND_REPLY_TO_STACK_TTL_EXPIRED);
		fib.family = XDPLB_AF_INET6;
		fib.flowinfo = *(__be32 *)ip6h & bpf_htonl(XDPLB_IPV6_FLOWINFO_MASK);
		__builtin_memcpy(fib.ipv6_src, &ip6h->saddr, sizeof(fib.ipv6_src));
		__builtin_memcpy(fib.ipv6_dst, &ip6h->daddr, sizeof(fib.ipv6_dst));
	}
	{
		/* The ports, for rules that match them: the headers' after the rewrite. */
		struct udphdr *l4 = data + l3_off + p->l4_off;

		if ((void *)(l4 + 1) > data_end)
			return verdict(XDPLB_BACKEND_REPLY_TO_STACK_NOT_FORWARDED);
		fib.sport = l4->source;
		fib.dport = l4->dest;
	}

	/* No tot_len: the kernel then checks the skb against the egress
	 * device's MTU, GSO-aware. The neighbour is bpf_redirect_neigh's. */
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_SKIP_NEIGH);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return verdict(to_stack_reason(rc, XDPLB_BACKEND_REPLY_TO_STACK_NO_ROUTE, XDPLB_BACKEND_REPLY_TO_STACK_NOT_FORWARDED,
					       XDPLB_BACKEND_REPLY_TO_STACK_FRAG_NEEDED));

	if (p->flow.family == XDPLB_FAMILY_V4) {
		struct iphdr *iph = data + l3_off;
		union ttl_word old, new;

		if ((void *)(iph + 1) > data_end)
			return verdict(XDPLB_BACKEND_REPLY_TO_STACK_NOT_FORWARDED);
		old.ttl = iph->ttl;
		old.protocol = iph->protocol;
		new = old;
		new.ttl--;
		if (bpf_l3_csum_replace(skb, l3_off + offsetof(struct iphdr, check), old.word, new.word, sizeof(new.word)) ||
		    bpf_skb_store_bytes(skb, l3_off + offsetof(struct iphdr, ttl), &new.ttl, sizeof(new.ttl), 0))
			return verdict(XDPLB_BACKEND_DROP_REWRITE_FAILED);
	} else {
		struct ipv6hdr *ip6h = data + l3_off;
		__u8 hop_limit;

		if ((void *)(ip6h + 1) > data_end)
			return verdict(XDPLB_BACKEND_REPLY_TO_STACK_NOT_FORWARDED);
		hop_limit = ip6h->hop_limit - 1;
		if (bpf_skb_store_bytes(skb, l3_off + offsetof(struct ipv6hdr, hop_limit), &hop_limit, sizeof(hop_limit), 0))
			return verdict(XDPLB_BACKEND_DROP_REWRITE_FAILED);
	}

	/* The next hop: the route's gateway, or the destination itself (the
	 * lookup leaves it in ipv4_dst or ipv6_dst, with its family: an IPv4
	 * route may have an IPv6 gateway). */
	nh.nh_family = fib.family;
	__builtin_memcpy(nh.ipv6_nh, fib.ipv6_dst, sizeof(nh.ipv6_nh));
	xdplb_count(&backend_stats, XDPLB_BACKEND_REPLY_REWRITTEN);
	return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
}

SEC("tc")
int xdplb_backend_from_pod(struct __sk_buff *skb)
{
	struct flow_key key = {};
	struct xdplb_endpoint vip, *found;
	struct xdplb_packet p = {};
	int r;

	pull_headers(skb);
	r = xdplb_parse(&p, (void *)(long)skb->data, (void *)(long)skb->data_end);
	if (r == XDPLB_PARSE_FRAGMENT)
		return verdict(XDPLB_BACKEND_PASS_FRAGMENT);
	if (r != XDPLB_PARSED)
		return verdict(XDPLB_BACKEND_PASS_NOT_REPLY);

	/* The flow as recorded toward the pod: the reply's tuple reversed. */
	__builtin_memcpy(key.src, p.flow.dst, sizeof(key.src));
	__builtin_memcpy(key.dst, p.flow.src, sizeof(key.dst));
	key.sport = p.flow.dport;
	key.dport = p.flow.sport;
	key.proto = p.flow.proto;
	key.family = p.flow.family;
	found = bpf_map_lookup_elem(&backend_flows, &key);
	if (!found)
		return verdict(XDPLB_BACKEND_PASS_NO_FLOW);
	/* A reply is never a bare SYN: the pod opens a connection on the tuple
	 * of a flow that ended (its entry not yet evicted). Left alone, and
	 * counted: see BACKEND.md. */
	if (p.tcp_kind == XDPLB_TCP_SYN)
		return verdict(XDPLB_BACKEND_PASS_OWN_SYN);
	__builtin_memcpy(&vip, found, sizeof(vip));
	if (vip.family != p.flow.family)
		return verdict(XDPLB_BACKEND_DROP_REWRITE_FAILED); /* an entry the agent got wrong */
	if (rewrite(skb, &p, sizeof(struct ethhdr), REWRITE_SRC, &vip))
		return verdict(XDPLB_BACKEND_DROP_REWRITE_FAILED);
	return send_reply(skb, &p);
}

/* ---- Node addressing: tunnel packets to the node's address, on its NIC. ---- */

_Static_assert((XDPLB_NODE_SVC_SLOTS & (XDPLB_NODE_SVC_SLOTS - 1)) == 0, "slot indexes are bounded by a mask");
#define XDPLB_NODE_SVC_SLOT_MASK (XDPLB_NODE_SVC_SLOTS - 1)

/* The hash a node picks a pod by: the balancer's flow hash, under the node's
 * seed; without the client's port for VIPs that hash by client address. */
static __always_inline __u32 node_hash(const struct flow_key *flow, __u32 flags)
{
	__u32 src = flow->family == XDPLB_FAMILY_V6 ? xdplb_jhash_4words(flow->src, XDPLB_NODE_HASH_SEED) : flow->src[0];
	__u32 sport = flags & XDPLB_VIP_F_HASH_NO_SRC_PORT ? 0 : flow->sport;

	return xdplb_jhash_2words(src, (sport << 16) | flow->dport, XDPLB_NODE_HASH_SEED);
}

/*
 * The local pod for a packet of the entry svc: the one its flow has (unless
 * a SYN, which picks anew as at the balancer), while that pod's backend_svcs
 * entry lives; else the slot the flow's hash gives, or the next ones when that
 * pod is the client itself (hairpin) or has no entry. The pick is recorded.
 * pod_key comes with the VIP's fields set; its tunnel fields become the pod's.
 * NULL with *why set when there is no pod to give.
 */
static __always_inline struct xdplb_endpoint *pick_pod(const struct xdplb_packet *p, const struct backend_node_svc *svc,
						       struct backend_svc_key *pod_key, enum xdplb_backend_reason *why)
{
	struct xdplb_endpoint *found;
	struct xdplb_addr *known = NULL, pick = {};
	__u32 slots = svc->slots, flags = svc->flags, start, k;
	int hairpin = 0;

	pod_key->tunnel_family = p->flow.family;
	if (p->tcp_kind != XDPLB_TCP_SYN)
		known = bpf_map_lookup_elem(&backend_node_flows, &p->flow);
	if (known && known->family == p->flow.family) {
		__builtin_memcpy(pod_key->tunnel_dst, known->addr, sizeof(pod_key->tunnel_dst));
		found = bpf_map_lookup_elem(&backend_svcs, pod_key);
		if (found)
			return found;
	}
	*why = XDPLB_BACKEND_NODE_DROP_NO_POD;
	if (slots == 0 || slots > XDPLB_NODE_SVC_SLOTS)
		return NULL;
	start = node_hash(&p->flow, flags) % slots;
	for (k = 0; k < XDPLB_NODE_SVC_SLOTS && k < slots; k++) {
		/* < slots <= XDPLB_NODE_SVC_SLOTS already; the mask says so to the
		 * verifier (the compiler drops a comparison it knows holds). */
		__u32 i = ((start + k) % slots) & XDPLB_NODE_SVC_SLOT_MASK;

		__builtin_memcpy(pod_key->tunnel_dst, svc->pods[i], sizeof(pod_key->tunnel_dst));
		if (same_addr(pod_key->tunnel_dst, p->flow.src)) {
			hairpin = 1;
			continue;
		}
		found = bpf_map_lookup_elem(&backend_svcs, pod_key);
		if (!found)
			continue; /* a slot written before its pod's entry: the next one */
		__builtin_memcpy(pick.addr, pod_key->tunnel_dst, sizeof(pick.addr));
		pick.family = p->flow.family;
		bpf_map_update_elem(&backend_node_flows, &p->flow, &pick, BPF_ANY);
		return found;
	}
	if (hairpin)
		*why = XDPLB_BACKEND_NODE_DROP_HAIRPIN;
	return NULL;
}

/*
 * Sends a translated packet (its IP header at ETH_HLEN; p holds its flow as
 * the client sent it, pod where it now goes) to the pod's veth, as the node
 * would forward it but without its IP stack: no netfilter, so the node's
 * conntrack never sees the inner flow's first packet from the client side.
 * The lookup is made as for a packet received on the NIC. A route back out of
 * the NIC means the pod is not here (any more): dropped. Where the node would
 * not simply forward it, it goes to the stack, translated. The TTL is left as
 * it is, as it is in Pod addressing (the node is the tunnel's end).
 */
static __always_inline int deliver_to_pod(struct __sk_buff *skb, const struct xdplb_packet *p,
					  const struct xdplb_endpoint *pod, enum xdplb_backend_reason done)
{
	struct bpf_fib_lookup fib = {};
	struct bpf_redir_neigh nh = {};
	int rc;

	fib.l4_protocol = p->flow.proto;
	fib.ifindex = skb->ifindex; /* the NIC the tunnel packet came in on */
	fib.sport = p->flow.sport;
	fib.dport = pod->port;
	if (p->flow.family == XDPLB_FAMILY_V4) {
		fib.family = XDPLB_AF_INET;
		fib.tos = p->tos;
		fib.ipv4_src = p->flow.src[0];
		fib.ipv4_dst = pod->addr[0];
	} else {
		fib.family = XDPLB_AF_INET6;
		__builtin_memcpy(fib.ipv6_src, p->flow.src, sizeof(fib.ipv6_src));
		__builtin_memcpy(fib.ipv6_dst, pod->addr, sizeof(fib.ipv6_dst));
	}
	/* No tot_len: the kernel checks the skb (decapsulated) against the pod veth's MTU, GSO-aware. */
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_SKIP_NEIGH);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return verdict(to_stack_reason(rc, XDPLB_BACKEND_NODE_TO_STACK_NO_ROUTE, XDPLB_BACKEND_NODE_TO_STACK_NOT_FORWARDED,
					       XDPLB_BACKEND_NODE_TO_STACK_FRAG_NEEDED));
	if (fib.ifindex == skb->ifindex)
		return verdict(XDPLB_BACKEND_NODE_DROP_NOT_LOCAL);
	nh.nh_family = fib.family;
	__builtin_memcpy(nh.ipv6_nh, fib.ipv6_dst, sizeof(nh.ipv6_nh));
	xdplb_count(&backend_stats, done);
	return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
}

/* A tunnel packet to the node's address (key: its outer header): to a local pod, or untouched. */
static __always_inline int to_node(struct __sk_buff *skb, struct backend_svc_key *key, __u32 outer_len, int inner_v6,
				   enum xdplb_backend_reason done)
{
	struct xdplb_packet p = {};
	struct backend_svc_key pod_key;
	struct backend_node_svc *svc;
	struct xdplb_endpoint pod, *found;
	enum xdplb_backend_reason why = XDPLB_BACKEND_NODE_DROP_NO_POD;
	int r;

	r = parse_inner(skb, &p, key, outer_len, inner_v6);
	if (r == XDPLB_PARSE_FRAGMENT)
		return verdict(XDPLB_BACKEND_NODE_PASS_FRAGMENT);
	if (r != XDPLB_PARSED)
		return verdict(XDPLB_BACKEND_NODE_PASS_NO_SERVICE);
	svc = bpf_map_lookup_elem(&backend_node_svcs, key);
	if (!svc)
		return verdict(XDPLB_BACKEND_NODE_PASS_NO_SERVICE);
	__builtin_memcpy(&pod_key, key, sizeof(pod_key));
	found = pick_pod(&p, svc, &pod_key, &why);
	if (!found)
		return verdict(why);
	__builtin_memcpy(&pod, found, sizeof(pod));
	if (pod.family != p.flow.family)
		return verdict(XDPLB_BACKEND_DROP_REWRITE_FAILED); /* an entry the agent got wrong */
	why = decap_translate(skb, &p, key, outer_len, inner_v6, &pod);
	if (why)
		return verdict(why);
	return deliver_to_pod(skb, &p, &pod, done);
}

SEC("tc")
int xdplb_backend_from_nic(struct __sk_buff *skb)
{
	struct backend_svc_key key = {};
	enum outer_kind kind;

	pull_headers(skb);
	kind = parse_outer(skb, &key);
	switch (kind) {
	case OUTER_V4_IN_V4:
		return to_node(skb, &key, outer_len_of(kind), 0, XDPLB_BACKEND_NODE_TO_POD_V4_IN_V4);
	case OUTER_V4_IN_V6:
		return to_node(skb, &key, outer_len_of(kind), 0, XDPLB_BACKEND_NODE_TO_POD_V4_IN_V6);
	case OUTER_V6_IN_V6:
		return to_node(skb, &key, outer_len_of(kind), 1, XDPLB_BACKEND_NODE_TO_POD_V6_IN_V6);
	case OUTER_FRAGMENT:
		return verdict(XDPLB_BACKEND_NODE_PASS_FRAGMENT);
	default:
		return verdict(XDPLB_BACKEND_NODE_PASS_NOT_ENCAP);
	}
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
