/**
 * Verified token chains, by token text, shared by the proxies' requests and sessions. HTTP has no session: every request carries
 * its token, and verifying a Biscuit chain costs far more than relaying a small request, so a chain
 * verified once is kept (least recently used first out) and only its liveness — expiry, revocation,
 * key retirement — is checked per request (TokenChain.liveness), in memory.
 *
 * A chain may still be in use when it is evicted (a streamed response, an MCP list being filtered):
 * leases count its users, and the wasm object is freed when the last one lets go.
 */
import type { TokenChain } from './token-chain.ts';

interface Entry {
  chain: TokenChain;
  users: number;
  evicted: boolean;
}

/** A chain in use; `release()` exactly once when the request is over. */
export interface ChainLease {
  chain: TokenChain;
  release(): void;
}

export class TokenChainCache {
  readonly #max: number;
  readonly #entries = new Map<string, Entry>();
  /** Verifications in flight, so that a burst of requests with one new token verifies it once. */
  readonly #pending = new Map<string, Promise<TokenChain>>();
  readonly #verify: (token: string) => Promise<TokenChain>;
  readonly #evictedChains = new WeakSet<TokenChain>();

  /** @example new TokenChainCache(4096, (t) => TokenChain.verify(t, keys)) */
  constructor(max: number, verify: (token: string) => Promise<TokenChain>) {
    if (!Number.isInteger(max) || max < 1) throw new TypeError('TokenChainCache: max must be a positive integer');
    this.#max = max;
    this.#verify = verify;
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * The verified chain of `token`, leased. Rejects with the verifier's error (malformed, bad
   * signature, unknown key …); failures are not cached.
   */
  async lease(token: string): Promise<ChainLease> {
    const hit = this.#entries.get(token);
    if (hit) {
      // most recently used last: Map keeps insertion order
      this.#entries.delete(token);
      this.#entries.set(token, hit);
      return this.#leaseOf(hit);
    }
    let pending = this.#pending.get(token);
    if (!pending) {
      pending = this.#verify(token).finally(() => this.#pending.delete(token));
      this.#pending.set(token, pending);
    }
    const chain = await pending;
    // a waiter of the same verification may find it inserted, or (tiny caches) already evicted:
    // then it verifies afresh rather than share a chain another entry will free
    if (this.#evictedChains.has(chain)) return this.lease(token);
    const entry = this.#entries.get(token) ?? this.#insert(token, chain);
    return this.#leaseOf(entry);
  }

  /** Forgets every chain (freed once unused). */
  clear(): void {
    for (const [token, entry] of this.#entries) this.#evict(token, entry);
  }

  #insert(token: string, chain: TokenChain): Entry {
    const entry: Entry = { chain, users: 0, evicted: false };
    this.#entries.set(token, entry);
    while (this.#entries.size > this.#max) {
      const [oldest, old] = this.#entries.entries().next().value as [string, Entry];
      this.#evict(oldest, old);
    }
    return entry;
  }

  #evict(token: string, entry: Entry): void {
    this.#entries.delete(token);
    entry.evicted = true;
    this.#evictedChains.add(entry.chain);
    if (entry.users === 0) entry.chain.free();
  }

  #leaseOf(entry: Entry): ChainLease {
    entry.users++;
    let released = false;
    return {
      chain: entry.chain,
      release: () => {
        if (released) return;
        released = true;
        entry.users--;
        if (entry.evicted && entry.users === 0) entry.chain.free();
      },
    };
  }
}
