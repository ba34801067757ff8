/**
 * The planner's row estimate of a write, for `rows-above` approval rules: EXPLAIN (never ANALYZE:
 * nothing runs) on the PROXY's own upstream connection, never the client's session — so a client
 * cannot change the answer with session settings or see it. Any doubt (several statements, binary
 * parameters, an EXPLAIN error) is `undefined`, which the gate treats as "above" (fail closed).
 */
import type { UpstreamTarget } from './gate.ts';
import { upstreamClient } from './upstreams.ts';

/** Text-format Bind parameter values (null = SQL NULL), or undefined when any is binary or the bytes are malformed. */
export function textParameters(section: Uint8Array | undefined): (string | null)[] | undefined {
  if (section === undefined) return [];
  const buf = Buffer.from(section.buffer, section.byteOffset, section.byteLength);
  let pos = 0;
  const need = (n: number) => pos + n <= buf.length;
  if (!need(2)) return undefined;
  const nFormats = buf.readInt16BE(pos);
  pos += 2;
  if (!need(2 * nFormats)) return undefined;
  const formats: number[] = [];
  for (let i = 0; i < nFormats; i++, pos += 2) formats.push(buf.readInt16BE(pos));
  if (!need(2)) return undefined;
  const nParams = buf.readInt16BE(pos);
  pos += 2;
  if (formats.some((f) => f !== 0)) return undefined;
  const values: (string | null)[] = [];
  for (let i = 0; i < nParams; i++) {
    if (!need(4)) return undefined;
    const len = buf.readInt32BE(pos);
    pos += 4;
    if (len < 0) values.push(null);
    else {
      if (!need(len)) return undefined;
      values.push(buf.toString('utf8', pos, pos + len));
      pos += len;
    }
  }
  return values;
}

/** Rows the planner expects the statement to write (or read), or undefined when it cannot say. */
export async function estimateRows(target: UpstreamTarget, sql: string, values: readonly (string | null)[]): Promise<number | undefined> {
  const client = upstreamClient(target, { connectionTimeoutMillis: 5000, statement_timeout: 5000 });
  client.on('error', () => {});
  try {
    await client.connect();
    const r = await client.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`EXPLAIN (FORMAT JSON) ${sql}`, values as (string | null)[]);
    const plan = r.rows[0]?.['QUERY PLAN']?.[0]?.Plan;
    if (!plan) return undefined;
    // a write's top node (ModifyTable) plans 0 rows of output; the rows it changes come from below
    const rows = plan['Node Type'] === 'ModifyTable' ? plan.Plans?.[0]?.['Plan Rows'] : plan['Plan Rows'];
    return typeof rows === 'number' ? rows : undefined;
  } catch {
    return undefined;
  } finally {
    await client.end().catch(() => {});
  }
}

interface PlanNode {
  'Node Type': string;
  'Plan Rows'?: number;
  Plans?: PlanNode[];
}
