/**
 * Loads, per upstream, the snapshot of user-defined functions, operators, types and relation columns the classifier
 * needs to see calls hidden in attribute notation, operators and casts (see
 * `classify/upstream-objects.ts`). The snapshot is read with the proxy's own upstream login, kept
 * fresh by a periodic reload, and marked stale by the gate after any statement that may have
 * created such an object (DDL, admin): the next classification waits for the reload. A snapshot
 * that cannot be loaded is a refusal (fail closed), never an empty one.
 */
import { createHash } from 'node:crypto';
import { BatonError } from '../../errors.ts';
import { upstreamObjects, type UpstreamObjectRows, type UpstreamObjects } from './classify/upstream-objects.ts';
import type { UpstreamTarget } from './gate.ts';
import { upstreamClient } from './upstreams.ts';

/**
 * Which functions the snapshot leaves out because the server may run them without a right:
 * IMMUTABLE built-ins, and IMMUTABLE functions installed by an extension (citext, hstore, PostGIS
 * operators): an extension is installed by an administrator, and immutability is its author's
 * promise that it reads and changes nothing. Every other function is listed, and the classifier
 * judges it like an explicit call (a stable built-in on the safe list is still free there).
 */
const UNTRUSTED = `
  WITH untrusted AS (
    SELECT p.oid, n.nspname AS fn_schema, p.proname AS fn_name, n.nspname = 'pg_catalog' AS builtin
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE NOT (p.provolatile = 'i' AND (n.nspname = 'pg_catalog' OR EXISTS (
        SELECT 1 FROM pg_depend d
        WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')))
  ),
  /*
   * Functions naming a type may run: the I/O, typmod and subscript functions of a user-defined type
   * (the generic built-in ones that enums, ranges, composites and domains use are trusted), cast
   * functions into it unless the cast is built in, and the functions its domain CHECKs call.
   */
  type_functions AS (
    SELECT t.oid AS type_oid, f.fn
    FROM pg_type t, LATERAL unnest(ARRAY[t.typinput::oid, t.typoutput::oid, t.typreceive::oid,
      t.typsend::oid, t.typmodin::oid, t.typmodout::oid, t.typsubscript::oid]) AS f(fn)
    WHERE f.fn <> 0 AND (SELECT pronamespace FROM pg_proc WHERE oid = f.fn) <> 'pg_catalog'::regnamespace
    UNION ALL
    SELECT c.casttarget, c.castfunc FROM pg_cast c
    WHERE c.castfunc <> 0 AND NOT (c.oid < 16384)
    UNION ALL
    SELECT con.contypid, d.refobjid FROM pg_constraint con
      JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = con.oid
        AND d.refclassid = 'pg_proc'::regclass
    WHERE con.contypid <> 0
  )`;

const FUNCTIONS_SQL = `
  SELECT n.nspname AS schema, p.proname AS name
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE n.nspname <> 'pg_catalog'`;

/** Operators: any user-created one, and built-in ones whose function is not built in. */
const OPERATORS_SQL = `${UNTRUSTED}
  SELECT n.nspname AS schema, o.oprname AS name, u.fn_schema AS "fnSchema", u.fn_name AS "fnName"
  FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace JOIN untrusted u ON u.oid = o.oprcode
  WHERE NOT (o.oid < 16384 AND u.builtin)`;

const TYPES_SQL = `${UNTRUSTED}
  SELECT n.nspname AS schema, t.typname AS name, u.fn_schema AS "fnSchema", u.fn_name AS "fnName"
  FROM type_functions tf JOIN pg_type t ON t.oid = tf.type_oid
    JOIN pg_namespace n ON n.oid = t.typnamespace JOIN untrusted u ON u.oid = tf.fn`;

/**
 * Functions touching a user relation may run. Reading: the functions of its columns' user-defined
 * types (output). Writing: also assignment casts and input into those types, column defaults, CHECK
 * constraints and triggers.
 */
const RELATIONS_SQL = `${UNTRUSTED}, relation_functions AS (
    SELECT a.attrelid AS rel, tf.fn, false AS write_only
    FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
      JOIN type_functions tf ON tf.type_oid IN (t.oid, t.typbasetype, t.typelem)
    WHERE a.attnum > 0 AND NOT a.attisdropped AND t.typnamespace <> 'pg_catalog'::regnamespace
    UNION ALL
    SELECT ad.adrelid, d.refobjid, true FROM pg_attrdef ad
      JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = 'pg_proc'::regclass
    UNION ALL
    SELECT con.conrelid, d.refobjid, true FROM pg_constraint con
      JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = con.oid AND d.refclassid = 'pg_proc'::regclass
    WHERE con.conrelid <> 0
    UNION ALL
    SELECT tg.tgrelid, tg.tgfoid, true FROM pg_trigger tg WHERE NOT tg.tgisinternal
  )
  SELECT DISTINCT n.nspname AS schema, c.relname AS name, u.fn_schema AS "fnSchema", u.fn_name AS "fnName", rf.write_only AS "writeOnly"
  FROM relation_functions rf JOIN pg_class c ON c.oid = rf.rel JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN untrusted u ON u.oid = rf.fn
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')`;

