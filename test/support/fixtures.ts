/** Desired-state pieces for dataplane tests, kernel or not. */
import type { VipSpec } from '../../src/agent/dataplane/desired-state.js';
import type { EncapConfig } from '../../src/bpf/structs.js';

/** A next hop, and outer sources of both families. */

export const ENCAP: EncapConfig = {
  nextHopMac: '02:00:00:00:00:fe',
  srcMac: '02:00:00:00:00:01',
  srcV4: '198.18.0.1',
  srcV6: '2001:db8::1',
  maxPktSize: 1500,
};

/** n reals base1, base2, ... of weight 1. */
export const reals = (n: number, base = '198.18.2.') => Array.from({ length: n }, (_, i) => ({ address: `${base}${i + 1}`, weight: 1 }));
export const vip = (address: string, r = reals(3), port = 80): VipSpec => ({ address, port, protocol: 'TCP', reals: r });
