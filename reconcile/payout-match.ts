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

/**
 * Compares the ledger's withdrawals with the provider's payments. The rule: every settled
 * withdrawal has exactly one successful payment of its amount, plus any extra payments
 * reconciliation flagged; nothing else was paid.
 */
export function matchPayouts(input: PayoutMatchInput): Difference[] {
  const { withdrawals, flagged, referenceTime, graceMs } = input;
  const byPayout = new Map<string, ProviderPayment[]>();
  for (const p of input.payments) {
    const list = byPayout.get(p.payoutId) ?? [];
    if (!list.some((q) => q.providerRef === p.providerRef)) list.push(p);
    byPayout.set(p.payoutId, list);
  }
  const ids = new Set<string>([...byPayout.keys()]);
  for (const [id, w] of withdrawals) if (w.status !== 'rejected') ids.add(id);
  const settledBefore = referenceTime - graceMs;
  const out: Difference[] = [];

  for (const id of ids) {
    const w = withdrawals.get(id);
    const payments = (byPayout.get(id) ?? []).sort((a, b) => a.seq - b.seq);
    const paid = payments.filter((p) => p.status === 'succeeded');
    const refused = payments.find((p) => p.status === 'rejected');

    if (!w) {
      for (const p of paid) {
        out.push({
          kind: 'payout_without_ledger_entry', payoutId: id, providerRef: p.providerRef, userId: p.userId, currency: p.currency,
          expected: null, actual: p.amount, events: [], repair: null,
          message: `the provider paid ${p.amount} ${p.currency} to ${p.userId} under payout id ${id}, which the ledger has no withdrawal for`,
        });
      }
      continue;
    }
    const who = { payoutId: id, userId: w.userId, currency: w.currency };
    const mismatch = (p: ProviderPayment) => {
      if (p.amount === w.amount && p.currency === w.currency && p.userId === w.userId) return false;
      out.push({
        ...who, kind: 'amount_mismatch', providerRef: p.providerRef, events: eventsOf(w), repair: null,
        expected: `${w.amount} ${w.currency} to ${w.userId}`, actual: `${p.amount} ${p.currency} to ${p.userId}`,
        message: `withdrawal ${id} is ${w.amount} ${w.currency} to ${w.userId}, but the provider paid ${p.amount} ${p.currency} to ${p.userId}`,
      });
      return true;
    };
    const duplicates = (primary: ProviderPayment) => {
      for (const p of paid) {
        if (p === primary || flagged(id, p.providerRef)) continue;
        out.push({
          ...who, kind: 'duplicate_payout', providerRef: p.providerRef, currency: p.currency, expected: 1, actual: paid.length,
          events: eventsOf(w), repair: w.status === 'settled' ? 'flag_duplicate' : null, repairData: { amount: p.amount, currency: p.currency },
          message: `the provider paid withdrawal ${id} ${paid.length} times; payment ${p.providerRef} (${p.amount} ${p.currency}) is extra`
            + (w.status === 'settled' ? '' : ' (it can be flagged once the withdrawal is settled)'),
        });
      }
    };

    switch (w.status) {
      case 'settled': {
        const primary = paid.find((p) => p.providerRef === w.providerRef) ?? paid[0];
        if (!primary) {
          out.push({
            ...who, kind: 'missing_payout', providerRef: w.providerRef ?? undefined, expected: w.amount,
            actual: refused ? `refused: ${refused.reason ?? 'no reason'}` : 'no payment', events: eventsOf(w), repair: null,
            message: `the ledger settled withdrawal ${id} (${w.amount} ${w.currency} to ${w.userId}) but the provider `
              + (refused ? `refused it (${refused.reason ?? 'no reason'})` : 'has no payment for it'),
          });
          break;
        }
        mismatch(primary);
        duplicates(primary);
        break;
      }
      case 'withdrawing': {
        const primary = paid[0];
        if (primary) {
          if (!mismatch(primary) && primary.createdAt < settledBefore) {
            out.push({
              ...who, kind: 'payout_unresolved', providerRef: primary.providerRef, expected: 'settled', actual: 'withdrawing',
              events: eventsOf(w), repair: 'settle_payout', repairData: { amount: w.amount, currency: w.currency },
              message: `the provider paid withdrawal ${id} (${primary.providerRef}) but the ledger still shows it in flight`,
            });
          }
          duplicates(primary);
        } else if (refused && refused.createdAt < settledBefore) {
          out.push({
            ...who, kind: 'payout_unresolved', providerRef: refused.providerRef, expected: 'failed', actual: 'withdrawing',
            events: eventsOf(w), repair: 'return_payout', repairData: { amount: w.amount, currency: w.currency, reason: refused.reason ?? 'REJECTED' },
            message: `the provider refused withdrawal ${id} (${refused.reason ?? 'no reason'}) but the ledger still holds ${w.amount} ${w.currency} as withdrawing`,
          });
        } else if (!refused && w.requestedAt < settledBefore) {
          out.push({
            ...who, kind: 'payout_overdue', expected: 'a provider answer', actual: 'no record', events: eventsOf(w), repair: null,
            message: `withdrawal ${id} (${w.amount} ${w.currency}) has been in flight since ${new Date(w.requestedAt).toISOString()} and the provider has no record of it`,
          });
        }
        break;
      }
      case 'failed':
      case 'rejected':
        for (const p of paid) {
          out.push({
            ...who, kind: 'payout_status_mismatch', providerRef: p.providerRef, expected: w.status, actual: `paid ${p.amount} ${p.currency}`,
            events: eventsOf(w), repair: null,
            message: `the ledger returned withdrawal ${id} to ${w.userId}'s wallet (${w.status}), but the provider paid it (${p.providerRef})`,
          });
        }
        break;
    }
  }
  // In payout id order (each id's own differences in the order found): sorting the few
  // differences rather than every id of the statement.
  return out.sort((a, b) => (a.payoutId! < b.payoutId! ? -1 : a.payoutId! > b.payoutId! ? 1 : 0));
}
