import t from 'tap';
import fc from 'fast-check';
import {
  applyAll, couponStateOf, DAY_MS, decideClaim, decideFreeze, decideGrant, decideRedeem, decideReissue, decideTimeouts, decideUnfreeze,
  evolvePack, packStatusOf, bucketCapacities, reissueNeeded, stockLevel, templateCountsOf, type CouponEvent, type PackRecord, type Platform,
} from '../../domain/coupons.ts';
import { MemoryLedger } from '../../domain/ledger.ts';

const T0 = 1_800_000_000_000;
const SLOTS = ['five', 'ten', 'twenty'];
const ctxAt = (now: number) => ({ now, activityId: 'spring', traceId: 'test' });

function granted(platform: Platform = 'android', now = T0): CouponEvent[] {
  return [{
    type: 'GiftPackGranted',
    data: decideGrant({
      activityId: 'spring', orderNo: 'o1', userId: 'u1', packId: 'spring-pack', platform, grantedBy: 'svc', clientAddress: '10.0.0.1', requestId: 'r1',
      coupons: SLOTS.map((slot, i) => ({ templateId: `${platform}-${slot}`, slot, platform, faceValue: (i + 1) * 500, currency: 'CNY', expiresAt: now + 30 * DAY_MS })),
    }, ctxAt(now)),
  }];
}

/** What the command side does (infra/coupon-store.ts): timeouts first, then the command, with a reissue before a freeze on the other platform. */
function command(r: PackRecord, now: number, cmd:
  | { kind: 'claim' }
  | { kind: 'freeze'; couponId: string; paymentId: string; platform: Platform; holdMs: number }
  | { kind: 'unfreeze' | 'redeem'; couponId: string; paymentId: string }): { events: CouponEvent[]; refusal?: string } {
  const ctx = ctxAt(now);
  const timeouts = decideTimeouts(r, ctx);
  let cur = applyAll(r, timeouts)!;
  let pre: CouponEvent[] = [];
  if (cmd.kind === 'freeze') {
    const re = reissueNeeded(cur, cmd.couponId, cmd.platform);
    if (re) {
      pre = [decideReissue(cur, cmd.platform, re.slots.map((slot) => {
        const orig = cur.coupons.find((c) => c.slot === slot)!;
        return { templateId: `${cmd.platform}-${slot}`, slot, platform: cmd.platform, faceValue: orig.faceValue, currency: orig.currency, expiresAt: orig.expiresAt };
      }), ctx)];
      cur = applyAll(cur, pre)!;
    }
  }
  const d = cmd.kind === 'claim' ? decideClaim(cur, ctx)
    : cmd.kind === 'freeze' ? decideFreeze(cur, cmd, ctx)
    : cmd.kind === 'unfreeze' ? decideUnfreeze(cur, cmd, ctx)
    : decideRedeem(cur, cmd, ctx);
  if (d.refusal) return { events: timeouts, refusal: d.refusal.code };
  return { events: [...timeouts, ...pre, ...d.events] };
}

t.test('a pack goes unclaimed → claimed → partially used → used, derived from its slots', async (t) => {
  const events = granted();
  let r = applyAll(undefined, events)!;
  t.equal(packStatusOf(r), 'unclaimed');
  const c0 = r.coupons[0]!.couponId;
  t.equal(command(r, T0 + 1, { kind: 'freeze', couponId: c0, paymentId: 'p1', platform: 'android', holdMs: 60_000 }).refusal, 'PACK_NOT_CLAIMED');
  r = applyAll(r, command(r, T0 + 1, { kind: 'claim' }).events)!;
  t.equal(packStatusOf(r), 'claimed');
  t.same(command(r, T0 + 2, { kind: 'claim' }), { events: [] }, 'a second claim is a no-op');
  for (const [i, c] of r.coupons.entries()) {
    r = applyAll(r, command(r, T0 + 10 + i, { kind: 'freeze', couponId: c.couponId, paymentId: `p${i}`, platform: 'android', holdMs: 60_000 }).events)!;
    t.equal(packStatusOf(r), i === 0 ? 'claimed' : 'partially_used', 'a frozen coupon is not a used one');
    r = applyAll(r, command(r, T0 + 20 + i, { kind: 'redeem', couponId: c.couponId, paymentId: `p${i}` }).events)!;
    t.equal(packStatusOf(r), i === SLOTS.length - 1 ? 'used' : 'partially_used');
  }
  t.same(r.coupons.map((c) => couponStateOf(r, c, T0 + 100)), ['redeemed', 'redeemed', 'redeemed']);
});

