/**
 * Runs on a client (in its namespace) and prints one JSON result.
 * argv[2]: JSON command:
 *  { mode: 'connect', vip, port, count, concurrency }      new TCP connections, each reads the greeting
 *  { mode: 'udp', vip, port, sourcePorts: number[], payloadHex? }
 *                                                           one datagram per source port ("hello <port>", or the
 *                                                           payload given: a crafted QUIC packet), answers by port
 *  { mode: 'long', vip, port, durationMs, intervalMs }      one connection, a line every interval; then it
 *                                                           waits for the answers on their way
 *  { mode: 'continuous', vip, port, durationMs }            back-to-back connections for a while
 *  { mode: 'probe', vip, port, durationMs, intervalMs }     prints "started", then connects every interval
 *                                                           until one is answered: { at: epoch ms, attempts }
 *  { mode: 'large', vip, port, count, durationMs }          one connection, one line of count bytes; waits up
 *                                                           to durationMs for the real to echo it whole
 * long and continuous also take stopFile: they run until that file exists (not for durationMs), so a
 * test can keep traffic going through a change whatever time a loaded machine takes for it.
 */
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, isIPv6, type Socket } from 'node:net';

const CONNECT_TIMEOUT_MS = 3000;
/** A probe gives up on a connection soon: a SYN lost before the VIP existed is not retransmitted for 1 s. */
const PROBE_TIMEOUT_MS = 200;
const UDP_TIMEOUT_MS = 2000;

interface Cmd {
  mode: string;
  vip: string;
  port: number;
  count?: number;
  concurrency?: number;
  sourcePorts?: number[];
  payloadHex?: string;
  durationMs?: number;
  intervalMs?: number;
  stopFile?: string;
}
const cmd = JSON.parse(process.argv[2] ?? '{}') as Cmd;

/** How often a run with a stopFile looks for it. */
const STOP_POLL_MS = 50;

/** Resolves when the run is to stop: durationMs from now, or once cmd.stopFile exists. */
async function runEnds(): Promise<void> {
  if (!cmd.stopFile) return sleep(cmd.durationMs ?? 1000);
  while (!existsSync(cmd.stopFile)) await sleep(STOP_POLL_MS);
}

/** One connection: resolves with the real's name from the greeting. */
function greet(vip: string, port: number, timeoutMs = CONNECT_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: vip, port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('timeout'));
    }, timeoutMs);
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      const i = buf.indexOf('\n');
      if (i >= 0) {
        clearTimeout(timer);
        sock.end();
        resolve(buf.slice(0, i).replace(/^real=/, ''));
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Calls onLine for each whole line the socket receives, then afterData once per chunk. */
function onLines(sock: Socket, onLine: (line: string) => void, afterData: () => void = () => undefined): void {
  let buf = '';
  sock.on('data', (d) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      onLine(line);
    }
    afterData();
  });
}

async function connectMany(): Promise<object> {
  const byReal: Record<string, number> = {};
  const errors: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < (cmd.count ?? 1)) {
      next++;
      try {
        const real = await greet(cmd.vip, cmd.port);
        byReal[real] = (byReal[real] ?? 0) + 1;
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: cmd.concurrency ?? 1 }, worker));
  return { byReal, failures: errors.length, errors: errors.slice(0, 10) };
}

async function udp(): Promise<object> {
  const byPort: Record<number, string> = {};
  const errors: string[] = [];
  for (const sport of cmd.sourcePorts ?? []) {
    const sock = createSocket(isIPv6(cmd.vip) ? 'udp6' : 'udp4');
    try {
      await new Promise<void>((res, rej) => {
        sock.once('error', rej);
        sock.bind(sport, () => res());
      });
      const answer = await new Promise<string>((res, rej) => {
        const timer = setTimeout(() => rej(new Error(`timeout from port ${sport}`)), UDP_TIMEOUT_MS);
        sock.on('message', (m) => {
          clearTimeout(timer);
          res(m.toString());
        });
        sock.send(cmd.payloadHex === undefined ? `hello ${sport}` : Buffer.from(cmd.payloadHex, 'hex'), cmd.port, cmd.vip);
      });
      byPort[sport] = answer.split(' ')[0]!.replace(/^real=/, '');
    } catch (err) {
      errors.push((err as Error).message);
    } finally {
      sock.close();
    }
  }
  return { byPort, failures: errors.length, errors: errors.slice(0, 10) };
}

