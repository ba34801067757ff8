/**
 * A real OpenID provider (panva/oidc-provider) on loopback for the OIDC tests: one confidential
 * client using the client_credentials grant, issuing RFC 9068 JWT access tokens for one resource
 * (the broker's audience) with a `groups` claim.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import Provider from 'oidc-provider';

export const BROKER_AUDIENCE = 'https://broker.baton.test';
export const CLIENT = { id: 'planner-agent', secret: 'planner-secret-0123456789abcdef0123456789' };
export const CLIENT_GROUPS = ['analysts', 'oncall'];

/** A private signing JWK for the provider (`kid` set). */
export async function signingJwk(alg: 'RS256' | 'ES256', kid: string): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
}

export interface TestProvider {
  issuer: string;
  /** Paths requested so far (to observe discovery / JWKS caching). */
  requests: string[];
  /** Replace the provider with one using `jwk` (same port and issuer), like an IdP rotating keys. */
  rotate(jwk: JWK): void;
  /** A JWT access token from the client_credentials grant. */
  token(): Promise<string>;
  close(): Promise<void>;
}

export async function startProvider(jwk: JWK): Promise<TestProvider> {
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const build = (key: JWK) => {
    const provider = new Provider(issuer, {
      clients: [
        {
          client_id: CLIENT.id,
          client_secret: CLIENT.secret,
          grant_types: ['client_credentials'],
          redirect_uris: [],
          response_types: [],
          id_token_signed_response_alg: key.alg,
        },
      ],
      jwks: { keys: [key] },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => BROKER_AUDIENCE,
          getResourceServerInfo: () => ({
            scope: 'baton',
            audience: BROKER_AUDIENCE,
            accessTokenFormat: 'jwt',
            accessTokenTTL: 300,
            jwt: { sign: { alg: key.alg } },
          }),
        },
      },
      extraTokenClaims: () => ({ groups: CLIENT_GROUPS }),
      ttl: { ClientCredentials: 300 },
    });
    // Surface the provider's own failures in the test output instead of a bare "server_error".
    provider.on('server_error', (_ctx, err) => console.error('oidc-provider server_error:', err));
    handler = provider.callback();
  };
  build(jwk);

  return {
    issuer,
    requests,
    rotate: build,
    async token() {
      const res = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${CLIENT.id}:${CLIENT.secret}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'baton', resource: BROKER_AUDIENCE }),
      });
      const body = (await res.json()) as { access_token?: string };
      if (res.status !== 200 || !body.access_token) throw new Error(`token request failed: ${JSON.stringify(body)}`);
      return body.access_token;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

export interface CodeFlowProviderOptions {
  /** The client's id and, for a confidential client (client_secret_post), its secret. */
  clientId: string;
  clientSecret?: string;
  /** The one registered redirect URI (the console's `<broker>/console/callback`). */
  redirectUri: string;
  /** The accounts that may sign in (any password), with the `groups` of their access tokens. */
  accounts: Record<string, string[]>;
}

export interface CodeFlowProvider {
  issuer: string;
  /** Paths requested so far. */
  requests: string[];
  close(): Promise<void>;
}

/**
 * A real OpenID provider for a browser sign-in: one client using the authorization-code grant with
 * PKCE required (S256), its built-in login and consent pages (devInteractions: any password), and
 * RFC 9068 JWT access tokens for the broker's audience carrying the account's `groups` and the
 * client's `client_id` (the granted resource is used at the token endpoint, which names none).
 */
export async function startCodeFlowProvider(jwk: JWK, opts: CodeFlowProviderOptions): Promise<CodeFlowProvider> {
  const requests: string[] = [];
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const account = (id: string) => (Object.hasOwn(opts.accounts, id) ? { accountId: id, claims: () => ({ sub: id }) } : undefined);

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: opts.clientId,
        ...(opts.clientSecret ? { client_secret: opts.clientSecret, token_endpoint_auth_method: 'client_secret_post' } : { token_endpoint_auth_method: 'none' }),
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: [opts.redirectUri],
        id_token_signed_response_alg: jwk.alg,
      },
    ],
    jwks: { keys: [jwk] },
    pkce: { required: () => true },
    findAccount: (_ctx: unknown, id: string) => account(id),
    features: {
      devInteractions: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => BROKER_AUDIENCE,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: 'baton',
          audience: BROKER_AUDIENCE,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 300,
          jwt: { sign: { alg: jwk.alg } },
        }),
      },
    },
    extraTokenClaims: (_ctx: unknown, token: { accountId?: string }) => ({ groups: token.accountId ? (opts.accounts[token.accountId] ?? []) : [] }),
    ttl: { AccessToken: 300, AuthorizationCode: 60, IdToken: 300, Grant: 600, Interaction: 600, Session: 600 },
  });
  provider.on('server_error', (_ctx, err) => console.error('oidc-provider server_error:', err));
  handler = provider.callback();

  return {
    issuer,
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
