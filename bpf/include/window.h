/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Per-CPU one-second budgets (trace records, too-big answers): each CPU
 * counts in its own window, so the hot path has no shared state and no
 * atomics; a node's rate is the per-CPU rate times its CPUs.
 */
#ifndef XDPLB_WINDOW_H
#define XDPLB_WINDOW_H

#include <linux/types.h>

#include "xdplb_consts.h"

/* Takes one from a window of `limit` a second (starting a new window once a
 * second has passed); returns whether there was room. */
static __always_inline int xdplb_window_take(__u64 *window_start_ns, __u64 *used, __u64 limit, __u64 now)
{
	if (now - *window_start_ns >= XDPLB_NS_PER_SEC) {
		*window_start_ns = now;
		*used = 0;
	}
	if (*used >= limit)
		return 0;
	*used += 1;
	return 1;
}

#endif
