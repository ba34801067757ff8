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
  /** Extra roles, e.g. `admin` (audit queries, revoking any id). */
  roles: z.array(z.enum(['admin'])).default([]),
  max_ttl: Duration.default(3600),
});

export const PolicyFile = z.strictObject({
  /** Lifetime when the caller asks for none (clamped to the rules' max_ttl). */
  default_ttl: Duration.default(900),
  rules: z.array(PolicyRule).min(1),
});

export type PolicyFile = z.output<typeof PolicyFile>;
export type PolicyRule = z.output<typeof PolicyRule>;
