/**
 * Fingerprint and literal-free text of one statement, for audit entries and approvals.
 *
 * libpg_query's `normalize` replaces literals with `$n` in queries but leaves them in some
 * statements (COPY … PROGRAM 'cmd', DDL defaults) and keeps comments. So its output is re-scanned
 * and rebuilt from tokens: comments are dropped and any token still holding a literal becomes the
 * next `$n`. Nothing from the original text survives except keywords, identifiers, operators and
 * parameters.
 */
import { fingerprintSync, normalizeSync, scanSync } from 'libpg-query';
import { Unsupported } from './unsupported.ts';

const LITERAL_TOKENS = new Set(['SCONST', 'USCONST', 'ICONST', 'FCONST', 'BCONST', 'XCONST']);
const COMMENT_TOKENS = new Set(['SQL_COMMENT', 'C_COMMENT']);
const IDENT_TOKENS = new Set(['IDENT', 'UIDENT']);

/** The statement's libpg_query fingerprint (16 hex digits). */
export function fingerprintOf(text: string): string {
  try {
    return fingerprintSync(text);
  } catch {
    throw new Unsupported('cannot fingerprint statement');
  }
}

/**
 * The statement with every literal replaced by `$n` and comments removed.
 *
 * @example normalizedOf("COPY t TO PROGRAM 'id' -- x") === 'COPY t TO PROGRAM $1'
 */
export function normalizedOf(text: string): string {
  let tokens: { start: number; end: number; tokenName: string; text: string }[];
  try {
    tokens = scanSync(normalizeSync(text)).tokens;
  } catch {
    throw new Unsupported('cannot normalize statement');
  }
  let next = 1;
  for (const t of tokens) {
    const m = /^\$(\d+)$/.exec(t.text);
    if (m !== null) next = Math.max(next, Number(m[1]) + 1);
  }
  let out = '';
  let prevEnd = -1;
  for (const t of tokens) {
    if (COMMENT_TOKENS.has(t.tokenName)) continue;
    // B'…', X'…' and U&'…' scan as UNKNOWN: any non-identifier token with a quote is a literal.
    const literal = LITERAL_TOKENS.has(t.tokenName) || (!IDENT_TOKENS.has(t.tokenName) && t.text.includes("'"));
    if (out !== '' && t.start > prevEnd) out += ' ';
    out += literal ? `$${next++}` : t.text;
    prevEnd = t.end;
  }
  return out;
}
