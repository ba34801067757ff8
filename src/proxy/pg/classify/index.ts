/**
 * SQL classifier for the PostgreSQL enforcement proxy: which (resource, operation) pairs each
 * statement of a SQL string needs. Pure code, no I/O. See docs/sql-classification.md.
 */
export type {
  Access,
  Classification,
  ClassifiedStatement,
  ClassifyContext,
  ClassifyErrorCode,
  PgOperation,
  SessionEffect,
} from './types.ts';
export { initClassifier } from './parser.ts';
export { classifySql } from './classify.ts';
export {
  createClassifierCache,
  type ClassifierCache,
  type ClassifierCacheOptions,
  type ClassifierCacheStats,
} from './cache.ts';
export { quoteIdent } from './names.ts';
