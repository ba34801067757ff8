/**
 * System-catalog reads. Clients read catalog metadata for their own needs (psql `\d`, drivers'
 * type lookups); those reads need no right. Everything else in `pg_catalog` (passwords, statistics
 * with sample values, other sessions' queries, server files, large objects, sequence values …)
 * is an ordinary resource `pg:<up>/pg_catalog.<name>` that only an admin's wildcard covers.
 *
 * The free list is an allow-list: a catalog relation added by a future PostgreSQL version is
 * sensitive until someone reviews it and adds it here.
 */

/**
 * `pg_catalog` relations whose rows are schema metadata (structure, names, comments, privileges
 * as ACLs) and never data or secrets. Reviewed against PostgreSQL 18.
 */
const FREE_PG_CATALOG = new Set([
  // object structure
  'pg_class', 'pg_namespace', 'pg_attribute', 'pg_attrdef', 'pg_type', 'pg_index', 'pg_constraint',
  'pg_inherits', 'pg_partitioned_table', 'pg_depend', 'pg_shdepend', 'pg_sequence', 'pg_rewrite',
  'pg_trigger', 'pg_policy', 'pg_statistic_ext', 'pg_enum', 'pg_range', 'pg_collation',
  'pg_foreign_table', 'pg_foreign_data_wrapper', 'pg_foreign_server',
  // functions, operators, access methods, casts
  'pg_proc', 'pg_aggregate', 'pg_operator', 'pg_am', 'pg_amop', 'pg_amproc', 'pg_opclass',
  'pg_opfamily', 'pg_cast', 'pg_conversion', 'pg_language', 'pg_transform', 'pg_event_trigger',
  'pg_ts_config', 'pg_ts_config_map', 'pg_ts_dict', 'pg_ts_parser', 'pg_ts_template',
  // comments, extensions, publications, privileges metadata
  'pg_description', 'pg_shdescription', 'pg_extension', 'pg_available_extensions',
  'pg_available_extension_versions', 'pg_publication', 'pg_publication_rel',
  'pg_publication_namespace', 'pg_publication_tables', 'pg_default_acl', 'pg_init_privs',
  // databases, roles (no passwords), tablespaces (pg_settings is NOT free: it shows server paths)
  'pg_database', 'pg_tablespace', 'pg_roles', 'pg_user', 'pg_auth_members',
  // convenience views over the above
  'pg_tables', 'pg_views', 'pg_matviews', 'pg_indexes', 'pg_policies', 'pg_rules',
  // session-local or constant
  'pg_prepared_statements', 'pg_cursors', 'pg_timezone_names', 'pg_timezone_abbrevs',
]);

/**
 * Catalog relations known to be sensitive, listed so an unqualified reference resolves to
 * `pg_catalog` alone (instead of `pg_catalog` plus every path schema). Not exhaustive by design:
 * an unknown `pg_…` name is treated as possibly-catalog anyway.
 */
const KNOWN_SENSITIVE_PG_CATALOG = new Set([
  'pg_authid', 'pg_shadow', 'pg_group', 'pg_user_mapping', 'pg_user_mappings', 'pg_statistic',
  'pg_stats', 'pg_stats_ext', 'pg_stats_ext_exprs', 'pg_statistic_ext_data', 'pg_largeobject',
  'pg_largeobject_metadata', 'pg_hba_file_rules', 'pg_ident_file_mappings', 'pg_file_settings',
  'pg_config', 'pg_db_role_setting', 'pg_subscription', 'pg_subscription_rel', 'pg_sequences',
  'pg_stat_activity', 'pg_locks', 'pg_prepared_xacts', 'pg_replication_slots',
  'pg_replication_origin', 'pg_replication_origin_status', 'pg_stat_replication',
  'pg_backend_memory_contexts', 'pg_shmem_allocations', 'pg_seclabel', 'pg_seclabels',
  'pg_shseclabel', 'pg_parameter_acl', 'pg_settings',
]);

/** True when `pg_catalog.<name>` is a catalog relation we know of (free or sensitive). */
export function isKnownCatalogRelation(name: string): boolean {
  return FREE_PG_CATALOG.has(name) || KNOWN_SENSITIVE_PG_CATALOG.has(name) || name.startsWith('pg_stat');
}

/**
 * True when reading `<schema>.<name>` needs no right: a free `pg_catalog` relation, or any
 * `information_schema` view (they only expose metadata).
 */
export function isFreeCatalogRead(schema: string, name: string): boolean {
  if (schema === 'pg_catalog') return FREE_PG_CATALOG.has(name);
  return schema === 'information_schema';
}
