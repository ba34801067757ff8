/**
 * The tree walk: finds every relation and function a statement touches, anywhere in its tree.
 *
 * Fail-closed design:
 * - the walk descends into EVERY field of every node, so a relation in a clause we never thought
 *   about is still found (inlined RangeVars are recognised by shape);
 * - only node types listed in KNOWN_NODES (plus the ones with handlers) may appear; any other
 *   node type — e.g. one added by a future parser — makes the statement unsupported;
 * - a bare relation gets the context's operation (`read` in queries, `ddl` in DDL), never none.
 */
import type { Access, PgOperation } from './types.ts';
import type { Resolver } from './names.ts';
import { parseQualifiedName } from './names.ts';
import { isFreeCatalogRead, isKnownCatalogRelation } from './catalog.ts';
import { judgeFunction, SAFE_SETTINGS } from './functions.ts';
import { expectNode, isObj, list, nameList, type Obj, optObj, optStr, someNode, stringConst, unwrap } from './ast.ts';
import { Unsupported } from './unsupported.ts';

/** Limits a session may not lift with SET. */
export interface ClassifyLimits {
  readonly maxStatementTimeoutMs?: number;
}

/** CTE names visible at a point of the tree (a chain of WITH levels). */
interface Scope {
  readonly names: ReadonlySet<string>;
  readonly parent: Scope | undefined;
}

/** Where in the tree the walk is. */
export interface WalkCtx {
  readonly scope: Scope | undefined;
  /** Operation for a relation met without a more specific rule. */
  readonly relOp: PgOperation;
  /** Inside the FROM clause of a SELECT … FOR UPDATE/SHARE: relations also need `update`. */
  readonly lockRows?: boolean;
}

/** How a relation name is looked up. */
type RelMode =
  | 'lookup' // may be a CTE name in scope
  | 'target' // DML/DDL target: PostgreSQL never resolves it to a CTE
  | 'create'; // a new object: created in the first search-path schema

/** Context of a top-level query (`read`) or DDL statement (`ddl`). */
export function rootCtx(relOp: PgOperation): WalkCtx {
  return { scope: undefined, relOp };
}

/**
 * Expression, clause and DDL-element node types that carry no access by themselves. Their fields
 * are still walked. Analyzer-only nodes (Var, Aggref, Query, …) never occur in a raw parse tree
 * and are deliberately absent.
 */
const KNOWN_NODES = new Set([
  'Integer', 'Float', 'Boolean', 'String', 'BitString', 'List', 'A_Const', 'Alias', 'ColumnRef',
  'ParamRef', 'A_Expr', 'TypeCast', 'TypeName', 'CollateClause', 'RoleSpec', 'A_Star', 'A_Indices',
  'A_Indirection', 'A_ArrayExpr', 'ResTarget', 'MultiAssignRef', 'SortBy', 'WindowDef',
  'RangeSubselect', 'RangeFunction', 'RangeTableFunc', 'RangeTableFuncCol', 'RangeTableSample',
  'JoinExpr', 'BoolExpr', 'SubLink', 'CaseExpr', 'CaseWhen', 'RowExpr', 'CoalesceExpr',
  'MinMaxExpr', 'SQLValueFunction', 'XmlExpr', 'XmlSerialize', 'NullTest', 'BooleanTest',
  'SetToDefault', 'CurrentOfExpr', 'NamedArgExpr', 'GroupingSet', 'GroupingFunc', 'LockingClause',
  'MergeWhenClause', 'InferClause', 'OnConflictClause', 'ReturningClause', 'ReturningOption',
  'CTESearchClause', 'CTECycleClause', 'DefElem', 'IndexElem', 'SortGroupClause',
  'JsonFormat', 'JsonReturning', 'JsonValueExpr', 'JsonIsPredicate', 'JsonBehavior', 'JsonOutput',
  'JsonArgument', 'JsonFuncExpr', 'JsonTablePathSpec', 'JsonTable', 'JsonTableColumn',
  'JsonKeyValue', 'JsonParseExpr', 'JsonScalarExpr', 'JsonSerializeExpr', 'JsonObjectConstructor',
  'JsonArrayConstructor', 'JsonArrayQueryConstructor', 'JsonAggConstructor', 'JsonObjectAgg',
  'JsonArrayAgg',
  // DDL elements (only reachable from DDL statements, which set relOp = 'ddl')
  'ColumnDef', 'PartitionElem', 'PartitionSpec', 'PartitionBoundSpec', 'PartitionRangeDatum',
  'PartitionCmd', 'AlterTableCmd', 'ATAlterConstraint', 'ReplicaIdentityStmt', 'ObjectWithArgs',
  'FunctionParameter', 'AccessPriv', 'StatsElem', 'VacuumRelation', 'TriggerTransition',
]);

