// One chaos campaign from start to finish: the processes started, the campaign set up, the
// load and the faults side by side, the quiesce, the checks, the namespace removed.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bootCluster, startCluster, HEALTHY_PROVIDER, PROCESS_NAMES, type Cluster } from './cluster.ts';
import { ChaosClient } from './client.ts';
import { Book, runLoad, setUpCampaign, sizingFor } from './campaign.ts';
import { FaultRunner, planFaults, servedAgain, type FaultRecord } from './faults.ts';
import { checksTable, recoveryTable, routeTable, runChecks, type CheckRow } from './checks.ts';
import { projectorName } from '../../projections/ledger-projector.ts';

export interface ChaosOptions {
  /** The load phase, ms (faults run inside it; setup, quiesce and checks come on top). */
  loadMs: number;
  /** Operations a second (each a request, some with retries; a red packet brings its grabs). */
  rate: number;
  seed: number;
  /** SIGKILL and restart the shared Kafka broker (disturbs anything else using it). */
  killKafka: boolean;
  /** How many times each fault kind is injected (at least 2). */
  repeats: number;
  /** Count a recovery that missed its target as a discrepancy (the callers' default; false reports it apart, for a host busy with other work). */
  strictRecovery?: boolean;
  log(s: string): void;
}

export interface ChaosResult {
  ns: string;
  /** The processes' logs, the reconcile reports and run.json (every attempt and fault). */
  logDir: string;
  seed: number;
  rows: CheckRow[];
  faults: FaultRecord[];
  discrepancies: number;
  /** Recoveries slower than their target (not overlapped by another outage). */
  targetsMissed: number;
  report: string;
  timings: Record<string, number>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** No fault in the first seconds (a baseline) nor in the last ones (a 503 there is a discrepancy). */
const WARM_MS = 6_000;
const QUIET_TAIL_MS = 12_000;

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const t0 = Date.now();
  const timings: Record<string, number> = {};
  const mark = (name: string, since: number) => { timings[name] = Date.now() - since; };
  o.log(`seed ${o.seed}; load ${o.loadMs / 1000} s at ${o.rate} operations/s; each fault ${o.repeats}x; Kafka broker kills ${o.killKafka ? 'on' : 'off'}`);
  const c = await startCluster({ killKafka: o.killKafka });
  o.log(`namespace ${c.ns}; process logs in ${c.logDir}`);
  try {
    await bootCluster(c);
    const client = new ChaosClient(c, { attemptTimeoutMs: 5_000, giveUpMs: 150_000 });
    const book = new Book();
    const sizing = sizingFor(o.rate, o.loadMs);
    await setUpCampaign(c, client, book, sizing);
    mark('setup', t0);
    o.log(`set up in ${(timings.setup! / 1000).toFixed(1)} s: ${sizing.users} users, grant budgets ${sizing.grantBudget} fen (+${sizing.topUp}), draw budget ${sizing.childBudget}, quotas ${sizing.quotas.small}/${sizing.quotas.big}, coupon stock ${sizing.couponStock}`);

    const tLoad = Date.now();
    const plan = planFaults(o.seed, WARM_MS, Math.max(WARM_MS + 10_000, o.loadMs - QUIET_TAIL_MS), o.repeats, o.killKafka);
    const faults = new FaultRunner(c, o.log);
    const faulting = faults.run(plan, tLoad);
    await runLoad(client, book, { rate: o.rate, loadMs: o.loadMs, seed: o.seed, maxInFlight: Math.max(100, o.rate * 10), log: o.log });
    await faulting;
    mark('load', tLoad);

    const tQuiet = Date.now();
    await quiesce(c, o.log);
    await faults.settle();
    servedAgain(faults.records, client.attempts);
    mark('quiesce', tQuiet);

    // The raw material, for looking into a finding afterwards: every attempt and every fault.
    const answersOf = (m: Map<string, { sent: { sentAt: number; answer: { status: number; body: any; answeredAt: number } | null }[] }>) =>
      Object.fromEntries([...m].map(([k, r]) => [k, r.sent.map((x) => [x.sentAt, x.answer?.status ?? null, x.answer?.body?.code ?? null, x.answer?.answeredAt ?? null])]));
    writeFileSync(join(c.logDir, 'run.json'), JSON.stringify({
      seed: o.seed, loadStart: tLoad, faults: faults.records, attempts: client.attempts, unanswered: client.unanswered,
      book: { grants: answersOf(book.grants), draws: answersOf(book.draws), withdrawals: answersOf(book.withdrawals), packets: answersOf(book.packets), grabs: answersOf(book.grabs), coupons: answersOf(book.coupons) },
    }));
    const tCheck = Date.now();
    const rows = await runChecks(c, book, client, faults.records);
    mark('checks', tCheck);
    const targetsMissed = rows.filter((r) => r.kind === 'target').reduce((n, r) => n + r.bad, 0);
    const discrepancies = rows.filter((r) => r.kind === 'check').reduce((n, r) => n + r.bad, 0) + (o.strictRecovery ? targetsMissed : 0);
    const requests = client.attempts.length;
    const statuses = new Map<string, number>();
    for (const a of client.attempts) statuses.set(String(a.status), (statuses.get(String(a.status)) ?? 0) + 1);
    const ops = Object.entries(book.ops).sort().map(([k, v]) => `${k} ${v}`).join(', ');
    const report = [
      `chaos campaign: seed ${o.seed}, load ${o.loadMs / 1000} s at ${o.rate}/s, each fault ${o.repeats}x${o.killKafka ? '' : ' (Kafka broker not killed)'}, namespace ${c.ns}`,
      `operations: ${ops}${book.skipped ? `; ${book.skipped} skipped (too many in flight)` : ''}`,
      `attempts: ${requests} (${[...statuses].sort().map(([s, n]) => `${s}: ${n}`).join(', ')}); error log lines per process: ${PROCESS_NAMES.map((n) => `${n} ${c.procs[n].errorLines}`).join(', ')}`,
      '',
      checksTable(rows),
      '',
      routeTable(client),
      '',
      recoveryTable(faults.records),
      '',
      `${discrepancies === 0 ? 'no discrepancy' : `${discrepancies} discrepancies`}${targetsMissed ? `; ${targetsMissed} recoveries slower than their target${o.strictRecovery ? ' (counted)' : ' (reported, not counted: recovery was lenient)'}` : ''}; setup ${(timings.setup! / 1000).toFixed(0)} s, load ${(timings.load! / 1000).toFixed(0)} s, quiesce ${(timings.quiesce! / 1000).toFixed(0)} s, checks ${(timings.checks! / 1000).toFixed(0)} s`,
    ].join('\n');
    return { ns: c.ns, logDir: c.logDir, seed: o.seed, rows, faults: faults.records, discrepancies, targetsMissed, report, timings };
  } finally {
    const tClose = Date.now();
    await c.close().catch((err) => o.log(`cleanup failed: ${(err as Error).message}`));
    mark('close', tClose);
    mark('total', t0);
  }
}

