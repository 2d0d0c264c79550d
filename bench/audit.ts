// The replay-audit benchmark: a log of BENCH_AUDIT_EVENTS (1,000,000) events (fundings,
// grants, credits, withdrawals and their settlements) is produced and projected, the
// provider's books are filled to match, then the audit and the raw baseline (kafkajs
// consume + Avro decode of the same topics) each read it BENCH_AUDIT_ROUNDS (5) times, alternately,
// each in its own process. Run alone with `tsx bench/audit.ts`, or as part of `npm run bench`.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../infra/config.ts';
import { openRuntime, removeNamespace, setupNamespace } from '../infra/runtime.ts';
import { fundingEventIdFor, tokenIdFor, creditFor } from '../domain/grants.ts';
import { settledEventIdFor, withdrawalIdFor } from '../domain/withdrawals.ts';
import type { LedgerEvent } from '../domain/events.ts';
import { PayoutRecords } from '../simulator/payment-provider/store.ts';
import { buildProvider } from '../simulator/payment-provider/app.ts';
import { median } from './load.ts';
import { AUDIT_NODE_FLAGS } from '../reconcile/node-flags.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const log = (s: string) => process.stderr.write(`[bench:audit] ${s}\n`);

export interface AuditBench {
  events: number;
  auditPerSec: number;
  rawPerSec: number;
  ratio: number;
  auditSeconds: number;
  auditPeakRssMiB: number;
  rawPeakRssMiB: number;
  /** CPU seconds of each process, all its threads (medians): the rates move with a shared host's load, this less. */
  auditCpuSeconds: number;
  rawCpuSeconds: number;
  rounds: { raw: number[]; audit: number[] };
}

export function child(mode: 'raw' | 'audit', env: Record<string, string>): Promise<{ events: number; ms: number; perSec: number; cpuSeconds: number; peakRssMiB: number; clean?: boolean }> {
  return new Promise((resolve, reject) => {
    // Both sides run with the flags the audit command sets, so the ratio compares the work, not the heap settings.
    const flags = [...AUDIT_NODE_FLAGS, ...(process.env.BENCH_PROF && mode === 'audit' ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] : [])];
    const c = spawn(process.execPath, [...flags, '--import', 'tsx', 'bench/audit-child.ts', mode], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!)) : reject(new Error(`${mode} exited ${code}`))));
  });
}

/** A namespace holding a projected log of about `n` events and the provider's matching books. */
export interface AuditLog {
  events: number;
  /** The environment of a child reading it. */
  env: Record<string, string>;
  drop(): Promise<void>;
}

