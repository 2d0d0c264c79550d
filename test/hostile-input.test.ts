import t from 'tap';
import { randomUUID } from 'node:crypto';
import { startTestLedger, type TestLedger } from './helpers/ledger.ts';
import { campaign, iso, manualClock, putConfig, scene } from './helpers/campaigns.ts';
import { grantPack, spendPack } from './helpers/coupons.ts';
import { ledgerActivityOf } from '../domain/campaigns.ts';
import { signUserToken } from '../api/auth/user-jwt.ts';
import { generateSigningKeyPem, publicKeyOf } from '../domain/tokens.ts';
import { signRequest } from '../api/auth/upstream-signature.ts';

// The classes of input that answered 500 INTERNAL, and the rules that were wrong (issue 18).

const act = () => `hostile-${randomUUID().slice(0, 8)}`;

async function adminRaw(l: TestLedger, method: 'GET' | 'PUT' | 'POST', url: string, payload?: string, contentType = 'application/json') {
  const res = await l.app.inject({
    method, url, ...(payload === undefined ? {} : { payload }),
    headers: { authorization: `Bearer ${l.secrets.adminToken}`, ...(payload === undefined ? {} : { 'content-type': contentType }) },
  });
  return { statusCode: res.statusCode, json: JSON.parse(res.body) };
}

async function rowCount(l: TestLedger, table: string): Promise<number> {
  const { rows } = await l.rt.pool.query(`select count(*)::int as n from ${table}`);
  return rows[0].n;
}

t.test('NUL, control characters and lone surrogates are a 400 INVALID_TEXT wherever they enter, and nothing is written', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  const A = act();
  await putConfig(l, campaign(A, [scene({ prizes: [{ prizeId: 'p', name: 'p', weight: 1, quota: 1, itemId: 'x' }] })]));
  const before = { activities: await rowCount(l, 'activities'), configs: await rowCount(l, 'campaign_configs'), scenes: await rowCount(l, 'scenes'), packets: await rowCount(l, 'packet_requests') };

  const good = campaign(A, [scene({ prizes: [{ prizeId: 'p', name: 'p', weight: 1, quota: 1, itemId: 'x' }] })]);
  const cases: [string, () => Promise<{ statusCode: number; json: any }>, string][] = [
    ['a packet greeting with NUL', () => l.asUser('u-1', 'POST', '/v1/packets', { amount: 10, currency: 'CNY', count: 1, greeting: 'hi\u0000' }, { 'idempotency-key': 'idem-key-1' }), '/greeting'],
    ['a packet greeting with a lone surrogate', () => l.asUser('u-1', 'POST', '/v1/packets', { amount: 10, currency: 'CNY', count: 1, greeting: 'hi\ud83d' }, { 'idempotency-key': 'idem-key-2' }), '/greeting'],
    ['an activity name with NUL', () => l.admin('PUT', `/v1/admin/activities/${act()}`, { name: 'a\u0000b', currency: 'CNY', maxSingleGrant: 1 }), '/name'],
    ['an activity name with a bell', () => l.admin('PUT', `/v1/admin/activities/${act()}`, { name: 'a\u0007b', currency: 'CNY', maxSingleGrant: 1 }), '/name'],
    ['a gift-pack name with NUL', () => l.admin('PUT', '/v1/admin/gift-packs/p1', { name: '\u0000', slots: [{ slot: 's', ios: 'i', android: 'a' }] }), '/name'],
    ['a statement text with NUL', () => l.admin('PUT', `/v1/admin/activities/${ledgerActivityOf(A, 'formal')}/scenes/shake`, { statementText: 'x\u0000' }), '/statementText'],
    ['a campaign name with NUL', () => l.admin('PUT', `/v1/admin/campaigns/${A}/config`, { ...good, name: 'n\u0000' }), '/name'],
    ['a prize name with a lone surrogate', () => l.admin('POST', `/v1/admin/campaigns/${A}/config/validate`, { ...good, children: [{ ...good.children[0]!, scenes: [scene({ prizes: [{ prizeId: 'p', name: '\udc00', weight: 1, quota: 1, itemId: 'x' }] })] }] }), '/children/0/scenes/0/pool/prizes/0/name'],
    ['an unknown field whose name has NUL', () => l.admin('PUT', `/v1/admin/campaigns/${A}/config`, { ...good, ['x\u0000']: 1 }), '/x?'],
    ['the config note with NUL', () => adminRaw(l, 'PUT', `/v1/admin/campaigns/${A}/config?note=a%00b`, JSON.stringify(good)), '/note'],
  ];
  for (const [name, send, path] of cases) {
    const res = await send();
    t.equal(res.statusCode, 400, `${name}: 400 (${JSON.stringify(res.json)})`);
    t.equal(res.json.code, 'INVALID_TEXT', `${name}: INVALID_TEXT`);
    t.same(res.json.details?.[0]?.path, path, `${name}: the path names where`);
    t.ok(typeof res.json.message === 'string' && res.json.message.includes(path), `${name}: the message says where`);
  }
  t.same(
    { activities: await rowCount(l, 'activities'), configs: await rowCount(l, 'campaign_configs'), scenes: await rowCount(l, 'scenes'), packets: await rowCount(l, 'packet_requests') },
    before, 'nothing was written',
  );

  // Tab and line breaks are text; so are characters beyond the BMP, written as surrogate pairs.
  const fine = await l.admin('PUT', `/v1/admin/activities/${act()}`, { name: 'Spring\tFestival\n红包 🧧', currency: 'CNY', maxSingleGrant: 1 });
  t.equal(fine.statusCode, 200, JSON.stringify(fine.json));
});

