/**
 * What a masked value becomes, per policy method. Pure string → string functions; the proxy applies
 * them to text-format values (binary-format values of masked columns are sent as NULL: see
 * src/proxy/pg/result-mask.ts).
 */
import { createHmac } from 'node:crypto';
import type { MaskMethod } from '../../policy/schema.ts';

/** A method's transform; `null` means SQL NULL. */
export type MaskFn = (value: string) => string | null;

const REDACTED = '****';

/** Every letter and digit but the last four becomes `*`; separators stay (`**** **** **** 0001`). */
function last4(value: string): string {
  let keep = 4;
  const out = value.split('');
  for (let i = out.length - 1; i >= 0; i--) {
    if (!/[\p{L}\p{N}]/u.test(out[i]!)) continue;
    if (keep > 0) keep--;
    else out[i] = '*';
  }
  // four characters or fewer reveal the whole value: redact it
  return value.replace(/[^\p{L}\p{N}]/gu, '').length <= 4 ? REDACTED : out.join('');
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
    case 'hmac':
      return (v) => `hmac:${createHmac('sha256', hmacKey).update(v).digest('base64url').slice(0, 22)}`;
  }
}

export { REDACTED };
