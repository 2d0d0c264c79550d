import { account, mayGoNegative } from './accounts.ts';
import { coversDebit, type Currency } from './money.ts';
import type { EventMap, LedgerEvent, TokenIssued } from './events.ts';
import { checkWithdrawal, duplicateFlagEventIdFor, type WithdrawalRecord } from './withdrawals.ts';
import { fundingEventIdFor, tokenIdFor } from './grants.ts';
import {
  claimEventIdFor, invalidSplit, refundEventIdFor, unclaimedOf, shareCreditEventIdFor, type PacketClaimRecord, type PacketCreditRecord, type PacketRecord,
} from './packets.ts';
import { drawEventIdFor, goodsGrantIdFor, type DrawWinRecord, type GoodsGrantRecord } from './campaigns.ts';
import { IdSet } from './id-set.ts';
import { couponEventIdOf, evolvePack, isCouponEvent, type PackRecord } from './coupons.ts';

/**
 * The money rules. This module is the single definition of what each event does to the
 * ledger; the projector, the API's checks and reconciliation all call it.
 *
 * Invariants (asserted here and by tests):
 *  I1. Every event's postings sum to zero, per currency.
 *  I2. No account except company:cost is below zero after an event is applied.
 *  I3. A token is credited at most once, and only after it was issued.
 *  I4. A withdrawal is covered by the available balance when it is applied, and it is
 *      resolved (settled or failed) at most once: one payout, one posting to external.
 *  I5. An event that creates money or a record carries the id derived from its business
 *      key, so the ledger's dedupe by event id is a dedupe by business key: a second copy
 *      of a funding, grant, withdrawal or duplicate-payout flag under another id moves nothing.
 *  I6. Money reaches external:payout only for a payout the provider made: once per settled
 *      withdrawal, plus once per extra provider payment reconciliation flagged.
 *  I7. A red packet pays out at most its split: each share once, to one user each (the claim's
 *      id is derived from packet and user), never after the packet closed or expired, and the
 *      refund is exactly what no claim took. Escrow therefore never goes below zero.
 *  I8. A lottery draw and a goods grant move no money; each is recorded once per business key
 *      (draw id; order number). A cash win's money moves by its TokenIssued, like any grant.
 *  I9. Coupon gift packs move no money; a pack's state changes only as evolvePack allows
 *      (coupons.ts, C2–C5), and an event it refuses changes nothing.
 * I10. A token moves money only within the budget slice it carries. The journal, as it
 *      reserves a grant's amount, gives it the slice [end - amount, end) of its activity's
 *      cumulative reservations and records in the TokenIssued that end and the activity's
 *      cumulative funding then. The fold refuses (anomaly token_uncovered; no postings, no
 *      token, so a credit of it is token_credit_without_issue) a token with no slice, with a
 *      slice starting below zero or ending beyond the funding it records. Not a balance check:
 *      fundings (budget topic) and grants (wallet partitions, by user) interleave differently
 *      in every fold, so a balance check would refuse different tokens in the projector and in
 *      a parallel replay; this rule reads the event alone, so every fold refuses the same ones.
 *      What a token claims is then checked at the log's level (checkSlices, in the audit; the
 *      invariant check does the same over the projection): an activity's accepted slices are
 *      disjoint and end within its BudgetFunded events on the log, so the tokens it accepted
 *      sum to at most what it was funded, whichever path produced them.
 */
export interface Posting {
  account: string;
  currency: Currency;
  /** Signed minor units: positive increases the account, negative decreases it. */
  amount: number;
}

export type TokenStatus = 'pending' | 'credited';

export interface TokenRecord {
  tokenId: string;
  userId: string;
  activityId: string;
  sceneId: string;
  orderNo: string;
  amount: number;
  currency: Currency;
  status: TokenStatus;
  issuedAt: number;
  creditedAt: number | null;
  /**
   * I10: the end of the budget slice the token was accepted with (its start is the end less
   * the amount). Null only on a projection row from before slices existed (migration 010).
   */
  budgetSliceEnd: number | null;
}

/** What the fold needs to know about the state before the event. */
export interface LedgerView {
  token(tokenId: string): TokenRecord | undefined;
  withdrawal(withdrawalId: string): WithdrawalRecord | undefined;
  balance(account: string): number;
  packet(packetId: string): PacketRecord | undefined;
  packetClaim(packetId: string, seq: number): PacketClaimRecord | undefined;
  pack(grantId: string): PackRecord | undefined;
}

