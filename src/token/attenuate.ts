/**
 * Offline attenuation: append one block that narrows a token (DESIGN.md). No network, no root key.
 * It refuses to widen: resources outside the parent's effective rights, operations the parent lacks,
 * or a lifetime beyond the parent's are errors here, never a token that would fail later.
 * Every value goes into the block as data (a Datalog term), so hostile names cannot change its meaning.
 */
import { BatonError } from '../errors.ts';
import { parseDuration } from '../policy/duration.ts';
import { assertAdmissible } from './admission.ts';
import { effectiveRights } from './lineage.ts';
import { APPROVAL_FACT, covers, isOperation, parseResource, printable } from './vocabulary.ts';
import { appendBlock, decodeToken, sealToken, type BlockModel, type Check, type Predicate } from './wire/index.ts';

export interface AttenuateOptions {
  /** Resources (exact, `prefix*`, or a `dir/` directory) the child may touch; default: the parent's. */
  resources?: string[];
  /** Operations the child may perform; default: the parent's. */
  operations?: string[];
  /** Lifetime from now: `"5m"`, `"30s"`, or seconds; default: the parent's remaining lifetime. */
  ttl?: string | number;
  /** Who the child token is for (a helper / sub-agent name). Required: every link names its holder. */
  delegateTo: string;
  purpose?: string;
  /**
   * Operations (e.g. `["delete"]`) whose statements the child's holder may run only after a
   * just-in-time approval. Adds a requirement: it never widens the token.
   */
  requireApproval?: string[];
  /** Seal the result: nobody can attenuate it further. */
  seal?: boolean;
  /** The clock (tests). */
  now?: Date;
}

const MAX_TEXT = 256;

/**
 * @example
 * const child = attenuate(token, { resources: ['pg:appdb/public.orders'], operations: ['read'], ttl: '5m', delegateTo: 'helper-7' });
 */
export function attenuate(token: string, opts: AttenuateOptions): string {
  validateText('delegateTo', opts.delegateTo);
  if (opts.purpose !== undefined) validateText('purpose', opts.purpose);
  const parent = decodeToken(token.trim());
  if (parent.sealed) throw new BatonError('BATON_ERR_TOKEN_SEALED', 'the token is sealed and cannot be attenuated');
  const effective = effectiveRights(parent);
  const now = opts.now ?? new Date();

  const resources = opts.resources?.length ? [...new Set(opts.resources)] : undefined;
  const operations = opts.operations?.length ? [...new Set(opts.operations)] : undefined;
  for (const r of resources ?? []) parseResource(r);
  for (const op of operations ?? []) if (!isOperation(op) || op === '*') throw new TypeError(`unknown operation "${printable(op, 20)}"`);
  refuseWidening(effective.rights, resources, operations);
  const requireApproval = opts.requireApproval?.length ? [...new Set(opts.requireApproval)] : undefined;
  for (const op of requireApproval ?? []) if (!isOperation(op)) throw new TypeError(`unknown operation "${printable(op, 20)}" in requireApproval`);

  const parentExpiry = effective.expiresAt ? new Date(effective.expiresAt) : undefined;
  let expiresAt = parentExpiry;
  if (opts.ttl !== undefined) {
    expiresAt = new Date(now.getTime() + parseDuration(opts.ttl) * 1000);
    if (parentExpiry && expiresAt > parentExpiry) {
      throw new BatonError(
        'BATON_ERR_ATTENUATION_WIDENS',
        `ttl would outlive the parent token, which expires at ${parentExpiry.toISOString()}`,
      );
    }
  }
  if (parentExpiry && parentExpiry <= now) throw new BatonError('BATON_ERR_TOKEN_EXPIRED', 'the parent token has expired');

  const child = appendBlock(token.trim(), attenuationBlock({ delegateTo: opts.delegateTo, purpose: opts.purpose, resources, operations, expiresAt, requireApproval }));
  // never hand out a token every verifier would refuse (too many links or prefixes, a bad parent)
  assertAdmissible(decodeToken(child), child.length);
  return opts.seal ? sealToken(child) : child;
}

