import t from 'tap';
import { randomUUID } from 'node:crypto';
import { SchemaRegistry, SchemaType, COMPATIBILITY } from '@kafkajs/confluent-schema-registry';
import { account } from '../domain/accounts.ts';
import { ledgerActivityOf } from '../domain/campaigns.ts';
import { creditEventIdFor } from '../domain/grants.ts';
import type { TokenIssued } from '../domain/events.ts';
import { checkInvariants } from '../projections/invariants.ts';
import { replayTopics } from '../reconcile/replay.ts';
import { schemaOf, subjectFor } from '../schemas/codec.ts';
import { startTestLedger, type TestLedger } from './helpers/ledger.ts';
import { audit, ofKind } from './helpers/audit.ts';
import { campaign, draw, putConfig, scene } from './helpers/campaigns.ts';
import { issued } from './helpers/events.ts';

// Ledger invariant I10: every reserving command takes the next slice of its activity's
// reservations, its TokenIssued carries it, the fold refuses a token its slice does not cover,
// and the audit and the invariant check hold the slices against the fundings on the log.

const grant = (l: TestLedger, activityId: string, orderNo: string, userId: string, amount: number) =>
  l.signed('POST', '/v1/grants', { activityId, sceneId: 's', orderNo, userId, amount, currency: 'CNY' });

/** An activity's TokenIssued events as the log has them (Avro, through the registry), once it has `count`. */
async function loggedTokens(l: TestLedger, activityId: string, count: number): Promise<TokenIssued[]> {
  await l.waitFor(`${count} tokens of ${activityId} in the log`, async () => (await l.rt.pool.query(
    `select count(*)::int as n from ledger_events where event_type = 'TokenIssued' and activity_id = $1`, [activityId])).rows[0].n >= count);
  const out: TokenIssued[] = [];
  await replayTopics(l.rt.kafka, l.rt.codec, [l.rt.topics.wallet], (e) => {
    if (e.type === 'TokenIssued' && e.data.activityId === activityId) out.push(e.data);
  });
  return out.sort((a, b) => a.budgetSliceEnd! - b.budgetSliceEnd!);
}

/** Slices sorted by start must tile [0, reserved): each starts where the one before ended. */
function tiles(tokens: readonly { amount: number; budgetSliceEnd: number | null }[]): { tiled: boolean; end: number } {
  const sorted = [...tokens].sort((a, b) => (a.budgetSliceEnd! - a.amount) - (b.budgetSliceEnd! - b.amount));
  let end = 0;
  for (const tk of sorted) {
    if (tk.budgetSliceEnd === null || tk.budgetSliceEnd - tk.amount !== end) return { tiled: false, end };
    end = tk.budgetSliceEnd;
  }
  return { tiled: true, end };
}

const healthyInvariants = (l: TestLedger) => checkInvariants(l.rt.pool, { budgetLag: async () => 0, settleMs: 0 });