export type Anomaly =
  | { kind: 'event_id_not_derived'; eventId: string; expected: string }
  | { kind: 'token_credited_twice'; tokenId: string; eventId: string }
  | { kind: 'token_credit_without_issue'; tokenId: string; eventId: string }
  | { kind: 'token_credit_mismatch'; tokenId: string; eventId: string; expected: number; actual: number }
  | { kind: 'token_uncovered'; tokenId: string; eventId: string; activityId: string; amount: number; sliceEnd: number | null; funded: number | null; reason: string }
  | { kind: 'withdrawal_overdraft'; withdrawalId: string; eventId: string; available: number; amount: number }
  | { kind: 'payout_without_withdrawal'; withdrawalId: string; eventId: string }
  | { kind: 'payout_resolved_twice'; withdrawalId: string; eventId: string; status: string }
  | { kind: 'payout_amount_mismatch'; withdrawalId: string; eventId: string; expected: number; actual: number }
  | { kind: 'duplicate_flag_refused'; withdrawalId: string; eventId: string; providerRef: string; status: string }
  | { kind: 'packet_refused'; packetId: string; eventId: string; reason: string }
  | { kind: 'claim_refused'; packetId: string; eventId: string; userId: string; seq: number; reason: string }
  | { kind: 'refund_refused'; packetId: string; eventId: string; reason: string }
  | { kind: 'coupon_event_refused'; grantId: string; eventId: string; type: string; reason: string };

export interface Effects {
  postings: Posting[];
  /** Token records to create or replace. */
  tokens: TokenRecord[];
  /** Withdrawal records to create or replace. */
  withdrawals: WithdrawalRecord[];
  /** Packet records to create or replace; claims and credits to create. */
  packets: PacketRecord[];
  packetClaims: PacketClaimRecord[];
  packetCredits: PacketCreditRecord[];
  /** Won draws (quota consumption and win counts are sums of them) and goods grants to create. */
  drawWins: DrawWinRecord[];
  goodsGrants: GoodsGrantRecord[];
  /** Gift packs to create or replace. */
  packs: PackRecord[];
  anomalies: Anomaly[];
}

// Most events have one kind of effect; the others share one frozen empty list rather than
// allocating ten fresh ones per event (a replay folds millions of events).
const EMPTY = Object.freeze([]) as unknown as never[];
const none = (): Effects => ({
  postings: EMPTY, tokens: EMPTY, withdrawals: EMPTY, packets: EMPTY, packetClaims: EMPTY, packetCredits: EMPTY, drawWins: EMPTY, goodsGrants: EMPTY, packs: EMPTY, anomalies: EMPTY,
});

function transfer(from: string, to: string, amount: number, currency: Currency): Posting[] {
  return [
    { account: from, currency, amount: -amount },
    { account: to, currency, amount },
  ];
}

/**
 * What effectsOf reads from the view for an event. Whoever feeds the fold from storage (the
 * projector, a range audit) loads exactly this before applying the event.
 */
export interface StateRead {
  token?: string;
  withdrawal?: string;
  balance?: string;
  packet?: string;
  packetClaim?: { packetId: string; seq: number };
  pack?: string;
}

export function stateReadBy(event: LedgerEvent): StateRead {
  if (isCouponEvent(event)) return { pack: event.data.grantId };
  switch (event.type) {
    case 'TokenCredited':
      return { token: event.data.tokenId };
    case 'PayoutSettled':
    case 'PayoutFailed':
    case 'PayoutDuplicateFlagged':
      return { withdrawal: event.data.withdrawalId };
    case 'WithdrawalRequested':
      return { balance: account.user(event.data.userId, 'available') };
    case 'PacketCreated':
      return { balance: account.user(event.data.senderId, 'available') };
    case 'PacketClaimed':
      return { packet: event.data.packetId, packetClaim: { packetId: event.data.packetId, seq: event.data.seq } };
    case 'PacketRefunded':
      return { packet: event.data.packetId };
    default:
      return {};
  }
}

