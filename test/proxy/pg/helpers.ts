import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Socket, connect } from 'node:net';
import pg from 'pg';
import { parse, serialize } from 'pg-protocol';
import type { CheckResult, GateSession, SessionGate, StatementOutcome, UpstreamTarget } from '../../../src/proxy/pg/gate.ts';
import { createPgProxy, type PgProxy, type PgProxyOptions } from '../../../src/proxy/pg/server.ts';

/** The test Postgres: DATABASE_URL (set by CI or test/global-setup.ts) or the local server. */
export const PG: { host: string; port: number; user: string; password?: string } = (() => {
  const url = new URL(process.env['DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test');
  const password = decodeURIComponent(url.password);
  return {
    host: url.hostname,
    port: Number(url.port || 5432),
    user: decodeURIComponent(url.username || 'postgres'),
    ...(password ? { password } : {}),
  };
})();

/** A direct (not proxied) client of database `database`. */
export function directClient(database: string): pg.Client {
  return new pg.Client({ ...PG, database });
}

/** Creates a private database `baton_t_pgproxy_<random>`; returns its name. */
export async function createDatabase(): Promise<string> {
  const name = `baton_t_pgproxy_${randomBytes(5).toString('hex')}`;
  const c = directClient('test');
  await c.connect();
  try {
    await c.query(`CREATE DATABASE ${name}`);
  } finally {
    await c.end();
  }
  return name;
}

export async function dropDatabase(name: string): Promise<void> {
  const c = directClient('test');
  await c.connect();
  try {
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await c.end();
  }
}

export interface TestGateLog {
  checks: Array<{ sql: string; phase: string }>;
  outcomes: StatementOutcome[];
  authenticated: Array<{ user: string; database: string; tls: boolean }>;
  closed: number;
}

/**
 * Token "good" → allow everything except SQL containing DELETE (42501 "denied by test gate");
 * "revoked" → allow, but a statement containing `revoke_me` is a fatal denial; "async" → like
 * "good" with asynchronous decisions; anything else → 28P01.
 */
export function testGate(
  database: string,
  overrides: Partial<UpstreamTarget> = {},
  opts: { limitKeys?: boolean; allowAll?: boolean } = {},
): { gate: SessionGate; log: TestGateLog } {
  const log: TestGateLog = { checks: [], outcomes: [], authenticated: [], closed: 0 };
  const upstream: UpstreamTarget = { ...PG, database, ...overrides };
  const decide = (sql: string, token: string): CheckResult => {
    if (token === 'revoked' && sql.includes('revoke_me')) {
      return { allow: false, sqlstate: '28P01', message: 'token revoked', fatal: true };
    }
    if (!opts.allowAll && /DELETE/i.test(sql)) return { allow: false, sqlstate: '42501', message: 'denied by test gate' };
    return { allow: true, ticket: sql };
  };
  const gate: SessionGate = {
    async authenticate(req) {
      if (!['good', 'async', 'revoked'].includes(req.password)) {
        return { ok: false, sqlstate: '28P01', message: 'token rejected by test gate' };
      }
      log.authenticated.push({ user: req.user, database: req.database, tls: req.tls });
      const token = req.password;
      const session: GateSession = {
        upstream,
        ...(opts.limitKeys ? { limitKey: token } : {}),
        check(sql, phase) {
          log.checks.push({ sql, phase });
          const r = decide(sql, token);
          return token === 'async' ? new Promise((res) => setTimeout(() => res(r), 1)) : r;
        },
        outcome(_ticket, outcome) {
          log.outcomes.push(outcome);
        },
        close() {
          log.closed++;
        },
      };
      return { ok: true, session };
    },
  };
  return { gate, log };
}

/** Starts a proxy on a free loopback port. */
export async function startProxy(options: PgProxyOptions): Promise<{ proxy: PgProxy; port: number }> {
  const proxy = createPgProxy({ port: 0, ...options });
  const { port } = await proxy.listen();
  return { proxy, port };
}

/** A node-postgres client through the proxy. */
export function pgClient(port: number, password = 'good', extra: pg.ClientConfig = {}): pg.Client {
  return new pg.Client({ host: '127.0.0.1', port, user: 'agent', database: 'whatever', password, ...extra });
}

/** A socket factory for node-postgres that connects from `localAddress` (e.g. 127.0.0.2). */
export function fromAddress(localAddress: string): () => Socket {
  return () => {
    const s = new Socket();
    const plain = s.connect.bind(s) as (o: { port: number; host: string; localAddress: string }) => Socket;
    (s as unknown as { connect: (port: number, host: string) => Socket }).connect = (port, host) => plain({ port, host, localAddress });
    return s;
  };
}

/** A throw-away self-signed certificate (openssl CLI), PEM. */
export async function selfSignedCert(): Promise<{ cert: Buffer; key: Buffer }> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-pgproxy-tls-'));
  try {
    const gen = await run('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=localhost', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ]);
    if (gen.code !== 0) throw new Error(`openssl failed: ${gen.stderr}`);
    return { cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs a command; resolves with exit code and output (never rejects). */
export function run(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 30_000,
  stdin?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { env: { ...process.env, ...env }, timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    child.stdin?.end(stdin ?? '');
  });
}

/** A backend message as parsed by pg-protocol (only the fields tests look at). */
export interface BackendMsg {
  name: string;
  code?: string;
  message?: string;
  severity?: string;
  status?: string;
  text?: string;
  processID?: number;
  secretKey?: number;
  fields?: unknown[];
}

/**
 * A protocol-level client: start-up + password, then raw message batches. Lets tests pipeline
 * exactly the bytes they mean to send.
 */
export class RawClient {
  readonly messages: BackendMsg[] = [];
  closed = false;
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: Socket) {
    void parse(socket, (msg) => {
      this.messages.push(msg as unknown as BackendMsg);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  static async connect(port: number, password = 'good', localAddress?: string, database = 'whatever'): Promise<RawClient> {
    const socket = connect({ host: '127.0.0.1', port, ...(localAddress ? { localAddress } : {}) });
    await new Promise<void>((res, rej) => socket.once('connect', res).once('error', rej));
    const c = new RawClient(socket);
    socket.write(serialize.startup({ user: 'agent', database }));
    await c.waitFor((m) => m.name === 'authenticationCleartextPassword' || m.name === 'error');
    socket.write(serialize.password(password));
    await c.waitFor((m) => m.name === 'readyForQuery' || m.name === 'error');
    const failed = c.messages.find((m) => m.name === 'error');
    if (failed) {
      socket.destroy();
      throw Object.assign(new Error(failed.message), { code: failed.code });
    }
    c.messages.length = 0;
    return c;
  }

  send(...bufs: Buffer[]): void {
    this.socket.write(Buffer.concat(bufs));
  }

  /** Waits until `count` messages match (or the socket closes); returns all messages so far. */
  async waitFor(pred: (m: BackendMsg) => boolean, count = 1, timeoutMs = 10_000): Promise<BackendMsg[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.filter(pred).length < count) {
      if (this.closed) break;
      if (Date.now() > deadline) throw new Error(`timeout; got ${this.messages.map((m) => m.name).join(',')}`);
      await new Promise<void>((res) => {
        this.waiters.push(res);
        setTimeout(res, 50);
      });
    }
    return this.messages;
  }

  /** Waits for `n` ReadyForQuery, returns the messages and clears them. */
  async untilReady(n = 1): Promise<BackendMsg[]> {
    await this.waitFor((m) => m.name === 'readyForQuery', n);
    return this.messages.splice(0);
  }

  /** Resolves true once the server closed the connection, false after `timeoutMs`. */
  async closedWithin(timeoutMs = 5_000): Promise<boolean> {
    await this.waitFor(() => false, 1, timeoutMs).catch(() => undefined);
    return this.closed;
  }

  end(): void {
    this.socket.end(serialize.end());
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

export { serialize };
