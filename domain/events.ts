import type { Currency } from './money.ts';
import type { CouponEventMap } from './coupons.ts';

/**
 * Every event carries this envelope. eventId is derived from the event's business key
 * (see ids.ts), so a duplicate of the same fact has the same id and is applied once.
 */
export interface Envelope {
  eventId: string;
  /** Epoch milliseconds. */
  occurredAt: number;
  activityId: string;
  traceId: string;
}

/** Company money moved into an activity's cash budget. Business key: fundingId. */
export interface BudgetFunded extends Envelope {
  fundingId: string;
  amount: number;
  currency: Currency;
  fundedBy: string;
}

/** A cash grant accepted: the user holds a signed token worth `amount`. Key: (activityId, orderNo). */
export interface TokenIssued extends Envelope {
  tokenId: string;
  orderNo: string;
  userId: string;
  sceneId: string;
  amount: number;
  currency: Currency;
  /** Ed25519 signature (base64url) over the token claims, and the id of the signing key. */
  signature: string;
  keyId: string;
  /** Audit: which upstream service asked, from which address, with which request. */
  grantedBy: string;
  clientAddress: string;
  requestId: string;
  /**
   * The budget slice the journal reserved for this grant: [budgetSliceEnd - amount,
   * budgetSliceEnd) of the activity's cumulative reservations, and the activity's cumulative
   * funding then. Set by the journal as it accepts the grant (the issuer builds the event with
   * nulls); null (or absent, in events written before the fields existed) on a token no
   * journal reserved, which the ledger refuses (ledger.ts, I10).
   */
  budgetSliceEnd: number | null;
  budgetFunded: number | null;
}

/** The account system credited a token: pending → available. Key: tokenId. */
export interface TokenCredited extends Envelope {
  tokenId: string;
  userId: string;
  amount: number;
  currency: Currency;
}

/**
 * A user asked to withdraw: available → withdrawing. This event is also the payout request
 * the payout processor acts on. Key: (userId, idempotencyKey) → withdrawalId, which is the
 * payout id the provider sees. activityId is empty: a withdrawal belongs to the wallet.
 */
export interface WithdrawalRequested extends Envelope {
  withdrawalId: string;
  userId: string;
  amount: number;
  currency: Currency;
  /** Audit: the user token's subject and the caller's address and request. */
  requestedBy: string;
  clientAddress: string;
  requestId: string;
}

/** The provider paid the withdrawal: withdrawing → external:payout. Key: withdrawalId. */
export interface PayoutSettled extends Envelope {
  withdrawalId: string;
  userId: string;
  amount: number;
  currency: Currency;
  /** The provider's own reference for the payout. */
  providerRef: string;
}

/** The provider refused the payout for good: withdrawing → available. Key: withdrawalId. */
export interface PayoutFailed extends Envelope {
  withdrawalId: string;
  userId: string;
  amount: number;
  currency: Currency;
  reason: string;
}

/**
 * A payout call failed in a way that may succeed later (outage, overload, timeout). It moves
 * no money; it is the request re-produced to the payouts topic, to be tried again at
 * retryAt. Key: (withdrawalId, attempt).
 */
export interface PayoutAttemptFailed extends Envelope {
  withdrawalId: string;
  userId: string;
  amount: number;
  currency: Currency;
  attempt: number;
  retryAt: number;
  reason: string;
}

/**
 * Reconciliation found that the provider paid one withdrawal more than once (a second
 * provider payment under the same payout id). The money has left the company: it is booked
 * from company:payout-recovery to external:payout, so the ledger again equals the provider's
 * books, and finance recovers it from there. Key: (withdrawalId, providerRef).
 */
export interface PayoutDuplicateFlagged extends Envelope {
  withdrawalId: string;
  userId: string;
  amount: number;
  currency: Currency;
  /** The provider's reference of the extra payment. */
  providerRef: string;
  /** Who flagged it: the reconciliation run. */
  flaggedBy: string;
}

/**
 * A sender created a group red packet: user:S:available → packet:P:escrow. The split is drawn
 * here and carried in the event. Key: (senderId, idempotencyKey) → packetId = eventId.
 * Packet events are keyed by packetId and routed to the sender's wallet partition, so the
 * sender's debit and refund stay in order with the sender's other wallet events.
 */
export interface PacketCreated extends Envelope {
  packetId: string;
  senderId: string;
  amount: number;
  currency: Currency;
  count: number;
  shares: number[];
  greeting: string;
  /** Epoch milliseconds; unclaimed money is refunded from then on. */
  expiresAt: number;
  /** Audit: the user token's subject and the caller's address and request. */
  requestedBy: string;
  clientAddress: string;
  requestId: string;
}

/**
 * A user grabbed share `seq` of a packet: packet:P:escrow → user:G:pending. Written at once
 * by the grab; the credit follows asynchronously. Key: (packetId, userId).
 */
