/**
 * Function-call policy. A call resolves to one or more `<schema>.<name>` candidates (see
 * `names.ts`); each candidate is judged here:
 *
 * - a built-in on the SAFE list (side-effect free, reads no table data, runs no SQL from a string)
 *   or IMMUTABLE in every overload, or callable only with `internal` arguments (`pg-catalog-traits.ts`)
 *   needs nothing;
 * - `current_setting(name)` needs nothing for a literal name on the short SAFE_SETTINGS list, else
 *   `admin` (settings expose paths, addresses and configuration);
 * - a DANGEROUS name (files, other sessions, settings, large objects, dblink, SQL-from-a-string,
 *   advisory locks, replication, backups) needs `admin`, whatever schema it is in: extensions such
 *   as dblink live outside `pg_catalog`;
 * - sequence functions need `update` (nextval, setval) or `read` (currval) on the sequence;
 * - any other `pg_catalog` function needs `execute` on `pg_catalog.<fn>()`, which only an admin's
 *   wildcard grants: the long tail of built-ins is closed until reviewed;
 * - any other function needs `execute` on `<schema>.<fn>()`.
 *
 * The same judgement applies wherever the server may call a function without call syntax:
 * attribute notation (`(x).fn`, `alias.fn`), operators and casts (see `walk.ts`).
 */
import { PG_CATALOG_IMMUTABLE, PG_CATALOG_INTERNAL_ONLY } from './pg-catalog-traits.ts';

function words(text: string): ReadonlySet<string> {
  return new Set(text.split(/\s+/).filter(Boolean));
}

