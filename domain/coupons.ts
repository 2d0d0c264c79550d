import { deterministicId } from './ids.ts';
import type { Currency } from './money.ts';

/**
 * Coupon gift packs: the rules, as a decider. A pack granted to a user is one record (a
 * PackRecord): its coupons, and per slot (a face value of the pack) who holds it. decide*
 * turn a command and the record into events; evolvePack turns the record and an event into
 * the next record. The command side (infra/coupon-store.ts), the projector and the replay
 * audit all evolve with the same function.
 *
 * Invariants (asserted by evolvePack, the property tests and the invariant checker):
 *  C1. A coupon template's stock is never exceeded: coupons issued ≤ its total stock. Stock is
 *      taken where the grant is decided (a conditional update in Postgres), once per coupon.
 *  C2. A slot is redeemed at most once, on whichever platform: a pack's iOS and Android coupons
 *      of one slot are one benefit. A redeemed slot is never unfrozen or frozen again.
 *  C3. A slot is held by at most one payment at a time. A hold ends exactly once: redeemed,
 *      unfrozen by its payment, or unfrozen at its timeout; each is an event.
 *  C4. A pack has at most one coupon per (slot, platform): the set it was granted, and the
 *      other platform's set once, when the user first tries to pay there.
 *  C5. A pack's status is derived from its claim and its slots, never set: unclaimed →
 *      claimed → partially used → used.
 */

export type Platform = 'ios' | 'android';
export const PLATFORMS: readonly Platform[] = ['ios', 'android'];
export const otherPlatform = (p: Platform): Platform => (p === 'ios' ? 'android' : 'ios');

/** A coupon template (configuration): one face value on one platform, with its stock. */
export interface CouponTemplate {
  templateId: string;
  platform: Platform;
  faceValue: number;
  currency: Currency;
  /** A coupon is valid for this many days from its pack's grant. */
  validDays: number;
  totalStock: number;
  /** Low-stock signal below this share of the total; null: the deployment's default. */
  lowStockPercent: number | null;
}

/** A gift pack (configuration): slots, each with its iOS and its Android template. */
export interface GiftPack {
  packId: string;
  name: string;
  slots: { slot: string; ios: string; android: string }[];
}

export const DAY_MS = 86_400_000;

export interface CouponIssue {
  couponId: string;
  templateId: string;
  slot: string;
  platform: Platform;
  faceValue: number;
  currency: Currency;
  expiresAt: number;
}

export interface SlotState {
  slot: string;
  /** Holds so far: the number of the current or last hold, 0 before the first. */
  holds: number;
  /** The current hold, or nulls. */
  couponId: string | null;
  paymentId: string | null;
  frozenUntil: number | null;
  /** The payment of the last hold that ended without redemption (an idempotent unfreeze answers it). */
  releasedPaymentId: string | null;
  /** Redemption, or nulls. */
  redeemedCouponId: string | null;
  redeemedPaymentId: string | null;
  redeemedAt: number | null;
}

export interface PackRecord {
  grantId: string;
  activityId: string;
  orderNo: string;
  userId: string;
  packId: string;
  /** The platform the pack was granted for. */
  platform: Platform;
  grantedAt: number;
  claimedAt: number | null;
  coupons: CouponIssue[];
  slots: SlotState[];
}

export type PackStatus = 'unclaimed' | 'claimed' | 'partially_used' | 'used';
export type CouponState = 'available' | 'frozen' | 'redeemed' | 'used_on_other_platform' | 'expired';

// --- ids ---------------------------------------------------------------------------------

export const packGrantIdFor = (activityId: string, orderNo: string) => deterministicId('gift-pack-grant', activityId, orderNo);
export const couponIdFor = (grantId: string, slot: string, platform: Platform) => deterministicId('coupon', grantId, slot, platform);
export const packClaimEventIdFor = (grantId: string) => deterministicId('gift-pack-claim', grantId);
export const reissueEventIdFor = (grantId: string, platform: Platform) => deterministicId('coupon-reissue', grantId, platform);
export const freezeEventIdFor = (grantId: string, slot: string, hold: number) => deterministicId('coupon-freeze', grantId, slot, String(hold));
export const unfreezeEventIdFor = (grantId: string, slot: string, hold: number) => deterministicId('coupon-unfreeze', grantId, slot, String(hold));
export const redeemEventIdFor = (grantId: string, slot: string) => deterministicId('coupon-redeem', grantId, slot);

