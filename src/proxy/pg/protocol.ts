/**
 * PostgreSQL frontend/backend protocol 3.0: wire codes, the few encoders the proxy needs and minimal
 * decoders. Pure functions over Buffers — no sockets here (those live in startup/upstream/session).
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */

/**
 * Type bytes of messages a client sends after start-up.
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
export const Frontend = {
  Bind: 0x42, // 'B'
  Close: 0x43, // 'C'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyFail: 0x66, // 'f'
  Describe: 0x44, // 'D'
  Execute: 0x45, // 'E'
  Flush: 0x48, // 'H'
  FunctionCall: 0x46, // 'F'
  Parse: 0x50, // 'P'
  Password: 0x70, // 'p' (also SASLInitialResponse / SASLResponse)
  Query: 0x51, // 'Q'
  Sync: 0x53, // 'S'
  Terminate: 0x58, // 'X'
} as const;

/**
 * Type bytes of messages the server sends.
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
export const Backend = {
  Authentication: 0x52, // 'R'
  BackendKeyData: 0x4b, // 'K'
  BindComplete: 0x32, // '2'
  CloseComplete: 0x33, // '3'
  CommandComplete: 0x43, // 'C'
  CopyBothResponse: 0x57, // 'W'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyInResponse: 0x47, // 'G'
  CopyOutResponse: 0x48, // 'H'
  DataRow: 0x44, // 'D'
  EmptyQueryResponse: 0x49, // 'I'
  ErrorResponse: 0x45, // 'E'
  FunctionCallResponse: 0x56, // 'V'
  NegotiateProtocolVersion: 0x76, // 'v'
  NoData: 0x6e, // 'n'
  NoticeResponse: 0x4e, // 'N'
  NotificationResponse: 0x41, // 'A'
  ParameterDescription: 0x74, // 't'
  ParameterStatus: 0x53, // 'S'
  ParseComplete: 0x31, // '1'
  PortalSuspended: 0x73, // 's'
  ReadyForQuery: 0x5a, // 'Z'
  RowDescription: 0x54, // 'T'
} as const;

/**
 * The int32 that follows the length in an untyped start-up packet.
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-STARTUPMESSAGE
 */
export const StartupCode = {
  /** Protocol 3.0 (major 3 in the high 16 bits, minor in the low 16 bits). */
  Protocol3: 0x0003_0000,
  SSLRequest: 80877103,
  GSSENCRequest: 80877104,
  CancelRequest: 80877102,
} as const;

/**
 * Authentication request codes (int32 after the 'R' header).
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONOK
 */
export const AuthCode = {
  Ok: 0,
  KerberosV5: 2,
  CleartextPassword: 3,
  MD5Password: 5,
  GSS: 7,
  GSSContinue: 8,
  SSPI: 9,
  SASL: 10,
  SASLContinue: 11,
  SASLFinal: 12,
} as const;

/**
 * The SQLSTATEs the proxy itself emits.
 * @see https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export const SqlState = {
  ProtocolViolation: '08P01',
  ConnectionFailure: '08006',
  InvalidAuthorizationSpecification: '28000',
  InvalidPassword: '28P01',
  InsufficientPrivilege: '42501',
  FeatureNotSupported: '0A000',
  InvalidParameterValue: '22023',
  ProgramLimitExceeded: '54000',
  TooManyConnections: '53300',
  InsufficientResources: '53000',
  ObjectNotInPrerequisiteState: '55000',
  IdleSessionTimeout: '57P05',
  IdleInTransactionTimeout: '25P03',
  AdminShutdown: '57P01',
  InvalidSqlStatementName: '26000',
  CannotConnectNow: '57P03',
  InternalError: 'XX000',
} as const;

/** Transaction status byte carried by ReadyForQuery. */
export type TransactionStatus = 'I' | 'T' | 'E';

const EMPTY = Buffer.alloc(0);

/** One byte answers to SSLRequest / GSSENCRequest. */
export const SSL_ACCEPTED: Buffer = Buffer.from('S');
export const SSL_REFUSED: Buffer = Buffer.from('N');

/** A typed message: type byte, int32 length (counting itself), body. */
function typed(type: number, body: Buffer = EMPTY): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function cstr(s: string): Buffer {
  return Buffer.from(`${s}\0`, 'utf8');
}

function int32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(n | 0, 0);
  return b;
}

// ───────────────────────────── text hygiene ─────────────────────────────

/**
 * Text that may go to a client in an ErrorResponse, built from a whitelist: printable ASCII
 * (0x20–0x7E) only, everything else becomes '?', capped in length. Error text is never echoed raw
 * (the prototype reflected parser output — an injection into the client's terminal/logs).
 *
 * @example
 * sanitizeText('denied\u001b[31m by policy') // 'denied?[31m by policy'
 */
