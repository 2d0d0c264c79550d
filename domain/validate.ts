import { isCurrency, isPositiveMinorUnits } from './money.ts';
import type { LedgerEvent } from './events.ts';
import { isUuid } from './ids.ts';


/**
 * What every ledger event must satisfy beyond its Avro schema: ids the ledger keys on are
 * UUIDs (they are derived, see ids.ts), amounts are positive whole minor units, the
 * currency is known, times are integers. An event that fails is not applied by anyone (the
 * codec refuses it, so consumers dead-letter it and replay skips it alike); it can never
 * stop a partition or half-apply.
 */
export function invalidEvent(event: LedgerEvent): string | null {
  const e = event.data;
  if (!isUuid(e.eventId)) return 'eventId is not a UUID';
  if (!Number.isSafeInteger(e.occurredAt)) return 'occurredAt is not an integer time';
  if ('amount' in e && !isPositiveMinorUnits(e.amount)) return 'amount is not a positive whole number of minor units';
  if ('currency' in e && !isCurrency(e.currency)) return `currency ${e.currency} is not one the ledger keeps`;
  if ('tokenId' in e && !isUuid(e.tokenId)) return 'tokenId is not a UUID';
  if ('withdrawalId' in e && !isUuid(e.withdrawalId)) return 'withdrawalId is not a UUID';
  if ('userId' in e && e.userId === '') return 'userId is empty';
  if ('packetId' in e && !isUuid(e.packetId)) return 'packetId is not a UUID';
  if ('senderId' in e && e.senderId === '') return 'senderId is empty';
  if (event.type === 'PacketCreated') {
    const p = event.data;
    if (!Number.isSafeInteger(p.count) || p.count < 1) return 'count must be 1 or more';
    if (!Number.isSafeInteger(p.expiresAt)) return 'expiresAt is not an integer time';
  }
  if (event.type === 'PacketClaimed' && !(Number.isSafeInteger(event.data.seq) && event.data.seq >= 0)) return 'seq must be 0 or more';
  if (event.type === 'LotteryDrawn') {
    const d = event.data;
    if (d.drawId === '') return 'drawId is empty';
    if (d.outcome === 'won' && (d.prizeId === '' || d.fulfilmentId === '')) return 'a won draw names its prize and its fulfilment';
    if (d.outcome === 'won' && d.awardType === 'cash' && !isPositiveMinorUnits(d.prizeAmount)) return 'a cash prize is a positive whole number of minor units';
    if (!Number.isSafeInteger(d.prizeAmount) || d.prizeAmount < 0 || !Number.isSafeInteger(d.quantity) || d.quantity < 0) return 'prizeAmount and quantity are whole numbers, 0 or more';
  }
  if (event.type === 'GoodsGranted' && !(Number.isSafeInteger(event.data.quantity) && event.data.quantity >= 1)) return 'quantity must be 1 or more';
  if ('grantId' in e && !isUuid(e.grantId)) return 'grantId is not a UUID';
  if ('couponId' in e && !isUuid(e.couponId)) return 'couponId is not a UUID';
  if ('hold' in e && !(Number.isSafeInteger(e.hold) && e.hold >= 1)) return 'hold must be 1 or more';
  if ('paymentId' in e && e.paymentId === '') return 'paymentId is empty';
  if ('frozenUntil' in e && !Number.isSafeInteger(e.frozenUntil)) return 'frozenUntil is not an integer time';
  if ('coupons' in e) {
    for (const c of e.coupons) {
      if (!isUuid(c.couponId)) return 'a couponId is not a UUID';
      if (!isPositiveMinorUnits(c.faceValue)) return 'a face value is not a positive whole number of minor units';
      if (!isCurrency(c.currency)) return `currency ${c.currency} is not one the ledger keeps`;
      if (!Number.isSafeInteger(c.expiresAt)) return 'expiresAt is not an integer time';
    }
  }
  if (event.type === 'PayoutAttemptFailed' && !(Number.isSafeInteger(event.data.attempt) && event.data.attempt >= 1)) return 'attempt must be 1 or more';
  return null;
}