t.test('holds: one payment at a time, redeem at most once, no unfreeze after redeem, timeouts release', async (t) => {
  let r = applyAll(undefined, granted())!;
  r = applyAll(r, command(r, T0, { kind: 'claim' }).events)!;
  const c = r.coupons[1]!.couponId;
  r = applyAll(r, command(r, T0 + 1, { kind: 'freeze', couponId: c, paymentId: 'p1', platform: 'android', holdMs: 1000 }).events)!;
  t.equal(couponStateOf(r, r.coupons[1]!, T0 + 2), 'frozen');
  t.equal(command(r, T0 + 2, { kind: 'freeze', couponId: c, paymentId: 'p2', platform: 'android', holdMs: 1000 }).refusal, 'COUPON_FROZEN');
  t.same(command(r, T0 + 2, { kind: 'freeze', couponId: c, paymentId: 'p1', platform: 'android', holdMs: 1000 }).events, [], 'the same payment freezing again is a retry');
  t.equal(command(r, T0 + 2, { kind: 'redeem', couponId: c, paymentId: 'p2' }).refusal, 'NOT_FROZEN_BY_PAYMENT');
  // The hold times out: the next command first unfreezes it, and p1 can no longer redeem.
  const late = command(r, T0 + 1001, { kind: 'redeem', couponId: c, paymentId: 'p1' });
  t.equal(late.refusal, 'HOLD_EXPIRED');
  t.same(late.events.map((e) => [e.type, (e.data as { reason?: string }).reason]), [['CouponUnfrozen', 'timeout']]);
  r = applyAll(r, late.events)!;
  // p2 takes it now, redeems once; a retry of the redeem is a no-op, another payment is refused, unfreeze is refused.
  r = applyAll(r, command(r, T0 + 1002, { kind: 'freeze', couponId: c, paymentId: 'p2', platform: 'android', holdMs: 1000 }).events)!;
  const redeemed = command(r, T0 + 1003, { kind: 'redeem', couponId: c, paymentId: 'p2' });
  t.same(redeemed.events.map((e) => e.type), ['CouponRedeemed']);
  r = applyAll(r, redeemed.events)!;
  t.same(command(r, T0 + 1004, { kind: 'redeem', couponId: c, paymentId: 'p2' }), { events: [] });
  t.equal(command(r, T0 + 1004, { kind: 'redeem', couponId: c, paymentId: 'p3' }).refusal, 'COUPON_REDEEMED');
  t.equal(command(r, T0 + 1004, { kind: 'unfreeze', couponId: c, paymentId: 'p2' }).refusal, 'COUPON_REDEEMED');
  t.equal(command(r, T0 + 1004, { kind: 'freeze', couponId: c, paymentId: 'p4', platform: 'android', holdMs: 1000 }).refusal, 'COUPON_REDEEMED');
  t.equal(command(r, T0 + 31 * DAY_MS, { kind: 'freeze', couponId: r.coupons[0]!.couponId, paymentId: 'p5', platform: 'android', holdMs: 1000 }).refusal, 'COUPON_EXPIRED');
});

t.test('the other platform: the matching set once, and a slot used on one platform is used on both', async (t) => {
  let r = applyAll(undefined, granted('android'))!;
  r = applyAll(r, command(r, T0, { kind: 'claim' }).events)!;
  const a0 = r.coupons[0]!.couponId;
  const first = command(r, T0 + 1, { kind: 'freeze', couponId: a0, paymentId: 'p1', platform: 'ios', holdMs: 5000 });
  t.same(first.events.map((e) => e.type), ['CouponsReissued', 'CouponFrozen']);
  r = applyAll(r, first.events)!;
  t.equal(r.coupons.length, 6, 'three iOS coupons were added');
  const i0 = r.coupons.find((c) => c.slot === 'five' && c.platform === 'ios')!;
  t.equal(i0.expiresAt, r.coupons[0]!.expiresAt, 'the matching coupon expires with the original');
  t.equal(couponStateOf(r, i0, T0 + 2), 'frozen', 'the iOS twin is the one held');
  const second = command(r, T0 + 2, { kind: 'freeze', couponId: r.coupons[1]!.couponId, paymentId: 'p2', platform: 'ios', holdMs: 5000 });
  t.notOk(second.events.some((e) => e.type === 'CouponsReissued'), 'no second reissue');
  t.equal(command(r, T0 + 2, { kind: 'freeze', couponId: a0, paymentId: 'p3', platform: 'android', holdMs: 5000 }).refusal, 'COUPON_FROZEN', 'the Android twin is held too');
  r = applyAll(r, command(r, T0 + 3, { kind: 'redeem', couponId: i0.couponId, paymentId: 'p1' }).events)!;
  t.equal(couponStateOf(r, r.coupons[0]!, T0 + 4), 'used_on_other_platform');
  t.equal(command(r, T0 + 4, { kind: 'freeze', couponId: a0, paymentId: 'p4', platform: 'android', holdMs: 5000 }).refusal, 'COUPON_REDEEMED');
  t.same(Object.fromEntries(templateCountsOf(r)), {
    'android-five': { issued: 1, frozen: 0, redeemed: 0 }, 'android-ten': { issued: 1, frozen: 0, redeemed: 0 }, 'android-twenty': { issued: 1, frozen: 0, redeemed: 0 },
    'ios-five': { issued: 1, frozen: 0, redeemed: 1 }, 'ios-ten': { issued: 1, frozen: 0, redeemed: 0 }, 'ios-twenty': { issued: 1, frozen: 0, redeemed: 0 },
  });
});

