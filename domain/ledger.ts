import { account, mayGoNegative } from './accounts.ts';
import type { Currency } from './money.ts';
import type { LedgerEvent } from './events.ts';

/**
 * The money rules. This module is the single definition of what each event does to the
 * ledger; the projector, the API's checks and reconciliation all call it.
 *
 * Invariants (asserted here and by tests):
 *  I1. Every event's postings sum to zero, per currency.
 *  I2. No account except company:cost is below zero after an event is applied.
 *  I3. A token is credited at most once, and only after it was issued.
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
}

/** What the fold needs to know about the state before the event. */
export interface LedgerView {
  token(tokenId: string): TokenRecord | undefined;
}

export type Anomaly =
  | { kind: 'token_credited_twice'; tokenId: string; eventId: string }
  | { kind: 'token_credit_without_issue'; tokenId: string; eventId: string }
  | { kind: 'token_credit_mismatch'; tokenId: string; eventId: string; expected: number; actual: number };

export interface Effects {
  postings: Posting[];
  /** Token records to create or replace. */
  tokens: TokenRecord[];
  anomalies: Anomaly[];
}

const none = (): Effects => ({ postings: [], tokens: [], anomalies: [] });

function transfer(from: string, to: string, amount: number, currency: Currency): Posting[] {
  return [
    { account: from, currency, amount: -amount },
    { account: to, currency, amount },
  ];
}

export function effectsOf(event: LedgerEvent, view: LedgerView): Effects {
  switch (event.type) {
    case 'BudgetFunded': {
      const e = event.data;
      return { ...none(), postings: transfer(account.companyCost(), account.activityBudget(e.activityId), e.amount, e.currency) };
    }
    case 'TokenIssued': {
      const e = event.data;
      return {
        ...none(),
        postings: transfer(account.activityBudget(e.activityId), account.user(e.userId, 'pending'), e.amount, e.currency),
        tokens: [{
          tokenId: e.tokenId, userId: e.userId, activityId: e.activityId, sceneId: e.sceneId, orderNo: e.orderNo,
          amount: e.amount, currency: e.currency, status: 'pending', issuedAt: e.occurredAt, creditedAt: null,
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
  }
}

/** I1: postings of one movement sum to zero in every currency. */
export function assertBalanced(postings: readonly Posting[]): void {
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
 * Used by reconciliation (replay) and by tests as the reference model.
 */
export class MemoryLedger implements LedgerView {
  readonly balances = new Map<string, { currency: Currency; balance: number }>();
  readonly tokens = new Map<string, TokenRecord>();
  readonly applied = new Set<string>();
  readonly anomalies: Anomaly[] = [];

  token(tokenId: string): TokenRecord | undefined {
    return this.tokens.get(tokenId);
  }

  /** Applies an event once; a repeated eventId changes nothing. Returns false for a duplicate. */
  apply(event: LedgerEvent): boolean {
    if (this.applied.has(event.data.eventId)) return false;
    this.applied.add(event.data.eventId);
    const fx = effectsOf(event, this);
    assertBalanced(fx.postings);
    for (const p of fx.postings) {
      const cur = this.balances.get(p.account);
      this.balances.set(p.account, { currency: p.currency, balance: (cur?.balance ?? 0) + p.amount });
    }
    for (const t of fx.tokens) this.tokens.set(t.tokenId, t);
    this.anomalies.push(...fx.anomalies);
    return true;
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
