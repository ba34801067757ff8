import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { UpstreamTarget } from './gate.ts';
import {
  AuthCode,
  Backend,
  SqlState,
  encodeCancelRequest,
  encodePasswordMessage,
  encodeSASLInitialResponse,
  encodeSSLRequest,
  encodeStartupMessage,
  parseErrorFields,
  type TransactionStatus,
} from './protocol.ts';
import { SocketReader } from './startup.ts';

/**
 * The proxy's own connection to the real Postgres: TCP (optionally TLS), StartupMessage, and
 * authentication with the proxy's credentials — trust, cleartext, md5 or SCRAM-SHA-256(-PLUS).
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
 * @see https://www.postgresql.org/docs/current/sasl-authentication.html
 */

/** node-postgres's SCRAM implementation (RFC 5802/7677, SASLprep, channel binding), reused as is. */
interface ScramSession {
  mechanism: string;
  response: string;
}
interface PgSasl {
  startSession(mechanisms: string[], stream?: TLSSocket): ScramSession;
  continueSession(session: ScramSession, password: string, serverData: string, stream?: TLSSocket): Promise<void>;
  finalizeSession(session: ScramSession, serverData: string): void;
}
const sasl = createRequire(import.meta.url)('pg/lib/crypto/sasl.js') as PgSasl;

/** Connecting or authenticating upstream failed. `sqlstate`/`message` are safe for the client. */
export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  constructor(
    readonly sqlstate: string,
    message: string,
    /** Internal detail for the log (may name the upstream user/database; never sent to the client). */
    readonly detail: string,
  ) {
    super(message);
  }
}

/** An authenticated upstream connection, ready for queries. */
export interface UpstreamConnection {
  socket: Socket;
  /** Raw ParameterStatus messages, to relay to the client verbatim. */
  parameterStatus: Buffer[];
  processId: number;
  secretKey: number;
  status: TransactionStatus;
  /** Bytes received after ReadyForQuery (normally none). */
  rest: Buffer;
}

/**
 * Connects and authenticates; resolves once the upstream sent ReadyForQuery.
 *
 * @example
 * const up = await connectUpstream({ host: '127.0.0.1', port: 5432, user: 'app', database: 'appdb' },
 *   { application_name: 'psql', client_encoding: 'UTF8' }, 10_000);
 */
export async function connectUpstream(
  target: UpstreamTarget,
  params: Readonly<Record<string, string>>,
  timeoutMs: number,
): Promise<UpstreamConnection> {
  let socket: Socket = await openSocket(target, timeoutMs);
  const timer = setTimeout(() => socket.destroy(new Error('upstream start-up timed out')), timeoutMs);
  try {
    if (target.ssl) socket = await negotiateTls(socket, target);
    const reader = new SocketReader(socket);
    socket.write(encodeStartupMessage({ ...params, user: target.user, database: target.database }));
    const result = await handshake(socket, reader, target);
    return { ...result, socket, rest: reader.detach() };
  } catch (err) {
    socket.destroy();
    if (err instanceof UpstreamError) throw err;
    throw new UpstreamError(SqlState.ConnectionFailure, 'upstream connection failed', String((err as Error)?.message ?? err));
  } finally {
    clearTimeout(timer);
  }
}

function openSocket(target: UpstreamTarget, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: target.host, port: target.port, noDelay: true });
    const timer = setTimeout(() => socket.destroy(new Error('connect timed out')), timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(new UpstreamError(SqlState.ConnectionFailure, 'upstream unavailable', err.message));
    });
  });
}

async function negotiateTls(socket: Socket, target: UpstreamTarget): Promise<Socket> {
  const reader = new SocketReader(socket);
  socket.write(encodeSSLRequest());
  const answer = (await reader.read(1))[0];
  if (reader.detach().length > 0) throw new Error('unexpected data after SSL answer');
  if (answer !== 0x53 /* S */) throw new Error('upstream refused TLS');
  const options = target.ssl || {};
  socket.on('error', () => {}); // surfaces as the TLS socket's error/close
  return new Promise((resolve, reject) => {
    const tls = tlsConnect({ servername: target.host, ...options, socket }, () => {
      tls.off('error', reject);
      resolve(tls);
    });
    tls.once('error', reject);
  });
}

type HandshakeResult = Pick<UpstreamConnection, 'parameterStatus' | 'processId' | 'secretKey' | 'status'>;

