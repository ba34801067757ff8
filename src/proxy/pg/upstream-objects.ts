/**
 * Loads, per upstream, the snapshot of user-defined functions, operators and types the classifier
 * needs to see calls hidden in attribute notation, operators and casts (see
 * `classify/upstream-objects.ts`). The snapshot is read with the proxy's own upstream login, kept
 * fresh by a periodic reload, and marked stale by the gate after any statement that may have
 * created such an object (DDL, admin): the next classification waits for the reload. A snapshot
 * that cannot be loaded is a refusal (fail closed), never an empty one.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import { BatonError } from '../../errors.ts';
import { upstreamObjects, type UpstreamObjectRows, type UpstreamObjects } from './classify/upstream-objects.ts';
import type { UpstreamTarget } from './gate.ts';

/**
 * A function the server may call on its own is trusted (left out of the snapshot) only when it is
 * built in, or IMMUTABLE and installed by an extension (citext, hstore, PostGIS operators): an
 * extension is installed by an administrator, and immutability is its author's promise that it
 * reads and changes nothing. Anything else a user created is judged like an explicit call.
 */
const FUNCTIONS_SQL = `
  SELECT n.nspname AS schema, p.proname AS name
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE n.nspname <> 'pg_catalog'`;

const UNTRUSTED = `
  WITH untrusted AS (
    SELECT p.oid, n.nspname AS fn_schema, p.proname AS fn_name
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname <> 'pg_catalog'
      AND NOT (p.provolatile = 'i' AND EXISTS (
        SELECT 1 FROM pg_depend d
        WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'))
  )`;

const OPERATORS_SQL = `${UNTRUSTED}
  SELECT n.nspname AS schema, o.oprname AS name, u.fn_schema AS "fnSchema", u.fn_name AS "fnName"
  FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace JOIN untrusted u ON u.oid = o.oprcode`;

/**
 * Functions naming a type may run: its I/O, typmod and subscript functions, cast functions INTO it,
 * and functions its domain CHECK constraints call.
 */
const TYPES_SQL = `${UNTRUSTED}, type_functions AS (
    SELECT t.oid AS type_oid, f.fn
    FROM pg_type t, LATERAL unnest(ARRAY[t.typinput::oid, t.typoutput::oid, t.typreceive::oid,
      t.typsend::oid, t.typmodin::oid, t.typmodout::oid, t.typsubscript::oid]) AS f(fn)
    UNION ALL
    SELECT c.casttarget, c.castfunc FROM pg_cast c WHERE c.castfunc <> 0
    UNION ALL
    SELECT con.contypid, d.refobjid FROM pg_constraint con
      JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = con.oid
        AND d.refclassid = 'pg_proc'::regclass
    WHERE con.contypid <> 0
  )
  SELECT n.nspname AS schema, t.typname AS name, u.fn_schema AS "fnSchema", u.fn_name AS "fnName"
  FROM type_functions tf JOIN pg_type t ON t.oid = tf.type_oid
    JOIN pg_namespace n ON n.oid = t.typnamespace JOIN untrusted u ON u.oid = tf.fn`;

/** Read the snapshot from one upstream with the proxy's credentials. */
export async function loadUpstreamObjects(target: UpstreamTarget): Promise<UpstreamObjects> {
  const client = new pg.Client({
    host: target.host,
    port: target.port,
    user: target.user,
    database: target.database,
    ...(target.password !== undefined ? { password: target.password } : {}),
    ...(target.ssl ? { ssl: target.ssl } : {}),
    connectionTimeoutMillis: 5000,
    statement_timeout: 10_000,
  });
  client.on('error', () => {});
  await client.connect();
  try {
    const [functions, operators, types] = [
      (await client.query(FUNCTIONS_SQL)).rows,
      (await client.query(OPERATORS_SQL)).rows,
      (await client.query(TYPES_SQL)).rows,
    ] as [UpstreamObjectRows['functions'], UpstreamObjectRows['operators'], UpstreamObjectRows['types']];
    const rows: UpstreamObjectRows = { functions: sorted(functions), operators: sorted(operators), types: sorted(types) };
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
  load?: (target: UpstreamTarget) => Promise<UpstreamObjects>;
}

/** A source that reloads every `refreshMs` and on demand after `markStale()`. */
export function upstreamObjectsSource(target: UpstreamTarget, opts: UpstreamObjectsOptions = {}): UpstreamObjectsSource {
  const load = opts.load ?? loadUpstreamObjects;
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
        const loaded = await load(target);
        if (started >= loadedAt) {
          snapshot = loaded;
          loadedAt = started;
        }
        return loaded;
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
