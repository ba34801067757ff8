/**
 * The in-memory revocation set every enforcer checks (broker bearer auth, Postgres proxy, HTTP
 * proxy). It learns revocations two ways: pushed on the `revocations` channel of SharedState (fast),
 * and pulled from a source (`since` cursor: the database in the broker, `GET /v1/revocations` in a
 * proxy) at start, on every reconnect, and periodically (complete). When it cannot confirm that it is
 * current, `assertCurrent()` throws and enforcers fail closed (DESIGN.md security rule 4).
 */
import { BatonError } from '../errors.ts';
import type { SharedState } from '../store/shared-state.ts';
import type { RevocationEntry, RevocationPage } from './store.ts';
import type { RevocationView } from './view.ts';
import { CoalescedRun } from '../util/coalesced-run.ts';

/** The SharedState channel revocations are published on. */
export const REVOCATION_CHANNEL = 'revocations';

/** Fetches entries after `cursor` (undefined: from the start). */
export type RevocationSource = (cursor: string | undefined) => Promise<RevocationPage>;

/** Called with ids newly added to the set (each id once). */
export type RevokedListener = (ids: readonly string[]) => void;

export interface RevocationSetOptions {
  source: RevocationSource;
  state: SharedState;
  channel?: string;
  /** Fail closed past this many ms without a live channel or a successful resync. Default 5000. */
  stalenessMs?: number;
  /** Periodic resync (and expiry sweep) interval. Default stalenessMs / 4. */
  resyncEveryMs?: number;
  /** Wall clock in ms (tests). */
  now?: () => number;
  log?: (event: Record<string, unknown>) => void;
}

/** The message published on the channel for each revoke call. */
export interface RevocationMessage {
  entries: { revocation_id: string; expires_at: string }[];
}

/** Encodes entries for `SharedState.publish`. */
export function encodeRevocationMessage(entries: readonly RevocationEntry[]): string {
  const msg: RevocationMessage = { entries: entries.map((e) => ({ revocation_id: e.revocationId, expires_at: e.expiresAt.toISOString() })) };
  return JSON.stringify(msg);
}

/**
 * @example
 * const set = new RevocationSet({ source: httpRevocationSource(brokerUrl), state, stalenessMs: 5000 });
 * await set.start();
 * set.onRevoked((ids) => sessions.killWhereChainContains(ids));
 * set.assertCurrent(); if (set.firstRevoked(chainIds)) deny();
 */
