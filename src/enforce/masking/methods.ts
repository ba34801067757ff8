/**
 * What a masked value becomes, per policy method. Pure string → string functions; the proxy applies
 * them to text-format values (binary-format values of masked columns are sent as NULL: see
 * src/proxy/pg/result-mask.ts).
 */
import { createHmac } from 'node:crypto';
import type { MaskMethod } from '../../policy/schema.ts';

import type { ByteMask } from '../../proxy/pg/gate.ts';

/** A method's transform; `null` means SQL NULL. */
export type MaskFn = (value: string) => string | null;

/** `****` at `at` (Buffer.fill costs more than four stores). */
function stars(out: Buffer, at: number): void {
  out[at] = out[at + 1] = out[at + 2] = out[at + 3] = 0x2a;
}
const isMaskableByte = (b: number) => (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122);

/**
 * The byte-level forms of `last4`, `email-domain`, `redact` and `null` (same output as the string
 * forms). `last4` leaves non-ASCII values to the string path (-2): a multi-byte letter is one `*`.
 */
export const BYTE_MASKS: Partial<Record<MaskMethod, ByteMask>> = {
  redact: { length: () => 4, write: (_s, _a, _b, out, at) => void stars(out, at) },
  null: { length: () => -1, write: () => {} },
  'email-domain': {
    length: (src, start, end) => {
      const at = src.lastIndexOf(0x40, end - 1);
      return at < start ? 4 : 4 + (end - at);
    },
    write: (src, start, end, out, o) => {
      stars(out, o);
      const at = src.lastIndexOf(0x40, end - 1);
      for (let i = at >= start ? at : end; i < end; i++) out[o + 4 + i - at] = src[i]!;
    },
  },
  last4: {
    length: (src, start, end) => {
      let alnum = 0;
      for (let i = start; i < end; i++) {
        const b = src[i]!;
        if (b > 127) return -2;
        if (isMaskableByte(b)) alnum++;
      }
      return alnum <= 4 ? 4 : end - start;
    },
    write: (src, start, end, out, o) => {
      let alnum = 0;
      for (let i = start; i < end; i++) if (isMaskableByte(src[i]!)) alnum++;
      if (alnum <= 4) return void stars(out, o);
      let toMask = alnum - 4;
      for (let i = start; i < end; i++) {
        const b = src[i]!;
        if (toMask > 0 && isMaskableByte(b)) {
          out[o++] = 0x2a;
          toMask--;
        } else out[o++] = b;
      }
    },
  },
};

const REDACTED = '****';

/** ASCII letters/digits, and any non-ASCII character (letters and digits of other scripts), are masked; ASCII punctuation and spaces stay. */
function isMaskable(code: number): boolean {
  return (code >= 48 && code <= 57) || (code >= 65 && code <= 90) || (code >= 97 && code <= 122) || code > 127;
}

/**
 * Every letter and digit but the last four becomes `*`; separators stay (`**** **** **** 0001`).
 * By code point, so a character outside the BMP is one `*`, never half a surrogate pair.
 */
function last4(value: string): string {
  const chars = Array.from(value);
  let keepFrom = chars.length;
  let kept = 0;
  for (let i = chars.length - 1; i >= 0 && kept < 4; i--) {
    if (isMaskable(chars[i]!.codePointAt(0)!)) {
      kept++;
      keepFrom = i;
    }
  }
  let out = '';
  let masked = 0;
  for (let i = 0; i < keepFrom; i++) {
    if (isMaskable(chars[i]!.codePointAt(0)!)) {
      out += '*';
      masked++;
    } else out += chars[i];
  }
  // four characters or fewer reveal the whole value: redact it
  return masked === 0 ? REDACTED : out + chars.slice(keepFrom).join('');
}

/** `****@example.com`: the domain stays (routing, grouping by provider), the mailbox goes. */
function emailDomain(value: string): string {
  const at = value.lastIndexOf('@');
  return at < 0 ? REDACTED : `${REDACTED}${value.slice(at)}`;
}

/**
 * The method's transform. `hmac` is keyed (the key never leaves the proxy) and stable, so equal
 * inputs give equal outputs: joins, GROUP BY and DISTINCT on the masked value still work.
 *
 * @example maskFn('last4')('4000 0000 0000 0001') === '**** **** **** 0001'
 */
export function maskFn(method: MaskMethod, hmacKey: string | Buffer): MaskFn {
  switch (method) {
    case 'redact':
      return () => REDACTED;
    case 'last4':
      return last4;
    case 'email-domain':
      return emailDomain;
    case 'null':
      return () => null;
    case 'hmac': {
      // the same values recur (joins, GROUP BY, repeated queries): remember recent outputs
      const recent = new Map<string, string>();
      return (v) => {
        let out = recent.get(v);
        if (out === undefined) {
          out = `hmac:${createHmac('sha256', hmacKey).update(v).digest('base64url').slice(0, 22)}`;
          if (recent.size >= 10_000) recent.clear();
          recent.set(v, out);
        }
        return out;
      };
    }
  }
}

export { REDACTED };
