import t from 'tap';
import fc from 'fast-check';
import {
  SLICE_MS, candidatesAt, goodsGrantIdFor, compileCampaign, configErrors, drawEventIdFor, liveChild, passesThrough, releasedQuota, type CampaignConfig,
} from '../../domain/campaigns.ts';
import { MemoryLedger } from '../../domain/ledger.ts';
import { validateCampaignConfig } from '../../schemas/campaign-config.ts';

const T0 = Date.parse('2027-01-28T20:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();

function config(): CampaignConfig {
  return {
    activityId: 'spring', name: 'Spring shake', currency: 'CNY',
    children: [
      {
        childId: 'internal', stage: 'internal_test', startsAt: iso(T0), endsAt: iso(T0 + 60_000),
        scenes: [{ sceneId: 'shake', awardType: 'goods', statementText: 'Test', stockControl: false, reconcile: false, pool: { poolId: 'p', noWinWeight: 0, prizes: [{ prizeId: 'x', name: 'x', weight: 1, quota: 0, itemId: 'frame' }] } }],
      },
      {
        childId: 'formal', stage: 'formal', startsAt: iso(T0 + 60_000), endsAt: iso(T0 + 3_600_000), winLimit: 3, passThroughBp: 0,
        scenes: [{
          sceneId: 'shake', awardType: 'cash', statementText: 'Shake', stockControl: true, reconcile: true,
          pool: {
            poolId: 'main', noWinWeight: 10,
            prizes: [
              { prizeId: 'a', name: 'a', weight: 5, quota: 10, amount: 88 },
              { prizeId: 'off', name: 'off', weight: 0, quota: 10, amount: 1 },
              { prizeId: 'late', name: 'late', weight: 5, quota: 10, amount: 1, startsAt: iso(T0 + 600_000) },
            ],
          },
        }],
      },
    ],
  };
}

t.test('the child live at a time answers the parent id; windows are half-open', async (t) => {
  const c = compileCampaign(config(), 1);
  t.equal(liveChild(c, T0 - 1), null);
  t.equal(liveChild(c, T0)?.childId, 'internal');
  t.equal(liveChild(c, T0 + 59_999)?.childId, 'internal');
  t.equal(liveChild(c, T0 + 60_000)?.childId, 'formal');
  t.equal(liveChild(c, T0 + 3_600_000), null);
  t.equal(liveChild(c, T0 + 60_000)?.ledgerActivityId, 'spring:formal', 'each child grants from its own ledger activity');
});

t.test('candidates: switched-on prizes inside their window, with the quota released so far', async (t) => {
  const scene = compileCampaign(config(), 1).children[1]!.scenes.get('shake')!;
  t.same(candidatesAt(scene, T0 + 60_000).map((c) => c.prize.prizeId), ['a'], 'weight 0 is off; "late" is not in the pool yet');
  t.same(candidatesAt(scene, T0 + 600_000).map((c) => c.prize.prizeId), ['a', 'late']);
  t.same(candidatesAt(scene, T0 + 600_000, new Set(['a'])).map((c) => c.prize.prizeId), ['late'], 'a prize that could not be issued is left out');
  t.equal(candidatesAt(scene, T0 + 600_000)[0]!.allowance, 10);
  const noStock = { ...scene, stockControl: false };
  t.equal(candidatesAt(noStock, T0 + 600_000)[0]!.allowance, null, 'without stock control no quota applies');
});

t.test('even pacing: released quota never decreases, never exceeds the quota, rolls over, and is all out by the end', async (t) => {
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 1_000_000 }), fc.integer({ min: 1, max: 86_400_000 }), fc.integer({ min: -1_000, max: 90_000_000 }), fc.integer({ min: 0, max: 10_000 }),
    (quota, length, at, step) => {
      const prize = { quota, pacing: 'even' as const, startsAt: T0, endsAt: T0 + length };
      const now = releasedQuota(prize, T0 + at);
      const later = releasedQuota(prize, T0 + at + step);
      const slices = Math.ceil(length / SLICE_MS);
      if (!(now >= 0 && now <= quota && later >= now)) return false;
      if (at < 0 && now !== 0) return false;
      if (at >= length - SLICE_MS && at >= 0 && now !== quota) return false;
      // One slice releases at most its even part, rounded up.
      const next = releasedQuota(prize, T0 + at + SLICE_MS);
      return next - now <= Math.ceil(quota / slices) + 1;
    },
  ), { seed: 20270128, numRuns: 2_000 });
  t.equal(releasedQuota({ quota: 20, pacing: 'even', startsAt: T0, endsAt: T0 + 2_000 }, T0), 1, 'slice 0 of 20: 1 of 20');
  t.equal(releasedQuota({ quota: 20, pacing: 'even', startsAt: T0, endsAt: T0 + 2_000 }, T0 + 950), 10, 'slice 9: 10, whatever was issued before');
  t.equal(releasedQuota({ quota: 20, pacing: 'none', startsAt: T0, endsAt: T0 + 2_000 }, T0 - 5), 20, 'no pacing: all of it');
});

