/**
 * DESIGN.md rule 6 with overlap: reads (and writes inside an explicit transaction block) run while
 * their audit entry is in flight, but nothing they do reaches the client — and no COMMIT reaches
 * the upstream — before the entry is durable. The audit store is stalled for real: a lock on the
 * audit table held by another session, then the writer's backends are terminated (the store
 * "stops answering" and then fails).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startTestStack, type TestStack } from '../../helpers/stack.ts';
import { RawClient, serialize } from './helpers.ts';

let stack: TestStack;
let reader: string;
let writer: string;

beforeAll(async () => {
  stack = await startTestStack('overlap');
  const parent = await stack.token('alice@example.com', ['engineers'], 'planner');
  reader = stack.attenuate(parent, { resources: ['pg:appdb/public.orders'], operations: ['read'], ttl: '10m', delegateTo: 'reader' });
  writer = stack.attenuate(parent, { resources: ['pg:appdb/public.orders'], operations: ['read', 'update', 'delete'], ttl: '10m', delegateTo: 'writer' });
});
afterAll(async () => stack?.stop());

/** Holds an exclusive lock on the audit table: every append waits behind it. */
async function stallAuditStore(): Promise<{ fail(): Promise<void>; release(): Promise<void> }> {
  const c = new pg.Client({ connectionString: stack.broker.testDb.url });
  await c.connect();
  await c.query('BEGIN');
  await c.query('LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE');
  return {
    /** The store fails: every backend waiting on the lock is terminated. */
    async fail() {
      const admin = new pg.Client({ connectionString: stack.broker.testDb.url });
      await admin.connect();
      await admin.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`,
      );
      await admin.end();
    },
    async release() {
      await c.query('ROLLBACK').catch(() => {});
      await c.end().catch(() => {});
    },
  };
}

const settled = <T>(p: Promise<T>) => {
  const s = { done: false, value: undefined as T | undefined, error: undefined as (Error & { code?: string }) | undefined };
  p.then(
    (v) => Object.assign(s, { done: true, value: v }),
    (e: Error & { code?: string }) => Object.assign(s, { done: true, error: e }),
  );
  return s;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Sends `run()` while the audit store is stalled, checks nothing came back, then fails the store
 * and waits for the query to settle.
 */
async function whileStoreFails<T>(run: () => Promise<T>, whileStalled: () => Promise<void> = async () => {}) {
  const store = await stallAuditStore();
  let q;
  try {
    q = settled(run());
    await sleep(300);
    expect(q.done).toBe(false);
    await whileStalled();
    await store.fail();
    // the writer retries a lost batch once on a fresh connection, which waits on the same lock until
    // its budget (5 s from the batch's start) ends: allow that plus a loaded machine's slack
    for (let i = 0; i < 240 && !q.done; i++) await sleep(50);
  } finally {
    await store.release();
  }
  return q;
}

describe('reads overlap their audit entry; their results wait for it', () => {
  it('a read runs at once but its rows are held until the entry is durable', async () => {
    const c = await stack.connect(reader);
    await c.query('SELECT 1 FROM orders LIMIT 1');
    const store = await stallAuditStore();
    try {
      const q = settled(c.query('SELECT id FROM orders ORDER BY id LIMIT 3'));
      await sleep(400);
      expect(q.done).toBe(false); // ran upstream, but not one row delivered
    } finally {
      await store.release();
    }
    await sleep(200);
    await c.end();
  });

  it('when the store fails mid-read the client gets 57P03 and no row, and the same session recovers', async () => {
    const c = await stack.connect(reader);
    const q = await whileStoreFails(() => c.query('SELECT id FROM orders ORDER BY id LIMIT 3'));
    expect(q.error?.code).toBe('57P03');
    expect(q.value).toBeUndefined();
    // the same session works again once the store answers
    let rows: number | undefined;
    for (let i = 0; i < 40 && rows === undefined; i++) {
      rows = await c.query('SELECT count(*)::int AS n FROM orders').then((r) => r.rows[0].n as number, () => undefined);
      if (rows === undefined) await sleep(250);
    }
    expect(rows).toBe(300);
    await c.end();
  });

  it('extended protocol: a failed entry drops the held rows, the client skips to Sync, the session goes on', async () => {
    const raw = await RawClient.connect(stack.proxy.port, reader, undefined, 'appdb');
    const store = await stallAuditStore();
    try {
      raw.send(
        serialize.parse({ text: 'SELECT id FROM orders WHERE id < $1 ORDER BY id' }),
        serialize.bind({ values: ['4'] }),
        serialize.execute({}),
        serialize.sync(),
      );
      await sleep(300);
      expect(raw.messages.filter((m) => m.name === 'dataRow')).toHaveLength(0);
      await store.fail();
      const msgs = await raw.untilReady();
      expect(msgs.filter((m) => m.name === 'dataRow')).toHaveLength(0);
      expect(msgs.filter((m) => m.name === 'error').map((m) => m.code)).toEqual(['57P03']);
    } finally {
      await store.release();
    }
    await sleep(300);
    raw.send(serialize.query('SELECT count(*) FROM orders'));
    const after = await raw.untilReady();
    expect(after.filter((m) => m.name === 'dataRow')).toHaveLength(1);
    raw.end();
  });
});

describe('writes', () => {
  it('an autocommit write while the audit store is down never reaches the upstream', async () => {
    const before = (await stack.direct('SELECT amount_cents FROM orders WHERE id = 7')).rows[0].amount_cents;
    const c = await stack.connect(writer);
    const q = await whileStoreFails(
      () => c.query('UPDATE orders SET amount_cents = amount_cents + 1000 WHERE id = 7'),
      // not forwarded yet: the row is unchanged and not even locked
      async () => expect((await stack.direct('SELECT amount_cents FROM orders WHERE id = 7 FOR UPDATE NOWAIT')).rows[0].amount_cents).toBe(before),
    );
    expect(q.error?.code).toBe('57P03');
    expect((await stack.direct('SELECT amount_cents FROM orders WHERE id = 7')).rows[0].amount_cents).toBe(before);
    await c.end();
  });

  it('mid-transaction failure of a write that returns rows: its rows are withheld, the COMMIT is refused, the data is unchanged', async () => {
    const amounts = async () => (await stack.direct('SELECT id, amount_cents FROM orders WHERE id IN (11, 12) ORDER BY id')).rows;
    const before = await amounts();
    const c = await stack.connect(writer);
    await c.query('BEGIN');
    await c.query('UPDATE orders SET amount_cents = 1 WHERE id = 11'); // in the block: overlapped
    const q = await whileStoreFails(() => c.query('UPDATE orders SET amount_cents = 2 WHERE id = 12 RETURNING id'));
    expect(q.error?.code).toBe('57P03');
    const commit = await c.query('COMMIT').then(
      (r) => r.command,
      (e: Error & { code?: string }) => e.code,
    );
    expect(commit).not.toBe('COMMIT');
    await c.query('ROLLBACK').catch(() => {});
    expect(await amounts()).toEqual(before);
    // nothing reported as committed: the session is usable and outside any block
    expect((await c.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(300);
    await c.end();
  });

  it('a block whose entries fail (its BEGIN included): the statements answer, the COMMIT is refused, nothing is committed', async () => {
    const before = (await stack.direct('SELECT amount_cents FROM orders WHERE id = 41')).rows[0].amount_cents;
    const c = await stack.connect(writer);
    const store = await stallAuditStore();
    let commit;
    try {
      // a tag and a row count reveal nothing before COMMIT: these answer at once
      await c.query('BEGIN');
      expect((await c.query('UPDATE orders SET amount_cents = amount_cents + 1 WHERE id = 41')).rowCount).toBe(1);
      commit = settled(c.query('COMMIT'));
      await sleep(300);
      expect(commit.done).toBe(false); // held until the block's entries settle
      await store.fail();
      // the store stays down until the writer gives up on every entry (its time budget)
      for (let i = 0; i < 300 && !commit.done; i++) await sleep(50);
    } finally {
      await store.release();
    }
    expect(commit.error?.code).toBe('57P03');
    await c.query('ROLLBACK').catch(() => {});
    expect((await stack.direct('SELECT amount_cents FROM orders WHERE id = 41')).rows[0].amount_cents).toBe(before);
    // and the session is usable again, in autocommit
    await c.query('UPDATE orders SET amount_cents = amount_cents WHERE id = 41');
    await c.end();
  });

  it('inside a block, writes run at once and COMMIT waits for their entries', async () => {
    const c = await stack.connect(writer);
    await c.query('BEGIN');
    await c.query('UPDATE orders SET amount_cents = amount_cents WHERE id = 21');
    const store = await stallAuditStore();
    let commit;
    try {
      const upd = settled(c.query('UPDATE orders SET amount_cents = 4242 WHERE id = 21'));
      commit = settled(c.query('COMMIT'));
      await sleep(400);
      expect(upd.done).toBe(true); // a row count: answered at once
      expect(commit.done).toBe(false);
      // the UPDATE already ran upstream (it holds the row lock) …
      const lock = await stack.direct('SELECT 1 FROM orders WHERE id = 21 FOR UPDATE NOWAIT').then(() => 'free', (e: { code?: string }) => e.code);
      expect(lock).toBe('55P03');
      // … but the COMMIT has not reached the upstream: the change is not visible
      expect((await stack.direct('SELECT amount_cents FROM orders WHERE id = 21')).rows[0].amount_cents).not.toBe(4242);
    } finally {
      await store.release();
    }
    for (let i = 0; i < 100 && !commit.done; i++) await sleep(50);
    expect(commit.value).toMatchObject({ command: 'COMMIT' });
    expect((await stack.direct('SELECT amount_cents FROM orders WHERE id = 21')).rows[0].amount_cents).toBe(4242);
    await c.end();
  });
});

describe('held results are bounded', () => {
  it('a 100 MB result held for its entry keeps proxy memory bounded (backpressure), then arrives whole', async () => {
    const raw = await RawClient.connect(stack.proxy.port, reader, undefined, 'appdb');
    // count bytes instead of parsing 100k messages
    raw.socket.removeAllListeners('data');
    let received = 0;
    let tail = Buffer.alloc(0);
    raw.socket.on('data', (d: Buffer) => {
      received += d.length;
      tail = Buffer.concat([tail, d]).subarray(-6);
    });
    const done = () => tail.equals(Buffer.from([0x5a, 0, 0, 0, 5, 0x49])); // ReadyForQuery 'I'
    const store = await stallAuditStore();
    let released = false;
    try {
      const before = process.memoryUsage().arrayBuffers;
      raw.send(serialize.query("SELECT repeat('x', 1000) FROM generate_series(1, 100000)"));
      let peak = 0;
      for (let i = 0; i < 15; i++) {
        await sleep(100);
        peak = Math.max(peak, process.memoryUsage().arrayBuffers - before);
      }
      expect(received).toBe(0);
      // the proxy held at most its limit (1 MiB) plus socket chunks, not the 100 MB result
      expect(peak).toBeLessThan(24 * 1024 * 1024);
      await store.release();
      released = true;
      for (let i = 0; i < 600 && !done(); i++) await sleep(50);
      expect(done()).toBe(true);
      expect(received).toBeGreaterThan(100_000 * 1000);
    } finally {
      if (!released) await store.release();
      raw.end();
    }
  });
});

describe('audit.ordering: strict', () => {
  it('keeps durable-before-forward for every statement: a write in a block does not reach the upstream while its entry waits', async () => {
    const strict = await startTestStack('strict', {}, { auditOrdering: 'strict' });
    try {
      const parent = await strict.token('alice@example.com', ['engineers'], 'planner');
      const tok = strict.attenuate(parent, { resources: ['pg:appdb/public.orders'], operations: ['read', 'update'], ttl: '5m', delegateTo: 'strict' });
      const c = await strict.connect(tok);
      await c.query('BEGIN');
      await c.query('SELECT 1 FROM orders LIMIT 1');
      const lock = new pg.Client({ connectionString: strict.broker.testDb.url });
      await lock.connect();
      await lock.query('BEGIN');
      await lock.query('LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE');
      try {
        // in a block: under the default ordering this UPDATE would run (and lock the row) at once
        const upd = settled(c.query('UPDATE orders SET amount_cents = amount_cents WHERE id = 31'));
        await sleep(400);
        expect(upd.done).toBe(false);
        const row = await strict.direct('SELECT 1 FROM orders WHERE id = 31 FOR UPDATE NOWAIT').then(() => 'free', (e: { code?: string }) => e.code);
        expect(row).toBe('free');
      } finally {
        await lock.query('ROLLBACK');
        await lock.end();
      }
      await c.query('ROLLBACK').catch(() => {});
      await c.end();
    } finally {
      await strict.stop();
    }
  });
});

