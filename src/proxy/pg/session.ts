import type { Socket } from 'node:net';
import { MessageFramer } from './framer.ts';
import type { CheckPhase, CheckResult, GateSession, ResultMask, StatementOutcome, UpstreamTarget } from './gate.ts';
import { HeldOutput, HoldState } from './held-output.ts';
import type { ProxyLogger } from './log.ts';
import {
  Backend,
  Frontend,
  ProtocolError,
  SqlState,
  commandRows,
  encodeBind,
  encodeClose,
  encodeDescribe,
  encodeError,
  encodeNotice,
  encodeParse,
  encodeParseBody,
  encodeQuery,
  encodeSync,
  encodeTerminate,
  parseErrorFields,
  parseParameterStatus,
  readCString,
  sameSetting,
  sanitizeText,
} from './protocol.ts';
import { sendCancel, type UpstreamConnection } from './upstream.ts';
import { bindResultFormats, ResultMasker, scrubErrorMessage } from './result-mask.ts';
import type { PooledConnection } from './upstream-pool.ts';

/**
 * The relay after authentication: one client socket, one upstream connection — its own, or with
 * `proxy.pooling: transaction` one borrowed per transaction from a pool (see "pooling" below and
 * docs/pooling.md).
 *
 * Client → upstream: messages are framed, processed strictly in order, and gated (Query, Parse,
 * Execute). A gate decision may be asynchronous; later messages wait (in order) but everything
 * already decided is flushed first, so pipelining never adds a round trip.
 *
 * Denial keeps Postgres semantics by letting the upstream fail in our place: the denied message is
 * replaced by a "marker" the upstream rejects as a syntax error (a Query of `BATON_DENY_<n>`, or a
 * Parse of it — under the client's statement name for a denied Parse, under a throw-away name for a
 * denied Execute). The upstream then does exactly what it does for any error — aborts the
 * transaction block, skips to Sync, reports the right ReadyForQuery status — and the relay replaces
 * the marker's ErrorResponse with the gate's.
 *
 * Upstream → client: bytes are relayed as received (no copy); only the message headers are read to
 * follow the expectation queue, and only ErrorResponse, ReadyForQuery and (when needed)
 * CommandComplete bodies are looked at.
 */

/** Kinds of client messages that produce a server response, in the order the server answers them. */
const Kind = { Query: 0, Parse: 1, Bind: 2, Describe: 3, Execute: 4, Close: 5, Sync: 6 } as const;
type Kind = (typeof Kind)[keyof typeof Kind];

/** A prepared statement or portal as far as we know it. `sql` undefined = unknown (fail closed). */
interface Entry {
  sql: string | undefined;
  /** The upstream confirmed it (ParseComplete / BindComplete). */
  confirmed: boolean;
  /** What the gate masks in its result (decided at Parse; a portal inherits its statement's). */
  mask?: readonly (ResultMask | undefined)[];
  /** Portal: the Bind's result-column format codes (read only when its statement masks something). */
  formats?: readonly number[];
  /** Portal: the Bind's parameter section (an approval binds the exact values). */
  parameters?: Buffer;
  /** Pooled statement: the Parse body as sent (SQL, parameter types), to prepare it on another connection. */
  body?: Buffer;
  /** Pooled named statement: its name upstream (a keyed hash of `body`); unnamed: undefined. */
  upstreamName?: string;
}

/** Result messages a masker rewrites or follows. */
function maskable(type: number): boolean {
  return (
    type === Backend.DataRow ||
    type === Backend.RowDescription ||
    type === Backend.CommandComplete ||
    type === Backend.CopyData ||
    type === Backend.CopyOutResponse ||
    type === Backend.EmptyQueryResponse
  );
}

interface Denial {
  error: Buffer;
  fatal: boolean;
  marker: string;
}

/** One response the upstream owes us, with what to do when it arrives (or never does). */
class Expectation {
  /** Speculative change to `statements`/`portals`: undone if the message fails or is skipped. */
  map: Map<string, Entry> | undefined;
  name = '';
  prev: Entry | undefined;
  entry: Entry | undefined;
  /** For Query: last CommandComplete tag / first error seen before ReadyForQuery. */
  tag: string | undefined;
  sqlstate: string | undefined;
  /** The outcome went to the gate already. */
  reported = false;
  /** Whether the upstream's answers to it may reach the client (see held-output.ts). */
  hold: HoldState = HoldState.Released;
  /** Its audit entry failed and the 57P03 error is already in the client's stream. */
  errorPlaced = false;
  /** Decided while the session was certainly inside an explicit transaction block. */
  inTransactionBlock = false;
  /** May begin or end a transaction block. */
  txControl = false;
  /** Syncs forwarded before it (to tell whether its extended-protocol pipeline has ended). */
  syncsBefore = 0;
  /** Rewrites its result messages (only when the gate masks something in them). */
  masker: ResultMasker | undefined;
  /** Scrubs values out of its errors and notices (it reads masked columns). */
  scrubErrors: ((text: string) => string) | undefined;
  /** A NoticeResponse of the gate's, sent ahead of its first answer. */
  notice: Buffer | undefined;
  /** Sent by the relay itself (pooling: reset, re-prepare, evict): its answers never reach the client. */
  hidden = false;
  /** Undoes what sending it assumed about the pooled connection, if it fails or is skipped. */
  onFail: (() => void) | undefined;

  constructor(
    readonly kind: Kind,
    readonly ticket: unknown = undefined,
    readonly deny: Denial | undefined = undefined,
  ) {}
}

type Outcome = StatementOutcome['status'];

/** The refusal of every statement of a poisoned transaction block (an audit entry of it failed). */
const POISONED: CheckResult = {
  allow: false,
  sqlstate: SqlState.CannotConnectNow,
  message: 'baton: an audit entry of this transaction failed; the transaction is aborted (nothing of it was committed)',
};

/** Where an upstream message goes: to the client now, into the held output, or nowhere. */
const Route = { Direct: 0, Hold: 1, Drop: 2 } as const;
type Route = (typeof Route)[keyof typeof Route];

/** Limits the relay enforces. */
export interface SessionLimits {
  /** Largest client message (type byte + length), e.g. 64 MiB. */
  maxMessageBytes: number;
  /** Most prepared statements tracked per session. */
  maxPreparedStatements: number;
  /** Largest SQL text of a Query/Parse (bytes); larger → ERROR 54000, the session continues. */
  maxStatementBytes?: number;
  /** No traffic either way for this long (and nothing outstanding) → FATAL 57P05; 0/absent = never. */
  idleSessionTimeoutMs?: number;
  /**
   * Bytes of held results (answers to statements whose audit entry is in flight) after which the
   * relay stops reading the upstream socket until they are released. Default 1 MiB.
   */
  maxHeldBytes?: number;
  /**
   * Settings whose upstream ParameterStatus must keep these values (the classifier's assumptions);
   * a change ends the session with FATAL 55000 before anything else is relayed.
   */
  watchedSettings?: ReadonlyMap<string, string>;
}

/**
 * `proxy.pooling: transaction`: how a session borrows upstream connections (server.ts makes one per
 * session; the session is the pool's "owner" through it).
 */
export interface PooledLink {
  /** A connection at ReadyForQuery 'I' (its last owner tells whether it needs a reset). */
  acquire(): Promise<PooledConnection>;
  /** Gives it back (closed instead when `reusable` is false). */
  release(c: PooledConnection): void;
  /** The upstream name of a named statement with this Parse body (a keyed hash: not guessable). */
  statementName(body: Buffer): string;
  /** Protocol-level statements kept prepared per upstream connection; the least recently used are closed beyond it. */
  readonly maxStatementsPerConnection: number;
  /** A session quiet this long inside a transaction, holding a connection, is ended (0 = never). */
  readonly idleInTransactionMs: number;
}

/** Sent to a pooled connection before a different session uses it: nothing of the last one's session survives. */
const POOL_RESET = encodeQuery('DISCARD ALL');

