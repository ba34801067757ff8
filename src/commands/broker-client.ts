/** Small helpers for CLI commands that talk to a running broker with the caller's Baton token. */
import { terminalText as t } from './terminal-text.ts';

export function brokerUrl(flag: string | undefined): string {
  return (flag ?? process.env.BATON_BROKER ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
}

export function bearerToken(): string {
  const token = (process.env.BATON_TOKEN ?? '').trim();
  if (!token) throw new Error('set BATON_TOKEN to a Baton token (an admin token for audit commands)');
  return token;
}

/** GET/POST a broker endpoint; a non-2xx answer becomes one clear error line. */
export async function callBroker(url: string, init: RequestInit = {}): Promise<Response> {
  const res = await fetch(url, init).catch((e: Error) => {
    throw new Error(`cannot reach the broker at ${t(new URL(url).origin)}: ${t(e.message)}`);
  });
  if (!res.ok) {
    const body = (await res.json().catch(() => ({}))) as { title?: string; error_description?: string; code?: string };
    // the broker's message can quote token contents (e.g. who holds an ancestor link): escaped
    throw new Error(`broker refused (${res.status} ${t(body.code ?? '')}): ${t(body.title ?? body.error_description ?? res.statusText)}`);
  }
  return res;
}
