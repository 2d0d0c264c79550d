import t from 'tap';
import { account } from '../domain/accounts.ts';
import { rolloutBucket, withdrawalIdFor } from '../domain/withdrawals.ts';
import { startTestLedger, wallet, type TestLedger } from './helpers/ledger.ts';

const grant = (activityId: string, userId: string, orderNo: string, amount: number) =>
  ({ activityId, sceneId: 'rain-1', orderNo, userId, amount, currency: 'CNY' });

async function granted(l: TestLedger, act: string, userId: string, amounts: number[]): Promise<void> {
  for (const [i, amount] of amounts.entries()) {
    const res = await l.signed('POST', '/v1/grants', grant(act, userId, `${userId}-o${i}`, amount));
    if (res.statusCode !== 201) throw new Error(JSON.stringify(res.json));
  }
}

const withdraw = (l: TestLedger, userId: string, amount: number, key: string) =>
  l.asUser(userId, 'POST', `/v1/wallets/${userId}/withdrawals`, { amount, currency: 'CNY' }, { 'idempotency-key': key });

async function settledWithdrawal(l: TestLedger, userId: string, id: string, status = 'settled') {
  return l.waitFor(`withdrawal ${status}`, async () => {
    const r = await l.asUser(userId, 'GET', `/v1/wallets/${userId}/withdrawals/${id}`);
    return r.statusCode === 200 && r.json.status === status ? r.json : undefined;
  });
}

t.test('withdraw: pending rewards are credited first, the payout settles once, and every view agrees', async (t) => {
  const l = await startTestLedger(t, { payouts: true });
  const act = await l.activity({ budget: 10_000 });
  await granted(l, act, 'u-wd', [200, 300]);
  const res = await withdraw(l, 'u-wd', 450, 'key-0001');
  t.equal(res.statusCode, 201, JSON.stringify(res.json));
  t.equal(res.json.withdrawalId, withdrawalIdFor('u-wd', 'key-0001'), 'the withdrawal id comes from the user and the key');
  t.equal(res.json.status, 'withdrawing');
  const done = await settledWithdrawal(l, 'u-wd', res.json.withdrawalId);
  t.equal(done.amount, 450);
  t.same(await wallet(l, 'u-wd'), { userId: 'u-wd', currency: 'CNY', available: 50, pending: 0, withdrawing: 0, cumulativeIncome: 500 });

  const record = await l.provider!.records.get(res.json.withdrawalId);
  t.match(record, { payoutId: res.json.withdrawalId, userId: 'u-wd', amount: 450, status: 'succeeded', requests: 1 }, 'the provider paid it once');
  const ext = await l.rt.pool.query('select balance from account_balances where account = $1', [account.externalPayout()]);
  t.equal(ext.rows[0].balance, 450, 'external payout account holds what was paid');

  const again = await withdraw(l, 'u-wd', 450, 'key-0001');
  t.equal(again.statusCode, 200, 'a retry with the same key is answered, not repeated');
  t.equal(again.headers['idempotent-replayed'], 'true');
  t.equal(again.json.status, 'settled');
  const conflict = await withdraw(l, 'u-wd', 40, 'key-0001');
  t.equal(conflict.statusCode, 409);
  t.equal(conflict.json.code, 'IDEMPOTENCY_CONFLICT');

  const statement = await l.asUser('u-wd', 'GET', '/v1/wallets/u-wd/statement');
  t.equal(statement.statusCode, 200);
  t.same(statement.json.entries.map((e: any) => [e.kind, e.amount, e.status]), [['withdrawal', -450, 'settled'], ['reward', 300, 'credited'], ['reward', 200, 'credited']]);

  const inv = await l.admin('GET', '/v1/admin/invariants');
  t.equal(inv.statusCode, 200);
  t.same(inv.json.violations, [], 'the invariants hold');
  t.equal(inv.json.settledPayouts, 1);
});

t.test('two concurrent withdrawals of the whole balance: exactly one succeeds', async (t) => {
  const l = await startTestLedger(t, { payouts: true });
  const act = await l.activity({ budget: 10_000 });
  await granted(l, act, 'u-race', [1000]);
  for (let round = 0; round < 3; round++) {
    const answers = await Promise.all([withdraw(l, 'u-race', 1000, `race-${round}-a`), withdraw(l, 'u-race', 1000, `race-${round}-b`)]);
    const codes = answers.map((a) => a.statusCode).sort();
    if (round === 0) {
      t.same(codes, [201, 409], 'one accepted, one refused');
      t.equal(answers.find((a) => a.statusCode === 409)!.json.code, 'INSUFFICIENT_FUNDS');
    } else {
      t.same(codes, [409, 409], `round ${round}: nothing left to withdraw`);
    }
  }
  await l.waitFor('settled', async () => (await wallet(l, 'u-race')).withdrawing === 0);
  t.same(await wallet(l, 'u-race'), { userId: 'u-race', currency: 'CNY', available: 0, pending: 0, withdrawing: 0, cumulativeIncome: 1000 });
  const { rows } = await l.provider!.records.pool.query('select count(*)::int as n, sum(amount)::int as total from payments where user_id = $1', ['u-race']);
  t.same(rows[0], { n: 1, total: 1000 }, 'one payout of 1000 at the provider');
  t.same((await l.admin('GET', '/v1/admin/invariants')).json.violations, []);
});

