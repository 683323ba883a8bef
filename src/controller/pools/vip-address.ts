/**
 * Which address a VIP has and whether it may have it: spec.address checked
 * against the pools and the never-allowed addresses, or, without one, the
 * address the controller assigned earlier (status.address, kept while allowed)
 * or assigns now. Pure: the VIP controller passes what it knows.
 */
import {
  AddressReason, type AddressReasonCode, DEFAULT_BALANCER, type LoadBalancerVip,
} from '../../api/loadbalancervip.js';
import { canonicalIp } from '../../lib/ip.js';
import type { AssignRequest, Assignment, UsedAddresses } from './assignment.js';
import type { Family } from './cidr.js';
import type { AddressCheck } from './pool-admission.js';

/** What the VIP controller asks of address admission (AddressAdmission implements it). */
export interface AdmissionView {
  check(address: string, namespace: string, balancer: string): AddressCheck;
  assign(req: Omit<AssignRequest, 'namespace'> & { namespace: string }, used: UsedAddresses): Assignment;
}

export interface AddressDecision {
  allowed: boolean;
  /** status.address: the VIP's address, allowed or not; absent when it has none. */
  address?: string;
  /** The pool the allowed address lies in. */
  pool?: string;
  code: AddressReasonCode;
  message: string;
  /** The address was assigned by this decision (it was not the VIP's before). */
  assigned?: boolean;
}

function canonicalOr(text: string): string {
  try {
    return canonicalIp(text);
  } catch {
    return text;
  }
}

const FAMILY: Record<string, Family> = { IPv4: 4, IPv6: 6 };

/**
 * `pending`: an address assigned to this VIP whose status write has not been
 * seen back yet (a failed write is retried with the same address).
 */
export function decideAddress(vip: LoadBalancerVip, admission: AdmissionView, used: UsedAddresses, pending?: string): AddressDecision {
  const ns = vip.metadata.namespace ?? '';
  const balancer = vip.spec.balancer ?? DEFAULT_BALANCER;
  if (vip.spec.address !== undefined) {
    const address = canonicalOr(vip.spec.address);
    const c = admission.check(vip.spec.address, ns, balancer);
    return c.ok
      ? { allowed: true, address, pool: c.pool.name, code: AddressReason.InPool, message: `${address} is in pool ${c.pool.name}, which allows namespace ${ns} on balancer ${balancer}` }
      : { allowed: false, address, code: c.code, message: c.reason };
  }
  const previous = vip.status?.address ?? pending;
  const a = admission.assign({
    vipKey: `${ns}/${vip.metadata.name}`, balancer, previous,
    family: vip.spec.addressFamily && FAMILY[vip.spec.addressFamily], namespace: ns,
  }, used);
  if (a.ok) {
    return {
      allowed: true, address: a.address, pool: a.pool, code: AddressReason.Assigned,
      message: `${a.address} was assigned from pool ${a.pool}`, ...(previous === undefined ? { assigned: true } : {}),
    };
  }
  return { allowed: false, ...(a.previousLost && previous !== undefined ? { address: previous } : {}), code: a.code, message: a.reason };
}
