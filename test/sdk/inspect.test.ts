/**
 * inspect() never describes a token the verifiers refuse as if it were usable: with keys it throws the
 * verifier's refusal, without keys it flags it.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { attenuate, inspect } from '../../src/sdk/index.ts';
import { appendBlock, pred, str } from '../../src/token/wire/index.ts';
import { NOW, ORDERS, refusal, ring, rootToken } from '../token/fixtures.ts';

const root = rootToken();
/** The review's attack: a block that states the request facts its own checks look for. */
const forged = appendBlock(attenuate(root, { resources: [ORDERS], operations: ['read'], delegateTo: 'helper-7', now: NOW }), {
  facts: [pred('delegated_to', str('helper-8')), pred('resource', str(ORDERS)), pred('operation', str('read'))],
});

describe('inspect()', () => {
  it('with keys, throws the refusal verification raises for a block stating reserved facts', () => {
    expect(refusal(() => inspect(forged, { publicKeys: ring }))).toEqual({
      code: 'BATON_ERR_TOKEN_RESERVED_NAME',
      message: 'token refused: block 2 states a fact named "resource", which only the broker or the authorizer may supply',
    });
  });

  it('without keys, flags the same refusal and marks the view approximate', () => {
    const seen = inspect(forged);
    expect(seen.verified).toBe(false);
    expect(seen.refusal).toEqual(refusal(() => inspect(forged, { publicKeys: ring })));
    expect(seen.effective.approximate).toBe(true);
    expect(seen.lineage[2]!.opaque).toEqual([`resource("${ORDERS}");`, 'operation("read");']);
  });

  it('flags nothing on tokens attenuate() makes', () => {
    const child = attenuate(root, { resources: [ORDERS], operations: ['read'], ttl: '5m', delegateTo: 'helper-7', now: NOW });
    expect(inspect(child).refusal).toBeUndefined();
    expect(inspect(child, { publicKeys: ring })).toMatchObject({ verified: true, effective: { resources: [ORDERS], approximate: false } });
  });
});

describe('baton inspect (CLI, no keys)', () => {
  it('says first that every verifier refuses the token', () => {
    const out = execFileSync('node', ['bin/baton.mjs', 'inspect'], { env: { ...process.env, BATON_TOKEN: forged }, encoding: 'utf8' });
    const lines = out.split('\n');
    expect(lines[0]).toMatch(/UNVERIFIED/);
    expect(lines[1]).toBe(`REFUSED by every verifier: BATON_ERR_TOKEN_RESERVED_NAME: ${refusal(() => inspect(forged, { publicKeys: ring }))!.message}`);
  });
});