t.test('withdrawal forces crediting ahead of a crediting backlog', async (t) => {
  // 10 credits/s: a backlog of 200 other tokens takes 20 s to clear.
  const l = await startTestLedger(t, { crediting: true, creditRatePerSec: 10, payouts: true });
  const act = await l.activity({ budget: 100_000 });
  await Promise.all(Array.from({ length: 200 }, (_, i) => l.signed('POST', '/v1/grants', grant(act, `u-crowd-${i % 20}`, `crowd-${i}`, 1))));
  await granted(l, act, 'u-hurry', [70, 30]);
  await l.waitFor('tokens projected', async () => (await wallet(l, 'u-hurry')).pending === 100);
  await l.waitFor('the crediting processor is working through the backlog', async () => l.crediting!.credited >= 5);
  const started = Date.now();
  const res = await withdraw(l, 'u-hurry', 100, 'hurry-0001');
  const took = Date.now() - started;
  t.equal(res.statusCode, 201, JSON.stringify(res.json));
  t.ok(l.crediting!.credited >= 5 && l.crediting!.credited < 150, `the backlog was still there (${l.crediting!.credited} of 202 credited); the withdrawal took ${took} ms`);
  await settledWithdrawal(l, 'u-hurry', res.json.withdrawalId);
  t.same(await wallet(l, 'u-hurry'), { userId: 'u-hurry', currency: 'CNY', available: 0, pending: 0, withdrawing: 0, cumulativeIncome: 100 });
  const postings = await l.rt.pool.query('select count(*)::int as n from postings where account = $1 and amount > 0', [account.user('u-hurry', 'available')]);
  t.equal(postings.rows[0].n, 2, 'each token credited once, although the crediting processor will credit them again later');
});

t.test('a payout the provider refuses returns the money to the balance', async (t) => {
  const l = await startTestLedger(t, { payouts: true, provider: { blockedUsers: ['u-blocked'] } });
  const act = await l.activity({ budget: 10_000 });
  await granted(l, act, 'u-blocked', [500]);
  const res = await withdraw(l, 'u-blocked', 500, 'blocked-001');
  t.equal(res.statusCode, 201);
  const failed = await settledWithdrawal(l, 'u-blocked', res.json.withdrawalId, 'failed');
  t.equal(failed.reason, 'ACCOUNT_BLOCKED');
  t.same(await wallet(l, 'u-blocked'), { userId: 'u-blocked', currency: 'CNY', available: 500, pending: 0, withdrawing: 0, cumulativeIncome: 500 });
  const statement = await l.asUser('u-blocked', 'GET', '/v1/wallets/u-blocked/statement');
  t.match(statement.json.entries[0], { kind: 'withdrawal', status: 'failed', reason: 'ACCOUNT_BLOCKED', text: /back in your balance/ });
  t.same((await l.admin('GET', '/v1/admin/invariants')).json.violations, []);
});

t.test('caps, funds and gray release refuse cleanly and write nothing', async (t) => {
  const l = await startTestLedger(t, { payouts: false });
  const act = await l.activity({ budget: 10_000 });
  await granted(l, act, 'u-caps', [300]);
  const set = await l.admin('PUT', '/v1/admin/wallet-settings', { maxSingleWithdrawal: 200 });
  t.equal(set.statusCode, 200);
  t.equal(set.json.maxSingleWithdrawal, 200);
  // Settings are cached for up to 2 s in each instance.
  await new Promise((r) => setTimeout(r, 2_100));
  const over = await withdraw(l, 'u-caps', 201, 'caps-00001');
  t.equal(over.statusCode, 422);
  t.equal(over.json.code, 'AMOUNT_OVER_CAP');
  await l.admin('PUT', '/v1/admin/wallet-settings', { maxSingleWithdrawal: 10_000 });
  await new Promise((r) => setTimeout(r, 2_100));
  const poor = await withdraw(l, 'u-caps', 301, 'caps-00002');
  t.equal(poor.statusCode, 409);
  t.equal(poor.json.code, 'INSUFFICIENT_FUNDS');
  t.equal(poor.json.details.available, 300);

  // Gray release: half the users by a stable hash; the other half is told it is not open yet.
  await l.admin('PUT', '/v1/admin/wallet-settings', { withdrawalRolloutBp: 5_000 });
  await new Promise((r) => setTimeout(r, 2_100));
  const users = Array.from({ length: 40 }, (_, i) => `u-gray-${i}`);
  const answers = await Promise.all(users.map((u) => withdraw(l, u, 1, `gray-${u}`)));
  for (const [i, u] of users.entries()) {
    const expected = rolloutBucket(u) < 5_000 ? 'INSUFFICIENT_FUNDS' : 'WITHDRAWAL_NOT_OPEN';
    t.equal(answers[i]!.json.code, expected, `${u} (bucket ${rolloutBucket(u)})`);
  }
  t.ok(answers.some((a) => a.json.code === 'WITHDRAWAL_NOT_OPEN') && answers.some((a) => a.json.code === 'INSUFFICIENT_FUNDS'), 'both halves are represented');
  await l.admin('PUT', '/v1/admin/wallet-settings', { withdrawalRolloutBp: 0 });
  await new Promise((r) => setTimeout(r, 2_100));
  const closed = await withdraw(l, 'u-caps', 100, 'caps-00003');
  t.equal(closed.statusCode, 403);
  t.equal(closed.json.code, 'WITHDRAWAL_NOT_OPEN');

  const { rows } = await l.rt.pool.query('select count(*)::int as n from withdrawal_requests');
  t.equal(rows[0].n, 0, 'no refused withdrawal left a request behind');
  const history = await l.rt.pool.query('select count(*)::int as n from wallet_settings_history');
  t.equal(history.rows[0].n, 4, 'every settings change is kept for audit');
});
