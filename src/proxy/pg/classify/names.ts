/**
 * Name resolution: which schema(s) an identifier can refer to, and how a resource string is spelled.
 *
 * PostgreSQL searches `pg_catalog` before the search path unless the path lists it explicitly, and
 * `pg_temp` before both for relations. We cannot see which objects exist, so an unqualified name
 * yields every schema it could resolve to; the caller must be allowed on all of them. `pg_temp`
 * is left out of lookups on purpose: a temporary table can only shadow a name with the session's
 * own data, so ignoring it can over-restrict but never under-restrict.
 */
import type { ClassifyContext } from './types.ts';
import { PG_CATALOG_FUNCTIONS } from './pg-catalog-functions.ts';
import { NO_USER_OBJECTS, type UpstreamObjects } from './upstream-objects.ts';
import { Unsupported } from './unsupported.ts';

const PLAIN_IDENT = /^[a-z_][a-z0-9_$]*$/;

/**
 * Quote an identifier like PostgreSQL's `quote_ident` (minus the keyword rule), so resource strings
 * are unambiguous: `Orders` → `"Orders"`, `a.b` → `"a.b"`, `*` → `"*"`.
 *
 * @example quoteIdent('orders') === 'orders'; quoteIdent('My"T') === '"My""T"'
 */
export function quoteIdent(name: string): string {
  return PLAIN_IDENT.test(name) ? name : `"${name.replaceAll('"', '""')}"`;
}

/** Resolves identifiers against one session's search path and spells resources for one upstream. */
export class Resolver {
  readonly upstream: string;
  /** Explicit path entries minus `pg_temp`, `$user` expanded when known. */
  private readonly path: readonly string[];
  /** Lookup order: `pg_catalog` first unless the path places it itself. */
  private readonly lookup: readonly string[];
  /** The upstream's user-defined functions, operators and types. */
  readonly objects: UpstreamObjects;

  constructor(ctx: ClassifyContext) {
    this.upstream = ctx.upstream;
    this.objects = ctx.objects ?? NO_USER_OBJECTS;
    this.path = ctx.searchPath
      .map((s) => (s === '$user' && ctx.sessionUser !== undefined ? ctx.sessionUser : s))
      .filter((s) => s !== 'pg_temp' && !s.startsWith('pg_temp_') && s !== '');
    this.lookup = this.path.includes('pg_catalog') ? this.path : ['pg_catalog', ...this.path];
  }

  /** `pg:<up>/<schema>.<name>` */
  relation(schema: string, name: string): string {
    return `pg:${this.upstream}/${quoteIdent(schema)}.${quoteIdent(name)}`;
  }

  /** `pg:<up>/<schema>.<fn>()` */
  func(schema: string, name: string): string {
    return `pg:${this.upstream}/${quoteIdent(schema)}.${quoteIdent(name)}()`;
  }

  /** `pg:<up>/<schema>.*`: a whole schema (CREATE/DROP SCHEMA). */
  schema(schema: string): string {
    return `pg:${this.upstream}/${quoteIdent(schema)}.*`;
  }

  /** `pg:<up>/*`: what `admin` operations are checked against. */
  get all(): string {
    return `pg:${this.upstream}/*`;
  }

  /**
   * Schemas an unqualified relation name can resolve to. Every catalog relation is named `pg_…`
   * (checked on PostgreSQL 15 and 18), so other names skip `pg_catalog`; `pg_…` names may be in
   * `pg_catalog` or, if it has no such relation, anywhere on the path.
   */
  relationSchemas(name: string, knownCatalog: boolean): string[] {
    if (!name.startsWith('pg_')) return this.nonEmpty(this.path.filter((s) => s !== 'pg_catalog'));
    return knownCatalog ? this.upToCatalog() : [...this.lookup];
  }

  /**
   * Every explicit path schema: a new unqualified object is created in the first one that exists,
   * and a procedure (never a built-in) is looked up there.
   */
  pathSchemas(): string[] {
    return this.nonEmpty([...this.path]);
  }

  /**
   * Schemas an unqualified function call can resolve to. Known `pg_catalog` names (and any `pg_…`
   * name, for newer servers) resolve to `pg_catalog` and any schema the path puts before it;
   * others to every path schema. Overload resolution could still pick a same-named function
   * later on the path; creating functions is `admin` for exactly that reason (see docs).
   */
  functionSchemas(name: string): string[] {
    let schemas: string[];
    if (PG_CATALOG_FUNCTIONS.has(name)) schemas = this.upToCatalog();
    else if (name.startsWith('pg_')) return [...this.lookup];
    else return this.nonEmpty(this.path.filter((s) => s !== 'pg_catalog'));
    // A same-named user function later on the path can still win overload resolution (a better
    // argument-type match): every path schema that has one is a candidate too.
    for (const s of this.lookup) if (!schemas.includes(s) && this.hasUserFunction(s, name)) schemas.push(s);
    return schemas;
  }

  /**
   * True when `name` in field position (`alias.name`, `(expr).name`) may be a function call: a
   * function of that name exists in `pg_catalog` or in any schema of the upstream.
   */
  mayBeFunction(name: string): boolean {
    if (PG_CATALOG_FUNCTIONS.has(name)) return true;
    for (const names of this.objects.functions.values()) if (names.has(name)) return true;
    return false;
  }

  /** True when the upstream has a user-defined function `<schema>.<name>`. */
  hasUserFunction(schema: string, name: string): boolean {
    return this.objects.functions.get(schema)?.has(name) === true;
  }

  /**
   * Schemas an operator (or type) name can resolve to: `[schema]` when qualified, else the lookup
   * order (`pg_catalog` first unless the path places it).
   */
  lookupSchemas(schema: string | undefined): readonly string[] {
    return schema === undefined ? this.lookup : [schema];
  }

  private upToCatalog(): string[] {
    return this.lookup.slice(0, this.lookup.indexOf('pg_catalog') + 1);
  }

  private nonEmpty(schemas: string[]): string[] {
    if (schemas.length === 0) throw new Unsupported('unqualified name with an empty search_path');
    return schemas;
  }
}

/**
 * Parse the text of a `regclass` literal (`'orders'`, `'public."Seq"'`) the way PostgreSQL's
 * `stringToQualifiedNameList` does: dots separate names, double quotes keep case, bare names are
 * lower-cased. Returns undefined for anything else (the caller then fails closed).
 *
 * @example parseQualifiedName('Public."MySeq"') → ['public', 'MySeq']
 */
export function parseQualifiedName(text: string): string[] | undefined {
  const parts: string[] = [];
  let i = 0;
  const n = text.length;
  const skipSpace = () => {
    while (i < n && /\s/.test(text[i]!)) i++;
  };
  for (;;) {
    skipSpace();
    let part = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (i >= n) return undefined;
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            part += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        part += text[i++];
      }
      if (part === '') return undefined;
    } else {
      const m = /^[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*/.exec(text.slice(i));
      if (!m) return undefined;
      part = m[0].replace(/[A-Z]/g, (c) => c.toLowerCase());
      i += m[0].length;
    }
    parts.push(part);
    skipSpace();
    if (i >= n) return parts;
    if (text[i] !== '.') return undefined;
    i++;
  }
}
