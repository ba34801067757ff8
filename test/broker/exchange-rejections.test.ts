/**
 * Every kind of bad subject token, at the HTTP endpoint: each gets its RFC 6749 error and a precise
 * description, and the broker keeps serving. Tokens are forged with jose using the dev issuer's own
 * key (from the data directory), so only the property under test is wrong.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, importJWK, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEV_ISSUER_KEY_FILE } from '../../src/oidc/dev-issuer.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';

let broker: TestBroker;
let jwk: JWK & { kid: string; alg: string };
beforeAll(async () => {
  broker = await startTestBroker('reject');
  await broker.devToken('warmup', ['analysts']); // creates the dev key file
  jwk = JSON.parse(readFileSync(join(broker.dataDir, DEV_ISSUER_KEY_FILE), 'utf8'));
});
afterAll(async () => broker?.stop());

const now = () => Math.floor(Date.now() / 1000);

async function forge(claims: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  const key = await importJWK(jwk, jwk.alg);
  return new SignJWT({ sub: 'mallory', groups: ['admins'], ...claims })
    .setProtectedHeader({ alg: jwk.alg, kid: jwk.kid, typ: 'JWT', ...header })
    .sign(key);
}

const iss = () => `${broker.url}/dev/oidc`;

describe('POST /v1/token with a bad subject token', () => {
  it.each([
    ['expired', () => forge({ iss: iss(), aud: 'baton', iat: now() - 3600, exp: now() - 600 }), /expired/],
    ['not yet valid', () => forge({ iss: iss(), aud: 'baton', nbf: now() + 600, exp: now() + 1200 }), /not yet valid/],
    ['issued in the future', () => forge({ iss: iss(), aud: 'baton', iat: now() + 600, exp: now() + 1200 }), /not yet valid/],
    ['for another audience', () => forge({ iss: iss(), aud: 'someone-else', exp: now() + 600 }), /audience/],
    ['from an unknown issuer', () => forge({ iss: 'https://evil.example.com', aud: 'baton', exp: now() + 600 }), /issuer is not trusted/],
    ['without exp', () => forge({ iss: iss(), aud: 'baton' }), /"exp"/],
    [
      'HS256-signed with the public key as secret (key confusion)',
      async () => {
        const { d: _d, ...pub } = jwk;
        return new SignJWT({ sub: 'mallory', iss: iss(), aud: 'baton', exp: now() + 600 })
          .setProtectedHeader({ alg: 'HS256', kid: jwk.kid })
          .sign(new TextEncoder().encode(JSON.stringify(pub)));
      },
      /algorithm is not allowed/,
    ],
    ['alg none', async () => `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'm', iss: iss(), aud: 'baton', exp: now() + 600 })).toString('base64url')}.`, /algorithm is not allowed/],
    ['garbage', async () => 'not.a.jwt', /malformed/],
    ['oversized', async () => `${'a'.repeat(17_000)}.b.c`, /too large/],
  ])('%s → 400 invalid_grant', async (_name, make, description) => {
    const res = await broker.exchange(await make());
    const body = (await res.json()) as { error: string; error_description: string };
    expect(res.status).toBe(400);
    expect(body.error).toBe('invalid_grant');
    expect(body.error_description).toMatch(description);
    expect((await fetch(`${broker.url}/healthz`)).status).toBe(200);
  });

  it('a correctly forged-by-the-issuer token passes (the forge helper itself is sound)', async () => {
    const res = await broker.exchange(await forge({ iss: iss(), aud: 'baton', exp: now() + 600 }));
    expect(res.status).toBe(200);
  });
});

describe('RFC 8693 delegation (actor_token)', () => {
  it('makes the actor the agent of a token whose subject is the user', async () => {
    const user = await broker.devToken('alice@example.com', ['analysts']);
    const actor = await broker.devToken('svc-planner', [], { client_id: 'planner-bot' });
    const res = await broker.exchange(user, { actor_token: actor, actor_token_type: 'urn:ietf:params:oauth:token-type:jwt' });
    const body = (await res.json()) as { access_token: string };
    expect(res.status).toBe(200);
    const { inspect } = await import('../../src/sdk/inspect.ts');
    expect(inspect(body.access_token).lineage[0]).toMatchObject({ subject: 'alice@example.com', agent: 'planner-bot' });
    const bad = await broker.exchange(user, { actor_token: 'garbage', actor_token_type: 'urn:ietf:params:oauth:token-type:jwt' });
    expect(((await bad.json()) as { error: string }).error).toBe('invalid_grant');
    const half = await broker.exchange(user, { actor_token: actor });
    expect(((await half.json()) as { error: string }).error).toBe('invalid_request');
  });
});

describe('shared state down', () => {
  it('refuses exchanges with 503 naming the rate limiter (fail closed), and keeps serving', async () => {
    const { freePort } = await import('../../src/util/free-port.ts');
    const dead = await startTestBroker('nostate', { redisUrl: `redis://127.0.0.1:${await freePort()}` });
    try {
      const res = await dead.exchange(await dead.devToken('alice', ['analysts']));
      const body = (await res.json()) as { error: string; error_description: string; code: string };
      expect(res.status).toBe(503);
      expect(body).toMatchObject({ error: 'temporarily_unavailable', code: 'BATON_ERR_STORE_UNAVAILABLE' });
      expect(body.error_description).toMatch(/rate limiter/);
      expect((await fetch(`${dead.url}/healthz`)).status).toBe(200);
    } finally {
      await dead.stop();
    }
  });
});

describe('database down', () => {
  it('issues no token while the token store / audit trail is unreachable (503), then recovers', async () => {
    const pg = (await import('pg')).default;
    const { TEST_DATABASE_URL } = await import('../helpers/database.ts');
    const name = new URL(broker.testDb.url).pathname.slice(1);
    const jwt = await broker.devToken('dora', ['analysts']);
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    try {
      await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`);
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
      const res = await broker.exchange(jwt);
      const body = (await res.json()) as { error: string; code: string; access_token?: string };
      expect(res.status).toBe(503);
      expect(body.error).toBe('temporarily_unavailable');
      expect(['BATON_ERR_STORE_UNAVAILABLE', 'BATON_ERR_AUDIT_UNAVAILABLE']).toContain(body.code);
      expect(body.access_token).toBeUndefined();
    } finally {
      await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`);
      await admin.end();
    }
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      status = (await broker.exchange(jwt)).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(200);
  });
});