/** A resource in the session's own temporary schema (`pg_temp`, `pg_temp_<n>`). */
const TEMP_SCHEMA = /^pg:[^/]+\/pg_temp(_\d+)?\./;

/** Functions whose effect outlives the transaction that calls them, by name in any schema. */
const SESSION_STATE_FUNCTIONS: ReadonlyMap<string, string> = new Map([
  ['pg_advisory_lock', 'a session-level advisory lock (pg_advisory_xact_lock is available)'],
  ['pg_advisory_lock_shared', 'a session-level advisory lock (pg_advisory_xact_lock_shared is available)'],
  ['pg_try_advisory_lock', 'a session-level advisory lock (pg_try_advisory_xact_lock is available)'],
  ['pg_try_advisory_lock_shared', 'a session-level advisory lock (pg_try_advisory_xact_lock_shared is available)'],
  ['set_config', 'set_config() (it may change a setting for the whole session; use SET LOCAL)'],
  ['dblink_connect', 'a persistent dblink connection'],
  ['dblink_connect_u', 'a persistent dblink connection'],
]);

/** Collects the accesses of one statement. */
export class Walker {
  private readonly found = new Map<string, Access>();
  private literalRead = false;
  /** What the statement leaves behind in the upstream session past its transaction (see `leaves`). */
  private leftState: string | undefined;

  constructor(
    readonly names: Resolver,
    /** Session limits some statements are judged against (SET statement_timeout). */
    readonly limits: ClassifyLimits = {},
  ) {}

  /** Distinct accesses in the order first found. */
  get accesses(): Access[] {
    return [...this.found.values()];
  }

  /** Record one access (deduplicated). */
  add(resource: string, operation: PgOperation): void {
    const key = `${operation} ${resource}`;
    if (!this.found.has(key)) this.found.set(key, Object.freeze({ resource, operation }));
  }

  /**
   * True once the walk has looked at a literal's value (`nextval('s')` names its sequence in a
   * string). Such a statement's accesses depend on that value, so its classification must never be
   * shared with a statement that differs only in literals (see `cache.ts`).
   */
  get readsLiteral(): boolean {
    return this.literalRead;
  }

  /**
   * The value of a string literal (optionally cast, `'s'::regclass`), or undefined for anything else.
   * The only way the walk reads a literal: it marks the statement as literal-dependent.
   */
  literalString(value: unknown): string | undefined {
    this.literalRead = true;
    const cast = unwrap(value);
    return stringConst(cast?.[0] === 'TypeCast' ? cast[1].arg : value);
  }

  /**
   * Session state the statement leaves on the upstream connection after its transaction ends (a
   * session SET, a SQL-level prepared statement, LISTEN, a temporary object, a session advisory
   * lock, a WITH HOLD cursor): what transaction pooling cannot carry from one transaction to the next.
   */
  get sessionState(): string | undefined {
    if (this.leftState !== undefined) return this.leftState;
    for (const a of this.found.values()) if (TEMP_SCHEMA.test(a.resource)) return 'a temporary object';
    return undefined;
  }

