import { describe, expect, it } from 'vitest';
import { BatonError } from '../../../src/errors.ts';
import { Biscuit } from '../../../src/token/biscuit.ts';
import {
  appendBlock,
  binary,
  blockToDatalog,
  checkAll,
  checkIf,
  date,
  decodeToken,
  pred,
  query,
  sealToken,
  set,
  str,
  trusting,
  variable,
  type BlockModel,
} from '../../../src/token/wire/index.ts';
import { allows, mint, newRoot, report, toCurrentSyntax, verified, wasmAppend } from './oracle.ts';

const root = newRoot();
const NOW = new Date('2026-11-23T12:00:00Z');
const ORDERS = 'pg:appdb/public.orders';
const CUSTOMERS = 'pg:appdb/public.customers';

const parent = mint(
  root,
  `token_id("tok_1"); subject("alice@example.com"); agent("planner");
   right({orders}, "read"); right({orders}, "write"); right({customers}, "read");
   check if time($t), $t <= 2026-11-23T13:00:00Z;`,
  { orders: ORDERS, customers: CUSTOMERS },
  1,
);

/** DESIGN.md's attenuation block, built from the generic model. */
const attenuation: BlockModel = {
  facts: [pred('delegated_to', str('helper-7')), pred('purpose', str('summarise "yesterday\'s" orders\n'))],
  checks: [
    checkIf(query([pred('resource', variable('r'))], binary('contains', set(str(ORDERS), str('b')), variable('r')))),
    checkIf(query([pred('operation', variable('op'))], binary('contains', set(str('read')), variable('op')))),
    checkIf(query([pred('time', variable('t'))], binary('lessOrEqual', variable('t'), date(new Date('2026-11-23T12:35:00Z'))))),
  ],
};

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof BatonError) return err.code;
    throw err;
  }
  return 'no error';
}

