/**
 * The hash chains. Since migration 005 every writer process appends to chains of its own, and each
 * entry's `hash` is (computed here, in the writer, and again by verification from the stored columns)
 *
 *   SHA-256 hex of UTF-8( prevHash + "\n" + chainId + ":" + chainSeq + "\n" + content )
 *
 * where `content` is the canonical JSON of the entry without `seq`, `chainId`, `chainSeq`,
 * `prevHash`, `hash` and `lineage` — the lineage is stored once per distinct value and covered by
 * the entry's `lineageHash` (SHA-256 of its canonical JSON). So an entry is bound to its content, its
 * lineage, its chain, its position in that chain and its predecessor. (`seq` is a global ordering
 * column assigned by the database; it is not part of new hashes.)
 *
 * Rows of the legacy chain (written before migration 005, `chainId` absent) carry the 004 form,
 * `SHA-256(prevHash + "\n" + seq + "\n" + content)` with the lineage inline, or the pre-004 form
 * (`legacyChainHash`). The inputs cannot coincide: the position line is `<digits>:<digits>` in one
 * and `<digits>` in the other, and the pre-004 input starts with `{`.
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
      // Plain loops and string concatenation: this runs for every audit entry on the hot path.
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ',';
          const v: unknown = value[i];
          out += v === undefined ? 'null' : canonicalJson(v);
        }
        return `${out}]`;
      }
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj).sort(); // default sort: UTF-16 code units, as RFC 8785 wants
      let out = '{';
      let first = true;
      for (const k of keys) {
        const v = obj[k];
        if (v === undefined) continue;
        if (!first) out += ',';
        first = false;
        out += `${JSON.stringify(k)}:${canonicalJson(v)}`;
      }
      return `${out}}`;
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
 * The hashed content of a chained entry (migration 005 on): its canonical JSON without `seq`,
 * `chainId`, `chainSeq`, `prevHash`, `hash` and `lineage` (an event's lineage is covered by its
 * `lineageHash`).
 *
 * @example
 * chainedContentJson({ seq: 9, chainId: 3, chainSeq: 1, id: 'x', lineage: [], lineageHash: 'ab…' }); // '{"id":"x","lineageHash":"ab…"}'
 */
export function chainedContentJson(entry: Record<string, unknown>): string {
  const { seq: _seq, chainId: _c, chainSeq: _s, prevHash: _prev, hash: _hash, lineage: _lineage, ...content } = entry;
  return canonicalJson(content);
}

/**
 * The hash linking `content` at (`chainId`, `chainSeq`) onto `prevHash`.
 *
 * @example
 * const hash = chainLinkHash(GENESIS_HASH, 3, 1, chainedContentJson(event));
 */
export function chainLinkHash(prevHash: string, chainId: number, chainSeq: number, content: string): string {
  return createHash('sha256').update(`${prevHash}\n${chainId}:${chainSeq}\n${content}`, 'utf8').digest('hex');
}

/**
 * The content address of a lineage: SHA-256 hex of its canonical JSON (the key of `audit_lineages`).
 *
 * @example
 * const ok = lineageHash(record.lineage) === record.lineageHash;
 */
export function lineageHash(lineage: unknown): string {
  return sha256Hex(canonicalJson(lineage));
}

/** SHA-256 hex of the UTF-8 of `text`. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
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
 * The chain hash of a stored entry (any `hash` is ignored): for a chained entry (with `chainId` and
 * `chainSeq`) the 005 form over its chained content, for a legacy one the 004 form over `seq`.
 * (A chained event's `lineage`, if present, is not part of it: check `lineageHash(lineage)` too.)
 *
 * @example
 * const ok = chainHash(event) === event.hash;
 */
export function chainHash(entry: Record<string, unknown> & { seq?: number; prevHash: string; chainId?: number; chainSeq?: number }): string {
  if (entry.chainId !== undefined && entry.chainSeq !== undefined) {
    return chainLinkHash(entry.prevHash, entry.chainId, entry.chainSeq, chainedContentJson(entry));
  }
  if (entry.seq === undefined) throw new TypeError('chainHash: a legacy entry needs its seq');
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
