import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEventSchema } from '../../src/audit/event.ts';
import { chainHash, lineageHash } from '../../src/audit/hash.ts';
import { queryAudit } from '../../src/audit/query.ts';
import { openChainConnection } from '../../src/audit/group-commit.ts';
import { verifyAuditChain } from '../../src/audit/verify.ts';
import { type AuditWriter, createAuditWriter } from '../../src/audit/writer.ts';
import { BASE_URL, type TestDatabase, createTestDatabase } from './db.ts';
import { statementEvent } from './fixtures.ts';
import { startForwarder } from './forwarder.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase('writer');
});
afterAll(async () => {
  await db?.drop();
});

async function waitFor(check: () => Promise<boolean>, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function rejection(p: Promise<unknown>): Promise<{ code?: string; message: string; detail?: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code?: string; message: string; detail?: string };
  }
  throw new Error('expected a rejection');
}

/**
 * Locks audit_events against inserts from another session: a store that does not answer. (No lock is
 * shared between writers any more, so the table lock stands in for a stuck server.)
 */
async function holdTableLock(): Promise<{ release(): Promise<void> }> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  await client.query('BEGIN');
  await client.query('LOCK TABLE audit_events IN EXCLUSIVE MODE');
  return {
    async release() {
      await client.query('COMMIT');
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
      const { rows } = await other.query(
        'SELECT e.id, e.hash, e.chain_id, e.chain_seq, l.lineage FROM audit_events AS e JOIN audit_lineages AS l ON l.hash = e.lineage_hash WHERE e.id = $1',
        [receipt.id],
      );
      expect(rows).toEqual([{ id: receipt.id, hash: receipt.hash, chain_id: String(receipt.chainId), chain_seq: String(receipt.chainSeq), lineage: input.lineage }]);

      const { events } = await queryAudit(db.pool, { tokenId: input.tokenId!, limit: 1 });
      const { time: _t, ...rest } = input;
      expect(events[0]).toEqual({
        ...rest,
        seq: receipt.seq,
        chainId: receipt.chainId,
        chainSeq: receipt.chainSeq,
        id: receipt.id,
        time: receipt.time,
        lineageHash: lineageHash(input.lineage),
        prevHash: expect.any(String),
        hash: receipt.hash,
      });
      expect(auditEventSchema.safeParse(events[0]).success).toBe(true);
    } finally {
      await writer.close();
    }
  });

  it('what is stored is what was hashed: the hash is chainHash of the event read back (non-ASCII too)', async () => {
    const writer = createAuditWriter(db.pool);
    try {
      const lineage = statementEvent().lineage;
      const input = statementEvent({ tokenId: 'tok_utf8', reason: 'naïve 🎉 résumé', durationMs: 1e-7, lineage: [lineage[0]!, { ...lineage[1]!, purpose: 'Zusammenfassung ✓' }] });
      const receipt = await writer.append(input);
      const { events } = await queryAudit(db.pool, { tokenId: 'tok_utf8' });
      expect(events[0]!.reason).toBe(input.reason);
      expect(chainHash(events[0]!)).toBe(receipt.hash);
      expect(lineageHash(events[0]!.lineage)).toBe(events[0]!.lineageHash);
    } finally {
      await writer.close();
    }
  });

  it('chain connections commit events with synchronous_commit = on and outcomes with off, whatever the database default', async () => {
    const admin = db.newPool();
    await admin.query(`ALTER DATABASE ${db.name} SET synchronous_commit = off`);
    const pool = db.newPool();
    try {
      expect((await pool.query('SHOW synchronous_commit')).rows[0].synchronous_commit).toBe('off');
      for (const [durable, expected] of [[true, 'on'], [false, 'off']] as const) {
        const c = await openChainConnection(pool, durable, 5000, Date.now() + 5000);
        try {
          expect((await c.query('SHOW synchronous_commit')).rows[0].synchronous_commit).toBe(expected);
          expect((await c.query('SHOW lock_timeout')).rows[0].lock_timeout).toBe('4500ms');
        } finally {
          await c.end();
        }
      }
    } finally {
      await admin.query(`ALTER DATABASE ${db.name} RESET synchronous_commit`);
    }
  });

  it('legacy audit_append (kept for old writers during an upgrade): commits with synchronous_commit = on, refuses snapshots older than its lock and fields it would not store', async () => {
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

  it('two writers on separate pools (two processes) appending at once each extend a chain of their own', async () => {
    const a = createAuditWriter(db.newPool(), { description: 'writer a', lanes: 1 });
    const b = createAuditWriter(db.newPool(), { description: 'writer b', lanes: 2 });
    try {
      const all = await Promise.all(
        Array.from({ length: 300 }, (_, i) => (i % 2 ? a : b).append(statementEvent({ fingerprint: `w${i}` }))),
      );
      expect(new Set(all.map((r) => r.seq)).size).toBe(300);
      const chains = new Map<number, number[]>();
      for (const r of all) chains.set(r.chainId!, [...(chains.get(r.chainId!) ?? []), r.chainSeq!]);
      const aChains = a.health().events.chains!;
      const bChains = b.health().events.chains!;
      expect(aChains).toHaveLength(1);
      expect(bChains).toHaveLength(2); // 150 appends at once: shared between its two lanes
      expect(new Set([...aChains, ...bChains]).size).toBe(aChains.length + bChains.length);
      for (const [, seqs] of chains) expect(seqs.sort((x, y) => x - y)).toEqual(seqs.map((_, i) => i + 1));
      const result = await verifyAuditChain(db.pool);
      expect(result).toMatchObject({ ok: true });
      const { rows } = await db.pool.query('SELECT chain_id, kind, description, host, pid FROM audit_chains WHERE chain_id = ANY($1::bigint[])', [aChains]);
      expect(rows[0]).toMatchObject({ kind: 'events', description: 'writer a', host: expect.any(String), pid: process.pid });
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

  it('under concurrency outcomes linger (outcomeLingerMs) so that those recorded meanwhile share one transaction; events never wait', async () => {
    const writer = createAuditWriter(db.pool, { lanes: 1, outcomeLingerMs: 50 });
    try {
      const receipts = await Promise.all([0, 1, 2].map(() => writer.append(statementEvent({ tokenId: 'tok_linger' }))));
      receipts.sort((a, b) => a.chainSeq! - b.chainSeq!);
      expect(writer.health().events).toMatchObject({ committed: 3, batches: 1 });
      const started = performance.now();
      const outs = await Promise.all(receipts.map((r, i) => writer.recordOutcome(r, { rowCount: i, tag: 'SELECT' })));
      expect(performance.now() - started).toBeGreaterThanOrEqual(40);
      expect(outs.map((o) => o.chainSeq)).toEqual([1, 2, 3]);
      expect(writer.health().outcomes).toMatchObject({ committed: 3, batches: 1 });
      const { rows } = await db.pool.query('SELECT count(DISTINCT xmin::text)::int AS n FROM audit_outcomes WHERE event_id = ANY($1::uuid[])', [receipts.map((r) => r.id)]);
      expect(rows[0].n).toBe(1);
      const { events } = await queryAudit(db.pool, { tokenId: 'tok_linger', order: 'asc' });
      expect(events.map((e) => e.recordedOutcome?.outcome.rowCount)).toEqual([0, 1, 2]);
      expect(await verifyAuditChain(db.pool)).toMatchObject({ ok: true });
    } finally {
      await writer.close();
    }
  });

  it('a lone caller\'s outcome does not linger', async () => {
    const writer = createAuditWriter(db.pool, { lanes: 1, outcomeLingerMs: 1000 });
    try {
      const receipt = await writer.append(statementEvent({ tokenId: 'tok_no_linger' }));
      const started = performance.now();
      await writer.recordOutcome(receipt, { rowCount: 1 });
      expect(performance.now() - started).toBeLessThan(900);
    } finally {
      await writer.close();
    }
  });

  it('close writes lingering outcomes at once', async () => {
    const writer = createAuditWriter(db.pool, { lanes: 1, outcomeLingerMs: 1000 });
    const [receipt] = await Promise.all([0, 1].map(() => writer.append(statementEvent({ tokenId: 'tok_linger_close' }))));
    const out = writer.recordOutcome(receipt!, { rowCount: 1 });
    const started = performance.now();
    await writer.close();
    expect(performance.now() - started).toBeLessThan(900);
    expect(await out).toMatchObject({ eventId: receipt!.id, chainSeq: 1 });
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
    const lock = await holdTableLock();
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

  it('a reply lost after the batch committed: the retry re-reads the chain head, finds the batch there and resolves; no duplicate, chain valid', async () => {
    const target = new URL(BASE_URL);
    const fwd = await startForwarder(target.hostname, Number(target.port || 5432));
    const via = new URL(db.url);
    via.host = `127.0.0.1:${fwd.port}`;
    const writer = createAuditWriter(db.newPool({ connectionString: via.toString() }), { lanes: 1, timeoutMs: 5000 });
    try {
      const first = await writer.append(statementEvent({ tokenId: 'tok_lost' }));
      fwd.stallReplies();
      const pending = writer.append(statementEvent({ tokenId: 'tok_lost', fingerprint: 'lost-1' }));
      await waitFor(async () => (await db.pool.query("SELECT count(*)::int AS n FROM audit_events WHERE fingerprint = 'lost-1'")).rows[0].n === 1);
      fwd.cut(); // the connection dies before the reply arrives
      const receipt = await pending;
      expect(receipt).toMatchObject({ chainId: first.chainId, chainSeq: first.chainSeq! + 1 });
      expect((await writer.append(statementEvent({ tokenId: 'tok_lost' }))).chainSeq).toBe(first.chainSeq! + 2);
      expect((await queryAudit(db.pool, { tokenId: 'tok_lost' })).events).toHaveLength(3);
      expect(await verifyAuditChain(db.pool)).toMatchObject({ ok: true });
    } finally {
      await writer.close();
      await fwd.close();
    }
  });

  it('a reply lost until the budget runs out: rejects saying the batch may be recorded; the chain continues after it, valid', async () => {
    const target = new URL(BASE_URL);
    const fwd = await startForwarder(target.hostname, Number(target.port || 5432));
    const via = new URL(db.url);
    via.host = `127.0.0.1:${fwd.port}`;
    const writer = createAuditWriter(db.newPool({ connectionString: via.toString() }), { lanes: 1, timeoutMs: 800 });
    try {
      const first = await writer.append(statementEvent({ tokenId: 'tok_ambiguous' }));
      fwd.stallReplies();
      const started = performance.now();
      const err = await rejection(writer.append(statementEvent({ tokenId: 'tok_ambiguous' })));
      expect(performance.now() - started).toBeLessThan(2000);
      expect(err).toMatchObject({ code: 'BATON_ERR_AUDIT_UNAVAILABLE', detail: expect.stringContaining('may be recorded') });
      fwd.cut();
      // it was recorded (the server committed it); the lane re-read its head and continues after it
      expect((await writer.append(statementEvent({ tokenId: 'tok_ambiguous' }))).chainSeq).toBe(first.chainSeq! + 2);
      expect((await queryAudit(db.pool, { tokenId: 'tok_ambiguous' })).events).toHaveLength(3);
      expect(await verifyAuditChain(db.pool)).toMatchObject({ ok: true });
    } finally {
      await writer.close();
      await fwd.close();
    }
  });

  it('backend terminated mid-batch: rejects within its time budget, never hangs, then recovers', async () => {
    const writer = createAuditWriter(db.pool, { timeoutMs: 1500 });
    const lock = await holdTableLock();
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