export function sanitizeText(text: string, max = 240): string {
  let out = '';
  const n = Math.min(text.length, max);
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    out += c >= 0x20 && c <= 0x7e ? text[i] : '?';
  }
  return out;
}

const SQLSTATE_RE = /^[0-9A-Z]{5}$/;

/** A SQLSTATE as given when well-formed, else `fallback` (we never put caller text in the C field). */
export function safeSqlState(code: string, fallback: string = SqlState.InternalError): string {
  return SQLSTATE_RE.test(code) ? code : fallback;
}

// ───────────────────────────── encoders ─────────────────────────────

/**
 * ErrorResponse with severity, SQLSTATE and a sanitized message.
 * @see https://www.postgresql.org/docs/current/protocol-error-fields.html
 *
 * @example
 * socket.write(encodeError('FATAL', '28P01', 'token rejected'));
 */
export function encodeError(severity: 'ERROR' | 'FATAL', sqlstate: string, message: string): Buffer {
  const code = safeSqlState(sqlstate);
  const body = Buffer.concat([
    Buffer.from('S'),
    cstr(severity),
    Buffer.from('V'),
    cstr(severity),
    Buffer.from('C'),
    cstr(code),
    Buffer.from('M'),
    cstr(sanitizeText(message)),
    Buffer.from([0]),
  ]);
  return typed(Backend.ErrorResponse, body);
}

/** A NoticeResponse (severity NOTICE, SQLSTATE 00000) from the proxy itself. */
export function encodeNotice(message: string): Buffer {
  const body = Buffer.concat([Buffer.from('S'), cstr('NOTICE'), Buffer.from('V'), cstr('NOTICE'), Buffer.from('C'), cstr('00000'), Buffer.from('M'), cstr(sanitizeText(message)), Buffer.from([0])]);
  return typed(Backend.NoticeResponse, body);
}

/** AuthenticationOk / AuthenticationCleartextPassword (the only two the proxy asks of clients). */
export function encodeAuthentication(code: typeof AuthCode.Ok | typeof AuthCode.CleartextPassword): Buffer {
  return typed(Backend.Authentication, int32(code));
}

/** BackendKeyData with the proxy's own (not the upstream's) process id and secret key. */
export function encodeBackendKeyData(processId: number, secretKey: number): Buffer {
  return typed(Backend.BackendKeyData, Buffer.concat([int32(processId), int32(secretKey)]));
}

/** ReadyForQuery. */
export function encodeReadyForQuery(status: TransactionStatus): Buffer {
  return typed(Backend.ReadyForQuery, Buffer.from(status, 'latin1'));
}

/**
 * NegotiateProtocolVersion: we speak 3.0 and recognise no `_pq_.` options.
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-NEGOTIATEPROTOCOLVERSION
 */
export function encodeNegotiateProtocolVersion(unrecognised: readonly string[]): Buffer {
  return typed(
    Backend.NegotiateProtocolVersion,
    Buffer.concat([int32(0), int32(unrecognised.length), ...unrecognised.map(cstr)]),
  );
}

/** Simple Query. */
export function encodeQuery(sql: string): Buffer {
  return typed(Frontend.Query, cstr(sql));
}

/** Parse of `sql` into statement `name`, no parameter types. */
export function encodeParse(name: string, sql: string): Buffer {
  return typed(Frontend.Parse, Buffer.concat([cstr(name), cstr(sql), Buffer.from([0, 0])]));
}

/** Parse into statement `name` of `body` as a client sent it (SQL text, parameter types). */
export function encodeParseBody(name: string, body: Buffer): Buffer {
  return typed(Frontend.Parse, Buffer.concat([cstr(name), body]));
}

/** Bind of portal `portal` to statement `statement`; `rest` = the parameters and formats as sent. */
export function encodeBind(portal: string, statement: string, rest: Buffer): Buffer {
  return typed(Frontend.Bind, Buffer.concat([cstr(portal), cstr(statement), rest]));
}

/** Describe ('S'tatement or 'P'ortal). */
export function encodeDescribe(which: 'S' | 'P', name: string): Buffer {
  return typed(Frontend.Describe, Buffer.concat([Buffer.from(which, 'latin1'), cstr(name)]));
}

/** Close ('S'tatement or 'P'ortal). */
export function encodeClose(which: 'S' | 'P', name: string): Buffer {
  return typed(Frontend.Close, Buffer.concat([Buffer.from(which, 'latin1'), cstr(name)]));
}

/** ParameterStatus. */
export function encodeParameterStatus(name: string, value: string): Buffer {
  return typed(Backend.ParameterStatus, Buffer.concat([cstr(name), cstr(value)]));
}

/** Sync. */
export function encodeSync(): Buffer {
  return typed(Frontend.Sync);
}

/** Terminate. */
export function encodeTerminate(): Buffer {
  return typed(Frontend.Terminate);
}

