import type pg from 'pg';
import { account } from '../../domain/accounts.ts';

/**
 * The command side of every debit from a user's available balance (a withdrawal, a red
 * packet). An accepted debit is a request row until its event is projected; until then it
 * holds its amount. Spendable = the projected available balance minus every such hold, read
 * in one statement (one snapshot). The projector commits an event's balance change and its
 * ledger_events row together, so a request is counted exactly once: as a hold until
 * projected, then in the balance. With the per-user lock, two debits of one balance
 * therefore cannot both pass, whichever kind they are.
 */
export class WalletDebits {
  constructor(private readonly pool: pg.Pool) {}

  /**
   * Decides one debit under the user's lock, in one transaction: a request that raced in
   * under the same key is returned as it is; otherwise `record` sees the spendable balance
   * and either stores the request or throws (and nothing is written).
   */
  async decide<R>(userId: string, steps: {
    existing(client: pg.PoolClient): Promise<R | null>;
    record(client: pg.PoolClient, spendable: number): Promise<R>;
  }): Promise<{ raced: boolean; row: R }> {
    const client = await this.pool.connect();
    try {
      await client.query('begin');
      await client.query('select pg_advisory_xact_lock(hashtext($1))', [`debit:${userId}`]);
      const raced = await steps.existing(client);
      if (raced) {
        await client.query('rollback');
        return { raced: true, row: raced };
      }
      const row = await steps.record(client, await this.spendable(userId, false, client));
      await client.query('commit');
      return { raced: false, row };
    } catch (err) {
      await client.query('rollback').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  /** The available balance (plus pending, if asked) minus the holds of accepted, unprojected debits. */
  async spendable(userId: string, withPending: boolean, client: pg.Pool | pg.PoolClient = this.pool): Promise<number> {
    const buckets = [account.user(userId, 'available'), ...(withPending ? [account.user(userId, 'pending')] : [])];
    const { rows } = await client.query<{ spendable: number }>(
      `select coalesce((select sum(balance) from account_balances where account = any($1)), 0)
            - coalesce((select sum(r.amount) from withdrawal_requests r
                         where r.user_id = $2 and not exists (select 1 from ledger_events e where e.event_id = r.withdrawal_id)), 0)
            - coalesce((select sum(r.amount) from packet_requests r
                         where r.sender_id = $2 and not exists (select 1 from ledger_events e where e.event_id = r.packet_id)), 0)
              as spendable`,
      [buckets, userId],
    );
    return Number(rows[0]!.spendable);
  }
}
