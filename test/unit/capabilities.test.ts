import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AGENT_CAPABILITIES, CAPABILITY_BITS, type Capability, effectiveCapabilities, missingCapabilities } from '../../src/lib/capabilities.js';

const mask = (...caps: Capability[]) => caps.reduce((m, c) => m | (1n << BigInt(CAPABILITY_BITS[c])), 0n);
const status = (eff: bigint) => `Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t${eff.toString(16).padStart(16, '0')}\nCapBnd:\t000001ffffffffff\n`;

test('the effective set is read from the CapEff line', () => {
  // setpriv --inh-caps=-all,+bpf,+net_admin,+perfmon,+net_raw: what /proc/<pid>/status showed.
  assert.equal(effectiveCapabilities(status(0xc000003000n)), mask('BPF', 'PERFMON', 'NET_ADMIN', 'NET_RAW'));
  assert.throws(() => effectiveCapabilities('Name:\tnode\n'), /CapEff/);
});

test('the agent needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON, and names each it lacks', () => {
  assert.deepEqual(missingCapabilities(mask('BPF', 'NET_ADMIN', 'PERFMON'), AGENT_CAPABILITIES), []);
  assert.deepEqual(missingCapabilities(mask('NET_ADMIN', 'PERFMON', 'NET_RAW'), AGENT_CAPABILITIES), ['BPF']);
  assert.deepEqual(missingCapabilities(mask('BPF', 'PERFMON'), AGENT_CAPABILITIES), ['NET_ADMIN']);
  assert.deepEqual(missingCapabilities(0n, AGENT_CAPABILITIES), ['BPF', 'NET_ADMIN', 'PERFMON']);
});

test('CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON, not for CAP_NET_ADMIN (runtimes that predate CAP_BPF)', () => {
  assert.deepEqual(missingCapabilities(mask('SYS_ADMIN', 'NET_ADMIN'), AGENT_CAPABILITIES), []);
  assert.deepEqual(missingCapabilities(mask('SYS_ADMIN'), AGENT_CAPABILITIES), ['NET_ADMIN']);
});
