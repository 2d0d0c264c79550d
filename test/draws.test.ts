import t from 'tap';
import { randomUUID } from 'node:crypto';
import { drawEventIdFor, drawOrderNo, goodsGrantIdFor, ledgerActivityOf } from '../domain/campaigns.ts';
import { LedgerProjector } from '../projections/ledger-projector.ts';
import { tokenIdFor } from '../domain/grants.ts';
import { startTestLedger, wallet, type TestLedger } from './helpers/ledger.ts';
import { checkInvariants } from '../projections/invariants.ts';
import { campaign, draw, iso, manualClock, putConfig, scene, seeded } from './helpers/campaigns.ts';

const act = () => `shake-${randomUUID().slice(0, 8)}`;

async function projectedWins(l: TestLedger, activityId: string): Promise<Map<string, number>> {
  const { rows } = await l.rt.pool.query('select prize_id, issued from prize_consumption where activity_id = $1', [activityId]);
  return new Map(rows.map((r) => [r.prize_id, Number(r.issued)]));
}

async function drawEvents(l: TestLedger, activityId: string): Promise<number> {
  const { rows } = await l.rt.pool.query("select count(*)::int as n from ledger_events where event_type = 'LotteryDrawn' and activity_id = $1", [activityId]);
  return rows[0].n;
}

t.test('a cash win is a token from the child\'s budget, a goods win a grant event; every draw is an event; a retry is the same draw', async (t) => {
  const l = await startTestLedger(t);
  const A = act();
  await putConfig(l, campaign(A, [
    scene({ sceneId: 'cash', awardType: 'cash', prizes: [{ prizeId: 'cash-88', name: '0.88', weight: 1, quota: 2, amount: 88 }] }),
    scene({ sceneId: 'frames', awardType: 'goods', prizes: [{ prizeId: 'frame', name: 'Gold frame', weight: 1, quota: 1, itemId: 'frame-gold', quantity: 2 }] }),
  ]));
  const child = ledgerActivityOf(A, 'formal');
  const funded = await l.admin('POST', `/v1/admin/activities/${child}/fundings`, { fundingId: 'f1', amount: 1_000, currency: 'CNY' });
  t.equal(funded.statusCode, 201, 'the child\'s ledger activity exists once the configuration is in force, and is funded like any');

  const won = await draw(l, A, 'u-cash', 'd-1', 'cash');
  t.equal(won.statusCode, 201, JSON.stringify(won.json));
  t.match(won.json, { outcome: 'won', childId: 'formal', stage: 'formal', configVersion: 1, prize: { prizeId: 'cash-88', amount: 88, currency: 'CNY', awardType: 'cash' } });
  t.equal(won.json.token.tokenId, tokenIdFor(child, drawOrderNo('d-1')), 'the cash goes through the token path, under the draw\'s order number');
  const again = await draw(l, A, 'u-cash', 'd-1', 'cash');
  t.equal(again.statusCode, 200);
  t.equal(again.headers['idempotent-replayed'], 'true');
  t.same(again.json, won.json, 'a retry answers the same draw, token and all');
  const taken = await l.signed('POST', '/v1/grants', { activityId: child, sceneId: 'cash', orderNo: drawOrderNo('d-9'), userId: 'u-x', amount: 50, currency: 'CNY' });
  t.equal(taken.statusCode, 422, 'a direct grant cannot take a draw\'s order number');
  t.equal(taken.json.code, 'ORDER_NO_RESERVED');
  const conflict = await draw(l, A, 'u-other', 'd-1', 'cash');
  t.equal(conflict.statusCode, 409);
  t.equal(conflict.json.code, 'DRAW_CONFLICT');

  const goods = await draw(l, A, 'u-goods', 'd-2', 'frames');
  t.match(goods.json, { outcome: 'won', prize: { prizeId: 'frame', itemId: 'frame-gold', quantity: 2, awardType: 'goods' } });
  const empty = await draw(l, A, 'u-goods2', 'd-3', 'frames');
  t.match(empty.json, { outcome: 'no_win', reason: 'pool_empty' }, 'the only prize is spent: the pool is empty');

  await l.waitFor('draws projected', async () => (await drawEvents(l, A)) === 3);
  t.match(await wallet(l, 'u-cash'), { pending: 88 }, 'the winner holds the cash as a pending token');
  const statement = await l.asUser('u-cash', 'GET', '/v1/wallets/u-cash/statement');
  t.match(statement.json.entries, [{ amount: 88, text: 'Spring shake' }], 'the statement shows the scene\'s statement text');
  const grants = await l.rt.pool.query('select user_id, item_id, quantity, order_no from goods_grants where activity_id = $1', [child]);
  t.same(grants.rows, [{ user_id: 'u-goods', item_id: 'frame-gold', quantity: 2, order_no: drawOrderNo('d-2') }]);
  t.same(Object.fromEntries(await projectedWins(l, A)), { 'cash-88': 1, frame: 1 }, 'quota consumption is projected per prize');
  const budget = await l.rt.pool.query('select balance from account_balances where account = $1', [`activity:${child}:budget`]);
  t.equal(Number(budget.rows[0].balance), 1_000 - 88);
  const ev = await l.rt.pool.query('select event_id from ledger_events where event_id = $1', [drawEventIdFor(A, 'd-3')]);
  t.equal(ev.rowCount, 1, 'a draw that did not win is an event too');
});

