/**
 * The agent DaemonSet of an XdpBalancer, derived from its spec alone: a spec
 * change changes the pod template and so rolls the agents. Rolling is
 * hitless: an agent that exits leaves the program attached and the maps
 * pinned, and the next one adopts them.
 */
import type { V1Container, V1DaemonSet, V1SecurityContext, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { AGENT_APP, agentDaemonSetName, BALANCER_LABEL, METRICS_PORT_NAME, TRACE_PORT_NAME } from '../api/agent-pod.js';
import { GROUP, VERSION } from '../api/loadbalancervip.js';
import {
  type AgentBgpSettings, birdCommand, type BpfCapability, DEFAULT_DRAIN_SECONDS, DEFAULT_L2_LEASE_SECONDS, DEFAULT_METRICS_PORT, tracePortFor, XDPB_KIND, type XdpBalancer, type XdpBalancerBgp,
} from '../api/xdpbalancer.js';
import { AGENT_HEAP_MIB, agentMemory, mebibytes } from './agent-memory.js';

export const AGENT_SERVICE_ACCOUNT = 'xdplb-agent';
/** What an agent's stop takes besides a drain: the withdrawal and its settle time, the API reads, unpinning. */
const STOP_SECONDS = 30;
export const MANAGED_BY = 'xdplb-controller';
/** Where the image keeps the built agent. */
export const AGENT_ENTRYPOINT = '/app/dist/src/agent/main.js';
const BPFFS = '/sys/fs/bpf';
/** statfs type name of a BPF filesystem (BPF_FS_MAGIC), as `stat -f -c %T` prints it. */
const BPFFS_TYPE = 'bpf_fs';
/**
 * Mounts a BPF filesystem on the node's /sys/fs/bpf when none is there, as
 * Cilium's agent does: container hosts (kind nodes) and some distributions do
 * not mount one, and without it the pins would fail. Bidirectional propagation
 * makes the mount the node's, so the agent container and its successors see it.
 */
const MOUNT_BPFFS = `[ "$(stat -f -c %T ${BPFFS})" = ${BPFFS_TYPE} ] || mount -t bpf bpffs ${BPFFS}`;

/**
 * The agent is a Linux program (XDP, BPF): its pods go to Linux nodes only,
 * whatever else the balancer selects. A balancer's own value for the label
 * wins, so a user can still say it explicitly.
 */
export const LINUX_NODES = { 'kubernetes.io/os': 'linux' };

/**
 * The agent's capabilities, and nothing else (README, "Security"): CAP_BPF to
 * create, pin and open maps and programs; CAP_PERFMON for the verifier to
 * accept the program (pointer arithmetic on packet data; without it EACCES);
 * CAP_NET_ADMIN to load a networking program and attach it to the NIC;
 * CAP_NET_RAW for the packet sockets of the health probes and of L2 mode.
 */
export const AGENT_CAPABILITIES: Record<BpfCapability, string[]> = {
  BPF: ['BPF', 'PERFMON', 'NET_ADMIN', 'NET_RAW'],
  // Where the runtime does not know CAP_BPF: the kernel takes CAP_SYS_ADMIN for CAP_BPF and CAP_PERFMON.
  SYS_ADMIN: ['SYS_ADMIN', 'NET_ADMIN', 'NET_RAW'],
};

/**
 * No privilege beyond the capabilities added: no escalation (no_new_privs),
 * the runtime's default seccomp profile (containerd 1.6.9+ and Docker 23+
 * allow bpf(2) to a holder of CAP_BPF), nothing written outside the volumes.
 * Root, but only as the owner of the pins (kept from earlier agents): a
 * container of another user gets no effective capabilities in Kubernetes,
 * which sets no ambient ones.
 */
function restrictedContext(add: string[]): V1SecurityContext {
  return {
    runAsUser: 0,
    privileged: false,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'], add },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** Shared by the agent (writes BIRD's configuration, talks to its socket) and the BIRD sidecar; in memory, gone with the pod. */
export const BIRD_DIR = '/run/xdplb/bird';
/** Where the agent finds each peer password Secret: one directory per Secret, one file per key. */
export const BGP_PASSWORDS_DIR = '/etc/xdplb/bgp-passwords';
/** Readable by root only: the agent runs as root. */
const SECRET_FILE_MODE = 0o400;

/**
 * What spec.bgp adds to the agent pod: the agent's --bgp flags (passwords as
 * files mounted from their Secrets, so the agent needs no RBAC on Secrets
 * and no password is in the pod spec), and BIRD as a native sidecar (an init
 * container that keeps running): it starts before the agent and is stopped
 * only after the agent has exited, so the agent's withdrawal on SIGTERM
 * still reaches the routers.
 */
function bgpPodParts(bgp: XdpBalancerBgp, image: string): { args: string[]; volumes: V1Volume[]; agentMounts: V1VolumeMount[]; sidecar: V1Container } {
  const secrets = [...new Set(bgp.peers.flatMap((p) => (p.passwordSecretRef ? [p.passwordSecretRef.name] : [])))].sort();
  const volumeOf = (secret: string) => `bgp-password-${secrets.indexOf(secret)}`;
  const settings: AgentBgpSettings = {
    ...bgp,
    peers: bgp.peers.map(({ passwordSecretRef, ...peer }) =>
      passwordSecretRef ? { ...peer, passwordFile: `${BGP_PASSWORDS_DIR}/${passwordSecretRef.name}/${passwordSecretRef.key}` } : peer),
  };
  const birdMount: V1VolumeMount = { name: 'bird', mountPath: BIRD_DIR };
  return {
    args: ['--bgp', JSON.stringify(settings), '--bird-dir', BIRD_DIR],
    volumes: [
      { name: 'bird', emptyDir: { medium: 'Memory' } },
      ...secrets.map((secretName) => ({ name: volumeOf(secretName), secret: { secretName, defaultMode: SECRET_FILE_MODE } })),
    ],
    agentMounts: [birdMount, ...secrets.map((secret) => ({ name: volumeOf(secret), mountPath: `${BGP_PASSWORDS_DIR}/${secret}`, readOnly: true }))],
    sidecar: {
      name: 'bird',
      image,
      command: birdCommand(BIRD_DIR),
      restartPolicy: 'Always',
      // Host network: BGP on port 179 of the node (NET_BIND_SERVICE; TCP MD5 keys need nothing more). BFD's
      // sockets are set to priority 7 (SO_PRIORITY above 6 takes NET_ADMIN), else BIRD fails them.
      securityContext: restrictedContext(bgp.bfd ? ['NET_BIND_SERVICE', 'NET_ADMIN'] : ['NET_BIND_SERVICE']),
      resources: { requests: { cpu: '10m', memory: '32Mi' } },
      volumeMounts: [birdMount],
    },
  };
}

export const agentPinDir = (balancer: string) => `${BPFFS}/xdplb/${balancer}`;

export function agentSelector(balancer: string): Record<string, string> {
  return { 'app.kubernetes.io/name': AGENT_APP, [BALANCER_LABEL]: balancer };
}

export function agentDaemonSet(b: XdpBalancer, namespace: string): V1DaemonSet {
  const name = b.metadata.name!;
  const spec = b.spec;
  const port = spec.metricsPort ?? DEFAULT_METRICS_PORT;
  const drainSeconds = spec.drainSeconds ?? DEFAULT_DRAIN_SECONDS;
  const labels = { ...agentSelector(name), 'app.kubernetes.io/part-of': 'xdplb', 'app.kubernetes.io/managed-by': MANAGED_BY };
  const args = ['run', '--balancer', name, '--xdp-mode', spec.xdpMode ?? 'auto', '--pin-dir', agentPinDir(name), '--metrics-address', `0.0.0.0:${port}`,
    '--trace-address', `0.0.0.0:${tracePortFor(port)}`,
    // On the node's addresses (host network), so only for a token RBAC allows (deploy/rbac-agent-auth.yaml), over
    // HTTPS with a certificate the agent makes at start and publishes the fingerprint of in its node's status entry.
    // The kubelet's probes of /healthz and /readyz need no token.
    '--metrics-auth', 'kubernetes', '--trace-auth', 'kubernetes'];
  if (spec.nic) args.push('--nic', spec.nic);
  const caps = spec.capacities ?? {};
  const memory = agentMemory(caps);
  if (caps.vips !== undefined) args.push('--max-vips', String(caps.vips));
  if (caps.reals !== undefined) args.push('--max-reals', String(caps.reals));
  if (caps.connectionTable !== undefined) args.push('--connection-table', String(caps.connectionTable));
  const bgp = spec.bgp ? bgpPodParts(spec.bgp, spec.image) : null;
  if (bgp) args.push(...bgp.args);
  if (spec.l2) args.push('--l2-lease-seconds', String(spec.l2.leaseSeconds ?? DEFAULT_L2_LEASE_SECONDS));
  // Announcing (BGP or L2), an agent leaving its node moves the traffic away first, then waits for it.
  const announces = !!bgp || !!spec.l2;
  if (announces) args.push('--drain-seconds', String(drainSeconds));
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: {
      name: agentDaemonSetName(name),
      namespace,
      labels,
      ownerReferences: [{
        apiVersion: `${GROUP}/${VERSION}`, kind: XDPB_KIND, name, uid: b.metadata.uid!, controller: true, blockOwnerDeletion: true,
      }],
    },
    spec: {
      selector: { matchLabels: agentSelector(name) },
      // One node at a time: each restart is hitless, but a bad image should stop at the first node.
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } },
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: AGENT_SERVICE_ACCOUNT,
          hostNetwork: true,
          dnsPolicy: 'ClusterFirstWithHostNet',
          priorityClassName: 'system-node-critical',
          nodeSelector: { ...LINUX_NODES, ...spec.nodeSelector },
          tolerations: spec.tolerations,
          // Removed from its node while announcing, the agent waits up to drainSeconds for the traffic to move.
          terminationGracePeriodSeconds: STOP_SECONDS + (announces ? drainSeconds : 0),
          initContainers: [{
            name: 'mount-bpffs',
            image: spec.image,
            command: ['sh', '-c', MOUNT_BPFFS],
            // mount(2) and Bidirectional propagation (which Kubernetes allows privileged containers only): a one-line
            // script that exits before the agent starts.
            securityContext: { privileged: true, runAsUser: 0 },
            volumeMounts: [{ name: 'bpffs', mountPath: BPFFS, mountPropagation: 'Bidirectional' }],
          }, ...(bgp ? [bgp.sidecar] : [])],
          containers: [{
            name: 'agent',
            image: spec.image,
            command: ['node', `--max-old-space-size=${AGENT_HEAP_MIB}`, AGENT_ENTRYPOINT],
            args,
            env: [
              { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
              // On SIGTERM the agent reads its DaemonSet, here, to tell a restart from a removal.
              { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
              // Where xdplb trace --node reaches this agent (the node's address: host network).
              { name: 'XDPLB_ADVERTISE_ADDRESS', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
            ],
            // BPF memory is charged to the cgroup (Linux 5.11+), not to RLIMIT_MEMLOCK: no CAP_SYS_RESOURCE either.
            securityContext: restrictedContext(AGENT_CAPABILITIES[spec.bpfCapability ?? 'BPF']),
            ports: [{ name: METRICS_PORT_NAME, containerPort: port, protocol: 'TCP' },
              { name: TRACE_PORT_NAME, containerPort: tracePortFor(port), protocol: 'TCP' }],
            // HTTPS (the kubelet does not verify the certificate of a probe).
            readinessProbe: { httpGet: { path: '/readyz', port, scheme: 'HTTPS' }, periodSeconds: 5 },
            livenessProbe: { httpGet: { path: '/healthz', port, scheme: 'HTTPS' }, periodSeconds: 10, failureThreshold: 6 },
            // Both include the BPF maps, charged to the agent's cgroup (agent-memory.ts): the request what a
            // programmed, idle agent holds, so the scheduler counts the maps; the limit its measured peak with
            // headroom, so an agent that grows past it is stopped (hitless: its program stays attached).
            resources: { requests: { cpu: '100m', memory: mebibytes(memory.requestBytes) }, limits: { memory: mebibytes(memory.limitBytes) } },
            volumeMounts: [{ name: 'bpffs', mountPath: BPFFS, mountPropagation: 'HostToContainer' }, ...(bgp?.agentMounts ?? [])],
          }],
          volumes: [{ name: 'bpffs', hostPath: { path: BPFFS, type: 'Directory' } }, ...(bgp?.volumes ?? [])],
        },
      },
    },
  };
}
