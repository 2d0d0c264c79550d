import t from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import { signUserToken } from '../api/auth/user-jwt.ts';
import { startTestLedger, type TestLedger } from './helpers/ledger.ts';

const grantTo = (l: TestLedger, act: string, userId: string, orderNo: string, amount: number, sceneId = 'rain-1') =>
  l.signed('POST', '/v1/grants', { activityId: act, sceneId, orderNo, userId, amount, currency: 'CNY' });

async function pageAll(l: TestLedger, userId: string, limit: number, between?: () => Promise<void>) {
  const seen: any[] = [];
  let cursor: string | null = null;
  do {
    const url: string = `/v1/wallets/${userId}/statement?limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`;
    const res = await l.asUser(userId, 'GET', url);
    if (res.statusCode !== 200) throw new Error(JSON.stringify(res.json));
    seen.push(...res.json.entries);
    cursor = res.json.nextCursor;
    if (between) await between();
  } while (cursor);
  return seen;
}

t.test('statement paging stays exact while new entries arrive', async (t) => {
  const l = await startTestLedger(t);
  const act = await l.activity({ budget: 1_000_000 });
  for (let i = 0; i < 60; i++) await grantTo(l, act, 'u-page', `p-${i}`, i + 1);
  await l.waitFor('60 projected', async () => (await l.rt.pool.query(`select count(*)::int as n from tokens where user_id = 'u-page'`)).rows[0].n === 60);
  const before = new Set((await l.rt.pool.query(`select token_id::text as id from tokens where user_id = 'u-page'`)).rows.map((r) => r.id));

  // Between every page, more rewards land for the same user.
  let extra = 0;
  const seen = await pageAll(l, 'u-page', 7, async () => {
    await Promise.all(Array.from({ length: 4 }, () => grantTo(l, act, 'u-page', `late-${extra++}`, 1)));
    await new Promise((r) => setTimeout(r, 100));
  });
  const ids = seen.map((e) => e.id);
  t.equal(new Set(ids).size, ids.length, 'no entry appears twice');
  t.ok([...before].every((id) => ids.includes(id)), 'every entry that existed when paging began was seen');
  t.equal(seen.filter((e) => e.kind === 'reward' && before.has(e.id)).length, 60);
  const amountsOfOriginals = seen.filter((e) => before.has(e.id)).map((e) => e.amount);
  t.same(amountsOfOriginals, Array.from({ length: 60 }, (_, i) => 60 - i), 'newest first');
  t.ok(extra > 0, `${extra} entries arrived during paging`);
});

t.test('statement text, rewards per campaign and balance', async (t) => {
  const l = await startTestLedger(t);
  const act = await l.activity({ budget: 10_000 });
  const scene = await l.admin('PUT', `/v1/admin/activities/${act}/scenes/rain-1`, { statementText: 'Spring Festival red-packet rain' });
  t.equal(scene.statusCode, 200);
  t.equal((await l.admin('PUT', '/v1/admin/activities/no-such/scenes/x', { statementText: 'x' })).statusCode, 404);
  await grantTo(l, act, 'u-text', 'tx-1', 88, 'rain-1');
  await grantTo(l, act, 'u-text', 'tx-2', 66, 'unconfigured');
  await l.waitFor('projected', async () => (await l.asUser('u-text', 'GET', '/v1/wallets/u-text')).json.pending === 154);
  const st = await l.asUser('u-text', 'GET', '/v1/wallets/u-text/statement');
  t.same(st.json.entries.map((e: any) => [e.amount, e.status, e.text]), [
    [66, 'pending', `Test ${act}`],
    [88, 'pending', 'Spring Festival red-packet rain'],
  ], 'pending rewards are in the statement, with their scene text (or the activity name)');
  const yes = await l.asUser('u-text', 'GET', `/v1/wallets/u-text/rewards/${act}`);
  t.same(yes.json, { userId: 'u-text', activityId: act, received: true, count: 2, amount: 154 });
  const no = await l.asUser('u-text', 'GET', '/v1/wallets/u-text/rewards/another-campaign');
  t.same(no.json, { userId: 'u-text', activityId: 'another-campaign', received: false, count: 0, amount: 0 });
});

