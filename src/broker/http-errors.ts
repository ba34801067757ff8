/**
 * How errors leave the broker. OAuth endpoints (token, revoke, introspect) answer RFC 6749 §5.2 JSON
 * (`error`, `error_description`); every other endpoint answers RFC 9457 problem+json. The public text
 * is the BatonError message; internal detail goes only to the log. Anything unexpected is a generic
 * server error.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BatonError, type ErrorCode } from '../errors.ts';

const OAUTH_ROUTES = new Set(['/v1/token', '/v1/revoke', '/v1/introspect']);

/** Fastify's own errors (body parsing, size, content type) mapped to our codes. */
function fromFastify(err: FastifyError): BatonError | undefined {
  const byCode: Record<string, [ErrorCode, string]> = {
    FST_ERR_CTP_BODY_TOO_LARGE: ['BATON_ERR_PAYLOAD_TOO_LARGE', 'request body is too large'],
    FST_ERR_CTP_INVALID_MEDIA_TYPE: ['BATON_ERR_UNSUPPORTED_MEDIA_TYPE', 'unsupported content type; send application/x-www-form-urlencoded or application/json'],
    FST_ERR_CTP_EMPTY_JSON_BODY: ['BATON_ERR_INVALID_REQUEST', 'request body is empty'],
    FST_ERR_CTP_INVALID_CONTENT_LENGTH: ['BATON_ERR_INVALID_REQUEST', 'invalid content length'],
  };
  const known = err.code ? byCode[err.code] : undefined;
  if (known) return new BatonError(known[0], known[1]);
  if (err.statusCode === 400) return new BatonError('BATON_ERR_INVALID_REQUEST', 'request body is malformed', { detail: err.message });
  return undefined;
}

export function toBatonError(err: unknown): BatonError {
  if (err instanceof BatonError) return err;
  const mapped = fromFastify(err as FastifyError);
  if (mapped) return mapped;
  return new BatonError('BATON_ERR_SERVER', 'internal error', { detail: err instanceof Error ? err.stack : String(err), cause: err });
}

export function sendError(request: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  const e = toBatonError(err);
  const level = e.http >= 500 ? 'error' : 'info';
  request.log[level]({ code: e.code, detail: e.detail }, e.message);
  if (e.code === 'BATON_ERR_RATE_LIMITED' && !reply.hasHeader('retry-after')) reply.header('retry-after', '60');
  reply.status(e.http).header('cache-control', 'no-store');
  if (OAUTH_ROUTES.has(request.routeOptions.url ?? '')) {
    return reply.type('application/json').send({ error: e.oauth, error_description: e.message, code: e.code });
  }
  return reply
    .type('application/problem+json')
    .send({ type: `https://baton.dev/errors/${e.code}`, title: e.message, status: e.http, code: e.code });
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err, request, reply) => sendError(request, reply, err));
  app.setNotFoundHandler((request, reply) => sendError(request, reply, new BatonError('BATON_ERR_NOT_FOUND', 'no such endpoint')));
}
