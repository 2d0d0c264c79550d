import t from 'tap';
import { startTestLedger, type TestLedger } from './helpers/ledger.ts';
import { BudgetStore } from '../infra/budget.ts';
import { Journal, JournalRelay, shardOf } from '../infra/journal.ts';
import { openRuntime } from '../infra/runtime.ts';
import { account } from '../domain/accounts.ts';
import { tokenIdFor } from '../domain/grants.ts';
import { replayTopics } from '../reconcile/replay.ts';
import { kafkaClient } from '../infra/kafka.ts';
import fc from 'fast-check';
import { randomUUID } from 'node:crypto';
import { campaign, draw, putConfig, scene } from './helpers/campaigns.ts';

// Redis loses everything of this namespace (what FLUSHALL or a restart without persistence
// does to it), without disturbing other namespaces on the shared server.
async function loseRedis(l: TestLedger): Promise<number> {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await l.rt.redis.scan(cursor, 'MATCH', `${l.ns}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) n += await l.rt.redis.del(...keys);
  } while (cursor !== '0');
  return n;
}

const grant = (act: string, orderNo: string, userId: string, amount: number) => ({ activityId: act, sceneId: 's', orderNo, userId, amount, currency: 'CNY' });

async function projectedBudget(l: TestLedger, act: string): Promise<number> {
  const { rows } = await l.rt.pool.query('select balance from account_balances where account = $1', [account.activityBudget(act)]);
  return rows[0]?.balance ?? 0;
}

t.test('Redis lost in the middle of concurrent grants: no over-issue, every order number keeps its first answer', async (t) => {
  const l = await startTestLedger(t);
  const act = await l.activity({ budget: 3_000 });
  const budget = new BudgetStore(l.rt.pool);
  // 60 grants of 100 against 3,000: half can be paid. Redis is emptied while they run.
  const first = await Promise.all(Array.from({ length: 60 }, (_, i) => {
    if (i === 20) void loseRedis(l);
    return l.signed('POST', '/v1/grants', grant(act, `o-${i}`, `u-${i % 7}`, 100));
  }));
  const accepted = first.filter((r) => r.statusCode === 201);
  t.equal(accepted.length, 30, 'exactly what the funding covers was accepted');
  t.ok(first.every((r) => r.statusCode === 201 || r.json.code === 'BUDGET_EXHAUSTED'), 'the rest were refused for budget');
  t.same(await budget.snapshot(act), { funded: 3_000, reserved: 3_000 });

  await loseRedis(l);
  // Re-posting the funding after the loss adds nothing.
  const refund = await l.admin('POST', `/v1/admin/activities/${act}/fundings`, { fundingId: 'initial', amount: 3_000, currency: 'CNY' });
  t.equal(refund.statusCode, 200);
  t.equal(refund.json.added, false, 'a funding re-posted after Redis lost its data adds nothing');
  t.same(await budget.snapshot(act), { funded: 3_000, reserved: 3_000 });

  // Retries after the loss: the same order gets the same answer; another amount is a conflict, not a new grant.
  for (const [i, r] of first.entries()) {
    const again = await l.signed('POST', '/v1/grants', grant(act, `o-${i}`, `u-${i % 7}`, 100));
    if (r.statusCode === 201) {
      t.equal(again.statusCode, 201);
      t.equal(again.json.token, r.json.token, `order o-${i}: its first token`);
      t.equal(again.headers['idempotent-replayed'], 'true');
      const changed = await l.signed('POST', '/v1/grants', grant(act, `o-${i}`, `u-${i % 7}`, 150));
      t.equal(changed.json.code, 'ORDER_CONFLICT', `order o-${i} with another amount is refused`);
    } else {
      t.equal(again.json.code, 'BUDGET_EXHAUSTED', `order o-${i}: still no budget`);
    }
  }
  await l.waitFor('every grant projected', async () => (await projectedBudget(l, act)) === 0);
  await new Promise((r) => setTimeout(r, 300));
  const { rows } = await l.rt.pool.query("select count(*)::int as n from ledger_events where event_type = 'TokenIssued' and activity_id = $1", [act]);
  t.equal(rows[0].n, 30, 'thirty tokens in the ledger');
  t.equal(await projectedBudget(l, act), 0, 'the budget account is spent, never below zero');
  t.same((await l.cleanFold()).anomalies, [], 'a clean fold of the log agrees');
});

t.test('a draw id is one outcome for ever: after Redis loses the draw, a retry gets its first answer and the unit is not taken twice', async (t) => {
  const l = await startTestLedger(t, { config: { drawRestoreGraceMs: 0 } });
  const A = `shake-${randomUUID().slice(0, 8)}`;
  await putConfig(l, campaign(A, [scene({ awardType: 'cash', noWinWeight: 1, prizes: [{ prizeId: 'cash', name: 'cash', weight: 1, quota: 40, amount: 50 }] })]));
  const fund = await l.admin('POST', `/v1/admin/activities/${A}:formal/fundings`, { fundingId: 'f', amount: 10_000, currency: 'CNY' });
  t.equal(fund.statusCode, 201);
  const firsts = [];
  for (let i = 0; i < 30; i++) firsts.push(await draw(l, A, `u-${i}`, `d-${i}`));
  t.ok(firsts.every((r) => r.statusCode === 201), 'every draw answered');
  const wins = firsts.filter((r) => r.json.outcome === 'won').length;
  t.ok(wins > 0 && wins < 30, `a mix of wins and no-wins (${wins} wins)`);

  await loseRedis(l);
  for (const [i, r] of firsts.entries()) {
    const again = await draw(l, A, `u-${i}`, `d-${i}`);
    t.equal(again.statusCode, 200, `draw d-${i} is recognised after the loss`);
    t.same(again.json, r.json, `draw d-${i} keeps its first outcome`);
  }
  const budget = await new BudgetStore(l.rt.pool).snapshot(`${A}:formal`);
  t.equal(budget.reserved, wins * 50, 'cash paid once per won draw');
  const issued = await l.rt.redis.hgetall(`${l.ns}:{dr:${A}:formal}:issued`);
  t.equal(Number(issued.cash ?? 0), wins, 'the rebuilt quota counts each win once');
  await l.waitFor('wins projected', async () => {
    const { rows } = await l.rt.pool.query("select count(*)::int as n from ledger_events where event_type = 'TokenIssued' and activity_id = $1", [`${A}:formal`]);
    return rows[0].n === wins;
  });
});

t.test('the relay keeps each key\'s order across instances, produces every command once, and reports its depth', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  const act = await l.activity({ budget: 1_000_000 });
  // A second instance's relay on the same namespace: the shards are shared between the two.
  const rt2 = await openRuntime('relay-2', { namespace: l.ns, partitions: 3, produceLingerMs: 1 });
  const relay2 = new JournalRelay({ pool: rt2.pool, publisher: rt2.publisher, log: rt2.log, namespace: l.ns, shards: rt2.cfg.journalShards, pollMs: 20, retentionSec: 3600 });
  relay2.start();
  t.teardown(async () => { await relay2.stop(); await rt2.close(); });
  const journal = new Journal({ pool: l.rt.pool, topics: l.rt.topics, shards: l.rt.cfg.journalShards, maxBatch: 50 });

  // Ten users, each with a run of grants sent one after another (so their acceptance order is defined).
  const users = Array.from({ length: 10 }, (_, u) => `u-${u}`);
  await Promise.all(users.map(async (u) => {
    for (let i = 0; i < 20; i++) {
      const r = await l.signed('POST', '/v1/grants', grant(act, `${u}-o-${i}`, u, 1 + i));
      if (r.statusCode !== 201) throw new Error(JSON.stringify(r.json));
    }
  }));
  await l.waitFor('the journal drained', async () => (await journal.depth()).unproduced === 0);
  t.same(await journal.depth(), { unproduced: 0, oldestAgeMs: 0 });
  t.same((await l.admin('GET', '/v1/admin/journal')).json, { unproduced: 0, oldestAgeMs: 0 }, 'operators see it too');

  const seen = new Map<string, number[]>();
  let count = 0;
  await replayTopics(kafkaClient(l.rt.cfg, `${l.ns}-order`), l.rt.codec, [l.rt.topics.wallet], (e) => {
    if (e.type !== 'TokenIssued') return;
    count++;
    const list = seen.get(e.data.userId) ?? [];
    list.push(Number(e.data.orderNo.split('-o-')[1]));
    seen.set(e.data.userId, list);
  });
  t.equal(count, 200, 'every command produced exactly once (the relays shared the work without copies)');
  for (const u of users) t.same(seen.get(u), Array.from({ length: 20 }, (_, i) => i), `${u}'s grants are in the log in the order they were accepted`);
});

