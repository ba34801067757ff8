/**
 * One client must not stall the others: start-up caps and deadline, per-address and per-token
 * session caps, idle sessions, oversized statements — each refusal a Postgres error naming its
 * limit. And the settings the classifier relies on never drift: a change reported by the upstream
 * (ParameterStatus) ends the session; a drifted default at start-up refuses it.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgProxyLimits } from '../../../src/proxy/pg/server.ts';
import { RawClient, createDatabase, directClient, dropDatabase, fromAddress, pgClient, serialize, startProxy, testGate } from './helpers.ts';

let db: string;
const proxies: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  db = await createDatabase();
});

afterAll(async () => {
  for (const p of proxies) await p.close();
  if (db) await dropDatabase(db);
});

async function proxyWith(limits: Partial<PgProxyLimits>, gateOpts: Parameters<typeof testGate>[2] = {}, overrides: Parameters<typeof testGate>[1] = {}) {
  const { gate } = testGate(db, overrides, gateOpts);
  const { proxy, port } = await startProxy({ gate, limits });
  proxies.push(proxy);
  return { proxy, port };
}

/** Opens a socket from `localAddress`, sends `bytes`, and collects what the server answers. */
function rawSocket(port: number, bytes: Buffer, localAddress = '127.0.0.1'): Promise<{ socket: Socket; data: () => Buffer; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let closed = false;
    const s = connect({ host: '127.0.0.1', port, localAddress });
    s.on('data', (d) => chunks.push(d));
    s.on('close', () => (closed = true));
    s.on('error', () => undefined);
    s.once('connect', () => {
      s.write(bytes);
      resolve({ socket: s, data: () => Buffer.concat(chunks), closed: () => closed });
    });
    s.once('error', reject);
  });
}

/** The fields of the first ErrorResponse in `data`. */
function firstError(data: Buffer): { code?: string; message?: string; severity?: string } | undefined {
  let i = 0;
  while (i + 5 <= data.length) {
    const len = data.readInt32BE(i + 1);
    if (data[i] === 0x45) {
      const f: Record<string, string> = {};
      let j = i + 5;
      while (data[j] !== 0 && j < i + 1 + len) {
        const nul = data.indexOf(0, j + 1);
        f[String.fromCharCode(data[j]!)] = data.toString('utf8', j + 1, nul);
        j = nul + 1;
      }
      return { code: f['C'], message: f['M'], severity: f['S'] };
    }
    i += 1 + len;
  }
  return undefined;
}

const until = async (cond: () => boolean, ms: number): Promise<boolean> => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return cond();
};

/** The first 4 bytes of a StartupMessage (its length), then silence: a slowloris socket. */
const FOUR_BYTES = serialize.startup({ user: 'agent', database: 'x' }).subarray(0, 4);

