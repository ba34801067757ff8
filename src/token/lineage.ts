/**
 * Reading a token's delegation lineage and effective rights from its decoded blocks. This interprets
 * DESIGN.md's vocabulary; a check of any other shape (e.g. hand-written Datalog) is kept as text and
 * flagged `opaque`, so the caller knows the computed `effective` view may be wider than the truth
 * (the proxy's authorizer, which runs every check, always decides).
 */
import type { Check, DecodedBlock, DecodedToken, Expression, Predicate, Term } from './wire/index.ts';
import { blockToDatalog } from './wire/index.ts';
import { covers } from './vocabulary.ts';
import type { Right } from './mint.ts';

export interface LineageLink {
  /** 0 = the authority block (subject + agent), 1.. = each delegation. */
  depth: number;
  subject?: string;
  issuer?: string;
  agent?: string;
  tokenId?: string;
  delegatedTo?: string;
  purpose?: string;
  /** Resource patterns this link allows (authority: its rights' resources). Absent = not narrowed. */
  resources?: string[];
  /** Operations this link allows. Absent = not narrowed. */
  operations?: string[];
  /** ISO time this link expires. */
  expiresAt?: string;
  roles?: string[];
  revocationId: string;
  /** Checks outside the vocabulary, as Datalog text. */
  opaque?: string[];
}

export interface EffectiveRights {
  rights: Right[];
  resources: string[];
  operations: string[];
  expiresAt?: string;
  /** True when some link has checks this view could not interpret. */
  approximate: boolean;
}

interface Constraints {
  resources?: string[];
  operations?: string[];
  expiresAt?: Date;
  opaque: string[];
}

const str = (t: Term | undefined): string | undefined => (t && 'string' in t ? t.string : undefined);
const firstFact = (facts: readonly Predicate[], name: string): string | undefined =>
  str(facts.find((f) => f.name === name && f.terms.length === 1)?.terms[0]);

/** The lineage: one link per block, in order. */
export function readLineage(token: DecodedToken): LineageLink[] {
  return token.blocks.map((block) => linkOf(block));
}

function linkOf(block: DecodedBlock): LineageLink {
  const c = constraintsOf(block);
  const base = { depth: block.index, revocationId: block.revocationId, ...(c.expiresAt ? { expiresAt: c.expiresAt.toISOString() } : {}) };
  const opaque = c.opaque.length ? { opaque: c.opaque } : {};
  if (block.index === 0) {
    const rights = rightsOf(block);
    const roles = block.facts.filter((f) => f.name === 'role').map((f) => str(f.terms[0])).filter((r): r is string => !!r);
    return {
      ...base,
      tokenId: firstFact(block.facts, 'token_id'),
      subject: firstFact(block.facts, 'subject'),
      issuer: firstFact(block.facts, 'issuer'),
      agent: firstFact(block.facts, 'agent'),
      resources: [...new Set(rights.map((r) => r.resource))],
      operations: [...new Set(rights.map((r) => r.operation))],
      ...(roles.length ? { roles } : {}),
      ...opaque,
    };
  }
  return {
    ...base,
    delegatedTo: firstFact(block.facts, 'delegated_to'),
    purpose: firstFact(block.facts, 'purpose'),
    ...(c.resources ? { resources: c.resources } : {}),
    ...(c.operations ? { operations: c.operations } : {}),
    ...opaque,
  };
}

/** `right(resource, operation)` facts of the authority block. */
export function rightsOf(authority: DecodedBlock): Right[] {
  return authority.facts
    .filter((f) => f.name === 'right' && f.terms.length === 2)
    .map((f) => ({ resource: str(f.terms[0]) ?? '', operation: str(f.terms[1]) ?? '' }))
    .filter((r) => r.resource && r.operation);
}

/** The rights left after every link's constraints, and the earliest expiry. */
export function effectiveRights(token: DecodedToken): EffectiveRights {
  const [authority] = token.blocks;
  if (!authority) return { rights: [], resources: [], operations: [], approximate: true };
  let rights = rightsOf(authority);
  let expiresAt: Date | undefined;
  let approximate = false;
  for (const block of token.blocks) {
    const c = constraintsOf(block);
    if (c.expiresAt && (!expiresAt || c.expiresAt < expiresAt)) expiresAt = c.expiresAt;
    if (c.opaque.length) approximate = true;
    if (block === authority) continue;
    if (c.operations) rights = narrowOperations(rights, c.operations);
    if (c.resources) rights = narrowResources(rights, c.resources);
  }
  return {
    rights,
    resources: [...new Set(rights.map((r) => r.resource))],
    operations: [...new Set(rights.map((r) => r.operation))],
    ...(expiresAt ? { expiresAt: expiresAt.toISOString() } : {}),
    approximate,
  };
}

