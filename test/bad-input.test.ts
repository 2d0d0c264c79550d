import t from 'tap';
import { startTestLedger } from './helpers/ledger.ts';
import { signRequest } from '../api/auth/upstream-signature.ts';
import { BODY_LIMIT } from '../api/app.ts';
import { BudgetStore } from '../infra/budget.ts';

t.test('bad grant input gets a clear 4xx and writes nothing', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  const act = await l.activity({ budget: 5_000, maxSingleGrant: 1_000 });
  const good = { activityId: act, sceneId: 's1', orderNo: 'o-1', userId: 'u1', amount: 10, currency: 'CNY' };
  const budget = new BudgetStore(l.rt.pool);
  const admin = l.rt.kafka.admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());
  const produced = async () => (await admin.fetchTopicOffsets(l.rt.topics.wallet)).reduce((s, p) => s + Number(p.high), 0);
  const before = { produced: await produced(), budget: await budget.snapshot(act) };

  const raw = async (payload: string, contentType = 'application/json') => {
    const res = await l.app.inject({
      method: 'POST', url: '/v1/grants', payload,
      headers: { 'content-type': contentType, ...signRequest(l.upstreamKey, 'POST', '/v1/grants', payload) },
    });
    return { statusCode: res.statusCode, json: JSON.parse(res.body) };
  };

  const cases: [string, string, number, string, string?][] = [
    ['malformed JSON', '{"activityId": ', 400, 'MALFORMED_JSON'],
    ['empty body', '', 400, 'MALFORMED_JSON'],
    ['a JSON array', '[]', 400, 'INVALID_FIELD'],
    ['missing field', JSON.stringify({ ...good, userId: undefined }), 400, 'MISSING_FIELD', 'userId'],
    ['unknown field', JSON.stringify({ ...good, bonus: 1 }), 400, 'UNKNOWN_FIELD', 'bonus'],
    ['zero amount', JSON.stringify({ ...good, amount: 0 }), 400, 'INVALID_AMOUNT'],
    ['negative amount', JSON.stringify({ ...good, amount: -5 }), 400, 'INVALID_AMOUNT'],
    ['fractional amount', JSON.stringify({ ...good, amount: 1.5 }), 400, 'INVALID_AMOUNT'],
    ['amount as string', JSON.stringify({ ...good, amount: '10' }), 400, 'INVALID_AMOUNT'],
    ['amount beyond safe integers', '{"activityId":"' + act + '","sceneId":"s1","orderNo":"o-9","userId":"u1","amount":9007199254740993,"currency":"CNY"}', 400, 'INVALID_AMOUNT'],
    ['amount over the single-grant cap', JSON.stringify({ ...good, amount: 1_001 }), 422, 'AMOUNT_OVER_CAP'],
    ['wrong currency', JSON.stringify({ ...good, currency: 'USD' }), 422, 'CURRENCY_MISMATCH'],
    ['bad currency format', JSON.stringify({ ...good, currency: 'yuan' }), 400, 'INVALID_FIELD'],
    ['unknown activity', JSON.stringify({ ...good, activityId: 'no-such-activity' }), 404, 'UNKNOWN_ACTIVITY'],
    ['id with forbidden characters', JSON.stringify({ ...good, userId: 'u 1; drop table' }), 400, 'INVALID_FIELD'],
    ['oversized body', JSON.stringify({ ...good, sceneId: 'x'.repeat(BODY_LIMIT) }), 413, 'BODY_TOO_LARGE'],
  ];
  for (const [name, payload, status, code, mention] of cases) {
    const res = await raw(payload);
    t.equal(res.statusCode, status, `${name}: status`);
    t.equal(res.json.code, code, `${name}: code`);
    t.type(res.json.message, 'string', `${name}: has a message`);
    t.ok(res.json.message.length > 10, `${name}: the message says something`);
    if (mention) t.match(res.json.message, mention, `${name}: the message names the field`);
  }
  const wrongType = await raw('activityId=x', 'application/x-www-form-urlencoded');
  t.equal(wrongType.statusCode, 415);
  t.equal(wrongType.json.code, 'UNSUPPORTED_MEDIA_TYPE');

  t.equal(await produced(), before.produced, 'nothing was produced to Kafka');
  t.same(await budget.snapshot(act), before.budget, 'no budget was reserved');
  const orders = await l.rt.redis.keys(`${l.ns}:*:order:*`);
  t.same(orders, [], 'no order number was consumed');

  const ok = await raw(JSON.stringify(good));
  t.equal(ok.statusCode, 201, 'a good request still works afterwards');
});

