/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Bob Jenkins' lookup3 mixing (public domain), as the kernel's jhash uses it. */
#ifndef XDPLB_JHASH_H
#define XDPLB_JHASH_H

#include <linux/types.h>

#define XDPLB_JHASH_INITVAL 0xdeadbeefU

static __always_inline __u32 xdplb_rol32(__u32 v, int s)
{
	return (v << s) | (v >> (32 - s));
}

#define xdplb_jhash_mix(a, b, c)                         \
	do {                                             \
		a -= c; a ^= xdplb_rol32(c, 4);  c += b; \
		b -= a; b ^= xdplb_rol32(a, 6);  a += c; \
		c -= b; c ^= xdplb_rol32(b, 8);  b += a; \
		a -= c; a ^= xdplb_rol32(c, 16); c += b; \
		b -= a; b ^= xdplb_rol32(a, 19); a += c; \
		c -= b; c ^= xdplb_rol32(b, 4);  b += a; \
	} while (0)

#define xdplb_jhash_final(a, b, c)                   \
	do {                                         \
		c ^= b; c -= xdplb_rol32(b, 14);     \
		a ^= c; a -= xdplb_rol32(c, 11);     \
		b ^= a; b -= xdplb_rol32(a, 25);     \
		c ^= b; c -= xdplb_rol32(b, 16);     \
		a ^= c; a -= xdplb_rol32(c, 4);      \
		b ^= a; b -= xdplb_rol32(a, 14);     \
		c ^= b; c -= xdplb_rol32(b, 24);     \
	} while (0)

static __always_inline __u32 xdplb_jhash_2words(__u32 a, __u32 b, __u32 seed)
{
	__u32 c = 0;

	seed += XDPLB_JHASH_INITVAL + (2 << 2);
	a += seed;
	b += seed;
	c += seed;
	xdplb_jhash_final(a, b, c);
	return c;
}

static __always_inline __u32 xdplb_jhash_4words(const __u32 *k, __u32 seed)
{
	__u32 a, b, c;

	a = b = c = XDPLB_JHASH_INITVAL + (4 << 2) + seed;
	a += k[0];
	b += k[1];
	c += k[2];
	xdplb_jhash_mix(a, b, c);
	a += k[3];
	xdplb_jhash_final(a, b, c);
	return c;
}

#endif
