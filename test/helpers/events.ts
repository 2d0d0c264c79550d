import { creditFor, tokenIdFor } from '../../domain/grants.ts';
import type { TokenIssued } from '../../domain/events.ts';

/** A TokenIssued as the grant service would produce it (signature not checked downstream). */
export function issued(activityId: string, userId: string, orderNo: string, amount: number, at = Date.now()): TokenIssued {
  const tokenId = tokenIdFor(activityId, orderNo);
  return {
    eventId: tokenId, occurredAt: at, activityId, traceId: `trace-${orderNo}`, tokenId, orderNo, userId, sceneId: 'scene',
    amount, currency: 'CNY', signature: 'test', keyId: 'test', grantedBy: 'test', clientAddress: '127.0.0.1', requestId: orderNo,
  };
}

export { creditFor };
