/** LoadBalancerVip specs the API server must refuse, shared by the CRD test and the operator e2e. */
/** A LoadBalancerVip manifest around `spec` (indented YAML lines). */
export const vipManifest = (spec: string, name: string, namespace: string) =>
  `apiVersion: xdplb.dev/v1alpha1\nkind: LoadBalancerVip\nmetadata: {name: ${name}, namespace: ${namespace}}\nspec:\n${spec}\n`;
export const sel = '  backendSelector: {matchLabels: {app: web}}';
export const OK_PORTS = '  ports: [{port: 80}]';

/** [what is wrong, spec, the field the message must name] */
export const INVALID_VIPS: [string, string, string][] = [
  ['not an IP', `  address: 198.19.0.300\n${OK_PORTS}\n${sel}`, 'spec.address'],
  ['a prefix, not an address', `  address: 198.19.0.10/32\n${OK_PORTS}\n${sel}`, 'spec.address'],
  ['loopback', `  address: 127.0.0.1\n${OK_PORTS}\n${sel}`, 'spec.address'],
  ['multicast', `  address: 224.0.0.1\n${OK_PORTS}\n${sel}`, 'spec.address'],
  ['IPv6 link-local', `  address: fe80::1\n${OK_PORTS}\n${sel}`, 'spec.address'],
  ['unspecified', `  address: "::"\n${OK_PORTS}\n${sel}`, 'spec.address'],
  ['address family not the address\'s', `  address: 198.19.0.10\n  addressFamily: IPv6\n${OK_PORTS}\n${sel}`, 'spec'],
  ['unknown address family', `  addressFamily: IPv5\n${OK_PORTS}\n${sel}`, 'spec.addressFamily'],
  ['both a selector and a Service', `  address: 198.19.0.10\n${OK_PORTS}\n${sel}\n  backendService: web`, 'spec'],
  ['backend Service not a Service name', `  address: 198.19.0.10\n${OK_PORTS}\n  backendService: Web_1`, 'spec.backendService'],
  ['port 0', `  address: 198.19.0.10\n  ports: [{port: 0}]\n${sel}`, 'spec.ports[0].port'],
  ['port 65536', `  address: 198.19.0.10\n  ports: [{port: 65536}]\n${sel}`, 'spec.ports[0].port'],
  ['port not an integer', `  address: 198.19.0.10\n  ports: [{port: 80.5}]\n${sel}`, 'spec.ports[0].port'],
  ['duplicate port (after defaulting TCP)', `  address: 198.19.0.10\n  ports: [{port: 80, protocol: TCP}, {port: 80}]\n${sel}`, 'spec.ports[1]'],
  ['unknown protocol', `  address: 198.19.0.10\n  ports: [{port: 80, protocol: SCTP}]\n${sel}`, 'spec.ports[0].protocol'],
  ['no ports', `  address: 198.19.0.10\n  ports: []\n${sel}`, 'spec.ports'],
  ['too many ports', `  address: 198.19.0.10\n  ports: [${Array.from({ length: 17 }, (_, i) => `{port: ${1000 + i}}`).join(', ')}]\n${sel}`, 'spec.ports'],
  ['empty selector', `  address: 198.19.0.10\n${OK_PORTS}\n  backendSelector: {}`, 'spec.backendSelector'],
  ['no selector', `  address: 198.19.0.10\n${OK_PORTS}`, 'spec'],
  ['In without values', `  address: 198.19.0.10\n${OK_PORTS}\n  backendSelector: {matchExpressions: [{key: app, operator: In}]}`, 'spec.backendSelector.matchExpressions[0]'],
  ['unknown operator', `  address: 198.19.0.10\n${OK_PORTS}\n  backendSelector: {matchExpressions: [{key: app, operator: Like, values: [w]}]}`, 'spec.backendSelector.matchExpressions[0].operator'],
  // Labels no pod can carry: the selector would select nothing, silently.
  ['label value with a space', `  address: 198.19.0.10\n${OK_PORTS}\n  backendSelector: {matchLabels: {app: "web shop"}}`, 'spec.backendSelector.matchLabels'],
  ['label key with a space', `  address: 198.19.0.10\n${OK_PORTS}\n  backendSelector: {matchLabels: {"my app": web}}`, 'spec.backendSelector.matchLabels'],
  ['label key prefix not a DNS subdomain', `  address: 198.19.0.10\n${OK_PORTS}\n  backendSelector: {matchLabels: {"Example_Com/app": web}}`, 'spec.backendSelector.matchLabels'],
  ['expression key with a space', `  address: 198.19.0.10\n${OK_PORTS}\n  backendSelector: {matchExpressions: [{key: "my app", operator: Exists}]}`, 'spec.backendSelector.matchExpressions[0].key'],
  ['expression value with a space', `  address: 198.19.0.10\n${OK_PORTS}\n  backendSelector: {matchExpressions: [{key: app, operator: In, values: ["web shop"]}]}`, 'spec.backendSelector.matchExpressions[0].values[0]'],
  ['bad balancer name', `  address: 198.19.0.10\n  balancer: Bad_Name\n${OK_PORTS}\n${sel}`, 'spec.balancer'],
  ['target port 0', `  address: 198.19.0.10\n  ports: [{port: 80, targetPort: 0}]\n${sel}`, 'spec.ports[0].targetPort'],
  ['target port 65536', `  address: 198.19.0.10\n  ports: [{port: 80, targetPort: 65536}]\n${sel}`, 'spec.ports[0].targetPort'],
  ['target port a name', `  address: 198.19.0.10\n  ports: [{port: 80, targetPort: http}]\n${sel}`, 'spec.ports[0].targetPort'],
  ['unknown delivery', `  address: 198.19.0.10\n${OK_PORTS}\n${sel}\n  delivery: Pod`, 'spec.delivery'],
  ['hashing option not a boolean', `  address: 198.19.0.10\n${OK_PORTS}\n${sel}\n  hashing: {ignoreSourcePort: "yes"}`, 'spec.hashing.ignoreSourcePort'],
];