async function handshake(socket: Socket, reader: SocketReader, target: UpstreamTarget): Promise<HandshakeResult> {
  const parameterStatus: Buffer[] = [];
  let processId = 0;
  let secretKey = 0;
  let scram: ScramSession | undefined;
  const tlsStream = 'encrypted' in socket ? (socket as TLSSocket) : undefined;
  for (;;) {
    const header = await reader.read(5);
    const type = header[0]!;
    const len = header.readInt32BE(1);
    if (len < 4 || len > 1024 * 1024) throw new Error('invalid message length from upstream');
    const body = await reader.read(len - 4);
    const message = Buffer.concat([header, body]);
    switch (type) {
      case Backend.Authentication: {
        const code = body.readInt32BE(0);
        if (code === AuthCode.Ok) break;
        const password = target.password;
        if (password === undefined) {
          throw new UpstreamError(SqlState.ConnectionFailure, 'upstream authentication failed', 'upstream asks for a password; none configured');
        }
        if (code === AuthCode.CleartextPassword) {
          socket.write(encodePasswordMessage(Buffer.from(`${password}\0`)));
        } else if (code === AuthCode.MD5Password) {
          socket.write(encodePasswordMessage(Buffer.from(`${md5Password(target.user, password, body.subarray(4, 8))}\0`)));
        } else if (code === AuthCode.SASL) {
          const mechanisms = body.toString('utf8', 4).split('\0').filter(Boolean);
          scram = sasl.startSession(mechanisms, tlsStream);
          socket.write(encodeSASLInitialResponse(scram.mechanism, Buffer.from(scram.response)));
        } else if (code === AuthCode.SASLContinue && scram) {
          await sasl.continueSession(scram, password, body.toString('utf8', 4), tlsStream);
          socket.write(encodePasswordMessage(Buffer.from(scram.response)));
        } else if (code === AuthCode.SASLFinal && scram) {
          sasl.finalizeSession(scram, body.toString('utf8', 4));
        } else {
          throw new UpstreamError(SqlState.ConnectionFailure, 'upstream authentication failed', `unsupported upstream auth request ${code}`);
        }
        break;
      }
      case Backend.ParameterStatus:
        parameterStatus.push(message);
        break;
      case Backend.BackendKeyData:
        processId = body.readInt32BE(0);
        secretKey = body.readInt32BE(4);
        break;
      case Backend.NoticeResponse:
      case Backend.NegotiateProtocolVersion:
        break;
      case Backend.ErrorResponse: {
        const e = parseErrorFields(message, 0, message.length);
        throw upstreamRefusal(e.code, `${e.code}: ${e.message}`);
      }
      case Backend.ReadyForQuery:
        return { parameterStatus, processId, secretKey, status: String.fromCharCode(body[0]!) as TransactionStatus };
      default:
        throw new Error(`unexpected message type ${type} from upstream during start-up`);
    }
  }
}

/**
 * Maps an upstream start-up error to what the client sees. Authentication failures are the proxy's
 * misconfiguration, not the client's, so they become 08006 with a fixed text; other classes (e.g.
 * 3D000 database missing, 53300 too many connections) keep their SQLSTATE with a fixed text.
 */
function upstreamRefusal(code: string, detail: string): UpstreamError {
  if (code.startsWith('28')) return new UpstreamError(SqlState.ConnectionFailure, 'upstream authentication failed', detail);
  return new UpstreamError(/^[0-9A-Z]{5}$/.test(code) ? code : SqlState.ConnectionFailure, 'upstream refused the connection', detail);
}

/** `md5` + md5(md5(password + user) + salt), as Postgres expects. */
function md5Password(user: string, password: string, salt: Buffer): string {
  const inner = createHash('md5').update(password + user, 'utf8').digest('hex');
  return `md5${createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex')}`;
}

/**
 * Sends a CancelRequest for the upstream backend (plain TCP, as libpq does); best effort.
 *
 * @example
 * sendCancel({ host: '127.0.0.1', port: 5432 }, up.processId, up.secretKey);
 */
export function sendCancel(target: Pick<UpstreamTarget, 'host' | 'port'>, processId: number, secretKey: number): void {
  const socket = netConnect({ host: target.host, port: target.port });
  socket.setTimeout(5_000, () => socket.destroy());
  socket.on('error', () => socket.destroy());
  socket.on('connect', () => socket.end(encodeCancelRequest(processId, secretKey)));
}
