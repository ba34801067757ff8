import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BatonError } from '../../../src/errors.ts';
import {
  appendBlock,
  binary,
  blockToDatalog,
  bool,
  checkIf,
  decodeToken,
  int,
  query,
  quoteString,
  SCHEMA_VERSION,
  set,
  str,
  unary,
  type Expression,
  type Term,
} from '../../../src/token/wire/index.ts';
import { canonical, mint, newRoot, report, toCurrentSyntax, toPre33Syntax, wasmAppend } from './oracle.ts';

const root = newRoot();
const EXPIRY = new Date('2026-11-23T13:00:00Z');

/** Strings that break naive printing: quotes, backslashes, newlines, Datalog injection, unicode. */
const HOSTILE = [
  'alice"); right("pg:appdb/public.*", "admin',
  'back\\slash\\',
  'line\nbreak\r\nand\ttab',
  '"',
  '\\"',
  '\\n',
  'nul\u0000byte',
  'émoji 😀 and 中文 and \u202e',
  '',
  '\u2028\u2029',
  '*/ // /* check if false;',
];

function replay(token: string, index: number): string {
  // Feed our printed text to biscuit-wasm in a fresh block and decode what it made.
  const text = blockToDatalog(decodeToken(token).blocks[index]!);
  const fresh = mint(root, toPre33Syntax(text));
  return fresh;
}

