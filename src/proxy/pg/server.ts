import { createHmac, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { AuthenticateResult, SessionGate, UpstreamTarget } from './gate.ts';
import { silentLogger, type ProxyLogger } from './log.ts';
import {
  AuthCode,
  ProtocolError,
  SqlState,
  encodeAuthentication,
  encodeBackendKeyData,
  encodeError,
  encodeNegotiateProtocolVersion,
  encodeParameterStatus,
  encodeReadyForQuery,
  parseParameterStatus,
  sameSetting,
  sanitizeText,
} from './protocol.ts';
import { RelaySession, type PooledLink } from './session.ts';
import {
  ConnectionClosedError,
  SocketReader,
  isLoopback,
  mustRefuseCleartext,
  readHello,
  readPassword,
  upstreamParameters,
} from './startup.ts';
import { UpstreamError, connectUpstream, type UpstreamConnection } from './upstream.ts';
import { UpstreamPool, type PooledConnection, type UpstreamPoolStats } from './upstream-pool.ts';

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
  /**
   * From TCP accept to authenticated (including the upstream's start-up): a socket that sends a few
   * bytes and stops (slowloris) is ended with FATAL 08P01 at this deadline.
   */
  startupTimeoutMs: number;
  /** Upstream connect + start-up. */
  upstreamTimeoutMs: number;
  /** Concurrent client connections (authenticating or not); more are dropped by the listener. */
  maxConnections: number;
  /** Connections still in start-up; beyond it a new socket is refused at once (53300). */
  maxStartingConnections: number;
  /** Open connections (in start-up or in session) per client IP address (53300 beyond). */
  maxConnectionsPerAddress: number;
  /**
   * Sessions per `GateSession.limitKey` (Baton: the lineage's authority token id, so every attenuated
   * child of one exchange shares it); checked before the upstream is connected (53300 beyond).
   */
  maxSessionsPerToken: number;
  /** A session with no traffic in either direction for this long ends with FATAL 57P05; 0 = never. */
  idleSessionTimeoutMs: number;
  /** Largest SQL text of a Query or Parse; larger ones are refused with 54000 (the session continues). */
  maxStatementBytes: number;
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
    startupTimeoutMs: 10_000,
    upstreamTimeoutMs: 10_000,
    maxConnections: 1_000,
    maxStartingConnections: 64,
    maxConnectionsPerAddress: 50,
    maxSessionsPerToken: 20,
    idleSessionTimeoutMs: 30 * 60_000,
    maxStatementBytes: 1024 * 1024,
  } satisfies PgProxyLimits),
});

/**
 * `proxy.pooling: transaction`: client sessions share upstream connections between transactions
 * (upstream-pool.ts); statements that leave session state are refused by the gate.
 */
