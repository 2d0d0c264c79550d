import t from 'tap';
import { startTestLedger, wallet } from './helpers/ledger.ts';
import { openRuntime } from '../infra/runtime.ts';
import { buildApp } from '../api/app.ts';
import { BudgetStore } from '../infra/budget.ts';
import { CreditingProcessor } from '../streams/crediting.ts';
import { signRequest } from '../api/auth/upstream-signature.ts';
import { account } from '../domain/accounts.ts';

// Kafka cannot be written (the API instance's producer is gone): the grant is still accepted,
// because it is journaled in Postgres with its budget; the instance is abandoned, another
// instance's relay produces the event, and upstream's retry there gets the first answer.
t.test('a grant accepted while Kafka cannot be written reaches the ledger through the journal, once', async (t) => {
  const l = await startTestLedger(t, { crediting: false });
  const act = await l.activity({ budget: 1_000 });
  const budget = new BudgetStore(l.rt.pool);
  const body = { activityId: act, sceneId: 's', orderNo: 'order-gap', userId: 'u-gap', amount: 300, currency: 'CNY' };

  await l.rt.producer.producer.disconnect(); // this instance can no longer write to Kafka
  const accepted = await l.signed('POST', '/v1/grants', body);
  t.equal(accepted.statusCode, 201, 'accepted: the journal, not Kafka, is what the answer waits for');
  t.same(await budget.snapshot(act), { funded: 1_000, reserved: 300 }, 'the budget was reserved with the journal entry');

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
  t.equal(first.json.token, accepted.json.token, 'the retry gets the first answer');
  const second = await retry();
  t.equal(second.json.token, first.json.token, 'every retry gets the same token');
  t.same(await budget.snapshot(act), { funded: 1_000, reserved: 300 }, 'the retry did not reserve again');

  await l.waitFor('credited', async () => (await wallet(l, 'u-gap')).available === 300);
  await new Promise((r) => setTimeout(r, 1000)); // let redundant copies drain before judging
  t.same(await wallet(l, 'u-gap'), { userId: 'u-gap', currency: 'CNY', available: 300, pending: 0, withdrawing: 0, cumulativeIncome: 300 });
  const { rows } = await l.rt.pool.query('select balance from account_balances where account = $1', [account.activityBudget(act)]);
  t.equal(rows[0].balance, 700, 'the budget paid for the grant once');
});
