/**
 * Baton's decisions for the Postgres proxy: who may connect (verify the token chain once per
 * connection), and whether each statement may run (classify → authorize every (resource, operation)
 * on its own → durable audit entry → allow). The wire engine knows nothing of tokens; this file knows
 * nothing of framing.
 */
import type { AuditReceipt, AuditWriter } from '../../audit/writer.ts';
import type { AuditEventInput } from '../../audit/event.ts';
import { asBatonError } from '../../errors.ts';
import type { RevocationView } from '../../revocation/view.ts';
import type { KeyResolver } from '../../token/keys.ts';
import { TokenChain } from '../../enforce/token-chain.ts';
import { TokenChainCache, type ChainLease } from '../../enforce/token-cache.ts';
import { isPublished } from './keyset.ts';
import type { Classification, ClassifiedStatement, ClassifyContext } from './classify/types.ts';
import type { UpstreamObjects } from './classify/upstream-objects.ts';
import type { UpstreamIdentity } from './upstream-identity.ts';
import type { AuthenticateRequest, AuthenticateResult, CheckContext, CheckPhase, CheckResult, GateSession, ResultMask, StatementOutcome, UpstreamTarget } from './gate.ts';
import { createHash } from 'node:crypto';
import type { ApprovalDesk } from '../../approvals/desk.ts';
import { approvalRulesHit } from '../../enforce/approval-rules.ts';
import type { DetectorSet } from '../../enforce/masking/detectors.ts';
import { SessionMasking } from '../../enforce/masking/plan.ts';
import type { ApprovalRule, MaskingPolicy } from '../../policy/schema.ts';
import { UNANALYSABLE, type ResultShape } from './classify/provenance.ts';
import { estimateRows, textParameters } from './row-estimate.ts';
import { covers } from '../../token/vocabulary.ts';

export interface BatonGateDeps {
  /**
   * The broker's keys; `wantedKeyId` is the token's root key id (a source may refetch for it).
   * Without an id (per statement) a source should answer from memory, synchronously.
   */
  keys: (wantedKeyId?: number) => KeyResolver | Promise<KeyResolver>;
  revocations: RevocationView;
  audit: AuditWriter;
  /** Classifies SQL (cached by the caller's implementation). */
  classify: (sql: string, ctx: ClassifyContext) => Classification | Promise<Classification>;
  /** Upstream by the database name the client asked for. */
  upstreams: ReadonlyMap<string, UpstreamTarget>;
  /**
   * Each upstream's user-defined functions, operators and types (the classifier needs them to see
   * calls without call syntax). Rejects when unknown: the statement is refused.
   */
  objects: (database: string) => UpstreamObjects | Promise<UpstreamObjects>;
  /** A statement that may create or drop functions, operators, types or casts was allowed or ran. */
  objectsMayHaveChanged?: (database: string) => void;
  /** The pinned upstream statement_timeout (ms) a session may not lift with SET; absent = no cap. */
  maxStatementTimeoutMs?: number;
  /**
   * `default`: reads (and writes inside an explicit transaction block) run while their entry is in
   * flight, their answers held until it is durable; `strict`: every entry is durable before its
   * statement is forwarded (config `audit.ordering`).
   */
  ordering?: 'default' | 'strict';
  /** Inline masking of result rows (the policy's `masking` section); absent = none. */
  masking?: { policy: MaskingPolicy; detectors: DetectorSet; hmacKey: string | Buffer };
  /**
   * Just-in-time approvals: the policy's rules and the store that holds requests. Rules without a
   * desk refuse every statement they hit (fail closed).
   */
  approvals?: { rules: readonly ApprovalRule[]; desk?: ApprovalDesk };
  /**
   * `proxy.upstreamIdentity: per-token`: the login each chain's sessions use upstream (an ephemeral
   * role with the chain's table rights); absent = the upstream's configured login.
   */
  upstreamIdentity?: UpstreamIdentity;
  /**
   * `proxy.pooling: transaction`: upstream connections are shared between transactions, so a
   * statement that leaves session state behind (ClassifiedStatement.sessionState) is refused.
   */
  pooling?: 'session' | 'transaction';
  now?: () => Date;
  log?: (event: Record<string, unknown>) => void;
}

