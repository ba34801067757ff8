/**
 * The broker's public key set as the proxy holds it. A retired key ends every session whose token it
 * signed, on that session's next statement (like a revocation), so the set must be fresh:
 *
 * - `RemoteKeySet` (standalone proxy) polls `/.well-known/baton-keys.json` every `refreshMs`
 *   (default 2 s) with `If-None-Match` (an unchanged set is an empty 304), refetches at once when the
 *   broker announces a change on the SharedState channel `keys`, and when a token names a key id it
 *   does not know (a rotation; at most once per `minRefetchMs`). It fails closed: when no refresh has
 *   succeeded for `stalenessMs` (default 5 s, the proxy's revocation staleness bound), every lookup
 *   throws BATON_ERR_REVOCATION_STALE (57P03 at the proxy): a retirement it cannot see is a
 *   revocation it cannot see.
 * - `staticKeySet` reads a file once (an operator-managed set; restart to change it).
 * - The broker's in-process proxy passes the Keyring itself, which is always current.
 *
 * Per statement the gate calls `resolver()` without a key id and `isPublished()`: memory only.
 */
import { readFileSync } from 'node:fs';
import { CoalescedRun } from '../../util/coalesced-run.ts';
import { BatonError } from '../../errors.ts';
import { KEYSET_CHANNEL } from '../../keys/follow.ts';
import type { SharedState } from '../../store/shared-state.ts';
import { keySetResolver, KeySetDocument, type KeyResolver } from '../../token/keys.ts';

export interface KeySetSource {
  /**
   * A resolver that knows every key currently published. With `wantedKeyId` (connect time) a source
   * may refetch first when that id is new; without it, no I/O. Throws BATON_ERR_REVOCATION_STALE when
   * the source cannot confirm its set is current.
   */
  resolver(wantedKeyId?: number): Promise<KeyResolver>;
  /**
   * The keys currently published, from memory (per statement); throws like `resolver` when the set
   * cannot be confirmed current. Sources that cannot answer synchronously leave it out.
   */
  current?(): KeyResolver;
}

/** A resolver that can also say, without allocating a key, whether an id is published. */
export interface PublishedKeys extends KeyResolver {
  has(id: number): boolean;
}

/** Whether `id` is published in `keys` (cheap when the resolver has `has`, as every source here does). */
export function isPublished(keys: KeyResolver, id: number): boolean {
  const has = (keys as Partial<PublishedKeys>).has;
  if (typeof has === 'function') return has.call(keys, id);
  const key = keys.publicKey(id);
  key?.free();
  return key !== undefined;
}

function documentKeys(doc: KeySetDocument): PublishedKeys {
  const resolver = keySetResolver(doc);
  const ids = new Set(doc.keys.map((k) => k.id));
  return { publicKey: (id) => resolver.publicKey(id), has: (id) => ids.has(id) };
}

export function staticKeySet(path: string): KeySetSource {
  const keys = documentKeys(KeySetDocument.parse(JSON.parse(readFileSync(path, 'utf8'))));
  return { resolver: async () => keys, current: () => keys };
}

export interface RemoteKeySetOptions {
  /** Announcements of key-set changes (the broker publishes on `keys`); optional, polling still works. */
  state?: SharedState;
  channel?: string;
  /** Poll interval. Default 2000 ms. */
  refreshMs?: number;
  /** Fail closed when no refresh succeeded for this long. Default 5000 ms; at least 2 × refreshMs. */
  stalenessMs?: number;
  /** An unknown key id triggers a refetch at most this often. Default 1000 ms. */
  minRefetchMs?: number;
  /** Per request. Default min(2000, refreshMs) ms. */
  timeoutMs?: number;
  now?: () => number;
  log?: (event: Record<string, unknown>) => void;
}

/**
 * @example
 * const keys = new RemoteKeySet(`${broker}/.well-known/baton-keys.json`, { state });
 * await keys.start(); … startPgProxy(config, { keys, … }); … await keys.stop();
 */
