/**
 * The real PostgreSQL parser (libpg_query compiled to WebAssembly). Its module loads
 * asynchronously once; after `initClassifier()` every call here is synchronous.
 */
import { loadModule, parseSync } from 'libpg-query';
import { initTokenTypes } from './tokens.ts';
import { Unsupported } from './unsupported.ts';

let ready = false;

/**
 * Load the parser. Call once at start-up before `classifySql`; safe to call again.
 *
 * @example await initClassifier();
 */
export async function initClassifier(): Promise<void> {
  await loadModule();
  initTokenTypes();
  ready = true;
}

/** Throws a TypeError (caller misuse) if `initClassifier()` has not completed. */
export function assertReady(): void {
  if (!ready) throw new TypeError('initClassifier() must complete before classifySql()');
}

/** One statement of a SQL string: its parse tree and its byte range in the string. */
export interface RawStatement {
  readonly node: unknown;
  readonly start: number;
  readonly end: number;
  /** The statement's own source text (cut on demand: only the slow path needs it). */
  text(): string;
}

/** Parse failure: only the byte offset is kept (the parser's message may quote the SQL). */
export class ParseFailure extends Error {
  override readonly name = 'ParseFailure';
  constructor(readonly offset: number | undefined) {
    super('syntax error');
  }
}

/**
 * Split and parse `sql`. Statements are delimited by the parser's byte offsets (UTF-8), so every
 * statement the server would run is seen here exactly as the parser saw it.
 */
export function parseStatements(sql: string): RawStatement[] {
  if (/^\s*$/.test(sql)) return [];
  let result: { stmts?: { stmt?: unknown; stmt_location?: number; stmt_len?: number }[] };
  try {
    result = parseSync(sql) as typeof result;
  } catch (err) {
    const pos = (err as { sqlDetails?: { cursorPosition?: unknown } }).sqlDetails?.cursorPosition;
    throw new ParseFailure(typeof pos === 'number' ? pos : undefined);
  }
  const length = Buffer.byteLength(sql, 'utf8');
  return (result.stmts ?? []).map((s) => {
    if (s.stmt === undefined) throw new Unsupported('empty statement node');
    const start = s.stmt_location ?? 0;
    const end = s.stmt_len === undefined || s.stmt_len === 0 ? length : start + s.stmt_len;
    return { node: s.stmt, start, end, text: () => Buffer.from(sql, 'utf8').subarray(start, end).toString('utf8') };
  });
}