t.test('while Kafka cannot be written, grants are accepted and the journal\'s depth and oldest age grow; then it drains, each event once', async (t) => {
  const l = await startTestLedger(t);
  const act = await l.activity({ budget: 10_000 });
  await l.waitFor('the funding produced', async () => (await l.admin('GET', '/v1/admin/journal')).json.unproduced === 0);
  const publishInOrder = l.rt.publisher.publishInOrder;
  l.rt.publisher.publishInOrder = async () => { throw new Error('kafka is down (test)'); };
  const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => l.signed('POST', '/v1/grants', grant(act, `down-${i}`, `u-${i % 3}`, 10))));
  t.ok(answers.every((a) => a.statusCode === 201), 'all accepted during the outage');
  await new Promise((r) => setTimeout(r, 300));
  const during = (await l.admin('GET', '/v1/admin/journal')).json;
  t.equal(during.unproduced, 20, 'twenty commands wait');
  t.ok(during.oldestAgeMs >= 300, `the oldest has waited ${during.oldestAgeMs} ms`);
  l.rt.publisher.publishInOrder = publishInOrder;
  await l.waitFor('drained', async () => (await l.admin('GET', '/v1/admin/journal')).json.unproduced === 0, 15_000);
  await l.waitFor('projected', async () => (await projectedBudget(l, act)) === 10_000 - 200);
  const { rows } = await l.rt.pool.query("select count(*)::int as n from ledger_events where event_type = 'TokenIssued'");
  t.equal(rows[0].n, 20, 'each grant in the ledger once');
});

