/** Client for the broker's RFC 8693 token exchange. */
import { GRANT_TYPE_TOKEN_EXCHANGE, TOKEN_TYPE_BATON } from './protocol.ts';

/** The broker refused the exchange; `error` is the RFC 6749 §5.2 code. */
export class ExchangeError extends Error {
  override readonly name = 'ExchangeError';
  constructor(
    readonly error: string,
    readonly description: string,
    readonly status: number,
  ) {
    super(`token exchange failed: ${error}: ${description}`);
  }
}

export interface ExchangeOptions {
  /** Broker base URL, e.g. http://127.0.0.1:8080. */
  broker: string;
  /** The OIDC token (JWT) of the subject. */
  subjectToken: string;
  subjectTokenType?: 'jwt' | 'id_token' | 'access_token';
  /** The agent's own OIDC token when it acts for the subject (delegation). */
  actorToken?: string;
  /** Narrow to these resources / upstreams. */
  resources?: string[];
  /** Narrow to these operations. */
  scope?: string[];
  /** Requested lifetime (`"15m"` or seconds); the broker clamps it to policy. */
  ttl?: string | number;
  fetch?: typeof fetch;
}

/**
 * Exchanges an OIDC token for a Baton token.
 *
 * @example const token = await exchange({ broker: 'http://127.0.0.1:8080', subjectToken: jwt });
 * @throws ExchangeError with the broker's RFC error code
 */
export async function exchange(opts: ExchangeOptions): Promise<string> {
  const body = new URLSearchParams({
    grant_type: GRANT_TYPE_TOKEN_EXCHANGE,
    subject_token: opts.subjectToken,
    subject_token_type: `urn:ietf:params:oauth:token-type:${opts.subjectTokenType ?? 'jwt'}`,
    requested_token_type: TOKEN_TYPE_BATON,
  });
  if (opts.actorToken) {
    body.set('actor_token', opts.actorToken);
    body.set('actor_token_type', 'urn:ietf:params:oauth:token-type:jwt');
  }
  for (const r of opts.resources ?? []) body.append('resource', r);
  if (opts.scope?.length) body.set('scope', opts.scope.join(' '));
  if (opts.ttl !== undefined) body.set('requested_lifetime', String(opts.ttl));
  const res = await (opts.fetch ?? fetch)(`${opts.broker.replace(/\/$/, '')}/v1/token`, { method: 'POST', body });
  const json = (await res.json().catch(() => ({}))) as { access_token?: string; error?: string; error_description?: string };
  if (!res.ok || !json.access_token) {
    throw new ExchangeError(json.error ?? 'server_error', json.error_description ?? `HTTP ${res.status}`, res.status);
  }
  return json.access_token;
}
