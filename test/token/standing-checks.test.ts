/**
 * Introspection and bearer authentication ask "is this token usable now?" without a (resource,
 * operation): the token's own checks must still hold — scoping checks aside.
 */
import { describe, expect, it } from 'vitest';
import { attenuate } from '../../src/token/attenuate.ts';
import { failedStandingCheck } from '../../src/token/standing-checks.ts';
import { verifyToken } from '../../src/token/verify.ts';
import { appendBlock, binary, checkIf, date, pred, query, set, str, variable, type Query } from '../../src/token/wire/index.ts';
import { NOW, ORDERS, ring, rootToken } from './fixtures.ts';

const root = rootToken();
const PAST = new Date(NOW.getTime() - 60_000);

function standing(token: string, at: Date = NOW) {
  const v = verifyToken(token, ring);
  try {
    return failedStandingCheck(v.biscuit, v.decoded, at);
  } finally {
    v.biscuit.free();
  }
}

const timeQuery = (expression: ReturnType<typeof binary>): Query => query([pred('time', variable('t'))], expression);
const resourceQuery: Query = query([pred('resource', variable('r'))], binary('contains', set(str(ORDERS)), variable('r')));
const withChecks = (...checks: ReturnType<typeof checkIf>[]) => appendBlock(root, { facts: [pred('delegated_to', str('h'))], checks });

describe('failedStandingCheck', () => {
  it('passes a live token, its scoping checks included', () => {
    expect(standing(root)).toBeUndefined();
    expect(standing(attenuate(root, { resources: [ORDERS, 'pg:appdb/public.audit_*'], operations: ['read'], ttl: '5m', delegateTo: 'h', now: NOW }))).toBeUndefined();
  });

  it('fails a hand-written time limit that has passed, in any shape', () => {
    const reversed = withChecks(checkIf(timeQuery(binary('greaterOrEqual', date(PAST), variable('t')))));
    expect(standing(reversed)).toMatchObject({ block: 1, check: 0, rule: expect.stringContaining('time($t)') });
    expect(standing(reversed, new Date(PAST.getTime() - 1000))).toBeUndefined();
    const vocabulary = withChecks(checkIf(timeQuery(binary('lessOrEqual', variable('t'), date(PAST)))));
    expect(standing(vocabulary)).toMatchObject({ block: 1 });
  });

  it('fails an expired authority block', () => {
    expect(standing(root, new Date(NOW.getTime() + 3601_000))).toMatchObject({ block: 0 });
  });

  it('counts a check that mixes scoping with anything else, and checks on facts the block cannot see', () => {
    const mixed = withChecks(checkIf(resourceQuery, timeQuery(binary('lessOrEqual', variable('t'), date(PAST)))));
    expect(standing(mixed)).toMatchObject({ block: 1, check: 0 });
    const unseen = withChecks(checkIf(query([pred('approved', str('yes'))])));
    expect(standing(unseen)).toMatchObject({ block: 1, check: 0 });
  });

  it('names the first failing check after the scoping ones it skips', () => {
    const token = withChecks(checkIf(resourceQuery), checkIf(timeQuery(binary('lessOrEqual', variable('t'), date(PAST)))));
    expect(standing(token)).toMatchObject({ block: 1, check: 1 });
  });
});