t.test('users reach only their own wallet', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  const routes: ['GET' | 'POST', string, unknown?][] = [
    ['GET', '/v1/wallets/u-victim'],
    ['GET', '/v1/wallets/u-victim/statement'],
    ['GET', '/v1/wallets/u-victim/rewards/act'],
    ['GET', '/v1/wallets/u-victim/withdrawals/00000000-0000-8000-8000-000000000000'],
    ['POST', '/v1/wallets/u-victim/withdrawals', { amount: 1, currency: 'CNY' }],
  ];
  for (const [method, url, body] of routes) {
    const other = await l.asUser('u-thief', method, url, body, { 'idempotency-key': 'steal-0001' });
    t.same([other.statusCode, other.json.code], [403, 'NOT_YOUR_WALLET'], `${method} ${url} with another user's token`);
    const none = await l.app.inject({ method, url, payload: body as object | undefined });
    t.same([none.statusCode, JSON.parse(none.body).code], [401, 'USER_AUTH_REQUIRED'], `${method} ${url} without a token`);
  }
  const good = l.userToken('u-victim');
  const [h, p, s] = good.split('.');
  const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
  const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: 'u-thief' })).toString('base64url')}.${s}`;
  const stranger = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const cases: [string, string][] = [
    ['a token whose subject was altered', forged],
    ['an expired token', signUserToken(stranger, 'test-login', 'u-thief', { nowMs: Date.now() - 7_200_000, ttlSec: 60 })],
    ['a token signed with another key under our key id', signUserToken(stranger, 'test-login', 'u-thief')],
    ['a token with an unknown key id', signUserToken(stranger, 'other-kid', 'u-thief')],
    ['a token for another audience', signUserToken(stranger, 'test-login', 'u-thief', { aud: 'someone-else' })],
    ['not a JWT at all', 'hello'],
  ];
  const expected = ['BAD_USER_SIGNATURE', 'BAD_USER_SIGNATURE', 'BAD_USER_SIGNATURE', 'UNKNOWN_USER_KEY', 'BAD_USER_SIGNATURE', 'MALFORMED_USER_TOKEN'];
  for (const [i, [what, token]] of cases.entries()) {
    const res = await l.app.inject({ method: 'GET', url: '/v1/wallets/u-thief', headers: { authorization: `Bearer ${token}` } });
    t.same([res.statusCode, JSON.parse(res.body).code], [401, expected[i]], what);
  }
});

t.test('bad wallet input gets a clear 4xx and writes nothing', async (t) => {
  const l = await startTestLedger(t);
  const act = await l.activity({ budget: 10_000 });
  await grantTo(l, act, 'u-bad', 'b-1', 500);
  await l.waitFor('projected', async () => (await l.asUser('u-bad', 'GET', '/v1/wallets/u-bad')).json.pending === 500);
  const admin = l.rt.kafka.admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());
  const ends = async () => (await admin.fetchTopicOffsets(l.rt.topics.wallet)).map((o) => o.high).join(',');
  const walletEnd = await ends();

  const key = { 'idempotency-key': 'bad-00001' };
  const w = (body: unknown, headers: Record<string, string> = key) => l.asUser('u-bad', 'POST', '/v1/wallets/u-bad/withdrawals', body, headers);
  const cases: [string, Promise<{ statusCode: number; json: any }>, number, string][] = [
    ['no idempotency key', w({ amount: 100, currency: 'CNY' }, {}), 400, 'MISSING_IDEMPOTENCY_KEY'],
    ['a too-short idempotency key', w({ amount: 100, currency: 'CNY' }, { 'idempotency-key': 'x' }), 400, 'MISSING_IDEMPOTENCY_KEY'],
    ['amount as a string', w({ amount: '100', currency: 'CNY' }), 400, 'INVALID_AMOUNT'],
    ['a fractional amount', w({ amount: 1.5, currency: 'CNY' }), 400, 'INVALID_AMOUNT'],
    ['a zero amount', w({ amount: 0, currency: 'CNY' }), 400, 'INVALID_AMOUNT'],
    ['a negative amount', w({ amount: -5, currency: 'CNY' }), 400, 'INVALID_AMOUNT'],
    ['an unknown field', w({ amount: 100, currency: 'CNY', to: 'elsewhere' }), 400, 'UNKNOWN_FIELD'],
    ['a missing currency', w({ amount: 100 }), 400, 'MISSING_FIELD'],
    ['another currency', w({ amount: 100, currency: 'USD' }), 422, 'CURRENCY_MISMATCH'],
    ['more than the balance', w({ amount: 501, currency: 'CNY' }), 409, 'INSUFFICIENT_FUNDS'],
    ['a statement cursor we never gave out', l.asUser('u-bad', 'GET', '/v1/wallets/u-bad/statement?cursor=bm9wZQ'), 400, 'INVALID_CURSOR'],
    ['a page size of 0', l.asUser('u-bad', 'GET', '/v1/wallets/u-bad/statement?limit=0'), 400, 'INVALID_FIELD'],
    ['a page size of 101', l.asUser('u-bad', 'GET', '/v1/wallets/u-bad/statement?limit=101'), 400, 'INVALID_FIELD'],
    ['an unknown query parameter', l.asUser('u-bad', 'GET', '/v1/wallets/u-bad/statement?all=1'), 400, 'UNKNOWN_FIELD'],
    ['a withdrawal id that is not one', l.asUser('u-bad', 'GET', '/v1/wallets/u-bad/withdrawals/123'), 400, 'INVALID_FIELD'],
    ['an unknown withdrawal', l.asUser('u-bad', 'GET', '/v1/wallets/u-bad/withdrawals/00000000-0000-8000-8000-000000000000'), 404, 'UNKNOWN_WITHDRAWAL'],
  ];
  for (const [what, pending, status, code] of cases) {
    const res = await pending;
    t.same([res.statusCode, res.json.code], [status, code], what);
    t.ok(typeof res.json.message === 'string' && res.json.message.length > 10, `${what}: a message a person can read`);
  }
  const malformed = await l.app.inject({
    method: 'POST', url: '/v1/wallets/u-bad/withdrawals', payload: '{"amount": 1',
    headers: { authorization: `Bearer ${l.userToken('u-bad')}`, 'content-type': 'application/json', ...key },
  });
  t.same([malformed.statusCode, JSON.parse(malformed.body).code], [400, 'MALFORMED_JSON']);
  const badSettings = await l.admin('PUT', '/v1/admin/wallet-settings', { withdrawalRolloutBp: 10_001 });
  t.same([badSettings.statusCode, badSettings.json.code], [400, 'INVALID_FIELD']);

  t.equal((await l.rt.pool.query('select count(*)::int as n from withdrawal_requests')).rows[0].n, 0, 'no withdrawal request was recorded');
  t.equal(await ends(), walletEnd, 'nothing was produced to the wallet topic');
});

t.test('balance reads that arrive together are answered correctly from one query, and the cache is bounded by its age', async (t) => {
  const l = await startTestLedger(t);
  const act = await l.activity({ budget: 1_000_000 });
  // Include a user id spelled like an account id: the batched query must not confuse them.
  const users = [...Array.from({ length: 30 }, (_, i) => `u-batch-${i}`), 'user:u-batch-1:available'];
  await Promise.all(users.map((u, i) => grantTo(l, act, u, `batch-${i}`, i + 1)));
  await l.waitFor('projected', async () => (await l.rt.pool.query(`select count(*)::int as n from tokens`)).rows[0].n === users.length);
  const { WalletReader } = await import('../api/wallets/reader.ts');
  const reader = new WalletReader(l.rt.pool, 60_000);
  const all = await Promise.all(users.map((u) => reader.balance(u, 'CNY')));
  t.same(all.map((b) => [b.userId, b.pending, b.cumulativeIncome, b.available]), users.map((u, i) => [u, i + 1, i + 1, 0]), 'each concurrent read gets its own user\'s balance');

  await grantTo(l, act, 'u-batch-0', 'batch-more', 100);
  await l.waitFor('projected', async () => (await l.rt.pool.query(`select count(*)::int as n from tokens`)).rows[0].n === users.length + 1);
  t.equal((await reader.balance('u-batch-0', 'CNY')).pending, 1, 'within its age, the cached balance is served');
  reader.forgetBalance('u-batch-0');
  t.equal((await reader.balance('u-batch-0', 'CNY')).pending, 101, 'once forgotten (as after a withdrawal), the projection is read again');
  const uncached = new WalletReader(l.rt.pool, 0);
  t.equal((await uncached.balance('u-batch-0', 'CNY')).pending, 101, 'with the cache off, every read goes to the projection');
});
