import { randomInt } from 'node:crypto';
import { deterministicId } from './ids.ts';
import { isCurrency, type Currency } from './money.ts';
import type { PacketClaimed, PacketShareCredited } from './events.ts';

/**
 * Group red packets (WeChat style). A sender moves a total from their available balance into
 * the packet's escrow; the total is split into `count` shares when the packet is created, and
 * the split is part of the creation event, so it is audited and replayed as it was drawn.
 *
 *   user:S:available ──PacketCreated──▶ packet:P:escrow ──PacketClaimed──▶ user:G:pending
 *        ──PacketShareCredited──▶ user:G:available
 *   packet:P:escrow ──PacketRefunded (at expiry, the unclaimed rest)──▶ user:S:available
 *
 *   open ──(count claims)──▶ finished
 *    ├──(expiry, a remainder)──▶ refunded
 *    └──(the fold could not cover it)──▶ rejected   (moves nothing)
 */
export type PacketStatus = 'open' | 'finished' | 'refunded' | 'rejected';

export interface PacketRecord {
  packetId: string;
  senderId: string;
  amount: number;
  currency: Currency;
  count: number;
  /** The split drawn at creation: shares[seq] is what the seq-th grab gets. */
  shares: number[];
  greeting: string;
  createdAt: number;
  expiresAt: number;
  status: PacketStatus;
  claimedCount: number;
  claimedAmount: number;
  refundedAmount: number;
  /** When it was finished, refunded or rejected. */
  closedAt: number | null;
}

export interface PacketClaimRecord {
  packetId: string;
  seq: number;
  userId: string;
  amount: number;
  currency: Currency;
  claimedAt: number;
}

/** A grabber's share moved from pending to available. */
export interface PacketCreditRecord {
  packetId: string;
  userId: string;
  amount: number;
  currency: Currency;
  creditedAt: number;
}

export type RandomInt = (minInclusive: number, maxInclusive: number) => number;

export const secureRandomInt: RandomInt = (min, max) => randomInt(min, max + 1);

/**
 * The largest share the next grab may get, with `sharesLeft` shares (this one included) still
 * to hand out from `remaining`: twice the mean of what remains, but leaving 1 fen for each
 * share after it. The last share takes the remainder.
 */
export function maxShare(remaining: number, sharesLeft: number): number {
  if (sharesLeft === 1) return remaining;
  return Math.min(Math.floor((2 * remaining) / sharesLeft), remaining - (sharesLeft - 1));
}

/** The WeChat split: each share random in [1, maxShare], the last one the remainder. */
export function splitShares(total: number, count: number, random: RandomInt = secureRandomInt): number[] {
  if (!Number.isSafeInteger(total) || !Number.isSafeInteger(count) || count < 1 || total < count) {
    throw new RangeError(`cannot split ${total} fen into ${count} shares of at least 1 fen`);
  }
  const shares: number[] = [];
  let remaining = total;
  for (let left = count; left > 1; left--) {
    const share = random(1, maxShare(remaining, left));
    shares.push(share);
    remaining -= share;
  }
  shares.push(remaining);
  return shares;
}

/** Why a recorded split breaks the rule, or null. The fold refuses a packet whose split does. */
export function invalidSplit(total: number, count: number, shares: readonly number[]): string | null {
  if (shares.length !== count) return `the split has ${shares.length} shares, not ${count}`;
  const sum = shares.reduce((a, b) => a + b, 0);
  if (sum !== total) return `the shares sum to ${sum}, not ${total}`;
  let remaining = total;
  for (let i = 0; i < shares.length; i++) {
    const share = shares[i]!;
    const most = maxShare(remaining, count - i);
    if (!Number.isSafeInteger(share) || share < 1 || share > most) return `share ${i} is ${share} fen, outside [1, ${most}]`;
    remaining -= share;
  }
  return null;
}

export interface PacketTerms {
  currency: Currency;
  maxCount: number;
  /** Largest packet total, minor units. */
  maxAmount: number;
  minExpiryMs: number;
  maxExpiryMs: number;
}

export interface PacketCommand {
  amount: number;
  currency: string;
  count: number;
  expiryMs: number;
}

export type PacketRejection =
  | { code: 'AMOUNT_NOT_POSITIVE_INTEGER'; message: string }
  | { code: 'COUNT_NOT_POSITIVE_INTEGER'; message: string }
  | { code: 'CURRENCY_MISMATCH'; message: string }
  | { code: 'COUNT_OVER_CAP'; message: string }
  | { code: 'AMOUNT_OVER_CAP'; message: string }
  | { code: 'COUNT_ABOVE_TOTAL'; message: string }
  | { code: 'EXPIRY_OUT_OF_RANGE'; message: string };