describe('decodeToken on tokens built by biscuit-wasm', () => {
  const authority = mint(
    root,
    `token_id("tok_1"); subject({subject}); right("pg:appdb/public.orders", "read"); right("pg:appdb/public.*", "read");
     n(-9223372036854775808, 9223372036854775807, 0, true, false, hex:00ff10);
     check if time($t), $t <= {expiry};`,
    { subject: 'alice@example.com', expiry: { date: EXPIRY.toISOString() } },
    42,
  );
  const child = wasmAppend(
    root,
    authority,
    `delegated_to("helper-7"); purpose("summarise yesterday's orders");
     check if resource($r), ["pg:appdb/public.orders", "pg:appdb/public.customers"].contains($r);
     check if resource($r), $r.starts_with("pg:appdb/public.") or resource("http:billing/invoices/");
     check if operation($op), ["read"].contains($op);
     check if time($t), $t <= 2026-11-23T12:35:00Z;`,
  );
  const grandchild = wasmAppend(
    root,
    child,
    `delegated_to("helper-8");
     check all operation($op), $op != "delete";
     check if resource($r), !($r == "x"), $r.length() > 3, (1 + 2) * 3 == 9, 1 + 2 * 3 == 7, true && false || true;
     check if resource($r) trusting authority;
     check if resource($r), [1, 2].intersection([2]).contains(2), $r.ends_with("s") || $r.matches("^pg:");`,
  );

  it('reports the same blocks, versions and revocation ids as biscuit-wasm', () => {
    const decoded = decodeToken(grandchild);
    const lib = report(root, grandchild);
    expect(decoded.rootKeyId).toBe(42);
    expect(decoded.sealed).toBe(false);
    expect(decoded.blocks.map((b) => b.index)).toEqual([0, 1, 2]);
    expect(decoded.blocks.map((b) => b.revocationId)).toEqual(lib.revocationIds);
    expect(decoded.blocks.map((b) => b.signatureVersion)).toEqual([0, 0, 0]);
    // v3.1 features (check all, !=, trusting) make biscuit-wasm write version 4, else 3.
    expect(decoded.blocks.map((b) => b.version)).toEqual([3, 3, 4]);
    // Without hostile strings the escaped printer and biscuit-wasm's printer agree to the byte.
    expect(decoded.blocks.map((b) => blockToDatalog(b))).toEqual(lib.sources.map(toCurrentSyntax));
  });

  it('decodes terms to the typed model', () => {
    const [authorityBlock, attenuation] = decodeToken(child).blocks;
    expect(authorityBlock!.facts[1]).toEqual({ name: 'subject', terms: [{ string: 'alice@example.com' }] });
    expect(authorityBlock!.facts[4]).toEqual({
      name: 'n',
      terms: [
        { integer: -9223372036854775808n },
        { integer: 9223372036854775807n },
        { integer: 0n },
        { bool: true },
        { bool: false },
        { bytes: new Uint8Array([0, 0xff, 0x10]) },
      ],
    });
    expect(authorityBlock!.checks).toEqual([
      {
        kind: 'if',
        queries: [
          {
            body: [{ name: 'time', terms: [{ variable: 't' }] }],
            expressions: [[{ value: { variable: 't' } }, { value: { date: EXPIRY } }, { binary: 'lessOrEqual' }]],
            scopes: [],
          },
        ],
      },
    ]);
    expect(attenuation!.checks[0]!.queries[0]!.expressions[0]).toEqual([
      { value: { set: [{ string: 'pg:appdb/public.orders' }, { string: 'pg:appdb/public.customers' }] } },
      { value: { variable: 'r' } },
      { binary: 'contains' },
    ]);
    expect(attenuation!.checks[1]!.queries).toHaveLength(2);
    // Only symbols that are neither default nor already in the token are listed per block.
    expect(attenuation!.symbols).not.toContain('resource');
    expect(attenuation!.symbols).toContain('delegated_to');
    expect(attenuation!.nextKey.algorithm).toBe('ed25519');
    expect(attenuation!.nextKey.bytes).toHaveLength(32);
    expect(attenuation!.signature).toHaveLength(64);
  });

  it('prints checks that biscuit-wasm parses back to the same checks', () => {
    const decoded = decodeToken(grandchild);
    for (const block of decoded.blocks) {
      const again = decodeToken(mint(root, toPre33Syntax(blockToDatalog(block)))).blocks[0]!;
      expect(canonical({ facts: again.facts, rules: again.rules, checks: again.checks })).toEqual(
        canonical({ facts: block.facts, rules: block.rules, checks: block.checks }),
      );
    }
  });

  it.each(HOSTILE)('keeps the hostile string %j exact and prints it escaped', (hostile) => {
    const token = wasmAppend(
      root,
      mint(root, 'subject({s}); right({s}, "read");', { s: hostile }),
      'purpose({p}); check if resource($r), {set}.contains($r);',
      { p: hostile, set: [hostile, 'other'] },
    );
    const [a, b] = decodeToken(token).blocks;
    expect(a!.facts).toEqual([
      { name: 'subject', terms: [{ string: hostile }] },
      { name: 'right', terms: [{ string: hostile }, { string: 'read' }] },
    ]);
    expect(b!.facts).toEqual([{ name: 'purpose', terms: [{ string: hostile }] }]);
    // The printed text has exactly the statements of the block: an injection attempt stays a string.
    const again = decodeToken(replay(token, 1)).blocks[0]!;
    expect(again.facts).toEqual(b!.facts);
    expect(canonical(again.checks)).toEqual(canonical(b!.checks));
    expect(decodeToken(replay(token, 0)).blocks[0]!.facts).toEqual(a!.facts);
  });

  it('round-trips arbitrary unicode strings through the printer and biscuit-wasm (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (s) => {
        const token = mint(root, 'purpose({s});', { s });
        const fact = decodeToken(token).blocks[0]!.facts[0]!;
        expect(fact).toEqual({ name: 'purpose', terms: [{ string: s }] });
        const printed = blockToDatalog({ facts: [fact] });
        expect(printed).toBe(`purpose(${quoteString(s)});\n`);
        expect(decodeToken(mint(root, printed)).blocks[0]!.facts[0]).toEqual(fact);
      }),
      { numRuns: 150 },
    );
  });

  it('accepts the token as bytes and without base64 padding', () => {
    const bytes = new Uint8Array(Buffer.from(child, 'base64url'));
    expect(decodeToken(bytes).blocks).toHaveLength(2);
    expect(decodeToken(child.replace(/=+$/, '')).blocks).toHaveLength(2);
  });

  it('refuses to print names Datalog cannot spell instead of printing something else', () => {
    const evil: Term = { string: 'fine' };
    expect(() => blockToDatalog({ facts: [{ name: 'a("x"); right', terms: [evil] }] })).toThrow(BatonError);
    try {
      blockToDatalog({ facts: [{ name: 'p', terms: [{ variable: 'x) or true' }] }] });
      expect.unreachable();
    } catch (err) {
      expect((err as BatonError).code).toBe('BATON_ERR_TOKEN_MALFORMED');
    }
  });
});

