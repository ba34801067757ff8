import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Keyring } from '../../src/keys/keyring.ts';
import { attenuate } from '../../src/token/attenuate.ts';
import { authorize } from '../../src/token/authorize.ts';
import { BlockBuilder } from '../../src/token/biscuit.ts';
import { effectiveRights, readLineage } from '../../src/token/lineage.ts';
import { mintToken } from '../../src/token/mint.ts';
import { dateParam } from '../../src/token/terms.ts';
import { verifyToken } from '../../src/token/verify.ts';
import { decodeToken } from '../../src/token/wire/index.ts';

const NOW = new Date('2026-11-23T12:00:00Z');
const ring = Keyring.ephemeral();
const ROOT_RIGHTS = [
  ...['read', 'insert', 'update', 'delete'].map((operation) => ({ resource: 'pg:appdb/public.*', operation })),
  { resource: 'pg:appdb/private.secrets', operation: 'read' },
];
const root = mintToken(
  { subject: 'alice', issuer: 'https://idp', agent: 'planner', rights: ROOT_RIGHTS, expiresAt: new Date(NOW.getTime() + 3600_000) },
  ring.signingKey(),
).token;

const TABLES = ['pg:appdb/public.orders', 'pg:appdb/public.customers', 'pg:appdb/public.audit_notes', 'pg:appdb/private.secrets', 'pg:otherdb/public.orders'];
const OPS = ['read', 'insert', 'update', 'delete', 'truncate'];

function allowed(token: string, resource: string, operation: string, at: Date): boolean {
  const v = verifyToken(token, ring);
  try {
    return authorize(v.biscuit, resource, operation, at).allow;
  } finally {
    v.biscuit.free();
  }
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code ?? (e instanceof TypeError ? 'TypeError' : String(e));
  }
  return undefined;
}

