/**
 * The explicit allow-list of statement kinds. Each top-level node type maps to a handler that
 * records the statement's accesses on the walker and returns its `kind`; a node type not listed
 * here is unsupported. The operation mapping is documented in docs/sql-classification.md.
 */
import type { PgOperation, SessionEffect } from './types.ts';
import { expectRel, hasReturning, rootCtx, type Walker } from './walk.ts';
import { expectNode, list, nameList, type Obj, optObj, optStr, stringNode, unwrap } from './ast.ts';
import { judgeSet } from './settings.ts';
import { SAFE_SETTINGS } from './functions.ts';
import { Unsupported } from './unsupported.ts';

/** What a handler reports besides the accesses it recorded. */
export interface StatementResult {
  readonly kind: string;
  readonly sessionEffect?: SessionEffect;
  /** A data-modifying statement with RETURNING: it sends rows to the client. */
  readonly returnsRows?: true;
}

type Handler = (b: Obj, w: Walker) => StatementResult | string;

const READ = rootCtx('read');
const DDL = rootCtx('ddl');

/** Classify one statement node (`{ SelectStmt: … }`) into `w`. */
export function classifyStatement(stmt: unknown, w: Walker): StatementResult {
  const node = unwrap(stmt);
  if (node === undefined) throw new Unsupported('malformed statement');
  const [type, body] = node;
  const handler = Object.hasOwn(HANDLERS, type) ? HANDLERS[type] : undefined;
  if (handler !== undefined) {
    const r = handler(body, w);
    return typeof r === 'string' ? { kind: r } : r;
  }
  if (ADMIN_STATEMENTS.has(type)) {
    w.admin();
    const state = SESSION_STATE_STATEMENTS.get(type);
    if (state !== undefined) w.leaves(state);
    return { kind: kindOf(type) };
  }
  throw new Unsupported(`unsupported statement ${type}`);
}

/**
 * Statement types whose classification never looks at a literal's value, except where the walk
 * says so itself (`Walker.readsLiteral`): plain queries and DML. Their relations, columns and
 * functions are identifiers, and the walk reads nothing else. Everything else is excluded, in
 * particular SET/RESET (search_path and client_encoding come from literals), COPY (`FROM ''` and
 * `FROM 'file'` differ only in a literal: an empty file name is omitted from the parse tree),
 * EXPLAIN/PREPARE/DECLARE wrappers, utility statements and DDL.
 */
