/**
 * Rule 6 across a crash: the `baton proxy` process is SIGKILLed after a read was forwarded but
 * before its audit entry was durable. The client must have received nothing of that read.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dropDemoUpstream, ensureDemoUpstream } from '../../../src/dev/demo-upstream.ts';
import { attenuate } from '../../../src/token/attenuate.ts';
import { exchange } from '../../../src/sdk/exchange.ts';
import { startTestBroker, type TestBroker } from '../../helpers/broker.ts';
import { TEST_DATABASE_URL } from '../../helpers/database.ts';
import { spawnStandaloneProxy, type StandaloneProxy } from '../../helpers/standalone-proxy.ts';

let broker: TestBroker;
let standalone: StandaloneProxy;
let adminUrl: string;
let appdb: string;

beforeAll(async () => {
  broker = await startTestBroker('sigkill');
  const admin = new URL(TEST_DATABASE_URL);
  admin.pathname = '/postgres';
  adminUrl = admin.toString();
  appdb = `baton_t_sigkill_appdb_${process.pid}`;
  standalone = await spawnStandaloneProxy(broker, { appdb: await ensureDemoUpstream(adminUrl, appdb) });
});
afterAll(async () => {
  await standalone?.stop('SIGKILL');
  await broker?.stop();
  await dropDemoUpstream(adminUrl, appdb);
});

describe('the proxy dies while a read waits for its entry', () => {
  it('the client received no row of it', async () => {
    const token = await exchange({ broker: broker.url, subjectToken: await broker.devToken('alice', ['engineers']) });
    const reader = attenuate(token, { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: 'reader' });
    const c = new pg.Client({ host: '127.0.0.1', port: standalone.port, user: 'agent', database: 'appdb', password: reader });
    c.on('error', () => {});
    await c.connect();
    await c.query('SELECT 1 FROM orders LIMIT 1');
    // stall the audit store: the proxy's next append waits behind this lock
    const lock = new pg.Client({ connectionString: broker.testDb.url });
    await lock.connect();
    await lock.query('BEGIN');
    await lock.query('LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE');
    try {
      const rows: unknown[] = [];
      const q = c.query('SELECT id FROM orders ORDER BY id').then(
        (r) => (rows.push(...r.rows), 'rows'),
        (e: Error) => `error: ${e.message}`,
      );
      await new Promise((r) => setTimeout(r, 500)); // forwarded and answered upstream by now
      await standalone.stop('SIGKILL');
      expect(await q).toMatch(/^error/);
      expect(rows).toHaveLength(0);
    } finally {
      await lock.query('ROLLBACK').catch(() => {});
      await lock.end();
      await c.end().catch(() => {});
    }
  });
});
