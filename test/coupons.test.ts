import t from 'tap';
import { spawn } from 'node:child_process';
import { packGrantIdFor } from '../domain/coupons.ts';
import { startTestLedger, type TestLedger } from './helpers/ledger.ts';
import { claimedPack, consumption, grantPack, hold, logOf, projected, spendPack } from './helpers/coupons.ts';
import type { LedgerEvent } from '../domain/events.ts';
import { CouponKeeper } from '../streams/coupon-keeper.ts';
import { audit } from './helpers/audit.ts';

/** Events of a type in the log, a copy produced twice counted once (the ledger applies it once by its id). */
const distinct = (log: LedgerEvent[], type: LedgerEvent['type']) => new Set(log.filter((e) => e.type === type).map((e) => e.data.eventId)).size;

t.test('grant, claim, use: the wallet shows the pack go unclaimed → claimed → partially used → used', async (t) => {
  const l = await startTestLedger(t);
  await spendPack(l, { stock: 100 });
  const g = await grantPack(l, { orderNo: 'o-1', userId: 'u-alice' });
  t.equal(g.statusCode, 201, JSON.stringify(g.json));
  t.equal(g.json.pack.status, 'unclaimed');
  t.same(g.json.pack.coupons.map((c: any) => [c.slot, c.platform, c.faceValue, c.state]), [['five', 'android', 500, 'available'], ['ten', 'android', 1000, 'available'], ['twenty', 'android', 2000, 'available']]);
  t.same(g.json.stock.map((s: any) => s.remaining), [99, 99, 99], 'the answer says what is left');
  t.equal(g.json.lowStock, false);

  const again = await grantPack(l, { orderNo: 'o-1', userId: 'u-alice' });
  t.equal(again.statusCode, 200, 'a retried order answers the same grant');
  t.equal(again.headers['idempotent-replayed'], 'true');
  t.equal(again.json.grantId, g.json.grantId);
  t.same(again.json.stock.map((s: any) => s.remaining), [99, 99, 99], 'and takes no stock');
  const conflict = await grantPack(l, { orderNo: 'o-1', userId: 'u-bob' });
  t.equal(conflict.statusCode, 409);
  t.equal(conflict.json.code, 'ORDER_CONFLICT');

  const list = async () => (await l.asUser('u-alice', 'GET', '/v1/wallets/u-alice/coupons')).json;
  await projected(l);
  t.same((await list()).packs.map((p: any) => p.status), ['unclaimed']);
  const c0 = g.json.pack.coupons[0].couponId;
  const early = await hold(l, 'freeze', { userId: 'u-alice', couponId: c0, paymentId: 'pay-0', platform: 'android' });
  t.equal(early.json.code, 'PACK_NOT_CLAIMED', 'an unclaimed pack cannot be used');
  t.equal((await l.asUser('u-bob', 'POST', `/v1/wallets/u-bob/gift-packs/${g.json.grantId}/claim`)).statusCode, 404, 'nobody else can claim it');
  t.equal((await l.asUser('u-bob', 'GET', '/v1/wallets/u-alice/coupons')).statusCode, 403, "nobody else sees the user's coupons");
  const claimed = await l.asUser('u-alice', 'POST', `/v1/wallets/u-alice/gift-packs/${g.json.grantId}/claim`);
  t.equal(claimed.statusCode, 200);
  t.equal(claimed.json.status, 'claimed');
  await projected(l);
  t.same((await list()).packs.map((p: any) => p.status), ['claimed']);

  const statuses: string[] = [];
  for (const [i, c] of g.json.pack.coupons.entries()) {
    const f = await hold(l, 'freeze', { userId: 'u-alice', couponId: c.couponId, paymentId: `pay-${i}`, platform: 'android' });
    t.equal(f.statusCode, 200, JSON.stringify(f.json));
    t.equal(f.json.state, 'frozen');
    const r = await hold(l, 'redeem', { userId: 'u-alice', couponId: c.couponId, paymentId: `pay-${i}` });
    t.equal(r.statusCode, 200);
    t.equal(r.json.state, 'redeemed');
    statuses.push(r.json.packStatus);
    await l.waitFor('projected status', async () => (await list()).packs[0].status === r.json.packStatus);
  }
  t.same(statuses, ['partially_used', 'partially_used', 'used']);
  const view = await list();
  t.same(view.packs[0].coupons.map((c: any) => c.state), ['redeemed', 'redeemed', 'redeemed']);
  t.equal(view.degraded, false);
  const cons = await consumption(l);
  t.same(
    ['five', 'ten', 'twenty'].map((s) => { const x = cons[`spring-pack.android.${s}`]; return [x.issued, x.frozen, x.redeemed, x.remaining]; }),
    [[1, 0, 1, 99], [1, 0, 1, 99], [1, 0, 1, 99]],
    'per-template consumption: issued, frozen, redeemed, remaining',
  );
});

