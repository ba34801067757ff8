/**
 * PostgreSQL's own lexer (libpg_query `scan`, the scanner its parser uses) as the classifier sees
 * it: one scan per SQL string gives the literal-free text for the audit trail, the fingerprint and
 * the cache key of a statement's *shape*.
 *
 * The shape key is sound only because it comes from the real lexer: two strings share a key only
 * if PostgreSQL's lexer returns the same token sequence for both, apart from the values of literal
 * tokens. The grammar (an LALR parser) chooses its productions from token types alone, so such
 * strings parse to trees of the same shape whose only differences are literal-derived values. A
 * hand-written tokenizer would be wrong about `'\'` (standard_conforming_strings), E-strings,
 * dollar quotes or nested comments, and an attacker could use the difference.
 */
import { scanSync } from 'libpg-query';

/** One token of the real lexer (comments are dropped by `scanTokens`). */
export interface Token {
  /** Byte offsets into the UTF-8 text (the parser's statement locations use the same unit). */
  readonly start: number;
  readonly end: number;
  readonly text: string;
  readonly type: number;
  /** True for SCONST, USCONST, ICONST, FCONST, BCONST, XCONST. */
  readonly literal: boolean;
  /** True for PARAM (`$1`). */
  readonly param: boolean;
  /**
   * The token in the shape key: its type, then — unless it is a literal — its text (keywords
   * lower-cased, as the lexer itself folds them). Self-delimiting, so joined parts are injective.
   */
  readonly part: string;
}

/** Token type numbers of this libpg_query build, read from the lexer itself by `initTokenTypes`. */
interface TokenTypes {
  readonly literals: ReadonlySet<number>;
  readonly comments: ReadonlySet<number>;
  readonly param: number;
  readonly uescape: number;
}

let types: TokenTypes | undefined;

/**
 * Learn the token type numbers from the lexer (called by `initClassifier` once the parser is
 * loaded), rather than trusting constants that a libpg_query upgrade could renumber.
 */
export function initTokenTypes(): void {
  const probe = `1 1.5 'a' U&'a' B'1' X'1' $1 UESCAPE -- c\n/* c */`;
  const t = scanSync(probe).tokens.map((x) => x.tokenType);
  if (t.length !== 10 || new Set(t).size !== 10) throw new Error('unexpected libpg_query scanner output');
  types = {
    literals: new Set(t.slice(0, 6)),
    param: t[6]!,
    uescape: t[7]!,
    comments: new Set(t.slice(8)),
  };
}

/** ASCII-only lower-casing: what PostgreSQL's keyword lookup does (never locale rules). */
function asciiLower(text: string): string {
  return text.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/**
 * The tokens of `sql`, comments dropped, or undefined when the lexer rejects the text or its output
 * cannot be read (libpg_query's JSON does not escape most control characters). Callers then take
 * the slow path; nothing is ever guessed.
 */
export function scanTokens(sql: string): Token[] | undefined {
  const tt = types;
  if (tt === undefined) throw new TypeError('initClassifier() must complete before classifySql()');
  let raw: { start: number; end: number; text: string; tokenType: number; keywordKind: number }[];
  try {
    raw = scanSync(sql).tokens;
  } catch {
    return undefined;
  }
  const out: Token[] = [];
  for (const r of raw) {
    if (tt.comments.has(r.tokenType)) continue;
    // One UTF-16 unit per type keeps keys short; anything outside the expected range is refused.
    if (!Number.isInteger(r.tokenType) || r.tokenType < 0 || r.tokenType > 0xc000) return undefined;
    const literal = tt.literals.has(r.tokenType);
    const code = String.fromCharCode(0x100 + r.tokenType);
    const text = r.keywordKind !== 0 ? asciiLower(r.text) : r.text;
    out.push({
      start: r.start,
      end: r.end,
      text: r.text,
      type: r.tokenType,
      literal,
      param: r.tokenType === tt.param,
      part: literal ? `${code}?` : `${code}${text.length}:${text}`,
    });
  }
  return out;
}

/**
 * The literal-free shape key of a whole SQL string, or undefined when the string has no key:
 * `UESCAPE 'c'` makes a *string literal* decide the characters of the identifier or string before
 * it, so any string containing it is never shared.
 */
export function shapeKey(tokens: readonly Token[]): string | undefined {
  const uescape = types!.uescape;
  let key = '';
  for (const t of tokens) {
    if (t.type === uescape) return undefined;
    key += t.part;
  }
  return key;
}