t.test('10,000 concurrent draws against small quotas, half of them retried: no quota exceeded, every unit issued once', async (t) => {
  const l = await startTestLedger(t);
  const A = act();
  const quotas: Record<string, number> = { gold: 5, silver: 20, bronze: 60 };
  await putConfig(l, campaign(A, [scene({
    noWinWeight: 50,
    prizes: Object.entries(quotas).map(([prizeId, quota]) => ({ prizeId, name: prizeId, weight: 10, quota, itemId: `item-${prizeId}` })),
  })]));
  const N = 10_000;
  const answers = new Map<string, { status: number; outcome?: string; prizeId?: string }>();
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= N) return;
      const id = `c-${i}`;
      // Every other draw is sent twice at once: a client that timed out and retried.
      const sends = i % 2 === 0 ? [draw(l, A, `user-${i}`, id), draw(l, A, `user-${i}`, id)] : [draw(l, A, `user-${i}`, id)];
      const rs = await Promise.all(sends);
      for (const r of rs) if (r.statusCode >= 300) throw new Error(`draw ${id}: ${r.statusCode} ${JSON.stringify(r.json)}`);
      const prizes = new Set(rs.map((r) => r.json.prize?.prizeId ?? ''));
      if (prizes.size !== 1) throw new Error(`draw ${id} answered two outcomes: ${[...prizes]}`);
      answers.set(id, { status: rs[0]!.statusCode, outcome: rs[0]!.json.outcome, prizeId: rs[0]!.json.prize?.prizeId });
    }
  };
  await Promise.all(Array.from({ length: 200 }, worker));
  const told = new Map<string, number>();
  for (const a of answers.values()) if (a.outcome === 'won') told.set(a.prizeId!, (told.get(a.prizeId!) ?? 0) + 1);
  t.same(Object.fromEntries(told), quotas, 'winners were told of exactly each quota: none exceeded, none lost');
  await l.waitFor('all draws projected', async () => (await drawEvents(l, A)) === N, 120_000);
  t.same(Object.fromEntries(await projectedWins(l, A)), quotas, 'the projection issued exactly each quota');
  const goods = await l.rt.pool.query('select count(*)::int as n from goods_grants where activity_id = $1', [ledgerActivityOf(A, 'formal')]);
  t.equal(goods.rows[0].n, 85, 'one goods grant per win, none for the retries');
  const fold = await l.cleanFold();
  const folded = new Map<string, number>();
  for (const w of fold.drawWins.values()) if (w.activityId === A) folded.set(w.prizeId, (folded.get(w.prizeId) ?? 0) + 1);
  t.same(Object.fromEntries(folded), quotas, 'a replay of the log gives the same consumption');
});

