/**
 * Which privileges an ephemeral PostgreSQL role may hold for a token (issue 14): exactly the token's
 * table rights on that upstream, expanded against the catalog at issue time — minus what only the
 * proxy can enforce. A direct connection has no proxy in its path, so:
 *
 * - masked columns (policy `masking`) are left out of SELECT unless the token holds `read_unmasked`
 *   on the relation (column-level grants of the other columns);
 * - views, materialized views and foreign tables are not readable when value detectors are on and
 *   the token lacks `read_unmasked` (their results are unproven: the proxy would scan them);
 * - operations an approval rule could hold (policy `approvals`, or a link's `requireApproval`) are
 *   left out: nobody could hold the statement for an approver;
 * - `ddl`, `admin`, `execute` are not table privileges and are never granted.
 *
 * Every left-out pair is reported with its reason. Pure: the catalog is passed in.
 */
import type { ApprovalRule, MaskingPolicy } from '../policy/schema.ts';
import { quoteIdent } from '../proxy/pg/classify/names.ts';
import type { EffectiveRights, LineageLink } from '../token/lineage.ts';
import { covers } from '../token/vocabulary.ts';

/** A relation of the upstream's catalog (kind: pg_class.relkind). */
export interface CatalogRelation {
  schema: string;
  name: string;
  kind: 'r' | 'p' | 'v' | 'm' | 'f';
  columns: string[];
  /** Sequences owned by its columns (serial / identity): INSERT needs USAGE on them. */
  sequences: string[];
}

export type TablePrivilege = 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE' | 'TRUNCATE';

export interface RoleGrant {
  resource: string;
  schema: string;
  name: string;
  privilege: TablePrivilege;
  /** Column-level SELECT (masked columns left out); absent = the whole relation. */
  columns?: string[];
  sequences?: string[];
}

export interface OmittedRight {
  resource: string;
  operation: string;
  why: string;
}

export interface RolePlan {
  grants: RoleGrant[];
  omitted: OmittedRight[];
}

const PRIVILEGE_OF: Record<string, TablePrivilege> = { read: 'SELECT', insert: 'INSERT', update: 'UPDATE', delete: 'DELETE', truncate: 'TRUNCATE' };
const TABLE_OPERATIONS = Object.keys(PRIVILEGE_OF);
const WRITES = ['insert', 'update', 'delete'];

/** What each approval condition could hold (so a direct role must not hold it). */
const HELD_BY: Record<ApprovalRule['when'], string[]> = {
  'delete-without-where': ['delete'],
  'update-without-where': ['update'],
  truncate: ['truncate'],
  drop: [],
  write: [...WRITES, 'truncate'],
  // the planner's estimate applies to any statement: nothing on those resources is safe to grant
  'rows-above': [...TABLE_OPERATIONS],
};

export interface PlanInput {
  /**
   * `direct`: a client connects with the role itself (everything above applies); `proxied`: the
   * proxy logs in as it for the token's sessions (proxy.upstreamIdentity: per-token) and still masks,
   * holds and classifies — the role is the database's own lock on the token's table rights.
   */
  mode: 'direct' | 'proxied';
  upstream: string;
  effective: EffectiveRights;
  lineage: readonly LineageLink[];
  catalog: readonly CatalogRelation[];
  masking: MaskingPolicy;
  approvals: readonly ApprovalRule[];
}

/** @example planRole({ upstream: 'appdb', effective, lineage, catalog, masking, approvals }).grants */
export function planRole(input: PlanInput): RolePlan {
  const { upstream, effective } = input;
  const grants: RoleGrant[] = [];
  const omitted: OmittedRight[] = [];
  const allows = (resource: string, op: string) => effective.rights.some((r) => (r.operation === op || r.operation === '*') && covers(r.resource, resource));
  const direct = input.mode === 'direct';
  const chainHeld = new Set(direct ? input.lineage.flatMap((l) => l.requireApproval ?? []) : []);
  const detectorsOn = input.masking.detectors.builtin.length + input.masking.detectors.custom.length > 0;

  for (const rel of input.catalog) {
    const resource = `pg:${upstream}/${quoteIdent(rel.schema)}.${quoteIdent(rel.name)}`;
    const heldHere = new Set((direct ? input.approvals : []).filter((rule) => !rule.resources || rule.resources.some((p) => covers(p, resource))).flatMap((rule) => HELD_BY[rule.when]));
    for (const op of TABLE_OPERATIONS) {
      if (!allows(resource, op)) continue;
      if (chainHeld.has(op) || chainHeld.has('*')) {
        omitted.push({ resource, operation: op, why: 'a link of the chain requires approval for it; only the proxy can hold a statement' });
        continue;
      }
      if (heldHere.has(op)) {
        omitted.push({ resource, operation: op, why: 'an approval rule of the policy could hold it; only the proxy can hold a statement' });
        continue;
      }
      const grant: RoleGrant = { resource, schema: rel.schema, name: rel.name, privilege: PRIVILEGE_OF[op]! };
      if (direct && op === 'read' && !allows(resource, 'read_unmasked')) {
        if (rel.kind !== 'r' && rel.kind !== 'p' && detectorsOn) {
          omitted.push({ resource, operation: op, why: 'a view’s results are unproven: the proxy would scan them for sensitive values, a direct connection cannot' });
          continue;
        }
        const masked = maskedColumns(input.masking, resource);
        if (masked.size > 0) {
          const visible = rel.columns.filter((c) => !masked.has(c));
          if (visible.length === 0) {
            omitted.push({ resource, operation: op, why: 'every column is masked' });
            continue;
          }
          grant.columns = visible;
          omitted.push({ resource, operation: op, why: `masked columns left out: ${[...masked].filter((c) => rel.columns.includes(c)).join(', ')}` });
        }
      }
      if (op === 'insert' && rel.sequences.length) grant.sequences = rel.sequences;
      grants.push(grant);
    }
  }
  for (const r of effective.rights) {
    if (r.resource.startsWith(`pg:${upstream}/`) && !TABLE_OPERATIONS.includes(r.operation) && r.operation !== '*' && r.operation !== 'read_unmasked') {
      omitted.push({ resource: r.resource, operation: r.operation, why: 'not a table privilege: only the proxy enforces it' });
    }
  }
  return { grants, omitted };
}

/** Columns the policy masks on `resource`. */
function maskedColumns(masking: MaskingPolicy, resource: string): Set<string> {
  return new Set(masking.rules.filter((rule) => rule.resources.some((p) => covers(p, resource))).flatMap((rule) => Object.keys(rule.columns)));
}