  /** Record that the statement leaves `what` in the session (the first one found is reported). */
  leaves(what: string): void {
    this.leftState ??= what;
  }

  /** Record `admin` on the whole upstream. */
  admin(): void {
    this.add(this.names.all, 'admin');
  }

  /** Walk any value: a wrapped node, an inlined message, a list or a scalar. */
  visit(value: unknown, ctx: WalkCtx): void {
    if (Array.isArray(value)) {
      for (const v of value) this.visit(v, ctx);
      return;
    }
    if (!isObj(value)) return;
    const node = unwrap(value);
    if (node !== undefined) this.visitNode(node[0], node[1], ctx);
    else this.visitInline(value, ctx);
  }

  /** Walk a wrapped node of a known type; unknown types are unsupported. */
  visitNode(type: string, body: Obj, ctx: WalkCtx): void {
    switch (type) {
      case 'RangeVar':
        return this.relation(body, ctx.relOp, ctx, 'lookup');
      case 'FuncCall':
        return this.funcCall(body, ctx);
      case 'ColumnRef':
        return this.columnRef(body, ctx);
      case 'A_Indirection':
        return this.indirection(body, ctx);
      case 'A_Expr':
        this.operator(body.kind, body.name);
        return this.visitFields(body, ctx, ['name']);
      case 'SubLink':
        if (body.operName !== undefined) this.operator('AEXPR_OP', body.operName);
        return this.visitFields(body, ctx, ['operName']);
      case 'SortBy':
        if (body.useOp !== undefined) this.operator('AEXPR_OP', body.useOp);
        else this.implicitComparisons();
        return this.visitFields(body, ctx, ['useOp']);
      case 'TypeName':
        return this.typeName(body, ctx);
      case 'RangeTableSample':
        // TABLESAMPLE method(args) calls the method's handler function.
        this.call(nameList(body.method), [], false);
        return this.visitFields(body, ctx, ['method']);
      case 'CaseExpr':
      case 'MinMaxExpr':
        // CASE x WHEN y compares with `=`; GREATEST/LEAST with the type's ordering operators.
        if (type === 'MinMaxExpr' || body.arg !== undefined) this.implicitComparisons();
        return this.visitFields(body, ctx);
      case 'JoinExpr':
        if (body.isNatural === true || list(body.usingClause).length > 0) this.implicitComparisons();
        return this.visitFields(body, ctx);
      case 'SelectStmt':
        return this.select(body, ctx);
      case 'InsertStmt':
        return this.insert(body, ctx);
      case 'UpdateStmt':
        return this.update(body, ctx);
      case 'DeleteStmt':
        return this.delete(body, ctx);
      case 'MergeStmt':
        return this.merge(body, ctx);
      case 'Constraint':
        return this.constraint(body, ctx);
      case 'TableLikeClause':
        this.relation(expectRel(body.relation), 'read', ctx, 'target');
        return this.visitFields(body, ctx, ['relation']);
      default:
        if (!KNOWN_NODES.has(type)) throw new Unsupported(`unsupported node ${type}`);
        return this.visitFields(body, ctx);
    }
  }

  /** Walk every field of `body` except `skip`. */
  visitFields(body: Obj, ctx: WalkCtx, skip: readonly string[] = []): void {
    for (const [key, value] of Object.entries(body)) {
      if (!skip.includes(key)) this.visit(value, ctx);
    }
  }

  /**
   * An inlined message. RangeVars are recognised by shape; inlined messages that need a handler
   * (FuncCall, SelectStmt, IntoClause, WithClause) are only valid where a handler takes them.
   */
  private visitInline(body: Obj, ctx: WalkCtx): void {
    if (typeof body.relname === 'string') return this.relation(body, ctx.relOp, ctx, 'lookup');
    // An inlined TypeName (TypeCast.typeName, ColumnDef.typeName, …): naming a type may run its
    // functions. `names` is a field of TypeName alone in PostgreSQL's node definitions.
    if (Array.isArray(body.names)) return this.typeName(body, ctx);
    if ('funcname' in body || 'limitOption' in body || 'ctes' in body || 'rel' in body) {
      throw new Unsupported('unexpected inline node');
    }
    this.visitFields(body, ctx);
  }

