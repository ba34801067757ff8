import type { UpstreamTarget } from './gate.ts';
import type { ProxyLogger } from './log.ts';
import { ProtocolError, SqlState, encodeTerminate } from './protocol.ts';
import { UpstreamError, type UpstreamConnection } from './upstream.ts';

/**
 * Upstream connections shared between client sessions (`proxy.pooling: transaction`), like
 * pgbouncer's transaction mode: a session holds a connection from the first message of a transaction
 * until the upstream is idle again (ReadyForQuery 'I' with nothing outstanding), then gives it back.
 *
 * One pool per upstream identity — host, port, login, database and start-up parameters — so a
 * connection never changes hands between logins (per-token roles get pools of their own). A session
 * gets back the connection it used last when that one is free (its prepared statements are there, and
 * no reset is needed); any other connection is reset by the relay before it is used (session.ts).
 *
 * What a pooled connection carries between owners, and what makes it unusable:
 * - `statements`: the upstream names of protocol-level statements prepared on it (the relay names
 *   them by a keyed hash of their text, so equal text from two sessions is one statement);
 * - `unnamed`: whose unnamed statement it holds, if any;
 * - `reusable = false` after anything the relay could not follow (a cancel in flight, a protocol
 *   doubt, a failed reset): it is closed on release instead of being handed on.
 */
export interface PooledConnection {
  readonly conn: UpstreamConnection;
  readonly poolKey: string;
  /** Upstream statement names prepared on this connection, least recently used first. */
  readonly statements: Map<string, true>;
  /** The session whose unnamed statement (which one: `entry`) this connection holds. */
  unnamed: { owner: object; entry: object } | undefined;
  /** The session that held it last (undefined: fresh from connect). */
  lastOwner: object | undefined;
  reusable: boolean;
  /** When it went idle (ms), for the idle timeout. */
  idleSince: number;
}

export interface UpstreamPoolOptions {
  /** Most connections per pool (upstream identity). */
  size: number;
  /** Longest wait for a free connection before the statement is refused (53300), ms. */
  acquireTimeoutMs: number;
  /** Idle connections are closed after this long, ms. */
  idleTimeoutMs: number;
  /** Opens and authenticates a connection (and checks its pinned settings). */
  connect: (target: UpstreamTarget, params: Readonly<Record<string, string>>) => Promise<UpstreamConnection>;
  log: ProxyLogger;
}

interface Waiter {
  owner: object;
  resolve: (c: PooledConnection) => void;
  reject: (err: unknown) => void;
  timer: NodeJS.Timeout;
}

interface Pool {
  readonly key: string;
  readonly target: UpstreamTarget;
  readonly params: Readonly<Record<string, string>>;
  /** Idle connections, most recently released last. */
  readonly idle: PooledConnection[];
  readonly waiters: Waiter[];
  /** Open connections (idle, in use, or connecting). */
  open: number;
}

/** What the pools hold right now (metrics, tests, the benchmark). */
export interface UpstreamPoolStats {
  pools: number;
  open: number;
  idle: number;
  waiting: number;
}