/** User relations and their live columns in attribute order (for masking: `*` expansion, column provenance). */
const COLUMNS_SQL = `
  SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS kind,
         coalesce(array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attnum > 0), '{}') AS columns,
         CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END AS definition
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
  GROUP BY n.nspname, c.relname, c.relkind, c.oid`;

/** Read the snapshot from one upstream with the proxy's credentials. */
export async function loadUpstreamObjects(target: UpstreamTarget): Promise<UpstreamObjects> {
  const client = upstreamClient(target, { connectionTimeoutMillis: 5000, statement_timeout: 10_000 });
  client.on('error', () => {});
  await client.connect();
  try {
    const [functions, operators, types, relations, columns] = [
      (await client.query(FUNCTIONS_SQL)).rows,
      (await client.query(OPERATORS_SQL)).rows,
      (await client.query(TYPES_SQL)).rows,
      (await client.query(RELATIONS_SQL)).rows,
      (await client.query(COLUMNS_SQL)).rows,
    ] as [UpstreamObjectRows['functions'], UpstreamObjectRows['operators'], UpstreamObjectRows['types'], UpstreamObjectRows['relations'], NonNullable<UpstreamObjectRows['columns']>];
    const rows: UpstreamObjectRows = { functions: sorted(functions), operators: sorted(operators), types: sorted(types), relations: sorted(relations), columns: sorted(columns) };
    return upstreamObjects(rows, createHash('sha256').update(JSON.stringify(rows)).digest('hex').slice(0, 16));
  } finally {
    await client.end().catch(() => {});
  }
}

function sorted<T>(rows: readonly T[]): T[] {
  return rows.map((r) => ({ r, k: JSON.stringify(r) })).sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0)).map((x) => x.r);
}

/** One upstream's snapshot, kept current. */
export interface UpstreamObjectsSource {
  /** The current snapshot; waits for a reload when stale. Rejects with 57P03-class BatonError when unknown. */
  current(): UpstreamObjects | Promise<UpstreamObjects>;
  /** Something may have created or dropped a function, operator, type or cast: reload before the next use. */
  markStale(): void;
  close(): void;
}

export interface UpstreamObjectsOptions {
  /** Periodic reload (objects created outside the proxy). Default 10 s. */
  refreshMs?: number;
}

/** A source that reloads every `refreshMs` and on demand after `markStale()`. */
export function upstreamObjectsSource(target: UpstreamTarget, opts: UpstreamObjectsOptions = {}): UpstreamObjectsSource {
  let snapshot: UpstreamObjects | undefined;
  /** Bumped by markStale(): a snapshot is current only if its load STARTED at the latest generation. */
  let generation = 0;
  let loadedAt = -1;
  let inflight: { generation: number; promise: Promise<UpstreamObjects> } | undefined;

  const reload = (): Promise<UpstreamObjects> => {
    if (inflight && inflight.generation === generation) return inflight.promise;
    const started = generation;
    const promise = (async () => {
      try {
        const loaded = await loadUpstreamObjects(target);
        if (started >= loadedAt) {
          // an unchanged catalog keeps the same object: sessions' classification memos stay valid
          if (snapshot?.version !== loaded.version) snapshot = loaded;
          loadedAt = started;
        }
        return snapshot ?? loaded;
      } catch (err) {
        if (started === generation) snapshot = undefined; // unknown is not "none": refuse until a load succeeds
        throw new BatonError('BATON_ERR_UPSTREAM_UNAVAILABLE', `cannot read the upstream's functions and types; statement refused`, {
          detail: err instanceof Error ? err.message : String(err),
        });
      } finally {
        if (inflight?.generation === started) inflight = undefined;
      }
    })();
    inflight = { generation: started, promise };
    return promise;
  };

  // The periodic reload does not make the snapshot stale: statements keep the old one meanwhile.
  const timer = setInterval(() => {
    reload().catch(() => {});
  }, opts.refreshMs ?? 10_000);
  timer.unref();

  return {
    current() {
      if (snapshot !== undefined && loadedAt === generation) return snapshot;
      return reload();
    },
    markStale() {
      generation++;
    },
    close() {
      clearInterval(timer);
    },
  };
}
