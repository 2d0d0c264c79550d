import { isCurrency, isPositiveMinorUnits } from './money.ts';
import type { EventMap, EventType, LedgerEvent } from './events.ts';
import { isUuid } from './ids.ts';

/**
 * What every ledger event must satisfy beyond its Avro schema: ids the ledger keys on are
 * UUIDs (they are derived, see ids.ts), amounts are positive whole minor units, the
 * currency is known, times are integers. An event that fails is not applied by anyone (the
 * codec refuses it, so consumers dead-letter it and replay skips it alike); it can never
 * stop a partition or half-apply.
 */

/** A rule on one field, for every event type that has the field: why a value breaks it, or null. */
interface FieldRule {
  field: string;
  why(value: unknown): string | null;
}

const uuid = (field: string): FieldRule => ({ field, why: (v) => (isUuid(v as string) ? null : `${field} is not a UUID`) });
const nonEmpty = (field: string): FieldRule => ({ field, why: (v) => (v === '' ? `${field} is empty` : null) });
const time = (field: string): FieldRule => ({ field, why: (v) => (Number.isSafeInteger(v) ? null : `${field} is not an integer time`) });

const FIELD_RULES: FieldRule[] = [
  uuid('eventId'),
  time('occurredAt'),
  { field: 'amount', why: (v) => (isPositiveMinorUnits(v) ? null : 'amount is not a positive whole number of minor units') },
  { field: 'currency', why: (v) => (isCurrency(v as string) ? null : `currency ${v} is not one the ledger keeps`) },
  uuid('tokenId'),
  uuid('withdrawalId'),
  nonEmpty('userId'),
  uuid('packetId'),
  nonEmpty('senderId'),
  uuid('grantId'),
  uuid('couponId'),
  { field: 'hold', why: (v) => (Number.isSafeInteger(v) && (v as number) >= 1 ? null : 'hold must be 1 or more') },
  nonEmpty('paymentId'),
  time('frozenUntil'),
  {
    field: 'coupons',
    why: (v) => {
      for (const c of v as EventMap['GiftPackGranted']['coupons']) {
        if (!isUuid(c.couponId)) return 'a couponId is not a UUID';
        if (!isPositiveMinorUnits(c.faceValue)) return 'a face value is not a positive whole number of minor units';
        if (!isCurrency(c.currency)) return `currency ${c.currency} is not one the ledger keeps`;
        if (!Number.isSafeInteger(c.expiresAt)) return 'expiresAt is not an integer time';
      }
      return null;
    },
  },
];

/** Rules of one event type beyond its fields' own. */
const TYPE_RULES: { [K in EventType]?: (e: EventMap[K]) => string | null } = {
  PacketCreated: (p) => (!Number.isSafeInteger(p.count) || p.count < 1 ? 'count must be 1 or more'
    : !Number.isSafeInteger(p.expiresAt) ? 'expiresAt is not an integer time' : null),
  PacketClaimed: (c) => (Number.isSafeInteger(c.seq) && c.seq >= 0 ? null : 'seq must be 0 or more'),
  LotteryDrawn: (d) => (d.drawId === '' ? 'drawId is empty'
    : d.outcome === 'won' && (d.prizeId === '' || d.fulfilmentId === '') ? 'a won draw names its prize and its fulfilment'
    : d.outcome === 'won' && d.awardType === 'cash' && !isPositiveMinorUnits(d.prizeAmount) ? 'a cash prize is a positive whole number of minor units'
    : !Number.isSafeInteger(d.prizeAmount) || d.prizeAmount < 0 || !Number.isSafeInteger(d.quantity) || d.quantity < 0 ? 'prizeAmount and quantity are whole numbers, 0 or more'
    : null),
  GoodsGranted: (g) => (Number.isSafeInteger(g.quantity) && g.quantity >= 1 ? null : 'quantity must be 1 or more'),
  PayoutAttemptFailed: (a) => (Number.isSafeInteger(a.attempt) && a.attempt >= 1 ? null : 'attempt must be 1 or more'),
};

/** Why an event's data breaks the rules, or null. */
export type EventValidator = (data: LedgerEvent['data']) => string | null;

/**
 * The rules for events of one type whose records have these fields (an Avro schema's), chosen
 * once per schema. Asking each decoded event `'amount' in e` for every rule instead, across
 * records of twenty shapes, was a large part of what a replay spends per event.
 */
export function eventValidator(type: EventType, fields: readonly string[]): EventValidator {
  const rules = FIELD_RULES.filter((r) => fields.includes(r.field));
  const typeRule = TYPE_RULES[type] as ((data: LedgerEvent['data']) => string | null) | undefined;
  return (data) => {
    const d = data as unknown as Record<string, unknown>;
    for (let i = 0; i < rules.length; i++) {
      const why = rules[i]!.why(d[rules[i]!.field]);
      if (why !== null) return why;
    }
    return typeRule ? typeRule(data) : null;
  };
}
