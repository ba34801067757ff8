/**
 * The upstream credential the HTTP proxy injects in place of the client's Baton token (issue 13,
 * point 2). The proxy holds it; clients never see it, and the token never reaches the upstream.
 */
import { createHmac } from 'node:crypto';
import type { OutgoingHttpHeaders } from 'node:http';
import type { z } from 'zod';
import type { HttpCredentialSchema } from '../../config/schema.ts';

export type HttpCredential = z.output<typeof HttpCredentialSchema>;

/**
 * Sets the credential's header(s) on `headers` (which must already be free of the client's
 * `authorization`). `pathAndQuery` is what is sent upstream, for the HMAC signature.
 *
 * @example
 * injectCredential(headers, { type: 'bearer', token: 's3cr3t' }, 'GET', '/invoices?limit=5');
 * // headers.authorization === 'Bearer s3cr3t'
 */
export function injectCredential(headers: OutgoingHttpHeaders, credential: HttpCredential, method: string, pathAndQuery: string, now: Date = new Date()): void {
  switch (credential.type) {
    case 'none':
      return;
    case 'header':
      headers[credential.name.toLowerCase()] = credential.value;
      return;
    case 'bearer':
      headers.authorization = `Bearer ${credential.token}`;
      return;
    case 'basic':
      headers.authorization = `Basic ${Buffer.from(`${credential.username}:${credential.password}`, 'utf8').toString('base64')}`;
      return;
    case 'hmac':
      headers[credential.header.toLowerCase()] = hmacSignature(credential, method, pathAndQuery, now);
      return;
  }
}

/**
 * `t=<unix seconds>,kid=<keyId>,v1=<hex HMAC-SHA256(secret, "<t>\n<METHOD>\n<path?query>")>`. The body
 * is not covered (bodies are streamed, never buffered); the upstream should bound the time window.
 */
export function hmacSignature(credential: Extract<HttpCredential, { type: 'hmac' }>, method: string, pathAndQuery: string, now: Date): string {
  const t = Math.floor(now.getTime() / 1000);
  const mac = createHmac('sha256', credential.secret).update(`${t}\n${method}\n${pathAndQuery}`, 'utf8').digest('hex');
  return `t=${t},kid=${credential.keyId},v1=${mac}`;
}
