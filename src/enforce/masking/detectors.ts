/**
 * Value detectors: find sensitive values in text whose column is not provably clean (a view, a
 * function result, anything the proxy cannot trace) and mask each match in place. Built in: card
 * numbers (13–19 digits passing Luhn), e-mail addresses, IBANs (mod-97), US SSNs, bearer tokens and
 * JWTs. Users add their own (`masking.detectors.custom` in the policy).
 *
 * Cost: each detector has a cheap precondition (a digit, an `@`, `eyJ`, …) tested before its regex,
 * so text with nothing suspicious costs one or two `indexOf`/`test` scans.
 */
import type { MaskingPolicy } from '../../policy/schema.ts';

interface Detector {
  readonly name: string;
  /** A fast regex any match must contain (all of a set's sentinels run as ONE native scan first). */
  readonly sentinel: string;
  /** Cheap test: false means the regex cannot match. */
  readonly maybe: (s: string) => boolean;
  readonly pattern: RegExp;
  /** Replacement for one match, or undefined to leave it (e.g. a digit run failing Luhn). */
  readonly replace: (match: string) => string | undefined;
}

const IBAN_START = /[A-Z]{2}\d{2}/;

/** True when `s` holds 13 digits in a row, single spaces or dashes between them allowed. */
function hasDigitRun(s: string, min: number): boolean {
  let run = 0;
  let prevDigit = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (++run >= min) return true;
      prevDigit = true;
    } else if ((c === 32 || c === 45) && prevDigit) {
      prevDigit = false;
    } else {
      run = 0;
      prevDigit = false;
    }
  }
  return false;
}

function luhn(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

function ibanValid(iban: string): boolean {
  const s = iban.replace(/\s/g, '').toUpperCase();
  const moved = s.slice(4) + s.slice(0, 4);
  let rem = 0;
  for (const ch of moved) {
    const v = ch >= 'A' && ch <= 'Z' ? String(ch.charCodeAt(0) - 55) : ch;
    for (const d of v) rem = (rem * 10 + (d.charCodeAt(0) - 48)) % 97;
  }
  return rem === 1;
}

const BUILTIN: Record<MaskingPolicy['detectors']['builtin'][number], Detector> = {
  card: {
    name: 'card',
    sentinel: '\\d(?:[ -]?\\d){12}',
    maybe: (s) => s.length >= 13 && hasDigitRun(s, 13),
    pattern: /(?<![\d])\d(?:[ -]?\d){12,18}(?![\d])/g,
    replace: (m) => {
      const digits = m.replace(/\D/g, '');
      // Luhn-valid 13–19 digits, or the printed card layout (4×4 groups) whatever its check digit:
      // test and demo numbers often fail Luhn, and the layout alone is evidence enough
      const grouped = /^\d{4}([ -])\d{4}\1\d{4}\1\d{4}$/.test(m);
      if (digits.length < 13 || digits.length > 19 || !(grouped || luhn(digits))) return undefined;
      let keep = 4;
      const out = m.split('');
      for (let i = out.length - 1; i >= 0; i--) if (/\d/.test(out[i]!)) (keep > 0 ? keep-- : (out[i] = '*'));
      return out.join('');
    },
  },
  email: {
    name: 'email',
    sentinel: '@',
    maybe: (s) => s.includes('@'),
    pattern: /[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)/g,
    replace: (m) => `****${m.slice(m.lastIndexOf('@'))}`,
  },
  iban: {
    name: 'iban',
    sentinel: '[A-Z]{2}\\d{2}',
    maybe: (s) => s.length >= 15 && IBAN_START.test(s),
    pattern: /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b/g,
    replace: (m) => (ibanValid(m) ? `${m.slice(0, 2)}**${'*'.repeat(Math.max(0, m.replace(/\s/g, '').length - 8))}${m.replace(/\s/g, '').slice(-4)}` : undefined),
  },
  ssn: {
    name: 'ssn',
    sentinel: '\\d{3}-\\d{2}-\\d{4}',
    maybe: (s) => s.length >= 11 && s.includes('-'),
    pattern: /\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b/g,
    replace: () => '***-**-****',
  },
  bearer: {
    name: 'bearer',
    sentinel: 'eyJ|[Bb]earer|gh[pousr]|xox[abpr]|sk_live|sk-',
    maybe: (s) => s.length >= 16 && (s.includes('eyJ') || s.includes('earer') || s.includes('_') || s.includes('sk-')),
    pattern: /\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*|\b[Bb]earer\s+[A-Za-z0-9._~+/=-]{16,}|\b(?:gh[pousr]|xox[abpr]|sk_live|sk-)[A-Za-z0-9_-]{16,}/g,
    replace: () => '****',
  },
};

/** Finds and masks sensitive values; `scan(text)` → masked text, or undefined when nothing matched. */
export interface DetectorSet {
  readonly names: readonly string[];
  scan(text: string): string | undefined;
}

export function compileDetectors(config: MaskingPolicy['detectors']): DetectorSet {
  const detectors: Detector[] = config.builtin.map((n) => BUILTIN[n]);
  for (const c of config.custom) {
    detectors.push({ name: c.name, sentinel: c.pattern, maybe: () => true, pattern: new RegExp(c.pattern, 'gu'), replace: () => c.replacement });
  }
  // one native scan rules out most values (ids, hashes, prose) before any detector runs
  const sentinel = new RegExp(detectors.map((d) => `(?:${d.sentinel})`).join('|'), 'u');
  return {
    names: detectors.map((d) => d.name),
    scan(text) {
      if (detectors.length === 0 || !sentinel.test(text)) return undefined;
      let out = text;
      let hit = false;
      for (const d of detectors) {
        if (!d.maybe(out)) continue;
        d.pattern.lastIndex = 0;
        out = out.replace(d.pattern, (m) => {
          const r = d.replace(m);
          if (r === undefined) return m;
          hit = true;
          return r;
        });
      }
      return hit ? out : undefined;
    },
  };
}
