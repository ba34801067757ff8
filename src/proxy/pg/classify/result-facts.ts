/**
 * Facts about a statement that the proxy's masking and approval decisions need besides its
 * accesses: where its result columns come from, whether an UPDATE/DELETE has no WHERE, and which
 * cursor it declares, reads or closes.
 */
import { list, optStr, unwrap } from './ast.ts';
import type { Resolver } from './names.ts';
import { ProvenanceAnalysis, UNANALYSABLE, type ResultShape } from './provenance.ts';
import type { ClassifiedStatement } from './types.ts';

type Facts = Pick<ClassifiedStatement, 'result' | 'unfiltered' | 'cursor' | 'copyOut'>;

export function resultFacts(node: unknown, resolver: Resolver): Facts {
  const n = unwrap(node);
  if (!n) return {};
  const [type, b] = n;
  let result: ResultShape | undefined;
  try {
    const analysis = new ProvenanceAnalysis(resolver);
    result = analysis.statement(node);
    if (type === 'CreateTableAsStmt' || type === 'ViewStmt') {
      const writes = analysis.writes(node);
      if (writes.length) result = { columns: [], every: { derived: [], unproven: false }, predicates: [], writes };
    }
  } catch {
    result = UNANALYSABLE; // a shape the analysis did not expect: mask as if it read (and wrote) everything
  }
  const facts: { -readonly [K in keyof Facts]: Facts[K] } = {};
  if (result !== undefined) facts.result = result;
  if ((type === 'UpdateStmt' || type === 'DeleteStmt') && b.whereClause === undefined) facts.unfiltered = true;
  if (type === 'DeclareCursorStmt') facts.cursor = { name: optStr(b.portalname) ?? '', action: 'declare' };
  if (type === 'FetchStmt') facts.cursor = { name: optStr(b.portalname) ?? '', action: 'fetch' };
  if (type === 'ClosePortalStmt') facts.cursor = { name: optStr(b.portalname) ?? '*', action: 'close' };
  if (type === 'CopyStmt' && b.is_from !== true) facts.copyOut = copyIsPlainText(b.options) ? 'text' : 'other';
  return facts;
}

/** True for COPY's text format with its default delimiter (no csv, binary or custom delimiter). */
function copyIsPlainText(options: unknown): boolean {
  for (const o of list(options)) {
    const d = unwrap(o)?.[1];
    const name = optStr(d?.defname);
    const value = unwrap(d?.arg)?.[1];
    if (name === 'format' && optStr(value?.sval)?.toLowerCase() !== 'text') return false;
    if (name === 'delimiter' || name === 'format' && value === undefined) return false;
  }
  return true;
}
