/**
 * Tells people a statement waits for approval: a Slack-compatible webhook (config
 * `approvals.webhook`). The body is `{"text": "<summary>", "approval": {id, url, upstream,
 * normalized, rules, subject, delegates}}`, signed `X-Baton-Signature: sha256=<hex HMAC-SHA256 of
 * the raw body with the secret>`, with `X-Baton-Timestamp` (Unix seconds). docs/approvals.md shows
 * how a receiver verifies it.
 *
 * Fire and forget: `notify` returns at once; each delivery is retried with backoff (5 attempts over
 * about a minute by default) on network errors, timeouts, 408, 429 and 5xx. At most `maxInFlight`
 * deliveries are kept; past that a notification is dropped and logged (the request still shows in
 * `GET /v1/approvals`).
 */
import { createHmac } from 'node:crypto';
import { requestParties, type Approval } from './approval.ts';

export interface WebhookOptions {
  url: string;
  secret: string;
  /** Wait before each retry, ms (its length + 1 = the attempts). Default [2 000, 5 000, 15 000, 40 000]. */
  backoffMs?: readonly number[];
  /** Per attempt. Default 10 000 ms. */
  timeoutMs?: number;
  /** Deliveries kept (in flight or waiting to retry); more are dropped. Default 100. */
  maxInFlight?: number;
  log?: (level: 'warn' | 'error', message: string, fields: Record<string, unknown>) => void;
  /** The clock for X-Baton-Timestamp (tests). */
  now?: () => Date;
}

export interface WebhookNotifier {
  /** Queues a delivery and returns at once (never throws). */
  notify(approval: Approval): void;
  /** Resolves when every queued delivery has finished (delivered or given up). */
  idle(): Promise<void>;
  /** Stops retrying: waiting retries are abandoned. */
  close(): void;
}

/** The payload `approval` field: what a chat message or a bot needs, not the whole request. */
export interface WebhookApproval {
  id: string;
  url: string;
  upstream: string;
  normalized: string;
  rules: string[];
  subject: string | null;
  delegates: string[];
}

/** Slack's own escapes (`&`, `<`, `>`): a delegate name cannot become a link or a mention. */
function slackEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

const clip = (s: string, max: number) => (s.length > max ? `${s.slice(0, max)}…` : s);

/**
 * The body posted for `approval`.
 * @example webhookBody(approval) // { text: 'Approval needed: alice → helper-1 wants to run on appdb: …', approval: { … } }
 */
export function webhookBody(approval: Approval): { text: string; approval: WebhookApproval } {
  const { subject, delegates } = requestParties(approval.lineage);
  const chain = [subject ?? '(unknown subject)', ...delegates].map((s) => slackEscape(clip(s, 256))).join(' → ');
  const statement = slackEscape(clip(approval.normalized, 2000)).replace(/`/g, "'");
  const text = [
    `Approval needed: ${chain} wants to run on ${slackEscape(approval.upstream)} (${approval.rules.map(slackEscape).join(', ') || 'policy'}):`,
    `\`\`\`${statement}\`\`\``,
    `Approve or deny: ${approval.url} (baton approvals approve ${approval.id})`,
  ].join('\n');
  return {
    text,
    approval: { id: approval.id, url: approval.url, upstream: approval.upstream, normalized: approval.normalized, rules: approval.rules, subject: subject ?? null, delegates },
  };
}

/**
 * `sha256=<hex>` over the raw body.
 * @example signWebhook('s3cret-s3cret-s3cret', '{"text":"…"}') // 'sha256=5d…'
 */
function signWebhook(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

const retryable = (status: number) => status === 408 || status === 429 || status >= 500;

/**
 * @example
 * const webhook = config.approvals.webhook && createWebhookNotifier({ ...config.approvals.webhook, log: (l, m, f) => logger[l](f, m) });
 * createApprovalDesk({ …, notify: webhook?.notify });
 */
export function createWebhookNotifier(opts: WebhookOptions): WebhookNotifier {
  const backoff = opts.backoffMs ?? [2_000, 5_000, 15_000, 40_000];
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const maxInFlight = opts.maxInFlight ?? 100;
  const clock = opts.now ?? (() => new Date());
  const log = opts.log ?? ((level, message, fields) => console[level](JSON.stringify({ msg: message, ...fields })));
  const inFlight = new Set<Promise<void>>();
  const timers = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  let closed = false;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const entry = { timer: setTimeout(() => (timers.delete(entry), resolve()), ms), resolve };
      entry.timer.unref();
      timers.add(entry);
    });

  async function attempt(body: string): Promise<{ ok: boolean; retry: boolean; why: string }> {
    try {
      const res = await fetch(opts.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-baton-signature': signWebhook(opts.secret, body), 'x-baton-timestamp': String(Math.floor(clock().getTime() / 1000)) },
        body,
        signal: AbortSignal.timeout(timeoutMs),
        redirect: 'error',
      });
      await res.arrayBuffer().catch(() => {});
      return { ok: res.ok, retry: retryable(res.status), why: `HTTP ${res.status}` };
    } catch (err) {
      return { ok: false, retry: true, why: err instanceof Error ? `${err.name}: ${err.message}` : String(err) };
    }
  }

  async function deliver(approval: Approval): Promise<void> {
    const body = JSON.stringify(webhookBody(approval));
    for (let i = 0; ; i++) {
      const r = await attempt(body);
      if (r.ok) return;
      if (!r.retry || i >= backoff.length || closed) {
        log('error', 'approval webhook not delivered', { approvalId: approval.id, attempts: i + 1, last: r.why });
        return;
      }
      log('warn', 'approval webhook failed; retrying', { approvalId: approval.id, attempt: i + 1, last: r.why, retryInMs: backoff[i] });
      await sleep(backoff[i]!);
      if (closed) return;
    }
  }

  return {
    notify(approval) {
      if (closed) return;
      if (inFlight.size >= maxInFlight) {
        log('error', 'approval webhook queue full; notification dropped', { approvalId: approval.id, inFlight: inFlight.size });
        return;
      }
      const p: Promise<void> = deliver(approval)
        .catch((err: unknown) => log('error', 'approval webhook failed', { approvalId: approval.id, err: String(err) }))
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
    },
    async idle() {
      while (inFlight.size) await Promise.all([...inFlight]);
    },
    close() {
      closed = true;
      for (const t of timers) {
        clearTimeout(t.timer);
        t.resolve();
      }
      timers.clear();
    },
  };
}
