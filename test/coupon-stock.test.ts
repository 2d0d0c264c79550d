import t from 'tap';
import { startTestLedger, type TestLedger } from './helpers/ledger.ts';
import { grantPack, spendPack } from './helpers/coupons.ts';
import { templateCountsOf } from '../domain/coupons.ts';
import { checkInvariants } from '../projections/invariants.ts';
import { consumption, logOf, projected } from './helpers/coupons.ts';

t.test('5,000 concurrent grants never take more than the stock', async (t) => {
  const l = await startTestLedger(t);
  await spendPack(l, { stock: 1000, lowStockPercent: 10 });
  // Every tenth grant is sent twice at once, as a client retrying after a timeout.
  const sends = Array.from({ length: 5000 }, (_, i) => i).flatMap((i) => {
    const send = () => grantPack(l, { orderNo: `o-${i}`, userId: `u-${i % 1500}` });
    return i % 10 === 0 ? [send, send] : [send];
  });
  // All at once: far more than the API's Postgres pool, so grants queue and race for stock on every step.
  const answers: Awaited<ReturnType<typeof grantPack>>[] = [];
  let next = 0;
  const started = Date.now();
  await Promise.all(Array.from({ length: sends.length }, async () => {
    while (next < sends.length) {
      const k = next++;
      answers[k] = await sends[k]!();
    }
  }));
  t.comment(`${sends.length} grant requests in ${Date.now() - started} ms`);
  const byOrder = new Map<string, Set<string>>();
  let created = 0;
  let replayed = 0;
  let outOfStock = 0;
  let lowSeen = 0;
  let lowRight = true;
  for (const a of answers) {
    if (a.statusCode === 201) created++;
    else if (a.statusCode === 200) replayed++;
    else if (a.statusCode === 409 && a.json.code === 'OUT_OF_STOCK') outOfStock++;
    else t.fail(`unexpected answer ${a.statusCode} ${JSON.stringify(a.json)}`);
    if (a.statusCode < 300) {
      const set = byOrder.get(a.json.orderNo) ?? new Set();
      set.add(a.json.grantId);
      byOrder.set(a.json.orderNo, set);
      if (a.statusCode === 201 && a.json.lowStock) lowSeen++;
      // The signal is exactly "some template below 10% left" of the stock the answer reports.
      if (a.json.lowStock !== a.json.stock.some((x: any) => x.remaining * 100 < x.total * 10)) lowRight = false;
    }
  }
  t.equal(created, 1000, 'exactly the stock was granted');
  t.ok([...byOrder.values()].every((s) => s.size === 1), 'an order and its retry got one grant');
  t.equal(replayed + created + outOfStock, answers.length);
  t.ok(lowRight, 'every answer raises the low-stock signal exactly when a template is below 10% left');
  t.ok(lowSeen >= 50, `the last grants before the stock ran out were told it is low (${lowSeen} of 1000 grants)`);
  t.ok(answers.filter((a) => a.statusCode === 409).every((a) => a.json.details.stock.every((x: any) => x.remaining === 0)), 'out-of-stock answers say none is left');
  const { rows } = await l.rt.pool.query(`select template_id, sum(taken)::int as taken, bool_and(taken <= capacity) as within from coupon_stock
                                            where template_id like '%android%' group by 1 order by 1`);
  t.same(rows.map((r) => [r.taken, r.within]), [[1000, true], [1000, true], [1000, true]], 'the stock counters stopped at the total');
  await projected(l);
  const cons = await consumption(l);
  t.same(['five', 'ten', 'twenty'].map((s) => [cons[`spring-pack.android.${s}`].issued, cons[`spring-pack.android.${s}`].remaining]), [[1000, 0], [1000, 0], [1000, 0]]);
  const log = await logOf(l);
  // A grant may be produced twice (an order's retry re-produces it); the ledger applies it once by its id.
  t.equal(new Set(log.filter((e) => e.type === 'GiftPackGranted').map((e) => e.data.eventId)).size, 1000, 'the log holds one grant per granted order');
  const fold = await l.cleanFold();
  const counts = new Map<string, number>();
  for (const p of fold.packs.values()) for (const [id, c] of templateCountsOf(p)) counts.set(id, (counts.get(id) ?? 0) + c.issued);
  t.same([...counts.values()], [1000, 1000, 1000], 'a replay of the log gives the same consumption');
  t.same(fold.anomalies, []);
  const inv = await checkInvariants(l.rt.pool, { budgetLag: async () => 0 });
  t.same(inv.violations, [], 'the invariant checker is clean');
});

