import { randomInt, timingSafeEqual } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { AuthenticateResult, SessionGate } from './gate.ts';
import { silentLogger, type ProxyLogger } from './log.ts';
import {
  AuthCode,
  ProtocolError,
  SqlState,
  encodeAuthentication,
  encodeBackendKeyData,
  encodeError,
  encodeNegotiateProtocolVersion,
  encodeReadyForQuery,
  sanitizeText,
} from './protocol.ts';
import { RelaySession } from './session.ts';
import {
  ConnectionClosedError,
  SocketReader,
  isLoopback,
  mustRefuseCleartext,
  readHello,
  readPassword,
  upstreamParameters,
} from './startup.ts';
import { UpstreamError, connectUpstream } from './upstream.ts';

/** Resource limits; every default in one place. */
export interface PgProxyLimits {
  /** Largest StartupMessage (and other start-up packets). */
  maxStartupBytes: number;
  /** Largest PasswordMessage (the token). */
  maxPasswordBytes: number;
  /** Largest message after start-up (Query, Parse, Bind, CopyData …). */
  maxMessageBytes: number;
  /** Prepared statements tracked per session. */
  maxPreparedStatements: number;
  /** From accept to the end of authentication (including the upstream's). */
  authTimeoutMs: number;
  /** Upstream connect + start-up. */
  upstreamTimeoutMs: number;
  /** Concurrent client connections (authenticating or not); more are refused by the listener. */
  maxConnections: number;
}

/** The proxy's defaults (listener 127.0.0.1:6432, limits). */
export const PG_PROXY_DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  port: 6432,
  allowInsecure: false,
  limits: Object.freeze({
    maxStartupBytes: 10 * 1024,
    maxPasswordBytes: 64 * 1024,
    maxMessageBytes: 64 * 1024 * 1024,
    maxPreparedStatements: 10_000,
    authTimeoutMs: 30_000,
    upstreamTimeoutMs: 10_000,
    maxConnections: 1_000,
  } satisfies PgProxyLimits),
});

/** Options of `createPgProxy`. */
export interface PgProxyOptions {
  /** Decides who connects (token) and what runs (each statement). */
  gate: SessionGate;
  /** Listen address; default 127.0.0.1. */
  host?: string;
  /** Listen port; default 6432; 0 = any free port. */
  port?: number;
  /** Server certificate and key (PEM): SSLRequest is answered 'S' and upgraded; else 'N'. */
  tls?: Pick<SecureContextOptions, 'cert' | 'key' | 'ca' | 'passphrase' | 'minVersion'>;
  /**
   * Ask for the token without TLS on non-loopback connections. Off by default: the token is a bearer
   * credential and would cross the network in cleartext.
   */
  allowInsecure?: boolean;
  limits?: Partial<PgProxyLimits>;
  logger?: ProxyLogger;
}

/** A running (or ready to run) proxy listener. */
export interface PgProxy {
  /** Starts listening; resolves with the bound address (useful with port 0). */
  listen(): Promise<AddressInfo>;
  /** Stops listening and ends every session (FATAL 57P01 to clients). */
  close(): Promise<void>;
  /** Sessions past authentication. */
  readonly sessionCount: number;
}

interface Registered {
  session: RelaySession;
  secretKey: Buffer;
}

/**
 * Creates the Postgres enforcement proxy listener.
 *
 * @example
 * const proxy = createPgProxy({ gate, port: 0, tls: { cert, key } });
 * const { port } = await proxy.listen();
 * // psql "host=127.0.0.1 port=$port user=agent dbname=appdb sslmode=require" with PGPASSWORD=<token>
 */