/** I5: the id a creating event must carry, or null for events guarded by the state they change. */
function derivedIdOf(event: LedgerEvent): string | null {
  if (isCouponEvent(event)) return couponEventIdOf(event);
  switch (event.type) {
    case 'BudgetFunded':
      return fundingEventIdFor(event.data.activityId, event.data.fundingId);
    case 'TokenIssued':
      return tokenIdFor(event.data.activityId, event.data.orderNo);
    case 'WithdrawalRequested':
      // The idempotency key is not in the event, so the withdrawal id itself is the key.
      return event.data.withdrawalId;
    case 'PayoutDuplicateFlagged':
      return duplicateFlagEventIdFor(event.data.withdrawalId, event.data.providerRef);
    case 'PacketCreated':
      // As for withdrawals, the idempotency key is not in the event: the packet id is the key.
      return event.data.packetId;
    case 'PacketClaimed':
      return claimEventIdFor(event.data.packetId, event.data.userId);
    case 'PacketShareCredited':
      return shareCreditEventIdFor(event.data.packetId, event.data.userId);
    case 'PacketRefunded':
      return refundEventIdFor(event.data.packetId);
    case 'LotteryDrawn':
      return drawEventIdFor(event.data.activityId, event.data.drawId);
    case 'GoodsGranted':
      return goodsGrantIdFor(event.data.activityId, event.data.orderNo);
    default:
      return null;
  }
}