t.test('slice caps hold and unissued quota rolls over to the next slice', async (t) => {
  const start = Math.ceil(Date.now() / 1000) * 1000 + 60_000;
  const clock = manualClock(start);
  const l = await startTestLedger(t, { app: { drawClock: clock.now } });
  const A = act();
  // 20 units released evenly over 2 s: one per 100 ms slice; at most 3 per slice.
  await putConfig(l, campaign(A, [scene({
    prizes: [{ prizeId: 'p', name: 'p', weight: 1, quota: 20, itemId: 'x', pacing: 'even', maxPerSlice: 3, startsAt: iso(start), endsAt: iso(start + 2_000) }],
  })], start, 1));
  let n = 0;
  const wins = async (at: number, draws: number) => {
    clock.set(at);
    let won = 0;
    for (let i = 0; i < draws; i++) {
      const r = await draw(l, A, `u-${n}`, `s-${n++}`);
      if (r.statusCode !== 201) throw new Error(JSON.stringify(r.json));
      if (r.json.outcome === 'won') won++;
    }
    return won;
  };
  t.equal(await wins(start + 10, 10), 1, 'slice 0 releases one unit: one win of ten draws');
  t.equal(await wins(start + 950, 10), 3, 'by slice 9 ten are released and one issued, but the slice cap allows 3');
  t.equal(await wins(start + 1_050, 10), 3, 'the next slice: the rolled-over quota flows at the cap');
  t.equal(await wins(start + 1_150, 10), 3, 'and the next');
  t.equal(await wins(start + 1_250, 10), 3, 'released by slice 12 is 13; 13 are now issued');
  t.equal(await wins(start + 1_260, 10), 0, 'the same slice again: nothing left released');
  t.equal(await wins(start + 1_950, 10), 3, 'the last slice releases the rest (20), 3 of 7 at the cap');
  t.equal(await wins(start + 5_000, 10), 0, 'after the prize\'s window it leaves the pool');
  await l.waitFor('projected', async () => (await drawEvents(l, A)) === n);
  const slices = await l.rt.pool.query(
    `select (extract(epoch from drawn_at) * 10)::bigint as slice, count(*)::int as n from draw_wins where activity_id = $1 group by 1`, [A]);
  t.ok(slices.rows.every((r) => r.n <= 3), 'no 100 ms slice issued more than its cap');
  t.equal(slices.rows.reduce((s, r) => s + r.n, 0), 16);
});

