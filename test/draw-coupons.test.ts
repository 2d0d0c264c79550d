import t from 'tap';
import { startTestLedger } from './helpers/ledger.ts';
import { campaign, putConfig, scene } from './helpers/campaigns.ts';
import { consumption, grantPack, logOf, projected, spendPack } from './helpers/coupons.ts';

t.test('a coupon prize is a gift pack granted through the coupon path, and an empty pack is drawn no more', async (t) => {
  const l = await startTestLedger(t);
  // Two packs of stock on iOS; the only prize is the pack, quota 5: stock, not quota, runs out first.
  await spendPack(l, { stock: 10, iosStock: 2 });
  await putConfig(l, campaign('lucky', [scene({
    sceneId: 'coupons', awardType: 'coupon', statementText: 'Spring coupons', noWinWeight: 0,
    prizes: [{ prizeId: 'pack', name: 'Spring pack', weight: 1, quota: 5, packId: 'spring-pack' }],
  })]));
  const drawFor = (userId: string, drawId: string, platform?: 'ios' | 'android') =>
    l.signed('POST', '/v1/draws', { activityId: 'lucky', sceneId: 'coupons', userId, drawId, ...(platform ? { platform } : {}) });

  const noPlatform = await drawFor('u-a', 'd-0');
  t.equal(noPlatform.statusCode, 422);
  t.equal(noPlatform.json.code, 'PLATFORM_REQUIRED', 'a coupon scene needs the platform to grant for');

  const answers = [];
  for (let i = 1; i <= 3; i++) answers.push(await drawFor(`u-${i}`, `d-${i}`, 'ios'));
  t.same(answers.map((a) => [a.statusCode, a.json.outcome, a.json.reason ?? '']), [[201, 'won', ''], [201, 'won', ''], [201, 'no_win', 'pool_empty']],
    'two wins take the two packs; the third draw finds the pack out of stock, gives the unit back and has nothing left to draw');
  const won = answers[0]!.json;
  t.equal(won.prize.awardType, 'coupon');
  t.equal(won.prize.itemId, 'spring-pack');
  t.ok(won.giftPackGrantId, 'the answer names the granted pack');
  const retry = await drawFor('u-1', 'd-1', 'ios');
  t.equal(retry.statusCode, 200, 'a retried draw answers the same');
  t.equal(retry.json.giftPackGrantId, won.giftPackGrantId);
  t.equal((await drawFor('u-1', 'd-1', 'android')).json.code, 'DRAW_CONFLICT', 'the same draw id for another platform is another draw');

  await projected(l);
  const view = (await l.asUser('u-1', 'GET', '/v1/wallets/u-1/coupons')).json;
  t.same(view.packs.map((p: any) => [p.grantId, p.platform, p.status, p.activityId]), [[won.giftPackGrantId, 'ios', 'unclaimed', 'lucky:formal']],
    "the pack is in the winner's wallet, granted by the child activity");
  const cons = await consumption(l);
  t.same(['five', 'ten', 'twenty'].map((s) => cons[`spring-pack.ios.${s}`].issued), [2, 2, 2], 'the stock never went past 2');
  const log = await logOf(l);
  const wins = log.filter((e) => e.type === 'LotteryDrawn' && e.data.outcome === 'won');
  t.equal(new Set(wins.map((e) => e.data.eventId)).size, 2);
  t.ok(wins.every((e) => e.type === 'LotteryDrawn' && e.data.awardType === 'coupon' && e.data.fulfilmentId !== ''), 'each win names its pack grant');
  const { rows } = await l.rt.pool.query(`select count(*)::int as n, min(award_type) as t from draw_wins`);
  t.same(rows[0], { n: 2, t: 'coupon' }, 'the projection counts two coupon wins against the quota');

  const reserved = await grantPack(l, { orderNo: 'draw.d-9', userId: 'u-x', activityId: 'lucky:formal' });
  t.equal(reserved.statusCode, 422);
  t.equal(reserved.json.code, 'ORDER_NO_RESERVED', "a direct grant cannot take a draw's order number");
});

t.test('a coupon scene is configured with a pack, and only a pack', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  const bad = campaign('wrong', [scene({
    sceneId: 'coupons', awardType: 'coupon', statementText: 'x',
    prizes: [{ prizeId: 'a', name: 'A', weight: 1, quota: 1, itemId: 'frame' }],
  })]);
  const r = await l.admin('PUT', '/v1/admin/campaigns/wrong/config', bad);
  t.equal(r.statusCode, 422);
  t.same(r.json.details.errors.map((e: any) => e.path).sort(), ['/children/0/scenes/0/pool/prizes/0', '/children/0/scenes/0/pool/prizes/0/itemId']);
  t.match(r.json.message, /needs a packId/);
  const unknown = campaign('unknown', [scene({
    sceneId: 'coupons', awardType: 'coupon', statementText: 'x',
    prizes: [{ prizeId: 'a', name: 'A', weight: 1, quota: 1, packId: 'no-such-pack' }],
  })]);
  for (const url of ['/v1/admin/campaigns/unknown/config', '/v1/admin/campaigns/unknown/config/validate']) {
    const u = await l.admin(url.endsWith('validate') ? 'POST' : 'PUT', url, unknown);
    t.equal(u.statusCode, 422, `${url}: a pack that does not exist is refused when the configuration is put, not when a draw wins it`);
    t.same(u.json.details.errors, [{ path: '/children/0/scenes/0/pool/prizes/0/packId', message: 'there is no gift pack no-such-pack' }]);
  }
});