// --- events ------------------------------------------------------------------------------

interface CouponEnvelope { eventId: string; occurredAt: number; activityId: string; traceId: string }

/** A pack granted to a user for a platform, with its coupons. Key: (activityId, orderNo) → grantId. */
export interface GiftPackGranted extends CouponEnvelope {
  grantId: string;
  orderNo: string;
  userId: string;
  packId: string;
  platform: Platform;
  coupons: CouponIssue[];
  grantedBy: string;
  clientAddress: string;
  requestId: string;
}

/** The user claimed the pack in the wallet (unclaimed → claimed). Key: grantId. */
export interface GiftPackClaimed extends CouponEnvelope { grantId: string; userId: string }

/** The user tried to pay on the other platform: the matching set, issued once. Key: (grantId, platform). */
export interface CouponsReissued extends CouponEnvelope { grantId: string; userId: string; platform: Platform; coupons: CouponIssue[] }

/** A payment started and holds a slot's coupon until frozenUntil. Key: (grantId, slot, hold). */
export interface CouponFrozen extends CouponEnvelope {
  grantId: string; userId: string; couponId: string; slot: string; hold: number; paymentId: string; frozenUntil: number;
}

/** A hold ended without redemption: the payment was abandoned, or the hold timed out. Key: (grantId, slot, hold). */
export interface CouponUnfrozen extends CouponEnvelope {
  grantId: string; userId: string; couponId: string; slot: string; hold: number; paymentId: string; reason: 'abandoned' | 'timeout';
}

/** The payment completed: the slot is used. Key: (grantId, slot). */
export interface CouponRedeemed extends CouponEnvelope {
  grantId: string; userId: string; couponId: string; slot: string; hold: number; paymentId: string;
}

export interface CouponEventMap {
  GiftPackGranted: GiftPackGranted;
  GiftPackClaimed: GiftPackClaimed;
  CouponsReissued: CouponsReissued;
  CouponFrozen: CouponFrozen;
  CouponUnfrozen: CouponUnfrozen;
  CouponRedeemed: CouponRedeemed;
}
export type CouponEvent = { [K in keyof CouponEventMap]: { type: K; data: CouponEventMap[K] } }[keyof CouponEventMap];
export const COUPON_EVENT_TYPES: readonly (keyof CouponEventMap)[] = [
  'GiftPackGranted', 'GiftPackClaimed', 'CouponsReissued', 'CouponFrozen', 'CouponUnfrozen', 'CouponRedeemed',
];

const COUPON_TYPES: ReadonlySet<string> = new Set(COUPON_EVENT_TYPES);
export const isCouponEvent = (e: { type: string }): e is CouponEvent => COUPON_TYPES.has(e.type);

/** The id each coupon event must carry (derived from its business key). */
export function couponEventIdOf(event: CouponEvent): string {
  const e = event.data;
  switch (event.type) {
    case 'GiftPackGranted': return packGrantIdFor(e.activityId, event.data.orderNo);
    case 'GiftPackClaimed': return packClaimEventIdFor(e.grantId);
    case 'CouponsReissued': return reissueEventIdFor(e.grantId, event.data.platform);
    case 'CouponFrozen': return freezeEventIdFor(e.grantId, event.data.slot, event.data.hold);
    case 'CouponUnfrozen': return unfreezeEventIdFor(e.grantId, event.data.slot, event.data.hold);
    case 'CouponRedeemed': return redeemEventIdFor(e.grantId, event.data.slot);
  }
}

// --- evolve ------------------------------------------------------------------------------

/** Why an event could not apply to the record; the fold records it and leaves the record alone. */
export type PackRefusal = string;

function slotOf(r: PackRecord, slot: string): SlotState | undefined {
  return r.slots.find((s) => s.slot === slot);
}

