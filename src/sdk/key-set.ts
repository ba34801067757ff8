/**
 * The broker's public key set (`/.well-known/baton-keys.json`) as the SDK reads it: a few lines of
 * hand validation instead of a schema library, so the SDK depends on nothing but the Biscuit
 * packages. Same rules as the broker's zod schema (src/token/keys.ts).
 */
import { PublicKey } from '../token/biscuit.ts';

/** One root key of the set. */
export interface KeySetKey {
  id: number;
  algorithm: 'ed25519';
  /** 32 bytes, lower-case hex. */
  public_key: string;
  status: 'active' | 'verify';
  created_at: string;
}

/** The public key set document, as served at `/.well-known/baton-keys.json`. */
export interface KeySetDocument {
  keys: KeySetKey[];
}

/** Where verifiers find a token's root public key (by its `root_key_id`). */
export interface KeyResolver {
  /** A FRESH PublicKey for `id` (biscuit-wasm may consume it), or undefined when unknown/retired. */
  publicKey(id: number): InstanceType<typeof PublicKey> | undefined;
}

function invalid(what: string): never {
  throw new TypeError(`invalid key set document: ${what}`);
}

/**
 * Checks a key set document (e.g. the JSON fetched from the broker) and returns it typed.
 * @throws TypeError when it is not a key set
 */
export function parseKeySet(doc: unknown): KeySetDocument {
  if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { keys?: unknown }).keys)) invalid('expected { keys: [...] }');
  const keys = (doc as { keys: unknown[] }).keys.map((k, i): KeySetKey => {
    const key = k as Record<string, unknown>;
    if (typeof k !== 'object' || k === null) invalid(`keys[${i}] is not an object`);
    const { id, algorithm, public_key, status, created_at } = key;
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 1 || id > 0xffffffff) invalid(`keys[${i}].id`);
    if (algorithm !== 'ed25519') invalid(`keys[${i}].algorithm`);
    if (typeof public_key !== 'string' || !/^[0-9a-f]{64}$/.test(public_key)) invalid(`keys[${i}].public_key`);
    if (status !== 'active' && status !== 'verify') invalid(`keys[${i}].status`);
    if (typeof created_at !== 'string') invalid(`keys[${i}].created_at`);
    return { id, algorithm, public_key, status, created_at };
  });
  return { keys };
}

/** A resolver over a published key set document (what proxies and SDK users hold). */
export function keySetResolver(doc: KeySetDocument): KeyResolver {
  const byId = new Map(doc.keys.map((k) => [k.id, k.public_key]));
  return {
    publicKey(id) {
      const hex = byId.get(id);
      return hex ? PublicKey.fromString(hex) : undefined;
    },
  };
}