export function effectsOf(event: LedgerEvent, view: LedgerView): Effects {
  const expected = derivedIdOf(event);
  if (expected !== null && (event.data.eventId !== expected || (event.type === 'TokenIssued' && event.data.tokenId !== expected)
    || (event.type === 'GoodsGranted' && event.data.grantId !== expected))) {
    return { ...none(), anomalies: [{ kind: 'event_id_not_derived', eventId: event.data.eventId, expected }] };
  }
  if (isCouponEvent(event)) {
    const next = evolvePack(view.pack(event.data.grantId), event);
    if ('refused' in next) {
      return { ...none(), anomalies: [{ kind: 'coupon_event_refused', grantId: event.data.grantId, eventId: event.data.eventId, type: event.type, reason: next.refused }] };
    }
    return { ...none(), packs: [next.record] };
  }
  switch (event.type) {
    case 'BudgetFunded': {
      const e = event.data;
      return { ...none(), postings: transfer(account.companyCost(), account.activityBudget(e.activityId), e.amount, e.currency) };
    }
    case 'TokenIssued': {
      const e = event.data;
      const uncovered = uncoveredToken(e);
      if (uncovered) {
        return {
          ...none(),
          anomalies: [{
            kind: 'token_uncovered', tokenId: e.tokenId, eventId: e.eventId, activityId: e.activityId, amount: e.amount,
            sliceEnd: e.budgetSliceEnd ?? null, funded: e.budgetFunded ?? null, reason: uncovered,
          }],
        };
      }
      return {
        ...none(),
        postings: transfer(account.activityBudget(e.activityId), account.user(e.userId, 'pending'), e.amount, e.currency),
        tokens: [{
          tokenId: e.tokenId, userId: e.userId, activityId: e.activityId, sceneId: e.sceneId, orderNo: e.orderNo,
          amount: e.amount, currency: e.currency, status: 'pending', issuedAt: e.occurredAt, creditedAt: null, budgetSliceEnd: e.budgetSliceEnd,
        }],
      };
    }
    case 'TokenCredited': {
      const e = event.data;
      const token = view.token(e.tokenId);
      if (!token) return { ...none(), anomalies: [{ kind: 'token_credit_without_issue', tokenId: e.tokenId, eventId: e.eventId }] };
      if (token.status === 'credited') return { ...none(), anomalies: [{ kind: 'token_credited_twice', tokenId: e.tokenId, eventId: e.eventId }] };
      if (token.amount !== e.amount) {
        return { ...none(), anomalies: [{ kind: 'token_credit_mismatch', tokenId: e.tokenId, eventId: e.eventId, expected: token.amount, actual: e.amount }] };
      }
      return {
        ...none(),
        postings: transfer(account.user(e.userId, 'pending'), account.user(e.userId, 'available'), token.amount, token.currency),
        tokens: [{ ...token, status: 'credited', creditedAt: e.occurredAt }],
      };
    }
    case 'WithdrawalRequested': {
      const e = event.data;
      const available = view.balance(account.user(e.userId, 'available'));
      const record: WithdrawalRecord = {
        withdrawalId: e.withdrawalId, userId: e.userId, amount: e.amount, currency: e.currency,
        status: 'withdrawing', requestedAt: e.occurredAt, resolvedAt: null, resolvedEventId: null, reason: null, providerRef: null,
      };
      const refused = checkWithdrawal(e.amount, e.currency, available, { currency: e.currency });
      if (refused) {
        return {
          ...none(),
          withdrawals: [{ ...record, status: 'rejected', resolvedAt: e.occurredAt, resolvedEventId: e.eventId, reason: refused.code }],
          anomalies: [{ kind: 'withdrawal_overdraft', withdrawalId: e.withdrawalId, eventId: e.eventId, available, amount: e.amount }],
        };
      }
      return {
        ...none(),
        postings: transfer(account.user(e.userId, 'available'), account.user(e.userId, 'withdrawing'), e.amount, e.currency),
        withdrawals: [record],
      };
    }
    case 'PayoutSettled':
    case 'PayoutFailed': {
      const e = event.data;
      const w = view.withdrawal(e.withdrawalId);
      if (!w) return { ...none(), anomalies: [{ kind: 'payout_without_withdrawal', withdrawalId: e.withdrawalId, eventId: e.eventId }] };
      if (w.status !== 'withdrawing') {
        return { ...none(), anomalies: [{ kind: 'payout_resolved_twice', withdrawalId: e.withdrawalId, eventId: e.eventId, status: w.status }] };
      }
      if (w.amount !== e.amount) {
        return { ...none(), anomalies: [{ kind: 'payout_amount_mismatch', withdrawalId: e.withdrawalId, eventId: e.eventId, expected: w.amount, actual: e.amount }] };
      }
      const settled = event.type === 'PayoutSettled';
      const to = settled ? account.externalPayout() : account.user(w.userId, 'available');
      return {
        ...none(),
        postings: transfer(account.user(w.userId, 'withdrawing'), to, w.amount, w.currency),
        withdrawals: [{
          ...w, status: settled ? 'settled' : 'failed', resolvedAt: e.occurredAt, resolvedEventId: e.eventId,
          reason: settled ? null : event.data.reason, providerRef: settled ? event.data.providerRef : null,
        }],
      };
    }
    case 'PayoutDuplicateFlagged': {
      const e = event.data;
      const w = view.withdrawal(e.withdrawalId);
      if (!w) return { ...none(), anomalies: [{ kind: 'payout_without_withdrawal', withdrawalId: e.withdrawalId, eventId: e.eventId }] };
      // Only a settled withdrawal can have an extra payment, and the one it settled with is not extra.
      if (w.status !== 'settled' || w.providerRef === e.providerRef) {
        return { ...none(), anomalies: [{ kind: 'duplicate_flag_refused', withdrawalId: e.withdrawalId, eventId: e.eventId, providerRef: e.providerRef, status: w.status }] };
      }
      return { ...none(), postings: transfer(account.payoutRecovery(), account.externalPayout(), e.amount, e.currency) };
    }
    case 'PayoutAttemptFailed':
      // A retry request on the payouts topic: it moves no money.
      return none();
    case 'PacketCreated':
      return packetCreated(event.data, view);
    case 'PacketClaimed':
      return packetClaimed(event.data, view);
    case 'PacketShareCredited': {
      // On the grabber's partition, so it cannot read the claim (on the sender's): its id makes
      // it once per (packet, grabber), and reconciliation matches it with the claim.
      const e = event.data;
      return {
        ...none(),
        postings: transfer(account.user(e.userId, 'pending'), account.user(e.userId, 'available'), e.amount, e.currency),
        packetCredits: [{ packetId: e.packetId, userId: e.userId, amount: e.amount, currency: e.currency, creditedAt: e.occurredAt }],
      };
    }
    case 'PacketRefunded':
      return packetRefunded(event.data, view);
    case 'LotteryDrawn': {
      const e = event.data;
      if (e.outcome !== 'won') return none();
      return {
        ...none(),
        drawWins: [{
          activityId: e.activityId, drawId: e.drawId, childId: e.childId, sceneId: e.sceneId, poolId: e.poolId, prizeId: e.prizeId, userId: e.userId,
          awardType: e.awardType === 'cash' || e.awardType === 'coupon' ? e.awardType : 'goods', amount: e.prizeAmount, currency: e.currency, itemId: e.itemId, quantity: e.quantity,
          fulfilmentId: e.fulfilmentId, drawnAt: e.occurredAt,
        }],
      };
    }
    case 'GoodsGranted': {
      const e = event.data;
      return {
        ...none(),
        goodsGrants: [{
          grantId: e.grantId, userId: e.userId, activityId: e.activityId, sceneId: e.sceneId, orderNo: e.orderNo, itemId: e.itemId, quantity: e.quantity, grantedAt: e.occurredAt,
        }],
      };
    }
  }
}

