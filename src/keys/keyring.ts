/**
 * The broker's Ed25519 root keys. Each key has a numeric `id` that is written into every token as
 * Biscuit's `root_key_id`, so verifiers pick the right public key without trial and error.
 *
 * Life cycle: `active` (signs new tokens; exactly one) → `verify` (after a rotation: still verifies
 * tokens it signed) → `retired` (no longer published; its tokens stop verifying).
 * Stored as JSON in a file with mode 0600 inside a 0700 directory; private keys are never logged.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import { KeyPair, PrivateKey, PublicKey } from '../token/biscuit.ts';

const StoredKey = z.strictObject({
  id: z.number().int().min(1).max(0xffffffff),
  algorithm: z.literal('ed25519'),
  privateKey: z.string().regex(/^[0-9a-f]{64}$/),
  publicKey: z.string().regex(/^[0-9a-f]{64}$/),
  status: z.enum(['active', 'verify', 'retired']),
  createdAt: z.string(),
});
const StoredKeyring = z.strictObject({ keys: z.array(StoredKey) });
export type StoredKey = z.infer<typeof StoredKey>;

/** One entry of the public key set served at `/.well-known/baton-keys.json`. */
export interface PublishedKey {
  id: number;
  algorithm: 'ed25519';
  public_key: string;
  status: 'active' | 'verify';
  created_at: string;
}

/** Called after the published key set changed (rotate, retire, or a reload of the file). */
export type KeyringListener = (published: readonly PublishedKey[]) => void;

export class Keyring {
  readonly #path: string | undefined;
  #keys: StoredKey[];
  readonly #listeners = new Set<KeyringListener>();
  /** Tag of the published set (for ETag / change detection); recomputed after every change. */
  #tag = '';
  /** mtime of the file as last read or written, to notice `baton keys rotate` by another process. */
  #mtimeMs = 0;

  private constructor(path: string | undefined, keys: StoredKey[]) {
    this.#path = path;
    this.#keys = keys;
    this.#tag = publishedTag(this.published());
  }

  /** Opens the keyring file, creating it with a fresh active key when missing. */
  static open(path: string): Keyring {
    if (!existsSync(path)) {
      const ring = new Keyring(path, []);
      ring.rotate();
      return ring;
    }
    const ring = new Keyring(path, readKeyFile(path));
    ring.#active(); // refuse a keyring without exactly one active key
    ring.#mtimeMs = statSync(path).mtimeMs;
    return ring;
  }

  /**
   * Re-reads the file when another process (`baton keys rotate|retire`) changed it. Returns the
   * previous and new active key ids when the active key changed. A broken file is ignored (the keys
   * in memory stay in force) and reported by throwing.
   */
  reloadIfChanged(): { from: number; to: number } | undefined {
    if (!this.#path) return undefined;
    const mtimeMs = statSync(this.#path).mtimeMs;
    if (mtimeMs === this.#mtimeMs) return undefined;
    const keys = readKeyFile(this.#path);
    const active = keys.filter((k) => k.status === 'active');
    if (active.length !== 1) throw new Error(`keyring ${this.#path} must have exactly one active key, found ${active.length}`);
    const from = this.#active().id;
    this.#keys = keys;
    this.#mtimeMs = mtimeMs;
    this.#changed();
    return from === active[0]!.id ? undefined : { from, to: active[0]!.id };
  }

  /**
   * Registers `listener` for changes of the published set (a retirement, a rotation, a reload that
   * changed either); returns a function that removes it. Listeners must not throw.
   */
  onChange(listener: KeyringListener): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  /** A short hash of the published set: equal tags, equal sets (the key-set route's ETag). */
  get tag(): string {
    return this.#tag;
  }

  /** Whether `id` is published (active or verify): its tokens verify. No allocation (per statement). */
  has(id: number): boolean {
    return this.#keys.some((k) => k.id === id && k.status !== 'retired');
  }

  /** A keyring that lives only in memory (tests, benchmarks). */
  static ephemeral(): Keyring {
    const ring = new Keyring(undefined, []);
    ring.rotate();
    return ring;
  }

  /** Adds a new active key; the previous active key keeps verifying. Returns the new key's id. */
  rotate(): number {
    const pair = new KeyPair();
    const id = this.#keys.reduce((max, k) => Math.max(max, k.id), 0) + 1;
    for (const k of this.#keys) if (k.status === 'active') k.status = 'verify';
    this.#keys.push({
      id,
      algorithm: 'ed25519',
      privateKey: pair.getPrivateKey().toString(),
      publicKey: pair.getPublicKey().toString(),
      status: 'active',
      createdAt: new Date().toISOString(),
    });
    pair.free();
    this.#save();
    this.#changed();
    return id;
  }

  /** Retires a non-active key: it is no longer published and its tokens stop verifying. */
  retire(id: number): void {
    const key = this.#keys.find((k) => k.id === id);
    if (!key) throw new TypeError(`no key with id ${id}`);
    if (key.status === 'active') throw new TypeError('the active key cannot be retired; rotate first');
    key.status = 'retired';
    this.#save();
    this.#changed();
  }

  /** The signing key: id and a fresh PrivateKey (biscuit-wasm consumes some objects; never share one). */
  signingKey(): { id: number; privateKey: InstanceType<typeof PrivateKey> } {
    const key = this.#active();
    return { id: key.id, privateKey: PrivateKey.fromString(key.privateKey) };
  }

  /** Keys that still verify tokens (active + verify), for the public set. */
  published(): PublishedKey[] {
    return this.#keys
      .filter((k): k is StoredKey & { status: 'active' | 'verify' } => k.status !== 'retired')
      .map((k) => ({ id: k.id, algorithm: k.algorithm, public_key: k.publicKey, status: k.status, created_at: k.createdAt }));
  }

  /** A fresh PublicKey for the given id, or undefined when unknown or retired. */
  publicKey(id: number): InstanceType<typeof PublicKey> | undefined {
    const key = this.#keys.find((k) => k.id === id && k.status !== 'retired');
    return key ? PublicKey.fromString(key.publicKey) : undefined;
  }

  /** Recomputes the tag; tells listeners when the published set really changed. */
  #changed(): void {
    const published = this.published();
    const tag = publishedTag(published);
    if (tag === this.#tag) return;
    this.#tag = tag;
    for (const listener of this.#listeners) {
      try {
        listener(published);
      } catch {
        // a listener's failure must not undo or hide the change itself
      }
    }
  }

  #active(): StoredKey {
    const active = this.#keys.filter((k) => k.status === 'active');
    if (active.length !== 1) throw new Error(`keyring must have exactly one active key, found ${active.length}`);
    return active[0]!;
  }

  #save(): void {
    if (!this.#path) return;
    mkdirSync(dirname(this.#path), { recursive: true, mode: 0o700 });
    const tmp = `${this.#path}.tmp`;
    writeFileSync(tmp, JSON.stringify({ keys: this.#keys }, null, 2), { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, this.#path);
    this.#mtimeMs = statSync(this.#path).mtimeMs;
  }
}

function publishedTag(published: readonly PublishedKey[]): string {
  return createHash('sha256').update(JSON.stringify(published)).digest('base64url').slice(0, 22);
}

function readKeyFile(path: string): StoredKey[] {
  const parsed = StoredKeyring.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!parsed.success) throw new Error(`keyring ${path} is not valid: ${z.prettifyError(parsed.error)}`);
  return parsed.data.keys;
}
