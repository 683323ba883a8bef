/**
 * Makes the lab's API server reachable from a balancer namespace: listens on
 * 127.0.0.1:PORT inside the namespace and relays each connection to a unix
 * socket, which the test relays on to the API server in the host namespace
 * (unix sockets cross network namespaces; no route to the host is needed).
 * argv: PORT SOCKET_PATH
 */
import { connect, createServer } from 'node:net';

const [port, socketPath] = [Number(process.argv[2]), process.argv[3]!];
const server = createServer((client) => {
  const upstream = connect(socketPath);
  client.pipe(upstream).pipe(client);
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', end);
  upstream.on('error', end);
  client.on('close', end);
  upstream.on('close', end);
});
server.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