t.test('the fold refuses events that break the rules, and says why', async (t) => {
  const events = granted();
  const r = applyAll(undefined, events)!;
  const c = r.coupons[0]!;
  const frozen: CouponEvent = {
    type: 'CouponFrozen',
    data: { eventId: 'x', occurredAt: T0 + 1, activityId: 'spring', traceId: 't', grantId: r.grantId, userId: 'u1', couponId: c.couponId, slot: c.slot, hold: 1, paymentId: 'p1', frozenUntil: T0 + 1000 },
  };
  t.match(evolvePack(r, frozen), { refused: 'the pack is not claimed' });
  t.match(evolvePack(r, events[0]!), { refused: /already granted/ });
  t.match(evolvePack(undefined, frozen), { refused: /no pack/ });
  const claimed = applyAll(r, decideClaim(r, ctxAt(T0)).events)!;
  t.match(evolvePack(claimed, { ...frozen, data: { ...frozen.data, hold: 2 } } as CouponEvent), { refused: /not the next hold/ });
  t.match(evolvePack(claimed, { ...frozen, data: { ...frozen.data, userId: 'u2' } } as CouponEvent), { refused: /belongs to u1/ });
});

t.test('stock levels and the low-stock signal', async (t) => {
  t.same(stockLevel('x', 1000, 899, 10), { templateId: 'x', total: 1000, remaining: 101, lowStock: false });
  t.same(stockLevel('x', 1000, 900, 10), { templateId: 'x', total: 1000, remaining: 100, lowStock: false }, '10% left is not below 10%');
  t.same(stockLevel('x', 1000, 901, 10), { templateId: 'x', total: 1000, remaining: 99, lowStock: true });
  t.same(stockLevel('x', 3, 3, 0), { templateId: 'x', total: 3, remaining: 0, lowStock: false }, 'a threshold of 0 never signals');
});

t.test('property: stock buckets always sum to the total and never hold less than they gave out', async (t) => {
  fc.assert(fc.property(fc.array(fc.nat(1000), { minLength: 1, maxLength: 32 }), fc.nat(100_000), (taken, total) => {
    const caps = bucketCapacities(total, taken);
    const given = taken.reduce((a, b) => a + b, 0);
    if (total < given) return caps === null;
    return caps !== null && caps.reduce((a, b) => a + b, 0) === total && caps.every((c, i) => c >= taken[i]!)
      && Math.max(...caps.map((c, i) => c - taken[i]!)) - Math.min(...caps.map((c, i) => c - taken[i]!)) <= 1;
  }), { numRuns: 2000, seed: 7 });
  t.same(bucketCapacities(10, [0, 0, 0, 0]), [3, 3, 2, 2]);
  t.same(bucketCapacities(5, [3, 0]), [4, 1]);
  t.equal(bucketCapacities(2, [3, 0]), null);
});

/**
 * Random lives of a pack: commands from a few payments on random slots and platforms, with the
 * clock jumping past holds. After every step the record the command side keeps equals the fold
 * of the log, the fold refuses nothing, and the invariants hold.
 */
