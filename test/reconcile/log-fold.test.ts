import t from 'tap';
import fc from 'fast-check';
import { mergeFolds, splitRanges, type FoldOutcome } from '../../reconcile/log-fold.ts';
import { Digest } from '../../reconcile/digest.ts';
import { eventHash } from '../../reconcile/row-hash.ts';
import { IdSet } from '../../domain/id-set.ts';

t.test('splitRanges keeps every non-empty partition whole, once, in at most n groups of about equal size', async (t) => {
  const range = fc.record({ partition: fc.nat(40), size: fc.nat(1000) });
  fc.assert(fc.property(fc.uniqueArray(range, { selector: (r) => r.partition, maxLength: 30 }), fc.integer({ min: 1, max: 6 }), (rs, n) => {
    const ranges = rs.map((r) => ({ topic: 'w', partition: r.partition, start: 10, end: 10 + r.size }));
    const groups = splitRanges(ranges, n);
    const placed = groups.flat().map((r) => r.partition).sort((a, b) => a - b);
    const nonEmpty = ranges.filter((r) => r.end > r.start).map((r) => r.partition).sort((a, b) => a - b);
    const sizes = groups.map((g) => g.reduce((s, r) => s + r.end - r.start, 0));
    const largest = Math.max(0, ...ranges.map((r) => r.end - r.start));
    return groups.length <= n && groups.every((g) => g.length > 0) && JSON.stringify(placed) === JSON.stringify(nonEmpty)
      && (sizes.length === 0 || Math.max(...sizes) - Math.min(...sizes) <= largest);
  }));
});

const outcome = (ids: string[], balances: [string, number][], slices: FoldOutcome['slices'] = [], funded: FoldOutcome['funded'] = []): FoldOutcome => {
  const applied = new IdSet();
  const events = new Digest();
  for (const id of ids) {
    applied.add(id);
    events.add(parseInt(id.slice(0, 2), 16), eventHash(id));
  }
  return {
    events: ids.length, undecodable: 0, duplicates: 0, flows: { TokenIssued: { count: ids.length, amount: 10 * ids.length } },
    digests: { events: events.toData(), postings: new Digest().toData(), tokens: new Digest().toData(), withdrawals: new Digest().toData() },
    balances: balances.map(([a, b]) => [a, { currency: 'CNY', balance: b }]), pendingTokens: [], tokenCount: 0, withdrawals: [],
    packets: [], packetClaims: [], packetCredits: [], applied: applied.toData(), differences: [], slices, funded,
  };
};
const id = (n: number) => `${n.toString(16).padStart(8, '0')}-0000-8000-8000-000000000000`;

t.test('mergeFolds adds the parts up, and refuses parts that folded the same event', async (t) => {
  const a = outcome([id(1), id(2)], [['activity:x:budget', -30], ['user:u:pending', 30]]);
  const b = outcome([id(3)], [['activity:x:budget', -10], ['user:v:pending', 10]]);
  const m = mergeFolds([a, b])!;
  t.equal(m.events, 3);
  t.same(m.flows, { TokenIssued: { count: 3, amount: 30 } });
  t.same([...m.balances].map(([k, v]) => [k, v.balance]).sort(), [['activity:x:budget', -40], ['user:u:pending', 30], ['user:v:pending', 10]]);
  const whole = outcome([id(1), id(2), id(3)], []);
  t.same(m.digests.events.toData(), whole.digests.events, 'the digests of the parts add up to the digest of the whole');
  t.ok(m.applied.has(id(2)) && m.applied.has(id(3)) && !m.applied.has(id(4)), 'applied ids of every part');
  t.equal(mergeFolds([a, outcome([id(2)], [])]), null, 'an event folded in two parts: fold the log in one piece');
});

t.test('mergeFolds gathers an activity\'s budget slices and fundings from every part (I10)', async (t) => {
  const a = outcome([id(1)], [], [['x', { starts: [0, 30], ends: [10, 40] }]], [['y', 5]]);
  const b = outcome([id(2)], [], [['x', { starts: [10], ends: [30] }], ['y', { starts: [0], ends: [5] }]], [['x', 40], ['y', 1]]);
  const m = mergeFolds([a, b])!;
  t.same(m.slices.get('x'), { starts: [0, 30, 10], ends: [10, 40, 30] });
  t.same(m.slices.get('y'), { starts: [0], ends: [5] });
  t.same([...m.funded].sort(), [['x', 40], ['y', 6]]);
});