t.test('a validly signed user token whose subject is not a user id is refused, not stored', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  // A token signed by a key the ledger trusts: only its subject is hostile.
  const pem = generateSigningKeyPem();
  (l.secrets.userTokenKeys as Map<string, ReturnType<typeof publicKeyOf>>).set('hostile-login', publicKeyOf(pem));
  for (const sub of ['u\u0000x', 'u\ud800', 'x'.repeat(129), 'u 1', '']) {
    const token = signUserToken(pem, 'hostile-login', sub);
    const res = await l.app.inject({
      method: 'POST', url: '/v1/packets', payload: { amount: 10, currency: 'CNY', count: 1 },
      headers: { authorization: `Bearer ${token}`, 'idempotency-key': 'idem-key-sub' },
    });
    t.equal(res.statusCode, 401, `sub ${JSON.stringify(sub)}: 401`);
    t.equal(JSON.parse(res.body).code, 'MALFORMED_USER_TOKEN');
  }
  t.equal(await rowCount(l, 'packet_requests'), 0);
});

t.test('integers past their column, and uuids Postgres cannot read, are a 400', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  const A = act();
  await putConfig(l, campaign(A, [scene({ prizes: [{ prizeId: 'p', name: 'p', weight: 1, quota: 1, itemId: 'x' }] })]));
  for (const toVersion of ['2147483648', '9007199254740992', '1e308', '1.5', '-1', '0']) {
    const res = await adminRaw(l, 'POST', `/v1/admin/campaigns/${A}/config/rollback`, `{"toVersion": ${toVersion}}`);
    t.equal(res.statusCode, 400, `toVersion ${toVersion}: 400 (${JSON.stringify(res.json)})`);
    t.equal(res.json.code, 'INVALID_FIELD');
    t.match(res.json.message, '/toVersion');
  }
  const missing = await adminRaw(l, 'POST', `/v1/admin/campaigns/${A}/config/rollback`, '{"toVersion": 2147483647}');
  t.equal(missing.statusCode, 404, 'the largest version a column holds is merely unknown');
  t.equal(missing.json.code, 'UNKNOWN_VERSION');
  t.equal(await rowCount(l, 'campaign_configs'), 1);

  for (const runId of ['urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8', '{6ba7b810-9dad-11d1-80b4-00c04fd430c8}', '6ba7b8109dad11d180b400c04fd430c8', 'not-a-uuid']) {
    const res = await adminRaw(l, 'GET', `/v1/admin/reconciliation/reports/${encodeURIComponent(runId)}`);
    t.equal(res.statusCode, 400, `report id ${runId}: 400`);
    t.equal(res.json.code, 'INVALID_FIELD');
  }
  const unknown = await adminRaw(l, 'GET', `/v1/admin/reconciliation/reports/${randomUUID()}`);
  t.equal(unknown.statusCode, 404);
  t.equal(unknown.json.code, 'UNKNOWN_REPORT');
});

