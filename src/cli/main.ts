#!/usr/bin/env node
/** xdplb: the command line for people operating xdplb. */
import { TRACE_USAGE, traceCommand } from './trace-command.js';

const USAGE = `usage: xdplb <command> [options]

commands:
  trace     show what the XDP program does with matching packets (xdplb trace --help)
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'trace') {
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(TRACE_USAGE);
      return 0;
    }
    return traceCommand(rest);
  }
  if (command === undefined || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  process.stderr.write(`xdplb: unknown command "${command}"\n\n${USAGE}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    process.stderr.write(`xdplb: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
