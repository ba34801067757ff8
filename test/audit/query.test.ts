import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuditEventInput, auditRecordSchema } from '../../src/audit/event.ts';
import { exportJsonLines } from '../../src/audit/export.ts';
import { type AuditFilters, auditQueryStringSchema, queryAudit } from '../../src/audit/query.ts';
import { auditTree } from '../../src/audit/tree.ts';
import { createAuditWriter } from '../../src/audit/writer.ts';
import { type TestDatabase, createTestDatabase } from './db.ts';
import { delegateLink, rootLink, statementEvent } from './fixtures.ts';

let db: TestDatabase;

// alice → planner (tok_A) → helper-7 → helper-9; bob → reporter (tok_B).
const alice = rootLink('alice@example.com', 'planner');
const h7 = delegateLink(1, 'helper-7', 'summarise orders', ['pg:appdb/public.orders', 'pg:appdb/public.customers']);
const h9 = delegateLink(2, 'helper-9', 'count orders', ['pg:appdb/public.orders']);
const bob = rootLink('bob@example.com', 'reporter');

const at = (minute: number) => `2026-05-01T10:${String(minute).padStart(2, '0')}:00.000Z`;
const inputs: AuditEventInput[] = [
  { source: 'broker', action: 'token.exchange', decision: 'allow', lineage: [alice], tokenId: 'tok_A', time: at(0), outcome: {} },
  statementEvent({ lineage: [alice, h7], tokenId: 'tok_A', time: at(1) }),
  statementEvent({
    lineage: [alice, h7],
    tokenId: 'tok_A',
    time: at(2),
    resource: undefined,
    operation: undefined,
    accesses: [
      { resource: 'pg:appdb/public.orders', operation: 'read' },
      { resource: 'pg:appdb/public.customers', operation: 'read' },
    ],
  }),
  statementEvent({ lineage: [alice, h7, h9], tokenId: 'tok_A', time: at(3) }),
  statementEvent({
    lineage: [alice, h7, h9],
    tokenId: 'tok_A',
    time: at(4),
    decision: 'deny',
    reason: 'resource not allowed',
    resource: 'pg:appdb/public.salaries',
    accesses: [{ resource: 'pg:appdb/public.salaries', operation: 'read' }],
  }),
  { source: 'proxy-http', action: 'request', decision: 'allow', lineage: [bob], tokenId: 'tok_B', time: at(5), resource: 'http:billing/invoices/', operation: 'read' },
  statementEvent({ lineage: [alice, h7, h9], tokenId: 'tok_A', time: at(6), decision: 'deny', reason: 'revoked' }),
  { source: 'broker', action: 'token.revoke', decision: 'allow', lineage: [alice, h7], tokenId: 'tok_A', time: at(7) },
];
let seqs: number[];

beforeAll(async () => {
  db = await createTestDatabase('query');
  const writer = createAuditWriter(db.pool);
  seqs = [];
  for (const e of inputs) seqs.push((await writer.append(e)).seq);
  await writer.close();
});
afterAll(async () => {
  await db?.drop();
});

/** Indexes (into `inputs`) of the events a filter returns, oldest first. */
async function matching(filters: AuditFilters): Promise<number[]> {
  const { events } = await queryAudit(db.pool, { ...filters, order: 'asc' });
  return events.map((e) => seqs.indexOf(e.seq));
}

describe('queryAudit filters', () => {
  it.each<[string, AuditFilters, number[]]>([
    ['subject', { subject: 'bob@example.com' }, [5]],
    ['delegate (any depth)', { delegate: 'helper-7' }, [1, 2, 3, 4, 6, 7]],
    ['delegate (agent of the root)', { delegate: 'planner' }, [0, 1, 2, 3, 4, 6, 7]],
    ['token id', { tokenId: 'tok_B' }, [5]],
    ['resource (single or in accesses)', { resource: 'pg:appdb/public.customers' }, [2]],
    ['decision', { decision: 'deny' }, [4, 6]],
    ['since inclusive, until exclusive', { since: at(2), until: at(4) }, [2, 3]],
    ['combined', { delegate: 'helper-9', decision: 'deny', resource: 'pg:appdb/public.salaries' }, [4]],
    ['nothing', { subject: 'mallory@example.com' }, []],
  ])('%s', async (_name, filters, expected) => {
    expect(await matching(filters)).toEqual(expected);
  });

  it('returns records exactly as appended, valid against the published schema', async () => {
    const { events } = await queryAudit(db.pool, { order: 'asc' });
    expect(events).toHaveLength(inputs.length);
    events.forEach((e, i) => {
      expect(auditRecordSchema.safeParse(e).success).toBe(true);
      const { time, ...rest } = inputs[i]!;
      expect(e).toMatchObject(JSON.parse(JSON.stringify(rest)));
      expect(e.time).toBe(time);
    });
    expect(events[0]!.outcome).toEqual({});
    expect(events[1]!.lineage).toEqual([alice, h7]);
  });
});