  /**
   * Record `op` on a relation (RangeVar body). Unqualified names may be a CTE (lookup mode) or
   * resolve to several schemas (all recorded). Reads of free catalog relations need nothing.
   */
  relation(rv: Obj, op: PgOperation, ctx: WalkCtx, mode: RelMode): void {
    const name = optStr(rv.relname);
    if (name === undefined || name === '') throw new Unsupported('relation without a name');
    if (rv.catalogname !== undefined) throw new Unsupported('three-part relation name');
    const schema = optStr(rv.schemaname);
    if (schema === undefined && mode === 'lookup' && inScope(ctx.scope, name)) return;
    let schemas: string[];
    if (schema !== undefined) schemas = [schema];
    else if (mode === 'create') schemas = rv.relpersistence === 't' ? ['pg_temp'] : this.names.pathSchemas();
    else schemas = this.names.relationSchemas(name, isKnownCatalogRelation(name));
    for (const s of schemas) {
      const resource = this.names.relation(s, name);
      if (!(op === 'read' && isFreeCatalogRead(s, name))) this.add(resource, op);
      if (ctx.lockRows === true && mode === 'lookup') this.add(resource, 'update');
      this.relationFunctions(s, name, op);
    }
  }

  /**
   * Functions the server runs when `<schema>.<name>` is used this way: output functions of its
   * user-defined column types on read; also their input and assignment casts, defaults, CHECKs and
   * triggers on write (see `upstream-objects.ts`).
   */
  private relationFunctions(schema: string, name: string, op: PgOperation): void {
    const fns = this.names.objects.relations.get(schema)?.get(name);
    if (fns === undefined) return;
    for (const [fs, fn] of op === 'read' ? fns.read : fns.write) this.judgedUser(fs, fn);
  }

  /** Apply a WITH clause: walk each CTE body with the names it may see; return the inner context. */
  private withClause(value: unknown, ctx: WalkCtx): WalkCtx {
    const wc = optObj(value);
    if (wc === undefined) return ctx;
    const ctes = list(wc.ctes).map((c) => expectNode(c, 'CommonTableExpr'));
    const names = ctes.map((c) => optStr(c.ctename) ?? '');
    const all: Scope = { names: new Set(names), parent: ctx.scope };
    ctes.forEach((cte, i) => {
      // Without RECURSIVE a CTE sees only earlier siblings; its own name means an outer object.
      const scope = wc.recursive === true ? all : { names: new Set(names.slice(0, i)), parent: ctx.scope };
      const body: WalkCtx = { scope, relOp: 'read' };
      this.visit(cte.ctequery, body);
      this.visitFields(cte, body, ['ctequery']);
    });
    this.visitFields(wc, ctx, ['ctes']);
    return { ...ctx, scope: all };
  }

  private select(b: Obj, ctx: WalkCtx): void {
    const inner: WalkCtx = { ...this.withClause(b.withClause, ctx), relOp: 'read' };
    const into = optObj(b.intoClause);
    if (into !== undefined) {
      this.relation(expectRel(into.rel), 'ddl', inner, 'create');
      this.visitFields(into, inner, ['rel']);
    }
    for (const side of ['larg', 'rarg'] as const) {
      const arm = optObj(b[side]);
      if (arm !== undefined) this.select(arm, inner);
    }
    // DISTINCT, GROUP BY and UNION/INTERSECT/EXCEPT compare values with the types' operators.
    if (b.distinctClause !== undefined || b.groupClause !== undefined || (b.op !== undefined && b.op !== 'SETOP_NONE')) {
      this.implicitComparisons();
    }
    const skip = ['withClause', 'intoClause', 'larg', 'rarg'];
    if (list(b.lockingClause).length > 0) {
      // FOR UPDATE/SHARE needs UPDATE privilege on the locked tables (PostgreSQL's own rule). The
      // OF list names FROM items by alias, so lock everything in FROM (a superset).
      this.visit(b.fromClause, { ...inner, lockRows: true });
      skip.push('fromClause', 'lockingClause');
    }
    this.visitFields(b, inner, skip);
  }

