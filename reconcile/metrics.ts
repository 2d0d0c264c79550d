import type pg from 'pg';

/**
 * Reconciliation metrics in the Prometheus text format, read from the reports kept in
 * Postgres, so every instance (the reconciler that wrote them, a standby, the admin API)
 * reports the same numbers, and the lag keeps growing, visibly, when no reconciler runs.
 */
export interface ReconcileStatus {
  /** Seconds between now and the end of the last continuous window (null before the first). */
  lagSeconds: number | null;
  coveredTo: string | null;
  latest: Record<'continuous' | 'hourly', { runId: string; rangeFrom: string | null; rangeTo: string; differences: number; byKind: Record<string, number> } | null>;
  /** Differences found since reports began, by report kind. */
  differencesFound: Record<string, number>;
  runs: Record<string, number>;
}

export async function reconcileStatus(pool: pg.Pool, now = Date.now()): Promise<ReconcileStatus> {
  const [latest, totals] = await Promise.all([
    pool.query<{ kind: string; run_id: string; range_from: Date | null; range_to: Date; differences: number; by_kind: Record<string, number> }>(
      `select distinct on (kind) kind, run_id, range_from, range_to, differences, by_kind
         from reconcile_runs where kind in ('continuous', 'hourly') order by kind, range_to desc`,
    ),
    pool.query<{ kind: string; runs: number; found: number }>(
      'select kind, count(*)::bigint as runs, coalesce(sum(differences), 0)::bigint as found from reconcile_runs group by kind',
    ),
  ]);
  const byKind = new Map(latest.rows.map((r) => [r.kind, r]));
  const view = (kind: string) => {
    const r = byKind.get(kind);
    return r ? { runId: r.run_id, rangeFrom: r.range_from?.toISOString() ?? null, rangeTo: r.range_to.toISOString(), differences: r.differences, byKind: r.by_kind } : null;
  };
  const continuous = view('continuous');
  return {
    lagSeconds: continuous ? Math.max(0, (now - Date.parse(continuous.rangeTo)) / 1000) : null,
    coveredTo: continuous?.rangeTo ?? null,
    latest: { continuous, hourly: view('hourly') },
    differencesFound: Object.fromEntries(totals.rows.map((r) => [r.kind, r.found])),
    runs: Object.fromEntries(totals.rows.map((r) => [r.kind, r.runs])),
  };
}

export function metricsText(s: ReconcileStatus, extra: { leader?: boolean } = {}): string {
  const out: string[] = [];
  const metric = (name: string, type: 'gauge' | 'counter', help: string, samples: [Record<string, string>, number][]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) {
      const l = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',');
      out.push(`${name}${l ? `{${l}}` : ''} ${value}`);
    }
  };
  metric('hongbao_reconcile_lag_seconds', 'gauge', 'How far behind now the continuous reconciler has checked the log (-1 before its first window).',
    [[{}, s.lagSeconds ?? -1]]);
  const latest: [Record<string, string>, number][] = [];
  for (const report of ['continuous', 'hourly'] as const) {
    const r = s.latest[report];
    latest.push([{ report }, r?.differences ?? 0]);
    for (const [kind, n] of Object.entries(r?.byKind ?? {})) latest.push([{ report, kind }, n]);
  }
  metric('hongbao_reconcile_differences', 'gauge', 'Differences in the latest report, in all and by kind.', latest);
  metric('hongbao_reconcile_differences_found_total', 'counter', 'Differences found by all reports kept, by report kind.',
    Object.entries(s.differencesFound).map(([report, n]) => [{ report }, n]));
  metric('hongbao_reconcile_runs_total', 'counter', 'Reports kept, by report kind.', Object.entries(s.runs).map(([report, n]) => [{ report }, n]));
  if (extra.leader !== undefined) metric('hongbao_reconcile_leader', 'gauge', '1 on the reconciler instance that currently does the work.', [[{}, extra.leader ? 1 : 0]]);
  return `${out.join('\n')}\n`;
}
