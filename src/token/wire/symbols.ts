/**
 * Symbol and public-key interning, as Biscuit blocks use them.
 *
 * Strings, predicate names and variable names are all stored as `u64` indices: below 1024 into a fixed
 * default table, from 1024 on into the concatenation of the `symbols` lists of the token's first-party
 * blocks. A third-party block (one with an external signature) interns into its own table instead, so
 * the party that signs it never needs the token's table. Public keys used in `trusting` scopes are
 * interned the same way into a key table (indices from 0).
 *
 * @see https://github.com/biscuit-auth/biscuit-rust/blob/main/biscuit-auth/src/datalog/symbol.rs
 */
import type { PublicKeyModel } from './model.ts';

/** The default symbols, indices 0…27 (`DEFAULT_SYMBOLS` in biscuit-rust). */
export const DEFAULT_SYMBOLS: readonly string[] = Object.freeze([
  'read',
  'write',
  'resource',
  'operation',
  'right',
  'time',
  'role',
  'owner',
  'tenant',
  'namespace',
  'user',
  'team',
  'service',
  'admin',
  'email',
  'group',
  'member',
  'ip_address',
  'client',
  'client_ip',
  'domain',
  'path',
  'version',
  'cluster',
  'node',
  'hostname',
  'nonce',
  'query',
]);

/** First index of the token-defined symbols. */
export const SYMBOL_OFFSET = 1024;

const DEFAULT_INDEX = new Map(DEFAULT_SYMBOLS.map((s, i) => [s, i]));

/** A symbol table: the defaults plus the symbols of the blocks seen so far, plus any new ones. */
export class SymbolTable {
  readonly #symbols: string[];
  readonly #index = new Map<string, number>();
  /** Where symbols added by `insert` start (they are the new block's `symbols`). */
  readonly #base: number;

  constructor(symbols: readonly string[] = []) {
    this.#symbols = [...symbols];
    this.#symbols.forEach((s, i) => {
      if (!this.#index.has(s)) this.#index.set(s, i);
    });
    this.#base = this.#symbols.length;
  }

  /** The string at `index`, or undefined when the index is unknown. */
  lookup(index: bigint): string | undefined {
    if (index < BigInt(SYMBOL_OFFSET)) return DEFAULT_SYMBOLS[Number(index)];
    const i = index - BigInt(SYMBOL_OFFSET);
    return i < BigInt(this.#symbols.length) ? this.#symbols[Number(i)] : undefined;
  }

  /** The index of `s`, interning it as a new symbol when neither default nor known. */
  insert(s: string): number {
    const d = DEFAULT_INDEX.get(s);
    if (d !== undefined) return d;
    let i = this.#index.get(s);
    if (i === undefined) {
      i = this.#symbols.push(s) - 1;
      this.#index.set(s, i);
    }
    return SYMBOL_OFFSET + i;
  }

  /** Symbols added by `insert` since construction. */
  added(): string[] {
    return this.#symbols.slice(this.#base);
  }
}

/** The public-key table of a token or of a third-party block. */
export class PublicKeyTable {
  readonly #keys: PublicKeyModel[] = [];

  constructor(keys: readonly PublicKeyModel[] = []) {
    for (const k of keys) this.insert(k);
  }

  lookup(index: bigint): PublicKeyModel | undefined {
    return index >= 0n && index < BigInt(this.#keys.length) ? this.#keys[Number(index)] : undefined;
  }

  /** Index of `key`, appending it when unknown. Returns whether it was new. */
  insert(key: PublicKeyModel): { index: number; added: boolean } {
    const found = this.#keys.findIndex(
      (k) => k.algorithm === key.algorithm && Buffer.from(k.bytes).equals(Buffer.from(key.bytes)),
    );
    if (found >= 0) return { index: found, added: false };
    return { index: this.#keys.push(key) - 1, added: true };
  }
}