export function couponOf(r: PackRecord, couponId: string): CouponIssue | undefined {
  return r.coupons.find((c) => c.couponId === couponId);
}

const withSlot = (r: PackRecord, next: SlotState): PackRecord => ({ ...r, slots: r.slots.map((s) => (s.slot === next.slot ? next : s)) });

const released = (s: SlotState, paymentId: string): SlotState => ({ ...s, couponId: null, paymentId: null, frozenUntil: null, releasedPaymentId: paymentId });

/** A hold is live until its frozenUntil; from then on it may only be unfrozen (timeout). */
export const holdLive = (s: SlotState, at: number) => s.paymentId !== null && s.frozenUntil !== null && at < s.frozenUntil;

/**
 * The next state of a pack after an event, or why the event cannot apply. The one rule for
 * every holder of pack state: the command side, the projector, the replay audit.
 */
export function evolvePack(r: PackRecord | undefined, event: CouponEvent): { record: PackRecord } | { refused: PackRefusal } {
  if (event.type === 'GiftPackGranted') {
    const e = event.data;
    if (r) return { refused: `pack ${e.grantId} was already granted` };
    if (e.grantId !== e.eventId) return { refused: 'the grant id is not the event id' };
    const bad = invalidIssues(e.grantId, e.coupons, e.platform);
    if (bad) return { refused: bad };
    const slots = [...new Set(e.coupons.map((c) => c.slot))];
    if (slots.length !== e.coupons.length) return { refused: 'a granted pack has one coupon per slot' };
    return {
      record: {
        grantId: e.grantId, activityId: e.activityId, orderNo: e.orderNo, userId: e.userId, packId: e.packId, platform: e.platform,
        grantedAt: e.occurredAt, claimedAt: null, coupons: e.coupons.map((c) => ({ ...c })),
        slots: slots.map((slot) => ({
          slot, holds: 0, couponId: null, paymentId: null, frozenUntil: null, releasedPaymentId: null,
          redeemedCouponId: null, redeemedPaymentId: null, redeemedAt: null,
        })),
      },
    };
  }
  if (!r) return { refused: `no pack ${event.data.grantId}` };
  if (event.data.userId !== r.userId) return { refused: `pack ${r.grantId} belongs to ${r.userId}, not ${event.data.userId}` };
  switch (event.type) {
    case 'GiftPackClaimed':
      if (r.claimedAt !== null) return { refused: 'the pack was already claimed' };
      return { record: { ...r, claimedAt: event.data.occurredAt } };
    case 'CouponsReissued': {
      const e = event.data;
      const bad = invalidIssues(r.grantId, e.coupons, e.platform);
      if (bad) return { refused: bad };
      for (const c of e.coupons) {
        if (!slotOf(r, c.slot)) return { refused: `the pack has no slot ${c.slot}` };
        if (r.coupons.some((k) => k.slot === c.slot && k.platform === c.platform)) return { refused: `slot ${c.slot} already has a ${c.platform} coupon` };
      }
      return { record: { ...r, coupons: [...r.coupons, ...e.coupons.map((c) => ({ ...c }))] } };
    }
    case 'CouponFrozen': {
      const e = event.data;
      const s = slotOf(r, e.slot);
      const c = couponOf(r, e.couponId);
      const reason = !s || !c || c.slot !== e.slot ? `coupon ${e.couponId} is not in slot ${e.slot}`
        : r.claimedAt === null ? 'the pack is not claimed'
        : s.redeemedAt !== null ? 'the slot was redeemed'
        : s.paymentId !== null ? `the slot is held by payment ${s.paymentId}`
        : e.hold !== s.holds + 1 ? `hold ${e.hold} is not the next hold (${s.holds + 1})`
        : e.occurredAt >= c.expiresAt ? 'the coupon had expired'
        : e.frozenUntil <= e.occurredAt ? 'the hold ends before it starts'
        : null;
      if (reason || !s) return { refused: reason! };
      return { record: withSlot(r, { ...s, holds: e.hold, couponId: e.couponId, paymentId: e.paymentId, frozenUntil: e.frozenUntil }) };
    }
    case 'CouponUnfrozen': {
      const e = event.data;
      const s = slotOf(r, e.slot);
      const reason = !s ? `the pack has no slot ${e.slot}`
        : s.paymentId !== e.paymentId || s.holds !== e.hold || s.couponId !== e.couponId ? `hold ${e.hold} of payment ${e.paymentId} is not the slot's current hold`
        : e.reason === 'timeout' && e.occurredAt < s.frozenUntil! ? 'the hold had not timed out'
        : null;
      if (reason || !s) return { refused: reason! };
      return { record: withSlot(r, released(s, e.paymentId)) };
    }
    case 'CouponRedeemed': {
      const e = event.data;
      const s = slotOf(r, e.slot);
      const reason = !s ? `the pack has no slot ${e.slot}`
        : s.redeemedAt !== null ? 'the slot was already redeemed'
        : s.paymentId !== e.paymentId || s.holds !== e.hold || s.couponId !== e.couponId ? `coupon ${e.couponId} is not held by payment ${e.paymentId}`
        : !holdLive(s, e.occurredAt) ? 'the hold had timed out'
        : null;
      if (reason || !s) return { refused: reason! };
      return {
        record: withSlot(r, {
          ...s, couponId: null, paymentId: null, frozenUntil: null,
          redeemedCouponId: e.couponId, redeemedPaymentId: e.paymentId, redeemedAt: e.occurredAt,
        }),
      };
    }
  }
}

