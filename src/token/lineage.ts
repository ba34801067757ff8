/**
 * Reading a token's delegation lineage and effective rights from its decoded blocks. This interprets
 * DESIGN.md's vocabulary EXACTLY; anything of any other shape (hand-written Datalog: other check
 * forms, rules, scopes, extra or repeated facts in an attenuation block) is kept as text and flagged
 * `opaque`, so the caller knows the computed `effective` view may be wider than the truth (the proxy's
 * authorizer, which runs every check, always decides; it also stops caching decisions for such
 * tokens). Blocks that define reserved names never get here: `verifyToken` refuses them.
 */
import type { Check, DecodedBlock, DecodedToken, Op, Predicate, Query, Term } from './wire/index.ts';
import { blockToDatalog } from './wire/index.ts';
import { APPROVAL_FACT, covers, isOperation, LINEAGE_FACTS } from './vocabulary.ts';
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
  /** Operations whose statements need a just-in-time approval for this link's holder and below. */
  requireApproval?: string[];
  revocationId: string;
  /** Facts, rules, scopes and checks outside the vocabulary, as Datalog text. */
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
  /** Everything in the block outside the vocabulary, as Datalog text. */
  opaque: string[];
}

const str = (t: Term | undefined): string | undefined => (t && 'string' in t ? t.string : undefined);
/** `name("…")`: one string term. */
const stringFact = (f: Predicate, name: string): string | undefined => (f.name === name && f.terms.length === 1 ? str(f.terms[0]) : undefined);
/** The value of the first fact named `name` (if it has the vocabulary's shape; later ones are opaque). */
const firstFact = (facts: readonly Predicate[], name: string): string | undefined => {
  const fact = facts.find((f) => f.name === name);
  return fact && stringFact(fact, name);
};

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
  const approvals = [...new Set(block.facts.map((f) => stringFact(f, APPROVAL_FACT)).filter((op): op is string => op !== undefined && isOperation(op)))];
  return {
    ...base,
    delegatedTo: firstFact(block.facts, 'delegated_to'),
    purpose: firstFact(block.facts, 'purpose'),
    ...(approvals.length ? { requireApproval: approvals } : {}),
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
    // authority checks narrow too (the broker writes none of these, but the authorizer would run them)
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

/**
 * Interprets a block against the vocabulary. Only EXACT vocabulary forms are read; anything else
 * (rules, block scopes, extra facts in an attenuation block, duplicates, any other check shape) is kept
 * as text in `opaque`, which makes the lineage approximate: a reader that half-understood a check could
 * report a looser restriction than the one enforced (e.g. an expiry later than the real one).
 */
function constraintsOf(block: DecodedBlock): Constraints {
  const out: Constraints = { opaque: [] };
  const text = (part: Parameters<typeof blockToDatalog>[0]) => out.opaque.push(blockToDatalog(part).trim());
  if (block.scopes.length) text({ scopes: block.scopes });
  for (const rule of block.rules) text({ rules: [rule] });
  if (block.index > 0) {
    for (const fact of block.facts.filter((f, i) => !isLineageFact(block.facts, f, i))) text({ facts: [fact] });
  }
  for (const check of block.checks) {
    const expiry = asExpiry(check);
    if (expiry) {
      if (!out.expiresAt || expiry < out.expiresAt) out.expiresAt = expiry;
      continue;
    }
    const resources = asMembership(check, 'resource');
    if (resources) {
      out.resources = out.resources ? intersectPatterns(out.resources, resources) : resources;
      continue;
    }
    const operations = asMembership(check, 'operation');
    if (operations && !operations.some((o) => o.endsWith('*'))) {
      out.operations = out.operations ? out.operations.filter((o) => operations.includes(o)) : operations;
      continue;
    }
    text({ checks: [check] });
  }
  return out;
}

/** The first `delegated_to("…")` or `purpose("…")` of an attenuation block; repeats are opaque. */
function isLineageFact(facts: readonly Predicate[], fact: Predicate, index: number): boolean {
  const approval = stringFact(fact, APPROVAL_FACT);
  if (approval !== undefined) return isOperation(approval); // '*': every operation
  if (!LINEAGE_FACTS.some((name) => stringFact(fact, name) !== undefined)) return false;
  return facts.findIndex((f) => f.name === fact.name) === index;
}

/** Resources matching both pattern sets, as patterns (each is exact or a trailing-`*` prefix). */
function intersectPatterns(a: string[], b: string[]): string[] {
  const out = a.flatMap((x) => b.flatMap((y) => (covers(x, y) ? [y] : covers(y, x) ? [x] : [])));
  return [...new Set(out)];
}

const isVar = (op: Op | undefined, name: string) => !!op && 'value' in op && 'variable' in op.value && op.value.variable === name;

/**
 * The one query of `check if P($v), <expression>` (one body predicate with one variable term, one
 * expression of exactly three ops, no scopes) as `{ variable, ops }`; anything else → undefined.
 */
function simpleQuery(q: Query, predicate: string): { variable: string; ops: readonly [Op, Op, Op] } | undefined {
  const [pred] = q.body;
  if (q.body.length !== 1 || q.scopes.length || q.expressions.length !== 1) return undefined;
  if (pred?.name !== predicate || pred.terms.length !== 1) return undefined;
  const v = pred.terms[0]!;
  const e = q.expressions[0]!;
  if (!('variable' in v) || e.length !== 3) return undefined;
  return { variable: v.variable, ops: e as unknown as readonly [Op, Op, Op] };
}

/** `check if time($t), $t <= <date>` exactly. */
function asExpiry(check: Check): Date | undefined {
  if (check.kind !== 'if' || check.queries.length !== 1) return undefined;
  const q = simpleQuery(check.queries[0]!, 'time');
  if (!q) return undefined;
  const [a, b, op] = q.ops;
  if (!isVar(a, q.variable) || !('value' in b) || !('date' in b.value) || !('binary' in op) || op.binary !== 'lessOrEqual') return undefined;
  return b.value.date;
}

/**
 * `check if P($x), [..].contains($x) or P($x), $x.starts_with("..") or …` exactly → the allowed
 * values, prefixes rendered as `prefix*` — or, ending in `/`, as the directory pattern itself (the
 * authorizer's directory fact makes `starts_with("…/x/")` cover `…/x` too: vocabulary.ts `covers`).
 * Anything else → undefined (opaque).
 */
function asMembership(check: Check, predicate: 'resource' | 'operation'): string[] | undefined {
  if (check.kind !== 'if' || check.queries.length === 0) return undefined;
  const values: string[] = [];
  for (const query of check.queries) {
    const q = simpleQuery(query, predicate);
    if (!q) return undefined;
    const [a, b, op] = q.ops;
    if (!('binary' in op)) return undefined;
    if (op.binary === 'contains' && 'value' in a && 'set' in a.value && isVar(b, q.variable)) {
      const items = a.value.set.map(str);
      // a literal `*` matches only itself, not a prefix: outside the vocabulary
      if (items.some((i) => i === undefined || i.includes('*'))) return undefined;
      values.push(...(items as string[]));
    } else if (op.binary === 'prefix' && isVar(a, q.variable) && 'value' in b && 'string' in b.value && !b.value.string.includes('*')) {
      values.push(b.value.string.endsWith('/') ? b.value.string : `${b.value.string}*`);
    } else {
      return undefined;
    }
  }
  return [...new Set(values)];
}
