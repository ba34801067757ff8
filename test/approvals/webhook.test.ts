/**
 * The approval webhook against a real loopback HTTP server (port 0) that verifies the signature the
 * way docs/approvals.md tells receivers to, and fails the first delivery.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Approval } from '../../src/approvals/approval.ts';
import { createWebhookNotifier, webhookBody } from '../../src/approvals/webhook.ts';

const SECRET = 'a-webhook-secret-of-32-characters';

const approval: Approval = {
  id: 'apr_abcdefghijklmnopqrstuv',
  state: 'pending',
  url: 'https://baton.example/v1/approvals/apr_abcdefghijklmnopqrstuv',
  upstream: 'appdb',
  statement: 'DELETE FROM orders',
  normalized: 'DELETE FROM orders',
  accesses: [{ resource: 'pg:appdb/public.orders', operation: 'delete' }],
  rules: ['unqualified-delete'],
  lineage: [
    { depth: 0, subject: 'alice', agent: 'cli', constraints: {}, revocationId: 'aa'.repeat(32) },
    { depth: 1, delegatedTo: '<!channel> helper', constraints: {}, revocationId: 'bb'.repeat(32) },
  ],
  revocationId: 'bb'.repeat(32),
  statementHash: 'cc'.repeat(32),
  revocationIds: ['aa'.repeat(32), 'bb'.repeat(32)],
  createdAt: '2026-12-04T10:00:00.000Z',
  expiresAt: '2026-12-04T11:00:00.000Z',
};

/** What a receiver does: HMAC the raw body, compare in constant time. */
function verified(req: IncomingMessage, raw: Buffer): boolean {
  const expected = Buffer.from(`sha256=${createHmac('sha256', SECRET).update(raw).digest('hex')}`);
  const got = Buffer.from(String(req.headers['x-baton-signature'] ?? ''));
  return got.length === expected.length && timingSafeEqual(got, expected);
}

let server: Server | undefined;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

async function receiver(handle: (req: IncomingMessage, raw: Buffer, n: number) => number): Promise<string> {
  let n = 0;
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.statusCode = handle(req, Buffer.concat(chunks), ++n);
      res.end();
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
}

describe('approval webhook', () => {
  it('posts a signed Slack-compatible body, retrying after a failure', async () => {
    const seen: { n: number; ok: boolean; body: unknown; timestamp: string | undefined }[] = [];
    const url = await receiver((req, raw, n) => {
      const ok = verified(req, raw);
      seen.push({ n, ok, body: JSON.parse(raw.toString()), timestamp: req.headers['x-baton-timestamp'] as string | undefined });
      if (n === 1) return 500;
      return ok ? 200 : 401;
    });
    const logs: string[] = [];
    const hook = createWebhookNotifier({ url, secret: SECRET, backoffMs: [20, 20, 20, 20], now: () => new Date('2026-12-04T10:00:00Z'), log: (_l, m) => logs.push(m) });
    // never blocks: notify returns nothing to wait for, before any delivery reached the receiver
    expect(hook.notify(approval)).toBeUndefined();
    expect(seen).toHaveLength(0);
    await hook.idle();
    expect(seen.map((s) => [s.n, s.ok])).toEqual([
      [1, true],
      [2, true],
    ]);
    expect(seen[1]!.timestamp).toBe(String(Date.parse('2026-12-04T10:00:00Z') / 1000));
    const body = seen[1]!.body as ReturnType<typeof webhookBody>;
    expect(body.approval).toEqual({
      id: approval.id,
      url: approval.url,
      upstream: 'appdb',
      normalized: 'DELETE FROM orders',
      rules: ['unqualified-delete'],
      subject: 'alice',
      delegates: ['<!channel> helper'],
    });
    expect(body.text).toContain('alice → &lt;!channel&gt; helper');
    expect(body.text).toContain('DELETE FROM orders');
    expect(body.text).toContain(approval.url);
    expect(body.text).not.toContain('<!channel>');
    expect(logs).toEqual(['approval webhook failed; retrying']);
    hook.close();
  });

  it('gives up after its attempts and on a client error, logging; a full queue drops', async () => {
    let calls = 0;
    const url = await receiver(() => (++calls, 503));
    const logs: string[] = [];
    const hook = createWebhookNotifier({ url, secret: SECRET, backoffMs: [5, 5], maxInFlight: 1, log: (_l, m) => logs.push(m) });
    hook.notify(approval);
    hook.notify({ ...approval, id: 'apr_zzzzzzzzzzzzzzzzzzzzzz' });
    await hook.idle();
    expect(calls).toBe(3);
    expect(logs).toEqual(['approval webhook queue full; notification dropped', 'approval webhook failed; retrying', 'approval webhook failed; retrying', 'approval webhook not delivered']);

    await new Promise<void>((r) => server!.close(() => r()));
    calls = 0;
    const url2 = await receiver(() => (++calls, 404));
    const hook2 = createWebhookNotifier({ url: url2, secret: SECRET, backoffMs: [5, 5], log: () => {} });
    hook2.notify(approval);
    await hook2.idle();
    expect(calls).toBe(1);
  });

  it('an unreachable receiver never throws into the caller', async () => {
    const url = await receiver(() => 200);
    await new Promise<void>((r) => server!.close(() => r()));
    server = undefined;
    const logs: string[] = [];
    const hook = createWebhookNotifier({ url, secret: SECRET, backoffMs: [5], log: (_l, m) => logs.push(m) });
    expect(() => hook.notify(approval)).not.toThrow();
    await hook.idle();
    expect(logs.at(-1)).toBe('approval webhook not delivered');
  });
});
