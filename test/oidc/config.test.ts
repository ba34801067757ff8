import { describe, expect, it } from 'vitest';
import { OIDC_DEFAULTS, parseOidcIssuers } from '../../src/oidc/config.ts';

const minimal = { issuer: 'https://idp.example.com', audiences: ['https://baton.example.com'] };

/** The error message of parsing `input`, which must fail. */
function problems(input: unknown): string {
  try {
    parseOidcIssuers(input);
  } catch (err) {
    expect(err).toBeInstanceOf(TypeError);
    return (err as Error).message;
  }
  throw new Error('expected the configuration to be rejected');
}

describe('parseOidcIssuers', () => {
  it('applies every default and freezes the result', () => {
    const [cfg] = parseOidcIssuers([minimal]);
    expect(cfg).toEqual({
      ...minimal,
      algorithms: ['RS256', 'ES256', 'EdDSA', 'PS256'],
      claims: { subject: 'sub', agent: ['client_id', 'azp'], groups: 'groups' },
      clockSkewSeconds: 30,
    });
    expect(Object.isFrozen(cfg)).toBe(true);
    expect(Object.isFrozen(cfg!.audiences)).toBe(true);
    expect(() => (cfg!.algorithms as string[]).push('HS256')).toThrow(TypeError);
  });

  it('keeps explicit values (agent as one claim name becomes a list)', () => {
    const [cfg] = parseOidcIssuers([
      {
        ...minimal,
        algorithms: ['ES384'],
        jwksUri: 'https://idp.example.com/keys',
        claims: { agent: 'azp' },
        clockSkewSeconds: 0,
      },
    ]);
    expect(cfg).toMatchObject({
      algorithms: ['ES384'],
      jwksUri: 'https://idp.example.com/keys',
      claims: { subject: 'sub', agent: ['azp'], groups: 'groups' },
      clockSkewSeconds: 0,
    });
  });

  it.each(['HS256', 'HS384', 'HS512', 'none'])('rejects the %s algorithm with a clear message', (alg) => {
    expect(problems([{ ...minimal, algorithms: [alg] }])).toContain(
      `algorithm "${alg}" is not allowed: symmetric (HS*) and "none" algorithms are rejected`,
    );
  });

  it('rejects unknown keys at every level', () => {
    expect(problems([{ ...minimal, audience: 'x' }])).toMatch(/Unrecognized key: "audience"[\s\S]*at \[0\]/);
    expect(problems([{ ...minimal, claims: { sujbect: 'sub' } }])).toMatch(/"sujbect"[\s\S]*at \[0\]\.claims/);
  });

  it.each([
    [{ ...minimal, audiences: [] }, 'audiences must list at least one audience'],
    [{ ...minimal, algorithms: [] }, 'algorithms must list at least one algorithm'],
    [{ ...minimal, algorithms: ['RS1'] }, 'unknown algorithm "RS1"'],
    [{ ...minimal, clockSkewSeconds: OIDC_DEFAULTS.maxClockSkewSeconds + 1 }, 'clockSkewSeconds must be at most 300'],
    [{ ...minimal, clockSkewSeconds: -1 }, 'clockSkewSeconds must not be negative'],
    [{ ...minimal, issuer: 'idp.example.com' }, 'issuer must be an absolute URL'],
    [{ ...minimal, issuer: 'http://idp.example.com' }, 'issuer must use https (http is allowed only for loopback hosts)'],
    [{ ...minimal, issuer: 'https://idp.example.com/?tenant=1' }, 'issuer must not contain a query or fragment'],
    [{ ...minimal, jwksUri: 'http://keys.example.com/jwks' }, 'jwksUri must use https'],
    [{ ...minimal, claims: { agent: [] } }, 'claims.agent must list at least one claim'],
    [{ ...minimal, claims: { subject: '' } }, 'claim name must not be empty'],
  ])('rejects %j', (entry, message) => {
    expect(problems([entry])).toContain(message);
  });

  it('allows plain http on loopback only', () => {
    expect(() => parseOidcIssuers([{ ...minimal, issuer: 'http://127.0.0.1:8080/dev/oidc' }])).not.toThrow();
    expect(() => parseOidcIssuers([{ ...minimal, issuer: 'http://localhost:8080' }])).not.toThrow();
  });

  it('rejects the same issuer twice', () => {
    expect(problems([minimal, minimal])).toContain('duplicate issuer https://idp.example.com');
  });
});
