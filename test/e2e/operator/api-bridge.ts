/**
 * The host half of the lab's path to the API server: a unix socket relayed to
 * 127.0.0.1:PORT (the forwarder in each balancer namespace is the other half).
 * cut() is an API outage as an agent sees it: open connections reset, new
 * ones refused; restore() ends it.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { rmSync } from 'node:fs';

export class ApiBridge {
  private server: Server | null = null;
  private readonly open = new Set<Socket>();

  constructor(readonly socketPath: string, readonly port: number) {}

  async start(): Promise<void> {
    rmSync(this.socketPath, { force: true });
    const server = createServer((client) => {
      const upstream = connect(this.port, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.open.add(s);
        s.on('close', () => this.open.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, resolve);
    });
    this.server = server;
  }

  /** Resets every relayed connection and refuses new ones until restore(). */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.open) {
      // A TCP RST toward the API server side; unix sockets have no reset.
      if (s.remotePort !== undefined) s.resetAndDestroy();
      else s.destroy();
    }
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    rmSync(this.socketPath, { force: true });
  }

  restore(): Promise<void> {
    return this.start();
  }

  async stop(): Promise<void> {
    await this.cut();
  }
}
