import { projectorName } from '../../projections/ledger-projector.ts';
import { runAudit, type AuditOptions, type AuditReport } from '../../reconcile/audit.ts';
import { ProviderStatement } from '../../reconcile/provider-statement.ts';
import type { TestLedger } from './ledger.ts';
import type { Config } from '../../infra/config.ts';

/**
 * Runs the replay audit against a test ledger (and its provider, if it has one), with no
 * grace periods. A whole-log audit folds in two worker threads, as the audit command does on
 * these machines; `workers: 1` folds in the test's own thread.
 */
export function audit(l: TestLedger, opts: AuditOptions & { workers?: number; workerCfg?: Partial<Config> } = {}): Promise<AuditReport> {
  const { workers = 2, workerCfg = {}, ...options } = opts;
  return runAudit({
    kafka: l.rt.kafka, registryUrl: l.rt.cfg.schemaRegistryUrl, pool: l.rt.pool, topics: l.rt.topics, projector: projectorName(l.ns),
    provider: l.provider ? new ProviderStatement(l.provider.url, l.provider.apiKey) : null,
    workers: { count: workers, cfg: { ...l.rt.cfg, ...workerCfg } },
  }, { creditGraceMs: 0, payoutGraceMs: 0, projectionWaitMs: 20_000, ...options });
}

/** The differences of one kind, for assertions. */
export const ofKind = (r: AuditReport, kind: string) => r.differences.filter((d) => d.kind === kind);
