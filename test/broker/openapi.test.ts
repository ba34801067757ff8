/** openapi.yaml, the README and the error registry must agree with what the server does. */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { routesOf } from '../../src/broker/app.ts';
import { ERROR_REGISTRY } from '../../src/errors.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';

const spec = parse(readFileSync(new URL('../../openapi.yaml', import.meta.url), 'utf8')) as {
  paths: Record<string, Record<string, unknown>>;
  components: { schemas: { ErrorCode: { enum: string[] }; TokenExchangeRequest: { properties: Record<string, unknown>; required: string[] } } };
};
const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker('openapi');
});
afterAll(async () => broker?.stop());

/** fastify `/v1/audit/tree/:tokenId` ↔ OpenAPI `/v1/audit/tree/{tokenId}` */
const toOpenApiPath = (url: string) => url.replace(/:(\w+)/g, '{$1}');

describe('openapi.yaml', () => {
  it('describes exactly the routes the broker serves', () => {
    const served = routesOf(broker.app).map((r) => `${r.method} ${toOpenApiPath(r.url)}`).sort();
    const described = Object.entries(spec.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)).sort();
    expect(served).toEqual(described);
  });

  it('lists every error code of the registry, and only those', () => {
    expect([...spec.components.schemas.ErrorCode.enum].sort()).toEqual(Object.keys(ERROR_REGISTRY).sort());
  });

  it('documents the token-exchange parameters the server accepts', async () => {
    const { TokenExchangeRequest } = await import('../../src/broker/exchange-request.ts');
    const accepted = Object.keys(TokenExchangeRequest.shape).sort();
    expect(Object.keys(spec.components.schemas.TokenExchangeRequest.properties).sort()).toEqual(accepted);
  });
});

describe('README error table', () => {
  it('has one row per registry code with its HTTP status, OAuth error and SQLSTATE', () => {
    for (const [code, e] of Object.entries(ERROR_REGISTRY)) {
      expect(readme).toContain(`| \`${code}\` | ${e.http} | \`${e.oauth}\` | \`${e.sqlstate}\` |`);
    }
    const rows = readme.match(/^\| `BATON_ERR_[A-Z_]+` \|/gm) ?? [];
    expect(rows).toHaveLength(Object.keys(ERROR_REGISTRY).length);
  });
});