describe('blockToDatalog writes the current grammar (Datalog v3.3), whatever the block version', () => {
  const print = (...expressions: Expression[]): string => blockToDatalog({ checks: [checkIf(query([], ...expressions))] });
  /** `receiver.try_or(fallback)` as biscuit-parser writes it: the receiver in a parameterless closure. */
  const tryOr = (receiver: Expression, fallback: Term): Expression => [
    { closure: { params: [], ops: receiver } },
    { value: fallback },
    { binary: 'tryOr' },
  ];

  it('prints strict and lenient equality, sets, arrays and maps as the specification does', () => {
    expect(print(binary('equal', int(1), int(1)), binary('notEqual', str('a'), str('b')))).toBe(
      'check if 1 === 1, "a" !== "b";\n',
    );
    expect(print(binary('heterogeneousEqual', int(1), str('1')), binary('heterogeneousNotEqual', int(1), bool(true)))).toBe(
      'check if 1 == "1", 1 != true;\n',
    );
    expect(print(binary('contains', set(int(1), int(2)), int(2)), binary('equal', unary('length', set()), int(0)))).toBe(
      'check if {1, 2}.contains(2), {,}.length() === 0;\n',
    );
    const array: Term = { array: [int(1), str('x')] };
    const map: Term = { map: [{ key: 'k', value: int(1) }, { key: 2n, value: { null: true } }] };
    expect(print(binary('heterogeneousEqual', array, map))).toBe(
      'check if [1, "x"] == {"k": 1, 2: null};\n',
    );
  });

  it('relies on the grammar for bitwise precedence (`^` < `|` < `&`) and parenthesises only against it', () => {
    const or12 = binary('bitwiseOr', int(1), int(2));
    expect(print(binary('equal', binary('bitwiseXor', or12, int(3)), int(0)))).toBe('check if 1 | 2 ^ 3 === 0;\n');
    const xor23 = binary('bitwiseXor', int(2), int(3));
    expect(print(binary('equal', binary('bitwiseOr', int(1), xor23), int(0)))).toBe('check if 1 | (2 ^ 3) === 0;\n');
  });

  it('prints `try_or` (sample test038), parenthesising a bare receiver, and refuses a malformed one', () => {
    const strict = binary('equal', bool(true), int(12));
    expect(print(tryOr(unary('parens', strict), bool(true)))).toBe('check if (true === 12).try_or(true);\n');
    expect(print(tryOr(strict, bool(true)))).toBe('check if (true === 12).try_or(true);\n');
    expect(print(tryOr([{ value: bool(true) }], bool(false)))).toBe('check if true.try_or(false);\n');
    try {
      print([{ value: bool(true) }, { value: bool(false) }, { binary: 'tryOr' }]);
      expect.unreachable();
    } catch (err) {
      expect((err as BatonError).code).toBe('BATON_ERR_TOKEN_MALFORMED');
    }
  });

  it('encodes `try_or` in a version 6 block (only when allowed) and decodes it back', () => {
    const parent = mint(root, 'right("r", "read");');
    const check = checkIf(query([], tryOr(unary('parens', binary('equal', bool(true), int(12))), bool(true))));
    expect(() => appendBlock(parent, { checks: [check] })).toThrow();
    const child = decodeToken(appendBlock(parent, { checks: [check] }, { maxVersion: SCHEMA_VERSION.V3_3 })).blocks[1]!;
    expect(child.version).toBe(SCHEMA_VERSION.V3_3);
    expect(child.checks).toEqual([check]);
    expect(blockToDatalog(child)).toBe('check if (true === 12).try_or(true);\n');
  });
});
