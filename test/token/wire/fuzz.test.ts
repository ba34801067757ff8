import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BatonError } from '../../../src/errors.ts';
import {
  appendBlock,
  binary,
  blockToDatalog,
  decodeToken,
  MAX_TOKEN_BYTES,
  pred,
  sealToken,
  str,
  variable,
  type Expression,
} from '../../../src/token/wire/index.ts';
import { mint, newRoot, wasmAppend } from './oracle.ts';

const root = newRoot();
const valid = wasmAppend(
  root,
  mint(root, 'subject("a"); right("pg:x/y", "read"); check if time($t), $t <= 2030-01-01T00:00:00Z;'),
  'delegated_to("h"); check if resource($r), ["pg:x/y"].contains($r);',
);
const validBytes = new Uint8Array(Buffer.from(valid, 'base64url'));
const block = { facts: [pred('delegated_to', str('z'))] };

/** Runs every entry point on `input`: each either works or throws a coded BatonError. */
function exercise(input: string | Uint8Array): void {
  for (const op of [
    () => decodeToken(input).blocks.forEach((b) => blockToDatalog(b)),
    () => appendBlock(input, block),
    () => sealToken(input),
  ]) {
    try {
      op();
    } catch (err) {
      if (!(err instanceof BatonError)) throw err;
      expect(['BATON_ERR_TOKEN_MALFORMED', 'BATON_ERR_TOKEN_SEALED']).toContain(err.code);
      expect(err.message).toMatch(/^(malformed token: |the token is sealed)/);
    }
  }
}

describe('hostile input never escapes as an uncaught exception', () => {
  it('random bytes and random strings', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), exercise), { numRuns: 600 });
    fc.assert(fc.property(fc.string({ maxLength: 300 }), exercise), { numRuns: 300 });
  });

  it('every truncation of a valid token', () => {
    for (let n = 0; n < validBytes.length; n++) exercise(validBytes.subarray(0, n));
  });

  it('bit flips and byte splices in a valid token', () => {
    const flips = fc.array(fc.tuple(fc.nat(validBytes.length - 1), fc.integer({ min: 0, max: 7 })), {
      minLength: 1,
      maxLength: 4,
    });
    fc.assert(
      fc.property(flips, (positions) => {
        const bytes = Uint8Array.from(validBytes);
        for (const [i, bit] of positions) bytes[i]! ^= 1 << bit;
        exercise(bytes);
      }),
      { numRuns: 800 },
    );
    fc.assert(
      fc.property(fc.nat(validBytes.length), fc.uint8Array({ maxLength: 40 }), (at, junk) => {
        exercise(Uint8Array.from([...validBytes.subarray(0, at), ...junk, ...validBytes.subarray(at)]));
      }),
      { numRuns: 300 },
    );
  });

  it('refuses oversized input quickly, before decoding', () => {
    const started = performance.now();
    for (const input of [new Uint8Array(MAX_TOKEN_BYTES + 1), 'A'.repeat(10 * MAX_TOKEN_BYTES)]) {
      expect(() => decodeToken(input)).toThrow(/larger than 65536 bytes/);
    }
    expect(() => decodeToken(valid, { maxBytes: 16 })).toThrow(BatonError);
    expect(performance.now() - started).toBeLessThan(200);
  });

  it('refuses non-base64 text instead of skipping characters', () => {
    for (const input of ['', '   ', `${valid}!`, valid.replace(/.$/, '+'), `${valid.slice(0, 10)} ${valid.slice(10)}`]) {
      expect(() => decodeToken(input)).toThrow(/malformed token/);
    }
  });

  it('a deeply nested expression decodes, and printing it is refused, not a stack overflow', () => {
    let e: Expression = [{ value: variable('r') }];
    for (let i = 0; i < 3000; i++) e = binary('add', e, { integer: 1n });
    const deep = appendBlock(valid, {
      checks: [{ kind: 'if', queries: [{ body: [pred('resource', variable('r'))], expressions: [binary('equal', e, { integer: 0n })], scopes: [] }] }],
    });
    const decoded = decodeToken(deep);
    expect(decoded.blocks[2]!.checks[0]!.queries[0]!.expressions[0]).toHaveLength(6003);
    expect(() => blockToDatalog(decoded.blocks[2]!)).toThrow(/nested too deeply/);
  });
});
