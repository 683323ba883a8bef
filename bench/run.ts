/** npm run bench: prints the benchmark tables as Markdown (root and a BPF kernel needed). */
import os from 'node:os';
import { agentReconcile } from './agent.js';
import { cacheChurn } from './cache-churn.js';
import { backendPaths } from './backend.js';
import { labPps } from './lab-pps.js';
import { labBackendPps } from './lab-backend-pps.js';
import { maglevGeneration, packetPaths, ringProgramming } from './dataplane.js';
import { planning } from './planning.js';
import { poolAssignment } from './pool-assignment.js';
import { probeTraffic } from './probes.js';
import { machine } from './stats.js';
import { applyToPackets, scale } from './operator.js';
import { scaleAgents } from './scale-agents.js';
import { servicesAssign } from './services.js';
import { tracingCost } from './tracing.js';

if (process.getuid?.() !== 0) {
  console.error('the benchmarks load BPF programs: run them as root');
  process.exit(1);
}
// npm run bench [-- NAME...]: only the named groups (dataplane, backend, probes, tracing, agent, caches, planning, pools, lab, lab-backend, operator = apply + scale + services; scale-agents: N simulated agents, run only by name).
const only = process.argv.slice(2);
const want = (name: string) => only.length === 0 || only.includes(name);
console.log(`Machine: ${machine()}\nDate: ${new Date().toISOString().slice(0, 10)}\nLoad average: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
if (want('dataplane')) {
  console.log(packetPaths(), '\n');
  console.log(maglevGeneration(), '\n');
  console.log(ringProgramming(), '\n');
}
if (want('backend')) console.log(backendPaths(), '\n');
if (want('probes')) console.log(probeTraffic(), '\n');
if (want('dataplane') || want('tracing')) console.log(tracingCost(), '\n');
if (want('agent')) console.log(agentReconcile(), '\n');
if (want('agent') || want('caches')) console.log(cacheChurn(), '\n');
if (want('agent') || want('planning')) console.log(planning(), '\n');
if (want('pools')) console.log(await poolAssignment(), '\n');
if (want('lab')) console.log(await labPps(), '\n');
if (want('lab') || want('lab-backend')) console.log(await labBackendPps(), '\n');
if (want('operator') || want('apply')) console.log(await applyToPackets(), '\n');
if (want('operator') || want('scale')) console.log(await scale(), '\n');
if (want('operator') || want('services')) console.log(await servicesAssign(), '\n');
if (want('scale-agents')) console.log(await scaleAgents());