/**
 * One proxied session. Create after the upstream is authenticated, then `start()`.
 *
 * @example
 * const s = new RelaySession(client, up, gateSession, limits, logger, () => registry.delete(pid));
 * s.start(reader.detach());
 */
export class RelaySession {
  private readonly framer: MessageFramer;
  /** The upstream connection; undefined while a pooled session holds none. */
  private upstream: Socket | undefined;
  private up: UpstreamConnection | undefined;
  /** The pooled connection held now (pooling only). */
  private lease: PooledConnection | undefined;
  /**
   * Pooling: nothing has been sent to the upstream since it said ReadyForQuery 'I' with nothing
   * outstanding — the only point at which its connection may go to another session.
   */
  private upstreamIdle = false;
  /**
   * Pooling: upstream statements this session bound since the upstream was last idle. Never evicted
   * to make room: closing a statement closes the portals made from it (PostgreSQL), mid-transaction.
   */
  private readonly boundSinceIdle = new Set<string>();
  /** Pooling: ends a session that holds a connection in an idle transaction (see PooledLink). */
  private holdTimer: NodeJS.Timeout | undefined;
  private readonly target: UpstreamTarget;
  private readonly statements = new Map<string, Entry>();
  private readonly portals = new Map<string, Entry>();

  private queue: Expectation[] = [];
  private qHead = 0;
  /** The upstream reported an extended-protocol error and no Sync has been sent since. */
  private skipUntilSync = false;

  // client → upstream output batch (runs of consecutive passed-through bytes are merged)
  private out: Buffer[] = [];
  private runBuf: Buffer | undefined;
  private runStart = 0;
  private runEnd = 0;

  /** Waiting for an asynchronous gate decision. */
  private busy = false;
  /** No more client messages are processed (fatal denial, Terminate). */
  private stopped = false;
  private clientPaused = false;
  private closed = false;

  // upstream → client framing state
  private upSkip = 0;
  private upCarry: Buffer[] | undefined;
  private upCarryBytes = 0;
  private upCarryNeed = 0;
  /** The upstream sent a FATAL error itself; it is relayed and no 08006 follows. */
  private upstreamFatal = false;
  /** A FATAL to send once the responses before it have been relayed. */
  private fatalPending: Buffer | undefined;

  private seq = 0;
  private readonly throwawayPrefix: string;
  private readonly maxStatementBytes: number;
  /** Last time bytes moved either way (ms, Date.now()); read by the idle timer only. */
  private lastActivity = Date.now();
  private idleTimer: NodeJS.Timeout | undefined;

  // audit overlap (DESIGN.md rule 6): answers held until their entry is durable
  private readonly held = new HeldOutput();
  private readonly maxHeldBytes: number;
  /** Statements forwarded while their entry is in flight, until it settles. */
  private readonly pendingHolds = new Set<Expectation>();
  /** Transaction status of the last ReadyForQuery ('I', 'T', 'E'). */
  private txStatus = 0x49;
  /** Queued statements that may begin or end a transaction block. */
  private txControlQueued = 0;
  private syncs = 0;
  /** An entry of the open transaction block failed: deny everything until the upstream block is aborted. */
  private poisoned = false;
  /** Extended protocol: an audited statement ran (durable first) since the last Sync. */
  private wroteSinceSync = false;
  /** Extended protocol: an entry failed before this pipeline's Sync: skip client messages to Sync, abort it there. */
  private failedBeforeSync = false;
  /** Drop upstream messages until the next ReadyForQuery (the client saw an error and skips to Sync). */
  private dropUntilReady = false;
  // where the continuation of a message split across upstream chunks goes
  private skipRoute: Route = Route.Direct;
  private skipOwner: Expectation | undefined;

  constructor(
    private readonly client: Socket,
    up: UpstreamConnection | PooledConnection,
    private readonly gate: GateSession,
    private readonly limits: SessionLimits,
    private readonly log: ProxyLogger,
    private readonly onClose: () => void,
    /** Pooling (`up` is then the connection the start-up borrowed). */
    private readonly pooled?: PooledLink,
  ) {
    if ('conn' in up) {
      this.lease = up;
      this.up = up.conn;
      this.upstreamIdle = true;
    } else {
      this.up = up;
    }
    this.upstream = this.up.socket;
    this.target = gate.upstream;
    this.framer = new MessageFramer(limits.maxMessageBytes);
    this.throwawayPrefix = `baton_deny_${process.hrtime.bigint().toString(36)}_`;
    this.maxStatementBytes = limits.maxStatementBytes ?? Number.MAX_SAFE_INTEGER;
    this.maxHeldBytes = limits.maxHeldBytes ?? 1024 * 1024;
  }

  /** Attaches to both sockets and processes bytes already received. */
  start(clientRest: Buffer): void {
    this.client.on('data', this.onClientData);
    this.client.on('error', this.onSocketError);
    this.client.on('close', this.onClientClose);
    this.client.on('drain', this.onClientDrain);
    this.listenUpstream(this.upstream!);
    this.client.setNoDelay?.(true);
    // Paused by the server while authenticating, so nothing piled up unread meanwhile.
    this.client.resume();
    if (!this.lease && this.up!.rest.length) this.onUpstreamData(this.up!.rest); // a pooled connection has none (upstream-pool.ts)
    if (clientRest.length) this.onClientData(clientRest);
    const idle = this.limits.idleSessionTimeoutMs ?? 0;
    if (idle > 0 && !this.closed) this.idleTimer = setTimeout(this.onIdleTimer, idle);
    if (this.lease) this.armHoldTimer();
    this.maybeDetach();
  }

  private listenUpstream(socket: Socket): void {
    socket.on('data', this.onUpstreamData);
    socket.on('error', this.onSocketError);
    socket.on('close', this.onUpstreamClose);
    socket.on('drain', this.onUpstreamDrain);
    socket.setNoDelay(true);
    socket.resume();
  }

  private unlistenUpstream(socket: Socket): void {
    socket.off('data', this.onUpstreamData);
    socket.off('error', this.onSocketError);
    socket.off('close', this.onUpstreamClose);
    socket.off('drain', this.onUpstreamDrain);
    // nothing it sends from here is lost unseen: the pool (or the next session) reads it
    socket.pause();
  }

  // ───────────────────────────── pooling ─────────────────────────────

  /**
   * Borrows a connection for the next transaction. A connection another session used last is reset
   * first (DISCARD ALL, pipelined ahead of the client's message): the second lock behind the gate's
   * refusal of statements that leave session state — whatever the classifier missed does not cross
   * to another session.
   */
  private attach(): Promise<void> {
    return this.pooled!.acquire().then((lease) => {
      if (this.closed) {
        this.pooled!.release(lease);
        return;
      }
      this.lease = lease;
      this.up = lease.conn;
      this.upstream = lease.conn.socket;
      this.listenUpstream(this.upstream);
      this.txStatus = 0x49;
      this.upstreamIdle = true;
      this.armHoldTimer();
      if (lease.lastOwner !== undefined && lease.lastOwner !== this.pooled) {
        lease.statements.clear();
        lease.unnamed = undefined;
        const reset = new Expectation(Kind.Query);
        reset.hidden = true;
        this.enqueue(reset);
        this.push(POOL_RESET);
      }
    });
  }

  /** Gives the connection back once the upstream is idle and nothing of this session is outstanding. */
  private maybeDetach(): void {
    if (!this.pooled || this.lease === undefined || this.closed || this.stopped || this.busy || !this.upstreamIdle) return;
    if (this.txStatus !== 0x49 || this.qHead < this.queue.length || this.pendingHolds.size > 0 || this.held.active) return;
    if (this.out.length > 0 || this.runBuf !== undefined || this.upSkip > 0 || this.upCarry !== undefined) return;
    if (this.poisoned || this.failedBeforeSync || this.dropUntilReady || this.fatalPending !== undefined) return;
    const lease = this.lease;
    this.unlistenUpstream(lease.conn.socket);
    this.disarmHoldTimer();
    this.lease = undefined;
    this.up = undefined;
    this.upstream = undefined;
    this.pooled.release(lease);
  }

