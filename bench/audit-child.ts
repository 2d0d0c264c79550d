// One measured read of a namespace's log, in its own process so its peak memory is its own:
//   raw   — plain kafkajs consume + Avro decode of the budget and wallet topics (the baseline);
//   audit — the replay audit (fold, projection and provider comparison).
// Prints one JSON line: { events, ms, perSec, peakRssMiB, clean? }.
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { loadConfig, topicsOf } from '../infra/config.ts';
import { kafkaClient } from '../infra/kafka.ts';
import { pgPool } from '../infra/db.ts';
import { projectorName } from '../projections/ledger-projector.ts';
import { runAudit } from '../reconcile/audit.ts';
import { ProviderStatement } from '../reconcile/provider-statement.ts';

const mode = process.argv[2];
const cfg = loadConfig();
const topics = topicsOf(cfg.namespace);
const kafka = kafkaClient(cfg, `${cfg.namespace}-bench-${mode}`);
const t0 = performance.now();
let events = 0;
let clean: boolean | undefined;

if (mode === 'raw') {
  const registry = new SchemaRegistry({ host: cfg.schemaRegistryUrl });
  const admin = kafka.admin();
  await admin.connect();
  const remaining = new Map<string, number>();
  for (const t of [topics.budget, topics.wallet]) {
    for (const p of await admin.fetchTopicOffsets(t)) if (Number(p.high) > 0) remaining.set(`${t}/${p.partition}`, Number(p.high));
  }
  await admin.disconnect();
  const consumer = kafka.consumer({ groupId: `raw-${Date.now()}`, maxBytesPerPartition: 8 << 20 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topics.budget, topics.wallet], fromBeginning: true });
  await new Promise<void>((resolve) => {
    void consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const key = `${batch.topic}/${batch.partition}`;
        const end = remaining.get(key);
        if (end === undefined) return;
        for (const m of batch.messages) {
          if (Number(m.offset) >= end) break;
          await registry.decode(m.value!);
          events++;
          if (Number(m.offset) === end - 1 && remaining.delete(key) && remaining.size === 0) resolve();
        }
      },
    });
  });
  await consumer.disconnect();
} else {
  const pool = pgPool(cfg.databaseUrl, cfg.namespace, 4);
  const report = await runAudit({
    kafka, registryUrl: cfg.schemaRegistryUrl, pool, topics, projector: projectorName(cfg.namespace),
    provider: new ProviderStatement(cfg.providerUrl, cfg.providerApiKey!), workers: { count: cfg.reconcileWorkers, cfg },
  }, { creditGraceMs: 0, payoutGraceMs: 0 });
  events = report.events;
  clean = report.clean;
  if (!report.clean) process.stderr.write(`audit differences: ${JSON.stringify(report.byKind)} ${JSON.stringify(report.differences.slice(0, 3))}\n`);
  await pool.end();
}
const ms = performance.now() - t0;
const usage = process.resourceUsage();
// CPU of all the process's threads: less noisy than the rate on a shared host, for comparing changes.
console.log(JSON.stringify({ mode, events, ms, perSec: events / (ms / 1000), cpuSeconds: (usage.userCPUTime + usage.systemCPUTime) / 1e6, peakRssMiB: Math.round(usage.maxRSS / 1024), clean }));
