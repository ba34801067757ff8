import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import type { PgPoolingOptions, PgProxy } from '../../../src/proxy/pg/server.ts';
import { PG, RawClient, createDatabase, directClient, dropDatabase, pgClient, run, serialize, startProxy, testGate } from './helpers.ts';

/**
 * Transaction pooling in the relay (`proxy.pooling: transaction`), against the real server: sessions
 * share few upstream connections, a connection changes hands only between transactions, a session's
 * protocol-level statements follow it to whichever connection it gets, and nothing of one session's
 * state reaches another (the DISCARD ALL reset is the second lock behind the gate's refusals, which
 * test/proxy/pg/pooling-baton.test.ts covers). The test gate allows everything but DELETE, so what
 * the reset removes can be created here on purpose.
 */

let db: string;
const proxies: PgProxy[] = [];
const clients: pg.Client[] = [];

const POOL: PgPoolingOptions = { size: 1, acquireTimeoutMs: 10_000, idleTimeoutMs: 60_000, maxStatementsPerConnection: 256, idleInTransactionTimeoutMs: 60_000 };

async function pooledProxy(pooling: Partial<PgPoolingOptions> = {}): Promise<{ proxy: PgProxy; port: number }> {
  const { gate } = testGate(db);
  const started = await startProxy({ gate, pooling: { ...POOL, ...pooling } });
  proxies.push(started.proxy);
  return started;
}

async function client(port: number): Promise<pg.Client> {
  const c = pgClient(port);
  c.on('error', () => {});
  await c.connect();
  clients.push(c);
  return c;
}

/** Upstream backends the proxy holds for this database (pooled connections name themselves). */
async function pooledBackends(): Promise<number> {
  const d = directClient(db);
  await d.connect();
  try {
    const r = await d.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'baton (pooled)'", [db]);
    return r.rows[0].n as number;
  } finally {
    await d.end();
  }
}

beforeAll(async () => {
  db = await createDatabase();
  const d = directClient(db);
  await d.connect();
  await d.query("CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) g");
  await d.end();
});

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => {});
  for (const p of proxies) await p.close();
  if (db) await dropDatabase(db);
});