export class RevocationSet implements RevocationView {
  readonly #opts: Required<Pick<RevocationSetOptions, 'source' | 'state' | 'channel' | 'stalenessMs' | 'resyncEveryMs' | 'now'>> & Pick<RevocationSetOptions, 'log'>;
  /** id → expiry (ms). */
  readonly #revoked = new Map<string, number>();
  readonly #listeners = new Set<RevokedListener>();
  #cursor: string | undefined;
  #live = false;
  /** Start of the last successful sync (everything revoked before it is known). */
  #syncedAt: number | undefined;
  /**
   * Since when the channel may have missed messages: set when it goes down (and at start), cleared
   * only by a sync that STARTED after the channel came back.
   */
  #gapSince: number | undefined;
  /** When the channel last came up. */
  #liveSince: number | undefined;
  readonly #syncs = new CoalescedRun(() => this.#runSync(), () => this.#stopped);
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => Promise<void>) | undefined;
  #stopped = false;

  constructor(opts: RevocationSetOptions) {
    const stalenessMs = opts.stalenessMs ?? 5000;
    if (!(stalenessMs > 0)) throw new TypeError('stalenessMs must be positive');
    this.#opts = {
      source: opts.source,
      state: opts.state,
      channel: opts.channel ?? REVOCATION_CHANNEL,
      stalenessMs,
      resyncEveryMs: opts.resyncEveryMs ?? Math.max(50, Math.floor(stalenessMs / 4)),
      now: opts.now ?? Date.now,
      log: opts.log,
    };
  }

  /**
   * Subscribes, then syncs (in that order, so nothing falls between the two), and starts the
   * periodic resync. Resolves after the first sync attempt; a failed attempt is retried and leaves
   * the set failing closed meanwhile (see `whenCurrent`).
   */
  async start(): Promise<void> {
    this.#gapSince = this.#opts.now();
    this.#unsubscribe = await this.#opts.state.subscribe(
      this.#opts.channel,
      (message) => this.#onMessage(message),
      (live) => this.#onState(live),
    );
    this.#timer = setInterval(() => {
      this.#sweep();
      void this.resync();
    }, this.#opts.resyncEveryMs);
    this.#timer.unref();
    await this.resync();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#unsubscribe?.();
    await this.#syncs.running;
  }

  /** @throws BatonError BATON_ERR_REVOCATION_STALE when this process cannot confirm it is current. */
  assertCurrent(): void {
    const reason = this.staleReason();
    if (reason) throw new BatonError('BATON_ERR_REVOCATION_STALE', 'revocation state is not current; refusing until it is', { detail: reason });
  }

  /** Seconds since the last successful sync started; undefined before the first (a metric). */
  ageSeconds(): number | undefined {
    return this.#syncedAt === undefined ? undefined : (this.#opts.now() - this.#syncedAt) / 1000;
  }

  /** Why the set is not current, or undefined when it is. */
  staleReason(): string | undefined {
    const now = this.#opts.now();
    const bound = this.#opts.stalenessMs;
    if (this.#syncedAt === undefined) return 'no successful revocation sync yet';
    if (now - this.#syncedAt > bound) return `no successful revocation sync for ${now - this.#syncedAt} ms (bound ${bound} ms)`;
    if (this.#gapSince !== undefined && now - this.#gapSince > bound) {
      return this.#live
        ? `revocation channel is back but not yet resynced (gap of ${now - this.#gapSince} ms)`
        : `revocation channel down for ${now - this.#gapSince} ms (bound ${bound} ms)`;
    }
    return undefined;
  }

  firstRevoked(ids: readonly string[]): string | undefined {
    // Presence decides, even past the entry's expiry: a token carrying the id is expired by then
    // anyway, and refusing is the safe side of any clock disagreement.
    for (const id of ids) if (this.#revoked.has(id)) return id;
    return undefined;
  }

  /** Registers `listener` for newly revoked ids; returns a function that removes it. */
  onRevoked(listener: RevokedListener): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  /** Adds entries (from the channel, a sync, or a local revoke) and tells listeners about new ids. */
  apply(entries: readonly RevocationEntry[]): void {
    const now = this.#opts.now();
    const added: string[] = [];
    for (const e of entries) {
      const exp = e.expiresAt.getTime();
      if (!(exp > now)) continue;
      const known = this.#revoked.get(e.revocationId);
      if (known === undefined) added.push(e.revocationId);
      if (known === undefined || known < exp) this.#revoked.set(e.revocationId, exp);
    }
    if (!added.length) return;
    for (const listener of this.#listeners) {
      try {
        listener(added);
      } catch (err) {
        this.#opts.log?.({ event: 'revocation.listener_failed', error: String(err) });
      }
    }
  }

  /** Number of ids held (metrics, tests). */
  get size(): number {
    return this.#revoked.size;
  }

  /**
   * Pulls every entry after the cursor (page by page). Concurrent calls share one run; a call made
   * while a run is in flight schedules one more run, so a sync always STARTS after the call.
   */
  resync(): Promise<void> {
    return this.#syncs.run();
  }

  /** Resolves once `assertCurrent()` passes; rejects with the reason after `timeoutMs`. */
  async whenCurrent(timeoutMs = this.#opts.stalenessMs): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const reason = this.staleReason();
      if (!reason) return;
      if (Date.now() >= deadline) throw new BatonError('BATON_ERR_REVOCATION_STALE', 'revocation state is not current', { detail: reason });
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async #runSync(): Promise<void> {
    const startedAt = this.#opts.now();
    const liveAtStart = this.#live;
    const liveSinceAtStart = this.#liveSince;
    try {
      let page: RevocationPage;
      do {
        page = await this.#opts.source(this.#cursor);
        this.apply(page.entries);
        this.#cursor = page.cursor;
      } while (page.more && !this.#stopped);
      this.#syncedAt = startedAt;
      // The channel was up when this sync began and has not bounced since: every message it could
      // have missed before that moment is in what we just read.
      if (liveAtStart && this.#live && this.#liveSince === liveSinceAtStart) this.#gapSince = undefined;
    } catch (err) {
      this.#opts.log?.({ event: 'revocation.sync_failed', error: err instanceof Error ? err.message : String(err) });
    }
  }

  #onMessage(message: string): void {
    let entries: RevocationEntry[];
    try {
      const parsed = JSON.parse(message) as RevocationMessage;
      entries = parsed.entries.map((e) => {
        const expiresAt = new Date(e.expires_at);
        if (typeof e.revocation_id !== 'string' || Number.isNaN(expiresAt.getTime())) throw new Error('bad entry');
        return { revocationId: e.revocation_id, expiresAt };
      });
    } catch {
      // something was published that we cannot read: never skip it silently, fetch the truth
      this.#opts.log?.({ event: 'revocation.bad_message' });
      void this.resync();
      return;
    }
    this.apply(entries);
  }

  #onState(live: boolean): void {
    if (live === this.#live) return;
    this.#live = live;
    const now = this.#opts.now();
    this.#opts.log?.({ event: live ? 'revocation.channel_up' : 'revocation.channel_down' });
    if (live) {
      this.#liveSince = now;
      void this.resync(); // messages published while we were away are only in the source
    } else {
      this.#gapSince ??= now;
    }
  }

  #sweep(): void {
    const now = this.#opts.now();
    for (const [id, exp] of this.#revoked) if (exp <= now) this.#revoked.delete(id);
  }
}
