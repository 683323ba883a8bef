/**
 * Services of type LoadBalancer of class xdplb.dev/xdp (or of no class, when
 * told to serve those): each is served by a LoadBalancerVip the controller
 * makes, of the same name and namespace, whose backends are the Service's
 * endpoints (spec.backendService). The VIP controller does the rest: pools,
 * assignment, conflicts, backends, status, as for any VIP. This controller
 * keeps the VIP equal to the Service, copies the VIP's address to the
 * Service's status.loadBalancer.ingress (the EXTERNAL-IP of `kubectl get
 * svc`), and deletes the VIP when the Service is deleted or no longer ours.
 *
 * The VIP carries an owner reference to its Service, so the garbage collector
 * removes it even while this controller is down; the controller deletes it
 * itself too, at once, and sweeps its leftovers at start.
 */
import {
  CoreV1Api, CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions, type V1LoadBalancerIngress, type V1Service,
} from '@kubernetes/client-node';
import { ConditionType, GROUP, LBVIP_PLURAL, type LoadBalancerVip, VERSION } from '../../api/loadbalancervip.js';
import { INGRESS_IP_MODE, SERVICE_LABEL, ServiceReason } from '../../api/service.js';
import { goneOrThrow } from '../../lib/api-error.js';
import { componentLog } from '../../lib/log.js';
import { WatchedCache } from '../../lib/watched-cache.js';
import { WorkQueue } from '../../lib/work-queue.js';
import { CONTROLLER_FIELD_MANAGER } from '../balancer-controller.js';
import type { EventRecorder, EventTarget } from '../events.js';
import type { ControllerMetrics } from '../metrics.js';
import type { EndpointSlices } from './endpoint-slices.js';
import { isOurs, planServiceVip, vipMatches } from './service-vip.js';

const log = componentLog('service-controller');

/** Services per list page. */
const LIST_PAGE_SIZE = 500;

/** What the Service controller needs of the VIP controller's cache. */
export interface VipView {
  vip(namespace: string, name: string): LoadBalancerVip | undefined;
  vips(): readonly LoadBalancerVip[];
}

export interface ServiceControllerOptions {
  vips: VipView;
  endpointSlices: EndpointSlices;
  /** Serve Services of type LoadBalancer without a loadBalancerClass too (xdplb is the cluster's only load balancer). */
  serveWithoutClass?: boolean;
  events?: EventRecorder;
  metrics?: ControllerMetrics;
}

/** Keeps what serving reads: identity, annotations, type, class, ports, requested address, families, affinity, LB status. */
function trimService(s: V1Service): void {
  const m = s.metadata;
  s.metadata = {
    name: m?.name, namespace: m?.namespace, uid: m?.uid, resourceVersion: m?.resourceVersion, annotations: m?.annotations,
    ...(m?.deletionTimestamp ? { deletionTimestamp: m.deletionTimestamp } : {}),
  };
  const sp = s.spec;
  s.spec = {
    type: sp?.type, loadBalancerClass: sp?.loadBalancerClass, loadBalancerIP: sp?.loadBalancerIP, ipFamilies: sp?.ipFamilies,
    sessionAffinity: sp?.sessionAffinity, ports: sp?.ports?.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol, targetPort: p.targetPort })),
  };
  s.status = { loadBalancer: s.status?.loadBalancer ?? {} };
}

const keyOf = (ns: string | undefined, name: string | undefined) => `${ns}/${name}`;

/** Listed objects carry no kind: an Event's involvedObject needs it for `kubectl describe svc` to find it. */
const asTarget = (svc: V1Service): EventTarget => ({ apiVersion: 'v1', kind: 'Service', metadata: svc.metadata ?? {} });

export class ServiceController {
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly services: WatchedCache<V1Service>;
  private readonly queue: WorkQueue;
  /** The last "not served" reason told per Service: an Event once per reason, not per reconcile. */
  private readonly told = new Map<string, string>();
  private started = false;

