/**
 * A real dev-mode broker (the production `startBroker`) for the revocation tests: restartable on the
 * same database and data directory (same keys), its shared state on a per-file prefix. Also a
 * proxy-like RevocationSet that resyncs from the broker over HTTP with its own subscriber.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { startBroker } from '../../src/broker/server.ts';
import type { Keyring } from '../../src/keys/keyring.ts';
import { RevocationSet } from '../../src/revocation/set.ts';
import { httpRevocationSource } from '../../src/revocation/sources.ts';
import type { Database } from '../../src/store/database.ts';
import { openSharedState, type SharedState } from '../../src/store/shared-state.ts';
import { JWT_TYPE, TOKEN_EXCHANGE, testBrokerConfig } from './broker.ts';

export const TEST_REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface RevocationBrokerOptions {
  databaseUrl: string;
  redisUrl: string;
  /** SharedState key/channel prefix (random per test file). */
  prefix: string;
  /** Reuse to keep the same keys across a restart. */
  dataDir?: string;
  stalenessMs?: number;
}

export interface RevocationBroker {
  app: FastifyInstance;
  url: string;
  dataDir: string;
  db: Database;
  state: SharedState;
  keyring: Keyring;
  revocations: RevocationSet;
  /** An exchanged Baton token for a dev identity. */
  token(sub: string, groups: string[], extra?: Record<string, string>): Promise<string>;
  close(): Promise<void>;
}

export function randomPrefix(area: string): string {
  return `baton_t_${area}_${randomBytes(4).toString('hex')}:`;
}

export async function startRevocationBroker(opts: RevocationBrokerOptions): Promise<RevocationBroker> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'baton-revocation-'));
  const config = testBrokerConfig(dataDir, opts.databaseUrl, {
    broker: { rateLimit: { perSubject: 10_000, perClient: 10_000 } },
    proxy: { revocationStalenessSeconds: (opts.stalenessMs ?? 5000) / 1000 },
  });
  // the prefix isolates this file's channel on the shared Redis
  const state = openSharedState({ url: opts.redisUrl, prefix: opts.prefix });
  const broker = await startBroker(config, { devIssuer: true, state });
  await broker.revocations.whenCurrent();
  return {
    ...broker,
    dataDir,
    state,
    async token(sub, groups, extra = {}) {
      const devRes = await fetch(`${broker.url}/dev/oidc/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sub, groups }) });
      const { access_token: jwt } = (await devRes.json()) as { access_token: string };
      const res = await fetch(`${broker.url}/v1/token`, {
        method: 'POST',
        body: new URLSearchParams({ grant_type: TOKEN_EXCHANGE, subject_token: jwt, subject_token_type: JWT_TYPE, ...extra }),
      });
      const body = (await res.json()) as { access_token?: string };
      if (!res.ok || !body.access_token) throw new Error(`exchange: ${res.status} ${JSON.stringify(body)}`);
      return body.access_token;
    },
    async close() {
      await broker.close();
      await state.close();
    },
  };
}

/** What a proxy runs: its own subscriber on the channel, resync over HTTP from the broker. */
export async function startProxyLikeSet(opts: { brokerUrl: string; redisUrl: string; prefix: string; stalenessMs?: number }): Promise<{ set: RevocationSet; state: SharedState; close(): Promise<void> }> {
  const state = openSharedState({ url: opts.redisUrl, prefix: opts.prefix });
  const set = new RevocationSet({ source: httpRevocationSource(opts.brokerUrl), state, stalenessMs: opts.stalenessMs });
  await set.start();
  await set.whenCurrent();
  return {
    set,
    state,
    async close() {
      await set.stop();
      await state.close();
    },
  };
}
