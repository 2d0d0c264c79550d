import type pg from 'pg';

/**
 * An activity's spendable budget as the command side holds it: funded by fundings, reserved
 * by accepted grants and draws, both kept in Postgres beside the journal that spends them
 * (infra/migrations/008_journal.sql). Nothing here is a cache: after a Redis loss the budget
 * is exactly what it was.
 */
export class BudgetStore {
  constructor(private readonly pool: pg.Pool) {}

  async snapshot(activityId: string): Promise<{ funded: number; reserved: number }> {
    const { rows } = await this.pool.query<{ funded: number; reserved: number }>('select funded, reserved from budgets where activity_id = $1', [activityId]);
    return { funded: rows[0]?.funded ?? 0, reserved: rows[0]?.reserved ?? 0 };
  }
}