t.test('property: random freeze / unfreeze / redeem / timeout / reissue sequences keep C2–C5', async (t) => {
  const step = fc.record({
    // '…_holder': the payment that holds the slot acts (if any does), as a real payment service would.
    kind: fc.constantFrom('claim', 'freeze', 'freeze', 'unfreeze', 'redeem', 'unfreeze_holder', 'redeem_holder', 'redeem_holder'),
    slot: fc.nat(SLOTS.length - 1),
    platform: fc.constantFrom<Platform>('ios', 'android'),
    payment: fc.nat(3),
    advance: fc.oneof({ arbitrary: fc.constant(0), weight: 3 }, { arbitrary: fc.integer({ min: 1, max: 500 }), weight: 3 }, { arbitrary: fc.integer({ min: 1000, max: 5000 }), weight: 1 }),
    holdMs: fc.integer({ min: 1, max: 3000 }),
  });
  let lives = 0;
  let redeemedSlots = 0;
  let timeouts = 0;
  let reissues = 0;
  fc.assert(fc.property(fc.constantFrom<Platform>('ios', 'android'), fc.array(step, { minLength: 1, maxLength: 80, size: 'max' }), (platform, steps) => {
    const log: CouponEvent[] = granted(platform);
    let r = applyAll(undefined, log)!;
    let now = T0;
    for (const s of steps) {
      now += s.advance;
      const target = r.coupons.find((c) => c.slot === SLOTS[s.slot] && c.platform === s.platform) ?? r.coupons.find((c) => c.slot === SLOTS[s.slot])!;
      const holder = r.slots[s.slot]!.paymentId;
      const paymentId = s.kind.endsWith('_holder') && holder !== null ? holder : `p${s.payment}`;
      const kind = s.kind === 'unfreeze_holder' ? 'unfreeze' : s.kind === 'redeem_holder' ? 'redeem' : s.kind;
      const before = r;
      const out = kind === 'claim' ? command(r, now, { kind: 'claim' })
        : kind === 'freeze' ? command(r, now, { kind: 'freeze', couponId: target.couponId, paymentId, platform: s.platform, holdMs: s.holdMs })
        : command(r, now, { kind, couponId: target.couponId, paymentId });
      log.push(...out.events);
      r = applyAll(r, out.events)!;

      for (const [i, slot] of r.slots.entries()) {
        const was = before.slots[i]!;
        // C2: once redeemed, always redeemed by the same coupon and payment, and never held again.
        if (was.redeemedAt !== null) {
          if (slot.redeemedCouponId !== was.redeemedCouponId || slot.redeemedPaymentId !== was.redeemedPaymentId || slot.paymentId !== null) return false;
        }
        // C3: a hold changes hands only through its end (a new hold number).
        if (was.paymentId !== null && slot.paymentId !== null && slot.paymentId !== was.paymentId && slot.holds === was.holds) return false;
      }
      // C4: at most one coupon per (slot, platform).
      const keys = r.coupons.map((c) => `${c.slot}/${c.platform}`);
      if (new Set(keys).size !== keys.length) return false;
      // C5: the status follows the slots.
      const used = r.slots.filter((x) => x.redeemedAt !== null).length;
      const expect = r.claimedAt === null ? 'unclaimed' : used === 0 ? 'claimed' : used === r.slots.length ? 'used' : 'partially_used';
      if (packStatusOf(r) !== expect) return false;
    }
    // The log: at most one redemption per slot, one reissue per platform; folded, it is the command side's record.
    const redeems = log.filter((e) => e.type === 'CouponRedeemed').map((e) => (e.data as { slot: string }).slot);
    if (new Set(redeems).size !== redeems.length) return false;
    if (log.filter((e) => e.type === 'CouponsReissued').length > 1) return false;
    const ledger = new MemoryLedger();
    for (const e of log) ledger.apply(e);
    if (ledger.anomalies.length > 0) return false;
    if (JSON.stringify(ledger.pack(r.grantId)) !== JSON.stringify(r)) return false;
    const counts = templateCountsOf(r);
    let frozen = 0;
    let redeemed = 0;
    for (const c of counts.values()) { frozen += c.frozen; redeemed += c.redeemed; }
    if (frozen !== r.slots.filter((x) => x.paymentId !== null).length || redeemed !== used(r)) return false;
    lives++;
    redeemedSlots += redeems.length;
    timeouts += log.filter((e) => e.type === 'CouponUnfrozen' && e.data.reason === 'timeout').length;
    reissues += log.filter((e) => e.type === 'CouponsReissued').length;
    return true;
  }), { numRuns: 500, seed: 20180216 });
  t.equal(lives, 500);
  // The generator reaches the interesting states (else the property says little).
  t.ok(redeemedSlots > 100, `slots redeemed: ${redeemedSlots}`);
  t.ok(timeouts > 20, `holds timed out: ${timeouts}`);
  t.ok(reissues > 50, `cross-platform reissues: ${reissues}`);
});

const used = (r: PackRecord) => r.slots.filter((x) => x.redeemedAt !== null).length;
