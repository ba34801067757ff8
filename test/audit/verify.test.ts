import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkpointChannel, checkpointPublisher, startAnchorWitness } from '../../src/audit/witness.ts';
import { openSharedState } from '../../src/store/shared-state.ts';
import { type AuditCheckpoint, anchorKey, signCheckpoint } from '../../src/audit/anchor.ts';
import { GENESIS_HASH, legacyChainHash } from '../../src/audit/hash.ts';
import { verifyAuditChain } from '../../src/audit/verify.ts';
import { type AuditReceipt, createAuditWriter } from '../../src/audit/writer.ts';
import { type TestDatabase, createTestDatabase } from './db.ts';
import { statementEvent } from './fixtures.ts';

let db: TestDatabase;
let receipts: AuditReceipt[];
let outcomes: { seq: number; id: string; chainId?: number; chainSeq?: number }[];

beforeAll(async () => {
  db = await createTestDatabase('verify');
  const writer = createAuditWriter(db.pool, { checkpointEvery: 5 });
  receipts = [];
  for (let i = 0; i < 12; i++) receipts.push(await writer.append(statementEvent({ fingerprint: `fp${i}` })));
  outcomes = await Promise.all(receipts.slice(0, 4).map((r, i) => writer.recordOutcome(r, { rowCount: i, tag: 'SELECT' })));
  await writer.close();
});
afterAll(async () => {
  await db?.drop();
});

/** Runs `sql` as superuser with the append-only trigger disabled, as an attacker with DBA access would. */
async function tamper(target: TestDatabase, table: string, sql: string, values: unknown[] = []): Promise<void> {
  const c = new pg.Client({ connectionString: target.url });
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
    ['UPDATE', "UPDATE audit_lineages SET lineage = '[]'"],
    ['DELETE', 'DELETE FROM audit_lineages'],
    ['DELETE', 'DELETE FROM audit_checkpoints'],
    ['TRUNCATE', 'TRUNCATE audit_checkpoints'],
    ['UPDATE', "UPDATE audit_chains SET anchor_key = NULL"],
    ['DELETE', 'DELETE FROM audit_chains'],
  ])('refuses %s (%s), even to the owner', async (op, sql) => {
    await expect(db.pool.query(sql)).rejects.toMatchObject({ code: '42501', message: expect.stringContaining(`append-only: ${op}`) });
  });

  it('still fires under session_replication_role = replica', async () => {
    const c = await db.pool.connect();
    try {
      await c.query('SET session_replication_role = replica');
      await expect(c.query("UPDATE audit_events SET reason = 'x'")).rejects.toMatchObject({ code: '42501' });
      await expect(c.query('DELETE FROM audit_checkpoints')).rejects.toMatchObject({ code: '42501' });
    } finally {
      await c.query('RESET session_replication_role');
      c.release();
    }
  });
});

