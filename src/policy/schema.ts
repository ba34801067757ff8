/**
 * The grant policy file (YAML or JSON): which identities get which rights, for how long.
 * Validated by this closed zod schema; unknown keys are errors.
 */
import { z } from 'zod';
import { parseDuration } from './duration.ts';
import { isOperation, parseResource } from '../token/vocabulary.ts';

const Duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  try {
    return parseDuration(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});

const ResourcePattern = z.string().refine(
  (r) => {
    try {
      parseResource(r);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'must be a resource like pg:appdb/public.orders, pg:appdb/public.*, or *' },
);

const Operation = z.string().refine(isOperation, { message: 'unknown operation' });

export const Grant = z.strictObject({
  resources: z.array(ResourcePattern).min(1),
  operations: z.array(Operation).min(1),
});

export const PolicyRule = z.strictObject({
  name: z.string().min(1),
  /** Every listed condition must hold; within a list, any value matches. An empty match matches all. */
  match: z
    .strictObject({
      issuer: z.string().optional(),
      subjects: z.array(z.string()).optional(),
      groups: z.array(z.string()).optional(),
      clients: z.array(z.string()).optional(),
    })
    .default({}),
  grants: z.array(Grant).min(1),
  /**
   * Extra roles: `admin` (audit queries, revoking any id), `approver` (decides just-in-time
   * approvals of statements held by the proxy; never for the requester's own chain).
   */
  roles: z.array(z.enum(['admin', 'approver'])).default([]),
  max_ttl: Duration.default(3600),
});

/** How a masked column's values leave the proxy (src/enforce/mask/methods.ts). */
export const MaskMethod = z.enum(['redact', 'last4', 'email-domain', 'hmac', 'null']);

const ColumnName = z.string().regex(/^[^\u0000-\u001f".]{1,63}$/, { message: 'must be a column name (no quotes, dots or control characters)' });

export const MaskRule = z.strictObject({
  /** Relations the rule applies to; wildcards allowed (`pg:appdb/public.*`). */
  resources: z.array(ResourcePattern).min(1),
  /** Column name → method. */
  columns: z.record(ColumnName, MaskMethod).refine((c) => Object.keys(c).length > 0, { message: 'name at least one column' }),
});

/** A value detector users add: a JavaScript regular expression (no flags but `i`) and its replacement. */
export const CustomDetector = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/),
  pattern: z.string().min(1).max(1000).refine(
    (p) => {
      try {
        new RegExp(p, 'giu');
        return true;
      } catch {
        return false;
      }
    },
    { message: 'must be a valid regular expression' },
  ),
  /** What a match becomes; default `****`. */
  replacement: z.string().max(64).default('****'),
});

export const BUILTIN_DETECTORS = ['card', 'email', 'iban', 'ssn', 'bearer'] as const;

export const MaskingPolicy = z.strictObject({
  rules: z.array(MaskRule).default([]),
  /**
   * Value detectors run over every text value of every result column whose provenance is not
   * provably clean (a view, a function, a column the proxy cannot trace). `scope: all` runs them on
   * every text column of every result (costlier; catches sensitive data in unlisted columns).
   */
  detectors: z
    .strictObject({
      builtin: z.array(z.enum(BUILTIN_DETECTORS)).default([...BUILTIN_DETECTORS]),
      custom: z.array(CustomDetector).max(32).default([]),
      scope: z.enum(['unproven', 'all']).default('unproven'),
    })
    .prefault({}),
});

/** Statements that wait for an approver (DESIGN.md rule 7). */
export const ApprovalCondition = z.enum(['delete-without-where', 'update-without-where', 'truncate', 'drop', 'write', 'rows-above']);

export const ApprovalRule = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/),
  when: ApprovalCondition,
  /** Only statements touching these resources (default: any). For `write`: the listed resources. */
  resources: z.array(ResourcePattern).min(1).optional(),
  /** For `rows-above`: the planner's row estimate (EXPLAIN on the proxy's own connection) above which approval is needed. */
  rows: z.number().int().min(0).optional(),
}).refine((r) => (r.when === 'rows-above') === (r.rows !== undefined), { message: '`rows` is required with (and only with) when: rows-above' });

export const ApprovalsPolicy = z.strictObject({
  rules: z.array(ApprovalRule).default([]),
  /** How long an approval may be used after it was granted (single use). */
  ttl: Duration.default(900),
  /** How long a request waits for a decision before it expires. */
  pending_ttl: Duration.default(3600),
});

export const PolicyFile = z.strictObject({
  /** Lifetime when the caller asks for none (clamped to the rules' max_ttl). */
  default_ttl: Duration.default(900),
  rules: z.array(PolicyRule).min(1),
  /** Inline masking on the data path (the proxy). */
  masking: MaskingPolicy.prefault({}),
  /** Just-in-time approval of destructive statements (the proxy holds them; approvers decide). */
  approvals: ApprovalsPolicy.prefault({}),
});

export type MaskMethod = z.output<typeof MaskMethod>;
export type MaskingPolicy = z.output<typeof MaskingPolicy>;
export type ApprovalsPolicy = z.output<typeof ApprovalsPolicy>;
export type ApprovalRule = z.output<typeof ApprovalRule>;

export type PolicyFile = z.output<typeof PolicyFile>;
export type PolicyRule = z.output<typeof PolicyRule>;