export async function prepareAuditLog(n: number): Promise<AuditLog> {
  const ns = `bench_audit_${Date.now().toString(36)}`;
  const providerKey = randomBytes(16).toString('hex');
  await setupNamespace(loadConfig({ namespace: ns }));
  const rt = await openRuntime('bench-audit', { namespace: ns, produceLingerMs: 5 });
  const records = new PayoutRecords(rt.cfg.databaseUrl, `${ns}_psp`);
  await records.migrate();
  const provider = await buildProvider(records, { apiKey: providerKey });
  const providerUrl = await provider.listen({ host: '127.0.0.1', port: 0 });
  const env = { LEDGER_NAMESPACE: ns, PROVIDER_URL: providerUrl, PROVIDER_API_KEY: providerKey, LOG_LEVEL: 'warn' };
  const drop = async () => {
    await provider.close();
    await records.drop();
    await records.close();
    await removeNamespace(rt);
    await rt.close();
  };
  try {
    // The log: per 20 events, 9 grants and their 9 credits, and one withdrawal and its settlement.
    const withdrawals = Math.floor((n - 1) / 20);
    const grants = Math.floor((n - 1 - 2 * withdrawals) / 2);
    const users = Math.max(1, Math.min(100_000, grants));
    log(`producing ${1 + 2 * grants + 2 * withdrawals} events (${grants} grants, ${withdrawals} withdrawals, ${users} users)`);
    const now = Date.now();
    const publish = async (events: LedgerEvent[]) => {
      for (let i = 0; i < events.length; i += 20_000) await Promise.all(events.slice(i, i + 20_000).map((e) => rt.publisher.publish(e.type, e.data as never)));
    };
    await publish([{ type: 'BudgetFunded', data: { eventId: fundingEventIdFor('bench', 'f'), occurredAt: now, activityId: 'bench', traceId: 'b', fundingId: 'f', amount: 1e15, currency: 'CNY', fundedBy: 'bench' } }]);
    // Each grant takes the next budget slice of the activity, as the journal gives them (ledger I10).
    let reserved = 0;
    for (let from = 0; from < grants; from += 50_000) {
      const batch: LedgerEvent[] = [];
      for (let i = from; i < Math.min(grants, from + 50_000); i++) {
        const tokenId = tokenIdFor('bench', `o-${i}`);
        const amount = 1 + (i % 100);
        reserved += amount;
        const data = {
          eventId: tokenId, occurredAt: now, activityId: 'bench', traceId: 'b', tokenId, orderNo: `o-${i}`, userId: `u-${i % users}`, sceneId: 's', amount, currency: 'CNY' as const,
          signature: 'bench', keyId: 'bench', grantedBy: 'bench', clientAddress: '127.0.0.1', requestId: `r-${i}`, budgetSliceEnd: reserved, budgetFunded: 1e15,
        };
        batch.push({ type: 'TokenIssued', data }, { type: 'TokenCredited', data: creditFor(data, now) });
      }
      await publish(batch);
    }
    const settled: LedgerEvent[] = [];
    const wd: LedgerEvent[] = [];
    for (let j = 0; j < withdrawals; j++) {
      const user = `u-${j % users}`;
      const id = withdrawalIdFor(user, `w-${j}`);
      wd.push({ type: 'WithdrawalRequested', data: { eventId: id, occurredAt: now, activityId: '', traceId: 'b', withdrawalId: id, userId: user, amount: 1, currency: 'CNY', requestedBy: user, clientAddress: '127.0.0.1', requestId: `w-${j}` } });
      settled.push({ type: 'PayoutSettled', data: { eventId: settledEventIdFor(id), occurredAt: now, activityId: '', traceId: 'b', withdrawalId: id, userId: user, amount: 1, currency: 'CNY', providerRef: `psp-${j}` } });
    }
    await publish(wd);
    await publish(settled);
    await records.pool.query(
      `insert into payments(payout_id, user_id, amount, currency, status, provider_ref, created_at)
       select id, u, 1, 'CNY', 'succeeded', ref, now() - interval '1 minute' from unnest($1::text[], $2::text[], $3::text[]) as x(id, u, ref)`,
      [wd.map((e) => (e.data as { withdrawalId: string }).withdrawalId), wd.map((e) => (e.data as { userId: string }).userId), settled.map((e) => (e.data as { providerRef: string }).providerRef)],
    );

    log('projecting');
    const projector = spawn(process.execPath, ['--import', 'tsx', 'bin/projector.ts'], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
    const total = 1 + 2 * grants + 2 * withdrawals;
    for (;;) {
      const { rows } = await rt.pool.query('select count(*)::bigint as n from ledger_events');
      if (Number(rows[0].n) >= total) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    // Let it record its last offsets, then stop it: the audit reads a quiet system.
    await new Promise((r) => setTimeout(r, 2_000));
    projector.kill('SIGTERM');
    await new Promise((r) => projector.once('exit', r));
    return { events: total, env, drop };
  } catch (err) {
    await drop();
    throw err;
  }
}

export async function benchAudit(rounds: number): Promise<AuditBench> {
  const auditLog = await prepareAuditLog(Number(process.env.BENCH_AUDIT_EVENTS ?? 1_000_000));
  try {
    const raw: { perSec: number; cpuSeconds: number; peakRssMiB: number }[] = [];
    const audit: { perSec: number; ms: number; cpuSeconds: number; peakRssMiB: number }[] = [];
    for (let r = 0; r < rounds; r++) {
      raw.push(await child('raw', auditLog.env));
      const a = await child('audit', auditLog.env);
      if (!a.clean) throw new Error('the benchmark ledger should audit clean');
      audit.push(a);
      log(`round ${r + 1}: audit ${a.perSec.toFixed(0)} events/s (${(a.ms / 1000).toFixed(1)} s, ${a.cpuSeconds.toFixed(1)} s CPU, peak ${a.peakRssMiB} MiB); raw ${raw[r]!.perSec.toFixed(0)} events/s (${raw[r]!.cpuSeconds.toFixed(1)} s CPU)`);
    }
    const auditPerSec = median(audit.map((a) => a.perSec));
    const rawPerSec = median(raw.map((a) => a.perSec));
    return {
      events: auditLog.events, auditPerSec, rawPerSec, ratio: auditPerSec / rawPerSec, auditSeconds: median(audit.map((a) => a.ms)) / 1000,
      auditPeakRssMiB: Math.max(...audit.map((a) => a.peakRssMiB)), rawPeakRssMiB: Math.max(...raw.map((a) => a.peakRssMiB)),
      auditCpuSeconds: median(audit.map((a) => a.cpuSeconds)), rawCpuSeconds: median(raw.map((a) => a.cpuSeconds)),
      rounds: { raw: raw.map((a) => Math.round(a.perSec)), audit: audit.map((a) => Math.round(a.perSec)) },
    };
  } finally {
    await auditLog.drop();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(await benchAudit(Number(process.env.BENCH_AUDIT_ROUNDS ?? 5)), null, 2));
}
