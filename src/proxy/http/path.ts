/**
 * Request-target normalisation for the HTTP proxy (issue #13, point 3).
 *
 * The proxy authorizes a path and then forwards it. If the upstream reads the forwarded bytes
 * differently from how we authorized them (`/public/..%2fadmin`, `/admin%2e`, `\`, `;jsessionid`),
 * a right on one resource reaches another. So we compute ONE canonical string, authorize it, and
 * forward exactly it; anything whose meaning depends on the upstream's parser is refused instead of
 * guessed at. Pure: no I/O, no state; the rules and their reasons are in docs/http-paths.md.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9112#section-3.2 request-target forms
 * @see https://www.rfc-editor.org/rfc/rfc3986#section-6.2.2 syntax-based normalisation
 */

/**
 * Why a target was refused: a stable code (safe to put in a 400 body or the audit; it never echoes
 * the input) mapped to the rule it names.
 */
export const PATH_REFUSALS = {
  'too-long': 'request-target longer than 8 KiB',
  'not-origin-form': 'request-target is not origin-form (absolute-form, authority-form and * are refused)',
  fragment: 'request-target contains a fragment (#)',
  'control-character': 'control character (raw, or percent-encoded in the path)',
  'raw-space': 'unencoded space',
  'non-ascii': 'non-ASCII byte (raw, or an escape decoding to a byte >= 0x80)',
  'malformed-escape': '% not followed by two hex digits',
  'double-encoding': 'encoded percent sign (%25) in the path',
  'encoded-slash': 'encoded slash or backslash (%2F, %5C) in the path',
  backslash: 'backslash in the path',
  'path-parameter': '; path parameter (raw or %3B) in the path',
  'dot-segment': '. or .. path segment, in any spelling',
  'missing-upstream': 'no upstream segment (/<upstream>/<path>)',
  'invalid-upstream': 'upstream segment is not [A-Za-z0-9_.-]+',
  'empty-path': 'no path after the upstream segment',
} as const;

export type PathRefusal = keyof typeof PATH_REFUSALS;

export type NormalizedTarget =
  | {
      ok: true;
      /** The first path segment, after decoding unreserved escapes; never lower-cased. */
      upstream: string;
      /** Canonical path after the upstream segment, starting with `/`: forward and authorize this. */
      path: string;
      /** `path` split on `/`: `'/' + segments.join('/') === path` (a trailing `/` gives a final `''`). */
      segments: string[];
      /** Everything after the first `?`, unchanged (validated only); `''` when there is none. */
      query: string;
    }
  | { ok: false; reason: PathRefusal };

export interface NormalizeOptions {
  /** The upstream matches paths case-insensitively (IIS, …): lower-case the path after the checks. */
  caseInsensitive?: boolean;
}

/** RFC 9112 recommends supporting at least 8000 octets; we refuse above 8 KiB rather than truncate. */
export const MAX_TARGET_LENGTH = 8192;

const UPSTREAM = /^[A-Za-z0-9_.-]+$/;
/** RFC 3986 §2.3 unreserved: an escape of one of these means the same as the character itself. */
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
/**
 * Characters RFC 3986 allows raw in a path segment (pchar minus `%`, `;`, which are handled apart).
 * Printable ASCII outside this set (`"<>[]^`{|}`) is escaped, so the output is strict RFC 3986.
 */
