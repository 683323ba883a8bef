import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { XdpBalancer } from '../../src/api/xdpbalancer.js';
import { AGENT_ENTRYPOINT, agentDaemonSet, agentSelector } from '../../src/controller/agent-daemonset.js';

const balancer = (spec: Partial<XdpBalancer['spec']> = {}): XdpBalancer => ({
  metadata: { name: 'edge', uid: '5f0c6a1e-0000-4000-8000-000000000001', generation: 1 },
  spec: { image: 'registry.example/xdplb:0.1.0', ...spec },
});

test('the agent DaemonSet is owned by its XdpBalancer and runs the agent for that balancer only', () => {
  const ds = agentDaemonSet(balancer(), 'xdplb-system');
  assert.equal(ds.metadata?.name, 'xdplb-agent-edge');
  assert.equal(ds.metadata?.namespace, 'xdplb-system');
  assert.deepEqual(ds.metadata?.ownerReferences, [{
    apiVersion: 'xdplb.dev/v1alpha1', kind: 'XdpBalancer', name: 'edge', uid: '5f0c6a1e-0000-4000-8000-000000000001', controller: true, blockOwnerDeletion: true,
  }]);
  assert.deepEqual(ds.spec?.selector.matchLabels, agentSelector('edge'));
  const pod = ds.spec!.template.spec!;
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.dnsPolicy, 'ClusterFirstWithHostNet');
  assert.deepEqual(pod.nodeSelector, { 'kubernetes.io/os': 'linux' }, 'every Linux node, and only those');
  const c = pod.containers[0]!;
  assert.deepEqual(c.command, ['node', '--max-old-space-size=512', AGENT_ENTRYPOINT], 'the heap gets its share of the limit, not what V8 would guess');
  assert.deepEqual(c.args, ['run', '--balancer', 'edge', '--xdp-mode', 'auto', '--pin-dir', '/sys/fs/bpf/xdplb/edge', '--metrics-address', '0.0.0.0:9641',
    '--trace-address', '0.0.0.0:9642', '--metrics-auth', 'kubernetes', '--trace-auth', 'kubernetes']);
  assert.deepEqual(c.env, [
    { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    { name: 'XDPLB_ADVERTISE_ADDRESS', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
  ]);
  // Both endpoints take tokens, so they serve HTTPS; the kubelet's probes follow without verifying.
  assert.deepEqual([c.readinessProbe?.httpGet?.scheme, c.livenessProbe?.httpGet?.scheme], ['HTTPS', 'HTTPS']);
  assert.deepEqual(c.securityContext, {
    runAsUser: 0,
    privileged: false,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'], add: ['BPF', 'PERFMON', 'NET_ADMIN', 'NET_RAW'] },
    seccompProfile: { type: 'RuntimeDefault' },
  }, 'the capabilities the agent needs and nothing else');
  assert.deepEqual(c.resources, { requests: { cpu: '100m', memory: '663Mi' }, limits: { memory: '1109Mi' } },
    'the default capacities\' maps (about 406 MiB) are in both the request and the limit');
  assert.deepEqual(pod.volumes, [{ name: 'bpffs', hostPath: { path: '/sys/fs/bpf', type: 'Directory' } }]);
  // The node's bpffs: mounted by the init container when missing, and seen by the agent.
  const init = pod.initContainers![0]!;
  assert.equal(init.image, 'registry.example/xdplb:0.1.0');
  assert.match(init.command!.join(' '), /stat -f -c %T \/sys\/fs\/bpf.*mount -t bpf bpffs \/sys\/fs\/bpf/);
  assert.deepEqual(init.volumeMounts, [{ name: 'bpffs', mountPath: '/sys/fs/bpf', mountPropagation: 'Bidirectional' }]);
  assert.deepEqual(c.volumeMounts, [{ name: 'bpffs', mountPath: '/sys/fs/bpf', mountPropagation: 'HostToContainer' }]);
});

test('spec settings become agent flags and scheduling constraints', () => {
  const ds = agentDaemonSet(balancer({
    nic: 'eth1', xdpMode: 'native', metricsPort: 9700, capacities: { vips: 64, reals: 1000, connectionTable: 65536 },
    nodeSelector: { 'node-role.kubernetes.io/edge': '' }, tolerations: [{ key: 'edge', operator: 'Exists', effect: 'NoSchedule' }],
  }), 'xdplb-system');
  const pod = ds.spec!.template.spec!;
  const c = pod.containers[0]!;
  assert.deepEqual(c.args, ['run', '--balancer', 'edge', '--xdp-mode', 'native', '--pin-dir', '/sys/fs/bpf/xdplb/edge', '--metrics-address', '0.0.0.0:9700',
    '--trace-address', '0.0.0.0:9701', '--metrics-auth', 'kubernetes', '--trace-auth', 'kubernetes',
    '--nic', 'eth1', '--max-vips', '64', '--max-reals', '1000', '--connection-table', '65536']);
  assert.equal(c.readinessProbe?.httpGet?.port, 9700);
  assert.deepEqual(c.ports, [{ name: 'metrics', containerPort: 9700, protocol: 'TCP' }, { name: 'trace', containerPort: 9701, protocol: 'TCP' }]);
  assert.deepEqual(pod.nodeSelector, { 'kubernetes.io/os': 'linux', 'node-role.kubernetes.io/edge': '' }, "the balancer's selector, on Linux nodes");
  assert.deepEqual(pod.tolerations, [{ key: 'edge', operator: 'Exists', effect: 'NoSchedule' }]);
});

test('the same spec gives the same template (no needless rollout); a new image changes it', () => {
  const a = JSON.stringify(agentDaemonSet(balancer(), 'ns').spec);
  assert.equal(JSON.stringify(agentDaemonSet(balancer(), 'ns').spec), a);
  assert.notEqual(JSON.stringify(agentDaemonSet(balancer({ image: 'registry.example/xdplb:0.2.0' }), 'ns').spec), a);
});

test('spec.bgp: the agent gets --bgp with password files, a BIRD sidecar that outlives it, and the Secrets mounted; no bgp, no sidecar', () => {
  const plain = agentDaemonSet(balancer(), 'xdplb-system').spec!.template.spec!;
  assert.deepEqual(plain.initContainers!.map((c) => c.name), ['mount-bpffs'], 'no sidecar without spec.bgp');
  const bgp = {
    localASN: 64512, communities: ['65000:100'],
    peers: [
      { address: '198.18.21.1', asn: 64500, passwordSecretRef: { name: 'bgp-auth', key: 'tor-a' } },
      { address: '198.18.22.1', asn: 64500, passwordSecretRef: { name: 'bgp-auth', key: 'tor-b' } },
      { address: '2001:db8:21::1', asn: 64500, addressFamilies: ['IPv6' as const] },
    ],
  };
  const pod = agentDaemonSet(balancer({ bgp }), 'xdplb-system').spec!.template.spec!;
  const agent = pod.containers[0]!;
  const at = agent.args!.indexOf('--bgp');
  assert.deepEqual(JSON.parse(agent.args![at + 1]!), {
    localASN: 64512, communities: ['65000:100'],
    peers: [
      { address: '198.18.21.1', asn: 64500, passwordFile: '/etc/xdplb/bgp-passwords/bgp-auth/tor-a' },
      { address: '198.18.22.1', asn: 64500, passwordFile: '/etc/xdplb/bgp-passwords/bgp-auth/tor-b' },
      { address: '2001:db8:21::1', asn: 64500, addressFamilies: ['IPv6'] },
    ],
  }, 'no Secret name, no password in the arguments: files the kubelet mounts');
  assert.deepEqual(agent.args!.slice(at + 2, at + 4), ['--bird-dir', '/run/xdplb/bird']);
  const sidecar = pod.initContainers!.find((c) => c.name === 'bird')!;
  assert.equal(sidecar.restartPolicy, 'Always', 'a native sidecar: started before the agent, stopped after it');
  assert.equal(sidecar.image, 'registry.example/xdplb:0.1.0');
  assert.match(sidecar.command!.join(' '), /exec bird -f -c \/run\/xdplb\/bird\/bird\.conf -s \/run\/xdplb\/bird\/bird\.ctl/);
  assert.deepEqual(sidecar.securityContext, {
    runAsUser: 0,
    privileged: false,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] },
    seccompProfile: { type: 'RuntimeDefault' },
  }, 'port 179 and nothing else: TCP MD5 keys take no capability');
  assert.deepEqual(sidecar.volumeMounts, [{ name: 'bird', mountPath: '/run/xdplb/bird' }]);
  assert.deepEqual(pod.volumes!.slice(1), [
    { name: 'bird', emptyDir: { medium: 'Memory' } },
    { name: 'bgp-password-0', secret: { secretName: 'bgp-auth', defaultMode: 0o400 } },
  ]);
  assert.deepEqual(agent.volumeMounts!.slice(1), [
    { name: 'bird', mountPath: '/run/xdplb/bird' },
    { name: 'bgp-password-0', mountPath: '/etc/xdplb/bgp-passwords/bgp-auth', readOnly: true },
  ]);
  // BFD goes to the agent as the API server stored it (defaults filled in); BIRD sets its BFD sockets' SO_PRIORITY to 7,
  // above 6 only with NET_ADMIN (without it: "Socket error: SO_PRIORITY: Operation not permitted").
  const withBfd = agentDaemonSet(balancer({ bgp: { ...bgp, bfd: { minIntervalMilliseconds: 300, multiplier: 3 } } }), 'xdplb-system').spec!.template.spec!;
  const args = withBfd.containers[0]!.args!;
  assert.deepEqual((JSON.parse(args[args.indexOf('--bgp') + 1]!) as { bfd?: unknown }).bfd, { minIntervalMilliseconds: 300, multiplier: 3 });
  assert.deepEqual(withBfd.initContainers!.find((c) => c.name === 'bird')!.securityContext,
    { ...sidecar.securityContext, capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE', 'NET_ADMIN'] } });
});

test('spec.l2: the agent gets --l2-lease-seconds (defaulted) and --drain-seconds, and the grace period covers the drain', () => {
  const plain = agentDaemonSet(balancer({ drainSeconds: 30 }), 'xdplb-system').spec!.template.spec!;
  assert.ok(!plain.containers[0]!.args!.includes('--l2-lease-seconds'));
  const pod = agentDaemonSet(balancer({ drainSeconds: 30, l2: {} }), 'xdplb-system').spec!.template.spec!;
  const args = pod.containers[0]!.args!;
  assert.deepEqual(args.slice(args.indexOf('--l2-lease-seconds'), args.indexOf('--l2-lease-seconds') + 2), ['--l2-lease-seconds', '10']);
  assert.deepEqual(args.slice(args.indexOf('--drain-seconds'), args.indexOf('--drain-seconds') + 2), ['--drain-seconds', '30']);
  assert.equal(pod.terminationGracePeriodSeconds, plain.terminationGracePeriodSeconds! + 30);
  const custom = agentDaemonSet(balancer({ l2: { leaseSeconds: 4 } }), 'xdplb-system').spec!.template.spec!.containers[0]!.args!;
  assert.equal(custom[custom.indexOf('--l2-lease-seconds') + 1], '4');
  assert.deepEqual(pod.initContainers!.map((c) => c.name), ['mount-bpffs'], 'no sidecar: the XDP program answers ARP/NDP');
});

test('spec.bpfCapability SYS_ADMIN: CAP_SYS_ADMIN in place of CAP_BPF and CAP_PERFMON, for runtimes that do not know CAP_BPF; nothing else changes', () => {
  const minimal = agentDaemonSet(balancer(), 'xdplb-system').spec!.template.spec!;
  assert.deepEqual(agentDaemonSet(balancer({ bpfCapability: 'BPF' }), 'xdplb-system'), agentDaemonSet(balancer(), 'xdplb-system'), 'BPF is the default');
  const fallback = agentDaemonSet(balancer({ bpfCapability: 'SYS_ADMIN' }), 'xdplb-system').spec!.template.spec!;
  assert.deepEqual(fallback.containers[0]!.securityContext, {
    ...minimal.containers[0]!.securityContext,
    capabilities: { drop: ['ALL'], add: ['SYS_ADMIN', 'NET_ADMIN', 'NET_RAW'] },
  });
  assert.deepEqual({ ...fallback, containers: [] }, { ...minimal, containers: [] });
});

test('only the init container that mounts the bpffs is privileged (mount(2), Bidirectional propagation); it exits before the agent starts', () => {
  const pod = agentDaemonSet(balancer({ bgp: { localASN: 64512, peers: [{ address: '198.18.21.1', asn: 64500 }] } }), 'xdplb-system').spec!.template.spec!;
  const privileged = [...pod.initContainers!, ...pod.containers].filter((c) => c.securityContext?.privileged !== false).map((c) => c.name);
  assert.deepEqual(privileged, ['mount-bpffs']);
  assert.equal(pod.initContainers![0]!.restartPolicy, undefined, 'a plain init container: it runs to completion');
  for (const c of [...pod.initContainers!.slice(1), ...pod.containers]) {
    assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], c.name);
    assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${c.name}: writes only to its volumes`);
  }
});

test('the agent\'s memory follows the capacities: the maps, and the connection table\'s copy in a capacities change', () => {
  const resources = (capacities: NonNullable<XdpBalancer['spec']['capacities']>) =>
    agentDaemonSet(balancer({ capacities }), 'xdplb-system').spec!.template.spec!.containers[0]!.resources;
  // 4096 VIPs of 65537 ring slots alone are 2 GiB; 8M connections 0.9 GiB of maps and 1.2 GiB to copy.
  assert.deepEqual(resources({ vips: 4096, reals: 65535, connectionTable: 8388608 }),
    { requests: { cpu: '100m', memory: '3610Mi' }, limits: { memory: '5401Mi' } });
  assert.deepEqual(resources({ vips: 16, reals: 64, connectionTable: 131072 }),
    { requests: { cpu: '100m', memory: '285Mi' }, limits: { memory: '563Mi' } });
  // Capacities left out are the compiled defaults, as the agent loads them.
  assert.deepEqual(resources({ vips: 512, reals: 4095, connectionTable: 1048576 }), resources({}));
});