const LITERAL_BLIND_STATEMENTS = new Set(['SelectStmt', 'InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

/**
 * True when the classification of `stmt` (already walked into `w`) is the same for every statement
 * that differs from it only in literal values: it may be shared by the cache's shape level.
 */
export function isLiteralIndependent(stmt: unknown, w: Walker): boolean {
  const node = unwrap(stmt);
  return node !== undefined && LITERAL_BLIND_STATEMENTS.has(node[0]) && !w.readsLiteral;
}

/** `CreateRoleStmt` → `create_role`. */
function kindOf(type: string): string {
  return type
    .replace(/Stmt$/, '')
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase();
}

/** Admin statements whose effect outlives their transaction (transaction pooling cannot carry them). */
const SESSION_STATE_STATEMENTS: ReadonlyMap<string, string> = new Map([
  ['ListenStmt', 'LISTEN'],
  ['LoadStmt', 'LOAD (a library loaded into the session)'],
]);

/** Statements that only an admin may run: roles, privileges, databases, extensions, servers … */
const ADMIN_STATEMENTS = new Set([
  'GrantStmt', 'GrantRoleStmt', 'AlterDefaultPrivilegesStmt', 'CreateRoleStmt', 'AlterRoleStmt',
  'AlterRoleSetStmt', 'DropRoleStmt', 'ReassignOwnedStmt', 'DropOwnedStmt', 'AlterOwnerStmt',
  'AlterSystemStmt', 'CreatedbStmt', 'AlterDatabaseStmt', 'AlterDatabaseSetStmt',
  'AlterDatabaseRefreshCollStmt', 'DropdbStmt', 'CreateTableSpaceStmt', 'DropTableSpaceStmt',
  'AlterTableSpaceOptionsStmt', 'AlterTableMoveAllStmt', 'CreateExtensionStmt', 'AlterExtensionStmt',
  'AlterExtensionContentsStmt', 'CreateFdwStmt', 'AlterFdwStmt', 'CreateForeignServerStmt',
  'AlterForeignServerStmt', 'CreateForeignTableStmt', 'CreateUserMappingStmt',
  'AlterUserMappingStmt', 'DropUserMappingStmt', 'ImportForeignSchemaStmt', 'CreateEventTrigStmt',
  'AlterEventTrigStmt', 'CreatePLangStmt', 'CreateAmStmt', 'CreateCastStmt', 'CreateTransformStmt',
  'CreateConversionStmt', 'CreateOpClassStmt', 'CreateOpFamilyStmt', 'AlterOpFamilyStmt',
  'AlterOperatorStmt', 'AlterTypeStmt', 'AlterCollationStmt', 'AlterObjectDependsStmt',
  'DefineStmt', 'CreateFunctionStmt', 'AlterFunctionStmt', 'DoStmt', 'CreatePublicationStmt',
  'AlterPublicationStmt', 'CreateSubscriptionStmt', 'AlterSubscriptionStmt',
  'DropSubscriptionStmt', 'SecLabelStmt', 'AlterTSDictionaryStmt', 'AlterTSConfigurationStmt',
  'AlterStatsStmt', 'CheckPointStmt', 'LoadStmt', 'ListenStmt', 'NotifyStmt', 'UnlistenStmt',
]);

/** Object types addressed as relations (`<schema>.<name>`). */
const RELATION_TYPES = new Set([
  'OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_SEQUENCE', 'OBJECT_INDEX',
  'OBJECT_FOREIGN_TABLE', 'OBJECT_TYPE', 'OBJECT_DOMAIN',
]);
/** Object types that belong to a table: the name list is `[schema?, table, object]`. */
const TABLE_CHILD_TYPES = new Set([
  'OBJECT_COLUMN', 'OBJECT_TRIGGER', 'OBJECT_POLICY', 'OBJECT_RULE', 'OBJECT_TABCONSTRAINT',
]);
const FUNCTION_TYPES = new Set(['OBJECT_FUNCTION', 'OBJECT_PROCEDURE', 'OBJECT_ROUTINE', 'OBJECT_AGGREGATE']);

/** Resources of a `[schema?, name]` list, resolved like a relation lookup. */
function qualified(w: Walker, parts: readonly string[]): string[] {
  const name = parts[parts.length - 1];
  if (name === undefined || parts.length > 2) throw new Unsupported('unsupported object name');
  const schemas = parts.length === 2 ? [parts[0]!] : w.names.relationSchemas(name, false);
  return schemas.map((s) => w.names.relation(s, name));
}

/**
 * Record `ddl` on an object named by a DropStmt/CommentStmt object node; object types outside
 * tables, views, sequences, indexes, types, functions and schemas are `admin`.
 */
function ddlOnObject(w: Walker, objtype: string, object: unknown): void {
  const n = unwrap(object);
  if (n === undefined) throw new Unsupported('malformed object');
  const [type, body] = n;
  if (RELATION_TYPES.has(objtype)) {
    const parts = type === 'TypeName' ? nameList(body.names) : nameList(expectNode(object, 'List').items);
    for (const r of qualified(w, parts)) w.add(r, 'ddl');
  } else if (TABLE_CHILD_TYPES.has(objtype)) {
    const parts = nameList(expectNode(object, 'List').items);
    for (const r of qualified(w, parts.slice(0, -1))) w.add(r, 'ddl');
  } else if (FUNCTION_TYPES.has(objtype)) {
    const parts = nameList(expectNode(object, 'ObjectWithArgs').objname);
    const name = parts[parts.length - 1];
    if (name === undefined || parts.length > 2) throw new Unsupported('unsupported function name');
    const schemas = parts.length === 2 ? [parts[0]!] : w.names.functionSchemas(name);
    for (const s of schemas) w.add(w.names.func(s, name), 'ddl');
  } else if (objtype === 'OBJECT_SCHEMA') {
    w.add(w.names.schema(stringNode(object)), 'ddl');
  } else {
    w.admin();
  }
}

/** `ddl` on a relation target, plus the rest of the statement walked in DDL context. */
function ddlOn(field: string, mode: 'target' | 'create' = 'target') {
  return (kind: string): Handler =>
    (b, w) => {
      w.relation(expectRel(b[field]), 'ddl', DDL, mode);
      w.visitFields(b, DDL, [field]);
      return kind;
    };
}

/** Walk an inner statement (EXPLAIN, PREPARE, DECLARE) as if it ran. */
function inner(kind: string, field: string): Handler {
  return (b, w) => {
    classifyStatement(b[field], w);
    return kind;
  };
}

function none(kind: string): Handler {
  return () => kind;
}

/** `CURSOR_OPT_HOLD` in a DeclareCursorStmt's options (PostgreSQL's parsenodes.h). */
const CURSOR_OPT_HOLD = 0x20;

/** LOCK modes 1..8 (AccessShare … AccessExclusive); see the docs for the mapping. */
function lockOp(mode: number): PgOperation {
  if (mode <= 1) return 'read';
  if (mode <= 3) return 'update';
  return 'ddl';
}

const HANDLERS: Readonly<Record<string, Handler>> = {
  SelectStmt: (b, w) => {
    w.visitNode('SelectStmt', b, READ);
    return b.intoClause === undefined ? 'select' : 'select_into';
  },
  InsertStmt: (b, w) => dml('InsertStmt', 'insert', b, w),
  UpdateStmt: (b, w) => dml('UpdateStmt', 'update', b, w),
  DeleteStmt: (b, w) => dml('DeleteStmt', 'delete', b, w),
  MergeStmt: (b, w) => dml('MergeStmt', 'merge', b, w),

  CopyStmt: (b, w) => {
    // A server-side file or program runs as the server's OS user.
    if (b.filename !== undefined || b.is_program === true) w.admin();
    const rel = optObj(b.relation);
    if (rel !== undefined) w.relation(rel, b.is_from === true ? 'insert' : 'read', READ, 'target');
    w.visitFields(b, READ, ['relation']);
    return 'copy';
  },
  ExplainStmt: inner('explain', 'query'),
  PrepareStmt: (b, w) => {
    w.leaves('PREPARE (a SQL-level prepared statement; protocol-level prepared statements are available)');
    return inner('prepare', 'query')(b, w);
  },
  DeclareCursorStmt: (b, w) => {
    if (typeof b.options === 'number' && (b.options & CURSOR_OPT_HOLD) !== 0) w.leaves('a WITH HOLD cursor');
    return inner('declare', 'query')(b, w);
  },
  ExecuteStmt: () => {
    // The prepared text is not in this string; the proxy cannot know what it does.
    throw new Unsupported('EXECUTE of a prepared statement');
  },
  DeallocateStmt: (b, w) => {
    // the statement's name is the client's, not the upstream's (the pooled relay renames them)
    if (b.isall !== true) w.leaves('DEALLOCATE of a named statement (DEALLOCATE ALL is available)');
    return 'deallocate';
  },
  FetchStmt: none('fetch'),
  ClosePortalStmt: none('close'),
  ConstraintsSetStmt: none('transaction'),
  VariableShowStmt: (b, w) => {
    // Only session settings clients need; `SHOW ALL` and server settings (paths, addresses) are admin.
    if (!SAFE_SETTINGS.has((optStr(b.name) ?? '').toLowerCase())) w.admin();
    return 'show';
  },

  TransactionStmt: (b, w) => {
    const kind = optStr(b.kind) ?? '';
    if (['TRANS_STMT_PREPARE', 'TRANS_STMT_COMMIT_PREPARED', 'TRANS_STMT_ROLLBACK_PREPARED'].includes(kind)) {
      w.admin();
    } else if (!kind.startsWith('TRANS_STMT_')) {
      throw new Unsupported('unknown transaction statement');
    }
    // BEGIN/START changes nothing anyone can see (the proxy lets it overlap its audit entry)
    return kind === 'TRANS_STMT_BEGIN' || kind === 'TRANS_STMT_START' ? 'begin' : 'transaction';
  },
  VariableSetStmt: (b, w) => {
    const v = judgeSet(b, w.limits);
    if (v.outlivesTransaction) w.leaves('SET (a session-level setting; SET LOCAL inside a transaction block is available)');
    if (v.admin) w.admin();
    return v.effect === undefined ? { kind: 'set' } : { kind: 'set', sessionEffect: v.effect };
  },
  DiscardStmt: (b) => {
    const all = b.target === 'DISCARD_ALL';
    return all ? { kind: 'discard', sessionEffect: { resetSearchPath: true } } : { kind: 'discard' };
  },
  CallStmt: (b, w) => {
    const fc = optObj(b.funccall);
    if (fc === undefined) throw new Unsupported('CALL without a procedure');
    w.funcCall(fc, READ, true);
    return 'call';
  },
  TruncateStmt: (b, w) => {
    // CASCADE also truncates every table referencing these: not visible in the text.
    if (b.behavior === 'DROP_CASCADE') w.admin();
    for (const r of list(b.relations)) w.relation(expectNode(r, 'RangeVar'), 'truncate', READ, 'target');
    return 'truncate';
  },
  LockStmt: (b, w) => {
    const op = lockOp(typeof b.mode === 'number' ? b.mode : 8);
    for (const r of list(b.relations)) w.relation(expectNode(r, 'RangeVar'), op, READ, 'target');
    return 'lock';
  },
  VacuumStmt: (b, w) => {
    const rels = list(b.rels);
    if (rels.length === 0) w.admin();
    for (const r of rels) {
      const vr = expectNode(r, 'VacuumRelation');
      w.relation(expectRel(vr.relation), 'ddl', DDL, 'target');
    }
    return b.is_vacuumcmd === true ? 'vacuum' : 'analyze';
  },
  ClusterStmt: (b, w) => {
    const rel = optObj(b.relation);
    if (rel === undefined) w.admin();
    else w.relation(rel, 'ddl', DDL, 'target');
    return 'cluster';
  },
  ReindexStmt: (b, w) => {
    const rel = optObj(b.relation);
    if (rel === undefined || !['REINDEX_OBJECT_INDEX', 'REINDEX_OBJECT_TABLE'].includes(String(b.kind))) w.admin();
    else w.relation(rel, 'ddl', DDL, 'target');
    return 'reindex';
  },
  RefreshMatViewStmt: ddlOn('relation')('refresh_materialized_view'),

  // DDL on relations
  CreateStmt: ddlOn('relation', 'create')('create_table'),
  IndexStmt: ddlOn('relation')('create_index'),
  AlterTableStmt: (b, w) => {
    for (const c of list(b.cmds)) if (expectNode(c, 'AlterTableCmd').subtype === 'AT_ChangeOwner') w.admin();
    return ddlOn('relation')('alter_table')(b, w);
  },
  CreateSeqStmt: ddlOn('sequence', 'create')('create_sequence'),
  AlterSeqStmt: ddlOn('sequence')('alter_sequence'),
  CompositeTypeStmt: ddlOn('typevar', 'create')('create_type'),
  CreateTrigStmt: (b, w) => {
    const fn = nameList(b.funcname);
    const name = fn[fn.length - 1];
    if (name === undefined || fn.length > 2) throw new Unsupported('unsupported function name');
    const schemas = fn.length === 2 ? [fn[0]!] : w.names.functionSchemas(name);
    for (const s of schemas) w.add(w.names.func(s, name), 'execute');
    w.relation(expectRel(b.relation), 'ddl', DDL, 'target');
    w.visitFields(b, DDL, ['relation', 'funcname']);
    return 'create_trigger';
  },
  RuleStmt: ddlOn('relation')('create_rule'),
  CreatePolicyStmt: ddlOn('table')('create_policy'),
  AlterPolicyStmt: ddlOn('table')('alter_policy'),
  CreateStatsStmt: (b, w) => (w.visitFields(b, DDL), 'create_statistics'),
  // Views and CREATE TABLE AS: the new relation is `ddl`; the query's reads are recorded too,
  // because a view is later authorized by its own name (docs: "views").
  ViewStmt: (b, w) => {
    w.relation(expectRel(b.view), 'ddl', DDL, 'create');
    w.visitFields(b, READ, ['view']);
    return 'create_view';
  },
  CreateTableAsStmt: (b, w) => {
    const into = optObj(b.into);
    if (into === undefined) throw new Unsupported('CREATE TABLE AS without a target');
    w.relation(expectRel(into.rel), 'ddl', DDL, 'create');
    w.visit(b.query, READ);
    return b.objtype === 'OBJECT_MATVIEW' ? 'create_materialized_view' : 'create_table_as';
  },
  CreateEnumStmt: (b, w) => typeDdl(b, w, 'create_type', true),
  CreateRangeStmt: (b, w) => typeDdl(b, w, 'create_type', true),
  AlterEnumStmt: (b, w) => typeDdl(b, w, 'alter_type', false),
  CreateDomainStmt: (b, w) => {
    createOn(w, nameList(b.domainname));
    w.visitFields(b, DDL, ['domainname']);
    return 'create_domain';
  },
  AlterDomainStmt: (b, w) => {
    for (const r of qualified(w, nameList(b.typeName))) w.add(r, 'ddl');
    w.visitFields(b, DDL, ['typeName']);
    return 'alter_domain';
  },
  CreateSchemaStmt: (b, w) => {
    const name = optStr(b.schemaname);
    if (list(b.schemaElts).length > 0) throw new Unsupported('CREATE SCHEMA with elements');
    if (name === undefined || b.authrole !== undefined) w.admin();
    if (name !== undefined) w.add(w.names.schema(name), 'ddl');
    return 'create_schema';
  },
  DropStmt: (b, w) => {
    // CASCADE drops dependent objects (views, constraints) the text does not name.
    if (b.behavior === 'DROP_CASCADE') w.admin();
    const objtype = optStr(b.removeType) ?? '';
    for (const o of list(b.objects)) ddlOnObject(w, objtype, o);
    return 'drop';
  },
  CommentStmt: (b, w) => (ddlOnObject(w, optStr(b.objtype) ?? '', b.object), 'comment'),
  RenameStmt: (b, w) => {
    renameOrMove(w, b, optStr(b.renameType) ?? '', { name: optStr(b.newname) });
    return 'rename';
  },
  AlterObjectSchemaStmt: (b, w) => {
    renameOrMove(w, b, optStr(b.objectType) ?? '', { schema: optStr(b.newschema) });
    return 'alter_schema';
  },
};

/** INSERT/UPDATE/DELETE/MERGE: walked as a query; says whether it returns rows. */
function dml(type: string, kind: string, b: Obj, w: Walker): StatementResult {
  w.visitNode(type, b, READ);
  return hasReturning(b) ? { kind, returnsRows: true } : { kind };
}

/** CREATE/ALTER TYPE … AS ENUM/RANGE: `ddl` on the type (a relation-like name). */
function typeDdl(b: Obj, w: Walker, kind: string, create: boolean): string {
  const parts = nameList(b.typeName);
  if (create) createOn(w, parts);
  else for (const r of qualified(w, parts)) w.add(r, 'ddl');
  w.visitFields(b, DDL, ['typeName']);
  return kind;
}

/** `ddl` on a new object named `[schema?, name]` (created in the first path schema). */
function createOn(w: Walker, parts: readonly string[]): void {
  const name = parts[parts.length - 1];
  if (name === undefined || parts.length > 2) throw new Unsupported('unsupported object name');
  const schemas = parts.length === 2 ? [parts[0]!] : w.names.pathSchemas();
  for (const s of schemas) w.add(w.names.relation(s, name), 'ddl');
}

/**
 * RENAME / SET SCHEMA: `ddl` on the object under its old AND its new name, so a rename cannot move
 * data under a name the caller may read. Functions, and objects other than relations, types and
 * schemas, are `admin` (a renamed function could shadow a built-in).
 */
function renameOrMove(w: Walker, b: Obj, objtype: string, to: { name?: string; schema?: string }): void {
  const rel = optObj(b.relation);
  let olds: { schema: string; name: string }[];
  if (rel !== undefined && TABLE_CHILD_TYPES.has(objtype)) {
    w.relation(rel, 'ddl', DDL, 'target');
    return;
  }
  if (objtype === 'OBJECT_SCHEMA') {
    const old = optStr(b.subname);
    if (old === undefined || to.name === undefined) return w.admin();
    w.add(w.names.schema(old), 'ddl');
    w.add(w.names.schema(to.name), 'ddl');
    return;
  }
  if (!RELATION_TYPES.has(objtype)) return w.admin();
  if (rel !== undefined) {
    const name = optStr(rel.relname) ?? '';
    const schema = optStr(rel.schemaname);
    if (rel.catalogname !== undefined) throw new Unsupported('three-part relation name');
    const schemas = schema !== undefined ? [schema] : w.names.relationSchemas(name, false);
    olds = schemas.map((s) => ({ schema: s, name }));
  } else {
    const n = unwrap(b.object);
    const parts = n?.[0] === 'TypeName' ? nameList(n[1].names) : nameList(expectNode(b.object, 'List').items);
    const name = parts[parts.length - 1];
    if (name === undefined || parts.length > 2) throw new Unsupported('unsupported object name');
    const schemas = parts.length === 2 ? [parts[0]!] : w.names.relationSchemas(name, false);
    olds = schemas.map((s) => ({ schema: s, name }));
  }
  for (const o of olds) {
    w.add(w.names.relation(o.schema, o.name), 'ddl');
    w.add(w.names.relation(to.schema ?? o.schema, to.name ?? o.name), 'ddl');
  }
}