  /**
   * A session that opens a transaction and goes quiet keeps a shared connection from everyone else:
   * past `idleInTransactionMs` without traffic (nothing outstanding) it is ended with FATAL 25P03 and
   * the upstream transaction rolled back with the connection. The hot path only stores a timestamp.
   */
  private armHoldTimer(): void {
    const limit = this.pooled!.idleInTransactionMs;
    if (limit > 0 && this.holdTimer === undefined) this.holdTimer = setTimeout(this.onHoldTimer, limit);
  }

  private disarmHoldTimer(): void {
    if (this.holdTimer !== undefined) clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
  }

  private readonly onHoldTimer = (): void => {
    this.holdTimer = undefined;
    if (this.closed || this.lease === undefined) return;
    const limit = this.pooled!.idleInTransactionMs;
    const quietFor = Date.now() - this.lastActivity;
    if (quietFor >= limit && !this.busy && this.qHead >= this.queue.length && this.txStatus !== 0x49) {
      this.log.info({ event: 'pg.pool.idle_in_transaction', idleMs: quietFor }, 'session idle in a transaction on a pooled connection ended');
      this.terminate(
        encodeError('FATAL', SqlState.IdleInTransactionTimeout, `terminating connection: idle in a transaction for ${quietFor} ms while holding a shared upstream connection (limit proxy.pool.idleInTransactionTimeoutMs = ${limit})`),
      );
      return;
    }
    this.holdTimer = setTimeout(this.onHoldTimer, Math.max(limit - quietFor, 100));
  };

  /**
   * Pooled Parse: a named statement goes upstream under the keyed hash of its body (equal text from
   * any session is one upstream statement; a client's names never reach the upstream), replacing a
   * copy the connection may hold; the unnamed one as is.
   */
  private forwardParse(e: Expectation, entry: Entry | undefined, name: string, body: Buffer): void {
    const lease = this.lease!;
    const copy = Buffer.from(body);
    if (entry) entry.body = copy;
    if (name === '') {
      if (entry) {
        lease.unnamed = { owner: this.pooled!, entry };
        e.onFail = () => {
          if (lease.unnamed?.entry === entry) lease.unnamed = undefined;
        };
      }
      this.enqueue(e);
      this.push(encodeParseBody('', copy));
      return;
    }
    const upstreamName = this.pooled!.statementName(copy);
    if (entry) entry.upstreamName = upstreamName;
    if (lease.statements.has(upstreamName)) this.hiddenClose(upstreamName);
    this.makeRoom(lease);
    lease.statements.set(upstreamName, true);
    e.onFail = () => lease.statements.delete(upstreamName);
    this.enqueue(e);
    this.push(encodeParseBody(upstreamName, copy));
  }

  /** Pooled Bind/Describe of a statement: prepared on this connection first if it is not there. */
  private ensurePrepared(entry: Entry): string {
    const lease = this.lease!;
    const body = entry.body!;
    const name = entry.upstreamName;
    if (name === undefined) {
      if (lease.unnamed !== undefined && lease.unnamed.owner === this.pooled && lease.unnamed.entry === entry) return '';
      lease.unnamed = { owner: this.pooled!, entry };
      this.hiddenParse('', body, () => {
        if (lease.unnamed?.entry === entry) lease.unnamed = undefined;
      });
      return '';
    }
    this.boundSinceIdle.add(name);
    if (lease.statements.delete(name)) {
      lease.statements.set(name, true); // most recently used
      return name;
    }
    this.makeRoom(lease);
    lease.statements.set(name, true);
    this.hiddenParse(name, body, () => lease.statements.delete(name));
    return name;
  }

  private hiddenParse(name: string, body: Buffer, onFail: () => void): void {
    const e = new Expectation(Kind.Parse);
    e.hidden = true;
    e.onFail = onFail;
    this.enqueue(e);
    this.push(encodeParseBody(name, body));
  }

  private hiddenClose(name: string): void {
    const e = new Expectation(Kind.Close);
    e.hidden = true;
    this.enqueue(e);
    this.push(encodeClose('S', name));
  }

  /** Keeps a connection's prepared statements within the limit (least recently used closed first). */
  private makeRoom(lease: PooledConnection): void {
    let excess = lease.statements.size - this.pooled!.maxStatementsPerConnection + 1;
    if (excess <= 0) return;
    for (const name of [...lease.statements.keys()]) {
      if (excess <= 0) break;
      if (this.boundSinceIdle.has(name)) continue; // in use by an open portal: the limit waits
      lease.statements.delete(name);
      this.hiddenClose(name);
      excess--;
    }
  }

  /**
   * Pooled Close of a statement: its upstream copy goes too (another session's later use prepares it
   * again). A name this session never prepared closes a name that cannot exist upstream (no error,
   * as in PostgreSQL), never another session's statement.
   */
  private closeUpstream(entry: Entry | undefined): string {
    const lease = this.lease!;
    if (entry?.body === undefined) return `${this.throwawayPrefix}closed`;
    if (entry.upstreamName === undefined) {
      if (lease.unnamed?.entry === entry) lease.unnamed = undefined;
      return lease.unnamed === undefined ? '' : `${this.throwawayPrefix}closed`;
    }
    lease.statements.delete(entry.upstreamName);
    return entry.upstreamName;
  }

  /** A pooled client names a statement it never prepared (or whose Parse failed): refused here, as PostgreSQL would. */
  private unknownStatement(name: string, buf: Buffer, start: number, end: number): void {
    const what = name === '' ? 'unnamed prepared statement does not exist' : `prepared statement "${name}" does not exist`;
    this.decided({ allow: false, sqlstate: SqlState.InvalidSqlStatementName, message: what }, Kind.Bind, '', buf, start, end);
  }

  /**
   * Idle-session timeout: one timer per session, re-armed from the last activity when it fires (the
   * hot path only stores a timestamp). A session waiting for the upstream or the gate is not idle.
   */
  private readonly onIdleTimer = (): void => {
    if (this.closed) return;
    const idle = this.limits.idleSessionTimeoutMs!;
    const quietFor = Date.now() - this.lastActivity;
    if (quietFor >= idle && !this.busy && this.qHead >= this.queue.length) {
      this.log.info({ event: 'pg.session.idle_timeout', idleMs: quietFor }, 'idle session ended');
      this.terminate(encodeError('FATAL', SqlState.IdleSessionTimeout, `terminating connection due to idle-session timeout (limit proxy.limits.idleSessionTimeoutMs = ${idle})`));
      return;
    }
    this.idleTimer = setTimeout(this.onIdleTimer, Math.max(idle - quietFor, 1_000));
  };

  /** Cancels the running upstream statement (the client's CancelRequest, mapped to the real key). */
  cancel(): void {
    if (!this.up) return; // pooled and between transactions: nothing runs
    // a pooled connection the signal may reach late is never handed to another session
    if (this.lease) this.lease.reusable = false;
    sendCancel(this.target, this.up.processId, this.up.secretKey);
  }

  /** Ends the session with a FATAL error to the client (e.g. proxy shutdown). */
  shutdown(sqlstate: string, message: string): void {
    this.terminate(encodeError('FATAL', sqlstate, message));
  }

  // ───────────────────────────── client → upstream ─────────────────────────────

  private readonly onClientData = (chunk: Buffer): void => {
    if (this.stopped) return;
    this.lastActivity = Date.now();
    this.framer.push(chunk);
    if (!this.busy) this.pump();
  };

  /** Processes framed client messages until one needs an asynchronous decision or bytes run out. */
  private pump(): void {
    const f = this.framer;
    try {
      while (!this.stopped) {
        const type = f.next();
        if (type < 0) break;
        const pending = this.upstream === undefined && type !== Frontend.Terminate ? this.attachFor(type, f.buf, f.start, f.end) : this.handleClient(type, f.buf, f.start, f.end);
        if (pending) {
          this.busy = true;
          this.flushUpstream();
          this.updateClientFlow();
          pending.then(
            () => {
              this.busy = false;
              if (this.closed) return;
              this.updateClientFlow();
              this.pump();
            },
            (err: unknown) => this.protocolFailure(err),
          );
          return;
        }
      }
    } catch (err) {
      this.protocolFailure(err);
      return;
    }
    this.flushUpstream();
    this.maybeDetach();
  }