t.test('the other platform: the matching set is issued exactly once, however many payments try at once', async (t) => {
  const l = await startTestLedger(t);
  await spendPack(l, { stock: 10 });
  const { coupons } = await claimedPack(l, 'u-carol', 'o-x');
  // 30 payments on iOS at once, each naming one of the pack's Android coupons.
  const tries = await Promise.all(Array.from({ length: 30 }, (_, i) => hold(l, 'freeze', {
    userId: 'u-carol', couponId: coupons[i % 3]!.couponId, paymentId: `pay-${i}`, platform: 'ios', holdSeconds: 60,
  })));
  const ok = tries.filter((r) => r.statusCode === 200);
  t.equal(ok.length, 3, 'one payment holds each slot');
  t.ok(tries.every((r) => r.statusCode === 200 || r.json.code === 'COUPON_FROZEN'), 'the rest are told the coupon is in use');
  t.ok(ok.every((r) => !coupons.some((c) => c.couponId === r.json.couponId)), 'the holds are on new (iOS) coupons');
  const { rows } = await l.rt.pool.query('select template_id, sum(taken)::int as taken from coupon_stock group by 1 order by 1');
  t.same(rows.map((r) => [r.template_id, Number(r.taken)]), [
    ['spring-pack.android.five', 1], ['spring-pack.android.ten', 1], ['spring-pack.android.twenty', 1],
    ['spring-pack.ios.five', 1], ['spring-pack.ios.ten', 1], ['spring-pack.ios.twenty', 1],
  ], 'one iOS coupon per slot took stock');
  await projected(l);
  const log = await logOf(l);
  t.equal(distinct(log, 'CouponsReissued'), 1, 'one reissue in the log');
  const view = (await l.asUser('u-carol', 'GET', '/v1/wallets/u-carol/coupons')).json;
  t.same(view.packs[0].coupons.map((c: any) => `${c.platform}:${c.state}`).sort(), [
    'android:available', 'android:available', 'android:available', 'ios:frozen', 'ios:frozen', 'ios:frozen',
  ]);
  // Redeemed on iOS, the Android twin is used too.
  const winner = ok[0]!.json;
  t.equal((await hold(l, 'redeem', { userId: 'u-carol', couponId: winner.couponId, paymentId: winner.paymentId })).statusCode, 200);
  const twin = coupons.find((c) => c.slot === view.packs[0].coupons.find((x: any) => x.couponId === winner.couponId).slot)!;
  const onAndroid = await hold(l, 'freeze', { userId: 'u-carol', couponId: twin.couponId, paymentId: 'pay-android', platform: 'android' });
  t.equal(onAndroid.json.code, 'COUPON_REDEEMED', 'a slot is used once, on whichever platform');
});

t.test('racing payments: one holds, one redemption, no unfreeze after it', async (t) => {
  const l = await startTestLedger(t);
  await spendPack(l);
  const { coupons } = await claimedPack(l, 'u-dave', 'o-race');
  const couponId = coupons[2]!.couponId;
  const freezes = await Promise.all(Array.from({ length: 20 }, (_, i) => hold(l, 'freeze', { userId: 'u-dave', couponId, paymentId: `pay-${i}`, platform: 'android' })));
  const holders = freezes.filter((r) => r.statusCode === 200);
  t.equal(holders.length, 1, 'one payment holds the coupon');
  t.equal(freezes.filter((r) => r.json.code === 'COUPON_FROZEN').length, 19);
  const winner = holders[0]!.json.paymentId as string;
  const redeems = await Promise.all(Array.from({ length: 20 }, (_, i) => hold(l, 'redeem', { userId: 'u-dave', couponId, paymentId: i % 2 === 0 ? winner : `other-${i}` })));
  t.ok(redeems.filter((_, i) => i % 2 === 0).every((r) => r.statusCode === 200 && r.json.state === 'redeemed'), 'the holder (and its retries) redeemed');
  t.ok(redeems.filter((_, i) => i % 2 === 1).every((r) => r.statusCode === 409 && ['COUPON_REDEEMED', 'NOT_FROZEN_BY_PAYMENT'].includes(r.json.code)), 'other payments are refused');
  const after = await hold(l, 'unfreeze', { userId: 'u-dave', couponId, paymentId: winner });
  t.equal(after.statusCode, 409);
  t.equal(after.json.code, 'COUPON_REDEEMED');
  await projected(l);
  const log = await logOf(l);
  t.equal(distinct(log, 'CouponRedeemed'), 1, 'exactly one redemption in the log');
  t.equal(distinct(log, 'CouponFrozen'), 1, 'and one hold');
  const cons = await consumption(l);
  t.same([cons['spring-pack.android.twenty'].frozen, cons['spring-pack.android.twenty'].redeemed], [0, 1]);
});

