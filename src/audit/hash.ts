/**
 * The hash chain: each entry's `hash` is SHA-256 (hex) over the canonical JSON of the entry without
 * its `hash` field (so `prevHash` and `seq` are covered). Canonical JSON follows RFC 8785 (JCS) for
 * the values audit entries contain: object keys sorted by UTF-16 code units, no whitespace,
 * `undefined` members omitted, numbers in ECMAScript shortest form.
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

/** An entry's top-level members, each value already in canonical JSON; order irrelevant. */
export type CanonicalMembers = [key: string, json: string][];

/**
 * Splits an object into canonical members, so most of the canonical form can be computed before
 * the entry's chain position (`seq`, `prevHash`) is known — outside the chain lock.
 */
export function canonicalMembers(obj: Record<string, unknown>): CanonicalMembers {
  return Object.keys(obj)
    .filter((k) => obj[k] !== undefined && k !== 'hash')
    .map((k) => [k, canonicalJson(obj[k])]);
}

/** SHA-256 (hex) of the canonical object made of `members`. */
export function hashMembers(members: CanonicalMembers): string {
  const sorted = [...members].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const json = `{${sorted.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
  return createHash('sha256').update(json, 'utf8').digest('hex');
}

/**
 * The chain hash of an entry: SHA-256 over its canonical JSON, ignoring any `hash` member.
 *
 * @example
 * const hash = chainHash({ ...event, prevHash });
 */
export function chainHash(entry: Record<string, unknown>): string {
  return hashMembers(canonicalMembers(entry));
}