describe('verifyAuditChain', () => {
  it('verifies an intact trail, paging through it: every chain, its checkpoints, its head anchored on close', async () => {
    const result = await verifyAuditChain(db.pool, { pageSize: 5 });
    expect(result).toMatchObject({ ok: true, count: 12, outcomes: 4 });
    expect(result.firstBroken).toBeUndefined();
    expect(result.chains).toEqual([
      expect.objectContaining({
        chainId: receipts[0]!.chainId,
        kind: 'events',
        legacy: false,
        count: 12,
        head: { chainSeq: 12, seq: receipts[11]!.seq, hash: receipts[11]!.hash },
        checkpoints: 3, // at 5 and 10 (every 5 entries), and at 12 when the writer closed
        anchoredSeq: 12,
        unanchored: 0,
        pid: process.pid,
      }),
      expect.objectContaining({ chainId: outcomes[0]!.chainId, kind: 'outcomes', count: 4, anchoredSeq: 4 }),
    ]);
  });

  it('names the outcome row whose content was altered', async () => {
    const target = outcomes[2]!;
    await tamper(db, 'audit_outcomes', `UPDATE audit_outcomes SET outcome = '{"rowCount": 0, "tag": "SELECT"}' WHERE seq = $1`, [target.seq]);
    const result = await verifyAuditChain(db.pool, { pageSize: 5 });
    const broken = { table: 'audit_outcomes', chainId: target.chainId, chainSeq: 3, seq: target.seq, id: target.id, reason: expect.stringContaining('altered') };
    expect(result).toMatchObject({ ok: false, firstBroken: broken });
    expect(result.chains.find((c) => c.kind === 'events')!.broken).toBeUndefined();
    expect(result.chains.find((c) => c.kind === 'outcomes')).toMatchObject({ count: 2, broken });
  });

  it('names the first event row whose content was altered (lowest seq wins)', async () => {
    const target = receipts[7]!;
    await tamper(db, 'audit_events', "UPDATE audit_events SET resource = 'pg:appdb/public.salaries' WHERE seq = $1", [target.seq]);
    expect(await verifyAuditChain(db.pool, { pageSize: 5 })).toMatchObject({
      ok: false,
      firstBroken: { table: 'audit_events', chainId: target.chainId, chainSeq: 8, seq: target.seq, id: target.id, reason: expect.stringContaining('altered') },
    });
  });

  it('detects a removed row at the next row, and a changed lineage at the first event that references it', async () => {
    await tamper(db, 'audit_events', 'DELETE FROM audit_events WHERE seq = $1', [receipts[3]!.seq]);
    const after = receipts[4]!;
    expect(await verifyAuditChain(db.pool)).toMatchObject({
      ok: false,
      firstBroken: { table: 'audit_events', seq: after.seq, id: after.id, chainSeq: 5, reason: expect.stringContaining('removed') },
    });
    // Each lineage is stored once; every event hashes its address, so changing it breaks the first user.
    await tamper(db, 'audit_lineages', `UPDATE audit_lineages SET lineage = jsonb_set(lineage, '{1,purpose}', '"innocent"')`);
    expect(await verifyAuditChain(db.pool)).toMatchObject({
      ok: false,
      firstBroken: { seq: receipts[0]!.seq, id: receipts[0]!.id, reason: expect.stringContaining('lineage') },
    });
  });
});

