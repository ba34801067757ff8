/**
 * RevocationSet on its own: staleness rules on a frozen clock, recovery, listeners, expiry. The
 * channel is the real in-process SharedState; the source is a function over an in-memory list (the
 * database and HTTP sources are exercised in cascade.test.ts and redis-restart.test.ts).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { BatonError } from '../../src/errors.ts';
import { encodeRevocationMessage, REVOCATION_CHANNEL, RevocationSet, type RevocationSource } from '../../src/revocation/set.ts';
import type { RevocationEntry } from '../../src/revocation/store.ts';
import { openSharedState, type SharedState } from '../../src/store/shared-state.ts';

const T0 = Date.parse('2026-03-01T12:00:00Z');

/** A source over a list; `failing` makes it throw (broker unreachable). */
function listSource() {
  const log: RevocationEntry[] = [];
  const src = {
    log,
    failing: false,
    calls: 0,
    source: (async (cursor) => {
      src.calls++;
      if (src.failing) throw new Error('broker unreachable');
      const from = cursor ? Number(cursor) : 0;
      return { entries: log.slice(from), cursor: String(log.length), more: false };
    }) as RevocationSource,
  };
  return src;
}

/** A SharedState whose subscription liveness the test drives. */
function controllableState(): SharedState & { setLive(live: boolean): void; deliver(m: string): void } {
  const inner = openSharedState({});
  let onState: ((live: boolean) => void) | undefined;
  let onMessage: ((m: string) => void) | undefined;
  return Object.assign(inner, {
    async subscribe(_c: string, m: (m: string) => void, s?: (live: boolean) => void) {
      onMessage = m;
      onState = s;
      s?.(true);
      return async () => {};
    },
    setLive: (live: boolean) => onState?.(live),
    deliver: (m: string) => onMessage?.(m),
  });
}

const entry = (id: string, ms = 3600_000, at = T0): RevocationEntry => ({ revocationId: id, expiresAt: new Date(at + ms) });
let sets: RevocationSet[] = [];
afterEach(async () => {
  await Promise.all(sets.map((s) => s.stop()));
  sets = [];
});

function makeSet(src: ReturnType<typeof listSource>, state: SharedState, clock: { t: number }, stalenessMs = 5000) {
  // resync only when the test says so: the periodic timer would race the frozen clock
  const set = new RevocationSet({ source: src.source, state, stalenessMs, resyncEveryMs: 3600_000, now: () => clock.t });
  sets.push(set);
  return set;
}

describe('RevocationSet', () => {
  it('loads the source at start and answers firstRevoked for any id of a chain', async () => {
    const src = listSource();
    src.log.push(entry('aa01'), entry('bb02'));
    const set = makeSet(src, openSharedState({}), { t: T0 });
    await set.start();
    expect(set.firstRevoked(['ff00', 'bb02', 'cc03'])).toBe('bb02');
    expect(set.firstRevoked(['ff00'])).toBeUndefined();
    expect(() => set.assertCurrent()).not.toThrow();
  });

  it('learns from the channel and tells onRevoked listeners once per id', async () => {
    const src = listSource();
    const state = openSharedState({});
    const set = makeSet(src, state, { t: T0 });
    const seen: string[][] = [];
    set.onRevoked((ids) => seen.push([...ids]));
    await set.start();
    await state.publish(REVOCATION_CHANNEL, encodeRevocationMessage([entry('aa01')]));
    await state.publish(REVOCATION_CHANNEL, encodeRevocationMessage([entry('aa01'), entry('bb02')]));
    await new Promise((r) => setTimeout(r, 10));
    expect(seen).toEqual([['aa01'], ['bb02']]);
    expect(set.firstRevoked(['bb02'])).toBe('bb02');
  });

  it('fails closed before the first sync, and past the bound without a successful sync; recovers by itself', async () => {
    const src = listSource();
    src.failing = true;
    const clock = { t: T0 };
    const set = makeSet(src, openSharedState({}), clock);
    await set.start();
    expect(() => set.assertCurrent()).toThrow(BatonError);
    try {
      set.assertCurrent();
    } catch (err) {
      expect((err as BatonError).code).toBe('BATON_ERR_REVOCATION_STALE');
      expect((err as BatonError).detail).toMatch(/no successful revocation sync yet/);
    }
    src.failing = false;
    await set.resync();
    expect(() => set.assertCurrent()).not.toThrow();
    src.failing = true;
    clock.t += 4000;
    await set.resync();
    expect(() => set.assertCurrent()).not.toThrow(); // within the 5 s bound
    clock.t += 1001;
    expect(() => set.assertCurrent()).toThrow(/not current/);
    expect(set.staleReason()).toMatch(/no successful revocation sync for 5001 ms/);
    src.failing = false;
    await set.resync();
    expect(set.staleReason()).toBeUndefined();
  });

  it('a channel outage fails closed past the bound, and only a sync started after reconnect clears it', async () => {
    const src = listSource();
    const state = controllableState();
    const clock = { t: T0 };
    const set = makeSet(src, state, clock);
    await set.start();
    await set.resync(); // the live edge at subscribe time raced start's own sync
    expect(set.staleReason()).toBeUndefined();

    state.setLive(false);
    clock.t += 3000;
    await set.resync(); // syncs keep working while the channel is down…
    expect(set.staleReason()).toBeUndefined(); // …and within the bound we keep serving
    src.log.push(entry('aa01')); // revoked while the channel is down: its message is lost
    clock.t += 2001;
    expect(set.staleReason()).toMatch(/revocation channel down for 5001 ms/);
    // periodic syncs while down do not make the set current: the channel is what gives "within 1 s"
    await set.resync();
    expect(set.staleReason()).toMatch(/channel down/);

    src.failing = true; // the post-reconnect resync fails at first
    state.setLive(true);
    await new Promise((r) => setTimeout(r, 10));
    expect(set.staleReason()).toMatch(/back but not yet resynced/);
    src.failing = false;
    await set.resync();
    expect(set.staleReason()).toBeUndefined();
    expect(set.firstRevoked(['aa01'])).toBe('aa01'); // nothing missed
  });

  it('drops expired entries and ignores ones that arrive already expired', async () => {
    const src = listSource();
    src.log.push(entry('aa01', 1000), entry('bb02', -1));
    const clock = { t: T0 };
    const set = new RevocationSet({ source: src.source, state: openSharedState({}), resyncEveryMs: 20, now: () => clock.t });
    sets.push(set);
    await set.start();
    expect(set.size).toBe(1);
    expect(set.firstRevoked(['bb02'])).toBeUndefined();
    clock.t += 1001;
    await new Promise((r) => setTimeout(r, 60)); // one periodic sweep
    expect(set.size).toBe(0);
  });

  it('an unreadable channel message triggers a resync instead of being skipped', async () => {
    const src = listSource();
    const state = controllableState();
    const set = makeSet(src, state, { t: T0 });
    await set.start();
    await set.resync();
    const calls = src.calls;
    src.log.push(entry('aa01'));
    state.deliver('{"entries":[{"revocation_id":"aa01","expires_at":"not a date"}]}');
    await set.resync();
    expect(src.calls).toBeGreaterThan(calls);
    expect(set.firstRevoked(['aa01'])).toBe('aa01');
  });

  it('refuses a non-positive staleness bound', () => {
    expect(() => new RevocationSet({ source: listSource().source, state: openSharedState({}), stalenessMs: 0 })).toThrow(TypeError);
  });
});