t.test('upstream requests must be signed, fresh and used once', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  const act = await l.activity({ budget: 5_000 });
  const body = JSON.stringify({ activityId: act, sceneId: 's1', orderNo: 'o-auth', userId: 'u1', amount: 10, currency: 'CNY' });
  const send = async (headers: Record<string, string>, payload = body) => {
    const res = await l.app.inject({ method: 'POST', url: '/v1/grants', payload, headers: { 'content-type': 'application/json', ...headers } });
    return { statusCode: res.statusCode, code: JSON.parse(res.body).code as string };
  };
  t.same(await send({}), { statusCode: 401, code: 'UNSIGNED_REQUEST' });
  t.same(await send(signRequest({ id: 'stranger', secret: 'x' }, 'POST', '/v1/grants', body)), { statusCode: 401, code: 'UNKNOWN_KEY' });
  t.same(await send(signRequest({ ...l.upstreamKey, secret: 'wrong' }, 'POST', '/v1/grants', body)), { statusCode: 401, code: 'BAD_SIGNATURE' });
  t.same(await send(signRequest(l.upstreamKey, 'POST', '/v1/grants', body), body.replace('"amount":10', '"amount":99')), { statusCode: 401, code: 'BAD_SIGNATURE' }, 'an altered body fails');
  t.same(await send(signRequest(l.upstreamKey, 'POST', '/v1/grants', body, { now: Date.now() - 5 * 60_000 })), { statusCode: 401, code: 'STALE_REQUEST' });
  const once = signRequest(l.upstreamKey, 'POST', '/v1/grants', body);
  t.same(await send(once), { statusCode: 201, code: undefined }, 'a correctly signed request is accepted');
  t.same(await send(once), { statusCode: 401, code: 'REPLAYED_REQUEST' }, 'the identical signed request replayed is refused');
});

t.test('admin routes need the admin token', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  const res = await l.app.inject({ method: 'PUT', url: '/v1/admin/activities/a1', payload: { name: 'x', currency: 'CNY', maxSingleGrant: 1 } });
  t.equal(res.statusCode, 401);
  t.equal(JSON.parse(res.body).code, 'ADMIN_AUTH_REQUIRED');
  const bad = await l.admin('PUT', '/v1/admin/activities/a1', { name: 'x', currency: 'CNY', maxSingleGrant: 0 });
  t.equal(bad.statusCode, 400);
  t.equal(bad.json.code, 'INVALID_FIELD');
  const notFound = await l.app.inject({ method: 'GET', url: '/v1/nowhere' });
  t.equal(notFound.statusCode, 404);
  t.equal(JSON.parse(notFound.body).code, 'ROUTE_NOT_FOUND');
});

t.test('a funding id identifies one funding: another amount under it is refused', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  const act = await l.activity({ budget: 1_000 }); // funding id "initial"
  const budget = new BudgetStore(l.rt.pool);
  const conflict = await l.admin('POST', `/v1/admin/activities/${act}/fundings`, { fundingId: 'initial', amount: 1_000_000, currency: 'CNY' });
  t.equal(conflict.statusCode, 409);
  t.equal(conflict.json.code, 'FUNDING_CONFLICT');
  const retry = await l.admin('POST', `/v1/admin/activities/${act}/fundings`, { fundingId: 'initial', amount: 1_000, currency: 'CNY' });
  t.equal(retry.statusCode, 200, 'the same funding retried is an idempotent replay');
  t.equal(retry.json.added, false);
  t.same(await budget.snapshot(act), { funded: 1_000, reserved: 0 }, 'the spendable budget is the first funding, once');
  const admin = l.rt.kafka.admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());
  const events = async () => (await admin.fetchTopicOffsets(l.rt.topics.budget)).reduce((s, p) => s + Number(p.high), 0);
  await l.waitFor('the funding produced', async () => (await events()) >= 1);
  await new Promise((r) => setTimeout(r, 300)); // the relay's poll interval, for a second copy to show up if there were one
  t.equal(await events(), 1, 'one BudgetFunded: neither the conflicting request nor the identical retry produced anything');
});
