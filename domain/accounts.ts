/**
 * The chart of accounts. An account id is a string so postings can be stored and summed
 * uniformly; these builders are the only place that knows the spelling.
 *
 *   company:cost ──fund──▶ activity:<id>:budget ──grant──▶ user:<id>:pending
 *        ──credit──▶ user:<id>:available ──withdraw──▶ user:<id>:withdrawing ──settle──▶ external:payout
 *
 * A group red packet holds its total in escrow until it is grabbed or refunded (domain/packets.ts):
 *
 *   user:<sender>:available ──create──▶ packet:<id>:escrow ──grab──▶ user:<grabber>:pending
 *   packet:<id>:escrow ──refund at expiry──▶ user:<sender>:available
 *
 * company:cost is where the company's spending comes from. company:payout-recovery holds what
 * the provider paid by mistake (a duplicate payout) until finance recovers it:
 *
 *   company:payout-recovery ──flag duplicate──▶ external:payout
 *
 * Those two may go negative; every other account must stay at or above zero.
 */
export type UserBucket = 'pending' | 'available' | 'withdrawing';

export const account = {
  companyCost: (): string => 'company:cost',
  payoutRecovery: (): string => 'company:payout-recovery',
  activityBudget: (activityId: string): string => `activity:${activityId}:budget`,
  user: (userId: string, bucket: UserBucket): string => `user:${userId}:${bucket}`,
  externalPayout: (): string => 'external:payout',
  packetEscrow: (packetId: string): string => `packet:${packetId}:escrow`,
};

/** Whether the id is an activity's budget (account.activityBudget), without parsing it: checks run over every account of a fold. */
export function isActivityBudget(accountId: string): boolean {
  return accountId.startsWith('activity:') && accountId.endsWith(':budget');
}

/** Accounts that may be negative. Everything else below zero is an invariant violation. */
export function mayGoNegative(accountId: string): boolean {
  return accountId === account.companyCost() || accountId === account.payoutRecovery();
}

export interface ParsedAccount {
  kind: 'company' | 'activity' | 'user' | 'external' | 'packet';
  ownerId: string | null;
  bucket: string;
}

export function parseAccount(accountId: string): ParsedAccount {
  const parts = accountId.split(':');
  const kind = parts[0];
  if (kind === 'company' || kind === 'external') return { kind, ownerId: null, bucket: parts.slice(1).join(':') };
  if ((kind === 'activity' || kind === 'user' || kind === 'packet') && parts.length >= 3) {
    return { kind, ownerId: parts.slice(1, -1).join(':'), bucket: parts[parts.length - 1]! };
  }
  throw new Error(`not an account id: ${accountId}`);
}