function invalidIssues(grantId: string, coupons: readonly CouponIssue[], platform: Platform): string | null {
  if (coupons.length === 0) return 'no coupons';
  for (const c of coupons) {
    if (c.platform !== platform) return `coupon ${c.couponId} is for ${c.platform}, not ${platform}`;
    if (c.couponId !== couponIdFor(grantId, c.slot, c.platform)) return `coupon id ${c.couponId} is not derived from the pack, slot and platform`;
    if (!Number.isSafeInteger(c.faceValue) || c.faceValue <= 0) return `coupon ${c.couponId} has no positive face value`;
  }
  return null;
}

// --- derived views -----------------------------------------------------------------------

/** C5: the status follows from the claim and the slots. */
export function packStatusOf(r: PackRecord): PackStatus {
  if (r.claimedAt === null) return 'unclaimed';
  const redeemed = r.slots.filter((s) => s.redeemedAt !== null).length;
  if (redeemed === 0) return 'claimed';
  return redeemed === r.slots.length ? 'used' : 'partially_used';
}

/**
 * What a slot's state means for one of its coupons: the hold it carries (until an event ends
 * it) and whether it is the one redeemed. The one reading of a slot for a coupon; the wallet
 * state, the per-template counts and the per-user projection all take it from here.
 */
export function couponHoldOf(r: PackRecord, c: CouponIssue): { paymentId: string | null; frozenUntil: number | null; redeemedAt: number | null; slotRedeemed: boolean } {
  const s = slotOf(r, c.slot)!;
  const held = s.couponId === c.couponId;
  return {
    paymentId: held ? s.paymentId : null, frozenUntil: held ? s.frozenUntil : null,
    redeemedAt: s.redeemedCouponId === c.couponId ? s.redeemedAt : null, slotRedeemed: s.redeemedAt !== null,
  };
}

export function couponStateOf(r: PackRecord, c: CouponIssue, at: number): CouponState {
  const h = couponHoldOf(r, c);
  if (h.slotRedeemed) return h.redeemedAt !== null ? 'redeemed' : 'used_on_other_platform';
  if (h.frozenUntil !== null && at < h.frozenUntil) return 'frozen';
  return at >= c.expiresAt ? 'expired' : 'available';
}

export interface TemplateCounts { issued: number; frozen: number; redeemed: number }

/**
 * Per coupon template: coupons issued, holds open, slots redeemed. A hold counts as frozen
 * until an event ends it (a timed-out hold is frozen until its CouponUnfrozen), so counts
 * depend on the record alone, never on the clock.
 */
