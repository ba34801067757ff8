/**
 * The masking methods, their byte-level forms, the detectors and the DataRow/COPY rewriter on their
 * own (the proxy tests drive them through PostgreSQL). The rewriter parses bytes from the upstream:
 * fuzzed, it either rewrites or throws ProtocolError — never anything else.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { compileDetectors } from '../../src/enforce/masking/detectors.ts';
import { BYTE_MASKS, maskFn } from '../../src/enforce/masking/methods.ts';
import type { MaskMethod } from '../../src/policy/schema.ts';
import type { ResultMask } from '../../src/proxy/pg/gate.ts';
import { ProtocolError } from '../../src/proxy/pg/protocol.ts';
import { ResultMasker } from '../../src/proxy/pg/result-mask.ts';
import { dataRow } from '../helpers/pg-messages.ts';

const KEY = 'test-key-test-key-test-key-test-key';
const detectors = compileDetectors({ builtin: ['card', 'email', 'iban', 'ssn', 'bearer'], custom: [{ name: 'employee', pattern: 'EMP-\\d{6}', replacement: 'EMP-******' }], scope: 'unproven' });

function readRow(msg: Buffer): (string | null)[] {
  expect(msg.readInt32BE(1)).toBe(msg.length - 1);
  const n = msg.readInt16BE(5);
  const out: (string | null)[] = [];
  let p = 7;
  for (let i = 0; i < n; i++) {
    const len = msg.readInt32BE(p);
    p += 4;
    if (len < 0) out.push(null);
    else {
      out.push(msg.toString('utf8', p, p + len));
      p += len;
    }
  }
  expect(p).toBe(msg.length);
  return out;
}

const method = (m: MaskMethod) => ({ kind: 'method' as const, apply: maskFn(m, KEY), ...(BYTE_MASKS[m] ? { bytes: BYTE_MASKS[m] } : {}) });

describe('methods', () => {
  it.each([
    ['last4', '4000 0000 0000 0001', '**** **** **** 0001'],
    ['last4', 'ab12', '****'],
    ['last4', 'IBAN: DE89-3704', '****: ****-3704'],
    ['last4', 'naïve 😀 value', '***** * *alue'],
    ['email-domain', 'alice@example.com', '****@example.com'],
    ['email-domain', 'no at sign', '****'],
    ['email-domain', 'a@b@evil.example', '****@evil.example'],
    ['redact', 'anything', '****'],
    ['null', 'anything', null],
  ] as const)('%s(%j) = %j', (m, input, expected) => {
    expect(maskFn(m, KEY)(input)).toBe(expected);
  });

  it('hmac is keyed and stable: equal inputs, equal outputs (joins and GROUP BY work); another key differs', () => {
    const a = maskFn('hmac', KEY);
    expect(a('x')).toBe(a('x'));
    expect(a('x')).toMatch(/^hmac:[A-Za-z0-9_-]{22}$/);
    expect(a('x')).not.toBe(a('y'));
    expect(maskFn('hmac', `${KEY}!`)('x')).not.toBe(a('x'));
  });

  it('the byte forms write exactly what the string forms return (random ASCII and UTF-8 values)', () => {
    const alphabet = 'abcXYZ0123456789 -@._é€😀';
    for (let k = 0; k < 2000; k++) {
      const len = k % 40;
      let value = '';
      for (let i = 0; i < len; i++) value += [...alphabet][Math.floor(Math.random() * [...alphabet].length)];
      for (const m of ['last4', 'email-domain', 'redact', 'null'] as const) {
        const masker = new ResultMasker([{ columns: [method(m)], every: undefined }]);
        const msg = dataRow([value]);
        const out = masker.rewrite(0x44, msg, 0, msg.length);
        expect(readRow(out!)).toEqual([maskFn(m, KEY)(value)]);
      }
    }
  });
});

describe('detectors', () => {
  it.each([
    ['card 4111 1111 1111 1111 on file', 'card **** **** **** 1111 on file'],
    ['4111111111111111', '************1111'],
    ['printed layout even without Luhn: 4000 0000 0000 0001', 'printed layout even without Luhn: **** **** **** 0001'],
    ['mail bob@corp.example.org now', 'mail ****@corp.example.org now'],
    ['iban DE89370400440532013000', 'iban DE****************3000'],
    ['ssn 123-45-6789', 'ssn ***-**-****'],
    ['auth Bearer abcdefghijklmnopqrstuvwxyz0123', 'auth ****'],
    ['jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl', 'jwt ****'],
    ['employee EMP-123456', 'employee EMP-******'],
  ])('%j → %j', (input, expected) => {
    expect(detectors.scan(input)).toBe(expected);
  });

  it.each(['order 1234', '2026-12-04', 'a 16-digit non-card 1234567890123456', 'DE00 not an iban', 'md5 9e107d9d372bb6826bd81d3542a419d6', '000-12-3456'])('no hit: %j', (input) => {
    expect(detectors.scan(input)).toBeUndefined();
  });
});

describe('the rewriter', () => {
  const mask: ResultMask = { columns: [undefined, method('last4'), method('email-domain'), { kind: 'detect', scan: (v) => detectors.scan(v) }], every: method('redact') };

  it('rewrites masked columns, keeps NULLs and clean columns, counts masked values', () => {
    const m = new ResultMasker([mask]);
    const msg = dataRow(['1', '4000 0000 0000 0001', 'a@b.example', 'note: 4111 1111 1111 1111']);
    expect(readRow(m.rewrite(0x44, msg, 0, msg.length)!)).toEqual(['1', '**** **** **** 0001', '****@b.example', 'note: **** **** **** 1111']);
    const nulls = dataRow(['2', null, null, 'clean']);
    expect(m.rewrite(0x44, nulls, 0, nulls.length)).toBeUndefined();
    expect(m.masked).toBe(3);
  });

  it('a row wider or narrower than the plan (the relation changed): every column gets the strictest treatment', () => {
    const m = new ResultMasker([mask]);
    const msg = dataRow(['1', '2', '3', '4', '5']);
    expect(readRow(m.rewrite(0x44, msg, 0, msg.length)!)).toEqual(['****', '****', '****', '****', '****']);
  });

  it('binary-format values of masked columns become NULL (Bind result formats)', () => {
    const m = new ResultMasker([mask], [1]);
    const msg = dataRow(['1', '4000 0000 0000 0001', 'a@b.example', 'note: 4111 1111 1111 1111']);
    expect(readRow(m.rewrite(0x44, msg, 0, msg.length)!)).toEqual(['1', null, null, null]);
  });

  it('COPY text rows: fields unescaped, masked, escaped again; \\N stays NULL', () => {
    const m = new ResultMasker([mask]);
    const copy = (line: string) => {
      const body = Buffer.from(line, 'utf8');
      const msg = Buffer.alloc(5 + body.length);
      msg[0] = 0x64;
      msg.writeInt32BE(4 + body.length, 1);
      body.copy(msg, 5);
      return msg;
    };
    const msg = copy('1\t4000 0000 0000 0001\tme\\\\x@b.example\t\\N\n');
    const out = m.rewrite(0x64, msg, 0, msg.length)!;
    expect(out.toString('utf8', 5)).toBe('1\t**** **** **** 0001\t****@b.example\t\\N\n');
    expect(out.readInt32BE(1)).toBe(out.length - 1);
  });

  it('fuzz: random and truncated DataRows either rewrite to a well-formed message or throw ProtocolError', () => {
    for (let k = 0; k < 3000; k++) {
      const m = new ResultMasker([mask]);
      let msg: Buffer;
      if (k % 2) {
        msg = randomBytes(1 + (k % 200));
        msg[0] = 0x44;
      } else {
        const good = dataRow(['1', '4000 0000 0000 0001', 'x@y.z', 'w']);
        msg = good.subarray(0, Math.floor(Math.random() * good.length) + 1);
      }
      try {
        const out = m.rewrite(0x44, msg, 0, msg.length);
        if (out) expect(out.readInt32BE(1)).toBe(out.length - 1);
      } catch (err) {
        expect(err).toBeInstanceOf(ProtocolError);
      }
    }
  });
});
