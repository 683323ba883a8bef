/** Encapsulation settings for tests: a next hop, and outer sources of both families. */
import type { EncapConfig } from '../../src/bpf/structs.js';

export const ENCAP: EncapConfig = {
  nextHopMac: '02:00:00:00:00:fe',
  srcMac: '02:00:00:00:00:01',
  srcV4: '198.18.0.1',
  srcV6: '2001:db8::1',
  maxPktSize: 1500,
};
