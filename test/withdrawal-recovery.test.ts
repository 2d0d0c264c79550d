import t from 'tap';
import { openRuntime } from '../infra/runtime.ts';
import { buildApp } from '../api/app.ts';
import { startTestLedger, wallet } from './helpers/ledger.ts';

// The gap between the two writes of a withdrawal: the request (the hold) is committed in
// Postgres, then the event must reach Kafka. Here one API instance loses Kafka right there.
t.test('a withdrawal whose produce fails holds its amount, and is completed once by a retry or by the next withdrawal', async (t) => {
  const l = await startTestLedger(t, { crediting: true, payouts: true });
  const act = await l.activity({ budget: 10_000 });
  const g = await l.signed('POST', '/v1/grants', { activityId: act, sceneId: 's', orderNo: 'gap-1', userId: 'u-gap', amount: 1000, currency: 'CNY' });
  t.equal(g.statusCode, 201);
  await l.waitFor('credited', async () => (await wallet(l, 'u-gap')).available === 1000);

  // A second API instance on the same namespace, whose producer is gone.
  const rtA = await openRuntime('api-broken', { namespace: l.ns, walletCacheMs: 0 });
  const appA = await buildApp(rtA, l.secrets);
  t.teardown(async () => { await appA.close(); await rtA.close(); });
  await rtA.producer.producer.disconnect();
  const viaBroken = async (amount: number, key: string) => {
    const res = await appA.inject({
      method: 'POST', url: '/v1/wallets/u-gap/withdrawals', payload: { amount, currency: 'CNY' },
      headers: { authorization: `Bearer ${l.userToken('u-gap')}`, 'idempotency-key': key },
    });
    return { statusCode: res.statusCode, json: JSON.parse(res.body) };
  };
  const viaHealthy = (amount: number, key: string) =>
    l.asUser('u-gap', 'POST', '/v1/wallets/u-gap/withdrawals', { amount, currency: 'CNY' }, { 'idempotency-key': key });

  const failed = await viaBroken(600, 'gap-key-1');
  t.same([failed.statusCode, failed.json.code], [503, 'LEDGER_UNAVAILABLE'], 'the client is told to retry');
  const other = await viaHealthy(600, 'gap-key-other');
  t.same([other.statusCode, other.json.code, other.json.details?.available], [409, 'INSUFFICIENT_FUNDS', 400], 'the unproduced request still holds its 600');

  const retry = await viaHealthy(600, 'gap-key-1');
  t.equal(retry.statusCode, 200, 'the retry with the same key is recognised');
  t.equal(retry.headers['idempotent-replayed'], 'true');
  await l.waitFor('first withdrawal settled', async () => (await wallet(l, 'u-gap')).withdrawing === 0 && (await wallet(l, 'u-gap')).available === 400);

  // This time the client never retries: the user's next withdrawal produces the stranded one.
  const stranded = await viaBroken(100, 'gap-key-2');
  t.equal(stranded.statusCode, 503);
  await new Promise((r) => setTimeout(r, 5_500));
  const next = await viaHealthy(50, 'gap-key-3');
  t.equal(next.statusCode, 201, JSON.stringify(next.json));
  await l.waitFor('all settled', async () => {
    const { rows } = await l.rt.pool.query(`select count(*)::int as n from withdrawals where status = 'settled'`);
    return rows[0].n === 3;
  });
  t.same(await wallet(l, 'u-gap'), { userId: 'u-gap', currency: 'CNY', available: 250, pending: 0, withdrawing: 0, cumulativeIncome: 1000 });
  const { rows } = await l.provider!.records.pool.query('select amount::int from payments order by amount');
  t.same(rows.map((r) => r.amount), [50, 100, 600], 'the provider paid each withdrawal once');
  t.same((await l.admin('GET', '/v1/admin/invariants')).json.violations, []);
});
