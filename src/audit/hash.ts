/**
 * The hash chain. Each entry's `hash` is
 *
 *   SHA-256 hex of UTF-8( prevHash + "\n" + seq + "\n" + content )
 *
 * where `content` is the canonical JSON of the entry without `seq`, `prevHash` and `hash` — so the
 * entry is bound to its content, its position and its predecessor. PostgreSQL computes this very
 * value when it appends (`audit_link` in migrations/004_audit_fast_append.sql), from the content the
 * writer sends; verification recomputes it here from the stored columns.
 *
 * Canonical JSON follows RFC 8785 (JCS) for the values audit entries contain: object keys sorted by
 * UTF-16 code units, no whitespace, `undefined` members omitted, numbers in ECMAScript shortest form.
 */
import { createHash } from 'node:crypto';

/** `prevHash` of the first entry of a chain. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * Serialises a JSON value canonically (RFC 8785): equal values give equal strings.
 *
 * @example
 * canonicalJson({ b: 1, a: [true, 'x'] }); // '{"a":[true,"x"],"b":1}'
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonicalJson: non-finite number');
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
      const obj = value as Record<string, unknown>;
      const members = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort()
        .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`);
      return `{${members.join(',')}}`;
    }
    default:
      throw new TypeError(`canonicalJson: unsupported ${typeof value}`);
  }
}

/**
 * The hashed content of an entry: its canonical JSON without `seq`, `prevHash` and `hash` — the
 * part known before the entry's chain position, which the writer sends to PostgreSQL.
 *
 * @example
 * contentJson({ seq: 3, id: 'x', prevHash: GENESIS_HASH }); // '{"id":"x"}'
 */
export function contentJson(entry: Record<string, unknown>): string {
  const { seq: _seq, prevHash: _prev, hash: _hash, ...content } = entry;
  return canonicalJson(content);
}

/**
 * The hash linking `content` at position `seq` onto `prevHash` (same as PostgreSQL's `audit_link`).
 *
 * @example
 * const hash = linkHash(GENESIS_HASH, 1, contentJson(event));
 */
export function linkHash(prevHash: string, seq: number, content: string): string {
  return createHash('sha256').update(`${prevHash}\n${seq}\n${content}`, 'utf8').digest('hex');
}

/**
 * The chain hash of a stored entry (it must carry `seq` and `prevHash`; any `hash` is ignored).
 *
 * @example
 * const ok = chainHash(event) === event.hash;
 */
export function chainHash(entry: Record<string, unknown> & { seq: number; prevHash: string }): string {
  return linkHash(entry.prevHash, entry.seq, contentJson(entry));
}

/**
 * The hash rows written before migration 004 carry: SHA-256 over the canonical JSON of the whole
 * entry without `hash` (`seq` and `prevHash` included). Verification accepts it for those rows; the
 * two forms cannot coincide (this input starts with `{`, the other with 64 hex digits).
 *
 * @example
 * const ok = chainHash(event) === event.hash || legacyChainHash(event) === event.hash;
 */
export function legacyChainHash(entry: Record<string, unknown>): string {
  const { hash: _hash, ...rest } = entry;
  return createHash('sha256').update(canonicalJson(rest), 'utf8').digest('hex');
}