t.test('a journal that cannot be written answers 503 at once and accepts nothing', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  const act = await l.activity({ budget: 1_000 });
  const budget = new BudgetStore(l.rt.pool);
  await l.rt.pool.query('alter table journal rename to journal_away');
  t.teardown(() => l.rt.pool.query('alter table journal_away rename to journal').catch(() => {}));
  const started = Date.now();
  const r = await l.signed('POST', '/v1/grants', grant(act, 'o-1', 'u-1', 100));
  t.equal(r.statusCode, 503);
  t.equal(r.json.code, 'LEDGER_UNAVAILABLE');
  t.match(r.json.message, /retry with the same orderNo/);
  t.ok(r.headers['retry-after'], 'with a retry hint');
  t.ok(Date.now() - started < 2_000, 'fast');
  await l.rt.pool.query('alter table journal_away rename to journal');
  t.same(await budget.snapshot(act), { funded: 1_000, reserved: 0 }, 'nothing was reserved');
  const retry = await l.signed('POST', '/v1/grants', grant(act, 'o-1', 'u-1', 100));
  t.equal(retry.statusCode, 201, 'the retry is accepted once the journal is back');
  t.equal(tokenIdFor(act, 'o-1'), retry.json.tokenId);
});

t.test('shardOf spreads keys over every shard and always gives a key the same one', async (t) => {
  fc.assert(fc.property(fc.string(), fc.integer({ min: 1, max: 64 }), (key, shards) => {
    const s = shardOf(key, shards);
    return Number.isInteger(s) && s >= 0 && s < shards && shardOf(key, shards) === s;
  }));
  const counts = new Array(16).fill(0);
  for (let i = 0; i < 16_000; i++) counts[shardOf(`user-${i}`, 16)]++;
  t.ok(counts.every((c) => c > 700 && c < 1300), `even enough: ${counts.join(',')}`);
});