  /** Pooling: a message arrived between transactions; it is handled once a connection is borrowed. */
  private attachFor(type: number, buf: Buffer, start: number, end: number): Promise<void> {
    return this.attach().then(
      () => (this.closed ? undefined : this.handleClient(type, buf, start, end)),
      (err: unknown) => {
        // like pgbouncer's query_wait_timeout: the client is told why and disconnected
        const e = err as { sqlstate?: string; message?: string };
        this.log.warn({ event: 'pg.pool.acquire_failed', err: String(e?.message ?? err) }, 'no upstream connection for the session');
        this.terminate(encodeError('FATAL', e?.sqlstate ?? SqlState.ConnectionFailure, e?.message ?? 'upstream connection failed'));
      },
    );
  }

  private handleClient(type: number, buf: Buffer, start: number, end: number): Promise<void> | undefined {
    const body = start + 5;
    // An audit entry of this pipeline failed and the client was told: like the server after an
    // error, skip everything up to the Sync.
    if (this.failedBeforeSync && type !== Frontend.Sync && type !== Frontend.Terminate) return undefined;
    switch (type) {
      case Frontend.Query: {
        // Size first: an oversized statement is refused without decoding or classifying it.
        if (end - body - 1 > this.maxStatementBytes) {
          if (buf[end - 1] !== 0) throw new ProtocolError('invalid Query message');
          this.decided(this.tooLarge(end - body - 1), Kind.Query, '', buf, start, end);
          return undefined;
        }
        const [sql, next] = readCString(buf, body, end);
        if (next !== end) throw new ProtocolError('invalid Query message');
        return this.gated(sql, 'query', Kind.Query, '', buf, start, end);
      }
      case Frontend.Parse: {
        const [name, afterName] = readCString(buf, body, end);
        const sqlEnd = buf.indexOf(0, afterName);
        if (sqlEnd < 0 || sqlEnd >= end) throw new ProtocolError('invalid Parse message');
        if (sqlEnd - afterName > this.maxStatementBytes) {
          this.decided(this.tooLarge(sqlEnd - afterName), Kind.Parse, name, buf, start, end);
          return undefined;
        }
        const [sql] = readCString(buf, afterName, end);
        return this.gated(sql, 'parse', Kind.Parse, name, buf, start, end);
      }
      case Frontend.Bind: {
        const [portal, afterPortal] = readCString(buf, body, end);
        const [statement, afterStatement] = readCString(buf, afterPortal, end);
        const prepared = this.statements.get(statement);
        if (this.pooled && prepared?.body === undefined) {
          this.unknownStatement(statement, buf, start, end);
          return undefined;
        }
        const e = new Expectation(Kind.Bind);
        const entry: Entry = { sql: prepared?.sql, confirmed: false, parameters: buf.subarray(afterStatement, end) };
        if (prepared?.mask) {
          entry.mask = prepared.mask;
          entry.formats = bindResultFormats(buf, afterStatement, end) ?? [];
        }
        this.track(e, this.portals, portal, entry);
        if (this.pooled) {
          const upstreamName = this.ensurePrepared(prepared!);
          this.enqueue(e);
          this.push(encodeBind(portal, upstreamName, buf.subarray(afterStatement, end)));
          return undefined;
        }
        this.enqueue(e);
        this.pass(buf, start, end);
        return undefined;
      }
      case Frontend.Execute: {
        const [portal] = readCString(buf, body, end);
        const sql = this.portals.get(portal)?.sql;
        // A portal we did not see bound (e.g. a SQL-level cursor, reachable by name) is never run.
        if (sql === undefined) {
          this.decided({ allow: false, sqlstate: SqlState.InsufficientPrivilege, message: 'unknown portal' }, Kind.Execute, '', buf, start, end);
          return undefined;
        }
        return this.gated(sql, 'execute', Kind.Execute, portal, buf, start, end);
      }
      case Frontend.Describe: {
        const e = new Expectation(Kind.Describe);
        if (end - body >= 2) {
          const [name] = readCString(buf, body + 1, end);
          const statement = buf[body] === 0x53; /* S */
          const described = statement ? this.statements.get(name) : this.portals.get(name);
          if (described?.mask) e.masker = new ResultMasker(described.mask, described.formats);
          if (this.pooled && statement) {
            if (described?.body === undefined) {
              this.unknownStatement(name, buf, start, end);
              return undefined;
            }
            const upstreamName = this.ensurePrepared(described);
            this.enqueue(e);
            this.push(encodeDescribe('S', upstreamName));
            return undefined;
          }
        }
        this.enqueue(e);
        this.pass(buf, start, end);
        return undefined;
      }
      case Frontend.Close: {
        if (end - body < 2) throw new ProtocolError('invalid Close message');
        const which = buf[body];
        const [name] = readCString(buf, body + 1, end);
        const map = which === 0x53 /* S */ ? this.statements : which === 0x50 /* P */ ? this.portals : undefined;
        if (!map) throw new ProtocolError('invalid Close message');
        const e = new Expectation(Kind.Close);
        const closed = map.get(name);
        this.track(e, map, name, undefined);
        this.enqueue(e);
        if (this.pooled && map === this.statements) this.push(encodeClose('S', this.closeUpstream(closed)));
        else this.pass(buf, start, end);
        return undefined;
      }
      case Frontend.Sync: {
        // Outside a transaction block a Sync commits the pipeline's implicit transaction: if it ran a
        // write, every entry of the pipeline must be durable first (and a failure aborts it).
        if (this.wroteSinceSync && this.pendingHolds.size > 0 && !this.inTransactionBlock()) {
          return this.afterPendingHolds().then(() => {
            if (!this.closed) this.sync(buf, start, end);
          });
        }
        this.sync(buf, start, end);
        return undefined;
      }
      case Frontend.Flush:
      case Frontend.CopyData:
      case Frontend.CopyDone:
      case Frontend.CopyFail:
        this.pass(buf, start, end);
        return undefined;
      case Frontend.Terminate:
        this.stopped = true;
        this.flushUpstream();
        this.terminate(undefined);
        return undefined;
      case Frontend.FunctionCall:
        // The fast-path function call bypasses SQL entirely: never allowed. Answered like a Query.
        this.decided(
          { allow: false, sqlstate: SqlState.InsufficientPrivilege, message: 'function call messages are not allowed' },
          Kind.Query,
          '',
          buf,
          start,
          end,
        );
        return undefined;
      default:
        throw new ProtocolError(`invalid frontend message type ${type}`);
    }
  }

  /** Asks the gate; applies the decision now if it is synchronous, else returns the pending work. */
  private gated(
    sql: string,
    phase: CheckPhase,
    kind: Kind,
    name: string,
    buf: Buffer,
    start: number,
    end: number,
  ): Promise<void> | undefined {
    let result: CheckResult | Promise<CheckResult>;
    const inTransactionBlock = this.inTransactionBlock();
    if (this.poisoned) {
      result = POISONED;
    } else {
      try {
        const parameters = phase === 'execute' ? this.portals.get(name)?.parameters : undefined;
        result = this.gate.check(sql, phase, parameters ? { inTransactionBlock, parameters } : { inTransactionBlock });
      } catch (err) {
        result = this.failClosed(err);
      }
    }
    if (typeof (result as Promise<CheckResult>).then === 'function') {
      return (result as Promise<CheckResult>)
        .catch((err: unknown) => this.failClosed(err))
        .then((r) => this.whenOrdered(r, kind, name, buf, start, end, sql, inTransactionBlock));
    }
    return this.whenOrdered(result as CheckResult, kind, name, buf, start, end, sql, inTransactionBlock);
  }

