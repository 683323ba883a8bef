/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef XDPLB_COUNTERS_H
#define XDPLB_COUNTERS_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

/* Adds one to counter `index` of a per-CPU array of __u64 (a program's reason counters). */
static __always_inline void xdplb_count(void *stats, __u32 index)
{
	__u64 *c = bpf_map_lookup_elem(stats, &index);

	if (c)
		*c += 1;
}

#endif
