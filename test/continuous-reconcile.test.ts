import t from 'tap';
import { randomUUID } from 'node:crypto';
import { projectorName } from '../projections/ledger-projector.ts';
import { ContinuousReconciler } from '../reconcile/continuous.ts';
import { ProviderStatement } from '../reconcile/provider-statement.ts';
import { startTestLedger } from './helpers/ledger.ts';
import { replayTopics } from '../reconcile/replay.ts';
import type { LedgerEvent } from '../domain/events.ts';

t.test('the continuous reconciler checks the log in consecutive windows, keeps periodic reports and exports its lag and findings', async (t) => {
  const l = await startTestLedger(t, { crediting: true, payouts: true });
  const deps = {
    kafka: l.rt.kafka, registryUrl: l.rt.cfg.schemaRegistryUrl, pool: l.rt.pool, topics: l.rt.topics, projector: projectorName(l.ns),
    provider: new ProviderStatement(l.provider!.url, l.provider!.apiKey),
  };
  const opts = { intervalMs: 400, behindMs: 1_500, reportPeriodMs: 4_000, creditGraceMs: 1_000, payoutGraceMs: 1_000 };
  // Two instances: one works, the other stands by.
  const first = new ContinuousReconciler(deps, l.rt.log, l.ns, opts);
  const second = new ContinuousReconciler(deps, l.rt.log, l.ns, opts);
  first.start();
  second.start();
  t.teardown(async () => {
    await first.stop();
    await second.stop();
  });
  const db = l.rt.pool;
  await l.waitFor('a leader', async () => first.leader || second.leader);
  await new Promise((r) => setTimeout(r, 1_000));
  t.equal([first.leader, second.leader].filter(Boolean).length, 1, 'exactly one instance leads');

  const act = await l.activity({ budget: 20_000 });
  for (let i = 0; i < 6; i++) {
    const g = await l.signed('POST', '/v1/grants', { activityId: act, sceneId: 's', orderNo: `c-${i}`, userId: `cu-${i % 3}`, amount: 300, currency: 'CNY' });
    t.equal(g.statusCode, 201);
  }
  const w = await l.asUser('cu-0', 'POST', '/v1/wallets/cu-0/withdrawals', { amount: 250, currency: 'CNY' }, { 'idempotency-key': 'cont-0001' });
  t.equal(w.statusCode, 201);
  await l.waitFor('settled', async () => (await db.query(`select 1 from withdrawals where status = 'settled'`)).rows.length === 1);
  const lastEventAt = Date.now();
  // 1 funding + 6 grants + 6 credits + withdrawal + settlement, and a second copy of a credit
  // when the withdrawal forced one the crediting processor was also writing (the ledger
  // applies it once): the windows must read every message of the log once.
  const log: LedgerEvent[] = [];
  await replayTopics(l.rt.kafka, l.rt.codec, [l.rt.topics.budget, l.rt.topics.wallet], (e) => void log.push(e));
  const total = log.length;
  const copies = log.filter((e, i) => log.findIndex((x) => x.data.eventId === e.data.eventId) !== i);
  t.equal(total - copies.length, 15, 'fifteen distinct events');
  t.ok(copies.every((e) => e.type === 'TokenCredited'), `any second copy is a credit (${copies.length})`);

  await l.waitFor('windows past the last event', async () =>
    (await db.query(`select max(range_to) as to from reconcile_runs where kind = 'continuous'`)).rows[0].to?.getTime() > lastEventAt + 300, 20_000);
  const windows = (await db.query(`select range_from, range_to, events, differences from reconcile_runs where kind = 'continuous' order by range_to`)).rows;
  t.ok(windows.length >= 3, `several windows (${windows.length})`);
  for (let i = 1; i < windows.length; i++) {
    if (windows[i].range_from.getTime() !== windows[i - 1].range_to.getTime()) t.fail(`window ${i} does not start where the previous one ended`);
  }
  t.equal(windows.reduce((n: number, r: any) => n + Number(r.events), 0), total, 'the windows together read every event once');
  t.equal(windows.reduce((n: number, r: any) => n + r.differences, 0), 0, 'a healthy ledger: no window found anything');

  // The provider pays something the ledger never asked for: the next window reports it.
  const stranger = randomUUID();
  await l.provider!.records.pool.query(
    `insert into payments(payout_id, user_id, amount, currency, status, provider_ref) values ($1, 'cz', 777, 'CNY', 'succeeded', 'psp-unknown')`, [stranger]);
  const injectedAt = Date.now();
  const found = await l.waitFor('the stranger reported', async () => {
    const { rows } = await db.query(
      `select r.run_id, r.kind, d.detail from reconcile_runs r join reconcile_differences d using (run_id) where r.kind = 'continuous'`);
    return rows[0];
  }, 20_000);
  t.match(found.detail, { kind: 'payout_without_ledger_entry', payoutId: stranger, userId: 'cz', actual: 777 });
  t.ok(Date.now() - injectedAt < 10_000, 'found within seconds');

  const metrics = await l.app.inject({ method: 'GET', url: '/v1/admin/reconciliation/metrics', headers: { authorization: `Bearer ${l.secrets.adminToken}` } });
  t.equal(metrics.statusCode, 200);
  t.match(metrics.body, /hongbao_reconcile_differences_found_total\{report="continuous"\} 1/);
  const lag = Number(/^hongbao_reconcile_lag_seconds (\S+)$/m.exec(metrics.body)?.[1]);
  t.ok(lag >= 1 && lag < 6, `the lag is about "behind" plus one interval (${lag} s)`);

  // The periodic report: a whole period, aligned, kept once, exposed by the admin API.
  const period = await l.waitFor('a periodic report after the injection', async () => {
    const { rows } = await db.query(`select run_id, range_from, range_to, differences from reconcile_runs where kind = 'hourly' and range_to > $1 order by range_to limit 1`, [new Date(injectedAt)]);
    return rows[0];
  }, 20_000);
  t.equal(period.range_to.getTime() - period.range_from.getTime(), opts.reportPeriodMs);
  t.equal(period.range_from.getTime() % opts.reportPeriodMs, 0, 'periods are aligned');
  t.equal(period.differences, 1, 'the period with the injected payment reports it');
  const list = await l.admin('GET', '/v1/admin/reconciliation/reports?kind=hourly');
  t.equal(list.statusCode, 200);
  t.ok(list.json.reports.some((r: any) => r.runId === period.run_id));
  const one = await l.admin('GET', `/v1/admin/reconciliation/reports/${period.run_id}`);
  t.match(one.json, { kind: 'hourly', differences: 1, byKind: { payout_without_ledger_entry: 1 } });
  t.match(one.json.differenceList, [{ kind: 'payout_without_ledger_entry', payoutId: stranger }]);
  const status = await l.admin('GET', '/v1/admin/reconciliation');
  t.match(status.json, { latest: { continuous: { rangeTo: String }, hourly: { runId: String } } });
  const periods = (await db.query(`select range_from, count(*)::int as n from reconcile_runs where kind = 'hourly' group by range_from having count(*) > 1`)).rows;
  t.same(periods, [], 'one report per period, with two instances running');

  t.equal((await l.admin('GET', `/v1/admin/reconciliation/reports/${randomUUID()}`)).statusCode, 404);
  t.equal((await l.admin('GET', '/v1/admin/reconciliation/reports/not-a-uuid')).statusCode, 400);
  t.equal((await l.app.inject({ method: 'GET', url: '/v1/admin/reconciliation' })).statusCode, 401);
});
