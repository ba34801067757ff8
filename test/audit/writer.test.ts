import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEventSchema } from '../../src/audit/event.ts';
import { chainHash } from '../../src/audit/hash.ts';
import { queryAudit } from '../../src/audit/query.ts';
import { verifyAuditChain } from '../../src/audit/verify.ts';
import { type AuditWriter, createAuditWriter } from '../../src/audit/writer.ts';
import { BASE_URL, type TestDatabase, createTestDatabase } from './db.ts';
import { statementEvent } from './fixtures.ts';
import { startForwarder } from './forwarder.ts';

const LOCK_CLASS = 0x61756469; // the writer's advisory-lock namespace; key 1 = event chain

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase('writer');
});
afterAll(async () => {
  await db?.drop();
});

async function rejection(p: Promise<unknown>): Promise<{ code?: string; message: string; detail?: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code?: string; message: string; detail?: string };
  }
  throw new Error('expected a rejection');
}

/** Holds the event chain's advisory lock from another session: a store that does not answer. */
async function holdChainLock(): Promise<{ release(): Promise<void> }> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  await client.query('SELECT pg_advisory_lock($1, 1)', [LOCK_CLASS]);
  return {
    async release() {
      await client.query('SELECT pg_advisory_unlock($1, 1)', [LOCK_CLASS]);
      await client.end();
    },
  };
}