t.test('query strings are read as text: ?limit=5 is the number 5', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  const ok = await adminRaw(l, 'GET', '/v1/admin/reconciliation/reports?limit=5');
  t.equal(ok.statusCode, 200, JSON.stringify(ok.json));
  t.same(ok.json, { reports: [] });
  t.equal((await adminRaw(l, 'GET', '/v1/admin/reconciliation/reports?limit=5&kind=hourly')).statusCode, 200);
  for (const limit of ['0', '501', '2.5', 'five', '1e400', '']) {
    const res = await adminRaw(l, 'GET', `/v1/admin/reconciliation/reports?limit=${limit}`);
    t.equal(res.statusCode, 400, `limit=${limit}: 400`);
    t.equal(res.json.code, 'INVALID_FIELD');
  }
});

t.test('the config routes name their own body limit; a body that is not JSON is 415', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  const A = act();
  const huge = JSON.stringify({ activityId: A, name: 'x'.repeat(4 * 1024 * 1024) });
  for (const url of [`/v1/admin/campaigns/${A}/config`, `/v1/admin/campaigns/${A}/config/validate`]) {
    const res = await adminRaw(l, url.endsWith('validate') ? 'POST' : 'PUT', url, huge);
    t.equal(res.statusCode, 413);
    t.equal(res.json.code, 'BODY_TOO_LARGE');
    t.match(res.json.message, '4 MiB', 'the limit named is the route\'s own');
    t.equal(res.json.details.limit, 4 * 1024 * 1024);
  }
  const small = await l.admin('PUT', `/v1/admin/activities/${act()}`, { name: 'x'.repeat(17 * 1024), currency: 'CNY', maxSingleGrant: 1 });
  t.equal(small.statusCode, 413);
  t.match(small.json.message, '16 KiB');

  const text = await adminRaw(l, 'PUT', `/v1/admin/campaigns/${A}/config`, '{"activityId": "x"}', 'text/plain');
  t.equal(text.statusCode, 415);
  t.equal(text.json.code, 'UNSUPPORTED_MEDIA_TYPE');
  // A signed upstream request with a text body: 415 (what is wrong), not 401 (its signature is fine).
  const body = JSON.stringify({ activityId: 'a', sceneId: 's', orderNo: 'o', userId: 'u', amount: 1, currency: 'CNY' });
  const signed = await l.app.inject({ method: 'POST', url: '/v1/grants', payload: body, headers: { 'content-type': 'text/plain', ...signRequest(l.upstreamKey, 'POST', '/v1/grants', body) } });
  t.equal(signed.statusCode, 415);
  t.equal(JSON.parse(signed.body).code, 'UNSUPPORTED_MEDIA_TYPE');
});

