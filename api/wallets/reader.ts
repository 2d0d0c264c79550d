import type pg from 'pg';
import { account } from '../../domain/accounts.ts';
import type { WithdrawalStatus } from '../../domain/withdrawals.ts';
import { CURRENCIES } from '../../domain/money.ts';
import { ReadCache } from './balance-cache.ts';

export interface WalletBalance {
  userId: string;
  currency: string;
  available: number;
  pending: number;
  withdrawing: number;
  cumulativeIncome: number;
}

export interface StatementEntry {
  id: string;
  kind: 'reward' | 'withdrawal';
  /** Signed minor units: a reward adds, a withdrawal takes away. */
  amount: number;
  currency: string;
  status: string;
  text: string;
  activityId: string | null;
  sceneId: string | null;
  occurredAt: string;
  reason: string | null;
}

export interface WithdrawalView {
  withdrawalId: string;
  userId: string;
  amount: number;
  currency: string;
  status: WithdrawalStatus;
  requestedAt: string;
  resolvedAt: string | null;
  reason: string | null;
}

const WITHDRAWAL_TEXT: Record<WithdrawalStatus, string> = {
  withdrawing: 'Withdrawal to your payment account — on its way',
  settled: 'Withdrawal to your payment account',
  failed: 'Withdrawal failed — the money is back in your balance',
  rejected: 'Withdrawal refused — nothing was taken',
};

/** A statement cursor names the position of the last entry seen; it is opaque to clients. */
export function encodeCursor(seq: number): string {
  return Buffer.from(`s1:${seq}`).toString('base64url');
}