  /**
   * Applies a decision once ordering allows. An audited statement that was not allowed to overlap
   * its entry (a write, DDL, COMMIT, …) waits until every entry still in flight is durable: so a
   * COMMIT never commits work whose entries could still fail. If one failed meanwhile, the
   * statement is refused instead (the client has seen that error; the upstream must not go on).
   */
  private whenOrdered(
    r: CheckResult,
    kind: Kind,
    name: string,
    buf: Buffer,
    start: number,
    end: number,
    sql: string,
    inTransactionBlock: boolean,
  ): Promise<void> | undefined {
    if (this.closed) return undefined;
    if (!r.allow || r.durable !== undefined || r.ticket === undefined || this.pendingHolds.size === 0) {
      this.decided(r, kind, name, buf, start, end, sql, inTransactionBlock);
      return undefined;
    }
    return this.afterPendingHolds().then(() => {
      if (this.closed) return;
      if (this.poisoned || this.failedBeforeSync) {
        this.gate.outcome?.(r.ticket, { status: 'skipped' });
        if (this.failedBeforeSync) return; // skipped to Sync, like every message after the error
        this.decided(POISONED, kind, name, buf, start, end, sql);
        return;
      }
      this.decided(r, kind, name, buf, start, end, sql, inTransactionBlock);
    });
  }

  /**
   * The session is certainly inside an explicit transaction block: the last ReadyForQuery said so
   * and nothing queued since may have ended it.
   */
  private inTransactionBlock(): boolean {
    return this.txStatus === 0x54 /* T */ && this.txControlQueued === 0 && !this.poisoned;
  }

  private sync(buf: Buffer, start: number, end: number): void {
    if (this.failedBeforeSync) {
      // The client saw an error: make the upstream abort this pipeline's implicit transaction too
      // (a marker it rejects, answered by nothing the client sees), then Sync.
      this.failedBeforeSync = false;
      const marker = `BATON_DENY_${++this.seq}`;
      this.enqueue(new Expectation(Kind.Parse, undefined, { error: Buffer.alloc(0), fatal: false, marker }));
      this.push(encodeParse(`${this.throwawayPrefix}${this.seq}`, marker));
    }
    this.wroteSinceSync = false;
    this.syncs++;
    this.enqueue(new Expectation(Kind.Sync));
    this.pass(buf, start, end);
  }

  private tooLarge(bytes: number): CheckResult {
    this.log.warn({ event: 'pg.statement.too_large', bytes }, 'statement over the size limit refused');
    return {
      allow: false,
      sqlstate: SqlState.ProgramLimitExceeded,
      message: `statement too large: ${bytes} bytes (limit proxy.limits.maxStatementBytes = ${this.maxStatementBytes})`,
    };
  }

  private failClosed(err: unknown): CheckResult {
    const sqlstate = (err as { sqlstate?: unknown })?.sqlstate;
    this.log.error({ event: 'pg.gate.error', err: String((err as Error)?.message ?? err) }, 'gate check failed; denying');
    return {
      allow: false,
      sqlstate: typeof sqlstate === 'string' ? sqlstate : SqlState.InternalError,
      message: 'authorization check failed',
    };
  }

  /** Forwards an allowed message, or substitutes the marker for a denied one. */
  private decided(r: CheckResult, kind: Kind, name: string, buf: Buffer, start: number, end: number, sql?: string, inTransactionBlock = false): void {
    if (r.allow) {
      const e = new Expectation(kind, r.ticket);
      e.txControl = r.txControl === true;
      e.inTransactionBlock = inTransactionBlock;
      e.syncsBefore = this.syncs;
      if (r.durable !== undefined) this.holdUntilDurable(e, r.durable, r.holdAnswers !== false);
      else if (r.ticket !== undefined && kind === Kind.Execute) this.wroteSinceSync = true;
      const mask = r.mask?.some((m) => m !== undefined) ? r.mask : undefined;
      if (kind === Kind.Parse) {
        if (!this.statements.has(name) && this.statements.size >= this.limits.maxPreparedStatements) {
          throw new ProtocolError('too many prepared statements', SqlState.ProgramLimitExceeded);
        }
        const entry: Entry = mask ? { sql, confirmed: false, mask } : { sql, confirmed: false };
        this.track(e, this.statements, name, entry);
        if (this.pooled) {
          this.forwardParse(e, entry, name, parseBody(buf, start, end));
          return;
        }
      } else if (mask) {
        e.masker = new ResultMasker(mask, kind === Kind.Execute ? (this.portals.get(name)?.formats ?? []) : undefined);
      }
      if (kind !== Kind.Parse && r.scrubErrors) e.scrubErrors = r.scrubErrors;
      if (kind !== Kind.Parse && r.notice) e.notice = encodeNotice(r.notice);
      this.enqueue(e);
      this.pass(buf, start, end);
      return;
    }
    const marker = `BATON_DENY_${++this.seq}`;
    const fatal = r.fatal === true;
    const deny: Denial = {
      error: encodeError(fatal ? 'FATAL' : 'ERROR', r.sqlstate || SqlState.InsufficientPrivilege, r.message),
      fatal,
      marker,
    };
    let substitute: Buffer;
    let e: Expectation;
    if (kind === Kind.Query) {
      e = new Expectation(Kind.Query, undefined, deny);
      substitute = encodeQuery(marker);
    } else if (kind === Kind.Parse) {
      e = new Expectation(Kind.Parse, undefined, deny);
      // Postgres drops the unnamed statement before parsing; a named one is left as it was. (Pooled:
      // client names never go upstream.)
      substitute = encodeParse(this.pooled && name !== '' ? `${this.throwawayPrefix}${this.seq}` : name, marker);
      if (name === '') {
        this.track(e, this.statements, '', undefined);
        if (this.lease) this.lease.unnamed = undefined;
      }
    } else {
      e = new Expectation(Kind.Parse, undefined, deny);
      substitute = encodeParse(`${this.throwawayPrefix}${this.seq}`, marker);
    }
    this.enqueue(e);
    this.push(substitute);
    if (fatal) {
      // Nothing after a fatal denial reaches the upstream. A Sync makes the upstream flush the
      // marker's error (extended-protocol errors are buffered until Sync/Flush).
      this.stopped = true;
      // Should the upstream never answer the marker, the session still ends.
      setTimeout(() => this.terminate(deny.error), 5_000).unref();
      if (kind !== Kind.Query) {
        this.enqueue(new Expectation(Kind.Sync));
        this.push(encodeSync());
      }
      this.updateClientFlow();
      if (this.fatalPending) this.sendFatalPending();
    }
  }

  /** Records a speculative change of `map[name]` (entry undefined = removal), undone on failure. */
  private track(e: Expectation, map: Map<string, Entry>, name: string, entry: Entry | undefined): void {
    e.map = map;
    e.name = name;
    e.prev = map.get(name);
    e.entry = entry;
    if (entry) map.set(name, entry);
    else map.delete(name);
  }

  private enqueue(e: Expectation): void {
    if (e.txControl) this.txControlQueued++;
    this.upstreamIdle = false;
    // a simple Query destroys the unnamed statement (PostgreSQL's protocol)
    if (e.kind === Kind.Query && this.lease) this.lease.unnamed = undefined;
    if (e.kind === Kind.Sync) {
      this.skipUntilSync = false;
    } else if (this.skipUntilSync) {
      // The upstream discards everything until the next Sync: this message never gets an answer.
      this.finalize(e, 'skipped');
      return;
    }
    this.queue.push(e);
  }

  private pass(buf: Buffer, start: number, end: number): void {
    if (this.runBuf === buf && this.runEnd === start) {
      this.runEnd = end;
      return;
    }
    this.closeRun();
    this.runBuf = buf;
    this.runStart = start;
    this.runEnd = end;
  }

  private push(b: Buffer): void {
    this.closeRun();
    this.out.push(b);
  }

  private closeRun(): void {
    const b = this.runBuf;
    if (b) {
      // The common case — a chunk relayed whole — needs no view.
      this.out.push(this.runStart === 0 && this.runEnd === b.length ? b : b.subarray(this.runStart, this.runEnd));
      this.runBuf = undefined;
    }
  }

