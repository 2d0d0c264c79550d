// The chaos suite's short version (issue 17): a festival campaign of about a minute and a
// half against separately started processes, while each process, Redis, Postgres and the
// Kafka broker are killed twice and the payment provider fails, times out and loses answers;
// then the client's book of every answer is checked against the ledger. About 2.5 minutes in
// all. `npm run chaos` runs the long one (bin/chaos.ts).
//
// The broker is the shared one: set CHAOS_KILL_KAFKA=0 to leave it alone while others use it.
// CHAOS_SEED, CHAOS_LOAD_SEC and CHAOS_RATE change the workload. Recovery targets (an API
// serving within 5 s of its restart, a processor's partitions caught up within 10 s) are
// reported here and asserted by `npm run chaos`: in the suite they would be timed tests on a
// shared 2-core host (an API restart judged at 3.5-5.5 s in CI-like runs), so a miss fails
// this test only with CHAOS_STRICT_RECOVERY=1.
import t from 'tap';
import { rmSync } from 'node:fs';

// The campaign's own clients log only what is fatal: the outages are its own doing.
process.env.LOG_LEVEL ??= 'fatal';
const { runChaos } = await import('./chaos/run.ts');

const seed = Number(process.env.CHAOS_SEED ?? 17);
const loadMs = Number(process.env.CHAOS_LOAD_SEC ?? 80) * 1000;
const rate = Number(process.env.CHAOS_RATE ?? 12);
const killKafka = process.env.CHAOS_KILL_KAFKA !== '0';
const strictRecovery = process.env.CHAOS_STRICT_RECOVERY === '1';

t.test('a short festival campaign under faults: the ledger agrees with every answer it gave', async (t) => {
  const started = Date.now();
  const result = await runChaos({ loadMs, rate, seed, repeats: 2, killKafka, strictRecovery, log: (s) => t.comment(s) });
  t.comment(`\n${result.report}`);
  for (const row of result.rows) {
    if (row.kind === 'check' || strictRecovery) t.equal(row.bad, 0, `${row.check}: ${row.checked} checked`, { examples: row.examples });
  }
  t.equal(result.discrepancies, 0, 'no discrepancy');
  const kinds = new Map<string, number>();
  for (const f of result.faults) kinds.set(f.kind, (kinds.get(f.kind) ?? 0) + 1);
  t.ok([...kinds.values()].every((n) => n >= 2) && kinds.size === (killKafka ? 15 : 14), `every fault injected at least twice: ${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  t.comment(`the short version took ${((Date.now() - started) / 1000).toFixed(0)} s`);
  // The processes' logs are kept when something was found (to look into it), not after a clean run.
  if (result.discrepancies === 0) rmSync(result.logDir, { recursive: true, force: true });
  else t.comment(`logs, reports and every attempt: ${result.logDir}`);
});
