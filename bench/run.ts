/** npm run bench: prints the benchmark tables as Markdown (root and a BPF kernel needed). */
import { agentReconcile } from './agent.js';
import { labPps } from './lab-pps.js';
import { maglevGeneration, packetPaths, ringProgramming } from './dataplane.js';
import { machine } from './stats.js';

if (process.getuid?.() !== 0) {
  console.error('the benchmarks load BPF programs: run them as root');
  process.exit(1);
}
console.log(`Machine: ${machine()}\nDate: ${new Date().toISOString().slice(0, 10)}\n`);
console.log(packetPaths(), '\n');
console.log(maglevGeneration(), '\n');
console.log(ringProgramming(), '\n');
console.log(agentReconcile(), '\n');
console.log(await labPps());
