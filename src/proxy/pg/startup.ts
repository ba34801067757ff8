import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import {
  Frontend,
  ProtocolError,
  SSL_ACCEPTED,
  SSL_REFUSED,
  SqlState,
  StartupCode,
  readCString,
} from './protocol.ts';

/**
 * The client side of connection start-up: SSLRequest/GSSENCRequest negotiation and TLS upgrade,
 * StartupMessage or CancelRequest, then the cleartext PasswordMessage carrying the Baton token.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
 */

/** The socket closed (or failed) before the bytes we waited for arrived. */
export class ConnectionClosedError extends Error {
  override readonly name = 'ConnectionClosedError';
}

/**
 * Promise-style reads of exact byte counts from a socket, for the (short, latency-irrelevant)
 * start-up phase. `detach()` hands back unread bytes when the relay takes the socket over.
 *
 * @example
 * const r = new SocketReader(socket);
 * const len = (await r.read(4)).readInt32BE(0);
 */
export class SocketReader {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;

  private readonly onData = (chunk: Buffer): void => {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    this.settle();
  };
  private readonly onEnd = (): void => this.fail(new ConnectionClosedError('connection closed during start-up'));
  private readonly onError = (err: Error): void => this.fail(new ConnectionClosedError(err.message));

  constructor(private readonly socket: Socket) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  /** Number of received, unread bytes. */
  get buffered(): number {
    return this.bytes;
  }

  /** Resolves with exactly `n` bytes. */
  read(n: number): Promise<Buffer> {
    if (this.waiter) throw new TypeError('concurrent read');
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
      this.settle();
    });
  }

  /** Stops listening; returns the unread bytes. */
  detach(): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
    const rest = Buffer.concat(this.chunks, this.bytes);
    this.chunks = [];
    this.bytes = 0;
    return rest;
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.settle();
  }

  private settle(): void {
    const w = this.waiter;
    if (!w) return;
    if (this.bytes >= w.n) {
      this.waiter = undefined;
      const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.bytes);
      w.resolve(all.subarray(0, w.n));
      const rest = all.subarray(w.n);
      this.chunks = rest.length ? [rest] : [];
      this.bytes = rest.length;
    } else if (this.failure) {
      this.waiter = undefined;
      w.reject(this.failure);
    }
  }
}

/** What a new connection asked for. */
export type ClientHello =
  | {
      kind: 'startup';
      /** Protocol minor version requested (we answer 3.0; >0 triggers NegotiateProtocolVersion). */
      minor: number;
      /** Start-up parameters as sent (names as sent; `_pq_.*` included). */
      params: Map<string, string>;
    }
  | { kind: 'cancel'; processId: number; secretKey: number };

/** Result of `readHello`: the socket may have been upgraded to TLS (then `reader` is new). */
export interface HelloResult {
  hello: ClientHello;
  socket: Socket;
  reader: SocketReader;
  tls: boolean;
}

/**
 * Reads start-up packets until a StartupMessage or CancelRequest arrives, answering SSLRequest
 * ('S' + TLS upgrade when a secure context is configured, else 'N') and GSSENCRequest ('N').
 *
 * Bytes the client sends after its SSLRequest but before the TLS handshake are a protocol violation
 * (they would be processed as if they came over TLS — CVE-2021-23214), so they end the connection.
 */
export async function readHello(
  socket: Socket,
  reader: SocketReader,
  opts: { secureContext: SecureContext | undefined; maxStartupBytes: number },
): Promise<HelloResult> {
  let tls = false;
  // A client may send SSLRequest then GSSENCRequest (or vice versa) once each; bound the loop.
  for (let round = 0; round < 3; round++) {
    const len = (await reader.read(4)).readInt32BE(0);
    if (len < 8 || len > opts.maxStartupBytes) {
      throw new ProtocolError(len < 8 ? 'invalid start-up packet length' : 'start-up packet too large');
    }
    const body = await reader.read(len - 4);
    const code = body.readInt32BE(0);
    if (code === StartupCode.SSLRequest || code === StartupCode.GSSENCRequest) {
      if (len !== 8) throw new ProtocolError('invalid encryption request');
      if (tls) throw new ProtocolError('encryption requested twice');
      if (code === StartupCode.GSSENCRequest || !opts.secureContext) {
        socket.write(SSL_REFUSED);
        continue;
      }
      if (reader.buffered > 0) throw new ProtocolError('unexpected data after SSLRequest');
      reader.detach();
      socket.write(SSL_ACCEPTED);
      socket = await upgrade(socket, opts.secureContext);
      reader = new SocketReader(socket);
      tls = true;
      continue;
    }
    if (code === StartupCode.CancelRequest) {
      if (len !== 16) throw new ProtocolError('invalid cancel request');
      return { hello: { kind: 'cancel', processId: body.readInt32BE(4), secretKey: body.readInt32BE(8) }, socket, reader, tls };
    }
    const major = code >>> 16;
    if (major !== 3) {
      throw new ProtocolError('unsupported frontend protocol (3.0 is supported)', SqlState.FeatureNotSupported);
    }
    return { hello: { kind: 'startup', minor: code & 0xffff, params: parseStartupParams(body) }, socket, reader, tls };
  }
  throw new ProtocolError('too many encryption requests');
}

