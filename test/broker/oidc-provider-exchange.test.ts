/** Token exchange with a real OpenID provider (oidc-provider, client_credentials, JWT access tokens). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keySetResolver, KeySetDocument } from '../../src/token/keys.ts';
import { readLineage } from '../../src/token/lineage.ts';
import { authorize } from '../../src/token/authorize.ts';
import { verifyToken } from '../../src/token/verify.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';
import { BROKER_AUDIENCE, CLIENT, signingJwk, startProvider, type TestProvider } from '../oidc/provider.ts';

let provider: TestProvider;
let broker: TestBroker;
beforeAll(async () => {
  provider = await startProvider(await signingJwk('RS256', 'k1'));
  broker = await startTestBroker('oidcp', { oidc: { issuers: [{ issuer: provider.issuer, audiences: [BROKER_AUDIENCE], algorithms: ['RS256'] }] } });
});
afterAll(async () => {
  await broker?.stop();
  await provider?.close();
});

describe('exchange with a real OpenID provider', () => {
  it('trades a client_credentials JWT access token for a Biscuit carrying the expected facts', async () => {
    const res = await broker.exchange(await provider.token(), { subject_token_type: 'urn:ietf:params:oauth:token-type:access_token' });
    const body = (await res.json()) as { access_token: string };
    expect(res.status).toBe(200);
    const keys = keySetResolver(KeySetDocument.parse(await (await fetch(`${broker.url}/.well-known/baton-keys.json`)).json()));
    const v = verifyToken(body.access_token, keys);
    try {
      // the dev policy maps the provider's `groups: [analysts, oncall]` to read on pg:appdb/public.*
      expect(readLineage(v.decoded)[0]).toMatchObject({ subject: CLIENT.id, agent: CLIENT.id, issuer: provider.issuer, resources: ['pg:appdb/public.*'], operations: ['read'] });
      expect(authorize(v.biscuit, 'pg:appdb/public.orders', 'read', new Date()).allow).toBe(true);
      expect(authorize(v.biscuit, 'pg:appdb/public.orders', 'delete', new Date()).allow).toBe(false);
    } finally {
      v.biscuit.free();
    }
  });

  // key rotation at the provider is covered in test/oidc/verify.test.ts (jose refetches on an unknown kid)
});