t.test('the child live at the draw\'s time answers; children are isolated; windows and limits answer 4xx', async (t) => {
  const start = Date.now() + 3_600_000;
  const clock = manualClock(start + 1_000);
  const l = await startTestLedger(t, { app: { drawClock: clock.now } });
  const A = act();
  const prizes = [{ prizeId: 'p', name: 'p', weight: 1, quota: 1, itemId: 'x' }];
  await putConfig(l, {
    activityId: A, name: 'two stages', currency: 'CNY',
    children: [
      { childId: 'internal', stage: 'internal_test', startsAt: iso(start), endsAt: iso(start + 60_000), winLimit: 1, scenes: [scene({ prizes, rateLimit: { draws: 2, perMs: 5_000 } })] },
      { childId: 'launch', stage: 'formal', startsAt: iso(start + 120_000), endsAt: iso(start + 180_000), scenes: [scene({ prizes, startsAt: iso(start + 150_000) })] },
    ],
  });
  const first = await draw(l, A, 'u-1', 'i-1');
  t.match(first.json, { childId: 'internal', stage: 'internal_test', outcome: 'won' });
  const limited = await draw(l, A, 'u-1', 'i-2');
  t.match(limited.json, { outcome: 'no_win', reason: 'win_limit' }, 'one win per user in this child');
  const tooOften = await draw(l, A, 'u-1', 'i-3');
  t.equal(tooOften.statusCode, 429);
  t.equal(tooOften.json.code, 'RATE_LIMITED');
  t.ok(Number(tooOften.headers['retry-after']) >= 1, 'with a Retry-After');
  const retried = await draw(l, A, 'u-1', 'i-1');
  t.equal(retried.statusCode, 200, 'a retry of an earlier draw is not rate limited');

  clock.set(start + 90_000);
  const between = await draw(l, A, 'u-1', 'b-1');
  t.equal(between.statusCode, 409);
  t.equal(between.json.code, 'ACTIVITY_NOT_LIVE');
  t.match(between.json.message, iso(start + 120_000), 'and says when the next child starts');
  clock.set(start + 130_000);
  const early = await draw(l, A, 'u-1', 'e-1');
  t.equal(early.statusCode, 409);
  t.equal(early.json.code, 'OUTSIDE_PARTICIPATION_WINDOW');
  clock.set(start + 160_000);
  const launched = await draw(l, A, 'u-1', 'l-1');
  t.match(launched.json, { childId: 'launch', stage: 'formal', outcome: 'won' }, 'the formal launch has its own quota and win counts');

  t.equal((await draw(l, A, 'u-1', 'x-1', 'nope')).json.code, 'UNKNOWN_SCENE');
  t.equal((await draw(l, 'no-such-campaign', 'u-1', 'x-2')).json.code, 'UNKNOWN_ACTIVITY');
  const bad = await l.signed('POST', '/v1/draws', { activityId: A, sceneId: 'shake', userId: 'u-1', drawId: 'x 3' });
  t.equal(bad.statusCode, 400);
  const extra = await l.signed('POST', '/v1/draws', { activityId: A, sceneId: 'shake', userId: 'u-1', drawId: 'x4', amount: 5 });
  t.equal(extra.json.code, 'UNKNOWN_FIELD');
  const unsigned = await l.app.inject({ method: 'POST', url: '/v1/draws', payload: { activityId: A, sceneId: 'shake', userId: 'u-1', drawId: 'x5' } });
  t.equal(unsigned.statusCode, 401);
  await l.waitFor('projected', async () => (await drawEvents(l, A)) === 3);
  t.equal(await drawEvents(l, A), 3, 'refused requests are not draws: only the three draws are in the log');
});

t.test('pass-through answers "no win" before any work, the same way on every retry', async (t) => {
  const l = await startTestLedger(t);
  const A = act();
  await putConfig(l, campaign(A, [scene({ prizes: [{ prizeId: 'p', name: 'p', weight: 1, quota: 1_000, itemId: 'x' }] })], undefined, 2, { passThroughBp: 5_000 }));
  const outcomes = [];
  for (let i = 0; i < 200; i++) outcomes.push((await draw(l, A, `u-${i}`, `pt-${i}`)).json);
  const passed = outcomes.filter((o) => o.reason === 'pass_through');
  t.ok(passed.length > 60 && passed.length < 140, `about half pass through (${passed.length} of 200)`);
  t.ok(outcomes.filter((o) => o.reason !== 'pass_through').every((o) => o.outcome === 'won'), 'the rest are drawn');
  const again = await draw(l, A, 'u-0', 'pt-0');
  t.equal(again.json.reason, outcomes[0].reason, 'a retry gets the same answer');
  await l.waitFor('projected', async () => (await drawEvents(l, A)) === 200 - passed.length);
  const keys = await l.rt.redis.keys(`${l.ns}:{dr:${A}:formal}:d:*`);
  t.equal(keys.length, 200 - passed.length, 'a passed-through draw touched neither Redis nor Kafka');
});