/**
 * I10, per event: why the fold refuses this token, or null when the slice it carries covers
 * it. Reads the event alone (never a balance), so it is the same in every fold and anyone may
 * ask it without the ledger's state (the crediting processor does not credit a refused token).
 */
export function uncoveredToken(e: TokenIssued): string | null {
  // Absent in events written before the fields existed: no journal reserved those.
  const end = e.budgetSliceEnd ?? null;
  const funded = e.budgetFunded ?? null;
  if (end === null || funded === null) return 'the token carries no budget slice';
  if (!Number.isSafeInteger(end) || !Number.isSafeInteger(funded)) return 'the budget slice is not whole minor units';
  if (end - e.amount < 0) return `its budget slice [${end - e.amount}, ${end}) starts below zero`;
  if (end > funded) return `its budget slice ends at ${end}, beyond the ${funded} funded`;
  return null;
}

/** An activity's accepted tokens as budget slices [start, end): their starts and their ends, each list in any order. */
export interface BudgetSlices {
  starts: number[];
  ends: number[];
}

export interface SliceCheck {
  /** Adjacent pairs (in start order) that overlap; 0 when the slices are disjoint. */
  overlaps: number;
  /** The highest slice end (0 with no slices): what the activity must have been funded at least. */
  highestEnd: number;
  /** The sum of the slices' lengths, the tokens' amounts. */
  total: number;
}

/**
 * I10 across the log, for one activity: its accepted slices must be disjoint (overlaps 0) and
 * end within its funding (highestEnd <= funded); then the accepted tokens sum to at most the
 * funding. Decided on two sorted number lists rather than sorted records (a replay holds
 * millions of tokens): disjoint slices sorted by start are sorted by end too, each starting
 * at or after the previous one's end; and conversely, if with starts and ends sorted apart
 * every start is at or after the previous end, no point lies in two slices (were one in k
 * starts but fewer than k - 1 ends, the k-th start would come before the (k-1)-th end).
 */
export function checkSlices(s: BudgetSlices): SliceCheck {
  const starts = Float64Array.from(s.starts).sort();
  const ends = Float64Array.from(s.ends).sort();
  let overlaps = 0;
  let total = 0;
  for (let i = 0; i < ends.length; i++) {
    total += ends[i]! - starts[i]!;
    if (i + 1 < starts.length && starts[i + 1]! < ends[i]!) overlaps++;
  }
  return { overlaps, highestEnd: ends.length > 0 ? ends[ends.length - 1]! : 0, total };
}

function packetCreated(e: EventMap['PacketCreated'], view: LedgerView): Effects {
  const record: PacketRecord = {
    packetId: e.packetId, senderId: e.senderId, amount: e.amount, currency: e.currency, count: e.count, shares: [...e.shares],
    greeting: e.greeting, createdAt: e.occurredAt, expiresAt: e.expiresAt, status: 'open', claimedCount: 0, claimedAmount: 0,
    refundedAmount: 0, closedAt: null,
  };
  const available = view.balance(account.user(e.senderId, 'available'));
  const reason = invalidSplit(e.amount, e.count, e.shares)
    ?? (e.expiresAt <= e.occurredAt ? 'the packet expires before it is created' : null)
    ?? (coversDebit(available, e.amount) ? null : `the sender's available balance ${available} does not cover ${e.amount}`);
  if (reason) {
    return {
      ...none(),
      packets: [{ ...record, status: 'rejected', closedAt: e.occurredAt }],
      anomalies: [{ kind: 'packet_refused', packetId: e.packetId, eventId: e.eventId, reason }],
    };
  }
  return { ...none(), postings: transfer(account.user(e.senderId, 'available'), account.packetEscrow(e.packetId), e.amount, e.currency), packets: [record] };
}

