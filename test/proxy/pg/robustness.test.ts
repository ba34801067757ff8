import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgProxy } from '../../../src/proxy/pg/server.ts';
import { RawClient, createDatabase, dropDatabase, pgClient, selfSignedCert, serialize, startProxy, testGate } from './helpers.ts';

/** Hostile and broken input: every bad session ends with a clear error; the server keeps serving. */

let db: string;
let proxy: PgProxy;
let port: number;

beforeAll(async () => {
  db = await createDatabase();
  const { gate } = testGate(db);
  ({ proxy, port } = await startProxy({ gate, limits: { maxMessageBytes: 1024 * 1024, startupTimeoutMs: 1500 } }));
});

afterAll(async () => {
  await proxy?.close();
  if (db) await dropDatabase(db);
});

/** Sends bytes, optionally half-closes, collects everything until the server closes (or timeout). */
function exchange(bytes: Buffer, opts: { end?: boolean; timeoutMs?: number; p?: number; host?: string } = {}): Promise<{ data: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = connect({ host: opts.host ?? '127.0.0.1', port: opts.p ?? port });
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ data: Buffer.concat(chunks), closed: false });
    }, opts.timeoutMs ?? 3000);
    s.on('connect', () => (opts.end ? s.end(bytes) : s.write(bytes)));
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), closed: true });
    });
  });
}

/** The SQLSTATE and message of the first ErrorResponse in `data`, if any. */
function firstError(data: Buffer): { code: string; message: string; severity: string } | undefined {
  let i = 0;
  while (i + 5 <= data.length) {
    const type = data[i]!;
    const len = data.readInt32BE(i + 1);
    if (type === 0x45) {
      const fields: Record<string, string> = {};
      let j = i + 5;
      while (data[j] !== 0 && j < i + 1 + len) {
        const nul = data.indexOf(0, j + 1);
        fields[String.fromCharCode(data[j]!)] = data.toString('utf8', j + 1, nul);
        j = nul + 1;
      }
      return { code: fields['C']!, message: fields['M']!, severity: fields['S']! };
    }
    if (type === 0x4e && data.length === 1) return undefined; // bare 'N' (SSL refused)
    i += 1 + len;
  }
  return undefined;
}

const startup = (): Buffer => serialize.startup({ user: 'agent', database: 'x' });

describe('before authentication', () => {
  it('answers garbage (an HTTP request) with 08P01 and closes', async () => {
    const r = await exchange(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect(r.closed).toBe(true);
    expect(firstError(r.data)).toEqual({ code: '08P01', message: 'start-up packet too large', severity: 'FATAL' });
  });

  it('refuses an oversized StartupMessage before reading it', async () => {
    const header = Buffer.alloc(8);
    header.writeInt32BE(20_000, 0);
    header.writeInt32BE(0x30000, 4);
    const r = await exchange(header);
    expect(firstError(r.data)).toMatchObject({ code: '08P01', message: 'start-up packet too large' });
  });

  it('refuses an invalid length and an unknown protocol', async () => {
    const tiny = Buffer.from([0, 0, 0, 2, 1, 2, 3, 4]);
    expect(firstError((await exchange(tiny)).data)).toMatchObject({ code: '08P01', message: 'invalid start-up packet length' });
    const v2 = Buffer.from([0, 0, 0, 9, 0, 2, 0, 0, 0]);
    expect(firstError((await exchange(v2)).data)).toMatchObject({ code: '0A000' });
    const badLayout = Buffer.concat([Buffer.from([0, 0, 0, 13, 0, 3, 0, 0]), Buffer.from('user\0')]); // no terminator
    expect(firstError((await exchange(badLayout)).data)).toMatchObject({ code: '08P01' });
  });

  it('closes a truncated start-up (client gone, or silent until the auth timeout)', async () => {
    const partial = startup().subarray(0, 10);
    const gone = await exchange(partial, { end: true });
    expect(gone.closed).toBe(true);
    const silent = await exchange(partial, { timeoutMs: 4000 });
    expect(silent.closed).toBe(true);
  });

  it('answers SSLRequest with N when no TLS is configured, then proceeds (loopback)', async () => {
    const r = await exchange(Buffer.concat([serialize.requestSsl(), startup()]), { timeoutMs: 300 });
    expect(r.data.subarray(0, 2).toString()).toBe('NR');
  });

  it('rejects bytes smuggled after SSLRequest before the TLS handshake (CVE-2021-23214)', async () => {
    const { gate } = testGate(db);
    const { proxy: tls, port: tlsPort } = await startProxy({ gate, tls: await selfSignedCert() });
    try {
      const r = await exchange(Buffer.concat([serialize.requestSsl(), serialize.query('SELECT 1')]), { p: tlsPort });
      expect(r.closed).toBe(true);
      expect(firstError(r.data)).toMatchObject({ code: '08P01', message: 'unexpected data after SSLRequest' });
      // GSSENCRequest is always refused
      const gss = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]);
      expect((await exchange(gss, { p: tlsPort, timeoutMs: 300 })).data.toString()).toBe('N');
    } finally {
      await tls.close();
    }
  });

  it('rejects a password message of the wrong type or size', async () => {
    const wrongType = Buffer.concat([startup(), serialize.query('SELECT 1')]);
    expect(firstError((await exchange(wrongType)).data)).toMatchObject({ code: '08P01', message: 'expected a password message' });
    const huge = Buffer.alloc(5);
    huge[0] = 0x70;
    huge.writeInt32BE(10_000_000, 1);
    expect(firstError((await exchange(Buffer.concat([startup(), huge]))).data)).toMatchObject({
      code: '08P01',
      message: 'password message too large',
    });
  });

  it('requires a user name', async () => {
    const r = await exchange(serialize.startup({ database: 'x' } as Record<string, string>));
    expect(firstError(r.data)).toMatchObject({ code: '28000', message: 'no user name specified in the start-up packet' });
  });
});

