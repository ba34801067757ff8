import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createPublicKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base64url, exportJWK, generateKeyPair, importJWK, SignJWT, type JWK, type JWTPayload } from 'jose';
import { BatonError, type ErrorCode } from '../../src/errors.ts';
import { createOidcVerifier, MAX_OIDC_TOKEN_BYTES, type OidcVerifier } from '../../src/oidc/verify.ts';
import type { OidcIssuerInput } from '../../src/oidc/config.ts';
import { BROKER_AUDIENCE, CLIENT, CLIENT_GROUPS, signingJwk, startProvider, type TestProvider } from './provider.ts';

/** Await a rejection and check it is the expected Baton error with a message free of internals. */
async function expectBatonError(promise: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<BatonError> {
  const err = await promise.then(
    () => {
      throw new Error(`expected ${code}, but verification succeeded`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BatonError);
  const baton = err as BatonError;
  expect({ code: baton.code, message: baton.message }).toMatchObject({ code, message: message ?? expect.any(String) });
  // The public message never carries URLs, ports, library messages or token contents.
  expect(baton.message).not.toMatch(/127\.0\.0\.1|https?:|jose|ERR_|kid|\{/);
  expect(typeof baton.detail).toBe('string');
  return baton;
}

/** A dead loopback port: bind, note the port, close. */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const now = () => Math.floor(Date.now() / 1000);

describe('createOidcVerifier against oidc-provider (client_credentials, JWT access tokens)', () => {
  let provider: TestProvider;
  let key1: JWK;
  let verifier: OidcVerifier;
  let issuerCfg: OidcIssuerInput;

  /** Sign arbitrary claims with the provider's current key, as the provider would. */
  async function craft(claims: JWTPayload, opts: { key?: JWK; header?: Record<string, unknown> } = {}): Promise<string> {
    const key = opts.key ?? key1;
    return new SignJWT({ iss: provider.issuer, sub: 'crafted', aud: BROKER_AUDIENCE, iat: now(), exp: now() + 300, ...claims })
      .setProtectedHeader({ alg: key.alg!, kid: key.kid, ...opts.header })
      .sign(await importJWK(key, key.alg));
  }

  beforeAll(async () => {
    key1 = await signingJwk('RS256', 'k1');
    provider = await startProvider(key1);
    issuerCfg = { issuer: provider.issuer, audiences: [BROKER_AUDIENCE] };
    verifier = createOidcVerifier([issuerCfg]);
  });
  afterAll(async () => {
    await provider?.close();
  });

  it('verifies a real access token and maps it to an identity', async () => {
    const identity = await verifier.verify(await provider.token());
    expect(identity).toMatchObject({
      issuer: provider.issuer,
      subject: CLIENT.id, // client_credentials: the client is its own subject
      clientId: CLIENT.id,
      groups: CLIENT_GROUPS,
      claims: { scope: 'baton', aud: BROKER_AUDIENCE },
    });
    expect(Object.isFrozen(identity.claims)).toBe(true);
  });

  it('caches discovery and the JWKS across verifications', async () => {
    const fresh = createOidcVerifier([issuerCfg]);
    const before = provider.requests.length;
    for (let i = 0; i < 3; i++) await fresh.verify(await provider.token());
    const fetched = provider.requests.slice(before).filter((p) => p !== '/token');
    expect(fetched).toEqual(['/.well-known/openid-configuration', '/jwks']);
  });

  it('maps custom claim names (agent, groups as a single string)', async () => {
    const custom = createOidcVerifier([
      { ...issuerCfg, claims: { subject: 'email', agent: 'agent_name', groups: 'role' } },
    ]);
    const identity = await custom.verify(
      await craft({ email: 'alice@example.com', agent_name: 'planner', role: 'admins', client_id: 'ignored' }),
    );
    expect(identity).toMatchObject({ subject: 'alice@example.com', clientId: 'planner', groups: ['admins'] });
  });

  it('prefers client_id, then azp, and tolerates tokens with neither', async () => {
    expect((await verifier.verify(await craft({ azp: 'from-azp' }))).clientId).toBe('from-azp');
    const bare = await verifier.verify(await craft({}));
    expect(bare.clientId).toBeUndefined();
    expect(bare.groups).toEqual([]);
  });

  it('rejects a token with a tampered signature', async () => {
    const [h, p, s] = (await provider.token()).split('.') as [string, string, string];
    const sig = base64url.decode(s);
    sig[0] = sig[0]! ^ 0xff;
    await expectBatonError(verifier.verify(`${h}.${p}.${base64url.encode(sig)}`), 'BATON_ERR_OIDC_INVALID', /signature/);
  });

  it('rejects a token whose payload was changed after signing', async () => {
    const [h, p, s] = (await provider.token()).split('.') as [string, string, string];
    const claims = JSON.parse(new TextDecoder().decode(base64url.decode(p))) as JWTPayload;
    const forged = base64url.encode(JSON.stringify({ ...claims, groups: ['admins'] }));
    await expectBatonError(verifier.verify(`${h}.${forged}.${s}`), 'BATON_ERR_OIDC_INVALID', /signature/);
  });

  it('rejects an expired token (beyond the clock skew)', async () => {
    await expectBatonError(verifier.verify(await craft({ exp: now() - 31 })), 'BATON_ERR_OIDC_EXPIRED', /expired/);
    // within the 30 s default skew it is still accepted
    await expect(verifier.verify(await craft({ exp: now() - 10 }))).resolves.toMatchObject({ subject: 'crafted' });
  });

  it('rejects a real token once the clock passes its exp', async () => {
    const later = createOidcVerifier([issuerCfg], { now: () => new Date(Date.now() + 3600_000) });
    await expectBatonError(later.verify(await provider.token()), 'BATON_ERR_OIDC_EXPIRED');
  });

  it('rejects a token that is not yet valid (nbf or iat in the future)', async () => {
    await expectBatonError(verifier.verify(await craft({ nbf: now() + 120 })), 'BATON_ERR_OIDC_INVALID', /not yet valid/);
    await expectBatonError(verifier.verify(await craft({ iat: now() + 120 })), 'BATON_ERR_OIDC_INVALID', /not yet valid/);
  });

  it('rejects a token without exp or without a subject', async () => {
    await expectBatonError(verifier.verify(await craft({ exp: undefined })), 'BATON_ERR_OIDC_INVALID', /"exp"/);
    await expectBatonError(verifier.verify(await craft({ sub: undefined })), 'BATON_ERR_OIDC_INVALID', /subject/);
  });

  it('rejects a token for another audience', async () => {
    await expectBatonError(
      verifier.verify(await craft({ aud: 'https://other-service.test' })),
      'BATON_ERR_OIDC_AUDIENCE',
    );
  });

  it('rejects a token from an unknown issuer (or with no iss) without any network call', async () => {
    const before = provider.requests.length;
    await expectBatonError(verifier.verify(await craft({ iss: 'https://evil.example.com' })), 'BATON_ERR_OIDC_UNKNOWN_ISSUER');
    await expectBatonError(verifier.verify(await craft({ iss: undefined })), 'BATON_ERR_OIDC_UNKNOWN_ISSUER');
    expect(provider.requests.length).toBe(before);
  });

  it('rejects alg "none"', async () => {
    const enc = (v: object) => base64url.encode(JSON.stringify(v));
    const unsigned = `${enc({ alg: 'none', typ: 'JWT' })}.${enc({ iss: provider.issuer, sub: 'x', aud: BROKER_AUDIENCE, exp: now() + 60 })}.`;
    await expectBatonError(verifier.verify(unsigned), 'BATON_ERR_OIDC_ALGORITHM');
  });

  it('rejects HS256 key confusion (HMAC keyed with the issuer RSA public key)', async () => {
    const publicPem = createPublicKey({ key: { ...key1, d: undefined }, format: 'jwk' } as never)
      .export({ type: 'spki', format: 'pem' })
      .toString();
    const confused = await new SignJWT({ iss: provider.issuer, sub: 'mallory', aud: BROKER_AUDIENCE })
      .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(publicPem));
    await expectBatonError(verifier.verify(confused), 'BATON_ERR_OIDC_ALGORITHM');
  });

  it('rejects an asymmetric algorithm the issuer entry does not allow', async () => {
    const esOnly = createOidcVerifier([{ ...issuerCfg, algorithms: ['ES256'] }]);
    await expectBatonError(esOnly.verify(await provider.token()), 'BATON_ERR_OIDC_ALGORITHM');
  });

  it('rejects a token signed by a key the issuer does not publish', async () => {
    const rogue = await signingJwk('RS256', 'k1'); // same kid, other key
    await expectBatonError(verifier.verify(await craft({}, { key: rogue })), 'BATON_ERR_OIDC_INVALID', /signature/);
    const unknownKid = await signingJwk('RS256', 'not-published');
    await expectBatonError(verifier.verify(await craft({}, { key: unknownKid })), 'BATON_ERR_OIDC_INVALID', /key/);
  });

  it('rejects garbage', async () => {
    const enc = (v: string) => base64url.encode(v);
    for (const garbage of [
      '',
      'not-a-jwt',
      'a.b',
      'a.b.c',
      `${enc('{"alg":"RS256"')}.${enc('{}')}.sig`,
      `${enc('{"alg":"RS256"}')}.${enc('[1,2]')}.sig`,
      `${enc('{"alg":"RS256"}')}.${enc('{}')}.sig.extra.parts`, // JWE-shaped
      'eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.ä',
    ]) {
      await expectBatonError(verifier.verify(garbage), 'BATON_ERR_OIDC_INVALID', /malformed/);
    }
    await expect(verifier.verify(undefined as unknown as string)).rejects.toThrow(TypeError);
  });

  it('rejects an oversized token before parsing it', async () => {
    await expectBatonError(verifier.verify('a'.repeat(MAX_OIDC_TOKEN_BYTES + 1)), 'BATON_ERR_OIDC_INVALID', /too large/);
    const big = await craft({ padding: 'x'.repeat(MAX_OIDC_TOKEN_BYTES) });
    await expectBatonError(verifier.verify(big), 'BATON_ERR_OIDC_INVALID', /too large/);
  });

  it('follows key rotation: a token with a new kid verifies after the provider rotates', async () => {
    const rotating = createOidcVerifier([issuerCfg], { jwksCooldownMs: 0 });
    const oldToken = await provider.token();
    await rotating.verify(oldToken);

    const key2 = await signingJwk('ES256', 'k2');
    provider.rotate(key2);
    try {
      const newToken = await provider.token();
      expect(JSON.parse(new TextDecoder().decode(base64url.decode(newToken.split('.')[0]!)))).toMatchObject({ kid: 'k2' });
      const identity = await rotating.verify(newToken); // unknown kid → jose refetches the JWKS
      expect(identity.subject).toBe(CLIENT.id);
      // k1 is no longer published, so its tokens stop verifying
      await expectBatonError(rotating.verify(oldToken), 'BATON_ERR_OIDC_INVALID');
    } finally {
      provider.rotate(key1);
    }
  });
});

describe('createOidcVerifier when the issuer keys are unreachable', () => {
  it('reports discovery on a dead port as JWKS_UNAVAILABLE (and retries later)', async () => {
    const issuer = `http://127.0.0.1:${await deadPort()}`;
    const { privateKey } = await generateKeyPair('ES256');
    const token = await new SignJWT({ sub: 'a' })
      .setProtectedHeader({ alg: 'ES256', kid: 'x' })
      .setIssuer(issuer)
      .setAudience('aud')
      .setExpirationTime('1m')
      .sign(privateKey);
    const verifier = createOidcVerifier([{ issuer, audiences: ['aud'] }], { httpTimeoutMs: 1000 });
    const err = await expectBatonError(verifier.verify(token), 'BATON_ERR_OIDC_JWKS_UNAVAILABLE', /temporarily unavailable/);
    expect(err.http).toBe(503);
    expect(err.detail).toContain(issuer); // the internals are in detail, for the log
    await expectBatonError(verifier.verify(token), 'BATON_ERR_OIDC_JWKS_UNAVAILABLE');
  });

  it('reports a JWKS endpoint that errors, times out or serves junk as JWKS_UNAVAILABLE', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const publicJwk = { ...(await exportJWK(publicKey)), kid: 'x' };
    let mode: 'ok' | 'error' | 'junk' | 'hang' = 'error';
    const server = createServer((req, res) => {
      if (mode === 'hang') return; // never answers: the timeout must fire
      if (mode === 'error') return void res.writeHead(500).end();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(mode === 'junk' ? '{"keys": 42}' : JSON.stringify({ keys: [publicJwk] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const sign = () =>
        new SignJWT({ sub: 'a' })
          .setProtectedHeader({ alg: 'ES256', kid: 'x' })
          .setIssuer(base)
          .setAudience('aud')
          .setExpirationTime('1m')
          .sign(privateKey);
      const cfg = { issuer: base, audiences: ['aud'], jwksUri: `${base}/jwks` };
      for (const m of ['error', 'junk', 'hang'] as const) {
        mode = m;
        const verifier = createOidcVerifier([cfg], { httpTimeoutMs: 300 });
        await expectBatonError(verifier.verify(await sign()), 'BATON_ERR_OIDC_JWKS_UNAVAILABLE');
      }
      mode = 'ok';
      const verifier = createOidcVerifier([cfg]);
      await expect(verifier.verify(await sign())).resolves.toMatchObject({ subject: 'a', issuer: base });
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('refuses a discovery document that speaks for another issuer', async () => {
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ issuer: 'https://someone-else.example', jwks_uri: 'https://someone-else.example/jwks' }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const { privateKey } = await generateKeyPair('ES256');
      const token = await new SignJWT({ sub: 'a' })
        .setProtectedHeader({ alg: 'ES256' })
        .setIssuer(issuer)
        .setAudience('aud')
        .setExpirationTime('1m')
        .sign(privateKey);
      const err = await expectBatonError(
        createOidcVerifier([{ issuer, audiences: ['aud'] }]).verify(token),
        'BATON_ERR_OIDC_JWKS_UNAVAILABLE',
      );
      expect(err.detail).toMatch(/issuer mismatch/);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
