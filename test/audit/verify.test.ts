import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { GENESIS_HASH, legacyChainHash } from '../../src/audit/hash.ts';
import { verifyAuditChain } from '../../src/audit/verify.ts';
import { createAuditWriter } from '../../src/audit/writer.ts';
import { type TestDatabase, createTestDatabase } from './db.ts';
import { statementEvent } from './fixtures.ts';

let db: TestDatabase;
let receipts: { seq: number; id: string }[];
let outcomes: { seq: number; id: string }[];

beforeAll(async () => {
  db = await createTestDatabase('verify');
  const writer = createAuditWriter(db.pool);
  receipts = [];
  for (let i = 0; i < 12; i++) receipts.push(await writer.append(statementEvent({ fingerprint: `fp${i}` })));
  outcomes = await Promise.all(receipts.slice(0, 4).map((r, i) => writer.recordOutcome(r, { rowCount: i, tag: 'SELECT' })));
  await writer.close();
});
afterAll(async () => {
  await db?.drop();
});

/** Runs `sql` as superuser with the append-only trigger disabled, as an attacker with DBA access would. */
async function tamper(table: string, sql: string, values: unknown[] = []): Promise<void> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    await c.query(`ALTER TABLE ${table} DISABLE TRIGGER ${table}_append_only`);
    await c.query(sql, values);
  } finally {
    await c.query(`ALTER TABLE ${table} ENABLE ALWAYS TRIGGER ${table}_append_only`);
    await c.end();
  }
}

describe('append-only trigger', () => {
  it.each([
    ['UPDATE', "UPDATE audit_events SET decision = 'deny'"],
    ['DELETE', 'DELETE FROM audit_events'],
    ['TRUNCATE', 'TRUNCATE audit_events'],
    ['UPDATE', "UPDATE audit_outcomes SET outcome = '{}'"],
    ['DELETE', 'DELETE FROM audit_outcomes'],
  ])('refuses %s (%s), even to the owner', async (op, sql) => {
    await expect(db.pool.query(sql)).rejects.toMatchObject({ code: '42501', message: expect.stringContaining(`append-only: ${op}`) });
  });

  it('still fires under session_replication_role = replica', async () => {
    const c = await db.pool.connect();
    try {
      await c.query('SET session_replication_role = replica');
      await expect(c.query("UPDATE audit_events SET reason = 'x'")).rejects.toMatchObject({ code: '42501' });
    } finally {
      await c.query('RESET session_replication_role');
      c.release();
    }
  });
});

describe('verifyAuditChain', () => {
  it('verifies an intact trail, paging through it', async () => {
    expect(await verifyAuditChain(db.pool, { pageSize: 5 })).toEqual({ ok: true, count: 12, outcomes: 4 });
  });

  it('names the outcome row whose content was altered', async () => {
    const target = outcomes[2]!;
    await tamper('audit_outcomes', `UPDATE audit_outcomes SET outcome = '{"rowCount": 0, "tag": "SELECT"}' WHERE seq = $1`, [target.seq]);
    expect(await verifyAuditChain(db.pool, { pageSize: 5 })).toEqual({
      ok: false,
      firstBroken: { table: 'audit_outcomes', seq: target.seq, id: target.id, reason: expect.stringContaining('altered') },
    });
  });

  it('names the first event row whose content was altered (lowest seq wins)', async () => {
    const target = receipts[7]!;
    await tamper('audit_events', "UPDATE audit_events SET resource = 'pg:appdb/public.salaries' WHERE seq = $1", [target.seq]);
    expect(await verifyAuditChain(db.pool, { pageSize: 5 })).toEqual({
      ok: false,
      firstBroken: { table: 'audit_events', seq: target.seq, id: target.id, reason: expect.stringContaining('altered') },
    });
  });

  it('detects a removed row at the next row, and a changed lineage', async () => {
    await tamper('audit_events', 'DELETE FROM audit_events WHERE seq = $1', [receipts[3]!.seq]);
    const after = receipts[4]!;
    expect(await verifyAuditChain(db.pool)).toEqual({
      ok: false,
      firstBroken: { table: 'audit_events', seq: after.seq, id: after.id, reason: expect.stringContaining('removed') },
    });
    await tamper('audit_events', `UPDATE audit_events SET lineage = jsonb_set(lineage, '{1,purpose}', '"innocent"') WHERE seq = $1`, [
      receipts[1]!.seq,
    ]);
    expect(await verifyAuditChain(db.pool)).toMatchObject({ ok: false, firstBroken: { seq: receipts[1]!.seq, id: receipts[1]!.id } });
  });
});

describe('rows written before migration 004 (legacy hash form)', () => {
  let legacy: TestDatabase;
  beforeAll(async () => {
    legacy = await createTestDatabase('legacy');
  });
  afterAll(async () => {
    await legacy?.drop();
  });

  it('verify with the rows appended after them; an altered legacy row is still named', async () => {
    // Two rows as the pre-004 writer stored them: hash = SHA-256(canonical JSON of all but hash).
    let prevHash = GENESIS_HASH;
    const old: { seq: number; id: string }[] = [];
    for (const action of ['token.exchange', 'token.revoke']) {
      const seq = Number((await legacy.pool.query("SELECT nextval('audit_seq') AS s")).rows[0].s);
      const entry = { seq, id: randomUUID(), time: '2026-01-01T00:00:00.000Z', source: 'broker', action, decision: 'allow', lineage: [], prevHash };
      const hash = legacyChainHash(entry);
      await legacy.pool.query(
        'INSERT INTO audit_events (seq, id, time, source, action, decision, lineage, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)',
        [seq, entry.id, entry.time, entry.source, action, entry.decision, '[]', prevHash, hash],
      );
      old.push({ seq, id: entry.id });
      prevHash = hash;
    }
    const writer = createAuditWriter(legacy.pool);
    const receipt = await writer.append(statementEvent());
    await writer.close();
    const { rows } = await legacy.pool.query('SELECT prev_hash FROM audit_events WHERE seq = $1', [receipt.seq]);
    expect(rows[0].prev_hash).toBe(prevHash);
    expect(await verifyAuditChain(legacy.pool)).toEqual({ ok: true, count: 3, outcomes: 0 });

    const c = new pg.Client({ connectionString: legacy.url });
    await c.connect();
    try {
      await c.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only');
      await c.query("UPDATE audit_events SET decision = 'deny' WHERE seq = $1", [old[1]!.seq]);
    } finally {
      await c.query('ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_append_only');
      await c.end();
    }
    expect(await verifyAuditChain(legacy.pool)).toEqual({
      ok: false,
      firstBroken: { table: 'audit_events', seq: old[1]!.seq, id: old[1]!.id, reason: expect.stringContaining('altered') },
    });
  });
});