t.test('a cash prize the budget cannot pay goes back to its quota and the draw picks again', async (t) => {
  const l = await startTestLedger(t, { app: { drawRandom: seeded(7) } });
  const A = act();
  await putConfig(l, campaign(A, [scene({
    awardType: 'cash', prizes: [{ prizeId: 'big', name: '1 CNY', weight: 1_000, quota: 10, amount: 100 }, { prizeId: 'small', name: '1 fen', weight: 1, quota: 10, amount: 1 }],
  })]));
  const child = ledgerActivityOf(A, 'formal');
  await l.admin('POST', `/v1/admin/activities/${child}/fundings`, { fundingId: 'f1', amount: 205, currency: 'CNY' });
  const prizes = [];
  for (let i = 0; i < 4; i++) {
    const r = await draw(l, A, `u-${i}`, `b-${i}`);
    t.equal(r.statusCode, 201, JSON.stringify(r.json));
    prizes.push(r.json.prize?.prizeId ?? r.json.reason);
  }
  t.same(prizes, ['big', 'big', 'small', 'small'], 'two of 1 CNY exhaust the budget; then the 1 fen prize is picked instead');
  const quotas = await l.rt.redis.hgetall(`${l.ns}:{dr:${A}:formal}:issued`);
  t.same(quotas, { big: '2', small: '2' }, 'the units of the big prize that could not be paid went back');
  await l.waitFor('projected', async () => (await drawEvents(l, A)) === 4);
  const budget = await l.rt.pool.query('select balance from account_balances where account = $1', [`activity:${child}:budget`]);
  t.equal(Number(budget.rows[0].balance), 3, 'the budget paid 202 of 205 and never went below zero');
});

t.test('Redis loses its data mid-campaign: the counters are rebuilt from the projection and no quota is exceeded', async (t) => {
  const l = await startTestLedger(t, { config: { drawRestoreGraceMs: 500 } });
  const A = act();
  const quotas: Record<string, number> = { a: 300, b: 300 };
  await putConfig(l, campaign(A, [scene({
    noWinWeight: 30, rateLimit: { draws: 100, perMs: 60_000 },
    prizes: Object.entries(quotas).map(([prizeId, quota]) => ({ prizeId, name: prizeId, weight: 30, quota, itemId: prizeId })),
  })], undefined, 2, { winLimit: 2 }));
  const N = 1_500;
  const told = new Map<string, number>();
  const winsOf = new Map<string, number>();
  let next = 0;
  let flushed = false;
  const reasons = new Map<string, number>();
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= N) return;
      if (i === 300 && !flushed) {
        flushed = true;
        // Everything this ledger keeps in Redis, gone, while draws are in flight.
        const keys = await l.rt.redis.keys(`${l.ns}:*`);
        await l.rt.redis.del(...keys);
      }
      const user = `u-${i % 400}`;
      const r = await draw(l, A, user, `f-${i}`);
      if (r.statusCode !== 201) throw new Error(`draw ${i}: ${r.statusCode} ${JSON.stringify(r.json)}`);
      reasons.set(r.json.reason ?? 'won', (reasons.get(r.json.reason ?? 'won') ?? 0) + 1);
      if (r.json.outcome === 'won') {
        told.set(r.json.prize.prizeId, (told.get(r.json.prize.prizeId) ?? 0) + 1);
        winsOf.set(user, (winsOf.get(user) ?? 0) + 1);
      }
    }
  };
  await Promise.all(Array.from({ length: 40 }, worker));
  t.ok(flushed);
  t.ok((reasons.get('win_limit') ?? 0) > 0 && (reasons.get('pool_empty') ?? 0) > 0, `the limits were reached (${JSON.stringify(Object.fromEntries(reasons))})`);
  t.same(Object.fromEntries(told), quotas, 'winners were told of exactly each quota across the loss');
  t.ok([...winsOf.values()].every((n) => n <= 2), 'and no user won more than the win limit of 2');
  await l.waitFor('all draws projected', async () => (await drawEvents(l, A)) === N, 60_000);
  t.same(Object.fromEntries(await projectedWins(l, A)), quotas, 'the projection issued exactly each quota');
  const redis = await l.rt.redis.hgetall(`${l.ns}:{dr:${A}:formal}:issued`);
  t.same(redis, { a: '300', b: '300' }, 'and the rebuilt counters agree with it');
  t.same((await checkInvariants(l.rt.pool, { budgetLag: async () => 0 })).violations, [], 'the invariant checker agrees');
  // Tampering: one more unit of "a" than its quota, in the projection only.
  await l.rt.pool.query(`update prize_consumption set issued = issued + 1 where activity_id = $1 and prize_id = 'a'`, [A]);
  t.same((await checkInvariants(l.rt.pool, { budgetLag: async () => 0 })).violations, [
    { kind: 'prize_over_quota', activityId: A, childId: 'formal', prizeId: 'a', issued: 301, quota: 300, configVersion: 1 },
    { kind: 'prize_consumption_drift', activityId: A, childId: 'formal', prizeId: 'a', issued: 301, wins: 300 },
  ], 'an over-issue in the projection is named, with the prize and its quota');
});

