import type { ConnectionOptions } from 'node:tls';

/**
 * The contract between the wire-protocol engine and whatever decides (token verification, SQL
 * classification, audit). The engine knows nothing about tokens; the gate knows nothing about
 * framing.
 */

/** Where and as whom the proxy connects upstream — the proxy's own credentials, never the client's. */
export interface UpstreamTarget {
  host: string;
  port: number;
  user: string;
  /** For cleartext, md5 or SCRAM-SHA-256; omit for trust. */
  password?: string;
  database: string;
  /** TLS to the upstream (SSLRequest first); `false`/absent = plain TCP. */
  ssl?: false | ConnectionOptions;
  /**
   * Session settings the PROXY pins at start-up (sent after, so overriding, the client's whitelisted
   * parameters), e.g. the search_path and string-literal rules the SQL classifier assumes.
   */
  parameters?: Readonly<Record<string, string>>;
}

/** What the gate learns at connect time. `password` is the Baton token: never log it. */
export interface AuthenticateRequest {
  /** `user` from the StartupMessage (informational; the upstream user comes from the gate). */
  user: string;
  /** `database` from the StartupMessage (defaults to `user`, as in Postgres). */
  database: string;
  password: string;
  /** `application_name` from the StartupMessage, if any (sanitized to printable ASCII). */
  applicationName?: string;
  remoteAddress: string;
  tls: boolean;
}

/** A refusal. `message` is sanitized (printable ASCII) before it reaches the client. */
export interface GateRefusal {
  ok: false;
  /** SQLSTATE, e.g. 28P01 (bad token) or 28000. */
  sqlstate: string;
  message: string;
  /**
   * Severity of the ErrorResponse that refuses the connection; default FATAL. Either way the
   * connection attempt fails (the protocol closes it after any ErrorResponse during start-up).
   */
  severity?: 'ERROR' | 'FATAL';
}

export type AuthenticateResult = { ok: true; session: GateSession } | GateRefusal;

/** What the relay knows of the session when it asks. */
export interface CheckContext {
  /**
   * True only when the session is certainly inside an explicit transaction block: the last
   * ReadyForQuery said so and no statement that may end the block is still unanswered. A write
   * then commits only with the block's COMMIT, which the relay holds until every entry is durable.
   */
  inTransactionBlock: boolean;
  /** Execute: the Bind message's parameter section (raw bytes): an approval binds the exact values. */
  parameters?: Uint8Array;
}

/**
 * How the relay treats the values of one result column: pass them (`undefined`), replace each by a
 * policy method's output (`apply`; null = SQL NULL), or run the value detectors (`scan`: the masked
 * text, or undefined when nothing matched).
 */
export type ColumnMask =
  | undefined
  | {
      readonly kind: 'method';
      readonly apply: (value: string) => string | null;
      readonly bytes?: ByteMask;
      /** Mask the value whole even if it is JSON (it is computed from a masked column: its shape reveals too). */
      readonly whole?: true;
    }
  | { readonly kind: 'detect'; readonly scan: (value: string) => string | undefined };

/**
 * A method applied to raw UTF-8 bytes without decoding them (the hot path: most values are ASCII).
 * `length` is the output's byte length, -1 for NULL, or -2 when the bytes need the string path.
 */
export interface ByteMask {
  length(src: Buffer, start: number, end: number): number;
  /** Writes the output (of `length` bytes) at `at`. */
  write(src: Buffer, start: number, end: number, out: Buffer, at: number): void;
}

/** What to mask in one statement's result rows. */
export interface ResultMask {
  /** Per output column, in order. */
  readonly columns?: readonly ColumnMask[];
  /**
   * For every column when `columns` is absent or the row's width differs from it (the relation
   * changed since the snapshot): the strictest treatment any column could need.
   */
  readonly every: ColumnMask;
}

/** Which protocol message carried the SQL being checked. */
export type CheckPhase = 'query' | 'parse' | 'execute';

