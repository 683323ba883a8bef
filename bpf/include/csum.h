/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef XDPLB_CSUM_H
#define XDPLB_CSUM_H

#include <linux/ip.h>
#include <linux/types.h>

/* RFC 1071 checksum of an option-less IPv4 header whose check field is 0. */
static __always_inline __u16 xdplb_ipv4_csum(const struct iphdr *iph)
{
	const __u16 *w = (const __u16 *)iph;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*iph) / 2); i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

#endif