export interface PgPoolingOptions {
  /** Most upstream connections per upstream identity. */
  size: number;
  /** Longest wait for a free connection, ms (then the client is told and disconnected, 53300). */
  acquireTimeoutMs: number;
  /** Idle upstream connections are closed after this long, ms. */
  idleTimeoutMs: number;
  /** Protocol-level statements kept prepared per upstream connection (least recently used closed beyond). */
  maxStatementsPerConnection: number;
  /** A session quiet this long inside a transaction is ended (25P03), freeing its connection; 0 = never. */
  idleInTransactionTimeoutMs: number;
}

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
  /** Transaction pooling; absent = each session holds its own upstream connection. */
  pooling?: PgPoolingOptions;
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
  /** Upstream connections of the pool (transaction pooling only). */
  upstreamStats(): UpstreamPoolStats | undefined;
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
  /** Open connections per client address (start-up and session). */
  const perAddress = new Map<string, number>();
  /** Sessions (reserved before the upstream is connected) per gate limit key. */
  const perToken = new Map<string, number>();
  const limits = config.limits;
  let server: Server | undefined;
  const pooling = options.pooling;
  const pool = pooling
    ? new UpstreamPool({ ...pooling, connect: (target, params) => connectChecked(target, params, limits.upstreamTimeoutMs), log })
    : undefined;
  /** Keys the upstream names of pooled statements: a client cannot guess (and pre-empt) another's. */
  const statementKey = randomBytes(32);

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

  /** Admission at accept: refuses at once (53300) when a start-up or per-address cap is reached. */
  function admit(socket: Socket): string | undefined {
    socket.on('error', () => {}); // reported through the reader; never an uncaught 'error'
    const address = clientAddress(socket.remoteAddress);
    let refusal: string | undefined;
    if (pending.size >= limits.maxStartingConnections) {
      refusal = `too many connections in start-up (limit proxy.limits.maxStartingConnections = ${limits.maxStartingConnections})`;
    } else if ((perAddress.get(address) ?? 0) >= limits.maxConnectionsPerAddress) {
      refusal = `too many connections from this client address (limit proxy.limits.maxConnectionsPerAddress = ${limits.maxConnectionsPerAddress})`;
    }
    if (refusal) {
      log.warn({ event: 'pg.connection.refused', reason: refusal, remote: socket.remoteAddress }, 'connection refused');
      refuse(socket, encodeError('FATAL', SqlState.TooManyConnections, refusal));
      return undefined;
    }
    perAddress.set(address, (perAddress.get(address) ?? 0) + 1);
    socket.once('close', () => {
      const n = (perAddress.get(address) ?? 1) - 1;
      if (n > 0) perAddress.set(address, n);
      else perAddress.delete(address);
    });
    return address;
  }

  /** Reserves a session slot for `key`; returns its release (idempotent) or undefined when full. */
  function reserve(key: string | undefined): (() => void) | undefined {
    if (key === undefined) return () => {};
    const n = perToken.get(key) ?? 0;
    if (n >= limits.maxSessionsPerToken) return undefined;
    perToken.set(key, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (perToken.get(key) ?? 1) - 1;
      if (left > 0) perToken.set(key, left);
      else perToken.delete(key);
    };
  }

  async function serve(socket: Socket): Promise<void> {
    if (admit(socket) === undefined) return;
    pending.add(socket);
    socket.setNoDelay(true);
    let reader = new SocketReader(socket);
    let client: Socket = socket;
    let expired = false;
    let release: (() => void) | undefined;
    // The start-up deadline: from accept to authenticated, whatever the socket is waiting for.
    const timer = setTimeout(() => {
      expired = true;
      log.info({ event: 'pg.startup.timeout', remote: socket.remoteAddress }, 'start-up deadline passed');
      const message = `start-up not completed within ${limits.startupTimeoutMs} ms (limit proxy.limits.startupTimeoutMs)`;
      refuse(client, encodeError('FATAL', SqlState.ProtocolViolation, message));
      if (client !== socket) socket.destroy();
    }, limits.startupTimeoutMs);
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
      if (expired || client.destroyed) {
        gateSession.close?.();
        return;
      }
      // Per-token cap, before an upstream connection is spent on the session.
      release = reserve(gateSession.limitKey);
      if (!release) {
        gateSession.close?.();
        log.warn({ event: 'pg.auth.token_cap', remote: socket.remoteAddress }, 'per-token session cap reached');
        throw new ProtocolError(
          `too many sessions for this token (limit proxy.limits.maxSessionsPerToken = ${limits.maxSessionsPerToken})`,
          SqlState.TooManyConnections,
        );
      }
      const expected = pinnedExpectations(gateSession.upstream);
      let upstream: UpstreamConnection | PooledConnection;
      let link: PooledLink | undefined;
      try {
        if (pool) {
          const target = gateSession.upstream;
          const params = { ...pooledParameters(forwarded), ...target.parameters };
          const self: PooledLink = {
            acquire: () => pool.acquire(target, params, self),
            release: (c) => pool.release(c, self),
            statementName: (body) => `baton_${createHmac('sha256', statementKey).update(body).digest('base64url').slice(0, 24)}`,
            maxStatementsPerConnection: pooling!.maxStatementsPerConnection,
            idleInTransactionMs: pooling!.idleInTransactionTimeoutMs,
          };
          link = self;
          upstream = await link.acquire();
        } else {
          upstream = await connectChecked(gateSession.upstream, { ...forwarded, ...gateSession.upstream.parameters }, limits.upstreamTimeoutMs);
        }
      } catch (err) {
        gateSession.close?.();
        if (err instanceof UpstreamError) {
          log.error({ event: 'pg.upstream.connect_failed', detail: err.detail }, err.message);
          throw new ProtocolError(err.message, err.sqlstate);
        }
        if (err instanceof ProtocolError) throw new ProtocolError(err.message, err.sqlstate); // FATAL at start-up
        throw err;
      }
      const conn = 'conn' in upstream ? upstream.conn : upstream;
      if (expired || client.destroyed) {
        if (link) link.release(upstream as PooledConnection);
        else conn.socket.destroy();
        gateSession.close?.();
        return;
      }
      clearTimeout(timer);
      pending.delete(socket);
      const key = newKey();
      const secretKey = Buffer.alloc(4);
      secretKey.writeInt32BE(key.secretKey, 0);
      const releaseSlot = release;
      release = undefined; // owned by the session from here
      const session = new RelaySession(
        client,
        upstream,
        gateSession,
        { ...limits, watchedSettings: expected.inSession },
        log,
        () => {
          sessions.delete(key.processId);
          releaseSlot();
        },
        link,
      );
      sessions.set(key.processId, { session, secretKey });
      client.write(
        Buffer.concat([
          encodeAuthentication(AuthCode.Ok),
          ...(link ? withApplicationName(conn.parameterStatus, applicationName) : conn.parameterStatus),
          encodeBackendKeyData(key.processId, key.secretKey),
          encodeReadyForQuery(conn.status),
        ]),
      );
      session.start(reader.detach());
      gateSession.attach?.({ end: (sqlstate, message) => session.shutdown(sqlstate, message) });
      log.info({ event: 'pg.session.start', remote: socket.remoteAddress, tls: hello.tls }, 'session started');
    } catch (err) {
      if (err instanceof ProtocolError) {
        if (!client.destroyed && !expired) client.end(encodeError(err.severity, err.sqlstate, err.message));
        setTimeout(() => client.destroy(), 1_000).unref();
        if (err.sqlstate === SqlState.ProtocolViolation) {
          log.warn({ event: 'pg.startup.protocol_error', reason: sanitizeText(err.message), remote: socket.remoteAddress }, 'start-up refused');
        }
      } else {
        if (!(err instanceof ConnectionClosedError)) {
          log.error({ event: 'pg.startup.error', err: String((err as Error)?.message ?? err) }, 'start-up failed');
          if (!client.destroyed && !expired) client.end(encodeError('FATAL', SqlState.InternalError, 'internal error'));
        }
        setTimeout(() => client.destroy(), 1_000).unref();
      }
    } finally {
      clearTimeout(timer);
      pending.delete(socket);
      release?.();
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
      pending.clear();
      for (const { session } of [...sessions.values()]) session.shutdown('57P01', 'terminating connection: proxy shutting down');
      pool?.close();
      if (srv) await new Promise<void>((resolve) => srv.close(() => resolve()));
    },
    get sessionCount() {
      return sessions.size;
    },
    upstreamStats() {
      return pool?.stats();
    },
  };
}