export function templateCountsOf(r: PackRecord): Map<string, TemplateCounts> {
  const out = new Map<string, TemplateCounts>();
  const of = (templateId: string) => {
    let c = out.get(templateId);
    if (!c) out.set(templateId, (c = { issued: 0, frozen: 0, redeemed: 0 }));
    return c;
  };
  for (const c of r.coupons) {
    const h = couponHoldOf(r, c);
    const counts = of(c.templateId);
    counts.issued += 1;
    if (h.paymentId !== null) counts.frozen += 1;
    if (h.redeemedAt !== null) counts.redeemed += 1;
  }
  return out;
}

/** What an event changed in the per-template counts: after − before. */
export function templateCountsDelta(before: PackRecord | undefined, after: PackRecord): Map<string, TemplateCounts> {
  const delta = templateCountsOf(after);
  if (before) {
    for (const [id, b] of templateCountsOf(before)) {
      const d = delta.get(id) ?? { issued: 0, frozen: 0, redeemed: 0 };
      delta.set(id, { issued: d.issued - b.issued, frozen: d.frozen - b.frozen, redeemed: d.redeemed - b.redeemed });
    }
  }
  return delta;
}

/** What upstream is told about a template's stock after a grant. */
export interface StockLevel { templateId: string; total: number; remaining: number; lowStock: boolean }

export function stockLevel(templateId: string, total: number, taken: number, lowStockPercent: number): StockLevel {
  const remaining = Math.max(0, total - taken);
  // Integer comparison: remaining / total < percent / 100.
  return { templateId, total, remaining, lowStock: remaining * 100 < total * lowStockPercent };
}

/**
 * C1 across stock buckets: capacities for a template's buckets that sum to `total`, each at
 * least what its bucket has already given out (the rest spread evenly), or null when the
 * total is below what was already given out.
 */
export function bucketCapacities(total: number, taken: readonly number[]): number[] | null {
  const given = taken.reduce((a, b) => a + b, 0);
  if (total < given) return null;
  const free = total - given;
  const share = Math.floor(free / taken.length);
  const extra = free % taken.length;
  return taken.map((t, i) => t + share + (i < extra ? 1 : 0));
}

/** The earliest end among a pack's open holds: when its timeout is due (null: none open). */
export function nextHoldExpiry(r: PackRecord): number | null {
  let next: number | null = null;
  for (const s of r.slots) if (s.frozenUntil !== null && (next === null || s.frozenUntil < next)) next = s.frozenUntil;
  return next;
}

// --- decide ------------------------------------------------------------------------------

export type CouponRefusalCode =
  | 'PACK_NOT_CLAIMED' | 'PACK_ALREADY_CLAIMED' | 'COUPON_NOT_FOUND' | 'COUPON_FROZEN' | 'COUPON_REDEEMED' | 'COUPON_EXPIRED'
  | 'NOT_FROZEN_BY_PAYMENT' | 'HOLD_EXPIRED';

export interface CouponRefusal { code: CouponRefusalCode; message: string; details?: Record<string, unknown> }

export interface Decision {
  events: CouponEvent[];
  refusal?: CouponRefusal;
  /** The command had already been carried out (a retry): the events are empty. */
  replayed?: boolean;
  /** The coupon the command acted on (a freeze on the other platform acts on the reissued twin). */
  couponId?: string;
}

export interface CommandContext { now: number; activityId: string; traceId: string }

function envelope(ctx: CommandContext, eventId: string, r: PackRecord): CouponEnvelope {
  return { eventId, occurredAt: ctx.now, activityId: r.activityId, traceId: ctx.traceId };
}

export function decideGrant(cmd: {
  activityId: string; orderNo: string; userId: string; packId: string; platform: Platform;
  coupons: Omit<CouponIssue, 'couponId'>[]; grantedBy: string; clientAddress: string; requestId: string;
}, ctx: CommandContext): GiftPackGranted {
  const grantId = packGrantIdFor(cmd.activityId, cmd.orderNo);
  return {
    eventId: grantId, occurredAt: ctx.now, activityId: cmd.activityId, traceId: ctx.traceId,
    grantId, orderNo: cmd.orderNo, userId: cmd.userId, packId: cmd.packId, platform: cmd.platform,
    coupons: cmd.coupons.map((c) => ({ ...c, couponId: couponIdFor(grantId, c.slot, c.platform) })),
    grantedBy: cmd.grantedBy, clientAddress: cmd.clientAddress, requestId: cmd.requestId,
  };
}