describe('after authentication', () => {
  it('ends the session on an unknown message type, an invalid length or an oversized message', async () => {
    for (const [bytes, message] of [
      [Buffer.from([0x01, 0, 0, 0, 4]), 'invalid frontend message type 1'],
      [Buffer.from([0x51, 0, 0, 0, 2]), 'invalid message length'],
      [Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff]), 'message too large (limit 1048576 bytes)'],
      [Buffer.from([0x51, 0, 0, 0, 8, 0x41, 0x42, 0x43, 0x44]), 'unterminated string in message'],
    ] as const) {
      const raw = await RawClient.connect(port);
      raw.send(bytes);
      await raw.waitFor((m) => m.name === 'error');
      expect(raw.messages[0]).toMatchObject({ name: 'error', code: '08P01', severity: 'FATAL', message });
      expect(await raw.closedWithin()).toBe(true);
    }
  });

  it('survives a client that disconnects mid-message', async () => {
    const raw = await RawClient.connect(port);
    raw.socket.end(serialize.query('SELECT 1').subarray(0, 7));
    expect(await raw.closedWithin()).toBe(true);
    const c = pgClient(port);
    await c.connect();
    expect((await c.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    await c.end();
  });

  it('accepts a large message under the cap, split across many chunks', async () => {
    const raw = await RawClient.connect(port);
    try {
      const big = serialize.query(`SELECT length('${'x'.repeat(900_000)}') AS n`);
      for (let i = 0; i < big.length; i += 7_000) raw.socket.write(big.subarray(i, i + 7_000));
      const ms = await raw.untilReady();
      expect(ms.find((m) => m.name === 'dataRow')).toMatchObject({ fields: ['900000'] });
    } finally {
      raw.end();
    }
  });
});

describe('fuzz', () => {
  it('random byte streams never take the server down; a parallel session keeps working', async () => {
    const good = pgClient(port);
    await good.connect();
    let goodQueries = 0;
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        const r = await good.query('SELECT $1::int AS n', [goodQueries]);
        expect(r.rows[0].n).toBe(goodQueries);
        goodQueries++;
      }
    })();
    const password = serialize.password('good');
    // Three shapes: pure noise, noise after a valid start-up, noise after a full authentication.
    const streams = fc.sample(
      fc.tuple(fc.constantFrom('noise', 'after-startup', 'after-auth'), fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.boolean()),
      { numRuns: 90, seed: 20240611 },
    );
    for (let i = 0; i < streams.length; i += 10) {
      await Promise.all(
        streams.slice(i, i + 10).map(([shape, bytes, end]) => {
          const prefix = shape === 'noise' ? [] : shape === 'after-startup' ? [startup()] : [startup(), password];
          return exchange(Buffer.concat([...prefix, Buffer.from(bytes)]), { end, timeoutMs: 400 });
        }),
      );
    }
    stop = true;
    await loop;
    await good.end();
    expect(goodQueries).toBeGreaterThan(10);
    // still accepting
    const after = pgClient(port);
    await after.connect();
    expect((await after.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    await after.end();
  }, 60_000);
});

describe('cleartext token refusal off loopback', () => {
  const external = Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

  it.skipIf(!external)('refuses before asking for the token on a non-loopback connection without TLS', async () => {
    const { gate } = testGate(db);
    const { proxy: open, port: openPort } = await startProxy({ gate, host: '0.0.0.0' });
    try {
      const r = await exchange(startup(), { host: external!, p: openPort });
      expect(firstError(r.data)).toEqual({
        code: '28000',
        severity: 'FATAL',
        message: 'the proxy accepts tokens only over TLS on non-loopback connections: connect with sslmode=require',
      });
      expect(r.data[0]).toBe(0x45); // no AuthenticationCleartextPassword was sent first
      // loopback on the same listener is fine
      const local = await exchange(startup(), { p: openPort, timeoutMs: 500 });
      expect(local.data.subarray(0, 1).toString()).toBe('R');
    } finally {
      await open.close();
    }
    const { proxy: insecure, port: insecurePort } = await startProxy({ gate, host: '0.0.0.0', allowInsecure: true });
    try {
      const r = await exchange(startup(), { host: external!, p: insecurePort, timeoutMs: 500 });
      expect(r.data.subarray(0, 1).toString()).toBe('R');
    } finally {
      await insecure.close();
    }
  });
});
