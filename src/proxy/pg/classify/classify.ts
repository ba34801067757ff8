/**
 * `classifySql`: every statement of a SQL string → its kind, the (resource, operation) pairs it
 * needs, and literal-free text for the audit trail. Fails closed: anything the classifier cannot
 * fully account for is `BATON_ERR_SQL_UNSUPPORTED`, never "no access needed".
 */
import type { Classification, ClassifiedStatement, ClassifyContext } from './types.ts';
import { Resolver } from './names.ts';
import { Walker } from './walk.ts';
import { classifyStatement } from './statements.ts';
import { assertReady, ParseFailure, parseStatements } from './parser.ts';
import { fingerprintOf, normalizedOf } from './redact.ts';
import { Unsupported } from './unsupported.ts';

const UPSTREAM = /^[A-Za-z0-9_.-]+$/;

/** PostgreSQL's default search_path, restored by RESET within the same string. */
const DEFAULT_SEARCH_PATH: readonly string[] = Object.freeze(['$user', 'public']);

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
  if (typeof sql !== 'string') throw new TypeError('sql must be a string');
  if (!UPSTREAM.test(ctx.upstream)) throw new TypeError('upstream must match [A-Za-z0-9_.-]+');
  if (!Array.isArray(ctx.searchPath)) throw new TypeError('searchPath must be an array');
  assertReady();
  // The wire protocol ends a query string at NUL; a NUL inside the text would make the parser
  // (a C library) and the server disagree about what follows.
  if (sql.includes('\0')) return unparsable('NUL character in SQL');
  try {
    const raw = parseStatements(sql);
    let searchPath: readonly string[] = ctx.searchPath;
    const statements: ClassifiedStatement[] = [];
    for (const st of raw) {
      const walker = new Walker(new Resolver({ ...ctx, searchPath }));
      const r = classifyStatement(st.node, walker);
      const effect = r.sessionEffect;
      statements.push(
        Object.freeze({
          kind: r.kind,
          accesses: Object.freeze(walker.accesses),
          fingerprint: fingerprintOf(st.text),
          normalized: normalizedOf(st.text),
          ...(effect === undefined ? {} : { sessionEffect: Object.freeze(effect) }),
        }),
      );
      if (effect?.searchPath !== undefined) searchPath = effect.searchPath;
      else if (effect?.resetSearchPath === true) searchPath = DEFAULT_SEARCH_PATH;
    }
    return Object.freeze({ ok: true, statements: Object.freeze(statements) });
  } catch (err) {
    if (err instanceof ParseFailure) {
      return unparsable(err.offset === undefined ? 'syntax error' : `syntax error at offset ${err.offset}`);
    }
    if (err instanceof Unsupported) return unsupported(err.message);
    // A shape the walker did not expect: still a refusal, never a pass.
    return unsupported('statement could not be classified');
  }
}

function unparsable(reason: string): Classification {
  return Object.freeze({ ok: false, code: 'BATON_ERR_SQL_UNPARSABLE', reason });
}

function unsupported(reason: string): Classification {
  return Object.freeze({ ok: false, code: 'BATON_ERR_SQL_UNSUPPORTED', reason });
}
