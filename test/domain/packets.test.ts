import t, { type Test } from 'tap';
import fc from 'fast-check';
import { bestLuck, checkPacket, invalidSplit, maxShare, splitShares, type PacketTerms, type RandomInt } from '../../domain/packets.ts';
import { MemoryLedger, effectsOf, negativeBalances } from '../../domain/ledger.ts';
import { account } from '../../domain/accounts.ts';
import { fundingEventIdFor } from '../../domain/grants.ts';
import type { LedgerEvent } from '../../domain/events.ts';
import { creditFor, issued, packetClaimed, packetCreated, packetRefunded, shareCredited } from '../helpers/events.ts';

/** A deterministic random source from fast-check's integers, for reproducible splits. */
const seeded = (seed: number): RandomInt => {
  let s = seed >>> 0 || 1;
  return (min, max) => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return min + (s % (max - min + 1));
  };
};
const lowest: RandomInt = (min) => min;
const highest: RandomInt = (_min, max) => max;

function assertSplitRule(t: Test, total: number, count: number, shares: number[]): void {
  t.equal(shares.length, count);
  let remaining = total;
  shares.forEach((s, i) => {
    if (!Number.isSafeInteger(s) || s < 1 || s > maxShare(remaining, count - i)) t.fail(`share ${i} = ${s} of ${remaining} left, ${count - i} shares`);
    remaining -= s;
  });
  t.equal(remaining, 0, 'shares sum exactly to the total');
}

t.test('split property: exact sum, at least 1 fen each, at most twice the mean of what remains', async (t) => {
  let runs = 0;
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 200 }).chain((count) => fc.tuple(fc.constant(count), fc.integer({ min: count, max: 2_000_000 }), fc.integer())),
    ([count, total, seed]) => {
      for (const random of [seeded(seed), lowest, highest]) {
        const shares = splitShares(total, count, random);
        if (shares.length !== count) return false;
        if (shares.reduce((a, b) => a + b, 0) !== total) return false;
        if (shares.some((s) => !Number.isSafeInteger(s) || s < 1)) return false;
        if (invalidSplit(total, count, shares) !== null) return false;
      }
      runs++;
      return true;
    },
  ), { numRuns: 2_000, seed: 20_260_121 });
  t.equal(runs, 2_000);
  // The secure default source, over edge cases: one share, total == count, a big spread.
  for (const [total, count] of [[1, 1], [5, 5], [100, 1], [20_000, 100], [101, 100], [1_000_000, 7]] as const) {
    assertSplitRule(t, total, count, splitShares(total, count));
  }
});

t.test('split bounds are tight and the last share takes the remainder', async (t) => {
  // Always the smallest: every share but the last is 1 fen, the last takes the rest.
  t.same(splitShares(1000, 4, lowest), [1, 1, 1, 997]);
  // Always the largest: twice the mean of what remains, while 1 fen is left for each share after.
  t.same(splitShares(100, 4, highest), [50, 33, 16, 1]);
  t.same(splitShares(5, 5, highest), [1, 1, 1, 1, 1], 'total == count leaves exactly 1 fen each');
  t.equal(maxShare(10, 3), 6);
  t.equal(maxShare(3, 3), 1, 'never takes what later shares need');
  t.throws(() => splitShares(3, 4), /cannot split/);
  t.throws(() => splitShares(10, 0), /cannot split/);
});

t.test('a tampered split is named by invalidSplit', async (t) => {
  t.equal(invalidSplit(100, 3, [50, 30, 20]), null);
  t.match(invalidSplit(100, 3, [50, 50]), /2 shares, not 3/);
  t.match(invalidSplit(100, 3, [0, 50, 50]), /share 0 is 0 fen/);
  t.match(invalidSplit(100, 4, [25, 60, 10, 5]), /share 1 is 60 fen, outside \[1, 50\]/);
  t.match(invalidSplit(100, 3, [67, 32, 1]), /share 0 is 67 fen, outside \[1, 66\]/);
  t.match(invalidSplit(100, 3, [50, 30, 21]), /sum to 101, not 100/);
  t.match(invalidSplit(100, 2, [50.5, 49.5]), /share 0 is 50.5/);
});

const terms: PacketTerms = { currency: 'CNY', maxCount: 100, maxAmount: 20_000, minExpiryMs: 60_000, maxExpiryMs: 86_400_000 };

