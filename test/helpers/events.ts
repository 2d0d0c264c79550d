import { creditFor, tokenIdFor } from '../../domain/grants.ts';
import type { TokenIssued } from '../../domain/events.ts';

// What this process has reserved per activity, and each token's slice, as the journal would
// have (ledger I10): an order of the same amount keeps its slice, so a copy is a true copy.
const reservedSoFar = new Map<string, number>();
const slices = new Map<string, { amount: number; end: number }>();

/**
 * A TokenIssued as the grant service and the journal would produce it (signature not checked
 * downstream). Unless `slice` says otherwise, it takes the next budget slice of its activity
 * (activities of this process only: tokens granted through the API on the same activity take
 * theirs from the journal, and the two would overlap) and records as funded exactly the
 * slice's end: the fold accepts it, and whether the activity was funded that much is the
 * audit's question. `slice: null` makes a token no journal reserved.
 */
export function issued(
  activityId: string, userId: string, orderNo: string, amount: number, at = Date.now(),
  slice?: { end: number; funded: number } | null,
): TokenIssued {
  const tokenId = tokenIdFor(activityId, orderNo);
  let s = slice;
  if (s === undefined) {
    const known = slices.get(tokenId);
    const end = known?.amount === amount ? known.end : (reservedSoFar.get(activityId) ?? 0) + amount;
    if (known?.amount !== amount) {
      reservedSoFar.set(activityId, end);
      slices.set(tokenId, { amount, end });
    }
    s = { end, funded: end };
  }
  return {
    eventId: tokenId, occurredAt: at, activityId, traceId: `trace-${orderNo}`, tokenId, orderNo, userId, sceneId: 'scene',
    amount, currency: 'CNY', signature: 'test', keyId: 'test', grantedBy: 'test', clientAddress: '127.0.0.1', requestId: orderNo,
    budgetSliceEnd: s?.end ?? null, budgetFunded: s?.funded ?? null,
  };
}

export { creditFor };

import { claimEventIdFor, packetIdFor, refundEventIdFor, shareCreditEventIdFor, splitShares } from '../../domain/packets.ts';
import type { PacketClaimed, PacketCreated, PacketRefunded, PacketShareCredited } from '../../domain/events.ts';

/** A PacketCreated as the packet service would produce it. */
export function packetCreated(senderId: string, key: string, amount: number, count: number, at: number, expiresAt: number, shares = splitShares(amount, count)): PacketCreated {
  const packetId = packetIdFor(senderId, key);
  return {
    eventId: packetId, occurredAt: at, activityId: '', traceId: `trace-${key}`, packetId, senderId, amount, currency: 'CNY', count, shares,
    greeting: 'gong xi fa cai', expiresAt, requestedBy: senderId, clientAddress: '127.0.0.1', requestId: key,
  };
}

export function packetClaimed(p: Pick<PacketCreated, 'packetId' | 'senderId' | 'shares'>, userId: string, seq: number, at: number, amount = p.shares[seq]!): PacketClaimed {
  return { eventId: claimEventIdFor(p.packetId, userId), occurredAt: at, activityId: '', traceId: 't', packetId: p.packetId, senderId: p.senderId, userId, seq, amount, currency: 'CNY' };
}

export function shareCredited(c: Pick<PacketClaimed, 'packetId' | 'userId' | 'amount'>, at: number): PacketShareCredited {
  return { eventId: shareCreditEventIdFor(c.packetId, c.userId), occurredAt: at, activityId: '', traceId: 't', packetId: c.packetId, userId: c.userId, amount: c.amount, currency: 'CNY' };
}

export function packetRefunded(p: Pick<PacketCreated, 'packetId' | 'senderId'>, amount: number, at: number): PacketRefunded {
  return { eventId: refundEventIdFor(p.packetId), occurredAt: at, activityId: '', traceId: 't', packetId: p.packetId, senderId: p.senderId, amount, currency: 'CNY' };
}
