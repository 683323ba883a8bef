/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef XDPLB_CSUM_H
#define XDPLB_CSUM_H

#include <linux/ip.h>
#include <linux/types.h>

/* Adds the 16-bit words of len bytes (even, a constant) to a ones' complement sum. */
static __always_inline __u32 xdplb_csum_add(const void *p, __u32 len, __u32 sum)
{
	const __u16 *w = p;

#pragma unroll
	for (__u32 i = 0; i < len / 2; i++)
		sum += w[i];
	return sum;
}

/* The checksum field's value for a ones' complement sum. */
static __always_inline __u16 xdplb_csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* A ones' complement sum of 64-bit partial sums folded to the checksum field's value. */
static __always_inline __u16 xdplb_csum_fold64(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	return xdplb_csum_fold((__u32)sum);
}

/*
 * Updates a checksum field for one 16-bit word of what it covers changing
 * from old to new (RFC 1624, eqn. 3), both as they are in the packet.
 */
static __always_inline void xdplb_csum_replace2(__sum16 *check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~*check + (__u32)(__u16)~old + new;

	*check = xdplb_csum_fold(sum);
}

/* RFC 1071 checksum of an option-less IPv4 header whose check field is 0. */
static __always_inline __u16 xdplb_ipv4_csum(const struct iphdr *iph)
{
	return xdplb_csum_fold(xdplb_csum_add(iph, sizeof(*iph), 0));
}

#endif