t.test('checkPacket refuses what no packet can be, with a code and a reason', async (t) => {
  const ok = { amount: 1000, currency: 'CNY', count: 10, expiryMs: 86_400_000 };
  t.equal(checkPacket(ok, terms), null);
  const code = (over: Partial<typeof ok>) => checkPacket({ ...ok, ...over }, terms)?.code;
  t.equal(code({ amount: 0 }), 'AMOUNT_NOT_POSITIVE_INTEGER');
  t.equal(code({ amount: 10.5 }), 'AMOUNT_NOT_POSITIVE_INTEGER');
  t.equal(code({ count: 0 }), 'COUNT_NOT_POSITIVE_INTEGER');
  t.equal(code({ count: 1e20 }), 'COUNT_NOT_POSITIVE_INTEGER', 'a count beyond safe integers');
  t.equal(code({ count: 101 }), 'COUNT_OVER_CAP');
  t.equal(code({ amount: 20_001 }), 'AMOUNT_OVER_CAP');
  t.equal(code({ amount: 9, count: 10 }), 'COUNT_ABOVE_TOTAL');
  t.equal(code({ currency: 'USD' }), 'CURRENCY_MISMATCH');
  t.equal(code({ expiryMs: 1000 }), 'EXPIRY_OUT_OF_RANGE');
  t.equal(code({ expiryMs: 86_400_001 }), 'EXPIRY_OUT_OF_RANGE');
  t.match(checkPacket({ ...ok, amount: 9 }, terms)?.message, /9 fen cannot give 10 shares/);
});

t.test('best luck is the largest share, the earliest grab on a tie', async (t) => {
  t.equal(bestLuck([]), null);
  const claims = [
    { seq: 0, amount: 30, claimedAt: 5 }, { seq: 1, amount: 50, claimedAt: 9 }, { seq: 2, amount: 50, claimedAt: 7 }, { seq: 3, amount: 20, claimedAt: 1 },
  ];
  t.equal(bestLuck(claims)?.seq, 2);
  t.equal(bestLuck([{ seq: 4, amount: 50, claimedAt: 7 }, ...claims])?.seq, 2, 'same time: the lower seq');
});

/** Gives a user an available balance the way the ledger does: a funded grant, credited. */
function fund(l: MemoryLedger, userId: string, amount: number): void {
  l.apply({ type: 'BudgetFunded', data: { eventId: fundingEventIdFor('a1', `f-${userId}`), occurredAt: 1, activityId: 'a1', traceId: 't', fundingId: `f-${userId}`, amount, currency: 'CNY', fundedBy: 't' } });
  const tok = issued('a1', userId, `o-${userId}`, amount, 1);
  l.apply({ type: 'TokenIssued', data: tok });
  l.apply({ type: 'TokenCredited', data: creditFor(tok, 2) });
}

const T0 = 1_800_000_000_000;
const DAY = 86_400_000;

t.test('a packet moves money: sender → escrow → grabbers pending → available, the rest back at expiry', async (t) => {
  const l = new MemoryLedger();
  fund(l, 's', 1000);
  const p = packetCreated('s', 'k1', 600, 3, T0, T0 + DAY, [100, 300, 200]);
  l.apply({ type: 'PacketCreated', data: p });
  t.equal(l.balance(account.user('s', 'available')), 400);
  t.equal(l.balance(account.packetEscrow(p.packetId)), 600);
  const c0 = packetClaimed(p, 'g1', 0, T0 + 10);
  const c1 = packetClaimed(p, 'g2', 1, T0 + 20);
  l.apply({ type: 'PacketClaimed', data: c0 });
  l.apply({ type: 'PacketClaimed', data: c1 });
  t.equal(l.balance(account.user('g2', 'pending')), 300, 'a claim lands in pending at once');
  l.apply({ type: 'PacketShareCredited', data: shareCredited(c1, T0 + 30) });
  t.equal(l.balance(account.user('g2', 'pending')), 0);
  t.equal(l.balance(account.user('g2', 'available')), 300, 'the credit makes it available');
  t.equal(l.packet(p.packetId)?.claimedAmount, 400);

  const early = effectsOf({ type: 'PacketRefunded', data: packetRefunded(p, 200, T0 + DAY - 1) }, l);
  t.same(early.postings, []);
  t.match(early.anomalies[0], { kind: 'refund_refused', reason: 'the packet has not expired' });
  const wrong = effectsOf({ type: 'PacketRefunded', data: packetRefunded(p, 201, T0 + DAY) }, l);
  t.match(wrong.anomalies[0], { kind: 'refund_refused', reason: /unclaimed rest is 200 CNY/ });

  l.apply({ type: 'PacketRefunded', data: packetRefunded(p, 200, T0 + DAY) });
  t.equal(l.balance(account.user('s', 'available')), 600);
  t.equal(l.balance(account.packetEscrow(p.packetId)), 0);
  t.equal(l.packet(p.packetId)?.status, 'refunded');
  const late = effectsOf({ type: 'PacketClaimed', data: packetClaimed(p, 'g3', 2, T0 + 40) }, l);
  t.match(late.anomalies[0], { kind: 'claim_refused', reason: 'the packet is refunded' }, 'a claim written before the refund but landing after it moves nothing');
  t.equal(l.total(), 0);
  t.same(l.anomalies, []);
});

