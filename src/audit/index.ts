/** The audit module's public surface (named re-exports; import from here or from the files). */
export {
  type AuditEvent,
  type AuditEventInput,
  type AuditOutcome,
  type AuditOutcomeInput,
  type AuditOutcomeRecord,
  type AuditRecord,
  type AuditSource,
  type LineageLink,
  auditEventInputSchema,
  auditEventJsonSchema,
  auditEventSchema,
  auditLineageSchema,
  auditOutcomeInputSchema,
  auditOutcomeRecordSchema,
  auditRecordSchema,
  lineageLinkSchema,
} from './event.ts';
export { type AnchorKey, type AuditCheckpoint, anchorKey, checkpointMessage, checkpointSignatureValid, signCheckpoint } from './anchor.ts';
export { type AuditExportFilters, exportJsonLines } from './export.ts';
export {
  GENESIS_HASH,
  canonicalJson,
  chainHash,
  chainLinkHash,
  chainedContentJson,
  contentJson,
  legacyChainHash,
  lineageHash,
  linkHash,
} from './hash.ts';
export { type AuditFilters, type AuditPage, auditCursor, auditFiltersSchema, auditQueryStringSchema, queryAudit } from './query.ts';
export { assertNoCredentials } from './redact.ts';
export { type AuditTree, type AuditTreeNode, type Counts, auditTree, markRevoked } from './tree.ts';
export { type AuditVerification, type BrokenLink, type ChainReport, type VerifyOptions, verifyAuditChain } from './verify.ts';
export { type AnchorWitness, CHECKPOINT_CHANNEL, checkpointChannel, checkpointPublisher, startAnchorWitness } from './witness.ts';
export {
  AUDIT_WRITER_DEFAULTS,
  type AuditOutcomeReceipt,
  type AuditReceipt,
  type AuditWriter,
  type AuditWriterHealth,
  type AuditWriterOptions,
  auditWriterOptionsSchema,
  createAuditWriter,
} from './writer.ts';