function packetClaimed(e: EventMap['PacketClaimed'], view: LedgerView): Effects {
  const p = view.packet(e.packetId);
  const reason = !p ? 'no such packet'
    : p.status !== 'open' ? `the packet is ${p.status}`
    : e.occurredAt >= p.expiresAt ? 'the packet had expired'
    : p.senderId !== e.senderId ? `the packet was sent by ${p.senderId}, not ${e.senderId}`
    : e.seq >= p.count || p.shares[e.seq] !== e.amount || p.currency !== e.currency ? `share ${e.seq} is not ${e.amount} ${e.currency}`
    : view.packetClaim(e.packetId, e.seq) ? `share ${e.seq} was already claimed`
    : null;
  if (reason || !p) {
    return { ...none(), anomalies: [{ kind: 'claim_refused', packetId: e.packetId, eventId: e.eventId, userId: e.userId, seq: e.seq, reason: reason! }] };
  }
  const claimedCount = p.claimedCount + 1;
  const finished = claimedCount === p.count;
  return {
    ...none(),
    postings: transfer(account.packetEscrow(p.packetId), account.user(e.userId, 'pending'), e.amount, e.currency),
    packets: [{ ...p, claimedCount, claimedAmount: p.claimedAmount + e.amount, status: finished ? 'finished' : 'open', closedAt: finished ? e.occurredAt : null }],
    packetClaims: [{ packetId: p.packetId, seq: e.seq, userId: e.userId, amount: e.amount, currency: e.currency, claimedAt: e.occurredAt }],
  };
}

function packetRefunded(e: EventMap['PacketRefunded'], view: LedgerView): Effects {
  const p = view.packet(e.packetId);
  const rest = p ? unclaimedOf(p) : 0;
  const reason = !p ? 'no such packet'
    : p.status !== 'open' ? `the packet is ${p.status}`
    : e.occurredAt < p.expiresAt ? 'the packet has not expired'
    : e.amount !== rest || e.currency !== p.currency || e.senderId !== p.senderId ? `the unclaimed rest is ${rest} ${p.currency} to ${p.senderId}, not ${e.amount} ${e.currency} to ${e.senderId}`
    : null;
  if (reason || !p) return { ...none(), anomalies: [{ kind: 'refund_refused', packetId: e.packetId, eventId: e.eventId, reason: reason! }] };
  return {
    ...none(),
    postings: transfer(account.packetEscrow(p.packetId), account.user(p.senderId, 'available'), rest, p.currency),
    packets: [{ ...p, status: 'refunded', refundedAmount: rest, closedAt: e.occurredAt }],
  };
}

/** I1: postings of one movement sum to zero in every currency. */
export function assertBalanced(postings: readonly Posting[]): void {
  // The usual movement is one currency: sum it without a map.
  let sum = 0;
  let single = true;
  for (const p of postings) {
    if (!Number.isSafeInteger(p.amount)) throw new Error(`posting amount is not an integer: ${p.amount}`);
    sum += p.amount;
    single &&= p.currency === postings[0]!.currency;
  }
  if (single) {
    if (sum !== 0) throw new Error(`postings do not balance in ${postings[0]!.currency}: sum ${sum}`);
    return;
  }
  const sums = new Map<string, number>();
  for (const p of postings) {
    if (!Number.isSafeInteger(p.amount)) throw new Error(`posting amount is not an integer: ${p.amount}`);
    sums.set(p.currency, (sums.get(p.currency) ?? 0) + p.amount);
  }
  for (const [currency, sum] of sums) {
    if (sum !== 0) throw new Error(`postings do not balance in ${currency}: sum ${sum}`);
  }
}

export interface BalanceViolation { account: string; currency: Currency; balance: number }

/** I2: every account that must stay non-negative does. */
export function negativeBalances(balances: Iterable<[string, Currency, number]>): BalanceViolation[] {
  const out: BalanceViolation[] = [];
  for (const [acct, currency, balance] of balances) {
    if (balance < 0 && !mayGoNegative(acct)) out.push({ account: acct, currency, balance });
  }
  return out;
}

/**
 * An in-memory ledger: the same fold the projector runs against Postgres, held in maps.
 * Used by reconciliation (replay) and by tests as the reference model. A fold that starts
 * mid-log (a time-range audit) is first given the state before its range with `seed*`.
 */