/** SQLSTATEs of the approval flow (class 55, object not in prerequisite state; implementation-defined subclass). */
export const APPROVAL_SQLSTATE = { pending: '55W01', denied: '55W02' } as const;

const SQLSTATE = { insufficientPrivilege: '42501', invalidPassword: '28P01', cannotConnectNow: '57P03', featureNotSupported: '0A000' } as const;

/**
 * Verified chains shared by the sessions of one token (an agent's many connections, or thousands of
 * pooled sessions): verified once, one wasm object and one decision cache. Liveness (expiry,
 * revocation, key retirement) is still checked per statement.
 */
const TOKEN_CACHE_SIZE = 4_096;

export function createBatonGate(deps: BatonGateDeps) {
  const now = deps.now ?? (() => new Date());
  const chains = new TokenChainCache(TOKEN_CACHE_SIZE, (token) => TokenChain.verify(token, deps.keys));

  return {
    async authenticate(req: AuthenticateRequest): Promise<AuthenticateResult> {
      const upstream = deps.upstreams.get(req.database);
      if (!upstream) {
        return { ok: false, sqlstate: '3D000', message: `baton: no upstream database named ${req.database}` };
      }
      let lease: ChainLease;
      try {
        lease = await chains.lease(req.password);
      } catch (err) {
        const e = asBatonError(err);
        deps.log?.({ event: 'connect.refused', code: e.code, detail: e.detail });
        // a key set we cannot confirm current is "try again later", not "bad password"
        const sqlstate = e.code === 'BATON_ERR_REVOCATION_STALE' ? SQLSTATE.cannotConnectNow : SQLSTATE.invalidPassword;
        return { ok: false, sqlstate, message: `baton: ${e.message}` };
      }
      // Expiry and revocation at connect (every statement repeats them, in memory). A revoked token
      // is refused with severity ERROR rather than FATAL: the signature is fine, the credential was
      // withdrawn — the same ERROR a live session of that token gets on its next statement (before
      // it is ended with FATAL), so clients and scripts see one consistent "revoked" error.
      const chain = lease.chain;
      // a chain verified earlier (another session of the token) must still be signed by a published
      // key: a retired key refuses the connection as verification would
      const rootKeyId = chain.token.rootKeyId;
      let published: boolean;
      try {
        published = isPublished(await deps.keys(rootKeyId), rootKeyId);
      } catch (err) {
        lease.release();
        const e = asBatonError(err);
        deps.log?.({ event: 'connect.refused', code: e.code, detail: e.detail });
        return { ok: false, sqlstate: SQLSTATE.cannotConnectNow, message: `baton: ${e.message}` };
      }
      if (!published) {
        lease.release();
        deps.log?.({ event: 'connect.refused', code: 'BATON_ERR_TOKEN_UNKNOWN_KEY', detail: `root key ${rootKeyId} retired` });
        return { ok: false, sqlstate: SQLSTATE.invalidPassword, message: `baton: token was signed by unknown or retired key ${rootKeyId}` };
      }
      const refusal = chain.liveness(now(), deps.revocations);
      if (refusal) {
        lease.release();
        const sqlstate = refusal.kind === 'unavailable' ? SQLSTATE.cannotConnectNow : SQLSTATE.invalidPassword;
        return { ok: false, sqlstate, message: `baton: ${refusal.message}`, ...(refusal.kind === 'revoked' ? { severity: 'ERROR' as const } : {}) };
      }
      // A session needs some right on this upstream: a token that grants nothing here may not even
      // run statements that touch no table (version(), catalog reads, settings).
      if (!chain.grantsSomethingUnder(`pg:${req.database}/`, now(), 'read')) {
        lease.release();
        deps.log?.({ event: 'connect.refused', code: 'BATON_ERR_FORBIDDEN', detail: `no right on upstream ${req.database}` });
        return { ok: false, sqlstate: SQLSTATE.insufficientPrivilege, message: `baton: the token grants nothing on upstream ${req.database}` };
      }
      let target = upstream;
      if (deps.upstreamIdentity) {
        try {
          target = { ...upstream, ...(await deps.upstreamIdentity(req.database, chain)) };
        } catch (err) {
          lease.release();
          const e = asBatonError(err);
          deps.log?.({ event: 'connect.refused', code: e.code, detail: e.detail ?? e.message });
          return { ok: false, sqlstate: SQLSTATE.cannotConnectNow, message: `baton: no upstream identity for this token (proxy.upstreamIdentity: per-token): ${e.message}` };
        }
      }
      return { ok: true, session: new BatonSession(deps, req.database, target, lease) };
    },
  };
}