  private insert(b: Obj, ctx: WalkCtx): void {
    const inner: WalkCtx = { ...this.withClause(b.withClause, ctx), relOp: 'read', lockRows: false };
    const target = expectRel(b.relation);
    this.relation(target, 'insert', inner, 'target');
    const oc = optObj(b.onConflictClause);
    if (oc?.action === 'ONCONFLICT_UPDATE') this.relation(target, 'update', inner, 'target');
    // ON CONFLICT reads existing rows: PostgreSQL requires SELECT on the conflict target's columns,
    // and whether a row was inserted reveals which keys exist (an insert-only token's key oracle).
    if (oc !== undefined && (oc.action === 'ONCONFLICT_UPDATE' || oc.infer !== undefined)) {
      this.relation(target, 'read', inner, 'target');
    }
    if (hasReturning(b)) this.relation(target, 'read', inner, 'target');
    this.visitFields(b, inner, ['withClause', 'relation']);
  }

  private update(b: Obj, ctx: WalkCtx): void {
    const inner: WalkCtx = { ...this.withClause(b.withClause, ctx), relOp: 'read', lockRows: false };
    const target = expectRel(b.relation);
    this.relation(target, 'update', inner, 'target');
    // A WHERE, FROM join, RETURNING or SET x = x observes existing rows: an update-only token must
    // not be a row-count oracle over data it cannot read (PostgreSQL requires SELECT here too).
    if (b.whereClause !== undefined || list(b.fromClause).length > 0 || hasReturning(b) || readsColumns(b.targetList)) {
      this.relation(target, 'read', inner, 'target');
    }
    this.visitFields(b, inner, ['withClause', 'relation']);
  }

  private delete(b: Obj, ctx: WalkCtx): void {
    const inner: WalkCtx = { ...this.withClause(b.withClause, ctx), relOp: 'read', lockRows: false };
    const target = expectRel(b.relation);
    this.relation(target, 'delete', inner, 'target');
    if (b.whereClause !== undefined || list(b.usingClause).length > 0 || hasReturning(b)) {
      this.relation(target, 'read', inner, 'target');
    }
    this.visitFields(b, inner, ['withClause', 'relation']);
  }

  private merge(b: Obj, ctx: WalkCtx): void {
    const inner: WalkCtx = { ...this.withClause(b.withClause, ctx), relOp: 'read', lockRows: false };
    const target = expectRel(b.relation);
    // The join condition always reads the target.
    this.relation(target, 'read', inner, 'target');
    for (const w of list(b.mergeWhenClauses)) {
      const cmd = expectNode(w, 'MergeWhenClause').commandType;
      const op = MERGE_OPS[String(cmd)];
      if (op === undefined) throw new Unsupported('unknown MERGE action');
      if (op !== 'none') this.relation(target, op, inner, 'target');
    }
    this.visitFields(b, inner, ['withClause', 'relation']);
  }

  private constraint(b: Obj, ctx: WalkCtx): void {
    // A foreign key lets its owner probe the referenced table's keys: read it too.
    const pk = optObj(b.pktable);
    if (pk !== undefined) this.relation(pk, 'read', ctx, 'target');
    this.visitFields(b, ctx);
  }

