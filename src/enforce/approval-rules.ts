/**
 * Which statements wait for a just-in-time approval: the policy's rules (DELETE/UPDATE without
 * WHERE, TRUNCATE, DROP, writes to listed resources) and the token's own (`require_approval("…")`
 * facts that a parent added with `attenuate({ requireApproval })`). Wire-agnostic.
 */
import type { ApprovalRule } from '../policy/schema.ts';
import { covers } from '../token/vocabulary.ts';

/** What the rules look at in a classified statement. */
export interface ApprovalSubject {
  readonly kind: string;
  readonly accesses: readonly { readonly resource: string; readonly operation: string }[];
  readonly unfiltered?: true;
}

const WRITE_OPS = new Set(['insert', 'update', 'delete', 'truncate', 'write']);

/**
 * Names of the rules the statements hit (policy rules by name, token rules as `token:<operation>`);
 * empty when none applies. `rows-above` rules are not decided here (they need the planner).
 *
 * @example approvalRulesHit([{ kind: 'delete', accesses: [...], unfiltered: true }], rules, [])
 * // → ['unqualified-delete']
 */
export function approvalRulesHit(statements: readonly ApprovalSubject[], rules: readonly ApprovalRule[], tokenOperations: readonly string[]): string[] {
  const hit = new Set<string>();
  for (const s of statements) {
    for (const rule of rules) {
      const touched = rule.resources ? s.accesses.filter((a) => rule.resources!.some((r) => covers(r, a.resource))) : s.accesses;
      if (rule.resources && touched.length === 0) continue;
      if (matches(rule, s, touched)) hit.add(rule.name);
    }
    for (const op of tokenOperations) {
      if (s.accesses.some((a) => (op === '*' ? a.operation !== 'read' : a.operation === op))) hit.add(`token:${op}`);
    }
  }
  return [...hit];
}

function matches(rule: ApprovalRule, s: ApprovalSubject, touched: ApprovalSubject['accesses']): boolean {
  switch (rule.when) {
    case 'delete-without-where':
      return s.kind === 'delete' && s.unfiltered === true;
    case 'update-without-where':
      return s.kind === 'update' && s.unfiltered === true;
    case 'truncate':
      return touched.some((a) => a.operation === 'truncate');
    case 'drop':
      return s.kind.startsWith('drop');
    case 'write':
      return touched.some((a) => WRITE_OPS.has(a.operation));
    case 'rows-above':
      return false;
  }
}