function narrowOperations(rights: Right[], allowed: string[]): Right[] {
  return unique(rights.flatMap((r) => (r.operation === '*' ? allowed.map((operation) => ({ ...r, operation })) : allowed.includes(r.operation) ? [r] : [])));
}

function narrowResources(rights: Right[], allowed: string[]): Right[] {
  return unique(
    rights.flatMap((r) =>
      allowed.flatMap((a) => {
        if (covers(r.resource, a)) return [{ ...r, resource: a }];
        if (covers(a, r.resource)) return [r];
        return [];
      }),
    ),
  );
}

function unique(rights: Right[]): Right[] {
  return [...new Map(rights.map((r) => [`${r.resource}\u0000${r.operation}`, r])).values()];
}

/** Interprets a block's checks against the vocabulary. */
function constraintsOf(block: DecodedBlock): Constraints {
  const out: Constraints = { opaque: [] };
  for (const check of block.checks) {
    const expiry = asExpiry(check);
    if (expiry) {
      if (!out.expiresAt || expiry < out.expiresAt) out.expiresAt = expiry;
      continue;
    }
    const resources = asMembership(check, 'resource');
    if (resources) {
      out.resources = out.resources ? out.resources.filter((r) => resources.some((n) => covers(n, r))) : resources;
      continue;
    }
    const operations = asMembership(check, 'operation');
    if (operations && !operations.some((o) => o.endsWith('*'))) {
      out.operations = out.operations ? out.operations.filter((o) => operations.includes(o)) : operations;
      continue;
    }
    out.opaque.push(blockToDatalog({ checks: [check] }).trim());
  }
  return out;
}

const isVar = (op: Expression[number] | undefined, name: string) => !!op && 'value' in op && 'variable' in op.value && op.value.variable === name;

/** `check if time($t), $t <= <date>` */
function asExpiry(check: Check): Date | undefined {
  if (check.kind !== 'if' || check.queries.length !== 1) return undefined;
  const q = check.queries[0]!;
  const [pred] = q.body;
  if (q.body.length !== 1 || pred?.name !== 'time' || q.expressions.length !== 1 || q.scopes.length) return undefined;
  const v = pred.terms[0];
  if (!v || !('variable' in v)) return undefined;
  const [a, b, op] = q.expressions[0]!;
  if (!isVar(a, v.variable) || !b || !('value' in b) || !('date' in b.value) || !op || !('binary' in op)) return undefined;
  if (op.binary !== 'lessOrEqual' && op.binary !== 'lessThan') return undefined;
  return b.value.date;
}

/**
 * `check if P($x), [..].contains($x) or P($x), $x.starts_with("..") or …` → the allowed values,
 * prefixes rendered as `prefix*`. Anything else → undefined (opaque).
 */
function asMembership(check: Check, predicate: 'resource' | 'operation'): string[] | undefined {
  if (check.kind !== 'if' || check.queries.length === 0) return undefined;
  const values: string[] = [];
  for (const q of check.queries) {
    const [pred] = q.body;
    if (q.body.length !== 1 || pred?.name !== predicate || pred.terms.length !== 1 || q.expressions.length !== 1 || q.scopes.length) return undefined;
    const v = pred.terms[0]!;
    if (!('variable' in v)) return undefined;
    const [a, b, op] = q.expressions[0]!;
    if (q.expressions[0]!.length !== 3 || !a || !b || !op || !('binary' in op)) return undefined;
    if (op.binary === 'contains' && 'value' in a && 'set' in a.value && isVar(b, v.variable)) {
      const items = a.value.set.map(str);
      // a literal ending in `*` matches only itself, not a prefix: outside the vocabulary
      if (items.some((i) => i === undefined || i.endsWith('*'))) return undefined;
      values.push(...(items as string[]));
    } else if (op.binary === 'prefix' && isVar(a, v.variable) && 'value' in b && 'string' in b.value) {
      values.push(`${b.value.string}*`);
    } else {
      return undefined;
    }
  }
  return values;
}