/** What the API decides from the request alone, before it looks at the sender's balance. */
export function checkPacket(cmd: PacketCommand, terms: PacketTerms): PacketRejection | null {
  if (!Number.isSafeInteger(cmd.amount) || cmd.amount <= 0) return { code: 'AMOUNT_NOT_POSITIVE_INTEGER', message: 'total must be a positive whole number of fen' };
  if (!Number.isSafeInteger(cmd.count) || cmd.count <= 0) return { code: 'COUNT_NOT_POSITIVE_INTEGER', message: 'count must be a positive whole number of shares' };
  if (!isCurrency(cmd.currency) || cmd.currency !== terms.currency) return { code: 'CURRENCY_MISMATCH', message: `packets are paid in ${terms.currency}, not ${cmd.currency}` };
  if (cmd.count > terms.maxCount) return { code: 'COUNT_OVER_CAP', message: `a packet has at most ${terms.maxCount} shares, not ${cmd.count}` };
  if (cmd.amount > terms.maxAmount) return { code: 'AMOUNT_OVER_CAP', message: `a packet holds at most ${terms.maxAmount} fen, not ${cmd.amount}` };
  if (cmd.count > cmd.amount) return { code: 'COUNT_ABOVE_TOTAL', message: `${cmd.amount} fen cannot give ${cmd.count} shares at least 1 fen each` };
  if (!Number.isSafeInteger(cmd.expiryMs) || cmd.expiryMs < terms.minExpiryMs || cmd.expiryMs > terms.maxExpiryMs) {
    return { code: 'EXPIRY_OUT_OF_RANGE', message: `expiry must be between ${terms.minExpiryMs / 1000} and ${terms.maxExpiryMs / 1000} seconds` };
  }
  return null;
}

/** One (sender, idempotency key) is one packet; its id is the creation event's id. */
export function packetIdFor(senderId: string, idempotencyKey: string): string {
  return deterministicId('PacketCreated', senderId, idempotencyKey);
}

/** One claim per user per packet, whoever writes it (the grab, a retry, the sweeper, the refunder). */
export function claimEventIdFor(packetId: string, userId: string): string {
  return deterministicId('PacketClaimed', packetId, userId);
}

export function shareCreditEventIdFor(packetId: string, userId: string): string {
  return deterministicId('PacketShareCredited', packetId, userId);
}

/** One refund per packet. */
export function refundEventIdFor(packetId: string): string {
  return deterministicId('PacketRefunded', packetId);
}

/** What no claim has taken: the refund at expiry. */
export function unclaimedOf(p: Pick<PacketRecord, 'amount' | 'claimedAmount'>): number {
  return p.amount - p.claimedAmount;
}

/** The best luck: the largest share, the earliest grab on a tie (then the lower seq). */
export function bestLuck<C extends Pick<PacketClaimRecord, 'amount' | 'claimedAt' | 'seq'>>(claims: readonly C[]): C | null {
  let best: C | null = null;
  for (const c of claims) {
    if (!best || c.amount > best.amount || (c.amount === best.amount && (c.claimedAt < best.claimedAt || (c.claimedAt === best.claimedAt && c.seq < best.seq)))) best = c;
  }
  return best;
}

/** The claim event of a grab. Whoever writes it (the grab, a retry, the keeper) writes this same event. */
export function claimFor(c: { packetId: string; senderId: string; userId: string; seq: number; amount: number; currency: Currency; claimedAt: number; traceId: string }): PacketClaimed {
  return {
    eventId: claimEventIdFor(c.packetId, c.userId), occurredAt: c.claimedAt, activityId: '', traceId: c.traceId,
    packetId: c.packetId, senderId: c.senderId, userId: c.userId, seq: c.seq, amount: c.amount, currency: c.currency,
  };
}

/** The credit of a claimed share. The crediting processor and a withdrawal's forced credit produce this same event. */
export function shareCreditFor(c: Pick<PacketClaimed, 'packetId' | 'userId' | 'amount' | 'currency' | 'traceId'>, now: number): PacketShareCredited {
  return {
    eventId: shareCreditEventIdFor(c.packetId, c.userId), occurredAt: now, activityId: '', traceId: c.traceId,
    packetId: c.packetId, userId: c.userId, amount: c.amount, currency: c.currency,
  };
}