t.test('grants and cash draws take disjoint budget slices, carried by their TokenIssued through Kafka to the projection', async (t) => {
  const l = await startTestLedger(t);
  const act = await l.activity({ budget: 10_000 });

  for (const [i, amount] of [100, 200, 300].entries()) t.equal((await grant(l, act, `seq-${i}`, 'u-seq', amount)).statusCode, 201);
  t.same((await loggedTokens(l, act, 3)).map((e) => [e.amount, e.budgetSliceEnd, e.budgetFunded]), [[100, 100, 10_000], [200, 300, 10_000], [300, 600, 10_000]],
    'each grant takes [reserved, reserved + amount) and records the funding it was accepted against');
  t.equal((await l.admin('POST', `/v1/admin/activities/${act}/fundings`, { fundingId: 'more', amount: 5_000, currency: 'CNY' })).statusCode, 201);

  // Concurrent grants, group-committed in batches: still one slice each, no gap, no overlap.
  const concurrent = await Promise.all(Array.from({ length: 60 }, (_, i) => grant(l, act, `par-${i}`, `u-${i % 9}`, 1 + ((i * 37) % 200))));
  t.ok(concurrent.every((r) => r.statusCode === 201), 'every concurrent grant accepted');
  const all = await loggedTokens(l, act, 63);
  t.equal(all.length, 63);
  const { rows: [budget] } = await l.rt.pool.query('select funded, reserved from budgets where activity_id = $1', [act]);
  t.same(tiles(all), { tiled: true, end: budget.reserved }, 'the slices tile exactly what the budget reserved');
  t.ok(all.slice(3).every((e) => e.budgetFunded === 15_000), 'the later grants record the second funding too');

  // Exhausted: refused, no slice taken; a retry of an accepted order keeps its first answer (and slice).
  const rest = 15_000 - budget.reserved;
  t.equal((await grant(l, act, 'too-big', 'u-big', rest + 1)).json.code, 'BUDGET_EXHAUSTED');
  t.equal((await grant(l, act, 'the-rest', 'u-big', rest)).statusCode, 201);
  const retry = await grant(l, act, 'seq-1', 'u-seq', 200);
  t.equal(retry.statusCode, 201);
  t.equal(retry.headers['idempotent-replayed'], 'true', 'a retry of an accepted grant is answered from the journal, budget exhausted or not');
  await new Promise((r) => setTimeout(r, 300));
  const after = await loggedTokens(l, act, 64);
  t.equal(after.length, 64, 'the refused grant and the retry produced nothing');
  t.same(tiles(after), { tiled: true, end: 15_000 });

  // Cash draws: the child's budget, the same slices.
  const A = `slices-${randomUUID().slice(0, 8)}`;
  await putConfig(l, campaign(A, [scene({ sceneId: 'cash', awardType: 'cash', prizes: [{ prizeId: 'cash-50', name: '0.50', weight: 1, quota: 40, amount: 50 }] })]));
  const child = ledgerActivityOf(A, 'formal');
  t.equal((await l.admin('POST', `/v1/admin/activities/${child}/fundings`, { fundingId: 'f1', amount: 1_000, currency: 'CNY' })).statusCode, 201);
  const draws = await Promise.all(Array.from({ length: 30 }, (_, i) => draw(l, A, `u-draw-${i}`, `d-${i}`, 'cash')));
  t.ok(draws.every((r) => r.statusCode === 201 || r.statusCode === 200), 'every draw answered');
  const wins = draws.filter((r) => r.json.prize?.prizeId === 'cash-50');
  t.equal(wins.length, 20, 'twenty wins of 50 exhaust 1,000; the rest find the prize unpayable');
  const drawTokens = await loggedTokens(l, child, 20);
  t.equal(drawTokens.length, 20);
  t.same(tiles(drawTokens), { tiled: true, end: 1_000 }, 'the cash wins\' slices tile the child\'s budget');
  t.ok(drawTokens.every((e) => e.budgetFunded === 1_000));

  // In the projection, and a fold of the log.
  await l.waitFor('every token projected', async () => (await l.rt.pool.query(
    'select count(*)::int as n from tokens where activity_id = any($1)', [[act, child]])).rows[0].n === 84);
  const fold = await l.cleanFold();
  t.same(fold.anomalies, [], 'a fold of the log refuses none of them');
  for (const e of [...after, ...drawTokens]) {
    if (fold.tokens.get(e.tokenId)?.budgetSliceEnd !== e.budgetSliceEnd) t.fail(`token ${e.tokenId}: the fold's slice differs from its event's`);
  }
  const { rows: projected } = await l.rt.pool.query('select token_id, budget_slice_end from tokens where activity_id = any($1)', [[act, child]]);
  const eventSlice = new Map([...after, ...drawTokens].map((e) => [e.tokenId, e.budgetSliceEnd]));
  t.ok(projected.every((r) => eventSlice.get(r.token_id) === Number(r.budget_slice_end)), 'the projection keeps each token\'s slice');
  const report = await audit(l);
  t.same(report.differences.filter((d) => d.kind.startsWith('budget_')), [], 'the audit finds the slices disjoint and funded');
  t.match(await healthyInvariants(l), { ok: true, violations: [] });
});