describe('attenuate()', () => {
  it('narrows: a read-only, one-table, short-lived child', () => {
    const child = attenuate(root, { resources: ['pg:appdb/public.orders'], operations: ['read'], ttl: '5m', delegateTo: 'helper-7', purpose: 'count', now: NOW });
    const at = new Date(NOW.getTime() + 60_000);
    expect(allowed(child, 'pg:appdb/public.orders', 'read', at)).toBe(true);
    expect(allowed(child, 'pg:appdb/public.orders', 'delete', at)).toBe(false);
    expect(allowed(child, 'pg:appdb/public.customers', 'read', at)).toBe(false);
    expect(allowed(child, 'pg:appdb/public.orders', 'read', new Date(NOW.getTime() + 6 * 60_000))).toBe(false);
    expect(allowed(root, 'pg:appdb/public.orders', 'delete', at)).toBe(true);
  });

  it('never widens and TTL only shrinks (property: random chains × random requests)', () => {
    const step = fc.record({
      resources: fc.option(fc.subarray(['pg:appdb/public.*', ...TABLES.slice(0, 4)], { minLength: 1 }), { nil: undefined }),
      operations: fc.option(fc.subarray(OPS.slice(0, 4), { minLength: 1 }), { nil: undefined }),
      ttlSeconds: fc.option(fc.integer({ min: 1, max: 7200 }), { nil: undefined }),
    });
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 3 }), fc.array(fc.tuple(fc.constantFrom(...TABLES), fc.constantFrom(...OPS), fc.integer({ min: 0, max: 7200 })), { minLength: 5, maxLength: 10 }), (steps, requests) => {
        let parent = root;
        for (const [i, s] of steps.entries()) {
          let child: string;
          try {
            child = attenuate(parent, { ...s, ttl: s.ttlSeconds, delegateTo: `agent-${i}`, now: NOW });
          } catch (e) {
            // refusals must be the coded widening error, and only when the step really widens
            expect((e as { code?: string }).code).toBe('BATON_ERR_ATTENUATION_WIDENS');
            continue;
          }
          const pe = effectiveRights(decodeToken(parent));
          const ce = effectiveRights(decodeToken(child));
          expect(new Date(ce.expiresAt!).getTime()).toBeLessThanOrEqual(new Date(pe.expiresAt!).getTime());
          for (const [resource, op, offset] of requests) {
            const at = new Date(NOW.getTime() + offset * 1000);
            if (allowed(child, resource, op, at)) expect(allowed(parent, resource, op, at)).toBe(true);
          }
          parent = child;
        }
      }),
      { numRuns: 60 },
    );
  });

  it('refuses each kind of widening with a specific error', () => {
    const child = attenuate(root, { resources: ['pg:appdb/public.orders'], operations: ['read'], ttl: '5m', delegateTo: 'h', now: NOW });
    const again = (o: Partial<Parameters<typeof attenuate>[1]>) => () => attenuate(child, { delegateTo: 'x', now: NOW, ...o });
    expect(codeOf(again({ resources: ['pg:appdb/public.customers'] }))).toBe('BATON_ERR_ATTENUATION_WIDENS');
    expect(codeOf(again({ resources: ['pg:appdb/public.*'] }))).toBe('BATON_ERR_ATTENUATION_WIDENS');
    expect(codeOf(again({ operations: ['insert'] }))).toBe('BATON_ERR_ATTENUATION_WIDENS');
    expect(codeOf(again({ ttl: '10m' }))).toBe('BATON_ERR_ATTENUATION_WIDENS');
    expect(codeOf(again({ ttl: 'soon' }))).toBe('TypeError');
    expect(codeOf(again({ operations: ['fly'] }))).toBe('TypeError');
    expect(codeOf(again({ delegateTo: '' }))).toBe('TypeError');
    const sealed = attenuate(child, { delegateTo: 'last', seal: true, now: NOW });
    expect(codeOf(() => attenuate(sealed, { delegateTo: 'x', now: NOW }))).toBe('BATON_ERR_TOKEN_SEALED');
    expect(allowed(sealed, 'pg:appdb/public.orders', 'read', NOW)).toBe(true);
    expect(codeOf(() => attenuate('not-a-token', { delegateTo: 'x' }))).toBe('BATON_ERR_TOKEN_MALFORMED');
    expect(codeOf(() => attenuate(root.slice(0, 100), { delegateTo: 'x' }))).toBe('BATON_ERR_TOKEN_MALFORMED');
    expect(codeOf(() => verifyToken(child, Keyring.ephemeral()))).toBe('BATON_ERR_TOKEN_SIGNATURE');
  });

  it('keeps hostile names as data', () => {
    const hostile = [
      'x"); right("pg:appdb/public.customers", "read"); //',
      'line1; right("pg:appdb/public.customers", "read");',
      'émoji 🦊 \\ " ? {param}',
      '$r", "read"); check if true; //',
    ];
    for (const name of hostile) {
      const child = attenuate(root, { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: name, purpose: name, now: NOW });
      const [, link] = readLineage(decodeToken(child));
      expect(link).toMatchObject({ delegatedTo: name, purpose: name, resources: ['pg:appdb/public.orders'], operations: ['read'] });
      expect(allowed(child, 'pg:appdb/public.customers', 'read', NOW)).toBe(false);
      expect(allowed(child, 'pg:appdb/public.orders', 'read', NOW)).toBe(true);
      expect(effectiveRights(decodeToken(child)).resources).toEqual(['pg:appdb/public.orders']);
    }
  });

  it('refuses control, bidi/format and separator characters in delegateTo and purpose, naming the code point', () => {
    const unsafe = [
      ...['\u0000', '\u0007', '\n', '\r', '\u001b', '\u007f', '\u0080', '\u009b'], // C0, DEL, C1
      ...['\u200e', '\u200f', '\u061c', '\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069'], // bidi
      ...['\u200b', '\u200c', '\u200d', '\ufeff', '\u00ad', '\u2028', '\u2029', '\ud800'], // zero-width, BOM, soft hyphen, separators, lone surrogate
    ];
    for (const ch of unsafe) {
      const cp = `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
      for (const field of ['delegateTo', 'purpose'] as const) {
        const opts = { delegateTo: 'helper', now: NOW, [field]: `helper${ch}-7` };
        let err: unknown;
        try {
          attenuate(root, opts);
        } catch (e) {
          err = e;
        }
        expect(err, `${field} ${cp}`).toMatchObject({ code: 'BATON_ERR_INVALID_REQUEST', message: `${field} contains a control, format or separator character (${cp} at position 6); use printable text` });
      }
    }
    // printable text of any script is fine
    const ok = attenuate(root, { delegateTo: 'помощник-7 助手 🦊', purpose: 'résumé: « orders »', now: NOW });
    expect(readLineage(decodeToken(ok))[1]).toMatchObject({ delegatedTo: 'помощник-7 助手 🦊', purpose: 'résumé: « orders »' });
  });

  it('honours a block written by hand in plain Datalog exactly like one from attenuate()', () => {
    const expires = new Date(NOW.getTime() + 300_000);
    // what an agent in another language (biscuit-python, biscuit-rust) writes, per schemas/token-vocabulary.json
    const handwritten = new BlockBuilder();
    handwritten.addCode(
      `delegated_to("py-helper"); purpose("written by hand");
       check if resource($r), ["pg:appdb/public.orders"].contains($r) or resource($r), $r.starts_with("pg:appdb/public.audit_");
       check if operation($op), ["read", "insert"].contains($op);
       check if time($t), $t <= ${dateParam(expires).date};`,
    );
    const v = verifyToken(root, ring);
    const byHand = v.biscuit.appendBlock(handwritten).toBase64();
    v.biscuit.free();
    const byApi = attenuate(root, { resources: ['pg:appdb/public.orders', 'pg:appdb/public.audit_*'], operations: ['read', 'insert'], ttl: 300, delegateTo: 'py-helper', purpose: 'written by hand', now: NOW });
    for (const resource of [...TABLES, 'pg:appdb/public.audit_notes']) {
      for (const op of OPS) {
        for (const offset of [0, 299, 301]) {
          const at = new Date(NOW.getTime() + offset * 1000);
          expect(allowed(byHand, resource, op, at), `${op} ${resource} +${offset}s`).toBe(allowed(byApi, resource, op, at));
        }
      }
    }
    const [, handLink] = readLineage(decodeToken(byHand));
    const [, apiLink] = readLineage(decodeToken(byApi));
    expect({ ...handLink, revocationId: '' }).toEqual({ ...apiLink, revocationId: '' });
  });

  it("extends the parent's revocation ids: a chain's ids are a prefix of every descendant's", () => {
    let token = root;
    for (let i = 0; i < 3; i++) {
      const child = attenuate(token, { resources: ['pg:appdb/public.orders'], operations: ['read'], ttl: '5m', delegateTo: `helper-${i}`, now: NOW });
      const parentIds = decodeToken(token).blocks.map((b) => b.revocationId);
      const childIds = decodeToken(child).blocks.map((b) => b.revocationId);
      expect(childIds.slice(0, parentIds.length)).toEqual(parentIds);
      expect(childIds).toHaveLength(parentIds.length + 1);
      token = child;
    }
    expect(readLineage(decodeToken(token))).toHaveLength(4);
  });
});