t.test('a campaign\'s budgets are spent only by its draws', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  const A = act();
  await spendPack(l);
  await putConfig(l, campaign(A, [
    scene({ sceneId: 'cash', awardType: 'cash', prizes: [{ prizeId: 'c', name: 'c', weight: 1, quota: 5, amount: 88 }] }),
    scene({ sceneId: 'packs', awardType: 'coupon', prizes: [{ prizeId: 'k', name: 'k', weight: 1, quota: 5, packId: 'spring-pack' }] }),
  ]));
  const child = ledgerActivityOf(A, 'formal');
  t.equal((await l.admin('POST', `/v1/admin/activities/${child}/fundings`, { fundingId: 'f1', amount: 1_000, currency: 'CNY' })).statusCode, 201, 'funded as any activity');
  const budgetOf = async () => (await l.rt.pool.query('select coalesce(sum(reserved), 0)::int as r from budgets where activity_id = $1', [child]).catch(() => ({ rows: [{ r: -1 }] }))).rows[0].r;
  const reservedBefore = await budgetOf();

  const direct = await l.signed('POST', '/v1/grants', { activityId: child, sceneId: 'cash', orderNo: 'o-1', userId: 'u-x', amount: 88, currency: 'CNY' });
  t.equal(direct.statusCode, 422, JSON.stringify(direct.json));
  t.equal(direct.json.code, 'ACTIVITY_RESERVED');
  t.match(direct.json.message, A);
  const pack = await grantPack(l, { orderNo: 'o-2', userId: 'u-x', activityId: child });
  t.equal(pack.statusCode, 422, JSON.stringify(pack.json));
  t.equal(pack.json.code, 'ACTIVITY_RESERVED');
  t.equal(await budgetOf(), reservedBefore, 'no budget was reserved');
  t.equal(await rowCount(l, 'pack_states'), 0, 'no pack was granted');

  const terms = await l.admin('PUT', `/v1/admin/activities/${child}`, { name: 'mine now', currency: 'CNY', maxSingleGrant: 1_000_000 });
  t.equal(terms.statusCode, 409, 'its terms follow the configuration');
  t.equal(terms.json.code, 'ACTIVITY_RESERVED');

  // A plain activity is not taken over by a campaign that happens to produce its id.
  const B = act();
  t.equal((await l.admin('PUT', `/v1/admin/activities/${ledgerActivityOf(B, 'formal')}`, { name: 'plain', currency: 'CNY', maxSingleGrant: 5 })).statusCode, 200);
  const adopt = await l.admin('PUT', `/v1/admin/campaigns/${B}/config`, campaign(B, [scene({ prizes: [{ prizeId: 'p', name: 'p', weight: 1, quota: 1, itemId: 'x' }] })]));
  t.equal(adopt.statusCode, 422);
  t.equal(adopt.json.code, 'INVALID_CONFIG');
  t.same(adopt.json.details.errors.map((e: { path: string }) => e.path), ['/children/0/childId']);
  t.equal((await l.rt.pool.query('select count(*)::int as n from campaign_configs where activity_id = $1', [B])).rows[0].n, 0, 'the refused configuration was not stored');

  // Plain activities are granted from as before.
  const plain = await l.activity({ budget: 100 });
  t.equal((await l.signed('POST', '/v1/grants', { activityId: plain, sceneId: 's', orderNo: 'o-3', userId: 'u-x', amount: 10, currency: 'CNY' })).statusCode, 201);
});