t.test('pass-through is decided by the draw id: stable, and close to its rate', async (t) => {
  let passed = 0;
  for (let i = 0; i < 10_000; i++) if (passesThrough(2_500, 'spring', `d-${i}`)) passed++;
  t.ok(passed > 2_300 && passed < 2_700, `25% asked, ${passed / 100}% passed`);
  t.equal(passesThrough(2_500, 'spring', 'd-7'), passesThrough(2_500, 'spring', 'd-7'));
  t.notOk(passesThrough(0, 'spring', 'd-7'));
  t.ok(passesThrough(10_000, 'spring', 'd-7'));
});

t.test('the schema and the rules beyond it, with paths', async (t) => {
  t.same(validateCampaignConfig(config()), { ok: true, config: config() });
  const c = config();
  c.children[1]!.startsAt = iso(T0 + 30_000);
  c.children[1]!.scenes[0]!.pool.prizes[0]!.itemId = 'frame';
  c.children[1]!.scenes[0]!.pool.prizes[1]!.prizeId = 'a';
  c.children[1]!.scenes[0]!.endsAt = iso(T0 + 7_200_000);
  c.children[0]!.scenes[0]!.startsAt = iso(T0 + 50_000);
  c.children[0]!.scenes[0]!.endsAt = iso(T0 + 40_000);
  t.same(configErrors(c), [
    { path: '/children/0/scenes/0/endsAt', message: `must be after startsAt (${iso(T0 + 50_000)})` },
    { path: '/children/1/startsAt', message: `the window overlaps child "internal" (${iso(T0)} to ${iso(T0 + 60_000)}); one child is live at a time` },
    { path: '/children/1/scenes/0/endsAt', message: `must not be after the child's endsAt (${iso(T0 + 3_600_000)})` },
    { path: '/children/1/scenes/0/pool/prizes/1/prizeId', message: '"a" is already used by /children/1/scenes/0/pool/prizes/0' },
    { path: '/children/1/scenes/0/pool/prizes/0/itemId', message: 'a prize in a cash scene pays an amount, not an item' },
  ], 'every problem is named with its path');
  const r = validateCampaignConfig({ ...config(), currency: 'USD', children: [] });
  t.same(r, { ok: false, errors: [{ path: '/currency', message: 'must be one of "CNY"' }, { path: '/children', message: 'must NOT have fewer than 1 items' }] });
});

t.test('the fold: a won draw is recorded once, a draw that did not win moves nothing, a goods grant needs its derived id', async (t) => {
  const ledger = new MemoryLedger();
  const base = {
    occurredAt: T0, activityId: 'spring', traceId: 't', userId: 'u1', childId: 'formal', sceneId: 'shake', poolId: 'main', configVersion: 1,
    currency: 'CNY' as const, itemId: '', quantity: 0, requestedBy: 'svc', clientAddress: '::1', requestId: 'r',
  };
  const won = { ...base, eventId: drawEventIdFor('spring', 'd1'), drawId: 'd1', outcome: 'won' as const, reason: '', prizeId: 'a', awardType: 'cash', prizeAmount: 88, fulfilmentId: 'tok' };
  t.same(ledger.apply({ type: 'LotteryDrawn', data: won })?.postings, [], 'a draw moves no money: its token does');
  t.equal(ledger.apply({ type: 'LotteryDrawn', data: won }), null, 'the same draw again is a duplicate');
  const lost = { ...base, eventId: drawEventIdFor('spring', 'd2'), drawId: 'd2', outcome: 'no_win' as const, reason: 'no_win_drawn', prizeId: '', awardType: '', prizeAmount: 0, fulfilmentId: '' };
  t.same(ledger.apply({ type: 'LotteryDrawn', data: lost })?.drawWins, []);
  t.same([...ledger.drawWins.keys()], ['spring/d1']);
  const forged = { ...won, eventId: drawEventIdFor('spring', 'other'), drawId: 'd3' };
  t.match(ledger.apply({ type: 'LotteryDrawn', data: forged })?.anomalies, [{ kind: 'event_id_not_derived' }], 'an id not derived from the draw id is refused');
  t.equal(ledger.drawWins.size, 1);
  const grant = {
    eventId: goodsGrantIdFor('spring:formal', 'draw.d1'), grantId: goodsGrantIdFor('spring:formal', 'draw.d1'), occurredAt: T0, activityId: 'spring:formal', traceId: 't',
    orderNo: 'draw.d1', userId: 'u1', sceneId: 'shake', itemId: 'frame', quantity: 1, grantedBy: 'svc', clientAddress: '::1', requestId: 'r',
  };
  t.equal(ledger.apply({ type: 'GoodsGranted', data: grant })?.goodsGrants.length, 1);
  const other = { ...grant, eventId: goodsGrantIdFor('spring:formal', 'draw.d9'), grantId: goodsGrantIdFor('spring:formal', 'draw.d9') };
  t.match(ledger.apply({ type: 'GoodsGranted', data: other })?.anomalies, [{ kind: 'event_id_not_derived' }], 'a second grant for one order under another id grants nothing');
  t.equal(ledger.goodsGrants.size, 1);
  t.equal(ledger.total(), 0);
});