/** Every requested (resource, operation) must be covered by one effective right of the parent. */
function refuseWidening(rights: { resource: string; operation: string }[], resources?: string[], operations?: string[]): void {
  const ops = operations ?? [...new Set(rights.map((r) => r.operation))];
  for (const op of ops) {
    if (!rights.some((r) => r.operation === op || r.operation === '*')) {
      throw new BatonError('BATON_ERR_ATTENUATION_WIDENS', `the parent token does not allow operation "${printable(op, 20)}"`);
    }
  }
  for (const resource of resources ?? []) {
    for (const op of ops) {
      if (!rights.some((r) => covers(r.resource, resource) && (r.operation === op || r.operation === '*'))) {
        throw new BatonError(
          'BATON_ERR_ATTENUATION_WIDENS',
          `the parent token does not allow "${op}" on "${printable(resource)}"`,
        );
      }
    }
  }
}

/**
 * Control characters (C0, DEL, C1), format characters (bidi overrides and isolates, LRM/RLM, ALM,
 * zero-width space/joiners, BOM, soft hyphen, …), line/paragraph separators and lone surrogates.
 * Lineage names are shown to humans (inspect, audit, console): these let a name rewrite a terminal
 * line or display as a different name than the one recorded (U+202E reverses what follows it).
 */
const UNSAFE_TEXT = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u;

function validateText(field: string, value: unknown): void {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_TEXT) {
    throw new TypeError(`${field} must be a non-empty string of at most ${MAX_TEXT} characters`);
  }
  const bad = UNSAFE_TEXT.exec(value);
  if (bad) {
    const cp = bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
    throw new BatonError(
      'BATON_ERR_INVALID_REQUEST',
      `${field} contains a control, format or separator character (U+${cp} at position ${bad.index}); use printable text`,
    );
  }
}

const variable = (name: string) => ({ value: { variable: name } }) as const;
const fact = (name: string, value: string): Predicate => ({ name, terms: [{ string: value }] });

/** The attenuation block of DESIGN.md as a block model. */
export function attenuationBlock(o: {
  delegateTo: string;
  purpose?: string;
  resources?: string[];
  operations?: string[];
  expiresAt?: Date;
  requireApproval?: string[];
}): BlockModel {
  const facts: Predicate[] = [fact('delegated_to', o.delegateTo)];
  if (o.purpose !== undefined) facts.push(fact('purpose', o.purpose));
  for (const op of o.requireApproval ?? []) facts.push(fact(APPROVAL_FACT, op));
  const checks: Check[] = [];
  if (o.resources) checks.push(membershipCheck('resource', '$r', o.resources));
  if (o.operations) checks.push(membershipCheck('operation', '$op', o.operations));
  if (o.expiresAt) {
    checks.push({
      kind: 'if',
      queries: [
        {
          body: [{ name: 'time', terms: [{ variable: 't' }] }],
          expressions: [[variable('t'), { value: { date: o.expiresAt } }, { binary: 'lessOrEqual' }]],
          scopes: [],
        },
      ],
    });
  }
  return { facts, checks };
}

/**
 * `check if P($x), [exact…].contains($x) or P($x), $x.starts_with(prefix) or …`. A `prefix*` pattern
 * is written as `starts_with("prefix")`, a directory `…/dir/` as `starts_with("…/dir/")` (the
 * authorizer's second `resource` fact, the directory spelling, makes it cover `…/dir` itself).
 */
function membershipCheck(predicate: string, varName: string, values: string[]): Check {
  const v = varName.slice(1);
  const isPrefix = (x: string) => x.endsWith('*') || (x.endsWith('/') && x.length > 1);
  const exact = values.filter((x) => !isPrefix(x));
  const prefixes = values.filter(isPrefix).map((x) => (x.endsWith('*') ? x.slice(0, -1) : x));
  const body = [{ name: predicate, terms: [{ variable: v }] }];
  const queries = [];
  if (exact.length) {
    queries.push({ body, expressions: [[{ value: { set: exact.map((s) => ({ string: s })) } }, variable(v), { binary: 'contains' as const }]], scopes: [] });
  }
  for (const p of prefixes) {
    queries.push({ body, expressions: [[variable(v), { value: { string: p } }, { binary: 'prefix' as const }]], scopes: [] });
  }
  return { kind: 'if', queries };
}