/** After the last line, how long a long-lived connection waits for its answers (a loaded machine delays them). */
const LONG_ANSWER_WAIT_MS = 10_000;

function long(): Promise<object> {
  return new Promise((resolve) => {
    const sock = connect({ host: cmd.vip, port: cmd.port });
    sock.setNoDelay(true);
    let real = '';
    let sent = 0;
    let received = 0;
    let error = '';
    let done = false;
    /** Sending has stopped: the answers still on their way are awaited, so an unbroken connection answers every line. */
    let draining = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearInterval(tick);
      sock.destroy();
      resolve({ real, sent, received, error });
    };
    const tick = setInterval(() => {
      if (real) sock.write(`ping ${sent++}\n`);
    }, cmd.intervalMs ?? 100);
    onLines(sock, (line) => {
      if (!real) real = line.replace(/^real=/, '');
      else if (line.startsWith(`real=${real} ping`)) received++;
    }, () => {
      if (draining && received >= sent) finish();
    });
    sock.on('error', (err) => {
      error = err.message;
      finish();
    });
    void runEnds().then(() => {
      clearInterval(tick);
      draining = true;
      if (received >= sent) finish();
      else setTimeout(finish, LONG_ANSWER_WAIT_MS);
    });
  });
}

async function continuous(): Promise<object> {
  let ended = false;
  void runEnds().then(() => (ended = true));
  let ok = 0;
  const errors: string[] = [];
  while (!ended) {
    try {
      await greet(cmd.vip, cmd.port);
      ok++;
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  return { ok, failures: errors.length, errors: errors.slice(0, 10) };
}

/**
 * How soon a VIP starts answering: a new connection every interval, each
 * given PROBE_TIMEOUT_MS, overlapping, so a SYN lost before the VIP existed
 * does not hide the moment it starts to work. `at`: the first answer's time.
 */
function probe(): Promise<object> {
  return new Promise((resolve) => {
    let attempts = 0;
    const finish = (at: number | null) => {
      clearInterval(tick);
      clearTimeout(timer);
      resolve({ at, attempts });
    };
    const tick = setInterval(() => {
      attempts++;
      greet(cmd.vip, cmd.port, PROBE_TIMEOUT_MS).then(() => finish(Date.now()), () => undefined);
    }, cmd.intervalMs ?? 10);
    const timer = setTimeout(() => finish(null), cmd.durationMs ?? 10_000);
    process.stdout.write('started\n');
  });
}

/** A line large enough that the real answers in full-sized segments: { real, sent, received, error }. */
function large(): Promise<object> {
  return new Promise((resolve) => {
    const size = cmd.count ?? 8000;
    const sock = connect({ host: cmd.vip, port: cmd.port });
    let real = '';
    let received = 0;
    const finish = (error: string) => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ real, sent: size, received, error });
    };
    const timer = setTimeout(() => finish('timeout'), cmd.durationMs ?? 10_000);
    onLines(sock, (line) => {
      if (!real) {
        real = line.replace(/^real=/, '');
        sock.write(`${'x'.repeat(size)}\n`);
      } else {
        received = line.length - line.indexOf(' ') - 1;
        finish('');
      }
    });
    sock.on('error', (err) => finish(err.message));
  });
}

const run = { connect: connectMany, udp, long, continuous, probe, large }[cmd.mode];
if (!run) {
  process.stderr.write(`unknown mode ${cmd.mode}\n`);
  process.exit(2);
}
run().then((r) => process.stdout.write(`${JSON.stringify(r)}\n`));
