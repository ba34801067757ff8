/**
 * Child process: the simplest possible TCP relay in Node (accept, connect upstream, pipe both ways).
 * The ceiling for any Postgres proxy written in Node on this machine.
 *
 * Env: BENCH_RELAY_UPSTREAM=host:port. Prints `{"port": …}` when ready; exits on SIGTERM.
 */
import { connect, createServer, type AddressInfo } from 'node:net';

const [host, port] = (process.env.BENCH_RELAY_UPSTREAM ?? '127.0.0.1:5432').split(':') as [string, string];

const server = createServer((client) => {
  const upstream = connect({ host, port: Number(port), noDelay: true });
  client.setNoDelay(true);
  client.pipe(upstream).pipe(client);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.once('error', close).once('close', close);
  upstream.once('error', close).once('close', close);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.once('SIGTERM', () => process.exit(0));
