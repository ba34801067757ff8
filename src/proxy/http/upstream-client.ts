/**
 * One request to an upstream over HTTP/1.1 (a keep-alive pool) or HTTP/2 (one multiplexed session:
 * h2c with prior knowledge for http://, h2 by ALPN for https://), behind one small interface so the
 * proxy's forwarding logic — timeouts, limits, rule 6 — is written once.
 */
import http, { type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { Readable, Writable } from 'node:stream';

/** The upstream's answer: status, headers (no HTTP/2 pseudo-headers) and the body stream. */
export interface UpstreamAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Readable;
}

export interface UpstreamCallHandlers {
  onResponse(answer: UpstreamAnswer): void;
  onError(err: Error): void;
  /** No connection within `connectMs`. */
  onConnectTimeout(): void;
  /** No bytes either way for `idleMs` (0 = never). */
  onIdle(): void;
}

/** A request in flight: write its body to `body` (and end it); `destroy()` abandons it. */
export interface UpstreamCall {
  body: Writable;
  destroy(): void;
}

export interface UpstreamClient {
  call(request: { method: string; path: string; headers: OutgoingHttpHeaders }, timeouts: { connectMs: number; idleMs: number }, handlers: UpstreamCallHandlers): UpstreamCall;
  close(): void;
}

/** @example upstreamClient(new URL('http://billing:8080/api'), { http2: true }) */
export function upstreamClient(url: URL, opts: { http2: boolean }): UpstreamClient {
  return opts.http2 ? http2Client(url) : http1Client(url);
}

function http1Client(url: URL): UpstreamClient {
  const tls = url.protocol === 'https:';
  const agent = new (tls ? https.Agent : http.Agent)({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64 });
  return {
    call({ method, path, headers }, timeouts, handlers) {
      const req = (tls ? https : http).request({ agent, protocol: url.protocol, hostname: url.hostname, port: url.port || undefined, method, path, headers });
      req.on('socket', (socket) => {
        if (!socket.connecting) return;
        const t = setTimeout(handlers.onConnectTimeout, timeouts.connectMs);
        socket.once('connect', () => clearTimeout(t));
        socket.once('close', () => clearTimeout(t));
      });
      if (timeouts.idleMs > 0) req.setTimeout(timeouts.idleMs, handlers.onIdle);
      req.on('error', handlers.onError);
      req.on('response', (res) => handlers.onResponse({ status: res.statusCode ?? 502, headers: res.headers, body: res }));
      return { body: req, destroy: () => req.destroy() };
    },
    close: () => agent.destroy(),
  };
}

/** HTTP/2 forbids connection-specific headers (RFC 9113 §8.2.2); `host` becomes `:authority`. */
const NOT_IN_HTTP2 = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'te']);

function http2Client(url: URL): UpstreamClient {
  let session: http2.ClientHttp2Session | undefined;
  /** The live session, or a new one when there is none (or it is closing after GOAWAY / an error). */
  const current = (): http2.ClientHttp2Session => {
    if (session && !session.closed && !session.destroyed) return session;
    const s = http2.connect(url.origin);
    s.on('error', () => {}); // surfaced per stream; an unhandled 'error' would crash the proxy
    s.on('close', () => {
      if (session === s) session = undefined;
    });
    s.on('goaway', () => {
      if (session === s) session = undefined;
    });
    s.unref();
    session = s;
    return s;
  };
  return {
    call({ method, path, headers }, timeouts, handlers) {
      const s = current();
      let connectTimer: NodeJS.Timeout | undefined;
      if (s.connecting) {
        connectTimer = setTimeout(handlers.onConnectTimeout, timeouts.connectMs);
        s.once('connect', () => clearTimeout(connectTimer));
        s.once('close', () => clearTimeout(connectTimer));
      }
      const outgoing: http2.OutgoingHttpHeaders = { ':method': method, ':path': path, ':authority': url.host };
      for (const [name, value] of Object.entries(headers)) if (value !== undefined && !NOT_IN_HTTP2.has(name)) outgoing[name] = value;
      const stream = s.request(outgoing);
      if (timeouts.idleMs > 0) stream.setTimeout(timeouts.idleMs, handlers.onIdle);
      stream.on('error', handlers.onError);
      stream.on('response', (h) => {
        const answer: IncomingHttpHeaders = {};
        for (const [name, value] of Object.entries(h)) if (!name.startsWith(':')) answer[name] = value as string | string[];
        handlers.onResponse({ status: Number(h[':status'] ?? 502), headers: answer, body: stream });
      });
      return {
        body: stream,
        destroy: () => {
          clearTimeout(connectTimer);
          stream.destroy();
        },
      };
    },
    close: () => {
      session?.destroy();
      session = undefined;
    },
  };
}