export function decideClaim(r: PackRecord, ctx: CommandContext): Decision {
  if (r.claimedAt !== null) return { events: [], replayed: true };
  return { events: [{ type: 'GiftPackClaimed', data: { ...envelope(ctx, packClaimEventIdFor(r.grantId), r), grantId: r.grantId, userId: r.userId } }] };
}

/** Holds past their end, unfrozen: what every command (and the keeper) emits first. */
export function decideTimeouts(r: PackRecord, ctx: CommandContext): CouponEvent[] {
  const out: CouponEvent[] = [];
  for (const s of r.slots) {
    if (s.paymentId !== null && !holdLive(s, ctx.now)) {
      out.push({
        type: 'CouponUnfrozen',
        data: {
          ...envelope(ctx, unfreezeEventIdFor(r.grantId, s.slot, s.holds), r), grantId: r.grantId, userId: r.userId,
          couponId: s.couponId!, slot: s.slot, hold: s.holds, paymentId: s.paymentId, reason: 'timeout',
        },
      });
    }
  }
  return out;
}

/**
 * Which platform's coupon a freeze acts on, and whether the pack needs that platform's set
 * first (C4). The command side takes stock for the set before deciding the freeze.
 */
export function reissueNeeded(r: PackRecord, couponId: string, platform: Platform): { slots: string[] } | null {
  const c = couponOf(r, couponId);
  // Once per platform: a pack that has any coupon there has had its set (C4).
  if (!c || r.coupons.some((k) => k.platform === platform)) return null;
  // The set covers the slots still usable; a redeemed slot's benefit is gone on every platform.
  const slots = r.slots.filter((s) => s.redeemedAt === null).map((s) => s.slot);
  return slots.length > 0 && slots.includes(c.slot) ? { slots } : null;
}

export function decideReissue(r: PackRecord, platform: Platform, coupons: Omit<CouponIssue, 'couponId'>[], ctx: CommandContext): CouponEvent {
  return {
    type: 'CouponsReissued',
    data: {
      ...envelope(ctx, reissueEventIdFor(r.grantId, platform), r), grantId: r.grantId, userId: r.userId, platform,
      coupons: coupons.map((c) => ({ ...c, couponId: couponIdFor(r.grantId, c.slot, platform) })),
    },
  };
}

/** Freeze, on a record whose timeouts and reissue (if any) are already applied. */
export function decideFreeze(r: PackRecord, cmd: { couponId: string; paymentId: string; platform: Platform; holdMs: number }, ctx: CommandContext): Decision {
  const asked = couponOf(r, cmd.couponId);
  if (!asked) return refuse('COUPON_NOT_FOUND', `No coupon ${cmd.couponId} in this pack.`);
  const s = slotOf(r, asked.slot)!;
  if (r.claimedAt === null) return refuse('PACK_NOT_CLAIMED', 'The gift pack has not been claimed in the wallet yet.');
  if (s.redeemedAt !== null) return refuse('COUPON_REDEEMED', 'This coupon has already been used.', { redeemedAt: s.redeemedAt });
  const c = asked.platform === cmd.platform ? asked : r.coupons.find((k) => k.slot === asked.slot && k.platform === cmd.platform);
  if (!c) return refuse('COUPON_NOT_FOUND', `Slot ${asked.slot} has no ${cmd.platform} coupon.`);
  if (s.paymentId === cmd.paymentId && holdLive(s, ctx.now)) return { events: [], replayed: true, couponId: s.couponId! };
  if (s.paymentId !== null) return refuse('COUPON_FROZEN', 'Another payment is using this coupon.', { frozenUntil: s.frozenUntil });
  if (ctx.now >= c.expiresAt) return refuse('COUPON_EXPIRED', 'This coupon has expired.', { expiresAt: c.expiresAt });
  const hold = s.holds + 1;
  return {
    couponId: c.couponId,
    events: [{
      type: 'CouponFrozen',
      data: {
        ...envelope(ctx, freezeEventIdFor(r.grantId, s.slot, hold), r), grantId: r.grantId, userId: r.userId, couponId: c.couponId,
        slot: s.slot, hold, paymentId: cmd.paymentId, frozenUntil: Math.min(ctx.now + cmd.holdMs, c.expiresAt),
      },
    }],
  };
}