  private flushUpstream(): void {
    this.closeRun();
    const out = this.out;
    if (out.length === 0 || this.closed) {
      out.length = 0;
      return;
    }
    this.out = [];
    if (!this.upstream) throw new Error('no upstream connection to write to');
    writeAll(this.upstream, out);
    if (this.upstream.writableNeedDrain) this.updateClientFlow();
  }

  private updateClientFlow(): void {
    const pause = this.busy || this.stopped || this.upstream?.writableNeedDrain === true;
    if (pause && !this.clientPaused) {
      this.clientPaused = true;
      this.client.pause();
    } else if (!pause && this.clientPaused) {
      this.clientPaused = false;
      this.client.resume();
    }
  }

  private readonly onUpstreamDrain = (): void => this.updateClientFlow();

  // ───────────────────────────── upstream → client ─────────────────────────────

  private readonly onUpstreamData = (chunk: Buffer): void => {
    if (this.closed) return;
    this.lastActivity = Date.now();
    let buf = chunk;
    let i = 0;
    // Direct bytes go out in runs (no copy); a message that must be held or dropped closes the run.
    const out: Buffer[] = [];
    let runStart = 0;
    const closeRun = (at: number) => {
      if (at > runStart) out.push(runStart === 0 && at === buf.length ? buf : buf.subarray(runStart, at));
    };
    if (this.upSkip > 0) {
      // the rest of a message that started in an earlier chunk goes where its start went
      const n = Math.min(chunk.length, this.upSkip);
      this.upSkip -= n;
      if (this.skipRoute === Route.Hold) this.held.push(this.skipOwner, chunk.subarray(0, n));
      else if (this.skipRoute === Route.Direct) {
        if (n === chunk.length) {
          this.writeClient(chunk);
          return;
        }
        out.push(chunk.subarray(0, n));
      }
      if (n === chunk.length) {
        this.releaseHeld();
        return;
      }
      i = n;
      runStart = n;
    } else if (this.upCarry) {
      this.upCarry.push(chunk);
      this.upCarryBytes += chunk.length;
      if (this.upCarryBytes < this.upCarryNeed) return;
      buf = Buffer.concat(this.upCarry, this.upCarryBytes);
      this.upCarry = undefined;
    }
    const n = buf.length;
    try {
      while (i < n) {
        if (n - i < 5) {
          closeRun(i);
          runStart = this.carry(buf, i, 5);
          break;
        }
        const type = buf[i]!;
        const total = buf.readInt32BE(i + 1) + 1;
        if (total < 5) throw new ProtocolError('invalid message length from upstream');
        const owner = this.peek();
        const route = this.routeOf(owner, type);
        if (owner?.notice !== undefined && route !== Route.Drop) {
          // the gate's notice goes first, where the statement's answers go
          closeRun(i);
          runStart = i;
          if (route === Route.Hold) this.held.push(owner, owner.notice);
          else out.push(owner.notice);
          owner.notice = undefined;
        }
        const masker = owner?.masker !== undefined && maskable(type) ? owner.masker : undefined;
        const notice = type === Backend.NoticeResponse && owner?.scrubErrors !== undefined ? owner.scrubErrors : undefined;
        const inspect =
          masker !== undefined ||
          notice !== undefined ||
          type === Backend.ErrorResponse ||
          type === Backend.ReadyForQuery ||
          type === Backend.ParameterStatus ||
          (type === Backend.CommandComplete && (this.wantsTag() || total === 20 || total === 17));
        if (!inspect) {
          this.onBackendHeader(type);
          if (route !== Route.Direct) {
            closeRun(i);
            if (route === Route.Hold) this.held.push(owner, buf.subarray(i, Math.min(i + total, n)));
            runStart = Math.min(i + total, n);
          }
          i += total;
          if (i > n) {
            this.upSkip = i - n;
            this.skipRoute = route;
            this.skipOwner = owner;
            i = n;
          }
          continue;
        }
        if (i + total > n) {
          closeRun(i);
          runStart = this.carry(buf, i, total);
          break;
        }
        let replacement: Buffer | undefined;
        if (notice !== undefined) {
          replacement = scrubErrorMessage(buf, i, i + total, notice);
        } else if (masker !== undefined) {
          replacement = masker.rewrite(type, buf, i, i + total);
          if (type === Backend.CommandComplete) this.onBackendMessage(type, buf, i, i + total);
          else this.onBackendHeader(type);
        } else {
          replacement = this.onBackendMessage(type, buf, i, i + total);
        }
        const message = replacement ?? buf.subarray(i, i + total);
        if (route !== Route.Direct || replacement !== undefined || this.fatalPending) {
          closeRun(i);
          if (route === Route.Direct) {
            if (message.length) out.push(message);
          } else if (route === Route.Hold) {
            this.held.push(owner, message, type === Backend.ReadyForQuery);
          }
          runStart = i + total;
          if (this.fatalPending) break;
        }
        i += total;
      }
    } catch (err) {
      this.log.error({ event: 'pg.upstream.protocol', err: String((err as Error)?.message ?? err) }, 'upstream protocol error');
      closeRun(Math.min(i, n));
      this.writeClient(...out);
      this.terminate(encodeError('FATAL', SqlState.ConnectionFailure, 'upstream protocol error'));
      return;
    }
    if (!this.fatalPending && !this.upCarry) closeRun(n);
    this.writeClient(...out);
    // held messages whose owners are durable already (e.g. the rest of a released result that was
    // queued behind the hold) go now; then backpressure
    this.releaseHeld();
    if (this.fatalPending) this.sendFatalPending();
    else this.maybeDetach();
  };

  /**
   * Where a message of `owner` goes. Behind anything held, everything is held (order). The answers
   * of a statement whose entry failed are dropped, except the ReadyForQuery the client needs; the
   * 57P03 error takes the place of its first message.
   */
  private routeOf(owner: Expectation | undefined, type: number): Route {
    // the relay's own messages: only a failed re-prepare is the client's business (its Bind fails)
    if (owner?.hidden && !(type === Backend.ErrorResponse && owner.kind === Kind.Parse)) return Route.Drop;
    if (this.dropUntilReady) {
      if (type !== Backend.ReadyForQuery) return Route.Drop;
      this.dropUntilReady = false;
    } else if (owner?.hold === HoldState.Failed) {
      if (!owner.errorPlaced) {
        owner.errorPlaced = true;
        this.emitInOrder(this.auditFailure());
        if (owner.kind === Kind.Execute && type !== Backend.ReadyForQuery) this.dropUntilReady = true;
      }
      if (type !== Backend.ReadyForQuery) return Route.Drop;
    }
    if (this.held.active || owner?.hold === HoldState.Pending) return Route.Hold;
    return Route.Direct;
  }

  /** A message the relay adds: held if anything is held, else written. */
  private emitInOrder(message: Buffer): void {
    if (this.held.active) this.held.push(undefined, message);
    else this.writeClient(message);
  }

  private auditFailure(): Buffer {
    return encodeError('ERROR', SqlState.CannotConnectNow, 'baton: audit store unavailable; statement refused (its results were withheld)');
  }

  /** Forwarded while its entry is in flight: its answers are held until the entry settles. */
  private holdUntilDurable(e: Expectation, durable: Promise<void>, holdAnswers: boolean): void {
    // answers that reveal nothing go at once; the entry is still awaited by COMMIT/Sync and a failure
    // still poisons the block (see docs/audit-ordering.md)
    if (holdAnswers) e.hold = HoldState.Pending;
    this.pendingHolds.add(e);
    durable.then(
      () => this.settleHold(e, undefined),
      (err: unknown) => this.settleHold(e, err ?? new Error('audit entry failed')),
    );
  }

