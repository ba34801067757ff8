/**
 * Group commit for independent rows: callers `add()` one item and wait; items that arrive while a
 * flush is in flight go together in the next flush. One flush at a time, so at low load an item is
 * written at once (no timer), and under load many items share one durable commit.
 */
export interface Batcher<T> {
  /** Resolves once the item's flush has committed; rejects with that flush's error. */
  add(item: T): Promise<void>;
}

export function createBatcher<T>(flush: (items: T[]) => Promise<void>, opts: { maxBatch?: number } = {}): Batcher<T> {
  const maxBatch = opts.maxBatch ?? 500;
  let queue: { item: T; resolve: () => void; reject: (e: unknown) => void }[] = [];
  let flushing = false;

  async function drain(): Promise<void> {
    flushing = true;
    while (queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(batch.length);
      try {
        await flush(batch.map((b) => b.item));
        for (const b of batch) b.resolve();
      } catch (err) {
        for (const b of batch) b.reject(err);
      }
    }
    flushing = false;
  }

  return {
    add(item) {
      return new Promise<void>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        if (!flushing) void drain();
      });
    },
  };
}