/**
 * Connects upstream and checks that it reports the settings the classifier relies on, as pinned
 * (a mismatch is refused: UpstreamError 55000).
 */
async function connectChecked(target: UpstreamTarget, params: Readonly<Record<string, string>>, timeoutMs: number): Promise<UpstreamConnection> {
  const upstream = await connectUpstream(target, params, timeoutMs);
  const drift = startupDrift(upstream.parameterStatus, pinnedExpectations(target).atStartup);
  if (drift) {
    upstream.socket.destroy();
    throw new UpstreamError(
      SqlState.ObjectNotInPrerequisiteState,
      `upstream session setting ${drift.name} is ${sanitizeText(drift.value, 64)}, the proxy requires ${drift.expected}; refusing the session`,
      `setting drift: ${drift.name}`,
    );
  }
  return upstream;
}

/**
 * Start-up parameters of a pooled connection: the client's, except application_name, which differs
 * from client to client and would split the pools (the audit has each session's own); upstream a
 * pooled connection calls itself `baton (pooled)`.
 */
function pooledParameters(forwarded: Readonly<Record<string, string>>): Record<string, string> {
  return { ...forwarded, application_name: POOLED_APPLICATION_NAME };
}
const POOLED_APPLICATION_NAME = 'baton (pooled)';