export class RemoteKeySet implements KeySetSource {
  readonly #url: string;
  readonly #opts: Required<Omit<RemoteKeySetOptions, 'state' | 'log'>> & Pick<RemoteKeySetOptions, 'state' | 'log'>;
  #keys: PublishedKeys | undefined;
  #etag: string | undefined;
  /** When the last successful refresh STARTED (everything retired before it is known). */
  #freshAt: number | undefined;
  readonly #fetches = new CoalescedRun(() => this.#fetch(), () => this.#stopped);
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => Promise<void>) | undefined;
  #stopped = false;

  constructor(url: string, opts: RemoteKeySetOptions = {}) {
    this.#url = url;
    const refreshMs = opts.refreshMs ?? 2000;
    if (!(refreshMs > 0)) throw new TypeError('refreshMs must be positive');
    this.#opts = {
      channel: opts.channel ?? KEYSET_CHANNEL,
      refreshMs,
      stalenessMs: Math.max(opts.stalenessMs ?? 5000, 2 * refreshMs),
      minRefetchMs: opts.minRefetchMs ?? 1000,
      timeoutMs: opts.timeoutMs ?? Math.min(2000, refreshMs),
      now: opts.now ?? Date.now,
      state: opts.state,
      log: opts.log,
    };
  }

  /** Subscribes to announcements, fetches once, and starts polling. A failed first fetch is retried. */
  async start(): Promise<void> {
    this.#unsubscribe = await this.#opts.state?.subscribe(
      this.#opts.channel,
      () => void this.refresh(),
      // back from a channel outage: announcements may have been missed
      (live) => void (live && this.refresh()),
    );
    this.#timer = setInterval(() => void this.refresh(), this.#opts.refreshMs);
    this.#timer.unref();
    await this.refresh();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#unsubscribe?.();
    await this.#fetches.running;
  }

  /** Seconds since the last successful refresh started; undefined before the first (a metric). */
  ageSeconds(): number | undefined {
    return this.#freshAt === undefined ? undefined : (this.#opts.now() - this.#freshAt) / 1000;
  }

  /** Why the set is not current, or undefined when it is. */
  staleReason(): string | undefined {
    if (this.#freshAt === undefined || !this.#keys) return 'the broker key set has not been fetched yet';
    const age = this.#opts.now() - this.#freshAt;
    if (age > this.#opts.stalenessMs) return `the broker key set could not be refreshed for ${age} ms (bound ${this.#opts.stalenessMs} ms)`;
    return undefined;
  }

  async resolver(wantedKeyId?: number): Promise<PublishedKeys> {
    if (wantedKeyId !== undefined) {
      const known = this.#keys?.has(wantedKeyId) ?? false;
      // an unknown id may be a rotation we haven't seen: refetch, but at most every minRefetchMs
      if (!this.#keys || (!known && this.#opts.now() - (this.#freshAt ?? 0) > this.#opts.minRefetchMs)) await this.refresh();
    }
    return this.current();
  }

  current(): PublishedKeys {
    const reason = this.staleReason();
    if (reason) throw new BatonError('BATON_ERR_REVOCATION_STALE', 'the broker key set is not current (a key retirement could be missed); refusing until it is', { detail: reason });
    return this.#keys!;
  }

  /** Fetches now (conditional on the ETag). Concurrent calls share one request; a call during one schedules one more. */
  refresh(): Promise<void> {
    return this.#fetches.run();
  }

  async #fetch(): Promise<void> {
    const startedAt = this.#opts.now();
    try {
      const res = await fetch(this.#url, {
        signal: AbortSignal.timeout(this.#opts.timeoutMs),
        headers: { accept: 'application/json', ...(this.#etag && this.#keys ? { 'if-none-match': this.#etag } : {}) },
      });
      if (res.status === 304 && this.#keys) {
        await res.body?.cancel();
      } else {
        if (!res.ok) throw new Error(`key set ${this.#url}: HTTP ${res.status}`);
        const doc = KeySetDocument.parse(await res.json());
        const before = this.#keys;
        this.#keys = documentKeys(doc);
        this.#etag = res.headers.get('etag') ?? undefined;
        if (before) this.#opts.log?.({ event: 'keys.refreshed', keys: doc.keys.map((k) => k.id) });
      }
      this.#freshAt = startedAt;
    } catch (err) {
      this.#opts.log?.({ event: 'keys.refresh_failed', error: err instanceof Error ? err.message : String(err) });
    }
  }
}
