import { createHash } from 'node:crypto';
import { deterministicId } from './ids.ts';
import { coversDebit, isPositiveMinorUnits, type Currency } from './money.ts';

/**
 * The withdrawal rules. The API decides with them before it accepts a withdrawal, and the
 * ledger fold applies the same funds rule again when it projects the event, so a withdrawal
 * the ledger cannot cover moves nothing and is never paid out.
 *
 *   withdrawing ──PayoutSettled──▶ settled   (withdrawing → external:payout)
 *        └──────PayoutFailed───▶ failed    (withdrawing → available)
 *   (a request the fold cannot cover is recorded as rejected and moves nothing)
 */
export type WithdrawalStatus = 'withdrawing' | 'settled' | 'failed' | 'rejected';

export interface WithdrawalRecord {
  withdrawalId: string;
  userId: string;
  amount: number;
  currency: Currency;
  status: WithdrawalStatus;
  requestedAt: number;
  resolvedAt: number | null;
  /** The event that settled or failed it. */
  resolvedEventId: string | null;
  /** Why it failed or was rejected; the provider's reference once settled. */
  reason: string | null;
  providerRef: string | null;
}

export interface WithdrawalTerms {
  currency: Currency;
  /** Largest single withdrawal, minor units; undefined when only funds are checked (the fold). */
  maxSingleWithdrawal?: number;
}

export type WithdrawalRejection =
  | { code: 'AMOUNT_NOT_POSITIVE_INTEGER'; message: string }
  | { code: 'CURRENCY_MISMATCH'; message: string }
  | { code: 'AMOUNT_OVER_CAP'; message: string }
  | { code: 'INSUFFICIENT_FUNDS'; message: string };

export function checkWithdrawal(amount: number, currency: string, available: number, terms: WithdrawalTerms): WithdrawalRejection | null {
  if (!isPositiveMinorUnits(amount)) return { code: 'AMOUNT_NOT_POSITIVE_INTEGER', message: 'amount must be a positive whole number of fen' };
  if (currency !== terms.currency) return { code: 'CURRENCY_MISMATCH', message: `withdrawals are paid in ${terms.currency}, not ${currency}` };
  if (terms.maxSingleWithdrawal !== undefined && amount > terms.maxSingleWithdrawal) {
    return { code: 'AMOUNT_OVER_CAP', message: `amount ${amount} exceeds the single-withdrawal cap of ${terms.maxSingleWithdrawal} fen` };
  }
  if (!coversDebit(available, amount)) return { code: 'INSUFFICIENT_FUNDS', message: `the available balance is ${available} fen, less than the ${amount} requested` };
  return null;
}

/** One (user, idempotency key) is one withdrawal, and its id is the payout id the provider sees. */
export function withdrawalIdFor(userId: string, idempotencyKey: string): string {
  return deterministicId('WithdrawalRequested', userId, idempotencyKey);
}

export function settledEventIdFor(withdrawalId: string): string {
  return deterministicId('PayoutSettled', withdrawalId);
}

export function failedEventIdFor(withdrawalId: string): string {
  return deterministicId('PayoutFailed', withdrawalId);
}

/** One flag per extra provider payment: the provider's reference names the payment. */
export function duplicateFlagEventIdFor(withdrawalId: string, providerRef: string): string {
  return deterministicId('PayoutDuplicateFlagged', withdrawalId, providerRef);
}

export function attemptFailedEventIdFor(withdrawalId: string, attempt: number): string {
  return deterministicId('PayoutAttemptFailed', withdrawalId, String(attempt));
}

/**
 * Gray release: a user is in the first `basisPoints`/10,000 of users by a stable hash, so
 * raising the share only ever adds users, and every instance agrees on who is in.
 */
export function rolloutBucket(userId: string): number {
  return createHash('sha256').update(`withdrawal-rollout:${userId}`).digest().readUInt32BE(0) % 10_000;
}

export function inRollout(userId: string, basisPoints: number): boolean {
  return rolloutBucket(userId) < basisPoints;
}

/** Exponential backoff with a cap, for re-produced payout attempts. Attempt 1 is the first retry. */
export function payoutBackoffMs(attempt: number, baseMs: number, capMs: number): number {
  return Math.min(capMs, baseMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
}
