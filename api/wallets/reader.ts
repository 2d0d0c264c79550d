import type pg from 'pg';
import { account } from '../../domain/accounts.ts';

export interface WalletBalance {
  userId: string;
  currency: string;
  available: number;
  pending: number;
  withdrawing: number;
  cumulativeIncome: number;
}

/** Reads wallet views from the ledger projection. */
export class WalletReader {
  constructor(private readonly pool: pg.Pool) {}

  async balance(userId: string, currency: string): Promise<WalletBalance> {
    const accounts = [account.user(userId, 'available'), account.user(userId, 'pending'), account.user(userId, 'withdrawing')];
    const { rows } = await this.pool.query<{ account: string; balance: number; income: number }>(
      `select b.account, b.balance, 0::bigint as income from account_balances b where b.account = any($1) and b.currency = $2
       union all
       select 'income', 0, coalesce(sum(amount), 0)::bigint from tokens where user_id = $3 and currency = $2`,
      [accounts, currency, userId],
    );
    const get = (a: string) => rows.find((r) => r.account === a)?.balance ?? 0;
    return {
      userId, currency,
      available: get(accounts[0]!), pending: get(accounts[1]!), withdrawing: get(accounts[2]!),
      cumulativeIncome: rows.find((r) => r.account === 'income')?.income ?? 0,
    };
  }
}
