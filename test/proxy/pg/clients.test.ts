import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgProxy } from '../../../src/proxy/pg/server.ts';
import { PG, createDatabase, dropDatabase, run, selfSignedCert, startProxy, testGate, type TestGateLog } from './helpers.ts';

/** Real client programs (psql, pgbench, psycopg2) against the proxy. */

let db: string;
let proxy: PgProxy;
let port: number;
let tlsProxy: PgProxy;
let tlsPort: number;
let gateLog: TestGateLog;

const directEnv = (): Record<string, string> => ({
  PGHOST: PG.host,
  PGPORT: String(PG.port),
  PGUSER: PG.user,
  ...(PG.password ? { PGPASSWORD: PG.password } : {}),
});
const proxyEnv = (p: number, token = 'good'): Record<string, string> => ({
  PGHOST: '127.0.0.1',
  PGPORT: String(p),
  PGUSER: 'agent',
  PGPASSWORD: token,
  PGDATABASE: 'anything',
  PGCONNECT_TIMEOUT: '10',
});

beforeAll(async () => {
  db = await createDatabase();
  const init = await run('pgbench', ['-i', '-s', '1', '-q', db], directEnv(), 60_000);
  expect(init.code, init.stderr).toBe(0);
  const { gate, log } = testGate(db);
  gateLog = log;
  ({ proxy, port } = await startProxy({ gate }));
  ({ proxy: tlsProxy, port: tlsPort } = await startProxy({ gate, tls: await selfSignedCert() }));
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await tlsProxy?.close();
  if (db) await dropDatabase(db);
});

describe('psql', () => {
  it('runs statements; a denial is 42501 with the gate message and the session goes on', async () => {
    const r = await run(
      'psql',
      ['-X', '-A', '-t', '-v', 'VERBOSITY=verbose', '-c', 'SELECT count(*) FROM pgbench_branches', '-c', 'DELETE FROM pgbench_history', '-c', 'SELECT 41 + 1'],
      proxyEnv(port),
    );
    expect(r.stdout.trim().split('\n')).toEqual(['1', '42']);
    expect(r.stderr).toContain('ERROR:  42501: denied by test gate');
  });

  it('keeps transaction semantics across statements of a script', async () => {
    const script = ['BEGIN;', 'SELECT 1;', 'DELETE FROM pgbench_history;', 'SELECT 2;', 'COMMIT;', "SELECT 'after';"].join('\n');
    const r = await run('psql', ['-X', '-A', '-t', '-v', 'VERBOSITY=verbose', '-f', '-'], proxyEnv(port), 30_000, script);
    expect(r.stdout.trim().split('\n')).toEqual(['BEGIN', '1', 'ROLLBACK', 'after']);
    expect(r.stderr).toContain('ERROR:  42501: denied by test gate');
    expect(r.stderr).toContain('ERROR:  25P02: current transaction is aborted');
  });

  it('refuses a bad token (28P01) and a non-UTF-8 client encoding', async () => {
    const bad = await run('psql', ['-X', '-c', 'SELECT 1'], proxyEnv(port, 'bad'));
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('FATAL:  token rejected by test gate');
    const sjis = await run('psql', ['-X', '-c', 'SELECT 1'], { ...proxyEnv(port), PGCLIENTENCODING: 'SJIS' });
    expect(sjis.stderr).toContain('only UTF8 client_encoding is supported by the proxy');
  });

  it('connects over TLS with sslmode=require (self-signed certificate)', async () => {
    gateLog.authenticated.length = 0;
    const r = await run('psql', ['-X', '-A', '-t', '-c', 'SELECT 7', '-c', '\\conninfo'], { ...proxyEnv(tlsPort), PGSSLMODE: 'require' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('7');
    expect(r.stdout).toMatch(/SSL connection \(protocol: TLSv1\.[23]/);
    expect(gateLog.authenticated).toEqual([{ user: 'agent', database: 'anything', tls: true }]);
    // a listener without TLS answers 'N': sslmode=require fails, prefer falls back (loopback)
    const refused = await run('psql', ['-X', '-c', 'SELECT 1'], { ...proxyEnv(port), PGSSLMODE: 'require' });
    expect(refused.stderr).toContain('server does not support SSL');
    const prefer = await run('psql', ['-X', '-A', '-t', '-c', 'SELECT 8'], { ...proxyEnv(port), PGSSLMODE: 'prefer' });
    expect(prefer.stdout.trim()).toBe('8');
  });
});

// Debian's python3-psycopg2 (.ci/run installs it); skipped, visibly, where it is missing
const hasPsycopg2 = spawnSync('/usr/bin/python3', ['-c', 'import psycopg2']).status === 0;

describe.skipIf(!hasPsycopg2)('psycopg2', () => {
  it('queries, gets 42501 on a denial, rolls back and goes on', async () => {
    const script = `
import json, psycopg2, psycopg2.errors
out = {}
conn = psycopg2.connect(host='127.0.0.1', port=${port}, user='agent', password='good', dbname='x')
cur = conn.cursor()
cur.execute('SELECT count(*) FROM pgbench_accounts WHERE aid < %s', (11,))
out['count'] = cur.fetchone()[0]
try:
    cur.execute('DELETE FROM pgbench_history WHERE tid = %s', (1,))
except psycopg2.Error as e:
    out['denied'] = [e.pgcode, e.pgerror.strip()]
try:
    cur.execute('SELECT 1')
except psycopg2.Error as e:
    out['aborted'] = e.pgcode
conn.rollback()
cur.execute('SELECT %s::text', ('still fine',))
out['after'] = cur.fetchone()[0]
conn.commit()
conn.autocommit = True
cur.execute('SELECT 1; SELECT 2')
out['multi'] = cur.fetchone()[0]
conn.close()
try:
    psycopg2.connect(host='127.0.0.1', port=${port}, user='agent', password='nope', dbname='x')
except psycopg2.Error as e:
    out['bad'] = str(e).strip().splitlines()[-1]
print(json.dumps(out))
`;
    const r = await run('/usr/bin/python3', ['-c', script]);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({
      count: 10,
      denied: ['42501', 'ERROR:  denied by test gate'],
      aborted: '25P02',
      after: 'still fine',
      multi: 2,
      bad: expect.stringContaining('FATAL:  token rejected by test gate'),
    });
  });
});

describe('pgbench', () => {
  const bench = async (mode: string, clients: number, p: number, env: Record<string, string>): Promise<number> => {
    const r = await run('pgbench', ['-S', '-n', '-T', '2', '-c', String(clients), '-j', String(Math.min(clients, 2)), '-M', mode, db], env, 60_000);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.stdout).toContain('number of failed transactions: 0');
    const tps = Number(/tps = ([\d.]+)/.exec(r.stdout)?.[1]);
    expect(tps).toBeGreaterThan(0);
    return tps;
  };

  for (const mode of ['simple', 'extended', 'prepared']) {
    it(`-S -M ${mode} with 1 and 4 clients`, async () => {
      const one = await bench(mode, 1, port, proxyEnv(port));
      const four = await bench(mode, 4, port, proxyEnv(port));
      console.log(`[pgproxy] pgbench -S -M ${mode}: ${one.toFixed(0)} tps (1 client), ${four.toFixed(0)} tps (4 clients)`);
    }, 60_000);
  }
});
