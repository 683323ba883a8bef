#!/usr/bin/env node
/**
 * xdplb-decap: attaches the decap program to a real's NIC for hosts without
 * ipip/ip6tnl devices. The attachment outlives this command; maps are pinned
 * so a later run updates the addresses in place.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { componentLog } from '../lib/log.js';
import { removePins } from '../agent/agent.js';
import { DECAP_PROGRAM } from '../bpf/consts.js';
import { loadDecap } from '../bpf/programs.js';
import { attachedProgram, closeFd, pinnedProgramId, pinProgram, programFdById } from '../libbpf/pins.js';
import { attachXdp, detachXdp } from '../libbpf/xdp.js';
import { setDecapAddrs } from './decap-addrs.js';

const log = componentLog('decap');
const USAGE = `usage: xdplb-decap attach --nic IF --addr IP [--addr IP ...] [--pin-dir DIR] [--xdp-mode native|generic]
       xdplb-decap detach --nic IF [--pin-dir DIR]
`;
const DEFAULT_PIN_DIR = '/sys/fs/bpf/xdplb/decap';

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
  const pinDir = v['pin-dir'] ?? DEFAULT_PIN_DIR;
  const pin = join(pinDir, `${DECAP_PROGRAM}_prog`);
  if (!nic || (command !== 'attach' && command !== 'detach')) {
    process.stderr.write(USAGE);
    process.exit(2);
  }
  const current = attachedProgram(nic);
  const ours = current !== null && current.id === pinnedProgramId(pin);
  if (command === 'detach') {
    if (ours) detachXdp(nic, current.mode);
    removePins(pinDir);
    log.info({ nic, detached: ours }, 'decap removed');
    return;
  }
  if (current && !ours) throw new Error(`another XDP program (id ${current.id}) is attached to ${nic}`);
  const mode = (v['xdp-mode'] ?? current?.mode ?? 'native') as 'native' | 'generic';
  const decap = loadDecap({ pinDir });
  try {
    setDecapAddrs(decap.maps, v.addr ?? []);
    if (current) {
      const old = programFdById(current.id);
      try {
        attachXdp(nic, decap.progFd, { mode: current.mode, replaceFd: old });
      } finally {
        closeFd(old);
      }
    } else {
      attachXdp(nic, decap.progFd, { mode });
    }
    pinProgram(decap.progFd, pin);
    log.info({ nic, mode: current?.mode ?? mode, addresses: v.addr ?? [] }, 'decap attached');
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