/** Side-effect-free `pg_catalog` built-ins clients use. Every name must exist in `pg_catalog` (tested). */
export const SAFE_FUNCTIONS = words(`
  count sum avg min max array_agg string_agg bool_and bool_or every bit_and bit_or bit_xor
  json_agg jsonb_agg json_object_agg jsonb_object_agg json_agg_strict jsonb_agg_strict
  json_object_agg_strict jsonb_object_agg_strict json_object_agg_unique jsonb_object_agg_unique
  json_object_agg_unique_strict jsonb_object_agg_unique_strict
  stddev stddev_pop stddev_samp variance var_pop var_samp corr covar_pop covar_samp
  regr_avgx regr_avgy regr_count regr_intercept regr_r2 regr_slope regr_sxx regr_sxy regr_syy
  percentile_cont percentile_disc mode any_value range_agg range_intersect_agg xmlagg
  row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value

  abs ceil ceiling floor round trunc sign sqrt cbrt power pow exp ln log log10 mod div pi degrees
  radians sin cos tan cot asin acos atan atan2 sind cosd tand cotd asind acosd atand atan2d sinh
  cosh tanh asinh acosh atanh gcd lcm factorial width_bucket scale min_scale trim_scale erf erfc
  random random_normal setseed gen_random_uuid uuidv4 uuidv7 uuid_extract_timestamp
  uuid_extract_version numeric int2 int4 int8 float4 float8 text bool date timestamp timestamptz
  interval time timetz varchar bpchar

  length char_length character_length octet_length bit_length lower upper initcap concat
  concat_ws format left right lpad rpad ltrim rtrim btrim substr substring position strpos replace
  translate reverse repeat split_part string_to_array array_to_string string_to_table regexp_replace
  regexp_match regexp_matches regexp_split_to_array regexp_split_to_table regexp_count
  regexp_instr regexp_like regexp_substr starts_with ascii chr md5 sha224 sha256 sha384 sha512
  encode decode quote_ident quote_literal quote_nullable to_hex to_bin to_oct overlay normalize
  is_normalized unistr casefold like_escape similar_escape similar_to_escape to_ascii convert
  convert_from convert_to crc32 crc32c get_byte set_byte get_bit set_bit bit_count

  now clock_timestamp statement_timestamp transaction_timestamp timeofday date_trunc date_part
  extract date_bin age make_date make_time make_timestamp make_timestamptz make_interval
  justify_days justify_hours justify_interval isfinite to_char to_date to_timestamp to_number
  timezone overlaps date_add date_subtract money regclass

  json_build_object jsonb_build_object json_build_array jsonb_build_array to_json to_jsonb
  row_to_json array_to_json json_object jsonb_object json_array_length jsonb_array_length json_each
  jsonb_each json_each_text jsonb_each_text json_extract_path jsonb_extract_path
  json_extract_path_text jsonb_extract_path_text json_object_keys jsonb_object_keys
  json_array_elements jsonb_array_elements json_array_elements_text jsonb_array_elements_text
  json_typeof jsonb_typeof json_strip_nulls jsonb_strip_nulls jsonb_set jsonb_set_lax jsonb_insert
  jsonb_pretty jsonb_path_query jsonb_path_query_array jsonb_path_query_first jsonb_path_exists
  jsonb_path_match jsonb_path_query_tz jsonb_path_query_array_tz jsonb_path_query_first_tz
  jsonb_path_exists_tz jsonb_path_match_tz json_populate_record jsonb_populate_record
  json_populate_recordset jsonb_populate_recordset json_to_record jsonb_to_record json_to_recordset
  jsonb_to_recordset

  array_length array_lower array_upper array_ndims array_dims array_position array_positions
  array_append array_prepend array_cat array_remove array_replace array_fill cardinality unnest
  array_sort array_reverse array_shuffle array_sample trim_array generate_subscripts generate_series
  num_nulls num_nonnulls enum_first enum_last enum_range
  lower_inc upper_inc lower_inf upper_inf isempty range_merge int4range int8range numrange tsrange
  tstzrange daterange
  host hostmask masklen netmask network set_masklen abbrev broadcast family inet_merge
  inet_same_family
  to_tsvector to_tsquery plainto_tsquery phraseto_tsquery websearch_to_tsquery ts_rank ts_rank_cd
  ts_headline setweight strip numnode querytree tsvector_to_array array_to_tsvector
  xpath xpath_exists xml_is_well_formed xml_is_well_formed_document xml_is_well_formed_content
  xmlcomment xmltext xmlexists

  version current_database current_schema current_schemas current_user session_user
  system_user inet_client_addr inet_client_port inet_server_addr inet_server_port pg_backend_pid
  pg_postmaster_start_time pg_conf_load_time pg_is_in_recovery pg_typeof pg_column_size
  pg_column_compression pg_size_pretty pg_size_bytes pg_relation_size pg_total_relation_size
  pg_table_size pg_indexes_size pg_database_size pg_encoding_to_char pg_char_to_encoding
  pg_client_encoding pg_collation_for obj_description col_description shobj_description format_type
  pg_get_expr pg_get_constraintdef pg_get_indexdef pg_get_triggerdef pg_get_viewdef pg_get_ruledef
  pg_get_functiondef pg_get_function_arguments pg_get_function_result
  pg_get_function_identity_arguments pg_get_userbyid pg_get_serial_sequence pg_get_statisticsobjdef
  pg_get_statisticsobjdef_columns pg_get_statisticsobjdef_expressions pg_get_partkeydef
  pg_get_partition_constraintdef pg_get_keywords pg_table_is_visible pg_type_is_visible
  pg_function_is_visible pg_operator_is_visible pg_opclass_is_visible pg_opfamily_is_visible
  pg_collation_is_visible pg_conversion_is_visible pg_statistics_obj_is_visible
  pg_ts_config_is_visible pg_ts_dict_is_visible pg_ts_parser_is_visible pg_ts_template_is_visible
  pg_my_temp_schema pg_is_other_temp_schema pg_partition_ancestors pg_partition_root
  pg_partition_tree pg_relation_is_publishable pg_trigger_depth pg_jit_available
  pg_listening_channels pg_current_xact_id txid_current pg_current_snapshot txid_current_snapshot
  pg_index_column_has_property pg_index_has_property pg_indexam_has_property pg_options_to_table
  pg_identify_object pg_identify_object_as_address pg_describe_object pg_get_object_address
  pg_input_is_valid pg_input_error_info aclexplode
  has_table_privilege has_column_privilege has_any_column_privilege has_database_privilege
  has_function_privilege has_schema_privilege has_sequence_privilege has_type_privilege
  has_language_privilege has_tablespace_privilege has_foreign_data_wrapper_privilege
  has_server_privilege has_parameter_privilege has_largeobject_privilege pg_has_role
  row_security_active
  to_regclass to_regtype to_regtypemod to_regproc to_regprocedure to_regnamespace to_regrole
  to_regoper to_regoperator to_regcollation
`);

