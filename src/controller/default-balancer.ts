/**
 * The "default" XdpBalancer, created by the controller when none exists: a
 * custom resource cannot be applied in the same `kubectl apply` as its CRD
 * (the kind is unknown until the CRD is established), and VIPs name "default"
 * unless they say otherwise. It is created once and never overwritten, so a
 * user's edits stand.
 */
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { DEFAULT_BALANCER, GROUP, VERSION } from '../api/loadbalancervip.js';
import { XDPB_KIND, XDPB_PLURAL, type XdpBalancer } from '../api/xdpbalancer.js';
import { componentLog } from '../lib/log.js';

const log = componentLog('default-balancer');

/** The controller's container in deploy/controller.yaml: the agents run the same image. */
export const CONTROLLER_CONTAINER = 'controller';

const code = (err: unknown) => (err as { code?: number }).code;

/** The image of the controller's own pod, for agents that match it. */
export async function ownImage(kc: KubeConfig, pod: { name: string; namespace: string }): Promise<string> {
  const p = await kc.makeApiClient(CoreV1Api).readNamespacedPod(pod);
  const c = p.spec?.containers.find((x) => x.name === CONTROLLER_CONTAINER) ?? p.spec?.containers[0];
  if (!c?.image) throw new Error(`pod ${pod.namespace}/${pod.name} has no container image`);
  return c.image;
}

/**
 * Creates XdpBalancer "default" unless it exists; returns whether it created
 * it. `image` is asked only then: outside a pod, an image is needed only for that.
 */
export async function ensureDefaultBalancer(kc: KubeConfig, imageOf: () => Promise<string>): Promise<boolean> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  try {
    await custom.getClusterCustomObject({ group: GROUP, version: VERSION, plural: XDPB_PLURAL, name: DEFAULT_BALANCER });
    return false;
  } catch (err) {
    if (code(err) !== 404) throw err;
  }
  const image = await imageOf();
  const body: XdpBalancer = {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: XDPB_KIND,
    metadata: { name: DEFAULT_BALANCER, labels: { 'app.kubernetes.io/managed-by': 'xdplb-controller' } },
    spec: { image },
  };
  try {
    await custom.createClusterCustomObject({ group: GROUP, version: VERSION, plural: XDPB_PLURAL, body });
  } catch (err) {
    if (code(err) === 409) return false; // created meanwhile
    throw err;
  }
  log.info({ balancer: DEFAULT_BALANCER, image }, 'created the default XdpBalancer');
  return true;
}
