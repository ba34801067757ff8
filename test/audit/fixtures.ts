/** Event builders shared by the audit tests: a root token, a delegate, a sub-delegate. */
import { createHash } from 'node:crypto';
import type { AuditEventInput, LineageLink } from '../../src/audit/event.ts';

/** A 128-hex-digit id shaped like a Biscuit revocation id (an Ed25519 signature). */
export function revocationId(seed: string): string {
  const h = (s: string) => createHash('sha256').update(s).digest('hex');
  return h(seed) + h(`${seed}/2`);
}

export function rootLink(subject: string, agent: string, seed = subject): LineageLink {
  return {
    depth: 0,
    subject,
    issuer: 'https://idp.example.com',
    agent,
    constraints: { resources: ['pg:appdb/public.*'], operations: ['read', 'insert'], expiresAt: '2026-11-23T13:00:00Z' },
    revocationId: revocationId(seed),
  };
}

export function delegateLink(depth: number, delegatedTo: string, purpose: string, resources: string[]): LineageLink {
  return {
    depth,
    delegatedTo,
    purpose,
    constraints: { resources, operations: ['read'], expiresAt: '2026-11-23T12:35:00Z' },
    revocationId: revocationId(`${delegatedTo}/${depth}`),
  };
}

export function statementEvent(over: Partial<AuditEventInput> = {}): AuditEventInput {
  return {
    source: 'proxy-pg',
    action: 'statement',
    decision: 'allow',
    lineage: [rootLink('alice@example.com', 'planner'), delegateLink(1, 'helper-7', "summarise yesterday's orders", ['pg:appdb/public.orders'])],
    tokenId: 'tok_alice_1',
    resource: 'pg:appdb/public.orders',
    operation: 'read',
    accesses: [{ resource: 'pg:appdb/public.orders', operation: 'read' }],
    fingerprint: 'a1b2c3d4e5f60718',
    normalized: 'SELECT id, total FROM public.orders WHERE created_at > $1',
    ...over,
  };
}
