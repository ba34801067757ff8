/**
 * Evaluating the grant policy for an identity and a token-exchange request: which rights, which
 * roles, which lifetime. Matching rules are combined: rights and roles are the union, the maximum
 * lifetime is the SMALLEST max_ttl among them (a stricter rule is never loosened by a broader one).
 */
import { BatonError } from '../errors.ts';
import type { Right } from '../token/mint.ts';
import { covers, printable } from '../token/vocabulary.ts';
import type { PolicyFile, PolicyRule } from './schema.ts';

export interface PolicySubject {
  issuer: string;
  subject: string;
  clientId?: string;
  groups: string[];
}

export interface GrantRequest {
  /** RFC 8693 `resource` / `audience` values: resource patterns or bare upstream names. */
  targets?: string[];
  /** RFC 8693 `scope`: operations to keep. */
  operations?: string[];
  /** Requested lifetime in seconds. */
  ttlSeconds?: number;
}

export interface Grant {
  rules: string[];
  rights: Right[];
  roles: string[];
  ttlSeconds: number;
}

export function evaluatePolicy(policy: PolicyFile, who: PolicySubject, req: GrantRequest = {}): Grant {
  const rules = policy.rules.filter((r) => matches(r, who));
  if (rules.length === 0) {
    throw new BatonError('BATON_ERR_POLICY_NO_MATCH', 'no grant policy rule matches this identity', {
      detail: `subject=${who.subject} issuer=${who.issuer} groups=${who.groups.join(',')}`,
    });
  }
  let rights: Right[] = rules.flatMap((r) =>
    r.grants.flatMap((g) => g.resources.flatMap((resource) => g.operations.map((operation) => ({ resource, operation })))),
  );
  if (req.targets?.length) rights = narrowToTargets(rights, req.targets);
  if (req.operations?.length) rights = narrowToOperations(rights, req.operations);
  const maxTtl = Math.min(...rules.map((r) => r.max_ttl));
  const ttlSeconds = Math.min(req.ttlSeconds ?? policy.default_ttl, maxTtl);
  return { rules: rules.map((r) => r.name), rights: unique(rights), roles: [...new Set(rules.flatMap((r) => r.roles))], ttlSeconds };
}

function matches(rule: PolicyRule, who: PolicySubject): boolean {
  const m = rule.match;
  if (m.issuer !== undefined && m.issuer !== who.issuer) return false;
  if (m.subjects && !m.subjects.includes(who.subject)) return false;
  if (m.groups && !m.groups.some((g) => who.groups.includes(g))) return false;
  if (m.clients && (!who.clientId || !m.clients.includes(who.clientId))) return false;
  return true;
}

/** A bare upstream name `appdb` means every resource of that upstream, of any kind. */
function targetPattern(target: string): string {
  return target.includes(':') ? target : `*:${target}/*`;
}

function intersects(pattern: string, target: string): string | undefined {
  if (target.startsWith('*:')) {
    // any kind, one upstream: keep rights that lie under it
    const rest = target.slice(2, -1); // `appdb/`
    const colon = pattern.indexOf(':');
    return colon > 0 && pattern.slice(colon + 1).startsWith(rest) ? pattern : undefined;
  }
  if (covers(pattern, target)) return target; // the right covers the target: grant just the target
  if (covers(target, pattern)) return pattern; // the target is wider: keep the right as it is
  return undefined;
}

function narrowToTargets(rights: Right[], targets: string[]): Right[] {
  const out: Right[] = [];
  for (const raw of targets) {
    const target = targetPattern(raw);
    const kept = rights.flatMap((r) => {
      const resource = intersects(r.resource, target);
      return resource ? [{ resource, operation: r.operation }] : [];
    });
    if (kept.length === 0) {
      throw new BatonError('BATON_ERR_POLICY_INVALID_TARGET', `no right is granted on "${printable(raw)}"`);
    }
    out.push(...kept);
  }
  return out;
}

function narrowToOperations(rights: Right[], operations: string[]): Right[] {
  const kept = rights.flatMap((r) =>
    r.operation === '*' ? operations.map((operation) => ({ resource: r.resource, operation })) : operations.includes(r.operation) ? [r] : [],
  );
  const granted = new Set(kept.map((r) => r.operation));
  const missing = operations.filter((op) => !granted.has(op));
  if (missing.length > 0) {
    throw new BatonError('BATON_ERR_POLICY_INVALID_SCOPE', `scope asks for operations not granted: ${missing.map((m) => printable(m, 20)).join(', ')}`);
  }
  return kept;
}

function unique(rights: Right[]): Right[] {
  return [...new Map(rights.map((r) => [`${r.resource}\u0000${r.operation}`, r])).values()];
}
