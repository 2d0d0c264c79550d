import t from 'tap';
import { account } from '../domain/accounts.ts';
import { startTestLedger, type TestLedger } from './helpers/ledger.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function fundUsers(l: TestLedger, users: string[], amount: number): Promise<void> {
  const act = await l.activity({ budget: users.length * amount });
  await Promise.all(users.map(async (u) => {
    const res = await l.signed('POST', '/v1/grants', { activityId: act, sceneId: 's', orderNo: `o-${u}`, userId: u, amount, currency: 'CNY' });
    if (res.statusCode !== 201) throw new Error(JSON.stringify(res.json));
  }));
}

const settledCount = async (l: TestLedger) =>
  (await l.rt.pool.query(`select count(*)::int as n from withdrawals where status = 'settled'`)).rows[0].n as number;

t.test('provider outage during a stream of withdrawals, then recovery: every payout settled exactly once', async (t) => {
  // Three in ten answers are lost after the provider paid: the processor cannot tell those from failures.
  const l = await startTestLedger(t, { payouts: true, provider: { ambiguousFailureRate: 0.3 } });
  const users = Array.from({ length: 30 }, (_, i) => `u-out-${i}`);
  await fundUsers(l, users, 1000);

  l.provider!.configure({ outage: true });
  const answers = await Promise.all(users.map((u) => l.asUser(u, 'POST', `/v1/wallets/${u}/withdrawals`, { amount: 600, currency: 'CNY' }, { 'idempotency-key': `out-${u}` })));
  t.same([...new Set(answers.map((a) => a.statusCode))], [201], 'every withdrawal is accepted while the provider is down');

  await l.waitFor('the breaker to open', async () => l.payouts!.breaker.opened >= 1);
  // Calls let through before it opened may still be on their way; count from a second later.
  await sleep(1_000);
  const before = l.provider!.stats.requests;
  await sleep(3_000);
  const during = l.provider!.stats.requests - before;
  // 30 payouts retrying every 100 ms–1 s would make well over 60 calls in 3 s; an open breaker
  // lets through one probe per 500 ms open period.
  t.ok(during <= 10, `the open breaker holds calls back: ${during} calls in 3 s of outage`);
  t.ok(l.payouts!.breaker.opened >= 2, `failed probes opened it again (${l.payouts!.breaker.opened} times)`);
  t.equal(await settledCount(l), 0, 'nothing settles during the outage');
  t.equal((await l.rt.pool.query(`select coalesce(sum(balance),0)::int as s from account_balances where account like 'user:u-out-%:withdrawing'`)).rows[0].s, 18_000, 'the money waits in withdrawing');

  l.provider!.configure({ outage: false });
  await l.waitFor('every payout settled', async () => (await settledCount(l)) === 30, 60_000);
  t.equal(l.payouts!.breaker.state.mode, 'closed', 'the breaker closed again after a successful probe');

  const { rows } = await l.provider!.records.pool.query(
    `select count(*)::int as n, sum(amount)::int as total, count(*) filter (where requests > 1)::int as retried from payments`,
  );
  t.equal(rows[0].n, 30, 'the provider holds 30 payouts, one per withdrawal');
  t.equal(rows[0].total, 18_000);
  t.ok(l.provider!.stats.ambiguous > 0 && rows[0].retried >= 1 && rows[0].retried <= l.provider!.stats.ambiguous, `lost answers were retried idempotently (${l.provider!.stats.ambiguous} lost, ${rows[0].retried} payouts asked for more than once)`);
  const ext = await l.rt.pool.query('select balance from account_balances where account = $1', [account.externalPayout()]);
  t.equal(ext.rows[0].balance, 18_000, 'the ledger paid out exactly what the provider paid');
  const inv = await l.admin('GET', '/v1/admin/invariants');
  t.same(inv.json.violations, [], 'the invariants hold');
  t.equal(inv.json.settledPayouts, 30);

  // Let redundant retries drain, then fold the topics from scratch: the same answer, no anomalies.
  await sleep(1_500);
  const fold = await l.cleanFold();
  t.equal(fold.balance(account.externalPayout()), 18_000, 'a clean fold of the topics agrees');
  t.same(fold.anomalies, []);
  for (const u of users.slice(0, 3)) t.equal(fold.balance(account.user(u, 'available')), 400);
});

t.test('payouts stay within the provider capacity', async (t) => {
  const l = await startTestLedger(t, { payouts: true, config: { payoutRatePerSec: 50 }, provider: { capacityPerSec: 50, latencyMs: 1 } });
  const users = Array.from({ length: 60 }, (_, i) => `u-cap-${i}`);
  await fundUsers(l, users, 100);
  const started = Date.now();
  await Promise.all(users.map((u) => l.asUser(u, 'POST', `/v1/wallets/${u}/withdrawals`, { amount: 100, currency: 'CNY' }, { 'idempotency-key': `cap-${u}` })));
  await l.waitFor('every payout settled', async () => (await settledCount(l)) === 60, 60_000);
  const took = Date.now() - started;
  t.equal(l.provider!.stats.overCapacity, 0, 'the provider never had to refuse a call for capacity');
  t.ok(took >= 1_000, `60 payouts at 50/s took ${took} ms (at least a second)`);
});