/**
 * Everything back up and healthy, then waits until the ledger has done all it owes: the
 * journal produced, the projection at the log's end, every token and share credited, every
 * withdrawal paid, every red packet expired and refunded (or finished).
 */
async function quiesce(c: Cluster, log: (s: string) => void): Promise<void> {
  await c.proxy.restore();
  for (const name of PROCESS_NAMES) c.procs[name].start();
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      await c.setProvider(HEALTHY_PROVIDER);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error('the provider did not come back');
      await sleep(250);
    }
  }
  let stable = 0;
  let last = '';
  let nextLog = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const state = await owed(c).catch((err) => ({ done: false, what: `not readable: ${(err as Error).message}` }));
    if (state.done) {
      stable = state.what === last ? stable + 1 : 1;
      if (stable >= 2) return;
    } else {
      stable = 0;
    }
    last = state.what;
    if (Date.now() > nextLog) {
      nextLog += 10_000;
      log(`quiescing: ${state.what}`);
    }
    await sleep(500);
  }
  log(`did not quiesce within the deadline: ${last}`);
}

async function owed(c: Cluster): Promise<{ done: boolean; what: string }> {
  const admin = await c.kafkaAdmin();
  const ends: string[] = [];
  let behind = 0;
  const stored = new Map((await c.pool.query<{ topic: string; partition: number; next_offset: number }>(
    'select topic, partition, next_offset from consumer_offsets where consumer = $1', [projectorName(c.ns)])).rows.map((r) => [`${r.topic}/${r.partition}`, Number(r.next_offset)]));
  for (const topic of [c.topics.wallet, c.topics.budget]) {
    for (const p of await admin.fetchTopicOffsets(topic)) {
      ends.push(`${p.partition}:${p.high}`);
      behind += Math.max(0, Number(p.high) - (stored.get(`${topic}/${p.partition}`) ?? 0));
    }
  }
  const { rows: [r] } = await c.pool.query<{ unproduced: number; pending: number; withdrawing: number; open: number; uncredited: number; holds: number }>(
    `select (select count(*) from journal_outbox)::int as unproduced,
            (select count(*) from tokens where status = 'pending')::int as pending,
            (select count(*) from withdrawals where status = 'withdrawing')::int as withdrawing,
            (select count(*) from packets where status = 'open')::int as open,
            (select count(*) from packet_claims c where not exists (select 1 from packet_credits k where k.packet_id = c.packet_id and k.user_id = c.user_id))::int as uncredited,
            (select count(*) from pack_states where hold_expires_at is not null)::int as holds`);
  const done = behind === 0 && r!.unproduced === 0 && r!.pending === 0 && r!.withdrawing === 0 && r!.open === 0 && r!.uncredited === 0 && r!.holds === 0;
  return { done, what: `projection ${behind} behind, journal ${r!.unproduced} unproduced, ${r!.pending} tokens pending, ${r!.withdrawing} withdrawals in flight, ${r!.open} packets open, ${r!.uncredited} shares uncredited, ${r!.holds} coupon holds; ends ${ends.join(',')}` };
}
