/** Shared helpers for the classifier tests: compact, order-independent views of a classification. */
import { classifySql, type ClassifyContext } from '../../../../src/proxy/pg/classify/index.ts';

export const CTX: ClassifyContext = { upstream: 'appdb', searchPath: ['public'] };

/** `"<op> <resource>"` per access of one statement, sorted. */
export type Summary = { kind: string; accesses: string[] };

/** Classify and summarise; throws (failing the test) if classification failed. */
export function summarise(sql: string, ctx: ClassifyContext = CTX): Summary[] {
  const r = classifySql(sql, ctx);
  if (!r.ok) throw new Error(`expected ok, got ${r.code}: ${r.reason}`);
  return r.statements.map((s) => ({
    kind: s.kind,
    accesses: s.accesses.map((a) => `${a.operation} ${a.resource}`).sort(),
  }));
}

/** The sorted accesses of a single-statement string. */
export function accesses(sql: string, ctx: ClassifyContext = CTX): string[] {
  const s = summarise(sql, ctx);
  if (s.length !== 1) throw new Error(`expected one statement, got ${s.length}`);
  return s[0]!.accesses;
}

/** Shorthands for expected access strings on upstream `appdb`. */
export const r = (rel: string) => `read pg:appdb/${rel}`;
export const op = (operation: string, obj: string) => `${operation} pg:appdb/${obj}`;
export const ADMIN = 'admin pg:appdb/*';