describe('sharing', () => {
  it('30 sessions run interleaved transactions on 3 upstream connections', async () => {
    const { proxy, port } = await pooledProxy({ size: 3 });
    const sessions = await Promise.all(Array.from({ length: 30 }, () => client(port)));
    expect(await pooledBackends()).toBeLessThanOrEqual(3);
    const results = await Promise.all(
      sessions.map(async (c, i) => {
        const seen: number[] = [];
        for (let k = 0; k < 5; k++) {
          await c.query('BEGIN');
          const r = await c.query('SELECT name FROM items WHERE id = $1', [i + 1]);
          await c.query('SELECT pg_sleep(0.001)');
          await c.query('COMMIT');
          seen.push(r.rows.length);
        }
        return seen;
      }),
    );
    expect(results.flat().every((n) => n === 1)).toBe(true);
    const stats = proxy.upstreamStats()!;
    expect(stats.open).toBeLessThanOrEqual(3);
    expect(await pooledBackends()).toBeLessThanOrEqual(3);
  });

  it('a transaction keeps its connection: another session waits for the COMMIT, then gets it', async () => {
    const { port } = await pooledProxy({ size: 1 });
    const a = await client(port);
    const b = await client(port);
    await a.query('BEGIN');
    const pid = (await a.query('SELECT pg_backend_pid() AS p')).rows[0].p;
    let bDone = false;
    const bQuery = b.query('SELECT pg_backend_pid() AS p').then((r) => {
      bDone = true;
      return r.rows[0].p;
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(bDone).toBe(false); // still A's
    expect((await a.query('SELECT pg_backend_pid() AS p')).rows[0].p).toBe(pid);
    await a.query('COMMIT');
    expect(await bQuery).toBe(pid); // the one connection, handed on
  });

  it('a session idle inside a transaction past idleInTransactionTimeoutMs is ended (25P03), its transaction rolled back, the connection freed', async () => {
    const { port } = await pooledProxy({ size: 1, idleInTransactionTimeoutMs: 400 });
    const a = await client(port);
    const b = await client(port);
    const ended = new Promise<{ code?: string; message?: string }>((resolve) => a.once('error', resolve));
    await a.query('BEGIN');
    await a.query("INSERT INTO items VALUES (999, 'never committed')");
    const started = Date.now();
    // B waits for the one connection; A goes quiet and loses it
    expect((await b.query('SELECT count(*)::int AS n FROM items WHERE id = 999')).rows[0].n).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    expect(await ended).toMatchObject({ code: '25P03', message: expect.stringContaining('proxy.pool.idleInTransactionTimeoutMs = 400') });
  });

  it('no free connection within acquireTimeoutMs: the waiting client is told (53300) and disconnected; the pool goes on', async () => {
    const { port } = await pooledProxy({ size: 1, acquireTimeoutMs: 300 });
    const a = await client(port);
    const b = await client(port);
    await a.query('BEGIN');
    const err = await b.query('SELECT 1').catch((e: { code?: string; message?: string }) => e);
    expect(err).toMatchObject({ code: '53300' });
    expect(String((err as Error).message)).toContain('proxy.pool.size = 1');
    await a.query('COMMIT');
    const c = await client(port);
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
  });
});

describe('prepared statements follow the session', () => {
  it('named statements of two sessions with the same name and different text stay apart across connection changes', async () => {
    const { port } = await pooledProxy({ size: 1 });
    const a = await client(port);
    const b = await client(port);
    for (let k = 0; k < 4; k++) {
      const ra = await a.query({ name: 'q', text: 'SELECT $1::int * 10 AS v', values: [k] });
      const rb = await b.query({ name: 'q', text: "SELECT $1::text || '-b' AS v", values: [String(k)] });
      expect(ra.rows[0].v).toBe(k * 10);
      expect(rb.rows[0].v).toBe(`${k}-b`);
    }
  });

  it('keeps at most maxStatementsPerConnection upstream and prepares an evicted one again when used', async () => {
    const { port } = await pooledProxy({ size: 1, maxStatementsPerConnection: 3 });
    const a = await client(port);
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 6; i++) {
        const r = await a.query({ name: `s${i}`, text: `SELECT ${i} + $1::int AS v`, values: [round] });
        expect(r.rows[0].v).toBe(i + round);
      }
    }
    const count = await a.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'baton\\_%'");
    expect(count.rows[0].n).toBeLessThanOrEqual(3);
    // the client's own names never reach the upstream
    const names = await a.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name ~ '^s[0-9]$'");
    expect(names.rows[0].n).toBe(0);
  });

  it("an unnamed statement another session left on the connection is never bound: the client's Bind of one it did not parse fails 26000", async () => {
    const { port } = await pooledProxy({ size: 1 });
    const a = await RawClient.connect(port);
    const b = await RawClient.connect(port);
    // A parses an unnamed statement and ends the pipeline: the connection goes back to the pool
    a.send(serialize.parse({ text: "SELECT 'secret of a' AS v" }), serialize.sync());
    await a.untilReady();
    // B binds and runs "the unnamed statement" without ever parsing one
    b.send(serialize.bind({}), serialize.execute({}), serialize.sync());
    const msgs = await b.untilReady();
    expect(msgs.find((m) => m.name === 'error')).toMatchObject({ code: '26000' });
    expect(msgs.some((m) => m.name === 'dataRow')).toBe(false);
    // and A's own unnamed statement still runs for A, wherever it is now
    b.send(serialize.parse({ text: "SELECT 'b' AS v" }), serialize.sync());
    await b.untilReady();
    a.send(serialize.bind({}), serialize.execute({}), serialize.sync());
    const mine = await a.untilReady();
    expect(mine.find((m) => m.name === 'dataRow')?.fields?.map(String)).toEqual(['secret of a']);
    a.end();
    b.end();
  });

  it("Describe and Close of a statement the session never prepared do not reach another session's statement", async () => {
    const { port } = await pooledProxy({ size: 1 });
    const a = await RawClient.connect(port);
    const b = await RawClient.connect(port);
    a.send(serialize.parse({ name: 'x', text: 'SELECT 1 AS secret_column' }), serialize.sync());
    await a.untilReady();
    b.send(serialize.describe({ type: 'S', name: 'x' }), serialize.sync());
    const d = await b.untilReady();
    expect(d.find((m) => m.name === 'error')).toMatchObject({ code: '26000' });
    expect(d.some((m) => m.name === 'rowDescription')).toBe(false);
    b.send(serialize.close({ type: 'S', name: 'x' }), serialize.sync());
    expect((await b.untilReady()).map((m) => m.name)).toEqual(['closeComplete', 'readyForQuery']);
    a.send(serialize.bind({ statement: 'x' }), serialize.execute({}), serialize.sync());
    expect((await a.untilReady()).find((m) => m.name === 'dataRow')?.fields?.map(String)).toEqual(['1']);
    a.end();
    b.end();
  });

  it('a statement whose table was dropped meanwhile fails at the Bind the client sent (re-prepare error relayed), the session goes on', async () => {
    const { port } = await pooledProxy({ size: 1 });
    const d = directClient(db);
    await d.connect();
    await d.query('CREATE TABLE gone (v int); INSERT INTO gone VALUES (7)');
    const a = await client(port);
    const b = await client(port);
    expect((await a.query({ name: 'g', text: 'SELECT v FROM gone' })).rows[0].v).toBe(7);
    await b.query('SELECT 1'); // the connection goes to B and back: A's statement is prepared again
    await d.query('DROP TABLE gone');
    await d.end();
    const err = await a.query({ name: 'g', text: 'SELECT v FROM gone' }).catch((e: { code?: string }) => e);
    expect(err).toMatchObject({ code: '42P01' });
    expect((await a.query('SELECT 2 AS two')).rows[0].two).toBe(2);
  });
});