t.test('unfreeze on abandon, and automatically at the hold timeout', async (t) => {
  const l = await startTestLedger(t);
  await spendPack(l);
  const { coupons } = await claimedPack(l, 'u-erin', 'o-hold');
  const [a, b] = coupons;
  t.equal((await hold(l, 'freeze', { userId: 'u-erin', couponId: a!.couponId, paymentId: 'pay-a', platform: 'android' })).statusCode, 200);
  const abandoned = await hold(l, 'unfreeze', { userId: 'u-erin', couponId: a!.couponId, paymentId: 'pay-a' });
  t.equal(abandoned.json.state, 'available', 'abandoned: the coupon is back');
  t.equal((await hold(l, 'unfreeze', { userId: 'u-erin', couponId: a!.couponId, paymentId: 'pay-a' })).statusCode, 200, 'a retried unfreeze is a no-op');
  t.equal((await hold(l, 'unfreeze', { userId: 'u-erin', couponId: a!.couponId, paymentId: 'pay-z' })).json.code, 'NOT_FROZEN_BY_PAYMENT');

  const f = await hold(l, 'freeze', { userId: 'u-erin', couponId: b!.couponId, paymentId: 'pay-b', platform: 'android', holdSeconds: 1 });
  t.equal(f.statusCode, 200);
  const keeper = new CouponKeeper(l.rt);
  keeper.start(100);
  t.teardown(() => keeper.stop());
  await l.waitFor('hold timed out', async () => {
    const log = await logOf(l);
    return log.some((e) => e.type === 'CouponUnfrozen' && e.data.reason === 'timeout');
  });
  const late = await hold(l, 'redeem', { userId: 'u-erin', couponId: b!.couponId, paymentId: 'pay-b' });
  t.equal(late.statusCode, 409);
  t.equal(late.json.code, 'HOLD_EXPIRED', 'a payment completing after its hold ended is refused');
  const again = await hold(l, 'freeze', { userId: 'u-erin', couponId: b!.couponId, paymentId: 'pay-c', platform: 'android' });
  t.equal(again.statusCode, 200, 'another payment can use it');
  await projected(l);
  const cons = await consumption(l);
  t.same([cons['spring-pack.android.five'].frozen, cons['spring-pack.android.ten'].frozen], [0, 1]);
});

t.test('Kafka unavailable: decisions wait in the journal and are produced once, in order', async (t) => {
  const l = await startTestLedger(t);
  await spendPack(l);
  const publisher = l.rt.publisher;
  const original = publisher.publishInOrder.bind(publisher);
  publisher.publishInOrder = async () => { throw new Error('broker unreachable (test)'); };
  const g = await grantPack(l, { orderNo: 'o-down', userId: 'u-fay' });
  t.equal(g.statusCode, 201, 'the grant is decided: stock and state committed in Postgres');
  const claim = await l.asUser('u-fay', 'POST', `/v1/wallets/u-fay/gift-packs/${g.json.grantId}/claim`);
  t.equal(claim.statusCode, 200);
  const { rows } = await l.rt.pool.query("select events->0->>'type' as type from journal_outbox where events->0->>'type' like 'GiftPack%' order by seq");
  t.same(rows.map((r) => r.type), ['GiftPackGranted', 'GiftPackClaimed'], 'both events wait in the journal, in order');
  publisher.publishInOrder = original;
  await projected(l);
  const log = await logOf(l);
  t.same(log.filter((e) => e.type.startsWith('GiftPack')).map((e) => e.type), ['GiftPackGranted', 'GiftPackClaimed']);
  const view = (await l.asUser('u-fay', 'GET', '/v1/wallets/u-fay/coupons')).json;
  t.equal(view.packs[0].status, 'claimed');
});

