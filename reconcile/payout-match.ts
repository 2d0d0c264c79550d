import type { WithdrawalRecord } from '../domain/withdrawals.ts';
import type { Difference } from './differences.ts';

/** One payment in the provider's books. */
export interface ProviderPayment {
  payoutId: string;
  providerRef: string;
  userId: string;
  amount: number;
  currency: string;
  status: 'succeeded' | 'rejected';
  reason: string | null;
  /** When the provider recorded it, epoch ms. */
  createdAt: number;
  /** The provider's statement order. */
  seq: number;
}

export interface PayoutMatchInput {
  /** The ledger's withdrawals as of the end of the audited range, by payout id. */
  withdrawals: ReadonlyMap<string, WithdrawalRecord>;
  /** The provider's payments in scope. */
  payments: readonly ProviderPayment[];
  /** Whether reconciliation already flagged this extra payment (PayoutDuplicateFlagged). */
  flagged(withdrawalId: string, providerRef: string): boolean;
  /** The end of the audited range: in-flight work younger than the grace period is not a difference. */
  referenceTime: number;
  graceMs: number;
}

const eventsOf = (w: WithdrawalRecord) => (w.resolvedEventId ? [w.withdrawalId, w.resolvedEventId] : [w.withdrawalId]);

const bySeq = (a: ProviderPayment, b: ProviderPayment) => a.seq - b.seq;
const NONE: readonly ProviderPayment[] = [];
const whoOf = (w: WithdrawalRecord) => ({ payoutId: w.withdrawalId, userId: w.userId, currency: w.currency });

/**
 * Compares the ledger's withdrawals with the provider's payments. The rule: every settled
 * withdrawal has exactly one successful payment of its amount, plus any extra payments
 * reconciliation flagged; nothing else was paid.
 */
export function matchPayouts(input: PayoutMatchInput): Difference[] {
  const { withdrawals } = input;
  const byPayout = new Map<string, ProviderPayment[]>();
  for (const p of input.payments) {
    const list = byPayout.get(p.payoutId);
    if (!list) byPayout.set(p.payoutId, [p]);
    else if (!list.some((q) => q.providerRef === p.providerRef)) list.push(p);
  }
  const settledBefore = input.referenceTime - input.graceMs;
  const out: Difference[] = [];
  // Every paid id, then every withdrawal the provider has no payment for. The checks are
  // plain functions, not closures made per id: a whole log's statement has millions of ids.
  for (const [id, payments] of byPayout) matchOne(out, id, withdrawals.get(id), payments.sort(bySeq), input.flagged, settledBefore);
  for (const [id, w] of withdrawals) if (w.status !== 'rejected' && !byPayout.has(id)) matchOne(out, id, w, NONE, input.flagged, settledBefore);
  // In payout id order (each id's own differences in the order found): sorting the few
  // differences rather than every id of the statement.
  return out.sort((a, b) => (a.payoutId! < b.payoutId! ? -1 : a.payoutId! > b.payoutId! ? 1 : 0));
}

