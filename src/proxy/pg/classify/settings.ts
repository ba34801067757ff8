/**
 * SET / RESET / SHOW / DISCARD. Ordinary session settings need no right; anything else needs
 * `admin`. The list is an allow-list on purpose: a setting not reviewed here can change identity
 * (`role`, `session_authorization`), disable triggers or foreign keys (`session_replication_role`),
 * change how the server lexes the next statement (`standard_conforming_strings`, a non-UTF8
 * `client_encoding`: both could make the server see a statement boundary our parser does not), or
 * feed row-level-security policies (custom `app.*` settings read with `current_setting`).
 */
import type { SessionEffect } from './types.ts';
import type { ClassifyLimits } from './walk.ts';
import { list, type Obj, optObj, optStr, stringConst, unwrap } from './ast.ts';
import { Unsupported } from './unsupported.ts';

/** Settings any session may change: formatting, planner and resource knobs, timeouts. */
const ORDINARY = new Set([
  'application_name', 'client_min_messages', 'datestyle', 'intervalstyle', 'timezone',
  'extra_float_digits', 'bytea_output', 'xmlbinary', 'xmloption', 'lc_messages', 'lc_monetary',
  'lc_numeric', 'lc_time', 'default_text_search_config', 'array_nulls', 'quote_all_identifiers',
  'lock_timeout', 'idle_in_transaction_session_timeout', 'idle_session_timeout',
  'transaction_timeout', 'default_transaction_isolation', 'default_transaction_read_only',
  'default_transaction_deferrable', 'transaction_isolation', 'transaction_read_only',
  'transaction_deferrable', 'synchronous_commit', 'work_mem', 'maintenance_work_mem',
  'hash_mem_multiplier', 'temp_buffers', 'effective_cache_size', 'effective_io_concurrency',
  'maintenance_io_concurrency', 'random_page_cost', 'seq_page_cost', 'cpu_tuple_cost',
  'cpu_index_tuple_cost', 'cpu_operator_cost', 'parallel_setup_cost', 'parallel_tuple_cost',
  'min_parallel_table_scan_size', 'min_parallel_index_scan_size', 'max_parallel_workers_per_gather',
  'max_parallel_maintenance_workers', 'jit', 'jit_above_cost', 'jit_inline_above_cost',
  'jit_optimize_above_cost', 'geqo', 'geqo_threshold', 'from_collapse_limit', 'join_collapse_limit',
  'plan_cache_mode', 'constraint_exclusion', 'cursor_tuple_fraction', 'default_statistics_target',
  'recursive_worktable_factor', 'gin_fuzzy_search_limit', 'check_function_bodies',
  'default_table_access_method', 'default_toast_compression', 'vacuum_cost_delay',
  'vacuum_cost_limit', 'exit_on_error',
]);

/** The VAR_SET_MULTI forms (SET TRANSACTION …, SET SESSION CHARACTERISTICS …). */
const ORDINARY_MULTI = new Set(['TRANSACTION', 'SESSION CHARACTERISTICS', 'TRANSACTION SNAPSHOT']);

/** What a SET/RESET needs and does. */
export interface SetVerdict {
  readonly admin: boolean;
  readonly effect?: SessionEffect;
  /** It sets a value for the rest of the session (not SET LOCAL, not RESET, not SET TRANSACTION). */
  readonly outlivesTransaction?: true;
}

/**
 * Judge a `VariableSetStmt`. `search_path` is allowed and reported as a session effect; each
 * argument is one schema name (PostgreSQL quotes each SET argument as one identifier).
 */
export function judgeSet(b: Obj, limits: ClassifyLimits = {}): SetVerdict {
  const verdict = judgeSetRights(b, limits);
  return outlivesTransaction(b) ? { ...verdict, outlivesTransaction: true } : verdict;
}

/**
 * A session-level SET: a value that stays after the transaction ends. RESET returns to the
 * connection's default (what a pooled connection has anyway); SET LOCAL and SET TRANSACTION end with
 * the transaction.
 */
function outlivesTransaction(b: Obj): boolean {
  if (b.is_local === true) return false;
  const kind = optStr(b.kind);
  if (kind === 'VAR_RESET' || kind === 'VAR_RESET_ALL') return false;
  if (kind === 'VAR_SET_MULTI') return optStr(b.name) === 'SESSION CHARACTERISTICS';
  return true;
}

function judgeSetRights(b: Obj, limits: ClassifyLimits): SetVerdict {
  const kind = optStr(b.kind);
  const name = optStr(b.name) ?? '';
  const local = b.is_local === true ? ({ local: true } as const) : {};
  if (kind === 'VAR_RESET_ALL') return { admin: false, effect: { resetSearchPath: true, ...local } };
  if (kind === 'VAR_SET_MULTI') return { admin: !ORDINARY_MULTI.has(name) };
  if (name === 'search_path') {
    if (kind === 'VAR_SET_VALUE') {
      const path = list(b.args).map((a) => {
        const s = stringConst(a);
        if (s === undefined) throw new Unsupported('search_path value is not a name');
        return s;
      });
      return { admin: false, effect: { searchPath: path.filter((s) => s !== ''), ...local } };
    }
    if (kind === 'VAR_SET_DEFAULT' || kind === 'VAR_RESET') {
      return { admin: false, effect: { resetSearchPath: true, ...local } };
    }
    return { admin: true };
  }
  if (name === 'statement_timeout' && kind === 'VAR_SET_VALUE') {
    return { admin: !withinCap(list(b.args)[0], limits.maxStatementTimeoutMs) };
  }
  if (name === 'client_encoding' && kind === 'VAR_SET_VALUE') {
    const value = stringConst(list(b.args)[0]) ?? '';
    return { admin: !/^(utf-?8|unicode)$/i.test(value) };
  }
  if (kind === 'VAR_SET_VALUE' || kind === 'VAR_SET_DEFAULT' || kind === 'VAR_RESET') {
    // RESET/DEFAULT of statement_timeout returns to the value the proxy pinned at start-up.
    return { admin: !ORDINARY.has(name) && name !== 'statement_timeout' && !name.startsWith('enable_') };
  }
  // VAR_SET_CURRENT (SET … FROM CURRENT) and future kinds
  return { admin: true };
}

/** PostgreSQL's time units for a `statement_timeout` given as a string (`'5s'`, `'250ms'`). */
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * True when a `SET statement_timeout` value is a literal within `(0, cap]` ms (0 means "no timeout").
 * Without a cap any value is allowed. Anything not plainly a number with a unit is refused.
 */
function withinCap(arg: unknown, cap: number | undefined): boolean {
  if (cap === undefined || cap <= 0) return true;
  const ms = timeoutMs(arg);
  return ms !== undefined && ms > 0 && ms <= cap;
}

function timeoutMs(arg: unknown): number | undefined {
  const n = unwrap(arg);
  if (n === undefined || n[0] !== 'A_Const') return undefined;
  const ival = optObj(n[1].ival);
  if (ival !== undefined) return typeof ival.ival === 'number' ? ival.ival : 0; // integer: milliseconds (0 is omitted)
  const text = stringConst(arg);
  const m = text === undefined ? null : /^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|h|d)?\s*$/.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * UNIT_MS[m[2] ?? 'ms']!;
}
