import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDevIssuer, DEV_ISSUER_KEY_FILE, mintDevToken, type DevIssuer } from '../../src/oidc/dev-issuer.ts';
import { createOidcVerifier, type OidcVerifier } from '../../src/oidc/verify.ts';

const PREFIX = '/dev/oidc';

describe('dev issuer served by fastify', () => {
  let app: FastifyInstance;
  let dev: DevIssuer;
  let root: string;
  let dataDir: string;
  let base = '';
  let verifier: OidcVerifier;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'baton-t-oidc-'));
    dataDir = join(root, 'data'); // created by the dev issuer
    // The issuer URL depends on the port, known only after listen(): pass it as a function.
    dev = await createDevIssuer({ issuer: () => `${base}${PREFIX}`, dataDir });
    app = Fastify();
    await app.register(dev.plugin, { prefix: PREFIX });
    await app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    verifier = createOidcVerifier([{ issuer: `${base}${PREFIX}`, audiences: ['baton'], algorithms: ['ES256'] }]);
  });
  afterAll(async () => {
    await app?.close();
    await rm(root, { recursive: true, force: true });
  });

  it('serves discovery and JWKS for the issuer URL it was given', async () => {
    const discovery = (await (await fetch(`${base}${PREFIX}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(discovery).toMatchObject({
      issuer: `${base}${PREFIX}`,
      jwks_uri: `${base}${PREFIX}/jwks.json`,
      token_endpoint: `${base}${PREFIX}/token`,
    });
    const res = await fetch(`${base}${PREFIX}/jwks.json`);
    expect(res.headers.get('content-type')).toContain('application/jwk-set+json');
    const { keys } = (await res.json()) as { keys: Record<string, unknown>[] };
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(keys[0]).not.toHaveProperty('d'); // never the private part
  });

  it('mints over HTTP (JSON body) a token that verifies through discovery', async () => {
    const res = await fetch(`${base}${PREFIX}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sub: 'alice@example.com', groups: ['analysts'], client_id: 'planner', ttl: 120 }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = (await res.json()) as { access_token: string; token_type: string; expires_in: number };
    expect(body).toMatchObject({ token_type: 'Bearer', expires_in: 120 });
    expect(decodeProtectedHeader(body.access_token)).toMatchObject({ alg: 'ES256', typ: 'JWT', kid: dev.jwks().keys[0]!.kid });

    const identity = await verifier.verify(body.access_token);
    expect(identity).toMatchObject({
      issuer: `${base}${PREFIX}`,
      subject: 'alice@example.com',
      clientId: 'planner',
      groups: ['analysts'],
    });
    const { exp, iat } = identity.claims;
    expect(exp! - iat!).toBe(120);
  });

  it('accepts a form body with comma-separated groups and azp', async () => {
    const res = await fetch(`${base}${PREFIX}/token`, {
      method: 'POST',
      body: new URLSearchParams({ sub: 'bob', groups: 'ops, db-readers', azp: 'helper-7', ttl: '60' }),
    });
    expect(res.status).toBe(200);
    const { access_token } = (await res.json()) as { access_token: string };
    expect(await verifier.verify(access_token)).toMatchObject({
      subject: 'bob',
      clientId: 'helper-7',
      groups: ['ops', 'db-readers'],
    });
  });

  it.each([
    [{}, /sub/],
    [{ sub: 'a', ttl: 10 ** 9 }, /ttl/],
    [{ sub: 'a', client_id: 'x', azp: 'y' }, /different agents/],
    [{ sub: 'a', admin: true }, /Unrecognized key/],
  ])('answers a bad request %j with 400 invalid_request', async (payload, reason) => {
    const res = await fetch(`${base}${PREFIX}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(payload),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: string; code: string; error_description: string };
    expect(body).toMatchObject({ error: 'invalid_request', code: 'BATON_ERR_INVALID_REQUEST' });
    expect(body.error_description).toMatch(reason);
  });

  it('keeps its key in the data dir (0600) and mints offline with it (baton dev-token)', async () => {
    const file = join(dataDir, DEV_ISSUER_KEY_FILE);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
    expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject({ kid: dev.jwks().keys[0]!.kid, d: expect.any(String) });

    const { access_token } = await mintDevToken({ issuer: `${base}${PREFIX}`, dataDir }, { sub: 'carol', aud: 'baton' });
    expect(await verifier.verify(access_token)).toMatchObject({ subject: 'carol', groups: [] });
    expect(decodeJwt(access_token).exp! - decodeJwt(access_token).iat!).toBe(600); // default lifetime
  });

  it('refuses a key file readable by others', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'baton-t-oidc-'));
    try {
      await createDevIssuer({ issuer: 'http://127.0.0.1:1/dev/oidc', dataDir: dir, alg: 'EdDSA' });
      await chmod(join(dir, DEV_ISSUER_KEY_FILE), 0o644);
      await expect(createDevIssuer({ issuer: 'http://127.0.0.1:1/dev/oidc', dataDir: dir })).rejects.toThrow(
        /permissions 644 are too open/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('dev issuer with an in-memory EdDSA key', () => {
  it('mints in-process tokens that carry the EdDSA algorithm', async () => {
    const dev = await createDevIssuer({ issuer: 'http://127.0.0.1:1/dev/oidc', alg: 'EdDSA', audience: 'aud-x' });
    const { access_token } = await dev.mint({ sub: 'dave', groups: 'a,b' });
    expect(decodeProtectedHeader(access_token)).toMatchObject({ alg: 'EdDSA' });
    expect(decodeJwt(access_token)).toMatchObject({ iss: 'http://127.0.0.1:1/dev/oidc', aud: 'aud-x', groups: ['a', 'b'] });
  });
});

describe('dev issuer in production', () => {
  const saved = process.env.NODE_ENV;
  afterEach(() => {
    process.env.NODE_ENV = saved;
  });

  it('refuses to be constructed or to mint when NODE_ENV=production', async () => {
    const dev = await createDevIssuer({ issuer: 'http://127.0.0.1:1/dev/oidc' });
    process.env.NODE_ENV = 'production';
    await expect(createDevIssuer({ issuer: 'http://127.0.0.1:1/dev/oidc' })).rejects.toThrow(/NODE_ENV=production/);
    await expect(dev.mint({ sub: 'eve' })).rejects.toThrow(/NODE_ENV=production/);
    await expect(
      mintDevToken({ issuer: 'http://127.0.0.1:1/dev/oidc', dataDir: join(tmpdir(), 'never-created') }, { sub: 'eve' }),
    ).rejects.toThrow(/NODE_ENV=production/);
  });
});