/** The upstream's ParameterStatus messages with application_name as this client set it. */
function withApplicationName(messages: readonly Buffer[], applicationName: string | undefined): Buffer[] {
  return messages.map((m) => (parseParameterStatus(m, 0, m.length).name === 'application_name' ? encodeParameterStatus('application_name', applicationName ?? '') : m));
}

/** Refuses a connection: the error, then close (data the client sends meanwhile is discarded). */
function refuse(socket: Socket, error: Buffer): void {
  if (socket.destroyed) return;
  socket.removeAllListeners('data');
  socket.on('data', () => {});
  socket.resume();
  socket.end(error, () => socket.destroy());
  setTimeout(() => socket.destroy(), 1_000).unref();
}

/** The address a per-address cap counts by (IPv4-mapped IPv6 as IPv4). */
function clientAddress(address: string | undefined): string {
  if (!address) return '?';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/**
 * Settings the SQL classifier relies on, with the values the upstream must report: checked in the
 * start-up ParameterStatus messages, and watched for the whole session (a change ends it).
 * standard_conforming_strings decides what a backslash in '…' means (hence where literals end);
 * client_encoding how the server decodes the bytes the classifier read as UTF-8. search_path is
 * checked at start-up when the server reports it (PostgreSQL 18 does, 15 does not) but not watched:
 * the gate follows `SET search_path` itself and widens name resolution accordingly.
 */
const WATCHED_SETTINGS: Readonly<Record<string, string>> = Object.freeze({ standard_conforming_strings: 'on', client_encoding: 'UTF8' });

function pinnedExpectations(target: UpstreamTarget): { atStartup: Map<string, string>; inSession: Map<string, string> } {
  const pinned = target.parameters ?? {};
  const inSession = new Map<string, string>();
  for (const [name, value] of Object.entries(WATCHED_SETTINGS)) inSession.set(name, pinned[name] ?? value);
  const atStartup = new Map(inSession);
  if (pinned['search_path'] !== undefined) atStartup.set('search_path', pinned['search_path']);
  return { atStartup, inSession };
}

/** The first watched setting whose reported value differs (a required one must be reported). */
function startupDrift(messages: readonly Buffer[], expected: ReadonlyMap<string, string>): { name: string; value: string; expected: string } | undefined {
  const reported = new Map<string, string>();
  for (const m of messages) {
    const { name, value } = parseParameterStatus(m, 0, m.length);
    reported.set(name, value);
  }
  for (const [name, want] of expected) {
    const got = reported.get(name);
    if (got === undefined) {
      if (name in WATCHED_SETTINGS) return { name, value: '(not reported)', expected: want };
      continue;
    }
    if (!sameSetting(name, got, want)) return { name, value: got, expected: want };
  }
  return undefined;
}

function validate(o: PgProxyOptions): { host: string; port: number; allowInsecure: boolean; limits: PgProxyLimits } {
  if (!o || typeof o.gate?.authenticate !== 'function') throw new TypeError('options.gate.authenticate is required');
  const port = o.port ?? PG_PROXY_DEFAULTS.port;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError('options.port must be 0-65535');
  const limits = { ...PG_PROXY_DEFAULTS.limits, ...o.limits };
  for (const [k, v] of Object.entries(limits)) {
    const zeroOk = k === 'idleSessionTimeoutMs';
    if (!Number.isInteger(v) || v < 0 || (v === 0 && !zeroOk)) throw new TypeError(`options.limits.${k} must be a ${zeroOk ? 'non-negative' : 'positive'} integer`);
  }
  if (limits.maxStartupBytes < 8) throw new TypeError('options.limits.maxStartupBytes is too small');
  return Object.freeze({
    host: o.host ?? PG_PROXY_DEFAULTS.host,
    port,
    allowInsecure: o.allowInsecure ?? PG_PROXY_DEFAULTS.allowInsecure,
    limits: Object.freeze(limits),
  });
}
