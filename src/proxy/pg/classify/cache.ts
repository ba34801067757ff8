/**
 * A bounded, two-level LRU in front of the classifier: the proxy classifies every statement.
 *
 * 1. **Exact text**: keyed by everything the result depends on (upstream, search path, session
 *    user, the upstream-objects snapshot's version, the statement-timeout cap, SQL). Clients repeat the same texts (prepared statements, BEGIN/COMMIT).
 * 2. **Shape**: keyed by the context and the string's literal-free token sequence from PostgreSQL's
 *    own lexer (`shapeKey`), so `… WHERE aid = 48213` and `… WHERE aid = 7` share one entry. Only
 *    classifications that `analyseSql` marks `shareable` are stored here — plain queries and DML
 *    whose walk never read a literal's value (see `isLiteralIndependent`). A hit reuses the
 *    statements' kinds, accesses and fingerprints, and rebuilds `normalized` from this string's own
 *    tokens: it costs one scan instead of a parse and a scan.
 *
 * Results are deeply frozen, so sharing them is safe.
 */
import type { Classification, ClassifiedStatement, ClassifyContext } from './types.ts';
import { analyseSql, checkInput, classifySql, type TokenRange } from './classify.ts';
import { normalizedOf } from './redact.ts';
import { scanTokens, shapeKey, type Token } from './tokens.ts';

/** Cache options; all have defaults. */
export interface ClassifierCacheOptions {
  /** Entries kept per level (least recently used evicted first). Default 2048. */
  readonly maxEntries?: number;
  /** Longer SQL strings are classified but not cached, bounding memory. Default 16384 chars. */
  readonly maxSqlLength?: number;
}

/** How classifications were answered since the cache was created (or cleared). */
export interface ClassifierCacheStats {
  /** Same context and exact text seen before. */
  readonly exactHits: number;
  /** Same context and shape (differs only in literal values) as a shareable classification. */
  readonly shapeHits: number;
  /** Classified from scratch (one parse, one scan). */
  readonly misses: number;
}

/** A per-proxy classification cache. */
export interface ClassifierCache {
  classify(sql: string, ctx: ClassifyContext): Classification;
  /** Entries at the exact-text level. */
  readonly size: number;
  readonly stats: ClassifierCacheStats;
  clear(): void;
}

/** A shareable classification, minus the per-text `normalized`. */
interface ShapeEntry {
  readonly statements: readonly Omit<ClassifiedStatement, 'normalized'>[];
  readonly ranges: readonly TokenRange[];
}

/** A Map used as an LRU: a hit moves the key to the end; inserts evict from the front. */
class Lru<V> {
  private readonly map = new Map<string, V>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.map.size;
  }

  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  set(key: string, value: V): void {
    this.map.set(key, value);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
  }

  clear(): void {
    this.map.clear();
  }
}

/**
 * Create a two-level LRU-cached classifier.
 *
 * @example
 * const cache = createClassifierCache({ maxEntries: 1000 });
 * const c = cache.classify('SELECT * FROM t WHERE id = 1', { upstream: 'appdb', searchPath: ['public'] });
 * cache.classify('SELECT * FROM t WHERE id = 2', { upstream: 'appdb', searchPath: ['public'] }); // shape hit
 */
export function createClassifierCache(options: ClassifierCacheOptions = {}): ClassifierCache {
  const maxEntries = options.maxEntries ?? 2048;
  const maxSqlLength = options.maxSqlLength ?? 16384;
  if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new TypeError('maxEntries must be a positive integer');
  const exact = new Lru<Classification>(maxEntries);
  const shapes = new Lru<ShapeEntry>(maxEntries);
  let stats = { exactHits: 0, shapeHits: 0, misses: 0 };
  return {
    classify(sql, ctx) {
      if (typeof sql !== 'string' || sql.length > maxSqlLength) return classifySql(sql, ctx);
      checkInput(sql, ctx);
      // A JSON array is self-delimiting, so `context + anything` keys are unambiguous.
      const context = JSON.stringify([ctx.upstream, ctx.searchPath, ctx.sessionUser ?? null, ctx.objects?.version ?? null, ctx.maxStatementTimeoutMs ?? null]);
      const hit = exact.get(context + sql);
      if (hit !== undefined) {
        stats.exactHits++;
        return hit;
      }
      // NUL: the classifier refuses it before the lexer (a C string) could see a prefix only.
      const tokens = sql.includes('\0') ? undefined : scanTokens(sql);
      const key = tokens === undefined ? undefined : shapeKey(tokens);
      const shape = key === undefined ? undefined : shapes.get(context + key);
      let result: Classification;
      if (shape !== undefined) {
        stats.shapeHits++;
        result = instantiate(shape, tokens!);
      } else {
        stats.misses++;
        const a = analyseSql(sql, ctx, () => tokens);
        result = a.result;
        if (a.shareable && key !== undefined && result.ok) {
          shapes.set(context + key, {
            statements: result.statements.map(({ normalized: _, ...rest }) => rest),
            ranges: a.ranges,
          });
        }
      }
      exact.set(context + sql, result);
      return result;
    },
    get size() {
      return exact.size;
    },
    get stats() {
      return Object.freeze({ ...stats });
    },
    clear() {
      exact.clear();
      shapes.clear();
      stats = { exactHits: 0, shapeHits: 0, misses: 0 };
    },
  };
}

/** A shape entry's classification for one string of that shape: its own `normalized` text. */
function instantiate(shape: ShapeEntry, tokens: readonly Token[]): Classification {
  const statements = shape.statements.map((s, i) => {
    const [from, to] = shape.ranges[i]!;
    return Object.freeze({ ...s, normalized: normalizedOf(tokens.slice(from, to)) });
  });
  return Object.freeze({ ok: true, statements: Object.freeze(statements) });
}
