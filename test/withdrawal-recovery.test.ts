import t from 'tap';
import { openRuntime } from '../infra/runtime.ts';
import { buildApp } from '../api/app.ts';
import { WalletDebits } from '../api/wallets/debits.ts';
import { startTestLedger, wallet } from './helpers/ledger.ts';

// An API instance that cannot write to Kafka still accepts a withdrawal: the request and its
// event commit together in the command journal, and a relay that can write (another
// instance's) produces it. Nothing waits for the user's retry or next withdrawal.
t.test('a withdrawal accepted while its instance cannot write to Kafka holds its amount and is paid once, with no retry', async (t) => {
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

  const accepted = await viaBroken(600, 'gap-key-1');
  t.equal(accepted.statusCode, 201, 'accepted: the journal, not Kafka, is what the answer waits for');
  const other = await viaHealthy(600, 'gap-key-other');
  t.same([other.statusCode, other.json.code, other.json.details?.available], [409, 'INSUFFICIENT_FUNDS', 400], 'the accepted request holds its 600');
  const retry = await viaHealthy(600, 'gap-key-1');
  t.equal(retry.statusCode, 200, 'a retry with the same key is recognised');
  t.equal(retry.json.withdrawalId, accepted.json.withdrawalId);
  t.equal(retry.headers['idempotent-replayed'], 'true');

  const second = await viaBroken(100, 'gap-key-2');
  t.equal(second.statusCode, 201);
  await l.waitFor('both settled', async () => {
    const { rows } = await l.rt.pool.query(`select count(*)::int as n from withdrawals where status = 'settled'`);
    return rows[0].n === 2;
  });
  t.same(await wallet(l, 'u-gap'), { userId: 'u-gap', currency: 'CNY', available: 300, pending: 0, withdrawing: 0, cumulativeIncome: 1000 });
  const { rows } = await l.provider!.records.pool.query('select amount::int from payments order by amount');
  t.same(rows.map((r) => r.amount), [100, 600], 'the provider paid each withdrawal once');
  t.same((await l.admin('GET', '/v1/admin/invariants')).json.violations, []);
});

// The chaos finding: a first attempt was accepted while its client had given up; the retry
// with the same key, 83 ms later, missed it at its first look, then counted its hold against
// itself and was refused (409) — and the provider paid the first. A retry gets the first answer.
t.test('a retry that races its own first attempt gets the first answer, not a refusal caused by its hold', async (t) => {
  const l = await startTestLedger(t, { crediting: true });
  const act = await l.activity({ budget: 10_000 });
  const g = await l.signed('POST', '/v1/grants', { activityId: act, sceneId: 's', orderNo: 'race-1', userId: 'u-race', amount: 1000, currency: 'CNY' });
  t.equal(g.statusCode, 201);
  await l.waitFor('credited', async () => (await wallet(l, 'u-race')).available === 1000);

  const rt2 = await openRuntime('api-first-attempt', { namespace: l.ns, walletCacheMs: 0 });
  const app2 = await buildApp(rt2, l.secrets);
  t.teardown(async () => { await app2.close(); await rt2.close(); });
  let firstAttempt: { statusCode: number; body: string } | null = null;
  // The first attempt commits right after the retry looked for it and before the retry counts holds.
  const spendable = WalletDebits.prototype.spendable;
  t.teardown(() => { WalletDebits.prototype.spendable = spendable; });
  WalletDebits.prototype.spendable = async function (this: WalletDebits, userId, withPending, client) {
    if (userId === 'u-race' && !firstAttempt) {
      firstAttempt = { statusCode: -1, body: '' };
      WalletDebits.prototype.spendable = spendable;
      const res = await app2.inject({
        method: 'POST', url: '/v1/wallets/u-race/withdrawals', payload: { amount: 800, currency: 'CNY' },
        headers: { authorization: `Bearer ${l.userToken('u-race')}`, 'idempotency-key': 'race-key' },
      });
      firstAttempt = { statusCode: res.statusCode, body: res.body };
    }
    return spendable.call(this, userId, withPending, client);
  };
  const retry = await l.asUser('u-race', 'POST', '/v1/wallets/u-race/withdrawals', { amount: 800, currency: 'CNY' }, { 'idempotency-key': 'race-key' });
  t.equal(firstAttempt!.statusCode, 201, 'the first attempt was accepted');
  t.equal(retry.statusCode, 200, `the retry is told the first answer: ${JSON.stringify(retry.json)}`);
  t.equal(retry.json.withdrawalId, JSON.parse(firstAttempt!.body).withdrawalId);
  t.equal(retry.headers['idempotent-replayed'], 'true');
});