function parseStartupParams(body: Buffer): Map<string, string> {
  const params = new Map<string, string>();
  let i = 4;
  const end = body.length;
  while (i < end && body[i] !== 0) {
    const [name, afterName] = readCString(body, i, end);
    const [value, afterValue] = readCString(body, afterName, end);
    params.set(name, value);
    i = afterValue;
  }
  if (i !== end - 1) throw new ProtocolError('invalid start-up packet layout');
  return params;
}

function upgrade(socket: Socket, secureContext: SecureContext): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const tlsSocket = new TLSSocket(socket, { isServer: true, secureContext });
    const fail = (err: Error): void => {
      tlsSocket.destroy();
      reject(new ConnectionClosedError(`TLS handshake failed: ${err.message}`));
    };
    tlsSocket.once('error', fail);
    tlsSocket.once('close', () => fail(new Error('closed')));
    tlsSocket.once('secure', () => {
      tlsSocket.off('error', fail);
      tlsSocket.removeAllListeners('close');
      resolve(tlsSocket);
    });
  });
}

/**
 * Reads the PasswordMessage answering AuthenticationCleartextPassword and returns the password.
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PASSWORDMESSAGE
 */
export async function readPassword(reader: SocketReader, maxBytes: number): Promise<string> {
  const header = await reader.read(5);
  if (header[0] !== Frontend.Password) throw new ProtocolError('expected a password message');
  const len = header.readInt32BE(1);
  if (len < 5 || len + 1 > maxBytes) throw new ProtocolError(len < 5 ? 'invalid password message' : 'password message too large');
  const body = await reader.read(len - 4);
  const [password, next] = readCString(body, 0, body.length);
  if (next !== body.length) throw new ProtocolError('invalid password message');
  return password;
}

/**
 * Start-up parameters forwarded upstream (lower-case name → name sent). Anything else — notably
 * `user`, `database`, `options`, `replication`, `search_path` — is never forwarded: `options` could
 * set any GUC (role, search_path), `replication` changes the protocol.
 */
const FORWARDED_PARAMETERS: ReadonlyMap<string, string> = new Map([
  ['application_name', 'application_name'],
  ['client_encoding', 'client_encoding'],
  ['datestyle', 'DateStyle'],
  ['timezone', 'TimeZone'],
  ['extra_float_digits', 'extra_float_digits'],
  ['intervalstyle', 'IntervalStyle'],
]);

/**
 * client_encoding values the proxy accepts. The gate sees SQL decoded as UTF-8; an encoding such as
 * SJIS or GBK (trailing bytes in the ASCII range) would let the upstream read different SQL than the
 * classifier did. SQL_ASCII passes bytes through, i.e. the same UTF-8 the server validates.
 */
const ACCEPTED_ENCODINGS = new Set(['utf8', 'unicode', 'sqlascii']);

/**
 * Upstream start-up parameters derived from the client's. Throws ProtocolError (FATAL to the client)
 * for requests we refuse rather than silently change: replication, non-UTF-8 client_encoding.
 *
 * @example
 * upstreamParameters(new Map([['application_name', 'psql'], ['options', '-c role=admin']]))
 * // → { application_name: 'psql', client_encoding: 'UTF8' }
 */
export function upstreamParameters(params: ReadonlyMap<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of params) {
    const key = name.toLowerCase();
    if (key === 'replication' && !/^(false|off|no|0)$/i.test(value)) {
      throw new ProtocolError('replication connections are not supported by the proxy', SqlState.FeatureNotSupported);
    }
    const forwarded = FORWARDED_PARAMETERS.get(key);
    if (!forwarded) continue;
    if (key === 'client_encoding') {
      if (!ACCEPTED_ENCODINGS.has(value.toLowerCase().replace(/[^a-z0-9]/g, ''))) {
        throw new ProtocolError('only UTF8 client_encoding is supported by the proxy', SqlState.FeatureNotSupported);
      }
      continue; // always UTF8 below
    }
    out[forwarded] = value;
  }
  out['client_encoding'] = 'UTF8';
  return out;
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.toLowerCase();
  return a === '::1' || a.startsWith('127.') || a.startsWith('::ffff:127.');
}

/**
 * Whether to refuse asking for the token in cleartext: only over TLS, or on a loopback connection,
 * unless explicitly allowed (`allowInsecure`). Decided on the address the connection arrived at, so
 * a listener on 0.0.0.0 still serves loopback clients.
 *
 * @example
 * mustRefuseCleartext({ tls: false, localAddress: '10.0.0.5', allowInsecure: false }) // true
 */
export function mustRefuseCleartext(c: { tls: boolean; localAddress: string | undefined; allowInsecure: boolean }): boolean {
  return !c.tls && !c.allowInsecure && !isLoopback(c.localAddress);
}