describe('anchoring: truncating a chain', () => {
  let trunc: TestDatabase;
  let published: AuditCheckpoint[];
  let mine: AuditReceipt[];
  let other: AuditReceipt[];
  beforeAll(async () => {
    trunc = await createTestDatabase('truncate');
    published = [];
    const a = createAuditWriter(trunc.newPool(), { checkpointEvery: 10, onCheckpoint: (cp) => published.push(cp) });
    const b = createAuditWriter(trunc.newPool(), { checkpointEvery: 10 });
    mine = [];
    other = [];
    for (let i = 0; i < 30; i++) {
      const [x, y] = await Promise.all([a.append(statementEvent({ fingerprint: `a${i}` })), b.append(statementEvent({ fingerprint: `b${i}` }))]);
      mine.push(x);
      other.push(y);
    }
    await Promise.all([a.close(), b.close()]);
  });
  afterAll(async () => {
    await trunc?.drop();
  });

  it('deleting the newest rows of one chain is reported for that chain; the other chain still verifies', async () => {
    const chainId = mine[0]!.chainId!;
    expect(published.map((cp) => cp.chainSeq)).toEqual([10, 20, 30]);
    expect(await verifyAuditChain(trunc.pool)).toMatchObject({ ok: true, count: 60 });
    await tamper(trunc, 'audit_events', 'DELETE FROM audit_events WHERE chain_id = $1 AND chain_seq > 25', [chainId]);
    const result = await verifyAuditChain(trunc.pool);
    const broken = { table: 'audit_events', chainId, chainSeq: 26, seq: null, id: null, reason: expect.stringMatching(/ends at chain seq 25 .* anchors chain seq 30: the newest 5 or more entries were removed/) };
    expect(result).toMatchObject({ ok: false, firstBroken: broken });
    expect(result.chains.find((c) => c.chainId === chainId)).toMatchObject({ count: 25, broken });
    expect(result.chains.find((c) => c.chainId === other[0]!.chainId)).toMatchObject({ count: 30, anchoredSeq: 30 });
    expect(result.chains.find((c) => c.chainId === other[0]!.chainId)!.broken).toBeUndefined();
  });

  it('deleting the newest checkpoint as well is caught by the checkpoints published outside the database', async () => {
    const chainId = mine[0]!.chainId!;
    await tamper(trunc, 'audit_checkpoints', 'DELETE FROM audit_checkpoints WHERE chain_id = $1 AND chain_seq > 20', [chainId]);
    // the database alone now shows a shorter, anchored chain (ends at 25, newest checkpoint 20)...
    expect(await verifyAuditChain(trunc.pool)).toMatchObject({ ok: true });
    // ...the published checkpoints do not
    expect(await verifyAuditChain(trunc.pool, { anchors: published })).toMatchObject({
      ok: false,
      firstBroken: { chainId, chainSeq: 26, reason: expect.stringContaining('removed') },
    });
  });

  it('a checkpoint not signed by the chain key, and a checkpoint of a removed chain, are reported', async () => {
    const chainId = other[0]!.chainId!;
    const forged = signCheckpoint(anchorKey(), chainId, 30, other[29]!.hash);
    await tamper(trunc, 'audit_checkpoints', 'DELETE FROM audit_checkpoints WHERE chain_id = $1 AND chain_seq = 30', [chainId]);
    await trunc.pool.query('INSERT INTO audit_checkpoints (chain_id, chain_seq, hash, signed_at, signature) VALUES ($1, $2, $3, $4, $5)', [
      forged.chainId,
      forged.chainSeq,
      forged.hash,
      forged.signedAt,
      forged.signature,
    ]);
    const result = await verifyAuditChain(trunc.pool);
    expect(result.chains.find((c) => c.chainId === chainId)!.broken).toMatchObject({ chainSeq: 30, reason: expect.stringContaining('forged') });

    const ghost = signCheckpoint(anchorKey(), 999, 7, GENESIS_HASH);
    await trunc.pool.query('INSERT INTO audit_checkpoints (chain_id, chain_seq, hash, signed_at, signature) VALUES ($1, $2, $3, $4, $5)', [
      ghost.chainId,
      ghost.chainSeq,
      ghost.hash,
      ghost.signedAt,
      ghost.signature,
    ]);
    // the ghost chain is named even though it has no registration or rows
    expect((await verifyAuditChain(trunc.pool)).strays).toEqual([
      { table: 'audit_events', chainId: 999, chainSeq: 7, seq: null, id: null, reason: expect.stringContaining('chain 999 up to chain seq 7') },
    ]);
  });

  it('a removed lineage and rows of an unregistered chain are reported', async () => {
    const chainId = mine[0]!.chainId!;
    await tamper(trunc, 'audit_lineages', 'DELETE FROM audit_lineages');
    const result = await verifyAuditChain(trunc.pool);
    expect(result.chains.find((c) => c.chainId === chainId)!.broken).toMatchObject({ chainSeq: 1, reason: expect.stringContaining('missing') });
    await trunc.pool.query(
      `INSERT INTO audit_events (chain_id, chain_seq, id, time, source, action, decision, lineage_hash, prev_hash, hash)
       VALUES (4242, 1, $1, now(), 'broker', 'x', 'allow', $2, $2, $2)`,
      [randomUUID(), GENESIS_HASH],
    );
    expect((await verifyAuditChain(trunc.pool)).strays).toContainEqual(
      expect.objectContaining({ table: 'audit_events', chainId: 4242, chainSeq: 1, reason: expect.stringContaining('chain 4242 is not registered') }),
    );
  });
});

