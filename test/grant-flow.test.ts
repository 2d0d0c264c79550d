import t from 'tap';
import { publicKeyOf, verifyToken } from '../domain/tokens.ts';
import { account } from '../domain/accounts.ts';
import { startTestLedger, wallet } from './helpers/ledger.ts';

const grant = (activityId: string, userId: string, orderNo: string, amount: number) =>
  ({ activityId, sceneId: 'rain-1', orderNo, userId, amount, currency: 'CNY' });

t.test('grant → signed token → async credit → wallet shows it', async (t) => {
  const l = await startTestLedger(t, { crediting: true });
  const act = await l.activity({ budget: 10_000 });
  const res = await l.signed('POST', '/v1/grants', grant(act, 'u-alice', 'order-1', 88));
  t.equal(res.statusCode, 201, JSON.stringify(res.json));
  t.equal(res.json.amount, 88);
  t.equal(res.json.status, 'pending');
  const check = verifyToken(res.json.token, new Map([[l.cfg.tokenKeyId, publicKeyOf(l.secrets.tokenSigningKeyPem)]]));
  t.ok(check.ok, 'the token verifies with the public key');
  if (check.ok) t.match(check.claims, { userId: 'u-alice', amount: 88, activityId: act, orderNo: 'order-1', sceneId: 'rain-1' });

  const credited = await l.waitFor('credit to land', async () => {
    const w = await wallet(l, 'u-alice');
    return w.available === 88 ? w : undefined;
  });
  t.same(credited, { userId: 'u-alice', currency: 'CNY', available: 88, pending: 0, withdrawing: 0, cumulativeIncome: 88 });
  const { rows } = await l.rt.pool.query('select status from tokens where token_id = $1', [res.json.tokenId]);
  t.equal(rows[0].status, 'credited');
  const budget = await l.rt.pool.query('select balance from account_balances where account = $1', [account.activityBudget(act)]);
  t.equal(budget.rows[0].balance, 10_000 - 88, 'budget account debited');
  const sum = await l.rt.pool.query('select coalesce(sum(balance),0)::bigint as s from account_balances');
  t.equal(sum.rows[0].s, 0, 'the ledger sums to zero');
});

t.test('a pending token shows as pending before it is credited', async (t) => {
  const l = await startTestLedger(t, { crediting: false });
  const act = await l.activity({ budget: 1_000 });
  const res = await l.signed('POST', '/v1/grants', grant(act, 'u-bob', 'o-1', 50));
  t.equal(res.statusCode, 201);
  const w = await l.waitFor('token projected', async () => {
    const w = await wallet(l, 'u-bob');
    return w.pending === 50 ? w : undefined;
  });
  t.same(w, { userId: 'u-bob', currency: 'CNY', available: 0, pending: 50, withdrawing: 0, cumulativeIncome: 50 });
});

t.test('the same order number sent 20 times concurrently moves money once', async (t) => {
  const l = await startTestLedger(t, { crediting: true });
  const act = await l.activity({ budget: 10_000 });
  const answers = await Promise.all(Array.from({ length: 20 }, () => l.signed('POST', '/v1/grants', grant(act, 'u-carol', 'same-order', 100))));
  t.same([...new Set(answers.map((a) => a.statusCode))], [201], 'every retry is answered 201');
  t.equal(new Set(answers.map((a) => a.json.token)).size, 1, 'every retry gets the identical token');
  t.equal(answers.filter((a) => a.headers['idempotent-replayed'] === 'true').length, 19, '19 are marked as replays');

  await l.waitFor('credit', async () => (await wallet(l, 'u-carol')).available === 100);
  // Let any redundant copies of the events drain through the processors before judging.
  await new Promise((r) => setTimeout(r, 1500));
  t.same(await wallet(l, 'u-carol'), { userId: 'u-carol', currency: 'CNY', available: 100, pending: 0, withdrawing: 0, cumulativeIncome: 100 });
  const postings = await l.rt.pool.query(`select count(*)::int as n from postings where account = $1`, [account.user('u-carol', 'available')]);
  t.equal(postings.rows[0].n, 1, 'exactly one credit posting');
  const fold = await l.cleanFold();
  t.equal(fold.balance(account.user('u-carol', 'available')), 100, 'a clean fold of the topic agrees');
  t.equal(fold.anomalies.length, 0);

  const conflict = await l.signed('POST', '/v1/grants', grant(act, 'u-carol', 'same-order', 101));
  t.equal(conflict.statusCode, 409);
  t.equal(conflict.json.code, 'ORDER_CONFLICT', 'a different grant under a used order number is refused');
});

t.test('a budget of 100 with 1,000 concurrent grants: exactly 100 succeed', async (t) => {
  const l = await startTestLedger(t, { crediting: false });
  const act = await l.activity({ budget: 100, maxSingleGrant: 1 });
  const answers = await Promise.all(Array.from({ length: 1000 }, (_, i) => l.signed('POST', '/v1/grants', grant(act, `u-${i % 97}`, `o-${i}`, 1))));
  const ok = answers.filter((a) => a.statusCode === 201);
  const refused = answers.filter((a) => a.statusCode === 409);
  t.equal(ok.length, 100, 'exactly 100 grants accepted');
  t.equal(refused.length, 900, 'the rest refused');
  t.ok(refused.every((a) => a.json.code === 'BUDGET_EXHAUSTED'));
  await l.waitFor('all 100 projected', async () => {
    const { rows } = await l.rt.pool.query('select count(*)::int as n from tokens where activity_id = $1', [act]);
    return rows[0].n === 100;
  });
  const { rows } = await l.rt.pool.query('select balance from account_balances where account = $1', [account.activityBudget(act)]);
  t.equal(rows[0].balance, 0, 'budget fully spent, never below zero');
});
