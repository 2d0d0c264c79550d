import t from 'tap';
import { startTestLedger, wallet } from './helpers/ledger.ts';
import { openRuntime } from '../infra/runtime.ts';
import { buildApp } from '../api/app.ts';
import { BudgetStore } from '../infra/budget.ts';
import { CreditingProcessor } from '../streams/crediting.ts';
import { signRequest } from '../api/auth/upstream-signature.ts';
import { account } from '../domain/accounts.ts';

// The gap between the two writes of a grant: the budget is reserved in Redis, then the
// event must reach Kafka. Here Kafka cannot be written (the API instance's producer is
// gone), the instance is abandoned, and upstream retries the same order on a fresh one.
t.test('a grant whose produce fails is completed by a retry on a restarted API, once', async (t) => {
  const l = await startTestLedger(t, { crediting: false });
  const act = await l.activity({ budget: 1_000 });
  const budget = new BudgetStore(l.rt.redis, l.ns, 60);
  const body = { activityId: act, sceneId: 's', orderNo: 'order-gap', userId: 'u-gap', amount: 300, currency: 'CNY' };

  await l.rt.producer.producer.disconnect(); // this instance can no longer write to Kafka
  const failed = await l.signed('POST', '/v1/grants', body);
  t.equal(failed.statusCode, 503);
  t.equal(failed.json.code, 'LEDGER_UNAVAILABLE');
  t.match(failed.json.message, /retry with the same orderNo/);
  t.same(await budget.snapshot(act), { funded: 1_000, reserved: 300 }, 'the reservation was made before the produce failed');

  // A restarted API: new connections on the same namespace, same keys.
  const rt2 = await openRuntime('api-restarted', { namespace: l.ns });
  const app2 = await buildApp(rt2, l.secrets);
  const crediting = new CreditingProcessor(rt2, { ratePerSec: 10_000 });
  await crediting.start();
  t.teardown(async () => { await crediting.stop(); await app2.close(); await rt2.close(); });
  const payload = JSON.stringify(body);
  const retry = async () => {
    const res = await app2.inject({ method: 'POST', url: '/v1/grants', payload, headers: { 'content-type': 'application/json', ...signRequest(l.upstreamKey, 'POST', '/v1/grants', payload) } });
    return { statusCode: res.statusCode, json: JSON.parse(res.body), replayed: res.headers['idempotent-replayed'] };
  };
  const first = await retry();
  t.equal(first.statusCode, 201, JSON.stringify(first.json));
  t.equal(first.replayed, 'true', 'recognised as the same order');
  const second = await retry();
  t.equal(second.json.token, first.json.token, 'every retry gets the same token');
  t.same(await budget.snapshot(act), { funded: 1_000, reserved: 300 }, 'the retry did not reserve again');

  await l.waitFor('credited', async () => (await wallet(l, 'u-gap')).available === 300);
  await new Promise((r) => setTimeout(r, 1000)); // let redundant copies drain before judging
  t.same(await wallet(l, 'u-gap'), { userId: 'u-gap', currency: 'CNY', available: 300, pending: 0, withdrawing: 0, cumulativeIncome: 300 });
  const { rows } = await l.rt.pool.query('select balance from account_balances where account = $1', [account.activityBudget(act)]);
  t.equal(rows[0].balance, 700, 'the budget paid for the grant once');
});
