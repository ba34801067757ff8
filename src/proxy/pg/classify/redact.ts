/**
 * Fingerprint and literal-free text of one statement, for audit entries and approvals, built from
 * the real lexer's tokens of that statement (comments already dropped by `scanTokens`): every
 * literal token becomes the next `$n`, so nothing from the original text survives except keywords,
 * identifiers, operators and parameters.
 */
import { createHash } from 'node:crypto';
import { normalizeSync } from 'libpg-query';
import { scanTokens, type Token } from './tokens.ts';
import { Unsupported } from './unsupported.ts';

/**
 * The statement's fingerprint (16 hex digits): a hash of its token sequence with every literal
 * reduced to one placeholder, so it is stable across literal values (and their types), spacing,
 * comments and keyword case.
 */
export function fingerprintOf(tokens: readonly Token[]): string {
  let shape = '';
  for (const t of tokens) shape += t.literal ? '\u0001' : t.part;
  return createHash('sha256').update(shape).digest('hex').slice(0, 16);
}

/**
 * The statement with every literal replaced by `$n` (numbered after its highest parameter) and
 * comments removed; tokens separated in the text are separated by one space.
 *
 * @example normalizedOf(tokens of "COPY t TO PROGRAM 'id' -- x") === 'COPY t TO PROGRAM $1'
 */
export function normalizedOf(tokens: readonly Token[]): string {
  let next = 1;
  for (const t of tokens) if (t.param) next = Math.max(next, Number(t.text.slice(1)) + 1);
  let out = '';
  let prevEnd = -1;
  for (const t of tokens) {
    if (out !== '' && t.start > prevEnd) out += ' ';
    out += t.literal ? `$${next++}` : t.text;
    prevEnd = t.end;
  }
  return out;
}

/**
 * Tokens of one statement when the whole string could not be scanned (libpg_query's scanner
 * output breaks on most control characters): scan libpg_query's normalized form instead, which has
 * lost the literals that usually hold them. Fails closed when that cannot be scanned either.
 */
export function fallbackTokens(text: string): Token[] {
  let tokens: Token[] | undefined;
  try {
    tokens = scanTokens(normalizeSync(text));
  } catch {
    tokens = undefined;
  }
  if (tokens === undefined) throw new Unsupported('cannot normalize statement');
  return tokens;
}