export type CheckResult =
  | {
      allow: true;
      ticket?: unknown;
      /**
       * Present when the statement may run while its audit entry is still in flight (DESIGN.md rule 6):
       * the relay forwards it at once and HOLDS everything the upstream answers to it until this
       * resolves; a rejection drops what it held and fails the statement with 57P03. Absent: the entry
       * is durable already, and the relay first waits for every entry still in flight.
       */
      durable?: Promise<void>;
      /**
       * With `durable`: false when the answers reveal nothing and need not wait (BEGIN, a row write
       * inside a block without RETURNING — nothing of it is visible to anyone before COMMIT, which
       * waits). Default true: everything the upstream answers is held.
       */
      holdAnswers?: boolean;
      /** The statement may begin or end a transaction block (or its effect on one is unknown). */
      txControl?: boolean;
      /**
       * Masking of the result rows, one entry per statement of the checked SQL (undefined = nothing
       * to mask in that statement's rows). Absent: no masking at all (the relay does not look at rows).
       */
      mask?: readonly (ResultMask | undefined)[];
      /**
       * The statement reads masked columns: PostgreSQL may echo their values in an error or notice
       * (`invalid input syntax for type integer: "4000 …"`, `Key (email)=(…) already exists`), so
       * the relay passes the text fields of its ErrorResponse/NoticeResponse through this.
       */
      scrubErrors?: (text: string) => string;
      /** A NOTICE the client gets before the statement's answers (e.g. which approval it runs under). */
      notice?: string;
    }
  | {
      allow: false;
      /** SQLSTATE sent to the client, e.g. 42501. */
      sqlstate: string;
      /** Sanitized to printable ASCII before it is sent. */
      message: string;
      /** End the session after this error (e.g. the token was revoked or expired). */
      fatal?: boolean;
    };

/** How an allowed statement ended upstream, for the audit. */
export interface StatementOutcome {
  /**
   * `ok`: completed (tag of the last CommandComplete if any); `error`: the upstream answered an
   * ErrorResponse (`sqlstate`); `skipped`: never ran because an earlier message of the same
   * extended-protocol batch failed; `unknown`: the session ended before the upstream answered (the
   * statement may or may not have run; the proxy sent a CancelRequest).
   */
  status: 'ok' | 'error' | 'skipped' | 'unknown';
  tag?: string;
  rows?: number;
  sqlstate?: string;
  /** Values the relay masked in what it delivered. */
  maskedValues?: number;
}

/**
 * Decides who may connect.
 *
 * @example
 * const gate: SessionGate = {
 *   async authenticate({ password }) {
 *     if (password !== 'good') return { ok: false, sqlstate: '28P01', message: 'token rejected' };
 *     return { ok: true, session: { upstream, check: () => ({ allow: true }) } };
 *   },
 * };
 */
export interface SessionGate {
  /** At connect, after the client sent its password (= the Baton token). */
  authenticate(req: AuthenticateRequest): Promise<AuthenticateResult>;
}

/** Per-connection decisions; created by `authenticate`. */
export interface GateSession {
  /** Where to connect; the proxy's own credentials. */
  upstream: UpstreamTarget;
  /**
   * Sessions sharing this key count against one per-token cap (`limits.maxSessionsPerToken`),
   * e.g. the token lineage's authority token id. Absent: no per-token cap.
   */
  readonly limitKey?: string;
  /**
   * Called for every simple Query (the whole string, which may hold several statements), every Parse
   * (its SQL) and every Execute (the SQL of the portal's statement). Calls are serial per session, in
   * message order. May return synchronously (the fast path for cached decisions). A throw or a
   * rejected promise is a denial (fail closed).
   */
  check(sql: string, phase: CheckPhase, context?: CheckContext): CheckResult | Promise<CheckResult>;
  /** Outcome of an allowed statement that carried a ticket, once the upstream answered. */
  outcome?(ticket: unknown, outcome: StatementOutcome): void;
  /** The client session ended (any reason). */
  close?(): void;
  /**
   * Called once the session runs, with a handle to end it from outside (an administrator ending a
   * revoked session that sits idle: src/proxy/admin/session-registry.ts).
   */
  attach?(control: SessionControl): void;
}

/** Ends a running session: the client gets a FATAL ErrorResponse and the connection closes. */
export interface SessionControl {
  end(sqlstate: string, message: string): void;
}
