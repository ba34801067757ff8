/**
 * Which headers cross the HTTP proxy. Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection
 * and never cross; the client's `Authorization` (its Baton token) never reaches the upstream; the
 * client's own `X-Forwarded-*` / `Forwarded` claims are replaced by what the proxy saw.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** RFC 9110 §7.6.1 and the de-facto ones (`keep-alive`, `proxy-connection`). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** Never forwarded upstream: the client's credential, its routing, and forwarding claims we replace. */
const CLIENT_ONLY = new Set(['authorization', 'host', 'forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port', 'x-real-ip', 'expect']);

/** Names listed in `Connection` are hop-by-hop too. */
function connectionListed(headers: IncomingHttpHeaders): Set<string> {
  const value = headers.connection;
  const listed = new Set<string>();
  for (const part of (Array.isArray(value) ? value.join(',') : (value ?? '')).split(',')) {
    const name = part.trim().toLowerCase();
    if (name) listed.add(name);
  }
  return listed;
}

/**
 * The headers to send upstream, before the credential is injected.
 *
 * @example upstreamHeaders(req.headers, { clientAddress: '10.0.0.7', host: 'proxy.example', proto: 'https', upstreamHost: 'billing:8080' })
 */
export function upstreamHeaders(
  incoming: IncomingHttpHeaders,
  via: { clientAddress: string | undefined; host: string | undefined; proto: 'http' | 'https'; upstreamHost: string },
): OutgoingHttpHeaders {
  const listed = connectionListed(incoming);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || HOP_BY_HOP.has(name) || CLIENT_ONLY.has(name) || listed.has(name)) continue;
    out[name] = value;
  }
  out.host = via.upstreamHost;
  if (via.clientAddress) out['x-forwarded-for'] = via.clientAddress;
  if (via.host) out['x-forwarded-host'] = via.host;
  out['x-forwarded-proto'] = via.proto;
  return out;
}

/** The upstream response's headers the client gets (hop-by-hop removed; framing is Node's job). */
export function clientHeaders(incoming: IncomingHttpHeaders, drop: readonly string[] = []): OutgoingHttpHeaders {
  const listed = connectionListed(incoming);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || HOP_BY_HOP.has(name) || listed.has(name) || drop.includes(name)) continue;
    out[name] = value;
  }
  return out;
}