describe('the legacy chain (rows written before migration 005)', () => {
  let legacy: TestDatabase;
  beforeAll(async () => {
    legacy = await createTestDatabase('legacy');
  });
  afterAll(async () => {
    await legacy?.drop();
  });

  it('verifies beside the new chains, keeps growing through audit_append, and an altered legacy row is still named', async () => {
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
    // A new writer starts a chain of its own...
    const writer = createAuditWriter(legacy.pool);
    const receipt = await writer.append(statementEvent());
    await writer.close();
    expect(receipt).toMatchObject({ chainSeq: 1 });
    expect(receipt.chainId).toBeGreaterThanOrEqual(3);
    // ...while a process still running the 004 writer extends the legacy chain (its head among legacy rows only).
    const content = `{"action":"x","decision":"allow","id":"${randomUUID()}","lineage":[],"source":"broker","time":"2026-01-01T00:00:00.000Z"}`;
    const { rows } = await legacy.pool.query('SELECT first_prev FROM audit_append(1, $1::text[], 1000)', [[content]]);
    expect(rows[0].first_prev).toBe(prevHash);

    const result = await verifyAuditChain(legacy.pool);
    expect(result).toMatchObject({ ok: true, count: 4, outcomes: 0 });
    expect(result.chains.map((c) => [c.chainId, c.legacy, c.count])).toEqual([
      [1, true, 3],
      [receipt.chainId, false, 1],
    ]);

    const c = new pg.Client({ connectionString: legacy.url });
    await c.connect();
    try {
      await c.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only');
      await c.query("UPDATE audit_events SET decision = 'deny' WHERE seq = $1", [old[1]!.seq]);
    } finally {
      await c.query('ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_append_only');
      await c.end();
    }
    expect(await verifyAuditChain(legacy.pool)).toMatchObject({
      ok: false,
      firstBroken: { table: 'audit_events', chainId: 1, chainSeq: null, seq: old[1]!.seq, id: old[1]!.id, reason: expect.stringContaining('altered') },
    });
  });
});

describe('the resources query helper', () => {
  let helpers: TestDatabase;
  beforeAll(async () => {
    helpers = await createTestDatabase('helpers');
  });
  afterAll(async () => {
    await helpers?.drop();
  });

  it('is stored by the writer from the hashed fields; changing it (hiding an entry from resource queries) is reported', async () => {
    const writer = createAuditWriter(helpers.pool);
    const r = [];
    for (const resource of ['pg:appdb/public.orders', 'pg:appdb/public."we""ird\\\\name"', 'pg:appdb/public.salaries']) {
      r.push(await writer.append(statementEvent({ resource, accesses: [{ resource, operation: 'read' }, { resource: 'pg:appdb/public.orders', operation: 'read' }] })));
    }
    await writer.close();
    const { rows } = await helpers.pool.query('SELECT resources FROM audit_events ORDER BY seq');
    expect(rows.map((x) => x.resources)).toEqual([
      ['pg:appdb/public.orders'],
      ['pg:appdb/public."we""ird\\\\name"', 'pg:appdb/public.orders'],
      ['pg:appdb/public.orders', 'pg:appdb/public.salaries'],
    ]);
    expect(await verifyAuditChain(helpers.pool)).toMatchObject({ ok: true, count: 3 });
    await tamper(helpers, 'audit_events', "UPDATE audit_events SET resources = '{pg:appdb/public.orders}' WHERE seq = $1", [r[2]!.seq]);
    expect(await verifyAuditChain(helpers.pool)).toMatchObject({
      ok: false,
      firstBroken: { seq: r[2]!.seq, chainSeq: 3, reason: expect.stringContaining('resources query helper') },
    });
  });
});

