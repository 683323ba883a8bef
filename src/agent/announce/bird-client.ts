/**
 * A client of BIRD's control socket (the protocol birdc speaks): the agent
 * reloads BIRD and reads its sessions through it. We speak it ourselves
 * rather than run birdc because every reply line carries a numeric code
 * (0003 "Reconfigured", 8002 "Configuration file error", ...), which a
 * program can trust where birdc's printed text would have to be scraped; it
 * costs no process per scrape or reload; and the agent needs no BIRD binary,
 * only the socket, which the sidecar shares through a volume.
 *
 * The protocol: BIRD greets with "0001 BIRD <version> ready."; each command
 * is one line; each reply line is "CODE-text" (more follows), " text" (more
 * of the same code) or "CODE text" (the last). Codes 0xxx say done, 1xxx and
 * 2xxx carry data, 8xxx and 9xxx are errors.
 */
import { connect } from 'node:net';

/** A command answers within this, or the socket is given up (BIRD answers locally, in milliseconds). */
export const BIRD_COMMAND_TIMEOUT_MS = 5000;
const FIRST_ERROR_CODE = 8000;
const WELCOME = 1;

export const BirdCode = {
  Reconfigured: 3,
  ReconfigurationInProgress: 4,
  ReconfigurationQueued: 5,
  ConfigurationFileError: 8002,
} as const;

export interface BirdReplyLine {
  code: number;
  text: string;
}

export interface BirdReply {
  /** The last line's code: what the command came to. */
  code: number;
  lines: BirdReplyLine[];
}

export class BirdError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** Splits BIRD's reply text into lines with their codes; `done` once the last line came. */
export function parseReply(text: string): { lines: BirdReplyLine[]; done: boolean } {
  const lines: BirdReplyLine[] = [];
  let done = false;
  let code = 0;
  for (const raw of text.split('\n')) {
    if (raw === '') continue;
    const m = /^(\d{4})([ -])(.*)$/.exec(raw);
    if (m) {
      code = Number(m[1]);
      lines.push({ code, text: m[3]! });
      if (m[2] === ' ') done = true;
    } else if (raw.startsWith(' ')) {
      lines.push({ code, text: raw.slice(1) });
    }
  }
  return { lines, done };
}

export class BirdClient {
  constructor(readonly socketPath: string, private readonly timeoutMs = BIRD_COMMAND_TIMEOUT_MS) {}

  /** Runs one command on a fresh connection (BIRD may have restarted since the last). Rejects on an error code. */
  command(cmd: string): Promise<BirdReply> {
    return new Promise((resolve, reject) => {
      const sock = connect(this.socketPath);
      let buf = '';
      let greeted = false;
      const fail = (err: Error) => {
        sock.destroy();
        reject(err);
      };
      const timer = setTimeout(() => fail(new Error(`BIRD did not answer "${cmd}" within ${this.timeoutMs} ms on ${this.socketPath}`)), this.timeoutMs);
      sock.on('error', (err) => {
        clearTimeout(timer);
        fail(new Error(`cannot reach BIRD on ${this.socketPath} (${err.message}): is the bird sidecar running?`));
      });
      sock.on('data', (d) => {
        buf += d.toString();
        // Only whole lines: a reply may arrive in pieces.
        const end = buf.lastIndexOf('\n');
        if (end < 0) return;
        const { lines, done } = parseReply(buf.slice(0, end + 1));
        if (!greeted) {
          if (!done) return;
          if (lines[0]?.code !== WELCOME) return fail(new Error(`unexpected greeting from BIRD: ${buf.trim()}`));
          greeted = true;
          buf = buf.slice(end + 1);
          sock.write(`${cmd}\n`);
          return;
        }
        if (!done) return;
        clearTimeout(timer);
        sock.end();
        const code = lines[lines.length - 1]!.code;
        if (code >= FIRST_ERROR_CODE) reject(new BirdError(code, `BIRD refused "${cmd}": ${lines.map((l) => l.text).join(' / ')}`));
        else resolve({ code, lines });
      });
    });
  }

  /** Reloads the configuration file BIRD was started with; sessions whose protocol did not change stay up. */
  async configure(): Promise<BirdReply> {
    const reply = await this.command('configure');
    const accepted: number[] = [BirdCode.Reconfigured, BirdCode.ReconfigurationInProgress, BirdCode.ReconfigurationQueued];
    if (!accepted.includes(reply.code)) {
      throw new BirdError(reply.code, `BIRD did not reconfigure: ${reply.lines.map((l) => l.text).join(' / ')}`);
    }
    return reply;
  }
}
