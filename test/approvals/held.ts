/** Test helpers: a Baton token from the test broker, and the request the proxy would hold for it. */
import { createHash } from 'node:crypto';
import { toAuditLineage } from '../../src/audit/lineage.ts';
import type { ApprovalRequestInput } from '../../src/approvals/desk.ts';
import { readLineage } from '../../src/token/lineage.ts';
import { verifyToken } from '../../src/token/verify.ts';
import type { TestBroker } from '../helpers/broker.ts';

/** A Baton token for a dev-issuer identity. */
export async function brokerToken(broker: TestBroker, sub: string, groups: string[]): Promise<string> {
  const res = await broker.exchange(await broker.devToken(sub, groups));
  const body = (await res.json()) as { access_token: string };
  if (!res.ok) throw new Error(`exchange: ${res.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

let seq = 0;

/** What the proxy hands `admit` when `token` runs `statement` (a fresh one by default). */
export function heldStatement(broker: TestBroker, token: string, statement = `DELETE FROM orders -- ${++seq}`): ApprovalRequestInput {
  const v = verifyToken(token, broker.keyring);
  try {
    const lineage = readLineage(v.decoded);
    return {
      binding: { revocationId: v.revocationIds.at(-1)!, statementHash: createHash('sha256').update(statement).digest('hex') },
      revocationIds: v.revocationIds,
      upstream: 'appdb',
      statement,
      normalized: statement,
      accesses: [{ resource: 'pg:appdb/public.orders', operation: 'delete' }],
      rules: ['unqualified-delete'],
      lineage: toAuditLineage(lineage),
      ...(lineage[0]?.tokenId ? { tokenId: lineage[0].tokenId } : {}),
    };
  } finally {
    v.biscuit.free();
  }
}