export class MemoryLedger implements LedgerView {
  readonly balances = new Map<string, { currency: Currency; balance: number }>();
  readonly tokens = new Map<string, TokenRecord>();
  readonly withdrawals = new Map<string, WithdrawalRecord>();
  readonly packets = new Map<string, PacketRecord>();
  /** Claims by `${packetId}/${seq}`, credits by `${packetId}/${userId}`. */
  readonly packetClaims = new Map<string, PacketClaimRecord>();
  readonly packetCredits = new Map<string, PacketCreditRecord>();
  /** Won draws by `${activityId}/${drawId}`, goods grants by grant id. */
  readonly drawWins = new Map<string, DrawWinRecord>();
  readonly goodsGrants = new Map<string, GoodsGrantRecord>();
  readonly packs = new Map<string, PackRecord>();
  readonly applied = new IdSet();
  readonly anomalies: Anomaly[] = [];

  token(tokenId: string): TokenRecord | undefined {
    return this.tokens.get(tokenId);
  }

  withdrawal(withdrawalId: string): WithdrawalRecord | undefined {
    return this.withdrawals.get(withdrawalId);
  }

  packet(packetId: string): PacketRecord | undefined {
    return this.packets.get(packetId);
  }

  packetClaim(packetId: string, seq: number): PacketClaimRecord | undefined {
    return this.packetClaims.get(`${packetId}/${seq}`);
  }

  pack(grantId: string): PackRecord | undefined {
    return this.packs.get(grantId);
  }

  /** Applies an event once and returns its effects; a repeated eventId changes nothing and returns null. */
  apply(event: LedgerEvent): Effects | null {
    if (!this.applied.add(event.data.eventId)) return null;
    const fx = effectsOf(event, this);
    assertBalanced(fx.postings);
    for (const p of fx.postings) {
      const cur = this.balances.get(p.account);
      if (cur) cur.balance += p.amount;
      else this.balances.set(p.account, { currency: p.currency, balance: p.amount });
    }
    for (const t of fx.tokens) this.tokens.set(t.tokenId, t);
    for (const w of fx.withdrawals) this.withdrawals.set(w.withdrawalId, w);
    for (const p of fx.packets) this.packets.set(p.packetId, p);
    for (const c of fx.packetClaims) this.packetClaims.set(`${c.packetId}/${c.seq}`, c);
    for (const c of fx.packetCredits) this.packetCredits.set(`${c.packetId}/${c.userId}`, c);
    for (const w of fx.drawWins) this.drawWins.set(`${w.activityId}/${w.drawId}`, w);
    for (const g of fx.goodsGrants) this.goodsGrants.set(g.grantId, g);
    for (const p of fx.packs) this.packs.set(p.grantId, p);
    if (fx.anomalies.length > 0) this.anomalies.push(...fx.anomalies);
    return fx;
  }

  /** State from before the fold's first event: an event already applied. */
  seedApplied(eventId: string): void {
    this.applied.add(eventId);
  }

  seedToken(token: TokenRecord): void {
    if (!this.tokens.has(token.tokenId)) this.tokens.set(token.tokenId, token);
  }

  seedWithdrawal(withdrawal: WithdrawalRecord): void {
    if (!this.withdrawals.has(withdrawal.withdrawalId)) this.withdrawals.set(withdrawal.withdrawalId, withdrawal);
  }

  seedPacket(packet: PacketRecord): void {
    if (!this.packets.has(packet.packetId)) this.packets.set(packet.packetId, packet);
  }

  seedPack(pack: PackRecord): void {
    if (!this.packs.has(pack.grantId)) this.packs.set(pack.grantId, pack);
  }

  seedPacketClaim(claim: PacketClaimRecord): void {
    const key = `${claim.packetId}/${claim.seq}`;
    if (!this.packetClaims.has(key)) this.packetClaims.set(key, claim);
  }

  /** An opening balance; must be seeded before any event touches the account. */
  seedBalance(acct: string, currency: Currency, balance: number): void {
    if (this.balances.has(acct)) throw new Error(`${acct} already has a balance in this fold`);
    this.balances.set(acct, { currency, balance });
  }

  balance(acct: string): number {
    return this.balances.get(acct)?.balance ?? 0;
  }

  total(): number {
    let sum = 0;
    for (const { balance } of this.balances.values()) sum += balance;
    return sum;
  }
}
