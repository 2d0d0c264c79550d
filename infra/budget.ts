import type pg from 'pg';

/**
 * An activity's spendable budget as the command side holds it: funded by fundings, reserved
 * by accepted grants and draws, both kept in Postgres beside the journal that spends them
 * (infra/migrations/008_journal.sql). Nothing here is a cache: after a Redis loss the budget
 * is exactly what it was.
 */
export class BudgetStore {
  constructor(private readonly pool: pg.Pool) {}

  /**
   * Whether the ledger's funding, every activity's together, stays within `limit` with `amount`
   * more: `company:cost` carries all of it, and every account must stay readable as a JS number.
   */
  async fundingFits(amount: number, limit: number): Promise<boolean> {
    const { rows } = await this.pool.query<{ fits: boolean }>('select coalesce(sum(funded), 0) + $1::bigint <= $2::bigint as fits from budgets', [amount, limit]);
    return rows[0]?.fits ?? false;
  }

  /** Whether this funding id was already recorded (a retry, answered by the journal, is not a new funding). */
  async fundingKnown(activityId: string, fundingId: string): Promise<boolean> {
    const { rowCount } = await this.pool.query('select 1 from fundings where activity_id = $1 and funding_id = $2', [activityId, fundingId]);
    return (rowCount ?? 0) > 0;
  }

  async snapshot(activityId: string): Promise<{ funded: number; reserved: number }> {
    const { rows } = await this.pool.query<{ funded: number; reserved: number }>('select funded, reserved from budgets where activity_id = $1', [activityId]);
    return { funded: rows[0]?.funded ?? 0, reserved: rows[0]?.reserved ?? 0 };
  }
}