describe('start-up', () => {
  it('1,000 sockets that send 4 bytes and stop do not keep a legitimate client out', async () => {
    const { port } = await proxyWith({});
    const sockets: Array<Awaited<ReturnType<typeof rawSocket>>> = [];
    try {
      for (let batch = 0; batch < 10; batch++) {
        sockets.push(...(await Promise.all(Array.from({ length: 100 }, () => rawSocket(port, FOUR_BYTES)))));
      }
      // The attacker's address got its 50; the rest were refused at once with 53300.
      expect(await until(() => sockets.filter((s) => s.closed()).length >= 950, 10_000)).toBe(true);
      const refused = sockets.find((s) => s.closed())!;
      expect(firstError(refused.data())).toMatchObject({ code: '53300', severity: 'FATAL', message: expect.stringContaining('proxy.limits.maxConnectionsPerAddress = 50') });
      // A client from another address connects and queries while those 50 still hang.
      const started = Date.now();
      const c = pgClient(port, 'good', { stream: fromAddress('127.0.0.2') });
      await c.connect();
      expect((await c.query('SELECT 41 + 1 AS x')).rows[0].x).toBe(42);
      await c.end();
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(sockets.filter((s) => !s.closed()).length).toBe(50);
    } finally {
      for (const s of sockets) s.socket.destroy();
    }
  }, 30_000);

  it('refuses sockets beyond the start-up cap at once, naming the limit', async () => {
    const { port } = await proxyWith({ maxStartingConnections: 4, maxConnectionsPerAddress: 2 });
    const held = await Promise.all(['127.0.0.11', '127.0.0.11', '127.0.0.12', '127.0.0.12'].map((a) => rawSocket(port, FOUR_BYTES, a)));
    try {
      await new Promise((r) => setTimeout(r, 100));
      const extra = await rawSocket(port, FOUR_BYTES, '127.0.0.13');
      expect(await until(extra.closed, 2_000)).toBe(true);
      expect(firstError(extra.data())).toMatchObject({ code: '53300', message: expect.stringContaining('proxy.limits.maxStartingConnections = 4') });
      expect(held.every((s) => !s.closed())).toBe(true);
    } finally {
      for (const s of held) s.socket.destroy();
    }
    // Once they are gone, connecting works again.
    await new Promise((r) => setTimeout(r, 100));
    const c = await RawClient.connect(port, 'good', '127.0.0.13');
    c.end();
  });

  it('ends a connection that has not authenticated by the start-up deadline (08P01)', async () => {
    const { port } = await proxyWith({ startupTimeoutMs: 400 });
    const started = Date.now();
    const slow = await rawSocket(port, FOUR_BYTES);
    // …and one that stalls after its StartupMessage (waiting for the password).
    const stalled = await rawSocket(port, serialize.startup({ user: 'agent', database: 'x' }));
    expect(await until(() => slow.closed() && stalled.closed(), 3_000)).toBe(true);
    expect(Date.now() - started).toBeLessThan(2_000);
    for (const s of [slow, stalled]) {
      expect(firstError(s.data())).toMatchObject({ code: '08P01', severity: 'FATAL', message: expect.stringContaining('proxy.limits.startupTimeoutMs') });
    }
  });
});

describe('session caps', () => {
  it('refuses session N+1 of one token with 53300 while another token still connects; a closed session frees its slot', async () => {
    const { port } = await proxyWith({ maxSessionsPerToken: 3 }, { limitKeys: true });
    const open = await Promise.all([1, 2, 3].map(() => RawClient.connect(port, 'good')));
    const err = (await RawClient.connect(port, 'good').catch((e: unknown) => e)) as { code?: string; message?: string };
    expect(err.code).toBe('53300');
    expect(err.message).toMatch(/too many sessions for this token \(limit proxy\.limits\.maxSessionsPerToken = 3\)/);
    const other = await RawClient.connect(port, 'async');
    other.send(serialize.query('SELECT 1'));
    expect((await other.untilReady()).some((m) => m.name === 'dataRow')).toBe(true);
    open[0]!.end();
    expect(await open[0]!.closedWithin()).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    const again = await RawClient.connect(port, 'good');
    for (const c of [again, other, ...open.slice(1)]) c.end();
  });

  it('caps connections per client address (53300) without affecting other addresses', async () => {
    const { port } = await proxyWith({ maxConnectionsPerAddress: 2 });
    const a = await Promise.all([RawClient.connect(port, 'good', '127.0.0.21'), RawClient.connect(port, 'good', '127.0.0.21')]);
    const err = (await RawClient.connect(port, 'good', '127.0.0.21').catch((e: unknown) => e)) as { code?: string; message?: string };
    expect(err).toMatchObject({ code: '53300', message: expect.stringContaining('proxy.limits.maxConnectionsPerAddress = 2') });
    const b = await RawClient.connect(port, 'good', '127.0.0.22');
    for (const c of [...a, b]) c.end();
  });

  it('ends an idle session with 57P05 naming the limit, but not one waiting for its query', async () => {
    const { port } = await proxyWith({ idleSessionTimeoutMs: 300 });
    const c = await RawClient.connect(port);
    c.send(serialize.query('SELECT pg_sleep(0.7)'));
    const rows = await c.untilReady();
    expect(rows.some((m) => m.name === 'error')).toBe(false);
    expect(await c.closedWithin(3_000)).toBe(true);
    expect(c.messages.find((m) => m.name === 'error')).toMatchObject({ code: '57P05', severity: 'FATAL', message: expect.stringContaining('proxy.limits.idleSessionTimeoutMs = 300') });
  });
});