describe('anchor witness: checkpoints published outside the database', () => {
  let witnessed: TestDatabase;
  let dir: string;
  beforeAll(async () => {
    witnessed = await createTestDatabase('witness');
    dir = mkdtempSync(join(tmpdir(), 'baton-anchors-'));
  });
  afterAll(async () => {
    await witnessed?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the newest checkpoint per chain (on disk too); with them, deleting rows and checkpoints in the database is reported', async () => {
    const state = openSharedState({});
    const file = join(dir, 'audit-anchors.json');
    const channel = await checkpointChannel(witnessed.pool);
    const witness = await startAnchorWitness(state, { channel, file, flushMs: 10 });
    const writer = createAuditWriter(witnessed.pool, { checkpointEvery: 5, onCheckpoint: checkpointPublisher(state, channel) });
    // another audit database on the same Redis (chain ids repeat across databases): never witnessed here
    const elsewhere = createAuditWriter(db.pool, { checkpointEvery: 5, onCheckpoint: checkpointPublisher(state, await checkpointChannel(db.pool)) });
    expect(await checkpointChannel(db.pool)).not.toBe(channel);
    for (let i = 0; i < 6; i++) await elsewhere.append(statementEvent({ fingerprint: `x${i}` }));
    await elsewhere.close();
    const receipts: AuditReceipt[] = [];
    for (let i = 0; i < 12; i++) receipts.push(await writer.append(statementEvent({ fingerprint: `w${i}` })));
    await writer.close();
    await new Promise((r) => setTimeout(r, 50));
    const chainId = receipts[0]!.chainId!;
    expect(witness.anchors().find((a) => a.chainId === chainId)).toMatchObject({ chainSeq: 12, hash: receipts[11]!.hash });
    // junk, an older checkpoint and an unsigned claim change nothing kept (claims are checked by verify anyway)
    for (const junk of ['not json', JSON.stringify({ chainId, chainSeq: 99 }), JSON.stringify({ ...witness.anchors()[0], chainSeq: 3 })]) {
      await state.publish(channel, junk);
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(witness.anchors().filter((a) => a.chainId === chainId).map((a) => a.chainSeq)).toEqual([12]);
    expect(witness.anchors().map((a) => a.chainId)).toEqual([chainId]);
    await witness.close();

    await tamper(witnessed, 'audit_events', 'DELETE FROM audit_events WHERE chain_id = $1 AND chain_seq > 10', [chainId]);
    await tamper(witnessed, 'audit_checkpoints', 'DELETE FROM audit_checkpoints WHERE chain_id = $1 AND chain_seq > 10', [chainId]);
    expect(await verifyAuditChain(witnessed.pool)).toMatchObject({ ok: true }); // the database alone is fooled
    const reloaded = await startAnchorWitness(openSharedState({}), { file }); // e.g. after a broker restart
    expect(await verifyAuditChain(witnessed.pool, { anchors: reloaded.anchors() })).toMatchObject({
      ok: false,
      firstBroken: { chainId, chainSeq: 11, reason: expect.stringContaining('newest 2 or more entries were removed') },
    });
    await reloaded.close();
  });

  it('creates its directory, and a file it cannot write never takes the process down: kept in memory, retried, reported', async () => {
    const state = openSharedState({});
    const sub = join(dir, 'not-yet', 'there');
    const file = join(sub, 'audit-anchors.json');
    const errors: string[] = [];
    const witness = await startAnchorWitness(state, { channel: 'anchors-unwritable', file, flushMs: 10, onError: (e) => errors.push(e.message) });
    const cp = { chainId: 1, chainSeq: 5, hash: 'a'.repeat(64), signedAt: new Date().toISOString(), signature: 'b'.repeat(128) };
    // the directory exists now; make the file's place unwritable (a directory where the temp file goes)
    mkdirSync(`${file}.tmp`);
    witness.witness(cp);
    await expect.poll(() => errors.length).toBeGreaterThan(0);
    expect(witness.anchors()).toEqual([cp]);
    rmSync(`${file}.tmp`, { recursive: true });
    await expect.poll(() => existsSync(file)).toBe(true);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual([cp]);
    await witness.close();
  });
});