describe('appendBlock', () => {
  it('appends a block that biscuit-wasm verifies with the root key and prints as we do', () => {
    const child = appendBlock(parent, attenuation);
    const lib = report(root, child);
    const decoded = decodeToken(child);
    expect(lib.sources).toHaveLength(2);
    expect(decoded.blocks[1]!.version).toBe(3);
    expect(decoded.blocks.map((b) => b.revocationId)).toEqual(lib.revocationIds);
    // biscuit-wasm prints quotes unescaped, so compare with a block free of them.
    const plain = appendBlock(parent, { ...attenuation, facts: [pred('purpose', str('plain'))] });
    expect(toCurrentSyntax(report(root, plain).sources[1]!)).toBe(blockToDatalog(decodeToken(plain).blocks[1]!));
    expect(decoded.blocks[1]!.facts).toEqual(attenuation.facts);
  });

  it("narrows what biscuit-wasm's authorizer allows", () => {
    const child = appendBlock(parent, attenuation);
    expect(allows(root, parent, CUSTOMERS, 'read', NOW)).toBe(true);
    expect(allows(root, parent, ORDERS, 'write', NOW)).toBe(true);
    expect(allows(root, child, ORDERS, 'read', NOW)).toBe(true);
    expect(allows(root, child, CUSTOMERS, 'read', NOW)).toBe(false);
    expect(allows(root, child, ORDERS, 'write', NOW)).toBe(false);
    expect(allows(root, child, ORDERS, 'read', new Date('2026-11-23T12:40:00Z'))).toBe(false);
  });

  it('expresses prefix checks, several `or` queries, check all and v3.1 operators', () => {
    const block: BlockModel = {
      checks: [
        checkIf(
          query([pred('resource', variable('r'))], binary('prefix', variable('r'), str('pg:appdb/public.ord'))),
          query([pred('resource', variable('r'))], binary('equal', variable('r'), str('http:billing/invoices/'))),
        ),
        checkAll(query([pred('operation', variable('op'))], binary('notEqual', variable('op'), str('write')))),
        checkIf(trusting(query([pred('right', variable('r'), variable('op'))]), 'authority')),
      ],
    };
    const child = appendBlock(parent, block);
    expect(decodeToken(child).blocks[1]!.version).toBe(4);
    expect(report(root, child).sources[1]).toBe(
      'check if resource($r), $r.starts_with("pg:appdb/public.ord") or resource($r), $r == "http:billing/invoices/";\n' +
        'check all operation($op), $op != "write";\n' +
        'check if right($r, $op) trusting authority;\n',
    );
    expect(allows(root, child, ORDERS, 'read', NOW)).toBe(true);
    expect(allows(root, child, CUSTOMERS, 'read', NOW)).toBe(false);
    expect(allows(root, child, ORDERS, 'write', NOW)).toBe(false);
  });

  it('chains three appends, interleaves with biscuit-wasm, and keeps revocation ids a prefix', () => {
    const tokens = [parent];
    tokens.push(appendBlock(tokens.at(-1)!, attenuation));
    tokens.push(wasmAppend(root, tokens.at(-1)!, 'delegated_to("helper-8"); check if operation($op), ["read"].contains($op);'));
    tokens.push(appendBlock(tokens.at(-1)!, { facts: [pred('delegated_to', str('helper-9')), pred('note', str('helper-8'))] }));
    tokens.push(appendBlock(tokens.at(-1)!, { facts: [pred('delegated_to', str('helper-10'))] }));
    tokens.push(wasmAppend(root, tokens.at(-1)!, 'delegated_to("helper-11"); note("helper-9");'));
    let previous: string[] = [];
    tokens.forEach((token, i) => {
      const lib = report(root, token);
      const decoded = decodeToken(token);
      expect(lib.revocationIds).toHaveLength(i + 1);
      expect(lib.revocationIds.slice(0, i)).toEqual(previous);
      expect(decoded.blocks.map((b) => b.revocationId)).toEqual(lib.revocationIds);
      // Symbols shared across blocks resolve the same way in biscuit-wasm and here.
      expect(decoded.blocks.map((b) => blockToDatalog(b))).toEqual(
        lib.sources.map((s) =>
          toCurrentSyntax(s.replace(/summarise "yesterday's" orders\n/, 'summarise \\"yesterday\'s\\" orders\\n')),
        ),
      );
      previous = lib.revocationIds;
    });
    const last = decodeToken(tokens.at(-1)!);
    // Reused strings are not re-declared: "helper-8" came from block 2, "helper-9" from block 3.
    expect(last.blocks[3]!.symbols).toEqual(['helper-9', 'note']);
    expect(last.blocks[5]!.symbols).toEqual(['helper-11']);
    expect(allows(root, tokens.at(-1)!, ORDERS, 'read', NOW)).toBe(true);
    expect(allows(root, tokens.at(-1)!, CUSTOMERS, 'read', NOW)).toBe(false);
  });

  it('produces a token biscuit-wasm rejects under another root key or with a tampered block', () => {
    const child = appendBlock(appendBlock(parent, attenuation), { facts: [pred('delegated_to', str('x'))] });
    expect(() => verified(root, child, newRoot().publicKey())).toThrow();
    // Flip one byte inside the appended block's payload (the "x" symbol): the chain must break.
    const bytes = Buffer.from(child, 'base64url');
    const at = bytes.lastIndexOf(Buffer.from('delegated_to'));
    bytes[at]! ^= 0x01;
    expect(() => Biscuit.fromBase64(bytes.toString('base64url'), root.publicKey())).toThrow();
    expect(() => verified(root, child)).not.toThrow();
  });

  it('seals offline: biscuit-wasm verifies the seal and nobody can append after it', () => {
    const child = appendBlock(parent, attenuation);
    const sealed = sealToken(child);
    expect(decodeToken(sealed).sealed).toBe(true);
    expect(report(root, sealed).revocationIds).toEqual(report(root, child).revocationIds);
    expect(allows(root, sealed, ORDERS, 'read', NOW)).toBe(true);
    expect(code(() => appendBlock(sealed, attenuation))).toBe('BATON_ERR_TOKEN_SEALED');
    expect(code(() => sealToken(sealed))).toBe('BATON_ERR_TOKEN_SEALED');
    // A token sealed by biscuit-wasm is refused the same way.
    const b = verified(root, child);
    const wasmSealed = b.sealToken();
    expect(code(() => appendBlock(wasmSealed.toBase64(), attenuation))).toBe('BATON_ERR_TOKEN_SEALED');
    wasmSealed.free();
    b.free();
  });

  it('rejects a proof secret that does not belong to the chain', () => {
    const a = Buffer.from(appendBlock(parent, attenuation), 'base64url');
    const other = Buffer.from(appendBlock(parent, attenuation), 'base64url');
    // The proof (field 4, a 32-byte nextSecret) ends both tokens: graft b's secret onto a.
    const forged = Buffer.concat([a.subarray(0, a.length - 32), other.subarray(other.length - 32)]);
    expect(code(() => appendBlock(forged.toString('base64url'), attenuation))).toBe('BATON_ERR_TOKEN_MALFORMED');
  });

  it('throws TypeError for a model that is not a valid block', () => {
    const bad: BlockModel[] = [
      { facts: [pred('bad name', str('x'))] },
      { facts: [pred('f', variable('x'))] },
      { facts: [pred('f')] },
      { facts: [pred('f', str('\ud800'))] },
      { facts: [pred('f', { integer: 2n ** 63n })] },
      { facts: [pred('f', set(str('a'), { integer: 1n }))] },
      { checks: [checkIf()] },
      { checks: [checkIf(query([], [{ binary: 'add' }]))] },
      { rules: [{ head: pred('h', variable('x')), body: [pred('b', variable('y'))], expressions: [], scopes: [] }] },
      // reject if is Datalog v3.3 (version 6), which biscuit-wasm 0.5 cannot read
      { checks: [{ kind: 'reject', queries: [query([pred('resource', variable('r'))])] }] },
    ];
    for (const block of bad) expect(() => appendBlock(parent, block), JSON.stringify(Object.keys(block))).toThrow(TypeError);
  });
});
