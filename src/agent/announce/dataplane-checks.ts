/** Health checks of the dataplane itself: the node serves only while its program is on the NIC and its maps take writes. */
import { attachedProgram } from '../../libbpf/pins.js';
import type { HealthCheck } from './health.js';

/** Our program is the one attached to the NIC (someone may have detached or replaced it). */
export function programAttachedCheck(nic: string, ourProgramId: () => number): HealthCheck {
  return {
    name: 'XDP program',
    problem() {
      const attached = attachedProgram(nic);
      if (!attached) return `nothing is attached to ${nic}: restart the agent to attach it again`;
      if (attached.id !== ourProgramId()) return `program ${attached.id} on ${nic} is not this agent's (${ourProgramId()})`;
      return null;
    },
  };
}

/** The last programming did not fail in the kernel (a refused desired state is not a kernel failure: the maps still serve). */
export function mapsWritableCheck(lastWriteError: () => string | null): HealthCheck {
  return {
    name: 'BPF maps',
    problem() {
      const err = lastWriteError();
      return err === null ? null : `the last write failed (${err})`;
    },
  };
}
