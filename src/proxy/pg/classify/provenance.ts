/**
 * Where each column of a statement's result comes from, read from the raw parse tree: the masking
 * decision (src/enforce/masking/) needs to know, for every output column, whether it IS a table
 * column (mask it with that column's rule), is COMPUTED from table columns (mask it whole if any
 * source is masked: `upper(card_number)`, `c.*`, `row_to_json(c)`, a subquery, a UNION branch) or
 * cannot be traced (a view, a function, a relation the snapshot does not know: run the value
 * detectors on it).
 *
 * Fail-safe by construction: anything not understood contributes EVERY column in scope as a source
 * and is marked unproven, so a gap in this analysis over-masks, never leaks. Only two expression
 * forms are proven not to reveal their input: `count(…)` and `… IS [NOT] NULL`.
 */
import { isObj, list, optObj, optStr, unwrap, type Obj } from './ast.ts';
import type { Resolver } from './names.ts';
import { parseStatements } from './parser.ts';

/** Views inside views inside … are traced this deep; deeper ones are opaque (detectors). */
const MAX_VIEW_DEPTH = 8;

/** A column of a relation; `column: '*'` = the whole row (every column). `relations`: candidate resources. */
export interface ColumnSource {
  readonly relations: readonly string[];
  readonly column: string;
}

/** One output column of a result. */
export interface OutputColumn {
  /** The value is this column's, unchanged (a plain column reference). */
  readonly direct?: ColumnSource;
  /** Columns the value is computed from (a masked one masks the whole value). */
  readonly derived: readonly ColumnSource[];
  /** Its provenance cannot be proven (views, functions, unknown relations): run the detectors. */
  readonly unproven: boolean;
}

/** The shape of a statement's result as far as masking is concerned. */
export interface ResultShape {
  /** Output columns in order; absent when their number cannot be known (then `every` applies to all). */
  readonly columns?: readonly OutputColumn[];
  /** Applies to every column when `columns` is absent; otherwise the union of all (for cursors, COPY). */
  readonly every: OutputColumn;
  /** Columns read by predicates, joins, grouping or ordering (flagged in the audit when masked). */
  readonly predicates: readonly ColumnSource[];
  /**
   * Columns whose values the statement WRITES somewhere (INSERT … SELECT, UPDATE … SET, MERGE,
   * CREATE TABLE/VIEW … AS, SELECT INTO, data-modifying CTEs): copying a masked column into a table
   * the reader can read unmasked is laundering, and the gate refuses it.
   */
  readonly writes?: readonly ColumnSource[];
}

interface Item {
  /** Name it is referred to by (alias or relation name). */
  readonly name: string;
  /** Relation resources (for a table/view), none for subqueries and functions. */
  readonly relations: readonly string[];
  /** Known output columns by name (in order), or undefined when unknown. */
  readonly columns?: readonly { name: string; col: OutputColumn }[];
  /** Outputs are not traceable (view, function, unknown relation). */
  readonly opaque: boolean;
  /** What an opaque item's rows are computed from (a function's arguments). */
  readonly inputs?: OutputColumn;
}

interface Scope {
  readonly items: readonly Item[];
  readonly ctes: ReadonlyMap<string, Item>;
  readonly parent?: Scope;
}

const CLEAN: OutputColumn = Object.freeze({ derived: Object.freeze([]), unproven: false });
const UNPROVEN: OutputColumn = Object.freeze({ derived: Object.freeze([]), unproven: true });

/**
 * The shape when the analysis itself failed: every column computed from every relation (the gate
 * masks it whole if the session has any masked column at all).
 */
export const UNANALYSABLE: ResultShape = Object.freeze({
  every: Object.freeze({ derived: Object.freeze([{ relations: ['*'], column: '*' }]), unproven: true }),
  predicates: Object.freeze([]),
  writes: Object.freeze([{ relations: ['*'], column: '*' }]),
});

/** `count(…)` reveals only how many rows there are; `IS NULL` only whether a value exists. */
const NON_REVEALING_FUNCTIONS = new Set(['count']);