t.test('campaign dates: offsets are read as written, what cannot be read is refused with its path', async (t) => {
  const T0 = Date.parse('2027-02-10T12:00:00Z'); // 20:00 in Beijing
  const clock = manualClock(T0);
  const l = await startTestLedger(t, { projector: false, app: { drawClock: clock.now } });
  const A = act();
  const config = campaign(A, [scene({ prizes: [{ prizeId: 'p', name: 'p', weight: 1, quota: 100, itemId: 'x' }] })]);
  // 20:00 to 22:00 Beijing time, written three ways; the scene opens at 21:00.
  config.children[0]!.startsAt = '2027-02-10T20:00:00+08:00';
  config.children[0]!.endsAt = '2027-02-10T22:00:00+08';
  config.children[0]!.scenes[0]!.startsAt = '2027-02-10T21:00:00+0800';
  await putConfig(l, config);
  const drawAt = async (at: number, drawId: string) => {
    clock.set(at);
    return l.signed('POST', '/v1/draws', { activityId: A, sceneId: 'shake', userId: 'u-1', drawId });
  };
  const early = await drawAt(T0 + 30 * 60_000, 'd-1');
  t.equal(early.statusCode, 409);
  t.equal(early.json.code, 'OUTSIDE_PARTICIPATION_WINDOW', 'the scene (+0800) opens at 21:00 Beijing, not before');
  t.match(early.json.message, '2027-02-10T13:00:00.000Z');
  t.equal((await drawAt(T0 + 90 * 60_000, 'd-2')).statusCode, 201, 'live between 21:00 and 22:00 Beijing');
  const late = await drawAt(T0 + 2 * 3_600_000, 'd-3');
  t.equal(late.statusCode, 409, 'a child ending +08 ends at 22:00 Beijing');
  t.equal(late.json.code, 'ACTIVITY_NOT_LIVE');

  const leap = structuredClone(config);
  leap.children[0]!.endsAt = '2027-02-10T23:59:60+08:00';
  leap.children[0]!.scenes[0]!.endsAt = '2027-02-30T00:00:00Z';
  const refused = await l.admin('POST', `/v1/admin/campaigns/${A}/config/validate`, leap);
  t.equal(refused.statusCode, 422);
  t.same(refused.json.details.errors, [
    { path: '/children/0/endsAt', message: 'must be a date-time without a leap second (:60); write :59 or the next minute' },
    { path: '/children/0/scenes/0/endsAt', message: 'must be a date-time: 2027-02-30 is not a day of the calendar' },
  ]);
});

t.test('amounts stay within what an Avro long, a bigint and a JS number all hold, the ledger\'s total too', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  const a = await l.activity({ budget: 0 });
  const b = await l.activity({ budget: 0 });
  // 2^53 - 1 is a safe integer, but not an Avro long to the codec: accepted, it could never be produced.
  const over = await adminRaw(l, 'POST', `/v1/admin/activities/${a}/fundings`, '{"fundingId": "f0", "amount": 9007199254740991, "currency": "CNY"}');
  t.equal(over.statusCode, 400);
  t.equal(over.json.code, 'INVALID_AMOUNT');
  const most = 2 ** 53 - 2;
  t.equal((await l.admin('POST', `/v1/admin/activities/${a}/fundings`, { fundingId: 'f1', amount: most - 10, currency: 'CNY' })).statusCode, 201);
  // company:cost carries every activity's funding: the ledger's total may not pass it either.
  const second = await l.admin('POST', `/v1/admin/activities/${b}/fundings`, { fundingId: 'f2', amount: 11, currency: 'CNY' });
  t.equal(second.statusCode, 422, JSON.stringify(second.json));
  t.equal(second.json.code, 'FUNDING_TOO_LARGE');
  t.equal((await l.admin('POST', `/v1/admin/activities/${b}/fundings`, { fundingId: 'f3', amount: 10, currency: 'CNY' })).statusCode, 201, 'up to the bound itself');
  const retry = await l.admin('POST', `/v1/admin/activities/${b}/fundings`, { fundingId: 'f3', amount: 10, currency: 'CNY' });
  t.same([retry.statusCode, retry.json.added], [200, false], 'a retry of a funding at the bound gets its first answer, not FUNDING_TOO_LARGE');
  t.equal((await adminRaw(l, 'GET', '/v1/admin/invariants')).statusCode, 200, 'and the ledger is still readable');
});

t.test('URLs fastify cannot route get the API\'s error shape', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  const bad = await adminRaw(l, 'GET', '/v1/admin/gift-packs/%ED%A0%80x%');
  t.equal(bad.statusCode, 400);
  t.same(Object.keys(bad.json).sort(), ['code', 'message']);
  t.equal(bad.json.code, 'MALFORMED_URL');
  const long = await adminRaw(l, 'GET', `/v1/admin/gift-packs/${'x'.repeat(500)}`);
  t.equal(long.statusCode, 414);
  t.equal(long.json.code, 'URL_TOO_LONG');
});