/** The slot a payment acts on: the one whose coupon (either platform's) the command names. */
function slotForCoupon(r: PackRecord, couponId: string): SlotState | undefined {
  const c = couponOf(r, couponId);
  return c ? slotOf(r, c.slot) : undefined;
}

export function decideUnfreeze(r: PackRecord, cmd: { couponId: string; paymentId: string }, ctx: CommandContext): Decision {
  const s = slotForCoupon(r, cmd.couponId);
  if (!s) return refuse('COUPON_NOT_FOUND', `No coupon ${cmd.couponId} in this pack.`);
  if (s.redeemedAt !== null) return refuse('COUPON_REDEEMED', 'The coupon was redeemed; a redeemed coupon cannot be unfrozen.', { redeemedAt: s.redeemedAt });
  if (s.paymentId === cmd.paymentId) {
    return {
      couponId: s.couponId!,
      events: [{
        type: 'CouponUnfrozen',
        data: {
          ...envelope(ctx, unfreezeEventIdFor(r.grantId, s.slot, s.holds), r), grantId: r.grantId, userId: r.userId,
          couponId: s.couponId!, slot: s.slot, hold: s.holds, paymentId: cmd.paymentId, reason: 'abandoned',
        },
      }],
    };
  }
  if (s.releasedPaymentId === cmd.paymentId) return { events: [], replayed: true };
  return refuse('NOT_FROZEN_BY_PAYMENT', `Payment ${cmd.paymentId} does not hold this coupon.`);
}

export function decideRedeem(r: PackRecord, cmd: { couponId: string; paymentId: string }, ctx: CommandContext): Decision {
  const s = slotForCoupon(r, cmd.couponId);
  if (!s) return refuse('COUPON_NOT_FOUND', `No coupon ${cmd.couponId} in this pack.`);
  if (s.redeemedAt !== null) {
    if (s.redeemedPaymentId === cmd.paymentId) return { events: [], replayed: true, couponId: s.redeemedCouponId! };
    return refuse('COUPON_REDEEMED', 'This coupon has already been used by another payment.', { redeemedAt: s.redeemedAt });
  }
  if (s.paymentId === cmd.paymentId) {
    return {
      couponId: s.couponId!,
      events: [{
        type: 'CouponRedeemed',
        data: {
          ...envelope(ctx, redeemEventIdFor(r.grantId, s.slot), r), grantId: r.grantId, userId: r.userId,
          couponId: s.couponId!, slot: s.slot, hold: s.holds, paymentId: cmd.paymentId,
        },
      }],
    };
  }
  if (s.releasedPaymentId === cmd.paymentId) return refuse('HOLD_EXPIRED', 'The hold on this coupon ended before the payment completed; freeze it again.');
  return refuse('NOT_FROZEN_BY_PAYMENT', `Payment ${cmd.paymentId} does not hold this coupon; freeze it first.`);
}

function refuse(code: CouponRefusalCode, message: string, details?: Record<string, unknown>): Decision {
  return { events: [], refusal: { code, message, ...(details ? { details } : {}) } };
}

/** Applies decided events to the record (the command side's evolve); a refusal here is a bug in decide. */
export function applyAll(r: PackRecord | undefined, events: readonly CouponEvent[]): PackRecord | undefined {
  let cur = r;
  for (const e of events) {
    const next = evolvePack(cur, e);
    if ('refused' in next) throw new Error(`decided ${e.type} does not apply: ${next.refused}`);
    cur = next.record;
  }
  return cur;
}