export class ProvenanceAnalysis {
  private readonly predicates: ColumnSource[] = [];
  /** Whole rows of items a `*` could not expand: they make up columns of unknown number. */
  private readonly unexpanded: OutputColumn[] = [];
  /** Sources of values written by the statement (see ResultShape.writes). */
  private readonly written: OutputColumn[] = [];

  /** The sources of every value a statement writes (with `statement()`'s shape, or alone for DDL). */
  writes(node: unknown): readonly ColumnSource[] {
    const n = unwrap(node);
    if (n) {
      const [type, b] = n;
      if (type === 'CreateTableAsStmt' || type === 'ViewStmt') {
        const cols = this.select(this.selectBody(b.query), undefined);
        this.written.push(cols === undefined ? this.untraced() : union(cols));
      }
    }
    return derivedFrom(this.written).derived;
  }

  constructor(
    private readonly names: Resolver,
    /** Views being traced (cycle and depth guard). */
    private readonly viewPath: readonly string[] = [],
  ) {}

  /** The result shape of a top-level statement node, or undefined when it returns no rows. */
  statement(node: unknown): ResultShape | undefined {
    const n = unwrap(node);
    if (!n) return undefined;
    const [type, b] = n;
    let columns: OutputColumn[] | undefined;
    switch (type) {
      case 'SelectStmt':
        columns = this.select(b, undefined);
        if (b.intoClause !== undefined && columns) this.written.push(union(columns)); // SELECT … INTO
        break;
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt': {
        const scope = this.dmlScope(b, undefined);
        this.dmlWrites(type, b, scope);
        const returning = optObj(b.returningClause);
        if (returning === undefined || list(returning.exprs).length === 0) return this.noRows();
        columns = this.targets(list(returning.exprs), scope);
        break;
      }
      case 'CopyStmt': {
        if (b.is_from === true) return undefined;
        if (b.query !== undefined) columns = this.select(this.selectBody(b.query), undefined);
        else {
          const item = this.rangeVar(optObj(b.relation) ?? {}, { items: [], ctes: new Map() });
          const wanted = list(b.attlist).map((c) => optStr(unwrap(c)?.[1].sval) ?? '');
          columns = wanted.length ? wanted.map((c) => this.columnOf(item, c)) : this.expand(item);
        }
        break;
      }
      case 'DeclareCursorStmt':
        columns = this.select(this.selectBody(b.query), undefined);
        break;
      case 'ExplainStmt':
        // EXPLAIN prints plans (expressions, never values) — but EXPLAIN ANALYZE runs the query: its
        // predicates still matter for the audit flag.
        this.select(this.selectBodyOrNone(b.query), undefined);
        return { columns: [CLEAN], every: CLEAN, predicates: this.predicates };
      default:
        return this.noRows();
    }
    return this.shape(columns);
  }

  /** No rows to mask; only what it writes matters (undefined when it writes nothing traced). */
  private noRows(): ResultShape | undefined {
    return this.written.length ? { columns: [], every: CLEAN, predicates: this.predicates, writes: derivedFrom(this.written).derived } : undefined;
  }

  /** What an INSERT/UPDATE/MERGE writes: its SELECT/VALUES, SET expressions, ON CONFLICT updates. */
  private dmlWrites(type: string, b: Obj, scope: Scope): void {
    if (type === 'InsertStmt') {
      const select = unwrap(b.selectStmt);
      if (select && select[0] === 'SelectStmt') {
        const cols = this.select(select[1], scope);
        this.written.push(cols === undefined ? this.untraced() : union(cols));
      }
      const conflict = optObj(b.onConflictClause);
      if (conflict) for (const t of list(conflict.targetList)) this.written.push(this.expr(unwrap(t)?.[1].val, scope));
    } else if (type === 'UpdateStmt') {
      for (const t of list(b.targetList)) this.written.push(this.expr(unwrap(t)?.[1].val, scope));
    } else if (type === 'MergeStmt') {
      for (const w of list(b.mergeWhenClauses)) {
        const clause = unwrap(w)?.[1];
        for (const t of list(clause?.targetList)) this.written.push(this.expr(unwrap(t)?.[1].val, scope));
        for (const v of list(clause?.values)) this.written.push(this.expr(v, scope));
      }
    }
  }

  private shape(columns: OutputColumn[] | undefined): ResultShape {
    const every = columns === undefined ? this.untraced() : union(columns);
    const writes = this.written.length ? { writes: derivedFrom(this.written).derived } : {};
    return columns === undefined ? { every, predicates: this.predicates, ...writes } : { columns, every, predicates: this.predicates, ...writes };
  }

  private selectBody(node: unknown): Obj {
    const n = unwrap(node);
    if (!n || n[0] !== 'SelectStmt') return {};
    return n[1];
  }

  private selectBodyOrNone(node: unknown): Obj {
    const n = unwrap(node);
    return n && n[0] === 'SelectStmt' ? n[1] : {};
  }

  /** Output columns of a SELECT (set operations, VALUES and WITH included); undefined = count unknown. */
  private select(b: Obj, outer: Scope | undefined): OutputColumn[] | undefined {
    const ctes = new Map(outer?.ctes ?? []);
    const withClause = optObj(b.withClause);
    if (withClause) this.ctes(withClause, ctes, outer);
    const scopeBase: Scope = { items: [], ctes, ...(outer ? { parent: outer } : {}) };
    if (b.op !== undefined && b.op !== 'SETOP_NONE') {
      const left = this.select(optObj(b.larg) ?? {}, scopeBase);
      const right = this.select(optObj(b.rarg) ?? {}, scopeBase);
      this.orderBy(b, scopeBase);
      if (!left || !right || left.length !== right.length) return undefined;
      // a set operation mixes both branches: nothing is a plain column any more
      return left.map((l, i) => derivedFrom([l, right[i]!]));
    }
    const values = list(b.valuesLists);
    if (values.length) {
      const rows = values.map((row) => list(unwrap(row)?.[1].items).map((e) => this.expr(e, scopeBase)));
      const width = rows[0]?.length ?? 0;
      return Array.from({ length: width }, (_, i) => derivedFrom(rows.map((r) => r[i] ?? CLEAN)));
    }
    const items: Item[] = [];
    const scope: Scope = { items, ctes, ...(outer ? { parent: outer } : {}) };
    for (const from of list(b.fromClause)) this.fromItem(from, scope, items);
    for (const field of ['whereClause', 'havingClause']) if (b[field] !== undefined) this.predicate(b[field], scope);
    for (const g of list(b.groupClause)) this.predicate(g, scope);
    for (const d of list(b.distinctClause)) if (unwrap(d)) this.predicate(d, scope);
    this.orderBy(b, scope);
    return this.targets(list(b.targetList), scope);
  }

  private orderBy(b: Obj, scope: Scope): void {
    for (const s of list(b.sortClause)) this.predicate(unwrap(s)?.[1].node, scope);
  }

  private ctes(withClause: Obj, ctes: Map<string, Item>, outer: Scope | undefined): void {
    for (const c of list(withClause.ctes)) {
      const cte = unwrap(c)?.[1];
      if (!cte) continue;
      const name = optStr(cte.ctename) ?? '';
      const query = unwrap(cte.ctequery);
      let columns: OutputColumn[] | undefined;
      if (withClause.recursive === true) {
        // the recursive term reads the CTE itself: first as opaque (everything it could hold), then for real
        ctes.set(name, { name, relations: [], opaque: true });
      }
      const scope: Scope = { items: [], ctes, ...(outer ? { parent: outer } : {}) };
      if (query && query[0] === 'SelectStmt') columns = this.select(query[1], scope);
      else if (query) {
        // data-modifying CTE: what it writes, and its RETURNING rows
        const dmlScope = this.dmlScope(query[1], scope);
        this.dmlWrites(query[0], query[1], dmlScope);
        const returning = optObj(query[1].returningClause);
        columns = returning ? this.targets(list(returning.exprs), dmlScope) : [];
      }
      const aliases = list(cte.aliascolnames).map((a) => optStr(unwrap(a)?.[1].sval) ?? '');
      const names = query && query[0] === 'SelectStmt' ? this.targetNames(query[1]) : [];
      ctes.set(name, this.derivedItem(name, columns, (columns ?? []).map((_, i) => aliases[i] ?? names[i] ?? `?column${i}`)));
    }
  }

  private derivedItem(name: string, columns: OutputColumn[] | undefined, aliases: string[]): Item {
    if (columns === undefined) return { name, relations: [], opaque: true, inputs: this.untraced() };
    return { name, relations: [], opaque: false, columns: columns.map((col, i) => ({ name: aliases[i] ?? `?column${i}`, col })) };
  }

  /** FROM items of INSERT/UPDATE/DELETE/MERGE: the target plus FROM/USING. */
  private dmlScope(b: Obj, outer: Scope | undefined): Scope {
    const ctes = new Map(outer?.ctes ?? []);
    const withClause = optObj(b.withClause);
    if (withClause) this.ctes(withClause, ctes, outer);
    const items: Item[] = [];
    const scope: Scope = { items, ctes, ...(outer ? { parent: outer } : {}) };
    const rel = optObj(b.relation);
    if (rel) items.push(this.rangeVar(rel, { items: [], ctes: new Map() }));
    for (const from of [...list(b.fromClause), ...list(b.usingClause)]) this.fromItem(from, scope, items);
    if (b.sourceRelation !== undefined) this.fromItem(b.sourceRelation, scope, items);
    if (b.whereClause !== undefined) this.predicate(b.whereClause, scope);
    if (b.joinCondition !== undefined) this.predicate(b.joinCondition, scope);
    return scope;
  }

  private fromItem(node: unknown, scope: Scope, into: Item[]): void {
    const n = unwrap(node);
    if (!n) return;
    const [type, b] = n;
    switch (type) {
      case 'RangeVar':
        into.push(this.rangeVar(b, scope));
        return;
      case 'RangeSubselect': {
        const alias = optObj(b.alias);
        const columns = this.select(this.selectBody(b.subquery), scope);
        const aliases = list(alias?.colnames).map((a) => optStr(unwrap(a)?.[1].sval) ?? '');
        const inner = unwrap(b.subquery);
        const names = inner && inner[0] === 'SelectStmt' ? this.targetNames(inner[1]) : [];
        into.push(this.derivedItem(optStr(alias?.aliasname) ?? '', columns, (columns ?? []).map((_, i) => aliases[i] ?? names[i] ?? `?column${i}`)));
        return;
      }
      case 'JoinExpr': {
        this.fromItem(b.larg, scope, into);
        this.fromItem(b.rarg, scope, into);
        if (b.quals !== undefined) this.predicate(b.quals, scope);
        // USING columns merge both sides (`SELECT id` then reads either): referenced as predicates
        for (const u of list(b.usingClause)) this.predicate({ ColumnRef: { fields: [u] } }, scope);
        const alias = optObj(b.alias);
        if (alias) into.push({ name: optStr(alias.aliasname) ?? '', relations: into.flatMap((i) => i.relations), opaque: true });
        return;
      }
      default: {
        // functions, table functions, samples, JSON_TABLE, XMLTABLE: their rows cannot be traced, and
        // are computed from their arguments (`unnest(ARRAY(SELECT card_number …))`)
        const alias = optObj(b.alias);
        const inputs = this.expr(Object.fromEntries(Object.entries(b).filter(([k]) => k !== 'alias')), scope);
        into.push({ name: optStr(alias?.aliasname) ?? '', relations: [], opaque: true, inputs });
      }
    }
  }

  private rangeVar(b: Obj, scope: Scope): Item {
    const relname = optStr(b.relname) ?? '';
    const schema = optStr(b.schemaname);
    const alias = optStr(optObj(b.alias)?.aliasname);
    const name = alias ?? relname;
    if (schema === undefined) {
      const cte = lookupCte(scope, relname);
      if (cte) {
        const colnames = list(optObj(b.alias)?.colnames).map((a) => optStr(unwrap(a)?.[1].sval) ?? '');
        return { ...cte, name, ...(cte.columns && colnames.length ? { columns: cte.columns.map((c, i) => ({ name: colnames[i] ?? c.name, col: c.col })) } : {}) };
      }
    }
    const schemas = schema !== undefined ? [schema] : this.names.relationSchemas(relname, false);
    // the first schema of the search path that has it is the one PostgreSQL reads (snapshot permitting)
    const found = schemas.map((s) => ({ s, shape: this.names.objects.columns.get(s)?.get(relname) })).find((x) => x.shape !== undefined);
    const relations = found ? [this.names.relation(found.s, relname)] : schemas.map((s) => this.names.relation(s, relname));
    if (!found) return { name, relations, opaque: true };
    const view = found.shape!.kind === 'v' || found.shape!.kind === 'm';
    const colnames = list(optObj(b.alias)?.colnames).map((a) => optStr(unwrap(a)?.[1].sval) ?? '');
    // a view's column is its own (its own masking rule) AND whatever its definition reads
    const traced = view ? this.viewColumns(relations[0]!, found.shape!.definition, found.shape!.columns.length) : undefined;
    return {
      name,
      relations,
      opaque: false,
      columns: found.shape!.columns.map((c, i) => {
        const inner = traced?.[i];
        const own: ColumnSource = { relations, column: c };
        // traced: a pass-through keeps the base column's rule (direct); the view's own rule, if any,
        // then masks it whole (derived) — never less than either
        const col: OutputColumn = inner
          ? { ...(inner.direct ? { direct: inner.direct } : {}), derived: [own, ...inner.derived], unproven: inner.unproven }
          : { direct: own, derived: [], unproven: view };
        return { name: colnames[i] ?? c, col };
      }),
    };
  }

  /**
   * The output columns of a view's definition, analysed like a subquery (views in it are traced
   * too, to a depth of 8); undefined when it cannot be (no definition, a cycle, a parse failure, a
   * column count that does not match), and the view's columns are then unproven.
   */
  private viewColumns(view: string, definition: string | undefined, width: number): OutputColumn[] | undefined {
    if (!definition || this.viewPath.includes(view) || this.viewPath.length >= MAX_VIEW_DEPTH) return undefined;
    try {
      const [statement] = parseStatements(definition);
      const select = unwrap(statement?.node);
      if (!select || select[0] !== 'SelectStmt') return undefined;
      const inner = new ProvenanceAnalysis(this.names, [...this.viewPath, view]);
      const cols = inner.select(select[1], undefined);
      return cols && cols.length === width ? cols : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * A result whose columns could not be counted (a `*` over something untraceable): unproven, and
   * computed from every untraceable row seen so far in this statement (conservative).
   */
  private untraced(): OutputColumn {
    return derivedFrom([UNPROVEN, ...this.unexpanded]);
  }

  /** Output names of a SELECT's target list (for subquery column references). */
  private targetNames(b: Obj): string[] {
    if (b.op !== undefined && b.op !== 'SETOP_NONE') return this.targetNames(optObj(b.larg) ?? {});
    return list(b.targetList).map((t) => {
      const r = unwrap(t)?.[1];
      const explicit = optStr(r?.name);
      if (explicit) return explicit;
      const ref = unwrap(r?.val);
      if (ref && ref[0] === 'ColumnRef') {
        const last = list(ref[1].fields).at(-1);
        return optStr(unwrap(last)?.[1].sval) ?? '?column?';
      }
      if (ref && ref[0] === 'FuncCall') return optStr(unwrap(list(ref[1].funcname).at(-1))?.[1].sval) ?? '?column?';
      return '?column?';
    });
  }

  private targets(targets: readonly unknown[], scope: Scope): OutputColumn[] | undefined {
    const out: OutputColumn[] = [];
    for (const t of targets) {
      const r = unwrap(t)?.[1];
      const val = unwrap(r?.val);
      if (val && val[0] === 'ColumnRef') {
        const fields = list(val[1].fields);
        if (fields.length > 0 && unwrap(fields.at(-1))?.[0] === 'A_Star') {
          const qualifier = fields.slice(0, -1).map((f) => optStr(unwrap(f)?.[1].sval) ?? '');
          const items = qualifier.length ? this.itemsNamed(scope, qualifier, false) : scope.items;
          for (const item of items) {
            const cols = this.expand(item);
            if (cols === undefined) {
              this.unexpanded.push(this.wholeRow(item));
              return undefined;
            }
            out.push(...cols);
          }
          if (items.length === 0) return undefined;
          continue;
        }
      }
      out.push(this.expr(r?.val, scope));
    }
    return out;
  }

  /** Every column of a FROM item, or undefined when unknown. */
  private expand(item: Item): OutputColumn[] | undefined {
    return item.columns?.map((c) => c.col);
  }

  private columnOf(item: Item, column: string): OutputColumn {
    const c = item.columns?.find((x) => x.name === column);
    return c?.col ?? this.wholeRow(item);
  }

  /** The whole row of an item: every column it has (or could have). */
  private wholeRow(item: Item): OutputColumn {
    if (item.columns && !item.opaque) return derivedFrom(item.columns.map((c) => c.col));
    const inputs = item.inputs ? [item.inputs] : [];
    return { derived: [...item.relations.map((r) => ({ relations: [r], column: '*' })), ...union([...(item.columns?.map((c) => c.col) ?? []), ...inputs]).derived], unproven: true };
  }

  /** Columns read by a predicate: recorded for the audit flag. */
  private predicate(node: unknown, scope: Scope): void {
    const dep = this.expr(node, scope);
    if (dep.direct) this.predicates.push(dep.direct);
    this.predicates.push(...dep.derived);
  }

  /** What an expression's value depends on. */
  private expr(node: unknown, scope: Scope): OutputColumn {
    if (Array.isArray(node)) return derivedFrom(node.map((x) => this.expr(x, scope)));
    if (!isObj(node)) return CLEAN;
    const n = unwrap(node);
    if (!n) return derivedFrom(Object.values(node).map((v) => this.expr(v, scope)));
    const [type, b] = n;
    switch (type) {
      case 'A_Const':
      case 'ParamRef':
      case 'SQLValueFunction':
        return CLEAN;
      case 'ColumnRef':
        return this.columnRef(b, scope);
      case 'NullTest':
        this.predicate(b.arg, scope);
        return CLEAN;
      case 'FuncCall': {
        const name = optStr(unwrap(list(b.funcname).at(-1))?.[1].sval) ?? '';
        const qualified = list(b.funcname).length > 1 ? optStr(unwrap(list(b.funcname)[0])?.[1].sval) : undefined;
        if (NON_REVEALING_FUNCTIONS.has(name) && (qualified === undefined || qualified === 'pg_catalog') && b.over === undefined) {
          for (const field of ['args', 'agg_filter', 'agg_order']) if (b[field] !== undefined) this.predicate(b[field], scope);
          return CLEAN;
        }
        const args = derivedFrom(Object.values(b).map((v) => this.expr(v, scope)));
        // a user function, or a built-in that reads by name, may return anything: detectors run on it
        return this.mayBeUserFunction(name, qualified) || READS_BY_NAME.test(name) ? { derived: args.derived, unproven: true } : args;
      }
      case 'SubLink': {
        const sub = this.select(this.selectBody(b.subselect), scope);
        const test = b.testexpr !== undefined ? this.expr(b.testexpr, scope) : CLEAN;
        if (b.subLinkType === 'EXISTS_SUBLINK') return CLEAN;
        return derivedFrom([test, sub === undefined ? this.untraced() : union(sub)]);
      }
      default:
        return derivedFrom(Object.values(b).map((v) => this.expr(v, scope)));
    }
  }

  private mayBeUserFunction(name: string, schema: string | undefined): boolean {
    if (schema !== undefined && schema !== 'pg_catalog') return true;
    for (const names of this.names.objects.functions.values()) if (names.has(name)) return true;
    return false;
  }

  private columnRef(b: Obj, scope: Scope): OutputColumn {
    const fields = list(b.fields).map((f) => {
      const u = unwrap(f);
      return u?.[0] === 'A_Star' ? '*' : (optStr(u?.[1].sval) ?? '');
    });
    if (fields.at(-1) === '*') {
      const items = fields.length > 1 ? this.itemsNamed(scope, fields.slice(0, -1), true) : allItems(scope);
      return items.length ? derivedFrom(items.map((i) => this.wholeRow(i))) : UNPROVEN;
    }
    if (fields.length === 1) {
      const name = fields[0]!;
      // a column of some FROM item (innermost scope first, as PostgreSQL resolves) …
      for (let s: Scope | undefined = scope; s; s = s.parent) {
        const hits = s.items.filter((i) => i.columns === undefined || i.opaque || i.columns.some((c) => c.name === name));
        if (hits.length) return derivedOrDirect(hits.map((i) => this.columnOf(i, name)));
      }
      // … or a whole-row reference to an item of that name
      const items = this.itemsNamed(scope, [name], true);
      return items.length ? derivedFrom(items.map((i) => this.wholeRow(i))) : this.anything(scope);
    }
    // alias.column, schema.table.column, db.schema.table.column (or alias.fn: a function call, judged elsewhere)
    const column = fields.at(-1)!;
    const items = this.itemsNamed(scope, fields.slice(0, -1), true);
    if (!items.length) return this.anything(scope);
    return derivedOrDirect(items.map((i) => this.columnOf(i, column)));
  }

  /** A reference this analysis cannot resolve: it may be any column of any item in scope. */
  private anything(scope: Scope): OutputColumn {
    const items: Item[] = [];
    for (let s: Scope | undefined = scope; s; s = s.parent) items.push(...s.items, ...s.ctes.values());
    return { ...derivedFrom(items.map((i) => this.wholeRow(i))), unproven: true };
  }

  /** Items a qualifier (`alias`, `table`, `schema.table`, `db.schema.table`) may name, innermost scope first. */
  private itemsNamed(scope: Scope, qualifier: readonly string[], outer: boolean): Item[] {
    const name = qualifier.at(-1)!;
    const schema = qualifier.length >= 2 ? qualifier.at(-2) : undefined;
    for (let s: Scope | undefined = scope; s; s = outer ? s.parent : undefined) {
      const hits = s.items.filter((i) => (schema === undefined ? i.name === name : i.relations.some((r) => r === this.names.relation(schema, name))));
      if (hits.length) return hits;
    }
    return [];
  }

}

/** Functions that read a relation, a file or a query named by a string argument. */
const READS_BY_NAME = /xml|query|cursor|^lo_|file|dblink|setting|^pg_get_|^row_to_json$|^to_json|^to_jsonb|^json_populate|hstore/;

function lookupCte(scope: Scope, name: string): Item | undefined {
  return scope.ctes.get(name);
}

function allItems(scope: Scope): Item[] {
  return [...scope.items];
}

/** The columns of several inputs combined into one computed value. */
function derivedFrom(cols: readonly OutputColumn[]): OutputColumn {
  const derived: ColumnSource[] = [];
  let unproven = false;
  for (const c of cols) {
    if (c.direct) derived.push(c.direct);
    derived.push(...c.derived);
    unproven ||= c.unproven;
  }
  return derived.length === 0 && !unproven ? CLEAN : { derived: dedupe(derived), unproven };
}

/** One candidate stays a plain reference; several (an ambiguous name) combine. */
function derivedOrDirect(cols: readonly OutputColumn[]): OutputColumn {
  return cols.length === 1 ? cols[0]! : derivedFrom(cols);
}

function union(cols: readonly OutputColumn[]): OutputColumn {
  return derivedFrom(cols);
}

function dedupe(sources: ColumnSource[]): ColumnSource[] {
  const seen = new Map<string, ColumnSource>();
  for (const s of sources) seen.set(`${s.relations.join('\u0000')}\u0001${s.column}`, s);
  return [...seen.values()];
}
