/**
 * The cluster to talk to: the kubeconfig file named, else the service account
 * of the pod we run in. Outside a pod with no kubeconfig there is none, yet
 * client-node would build a config for "https://undefined:undefined" and
 * every request would fail and be retried forever, with /readyz still 200:
 * this says what is missing instead, before anything starts.
 */
import { existsSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';

/** Where Kubernetes mounts a pod's service account token. */
export const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export function loadKubeConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env, token = SERVICE_ACCOUNT_TOKEN): KubeConfig {
  const kc = new KubeConfig();
  if (file) {
    if (!existsSync(file)) throw new Error(`the kubeconfig ${file} does not exist`);
    kc.loadFromFile(file);
    if (!kc.getCurrentCluster()) throw new Error(`the kubeconfig ${file} has no current context with a cluster: set current-context`);
    return kc;
  }
  const unset = ['KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT'].filter((name) => !env[name]);
  const why = unset.length ? `${unset.join(' and ')} unset` : !existsSync(token) ? `no service account token at ${token}` : undefined;
  if (why) throw new Error(`no cluster to talk to: no kubeconfig, and not in a pod (${why}); give --kubeconfig FILE or set KUBECONFIG`);
  kc.loadFromCluster();
  return kc;
}