const RAW_PATH_CHAR = /^[A-Za-z0-9\-._~!$&'()*+,=:@]$/;
const HEX2 = /^[0-9A-Fa-f]{2}$/;

const refuse = (reason: PathRefusal): NormalizedTarget => ({ ok: false, reason });

/**
 * Normalise an origin-form request-target `/<upstream>/<path>[?query]` to the canonical path the
 * proxy authorizes and forwards, or refuse it with the rule it broke.
 *
 * @example
 * normalizeTarget('/billing//invoices/%7e%41?x=1')
 * // → { ok: true, upstream: 'billing', path: '/invoices/~A', segments: ['invoices', '~A'], query: 'x=1' }
 * normalizeTarget('/billing/public/%2e%2e/admin') // → { ok: false, reason: 'dot-segment' }
 */
export function normalizeTarget(rawTarget: string, opts: NormalizeOptions = {}): NormalizedTarget {
  // Whole-target checks first, in this order, so the reason names the most basic rule broken.
  if (rawTarget.length > MAX_TARGET_LENGTH) return refuse('too-long');
  if (!rawTarget.startsWith('/')) return refuse('not-origin-form');
  if (rawTarget.includes('#')) return refuse('fragment'); // clients never send one: someone crafted it
  const raw = checkRawCharacters(rawTarget);
  if (raw !== undefined) return refuse(raw);

  const q = rawTarget.indexOf('?');
  const rawPath = q === -1 ? rawTarget : rawTarget.slice(0, q);
  const query = q === -1 ? '' : rawTarget.slice(q + 1);
  if (!escapesWellFormed(query)) return refuse('malformed-escape');

  const canonical = canonicalPath(rawPath);
  if (typeof canonical !== 'string') return refuse(canonical.reason);

  // After canonicalPath a `/` is always a real separator: encoded slashes were refused.
  const all = canonical.split('/').slice(1);
  if (all[0] === '') return refuse('missing-upstream'); // `/`, `//host/…` (a network-path look-alike)
  if (all.some((s) => s === '.' || s === '..')) return refuse('dot-segment');
  const [upstream, ...rest] = all as [string, ...string[]];
  if (!UPSTREAM.test(upstream)) return refuse('invalid-upstream');

  // Collapse duplicate slashes, but keep one trailing slash: `/invoices/` and `/invoices` are
  // different resources to many upstreams (directory index, redirects), so both stay distinct.
  const trailingSlash = rest.length > 0 && rest[rest.length - 1] === '';
  const named = rest.filter((s) => s !== '');
  if (named.length === 0) return refuse('empty-path');
  const segments = trailingSlash ? [...named, ''] : named;
  let path = '/' + segments.join('/');
  if (opts.caseInsensitive === true) path = lowerOutsideEscapes(path);
  return { ok: true, upstream, path, segments: path.slice(1).split('/'), query };
}

/**
 * Replace every query value with `*`, keeping names and order, for the audit (names, never values).
 * Splits on `&` only: a `;`-separated value therefore stays inside the redacted value.
 *
 * @example redactQuery('user=ann&token=s3cr3t&flag') === 'user=*&token=*&flag'
 */
export function redactQuery(query: string): string {
  if (query === '') return '';
  return query
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      return eq === -1 ? pair : `${pair.slice(0, eq)}=*`;
    })
    .join('&');
}

/** Control characters, spaces and non-ASCII anywhere in the target (path and query alike). */
function checkRawCharacters(target: string): PathRefusal | undefined {
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return 'control-character';
    if (c === 0x20) return 'raw-space';
    if (c > 0x7f) return 'non-ascii'; // includes U+FF0F, U+2024 and every other look-alike
  }
  return undefined;
}

function escapesWellFormed(s: string): boolean {
  for (let i = s.indexOf('%'); i !== -1; i = s.indexOf('%', i + 1)) {
    if (!HEX2.test(s.slice(i + 1, i + 3))) return false;
  }
  return true;
}

/**
 * One left-to-right pass over the raw path: decode unreserved escapes, upper-case the rest, escape
 * raw characters RFC 3986 does not allow, and refuse the ambiguous ones. Each escape is decoded at
 * most once, so `%252e` is never read as `.` (and `%25` is refused outright).
 */
function canonicalPath(rawPath: string): string | { reason: PathRefusal } {
  let out = '';
  for (let i = 0; i < rawPath.length; i++) {
    const ch = rawPath[i] as string;
    if (ch === '/') {
      out += ch;
    } else if (ch === '%') {
      const hex = rawPath.slice(i + 1, i + 3);
      if (!HEX2.test(hex)) return { reason: 'malformed-escape' };
      const byte = parseInt(hex, 16);
      const decoded = decodedEscape(byte);
      if (typeof decoded !== 'string') return decoded;
      out += decoded;
      i += 2;
    } else if (ch === '\\') {
      return { reason: 'backslash' }; // Windows/IIS and some URL parsers read it as `/`
    } else if (ch === ';') {
      return { reason: 'path-parameter' }; // Tomcat/Jetty strip `;…`, others keep it: ambiguous
    } else if (RAW_PATH_CHAR.test(ch)) {
      out += ch;
    } else {
      out += escapeByte(ch.charCodeAt(0)); // printable ASCII such as `|` or `{`: same meaning, escaped
    }
  }
  return out;
}

/** What the escape of `byte` becomes in the canonical path, or why it is refused. */
function decodedEscape(byte: number): string | { reason: PathRefusal } {
  const ch = String.fromCharCode(byte);
  if (UNRESERVED.test(ch)) return ch; // `%2e` becomes `.`, so the dot-segment check sees it
  if (byte < 0x20 || byte === 0x7f) return { reason: 'control-character' };
  if (byte >= 0x80) return { reason: 'non-ascii' }; // UTF-8 look-alikes and overlongs (`%c0%af`)
  if (byte === 0x2f || byte === 0x5c) return { reason: 'encoded-slash' };
  if (byte === 0x25) return { reason: 'double-encoding' }; // an upstream that decodes twice sees `%xx`
  if (byte === 0x3b) return { reason: 'path-parameter' }; // some frameworks decode before splitting `;`
  return escapeByte(byte);
}

function escapeByte(byte: number): string {
  return '%' + byte.toString(16).toUpperCase().padStart(2, '0');
}

/** Lower-case letters but keep escapes' hex upper-case, so the output stays canonical. */
function lowerOutsideEscapes(path: string): string {
  return path.replace(/%[0-9A-F]{2}|[^%]+/g, (part) => (part.startsWith('%') ? part : part.toLowerCase()));
}
