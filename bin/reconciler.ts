// The continuous reconciler: checks the log against the projection and the provider a few
// minutes behind, keeps an hourly report, and serves /metrics and /health.
import Fastify from 'fastify';
import { loadConfig } from '../infra/config.ts';
import { openRuntime, setupNamespace } from '../infra/runtime.ts';
import { providerApiKey } from '../infra/keys.ts';
import { projectorName } from '../projections/ledger-projector.ts';
import { ContinuousReconciler } from '../reconcile/continuous.ts';
import { ProviderStatement } from '../reconcile/provider-statement.ts';
import { metricsText, reconcileStatus } from '../reconcile/metrics.ts';
import { onShutdown } from './shutdown.ts';

await setupNamespace(loadConfig());
const rt = await openRuntime('reconciler', {}, 4);
const { cfg } = rt;
const reconciler = new ContinuousReconciler({
  kafka: rt.kafka, registryUrl: cfg.schemaRegistryUrl, pool: rt.pool, topics: rt.topics, projector: projectorName(cfg.namespace),
  provider: new ProviderStatement(cfg.providerUrl, providerApiKey(cfg.providerApiKey)),
}, rt.log, cfg.namespace, {
  intervalMs: cfg.reconcileIntervalMs, behindMs: cfg.reconcileBehindMs, reportPeriodMs: cfg.reconcileReportPeriodMs,
  creditGraceMs: cfg.reconcileCreditGraceMs, payoutGraceMs: cfg.reconcilePayoutGraceMs,
});
if (Math.max(cfg.reconcileCreditGraceMs, cfg.reconcilePayoutGraceMs) > cfg.reconcileBehindMs) {
  // Overdue work is judged when a window is audited; a window audited before its work can be overdue never reports it.
  rt.log.warn('a grace period is longer than RECONCILE_BEHIND_SEC: windows will not report overdue credits or payouts');
}
reconciler.start();

const http = Fastify({ logger: false });
http.get('/health', async () => ({ ok: true, leader: reconciler.leader, lastError: reconciler.lastError }));
http.get('/metrics', async (_req, reply) => {
  reply.type('text/plain; version=0.0.4');
  return metricsText(await reconcileStatus(rt.pool), { leader: reconciler.leader });
});
await http.listen({ host: cfg.apiHost, port: cfg.reconcilerPort });
rt.log.info('reconciler running', { everySec: cfg.reconcileIntervalMs / 1000, behindSec: cfg.reconcileBehindMs / 1000, metrics: `http://${cfg.apiHost}:${cfg.reconcilerPort}/metrics` });
onShutdown(rt.log, async () => {
  await http.close();
  await reconciler.stop();
  await rt.close();
});
