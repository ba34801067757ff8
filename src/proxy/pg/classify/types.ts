import type { UpstreamObjects } from './upstream-objects.ts';
import type { ResultShape } from './provenance.ts';

/**
 * Public types of the SQL classifier. The proxy authorizes every `Access` of every statement on its
 * own (DESIGN.md security rule 1); the classifier's only job is to list them completely.
 */

/** What a statement does to one resource. `execute` is a call of a non-built-in function. */
export type PgOperation = 'read' | 'insert' | 'update' | 'delete' | 'truncate' | 'ddl' | 'admin' | 'execute';

/**
 * One (resource, operation) pair the caller's token must allow.
 *
 * `resource` is `pg:<upstream>/<schema>.<relation>`, `pg:<upstream>/<schema>.<function>()`,
 * `pg:<upstream>/<schema>.*` (a whole schema, e.g. DROP SCHEMA) or `pg:<upstream>/*` (admin).
 * Identifiers that are not plain lower-case names are double-quoted like PostgreSQL's
 * `quote_ident` (`public."Orders"`), so a quoted name containing `.` or `*` can never look like
 * another schema or a wildcard.
 *
 * @example { resource: 'pg:appdb/public.orders', operation: 'read' }
 */
export interface Access {
  readonly resource: string;
  readonly operation: PgOperation;
}

/**
 * How a statement changes the session state the classifier depends on.
 * `searchPath` is the new path after `SET search_path`; `resetSearchPath` means it went back to the
 * connection's default (RESET, SET … TO DEFAULT, DISCARD ALL). `local` marks SET LOCAL (reverts at
 * transaction end).
 */
export interface SessionEffect {
  readonly searchPath?: readonly string[];
  readonly resetSearchPath?: true;
  readonly local?: true;
}

/** One classified statement of a (possibly multi-statement) SQL string. */
export interface ClassifiedStatement {
  /** Statement kind, e.g. `select`, `insert`, `copy`, `set`, `transaction`, `create_table`. */
  readonly kind: string;
  /** Every distinct (resource, operation) the statement needs, each once. */
  readonly accesses: readonly Access[];
  /**
   * 16 hex digits hashing the statement's token sequence from PostgreSQL's lexer with literals
   * blanked: stable across literal values, spacing, comments and keyword case.
   */
  readonly fingerprint: string;
  /** The statement with every literal replaced by `$n` and comments removed: no literal values ever. */
  readonly normalized: string;
  readonly sessionEffect?: SessionEffect;
  /**
   * State the statement leaves on the upstream connection after its transaction (a session SET,
   * SQL-level PREPARE, LISTEN, a temporary object, a session advisory lock, a WITH HOLD cursor …),
   * described for an error message. Transaction pooling refuses such statements.
   */
  readonly sessionState?: string;
  /** INSERT/UPDATE/DELETE/MERGE … RETURNING: the statement sends rows to the client. */
  readonly returnsRows?: true;
  /** Where each result column comes from (masking); absent when the statement returns no rows. */
  readonly result?: ResultShape;
  /** UPDATE or DELETE without a WHERE clause (every row): approval rules look at it. */
  readonly unfiltered?: true;
  /** A cursor this statement declares (DECLARE), closes (CLOSE) or reads (FETCH/MOVE); `*` = CLOSE ALL. */
  readonly cursor?: { readonly name: string; readonly action: 'declare' | 'fetch' | 'close' };
  /** COPY … TO STDOUT: `text` (default format and delimiter, which the proxy can mask row by row) or `other`. */
  readonly copyOut?: 'text' | 'other';
}

/** Failure codes (registered in `src/errors.ts`). */
export type ClassifyErrorCode = 'BATON_ERR_SQL_UNPARSABLE' | 'BATON_ERR_SQL_UNSUPPORTED';

/**
 * Result of classifying one SQL string. On failure `reason` is built only from fixed text, node-type
 * names and numbers: it never echoes SQL text or parser messages.
 */
export type Classification =
  | { readonly ok: true; readonly statements: readonly ClassifiedStatement[] }
  | { readonly ok: false; readonly code: ClassifyErrorCode; readonly reason: string };

/**
 * Session state needed to resolve names.
 *
 * @example { upstream: 'appdb', searchPath: ['public'] }
 */
export interface ClassifyContext {
  /** Upstream name used in resources (`pg:<upstream>/…`); `[A-Za-z0-9_.-]+`. */
  readonly upstream: string;
  /** The session's effective search_path, in order (default `['public']`). */
  readonly searchPath: readonly string[];
  /** Expands a `$user` search-path entry; without it `$user` stays a (never granted) schema name. */
  readonly sessionUser?: string;
  /**
   * The upstream's user-defined functions, operators and types (see `upstream-objects.ts`). Without
   * it the upstream is taken to have none: the proxy always passes its loaded snapshot.
   */
  readonly objects?: UpstreamObjects;
  /**
   * The largest `statement_timeout` (ms) a session may set; without it any value is allowed. With
   * it, `SET statement_timeout` to 0 (none) or above the cap needs `admin`.
   */
  readonly maxStatementTimeoutMs?: number;
}
