/**
 * The path-trick corpus (issue #13): every spelling we know of that makes a proxy and an upstream
 * read one request-target as two different paths. Each refusal case asserts the rule it breaks;
 * each accepted case asserts the exact canonical string the proxy will authorize and forward.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  MAX_TARGET_LENGTH,
  normalizeTarget,
  PATH_REFUSALS,
  redactQuery,
  type PathRefusal,
} from '../../../src/proxy/http/path.ts';

const REFUSED: Array<[target: string, reason: PathRefusal]> = [
  // dot segments, in every spelling
  ['/billing/public/../admin', 'dot-segment'],
  ['/billing/public/./admin', 'dot-segment'],
  ['/billing/public/..', 'dot-segment'],
  ['/billing/public/.', 'dot-segment'],
  ['/billing/public/../', 'dot-segment'],
  ['/billing/public/%2e%2e/admin', 'dot-segment'],
  ['/billing/public/%2E%2E/admin', 'dot-segment'],
  ['/billing/public/%2E%2e/admin', 'dot-segment'],
  ['/billing/public/.%2e/admin', 'dot-segment'],
  ['/billing/public/%2e./admin', 'dot-segment'],
  ['/billing/public/%2e/admin', 'dot-segment'],
  ['/billing/public//../admin', 'dot-segment'],
  ['/../billing/admin', 'dot-segment'],
  ['/./billing/admin', 'dot-segment'],
  ['/%2e%2e/billing/admin', 'dot-segment'],
  ['/billing/a/..?x=1', 'dot-segment'],
  // encoded slash and backslash
  ['/billing/public%2f..%2fadmin', 'encoded-slash'],
  ['/billing/public%2F..%2Fadmin', 'encoded-slash'],
  ['/billing/public/..%2fadmin', 'encoded-slash'],
  ['/billing/a%2Fb', 'encoded-slash'],
  ['/billing/public/..%5cadmin', 'encoded-slash'],
  ['/billing/a%5Cb', 'encoded-slash'],
  ['/billing%2finvoices', 'encoded-slash'],
  // literal backslash
  ['/billing/public\\..\\admin', 'backslash'],
  ['/billing/a\\b', 'backslash'],
  ['/billing\\invoices', 'backslash'],
  // double encoding: any encoded %
  ['/billing/public/%252e%252e/admin', 'double-encoding'],
  ['/billing/public/%252f', 'double-encoding'],
  ['/billing/a%2541', 'double-encoding'],
  ['/billing/100%25', 'double-encoding'],
  ['/billing/%25%32%65', 'double-encoding'],
  // ; path parameters
  ['/billing/invoices;jsessionid=abc', 'path-parameter'],
  ['/billing/admin;/x', 'path-parameter'],
  ['/billing/public/..;/admin', 'path-parameter'],
  ['/billing/a%3bb', 'path-parameter'],
  ['/billing/a%3Bb', 'path-parameter'],
  // control characters, raw and encoded
  ['/billing/a%00b', 'control-character'],
  ['/billing/a\u0000b', 'control-character'],
  ['/billing/a%0d%0aX-Injected:%201', 'control-character'],
  ['/billing/a\r\nHost: evil', 'control-character'],
  ['/billing/a\tb', 'control-character'],
  ['/billing/a%09b', 'control-character'],
  ['/billing/a%7fb', 'control-character'],
  ['/billing/a\u007fb', 'control-character'],
  ['/billing/a?x=\u0001', 'control-character'],
  ['/billing/a b', 'raw-space'],
  ['/billing/a?x=a b', 'raw-space'],
  // non-ASCII: look-alikes, overlongs, any byte >= 0x80
  ['/billing/public\uff0f..\uff0fadmin', 'non-ascii'],
  ['/billing/public/\u2024\u2024/admin', 'non-ascii'],
  ['/billing/public/%e2%80%a4%e2%80%a4/admin', 'non-ascii'],
  ['/billing/public/%ef%bc%8f', 'non-ascii'],
  ['/billing/public%c0%afadmin', 'non-ascii'],
  ['/billing/public/%c0%ae%c0%ae/admin', 'non-ascii'],
  ['/billing/%e0%80%af', 'non-ascii'],
  ['/billing/caf\u00e9', 'non-ascii'],
  ['/billing/caf%C3%A9', 'non-ascii'],
  ['/billing/a%80', 'non-ascii'],
  ['/billing/a%ff', 'non-ascii'],
  ['/billing/a?q=caf\u00e9', 'non-ascii'],
  // malformed escapes, path and query
  ['/billing/a%zz', 'malformed-escape'],
  ['/billing/a%4', 'malformed-escape'],
  ['/billing/a%', 'malformed-escape'],
  ['/billing/a%g1', 'malformed-escape'],
  ['/billing/a%%41', 'malformed-escape'],
  ['/billing/a?x=%zz', 'malformed-escape'],
  ['/billing/a?x=%4', 'malformed-escape'],
  ['/billing/a?x=%', 'malformed-escape'],
  // request-target forms other than origin-form
  ['http://billing/invoices', 'not-origin-form'],
  ['https://evil.example/billing/invoices', 'not-origin-form'],
  ['billing.internal:443', 'not-origin-form'],
  ['*', 'not-origin-form'],
  ['', 'not-origin-form'],
  ['billing/invoices', 'not-origin-form'],
  ['\\billing\\invoices', 'not-origin-form'],
  // fragment
  ['/billing/invoices#frag', 'fragment'],
  ['/billing/invoices?x=1#frag', 'fragment'],
  ['/billing/#/../admin', 'fragment'],
  // upstream segment
  ['/', 'missing-upstream'],
  ['//billing/invoices', 'missing-upstream'],
  ['//evil.example/invoices', 'missing-upstream'],
  ['/?x=1', 'missing-upstream'],
  ['/bill~ing/invoices', 'invalid-upstream'],
  ['/bill%3Aing/invoices', 'invalid-upstream'],
  ['/bill:ing/invoices', 'invalid-upstream'],
  ['/bill@ing/invoices', 'invalid-upstream'],
  ['/bill|ing/invoices', 'invalid-upstream'],
  // empty path beyond the upstream
  ['/billing', 'empty-path'],
  ['/billing/', 'empty-path'],
  ['/billing//', 'empty-path'],
  ['/billing?x=1', 'empty-path'],
  ['/billing/?x=1', 'empty-path'],
  // length
  ['/billing/' + 'a'.repeat(MAX_TARGET_LENGTH), 'too-long'],
  ['/billing/a?' + 'x'.repeat(MAX_TARGET_LENGTH), 'too-long'],
];

type Accepted = { target: string; upstream: string; path: string; segments: string[]; query: string };
const ACCEPTED: Accepted[] = [
  { target: '/billing/invoices', upstream: 'billing', path: '/invoices', segments: ['invoices'], query: '' },
  { target: '/billing/invoices/1', upstream: 'billing', path: '/invoices/1', segments: ['invoices', '1'], query: '' },
  { target: '/billing/invoices/1?x=y', upstream: 'billing', path: '/invoices/1', segments: ['invoices', '1'], query: 'x=y' },
  // trailing slash kept: a different resource to many upstreams
  { target: '/billing/invoices/', upstream: 'billing', path: '/invoices/', segments: ['invoices', ''], query: '' },
  // duplicate slashes collapsed (a trailing run becomes one slash)
  { target: '/billing//invoices', upstream: 'billing', path: '/invoices', segments: ['invoices'], query: '' },
  { target: '/billing///invoices//1', upstream: 'billing', path: '/invoices/1', segments: ['invoices', '1'], query: '' },
  { target: '/billing/invoices///', upstream: 'billing', path: '/invoices/', segments: ['invoices', ''], query: '' },
  // unreserved escapes decoded once
  { target: '/billing/%69nvoices', upstream: 'billing', path: '/invoices', segments: ['invoices'], query: '' },
  { target: '/billing/%7euser/%2D%5F%2e%41%30', upstream: 'billing', path: '/~user/-_.A0', segments: ['~user', '-_.A0'], query: '' },
  { target: '/%62illing/invoices', upstream: 'billing', path: '/invoices', segments: ['invoices'], query: '' },
  // dots that are not dot segments
  { target: '/billing/a.b', upstream: 'billing', path: '/a.b', segments: ['a.b'], query: '' },
  { target: '/billing/...', upstream: 'billing', path: '/...', segments: ['...'], query: '' },
  { target: '/billing/a%2Eb/.hidden', upstream: 'billing', path: '/a.b/.hidden', segments: ['a.b', '.hidden'], query: '' },
  // other escapes kept, hex upper-cased
  { target: '/billing/a%3ab%20c', upstream: 'billing', path: '/a%3Ab%20c', segments: ['a%3Ab%20c'], query: '' },
  { target: '/billing/q%3fx%23y', upstream: 'billing', path: '/q%3Fx%23y', segments: ['q%3Fx%23y'], query: '' },
  // printable ASCII RFC 3986 does not allow raw: escaped, same meaning
  { target: '/billing/a|b{c}', upstream: 'billing', path: '/a%7Cb%7Bc%7D', segments: ['a%7Cb%7Bc%7D'], query: '' },
  { target: '/billing/"<>^`[]', upstream: 'billing', path: '/%22%3C%3E%5E%60%5B%5D', segments: ['%22%3C%3E%5E%60%5B%5D'], query: '' },
  // sub-delims and : @ stay raw
  { target: "/billing/a:b@c!$&'()*+,=", upstream: 'billing', path: "/a:b@c!$&'()*+,=", segments: ["a:b@c!$&'()*+,="], query: '' },
  // query returned as-is, escapes untouched
  { target: '/billing/a?x=%2e%2e%2f&y=%5a', upstream: 'billing', path: '/a', segments: ['a'], query: 'x=%2e%2e%2f&y=%5a' },
  { target: '/billing/a?', upstream: 'billing', path: '/a', segments: ['a'], query: '' },
  { target: '/billing/a?x=1?y=/../', upstream: 'billing', path: '/a', segments: ['a'], query: 'x=1?y=/../' },
  { target: '/billing/a?x=%00', upstream: 'billing', path: '/a', segments: ['a'], query: 'x=%00' },
  // case is kept unless the upstream is case-insensitive
  { target: '/Billing/Invoices', upstream: 'Billing', path: '/Invoices', segments: ['Invoices'], query: '' },
  { target: '/k8s.api-v1_x/api/v1', upstream: 'k8s.api-v1_x', path: '/api/v1', segments: ['api', 'v1'], query: '' },
  // exactly 8 KiB is allowed
  {
    target: '/billing/' + 'a'.repeat(MAX_TARGET_LENGTH - 9),
    upstream: 'billing',
    path: '/' + 'a'.repeat(MAX_TARGET_LENGTH - 9),
    segments: ['a'.repeat(MAX_TARGET_LENGTH - 9)],
    query: '',
  },
];

describe('refused request-targets', () => {
  it.each(REFUSED)('%j → %s', (target, reason) => {
    expect(normalizeTarget(target)).toEqual({ ok: false, reason });
    // case-insensitive mode checks first, so it refuses the same targets for the same reasons
    expect(normalizeTarget(target, { caseInsensitive: true })).toEqual({ ok: false, reason });
  });

  it('every refusal rule is exercised by the corpus', () => {
    const seen = new Set(REFUSED.map(([, r]) => r));
    expect([...seen].sort()).toEqual(Object.keys(PATH_REFUSALS).sort());
  });
});

describe('accepted request-targets', () => {
  it.each(ACCEPTED)('$target', ({ target, ...expected }) => {
    expect(normalizeTarget(target)).toEqual({ ok: true, ...expected });
  });
});

describe('caseInsensitive', () => {
  const CASES: Array<[target: string, path: string]> = [
    ['/billing/Invoices/ABC', '/invoices/abc'],
    ['/billing/%41%42c', '/abc'], // decoded first, then lower-cased
    ['/billing/A%3aB%7c', '/a%3Ab%7C'], // escapes keep upper-case hex
    ['/billing/X//Y/', '/x/y/'],
  ];
  it.each(CASES)('%s → %s', (target, path) => {
    const r = normalizeTarget(target, { caseInsensitive: true });
    expect(r).toMatchObject({ ok: true, path, segments: path.slice(1).split('/') });
  });
  it('the upstream name and the query are not lower-cased', () => {
    expect(normalizeTarget('/Billing/A?X=Y', { caseInsensitive: true })).toEqual({
      ok: true,
      upstream: 'Billing',
      path: '/a',
      segments: ['a'],
      query: 'X=Y',
    });
  });
});

describe('redactQuery', () => {
  const CASES: Array<[query: string, redacted: string]> = [
    ['', ''],
    ['x=1', 'x=*'],
    ['user=ann&token=s3cr3t', 'user=*&token=*'],
    ['flag&x=1', 'flag&x=*'],
    ['x=', 'x=*'],
    ['x=a=b', 'x=*'],
    ['a=1&&b=2', 'a=*&&b=*'],
    ['a=1;secret=2', 'a=*'], // `;` is not a separator here: the rest stays inside the redacted value
    ['na%20me=v%26alue', 'na%20me=*'],
  ];
  it.each(CASES)('%j → %j', (query, redacted) => {
    expect(redactQuery(query)).toBe(redacted);
  });
});

describe('property: any accepted output is canonical', () => {
  // Built from the pieces the tricks above are made of, so random strings hit the edges often.
  // Tricky pieces mostly refuse, so they are mixed with benign ones; enough targets get through to
  // exercise the canonical-output checks (asserted below), and each still meets several tricks.
  const TRICKY = [
    '.', '..', '%', '%2e', '%2E', '%2f', '%2F', '%5c', '%5C', '%25', '%252e', '%00', '%0a', '%7f',
    '%c0%af', '%e2%80%a4', '%3b', '%4', '%zz', '\\', ';', '?', '#', ' ', '\t', '\u0000', '\uff0f',
    '\u2024', 'é',
  ];
  const BENIGN = [
    '/', '/', '//', '.', '..', '%2e', '%2E', '%41', '%61', '%7e', '%3a', '%20', '%7C', '~', '|', '{',
    '"', 'a', 'B', 'e', 'E', 'f', 'F', '2', '5', 'c', 'x', '-', '_', ':', '@', '=', '&', '+', '?', '?a=%2e',
  ];
  const piece = fc.oneof(
    { arbitrary: fc.constantFrom(...BENIGN), weight: 12 },
    { arbitrary: fc.constantFrom(...TRICKY), weight: 1 },
  );
  const target = fc
    .tuple(
      fc.constantFrom('/billing/', '/billing/', '/billing', '/', '', '/Bill.ing_1/'),
      fc.array(piece, { maxLength: 16 }),
    )
    .map(([prefix, pieces]) => prefix + pieces.join(''));

  it('no dot segments, no //, no ambiguous escapes, printable ASCII, idempotent', () => {
    let accepted = 0;
    fc.assert(
      fc.property(target, fc.boolean(), (t, caseInsensitive) => {
        const r = normalizeTarget(t, { caseInsensitive });
        if (!r.ok) {
          expect(Object.keys(PATH_REFUSALS)).toContain(r.reason);
          return;
        }
        accepted++;
        const { path, upstream, query, segments } = r;
        expect(path.startsWith('/')).toBe(true);
        expect(segments.some((s) => s === '.' || s === '..')).toBe(false);
        expect(path.split('/').slice(1).some((s) => s === '.' || s === '..')).toBe(false);
        expect(path).not.toContain('//');
        expect(path).not.toMatch(/%(2F|5C|2E|25)/i);
        expect(path).toMatch(/^[\x21-\x7e]+$/);
        expect(path).not.toMatch(/[\\;?#]/);
        expect('/' + segments.join('/')).toBe(path);
        expect(upstream).toMatch(/^[A-Za-z0-9_.-]+$/);
        const again = normalizeTarget(`/${upstream}${path}${query === '' ? '' : '?' + query}`, { caseInsensitive });
        expect(again).toEqual(r);
        // differential: an upstream parsing the forwarded path with the WHATWG URL parser (Node's URL,
        // undici, browsers' fetch) and decoding each segment reads the same segments we authorized
        const whatwg = new URL(path, 'http://upstream.test').pathname.split('/').slice(1).map(decodeURIComponent);
        expect(whatwg).toEqual(segments.map(decodeURIComponent));
      }),
      { numRuns: 3000 },
    );
    // the property is only worth something if many random targets get through to the checks
    expect(accepted).toBeGreaterThan(300);
  });

  it('accepts plain random paths unchanged (no false refusals on ordinary input)', () => {
    const seg = fc.stringMatching(/^[a-z0-9_-]{1,8}$/);
    fc.assert(
      fc.property(fc.array(seg, { minLength: 1, maxLength: 6 }), (segs) => {
        const path = '/' + segs.join('/');
        expect(normalizeTarget('/billing' + path)).toEqual({ ok: true, upstream: 'billing', path, segments: segs, query: '' });
      }),
      { numRuns: 500 },
    );
  });
});
