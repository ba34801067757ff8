/**
 * What the classifier must know of ONE upstream database to see every place where the server may
 * call a function that the SQL text does not spell as a call:
 *
 * - attribute notation: PostgreSQL reads `alias.fn` and `(expr).fn` as `fn(alias)` / `fn(expr)` when
 *   no column or field `fn` exists, so a name in field position is a call if a function of that name
 *   exists anywhere the call could resolve;
 * - operators: each is a function, and an unqualified operator may resolve to a user-defined one;
 * - casts: a cast to a type may run a user-defined cast function or type input function.
 *
 * `pg_catalog` functions are known statically (`pg-catalog-functions.ts`); everything else comes
 * from the upstream's own catalog, loaded by the proxy (`src/proxy/pg/upstream-objects.ts`). The
 * classifier is pure: it only reads this snapshot.
 */

/** A function as `[schema, name]`. */
export type QualifiedName = readonly [schema: string, name: string];

export interface UpstreamObjects {
  /** Changes whenever the snapshot's content changes: part of every cache key. */
  readonly version: string;
  /** Functions (any kind) outside `pg_catalog`: schema → names. */
  readonly functions: ReadonlyMap<string, ReadonlySet<string>>;
  /** Operators whose implementing function is outside `pg_catalog`: `schema` → operator name → functions. */
  readonly operators: ReadonlyMap<string, ReadonlyMap<string, readonly QualifiedName[]>>;
  /**
   * Types that a cast or literal may run a non-`pg_catalog` function for (user-defined input or
   * output functions, cast functions, domain checks): `schema` → type name → functions.
   */
  readonly types: ReadonlyMap<string, ReadonlyMap<string, readonly QualifiedName[]>>;
  /**
   * Relations whose use may run non-trusted functions: `schema` → relation → functions run when it
   * is read (output of user-defined column types) and when it is written (also input and assignment
   * casts of those types, column defaults, CHECK constraints, triggers).
   */
  readonly relations: ReadonlyMap<string, ReadonlyMap<string, RelationFunctions>>;
  /**
   * Every user relation's columns in attribute order (`schema` → relation → shape): the masking
   * analysis expands `*` and follows columns with it (`provenance.ts`). Absent relation = unknown.
   */
  readonly columns: ReadonlyMap<string, ReadonlyMap<string, RelationShape>>;
}

/** A relation's kind (`pg_class.relkind`: r table, p partitioned, v view, m materialized view, f foreign) and columns. */
export interface RelationShape {
  readonly kind: string;
  readonly columns: readonly string[];
  /** A view's (or materialized view's) query, as `pg_get_viewdef` prints it: masking traces through it. */
  readonly definition?: string;
}

export interface RelationFunctions {
  readonly read: readonly QualifiedName[];
  readonly write: readonly QualifiedName[];
}

/**
 * An upstream with nothing user-defined (a bare database). The classifier's default when the
 * caller supplies no snapshot; the proxy always supplies a loaded one.
 */
export const NO_USER_OBJECTS: UpstreamObjects = Object.freeze({
  version: 'none',
  functions: new Map(),
  operators: new Map(),
  types: new Map(),
  relations: new Map(),
  columns: new Map(),
});

/** Rows as the loader reads them from the upstream's catalog. */
export interface UpstreamObjectRows {
  functions: readonly { schema: string; name: string }[];
  operators: readonly { schema: string; name: string; fnSchema: string; fnName: string }[];
  types: readonly { schema: string; name: string; fnSchema: string; fnName: string }[];
  relations: readonly { schema: string; name: string; fnSchema: string; fnName: string; writeOnly: boolean }[];
  /** Optional: a snapshot without it knows no relation's columns (every `*` is then unproven). */
  columns?: readonly { schema: string; name: string; kind: string; columns: readonly string[]; definition?: string | null }[];
}

/** Build a frozen snapshot from catalog rows; `version` hashes the content (same rows → same version). */
export function upstreamObjects(rows: UpstreamObjectRows, version: string): UpstreamObjects {
  const functions = new Map<string, Set<string>>();
  for (const f of rows.functions) getOr(functions, f.schema, () => new Set()).add(f.name);
  return Object.freeze({
    version,
    functions,
    operators: nested(rows.operators),
    types: nested(rows.types),
    relations: relationFunctions(rows.relations),
    columns: relationColumns(rows.columns ?? []),
  });
}

function relationColumns(rows: NonNullable<UpstreamObjectRows['columns']>): Map<string, Map<string, RelationShape>> {
  const out = new Map<string, Map<string, RelationShape>>();
  for (const r of rows) {
    const shape = { kind: r.kind, columns: Object.freeze([...r.columns]), ...(r.definition ? { definition: r.definition } : {}) };
    getOr(out, r.schema, () => new Map()).set(r.name, Object.freeze(shape));
  }
  return out;
}

function relationFunctions(rows: UpstreamObjectRows['relations']): Map<string, Map<string, RelationFunctions>> {
  const writes = nested(rows);
  const reads = nested(rows.filter((r) => !r.writeOnly));
  const out = new Map<string, Map<string, RelationFunctions>>();
  for (const [schema, rels] of writes) {
    const m = new Map<string, RelationFunctions>();
    for (const [name, write] of rels) m.set(name, { read: reads.get(schema)?.get(name) ?? [], write });
    out.set(schema, m);
  }
  return out;
}

function nested(rows: readonly { schema: string; name: string; fnSchema: string; fnName: string }[]) {
  const out = new Map<string, Map<string, QualifiedName[]>>();
  for (const r of rows) {
    const fns = getOr(getOr(out, r.schema, () => new Map<string, QualifiedName[]>()), r.name, (): QualifiedName[] => []);
    if (!fns.some(([s, n]) => s === r.fnSchema && n === r.fnName)) fns.push([r.fnSchema, r.fnName]);
  }
  return out;
}

function getOr<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let v = map.get(key);
  if (v === undefined) map.set(key, (v = make()));
  return v;
}