/** A FETCH from a cursor this session did not DECLARE (e.g. a function's refcursor): masked as if it read everything. */
const UNKNOWN_CURSOR: ResultShape = { every: UNANALYSABLE.every, predicates: [] };

/** What the relay applies to an allowed statement's answers (see CheckResult). */
type WireMasking = Pick<Extract<CheckResult, { allow: true }>, 'mask' | 'scrubErrors' | 'notice'>;

/** An authorized statement that an approval rule may hold, with what its allowance carries. */
interface HeldStatement {
  sql: string;
  context: CheckContext | undefined;
  classification: Extract<Classification, { ok: true }>;
  accesses: readonly { resource: string; operation: string }[];
  wire: WireMasking;
  maskAudit: AuditEventInput['masking'];
  started: number;
}

interface Ticket {
  /** The entry's receipt: a promise while the entry is in flight (overlapped statements). */
  receipt: AuditReceipt | Promise<AuditReceipt>;
  startedAt: number;
  /** The statement may have changed the upstream's functions, operators, types or casts. */
  changesObjects: boolean;
}

/** Statement kinds that only read (their accesses must all be `read` too). */
const READ_KINDS = new Set(['select', 'show', 'explain']);
/** Row-level writes: inside an explicit transaction block they commit only with its COMMIT. */
const ROW_WRITE_KINDS = new Set(['insert', 'update', 'delete', 'merge']);
const ROW_WRITE_OPS = new Set(['read', 'insert', 'update', 'delete']);

/**
 * May the statement run while its entry is in flight? Only when nothing it does can become visible
 * before the relay releases its answers: every statement a pure read (no side-effect function: those
 * are `execute`/`admin`/`update` accesses), or — inside an explicit transaction block — a row-level
 * write whose changes the block's COMMIT publishes (and the relay holds that COMMIT). Sequence
 * functions (`update` from a SELECT) are not transactional: never overlapped.
 */
function mayOverlapAudit(c: Classification, inTransactionBlock: boolean): boolean {
  if (!c.ok || c.statements.length === 0) return false;
  // BEGIN alone starts a block and changes nothing anyone can see (if its entry fails the relay
  // aborts the block it opened before anything in it can commit)
  if (c.statements.length === 1 && c.statements[0]!.kind === 'begin') return true;
  if (c.statements.every((s) => READ_KINDS.has(s.kind) && s.accesses.every((a) => a.operation === 'read'))) return true;
  return inTransactionBlock && c.statements.every((s) => (ROW_WRITE_KINDS.has(s.kind) || (READ_KINDS.has(s.kind) && s.accesses.every((a) => a.operation === 'read'))) && s.accesses.every((a) => ROW_WRITE_OPS.has(a.operation)));
}

/**
 * Must an overlapped statement's answers wait for its entry? Reads and RETURNING rows: yes (rows). A
 * BEGIN, or row writes without RETURNING inside a block, answer only a tag and a row count, and
 * nothing they did is visible to anyone before the block's COMMIT — which waits for every entry (and
 * a failed entry poisons the block) — so their answers go at once.
 */
function answersReveal(c: Classification): boolean {
  if (!c.ok) return true;
  return c.statements.some((s) => s.kind !== 'begin' && (!ROW_WRITE_KINDS.has(s.kind) || s.returnsRows === true));
}

/** Anything but reads and row writes may begin or end a transaction block (or do so implicitly). */
function mayChangeTransactionBlock(c: Classification): boolean {
  return !c.ok || c.statements.some((s) => !READ_KINDS.has(s.kind) && !ROW_WRITE_KINDS.has(s.kind));
}

/** Statements a session remembers the classification of (its prepared statements, mostly). */
const RECENT_STATEMENTS = 64;