export class UpstreamPool {
  private readonly pools = new Map<string, Pool>();
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly options: UpstreamPoolOptions) {
    this.sweeper = setInterval(() => this.closeIdle(), Math.max(1_000, Math.min(options.idleTimeoutMs / 2, 30_000)));
    this.sweeper.unref();
  }

  /**
   * A connection to `target` for `owner`: its last one if free, else any free one, else a new one
   * (up to `size`), else the first to be released (FIFO), else a 53300 error after `acquireTimeoutMs`.
   */
  acquire(target: UpstreamTarget, params: Readonly<Record<string, string>>, owner: object): Promise<PooledConnection> {
    if (this.closed) return Promise.reject(new ProtocolError('the proxy is shutting down', SqlState.AdminShutdown));
    const pool = this.poolFor(target, params);
    const mine = pool.idle.findIndex((c) => c.lastOwner === owner);
    const idle = mine >= 0 ? pool.idle.splice(mine, 1)[0] : pool.idle.pop();
    if (idle) return Promise.resolve(this.takeIdle(idle));
    if (pool.open < this.options.size) return this.openFor(pool);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = pool.waiters.indexOf(waiter);
        if (i >= 0) pool.waiters.splice(i, 1);
        reject(
          new ProtocolError(
            `no upstream connection became free within ${this.options.acquireTimeoutMs} ms (proxy.pool.size = ${this.options.size}, proxy.pool.acquireTimeoutMs)`,
            SqlState.TooManyConnections,
            'ERROR',
          ),
        );
      }, this.options.acquireTimeoutMs);
      const waiter: Waiter = { owner, resolve, reject, timer };
      pool.waiters.push(waiter);
    });
  }

  /** Gives a connection back: to a waiting session, to the idle list, or closed when not reusable. */
  release(c: PooledConnection, owner: object): void {
    const pool = this.pools.get(c.poolKey);
    c.lastOwner = owner;
    const socket = c.conn.socket;
    // bytes already waiting on an idle connection: it is not in the state the pool assumes
    if (!pool || this.closed || !c.reusable || socket.destroyed || !socket.readable || socket.readableLength > 0) {
      this.discard(c, pool);
      return;
    }
    const waiter = pool.waiters.shift();
    if (waiter) {
      clearTimeout(waiter.timer);
      waiter.resolve(c);
      return;
    }
    c.idleSince = Date.now();
    this.watchIdle(c, pool);
    pool.idle.push(c);
  }

  stats(): UpstreamPoolStats {
    let open = 0;
    let idle = 0;
    let waiting = 0;
    for (const p of this.pools.values()) {
      open += p.open;
      idle += p.idle.length;
      waiting += p.waiters.length;
    }
    return { pools: this.pools.size, open, idle, waiting };
  }

  /** Closes every idle connection and refuses new acquisitions (connections in use close on release). */
  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const pool of this.pools.values()) {
      for (const w of pool.waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new ProtocolError('the proxy is shutting down', SqlState.AdminShutdown));
      }
      for (const c of pool.idle.splice(0)) this.discard(c, pool);
    }
  }

  private poolFor(target: UpstreamTarget, params: Readonly<Record<string, string>>): Pool {
    const key = poolKey(target, params);
    let pool = this.pools.get(key);
    if (!pool) {
      pool = { key, target, params, idle: [], waiters: [], open: 0 };
      this.pools.set(key, pool);
    }
    return pool;
  }

  private async openFor(pool: Pool): Promise<PooledConnection> {
    pool.open++;
    try {
      const conn = await this.options.connect(pool.target, pool.params);
      if (conn.rest.length > 0) {
        // bytes after the start-up's ReadyForQuery: not a connection in the state a borrower assumes
        conn.socket.destroy();
        throw new UpstreamError(SqlState.ConnectionFailure, 'upstream connection failed', 'upstream sent data after ReadyForQuery at start-up');
      }
      return { conn, poolKey: pool.key, statements: new Map(), unnamed: undefined, lastOwner: undefined, reusable: true, idleSince: 0 };
    } catch (err) {
      pool.open--;
      this.dropIfEmpty(pool);
      throw err;
    }
  }

  private takeIdle(c: PooledConnection): PooledConnection {
    const socket = c.conn.socket;
    socket.removeListener('data', onIdleData);
    socket.removeListener('close', onIdleClose);
    return c;
  }

  /**
   * An idle connection says nothing: anything it sends (a NOTICE, a FATAL from pg_terminate_backend)
   * means it is not what the pool thinks it is, so it is closed. A close removes it from the pool.
   */
  private watchIdle(c: PooledConnection, pool: Pool): void {
    const socket = c.conn.socket as PooledSocket;
    socket[IDLE_HANDLER] = () => {
      const i = pool.idle.indexOf(c);
      if (i >= 0) pool.idle.splice(i, 1);
      this.discard(c, pool);
    };
    socket.on('data', onIdleData);
    socket.on('close', onIdleClose);
    guardErrors(socket);
    socket.resume();
  }

  private discard(c: PooledConnection, pool: Pool | undefined): void {
    const socket = c.conn.socket as PooledSocket;
    guardErrors(socket);
    socket[IDLE_HANDLER] = noop; // once
    if (!socket.destroyed) {
      socket.end(encodeTerminate());
      setTimeout(() => socket.destroy(), 2_000).unref();
    }
    if (!pool) return;
    pool.open--;
    // a slot became free: a waiting session gets a new connection
    const waiter = pool.waiters.shift();
    if (waiter) {
      clearTimeout(waiter.timer);
      this.openFor(pool).then(waiter.resolve, waiter.reject);
      return;
    }
    this.dropIfEmpty(pool);
  }

  private dropIfEmpty(pool: Pool): void {
    if (pool.open === 0 && pool.waiters.length === 0) this.pools.delete(pool.key);
  }

  private closeIdle(): void {
    const before = Date.now() - this.options.idleTimeoutMs;
    for (const pool of [...this.pools.values()]) {
      const expired = pool.idle.filter((c) => c.idleSince <= before);
      if (expired.length === 0) continue;
      for (const c of expired) pool.idle.splice(pool.idle.indexOf(c), 1);
      for (const c of expired) this.discard(c, pool);
      this.options.log.info({ event: 'pg.pool.idle_closed', connections: expired.length }, 'idle upstream connections closed');
    }
  }
}

const IDLE_HANDLER = Symbol('baton.pool.idle');
type PooledSocket = UpstreamConnection['socket'] & { [IDLE_HANDLER]?: () => void };

function onIdleData(this: PooledSocket): void {
  this[IDLE_HANDLER]?.();
}
function onIdleClose(this: PooledSocket): void {
  this[IDLE_HANDLER]?.();
}
function ignoreError(): void {}
/** An error of a connection the pool holds surfaces as its close; never an uncaught 'error'. */
function guardErrors(socket: PooledSocket): void {
  if (!socket.listeners('error').includes(ignoreError)) socket.on('error', ignoreError);
}
function noop(): void {}

/** The identity a connection is shared within: where, as whom, and with which session parameters. */
function poolKey(target: UpstreamTarget, params: Readonly<Record<string, string>>): string {
  const sorted = Object.entries(params).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([target.host, target.port, target.user, target.database, target.password ?? null, target.ssl ? true : false, sorted]);
}