/** PasswordMessage / SASLResponse: `p` + raw payload (a C string for passwords). */
export function encodePasswordMessage(payload: Buffer): Buffer {
  return typed(Frontend.Password, payload);
}

/** SASLInitialResponse: mechanism name, int32 length, data. */
export function encodeSASLInitialResponse(mechanism: string, data: Buffer): Buffer {
  return typed(Frontend.Password, Buffer.concat([cstr(mechanism), int32(data.length), data]));
}

/** StartupMessage for protocol 3.0 with the given parameters. */
export function encodeStartupMessage(params: Readonly<Record<string, string>>): Buffer {
  const parts: Buffer[] = [int32(StartupCode.Protocol3)];
  for (const [k, v] of Object.entries(params)) parts.push(cstr(k), cstr(v));
  parts.push(Buffer.from([0]));
  const body = Buffer.concat(parts);
  return Buffer.concat([int32(body.length + 4), body]);
}

/** SSLRequest (untyped, 8 bytes). */
export function encodeSSLRequest(): Buffer {
  return Buffer.concat([int32(8), int32(StartupCode.SSLRequest)]);
}

/** CancelRequest (untyped, 16 bytes). */
export function encodeCancelRequest(processId: number, secretKey: number): Buffer {
  return Buffer.concat([int32(16), int32(StartupCode.CancelRequest), int32(processId), int32(secretKey)]);
}

// ───────────────────────────── decoders ─────────────────────────────

/** Thrown by decoders on malformed input; the session answers 08P01 and closes. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly sqlstate: string;
  /** Severity of the ErrorResponse that ends the start-up (see GateRefusal.severity). */
  readonly severity: 'ERROR' | 'FATAL';
  constructor(message: string, sqlstate: string = SqlState.ProtocolViolation, severity: 'ERROR' | 'FATAL' = 'FATAL') {
    super(message);
    this.sqlstate = sqlstate;
    this.severity = severity;
  }
}

/**
 * Reads a NUL-terminated UTF-8 string starting at `start`, not beyond `end`.
 * Returns the string and the offset after the NUL.
 */
export function readCString(buf: Buffer, start: number, end: number): [string, number] {
  const nul = buf.indexOf(0, start);
  if (nul < 0 || nul >= end) throw new ProtocolError('unterminated string in message');
  return [buf.toString('utf8', start, nul), nul + 1];
}

/** The fields of an ErrorResponse/NoticeResponse the proxy cares about. */
export interface ErrorFields {
  /** Non-localized severity (V) when present, else S. */
  severity: string;
  code: string;
  message: string;
}

/** Parses the fields of an ErrorResponse whose whole message is `buf[start, end)` (header included). */
export function parseErrorFields(buf: Buffer, start: number, end: number): ErrorFields {
  let i = start + 5;
  let severity = '';
  let localized = '';
  let code = '';
  let message = '';
  while (i < end && buf[i] !== 0) {
    const field = buf[i]!;
    const [value, next] = readCString(buf, i + 1, end);
    if (field === 0x56 /* V */) severity = value;
    else if (field === 0x53 /* S */) localized = value;
    else if (field === 0x43 /* C */) code = value;
    else if (field === 0x4d /* M */) message = value;
    i = next;
  }
  return { severity: severity || localized, code, message };
}

/** Rows count from a CommandComplete tag (`SELECT 5`, `INSERT 0 5`, `UPDATE 3`, …), if it has one. */
export function commandRows(tag: string): number | undefined {
  const m = /(?:^| )(\d+)$/.exec(tag);
  return m && /^(SELECT|INSERT|UPDATE|DELETE|MERGE|FETCH|MOVE|COPY)\b/.test(tag) ? Number(m[1]) : undefined;
}

/**
 * Name and value of a ParameterStatus message whose whole message is `buf[start, end)`.
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PARAMETERSTATUS
 */
export function parseParameterStatus(buf: Buffer, start: number, end: number): { name: string; value: string } {
  const [name, afterName] = readCString(buf, start + 5, end);
  const [value] = readCString(buf, afterName, end);
  return { name, value };
}

/**
 * Whether a reported setting value is the pinned one: case-insensitive, and for encodings the
 * spelling variants Postgres accepts (`UTF8`, `utf-8`, `UNICODE`).
 *
 * @example
 * sameSetting('client_encoding', 'UTF8', 'unicode') // true
 */
export function sameSetting(name: string, reported: string, pinned: string): boolean {
  const norm = (v: string): string => {
    const x = v.trim().toLowerCase();
    if (name !== 'client_encoding' && name !== 'server_encoding') return x;
    const e = x.replace(/[^a-z0-9]/g, '');
    return e === 'unicode' ? 'utf8' : e;
  };
  return norm(reported) === norm(pinned);
}
