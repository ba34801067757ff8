/**
 * The revocation list's flood bounds in PostgreSQL (`revokeBounded`): a token whose ancestor is
 * already revoked stores nothing; a lineage holds a bounded number of rows; the lineage root is always
 * accepted and replaces the rest; every row expires with its token, so purge removes it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listSince, purgeExpired, revokeBounded } from '../../src/revocation/store.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase('revbounds');
});
afterAll(async () => db?.drop());

const hex = (n: number, tag: string) => `${tag}${n.toString(16).padStart(6, '0')}`.padEnd(128, '0');
const rows = async (tokenId: string) => (await db.pool.query('SELECT revocation_id FROM revocations WHERE token_id = $1', [tokenId])).rows.map((r) => r.revocation_id as string);
const inMinutes = (m: number) => new Date(Date.now() + m * 60_000);

describe('revokeBounded', () => {
  it('stores nothing for a token whose ancestor is already revoked (it is dead already)', async () => {
    const root = hex(1, 'a');
    await revokeBounded(db.pool, { revocationIds: [root], tokenId: 'tok_a', expiresAt: inMinutes(10), revokedBy: 'possession' }, { isRoot: true });
    const child = hex(2, 'a');
    const r = await revokeBounded(db.pool, { revocationIds: [child], tokenId: 'tok_a', expiresAt: inMinutes(5), revokedBy: 'possession' }, { ancestorIds: [root] });
    expect(r).toMatchObject({ kind: 'covered', by: root });
    expect(await rows('tok_a')).toEqual([root]);
  });

  it('an ancestor revoked for a shorter time than the token does not cover it', async () => {
    const root = hex(1, 'b');
    await revokeBounded(db.pool, { revocationIds: [root], tokenId: 'tok_b', expiresAt: inMinutes(1), revokedBy: 'x' }, {});
    const r = await revokeBounded(db.pool, { revocationIds: [hex(2, 'b')], tokenId: 'tok_b', expiresAt: inMinutes(5), revokedBy: 'x' }, { ancestorIds: [root] });
    expect(r.kind).toBe('stored');
  });

  it('bounds the outstanding rows of one lineage; re-revoking a stored id is not a new row; the root is always accepted and replaces the rest', async () => {
    const bounds = { maxOutstandingPerLineage: 3 };
    for (let i = 1; i <= 3; i++) {
      expect((await revokeBounded(db.pool, { revocationIds: [hex(i, 'c')], tokenId: 'tok_c', expiresAt: inMinutes(i), revokedBy: 'possession' }, bounds)).kind).toBe('stored');
    }
    const full = await revokeBounded(db.pool, { revocationIds: [hex(4, 'c')], tokenId: 'tok_c', expiresAt: inMinutes(5), revokedBy: 'possession' }, bounds);
    expect(full).toMatchObject({ kind: 'lineage_full', outstanding: 3 });
    // Retry-After: when the earliest row of the lineage expires (1 minute)
    expect((full as { retryAfterSeconds: number }).retryAfterSeconds).toBeGreaterThan(50);
    expect((full as { retryAfterSeconds: number }).retryAfterSeconds).toBeLessThanOrEqual(60);
    expect((await revokeBounded(db.pool, { revocationIds: [hex(2, 'c')], tokenId: 'tok_c', expiresAt: inMinutes(2), revokedBy: 'possession' }, bounds)).kind).toBe('stored');
    // another lineage is not affected
    expect((await revokeBounded(db.pool, { revocationIds: [hex(1, 'd')], tokenId: 'tok_d', expiresAt: inMinutes(5), revokedBy: 'possession' }, bounds)).kind).toBe('stored');
    expect((await rows('tok_c')).length).toBe(3);
    const root = hex(0, 'c');
    const r = await revokeBounded(db.pool, { revocationIds: [root], tokenId: 'tok_c', expiresAt: inMinutes(10), revokedBy: 'possession' }, { ...bounds, isRoot: true });
    expect(r.kind).toBe('stored');
    expect(await rows('tok_c')).toEqual([root]);
  });

  it('rows expire with the token they revoke: purge removes them, the feed no longer sends them', async () => {
    await revokeBounded(db.pool, { revocationIds: [hex(1, 'e')], tokenId: 'tok_e', expiresAt: new Date(Date.now() - 120_000), revokedBy: 'possession' }, { maxOutstandingPerLineage: 3 });
    expect((await listSince(db.pool)).entries.map((e) => e.revocationId)).not.toContain(hex(1, 'e'));
    expect(await purgeExpired(db.pool, new Date())).toBeGreaterThanOrEqual(1);
    expect(await rows('tok_e')).toEqual([]);
  });
});