describe('queryAudit pagination', () => {
  it('walks every record newest first with an opaque cursor, no gaps or repeats', async () => {
    const seen: number[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await queryAudit(db.pool, { limit: 3, cursor });
      seen.push(...page.events.map((e) => e.seq));
      cursor = page.nextCursor ?? undefined;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual([...seqs].reverse());
  });

  it('pages oldest first within a filter', async () => {
    const first = await queryAudit(db.pool, { delegate: 'helper-9', order: 'asc', limit: 2 });
    const second = await queryAudit(db.pool, { delegate: 'helper-9', order: 'asc', limit: 2, cursor: first.nextCursor! });
    expect([...first.events, ...second.events].map((e) => seqs.indexOf(e.seq))).toEqual([3, 4, 6]);
    expect(second.nextCursor).toBeNull();
  });

  it('refuses bad limits and forged or cross-order cursors with BATON_ERR_INVALID_REQUEST', async () => {
    const asc = await queryAudit(db.pool, { order: 'asc', limit: 1 });
    for (const filters of [{ limit: 1001 }, { limit: 0 }, { cursor: 'not-a-cursor' }, { cursor: asc.nextCursor! }, { decision: 'maybe' }] as AuditFilters[]) {
      await expect(queryAudit(db.pool, filters)).rejects.toMatchObject({ code: 'BATON_ERR_INVALID_REQUEST' });
    }
    expect((await queryAudit(db.pool)).events).toHaveLength(inputs.length); // default limit 100
  });

  it('parses HTTP query strings (snake_case, string limit)', async () => {
    const filters = auditQueryStringSchema.parse({ token_id: 'tok_B', limit: '5' });
    expect(filters).toMatchObject({ tokenId: 'tok_B', limit: 5, order: 'desc' });
    expect((await queryAudit(db.pool, filters)).events.map((e) => e.tokenId)).toEqual(['tok_B']);
    expect(auditQueryStringSchema.safeParse({ tokenId: 'x' }).success).toBe(false);
  });
});

describe('auditTree', () => {
  it('builds the delegation tree of a token with allowed/denied counts per link', async () => {
    const tree = await auditTree(db.pool, 'tok_A');
    expect(tree.total).toEqual({ allowed: 5, denied: 2 });
    expect(tree.roots).toHaveLength(1);
    const root = tree.roots[0]!;
    expect(root).toMatchObject({ ...alice, allowed: 1, denied: 0, total: { allowed: 5, denied: 2 } });
    expect(root.children).toHaveLength(1);
    const child = root.children[0]!;
    expect(child).toMatchObject({ delegatedTo: 'helper-7', purpose: 'summarise orders', allowed: 3, denied: 0 });
    expect(child.children).toEqual([{ ...h9, allowed: 1, denied: 2, total: { allowed: 1, denied: 2 }, children: [] }]);
    expect(await auditTree(db.pool, 'tok_unknown')).toEqual({ tokenId: 'tok_unknown', roots: [], total: { allowed: 0, denied: 0 } });
  });
});

describe('exportJsonLines', () => {
  it('streams matching records oldest first as JSON lines, with a resume cursor', async () => {
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (c: Buffer) => chunks.push(c));
    const { count, resumeCursor } = await exportJsonLines(db.pool, { tokenId: 'tok_A' }, out);
    const lines = Buffer.concat(chunks).toString('utf8').trimEnd().split('\n');
    expect(count).toBe(7);
    expect(lines).toHaveLength(7);
    const records = lines.map((l) => auditRecordSchema.parse(JSON.parse(l)));
    expect(records.map((r) => r.seq)).toEqual(seqs.filter((_, i) => i !== 5));

    const again = await exportJsonLines(db.pool, { tokenId: 'tok_A', cursor: resumeCursor! }, new PassThrough());
    expect(again).toEqual({ count: 0, resumeCursor });
  });
});
