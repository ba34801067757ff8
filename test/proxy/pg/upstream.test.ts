import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionGate, UpstreamTarget } from '../../../src/proxy/pg/gate.ts';
import { UpstreamError, connectUpstream } from '../../../src/proxy/pg/upstream.ts';
import { RawClient, pgClient, selfSignedCert, serialize, startProxy } from './helpers.ts';

/**
 * The proxy's own authentication upstream. The shared test server only trusts, so this file runs a
 * private, throw-away Postgres cluster (the distribution's binaries) whose pg_hba.conf asks for
 * cleartext, md5 and SCRAM-SHA-256 — over TLS too (SCRAM-SHA-256-PLUS channel binding).
 */

const binDir = (() => {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const v = readdirSync(root).sort().at(-1);
  return v && existsSync(join(root, v, 'bin', 'initdb')) ? join(root, v, 'bin') : undefined;
})();
const asRoot = userInfo().uid === 0;

let dir: string;
let port: number;

/** Runs a server binary as the `postgres` OS user when we are root (Postgres refuses root). */
function pgBin(cmd: string, args: string[]): string {
  const full = join(binDir!, cmd);
  return asRoot
    ? execFileSync('su', ['postgres', '-s', '/bin/sh', '-c', [full, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')], { encoding: 'utf8' })
    : execFileSync(full, args, { encoding: 'utf8' });
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

const PASSWORD = 'S3cret pa55 ü';
const target = (user: string, extra: Partial<UpstreamTarget> = {}): UpstreamTarget => ({
  host: '127.0.0.1',
  port,
  user,
  password: PASSWORD,
  database: 'postgres',
  ...extra,
});

describe.skipIf(!binDir)('upstream authentication (private cluster)', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-pgproxy-cluster-'));
    if (asRoot) chownSync(dir, Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), 0);
    const data = join(dir, 'data');
    pgBin('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C']);
    const { cert, key } = await selfSignedCert();
    writeFileSync(join(data, 'server.crt'), cert);
    writeFileSync(join(data, 'server.key'), key);
    chmodSync(join(data, 'server.key'), 0o600);
    if (asRoot) {
      const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
      for (const f of ['server.crt', 'server.key']) chownSync(join(data, f), uid, 0);
    }
    writeFileSync(
      join(data, 'pg_hba.conf'),
      [
        'local all all trust',
        'host all u_password 127.0.0.1/32 password',
        'host all u_md5 127.0.0.1/32 md5',
        'hostnossl all u_scram_tls 127.0.0.1/32 reject',
        'host all u_scram 127.0.0.1/32 scram-sha-256',
        'host all u_scram_tls 127.0.0.1/32 scram-sha-256',
        'host all u_trust 127.0.0.1/32 trust',
        '',
      ].join('\n'),
    );
    port = await freePort();
    pgBin('pg_ctl', ['-D', data, '-w', '-l', join(dir, 'log'), '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on`, 'start']);
    const sql = [
      `SET password_encryption = 'md5'`,
      `CREATE ROLE u_md5 LOGIN PASSWORD '${PASSWORD}'`,
      `SET password_encryption = 'scram-sha-256'`,
      `CREATE ROLE u_password LOGIN PASSWORD '${PASSWORD}'`,
      `CREATE ROLE u_scram LOGIN PASSWORD '${PASSWORD}'`,
      `CREATE ROLE u_scram_tls LOGIN PASSWORD '${PASSWORD}'`,
      `CREATE ROLE u_trust LOGIN`,
    ];
    for (const s of sql) execFileSync('psql', ['-X', '-q', '-h', dir, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-c', s]);
  }, 60_000);

  afterAll(() => {
    if (!dir) return;
    try {
      pgBin('pg_ctl', ['-D', join(dir, 'data'), '-m', 'immediate', 'stop']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const whoami = async (t: UpstreamTarget): Promise<string> => {
    const up = await connectUpstream(t, { client_encoding: 'UTF8' }, 5000);
    try {
      expect(up.status).toBe('I');
      expect(up.processId).toBeGreaterThan(0);
      expect(up.parameterStatus.length).toBeGreaterThan(5);
      return up.socket.constructor.name;
    } finally {
      up.socket.destroy();
    }
  };

  it.each(['u_trust', 'u_password', 'u_md5', 'u_scram'])('authenticates as %s', async (user) => {
    expect(await whoami(target(user, user === 'u_trust' ? { password: undefined } : {}))).toBe('Socket');
  });

  it('uses TLS and SCRAM-SHA-256-PLUS upstream when configured', async () => {
    expect(await whoami(target('u_scram_tls', { ssl: { rejectUnauthorized: false } }))).toBe('TLSSocket');
    // plain TCP is rejected by pg_hba for this user: the failure is mapped, not echoed
    await expect(connectUpstream(target('u_scram_tls'), {}, 5000)).rejects.toMatchObject({
      sqlstate: '08006',
      message: 'upstream authentication failed',
    });
  });

  it('maps failures: wrong password, missing database, nothing listening', async () => {
    const wrong = connectUpstream(target('u_scram', { password: 'nope' }), {}, 5000);
    await expect(wrong).rejects.toBeInstanceOf(UpstreamError);
    await expect(wrong).rejects.toMatchObject({ sqlstate: '08006', message: 'upstream authentication failed' });
    await expect(connectUpstream(target('u_md5', { password: undefined }), {}, 5000)).rejects.toMatchObject({ sqlstate: '08006' });
    await expect(connectUpstream(target('u_scram', { database: 'missing_db' }), {}, 5000)).rejects.toMatchObject({
      sqlstate: '3D000',
      message: 'upstream refused the connection',
    });
    await expect(connectUpstream(target('u_scram', { port: await freePort() }), {}, 5000)).rejects.toMatchObject({
      sqlstate: '08006',
      message: 'upstream unavailable',
    });
  });

  it('proxies a session with SCRAM upstream credentials the client never sees', async () => {
    const gate: SessionGate = {
      async authenticate() {
        return { ok: true, session: { upstream: target('u_scram'), check: () => ({ allow: true }) } };
      },
    };
    const { proxy, port: proxyPort } = await startProxy({ gate });
    try {
      const c = pgClient(proxyPort, 'the-token');
      await c.connect();
      expect((await c.query('SELECT current_user AS u')).rows).toEqual([{ u: 'u_scram' }]);
      await c.end();
    } finally {
      await proxy.close();
    }
  });

  it('upstream refusal and upstream death reach the client as FATAL 08006; a backend FATAL is relayed', async () => {
    const upstream = { current: target('u_scram', { password: 'wrong' }) };
    const gate: SessionGate = {
      async authenticate() {
        return { ok: true, session: { upstream: upstream.current, check: () => ({ allow: true }) } };
      },
    };
    const { proxy, port: proxyPort } = await startProxy({ gate });
    try {
      await expect(pgClient(proxyPort).connect()).rejects.toMatchObject({ code: '08006', message: 'upstream authentication failed' });
      upstream.current = target('u_scram');

      // killed backend: the socket just closes → 08006 from the proxy
      const raw = await RawClient.connect(proxyPort);
      raw.send(serialize.query('SELECT pg_backend_pid()::text AS p'));
      const pid = Number(((await raw.untilReady()).find((m) => m.name === 'dataRow') as { fields: string[] }).fields[0]);
      process.kill(pid, 'SIGKILL');
      await raw.waitFor((m) => m.name === 'error');
      expect(raw.messages.find((m) => m.name === 'error')).toMatchObject({ code: '08006', severity: 'FATAL', message: 'upstream connection lost' });
      expect(await raw.closedWithin()).toBe(true);

      // after crash recovery: pg_terminate_backend → the upstream's own FATAL 57P01, relayed once
      let raw2: RawClient | undefined;
      for (let i = 0; i < 150 && !raw2; i++) {
        raw2 = await RawClient.connect(proxyPort).catch(async () => {
          await new Promise((r) => setTimeout(r, 100));
          return undefined;
        });
      }
      raw2!.send(serialize.query('SELECT pg_backend_pid()::text AS p'));
      const msgs = await raw2!.untilReady();
      const pid2 = Number((msgs.find((m) => m.name === 'dataRow') as { fields: string[] }).fields[0]);
      const admin = new pg.Client({ host: dir, port, user: 'postgres', database: 'postgres' });
      await admin.connect();
      await admin.query('SELECT pg_terminate_backend($1)', [pid2]);
      await admin.end();
      expect(await raw2!.closedWithin()).toBe(true);
      const errors = raw2!.messages.filter((m) => m.name === 'error');
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ code: '57P01', severity: 'FATAL' });
    } finally {
      await proxy.close();
    }
  }, 30_000);
});
