/**
 * The backend object, loaded once per node: one set of maps and two programs
 * that every local pod's veth shares. Its maps are pinned in the pin
 * directory and adopted by the next agent (libbpf reuses a pinned map of the
 * same layout), so the flow table outlives agent restarts and upgrades: a new
 * table would forget every flow at once, and each pod-first segment of them
 * would then leave unrewritten (bpf/BACKEND.md). The programs are pinned
 * there too, beside the maps as the balancer's is: they name what this agent
 * runs (the links it finds pinned and not running them are an older agent's,
 * to update), and keep them for `bpftool` to show.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { BACKEND_FROM_NIC_PROGRAM, BACKEND_FROM_POD_PROGRAM, BACKEND_TO_POD_PROGRAM } from '../../bpf/consts.js';
import { BACKEND_MAPS, type BackendCapacities } from '../../bpf/maps.js';
import { pinnedLayoutChanges } from '../../bpf/pinned-layout.js';
import { type LoadedBackend, loadBackend } from '../../bpf/programs.js';
import { pinProgram, programId } from '../../libbpf/pins.js';
import type { TcxDirection } from '../../libbpf/tcx.js';

/** Which program goes on which side of a pod's host veth: egress carries packets toward the pod. */
export const PROGRAM_OF_DIRECTION: Record<TcxDirection, string> = { egress: BACKEND_TO_POD_PROGRAM, ingress: BACKEND_FROM_POD_PROGRAM };

/** A program's pin in the pin directory (the balancer's is named the same way). */
export const programPin = (pinDir: string, program: string): string => join(pinDir, `${program}_prog`);

export interface BackendObject {
  loaded: LoadedBackend;
  /** The program fd for each tcx direction. */
  progFd: Record<TcxDirection, number>;
  /** The kernel's ids of those programs: a link running another id is an older agent's. */
  progId: Record<TcxDirection, number>;
  /** Node addressing: the program for the NIC's ingress, and its id. */
  nicFd: number;
  nicId: number;
}

/**
 * Loads the object over the maps pinned in pinDir (created there when
 * absent) and pins its programs. Refuses, without touching the pins, maps of
 * another layout: resizing the flow table means a new, empty one. The one
 * exception is the counters: a pinned backend_stats of another size is an
 * older version's list of reasons, so its pin is replaced and the counts
 * start again (the links keep the old map until they move to the new programs).
 */
export function openBackendObject(pinDir: string, capacity: Partial<BackendCapacities> = {}): BackendObject {
  const all = pinnedLayoutChanges(pinDir, BACKEND_MAPS, capacity);
  const stats = BACKEND_MAPS.stats.name;
  const changes = all.filter((c) => c.map !== stats);
  if (changes.length > 0) {
    const what = changes.map((c) => `${c.map} ${c.field} ${c.pinned} pinned, ${c.wanted} wanted`).join('; ');
    throw new Error(`the backend maps pinned in ${pinDir} have another layout (${what}). A new flow table forgets every flow `
      + 'to the node\'s pods: keep the pinned size, or remove the backend pins to start fresh (removeBackend(pinDir), which also detaches from the pods)');
  }
  if (all.length > changes.length) rmSync(join(pinDir, stats));
  const loaded = loadBackend({ pinDir, capacity });
  const progFd = { egress: loaded.toPodFd, ingress: loaded.fromPodFd };
  try {
    for (const direction of ['egress', 'ingress'] as const) pinProgram(progFd[direction], programPin(pinDir, PROGRAM_OF_DIRECTION[direction]));
    pinProgram(loaded.fromNicFd, programPin(pinDir, BACKEND_FROM_NIC_PROGRAM));
  } catch (err) {
    loaded.object.close();
    throw err;
  }
  return {
    loaded, progFd, progId: { egress: programId(progFd.egress), ingress: programId(progFd.ingress) }, nicFd: loaded.fromNicFd, nicId: programId(loaded.fromNicFd),
  };
}