/** A refusal because some state (revocations, keys, the upstream snapshot) cannot be confirmed. */
function unavailable(err: unknown): CheckResult {
  return { allow: false, sqlstate: SQLSTATE.cannotConnectNow, message: `baton: ${asBatonError(err).message}` };
}

/**
 * `next(value)` for a value that may or may not be a promise: synchronous when it is not. A throw or
 * rejection of `get` goes to `failed`.
 */
function settle<T, R>(get: () => T | Promise<T>, failed: (err: unknown) => R, next: (value: T) => R | Promise<R>): R | Promise<R> {
  let value: T | Promise<T>;
  try {
    value = get();
  } catch (err) {
    return failed(err);
  }
  return value instanceof Promise ? value.then(next, failed) : next(value);
}

/** Operations after which the upstream-objects snapshot must be reloaded before the next statement. */
const OBJECT_CHANGING = new Set(['ddl', 'admin']);

class BatonSession implements GateSession {
  readonly upstream: UpstreamTarget;
  /** The per-token session cap counts by the authority token id: every attenuated child shares it. */
  readonly limitKey: string | undefined;
  readonly #deps: BatonGateDeps;
  readonly #database: string;
  readonly #chain: TokenChain;
  readonly #lease: ChainLease;
  #searchPath: readonly string[] = ['public'];
  /** SQL text → its classification, for the snapshot and search path it was made with. */
  readonly #recent = new Map<string, { classification: Classification; objects: UpstreamObjects; searchPath: readonly string[] }>();
  #closed = false;
  readonly #masking: SessionMasking | undefined;
  /** SQL-level cursors this session declared, with the shape of their rows (FETCH is masked like the query). */
  readonly #cursors = new Map<string, ResultShape | undefined>();

  constructor(deps: BatonGateDeps, database: string, upstream: UpstreamTarget, lease: ChainLease) {
    const chain = lease.chain;
    this.#lease = lease;
    this.#deps = deps;
    this.#database = database;
    this.upstream = upstream;
    this.limitKey = chain.limitKey;
    this.#chain = chain;
    // read_unmasked on the whole upstream (admins' "*"): nothing is masked, detectors included
    this.#masking = deps.masking && !this.#mayUnmask(`pg:${database}/*`)
      ? new SessionMasking({ ...deps.masking, mayUnmask: (relation) => this.#mayUnmask(relation) })
      : undefined;
  }

  /** `read_unmasked` on the relation (any failure: no). */
  #mayUnmask(relation: string): boolean {
    return this.#chain.allows(relation, 'read_unmasked', (this.#deps.now ?? (() => new Date()))());
  }

  /**
   * Masking of each statement's rows, and what the audit records of it. Cursors: DECLARE remembers
   * its query's shape, FETCH is masked by it (an unknown cursor as if it read everything).
   */
  #maskStatements(statements: readonly ClassifiedStatement[]): { mask?: (ResultMask | undefined)[]; columns: string[]; predicates: string[]; copyRefused?: boolean; launders?: string[] } {
    const masking = this.#masking;
    if (!masking) return { columns: [], predicates: [] };
    const mask: (ResultMask | undefined)[] = [];
    const columns: string[] = [];
    const predicates: string[] = [];
    let copyRefused = false;
    const launders: string[] = [];
    for (const s of statements) {
      launders.push(...masking.maskedWrites(s.result));
      let shape = s.result;
      if (s.cursor?.action === 'declare') {
        this.#cursors.set(s.cursor.name, s.result);
        shape = undefined; // DECLARE itself returns no rows; its predicates still count
        predicates.push(...masking.statement(s.result).predicates);
      } else if (s.cursor?.action === 'fetch') {
        shape = this.#cursors.has(s.cursor.name) ? this.#cursors.get(s.cursor.name) : UNKNOWN_CURSOR;
      } else if (s.cursor?.action === 'close') {
        if (s.cursor.name === '*') this.#cursors.clear();
        else this.#cursors.delete(s.cursor.name);
      }
      const m = masking.statement(shape);
      mask.push(m.mask);
      columns.push(...m.columns);
      predicates.push(...m.predicates);
      if (m.mask && s.copyOut === 'other') copyRefused = true;
    }
    return { ...(mask.some((m) => m !== undefined) ? { mask } : {}), columns: [...new Set(columns)], predicates: [...new Set(predicates)], ...(copyRefused ? { copyRefused } : {}), ...(launders.length ? { launders: [...new Set(launders)] } : {}) };
  }