function matchOne(
  out: Difference[], id: string, w: WithdrawalRecord | undefined, payments: readonly ProviderPayment[],
  flagged: PayoutMatchInput['flagged'], settledBefore: number,
): void {
  const paid = payments.length === 1 && payments[0]!.status === 'succeeded' ? payments : payments.filter((p) => p.status === 'succeeded');
  const refused = payments.find((p) => p.status === 'rejected');

  if (!w) {
    for (const p of paid) {
      out.push({
        kind: 'payout_without_ledger_entry', payoutId: id, providerRef: p.providerRef, userId: p.userId, currency: p.currency,
        expected: null, actual: p.amount, events: [], repair: null,
        message: `the provider paid ${p.amount} ${p.currency} to ${p.userId} under payout id ${id}, which the ledger has no withdrawal for`,
      });
    }
    return;
  }

  switch (w.status) {
    case 'settled': {
      const primary = paid.find((p) => p.providerRef === w.providerRef) ?? paid[0];
      if (!primary) {
        out.push({
          ...whoOf(w), kind: 'missing_payout', providerRef: w.providerRef ?? undefined, expected: w.amount,
          actual: refused ? `refused: ${refused.reason ?? 'no reason'}` : 'no payment', events: eventsOf(w), repair: null,
          message: `the ledger settled withdrawal ${id} (${w.amount} ${w.currency} to ${w.userId}) but the provider `
            + (refused ? `refused it (${refused.reason ?? 'no reason'})` : 'has no payment for it'),
        });
        break;
      }
      mismatch(out, w, primary);
      duplicates(out, w, paid, primary, flagged);
      break;
    }
    case 'withdrawing': {
      const primary = paid[0];
      if (primary) {
        if (!mismatch(out, w, primary) && primary.createdAt < settledBefore) {
          out.push({
            ...whoOf(w), kind: 'payout_unresolved', providerRef: primary.providerRef, expected: 'settled', actual: 'withdrawing',
            events: eventsOf(w), repair: 'settle_payout', repairData: { amount: w.amount, currency: w.currency },
            message: `the provider paid withdrawal ${id} (${primary.providerRef}) but the ledger still shows it in flight`,
          });
        }
        duplicates(out, w, paid, primary, flagged);
      } else if (refused && refused.createdAt < settledBefore) {
        out.push({
          ...whoOf(w), kind: 'payout_unresolved', providerRef: refused.providerRef, expected: 'failed', actual: 'withdrawing',
          events: eventsOf(w), repair: 'return_payout', repairData: { amount: w.amount, currency: w.currency, reason: refused.reason ?? 'REJECTED' },
          message: `the provider refused withdrawal ${id} (${refused.reason ?? 'no reason'}) but the ledger still holds ${w.amount} ${w.currency} as withdrawing`,
        });
      } else if (!refused && w.requestedAt < settledBefore) {
        out.push({
          ...whoOf(w), kind: 'payout_overdue', expected: 'a provider answer', actual: 'no record', events: eventsOf(w), repair: null,
          message: `withdrawal ${id} (${w.amount} ${w.currency}) has been in flight since ${new Date(w.requestedAt).toISOString()} and the provider has no record of it`,
        });
      }
      break;
    }
    case 'failed':
    case 'rejected':
      for (const p of paid) {
        out.push({
          ...whoOf(w), kind: 'payout_status_mismatch', providerRef: p.providerRef, expected: w.status, actual: `paid ${p.amount} ${p.currency}`,
          events: eventsOf(w), repair: null,
          message: `the ledger returned withdrawal ${id} to ${w.userId}'s wallet (${w.status}), but the provider paid it (${p.providerRef})`,
        });
      }
      break;
  }
}

/** A payment of another amount, currency or user than the withdrawal: true if so (and reported). */
function mismatch(out: Difference[], w: WithdrawalRecord, p: ProviderPayment): boolean {
  if (p.amount === w.amount && p.currency === w.currency && p.userId === w.userId) return false;
  const id = w.withdrawalId;
  out.push({
    ...whoOf(w), kind: 'amount_mismatch', providerRef: p.providerRef, events: eventsOf(w), repair: null,
    expected: `${w.amount} ${w.currency} to ${w.userId}`, actual: `${p.amount} ${p.currency} to ${p.userId}`,
    message: `withdrawal ${id} is ${w.amount} ${w.currency} to ${w.userId}, but the provider paid ${p.amount} ${p.currency} to ${p.userId}`,
  });
  return true;
}

/** Successful payments besides the primary one that reconciliation has not flagged. */
function duplicates(out: Difference[], w: WithdrawalRecord, paid: readonly ProviderPayment[], primary: ProviderPayment, flagged: PayoutMatchInput['flagged']): void {
  const id = w.withdrawalId;
  for (const p of paid) {
    if (p === primary || flagged(id, p.providerRef)) continue;
    out.push({
      ...whoOf(w), kind: 'duplicate_payout', providerRef: p.providerRef, currency: p.currency, expected: 1, actual: paid.length,
      events: eventsOf(w), repair: w.status === 'settled' ? 'flag_duplicate' : null, repairData: { amount: p.amount, currency: p.currency },
      message: `the provider paid withdrawal ${id} ${paid.length} times; payment ${p.providerRef} (${p.amount} ${p.currency}) is extra`
        + (w.status === 'settled' ? '' : ' (it can be flagged once the withdrawal is settled)'),
    });
  }
}