export interface PacketClaimed extends Envelope {
  packetId: string;
  senderId: string;
  userId: string;
  seq: number;
  amount: number;
  currency: Currency;
}

/**
 * The grabber's share was credited: user:G:pending → user:G:available. On the grabber's wallet
 * partition (keyed by userId), like TokenCredited. Key: (packetId, userId).
 */
export interface PacketShareCredited extends Envelope {
  packetId: string;
  userId: string;
  amount: number;
  currency: Currency;
}

/** At expiry, the unclaimed rest went back: packet:P:escrow → user:S:available. Key: packetId. */
export interface PacketRefunded extends Envelope {
  packetId: string;
  senderId: string;
  amount: number;
  currency: Currency;
}

/**
 * A lottery draw, won or not (every draw is recorded). activityId is the parent activity
 * upstream sent; childId is the child that was live. A cash win is granted by the TokenIssued
 * whose id is fulfilmentId, a goods win by the GoodsGranted with that id; both carry the order
 * number drawOrderNo(drawId). Key: (activityId, drawId). On the drawer's wallet partition.
 */
export interface LotteryDrawn extends Envelope {
  drawId: string;
  userId: string;
  childId: string;
  sceneId: string;
  poolId: string;
  configVersion: number;
  outcome: 'won' | 'no_win';
  /** Why not: 'no_win_drawn', 'pool_empty' or 'win_limit'; empty for a win. */
  reason: string;
  prizeId: string;
  /** 'cash' or 'goods' for a win, empty otherwise. */
  awardType: string;
  /** Cash: minor units; 0 otherwise. */
  prizeAmount: number;
  currency: Currency;
  itemId: string;
  quantity: number;
  fulfilmentId: string;
  /** Audit: which upstream service asked, from which address, with which request. */
  requestedBy: string;
  clientAddress: string;
  requestId: string;
}

/**
 * Virtual goods (an avatar frame, a bubble) granted to a user. No money moves; the grant is
 * once per order. activityId is the ledger activity (a child activity's). Key: (activityId, orderNo).
 */
export interface GoodsGranted extends Envelope {
  grantId: string;
  orderNo: string;
  userId: string;
  sceneId: string;
  itemId: string;
  quantity: number;
  grantedBy: string;
  clientAddress: string;
  requestId: string;
}

export interface EventMap {
  BudgetFunded: BudgetFunded;
  TokenIssued: TokenIssued;
  TokenCredited: TokenCredited;
  WithdrawalRequested: WithdrawalRequested;
  PayoutSettled: PayoutSettled;
  PayoutFailed: PayoutFailed;
  PayoutAttemptFailed: PayoutAttemptFailed;
  PayoutDuplicateFlagged: PayoutDuplicateFlagged;
  PacketCreated: PacketCreated;
  PacketClaimed: PacketClaimed;
  PacketShareCredited: PacketShareCredited;
  PacketRefunded: PacketRefunded;
  LotteryDrawn: LotteryDrawn;
  GoodsGranted: GoodsGranted;
  /** Coupon gift packs: their events are defined beside their rules, in coupons.ts. */
  GiftPackGranted: CouponEventMap['GiftPackGranted'];
  GiftPackClaimed: CouponEventMap['GiftPackClaimed'];
  CouponsReissued: CouponEventMap['CouponsReissued'];
  CouponFrozen: CouponEventMap['CouponFrozen'];
  CouponUnfrozen: CouponEventMap['CouponUnfrozen'];
  CouponRedeemed: CouponEventMap['CouponRedeemed'];
}
export type EventType = keyof EventMap;
export type LedgerEvent = { [K in EventType]: { type: K; data: EventMap[K] } }[EventType];
export const EVENT_TYPES: readonly EventType[] = [
  'BudgetFunded', 'TokenIssued', 'TokenCredited', 'WithdrawalRequested', 'PayoutSettled', 'PayoutFailed', 'PayoutAttemptFailed',
  'PayoutDuplicateFlagged', 'PacketCreated', 'PacketClaimed', 'PacketShareCredited', 'PacketRefunded',
  'LotteryDrawn', 'GoodsGranted',
  'GiftPackGranted', 'GiftPackClaimed', 'CouponsReissued', 'CouponFrozen', 'CouponUnfrozen', 'CouponRedeemed',
];

/**
 * Fields that record who asked, from where and with which request, and a token's signature
 * (checked when the token is presented, not when it is folded). No ledger rule reads them:
 * they are for people reading the log, so a replay may leave them out (schemas/codec.ts).
 */
export const AUDIT_TRAIL_FIELDS = ['traceId', 'signature', 'keyId', 'grantedBy', 'clientAddress', 'requestId', 'requestedBy', 'fundedBy', 'flaggedBy'] as const;
