/**
 * Upstream → client bytes that may not reach the client yet (DESIGN.md rule 6): the answers to a
 * statement forwarded while its audit entry was still in flight. Messages are kept in arrival order,
 * each tagged with the statement that owns it. When a statement's entry becomes durable its messages
 * (and any behind them whose owners are durable too) are released; when it fails they are dropped
 * and replaced by one error, so not one row of that result is ever delivered.
 *
 * Order is never broken: once anything is held, everything after it is held too, even the answers
 * of statements that need no holding.
 */

/**
 * The owner's state, as far as holding is concerned: `Pending` — its entry is in flight, its answers
 * are held; `Released` — durable (or never needed holding), its answers may go; `Failed` — its entry
 * failed, its answers are dropped.
 */
export const HoldState = { Pending: 0, Released: 1, Failed: 2 } as const;
export type HoldState = (typeof HoldState)[keyof typeof HoldState];

/** Anything that owns held messages. */
export interface HoldOwner {
  hold: HoldState;
}

interface Held {
  owner: HoldOwner | undefined;
  bytes: Buffer;
  /** A ReadyForQuery: kept even when its owner failed (the client needs it to go on). */
  ready: boolean;
}

export class HeldOutput {
  private items: Held[] = [];
  private head = 0;
  private heldBytes = 0;

  /** True when anything is held: new messages must queue behind it. */
  get active(): boolean {
    return this.head < this.items.length;
  }

  /** Bytes currently held (for backpressure on the upstream socket). */
  get bytes(): number {
    return this.heldBytes;
  }

  push(owner: HoldOwner | undefined, bytes: Buffer, ready = false): void {
    if (bytes.length === 0) return;
    this.items.push({ owner, bytes, ready });
    this.heldBytes += bytes.length;
  }

  /**
   * Everything from the front whose owner is no longer pending, in order; stops at the first
   * message of a pending owner. Messages of failed owners are skipped (their error was placed by
   * `fail`).
   */
  releasable(): Buffer[] {
    const out: Buffer[] = [];
    while (this.head < this.items.length) {
      const h = this.items[this.head]!;
      if (h.owner?.hold === HoldState.Pending) break;
      this.items[this.head++] = undefined as unknown as Held;
      this.heldBytes -= h.bytes.length;
      if ((h.owner?.hold !== HoldState.Failed || h.ready) && h.bytes.length > 0) out.push(h.bytes);
    }
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    }
    return out;
  }

  /**
   * `owner`'s entry failed. Its held messages are replaced by `error` at the place of the first of
   * them (the rest dropped, a ReadyForQuery kept); with `untilReady`, the messages of later owners up
   * to the next ReadyForQuery are dropped too (the extended protocol skips to Sync after an error).
   * `placed` is false when nothing of `owner` is held yet (the caller then emits the error when the
   * owner's first message arrives); `reachedReady` says whether the dropping reached a ReadyForQuery.
   */
  fail(owner: HoldOwner, error: Buffer, untilReady: boolean): { placed: boolean; reachedReady: boolean } {
    let reachedReady = false;
    let placed = false;
    let dropping = false;
    for (let i = this.head; i < this.items.length; i++) {
      const h = this.items[i]!;
      const mine = h.owner === owner;
      if (!mine && !dropping) continue;
      if (h.ready) {
        reachedReady = true;
        if (!placed) {
          // nothing of it came before its ReadyForQuery: the error goes right before it
          this.items.splice(i, 0, { owner: undefined, bytes: error, ready: false });
          this.heldBytes += error.length;
          placed = true;
        }
        dropping = false;
        if (mine) break;
        continue;
      }
      this.heldBytes -= h.bytes.length;
      if (!placed) {
        this.items[i] = { owner: undefined, bytes: error, ready: false };
        this.heldBytes += error.length;
        placed = true;
        dropping = untilReady;
      } else {
        this.items[i] = { owner: undefined, bytes: Buffer.alloc(0), ready: false };
      }
    }
    return { placed, reachedReady };
  }

  /** Drops everything (the session is ending). */
  clear(): void {
    this.items = [];
    this.head = 0;
    this.heldBytes = 0;
  }
}
