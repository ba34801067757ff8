/**
 * The audit event: one zod schema is the single source of truth for its shape. The JSON Schema in
 * `schemas/audit-event.json` is generated from {@link auditRecordSchema} (a test keeps them in step).
 *
 * Every string is bounded, free of NUL and of unpaired surrogates: PostgreSQL text/jsonb would refuse
 * or rewrite such values, which would either fail a whole group-commit batch or break the hash
 * round trip. Objects are strict, so nothing unexpected (a raw token, row data) can ride along.
 */
import { z } from 'zod';

/** Matches a lone UTF-16 surrogate, which UTF-8 (and so PostgreSQL) cannot store faithfully. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** A bounded string that PostgreSQL stores and returns byte-for-byte. */
function text(max: number) {
  return z
    .string()
    .max(max)
    .regex(/^[^\u0000]*$/, 'must not contain NUL')
    .refine((s) => !LONE_SURROGATE.test(s), 'must not contain unpaired surrogates');
}

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be a lowercase hex SHA-256');
/** Writer-assigned times are always `Date.toISOString()` form, so they survive timestamptz intact. */
const isoTime = z.iso.datetime({ precision: 3 });

/** Where the event was produced. */
export const auditSourceSchema = z.enum(['broker', 'proxy-pg', 'proxy-http']);

/** The constraints a link in the chain carries (narrowing only; rights live in the authority block). */
export const lineageConstraintsSchema = z.strictObject({
  resources: z.array(text(1024)).max(256).optional(),
  operations: z.array(text(64)).max(64).optional(),
  expiresAt: z.iso.datetime({ offset: true }).optional(),
  /** Operations this link's holder may run only after a just-in-time approval. */
  requireApproval: z.array(text(64)).max(16).optional(),
});

/**
 * One link of the delegation chain: depth 0 is the authority block (subject, issuer, agent), each
 * further depth an attenuation block (delegatedTo, purpose, constraints). `revocationId` is the
 * Biscuit revocation id of that block (hex), never the token itself.
 */
export const lineageLinkSchema = z.strictObject({
  depth: z.number().int().min(0).max(63),
  subject: text(256).optional(),
  issuer: text(1024).optional(),
  agent: text(256).optional(),
  delegatedTo: text(256).optional(),
  purpose: text(4096).optional(),
  constraints: lineageConstraintsSchema,
  revocationId: text(256),
});

/** One (resource, operation) pair a statement or request touched. */
export const accessSchema = z.strictObject({ resource: text(1024), operation: text(64) });

/**
 * What the proxy masked in a statement's results (the columns and rules, never the values), and
 * which predicates of the statement read a masked column (allowed, flagged for review).
 */
export const auditMaskingSchema = z.strictObject({
  /** `<relation>.<column>` or `$<n>` (an output position) with the rule applied, e.g. `public.customers.card_number:last4`. */
  columns: z.array(text(512)).max(256),
  /** Masked columns read by WHERE/JOIN/HAVING predicates. */
  predicates: z.array(text(512)).max(256).optional(),
});

/**
 * The HTTP request an entry of the HTTP proxy decided: never a header, a body or a query value.
 */
export const auditHttpSchema = z.strictObject({
  method: z.string().regex(/^[A-Z]{1,16}$/),
  /** The upstream and its normalised path, query values redacted: `/billing/invoices?limit=*`. */
  path: text(8192),
  /** MCP: the JSON-RPC method (`tools/call`) and its tool, prompt or resource. */
  mcp: z.strictObject({ method: text(128), target: text(512).optional() }).optional(),
  /** Kubernetes: the API server's verb (`get`, `list`, `watch`, …). */
  verb: text(32).optional(),
});

/** What happened upstream: rows affected, SQLSTATE on error, command tag; HTTP status and bytes. */
export const auditOutcomeSchema = z.strictObject({
  /** HTTP proxy: the status the client received. */
  status: z.number().int().min(100).max(599).optional(),
  /** HTTP proxy: response body bytes delivered to the client. */
  bytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  rowCount: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  /** Values the proxy masked in the results delivered (never the values themselves). */
  maskedValues: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  sqlstate: z.string().regex(/^[0-9A-Z]{5}$/).optional(),
  tag: text(64).optional(),
});

/** A delegation chain as recorded: at most 64 links. */
export const auditLineageSchema = z.array(lineageLinkSchema).max(64);

