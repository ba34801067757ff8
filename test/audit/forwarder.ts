/**
 * A loopback TCP forwarder in front of PostgreSQL that a test can take down (refusing connections,
 * cutting live ones) and bring back on the same port: an audit-store outage on demand.
 */
import net from 'node:net';

export interface Forwarder {
  port: number;
  down(): Promise<void>;
  up(): Promise<void>;
  /** Stops passing the server's replies to clients (requests still reach the server): a lost reply. */
  stallReplies(): void;
  /** Cuts every live connection (keeps listening, replies flow again for new ones). */
  cut(): void;
  close(): Promise<void>;
}

export async function startForwarder(targetHost: string, targetPort: number): Promise<Forwarder> {
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  let port = 0;
  let stalled = false;
  const listen = async () => {
    server = net.createServer((client) => {
      const upstream = net.connect(targetPort, targetHost);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream);
      upstream.on('data', (chunk) => {
        if (!stalled) client.write(chunk);
      });
      upstream.on('end', () => client.end());
    });
    await new Promise<void>((resolve) => server!.listen(port, '127.0.0.1', resolve));
    port = (server!.address() as net.AddressInfo).port;
  };
  const down = async () => {
    const s = server;
    server = undefined;
    for (const socket of sockets) socket.destroy();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  await listen();
  return {
    get port() {
      return port;
    },
    down,
    up: listen,
    stallReplies() {
      stalled = true;
    },
    cut() {
      stalled = false;
      for (const socket of sockets) socket.destroy();
    },
    close: down,
  };
}