/** Names that need `admin` in any schema (exact names). */
const DANGEROUS_NAMES = words(`
  pg_terminate_backend pg_cancel_backend pg_reload_conf pg_rotate_logfile set_config pg_notify
  pg_read_file pg_read_binary_file pg_stat_file pg_current_logfile pg_promote
  pg_create_restore_point pg_switch_wal pg_backup_start pg_backup_stop pg_start_backup
  pg_stop_backup pg_wal_replay_pause pg_wal_replay_resume pg_import_system_collations
  pg_log_backend_memory_contexts pg_sequence_last_value pg_export_snapshot pg_logdir_ls
  ts_stat ts_rewrite loread lowrite pg_sleep pg_sleep_for pg_sleep_until current_query
  crosstab crosstab2 crosstab3 crosstab4 connectby xpath_table
`);

/**
 * Name patterns that need `admin` in any schema: large objects (`lo_import` reads server files),
 * dblink, file listing/writing, advisory locks (they can block other applications' locks),
 * replication and statistics resets, binary-upgrade hooks, and every `*_to_xml*` function that
 * reads a table, schema, database, cursor or SQL string (`query_to_xml('delete …')` runs it).
 */
const DANGEROUS_PATTERN =
  /^(lo_|dblink|pg_ls_|pg_file_|pg_advisory_|pg_try_advisory_|pg_replication_|pg_logical_|pg_create_.*_slot$|pg_copy_.*_slot$|pg_drop_replication_slot$|pg_stat_reset|binary_upgrade_)|_to_xml/;

/** Sequence functions: operation needed on the sequence named by the first argument. */
const SEQUENCE_FUNCTIONS: ReadonlyMap<string, 'update' | 'read'> = new Map([
  ['nextval', 'update'],
  ['setval', 'update'],
  ['currval', 'read'],
]);

/** `lastval()` only returns the session's own last `nextval` result: nothing to authorize. */
const SESSION_LOCAL = words('lastval');

/**
 * Settings any session may read with `current_setting()` or `SHOW`: what clients and drivers ask
 * for. Everything else (data_directory, config_file, listen_addresses, hba_file, ssl_*_file, …)
 * describes the server, not the session, and needs `admin`. Lower-case (PostgreSQL folds names).
 */
export const SAFE_SETTINGS = words(`
  application_name client_encoding server_encoding datestyle intervalstyle timezone
  server_version server_version_num standard_conforming_strings integer_datetimes is_superuser
  transaction_isolation transaction_read_only transaction_deferrable default_transaction_isolation
  default_transaction_read_only default_transaction_deferrable statement_timeout lock_timeout
  idle_in_transaction_session_timeout client_min_messages extra_float_digits bytea_output
  max_identifier_length lc_messages lc_monetary lc_numeric lc_time search_path
  default_text_search_config array_nulls in_hot_standby
`);

/** How one resolved candidate `<schema>.<name>` is judged. */
export type FunctionVerdict =
  | { kind: 'free' }
  | { kind: 'admin' }
  | { kind: 'sequence'; operation: 'update' | 'read' }
  | { kind: 'setting' }
  | { kind: 'execute' };

/**
 * Judge a call of `<schema>.<name>` (see the module comment for the policy).
 *
 * @example judgeFunction('pg_catalog', 'lower') → { kind: 'free' }
 * @example judgeFunction('public', 'dblink_exec') → { kind: 'admin' }
 */
export function judgeFunction(schema: string, name: string): FunctionVerdict {
  if (DANGEROUS_NAMES.has(name) || DANGEROUS_PATTERN.test(name)) return { kind: 'admin' };
  if (schema !== 'pg_catalog') return { kind: 'execute' };
  const seq = SEQUENCE_FUNCTIONS.get(name);
  if (seq !== undefined) return { kind: 'sequence', operation: seq };
  if (name === 'current_setting') return { kind: 'setting' };
  if (SAFE_FUNCTIONS.has(name) || SESSION_LOCAL.has(name) || PG_CATALOG_IMMUTABLE.has(name) || PG_CATALOG_INTERNAL_ONLY.has(name)) return { kind: 'free' };
  return { kind: 'execute' };
}