t.test('a TokenIssued produced straight to Kafka is refused without a slice or beyond its funding, and forged slices are flagged', async (t) => {
  const l = await startTestLedger(t, { crediting: true });
  const act = await l.activity({ budget: 1_000 });
  const honest = await grant(l, act, 'honest', 'u-honest', 300);
  t.equal(honest.statusCode, 201);
  await l.waitFor('the honest grant credited', async () => (await l.rt.pool.query(`select status from tokens where token_id = $1`, [honest.json.tokenId])).rows[0]?.status === 'credited');

  const now = Date.now();
  const noSlice = issued(act, 'u-forger', 'forged-none', 500, now, null);
  const beyond = issued(act, 'u-forger', 'forged-beyond', 500, now, { end: 2_000, funded: 1_000 });
  const short = issued(act, 'u-forger', 'forged-short', 500, now, { end: 400, funded: 1_000 });
  // Covered by what they claim, so the fold applies them; the log's fundings do not back them.
  const overlapping = issued(act, 'u-forger', 'forged-overlap', 100, now, { end: 300, funded: 1_000 });
  const inflated = issued(act, 'u-forger', 'forged-inflated', 100, now, { end: 5_100, funded: 6_000 });
  // One user, one partition, in this order: the crediting processor has passed the refused
  // tokens once it credits the last two.
  for (const e of [noSlice, beyond, short, overlapping, inflated]) await l.rt.publisher.publish('TokenIssued', e);
  await l.waitFor('the forged tokens the fold accepted are credited', async () => (await l.rt.pool.query(
    'select count(*)::int as n from ledger_events where event_id = any($1::uuid[])', [[overlapping, inflated].map((e) => creditEventIdFor(e.tokenId))])).rows[0].n === 2);

  const refused = [noSlice, beyond, short];
  const { rows: anomalies } = await l.rt.pool.query(`select event_id::text, kind, detail from ledger_anomalies where kind = 'token_uncovered' order by detail->>'amount'`);
  t.same(new Set(anomalies.map((a) => a.event_id)), new Set(refused.map((e) => e.eventId)), 'the projector recorded each refusal');
  t.match(anomalies.find((a) => a.event_id === beyond.eventId)?.detail, { kind: 'token_uncovered', activityId: act, amount: 500, sliceEnd: 2_000, funded: 1_000 });
  t.match(anomalies.find((a) => a.event_id === noSlice.eventId)?.detail, { sliceEnd: null, funded: null });
  const { rows: tokens } = await l.rt.pool.query('select token_id from tokens where token_id = any($1::uuid[])', [refused.map((e) => e.tokenId)]);
  t.same(tokens, [], 'no token for a refused one');
  const { rows: credits } = await l.rt.pool.query('select event_id from ledger_events where event_id = any($1::uuid[])', [refused.map((e) => creditEventIdFor(e.tokenId))]);
  t.same(credits, [], 'nor a credit');
  const balance = async (acct: string) => Number((await l.rt.pool.query('select balance from account_balances where account = $1', [acct])).rows[0]?.balance ?? 0);
  t.equal(await balance(account.user('u-forger', 'available')), 200, 'the forger holds only what the two accepted forgeries moved');
  t.equal(await balance(account.activityBudget(act)), 1_000 - 300 - 200, 'the refused tokens took nothing from the budget');

  const report = await audit(l);
  const rejected = ofKind(report, 'rejected_event').filter((d) => d.actual === 'token_uncovered');
  t.same(new Set(rejected.map((d) => d.events[0])), new Set(refused.map((e) => e.eventId)), 'the audit reports each refused token');
  t.same(ofKind(report, 'budget_over_issue'), [], 'the budget is not overdrawn: 500 of 1,000 issued');
  t.match(ofKind(report, 'budget_slice_overlap'), [{ activityId: act, tokenId: overlapping.tokenId, userId: 'u-forger', expected: '>= 300', actual: 200, events: [honest.json.tokenId, overlapping.tokenId] }],
    'but the forged token re-issued a slice an honest grant took');
  t.match(ofKind(report, 'budget_slice_beyond_funding'), [{ activityId: act, account: account.activityBudget(act), expected: '<= 1000', actual: 5_100, events: [inflated.tokenId] }],
    'and another claims a funding the log does not have');
  t.same(report.byKind.token_never_credited, undefined, 'a refused token is not owed a credit');

  const inv = await healthyInvariants(l);
  t.equal(inv.ok, false);
  t.match(inv.violations.filter((v) => v.kind.startsWith('budget_slice')), [
    { kind: 'budget_slice_overlap', activityId: act, tokenId: overlapping.tokenId, sliceStart: 200, sliceEnd: 300, previousEnd: 300 },
    { kind: 'budget_slice_beyond_funding', activityId: act, sliceEnd: 5_100, funded: 1_000 },
  ], 'the invariant check finds the same in the projection');
});

t.test('TokenIssued evolves compatibly: the registry takes the slice fields, and an event written before them is refused', async (t) => {
  const l = await startTestLedger(t);
  const act = await l.activity({ budget: 1_000 });
  const registry = new SchemaRegistry({ host: l.rt.cfg.schemaRegistryUrl });
  const current = schemaOf('TokenIssued');
  const before = { ...current, fields: current.fields.filter((f) => f.name !== 'budgetSliceEnd' && f.name !== 'budgetFunded') };
  t.equal(before.fields.length, current.fields.length - 2);

  // A subject that starts with the schema as it was: the new one is a BACKWARD-compatible next version.
  const subject = subjectFor(`${l.ns}.evolution.v1`, 'TokenIssued');
  const v1 = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(before) }, { subject, compatibility: COMPATIBILITY.BACKWARD });
  const v2 = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(current) }, { subject, compatibility: COMPATIBILITY.BACKWARD });
  t.not(v2.id, v1.id, 'the registry accepted the slices as a new version');

  // A producer still on the old schema, on the wallet topic itself.
  const old = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(before) }, { subject: subjectFor(l.rt.topics.wallet, 'TokenIssued'), compatibility: COMPATIBILITY.BACKWARD });
  const { budgetSliceEnd: _end, budgetFunded: _funded, ...data } = issued(act, 'u-old', 'old-writer', 100, Date.now());
  const producer = l.rt.kafka.producer();
  await producer.connect();
  t.teardown(() => producer.disconnect());
  await producer.send({ topic: l.rt.topics.wallet, acks: -1, messages: [{ key: 'u-old', value: await registry.encode(old.id, data) }] });
  await l.waitFor('projected', async () => (await l.rt.pool.query('select 1 from ledger_events where event_id = $1', [data.eventId])).rowCount === 1);
  const { rows } = await l.rt.pool.query('select kind, detail from ledger_anomalies where event_id = $1', [data.eventId]);
  t.match(rows, [{ kind: 'token_uncovered', detail: { sliceEnd: null, funded: null } }], 'decoded without a slice, and refused');
  t.equal((await l.rt.pool.query('select count(*)::int as n from tokens where token_id = $1', [data.tokenId])).rows[0].n, 0);
});