/**
 * The hashed audit event, as stored and returned. `seq` orders the whole trail (assigned by the
 * database); (`chainId`, `chainSeq`) is the entry's position in the chain of the writer that appended
 * it, `prevHash` its predecessor's hash there and `hash` the link (hash.ts). `lineage` is shown in
 * full; the hash covers it through `lineageHash`, the content address it is stored under. Entries of
 * the legacy chain (before migration 005) have no `chainId`, `chainSeq` or `lineageHash`.
 */
export const auditEventSchema = z.strictObject({
  seq: z.number().int().positive(),
  chainId: z.number().int().positive().optional(),
  chainSeq: z.number().int().positive().optional(),
  id: z.uuid(),
  time: isoTime,
  source: auditSourceSchema,
  action: z.string().regex(/^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$/).max(64),
  decision: z.enum(['allow', 'deny']),
  reason: text(1024).optional(),
  lineage: auditLineageSchema,
  lineageHash: sha256Hex.optional(),
  tokenId: text(256).optional(),
  resource: text(1024).optional(),
  operation: text(64).optional(),
  accesses: z.array(accessSchema).max(256).optional(),
  fingerprint: text(256).optional(),
  /** Statement text with every literal replaced by a placeholder; never raw values. */
  normalized: text(100_000).optional(),
  outcome: auditOutcomeSchema.optional(),
  durationMs: z.number().min(0).max(1e12).optional(),
  masking: auditMaskingSchema.optional(),
  http: auditHttpSchema.optional(),
  /** The just-in-time approval this entry requested, decided or used (`apr_…`). */
  approvalId: z.string().regex(/^apr_[A-Za-z0-9_-]{8,64}$/).optional(),
  prevHash: sha256Hex,
  hash: sha256Hex,
});

/**
 * What callers pass to `append`: the writer assigns `seq`, `id`, `prevHash`, `hash`, and `time`
 * unless given (any ISO 8601 instant; normalised to UTC milliseconds before hashing).
 */
export const auditEventInputSchema = auditEventSchema
  .omit({ seq: true, chainId: true, chainSeq: true, id: true, time: true, lineageHash: true, prevHash: true, hash: true })
  .extend({ time: z.iso.datetime({ offset: true }).optional() });

/** What callers pass to `recordOutcome`. */
export const auditOutcomeInputSchema = auditOutcomeSchema.extend({
  durationMs: z.number().min(0).max(1e12).optional(),
});

/**
 * The outcome recorded after execution, as its own hash-chained row (the event row is immutable).
 */
export const auditOutcomeRecordSchema = z.strictObject({
  seq: z.number().int().positive(),
  chainId: z.number().int().positive().optional(),
  chainSeq: z.number().int().positive().optional(),
  id: z.uuid(),
  eventId: z.uuid(),
  time: isoTime,
  outcome: auditOutcomeSchema,
  durationMs: z.number().min(0).max(1e12).optional(),
  prevHash: sha256Hex,
  hash: sha256Hex,
});

/**
 * What queries and exports return: the event exactly as hashed, plus the outcome recorded after
 * execution (if any) under `recordedOutcome`, which carries its own hash.
 */
export const auditRecordSchema = auditEventSchema.extend({
  recordedOutcome: auditOutcomeRecordSchema.optional(),
});

export type AuditSource = z.infer<typeof auditSourceSchema>;
export type LineageLink = z.infer<typeof lineageLinkSchema>;
export type AuditLineage = z.infer<typeof auditLineageSchema>;
export type AuditOutcome = z.infer<typeof auditOutcomeSchema>;
export type AuditEvent = z.infer<typeof auditEventSchema>;
export type AuditEventInput = z.input<typeof auditEventInputSchema>;
export type AuditOutcomeInput = z.input<typeof auditOutcomeInputSchema>;
export type AuditOutcomeRecord = z.infer<typeof auditOutcomeRecordSchema>;
export type AuditRecord = z.infer<typeof auditRecordSchema>;

/**
 * The JSON Schema (draft 2020-12) of an audit record, as written to `schemas/audit-event.json`.
 *
 * @example
 * writeFileSync('schemas/audit-event.json', JSON.stringify(auditEventJsonSchema(), null, 2) + '\n');
 */
export function auditEventJsonSchema(): Record<string, unknown> {
  return {
    $id: 'https://baton.dev/schemas/audit-event.json',
    title: 'Baton audit event',
    ...z.toJSONSchema(auditRecordSchema, { io: 'output' }),
  };
}