describe('createAuditWriter', () => {
  it('rejects invalid options with a TypeError', () => {
    expect(() => createAuditWriter(db.pool, { maxQueue: 0 })).toThrow(TypeError);
    expect(() => createAuditWriter(db.pool, { bogus: 1 } as never)).toThrow(TypeError);
  });

  it('append resolves only once the row is committed: another session sees it, lineage intact', async () => {
    const writer = createAuditWriter(db.pool);
    try {
      const input = statementEvent({ time: '2026-03-01T10:00:00.123456+02:00', durationMs: 0.125 });
      const receipt = await writer.append(input);
      expect(receipt).toMatchObject({ id: expect.any(String), seq: expect.any(Number), hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
      expect(receipt.time).toBe('2026-03-01T08:00:00.123Z');

      const other = db.newPool();
      const { rows } = await other.query('SELECT id, hash, lineage FROM audit_events WHERE id = $1', [receipt.id]);
      expect(rows).toEqual([{ id: receipt.id, hash: receipt.hash, lineage: input.lineage }]);

      const { events } = await queryAudit(db.pool, { tokenId: input.tokenId!, limit: 1 });
      const { time: _t, ...rest } = input;
      expect(events[0]).toEqual({ ...rest, seq: receipt.seq, id: receipt.id, time: receipt.time, prevHash: expect.any(String), hash: receipt.hash });
      expect(auditEventSchema.safeParse(events[0]).success).toBe(true);
    } finally {
      await writer.close();
    }
  });

  it('PostgreSQL chains what JS verifies: the stored hash is chainHash of the event read back (non-ASCII too)', async () => {
    const writer = createAuditWriter(db.pool);
    try {
      const lineage = statementEvent().lineage;
      const input = statementEvent({ tokenId: 'tok_utf8', reason: 'naïve 🎉 résumé', durationMs: 1e-7, lineage: [lineage[0]!, { ...lineage[1]!, purpose: 'Zusammenfassung ✓' }] });
      const receipt = await writer.append(input);
      const { events } = await queryAudit(db.pool, { tokenId: 'tok_utf8' });
      expect(events[0]!.reason).toBe(input.reason);
      expect(chainHash(events[0]!)).toBe(receipt.hash);
    } finally {
      await writer.close();
    }
  });

  it('the append commits with synchronous_commit = on whatever the session default; refuses snapshots older than its lock and fields it would not store', async () => {
    const c = await db.pool.connect();
    const content = (extra = '') => `{"action":"x","decision":"allow","id":"${crypto.randomUUID()}","lineage":[],"source":"broker","time":"2026-01-01T00:00:00.000Z"${extra}}`;
    try {
      await c.query('BEGIN');
      await c.query('SET LOCAL synchronous_commit = off');
      await c.query('SELECT * FROM audit_append(1, $1::text[], 1000)', [[content()]]);
      expect((await c.query('SHOW synchronous_commit')).rows[0].synchronous_commit).toBe('on');
      await c.query('ROLLBACK');
      // outcomes gate nothing: their commit does not wait for the flush
      await c.query('BEGIN');
      await c.query('SELECT * FROM audit_append(2, $1::text[], 1000)', [[`{"eventId":"${crypto.randomUUID()}","id":"${crypto.randomUUID()}","outcome":{},"time":"2026-01-01T00:00:00.000Z"}`]]);
      expect((await c.query('SHOW synchronous_commit')).rows[0].synchronous_commit).toBe('off');
      await c.query('ROLLBACK');

      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await expect(c.query('SELECT * FROM audit_append(1, $1::text[], 1000)', [[content()]])).rejects.toMatchObject({ code: '25000' });
      await c.query('ROLLBACK');

      await expect(c.query('SELECT * FROM audit_append(1, $1::text[], 1000)', [[content(',"rowData":[1]')]])).rejects.toMatchObject({
        code: '22023',
        message: expect.stringContaining('rowData'),
      });
      await expect(c.query('SELECT * FROM audit_append(2, $1::text[], 1000)', [[content()]])).rejects.toMatchObject({ code: '22023' });
    } finally {
      c.release();
    }
  });

  it('group-commits 500 concurrent appends: all committed in few transactions, chain verifies', async () => {
    const writer = createAuditWriter(db.pool);
    try {
      const before = writer.health().events;
      const started = performance.now();
      const receipts = await Promise.all(
        Array.from({ length: 500 }, (_, i) => writer.append(statementEvent({ fingerprint: `fp${i}`, decision: i % 7 ? 'allow' : 'deny' }))),
      );
      const ms = performance.now() - started;
      const after = writer.health().events;
      console.log(`[audit] 500 concurrent appends in ${ms.toFixed(0)} ms (${Math.round(500 / (ms / 1000))} events/s), ${after.batches - before.batches} transactions`);

      expect(new Set(receipts.map((r) => r.seq)).size).toBe(500);
      expect(after.committed - before.committed).toBe(500);
      expect(after.batches - before.batches).toBeLessThanOrEqual(10);
      const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM audit_events WHERE id = ANY($1::uuid[])', [receipts.map((r) => r.id)]);
      expect(rows[0].n).toBe(500);
      expect(await verifyAuditChain(db.pool)).toMatchObject({ ok: true });
    } finally {
      await writer.close();
    }
  });

  it('keeps one valid chain with two writers on separate pools (two processes) appending at once', async () => {
    const a = createAuditWriter(db.newPool());
    const b = createAuditWriter(db.newPool());
    try {
      const all = await Promise.all(
        Array.from({ length: 300 }, (_, i) => (i % 2 ? a : b).append(statementEvent({ fingerprint: `w${i}` }))),
      );
      expect(new Set(all.map((r) => r.seq)).size).toBe(300);
      expect(await verifyAuditChain(db.pool)).toMatchObject({ ok: true });
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('records the outcome as its own chained row, attached to the event in queries', async () => {
    const writer = createAuditWriter(db.pool);
    try {
      const receipt = await writer.append(statementEvent({ tokenId: 'tok_outcome' }));
      const out = await writer.recordOutcome(receipt, { rowCount: 42, tag: 'SELECT', durationMs: 3.25 });
      expect(out).toMatchObject({ eventId: receipt.id, seq: expect.any(Number) });
      expect(out.seq).toBeGreaterThan(receipt.seq);
      const { events } = await queryAudit(db.pool, { tokenId: 'tok_outcome' });
      expect(events[0]!.outcome).toBeUndefined();
      expect(events[0]!.recordedOutcome).toMatchObject({ eventId: receipt.id, outcome: { rowCount: 42, tag: 'SELECT' }, durationMs: 3.25 });
      const v = await verifyAuditChain(db.pool);
      expect(v).toMatchObject({ ok: true, outcomes: expect.any(Number) });
      expect(v.ok && v.outcomes).toBeGreaterThanOrEqual(1);
      await expect(writer.recordOutcome({ id: 'nope' }, { rowCount: 1 })).rejects.toThrow(TypeError);
    } finally {
      await writer.close();
    }
  });

  it('refuses token-looking strings and invalid events with BATON_ERR_AUDIT_REJECTED; nothing is written', async () => {
    const writer = createAuditWriter(db.pool);
    try {
      const blob = 'EnQKCgoIdG9rZW5faWQKBXRva18xCgdzdWJqZWN0ChFhbGljZUBleGFtcGxlLmNvbRgDIgkKBwgKEgMYgAgiCQoHCAI';
      const lineage = statementEvent().lineage;
      const bad = [
        statementEvent({ tokenId: 'tok_bad', lineage: [lineage[0]!, { ...lineage[1]!, purpose: `use ${blob}` }] }),
        statementEvent({ tokenId: 'tok_bad', normalized: `SELECT '${blob}'` }),
        { ...statementEvent({ tokenId: 'tok_bad' }), rowData: [{ ssn: '123' }] },
        statementEvent({ tokenId: 'tok_bad', decision: 'maybe' as never }),
      ];
      for (const event of bad) {
        const err = await rejection(writer.append(event));
        expect(err.code).toBe('BATON_ERR_AUDIT_REJECTED');
        expect(`${err.message} ${err.detail}`).not.toContain(blob);
      }
      const { events } = await queryAudit(db.pool, { tokenId: 'tok_bad' });
      expect(events).toEqual([]);
    } finally {
      await writer.close();
    }
  });

  it('queue full: rejects at once with BATON_ERR_AUDIT_UNAVAILABLE, the queued ones still commit', async () => {
    const writer = createAuditWriter(db.pool, { maxQueue: 20, timeoutMs: 10_000 });
    const lock = await holdChainLock();
    let queued: Promise<unknown>[] = [];
    try {
      queued = Array.from({ length: 20 }, () => writer.append(statementEvent({ tokenId: 'tok_queue' })));
      const started = performance.now();
      const err = await rejection(writer.append(statementEvent()));
      expect(performance.now() - started).toBeLessThan(50);
      expect(err).toMatchObject({ code: 'BATON_ERR_AUDIT_UNAVAILABLE', message: expect.stringMatching(/^audit trail overloaded/) });
      expect(writer.health().events).toMatchObject({ pending: 20, shed: 1 });
    } finally {
      await lock.release();
    }
    await Promise.all(queued);
    expect((await queryAudit(db.pool, { tokenId: 'tok_queue' })).events).toHaveLength(20);
    await writer.close();
  });

  it('store unreachable: rejects naming the audit outage (fail closed), then recovers by itself', async () => {
    const target = new URL(BASE_URL);
    const fwd = await startForwarder(target.hostname, Number(target.port || 5432));
    const via = new URL(db.url);
    via.host = `127.0.0.1:${fwd.port}`;
    const errors: string[] = [];
    const writer = createAuditWriter(db.newPool({ connectionString: via.toString() }), { timeoutMs: 2000, onError: (e) => errors.push(e.code) });
    try {
      await writer.append(statementEvent({ tokenId: 'tok_outage' }));
      await fwd.down();
      const err = await rejection(writer.append(statementEvent({ tokenId: 'tok_outage' })));
      expect(err).toMatchObject({ code: 'BATON_ERR_AUDIT_UNAVAILABLE', message: expect.stringMatching(/^audit store unavailable/) });
      expect(writer.health()).toMatchObject({ ok: false, events: { lastError: { detail: expect.stringContaining('ECONNREFUSED') } } });
      expect(errors).toContain('BATON_ERR_AUDIT_UNAVAILABLE');

      await fwd.up();
      await writer.append(statementEvent({ tokenId: 'tok_outage' }));
      expect(writer.health().ok).toBe(true);
      expect((await queryAudit(db.pool, { tokenId: 'tok_outage' })).events).toHaveLength(2);
      expect(await verifyAuditChain(db.pool)).toMatchObject({ ok: true });
    } finally {
      await writer.close();
      await fwd.close();
    }
  });

  it('backend terminated mid-batch: rejects within its time budget, never hangs, then recovers', async () => {
    const writer = createAuditWriter(db.pool, { timeoutMs: 1500 });
    const lock = await holdChainLock();
    try {
      const pending = writer.append(statementEvent({ tokenId: 'tok_killed' }));
      await new Promise((r) => setTimeout(r, 200));
      const killed = await db
        .newPool()
        .query('SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1 AND datname = $2', [
          db.applicationName,
          db.name,
        ]);
      expect(killed.rows[0].n).toBeGreaterThanOrEqual(1);
      const started = performance.now();
      const err = await rejection(pending);
      expect(performance.now() - started).toBeLessThan(2500);
      expect(err.code).toBe('BATON_ERR_AUDIT_UNAVAILABLE');
    } finally {
      await lock.release();
    }
    await writer.append(statementEvent({ tokenId: 'tok_killed' }));
    expect((await queryAudit(db.pool, { tokenId: 'tok_killed' })).events).toHaveLength(1);
    await writer.close();
  });

  it('idle connections terminated: every append commits or rejects with AUDIT_UNAVAILABLE; no broken state', async () => {
    const writer = createAuditWriter(db.pool, { timeoutMs: 2000 });
    try {
      await Promise.all(Array.from({ length: 50 }, () => writer.append(statementEvent({ tokenId: 'tok_idle' }))));
      await db.newPool().query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = $2', [
        db.applicationName,
        db.name,
      ]);
      const results = await Promise.allSettled(Array.from({ length: 50 }, () => writer.append(statementEvent({ tokenId: 'tok_idle' }))));
      for (const r of results) if (r.status === 'rejected') expect(r.reason.code).toBe('BATON_ERR_AUDIT_UNAVAILABLE');
      const ok = results.filter((r) => r.status === 'fulfilled').length;
      await writer.append(statementEvent({ tokenId: 'tok_idle' }));
      expect((await queryAudit(db.pool, { tokenId: 'tok_idle', limit: 1000 })).events).toHaveLength(50 + ok + 1);
      expect(await verifyAuditChain(db.pool)).toMatchObject({ ok: true });
    } finally {
      await writer.close();
    }
  });

  it('close waits for queued entries and refuses new ones', async () => {
    const writer: AuditWriter = createAuditWriter(db.pool);
    const queued = Array.from({ length: 10 }, () => writer.append(statementEvent({ tokenId: 'tok_close' })));
    await writer.close();
    expect(writer.health()).toMatchObject({ ok: false, closed: true, events: { pending: 0 } });
    await Promise.all(queued);
    const err = await rejection(writer.append(statementEvent()));
    expect(err).toMatchObject({ code: 'BATON_ERR_AUDIT_UNAVAILABLE', message: 'the audit writer is closed' });
  });
});