export function decodeCursor(cursor: string): number | null {
  const m = /^s1:(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  return m ? Number(m[1]) : null;
}

/** Reads wallet views from the ledger projection. */
export class WalletReader {
  private readonly balances: ReadCache<WalletBalance>;

  /** `cacheMs`: how old a balance shown on the wallet page may be (0: always read the projection). */
  constructor(private readonly pool: pg.Pool, cacheMs = 0) {
    this.balances = new ReadCache(cacheMs);
  }

  balance(userId: string, currency: string): Promise<WalletBalance> {
    return this.balances.get(`${userId}|${currency}`, () => this.readBalance(userId, currency));
  }

  /** After this user moved money through this instance, show the projection, not the cache. */
  forgetBalance(userId: string): void {
    for (const currency of CURRENCIES) this.balances.forget(`${userId}|${currency}`);
  }

  /**
   * Balance reads that arrive together are answered by one query: under load, dozens of
   * wallet pages cost Postgres one round trip instead of dozens.
   */
  private pending = new Map<string, { userId: string; currency: string; waiters: { resolve(b: WalletBalance): void; reject(e: unknown): void }[] }>();

  private readBalance(userId: string, currency: string): Promise<WalletBalance> {
    return new Promise((resolve, reject) => {
      const key = `${userId}|${currency}`;
      const entry = this.pending.get(key) ?? { userId, currency, waiters: [] };
      entry.waiters.push({ resolve, reject });
      this.pending.set(key, entry);
      if (this.pending.size === 1 && entry.waiters.length === 1) setImmediate(() => void this.flushBalances());
    });
  }

  private async flushBalances(): Promise<void> {
    const batch = [...this.pending.values()];
    this.pending = new Map();
    try {
      const users = batch.map((b) => b.userId);
      const accounts = users.flatMap((u) => [account.user(u, 'available'), account.user(u, 'pending'), account.user(u, 'withdrawing')]);
      const { rows } = await this.pool.query<{ key: string; currency: string; amount: number }>({
        name: 'wallet-balances',
        text: `select 'a|' || account as key, currency, balance as amount from account_balances where account = any($1)
               union all
               select 'i|' || user_id, currency, sum(amount)::bigint from tokens where user_id = any($2) group by user_id, currency`,
        values: [accounts, users],
      });
      const found = new Map(rows.map((r) => [`${r.key}|${r.currency}`, r.amount]));
      for (const b of batch) {
        const get = (k: string) => found.get(`${k}|${b.currency}`) ?? 0;
        const bucket = (name: 'available' | 'pending' | 'withdrawing') => get(`a|${account.user(b.userId, name)}`);
        const balance: WalletBalance = {
          userId: b.userId, currency: b.currency,
          available: bucket('available'), pending: bucket('pending'), withdrawing: bucket('withdrawing'), cumulativeIncome: get(`i|${b.userId}`),
        };
        for (const w of b.waiters) w.resolve(balance);
      }
    } catch (err) {
      for (const b of batch) for (const w of b.waiters) w.reject(err);
    }
  }

  /**
   * Rewards (credited or still pending) and withdrawals with their outcomes, newest first.
   * Entries are ordered by the wallet-topic offset of the event that created them, which for
   * one user only grows; paging with "below the last position seen" therefore neither
   * repeats nor skips an entry however many arrive meanwhile (new ones land above).
   */
  async statement(userId: string, limit: number, before: number | null): Promise<{ entries: StatementEntry[]; nextCursor: string | null }> {
    const { rows } = await this.pool.query<{
      kind: 'reward' | 'withdrawal'; id: string; amount: number; currency: string; status: string; text: string | null;
      activity_id: string | null; scene_id: string | null; at: Date; seq: number; reason: string | null;
    }>(
      `(select 'reward' as kind, t.token_id::text as id, t.amount, t.currency, t.status,
               coalesce(s.statement_text, a.name, t.activity_id) as text, t.activity_id, t.scene_id,
               t.issued_at as at, t.statement_seq as seq, null::text as reason
          from tokens t
          left join scenes s on s.activity_id = t.activity_id and s.scene_id = t.scene_id
          left join activities a on a.activity_id = t.activity_id
         where t.user_id = $1 and t.statement_seq < $2
         order by t.statement_seq desc limit $3)
       union all
       (select 'withdrawal', w.withdrawal_id::text, -w.amount, w.currency, w.status, null, null, null,
               w.requested_at, w.statement_seq, w.reason
          from withdrawals w
         where w.user_id = $1 and w.statement_seq < $2
         order by w.statement_seq desc limit $3)
       order by seq desc limit $3`,
      [userId, before ?? Number.MAX_SAFE_INTEGER, limit + 1],
    );
    const more = rows.length > limit;
    const page = rows.slice(0, limit);
    return {
      entries: page.map((r) => ({
        id: r.id, kind: r.kind, amount: r.amount, currency: r.currency, status: r.status,
        text: r.kind === 'withdrawal' ? WITHDRAWAL_TEXT[r.status as WithdrawalStatus] : r.text!,
        activityId: r.activity_id, sceneId: r.scene_id, occurredAt: r.at.toISOString(), reason: r.reason,
      })),
      nextCursor: more ? encodeCursor(page[page.length - 1]!.seq) : null,
    };
  }

  /** "Has this user received any reward in this campaign?" Pending rewards count: the user holds a token. */
  async rewardsIn(userId: string, activityId: string): Promise<{ received: boolean; count: number; amount: number }> {
    const { rows } = await this.pool.query<{ n: number; amount: number }>(
      'select count(*)::bigint as n, coalesce(sum(amount), 0)::bigint as amount from tokens where user_id = $1 and activity_id = $2',
      [userId, activityId],
    );
    const n = rows[0]!.n;
    return { received: n > 0, count: n, amount: rows[0]!.amount };
  }

  async withdrawal(userId: string, withdrawalId: string): Promise<WithdrawalView | null> {
    const { rows } = await this.pool.query(
      `select withdrawal_id, user_id, amount, currency, status, requested_at, resolved_at, reason
         from withdrawals where withdrawal_id = $1 and user_id = $2`,
      [withdrawalId, userId],
    );
    const r = rows[0];
    if (!r) return null;
    return {
      withdrawalId: r.withdrawal_id, userId: r.user_id, amount: r.amount, currency: r.currency, status: r.status,
      requestedAt: r.requested_at.toISOString(), resolvedAt: r.resolved_at?.toISOString() ?? null, reason: r.reason,
    };
  }
}
