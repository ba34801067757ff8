import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { auditEventInputSchema, auditEventJsonSchema } from '../../src/audit/event.ts';
import { createHash } from 'node:crypto';
import { GENESIS_HASH, canonicalJson, chainHash, contentJson, legacyChainHash, linkHash } from '../../src/audit/hash.ts';
import { assertNoCredentials } from '../../src/audit/redact.ts';
import { Biscuit, KeyPair } from '../../src/token/biscuit.ts';
import { statementEvent } from './fixtures.ts';

const SCHEMA_FILE = new URL('../../schemas/audit-event.json', import.meta.url);

describe('audit event schema', () => {
  it('schemas/audit-event.json is generated from the zod schema (UPDATE_SCHEMAS=1 to regenerate)', () => {
    const expected = `${JSON.stringify(auditEventJsonSchema(), null, 2)}\n`;
    if (process.env.UPDATE_SCHEMAS === '1') writeFileSync(SCHEMA_FILE, expected);
    expect(readFileSync(SCHEMA_FILE, 'utf8')).toBe(expected);
  });

  it('accepts a statement event and refuses unknown fields, NUL and unpaired surrogates', () => {
    expect(auditEventInputSchema.safeParse(statementEvent()).success).toBe(true);
    expect(auditEventInputSchema.safeParse({ ...statementEvent(), rows: [[1]] }).success).toBe(false);
    expect(auditEventInputSchema.safeParse(statementEvent({ reason: 'a\u0000b' })).success).toBe(false);
    expect(auditEventInputSchema.safeParse(statementEvent({ reason: 'a\uD800b' })).success).toBe(false);
    expect(auditEventInputSchema.safeParse(statementEvent({ reason: 'emoji 🎉 ok' })).success).toBe(true);
  });
});

describe('canonical JSON and chain hash', () => {
  it('sorts keys, drops undefined members, keeps array order', () => {
    expect(canonicalJson({ b: 1, a: [true, 'x', null], c: undefined, d: { z: 1.5, y: 'é' } })).toBe(
      '{"a":[true,"x",null],"b":1,"d":{"y":"é","z":1.5}}',
    );
  });

  it('hashes everything but `hash`, prevHash included', () => {
    const entry = { seq: 1, a: 'x', prevHash: GENESIS_HASH };
    const h = chainHash(entry);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(chainHash({ ...entry, hash: h })).toBe(h);
    expect(chainHash({ ...entry, prevHash: 'f'.repeat(64) })).not.toBe(h);
    expect(chainHash({ a: 'x', seq: 1, prevHash: GENESIS_HASH })).toBe(h);
  });

  it('is SHA-256 over prevHash, seq and the canonical content, as PostgreSQL computes it (migration 004)', () => {
    const entry = { seq: 7, id: 'x', purpose: 'résumé 🎉', prevHash: 'a'.repeat(64), hash: 'ignored' };
    expect(contentJson(entry)).toBe('{"id":"x","purpose":"résumé 🎉"}');
    const expected = createHash('sha256').update(`${'a'.repeat(64)}\n7\n{"id":"x","purpose":"résumé 🎉"}`, 'utf8').digest('hex');
    expect(linkHash(entry.prevHash, entry.seq, contentJson(entry))).toBe(expected);
    expect(chainHash(entry)).toBe(expected);
    expect(chainHash({ ...entry, seq: 8 })).not.toBe(expected);
  });

  it('keeps the pre-004 form for rows written before it: canonical JSON of everything but hash', () => {
    const entry = { seq: 1, a: 'x', prevHash: GENESIS_HASH };
    expect(legacyChainHash({ ...entry, hash: 'h' })).toBe(createHash('sha256').update(canonicalJson(entry)).digest('hex'));
    expect(legacyChainHash(entry)).not.toBe(chainHash(entry));
  });

  it('refuses values JSON cannot represent canonically', () => {
    expect(() => canonicalJson({ n: Number.NaN })).toThrow(TypeError);
  });
});

describe('credential guard', () => {
  const kp = new KeyPair();
  const builder = Biscuit.builder();
  builder.addCode('token_id("tok_1"); subject("alice@example.com"); agent("planner");');
  const token = builder.build(kp.getPrivateKey());
  const b64 = token.toBase64();
  const revocation = token.getRevocationIdentifiers()[0] as string;

  it('refuses a real Biscuit token anywhere in the event, naming the field but not the value', () => {
    for (const event of [
      statementEvent({ reason: `token was ${b64}` }),
      statementEvent({ normalized: `SELECT '${b64}'` }),
      { ...statementEvent(), lineage: [{ ...statementEvent().lineage[0]!, purpose: b64 }] },
    ]) {
      let err: unknown;
      try {
        assertNoCredentials(event);
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: 'BATON_ERR_AUDIT_REJECTED', message: 'audit event refused: a field looks like a credential' });
      expect(JSON.stringify(err) + String((err as Error).message) + (err as { detail: string }).detail).not.toContain(b64.slice(0, 40));
    }
  });

  it('refuses JWT-shaped strings', () => {
    const jwt = `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify({ sub: 'alice', aud: 'baton', iat: 1700000000, exp: 1800000000, iss: 'https://idp.example.com' })).toString('base64url')}.${'Ab3_'.repeat(30)}`;
    expect(() => assertNoCredentials(statementEvent({ reason: jwt }))).toThrow(/looks like a credential/);
  });

  it('accepts revocation ids, hashes, long lowercase slugs and normalized SQL', () => {
    expect(revocation).toMatch(/^[0-9a-f]{128}$/);
    expect(() =>
      assertNoCredentials(
        statementEvent({
          tokenId: 'tok_01HZX3K9J5B7Q2W8E4R6T1Y0UA',
          reason: `revoked ${revocation}`,
          fingerprint: 'f'.repeat(64),
          resource: `http:billing/${'invoices-for-the-quarter-ending-in-march-and-april-'.repeat(3)}`,
          normalized: `SELECT ${Array.from({ length: 40 }, (_, i) => `col_${i}`).join(', ')} FROM public.orders WHERE id = $1`,
        }),
      ),
    ).not.toThrow();
  });
});
