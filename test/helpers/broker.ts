/** Starting a real dev-mode broker on loopback for tests, on a fresh database. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import type { Config, ConfigInput } from '../../src/config/schema.ts';
import { startBroker, type BrokerHandle } from '../../src/broker/server.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';

export interface TestBroker extends BrokerHandle {
  testDb: TestDatabase;
  dataDir: string;
  devToken(sub: string, groups: string[], extra?: Record<string, unknown>): Promise<string>;
  exchange(subjectToken: string, extra?: Record<string, string>): Promise<Response>;
  stop(): Promise<void>;
}

export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

/** A dev-mode, silent broker config on a free port, for tests. */
export function testBrokerConfig(dataDir: string, databaseUrl: string, overrides: ConfigInput = {}): Config {
  return loadConfig({
    env: {},
    overrides: { mode: 'dev', dataDir, logLevel: 'silent', databaseUrl, ...overrides, broker: { port: 0, ...overrides.broker } },
  });
}

export async function startTestBroker(area: string, overrides: ConfigInput = {}): Promise<TestBroker> {
  const testDb = await createTestDatabase(area);
  const dataDir = mkdtempSync(join(tmpdir(), `baton-${area}-`));
  const config = testBrokerConfig(dataDir, testDb.url, { ...(process.env.REDIS_URL ? { redisUrl: process.env.REDIS_URL } : {}), ...overrides });
  const broker = await startBroker(config, { devIssuer: true });
  return {
    ...broker,
    testDb,
    dataDir,
    async devToken(sub, groups, extra = {}) {
      const res = await fetch(`${broker.url}/dev/oidc/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ sub, groups, ...extra }),
      });
      const body = (await res.json()) as { access_token: string };
      if (!res.ok) throw new Error(`dev token: ${res.status} ${JSON.stringify(body)}`);
      return body.access_token;
    },
    exchange(subjectToken, extra = {}) {
      return fetch(`${broker.url}/v1/token`, {
        method: 'POST',
        body: new URLSearchParams({ grant_type: TOKEN_EXCHANGE, subject_token: subjectToken, subject_token_type: JWT_TYPE, ...extra }),
      });
    },
    async stop() {
      await broker.close();
      await testDb.drop();
    },
  };
}
