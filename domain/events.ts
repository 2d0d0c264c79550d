import type { Currency } from './money.ts';

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
}

/** The account system credited a token: pending → available. Key: tokenId. */
export interface TokenCredited extends Envelope {
  tokenId: string;
  userId: string;
  amount: number;
  currency: Currency;
}

export interface EventMap {
  BudgetFunded: BudgetFunded;
  TokenIssued: TokenIssued;
  TokenCredited: TokenCredited;
}
export type EventType = keyof EventMap;
export type LedgerEvent = { [K in EventType]: { type: K; data: EventMap[K] } }[EventType];
export const EVENT_TYPES: readonly EventType[] = ['BudgetFunded', 'TokenIssued', 'TokenCredited'];