  private settleHold(e: Expectation, err: unknown): void {
    this.pendingHolds.delete(e);
    if (this.closed) return this.wakeHoldWaiters(); // nothing held is ever delivered after close
    if (err === undefined) {
      e.hold = HoldState.Released;
    } else if (e.hold !== HoldState.Pending) {
      // its answers were not held (nothing to see before COMMIT): the block it belongs to or opened
      // can commit nothing now; the client learns it on its next statement
      this.log.warn({ event: 'pg.audit.entry_failed', err: String((err as Error)?.message ?? err) }, 'audit entry failed; transaction block poisoned');
      this.poisoned = true;
    } else {
      e.hold = HoldState.Failed;
      this.log.warn({ event: 'pg.audit.held_failed', err: String((err as Error)?.message ?? err) }, 'audit entry failed; held results dropped');
      const extended = e.kind === Kind.Execute;
      const placed = this.held.fail(e, this.auditFailure(), extended);
      if (placed.placed) {
        e.errorPlaced = true;
        if (extended && !placed.reachedReady) this.dropUntilReady = true;
      }
      // in a block, or a statement that may have opened one (BEGIN): abort the block before anything commits
      if (e.inTransactionBlock || e.txControl) this.poisoned = true;
      else if (extended && this.syncs === e.syncsBefore) this.failedBeforeSync = true;
    }
    this.wakeHoldWaiters();
    this.releaseHeld();
    this.maybeDetach();
  }

  private readonly holdWaiters: (() => void)[] = [];

  /** Resolves once every entry in flight has settled (durable or failed). */
  private afterPendingHolds(): Promise<void> {
    if (this.pendingHolds.size === 0 || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.holdWaiters.push(resolve));
  }

  private wakeHoldWaiters(): void {
    if (this.pendingHolds.size > 0 && !this.closed) return;
    for (const w of this.holdWaiters.splice(0)) w();
  }

  /** Writes whatever held output may go now. */
  private releaseHeld(): void {
    const out = this.held.releasable();
    if (out.length) this.writeClient(...out);
    this.applyHeldBackpressure();
  }

  /** Past `maxHeldBytes` of held output, stop reading the upstream until it is released. */
  private applyHeldBackpressure(): void {
    if (this.closed || !this.upstream) return;
    if (this.held.bytes > this.maxHeldBytes) {
      if (!this.upstream.isPaused()) this.upstream.pause();
    } else if (this.upstream.isPaused() && !this.client.writableNeedDrain) {
      this.upstream.resume();
    }
  }

  /** Keeps `buf[at..]` until `need` bytes of it are in; returns where the relayed run stops. */
  private carry(buf: Buffer, at: number, need: number): number {
    this.upCarry = [buf.subarray(at)];
    this.upCarryBytes = buf.length - at;
    this.upCarryNeed = need;
    return at;
  }

  private peek(): Expectation | undefined {
    return this.queue[this.qHead];
  }

  private shift(): Expectation | undefined {
    const e = this.queue[this.qHead];
    if (e === undefined) return undefined;
    this.queue[this.qHead++] = undefined as unknown as Expectation;
    if (this.qHead === this.queue.length) {
      this.queue.length = 0;
      this.qHead = 0;
    } else if (this.qHead > 1024) {
      this.queue = this.queue.slice(this.qHead);
      this.qHead = 0;
    }
    return e;
  }

  private wantsTag(): boolean {
    const head = this.peek();
    return (
      head !== undefined &&
      head.ticket !== undefined &&
      this.gate.outcome !== undefined &&
      (head.kind === Kind.Query || head.kind === Kind.Execute)
    );
  }

  /** Bookkeeping for a relayed message whose body we do not need. */
  private onBackendHeader(type: number): void {
    const head = this.peek();
    if (!head) return;
    switch (type) {
      case Backend.ParseComplete:
        if (head.kind === Kind.Parse) this.finalize(this.shift()!, 'ok');
        break;
      case Backend.BindComplete:
        if (head.kind === Kind.Bind) this.finalize(this.shift()!, 'ok');
        break;
      case Backend.CloseComplete:
        if (head.kind === Kind.Close) this.finalize(this.shift()!, 'ok');
        break;
      case Backend.NoData:
      case Backend.RowDescription:
        if (head.kind === Kind.Describe) this.finalize(this.shift()!, 'ok');
        break;
      case Backend.CommandComplete:
      case Backend.EmptyQueryResponse:
      case Backend.PortalSuspended:
        if (head.kind === Kind.Execute) this.finalize(this.shift()!, 'ok');
        break;
      default:
        break;
    }
  }

  /**
   * ErrorResponse, ReadyForQuery, CommandComplete. Returns a replacement for the message (empty
   * buffer = drop it) or undefined to relay it unchanged.
   */
  private onBackendMessage(type: number, buf: Buffer, start: number, end: number): Buffer | undefined {
    if (type === Backend.ParameterStatus) return this.onParameterStatus(buf, start, end);
    if (type === Backend.CommandComplete) {
      const [tag] = readCString(buf, start + 5, end);
      const head = this.peek();
      if ((tag === 'DEALLOCATE ALL' || tag === 'DISCARD ALL') && !head?.hidden) {
        for (const [name, entry] of this.statements) if (entry.confirmed) this.statements.delete(name);
        if (this.lease) {
          this.lease.statements.clear();
          this.lease.unnamed = undefined;
        }
      }
      if (head?.kind === Kind.Query) head.tag = tag;
      else if (head?.kind === Kind.Execute) this.finalize(this.shift()!, 'ok', tag);
      return undefined;
    }
    if (type === Backend.ReadyForQuery) {
      // Everything before the Sync/Query this answers was skipped by the upstream.
      for (let e = this.shift(); e; e = this.shift()) {
        if (e.kind === Kind.Sync || e.kind === Kind.Query) {
          if (e.sqlstate === undefined) this.finalize(e, 'ok', e.tag);
          break;
        }
        this.finalize(e, 'skipped');
      }
      this.txStatus = buf[start + 5]!;
      if (this.txStatus === 0x49 /* I */) {
        this.boundSinceIdle.clear(); // no transaction, no portal
        if (this.qHead >= this.queue.length) this.upstreamIdle = true;
      }
      // statements still queued may yet begin or end a block; those answered no longer can
      let txControl = 0;
      for (let k = this.qHead; k < this.queue.length; k++) if (this.queue[k]!.txControl) txControl++;
      this.txControlQueued = txControl;
      // the upstream block is aborted or gone: a poisoned transaction can commit nothing any more
      if (this.txStatus !== 0x54 /* T */) this.poisoned = false;
      // Outside a transaction block no portal survives; those bound later are not confirmed yet.
      if (buf[start + 5] === 0x49 /* I */ && this.portals.size) {
        for (const [name, entry] of this.portals) if (entry.confirmed) this.portals.delete(name);
      }
      return undefined;
    }
    return this.onError(buf, start, end);
  }

  /**
   * A setting the classifier relies on changed upstream (e.g. a function call the classifier did not
   * recognise ran set_config): nothing more is relayed or forwarded; the session ends with FATAL.
   */
  private onParameterStatus(buf: Buffer, start: number, end: number): Buffer | undefined {
    const watched = this.limits.watchedSettings;
    if (!watched || watched.size === 0) return undefined;
    const { name, value } = parseParameterStatus(buf, start, end);
    const pinned = watched.get(name);
    if (pinned === undefined || sameSetting(name, value, pinned)) return undefined;
    this.log.error({ event: 'pg.upstream.setting_drift', setting: name, value: sanitizeText(value, 64) }, 'pinned upstream setting changed; ending the session');
    this.stopped = true;
    this.fatalPending = encodeError(
      'FATAL',
      SqlState.ObjectNotInPrerequisiteState,
      `terminating connection: upstream setting ${name} changed to ${sanitizeText(value, 64)} (the proxy pins ${pinned})`,
    );
    return Buffer.alloc(0);
  }