t.test('Kafka fails after Redis took the unit: the draw is journaled and answered, and reaches the log once, when Kafka is back', async (t) => {
  const l = await startTestLedger(t);
  const A = act();
  await putConfig(l, campaign(A, [scene({ prizes: [{ prizeId: 'p', name: 'p', weight: 1, quota: 5, itemId: 'x' }] })]));
  const publishInOrder = l.rt.publisher.publishInOrder;
  l.rt.publisher.publishInOrder = async () => { throw new Error('kafka is down'); };
  const accepted = await draw(l, A, 'u-1', 'k-1');
  t.equal(accepted.statusCode, 201, 'the answer waits for the journal, not for Kafka');
  t.match(accepted.json, { outcome: 'won', prize: { prizeId: 'p' } });
  await new Promise((r) => setTimeout(r, 500));
  t.equal(await drawEvents(l, A), 0, 'nothing reached the ledger while Kafka was down');
  l.rt.publisher.publishInOrder = publishInOrder;
  const retried = await draw(l, A, 'u-1', 'k-1');
  t.equal(retried.statusCode, 200, 'the retry finds the draw already made');
  t.same(retried.json, accepted.json, 'and gets its first answer');
  t.same(await l.rt.redis.hgetall(`${l.ns}:{dr:${A}:formal}:issued`), { p: '1' }, 'one unit taken, not two');
  await l.waitFor('projected', async () => (await drawEvents(l, A)) === 1);
  t.same(Object.fromEntries(await projectedWins(l, A)), { p: 1 });
});

t.test('counters cannot be rebuilt while the projection is behind: draws answer 503 and nothing is taken', async (t) => {
  const l = await startTestLedger(t, { projector: false, config: { drawRestoreGraceMs: 0, drawRestoreWaitMs: 1_000 } });
  const A = act();
  await putConfig(l, campaign(A, [scene({ prizes: [{ prizeId: 'p', name: 'p', weight: 1, quota: 5, itemId: 'x' }] })]));
  // Something on the wallet topic the (stopped) projector has not applied.
  await l.rt.publisher.publish('GoodsGranted', {
    eventId: goodsGrantIdFor('other', 'o-1'), grantId: goodsGrantIdFor('other', 'o-1'), occurredAt: Date.now(), activityId: 'other', traceId: 't',
    orderNo: 'o-1', userId: 'u-0', sceneId: 's', itemId: 'x', quantity: 1, grantedBy: 'test', clientAddress: '-', requestId: 'r',
  });
  const refused = await draw(l, A, 'u-1', 'r-1');
  t.equal(refused.statusCode, 503);
  t.equal(refused.json.code, 'DRAWS_RESTORING');
  t.equal(refused.headers['retry-after'], '1');
  t.same(await l.rt.redis.hgetall(`${l.ns}:{dr:${A}:formal}:issued`), {}, 'no unit was taken');
  const projector = new LedgerProjector(l.rt);
  await projector.start();
  t.teardown(() => projector.stop());
  const drawn = await draw(l, A, 'u-1', 'r-1');
  t.equal(drawn.statusCode, 201, 'once the projection caught up, the same draw goes through');
});
