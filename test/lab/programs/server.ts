/**
 * Runs on a real (in its namespace): TCP on each VIP greets with the real's
 * name and then echoes lines; UDP answers every datagram with the name.
 * argv[2]: JSON { name, tcp: [{address, port}], udp: [{address, port}] }.
 */
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { isIPv6 } from 'node:net';

interface Listen {
  address: string;
  port: number;
}
const cfg = JSON.parse(process.argv[2] ?? '{}') as { name: string; tcp: Listen[]; udp: Listen[] };
let pending = cfg.tcp.length + cfg.udp.length;
const ready = () => {
  if (--pending === 0) process.stdout.write('ready\n');
};

for (const l of cfg.tcp) {
  const server = createServer((sock) => {
    sock.setNoDelay(true);
    sock.write(`real=${cfg.name}\n`);
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        sock.write(`real=${cfg.name} ${buf.slice(0, i)}\n`);
        buf = buf.slice(i + 1);
      }
    });
    sock.on('error', () => sock.destroy());
  });
  server.listen({ host: l.address, port: l.port, backlog: 1024 }, ready);
}
for (const l of cfg.udp) {
  const sock = createSocket(isIPv6(l.address) ? 'udp6' : 'udp4');
  sock.on('message', (msg, rinfo) => sock.send(`real=${cfg.name} ${msg.toString()}`, rinfo.port, rinfo.address));
  sock.bind(l.port, l.address, ready);
}