  private onError(buf: Buffer, start: number, end: number): Buffer | undefined {
    const fields = parseErrorFields(buf, start, end);
    if (fields.severity === 'FATAL' || fields.severity === 'PANIC') {
      this.upstreamFatal = true;
      return undefined;
    }
    const head = this.peek();
    if (!head || head.kind === Kind.Sync) return undefined; // e.g. a deferred constraint failing at commit
    if (head.hidden && head.kind === Kind.Query) {
      // the reset of a pooled connection failed: it cannot be trusted with this session
      this.log.error({ event: 'pg.pool.reset_failed', sqlstate: fields.code }, 'pooled connection reset failed');
      if (this.lease) this.lease.reusable = false;
      this.stopped = true;
      this.fatalPending = encodeError('FATAL', SqlState.ConnectionFailure, 'baton: resetting the pooled upstream connection failed');
      return Buffer.alloc(0);
    }
    let replacement: Buffer | undefined = head.scrubErrors && !head.deny ? scrubErrorMessage(buf, start, end, head.scrubErrors) : undefined;
    if (head.deny) {
      if (!fields.message.includes(head.deny.marker)) {
        // Still the denied message's error (errors come in order); the upstream refused it for
        // another reason (e.g. a statement name clash). The denial is what the client must see.
        this.log.warn({ event: 'pg.deny.unexpected_error', sqlstate: fields.code }, 'marker failed differently');
      }
      if (head.deny.fatal) {
        this.fatalPending = head.deny.error;
        return Buffer.alloc(0);
      }
      replacement = head.deny.error;
    }
    if (head.kind === Kind.Query) {
      // A simple query ends at its first error; ReadyForQuery follows and pops it. The outcome is
      // reported now, before the client can see the error.
      if (head.sqlstate === undefined) {
        head.sqlstate = fields.code;
        this.report(head, 'error', undefined, fields.code);
      }
      return replacement;
    }
    // An extended-protocol message failed: the upstream now skips everything until Sync.
    this.finalize(this.shift()!, 'error', undefined, fields.code);
    for (let e = this.peek(); e && e.kind !== Kind.Sync; e = this.peek()) this.finalize(this.shift()!, 'skipped');
    if (!this.peek()) this.skipUntilSync = true;
    return replacement;
  }

  /** Settles an expectation: confirm or undo its tracking, report the outcome. */
  private finalize(e: Expectation, status: Outcome, tag?: string, sqlstate?: string): void {
    if (status !== 'ok') e.onFail?.();
    if (e.map) {
      if (status === 'ok') {
        if (e.entry) e.entry.confirmed = true;
      } else if (e.map.get(e.name) === e.entry) {
        // Failed unnamed Parse/Bind: Postgres already dropped the previous unnamed object.
        const dropped = status === 'error' && e.name === '' && (e.kind === Kind.Parse || e.kind === Kind.Bind);
        const restore = dropped ? undefined : e.prev;
        if (restore) e.map.set(e.name, restore);
        else e.map.delete(e.name);
      }
    }
    if (e.deny?.fatal && status !== 'error' && !this.fatalPending) this.fatalPending = e.deny.error;
    this.report(e, status, tag, sqlstate);
  }

  /** Hands the outcome of a ticketed statement to the gate, once. */
  private report(e: Expectation, status: Outcome, tag?: string, sqlstate?: string): void {
    if (e.reported) return;
    e.reported = true;
    if (e.ticket !== undefined && this.gate.outcome) {
      const outcome: StatementOutcome = { status };
      if (tag !== undefined) {
        outcome.tag = tag;
        const rows = commandRows(tag);
        if (rows !== undefined) outcome.rows = rows;
      }
      if (sqlstate !== undefined) outcome.sqlstate = sqlstate;
      if (e.masker !== undefined && e.masker.masked > 0) outcome.maskedValues = e.masker.masked;
      try {
        this.gate.outcome(e.ticket, outcome);
      } catch (err) {
        this.log.error({ event: 'pg.gate.outcome_error', err: String((err as Error)?.message ?? err) }, 'outcome callback failed');
      }
    }
  }

  private sendFatalPending(): void {
    const fatal = this.fatalPending;
    this.fatalPending = undefined;
    if (fatal) this.terminate(fatal);
  }

  private writeClient(...bufs: Buffer[]): void {
    if (bufs.length === 0 || this.client.destroyed) return;
    writeAll(this.client, bufs);
    if (this.client.writableNeedDrain && this.upstream && !this.upstream.isPaused()) this.upstream.pause();
  }

  private readonly onClientDrain = (): void => {
    if (!this.closed && this.upstream?.isPaused() && this.held.bytes <= this.maxHeldBytes) this.upstream.resume();
  };

  // ───────────────────────────── ending ─────────────────────────────

  private protocolFailure(err: unknown): void {
    if (this.closed) return;
    if (err instanceof ProtocolError) {
      this.log.warn({ event: 'pg.protocol_error', reason: sanitizeText(err.message) }, 'client protocol error');
      this.flushUpstream();
      this.terminate(encodeError('FATAL', err.sqlstate, err.message));
    } else {
      this.log.error({ event: 'pg.session.error', err: String((err as Error)?.message ?? err) }, 'session failed');
      this.terminate(encodeError('FATAL', SqlState.InternalError, 'internal error'));
    }
  }

  private readonly onSocketError = (err: Error): void => {
    this.log.info({ event: 'pg.socket_error', err: err.message }, 'socket error');
  };

  private readonly onClientClose = (): void => {
    if (this.closed) return;
    // Client gone mid-statement: stop the upstream work rather than let it run to completion.
    if (this.qHead < this.queue.length) this.cancel();
    this.terminate(undefined);
  };

  private readonly onUpstreamClose = (): void => {
    if (this.closed) return;
    this.terminate(this.upstreamFatal ? undefined : encodeError('FATAL', SqlState.ConnectionFailure, 'upstream connection lost'));
  };

  /** Closes both sides once; `fatal` (if any) is the last thing the client receives. */
  private terminate(fatal: Buffer | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.stopped = true;
    this.held.clear(); // never delivered: their entries were not durable
    this.wakeHoldWaiters();
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.disarmHoldTimer();
    // a pooled connection goes back only when it is idle with nothing of this session outstanding
    const lease = this.lease;
    const clean = lease !== undefined && this.upstreamIdle && this.txStatus === 0x49 && this.qHead >= this.queue.length && this.upSkip === 0 && this.upCarry === undefined && !this.upstreamFatal;
    for (let e = this.shift(); e; e = this.shift()) this.finalize(e, 'unknown');
    if (!this.client.destroyed) {
      if (fatal) this.client.end(fatal);
      else this.client.end();
      // A client that never closes its side does not keep the socket.
      setTimeout(() => this.client.destroy(), 2_000).unref();
    }
    if (lease) {
      this.unlistenUpstream(lease.conn.socket);
      if (!clean) lease.reusable = false;
      this.lease = undefined;
      this.pooled!.release(lease);
    } else if (this.upstream) {
      const upstream = this.upstream;
      if (!upstream.destroyed) upstream.end(encodeTerminate());
      setTimeout(() => upstream.destroy(), 2_000).unref();
    }
    this.upstream = undefined;
    this.up = undefined;
    try {
      this.gate.close?.();
    } catch (err) {
      this.log.error({ event: 'pg.gate.close_error', err: String((err as Error)?.message ?? err) }, 'gate close failed');
    }
    this.onClose();
  }
}

/** Below this many bytes, pieces are copied into one buffer: one write() beats a writev of many small ones. */
const COALESCE_BYTES = 64 * 1024;

/** One socket write for `bufs` (a copy when they are small, a corked writev when they are large). */
function writeAll(socket: Socket, bufs: Buffer[]): void {
  if (bufs.length === 1) {
    socket.write(bufs[0]!);
    return;
  }
  let total = 0;
  for (const b of bufs) total += b.length;
  if (total <= COALESCE_BYTES) {
    socket.write(Buffer.concat(bufs, total));
    return;
  }
  socket.cork();
  for (const b of bufs) socket.write(b);
  socket.uncork();
}

/** The body of a Parse message after the statement name: SQL text and parameter types, as sent. */
function parseBody(buf: Buffer, start: number, end: number): Buffer {
  const [, afterName] = readCString(buf, start + 5, end);
  return buf.subarray(afterName, end);
}
