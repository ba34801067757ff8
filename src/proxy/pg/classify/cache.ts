/**
 * A bounded LRU in front of `classifySql`: the proxy classifies every statement, and clients
 * repeat the same texts. Keyed by everything the result depends on (upstream, search path,
 * session user, SQL). Results are deeply frozen, so sharing them is safe.
 */
import type { Classification, ClassifyContext } from './types.ts';
import { classifySql } from './classify.ts';

/** Cache options; all have defaults. */
export interface ClassifierCacheOptions {
  /** Entries kept (least recently used evicted first). Default 2048. */
  readonly maxEntries?: number;
  /** Longer SQL strings are classified but not cached, bounding memory. Default 16384 chars. */
  readonly maxSqlLength?: number;
}

/** A per-proxy classification cache. */
export interface ClassifierCache {
  classify(sql: string, ctx: ClassifyContext): Classification;
  readonly size: number;
  clear(): void;
}

/**
 * Create an LRU-cached classifier.
 *
 * @example
 * const cache = createClassifierCache({ maxEntries: 1000 });
 * const c = cache.classify('SELECT 1', { upstream: 'appdb', searchPath: ['public'] });
 */
export function createClassifierCache(options: ClassifierCacheOptions = {}): ClassifierCache {
  const maxEntries = options.maxEntries ?? 2048;
  const maxSqlLength = options.maxSqlLength ?? 16384;
  if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new TypeError('maxEntries must be a positive integer');
  const entries = new Map<string, Classification>();
  return {
    classify(sql, ctx) {
      if (typeof sql !== 'string' || sql.length > maxSqlLength) return classifySql(sql, ctx);
      const key = JSON.stringify([ctx.upstream, ctx.searchPath, ctx.sessionUser ?? null, sql]);
      const hit = entries.get(key);
      if (hit !== undefined) {
        entries.delete(key);
        entries.set(key, hit);
        return hit;
      }
      const result = classifySql(sql, ctx);
      entries.set(key, result);
      if (entries.size > maxEntries) entries.delete(entries.keys().next().value!);
      return result;
    },
    get size() {
      return entries.size;
    },
    clear() {
      entries.clear();
    },
  };
}
