/**
 * What the controller tests do to a control plane with no kubelet and no
 * controllers: make pods look scheduled and Ready, read VIPs and Events, and
 * wait for what the controller writes (no fixed sleeps, no judged durations).
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node';
import type { LoadBalancerVip } from '../../../src/api/loadbalancervip.js';
import type { ControlPlane } from './control-plane.js';

/** Long enough for a loaded 2-core machine; a test waits for what it needs, never for a set time. */
export const WAIT_MS = 60_000;

/** Polls until `ok` holds (asserts it then), and returns the last value. */
export async function waitUntil<T>(what: string, get: () => T | Promise<T>, ok: (x: T) => boolean, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let x = await get();
  while (!ok(x) && Date.now() < deadline) {
    await sleep(100);
    x = await get();
  }
  assert.ok(ok(x), `${what}; now: ${JSON.stringify(x)}`);
  return x;
}

export interface PodOptions {
  ready?: boolean;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** A pod on node-a with `ip`, its status set as a kubelet would (Running, Ready or not). */
export function applyPod(cp: ControlPlane, namespace: string, name: string, ip: string, opts: PodOptions = {}): void {
  const metadata = { name, namespace, labels: opts.labels ?? {}, annotations: opts.annotations ?? {} };
  cp.kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata, spec: { nodeName: 'node-a', containers: [{ name: 'c', image: 'none' }] } }));
  const status = { phase: 'Running', podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: opts.ready === false ? 'False' : 'True' }] };
  cp.kubectl(['patch', 'pod', name, '-n', namespace, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
}

export function getVip(cp: ControlPlane, namespace: string, name: string): LoadBalancerVip {
  return JSON.parse(cp.kubectl(['get', 'lbvip', name, '-n', namespace, '-o', 'json'])) as LoadBalancerVip;
}

export const condition = (v: LoadBalancerVip, type: string) => v.status?.conditions?.find((c) => c.type === type);

/** The Events about one object, a line each: "TYPE REASON: MESSAGE". */
export function eventsOf(cp: ControlPlane, namespace: string, name: string): string[] {
  return cp.kubectl(['get', 'events', '-n', namespace, '--field-selector', `involvedObject.name=${name}`,
    '-o', 'jsonpath={range .items[*]}{.type} {.reason}: {.message}{"\\n"}{end}']).split('\n').filter(Boolean);
}

/** A client configuration from a kubeconfig file (the control plane's, or a user's). */
export function kubeConfigFrom(file: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  return kc;
}
