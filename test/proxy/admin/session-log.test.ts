/** The session-end summary line, through a real proxy listener and upstream. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loggedSessions } from '../../../src/proxy/admin/session-log.ts';
import type { ProxyLogger } from '../../../src/proxy/pg/log.ts';
import { createDatabase, dropDatabase, pgClient, startProxy, testGate } from '../pg/helpers.ts';

let database: string;
beforeAll(async () => {
  database = await createDatabase();
});
afterAll(async () => {
  await dropDatabase(database);
});

describe('session-end summary', () => {
  it('logs one line per session: counts, duration, lineage root; no SQL', async () => {
    const lines: Array<{ fields: Record<string, unknown>; message: string }> = [];
    const logger: ProxyLogger = { info: (fields, message) => void lines.push({ fields, message }), warn() {}, error() {} };
    const { gate } = testGate(database, {}, { limitKeys: true });
    const { proxy, port } = await startProxy({ gate: loggedSessions(gate, logger) });
    try {
      const c = pgClient(port, 'async');
      c.on('error', () => {});
      await c.connect();
      await c.query('SELECT 1');
      await c.query('SELECT $1::int AS n', [2]); // extended protocol: Parse + Execute, one statement that runs
      await expect(c.query('DELETE FROM pg_class')).rejects.toMatchObject({ code: '42501' });
      await c.end();
      for (let i = 0; i < 50 && !lines.some((l) => l.fields.event === 'pg.session.end'); i++) await new Promise((r) => setTimeout(r, 20));
      const end = lines.filter((l) => l.fields.event === 'pg.session.end');
      expect(end).toHaveLength(1);
      expect(end[0]!.message).toBe('session ended');
      expect(end[0]!.fields).toMatchObject({ database: 'whatever', remote: '127.0.0.1', lineageRoot: 'async', allowed: 2, denied: 1 });
      expect(end[0]!.fields.durationMs).toEqual(expect.any(Number));
      expect(JSON.stringify(end)).not.toMatch(/SELECT|DELETE/);
    } finally {
      await proxy.close();
    }
  });
});