t.test('the fold refuses claims the split does not allow', async (t) => {
  const l = new MemoryLedger();
  fund(l, 's', 1000);
  const p = packetCreated('s', 'k1', 600, 3, T0, T0 + DAY, [100, 300, 200]);
  l.apply({ type: 'PacketCreated', data: p });
  l.apply({ type: 'PacketClaimed', data: packetClaimed(p, 'g1', 0, T0 + 1) });
  const reason = (e: LedgerEvent) => { const fx = effectsOf(e, l); t.same(fx.postings, []); return (fx.anomalies[0] as { reason?: string }).reason; };
  t.equal(reason({ type: 'PacketClaimed', data: packetClaimed(p, 'g2', 0, T0 + 2) }), 'share 0 was already claimed');
  t.equal(reason({ type: 'PacketClaimed', data: packetClaimed(p, 'g2', 1, T0 + 2, 301) }), 'share 1 is not 301 CNY');
  t.equal(reason({ type: 'PacketClaimed', data: packetClaimed(p, 'g2', 3, T0 + 2, 1) }), 'share 3 is not 1 CNY');
  t.equal(reason({ type: 'PacketClaimed', data: packetClaimed(p, 'g2', 1, T0 + DAY) }), 'the packet had expired');
  t.equal(reason({ type: 'PacketClaimed', data: { ...packetClaimed(p, 'g2', 1, T0 + 2), senderId: 'x' } }), 'the packet was sent by s, not x');
  t.equal(reason({ type: 'PacketClaimed', data: packetClaimed({ ...p, packetId: '00000000-0000-8000-8000-000000000000' }, 'g2', 1, T0) }), 'no such packet');
  const other = effectsOf({ type: 'PacketClaimed', data: { ...packetClaimed(p, 'g2', 1, T0 + 2), eventId: packetClaimed(p, 'g3', 1, 0).eventId } }, l);
  t.equal(other.anomalies[0]?.kind, 'event_id_not_derived', 'a claim under another user\'s id is not this user\'s claim');

  l.apply({ type: 'PacketClaimed', data: packetClaimed(p, 'g2', 1, T0 + 3) });
  l.apply({ type: 'PacketClaimed', data: packetClaimed(p, 'g3', 2, T0 + 4) });
  t.equal(l.packet(p.packetId)?.status, 'finished');
  t.equal(l.packet(p.packetId)?.closedAt, T0 + 4);
  t.match(effectsOf({ type: 'PacketRefunded', data: packetRefunded(p, 1, T0 + DAY) }, l).anomalies[0], { reason: 'the packet is finished' }, 'nothing to refund');
});

t.test('a packet the sender cannot cover, or with a broken split, is rejected and moves nothing', async (t) => {
  const l = new MemoryLedger();
  fund(l, 's', 500);
  const big = packetCreated('s', 'k1', 600, 3, T0, T0 + DAY, [100, 300, 200]);
  l.apply({ type: 'PacketCreated', data: big });
  t.equal(l.packet(big.packetId)?.status, 'rejected');
  t.match(l.anomalies[0], { kind: 'packet_refused', reason: /available balance 500 does not cover 600/ });
  t.equal(l.balance(account.user('s', 'available')), 500);
  t.match(effectsOf({ type: 'PacketClaimed', data: packetClaimed(big, 'g', 0, T0 + 1) }, l).anomalies[0], { reason: 'the packet is rejected' });
  const bent = packetCreated('s', 'k2', 100, 3, T0, T0 + DAY, [98, 1, 1]);
  t.match(effectsOf({ type: 'PacketCreated', data: bent }, l).anomalies[0], { kind: 'packet_refused', reason: /share 0 is 98 fen, outside \[1, 66\]/ });
});

