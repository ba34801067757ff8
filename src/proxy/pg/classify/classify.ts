/**
 * `classifySql`: every statement of a SQL string → its kind, the (resource, operation) pairs it
 * needs, and literal-free text for the audit trail. Fails closed: anything the classifier cannot
 * fully account for is `BATON_ERR_SQL_UNSUPPORTED`, never "no access needed".
 */
import type { Classification, ClassifiedStatement, ClassifyContext } from './types.ts';
import { Resolver } from './names.ts';
import { Walker } from './walk.ts';
import { classifyStatement, isLiteralIndependent } from './statements.ts';
import { assertReady, ParseFailure, parseStatements, type RawStatement } from './parser.ts';
import { fallbackTokens, fingerprintOf, normalizedOf } from './redact.ts';
import { scanTokens, type Token } from './tokens.ts';
import { Unsupported } from './unsupported.ts';
import { resultFacts } from './result-facts.ts';

const UPSTREAM = /^[A-Za-z0-9_.-]+$/;

/** PostgreSQL's default search_path, restored by RESET within the same string. */
const DEFAULT_SEARCH_PATH: readonly string[] = Object.freeze(['$user', 'public']);

/** A statement's tokens: `[from, to)` indices into the string's token list. */
export type TokenRange = readonly [number, number];

/** A classification plus what the cache needs to share it (see `cache.ts`). */
export interface Analysis {
  readonly result: Classification;
  /**
   * True when the string classified `ok` with at least one statement, was scanned, and every
   * statement's classification is independent of literal values (`isLiteralIndependent`, no
   * session effect): any string with the same shape key classifies the same.
   */
  readonly shareable: boolean;
  /** Each statement's token range (empty unless `shareable`). */
  readonly ranges: readonly TokenRange[];
}

/**
 * Classify a SQL string (one or more statements) for the session described by `ctx`.
 * A `SET search_path` inside the string applies to the statements after it.
 * Requires `initClassifier()` to have completed; never throws for any SQL input.
 *
 * @example
 * await initClassifier();
 * classifySql('SELECT * FROM orders JOIN customers USING (id)', { upstream: 'appdb', searchPath: ['public'] });
 * // → { ok: true, statements: [{ kind: 'select', accesses: [
 * //      { resource: 'pg:appdb/public.orders', operation: 'read' },
 * //      { resource: 'pg:appdb/public.customers', operation: 'read' } ], … }] }
 */
export function classifySql(sql: string, ctx: ClassifyContext): Classification {
  return analyseSql(sql, ctx).result;
}

/** Throws a TypeError for caller misuse (a bad context or SQL that is not a string). */
export function checkInput(sql: string, ctx: ClassifyContext): void {
  if (typeof sql !== 'string') throw new TypeError('sql must be a string');
  if (!UPSTREAM.test(ctx.upstream)) throw new TypeError('upstream must match [A-Za-z0-9_.-]+');
  if (!Array.isArray(ctx.searchPath)) throw new TypeError('searchPath must be an array');
  assertReady();
}

/**
 * `classifySql` with one parse and at most one scan. `scan` supplies the string's tokens (the cache
 * has usually scanned already); undefined from it means the lexer output was unusable.
 */
export function analyseSql(sql: string, ctx: ClassifyContext, scan: () => Token[] | undefined = () => scanTokens(sql)): Analysis {
  checkInput(sql, ctx);
  // The wire protocol ends a query string at NUL; a NUL inside the text would make the parser
  // (a C library) and the server disagree about what follows.
  if (sql.includes('\0')) return { result: unparsable('NUL character in SQL'), shareable: false, ranges: [] };
  try {
    const raw = parseStatements(sql);
    const tokens = raw.length === 0 ? undefined : scan();
    const ranges = tokens === undefined ? undefined : tokenRanges(raw, tokens);
    let shareable = ranges !== undefined;
    let searchPath: readonly string[] = ctx.searchPath;
    const limits = ctx.maxStatementTimeoutMs === undefined ? {} : { maxStatementTimeoutMs: ctx.maxStatementTimeoutMs };
    const statements: ClassifiedStatement[] = [];
    raw.forEach((st, i) => {
      const resolver = new Resolver({ ...ctx, searchPath });
      const walker = new Walker(resolver, limits);
      const r = classifyStatement(st.node, walker);
      const facts = resultFacts(st.node, resolver);
      const effect = r.sessionEffect;
      const own = ranges === undefined ? fallbackTokens(st.text()) : tokens!.slice(ranges[i]![0], ranges[i]![1]);
      statements.push(
        Object.freeze({
          kind: r.kind,
          accesses: Object.freeze(walker.accesses),
          fingerprint: fingerprintOf(own),
          normalized: normalizedOf(own),
          ...(effect === undefined ? {} : { sessionEffect: Object.freeze(effect) }),
          ...(walker.sessionState === undefined ? {} : { sessionState: walker.sessionState }),
          ...(r.returnsRows ? { returnsRows: true as const } : {}),
          ...facts,
        }),
      );
      shareable &&= effect === undefined && isLiteralIndependent(st.node, walker);
      if (effect?.searchPath !== undefined) searchPath = effect.searchPath;
      else if (effect?.resetSearchPath === true) searchPath = DEFAULT_SEARCH_PATH;
    });
    const result: Classification = Object.freeze({ ok: true, statements: Object.freeze(statements) });
    return shareable ? { result, shareable, ranges: ranges! } : { result, shareable: false, ranges: [] };
  } catch (err) {
    return { result: failure(err), shareable: false, ranges: [] };
  }
}

/**
 * Each statement's token range. The parser and the lexer must agree on statement boundaries: the
 * only tokens between statements are `;`. If they do not, the string is refused (fail closed).
 */
function tokenRanges(raw: readonly RawStatement[], tokens: readonly Token[]): TokenRange[] {
  const ranges: TokenRange[] = [];
  let j = 0;
  for (const st of raw) {
    for (; j < tokens.length && tokens[j]!.start < st.start; j++) if (tokens[j]!.text !== ';') throw disagree();
    const from = j;
    for (; j < tokens.length && tokens[j]!.start < st.end; j++) if (tokens[j]!.end > st.end) throw disagree();
    if (j === from) throw disagree();
    ranges.push([from, j]);
  }
  for (; j < tokens.length; j++) if (tokens[j]!.text !== ';') throw disagree();
  return ranges;
}

function disagree(): Unsupported {
  return new Unsupported('parser and lexer disagree on statement boundaries');
}

function failure(err: unknown): Classification {
  if (err instanceof ParseFailure) {
    return unparsable(err.offset === undefined ? 'syntax error' : `syntax error at offset ${err.offset}`);
  }
  if (err instanceof Unsupported) return unsupported(err.message);
  // A shape the walker did not expect: still a refusal, never a pass.
  return unsupported('statement could not be classified');
}

function unparsable(reason: string): Classification {
  return Object.freeze({ ok: false, code: 'BATON_ERR_SQL_UNPARSABLE', reason });
}

function unsupported(reason: string): Classification {
  return Object.freeze({ ok: false, code: 'BATON_ERR_SQL_UNSUPPORTED', reason });
}