describe('statement size', () => {
  it('refuses a statement over maxStatementBytes with 54000 before classifying it; the session continues', async () => {
    const { gate, log } = testGate(db);
    const { proxy, port } = await startProxy({ gate, limits: { maxStatementBytes: 4096 } });
    proxies.push(proxy);
    const c = pgClient(port);
    await c.connect();
    const big = `SELECT 1 WHERE ${Array.from({ length: 600 }, () => '1=1').join(' AND ')}`;
    const checksBefore = log.checks.length;
    await expect(c.query(big)).rejects.toMatchObject({ code: '54000', message: expect.stringContaining('proxy.limits.maxStatementBytes = 4096') });
    await expect(c.query({ text: `${big} AND $1::int = 1`, values: [1] })).rejects.toMatchObject({ code: '54000' });
    expect(log.checks.length).toBe(checksBefore); // the gate never saw them
    expect((await c.query('SELECT 1 AS x')).rows[0].x).toBe(1);
    // inside a transaction: aborted exactly as Postgres would
    await c.query('BEGIN');
    await expect(c.query(big)).rejects.toMatchObject({ code: '54000' });
    await expect(c.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' });
    await c.query('ROLLBACK');
    await c.end();
  });
});

describe('pinned settings the classifier relies on', () => {
  const sessionEnds = async (sql: string, setting: string) => {
    const { port } = await proxyWith({}, { allowAll: true });
    const c = pgClient(port);
    c.on('error', () => {});
    await c.connect();
    const err = (await c.query(sql).catch((e: unknown) => e)) as { code?: string; message?: string; severity?: string };
    expect(err).toMatchObject({ code: '55000', severity: 'FATAL', message: expect.stringContaining(`upstream setting ${setting} changed`) });
    await expect(c.query('SELECT 1')).rejects.toThrow();
  };

  it('ends the session when the upstream reports standard_conforming_strings changed (a call the classifier missed)', async () => {
    await sessionEnds("SELECT set_config('standard_conforming_strings', 'off', false)", 'standard_conforming_strings');
  });

  it('ends the session when client_encoding changes', async () => {
    await sessionEnds("SET client_encoding TO 'LATIN1'", 'client_encoding');
  });

  it('a SET to the pinned value itself is fine', async () => {
    const { port } = await proxyWith({}, { allowAll: true });
    const c = pgClient(port);
    await c.connect();
    await c.query("SET client_encoding TO 'UTF8'; SET standard_conforming_strings = on");
    expect((await c.query('SELECT 1 AS x')).rows[0].x).toBe(1);
    await c.end();
  });

  it('refuses a session whose upstream starts with a drifted default (ALTER DATABASE … SET) the proxy did not override', async () => {
    const scratch = await createDatabase();
    try {
      const admin = directClient('test');
      await admin.connect();
      await admin.query(`ALTER DATABASE ${scratch} SET standard_conforming_strings = off`);
      await admin.end();
      const { gate } = testGate(scratch); // pins nothing: the database default would apply
      const { proxy, port } = await startProxy({ gate });
      proxies.push(proxy);
      const c = pgClient(port);
      c.on('error', () => {});
      const err = (await c.connect().catch((e: unknown) => e)) as { code?: string; message?: string };
      expect(err).toMatchObject({ code: '55000', message: expect.stringContaining('standard_conforming_strings is off') });
      // pinning it at start-up (as Baton's upstreams do) overrides the default: accepted
      const pinned = testGate(scratch, { parameters: { standard_conforming_strings: 'on' } });
      const p2 = await startProxy({ gate: pinned.gate });
      proxies.push(p2.proxy);
      const ok = pgClient(p2.port);
      await ok.connect();
      expect((await ok.query('SHOW standard_conforming_strings')).rows[0].standard_conforming_strings).toBe('on');
      await ok.end();
    } finally {
      await dropDatabase(scratch);
    }
  });
});

