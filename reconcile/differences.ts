/**
 * What an audit can find, by kind. Every difference names who and what it concerns (user,
 * order, token, payout, account), the expected and actual values, and the events involved,
 * so finance can act on a line of the report without reading code.
 */
export const DIFFERENCE_KINDS = [
  /** The ledger settled a payout the provider has no successful payment for. */
  'missing_payout',
  /** The provider paid one payout more than once, and the extra payment is not yet flagged. */
  'duplicate_payout',
  /** The provider paid a different amount, currency or user than the ledger's withdrawal. */
  'amount_mismatch',
  /** The provider paid a payout id the ledger has no withdrawal for. */
  'payout_without_ledger_entry',
  /** The provider paid, but the ledger returned the money to the user (failed or rejected). */
  'payout_status_mismatch',
  /** The provider has a final answer, but the ledger still shows the withdrawal in flight. */
  'payout_unresolved',
  /** A withdrawal has been in flight longer than the grace period and the provider has no record of it. */
  'payout_overdue',
  /** The projection differs from the fold of the log (an event, its postings, a balance or a record). */
  'projection_drift',
  /** An activity issued more than it was funded. */
  'budget_over_issue',
  /** Two accepted tokens of an activity took overlapping budget slices (ledger I10): one budget, issued twice. */
  'budget_slice_overlap',
  /** An activity's accepted tokens have budget slices ending beyond its fundings on the log (ledger I10). */
  'budget_slice_beyond_funding',
  /** Postings do not sum to zero in a currency. */
  'ledger_imbalance',
  /** A second credit for one token reached the log. */
  'token_credited_twice',
  /** A token is still not credited after the grace period. */
  'token_never_credited',
  /** A grabbed red-packet share is still not credited after the grace period. */
  'packet_share_never_credited',
  /** A red-packet share was credited with no claim behind it, or with another amount. */
  'packet_credit_mismatch',
  /** A red packet expired with money left and was not refunded within the grace period. */
  'packet_refund_overdue',
  /** Another event the ledger refused to apply (see the fold's anomalies). */
  'rejected_event',
] as const;
export type DifferenceKind = (typeof DIFFERENCE_KINDS)[number];

/** The compensation event --repair emits for a difference, if it can be repaired by one. */
export type RepairAction = 'credit_token' | 'credit_share' | 'settle_payout' | 'return_payout' | 'flag_duplicate';

export interface Difference {
  kind: DifferenceKind;
  message: string;
  activityId?: string;
  userId?: string;
  orderNo?: string;
  tokenId?: string;
  packetId?: string;
  payoutId?: string;
  providerRef?: string;
  account?: string;
  currency?: string;
  expected?: string | number | null;
  actual?: string | number | null;
  /** Event ids involved, in log order where known. */
  events: string[];
  repair: RepairAction | null;
  /** What the repair needs beyond the fields above (amounts, reasons). */
  repairData?: { amount: number; currency: string; reason?: string };
}

export function countByKind(diffs: readonly Difference[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const d of diffs) out[d.kind] = (out[d.kind] ?? 0) + 1;
  return out;
}

export const CSV_COLUMNS = [
  'kind', 'activityId', 'userId', 'orderNo', 'tokenId', 'payoutId', 'providerRef', 'account', 'currency',
  'expected', 'actual', 'events', 'repair', 'message',
  // Added after the first release: new columns go at the end, so finance's sheets keep their columns.
  'packetId',
] as const;

function csvField(v: unknown): string {
  const s = v === undefined || v === null ? '' : Array.isArray(v) ? v.join(';') : String(v);
  // Quote everything that could break a row, and neutralise spreadsheet formulas.
  const safe = /^[=+\-@\t\r]/.test(s) && !/^-?\d+$/.test(s) ? `'${s}` : s;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function toCsv(diffs: readonly Difference[]): string {
  const rows = [CSV_COLUMNS.join(',')];
  for (const d of diffs) rows.push(CSV_COLUMNS.map((c) => csvField(d[c])).join(','));
  return `${rows.join('\n')}\n`;
}