// Random packet lives: claims by random users for random seqs (some with wrong amounts), at
// times around the expiry, refunds with right or wrong amounts, credits, and redeliveries.
const life = fc.record({
  count: fc.integer({ min: 1, max: 8 }),
  extra: fc.integer({ min: 0, max: 500 }),
  seed: fc.integer(),
  steps: fc.array(fc.oneof(
    { weight: 8, arbitrary: fc.record({ k: fc.constant('claim' as const), user: fc.integer({ min: 0, max: 15 }), seq: fc.integer({ min: 0, max: 9 }), late: fc.constantFrom(false, false, false, false, false, true), off: fc.constantFrom(0, 0, 0, 0, -1, 1) }) },
    fc.record({ k: fc.constant('credit' as const), user: fc.integer({ min: 0, max: 15 }) }),
    fc.record({ k: fc.constant('refund' as const), early: fc.boolean(), off: fc.integer({ min: -1, max: 1 }) }),
    fc.record({ k: fc.constant('again' as const), i: fc.nat() }),
  ), { minLength: 5, maxLength: 50, size: "max" }),
});

t.test('state machine property: escrow never negative, each share once, claims plus refund never exceed the total', async (t) => {
  let runs = 0;
  let refunded = 0;
  let finished = 0;
  fc.assert(fc.property(life, ({ count, extra, seed, steps }) => {
    const l = new MemoryLedger();
    fund(l, 's', 100_000);
    const total = count + extra;
    const p = packetCreated('s', 'k', total, count, T0, T0 + DAY, splitShares(total, count, seeded(seed)));
    const sent: LedgerEvent[] = [{ type: 'PacketCreated', data: p }];
    l.apply(sent[0]!);
    const escrow = account.packetEscrow(p.packetId);
    for (const step of steps) {
      let e: LedgerEvent;
      if (step.k === 'claim') {
        const amount = (p.shares[step.seq] ?? 1) + step.off;
        e = { type: 'PacketClaimed', data: packetClaimed(p, `g${step.user}`, step.seq, step.late ? T0 + DAY : T0 + 5, Math.max(1, amount)) };
      } else if (step.k === 'credit') {
        const claim = [...l.packetClaims.values()].find((c) => c.userId === `g${step.user}`);
        if (!claim) continue;
        e = { type: 'PacketShareCredited', data: shareCredited(claim, T0 + 6) };
      } else if (step.k === 'refund') {
        const pk = l.packet(p.packetId)!;
        e = { type: 'PacketRefunded', data: packetRefunded(p, Math.max(1, pk.amount - pk.claimedAmount + step.off), step.early ? T0 + 1 : T0 + DAY) };
      } else {
        e = sent[step.i % sent.length]!;
      }
      sent.push(e);
      l.apply(e);
      const pk = l.packet(p.packetId)!;
      if (l.balance(escrow) < 0) return false;
      if (l.balance(escrow) !== pk.amount - pk.claimedAmount - pk.refundedAmount) return false;
      if (pk.claimedCount > count || pk.claimedAmount + pk.refundedAmount > total) return false;
      if (l.total() !== 0) return false;
    }
    const claims = [...l.packetClaims.values()];
    const users = new Set(claims.map((c) => c.userId));
    if (users.size !== claims.length) return false; // each user at most once
    if (claims.some((c) => c.amount !== p.shares[c.seq])) return false; // each share exactly as split
    const pk = l.packet(p.packetId)!;
    if (pk.status === 'refunded' && pk.claimedAmount + pk.refundedAmount !== total) return false;
    if (pk.status === 'refunded') refunded++;
    if (pk.status === 'finished') finished++;
    if (negativeBalances([...l.balances].map(([a, b]) => [a, b.currency, b.balance])).length > 0) return false;
    runs++;
    return true;
  }), { numRuns: 500, seed: 5 });
  t.equal(runs, 500);
  t.ok(refunded > 30 && finished > 30, `the lives reach both ends (${refunded} refunded, ${finished} finished)`);
});
