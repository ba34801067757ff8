import { describe, expect, it } from 'vitest';
import { createBatcher } from '../../src/store/batcher.ts';

describe('createBatcher (group commit)', () => {
  it('writes one item at once when idle, and batches what arrives during a flush', async () => {
    const flushes: number[][] = [];
    const b = createBatcher<number>(async (items) => {
      flushes.push(items);
      await new Promise((r) => setTimeout(r, 20));
    });
    await b.add(1);
    expect(flushes).toEqual([[1]]);
    await Promise.all([b.add(2), b.add(3), b.add(4), b.add(5)]);
    expect(flushes).toEqual([[1], [2], [3, 4, 5]]);
  });

  it("rejects exactly the failed flush's callers and keeps working", async () => {
    let fail = true;
    const b = createBatcher<string>(async (items) => {
      await new Promise((r) => setTimeout(r, 5));
      if (fail && items.includes('bad')) throw new Error('store down');
    });
    const first = b.add('ok-1');
    const results = await Promise.allSettled([b.add('bad'), b.add('ok-2')]);
    await expect(first).resolves.toBeUndefined();
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    fail = false;
    await expect(b.add('bad')).resolves.toBeUndefined();
  });

  it('caps a batch at maxBatch', async () => {
    const sizes: number[] = [];
    const b = createBatcher<number>(async (items) => void sizes.push(items.length), { maxBatch: 3 });
    await Promise.all(Array.from({ length: 8 }, (_, i) => b.add(i)));
    expect(sizes).toEqual([1, 3, 3, 1]);
  });
});