  /**
   * Synchronous when everything it needs is in memory (the common case: keys and the upstream
   * snapshot current, the statement classified before, its entry allowed to overlap), so the relay
   * can forward in the same turn; a promise otherwise.
   */
  check(sql: string, phase: CheckPhase, context?: CheckContext): CheckResult | Promise<CheckResult> {
    const started = performance.now();
    const now = (this.#deps.now ?? (() => new Date()))();
    // 1. the token is still alive (per statement: a 5-minute token stops at 5 minutes)
    const refusal = this.#chain.liveness(now, this.#deps.revocations);
    if (refusal?.kind === 'unavailable') return { allow: false, sqlstate: SQLSTATE.cannotConnectNow, message: `baton: ${refusal.message}` };
    if (refusal) return this.#deny(phase, refusal.message, undefined, { sqlstate: SQLSTATE.invalidPassword, fatal: true });
    // a retired root key withdraws every token it signed, like a revocation (memory only: the key
    // source keeps its set fresh in the background and throws when it cannot confirm it is current)
    return settle(() => this.#deps.keys(), unavailable, (keys) => {
      if (!isPublished(keys, this.#chain.token.rootKeyId)) {
        return this.#deny(phase, `the token's root key (${this.#chain.token.rootKeyId}) has been retired`, undefined, { sqlstate: SQLSTATE.invalidPassword, fatal: true });
      }
      // 2. what does the SQL touch?
      return settle(() => this.#deps.objects(this.#database), unavailable, (objects) =>
        settle(() => this.#classify(sql, objects), unavailable, (classification) => this.#decide(sql, phase, context, classification, now, started)),
      );
    });
  }

  /**
   * Classification through a small per-session memo keyed by the SQL string itself (a prepared
   * statement's Execute passes the same string every time), valid for one snapshot and search path.
   */
  #classify(sql: string, objects: UpstreamObjects): Classification | Promise<Classification> {
    const hit = this.#recent.get(sql);
    if (hit !== undefined && hit.objects === objects && hit.searchPath === this.#searchPath) return hit.classification;
    const ctx: ClassifyContext = {
      upstream: this.#database,
      searchPath: this.#searchPath,
      objects,
      ...(this.#deps.maxStatementTimeoutMs ? { maxStatementTimeoutMs: this.#deps.maxStatementTimeoutMs } : {}),
    };
    const searchPath = this.#searchPath;
    // large statements are classified in a worker thread (a promise); small ones synchronously
    const remember = (classification: Classification) => {
      if (this.#recent.size >= RECENT_STATEMENTS) this.#recent.delete(this.#recent.keys().next().value!);
      this.#recent.set(sql, { classification, objects, searchPath });
      return classification;
    };
    const classified = this.#deps.classify(sql, ctx);
    return classified instanceof Promise ? classified.then(remember) : remember(classified);
  }

  #decide(sql: string, phase: CheckPhase, context: CheckContext | undefined, classification: Classification, now: Date, started: number): CheckResult | Promise<CheckResult> {
    if (!classification.ok) return this.#deny(phase, `statement refused: ${classification.reason}`, undefined);
    if (this.#deps.pooling === 'transaction') {
      const stateful = classification.statements.find((s) => s.sessionState !== undefined);
      if (stateful) {
        const message = `${stateful.sessionState} is not available: this proxy shares upstream connections between transactions (proxy.pooling: transaction)`;
        return this.#deny(phase, message, classification, { sqlstate: SQLSTATE.featureNotSupported });
      }
    }
    // 3. every (resource, operation) on its own
    const accesses = classification.statements.flatMap((s) => s.accesses);
    for (const access of accesses) {
      const decision = this.#chain.authorize(access.resource, access.operation, now);
      if (!decision.allow) {
        const message = `permission denied for ${access.operation} on ${access.resource}: ${this.#chain.explain(decision.failedBlock)}`;
        return this.#deny(phase, message, classification, { access });
      }
    }
    // search_path changes: resolution uses the UNION of every path the session has set. Tracking the
    // exact path would mean following SET LOCAL, rollbacks and RESET; the union is never narrower than
    // what the upstream resolves against (an unqualified name needs rights on every candidate schema).
    for (const s of classification.statements) {
      const next = s.sessionEffect?.searchPath;
      if (next && next.some((schema) => !this.#searchPath.includes(schema))) this.#searchPath = [...this.#searchPath, ...next.filter((x) => !this.#searchPath.includes(x))];
    }
    const masked = this.#maskStatements(classification.statements);
    if (masked.launders) {
      return this.#deny(phase, `the statement would copy masked column(s) ${masked.launders.join(', ')} into a table (the copy would not be masked); read them masked instead`, classification);
    }
    if (masked.copyRefused) {
      return this.#deny(phase, 'COPY of masked columns is supported only in text format with the default delimiter (use FORMAT text, or SELECT)', classification, { sqlstate: '0A000' });
    }
    const maskAudit = masked.columns.length || masked.predicates.length ? { columns: masked.columns.slice(0, 256), ...(masked.predicates.length ? { predicates: masked.predicates.slice(0, 256) } : {}) } : undefined;
    // nothing runs at Parse; Execute is audited (the mask rides along so Describe answers are masked too)
    if (phase === 'parse') return masked.mask ? { allow: true, mask: masked.mask } : { allow: true };
    // what the relay applies to the answers: row masks, and values scrubbed out of errors
    const scrubErrors = this.#masking?.touchesMasked(accesses) ? this.#masking.scrubErrors : undefined;
    const wire: WireMasking = { ...(masked.mask ? { mask: masked.mask } : {}), ...(scrubErrors ? { scrubErrors } : {}) };
    // 3b. statements that wait for a person (DESIGN.md rule 7)
    const rules = approvalRulesHit(classification.statements, this.#deps.approvals?.rules ?? [], this.#chain.approvalOps);
    const estimated = this.#rowsAboveRules(classification.statements);
    const held: HeldStatement = { sql, context, classification, accesses, wire, maskAudit, started };
    if (estimated.length) return this.#afterEstimate(held, rules, estimated);
    if (rules.length) return this.#approved(held, rules);
    // 4. the audit entry (DESIGN.md rule 6). A read — or a write inside an explicit transaction
    // block — may run while its entry is in flight: the relay holds its answers (and the block's
    // COMMIT) until the entry is durable. Everything else is durable BEFORE it is forwarded.
    const changesObjects = accesses.some((a) => OBJECT_CHANGING.has(a.operation));
    if (changesObjects) this.#deps.objectsMayHaveChanged?.(this.#database);
    const txControl = mayChangeTransactionBlock(classification);
    const event = { ...this.#event('allow', undefined, classification, accesses), ...(maskAudit ? { masking: maskAudit } : {}) };
    if (this.#deps.ordering !== 'strict' && mayOverlapAudit(classification, context?.inTransactionBlock === true)) {
      const receipt = this.#deps.audit.append(event);
      const durable = receipt.then(
        () => undefined,
        (err: unknown) => {
          const e = asBatonError(err);
          this.#deps.log?.({ event: 'audit.unavailable', code: e.code, detail: e.detail });
          throw e;
        },
      );
      return { allow: true, ticket: { receipt, startedAt: started, changesObjects } satisfies Ticket, durable, txControl, holdAnswers: answersReveal(classification), ...wire };
    }
    return this.#durableFirst(event, started, changesObjects, txControl, wire);
  }

  /** `rows-above` rules that apply to these statements (row writes on their resources). */
  #rowsAboveRules(statements: readonly ClassifiedStatement[]): ApprovalRule[] {
    const rules = this.#deps.approvals?.rules.filter((r) => r.when === 'rows-above') ?? [];
    if (rules.length === 0) return [];
    const writes = statements.filter((s) => s.accesses.some((a) => a.operation === 'insert' || a.operation === 'update' || a.operation === 'delete'));
    return rules.filter((r) => writes.some((s) => !r.resources || s.accesses.some((a) => r.resources!.some((p) => covers(p, a.resource)))));
  }

  /**
   * Writes under a `rows-above` rule: the planner's estimate (EXPLAIN on the proxy's own connection)
   * decides whether they also need approval; an estimate that cannot be made counts as above.
   */
  async #afterEstimate(held: HeldStatement, rules: string[], estimated: ApprovalRule[]): Promise<CheckResult> {
    const { sql, context, classification, accesses, wire, maskAudit, started } = held;
    const values = classification.statements.length === 1 ? textParameters(context?.parameters) : undefined;
    const rows = values === undefined ? undefined : await estimateRows(this.upstream, sql, values);
    const over = estimated.filter((r) => rows === undefined || rows > r.rows!).map((r) => (rows === undefined ? `${r.name} (no estimate)` : `${r.name} (~${Math.round(rows)} rows)`));
    const all = [...rules, ...over];
    if (all.length) return this.#approved(held, all);
    const changesObjects = accesses.some((a) => OBJECT_CHANGING.has(a.operation));
    const event = { ...this.#event('allow', undefined, classification, accesses), ...(maskAudit ? { masking: maskAudit } : {}) };
    return this.#durableFirst(event, started, changesObjects, mayChangeTransactionBlock(classification), wire);
  }

  /**
   * A statement an approval rule holds: it runs only with an approved, unused, unexpired approval
   * bound to this chain's last block and to this exact statement (text and parameter values);
   * otherwise it is refused with the approval id and where to approve it. Never overlapped: the
   * entry (naming the approval) is durable before the statement is forwarded.
   */
  async #approved(held: HeldStatement, rules: string[]): Promise<CheckResult> {
    const { sql, context, classification, accesses, wire, maskAudit, started } = held;
    const desk = this.#deps.approvals?.desk;
    if (!desk) return this.#deny('query', `statement needs approval (${rules.join(', ')}) but this proxy has no approval store`, classification, { sqlstate: APPROVAL_SQLSTATE.pending });
    const hash = createHash('sha256').update(sql, 'utf8');
    if (context?.parameters) hash.update('\u0000').update(context.parameters);
    const statements = classification.statements;
    let admitted;
    try {
      admitted = await desk.admit({
        binding: { revocationId: this.#chain.lastRevocationId, statementHash: hash.digest('hex') },
        revocationIds: this.#chain.token.revocationIds,
        upstream: this.#database,
        statement: sql.slice(0, 100_000),
        normalized: statements.map((s) => s.normalized).join('; ').slice(0, 100_000),
        accesses: uniqueAccesses(accesses),
        rules,
        lineage: this.#chain.auditLineage,
        ...(this.#chain.tokenId ? { tokenId: this.#chain.tokenId } : {}),
      });
    } catch (err) {
      const e = asBatonError(err);
      this.#deps.log?.({ event: 'approvals.unavailable', code: e.code, detail: e.detail });
      return { allow: false, sqlstate: SQLSTATE.cannotConnectNow, message: 'baton: the approval store is unavailable; statement refused (nothing was run)' };
    }
    if (admitted.state !== 'approved') {
      const message =
        admitted.state === 'pending'
          ? `approval required (${rules.join(', ')}): request ${admitted.id} is pending; an approver can approve it at ${admitted.url} (or: baton approvals approve ${admitted.id}); then run the same statement again`
          : `approval ${admitted.id} was denied: ${admitted.reason}`;
      return this.#deny('query', message, classification, { sqlstate: admitted.state === 'pending' ? APPROVAL_SQLSTATE.pending : APPROVAL_SQLSTATE.denied, approvalId: admitted.id });
    }
    const changesObjects = accesses.some((a) => OBJECT_CHANGING.has(a.operation));
    if (changesObjects) this.#deps.objectsMayHaveChanged?.(this.#database);
    const event: AuditEventInput = {
      ...this.#event('allow', `approved by ${admitted.approver} (${admitted.id})`, classification, accesses),
      approvalId: admitted.id,
      ...(maskAudit ? { masking: maskAudit } : {}),
    };
    const kinds = [...new Set(statements.map((s) => s.kind.toUpperCase()))].join(', ');
    const notice = `baton: running this ${kinds} under approval ${admitted.id} (approved by ${admitted.approver}; single use)`;
    return this.#durableFirst(event, started, changesObjects, mayChangeTransactionBlock(classification), { ...wire, notice });
  }

  /** Everything that may not overlap: the entry is durable before the statement is forwarded. */
  async #durableFirst(event: AuditEventInput, started: number, changesObjects: boolean, txControl: boolean, wire: WireMasking = {}): Promise<CheckResult> {
    try {
      const receipt = await this.#deps.audit.append(event);
      return { allow: true, ticket: { receipt, startedAt: started, changesObjects } satisfies Ticket, txControl, ...wire };
    } catch (err) {
      const e = asBatonError(err);
      this.#deps.log?.({ event: 'audit.unavailable', code: e.code, detail: e.detail });
      return { allow: false, sqlstate: SQLSTATE.cannotConnectNow, message: 'baton: audit store unavailable; statement refused (nothing was run)' };
    }
  }

  outcome(ticket: unknown, outcome: StatementOutcome): void {
    const t = ticket as Ticket;
    // again once it ran: a reload started between the allow and the commit may have missed it
    if (t.changesObjects) this.#deps.objectsMayHaveChanged?.(this.#database);
    const durationMs = performance.now() - t.startedAt;
    // An overlapped statement may finish before its entry is durable: the outcome follows the entry
    // (and is not recorded at all if the entry failed: the statement's answers were withheld).
    Promise.resolve(t.receipt)
      .then((receipt) =>
        this.#deps.audit.recordOutcome(
          { id: receipt.id },
          {
          ...(outcome.rows !== undefined ? { rowCount: outcome.rows } : {}),
          ...(outcome.sqlstate ? { sqlstate: outcome.sqlstate } : {}),
          ...(outcome.maskedValues ? { maskedValues: outcome.maskedValues } : {}),
            tag: outcome.tag ?? outcome.status,
            durationMs,
          },
        ),
      )
      .catch((err: unknown) => this.#deps.log?.({ event: 'audit.outcome_failed', detail: asBatonError(err).detail }));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#lease.release();
  }

  async #deny(
    phase: CheckPhase,
    reason: string,
    classification: Classification | undefined,
    opts: { access?: { resource: string; operation: string }; sqlstate?: string; fatal?: boolean; approvalId?: string } = {},
  ): Promise<CheckResult> {
    const statements = classification?.ok ? classification.statements : [];
    try {
      const event = this.#event('deny', reason, classification, statements.flatMap((s) => s.accesses), opts.access);
      await this.#deps.audit.append(opts.approvalId ? { ...event, approvalId: opts.approvalId } : event);
    } catch (err) {
      // the denial stands either way; record that its audit entry could not be written
      this.#deps.log?.({ event: 'audit.deny_unrecorded', phase, detail: asBatonError(err).detail });
    }
    return { allow: false, sqlstate: opts.sqlstate ?? SQLSTATE.insufficientPrivilege, message: `baton: ${reason}`, ...(opts.fatal ? { fatal: true } : {}) };
  }

  #event(
    decision: 'allow' | 'deny',
    reason: string | undefined,
    classification: Classification | undefined,
    accesses: readonly { resource: string; operation: string }[],
    denied?: { resource: string; operation: string },
  ): AuditEventInput {
    const statements = classification?.ok ? classification.statements : [];
    const first = denied ?? accesses[0];
    return {
      source: 'proxy-pg',
      action: 'statement',
      decision,
      ...(reason ? { reason } : {}),
      lineage: this.#chain.auditLineage,
      ...(this.#chain.tokenId ? { tokenId: this.#chain.tokenId } : {}),
      ...(first ? { resource: first.resource, operation: first.operation } : {}),
      accesses: uniqueAccesses(accesses).slice(0, 256),
      ...(statements.length ? { fingerprint: statements.map((s) => s.fingerprint).join(',').slice(0, 256), normalized: statements.map((s) => s.normalized).join('; ').slice(0, 100_000) } : {}),
    };
  }
}

function uniqueAccesses(accesses: readonly { resource: string; operation: string }[]) {
  return [...new Map(accesses.map((a) => [`${a.resource}\u0000${a.operation}`, { resource: a.resource, operation: a.operation }])).values()];
}