t.test('the wallet degrades to its last cached coupon view when the projection does not answer in time', async (t) => {
  const l = await startTestLedger(t, { config: { couponQueryTimeoutMs: 200 } });
  await spendPack(l);
  await claimedPack(l, 'u-gus', 'o-cache');
  await projected(l);
  const fresh = await l.asUser('u-gus', 'GET', '/v1/wallets/u-gus/coupons');
  t.equal(fresh.json.degraded, false);
  t.equal(fresh.json.packs[0].status, 'claimed');
  // Something holds the projection table (a long migration, a stuck vacuum): reads block.
  const blocker = await l.rt.pool.connect();
  await blocker.query('begin');
  await blocker.query('lock table gift_pack_grants in access exclusive mode');
  try {
    const started = Date.now();
    const cached = await l.asUser('u-gus', 'GET', '/v1/wallets/u-gus/coupons');
    t.equal(cached.statusCode, 200, 'the page stays up');
    t.equal(cached.json.degraded, true);
    t.same(cached.json.packs, fresh.json.packs, 'with the last view');
    t.ok(Date.now() - started < 2000, `answered in ${Date.now() - started} ms`);
    const none = await l.asUser('u-nobody', 'GET', '/v1/wallets/u-nobody/coupons');
    t.equal(none.statusCode, 503, 'with no view to fall back on, a clear retryable error');
    t.equal(none.json.code, 'COUPONS_UNAVAILABLE');
  } finally {
    await blocker.query('rollback');
    blocker.release();
  }
  t.equal((await l.asUser('u-gus', 'GET', '/v1/wallets/u-gus/coupons')).json.degraded, false, 'fresh again once the projection answers');
});

t.test('bad input is refused with a code and writes nothing', async (t) => {
  const l = await startTestLedger(t);
  await spendPack(l, { stock: 5 });
  const cases: [string, Promise<{ statusCode: number; json: any }>, number, string][] = [
    ['unknown pack', grantPack(l, { orderNo: 'b1', userId: 'u', packId: 'nope' }), 404, 'PACK_NOT_FOUND'],
    ['unknown activity', grantPack(l, { orderNo: 'b0', userId: 'u', activityId: 'no-such-activity' }), 404, 'UNKNOWN_ACTIVITY'],
    ['bad platform', l.signed('POST', '/v1/gift-packs/grants', { activityId: 'spring', orderNo: 'b2', userId: 'u', packId: 'spring-pack', platform: 'symbian' }), 400, 'INVALID_FIELD'],
    ['unknown field', l.signed('POST', '/v1/gift-packs/grants', { activityId: 'spring', orderNo: 'b3', userId: 'u', packId: 'spring-pack', platform: 'ios', extra: 1 }), 400, 'UNKNOWN_FIELD'],
    ['unknown coupon', hold(l, 'freeze', { userId: 'u', couponId: '00000000-0000-8000-8000-000000000000', paymentId: 'p', platform: 'ios' }), 404, 'COUPON_NOT_FOUND'],
    ['malformed coupon id', hold(l, 'redeem', { userId: 'u', couponId: 'abc', paymentId: 'p' }), 400, 'INVALID_FIELD'],
    ['hold of 0 s', hold(l, 'freeze', { userId: 'u', couponId: '00000000-0000-8000-8000-000000000000', paymentId: 'p', platform: 'ios', holdSeconds: 0 }), 400, 'INVALID_FIELD'],
  ];
  for (const [what, p, status, code] of cases) {
    const r = await p;
    t.equal(r.statusCode, status, `${what}: ${JSON.stringify(r.json)}`);
    t.equal(r.json.code, code, what);
    t.ok(r.json.message.length > 10, `${what}: says why`);
  }
  const unsigned = await l.app.inject({ method: 'POST', url: '/v1/gift-packs/grants', payload: { activityId: 'spring', orderNo: 'b4', userId: 'u', packId: 'spring-pack', platform: 'ios' } });
  t.equal(unsigned.statusCode, 401);
  const { coupons } = await claimedPack(l, 'u-hal', 'o-mine');
  const foreign = await hold(l, 'freeze', { userId: 'u-ivy', couponId: coupons[0]!.couponId, paymentId: 'p', platform: 'android' });
  t.equal(foreign.statusCode, 404, "another user's coupon is not found");
  // Configuration.
  const badPack = await l.admin('PUT', '/v1/admin/gift-packs/broken', { name: 'x', slots: [{ slot: 'a', ios: 'spring-pack.android.five', android: 'missing' }] });
  t.equal(badPack.statusCode, 422);
  t.same(badPack.json.details.errors.map((e: any) => e.path), ['/slots/0/ios', '/slots/0/android']);
  const below = await l.admin('PUT', '/v1/admin/coupon-templates/spring-pack.android.five', { platform: 'android', faceValue: 500, currency: 'CNY', validDays: 30, totalStock: 0 });
  t.equal(below.json.code, 'STOCK_BELOW_ISSUED');
  const revalue = await l.admin('PUT', '/v1/admin/coupon-templates/spring-pack.android.five', { platform: 'android', faceValue: 900, currency: 'CNY', validDays: 30, totalStock: 5 });
  t.equal(revalue.json.code, 'TEMPLATE_IN_USE');
  const { rows } = await l.rt.pool.query('select count(*)::int as n from pack_states');
  t.equal(rows[0].n, 1, 'only the one good grant is stored');
  const out = await grantPack(l, { orderNo: 'o-more-1', userId: 'u-hal' });
  t.equal(out.statusCode, 201);
  t.same(out.json.stock.map((s: any) => [s.remaining, s.lowStock]), [[3, false], [3, false], [3, false]]);
});