describe('nothing of one session reaches another (the reset)', () => {
  it('settings, temporary tables, advisory locks, WITH HOLD cursors and LISTEN are gone when the next session gets the connection', async () => {
    const { port } = await pooledProxy({ size: 1 });
    const a = await client(port);
    const b = await client(port);
    await a.query("SET work_mem = '7MB'");
    await a.query('CREATE TEMP TABLE a_private AS SELECT 42 AS v');
    await a.query('SELECT pg_advisory_lock(4242)');
    await a.query('BEGIN');
    await a.query('DECLARE held CURSOR WITH HOLD FOR SELECT 1');
    await a.query('COMMIT');
    await a.query('LISTEN a_channel');
    await a.query("SELECT setval(pg_get_serial_sequence('items', 'id'), 1) FROM (SELECT 1) s WHERE false");
    expect((await b.query('SHOW work_mem')).rows[0].work_mem).toBe('4MB');
    expect(await b.query('SELECT * FROM a_private').catch((e: { code?: string }) => e.code)).toBe('42P01');
    expect((await b.query("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")).rows[0].n).toBe(0);
    expect((await b.query('SELECT count(*)::int AS n FROM pg_cursors')).rows[0].n).toBe(0);
    expect((await b.query('SELECT count(*)::int AS n FROM pg_listening_channels()')).rows[0].n).toBe(0);
  });

  it('a session that gets its own connection back is not reset (its prepared statements stay prepared upstream)', async () => {
    const { port } = await pooledProxy({ size: 1 });
    const a = await client(port);
    await a.query({ name: 'p', text: 'SELECT 1 AS v' });
    const before = await a.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'baton\\_%'");
    await a.query({ name: 'p', text: 'SELECT 1 AS v' });
    const after = await a.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'baton\\_%'");
    expect(before.rows[0].n).toBe(1);
    expect(after.rows[0].n).toBe(1);
  });
});

describe('failures', () => {
  it('an idle pooled connection killed upstream is replaced; no session sees an error', async () => {
    const { proxy, port } = await pooledProxy({ size: 2 });
    const a = await client(port);
    await a.query('SELECT 1');
    const d = directClient(db);
    await d.connect();
    await d.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'baton (pooled)'", [db]);
    await d.end();
    await new Promise((r) => setTimeout(r, 200));
    expect((await a.query('SELECT 5 AS five')).rows[0].five).toBe(5);
    expect(proxy.upstreamStats()!.open).toBeLessThanOrEqual(2);
  });

  it('a cancelled statement is cancelled, and the connection that got the signal is not handed on', async () => {
    const { port } = await pooledProxy({ size: 1 });
    const a = await client(port);
    const pidBefore = (await a.query('SELECT pg_backend_pid() AS p')).rows[0].p;
    const slow = a.query('SELECT pg_sleep(30)').catch((e: { code?: string }) => e.code);
    await new Promise((r) => setTimeout(r, 300));
    // a CancelRequest with the BackendKeyData the proxy gave this client
    const { processID, secretKey } = a as unknown as { processID: number; secretKey: number };
    await new Promise<void>((resolve) => {
      const raw = connect({ host: '127.0.0.1', port }, () => raw.end(serialize.cancel(processID, secretKey)));
      raw.on('close', () => resolve());
      raw.on('error', () => resolve());
    });
    expect(await slow).toBe('57014');
    const pidAfter = (await a.query('SELECT pg_backend_pid() AS p')).rows[0].p;
    expect(pidAfter).not.toBe(pidBefore);
  });
});

describe('real clients', () => {
  // One thread per client (-j = -c): pgbench -M prepared prepares with synchronous calls, and a
  // thread blocked on one connection cannot finish the transaction another of its connections holds
  // open — with any transaction pooler smaller than the number of clients (pgbouncer too).
  it('pgbench (extended and prepared) with 8 clients on 2 upstream connections', async () => {
    const { proxy, port } = await pooledProxy({ size: 2 });
    const init = await run('pgbench', ['-i', '-s', '1', '-q', db], { PGHOST: PG.host, PGPORT: String(PG.port), PGUSER: PG.user }, 60_000);
    expect(init.code, init.stderr).toBe(0);
    for (const mode of ['extended', 'prepared']) {
      const r = await run('pgbench', ['-n', '-c', '8', '-j', '8', '-t', '50', '-M', mode, db], { PGHOST: '127.0.0.1', PGPORT: String(port), PGUSER: 'agent', PGPASSWORD: 'good', PGDATABASE: db }, 120_000);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('number of transactions actually processed: 400/400');
      expect(r.stdout).toContain('number of failed transactions: 0');
    }
    expect(proxy.upstreamStats()!.open).toBeLessThanOrEqual(2);
  });
});