  /**
   * A function call: judge each schema it may resolve to, then walk its arguments. A procedure
   * (CALL) is never a built-in: it needs `execute` on every path schema it may resolve to.
   */
  funcCall(b: Obj, ctx: WalkCtx, procedure = false): void {
    this.call(nameList(b.funcname), list(b.args), procedure);
    this.visitFields(b, ctx, ['funcname']);
  }

  /**
   * Judge a call of `parts` (`[schema?, name]`) with `args` (used only by functions whose verdict
   * depends on a literal argument). Every place where the server calls a function — call syntax,
   * attribute notation, operators, casts, TABLESAMPLE — comes through here, so all are judged alike.
   */
  call(parts: readonly string[], args: readonly unknown[], procedure: boolean): void {
    const name = parts[parts.length - 1];
    if (name === undefined || parts.length > 2) throw new Unsupported('unsupported function name');
    const schemas =
      parts.length === 2 ? [parts[0]!] : procedure ? this.names.pathSchemas() : this.names.functionSchemas(name);
    for (const schema of schemas) this.judged(schema, name, args, procedure);
  }

  /** Record what calling `<schema>.<name>(args)` needs. */
  private judged(schema: string, name: string, args: readonly unknown[], procedure = false): void {
    const verdict = procedure ? { kind: 'execute' as const } : judgeFunction(schema, name);
    const state = SESSION_STATE_FUNCTIONS.get(name);
    if (state !== undefined) this.leaves(state);
    if (verdict.kind === 'admin') this.admin();
    else if (verdict.kind === 'execute') this.add(this.names.func(schema, name), 'execute');
    else if (verdict.kind === 'sequence') this.sequence(args[0], verdict.operation);
    else if (verdict.kind === 'setting') this.setting(args[0]);
  }

  /**
   * `a.b`, `s.t.c`: PostgreSQL resolves a name in field position that is no column to a call
   * `name(row)` (attribute notation). Every such name that is a function anywhere is judged as a call.
   */
  private columnRef(b: Obj, ctx: WalkCtx): void {
    const fields = list(b.fields);
    for (const f of fields.slice(1)) {
      const n = unwrap(f);
      if (n?.[0] === 'String') this.attribute(optStr(n[1].sval) ?? '', undefined);
      else if (n?.[0] !== 'A_Star') throw new Unsupported('unexpected column reference');
    }
    this.visitFields(b, ctx, ['fields']);
  }

  /** `(expr).name[.name…]`: each name may be a call of the previous value (attribute notation). */
  private indirection(b: Obj, ctx: WalkCtx): void {
    let arg: unknown = b.arg;
    for (const step of list(b.indirection)) {
      const n = unwrap(step);
      if (n?.[0] === 'String') this.attribute(optStr(n[1].sval) ?? '', arg);
      arg = undefined; // the next step's argument is a computed value, never a literal
    }
    this.visitFields(b, ctx);
  }

  /** A name in field position: a call `name(arg)` if a function of that name exists. */
  private attribute(name: string, arg: unknown): void {
    if (name === '') throw new Unsupported('empty field name');
    if (this.names.mayBeFunction(name)) this.call([name], [arg], false);
  }

  /**
   * An operator (`a + b`, `x = ANY (…)`, `OPERATOR(s.op)`, `ORDER BY … USING op`): each candidate
   * with a non-built-in implementing function is judged like a call of that function. BETWEEN is
   * `>=` and `<=`.
   */
  private operator(kind: unknown, name: unknown): void {
    const parts = nameList(name);
    const op = parts[parts.length - 1];
    if (op === undefined || parts.length > 2) throw new Unsupported('unsupported operator name');
    const ops = typeof kind === 'string' && kind.includes('BETWEEN') ? ['>=', '<='] : [op];
    const schema = parts.length === 2 ? parts[0] : undefined;
    for (const s of this.names.lookupSchemas(schema)) {
      for (const o of ops) for (const [fs, fn] of this.names.objects.operators.get(s)?.get(o) ?? []) this.judgedUser(fs, fn);
    }
  }