  constructor(kc: KubeConfig, private readonly opts: ServiceControllerOptions) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.services = new WatchedCache<V1Service>(kc, '/api/v1/services', (page) => this.core.listServiceForAllNamespaces(page),
      (s) => this.queue.add(keyOf(s.metadata?.namespace, s.metadata?.name)), { trim: trimService, pageSize: LIST_PAGE_SIZE });
    this.queue = new WorkQueue('service', (key) => this.reconcile(key), opts.metrics?.queueHooks('Service', () => this.queue.depth));
    // A named target port resolves in the endpoints: a change there may change whether the Service can be served.
    opts.endpointSlices.onChange((service) => {
      if (this.started) this.queue.add(service);
    });
  }

  async start(): Promise<void> {
    await this.services.start();
    this.started = true;
    for (const s of this.services.list()) this.queue.add(keyOf(s.metadata?.namespace, s.metadata?.name));
    // VIPs made for Services deleted while no controller ran (and no garbage collector either).
    for (const v of this.opts.vips.vips()) if (v.metadata.labels?.[SERVICE_LABEL] !== undefined) this.queue.add(keyOf(v.metadata.namespace, v.metadata.name));
    this.queue.start();
  }

  async stop(): Promise<void> {
    this.started = false;
    await this.queue.stop();
    await this.services.stop();
  }

  /**
   * A VIP changed: if it is a Service's (its address, its conditions), the
   * Service's status may have to follow; if a Service of its name exists, a
   * VIP that blocked it (NameTaken) may be gone.
   */
  vipChanged(v: LoadBalancerVip): void {
    if (!this.started) return;
    const ours = v.metadata.labels?.[SERVICE_LABEL] !== undefined;
    if (ours || this.services.get(v.metadata.name ?? '', v.metadata.namespace)) this.queue.add(keyOf(v.metadata.namespace, v.metadata.name));
  }

  async reconcile(key: string): Promise<void> {
    const [ns, name] = key.split('/') as [string, string];
    const svc = this.services.get(name, ns);
    const vip = this.opts.vips.vip(ns, name);
    const madeForIt = vip !== undefined && vip.metadata.labels?.[SERVICE_LABEL] === name;
    if (!svc || svc.metadata?.deletionTimestamp || !isOurs(svc, this.opts.serveWithoutClass ?? false)) {
      this.told.delete(key);
      if (madeForIt) await this.deleteVip(vip, svc ? 'the Service is no longer of type LoadBalancer of class xdplb.dev/xdp' : 'the Service was deleted');
      if (svc && madeForIt) await this.writeIngress(svc, []);
      return;
    }
    if (vip !== undefined && !madeForIt) {
      this.tell(svc, ServiceReason.NameTaken, `LoadBalancerVip ${name} exists in namespace ${ns} and was not made for this Service: rename one of them`);
      return;
    }
    const plan = planServiceVip(svc, this.opts.endpointSlices.of(ns, name));
    if (!plan.serve) {
      this.tell(svc, plan.reason, `${plan.message}; not served`);
      if (madeForIt) await this.deleteVip(vip, plan.message);
      await this.writeIngress(svc, []);
      return;
    }
    this.told.delete(key);
    if (!vip || !vipMatches(vip, plan.vip)) {
      await this.custom.patchNamespacedCustomObject(
        { group: GROUP, version: VERSION, plural: LBVIP_PLURAL, namespace: ns, name, body: plan.vip, fieldManager: CONTROLLER_FIELD_MANAGER, force: true },
        setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
      );
      if (!vip) {
        this.opts.events?.record(asTarget(svc), 'Normal', 'VipCreated', `LoadBalancerVip ${name} serves it (kubectl describe lbvip ${name})`);
        log.info({ service: key }, 'LoadBalancerVip created');
      }
      this.opts.metrics?.statusWrites.inc({ kind: 'LoadBalancerVip' });
    }
    await this.writeIngress(svc, ingressOf(vip));
  }

  /** A Warning Event once per reason. */
  private tell(svc: V1Service, reason: string, message: string): void {
    const key = keyOf(svc.metadata?.namespace, svc.metadata?.name);
    if (this.told.get(key) === message) return;
    this.told.set(key, message);
    this.opts.events?.record(asTarget(svc), 'Warning', reason, message);
    log.info({ service: key, reason, message }, 'Service not served');
  }

  private async deleteVip(vip: LoadBalancerVip, why: string): Promise<void> {
    const { namespace, name } = vip.metadata as { namespace: string; name: string };
    await this.custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, plural: LBVIP_PLURAL, namespace, name }).then(() => true, goneOrThrow);
    log.info({ service: keyOf(namespace, name), why }, 'LoadBalancerVip of the Service deleted');
  }

  private async writeIngress(svc: V1Service, ingress: V1LoadBalancerIngress[]): Promise<void> {
    const now = svc.status?.loadBalancer?.ingress ?? [];
    const same = now.length === ingress.length && now.every((x, i) => x.ip === ingress[i]!.ip && x.ipMode === ingress[i]!.ipMode);
    if (same) return;
    const written = await this.core.patchNamespacedServiceStatus(
      { name: svc.metadata!.name!, namespace: svc.metadata!.namespace!, body: { status: { loadBalancer: { ingress } } }, fieldManager: CONTROLLER_FIELD_MANAGER },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    ).then(() => true, goneOrThrow);
    if (!written) return;
    this.opts.metrics?.statusWrites.inc({ kind: 'Service' });
    if (ingress.length) this.opts.events?.record(asTarget(svc), 'Normal', 'IngressAddress', `load balancer address ${ingress.map((i) => i.ip).join(', ')}`);
  }
}

/** The Service's ingress: the VIP's address while it is allowed. */
export function ingressOf(vip: LoadBalancerVip | undefined): V1LoadBalancerIngress[] {
  const allowed = vip?.status?.conditions?.some((c) => c.type === ConditionType.AddressAllowed && c.status === 'True');
  return allowed && vip?.status?.address ? [{ ip: vip.status.address, ipMode: INGRESS_IP_MODE }] : [];
}
