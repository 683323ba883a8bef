#!/usr/bin/env node
/**
 * xdplb-decap: attaches the decap program to a real's NIC for hosts without
 * ipip/ip6tnl devices. The attachment outlives this command; maps are pinned
 * so a later run updates the addresses in place.
 */
import { parseArgs } from 'node:util';
import { componentLog } from '../lib/log.js';
import { DECAP_PROGRAM } from '../bpf/consts.js';
import { loadDecap } from '../bpf/programs.js';
import type { XdpMode } from '../libbpf/xdp.js';
import { XdpProgram } from '../libbpf/xdp-program.js';
import { setDecapAddrs } from './decap-addrs.js';

const log = componentLog('decap');
const USAGE = `usage: xdplb-decap attach --nic IF --addr IP [--addr IP ...] [--pin-dir DIR] [--xdp-mode native|generic]
       xdplb-decap detach --nic IF [--pin-dir DIR]
`;
const DEFAULT_PIN_DIR = '/sys/fs/bpf/xdplb/decap';
const XDP_MODES: readonly XdpMode[] = ['native', 'generic'];
/**
 * Without --xdp-mode: native, with no fallback. On a veth (the lab's router,
 * kind nodes) only a native program lets the peer's XDP_TX frames in, and a
 * silent generic fallback would lose them.
 */
const DEFAULT_MODES: readonly XdpMode[] = ['native'];

function usage(): never {
  process.stderr.write(USAGE);
  process.exit(2);
}

function main(): void {
  const { values: v, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      nic: { type: 'string' },
      addr: { type: 'string', multiple: true },
      'pin-dir': { type: 'string' },
      'xdp-mode': { type: 'string' },
    },
  });
  const command = positionals[0];
  const nic = v.nic;
  if (!nic || (command !== 'attach' && command !== 'detach')) usage();
  const requested = v['xdp-mode'] as XdpMode | undefined;
  if (requested !== undefined && !XDP_MODES.includes(requested)) usage();
  const pinDir = v['pin-dir'] ?? DEFAULT_PIN_DIR;
  const detachCommand = `xdplb-decap detach --nic ${nic}${v['pin-dir'] ? ` --pin-dir ${pinDir}` : ''}`;
  const program = new XdpProgram({ nic, pinDir, pinName: `${DECAP_PROGRAM}_prog`, owner: { name: 'xdplb-decap', detachCommand } });
  if (command === 'detach') {
    const { detached } = program.remove();
    log.info({ nic, detached }, 'decap removed');
    return;
  }
  // Refuse before loading: loading pins the maps.
  const mode = requested ?? 'auto';
  program.assertAttachable();
  const decap = loadDecap({ pinDir });
  try {
    setDecapAddrs(decap.maps, v.addr ?? []);
    const attached = program.attach(decap.progFd, mode, DEFAULT_MODES);
    log.info({ nic, mode: attached.mode, addresses: v.addr ?? [] }, 'decap attached');
  } finally {
    decap.object.close();
  }
}

try {
  main();
} catch (err) {
  log.fatal({ err: (err as Error).message }, 'xdplb-decap failed');
  process.exit(1);
}
