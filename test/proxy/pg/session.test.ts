import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgProxy } from '../../../src/proxy/pg/server.ts';
import {
  RawClient,
  createDatabase,
  directClient,
  dropDatabase,
  pgClient,
  serialize,
  startProxy,
  testGate,
  type BackendMsg,
  type TestGateLog,
} from './helpers.ts';

let db: string;
let proxy: PgProxy;
let port: number;
let gateLog: TestGateLog;

beforeAll(async () => {
  db = await createDatabase();
  const direct = directClient(db);
  await direct.connect();
  await direct.query('CREATE TABLE items (id int PRIMARY KEY, name text)');
  await direct.query(`INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 10) g`);
  await direct.end();
  const { gate, log } = testGate(db);
  gateLog = log;
  ({ proxy, port } = await startProxy({ gate }));
});

afterAll(async () => {
  await proxy?.close();
  if (db) await dropDatabase(db);
});

const names = (ms: BackendMsg[]): string[] => ms.map((m) => m.name);

describe('node-pg through the proxy', () => {
  it('runs simple, parameterized and named prepared statements', async () => {
    const c = pgClient(port);
    await c.connect();
    try {
      expect((await c.query('SELECT count(*)::int AS n FROM items')).rows).toEqual([{ n: 10 }]);
      expect((await c.query('SELECT name FROM items WHERE id = $1', [3])).rows).toEqual([{ name: 'item 3' }]);
      const byId = { name: 'by_id', text: 'SELECT name FROM items WHERE id = $1' };
      expect((await c.query({ ...byId, values: [4] })).rows).toEqual([{ name: 'item 4' }]);
      expect((await c.query({ ...byId, values: [5] })).rows).toEqual([{ name: 'item 5' }]);
      // multi-statement simple query
      await c.query('CREATE TEMP TABLE t (x int); INSERT INTO t VALUES (1), (2)');
      expect((await c.query('SELECT sum(x)::int AS s FROM t')).rows).toEqual([{ s: 3 }]);
    } finally {
      await c.end();
    }
  });

  it('rejects a bad token with 28P01 and the gate message', async () => {
    const c = pgClient(port, 'bad');
    await expect(c.connect()).rejects.toMatchObject({ code: '28P01', message: 'token rejected by test gate' });
  });

  it('denies with 42501 and keeps the session usable', async () => {
    const c = pgClient(port);
    await c.connect();
    try {
      await expect(c.query('DELETE FROM items')).rejects.toMatchObject({ code: '42501', message: 'denied by test gate', severity: 'ERROR' });
      expect((await c.query('SELECT count(*)::int AS n FROM items')).rows).toEqual([{ n: 10 }]);
      // parameterized (unnamed Parse) denial
      await expect(c.query('DELETE FROM items WHERE id = $1', [1])).rejects.toMatchObject({ code: '42501' });
      expect((await c.query('SELECT $1::int AS v', [7])).rows).toEqual([{ v: 7 }]);
    } finally {
      await c.end();
    }
  });

  it('a denial inside BEGIN aborts the transaction exactly as Postgres would', async () => {
    const c = pgClient(port);
    await c.connect();
    try {
      await c.query('BEGIN');
      await c.query(`INSERT INTO items VALUES (100, 'tx')`);
      await expect(c.query('DELETE FROM items')).rejects.toMatchObject({ code: '42501' });
      await expect(c.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' });
      // COMMIT of an aborted transaction rolls back
      const commit = await c.query('COMMIT');
      expect(commit.command).toBe('ROLLBACK');
      expect((await c.query('SELECT count(*)::int AS n FROM items WHERE id = 100')).rows).toEqual([{ n: 0 }]);
      await c.query('BEGIN');
      await expect(c.query('DELETE FROM items WHERE id = $1', [1])).rejects.toMatchObject({ code: '42501' });
      await expect(c.query('SELECT $1::int', [1])).rejects.toMatchObject({ code: '25P02' });
      await c.query('ROLLBACK');
      expect((await c.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
    } finally {
      await c.end();
    }
  });

  it('denies a named prepared DELETE, and denies its Execute after the fact', async () => {
    const c = pgClient(port);
    await c.connect();
    try {
      await expect(c.query({ name: 'del', text: 'DELETE FROM items WHERE id = $1', values: [1] })).rejects.toMatchObject({
        code: '42501',
        message: 'denied by test gate',
      });
      expect((await c.query('SELECT count(*)::int AS n FROM items')).rows).toEqual([{ n: 10 }]);
    } finally {
      await c.end();
    }
  });

  it('gates Parse and every Execute, and reports outcomes', async () => {
    const c = pgClient(port);
    await c.connect();
    try {
      gateLog.checks.length = 0;
      gateLog.outcomes.length = 0;
      const q = { name: 'cnt', text: 'SELECT count(*) FROM items WHERE id < $1' };
      await c.query({ ...q, values: [3] });
      await c.query({ ...q, values: [4] });
      expect(gateLog.checks).toEqual([
        { sql: q.text, phase: 'parse' },
        { sql: q.text, phase: 'execute' },
        { sql: q.text, phase: 'execute' },
      ]);
      expect(gateLog.outcomes).toEqual([
        { status: 'ok' },
        { status: 'ok', tag: 'SELECT 1', rows: 1 },
        { status: 'ok', tag: 'SELECT 1', rows: 1 },
      ]);
      gateLog.outcomes.length = 0;
      await expect(c.query('SELECT 1/0')).rejects.toMatchObject({ code: '22012' });
      expect(gateLog.outcomes).toEqual([{ status: 'error', sqlstate: '22012' }]);
    } finally {
      await c.end();
    }
  });

  it('works with an asynchronous gate', async () => {
    const c = pgClient(port, 'async');
    await c.connect();
    try {
      const results = await Promise.all([
        c.query('SELECT 1 AS a'),
        c.query('SELECT $1::int AS b', [2]),
        c.query('DELETE FROM items').catch((e: { code: string }) => e.code),
        c.query({ name: 'p', text: 'SELECT $1::text AS c', values: ['x'] }),
      ]);
      expect((results[0] as pg.QueryResult).rows).toEqual([{ a: 1 }]);
      expect((results[1] as pg.QueryResult).rows).toEqual([{ b: 2 }]);
      expect(results[2]).toBe('42501');
      expect((results[3] as pg.QueryResult).rows).toEqual([{ c: 'x' }]);
    } finally {
      await c.end();
    }
  });

  it('cancels a running query through the proxy key', async () => {
    const c = pgClient(port);
    await c.connect();
    try {
      const started = Date.now();
      const sleeping = c.query('SELECT pg_sleep(5)');
      await new Promise((r) => setTimeout(r, 300));
      // node-pg's cancel: a new connection sending CancelRequest with the key the proxy handed out
      const canceller = pgClient(port);
      await (canceller as unknown as { cancel(c: pg.Client, q: unknown): Promise<void> }).cancel(
        c,
        (c as unknown as { activeQuery: unknown }).activeQuery,
      );
      await expect(sleeping).rejects.toMatchObject({ code: '57014' });
      expect(Date.now() - started).toBeLessThan(4000);
      expect((await c.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    } finally {
      await c.end();
    }
  });

  it('hands out its own BackendKeyData, not the upstream one', async () => {
    const raw = await RawClient.connect(port);
    try {
      raw.send(serialize.query('SELECT pg_backend_pid()::text AS pid'));
      const ms = await raw.untilReady();
      const upstreamPid = Number((ms.find((m) => m.name === 'dataRow') as { fields: string[] }).fields[0]);
      expect(upstreamPid).toBeGreaterThan(0);
      // the key seen at start-up is not the upstream pid (random 31-bit; collision is negligible)
      const c = pgClient(port);
      await c.connect();
      const key = (c as unknown as { processID: number }).processID;
      const pid = (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p;
      expect(key).not.toBe(pid);
      await c.end();
    } finally {
      raw.end();
    }
  });
});

describe('protocol-level behaviour', () => {
  it('keeps order in a pipelined extended batch with a denial in the middle', async () => {
    const raw = await RawClient.connect(port);
    try {
      raw.send(
        serialize.parse({ name: 's1', text: 'SELECT $1::int AS v', types: [] }),
        serialize.bind({ statement: 's1', values: ['1'] }),
        serialize.describe({ type: 'P' }),
        serialize.execute({}),
        serialize.sync(),
        serialize.parse({ name: 's2', text: 'DELETE FROM items WHERE id = $1' }),
        serialize.bind({ statement: 's2', values: ['1'] }),
        serialize.execute({}),
        serialize.sync(),
        serialize.bind({ statement: 's1', values: ['3'] }),
        serialize.execute({}),
        serialize.sync(),
        serialize.query('SELECT 4 AS v; SELECT 5 AS v'),
      );
      const ms = await raw.untilReady(4);
      expect(names(ms)).toEqual([
        'parseComplete',
        'bindComplete',
        'rowDescription',
        'dataRow',
        'commandComplete',
        'readyForQuery',
        'error',
        'readyForQuery',
        'bindComplete',
        'dataRow',
        'commandComplete',
        'readyForQuery',
        'rowDescription',
        'dataRow',
        'commandComplete',
        'rowDescription',
        'dataRow',
        'commandComplete',
        'readyForQuery',
      ]);
      const err = ms.find((m) => m.name === 'error')!;
      expect(err).toMatchObject({ code: '42501', message: 'denied by test gate', severity: 'ERROR' });
      expect(ms.filter((m) => m.name === 'dataRow').map((m) => (m.fields as string[])[0])).toEqual(['1', '3', '4', '5']);
    } finally {
      raw.end();
    }
  });

  it('skips to Sync after a genuine error, dropping markers it skipped', async () => {
    const raw = await RawClient.connect(port);
    try {
      raw.send(
        serialize.parse({ text: 'SELECT 1 / (random() * 0)::int' }), // fails at run time, not at plan time
        serialize.bind({}),
        serialize.execute({}),
        serialize.parse({ text: 'DELETE FROM items' }), // denied, but skipped by the upstream
        serialize.bind({}),
        serialize.execute({}),
        serialize.sync(),
        serialize.query('SELECT 1'),
      );
      const ms = await raw.untilReady(2);
      expect(names(ms)).toEqual(['parseComplete', 'bindComplete', 'error', 'readyForQuery', 'rowDescription', 'dataRow', 'commandComplete', 'readyForQuery']);
      expect(ms[2]).toMatchObject({ code: '22012' });
    } finally {
      raw.end();
    }
  });

  it('denies Execute when the gate changes its mind after Parse', async () => {
    const raw = await RawClient.connect(port, 'revoked');
    try {
      raw.send(
        serialize.parse({ name: 'ok', text: 'SELECT 1 AS x' }),
        serialize.bind({ statement: 'ok' }),
        serialize.execute({}),
        serialize.sync(),
      );
      expect(names(await raw.untilReady())).toEqual(['parseComplete', 'bindComplete', 'dataRow', 'commandComplete', 'readyForQuery']);
      // fatal denial (e.g. revoked token): responses before it are delivered, then FATAL, then close
      raw.send(serialize.query('SELECT 2'), serialize.query("SELECT 'revoke_me'"), serialize.query('SELECT 3'));
      expect(await raw.closedWithin()).toBe(true);
      const ms = raw.messages;
      expect(names(ms)).toEqual(['rowDescription', 'dataRow', 'commandComplete', 'readyForQuery', 'error']);
      expect(ms[4]).toMatchObject({ code: '28P01', severity: 'FATAL', message: 'token revoked' });
    } finally {
      raw.socket.destroy();
    }
  });

  it('denies Execute of a portal it did not see bound (SQL cursor by name)', async () => {
    const raw = await RawClient.connect(port);
    try {
      raw.send(serialize.query('BEGIN; DECLARE cur CURSOR FOR SELECT id FROM items'));
      await raw.untilReady();
      raw.send(serialize.execute({ portal: 'cur' }), serialize.sync());
      const ms = await raw.untilReady();
      expect(names(ms)).toEqual(['error', 'readyForQuery']);
      expect(ms[0]).toMatchObject({ code: '42501', message: 'unknown portal' });
      expect(ms[1]).toMatchObject({ status: 'E' });
      raw.send(serialize.query('ROLLBACK'));
      expect((await raw.untilReady()).at(-1)).toMatchObject({ status: 'I' });
    } finally {
      raw.end();
    }
  });

  it('refuses FunctionCall (fail closed) and stays usable', async () => {
    const raw = await RawClient.connect(port);
    try {
      // FunctionCall 'F': oid 1 (any), 0 arg formats, 0 args, result format 0
      const body = Buffer.from([0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
      const msg = Buffer.concat([Buffer.from('F'), Buffer.from([0, 0, 0, body.length + 4]), body]);
      raw.send(msg);
      const ms = await raw.untilReady();
      expect(names(ms)).toEqual(['error', 'readyForQuery']);
      expect(ms[0]).toMatchObject({ code: '42501', message: 'function call messages are not allowed' });
      raw.send(serialize.query('SELECT 1'));
      expect(names(await raw.untilReady())).toContain('dataRow');
    } finally {
      raw.end();
    }
  });

  it('closes the upstream when the client disconnects mid-query', async () => {
    const c = pgClient(port);
    c.on('error', () => undefined); // we cut its socket on purpose
    await c.connect();
    const appName = `baton_disconnect_${Date.now()}`;
    await c.query(`SET application_name = '${appName}'`);
    c.query('SELECT pg_sleep(10)').catch(() => undefined);
    await new Promise((r) => setTimeout(r, 200));
    (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    const direct = directClient(db);
    await direct.connect();
    try {
      let n = 1;
      for (let i = 0; i < 50 && n > 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        n = (await direct.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [appName])).rows[0].n;
      }
      expect(n).toBe(0);
    } finally {
      await direct.end();
    }
    // the proxy still serves
    const d = pgClient(port);
    await d.connect();
    expect((await d.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    await d.end();
  });

  it('forwards whitelisted start-up parameters only', async () => {
    const c = pgClient(port, 'good', {
      application_name: 'baton-test-app',
      options: '-c search_path=evil -c statement_timeout=1',
    } as pg.ClientConfig);
    await c.connect();
    try {
      const r = await c.query(`SELECT current_setting('application_name') AS app, current_setting('search_path') AS sp, current_setting('statement_timeout') AS st, current_user AS u`);
      expect(r.rows[0]).toEqual({ app: 'baton-test-app', sp: '"$user", public', st: '0', u: 'postgres' });
    } finally {
      await c.end();
    }
  });

  it('refuses a replication start-up', async () => {
    const repl = pgClient(port, 'good', { replication: 'database' } as pg.ClientConfig);
    await expect(repl.connect()).rejects.toMatchObject({ code: '0A000', message: 'replication connections are not supported by the proxy' });
  });

  it('relays COPY in both directions', async () => {
    const raw = await RawClient.connect(port);
    try {
      raw.send(serialize.query('CREATE TEMP TABLE c (x int)'));
      await raw.untilReady();
      raw.send(serialize.query('COPY c FROM STDIN'));
      await raw.waitFor((m) => m.name === 'copyInResponse');
      raw.send(serialize.copyData(Buffer.from('1\n2\n3\n')), serialize.copyDone());
      const ms = await raw.untilReady();
      expect(ms.find((m) => m.name === 'commandComplete')).toMatchObject({ text: 'COPY 3' });
      raw.send(serialize.query('COPY c TO STDOUT'));
      const out = await raw.untilReady();
      expect(names(out)).toEqual(['copyOutResponse', 'copyData', 'copyData', 'copyData', 'copyDone', 'commandComplete', 'readyForQuery']);
    } finally {
      raw.end();
    }
  });
});