  /**
   * Sorting, grouping, DISTINCT, set operations, JOIN USING, CASE x WHEN and GREATEST/LEAST compare
   * values with the types' own operators, named nowhere in the text: every user-defined comparison
   * operator of the upstream is a candidate.
   */
  private implicitComparisons(): void {
    for (const ops of this.names.objects.operators.values()) {
      for (const o of COMPARISON_OPERATORS) for (const [fs, fn] of ops.get(o) ?? []) this.judgedUser(fs, fn);
    }
  }

  /** A type named anywhere (cast, typed literal, column definition): the functions it may run. */
  private typeName(b: Obj, ctx: WalkCtx): void {
    const parts = nameList(b.names);
    const name = parts[parts.length - 1];
    if (name === undefined || parts.length > 2) throw new Unsupported('unsupported type name');
    for (const s of this.names.lookupSchemas(parts.length === 2 ? parts[0] : undefined)) {
      for (const [fs, fn] of this.names.objects.types.get(s)?.get(name) ?? []) this.judgedUser(fs, fn);
    }
    this.visitFields(b, ctx, ['names']);
  }

  /** A function the server calls implicitly (operator, cast): no literal argument to inspect. */
  private judgedUser(schema: string, name: string): void {
    const verdict = judgeFunction(schema, name);
    if (verdict.kind === 'execute') this.add(this.names.func(schema, name), 'execute');
    else if (verdict.kind !== 'free') this.admin();
  }

  /**
   * `current_setting(name)`: a literal name on the safe list needs nothing; any other name, or a
   * name computed at run time, needs `admin`.
   */
  private setting(arg: unknown): void {
    const name = arg === undefined ? undefined : this.literalString(arg);
    if (name === undefined || !SAFE_SETTINGS.has(name.toLowerCase())) this.admin();
  }

  /** nextval('s') and friends: the sequence is named by a string; anything else is admin. */
  private sequence(arg: unknown, op: 'update' | 'read'): void {
    const text = this.literalString(arg);
    const parts = text === undefined ? undefined : parseQualifiedName(text);
    if (parts === undefined || parts.length > 2) return this.admin();
    const name = parts[parts.length - 1]!;
    const schemas = parts.length === 2 ? [parts[0]!] : this.names.relationSchemas(name, false);
    for (const s of schemas) this.add(this.names.relation(s, name), op);
  }
}

/** Operators a type's default ordering and equality use. */
const COMPARISON_OPERATORS = ['=', '<>', '<', '<=', '>', '>='];

const MERGE_OPS: Readonly<Record<string, PgOperation | 'none'>> = {
  CMD_INSERT: 'insert',
  CMD_UPDATE: 'update',
  CMD_DELETE: 'delete',
  CMD_NOTHING: 'none',
};

function inScope(scope: Scope | undefined, name: string): boolean {
  for (let s = scope; s !== undefined; s = s.parent) if (s.names.has(name)) return true;
  return false;
}

/** An inlined RangeVar field that must be present. */
export function expectRel(value: unknown): Obj {
  const rv = optObj(value);
  if (rv === undefined || typeof rv.relname !== 'string') throw new Unsupported('expected a relation');
  return rv;
}

/** True for a DML statement body with a non-empty RETURNING list. */
export function hasReturning(b: Obj): boolean {
  const r = optObj(b.returningClause);
  return r !== undefined && list(r.exprs).length > 0;
}

/** True when `value` references a column (other than `<except>.col`): it observes existing rows. */
function readsColumns(value: unknown, except?: string): boolean {
  return someNode(value, (type, body) => {
    if (type !== 'ColumnRef') return false;
    const fields = list(body.fields);
    if (except === undefined || fields.length < 2) return true;
    const first = unwrap(fields[0]);
    return !(first?.[0] === 'String' && first[1].sval === except);
  });
}
