/**
 * A real dev-mode broker on loopback WITH the revocation plugin mounted, wired the way
 * docs/revocation.md asks `startBroker` to wire it (until it does, `startTestBroker` has no revocation
 * routes). Restartable on the same database and data directory (same keys), which the
 * "revocations survive a broker restart" test needs. Also a proxy-like RevocationSet that resyncs
 * from the broker over HTTP with its own SharedState subscriber.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildBrokerApp } from '../../src/broker/app.ts';
import { recordIssuedToken } from '../../src/broker/issued-tokens.ts';
import { createMetrics } from '../../src/broker/metrics.ts';
import { DEV_AUDIENCE, DEV_POLICY_FILE, freePort } from '../../src/broker/server.ts';
import { Keyring } from '../../src/keys/keyring.ts';
import { createDevIssuer } from '../../src/oidc/dev-issuer.ts';
import { createOidcVerifier } from '../../src/oidc/verify.ts';
import { loadPolicyFile } from '../../src/policy/load.ts';
import { revocationRoutes } from '../../src/revocation/routes.ts';
import { RevocationSet } from '../../src/revocation/set.ts';
import { databaseRevocationSource, httpRevocationSource } from '../../src/revocation/sources.ts';
import { openDatabase, type Database } from '../../src/store/database.ts';
import { openSharedState, type SharedState } from '../../src/store/shared-state.ts';
import { warmUpAuthorizer } from '../../src/token/warmup.ts';
import { TOKEN_EXCHANGE, JWT_TYPE } from './broker.ts';

export const TEST_REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface RevocationBrokerOptions {
  databaseUrl: string;
  redisUrl: string;
  /** SharedState key/channel prefix (random per test file). */
  prefix: string;
  /** Reuse to keep the same keys across a restart. */
  dataDir?: string;
  stalenessMs?: number;
  purgeEveryMs?: number;
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
  await warmUpAuthorizer();
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'baton-revocation-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const db = await openDatabase({ url: opts.databaseUrl, dataDir, poolSize: 5 });
  const state = openSharedState({ url: opts.redisUrl, prefix: opts.prefix });
  const keyring = Keyring.open(join(dataDir, 'keys.json'));
  const policy = loadPolicyFile(DEV_POLICY_FILE);
  const devIssuer = await createDevIssuer({ issuer: `${url}/dev/oidc`, dataDir, audience: DEV_AUDIENCE });
  const oidc = createOidcVerifier([{ issuer: devIssuer.issuer, audiences: [DEV_AUDIENCE], algorithms: [devIssuer.alg] }]);

  // The broker's own set: bearer auth checks it; it reads the database directly.
  const revocations = new RevocationSet({ source: databaseRevocationSource(db.pool), state, stalenessMs: opts.stalenessMs });
  await revocations.start();
  await revocations.whenCurrent();

  const app = await buildBrokerApp({
    oidc,
    policy: () => policy,
    keyring,
    state,
    rateLimit: { perSubject: 10_000, perClient: 10_000 },
    record: (t) => recordIssuedToken(db.pool, t),
    metrics: createMetrics(),
    ready: async () => void (await db.pool.query('SELECT 1')),
    plugins: [
      async (a) => void (await a.register(devIssuer.plugin, { prefix: '/dev/oidc' })),
      revocationRoutes({ pool: db.pool, keys: keyring, state, revocations, purgeEveryMs: opts.purgeEveryMs }),
    ],
  });
  await app.listen({ host: '127.0.0.1', port });

  return {
    app,
    url,
    dataDir,
    db,
    state,
    keyring,
    revocations,
    async token(sub, groups, extra = {}) {
      const { access_token: jwt } = await devIssuer.mint({ sub, groups });
      const res = await fetch(`${url}/v1/token`, {
        method: 'POST',
        body: new URLSearchParams({ grant_type: TOKEN_EXCHANGE, subject_token: jwt, subject_token_type: JWT_TYPE, ...extra }),
      });
      const body = (await res.json()) as { access_token?: string };
      if (!res.ok || !body.access_token) throw new Error(`exchange: ${res.status} ${JSON.stringify(body)}`);
      return body.access_token;
    },
    async close() {
      await app.close();
      await revocations.stop();
      await state.close();
      await db.close();
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
