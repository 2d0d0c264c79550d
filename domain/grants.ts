import { createHash } from 'node:crypto';
import { deterministicId } from './ids.ts';
import { DRAW_ORDER_PREFIX } from './campaigns.ts';
import { isPositiveMinorUnits, type Currency } from './money.ts';
import type { TokenCredited } from './events.ts';

/**
 * Deciding a cash grant. The budget itself is enforced by an atomic counter (see
 * infra/budget.ts) because it is shared by every API instance; everything that can be
 * decided from the request and the activity alone is decided here.
 */
export interface GrantCommand {
  activityId: string;
  sceneId: string;
  orderNo: string;
  userId: string;
  amount: number;
  currency: string;
}

export interface ActivityTerms {
  activityId: string;
  currency: Currency;
  /** Largest single grant, minor units. */
  maxSingleGrant: number;
  /** The lottery campaign whose child this activity is (its draws alone spend it); null or absent for a plain activity. */
  campaignId?: string | null;
}

export type GrantRejection =
  | { code: 'AMOUNT_NOT_POSITIVE_INTEGER'; message: string }
  | { code: 'AMOUNT_OVER_CAP'; message: string }
  | { code: 'CURRENCY_MISMATCH'; message: string }
  | { code: 'ORDER_NO_RESERVED'; message: string }
  | { code: 'ACTIVITY_RESERVED'; message: string };

/**
 * What no direct grant (cash or gift pack) may do, whatever it grants: take a lottery draw's
 * order number, or spend from a campaign child's activity, whose budget and stock its draws
 * alone spend (a grant there would pay a prize nobody drew).
 */
export function directGrantRejection(orderNo: string, terms: Pick<ActivityTerms, 'activityId' | 'campaignId'>): GrantRejection | null {
  // A direct grant under a draw's order number would take the draw's token id: the winner told
  // of a prize would get that grant's amount, or nothing.
  if (orderNo.startsWith(DRAW_ORDER_PREFIX)) {
    return { code: 'ORDER_NO_RESERVED', message: `order numbers starting "${DRAW_ORDER_PREFIX}" are reserved for lottery draws` };
  }
  if (terms.campaignId) {
    return { code: 'ACTIVITY_RESERVED', message: `activity ${terms.activityId} belongs to lottery campaign "${terms.campaignId}": only its draws grant from it` };
  }
  return null;
}

export function checkGrant(cmd: GrantCommand, terms: ActivityTerms): GrantRejection | null {
  const reserved = directGrantRejection(cmd.orderNo, terms);
  if (reserved) return reserved;
  if (!isPositiveMinorUnits(cmd.amount)) {
    return { code: 'AMOUNT_NOT_POSITIVE_INTEGER', message: 'amount must be a positive whole number of fen' };
  }
  if (cmd.currency !== terms.currency) {
    return { code: 'CURRENCY_MISMATCH', message: `activity ${terms.activityId} pays in ${terms.currency}, not ${cmd.currency}` };
  }
  if (cmd.amount > terms.maxSingleGrant) {
    return { code: 'AMOUNT_OVER_CAP', message: `amount ${cmd.amount} exceeds the single-grant cap of ${terms.maxSingleGrant} fen for activity ${terms.activityId}` };
  }
  return null;
}

/** The token (and TokenIssued event) id of an order: one order, one token, forever. */
export function tokenIdFor(activityId: string, orderNo: string): string {
  return deterministicId('TokenIssued', activityId, orderNo);
}

export function creditEventIdFor(tokenId: string): string {
  return deterministicId('TokenCredited', tokenId);
}

/** The credit of a token. Whoever credits it (the crediting processor, a forced credit) produces this same event. */
export function creditFor(token: Pick<TokenCredited, 'tokenId' | 'activityId' | 'traceId' | 'userId' | 'amount' | 'currency'>, now: number): TokenCredited {
  return {
    eventId: creditEventIdFor(token.tokenId), occurredAt: now, activityId: token.activityId, traceId: token.traceId,
    tokenId: token.tokenId, userId: token.userId, amount: token.amount, currency: token.currency,
  };
}

export function fundingEventIdFor(activityId: string, fundingId: string): string {
  return deterministicId('BudgetFunded', activityId, fundingId);
}

/**
 * What makes two requests with one order number "the same request". A retry must match;
 * a different user, amount or scene under a used order number is a conflict, not a retry.
 */
export function grantFingerprint(cmd: GrantCommand): string {
  return createHash('sha256')
    .update(JSON.stringify([cmd.activityId, cmd.sceneId, cmd.orderNo, cmd.userId, cmd.amount, cmd.currency]))
    .digest('base64url')
    .slice(0, 22);
}