export function createPgProxy(options: PgProxyOptions): PgProxy {
  const config = validate(options);
  const log = options.logger ?? silentLogger;
  const secureContext: SecureContext | undefined = options.tls ? createSecureContext(options.tls) : undefined;
  const sessions = new Map<number, Registered>();
  const pending = new Set<Socket>();
  let server: Server | undefined;

  if (!isLoopback(config.host) && config.host !== 'localhost') {
    if (!secureContext && config.allowInsecure) {
      log.warn({ event: 'pg.insecure_listener', host: config.host }, 'tokens will be accepted in cleartext over the network');
    } else if (!secureContext) {
      log.warn({ event: 'pg.no_tls', host: config.host }, 'no TLS configured: non-loopback clients will be refused');
    }
  }

  /** Random per-session BackendKeyData, so a client never learns (or cancels with) the upstream's. */
  function newKey(): { processId: number; secretKey: number } {
    let processId: number;
    do processId = randomInt(1, 0x7fffffff);
    while (sessions.has(processId));
    return { processId, secretKey: randomInt(-0x80000000, 0x7fffffff) };
  }

  function cancel(processId: number, secretKey: number): void {
    const reg = sessions.get(processId);
    const given = Buffer.alloc(4);
    given.writeInt32BE(secretKey, 0);
    // Constant-time, and the same work whether or not the pid exists.
    const expected = reg?.secretKey ?? Buffer.alloc(4);
    if (timingSafeEqual(given, expected) && reg) reg.session.cancel();
  }

  async function serve(socket: Socket): Promise<void> {
    pending.add(socket);
    socket.setNoDelay(true);
    socket.on('error', () => {}); // reported through the reader; never an uncaught 'error'
    const timer = setTimeout(() => socket.destroy(), config.limits.authTimeoutMs);
    let reader = new SocketReader(socket);
    let client: Socket = socket;
    try {
      const hello = await readHello(socket, reader, { secureContext, maxStartupBytes: config.limits.maxStartupBytes });
      client = hello.socket;
      reader = hello.reader;
      if (client !== socket) client.on('error', () => {});
      if (hello.hello.kind === 'cancel') {
        cancel(hello.hello.processId, hello.hello.secretKey);
        client.destroy();
        return;
      }
      const params = hello.hello.params;
      if (mustRefuseCleartext({ tls: hello.tls, localAddress: socket.localAddress, allowInsecure: config.allowInsecure })) {
        throw new ProtocolError(
          'the proxy accepts tokens only over TLS on non-loopback connections: connect with sslmode=require',
          SqlState.InvalidAuthorizationSpecification,
        );
      }
      const user = params.get('user');
      if (!user) throw new ProtocolError('no user name specified in the start-up packet', SqlState.InvalidAuthorizationSpecification);
      const forwarded = upstreamParameters(params);
      const unrecognised = [...params.keys()].filter((k) => k.startsWith('_pq_.'));
      if (hello.hello.minor > 0 || unrecognised.length) client.write(encodeNegotiateProtocolVersion(unrecognised));
      client.write(encodeAuthentication(AuthCode.CleartextPassword));
      const password = await readPassword(reader, config.limits.maxPasswordBytes);
      client.pause(); // nothing more is read until the session starts (bounded memory while we wait)

      const applicationName = params.get('application_name');
      let result: AuthenticateResult;
      try {
        result = await options.gate.authenticate({
          user,
          database: params.get('database') || user,
          password,
          ...(applicationName === undefined ? {} : { applicationName: sanitizeText(applicationName, 64) }),
          remoteAddress: socket.remoteAddress ?? '',
          tls: hello.tls,
        });
      } catch (err) {
        log.error({ event: 'pg.gate.authenticate_error', err: String((err as Error)?.message ?? err) }, 'gate authenticate failed');
        const sqlstate = (err as { sqlstate?: unknown })?.sqlstate;
        throw new ProtocolError('authentication failed', typeof sqlstate === 'string' ? sqlstate : SqlState.InternalError);
      }
      if (!result.ok) {
        log.info({ event: 'pg.auth.refused', sqlstate: result.sqlstate, remote: socket.remoteAddress }, 'authentication refused');
        throw new ProtocolError(result.message, result.sqlstate, result.severity);
      }
      const gateSession = result.session;
      if (client.destroyed) {
        gateSession.close?.();
        return;
      }
      let upstream;
      try {
        upstream = await connectUpstream(gateSession.upstream, { ...forwarded, ...gateSession.upstream.parameters }, config.limits.upstreamTimeoutMs);
      } catch (err) {
        gateSession.close?.();
        if (err instanceof UpstreamError) {
          log.error({ event: 'pg.upstream.connect_failed', detail: err.detail }, err.message);
          throw new ProtocolError(err.message, err.sqlstate);
        }
        throw err;
      }
      if (client.destroyed) {
        upstream.socket.destroy();
        gateSession.close?.();
        return;
      }
      clearTimeout(timer);
      pending.delete(socket);
      const key = newKey();
      const secretKey = Buffer.alloc(4);
      secretKey.writeInt32BE(key.secretKey, 0);
      const session = new RelaySession(client, upstream, gateSession, config.limits, log, () => {
        sessions.delete(key.processId);
      });
      sessions.set(key.processId, { session, secretKey });
      client.write(
        Buffer.concat([
          encodeAuthentication(AuthCode.Ok),
          ...upstream.parameterStatus,
          encodeBackendKeyData(key.processId, key.secretKey),
          encodeReadyForQuery(upstream.status),
        ]),
      );
      session.start(reader.detach());
      log.info({ event: 'pg.session.start', remote: socket.remoteAddress, tls: hello.tls }, 'session started');
    } catch (err) {
      if (err instanceof ProtocolError) {
        if (!client.destroyed) client.end(encodeError(err.severity, err.sqlstate, err.message));
        setTimeout(() => client.destroy(), 1_000).unref();
        if (err.sqlstate === SqlState.ProtocolViolation) {
          log.warn({ event: 'pg.startup.protocol_error', reason: sanitizeText(err.message), remote: socket.remoteAddress }, 'start-up refused');
        }
      } else {
        if (!(err instanceof ConnectionClosedError)) {
          log.error({ event: 'pg.startup.error', err: String((err as Error)?.message ?? err) }, 'start-up failed');
          if (!client.destroyed) client.end(encodeError('FATAL', SqlState.InternalError, 'internal error'));
        }
        setTimeout(() => client.destroy(), 1_000).unref();
      }
    } finally {
      clearTimeout(timer);
      pending.delete(socket);
    }
  }

  return {
    listen() {
      if (server) throw new TypeError('already listening');
      const srv = createServer((socket) => {
        serve(socket).catch((err: unknown) => {
          log.error({ event: 'pg.serve.error', err: String(err) }, 'unexpected error');
          socket.destroy();
        });
      });
      srv.maxConnections = config.limits.maxConnections;
      server = srv;
      return new Promise((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(config.port, config.host, () => {
          srv.off('error', reject);
          srv.on('error', (err) => log.error({ event: 'pg.listener.error', err: err.message }, 'listener error'));
          resolve(srv.address() as AddressInfo);
        });
      });
    },
    async close() {
      const srv = server;
      server = undefined;
      for (const socket of pending) socket.destroy();
      for (const { session } of [...sessions.values()]) session.shutdown('57P01', 'terminating connection: proxy shutting down');
      if (srv) await new Promise<void>((resolve) => srv.close(() => resolve()));
    },
    get sessionCount() {
      return sessions.size;
    },
  };
}

function validate(o: PgProxyOptions): { host: string; port: number; allowInsecure: boolean; limits: PgProxyLimits } {
  if (!o || typeof o.gate?.authenticate !== 'function') throw new TypeError('options.gate.authenticate is required');
  const port = o.port ?? PG_PROXY_DEFAULTS.port;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError('options.port must be 0-65535');
  const limits = { ...PG_PROXY_DEFAULTS.limits, ...o.limits };
  for (const [k, v] of Object.entries(limits)) {
    if (!Number.isInteger(v) || v <= 0) throw new TypeError(`options.limits.${k} must be a positive integer`);
  }
  if (limits.maxStartupBytes < 8) throw new TypeError('options.limits.maxStartupBytes is too small');
  return Object.freeze({
    host: o.host ?? PG_PROXY_DEFAULTS.host,
    port,
    allowInsecure: o.allowInsecure ?? PG_PROXY_DEFAULTS.allowInsecure,
    limits: Object.freeze(limits),
  });
}
