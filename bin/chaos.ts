// `npm run chaos`: a festival campaign against separately started processes while they,
// Kafka, Redis and Postgres are killed and the payment provider misbehaves; then the client's
// book of every answer is checked against the ledger. Prints the checks and the recovery
// times as tables; exits 0 when there is no discrepancy, 1 when there is any, 2 when the
// campaign itself could not run. The short version runs in `npm test` (test/chaos.test.ts).
import { parseArgs } from 'node:util';

// This process's own clients (Kafka admin, Postgres) log only what is fatal: the campaign's
// outages are its own doing. The processes it runs log at warn into their files.
process.env.LOG_LEVEL ??= 'fatal';
const { runChaos } = await import('../test/chaos/run.ts');

const USAGE = `usage: npm run chaos -- [options]
  --duration <sec>   the load phase, in seconds (default 600); setup, draining, quiesce and checks add about half a minute
  --rate <n>         operations a second (default 25): grants, draws, withdrawals, red packets (each with its grabs), coupon packs, reads
  --seed <n>         the workload's and the fault schedule's seed (default: random, printed)
  --repeats <n>      how many times each fault is injected (default: one per two minutes of load, at least 2)
  --no-kafka         do not SIGKILL the Kafka broker (it is shared: anything else using it sees the outage)
  --lenient-recovery report a recovery slower than its target (API 5 s, a processor's partitions 10 s) apart
                     instead of counting it as a discrepancy (it depends on the machine's load: for a host
                     busy with other work); by default it is a discrepancy, and the exit code says so
  --help

Kills with SIGKILL each process (two API instances, projector, crediting, payouts, packet and
coupon keepers, reconciler, provider simulator), the Kafka broker, Redis (restarted empty) and
Postgres (its connections cut at once); makes the provider fail, time out and lose answers.
Process logs (LOG_LEVEL=warn) go to .local/chaos/<namespace>/.`;

let values: ReturnType<typeof parse>;
function parse() {
  return parseArgs({
    options: {
      duration: { type: 'string', default: '600' }, rate: { type: 'string', default: '25' }, seed: { type: 'string' },
      repeats: { type: 'string' }, 'no-kafka': { type: 'boolean', default: false }, 'lenient-recovery': { type: 'boolean', default: false },
      // The default now; still accepted.
      'strict-recovery': { type: 'boolean', default: false }, help: { type: 'boolean', default: false },
    },
  }).values;
}
try {
  values = parse();
} catch (err) {
  process.stderr.write(`chaos: ${(err as Error).message}\n${USAGE}\n`);
  process.exit(2);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const number = (name: string, v: string | undefined, min: number): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) {
    process.stderr.write(`chaos: --${name} must be a number of at least ${min}, got "${v}"\n${USAGE}\n`);
    process.exit(2);
  }
  return n;
};
const durationSec = number('duration', values.duration, 30)!;
const rate = number('rate', values.rate, 1)!;
const seed = Math.trunc(number('seed', values.seed, 0) ?? Date.now() % 1_000_000_007);
const repeats = Math.trunc(number('repeats', values.repeats, 2) ?? Math.max(2, Math.round(durationSec / 120)));

// Interrupted (Ctrl-C reaches the processes it started too): the shared broker is not left down.
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write('[chaos] interrupted; making sure the Kafka broker is up (the namespace is left behind)\n');
    void (async () => {
      const { brokerAddress, infraUp, portOpen } = await import('../test/chaos/cluster.ts');
      const { loadConfig } = await import('../infra/config.ts');
      const broker = brokerAddress(loadConfig());
      if (!values['no-kafka'] && !(await portOpen(broker.host, broker.port))) await infraUp().catch(() => {});
      process.exit(130);
    })();
  });
}

try {
  const result = await runChaos({
    loadMs: durationSec * 1000, rate, seed, repeats, killKafka: !values['no-kafka'], strictRecovery: !values['lenient-recovery'],
    log: (s) => process.stderr.write(`[chaos] ${s}\n`),
  });
  console.log(result.report);
  process.exitCode = result.discrepancies === 0 ? 0 : 1;
} catch (err) {
  process.stderr.write(`chaos: the campaign could not run: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 2;
}
// Keep-alive sockets and client timers must not keep a finished campaign waiting.
setTimeout(() => process.exit(), 100).unref();
