// `npm run reconcile` (also the `hongbao-reconcile` command): the replay audit finance runs.
// Reads the topics (all, or a time range), folds them with the ledger's rules, compares
// with the projection and the payment provider, and reports every difference.
// Exit code: 0 clean, 1 differences found, 2 the audit itself failed.
import { parseArgs } from 'node:util';
import { loadConfig } from '../infra/config.ts';
import { openRuntime, type Runtime } from '../infra/runtime.ts';
import { providerApiKey } from '../infra/keys.ts';
import { projectorName } from '../projections/ledger-projector.ts';
import { runAudit, type AuditOptions, type AuditReport } from '../reconcile/audit.ts';
import { ProviderStatement } from '../reconcile/provider-statement.ts';
import { progressBar } from '../reconcile/progress.ts';
import { saveReport, summaryText, writeReportFiles } from '../reconcile/report.ts';
import { repair } from '../reconcile/repair.ts';

const USAGE = `usage: npm run reconcile -- [options]
  --from <time>            audit events appended at or after this time (ISO 8601); default: the beginning
  --to <time>              ... and before this time; default: now
  --out <dir>              where the JSON and CSV reports go (default: reports)
  --repair                 emit compensation events for what can be repaired, then audit again
  --credit-grace <sec>     a token uncredited for longer is a difference (default RECONCILE_CREDIT_GRACE_SEC, 300)
  --payout-grace <sec>     a payout unanswered for longer is a difference (default RECONCILE_PAYOUT_GRACE_SEC, 300)
  --projection-wait <sec>  how long to wait for the projection to reach the end of the range (default 60)
  --no-provider            do not compare with the payment provider
  --help`;

function fail(message: string): never {
  process.stderr.write(`reconcile: ${message}\n`);
  process.exit(2);
}

let args: ReturnType<typeof parse>;
function parse() {
  return parseArgs({
    options: {
      from: { type: 'string' }, to: { type: 'string' }, out: { type: 'string', default: 'reports' }, repair: { type: 'boolean', default: false },
      'credit-grace': { type: 'string' }, 'payout-grace': { type: 'string' }, 'projection-wait': { type: 'string', default: '60' },
      'no-provider': { type: 'boolean', default: false }, help: { type: 'boolean', default: false },
    },
  }).values;
}
try {
  args = parse();
} catch (err) {
  fail(`${(err as Error).message}\n${USAGE}`);
}
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}
const time = (name: string, v: string | undefined) => {
  if (v === undefined) return undefined;
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) fail(`--${name} must be a time such as 2026-02-10T20:00:00+08:00, got "${v}"`);
  return d;
};
const cfg = loadConfig();
const seconds = (name: string, v: string | undefined, fallbackMs = 0) => {
  if (v === undefined) return fallbackMs;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) fail(`--${name} must be a number of seconds, got "${v}"`);
  return n * 1000;
};
const from = time('from', args.from);
const to = time('to', args.to);
if (from && to && from >= to) fail('--from must be before --to');
const options: AuditOptions = {
  from, to,
  creditGraceMs: seconds('credit-grace', args['credit-grace'], cfg.reconcileCreditGraceMs),
  payoutGraceMs: seconds('payout-grace', args['payout-grace'], cfg.reconcilePayoutGraceMs),
  projectionWaitMs: seconds('projection-wait', args['projection-wait']),
};

let rt: Runtime | null = null;
try {
  rt = await openRuntime('reconcile', {}, 4);
  const deps = {
    kafka: rt.kafka, registryUrl: rt.cfg.schemaRegistryUrl, pool: rt.pool, topics: rt.topics, projector: projectorName(rt.cfg.namespace),
    provider: args['no-provider'] ? null : new ProviderStatement(rt.cfg.providerUrl, providerApiKey(rt.cfg.providerApiKey)),
    workers: { count: rt.cfg.reconcileWorkers, cfg: rt.cfg },
  };
  const audit = async (o: AuditOptions): Promise<AuditReport> => {
    const bar = progressBar();
    try {
      return await runAudit(deps, { ...o, onProgress: bar.update });
    } finally {
      bar.end();
    }
  };
  let report = await audit(options);
  const files = writeReportFiles(report, args.out!);
  await saveReport(rt.pool, report);
  process.stdout.write(summaryText(report));
  process.stdout.write(`  files       ${files.json}\n              ${files.csv}\n`);

  if (args.repair && !report.clean) {
    const fixed = await repair({ pool: rt.pool, publisher: rt.publisher }, report.differences, report.runId);
    process.stdout.write(`\nrepair: ${fixed.emitted.length} compensation event(s) emitted, ${fixed.skipped} already in the ledger\n`);
    for (const e of fixed.emitted) process.stdout.write(`  ${e.type} ${e.data.eventId}\n`);
    // Check the result: the compensations are appended now, so the second audit runs up to now.
    report = await audit({ ...options, to: undefined });
    const after = writeReportFiles(report, args.out!);
    await saveReport(rt.pool, report);
    process.stdout.write(`\nafter repair:\n${summaryText(report)}  files       ${after.json}\n              ${after.csv}\n`);
  }
  process.exitCode = report.clean ? 0 : 1;
} catch (err) {
  process.stderr.write(`reconcile: the audit failed: ${(err as Error).message}\n`);
  process.exitCode = 2;
} finally {
  await rt?.close();
}