t.test('replay audits: the whole log folds every coupon event; a range audit leaves out packs granted before it', async (t) => {
  const l = await startTestLedger(t);
  await spendPack(l);
  const early = await claimedPack(l, 'u-jo', 'o-early');
  await projected(l);
  await new Promise((r) => setTimeout(r, 50));
  const from = new Date();
  await new Promise((r) => setTimeout(r, 50));
  // In the range: a hold and redemption on the early pack, and a whole new pack's life.
  t.equal((await hold(l, 'freeze', { userId: 'u-jo', couponId: early.coupons[0]!.couponId, paymentId: 'p-1', platform: 'android' })).statusCode, 200);
  t.equal((await hold(l, 'redeem', { userId: 'u-jo', couponId: early.coupons[0]!.couponId, paymentId: 'p-1' })).statusCode, 200);
  const late = await claimedPack(l, 'u-kim', 'o-late');
  t.equal((await hold(l, 'freeze', { userId: 'u-kim', couponId: late.coupons[1]!.couponId, paymentId: 'p-2', platform: 'ios' })).statusCode, 200);
  await projected(l);
  const whole = await audit(l);
  t.equal(whole.clean, true, `whole log: ${JSON.stringify(whole.byKind)}`);
  t.equal(whole.couponEventsBeforeGrant, 0);
  const ranged = await audit(l, { from });
  t.equal(ranged.clean, true, `range: ${JSON.stringify(ranged.byKind)}`);
  t.equal(ranged.couponEventsBeforeGrant, 2, `the early pack's freeze and redemption are left out, and counted (${ranged.couponEventsBeforeGrant}; ${ranged.events} events)`);
  t.ok(ranged.events >= 6, 'the late pack (grant, claim, reissue, freeze) is folded');
});

t.test('killed with SIGKILL right after the grant committed, before any relay ran: produced once, stock taken once', async (t) => {
  const l = await startTestLedger(t);
  await spendPack(l, { stock: 100 });
  const cmd = { activityId: 'spring', orderNo: 'o-kill', userId: 'u-lee', packId: 'spring-pack', platform: 'ios' };
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/grant-then-die.ts', JSON.stringify(cmd)], {
    cwd: new URL('..', import.meta.url).pathname, env: { ...process.env, LEDGER_NAMESPACE: l.ns, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'inherit'],
  });
  t.teardown(() => { child.kill('SIGKILL'); });
  const [code, signal] = await new Promise<[number | null, string | null]>((r) => child.once('exit', (c, s) => r([c, s])));
  t.same([code, signal], [null, 'SIGKILL'], 'the process died at the produce');
  const grantId = packGrantIdFor('spring', 'o-kill');
  // The command stays in the journal; its event may already have left the outbox (this test's own relay may have produced it).
  const { rows: journaled } = await l.rt.pool.query("select command_key from journal where command_key = 'coupon:' || $1", [grantId]);
  t.equal(journaled.length, 1, 'the decision is in the journal (GiftPackGranted: its event id is the grant id)');
  const taken = async () => (await l.rt.pool.query(`select sum(taken)::int as n from coupon_stock where template_id like '%.ios.%'`)).rows[0].n;
  t.equal(await taken(), 3, 'its stock was taken, once per coupon');

  // The relay produces it; the upstream's retry of the order answers the same grant and takes nothing more.
  const retry = await grantPack(l, { orderNo: 'o-kill', userId: 'u-lee', platform: 'ios' });
  t.equal(retry.statusCode, 200);
  t.equal(retry.json.grantId, grantId);
  t.equal(await taken(), 3, 'a retry takes no stock');
  await projected(l);
  const log = await logOf(l);
  t.equal(distinct(log, 'GiftPackGranted'), 1, 'one grant in the log');
  const view = (await l.asUser('u-lee', 'GET', '/v1/wallets/u-lee/coupons')).json;
  t.same(view.packs.map((p: any) => [p.grantId, p.platform, p.coupons.length]), [[grantId, 'ios', 3]], 'the user has the pack, once');
});
