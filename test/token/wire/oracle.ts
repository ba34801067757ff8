/**
 * biscuit-wasm as the test oracle for the wire codec: mint, append, verify, authorize with the real
 * library. Shared by the tests in this folder.
 */
import { Biscuit, BiscuitBuilder, BlockBuilder, KeyPair, PublicKey } from '../../../src/token/biscuit.ts';
import { describe as describeError } from '../../../src/errors.ts';

export interface Root {
  keyPair: KeyPair;
  /** A fresh PublicKey each call: biscuit-wasm consumes some of them. */
  publicKey(): PublicKey;
}

export function newRoot(): Root {
  const keyPair = new KeyPair();
  const hex = keyPair.getPublicKey().toString().replace('ed25519/', '');
  return { keyPair, publicKey: () => PublicKey.fromString(hex) };
}

/** Mints an authority block from Datalog with parameters (the way the broker does). */
export function mint(root: Root, code: string, params: Record<string, unknown> = {}, rootKeyId?: number): string {
  const b = new BiscuitBuilder();
  b.addCodeWithParameters(code, params, {});
  if (rootKeyId !== undefined) b.setRootKeyId(rootKeyId);
  const token = b.build(root.keyPair.getPrivateKey());
  try {
    return token.toBase64();
  } finally {
    token.free();
  }
}

/** Appends a block with biscuit-wasm (verifying the parent with the root key first). */
export function wasmAppend(root: Root, token: string, code: string, params: Record<string, unknown> = {}): string {
  const parent = Biscuit.fromBase64(token, root.publicKey());
  const block = new BlockBuilder();
  block.addCodeWithParameters(code, params, {});
  const child = parent.appendBlock(block);
  try {
    return child.toBase64();
  } finally {
    child.free();
    parent.free();
  }
}

/** Parses with the root key (throws if any signature is wrong). */
export function verified(root: Root, token: string, publicKey: PublicKey = root.publicKey()): Biscuit {
  return Biscuit.fromBase64(token, publicKey);
}

/** What biscuit-wasm reports for a token: block sources and revocation ids. */
export function report(root: Root, token: string): { sources: string[]; revocationIds: string[] } {
  const b = verified(root, token);
  try {
    const sources = Array.from({ length: b.countBlocks() }, (_, i) => b.getBlockSource(i));
    return { sources, revocationIds: b.getRevocationIdentifiers() as string[] };
  } finally {
    b.free();
  }
}

const LIMITS = { max_facts: 10_000, max_iterations: 100, max_time_micro: 200_000 };

/**
 * Authorizes one (resource, operation) at `now` against a verified token: true = allowed,
 * false = a check or policy failed. A run limit (cold engine) is retried, never a deny.
 */
export function allows(root: Root, token: string, resource: string, operation: string, now: Date): boolean {
  for (let attempt = 0; ; attempt++) {
    const b = verified(root, token);
    const authorizer = b.getAuthorizer();
    try {
      authorizer.addCodeWithParameters(
        'time({now}); resource({resource}); operation({operation}); allow if right({resource}, {operation});',
        { now: { date: now.toISOString() }, resource, operation },
        {},
      );
      authorizer.authorizeWithLimits(LIMITS);
      return true;
    } catch (err) {
      const text = describeError(err);
      if (text.includes('FailedLogic')) return false;
      if (!text.includes('RunLimit') || attempt >= 5) throw new Error(`authorizer error: ${text}`);
    } finally {
      authorizer.free();
      b.free();
    }
  }
}

/**
 * Tokens of Datalog text that differ between the pre-3.3 grammar (biscuit-wasm 0.5) and the current
 * one: string literals (skipped whole, escapes included), the equality operators, set brackets.
 */
const SYNTAX_TOKENS = /"(?:[^"\\]|\\.)*"|===|!==|==|!=|\{,\}|\[\]|[[\]{}]/gs;

/**
 * Our printer writes the current grammar (Datalog v3.3); biscuit-wasm 0.5 parses only the pre-3.3 one.
 * Translates text of a pre-3.3 block (no maps, arrays or lenient equality, which this refuses) so
 * biscuit-wasm 0.5 can parse it: `{…}` → `[…]`, `{,}` → `[]`, `===` → `==`, `!==` → `!=`.
 */
export function toPre33Syntax(text: string): string {
  return text.replace(SYNTAX_TOKENS, (t) => {
    if (t.startsWith('"')) return t;
    const map: Record<string, string> = { '===': '==', '!==': '!=', '{,}': '[]', '{': '[', '}': ']' };
    const out = map[t];
    if (out === undefined) throw new Error(`${t} has no pre-3.3 form (in ${JSON.stringify(text)})`);
    return out;
  });
}

/**
 * The inverse, for what biscuit-wasm 0.5's `getBlockSource` prints: `[…]` (always a set before v3.3)
 * → `{…}`, `[]` → `{,}`, `==` → `===`, `!=` → `!==`. Only for text whose strings hold no `"`
 * (biscuit-wasm prints strings unescaped).
 */
export function toCurrentSyntax(text: string): string {
  return text.replace(SYNTAX_TOKENS, (t) => {
    if (t.startsWith('"')) return t;
    const map: Record<string, string> = { '==': '===', '!=': '!==', '[]': '{,}', '[': '{', ']': '}' };
    const out = map[t];
    if (out === undefined) throw new Error(`${t} is not pre-3.3 syntax (in ${JSON.stringify(text)})`);
    return out;
  });
}

/** Sets are unordered: biscuit-wasm orders them by symbol index, which differs between tokens. */
export function canonical(value: unknown): unknown {
  const key = (v: unknown): string => JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? `${x}n` : x));
  if (Array.isArray(value)) return value.map(canonical);
  if (value instanceof Uint8Array || value instanceof Date || value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [
      k,
      k === 'set' ? (v as unknown[]).map(canonical).sort((x, y) => key(x).localeCompare(key(y))) : canonical(v),
    ]),
  );
}
