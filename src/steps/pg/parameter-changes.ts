// PostgreSQL parameters that majors removed or renamed (release notes): what an upgrade must not
// carry over as it was. Used for patroni.yml, patroni.dynamic.json and postgresql.auto.conf.

/** A parameter a major removed (`to: null`) or renamed (with the value converted). */
export interface ParameterChange {
  major: number;
  name: string;
  to: null | ((value: string, walSegmentMb: number) => [string, string]);
}

/** Parameters a major removed (null) or renamed (with the value converted), from its release notes. */
export const PARAMETER_CHANGES: ParameterChange[] = [
  { major: 13, name: 'wal_keep_segments', to: (v, seg) => ['wal_keep_size', `${Number(v) * seg}MB`] },
  { major: 14, name: 'operator_precedence_warning', to: null },
  { major: 14, name: 'vacuum_cleanup_index_scale_factor', to: null },
  { major: 15, name: 'stats_temp_directory', to: null },
  { major: 16, name: 'vacuum_defer_cleanup_age', to: null },
  { major: 16, name: 'promote_trigger_file', to: null },
  { major: 16, name: 'force_parallel_mode', to: (v) => ['debug_parallel_query', v] },
  { major: 17, name: 'old_snapshot_threshold', to: null },
  { major: 17, name: 'db_user_namespace', to: null },
];

/** The changes that apply when moving to `major`. */
export const changesFor = (major: number) => PARAMETER_CHANGES.filter((c) => c.major <= major);
