import { describe, expect, it } from 'vitest';
import { MessageFramer } from '../../../src/proxy/pg/framer.ts';
import {
  ProtocolError,
  commandRows,
  encodeError,
  encodeParse,
  encodeQuery,
  parseErrorFields,
  safeSqlState,
  sanitizeText,
} from '../../../src/proxy/pg/protocol.ts';
import { isLoopback, mustRefuseCleartext, upstreamParameters } from '../../../src/proxy/pg/startup.ts';

describe('sanitizeText / encodeError', () => {
  it('keeps printable ASCII only and caps the length', () => {
    expect(sanitizeText('denied: "orders"')).toBe('denied: "orders"');
    expect(sanitizeText('a\nb\u001b[31mc\u0000d\u00e9\u2028')).toBe('a?b?[31mc?d??');
    expect(sanitizeText('x'.repeat(1000))).toHaveLength(240);
  });

  it('never puts a malformed SQLSTATE on the wire', () => {
    expect(safeSqlState('42501')).toBe('42501');
    expect(safeSqlState('4250')).toBe('XX000');
    expect(safeSqlState("42501'\n")).toBe('XX000');
  });

  it('round-trips through parseErrorFields', () => {
    const msg = encodeError('FATAL', '28P01', 'bad\r\ntoken\u0007');
    expect(msg[0]).toBe(0x45);
    expect(msg.readInt32BE(1)).toBe(msg.length - 1);
    expect(parseErrorFields(msg, 0, msg.length)).toEqual({ severity: 'FATAL', code: '28P01', message: 'bad??token?' });
  });
});

describe('encoders', () => {
  it('frames Query and Parse', () => {
    const q = encodeQuery('BATON_DENY_1');
    expect(q.toString('latin1')).toBe('Q\0\0\0\x11BATON_DENY_1\0');
    const p = encodeParse('s', 'BATON_DENY_2');
    expect(p.toString('latin1')).toBe('P\0\0\0\x15s\0BATON_DENY_2\0\0\0');
  });
});

describe('commandRows', () => {
  it.each([
    ['SELECT 5', 5],
    ['INSERT 0 7', 7],
    ['UPDATE 3', 3],
    ['DELETE 0', 0],
    ['COPY 12', 12],
    ['CREATE TABLE', undefined],
    ['BEGIN', undefined],
  ])('%s → %s', (tag, rows) => expect(commandRows(tag)).toBe(rows));
});

describe('MessageFramer', () => {
  const msgs = Buffer.concat([encodeQuery('SELECT 1'), encodeParse('', 'SELECT 2'), Buffer.from('S\0\0\0\x04', 'latin1')]);
  const drain = (f: MessageFramer): string[] => {
    const out: string[] = [];
    for (let t = f.next(); t >= 0; t = f.next()) out.push(`${String.fromCharCode(t)}:${f.end - f.start}`);
    return out;
  };

  it('returns whole messages without copying when a chunk holds them', () => {
    const f = new MessageFramer(1024);
    f.push(msgs);
    expect(f.next()).toBe(0x51);
    expect(f.buf).toBe(msgs);
    expect(drain(f)).toEqual(['P:17', 'S:5']);
  });

  it('reassembles messages fed one byte at a time', () => {
    const f = new MessageFramer(1024);
    const got: string[] = [];
    for (let i = 0; i < msgs.length; i++) {
      f.push(msgs.subarray(i, i + 1));
      got.push(...drain(f));
    }
    expect(got).toEqual(['Q:14', 'P:17', 'S:5']);
    expect(f.buffered).toBe(0);
  });

  it('refuses impossible and oversized lengths as soon as the header is in', () => {
    const f = new MessageFramer(100);
    f.push(Buffer.from([0x51, 0, 0, 0, 200]));
    expect(() => f.next()).toThrow(new ProtocolError('message too large (limit 100 bytes)'));
    const g = new MessageFramer(100);
    g.push(Buffer.from([0x51, 0, 0, 0, 3]));
    expect(() => g.next()).toThrow(ProtocolError);
  });
});

describe('start-up parameters', () => {
  it('forwards only the whitelist, forces UTF8', () => {
    const params = new Map([
      ['user', 'agent'],
      ['database', 'db'],
      ['application_name', 'psql'],
      ['DateStyle', 'ISO, MDY'],
      ['TimeZone', 'UTC'],
      ['extra_float_digits', '3'],
      ['IntervalStyle', 'iso_8601'],
      ['client_encoding', 'utf-8'],
      ['options', '-c role=admin'],
      ['search_path', 'evil'],
      ['replication', 'false'],
      ['_pq_.anything', 'x'],
    ]);
    expect(upstreamParameters(params)).toEqual({
      application_name: 'psql',
      DateStyle: 'ISO, MDY',
      TimeZone: 'UTC',
      extra_float_digits: '3',
      IntervalStyle: 'iso_8601',
      client_encoding: 'UTF8',
    });
  });

  it('refuses replication and unsafe client encodings', () => {
    expect(() => upstreamParameters(new Map([['replication', 'database']]))).toThrow(
      expect.objectContaining({ sqlstate: '0A000' }),
    );
    for (const enc of ['SJIS', 'GBK', 'BIG5', 'LATIN1']) {
      expect(() => upstreamParameters(new Map([['client_encoding', enc]]))).toThrow('only UTF8 client_encoding');
    }
    expect(upstreamParameters(new Map([['client_encoding', 'SQL_ASCII']]))).toEqual({ client_encoding: 'UTF8' });
  });
});

describe('cleartext refusal', () => {
  it('knows loopback addresses', () => {
    for (const a of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1']) expect(isLoopback(a)).toBe(true);
    for (const a of ['10.0.0.1', '::ffff:10.0.0.1', '0.0.0.0', '', undefined]) expect(isLoopback(a)).toBe(false);
  });

  it('refuses only non-loopback, non-TLS, not explicitly allowed', () => {
    expect(mustRefuseCleartext({ tls: false, localAddress: '10.1.2.3', allowInsecure: false })).toBe(true);
    expect(mustRefuseCleartext({ tls: true, localAddress: '10.1.2.3', allowInsecure: false })).toBe(false);
    expect(mustRefuseCleartext({ tls: false, localAddress: '10.1.2.3', allowInsecure: true })).toBe(false);
    expect(mustRefuseCleartext({ tls: false, localAddress: '127.0.0.1', allowInsecure: false })).toBe(false);
  });
});
